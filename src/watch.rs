//! Watching the workspace with notify, reduced to what gtmd needs to know.
//!
//! The notify callback does as little as possible (as watchexec's does): it
//! turns each event into a [`WatchMsg`] and hands it to a bounded channel. If
//! that channel is full the event is not waited for: an overflow flag is set
//! and the daemon rescans, which loses nothing because a scan compares the
//! tree with the journal. Deciding whether a file is complete, and what it
//! means, happens in the daemon, not here.

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{Config, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What happened to a path, as far as deciding when to read it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The writer is done: closed after writing, or moved into place. Read now.
    Complete,
    /// Created or modified, maybe still being written: read once it settles
    /// (or as soon as a `Complete` follows).
    Touched,
    /// A directory appeared: scan it, it may already hold files.
    DirCreated,
    /// Deleted or moved away.
    Gone,
}

#[derive(Debug)]
pub enum WatchMsg {
    Path(Change, PathBuf),
    /// Events were lost (kernel queue overflow, full channel, watch error): rescan.
    Rescan(String),
}

/// Keeps the watcher alive; dropping it stops watching.
pub struct WatchHandle {
    _watcher: Box<dyn Watcher + Send>,
    /// Set when the channel was full and an event had to be dropped.
    pub overflowed: Arc<AtomicBool>,
}

/// Start watching `root` recursively. `poll` selects the portable polling
/// watcher (network filesystems, containers without inotify).
pub fn watch(
    root: &Path,
    poll: Option<Duration>,
    tx: mpsc::Sender<WatchMsg>,
) -> notify::Result<WatchHandle> {
    let overflowed = Arc::new(AtomicBool::new(false));
    let flag = overflowed.clone();
    let polling = poll.is_some();
    // A testing aid: keep only every Nth event, as a kernel queue overflow
    // would, to exercise the rescan path through the real watcher.
    let keep_every: u64 = std::env::var("GTMD_DEBUG_DROP_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 1)
        .unwrap_or(1);
    let mut seen = 0u64;
    let handler = move |res: notify::Result<notify::Event>| {
        for msg in convert(res, polling) {
            seen += 1;
            let lost =
                (keep_every > 1 && !seen.is_multiple_of(keep_every)) || tx.try_send(msg).is_err();
            // The first loss wakes the daemon; it rescans and clears the flag.
            if lost && !flag.swap(true, Ordering::AcqRel) {
                let _ = tx.try_send(WatchMsg::Rescan("events were lost".into()));
            }
        }
    };
    let config = Config::default().with_follow_symlinks(false);
    let mut watcher: Box<dyn Watcher + Send> = match poll {
        Some(interval) => Box::new(PollWatcher::new(
            handler,
            config.with_poll_interval(interval),
        )?),
        None => Box::new(RecommendedWatcher::new(handler, config)?),
    };
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(WatchHandle {
        _watcher: watcher,
        overflowed,
    })
}

fn convert(res: notify::Result<notify::Event>, polling: bool) -> Vec<WatchMsg> {
    let event = match res {
        Ok(e) => e,
        Err(e) => return vec![WatchMsg::Rescan(format!("watch error: {e}"))],
    };
    if event.need_rescan() {
        return vec![WatchMsg::Rescan(
            "the kernel's event queue overflowed".into(),
        )];
    }
    let change = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Change::Complete,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Change::Complete,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Change::Gone,
        // `Both` repeats a From and a To already sent.
        EventKind::Modify(ModifyKind::Name(_)) => return Vec::new(),
        EventKind::Create(CreateKind::Folder) => Change::DirCreated,
        EventKind::Remove(_) => Change::Gone,
        // The poller compares snapshots, so what it reports has settled already.
        EventKind::Create(_) | EventKind::Modify(_) if polling => Change::Complete,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => Change::Touched,
        _ => return Vec::new(),
    };
    event
        .paths
        .into_iter()
        .map(|p| WatchMsg::Path(change, p))
        .collect()
}
