//! From watcher events to engine events: which path changed and how, whether
//! it is a new version (read, hashed, parsed by [`super::ingest`]), files
//! still being written, directories that arrived with files in them, lost
//! events made good by a rescan, and the cookie files that order a task's
//! exit after everything it wrote.
//!
//! What is found joins the batch of the current turn of the loop; `flush`
//! hands the batch to the engine in one journal write.

use super::{now_ms, Daemon};
use crate::engine::{Event, FileEntry};
use crate::ingest::Observed;
use crate::protocol::FileKind;
use crate::protocol::{COOKIE_PREFIX, SYNC_PREFIX};
use crate::runner::TaskExit;
use crate::watch::{self, Change};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A file modified without a close (mmap writers, hard links) is read after
/// this much quiet.
const SETTLE: Duration = Duration::from_millis(300);
/// Rescans closer together than this count as repeating.
const RESCAN_WINDOW: Duration = Duration::from_secs(10);
/// How long a new directory is looked at again, for files written into it
/// before notify watched it.
const NEW_DIR_WATCH: Duration = Duration::from_secs(1);
/// How long an exit waits for its cookie before it is handled anyway.
const COOKIE_TIMEOUT: Duration = Duration::from_secs(2);

impl Daemon {
    pub(super) fn on_path(&mut self, change: Change, abs: &Path) {
        tracing::trace!(target: "gtmd::stage", ?change, path = %abs.display(), "received");
        let Some(rel) = self.fx.ingest.relative(abs) else {
            if change == Change::Gone && abs == self.fx.ingest.root() {
                // The workspace itself was deleted or moved away: its watch is
                // gone with it. The root check watches whatever is there next
                // (a new directory may even reuse the old inode number).
                tracing::warn!(workspace = %abs.display(), "the workspace directory was removed");
                self.watcher = None;
                self.root_id = None;
                self.check_root();
            }
            return;
        };
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if change != Change::Gone && self.fx.ingest.is_job_exit(&rel) {
            // A cluster job's wrapper wrote how its task ended.
            self.fx.runner.wake_jobs();
            return;
        }
        if !rel.contains('/') && name.starts_with(COOKIE_PREFIX) {
            if change != Change::Gone {
                self.release_cookie(&rel);
            }
            return;
        }
        if !rel.contains('/') && name.starts_with(SYNC_PREFIX) {
            if change != Change::Gone {
                // Everything before this point has been read; files still
                // settling were written before it too. Answer by removing it.
                self.settle_all();
                if self.timers.rescan_pending() || self.watcher.is_none() {
                    // Events may have been lost: answer once the rescan ran.
                    self.pending_syncs.push(abs.to_path_buf());
                } else {
                    let _ = std::fs::remove_file(abs);
                }
            }
            return;
        }
        match change {
            Change::Touched => {
                if self.fx.ingest.ignored(&rel) {
                    return;
                }
                // A symlink is complete when it is created: no write follows.
                let is_link =
                    std::fs::symlink_metadata(abs).is_ok_and(|m| m.file_type().is_symlink());
                if is_link {
                    self.timers.settled(&rel);
                    self.look_at(&rel);
                } else {
                    self.timers.settle(rel, Instant::now() + SETTLE);
                }
            }
            Change::Complete => {
                self.timers.settled(&rel);
                if matches!(crate::protocol::classify(&rel), FileKind::Status { .. }) {
                    // Outputs written before this status may sit in a new
                    // directory notify has not watched yet: find them first.
                    for dir in self.timers.new_dirs() {
                        self.look_at(&dir);
                    }
                }
                self.look_at(&rel);
                // A directory moved in: its subdirectories' watches come later.
                if std::fs::symlink_metadata(abs).is_ok_and(|m| m.is_dir()) {
                    self.timers.new_dir(rel, Instant::now() + NEW_DIR_WATCH);
                }
            }
            Change::DirCreated => {
                self.look_at(&rel);
                // Files may land in it, or in its subdirectories, before
                // notify has added their watches: look again at every sync
                // or exit cookie until the watches surely exist.
                self.timers.new_dir(rel, Instant::now() + NEW_DIR_WATCH);
            }
            Change::Gone => {
                self.timers.settled(&rel);
                self.look_at(&rel);
            }
        }
    }

