//! The durable journal: every event gtmd acts on, appended and fsynced before
//! the engine sees it.
//!
//! The engine is a pure function of its events, so the journal *is* the state:
//! on start the events are replayed into a fresh engine, which then knows every
//! file version already acted on, every run, gate and task. A torn last line
//! (a crash mid-write) is cut off on open; it was never acted on, because
//! acting happens only after the fsync returned.
//!
//! So that the journal does not grow for ever, it is compacted: the engine's
//! state is written as a snapshot (temporary file, fsync, rename), then a new,
//! empty journal of the next generation takes over. The snapshot names its
//! generation, so a crash between the two steps is harmless: the snapshot
//! already holds everything the old journal said.

mod sync;

pub use sync::{Durability, Gate};

use crate::engine::{EngineState, Event};
use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const JOURNAL_FILE: &str = "journal.jsonl";
pub const SNAPSHOT_FILE: &str = "snapshot.json";
pub const LOCK_FILE: &str = "gtmd.lock";
/// The workspace's own lock, at its root: a dot-file, so the watcher and the
/// scans never take it for a bus file.
pub const WORKSPACE_LOCK_FILE: &str = ".gtmd.lock";

/// The journal of a generation: `journal.jsonl` before the first compaction.
fn journal_path(state_dir: &Path, generation: u64) -> PathBuf {
    if generation == 0 {
        state_dir.join(JOURNAL_FILE)
    } else {
        state_dir.join(format!("journal.{generation}.jsonl"))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    generation: u64,
    state: EngineState,
}

/// What a state directory holds: the last snapshot and the events after it.
#[derive(Default)]
pub struct Recovered {
    pub snapshot: Option<EngineState>,
    pub events: Vec<Event>,
    /// The journal file the events come from (entry N is its line N).
    pub journal: PathBuf,
    /// The generation of the snapshot (0: none yet).
    pub generation: u64,
}

/// The snapshot of `generation` in `state_dir`, read again: `None` if it is
/// unreadable or another generation's by now (a compaction came between).
pub fn reread_snapshot(state_dir: &Path, generation: u64) -> Option<EngineState> {
    read_snapshot(state_dir)
        .ok()
        .flatten()
        .filter(|s| s.generation == generation)
        .map(|s| s.state)
}

fn read_snapshot(state_dir: &Path) -> Result<Option<Snapshot>> {
    let path = state_dir.join(SNAPSHOT_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "the snapshot {} is unreadable; move it away to start from the journal alone",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub struct Journal {
    /// Shared with the sync thread, which syncs whatever file was written last.
    file: Arc<File>,
    path: PathBuf,
    state_dir: PathBuf,
    generation: u64,
    /// Entries in this generation's journal.
    entries: u64,
    /// Length of the durable, well-formed prefix.
    len: u64,
    buf: Vec<u8>,
    /// `GTMD_DEBUG_DIE_BEFORE_DURABLE`, read once.
    die_before_durable: Option<String>,
    syncer: sync::Syncer,
}

impl Journal {
    /// Open (or create) the journal in `state_dir` and return what it holds.
    pub fn open(state_dir: &Path) -> Result<(Journal, Recovered)> {
        fs::create_dir_all(state_dir).with_context(|| {
            format!(
                "cannot create the state directory {}; pass a writable one with --state-dir",
                state_dir.display()
            )
        })?;
        let snapshot = read_snapshot(state_dir)?;
        let generation = snapshot.as_ref().map_or(0, |s| s.generation);
        // Journals of earlier generations are covered by the snapshot.
        for g in 0..generation {
            let _ = fs::remove_file(journal_path(state_dir, g));
        }
        let path = journal_path(state_dir, generation);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        let (events, good_len) = read_from(&mut file, &path)?;
        let len = file.metadata()?.len();
        if good_len < len {
            tracing::warn!(
                journal = %path.display(),
                "cutting {} byte(s) of a torn last entry (gtmd stopped while writing it; it was never acted on)",
                len - good_len
            );
            file.set_len(good_len)
                .with_context(|| format!("cannot repair the journal {}", path.display()))?;
            file.sync_all()?;
        }
        let journal = path.clone();
        Ok((
            Journal {
                file: Arc::new(file),
                path,
                state_dir: state_dir.to_path_buf(),
                generation,
                entries: events.len() as u64,
                len: good_len,
                buf: Vec::new(),
                die_before_durable: crate::test_hooks::die_before_durable(),
                syncer: sync::Syncer::start().context("cannot start the journal's sync thread")?,
            },
            Recovered {
                snapshot: snapshot.map(|s| s.state),
                events,
                journal,
                generation,
            },
        ))
    }

    /// Entries written since the last snapshot.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Where the journal stands: (generation, entries). It changes with
    /// every entry, and only then, so whatever is derived from the engine
    /// need not be derived again while it stays the same.
    pub fn position(&self) -> (u64, u64) {
        (self.generation, self.entries)
    }

    /// Replace the journal by a snapshot of `state` and an empty journal.
    pub fn compact(&mut self, state: &EngineState) -> Result<()> {
        // The old generation is durable before the snapshot supersedes it.
        self.syncer.durability().wait();
        let next = self.generation + 1;
        let snap = Snapshot {
            generation: next,
            state: state.clone(),
        };
        let bytes = serde_json::to_vec(&snap)?;
        let target = self.state_dir.join(SNAPSHOT_FILE);
        let tmp = self.state_dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &target)?;
            File::open(&self.state_dir)?.sync_all()
        };
        write().with_context(|| {
            format!(
                "cannot write the snapshot {} (disk full or not writable?); the journal goes on growing",
                target.display()
            )
        })?;
        let path = journal_path(&self.state_dir, next);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot create the journal {}", path.display()))?;
        let _ = File::open(&self.state_dir).and_then(|d| d.sync_all());
        let old = std::mem::replace(&mut self.path, path);
        self.file = Arc::new(file);
        self.generation = next;
        self.entries = 0;
        self.len = 0;
        let _ = fs::remove_file(old);
        Ok(())
    }

    /// Append events and make them durable (one fdatasync for the batch).
    pub fn append(&mut self, events: &[Event]) -> Result<()> {
        self.write(events)?;
        self.syncer.durability().wait();
        Ok(())
    }

    /// Append events; their fdatasync runs on the sync thread (see
    /// [`sync`]): [`Durability::wait`] for it, or start a task's process
    /// behind a [`Durability::gate`]. An error leaves nothing half written,
    /// and nothing of `events` in the journal.
    pub fn write(&mut self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for e in events {
            serde_json::to_writer(&mut self.buf, e)?;
            self.buf.push(b'\n');
        }
        tracing::trace!(target: "gtmd::stage", events = events.len(), "serialized");
        let res = (&*self.file).write_all(&self.buf);
        tracing::trace!(target: "gtmd::stage", "written");
        if let Err(e) = res {
            // Leave no half entry behind: cut back to the last good length.
            let _ = self.file.set_len(self.len);
            return Err(e).with_context(|| {
                format!(
                    "cannot write the journal {} (disk full or not writable?); gtmd will not act on events it cannot record",
                    self.path.display()
                )
            });
        }
        self.len += self.buf.len() as u64;
        self.entries += events.len() as u64;
        self.syncer.written(&self.file, self.doomed(events));
        Ok(())
    }

    /// Where to wait for the entries written so far to be durable.
    pub fn durability(&self) -> Durability {
        self.syncer.durability()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `events` hold the version `GTMD_DEBUG_DIE_BEFORE_DURABLE`
    /// names (a test of what a crash before the fdatasync leaves).
    fn doomed(&self, events: &[Event]) -> bool {
        self.die_before_durable.as_deref().is_some_and(|doomed| {
            events
                .iter()
                .any(|e| matches!(e, Event::FileChanged { path, .. } if path == doomed))
        })
    }
}

/// Read a state directory without opening it for writing (status, explain).
pub fn read(state_dir: &Path) -> Result<Recovered> {
    let snapshot = read_snapshot(state_dir)?;
    let generation = snapshot.as_ref().map_or(0, |s| s.generation);
    let path = journal_path(state_dir, generation);
    let events = match File::open(&path) {
        Ok(mut file) => read_from(&mut file, &path)?.0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(Recovered {
        snapshot: snapshot.map(|s| s.state),
        events,
        journal: path,
        generation,
    })
}

/// The events of the current journal generation (tests, tools).
pub fn read_events(state_dir: &Path) -> Result<Vec<Event>> {
    Ok(read(state_dir)?.events)
}

/// Parse complete lines; return the events and the length of the good prefix.
fn read_from(file: &mut File, path: &Path) -> Result<(Vec<Event>, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&*file);
    let mut events = Vec::new();
    let mut good = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(e) => {
                events.push(e);
                good += n as u64;
            }
            Err(e) => {
                tracing::warn!(journal = %path.display(), "entry after byte {good} is unreadable ({e}); ignoring it and what follows");
                break;
            }
        }
    }
    Ok((events, good))
}

