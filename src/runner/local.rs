//! Where a task's process runs: here, as a child of gtmd. Each process gets
//! its own process group (so a stop reaches everything it started), the
//! workspace as working directory, a log file fed through a pipe up to a
//! cap, and a parent-death signal so it cannot outlive gtmd. One tokio task
//! per child waits for it, enforces the timeout (TERM to the group, a grace
//! period, then KILL) and reports the exit. A cluster scheduler is another
//! backend beside this one.

use super::runtime::StreamReader;
use super::{Limits, ProcessSpec, StartError, TaskExit};
use crate::engine::RuntimeReport;
use crate::engine::{ExitOutcome, TaskId};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Environment variable naming the state directory of the gtmd that started
/// a process; inherited by everything the agent starts.
pub const STRAY_MARK: &str = "GTMD_STATE_DIR";
/// How long a process gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);
/// Environment variables meant for gtmd alone, never passed to agents (an
/// agent writing to the notify socket would speak for gtmd; its output is a
/// log file, not the journal).
pub const SUPERVISOR_ENV: [&str; 4] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
];

/// Task processes started here, each in its own process group.
pub struct LocalBackend {
    workspace: PathBuf,
    state_dir: PathBuf,
    exits: mpsc::UnboundedSender<TaskExit>,
    running: HashMap<TaskId, RunningChild>,
}

struct RunningChild {
    pgid: i32,
    stop: Option<oneshot::Sender<()>>,
}

impl LocalBackend {
    pub fn new(
        workspace: PathBuf,
        state_dir: PathBuf,
        exits: mpsc::UnboundedSender<TaskExit>,
    ) -> LocalBackend {
        LocalBackend {
            workspace,
            state_dir,
            exits,
            running: HashMap::new(),
        }
    }

    /// Processes alive (their exits not yet seen by the daemon).
    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub fn knows(&self, task: &str) -> bool {
        self.running.contains_key(task)
    }

    /// Start a task's process; its exit comes on the exit channel.
    pub fn spawn(
        &mut self,
        task: &TaskId,
        process: &ProcessSpec,
        timeout: Duration,
        limits: &Limits,
        reader: Option<Box<dyn StreamReader>>,
        gates: Vec<crate::journal::Gate>,
    ) -> Result<(), StartError> {
        let program = process.argv.first().ok_or(StartError::EmptyCommand)?;
        let log_dir = self.state_dir.join("logs");
        fs::create_dir_all(&log_dir).map_err(|source| StartError::LogDir {
            dir: log_dir.clone(),
            source,
        })?;
        let log_path = log_dir.join(format!("{task}.log"));
        // Close-on-exec: the child gets the write end only as its stdout and
        // stderr, not any other process gtmd starts meanwhile.
        let (pipe_read, output) = io::pipe().map_err(StartError::Pipe)?;
        tracing::trace!(target: "gtmd::stage", task = %task, "output ready");
        // The environment gtmd has, less what is gtmd's alone, plus the
        // task's, plus the mark that makes the process ours: a gtmd
        // restarted after a SIGKILL finds agents (and their children) the
        // old one left behind by it.
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| !SUPERVISOR_ENV.iter().any(|s| k == s))
            .collect();
        env.extend(process.env.iter().map(|(k, v)| (k.into(), v.into())));
        env.push((STRAY_MARK.into(), self.state_dir.clone().into_os_string()));
        let env = last_of_each(env);
        tracing::trace!(target: "gtmd::stage", task = %task, "forking");
        let child = crate::os::spawn::spawn(&crate::os::spawn::Launch {
            argv: &process.argv,
            env: &env,
            cwd: &self.workspace,
            output: &output.into(),
            gates: &gates,
        })
        .map_err(|source| StartError::Spawn {
            program: program.clone(),
            source,
        })?;
        tracing::trace!(target: "gtmd::stage", task = %task, "spawned");
        // Our copy of the pipe's write end went with the `Launch`, so the
        // copier sees the end of the output when the task's processes are
        // gone.
        drop(gates);
        // The log is created and its copier started only now, while the
        // agent loads: off the path to its start. Its output waits in the
        // pipe meanwhile.
        let report = copy_output(task, &log_path, pipe_read, limits.max_log_bytes, reader);
        let pgid = child.id() as i32;
        tracing::info!(task = %task, pid = pgid, log = %log_path.display(), "agent process started");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        self.running.insert(
            task.clone(),
            RunningChild {
                pgid,
                stop: Some(stop_tx),
            },
        );
        let exit = watch_child(child, pgid, timeout, stop_rx, task.clone(), report);
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let _ = exits.send(exit.await);
        });
        Ok(())
    }

    /// The daemon saw the exit: forget the child.
    pub fn reaped(&mut self, task: &str) {
        self.running.remove(task);
    }

    /// Stop one task's process group; its exit arrives as usual. Whether a
    /// process of the task was known.
    pub fn stop(&mut self, task: &str) -> bool {
        match self.running.get_mut(task) {
            Some(child) => {
                if let Some(tx) = child.stop.take() {
                    let _ = tx.send(());
                }
                true
            }
            None => false,
        }
    }

    /// Stop every running process (shutdown).
    pub fn stop_all(&mut self) {
        let ids: Vec<TaskId> = self.running.keys().cloned().collect();
        for id in ids {
            self.stop(&id);
        }
    }

    /// Last resort at exit: KILL every group still known.
    pub fn kill_all(&mut self) {
        for child in self.running.values() {
            crate::os::kill_group(child.pgid);
        }
    }
}

