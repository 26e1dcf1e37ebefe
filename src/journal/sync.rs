//! Making written journal entries durable on a thread of its own.
//!
//! Why a thread: the `fdatasync` of a journal write and the start of the
//! task it leads to (prompt files, the process's start) used to run one after the other on
//! the event loop, and both are on the path from a file landing to its
//! agent running. With the sync here, the loop writes the entry, lets the
//! engine decide and starts the task's process while the disk syncs; the
//! process waits at a [`Gate`] and execs only once its entry is durable, so
//! a start costs the larger of the two, not the sum. Every other effect
//! waits for durability ([`Durability::wait`]), as before.
//!
//! What keeps "journaled durably before acting" true: a gate opens (one
//! byte written) only after the `fdatasync` covering every entry written
//! before it returned. A gtmd that dies first never writes that byte, and
//! its gated children die with it (parent-death signal, see
//! `os::spawn`). An `fdatasync` that fails ends gtmd at once: the
//! engine has seen entries that may not be on disk, and nothing was done for
//! them; the next start replays what the journal holds.

use std::fs::File;
use std::io::{self, PipeReader, PipeWriter, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The read end of a pipe a task's process reads one byte from before it
/// execs (the byte comes once its journal entry is durable; end of file
/// means never).
pub type Gate = PipeReader;

/// A handle on the journal's durability: wait for it, or get a [`Gate`].
#[derive(Clone)]
pub struct Durability(Arc<Shared>);

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The file the next sync is for (a compaction moves to a new one).
    file: Option<Arc<File>>,
    /// Writes so far, and how many of them are durable.
    written: u64,
    durable: u64,
    /// Gates to open once write N is durable.
    gates: Vec<(u64, PipeWriter)>,
    /// `GTMD_DEBUG_DIE_BEFORE_DURABLE`: the write that never becomes durable.
    doomed: Option<u64>,
    /// A sync is running (on the thread, or in a caller of `wait`).
    syncing: bool,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a state that is still
        // consistent (counters and a list), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The thread that syncs, owned by the journal.
pub(super) struct Syncer {
    durability: Durability,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    pub(super) fn start() -> io::Result<Syncer> {
        let durability = Durability(Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }));
        let shared = durability.0.clone();
        let thread = std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || run(&shared))?;
        Ok(Syncer {
            durability,
            thread: Some(thread),
        })
    }

    pub(super) fn durability(&self) -> Durability {
        self.durability.clone()
    }

    /// `file` was just written: sync it. `doomed`: the test hook's write.
    pub(super) fn written(&self, file: &Arc<File>, doomed: bool) {
        {
            let mut s = self.durability.0.lock();
            s.written += 1;
            s.file = Some(file.clone());
            if doomed {
                s.doomed = Some(s.written);
            }
        }
        // Woken while the lock is still held, the thread would find it
        // taken and sleep once more until it is released: a second wake-up
        // before the `fdatasync` that every start after this write waits for.
        self.durability.0.changed.notify_all();
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.durability.wait();
        self.durability.0.lock().closing = true;
        self.durability.0.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Durability {
    /// Return once every entry written so far is durable. With nothing to
    /// overlap it with, the caller syncs itself when the thread has not
    /// started to: handing over to a thread and back costs two wake-ups,
    /// which a loaded machine makes slow.
    pub fn wait(&self) {
        let mut s = self.0.lock();
        while s.durable < s.written {
            s = if s.syncing || s.doomed.is_some() {
                self.0.changed.wait(s).unwrap_or_else(|e| e.into_inner())
            } else {
                sync(&self.0, s)
            };
        }
    }

    /// A gate for a process started for what has been written so far:
    /// `None` when all of that is durable already.
    pub fn gate(&self) -> io::Result<Option<Gate>> {
        let mut s = self.0.lock();
        if s.durable >= s.written {
            return Ok(None);
        }
        let (reader, writer) = io::pipe()?;
        let at = s.written;
        s.gates.push((at, writer));
        self.0.changed.notify_all();
        Ok(Some(reader))
    }
}

fn run(shared: &Shared) {
    let mut s = shared.lock();
    loop {
        while (s.durable >= s.written || s.syncing) && !s.closing {
            s = shared.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.durable >= s.written {
            return;
        }
        if s.syncing {
            s = shared.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        if s.doomed.is_some_and(|d| d <= s.written) {
            die_before_durable(shared, s);
        }
        s = sync(shared, s);
    }
}

/// Sync everything written so far (not already being synced), lock
/// released meanwhile; then open the gates it covers.
fn sync<'a>(shared: &'a Shared, mut s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    let target = s.written;
    let Some(file) = s.file.clone() else {
        return s;
    };
    s.syncing = true;
    drop(s);
    tracing::trace!(target: "gtmd::stage", "syncing");
    let res = file.sync_data();
    tracing::trace!(target: "gtmd::stage", "durable");
    let mut s = shared.lock();
    s.syncing = false;
    if let Err(e) = res {
        tracing::error!(
            "cannot make the journal durable: {e}; gtmd stops rather than act on entries that may not be on disk (nothing was done for them; the next start replays what the journal holds)"
        );
        std::process::exit(1);
    }
    s.durable = s.durable.max(target);
    let durable = s.durable;
    let (open, held): (Vec<_>, Vec<_>) = s.gates.drain(..).partition(|(at, _)| *at <= durable);
    s.gates = held;
    for (_, mut gate) in open {
        // A process already gone (killed meanwhile) closed its end.
        let _ = gate.write_all(b"1");
    }
    shared.changed.notify_all();
    s
}

/// The test hook: die with the entry written and not durable, once the loop
/// holds a process at a gate for it (or after a bound, in case it never
/// does), and a moment later, time enough for that process to have exec'd
/// had it not been held.
fn die_before_durable(shared: &Shared, mut s: MutexGuard<'_, State>) -> ! {
    let deadline = Instant::now() + Duration::from_secs(2);
    while s.gates.is_empty() && Instant::now() < deadline {
        s = shared
            .changed
            .wait_timeout(s, Duration::from_millis(10))
            .map(|(s, _)| s)
            .unwrap_or_else(|e| e.into_inner().0);
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(100));
    tracing::error!("GTMD_DEBUG_DIE_BEFORE_DURABLE: dying before the entry is durable");
    std::process::exit(137);
}
