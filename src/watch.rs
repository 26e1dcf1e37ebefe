//! Watching the workspace with notify, reduced to what gtmd needs to know.
//!
//! The notify callback does as little as possible (as watchexec's does): it
//! turns each event into a [`WatchMsg`] and hands it to a bounded channel. If
//! that channel is full the event is not waited for: an overflow flag is set
//! and the daemon rescans, which loses nothing because a scan compares the
//! tree with the journal. Deciding whether a file is complete, and what it
//! means, happens in the daemon, not here. The one thing dropped here is
//! news of gtmd's own writes in its state directory (journal appends, task
//! files, logs: about ten events a task, more for a chatty agent's log),
//! which would wake the daemon for nothing; a cluster job's exit file there
//! is still passed on.

use notify::event::{
    AccessKind, AccessMode, CreateKind, EventKind, EventKindMask, ModifyKind, RenameMode,
};
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

#[derive(Debug, PartialEq, Eq)]
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
/// watcher (network filesystems, containers without inotify). Nothing is
/// passed on from under `state_dir` (a path under `root`, as notify names
/// it) but its `jobs/` directory.
pub fn watch(
    root: &Path,
    poll: Option<Duration>,
    state_dir: Option<PathBuf>,
    tx: mpsc::Sender<WatchMsg>,
) -> notify::Result<WatchHandle> {
    let overflowed = Arc::new(AtomicBool::new(false));
    let polling = poll.is_some();
    // A testing aid: keep only every Nth event, as a kernel queue overflow
    // would, to exercise the rescan path through the real watcher.
    let keep_every: u64 = crate::test_hooks::drop_events_every().unwrap_or(1);
    let mut forward = Forward {
        tx,
        overflowed: overflowed.clone(),
        keep_every,
        seen: 0,
        quiet: state_dir.map(|dir| {
            let jobs = dir.join("jobs");
            (dir, jobs)
        }),
    };
    let handler = move |res: notify::Result<notify::Event>| forward.send(convert(res, polling));
    let config = Config::default().with_follow_symlinks(false);
    let mut watcher: Box<dyn Watcher + Send> = match poll {
        // The poller compares snapshots; what it reports is kept whole.
        Some(interval) => Box::new(PollWatcher::new(
            handler,
            config.with_poll_interval(interval),
        )?),
        None => Box::new(RecommendedWatcher::new(
            handler,
            config.with_event_kinds(HEARD),
        )?),
    };
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(WatchHandle {
        _watcher: watcher,
        overflowed,
    })
}

/// What the kernel is asked to report: whatever changes a path or its
/// content, and the close of a writer. Not opens, closes of readers or
/// metadata: they say nothing about when to read a file (see [`convert`]),
/// yet every agent reading its inputs, every `grep -r` and gtmd's own reads
/// would wake notify's thread and take room in the kernel's event queue,
/// whose overflow costs a rescan of the workspace.
const HEARD: EventKindMask = EventKindMask::CREATE
    .union(EventKindMask::REMOVE)
    .union(EventKindMask::MODIFY_DATA)
    .union(EventKindMask::MODIFY_NAME)
    .union(EventKindMask::ACCESS_CLOSE);

/// The callback's other half: hands messages to the channel without ever
/// waiting. A message that does not fit is lost, and the first loss sets
/// the overflow flag and asks for a rescan; the daemon clears the flag when
/// it rescans.
struct Forward {
    tx: mpsc::Sender<WatchMsg>,
    overflowed: Arc<AtomicBool>,
    /// Keep only every Nth message (`GTMD_DEBUG_DROP_EVENTS`); 1 keeps all.
    keep_every: u64,
    seen: u64,
    /// The state directory and, within it, the one directory still heard.
    quiet: Option<(PathBuf, PathBuf)>,
}

impl Forward {
    fn send(&mut self, msgs: Vec<WatchMsg>) {
        for msg in msgs {
            if let WatchMsg::Path(change, path) = &msg {
                if let Some((dir, heard)) = &self.quiet {
                    if path.starts_with(dir) && !path.starts_with(heard) {
                        continue;
                    }
                }
                tracing::trace!(target: "gtmd::stage", ?change, path = %path.display(), "notified");
            }
            self.seen += 1;
            let dropped = self.keep_every > 1 && !self.seen.is_multiple_of(self.keep_every);
            let lost = dropped || self.tx.try_send(msg).is_err();
            if lost && !self.overflowed.swap(true, Ordering::AcqRel) {
                let _ = self
                    .tx
                    .try_send(WatchMsg::Rescan("events were lost".into()));
            }
        }
    }
}

