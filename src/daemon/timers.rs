//! The daemon's deadlines in one plain type: files settling, new directories
//! looked at again, task exits waiting for their cookie, retries, the next
//! rescan and the next rewrite of the run records.
//!
//! The event loop asks it for the next deadline to sleep until and for what
//! is due when it wakes. It holds no clock and no tokio: tests drive it with
//! made-up instants, so every timing rule is a fast unit test.

use crate::engine::TaskId;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Something whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Due {
    /// A rescan of the whole workspace (events were lost).
    Rescan,
    /// A file modified without a close: read it now.
    Settled(String),
    /// A new directory's last look, for files notify did not report.
    NewDir(String),
    /// A task's exit whose cookie never came back: handle it anyway.
    Cookie(String),
    /// A task's backoff has passed.
    Retry(TaskId),
    /// Changed run records may be written again.
    Records,
    /// A changed feed may be written again.
    Feed,
}

#[derive(Debug, Default)]
pub(super) struct Timers {
    settle: BTreeMap<String, Instant>,
    new_dirs: BTreeMap<String, Instant>,
    cookies: HashMap<String, Instant>,
    retries: Vec<(Instant, TaskId)>,
    rescan: Option<Instant>,
    records: Option<Instant>,
    feed: Option<Instant>,
}

impl Timers {
    /// Read `path` at `at` unless it is closed (or settles) first.
    pub fn settle(&mut self, path: String, at: Instant) {
        self.settle.insert(path, at);
    }

    /// `path` is complete: no need to wait for it any more.
    pub fn settled(&mut self, path: &str) {
        self.settle.remove(path);
    }

    /// Every file still settling, taken off the list (a sync or a cookie
    /// has come: whatever was written before it is complete by now).
    pub fn take_settling(&mut self) -> Vec<String> {
        std::mem::take(&mut self.settle).into_keys().collect()
    }

    pub fn new_dir(&mut self, path: String, at: Instant) {
        self.new_dirs.insert(path, at);
    }

    /// Directories still young enough to hold files notify missed.
    pub fn new_dirs(&self) -> Vec<String> {
        self.new_dirs.keys().cloned().collect()
    }

    pub fn cookie(&mut self, name: String, at: Instant) {
        self.cookies.insert(name, at);
    }

    pub fn cookie_seen(&mut self, name: &str) {
        self.cookies.remove(name);
    }

    pub fn retry(&mut self, task: TaskId, at: Instant) {
        self.retries.push((at, task));
    }

    /// A rescan at `at`, or earlier if one is already due sooner.
    pub fn rescan(&mut self, at: Instant) {
        self.rescan = Some(self.rescan.map_or(at, |d| d.min(at)));
    }

    pub fn rescan_pending(&self) -> bool {
        self.rescan.is_some()
    }

    pub fn records(&mut self, at: Instant) {
        self.records = Some(at);
    }

    pub fn records_written(&mut self) {
        self.records = None;
    }

    pub fn feed(&mut self, at: Instant) {
        self.feed = Some(at);
    }

    pub fn feed_written(&mut self) {
        self.feed = None;
    }

    /// Nothing is settling, no directory is young, no exit waits: the
    /// daemon has seen everything that happened so far.
    pub fn quiet(&self) -> bool {
        self.settle.is_empty() && self.new_dirs.is_empty() && self.cookies.is_empty()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let settle = self.settle.values().chain(self.new_dirs.values()).min();
        let cookie = self.cookies.values().min();
        let retry = self.retries.iter().map(|(d, _)| d).min();
        [
            settle,
            cookie,
            retry,
            self.rescan.as_ref(),
            self.records.as_ref(),
            self.feed.as_ref(),
        ]
        .into_iter()
        .flatten()
        .min()
        .copied()
    }