/// The environment with each variable once, at its last value (a task's
/// own overrides gtmd's), in first-seen order.
fn last_of_each(env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = Vec::with_capacity(env.len());
    let mut at: HashMap<OsString, usize> = HashMap::with_capacity(env.len());
    for (k, v) in env {
        match at.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                at.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

/// Where a task's output goes: a thread copies the pipe's read end into the
/// task's log (created here) up to the cap, then drains it, handing each
/// line to the runtime's `reader` on the way; what the reader makes of it
/// comes on the returned channel when the output ends. stdout and stderr
/// share the pipe, so their order is kept. A log that cannot be created
/// loses the output (said in gtmd's log), not the task.
fn copy_output(
    task: &str,
    log_path: &Path,
    pipe_read: io::PipeReader,
    cap: u64,
    reader: Option<Box<dyn StreamReader>>,
) -> oneshot::Receiver<Option<RuntimeReport>> {
    let (report_tx, report_rx) = oneshot::channel();
    let task = task.to_string();
    let log_path = log_path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("task-log".into())
        .spawn(move || {
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .or_else(|e| {
                    tracing::warn!(task = %task, log = %log_path.display(), "cannot open the task log ({e}); its output is discarded");
                    fs::OpenOptions::new().write(true).open("/dev/null")
                });
            let mut lines = reader.map(Lines::new);
            let copied = log.and_then(|log| {
                copy_capped(pipe_read, log, cap, |chunk| {
                    if let Some(l) = lines.as_mut() {
                        l.feed(chunk)
                    }
                })
            });
            if let Err(e) = copied {
                tracing::warn!(task = %task, "cannot write the task log: {e}");
            }
            let _ = report_tx.send(lines.and_then(Lines::finish));
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the task log copier ({e}); the task's output is lost");
    }
    report_rx
}

/// Copy a task's output into its log until the log holds `cap` bytes; say so
/// once in the log, and keep reading (discarding) so the task never blocks on
/// a full pipe. Returns at the end of the output.
pub fn copy_capped(
    mut from: impl Read,
    mut log: fs::File,
    cap: u64,
    mut tap: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut size = log.metadata()?.len();
    let mut capped = size >= cap;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        tap(&buf[..n]);
        if capped {
            continue;
        }
        let room = (cap - size).min(n as u64) as usize;
        log.write_all(&buf[..room])?;
        size += room as u64;
        if room < n {
            capped = true;
            writeln!(
                log,
                "\n[gtmd: this log reached its cap of {cap} bytes (--max-task-log); the rest of the task's output was discarded]"
            )?;
        }
    }
}

fn status_outcome(status: std::io::Result<std::process::ExitStatus>) -> ExitOutcome {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => ExitOutcome::Code { code },
            (None, Some(signal)) => ExitOutcome::Signal { signal },
            _ => ExitOutcome::Code { code: -1 },
        },
        Err(e) => ExitOutcome::SpawnFailed {
            error: e.to_string(),
        },
    }
}