/// An exclusive lock that says "a gtmd serves this state directory".
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Take the lock, or say which process holds it.
    pub fn acquire(state_dir: &Path) -> Result<StateLock> {
        fs::create_dir_all(state_dir).with_context(|| {
            format!(
                "cannot create the state directory {}; pass a writable one with --state-dir",
                state_dir.display()
            )
        })?;
        let path = state_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // flock(2) on Linux, the lock gtmd has always taken: a gtmd of an
        // older version on the same state directory is seen too.
        if let Err(e) = file.try_lock() {
            if let TryLockError::Error(e) = e {
                return Err(e).with_context(|| {
                    format!(
                        "cannot lock {}; the state directory must be on a file system with file locks (flock)",
                        path.display()
                    )
                });
            }
            let pid = fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another gtmd (pid {}) already serves this workspace (lock {}); stop it first, or use `gtmd team run` / `gtmd agent run` to talk to it",
                pid.trim(),
                path.display()
            );
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(StateLock { _file: file })
    }

    /// Whether a live gtmd holds the lock of this state directory.
    pub fn is_held(state_dir: &Path) -> bool {
        let path = state_dir.join(LOCK_FILE);
        let Ok(file) = File::open(&path) else {
            return false;
        };
        // A shared probe, released when `file` drops.
        file.try_lock_shared().is_err()
    }
}