/// A notify event as the daemon needs it: one message per path, or a
/// rescan when events were lost. Events that say nothing about when to
/// read a file (opens, reads, metadata under inotify) give nothing.
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, Flag, MetadataKind, ModifyKind, RemoveKind};

    fn event(kind: EventKind, paths: &[&str]) -> notify::Result<notify::Event> {
        let e = paths.iter().fold(notify::Event::new(kind), |e, p| {
            e.add_path(PathBuf::from(p))
        });
        Ok(e)
    }

    fn path(change: Change, p: &str) -> WatchMsg {
        WatchMsg::Path(change, PathBuf::from(p))
    }

    #[test]
    fn each_event_kind_becomes_what_it_says_about_reading_the_file() {
        let write_closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let created = EventKind::Create(CreateKind::File);
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        let cases = [
            (write_closed, Some(Change::Complete)),
            (created, Some(Change::Touched)),
            (data, Some(Change::Touched)),
            (
                EventKind::Create(CreateKind::Folder),
                Some(Change::DirCreated),
            ),
            (EventKind::Remove(RemoveKind::File), Some(Change::Gone)),
            (EventKind::Remove(RemoveKind::Folder), Some(Change::Gone)),
        ];
        for (kind, want) in cases {
            let got = convert(event(kind, &["ws/a.md"]), false);
            let want: Vec<WatchMsg> = want.map(|c| path(c, "ws/a.md")).into_iter().collect();
            assert_eq!(got, want, "{kind:?}");
        }
    }

    #[test]
    fn a_rename_is_gone_from_its_old_name_and_complete_at_its_new_one() {
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            convert(event(from, &["ws/.a.md.swp"]), false),
            vec![path(Change::Gone, "ws/.a.md.swp")]
        );
        assert_eq!(
            convert(event(to, &["ws/a.md"]), false),
            vec![path(Change::Complete, "ws/a.md")]
        );
        // The pair repeats the From and To already sent: nothing again.
        assert_eq!(
            convert(event(both, &["ws/.a.md.swp", "ws/a.md"]), false),
            vec![]
        );
        let any = EventKind::Modify(ModifyKind::Name(RenameMode::Any));
        assert_eq!(convert(event(any, &["ws/a.md"]), false), vec![]);
    }

    #[test]
    fn events_that_say_nothing_about_a_write_are_ignored_under_inotify() {
        let ignored = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
            EventKind::Any,
            EventKind::Other,
        ];
        for kind in ignored {
            assert_eq!(
                convert(event(kind, &["ws/a.md"]), false),
                vec![],
                "{kind:?}"
            );
        }
    }

    #[test]
    fn what_the_poller_reports_has_settled_already() {
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime)),
        ] {
            assert_eq!(
                convert(event(kind, &["ws/a.md"]), true),
                vec![path(Change::Complete, "ws/a.md")],
                "{kind:?}"
            );
        }
        // A folder is still scanned, a removal still gone.
        let folder = EventKind::Create(CreateKind::Folder);
        assert_eq!(
            convert(event(folder, &["ws/d"]), true),
            vec![path(Change::DirCreated, "ws/d")]
        );
    }

    #[test]
    fn one_message_per_path() {
        let kind = EventKind::Remove(RemoveKind::Any);
        assert_eq!(
            convert(event(kind, &["ws/a.md", "ws/b.md"]), false),
            vec![path(Change::Gone, "ws/a.md"), path(Change::Gone, "ws/b.md")]
        );
    }

    #[test]
    fn a_rescan_flag_or_a_watch_error_asks_for_a_rescan() {
        let flagged = notify::Event::new(EventKind::Other)
            .add_path(PathBuf::from("ws"))
            .set_flag(Flag::Rescan);
        let got = convert(Ok(flagged), false);
        assert!(
            matches!(&got[..], [WatchMsg::Rescan(why)] if why.contains("overflowed")),
            "{got:?}"
        );
        let got = convert(Err(notify::Error::generic("inotify limit")), false);
        assert!(
            matches!(&got[..], [WatchMsg::Rescan(why)] if why.contains("inotify limit")),
            "{got:?}"
        );
    }

    fn forward(capacity: usize, keep_every: u64) -> (Forward, mpsc::Receiver<WatchMsg>) {
        let (tx, rx) = mpsc::channel(capacity);
        let f = Forward {
            tx,
            overflowed: Arc::new(AtomicBool::new(false)),
            keep_every,
            seen: 0,
            quiet: Some((PathBuf::from("/w/.gtmd"), PathBuf::from("/w/.gtmd/jobs"))),
        };
        (f, rx)
    }

    #[test]
    fn gtmds_own_writes_are_not_passed_on_but_a_jobs_exit_file_is() {
        let (mut f, mut rx) = forward(16, 1);
        f.send(vec![
            path(Change::Touched, "/w/.gtmd/journal"),
            path(Change::DirCreated, "/w/.gtmd/tasks/t-1"),
            path(Change::Complete, "/w/.gtmd/tasks/t-1/prompt.md"),
            path(Change::Complete, "/w/.gtmd/jobs/t-1.exit"),
            path(Change::Complete, "/w/.gtmdx/a.md"),
            path(Change::Complete, "/w/conflicts/a.md"),
        ]);
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            got.push(m);
        }
        assert_eq!(
            got,
            vec![
                path(Change::Complete, "/w/.gtmd/jobs/t-1.exit"),
                path(Change::Complete, "/w/.gtmdx/a.md"),
                path(Change::Complete, "/w/conflicts/a.md"),
            ]
        );
        assert!(!f.overflowed.load(Ordering::Acquire));
    }

    #[test]
    fn a_full_channel_sets_the_overflow_flag_instead_of_waiting() {
        let (mut f, mut rx) = forward(1, 1);
        f.send(vec![path(Change::Complete, "a")]);
        assert!(!f.overflowed.load(Ordering::Acquire));
        // Full: the message is lost (the callback never blocks) and the flag says so.
        f.send(vec![path(Change::Complete, "b")]);
        assert!(f.overflowed.load(Ordering::Acquire));
        assert_eq!(rx.try_recv(), Ok(path(Change::Complete, "a")));
        assert!(rx.try_recv().is_err(), "no room was left for the rescan");
        // Later losses while the flag is set ask for no second rescan.
        f.send(vec![
            path(Change::Complete, "c"),
            path(Change::Complete, "d"),
        ]);
        assert_eq!(rx.try_recv(), Ok(path(Change::Complete, "c")));
        assert!(rx.try_recv().is_err());
        // The daemon rescanned and cleared the flag: the next loss sets it again.
        f.overflowed.store(false, Ordering::Release);
        f.send(vec![path(Change::Complete, "e")]);
        assert!(!f.overflowed.load(Ordering::Acquire));
        f.send(vec![path(Change::Complete, "f")]);
        assert!(f.overflowed.load(Ordering::Acquire));
        assert_eq!(rx.try_recv(), Ok(path(Change::Complete, "e")));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn the_first_loss_asks_for_a_rescan_when_there_is_room() {
        // Dropping every other message, as GTMD_DEBUG_DROP_EVENTS=2 does.
        let (mut f, mut rx) = forward(8, 2);
        f.send(vec![
            path(Change::Complete, "a"),
            path(Change::Complete, "b"),
            path(Change::Complete, "c"),
        ]);
        assert!(f.overflowed.load(Ordering::Acquire));
        assert_eq!(
            rx.try_recv(),
            Ok(WatchMsg::Rescan("events were lost".into()))
        );
        assert_eq!(rx.try_recv(), Ok(path(Change::Complete, "b")));
        assert!(
            rx.try_recv().is_err(),
            "c was dropped without a second rescan"
        );
    }

    /// The masks of the inotify watches on `dir`, as the kernel lists them
    /// in /proc/self/fdinfo (other tests' watchers may be open meanwhile).
    fn inotify_masks_on(dir: &Path) -> Vec<u32> {
        use std::os::unix::fs::MetadataExt;
        let ino = format!("ino:{:x} ", std::fs::metadata(dir).unwrap().ino());
        let mut masks = Vec::new();
        for fd in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
            let Ok(info) = std::fs::read_to_string(fd.path()) else {
                continue;
            };
            for line in info.lines().filter(|l| l.starts_with("inotify ")) {
                if line.contains(&ino) {
                    let mask = line.split("mask:").nth(1).unwrap();
                    let hex = mask.split_whitespace().next().unwrap();
                    masks.push(u32::from_str_radix(hex, 16).unwrap());
                }
            }
        }
        masks
    }

    #[test]
    fn the_kernel_is_not_asked_for_opens_reads_or_metadata() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("status")).unwrap();
        let (tx, _rx) = mpsc::channel(16);
        let _handle = watch(dir.path(), None, None, tx).unwrap();
        for watched in [dir.path().to_path_buf(), dir.path().join("status")] {
            let masks = inotify_masks_on(&watched);
            assert_eq!(
                masks.len(),
                1,
                "one watch on {}: {masks:x?}",
                watched.display()
            );
            let mask = masks[0];
            for (bit, what) in [
                (0x20, "open"),
                (0x10, "close of a reader"),
                (0x04, "metadata"),
                (0x01, "read"),
            ] {
                assert_eq!(
                    mask & bit,
                    0,
                    "{what} is watched on {}: mask {mask:#x}",
                    watched.display()
                );
            }
            for (bit, what) in [
                (0x08, "close of a writer"),
                (0x02, "modify"),
                (0x100, "create"),
                (0x200, "delete"),
                (0x40, "moved from"),
                (0x80, "moved to"),
            ] {
                assert_ne!(
                    mask & bit,
                    0,
                    "{what} is not watched on {}: mask {mask:#x}",
                    watched.display()
                );
            }
        }
    }
}