/// Wait for a task's process until it exits, its timeout passes or it is
/// cancelled (then its group is stopped), and say how it ended. Whatever the
/// task left behind in its group goes with it.
async fn watch_child(
    mut child: crate::os::spawn::Child,
    pgid: i32,
    timeout: Duration,
    mut stop: oneshot::Receiver<()>,
    task: TaskId,
    report: oneshot::Receiver<Option<RuntimeReport>>,
) -> TaskExit {
    let exit = tokio::select! {
        status = child.wait() => status_outcome(status),
        _ = tokio::time::sleep(timeout) => {
            tracing::warn!(
                task = %task,
                "task over its timeout of {} s: stopping its process group (TERM, then KILL after {} s)",
                timeout.as_secs(),
                KILL_GRACE.as_secs()
            );
            stop_group(pgid, &mut child).await;
            ExitOutcome::TimedOut { after_secs: timeout.as_secs() }
        }
        _ = &mut stop => {
            stop_group(pgid, &mut child).await;
            ExitOutcome::Cancelled
        }
    };
    crate::os::kill_group(pgid);
    // The group is gone, so the output ends and the reader is done at once;
    // a process that escaped the group and holds the pipe is not waited for.
    let report = tokio::time::timeout(REPORT_WAIT, report)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    TaskExit { task, exit, report }
}

/// How long an exit waits for the reader of its output to finish.
const REPORT_WAIT: Duration = Duration::from_secs(2);

/// Cuts a byte stream into lines for a [`StreamReader`]. A line longer than
/// [`MAX_LINE`] is not kept (it is in the log): what a report needs is in
/// short lines.
struct Lines {
    reader: Box<dyn StreamReader>,
    partial: Vec<u8>,
    overlong: bool,
}

/// The longest output line handed to a reader.
const MAX_LINE: usize = 4 * 1024 * 1024;

impl Lines {
    fn new(reader: Box<dyn StreamReader>) -> Lines {
        Lines {
            reader,
            partial: Vec::new(),
            overlong: false,
        }
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(i) = chunk.iter().position(|b| *b == b'\n') {
            self.take(&chunk[..i]);
            if !self.overlong {
                self.reader.line(&self.partial);
            }
            self.partial.clear();
            self.overlong = false;
            chunk = &chunk[i + 1..];
        }
        self.take(chunk);
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.overlong = true;
            self.partial.clear();
        } else if !self.overlong {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn finish(mut self) -> Option<RuntimeReport> {
        if !self.partial.is_empty() && !self.overlong {
            self.reader.line(&self.partial);
        }
        self.reader.finish()
    }
}

/// TERM the group, give it [`KILL_GRACE`], then KILL it.
async fn stop_group(pgid: i32, child: &mut crate::os::spawn::Child) {
    crate::os::term_group(pgid);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        crate::os::kill_group(pgid);
        let _ = child.wait().await;
    }
}

/// Kill agent processes a previous gtmd of this state directory left behind
/// (it was killed with SIGKILL: its direct children died with it through the
/// parent-death signal, but their own children may not have). The state
/// lock guarantees no other live gtmd owns processes with this mark.
pub fn kill_strays(state_dir: &Path) -> usize {
    let strays = crate::os::processes_with_env(&format!("{STRAY_MARK}={}", state_dir.display()));
    for &pid in &strays {
        crate::os::kill(pid);
    }
    strays.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_log_stops_at_its_cap_and_says_so_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        fs::write(&path, b"earlier attempt\n").unwrap();
        let log = fs::OpenOptions::new().append(true).open(&path).unwrap();
        let output = vec![b'x'; 300_000];
        copy_capped(&output[..], log, 100, |_| {}).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let (kept, note) = text.split_at(100);
        assert!(kept.starts_with("earlier attempt\nxxx"), "{kept}");
        assert_eq!(
            note.matches("reached its cap of 100 bytes").count(),
            1,
            "{note}"
        );
        assert!(
            !note.contains("xx"),
            "output after the cap was written: {note}"
        );

        // A log already at its cap gets nothing more, not even a second note.
        let log = fs::OpenOptions::new().append(true).open(&path).unwrap();
        copy_capped(&b"more"[..], log, 100, |_| {}).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn output_under_the_cap_is_copied_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let log = fs::File::create(&path).unwrap();
        copy_capped(
            &b"hello\nworld\n"[..],
            log,
            super::super::DEFAULT_MAX_TASK_LOG,
            |_| {},
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "hello\nworld\n");
    }
}