/// An exclusive lock that says "a gtmd serves this workspace", taken besides
/// the state directory's: two gtmd with different `--state-dir` on one
/// workspace would each act on every file. It is a file at the workspace
/// root rather than a lock on the directory itself, because flock on NFS
/// (emulated with byte-range locks) needs a file open for writing; the file
/// also tells others which gtmd holds it: its pid, then its state directory,
/// one a line. It is never removed: unlinking a lock file races with a gtmd
/// that has just opened it.
pub struct WorkspaceLock {
    _file: File,
}

/// The gtmd holding a workspace's lock, as far as its lock file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub state_dir: Option<PathBuf>,
}

impl WorkspaceLock {
    /// Take the lock for a gtmd keeping its state in `state_dir`, or say
    /// which gtmd holds it.
    pub fn acquire(workspace: &Path, state_dir: &Path) -> Result<WorkspaceLock> {
        let path = workspace.join(WORKSPACE_LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot open the workspace lock {}; gtmd needs to write in the workspace",
                    path.display()
                )
            })?;
        if let Err(e) = file.try_lock() {
            if let TryLockError::Error(e) = e {
                return Err(e).with_context(|| {
                    format!(
                        "cannot lock {}; the workspace must be on a file system with file locks (flock)",
                        path.display()
                    )
                });
            }
            let holder = read_holder(&path);
            anyhow::bail!(
                "another gtmd (pid {}) already serves this workspace {} with the state directory {} (lock {}); one workspace has one gtmd, whatever its --state-dir: stop it first, or use `gtmd team run` / `gtmd agent run` to talk to it",
                holder.pid.map_or("unknown".into(), |p| p.to_string()),
                workspace.display(),
                holder
                    .state_dir
                    .map_or("unknown".into(), |d| d.display().to_string()),
                path.display()
            );
        }
        file.set_len(0)?;
        write!(file, "{}\n{}\n", std::process::id(), state_dir.display())?;
        Ok(WorkspaceLock { _file: file })
    }

    /// The gtmd holding the lock of this workspace, if a live one does.
    pub fn holder(workspace: &Path) -> Option<Holder> {
        let path = workspace.join(WORKSPACE_LOCK_FILE);
        let file = File::open(&path).ok()?;
        // A shared probe, released when `file` drops.
        file.try_lock_shared().is_err().then(|| read_holder(&path))
    }
}

fn read_holder(path: &Path) -> Holder {
    let text = fs::read_to_string(path).unwrap_or_default();
    let (pid, dir) = text.split_once('\n').unwrap_or((&text, ""));
    let dir = dir.strip_suffix('\n').unwrap_or(dir);
    Holder {
        pid: pid.trim().parse().ok(),
        state_dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
    }
}