    /// Look at a path now; what changed joins the batch being collected.
    pub(super) fn look_at(&mut self, rel: &str) {
        self.observe(rel, false);
    }

    /// The version the engine will know once the collected batch is applied.
    pub(super) fn known(&self, rel: &str) -> Option<FileEntry> {
        match self.batch_index.get(rel) {
            Some(entry) => entry.clone(),
            None => self.engine.files().get(rel).cloned(),
        }
    }

    pub(super) fn observe(&mut self, rel: &str, trust_mtime: bool) {
        let known = self.known(rel);
        match self.fx.ingest.observe(rel, known.as_ref(), trust_mtime) {
            Observed::New {
                hash,
                size,
                mtime_ns,
                content,
            } => {
                tracing::trace!(target: "gtmd::stage", path = rel, "read");
                self.batch_index.insert(
                    rel.to_string(),
                    Some(FileEntry {
                        hash: hash.clone(),
                        size,
                        mtime_ns,
                    }),
                );
                self.batch.push(Event::FileChanged {
                    path: rel.to_string(),
                    hash,
                    size,
                    mtime_ns,
                    at: now_ms(),
                    content: *content,
                });
            }
            Observed::Dir => {
                // A new directory may already hold files (mkdir -p, mv of a folder).
                for f in self.fx.ingest.scan(rel) {
                    self.observe(&f, trust_mtime);
                }
            }
            Observed::Missing => {
                let prefix = format!("{rel}/");
                let mut gone: Vec<String> = self
                    .engine
                    .files()
                    .range(rel.to_string()..)
                    .take_while(|(p, _)| p.starts_with(rel))
                    .filter(|(p, _)| p.as_str() == rel || p.starts_with(&prefix))
                    .map(|(p, _)| p.clone())
                    .collect();
                gone.extend(
                    self.batch_index
                        .iter()
                        .filter(|(p, e)| {
                            e.is_some() && (p.as_str() == rel || p.starts_with(&prefix))
                        })
                        .map(|(p, _)| p.clone()),
                );
                gone.sort();
                gone.dedup();
                for path in gone {
                    if self.known(&path).is_some() {
                        self.batch_index.insert(path.clone(), None);
                        self.batch.push(Event::FileRemoved { path, at: now_ms() });
                    }
                }
            }
            Observed::Touched { mtime_ns } => {
                if let Some(mut entry) = known {
                    entry.mtime_ns = mtime_ns;
                    self.batch_index.insert(rel.to_string(), Some(entry));
                }
                self.batch.push(Event::FileTouched {
                    path: rel.to_string(),
                    mtime_ns,
                    at: now_ms(),
                });
            }
            Observed::Settling => {
                self.timers.settle(rel.to_string(), Instant::now() + SETTLE);
            }
            Observed::Ignored | Observed::Owned | Observed::Unchanged => {}
        }
    }