    /// Everything due at `now`, taken off the timers, the rescan first (it
    /// reads every file anyway) and retries after the files.
    pub fn due(&mut self, now: Instant) -> Vec<Due> {
        let mut due = Vec::new();
        if self.rescan.is_some_and(|d| d <= now) {
            self.rescan = None;
            due.push(Due::Rescan);
        }
        take_due(&mut self.settle, now, |p| due.push(Due::Settled(p)));
        take_due(&mut self.new_dirs, now, |p| due.push(Due::NewDir(p)));
        let mut late: Vec<String> = self
            .cookies
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(n, _)| n.clone())
            .collect();
        late.sort();
        for name in late {
            self.cookies.remove(&name);
            due.push(Due::Cookie(name));
        }
        let (ready, later): (Vec<_>, Vec<_>) = self.retries.drain(..).partition(|(d, _)| *d <= now);
        self.retries = later;
        due.extend(ready.into_iter().map(|(_, t)| Due::Retry(t)));
        if self.records.is_some_and(|d| d <= now) {
            self.records = None;
            due.push(Due::Records);
        }
        if self.feed.is_some_and(|d| d <= now) {
            self.feed = None;
            due.push(Due::Feed);
        }
        due
    }
}

fn take_due(map: &mut BTreeMap<String, Instant>, now: Instant, mut f: impl FnMut(String)) {
    let due: Vec<String> = map
        .iter()
        .filter(|(_, d)| **d <= now)
        .map(|(p, _)| p.clone())
        .collect();
    for p in due {
        map.remove(&p);
        f(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn the_next_deadline_is_the_earliest_of_every_kind() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        assert_eq!(t.next_deadline(), None);
        t.retry("t1".into(), ms(t0, 900));
        t.settle("a.md".into(), ms(t0, 300));
        t.cookie(".gtmd-cookie-1".into(), ms(t0, 2000));
        assert_eq!(t.next_deadline(), Some(ms(t0, 300)));
        t.rescan(ms(t0, 100));
        assert_eq!(t.next_deadline(), Some(ms(t0, 100)));
        // A later rescan does not put off one already due sooner.
        t.rescan(ms(t0, 5000));
        assert_eq!(t.next_deadline(), Some(ms(t0, 100)));
    }

    #[test]
    fn only_what_is_due_fires_and_it_fires_once_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.settle("late.md".into(), ms(t0, 500));
        t.settle("early.md".into(), ms(t0, 100));
        t.new_dir("d".into(), ms(t0, 100));
        t.cookie("c".into(), ms(t0, 50));
        t.retry("t1".into(), ms(t0, 100));
        t.retry("t2".into(), ms(t0, 900));
        t.rescan(ms(t0, 100));
        t.records(ms(t0, 100));
        assert_eq!(
            t.due(ms(t0, 100)),
            vec![
                Due::Rescan,
                Due::Settled("early.md".into()),
                Due::NewDir("d".into()),
                Due::Cookie("c".into()),
                Due::Retry("t1".into()),
                Due::Records,
            ]
        );
        assert_eq!(t.due(ms(t0, 100)), vec![]);
        assert_eq!(t.next_deadline(), Some(ms(t0, 500)));
        assert_eq!(
            t.due(ms(t0, 1000)),
            vec![Due::Settled("late.md".into()), Due::Retry("t2".into())]
        );
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn a_closed_file_or_a_seen_cookie_no_longer_fires() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.settle("a.md".into(), ms(t0, 300));
        t.cookie("c".into(), ms(t0, 300));
        assert!(!t.quiet());
        t.settled("a.md");
        t.cookie_seen("c");
        assert!(t.quiet());
        assert_eq!(t.due(ms(t0, 1000)), vec![]);
    }

    #[test]
    fn taking_the_settling_files_empties_the_list_but_new_dirs_stay() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.settle("b.md".into(), ms(t0, 300));
        t.settle("a.md".into(), ms(t0, 300));
        t.new_dir("d".into(), ms(t0, 1000));
        assert_eq!(t.take_settling(), vec!["a.md", "b.md"]);
        assert_eq!(t.new_dirs(), vec!["d"]);
        assert_eq!(t.next_deadline(), Some(ms(t0, 1000)));
    }
}
