//! The durable journal: every event gtmd acts on, appended and fsynced before
//! the engine sees it.
//!
//! The engine is a pure function of its events, so the journal *is* the state:
//! on start the events are replayed into a fresh engine, which then knows every
//! file version already acted on, every run, gate and task. A torn last line
//! (a crash mid-write) is cut off on open; it was never acted on, because
//! acting happens only after the fsync returned.

use crate::engine::Event;
use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const JOURNAL_FILE: &str = "journal.jsonl";
pub const LOCK_FILE: &str = "gtmd.lock";

pub struct Journal {
    file: File,
    path: PathBuf,
    /// Length of the durable, well-formed prefix.
    len: u64,
    buf: Vec<u8>,
}

impl Journal {
    /// Open (or create) the journal in `state_dir` and return the events it holds.
    pub fn open(state_dir: &Path) -> Result<(Journal, Vec<Event>)> {
        fs::create_dir_all(state_dir).with_context(|| {
            format!(
                "cannot create the state directory {}; pass a writable one with --state-dir",
                state_dir.display()
            )
        })?;
        let path = state_dir.join(JOURNAL_FILE);
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
        Ok((
            Journal {
                file,
                path,
                len: good_len,
                buf: Vec::new(),
            },
            events,
        ))
    }

    /// Append events and make them durable (one fdatasync for the batch).
    pub fn append(&mut self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for e in events {
            serde_json::to_writer(&mut self.buf, e)?;
            self.buf.push(b'\n');
        }
        let res = self.file.write_all(&self.buf).and_then(|_| {
            // SAFETY: fdatasync on a valid, owned descriptor.
            let rc = unsafe { libc::fdatasync(self.file.as_raw_fd()) };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
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
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read the events of a journal without opening it for writing (status, explain).
pub fn read_events(state_dir: &Path) -> Result<Vec<Event>> {
    let path = state_dir.join(JOURNAL_FILE);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(read_from(&mut file, &path)?.0)
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
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
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
        // SAFETY: as above; a shared probe released when `file` drops.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        rc != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Event, FileContent};

    fn ev(i: u64) -> Event {
        Event::FileChanged {
            path: format!("conflicts/{i}.md"),
            hash: format!("h{i}"),
            size: 1,
            mtime_ns: 0,
            at: i,
            content: FileContent::Plain,
        }
    }

    #[test]
    fn a_torn_last_entry_is_cut_and_the_rest_replays() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, events) = Journal::open(dir.path()).unwrap();
        assert!(events.is_empty());
        j.append(&[ev(1), ev(2)]).unwrap();
        drop(j);
        // A crash in the middle of writing the third entry.
        let path = dir.path().join(JOURNAL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"file-changed\",\"path\":\"confl")
            .unwrap();
        drop(f);
        let (mut j, events) = Journal::open(dir.path()).unwrap();
        assert_eq!(events, vec![ev(1), ev(2)]);
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
        let good = std::mem::replace(&mut j.file, full);
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
}
