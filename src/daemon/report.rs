//! What the daemon shows of its work as it goes: each run's record
//! (`runs/<id>.md`, rewritten at most every [`RECORD_EVERY`]), the feed
//! clients follow (`STATE/feed.json`, at most every [`FEED_EVERY`]) and the
//! web view's snapshot with it, and the progress lines of a foreground
//! `team run`.

use super::Daemon;
use crate::feed::Feed;
use crate::record;
use std::time::{Duration, Instant};

/// The feed changes with every task; followers poll it every 200 ms.
pub(super) const FEED_EVERY: Duration = Duration::from_millis(100);

/// The feed last written for clients.
pub(super) struct Published {
    feed: Feed,
    /// The journal's position it was built at.
    position: (u64, u64),
    written: Instant,
}

/// A run record changed by a burst of events is rewritten at most this often
/// (at once when its run has ended, and at shutdown).
pub(super) const RECORD_EVERY: Duration = Duration::from_millis(250);

impl Daemon {
    /// Rewrite the records of the runs that changed. A record is rendered
    /// whole, so during a burst (thousands of conflict reviews) it is written
    /// at most every [`RECORD_EVERY`]; at once when a run has ended, and
    /// with `now` (shutdown).
    pub(super) fn write_records(&mut self, now: bool) {
        if self.fx.dirty_runs.is_empty() {
            return;
        }
        let at = Instant::now();
        let due = self.records_written.map_or(at, |t| t + RECORD_EVERY);
        let ended = self
            .fx
            .dirty_runs
            .iter()
            .any(|r| self.engine.run(r).is_some_and(|r| !r.is_active()));
        if !now && !ended && due > at {
            self.timers.records(due);
            return;
        }
        self.timers.records_written();
        self.records_written = Some(at);
        for run in std::mem::take(&mut self.fx.dirty_runs) {
            if let Some(r) = self.engine.run(&run) {
                let text = record::render(&self.engine, r);
                let path = self.fx.ingest.root().join(record::record_path(&run));
                // Rebuilt from the journal at any time: no fsync on this path.
                if let Err(e) = crate::fsutil::write_replaceable(&path, text.as_bytes()) {
                    tracing::error!(file = %path.display(), "cannot write the run record: {}", crate::diagnostic::chain(&e));
                }
            }
        }
    }

    pub(super) fn print_progress(&mut self, run: &str) {
        let Some(r) = self.engine.run(run) else {
            return;
        };
        let line = format!(
            "[{}] {}",
            r.id,
            crate::summary::run_summary(&self.engine, r)
        );
        if line != self.last_progress {
            crate::errln!("{line}");
            self.last_progress = line;
        }
    }

    /// With `--http`, hand the web view a snapshot of the engine: when the
    /// feed is due (the journal has moved, at most every [`FEED_EVERY`]),
    /// through a channel that never waits for a page.
    fn publish_web(&self) {
        if let Some(web) = &self.options.web {
            let workspace = self.settings.paths.workspace.display().to_string();
            web.publish(crate::web::Snapshot::of(
                &self.engine,
                &workspace,
                super::now_ms(),
            ));
        }
    }

    /// Write the feed if it changed: at once with `now` (shutdown) or when
    /// the last write is [`FEED_EVERY`] ago, else when that time comes.
    pub(super) fn publish_feed(&mut self, now: bool) {
        // The engine changes only by journaled events: nothing new in the
        // journal, nothing new to say (and no feed built per event in a
        // burst of ten thousand).
        let position = self.journal.position();
        if self.feed.as_ref().is_some_and(|f| f.position == position) {
            return;
        }
        let at = Instant::now();
        let due = self.feed.as_ref().map_or(at, |f| f.written + FEED_EVERY);
        if !now && due > at {
            self.timers.feed(due);
            return;
        }
        self.timers.feed_written();
        self.publish_web();
        let feed = Feed::of(&self.engine);
        if self.feed.as_ref().is_some_and(|f| f.feed == feed) {
            if let Some(f) = self.feed.as_mut() {
                f.position = position;
            }
            return;
        }
        let path = crate::feed::path(&self.settings.paths.state_dir);
        // Rebuilt from the journal at any time: no fsync on this path.
        match serde_json::to_vec(&feed) {
            Ok(bytes) => {
                if let Err(e) = crate::fsutil::write_replaceable(&path, &bytes) {
                    tracing::warn!(file = %path.display(), "cannot write the feed: {}", crate::diagnostic::chain(&e));
                }
            }
            Err(e) => tracing::warn!("cannot serialize the feed: {e}"),
        }
        self.feed = Some(Published {
            feed,
            position,
            written: at,
        });
    }
}