    /// Compare the whole tree with what the journal knows; act on the difference.
    pub(super) fn rescan(&mut self) -> usize {
        let before = self.batch.len();
        let on_disk = self.fx.ingest.scan("");
        for rel in &on_disk {
            self.observe(rel, true);
        }
        let present: BTreeSet<&String> = on_disk.iter().collect();
        let gone: Vec<String> = self
            .engine
            .files()
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.batch_index.insert(path.clone(), None);
            self.batch.push(Event::FileRemoved { path, at: now_ms() });
        }
        let n = self.batch.len() - before;
        self.flush();
        n
    }

    /// Apply the collected batch: one journal write (and fsync) for all of it.
    pub(super) fn flush(&mut self) {
        let events = std::mem::take(&mut self.batch);
        self.batch_index.clear();
        if !events.is_empty() || !self.unjournaled.is_empty() {
            self.apply(events);
        }
    }

    /// Rescan soon; when rescans keep coming (a recrawl storm), wait longer
    /// between them: 1 s, 2 s, 4 s ... up to 30 s.
    pub(super) fn request_rescan(&mut self, why: &str) {
        let now = Instant::now();
        if let Some(w) = &self.watcher {
            w.overflowed.store(false, Ordering::Release);
        }
        if self.timers.rescan_pending() {
            // One is already due; it will see this loss too.
            return;
        }
        while self
            .rescans
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESCAN_WINDOW)
        {
            self.rescans.pop_front();
        }
        self.rescans.push_back(now);
        let n = self.rescans.len() as u32;
        let delay = if n <= 3 {
            Duration::ZERO
        } else {
            Duration::from_secs((1u64 << (n - 4).min(5)).min(30))
        };
        if let Some(w) = &self.watcher {
            w.overflowed.store(false, Ordering::Release);
        }
        tracing::warn!(
            "{why}; rescanning the workspace{} (if this repeats, raise fs.inotify.max_queued_events)",
            if delay.is_zero() {
                String::new()
            } else {
                format!(" in {} s: rescans are repeating", delay.as_secs())
            }
        );
        self.timers.rescan(now + delay);
    }

    /// The workspace directory itself may be deleted and created again: keep
    /// watching the one that is there now.
    pub(super) fn check_root(&mut self) {
        let root = self.fx.ingest.root().to_path_buf();
        let id = dir_id(&root);
        if id.is_none() {
            if self.watcher.take().is_some() {
                tracing::warn!(workspace = %root.display(), "the workspace directory is gone; waiting for it to come back");
                self.root_id = None;
            }
            return;
        }
        if id == self.root_id && self.watcher.is_some() {
            return;
        }
        let state_dir = self.fx.ingest.state_dir_in_root();
        match watch::watch(&root, self.options.poll, state_dir, self.watch_tx.clone()) {
            Ok(w) => {
                tracing::warn!(workspace = %root.display(), "the workspace directory was replaced; watching the new one and rescanning");
                self.watcher = Some(w);
                self.root_id = id;
                self.fx.ingest.refresh_root();
                self.request_rescan("the workspace directory was replaced");
            }
            Err(e) => {
                tracing::warn!(workspace = %root.display(), "cannot watch the workspace yet: {e}")
            }
        }
    }

    /// An exit is handled after every file event before it: write a cookie
    /// and handle the exit when the watcher reports the cookie.
    pub(super) fn park_exit(&mut self, exit: TaskExit) {
        self.cookie_seq += 1;
        let name = format!("{COOKIE_PREFIX}{}-{}", std::process::id(), self.cookie_seq);
        let event = Event::TaskExited {
            task: exit.task,
            exit: exit.exit,
            report: exit.report.map(Box::new),
            at: now_ms(),
        };
        let path = self.fx.ingest.root().join(&name);
        if std::fs::write(&path, b"").is_err() {
            self.batch.push(event);
            return;
        }
        self.timers
            .cookie(name.clone(), Instant::now() + COOKIE_TIMEOUT);
        self.parked.insert(name, event);
    }

    /// Read every file still settling now.
    pub(super) fn settle_all(&mut self) {
        for rel in self.timers.take_settling() {
            self.look_at(&rel);
        }
        // New directories stay on the list until their deadline: notify may
        // not have watched them yet even when a later event has arrived.
        for rel in self.timers.new_dirs() {
            self.look_at(&rel);
        }
    }

    pub(super) fn release_cookie(&mut self, name: &str) {
        self.timers.cookie_seen(name);
        if let Some(event) = self.parked.remove(name) {
            self.settle_all();
            let _ = std::fs::remove_file(self.fx.ingest.root().join(name));
            self.batch.push(event);
        }
    }
}

/// Device and inode of a directory: tells a recreated workspace from the old one.
pub(super) fn dir_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