/// The state directory of the gtmd serving `workspace`, if one does: ours
/// when its lock is held, else the one named by the gtmd holding the
/// workspace's lock. Clients read that gtmd's journal to follow it.
pub fn serving(workspace: &Path, state_dir: &Path) -> Option<PathBuf> {
    if StateLock::is_held(state_dir) {
        return Some(state_dir.to_path_buf());
    }
    let holder = WorkspaceLock::holder(workspace)?;
    // Unknown only in the instant between its lock and its write.
    Some(holder.state_dir.unwrap_or_else(|| state_dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, Event, FileContent};
    use crate::playbook::Playbook;

    fn ev(i: u64) -> Event {
        Event::FileChanged {
            path: format!("conflicts/{i}.md"),
            hash: format!("h{i}"),
            size: 1,
            mtime_ns: 0,
            at: i,
            content: FileContent::Conflict {
                conflict: Default::default(),
            },
        }
    }

    #[test]
    fn a_workspace_has_one_gtmd_whatever_its_state_directory() {
        let ws = tempfile::tempdir().unwrap();
        let (a, b) = (ws.path().join(".gtmd"), Path::new("/elsewhere/state"));
        assert_eq!(WorkspaceLock::holder(ws.path()), None);
        assert_eq!(serving(ws.path(), b), None);
        let lock = WorkspaceLock::acquire(ws.path(), &a).unwrap();
        let held = WorkspaceLock::holder(ws.path()).unwrap();
        assert_eq!(held.pid, Some(std::process::id()));
        assert_eq!(held.state_dir.as_deref(), Some(a.as_path()));
        // flock locks belong to the open file: a second open in this very
        // process is refused as another gtmd's would be.
        let err = format!("{:#}", WorkspaceLock::acquire(ws.path(), b).err().unwrap());
        assert!(
            err.contains(&format!("another gtmd (pid {})", std::process::id()))
                && err.contains(&a.display().to_string()),
            "{err}"
        );
        // A client with another state directory finds the one in use.
        assert_eq!(serving(ws.path(), b), Some(a.clone()));
        drop(lock);
        assert_eq!(WorkspaceLock::holder(ws.path()), None);
        WorkspaceLock::acquire(ws.path(), b).unwrap();
    }

    #[test]
    fn a_torn_last_entry_is_cut_and_the_rest_replays() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, rec) = Journal::open(dir.path()).unwrap();
        assert!(rec.events.is_empty());
        j.append(&[ev(1), ev(2)]).unwrap();
        drop(j);
        // A crash in the middle of writing the third entry.
        let path = dir.path().join(JOURNAL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"file-changed\",\"path\":\"confl")
            .unwrap();
        drop(f);
        let (mut j, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!(rec.events, vec![ev(1), ev(2)]);
        j.append(&[ev(3)]).unwrap();
        drop(j);
        assert_eq!(read_events(dir.path()).unwrap(), vec![ev(1), ev(2), ev(3)]);
    }

    #[test]
    fn a_full_disk_is_a_clear_error_and_leaves_no_half_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.append(&[ev(1)]).unwrap();
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let good = std::mem::replace(&mut j.file, Arc::new(full));
        let err = j.append(&[ev(2)]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("disk full"), "{msg}");
        assert!(msg.contains(JOURNAL_FILE), "{msg}");
        j.file = good;
        // What is on disk is still the good prefix, and appending goes on.
        j.append(&[ev(3)]).unwrap();
        drop(j);
        assert_eq!(read_events(dir.path()).unwrap(), vec![ev(1), ev(3)]);
    }

    fn engine_of(rec: Recovered) -> Engine {
        let mut e = match rec.snapshot {
            Some(s) => Engine::restore(Playbook::default_playbook(), Default::default(), s),
            None => Engine::new(Playbook::default_playbook(), Default::default()),
        };
        for ev in &rec.events {
            e.handle(ev);
        }
        e
    }

    #[test]
    fn a_compacted_journal_restores_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        let mut e = Engine::new(Playbook::default_playbook(), Default::default());
        for i in 0..10 {
            j.append(&[ev(i)]).unwrap();
            e.handle(&ev(i));
        }
        j.compact(&e.snapshot()).unwrap();
        assert!(
            !dir.path().join(JOURNAL_FILE).exists(),
            "the old journal is gone"
        );
        for i in 10..15 {
            j.append(&[ev(i)]).unwrap();
            e.handle(&ev(i));
        }
        assert_eq!(j.entries(), 5);
        drop(j);
        let (_, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!(rec.events.len(), 5);
        let restored = engine_of(rec);
        assert_eq!(
            serde_json::to_string(&restored.snapshot()).unwrap(),
            serde_json::to_string(&e.snapshot()).unwrap()
        );
        // A replayed old event is still not a new version.
        let mut restored = restored;
        let before = restored.tasks().len();
        restored.handle(&ev(3));
        assert_eq!(restored.tasks().len(), before);
    }

    #[test]
    fn a_crash_between_snapshot_and_new_journal_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        let mut e = Engine::new(Playbook::default_playbook(), Default::default());
        for i in 0..4 {
            j.append(&[ev(i)]).unwrap();
            e.handle(&ev(i));
        }
        drop(j);
        // The snapshot of generation 1 landed; the old journal is still there.
        let snap = Snapshot {
            generation: 1,
            state: e.snapshot(),
        };
        fs::write(
            dir.path().join(SNAPSHOT_FILE),
            serde_json::to_vec(&snap).unwrap(),
        )
        .unwrap();
        let (_, rec) = Journal::open(dir.path()).unwrap();
        assert!(rec.events.is_empty());
        assert!(!dir.path().join(JOURNAL_FILE).exists());
        assert_eq!(engine_of(rec).tasks().len(), 4);
    }
}
