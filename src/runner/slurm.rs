//! Where a task runs, second answer: as a batch job of a Slurm cluster, on
//! whatever node the scheduler picks, the workspace on storage the nodes
//! share.
//!
//! A job is `sbatch` of a small wrapper script gtmd keeps in its state
//! directory, given the task's argv as its arguments (no shell reads them)
//! and the task's environment through `--export=ALL`. The wrapper runs the
//! argv and writes its exit status to `STATE/jobs/<job>.exit`, which the
//! watcher sees at once (the state directory lies in the workspace by
//! default); the scheduler's own view (`squeue`, then `sacct -c` from the
//! job-completion log) is asked, with a backoff, only about jobs that never
//! write it (a time limit, out of memory, a lost node, a cancel). gtmd is
//! not the jobs' parent: they outlive it, and a gtmd that starts again
//! follows them by name.

use super::runtime::StreamReader;
use super::{ProcessSpec, StartError, TaskExit, STRAY_MARK, SUPERVISOR_ENV};
use crate::engine::{ExitOutcome, RuntimeReport, TaskId};
use std::collections::HashMap;
use std::io::{BufRead, Seek};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// The wrapper every job runs: the task's argv, then its exit status where
/// gtmd looks for it (written whole: a temporary file, then a rename).
const WRAPPER: &str = r#"#!/bin/sh
# gtmd's wrapper for a task run as a Slurm job: run the task (its argv are
# this script's arguments, never read by a shell), then write its exit
# status where gtmd looks for it.
"$@"
code=$?
printf '%s\n' "$code" > "$GTMD_JOB_EXIT.tmp" && mv "$GTMD_JOB_EXIT.tmp" "$GTMD_JOB_EXIT"
exit "$code"
"#;

/// The scheduler is asked about a job at most this often at first, then
/// less and less often, up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_secs(2);
const POLL_MAX: Duration = Duration::from_secs(30);
/// How often a job's exit file is looked for without a word from the watcher.
const EXIT_LOOK: Duration = Duration::from_secs(1);

/// How a job is asked for (per agent: `partition`, `mem`, `account`; the
/// time limit from its timeout).
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    pub partition: Option<String>,
    pub mem: Option<String>,
    pub account: Option<String>,
    pub timeout: Duration,
}

/// What finding a job by its name after a restart found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Queued, running or finished: followed to its end.
    Following(String),
    /// No such job: it was never submitted (gtmd died in between).
    Missing,
}

pub struct SlurmBackend {
    workspace: PathBuf,
    state_dir: PathBuf,
    exits: mpsc::UnboundedSender<TaskExit>,
    /// Jobs followed, by task: their id, and how to wake their follower.
    jobs: HashMap<TaskId, (String, Arc<Notify>)>,
}

impl SlurmBackend {
    pub fn new(
        workspace: PathBuf,
        state_dir: PathBuf,
        exits: mpsc::UnboundedSender<TaskExit>,
    ) -> SlurmBackend {
        SlurmBackend {
            workspace,
            state_dir,
            exits,
            jobs: HashMap::new(),
        }
    }

    fn jobs_dir(&self) -> PathBuf {
        self.state_dir.join("jobs")
    }

    fn exit_file(&self, name: &str) -> PathBuf {
        self.jobs_dir().join(format!("{name}.exit"))
    }

    /// Where in the task's log this job's output starts, kept beside the job
    /// so a gtmd that starts again reads the report from the right place.
    fn offset_file(&self, name: &str) -> PathBuf {
        self.jobs_dir().join(format!("{name}.offset"))
    }

    fn log(&self, task: &str) -> PathBuf {
        self.state_dir.join("logs").join(format!("{task}.log"))
    }

    pub fn count(&self) -> usize {
        self.jobs.len()
    }

    pub fn knows(&self, task: &str) -> bool {
        self.jobs.contains_key(task)
    }

    /// Submit a task's start as the job `name`, and follow it.
    pub fn submit(
        &mut self,
        task: &TaskId,
        name: &str,
        process: &ProcessSpec,
        options: &JobOptions,
        reader: Option<Box<dyn StreamReader>>,
    ) -> Result<String, StartError> {
        let wrapper = self.wrapper()?;
        let log = self.log(task);
        let io = |source| StartError::Job {
            what: "prepare".into(),
            source,
        };
        std::fs::create_dir_all(log.parent().unwrap()).map_err(io)?;
        let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        crate::fsutil::write_replaceable(&self.offset_file(name), offset.to_string().as_bytes())
            .map_err(StartError::TaskFile)?;
        let _ = std::fs::remove_file(self.exit_file(name));
        // Slurm counts in whole minutes.
        let minutes = options.timeout.as_secs().div_ceil(60).max(1);
        let mut cmd = Command::new("sbatch");
        cmd.args(["--parsable", "--job-name", name, "--chdir"])
            .arg(&self.workspace)
            .arg("--output")
            .arg(&log)
            .args(["--open-mode=append", "--export=ALL"])
            .arg(format!("--time={minutes}"));
        for (flag, value) in [
            ("--partition", &options.partition),
            ("--mem", &options.mem),
            ("--account", &options.account),
        ] {
            if let Some(v) = value {
                cmd.arg(format!("{flag}={v}"));
            }
        }
        cmd.arg(&wrapper).args(&process.argv);
        // A job is not a stray of a gtmd that restarts: on a node that is
        // gtmd's own machine it must not carry the mark it kills by.
        for k in SUPERVISOR_ENV.iter().chain([&STRAY_MARK]) {
            cmd.env_remove(k);
        }
        // The task's environment reaches the job through sbatch's own
        // (--export=ALL): a value holding a comma would break --export=VAR=...
        cmd.envs(process.env.iter().map(|(k, v)| (k, v)))
            .env("GTMD_JOB_EXIT", self.exit_file(name));
        let out = cmd.output().map_err(|source| StartError::Job {
            what: "run sbatch (is Slurm's client installed and SLURM_CONF set?)".into(),
            source,
        })?;
        if !out.status.success() {
            return Err(StartError::Runtime(format!(
                "sbatch refused the job: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // `--parsable`: "ID" or "ID;cluster".
        let id = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        tracing::info!(task = %task, job = %id, name, "job submitted");
        self.follow(task, name, &id, options.timeout, reader);
        Ok(id)
    }

    /// After a restart: find the job `name` (by `id` when the journal has
    /// it) and follow it, or say it is missing.
    pub fn reattach(
        &mut self,
        task: &TaskId,
        name: &str,
        id: Option<&str>,
        timeout: Duration,
        reader: Option<Box<dyn StreamReader>>,
    ) -> Found {
        let id = match id {
            Some(id) => Some(id.to_string()),
            None => find_by_name(name),
        };
        match id {
            Some(id) => {
                tracing::info!(task = %task, job = %id, name, "following a job submitted before the restart");
                self.follow(task, name, &id, timeout, reader);
                Found::Following(id)
            }
            None if self.exit_file(name).exists() => {
                // Ended and gone from the scheduler's memory, its exit kept.
                self.follow(task, name, "", timeout, reader);
                Found::Following(String::new())
            }
            None => Found::Missing,
        }
    }

    fn follow(
        &mut self,
        task: &TaskId,
        name: &str,
        id: &str,
        timeout: Duration,
        reader: Option<Box<dyn StreamReader>>,
    ) {
        let wake = Arc::new(Notify::new());
        self.jobs
            .insert(task.clone(), (id.to_string(), wake.clone()));
        let job = Followed {
            task: task.clone(),
            id: id.to_string(),
            exit_file: self.exit_file(name),
            offset_file: self.offset_file(name),
            log: self.log(task),
            timeout,
        };
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let exit = job.until_done(&wake, reader).await;
            let _ = exits.send(exit);
        });
    }

    /// An exit file appeared: every follower looks (a stat each).
    pub fn wake(&self) {
        for (_, wake) in self.jobs.values() {
            wake.notify_one();
        }
    }

    /// Cancel a task's job; its end arrives as usual.
    pub fn stop(&mut self, task: &str) -> bool {
        let Some((id, _)) = self.jobs.get(task) else {
            return false;
        };
        if !id.is_empty() {
            match Command::new("scancel").arg(id).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    tracing::warn!(task, job = %id, "scancel: {}", String::from_utf8_lossy(&o.stderr).trim())
                }
                Err(e) => tracing::warn!(task, job = %id, "cannot run scancel: {e}"),
            }
        }
        true
    }

    /// The daemon saw the job's end.
    pub fn reaped(&mut self, task: &str) {
        self.jobs.remove(task);
    }

    /// The wrapper script, written once per state directory.
    fn wrapper(&self) -> Result<PathBuf, StartError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.state_dir.join("slurm-job.sh");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(WRAPPER) {
            crate::fsutil::write_atomic(&path, WRAPPER.as_bytes()).map_err(StartError::TaskFile)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(
                |source| StartError::Job {
                    what: "make the job wrapper executable".into(),
                    source,
                },
            )?;
        }
        Ok(path)
    }
}

/// One job followed to its end.
struct Followed {
    task: TaskId,
    id: String,
    exit_file: PathBuf,
    offset_file: PathBuf,
    log: PathBuf,
    timeout: Duration,
}

impl Followed {
    async fn until_done(&self, wake: &Notify, reader: Option<Box<dyn StreamReader>>) -> TaskExit {
        let mut poll = POLL_FIRST;
        let mut next_poll = tokio::time::Instant::now() + poll;
        let exit = loop {
            if let Some(code) = read_exit(&self.exit_file) {
                break ExitOutcome::Code { code };
            }
            if tokio::time::Instant::now() >= next_poll && !self.id.is_empty() {
                if let Some(state) = scheduler_state(&self.id).await {
                    if let Some(exit) = self.ended(&state).await {
                        break exit;
                    }
                }
                poll = (poll * 2).min(POLL_MAX);
                next_poll = tokio::time::Instant::now() + poll;
            }
            // A stat a second as well: the watcher may not see the exit
            // file (a state directory outside the workspace, a write on
            // another node of shared storage).
            let look = (tokio::time::Instant::now() + EXIT_LOOK).min(next_poll);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(look) => {}
            }
        };
        TaskExit {
            task: self.task.clone(),
            exit,
            report: reader.and_then(|r| self.report(r)),
        }
    }

    /// What a state the scheduler gives means, once the job has ended.
    async fn ended(&self, state: &str) -> Option<ExitOutcome> {
        let word = state.split_whitespace().next().unwrap_or(state);
        match word {
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
            | "RESIZING" | "SIGNALING" | "STAGE_OUT" => None,
            _ => {
                // The wrapper may have written its exit just now, or the
                // shared storage may show it a moment late.
                for _ in 0..10 {
                    if let Some(code) = read_exit(&self.exit_file) {
                        return Some(ExitOutcome::Code { code });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(match word {
                    "TIMEOUT" | "DEADLINE" => ExitOutcome::TimedOut {
                        after_secs: self.timeout.as_secs(),
                    },
                    "CANCELLED" => ExitOutcome::Cancelled,
                    _ => ExitOutcome::Ended {
                        state: word.to_string(),
                    },
                })
            }
        }
    }

    /// The report of the job's output, read from where it starts in the
    /// task's log, line by line.
    fn report(&self, mut reader: Box<dyn StreamReader>) -> Option<RuntimeReport> {
        let offset: u64 = std::fs::read_to_string(&self.offset_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut file = std::fs::File::open(&self.log).ok()?;
        file.seek(std::io::SeekFrom::Start(offset)).ok()?;
        let mut lines = std::io::BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => reader.line(line.strip_suffix(b"\n").unwrap_or(&line)),
            }
        }
        reader.finish()
    }
}

fn read_exit(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The job's state as the scheduler has it: `squeue` while it remembers the
/// job, else the accounting database (`sacct`, with slurmdbd), else the
/// job-completion log (`sacct -c`, without).
async fn scheduler_state(id: &str) -> Option<String> {
    let run = |program: &str, args: &[&str]| {
        let mut c = tokio::process::Command::new(program);
        c.args(args).kill_on_drop(true);
        c
    };
    if let Ok(out) = run("squeue", &["-h", "-t", "all", "-j", id, "-o", "%T"])
        .output()
        .await
    {
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !state.is_empty() {
            return Some(state);
        }
    }
    for completion_log in [false, true] {
        let mut args = vec!["-n", "-P", "-j", id, "-o", "JobID,State"];
        if completion_log {
            args.insert(0, "-c");
        }
        let Ok(out) = run("sacct", &args).output().await else {
            continue;
        };
        let found = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('|'))
            .find(|(job, _)| *job == id)
            .map(|(_, state)| state.trim().to_string());
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The id of the job named `name`, queued, running or ended: `squeue` while
/// the scheduler remembers it, else the accounting database, else the
/// job-completion log (which `sacct -c` cannot filter by name).
fn find_by_name(name: &str) -> Option<String> {
    let output = |program: &str, args: &[&str]| -> String {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    // "ID|NAME" lines: the latest job of that name.
    let named = |text: String| {
        text.lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(_, n)| *n == name)
            .map(|(id, _)| id.trim().to_string())
            .next_back()
    };
    let queued = output(
        "squeue",
        &["-h", "-t", "all", "--name", name, "-o", "%i|%j"],
    );
    named(queued)
        .or_else(|| {
            let args = [
                "-n",
                "-P",
                "-X",
                "-S",
                "now-30days",
                "--name",
                name,
                "-o",
                "JobID,JobName",
            ];
            named(output("sacct", &args))
        })
        .or_else(|| named(output("sacct", &["-c", "-n", "-P", "-o", "JobID,JobName"])))
}

/// Whether Slurm's client (`sbatch`) is on the PATH.
pub fn client_found() -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join("sbatch"))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The scheduler's state of each of the jobs `ids` it still remembers
/// (`squeue`), by id; nothing if it cannot be asked.
pub fn job_states(ids: &[&str]) -> std::collections::BTreeMap<String, String> {
    if ids.is_empty() {
        return Default::default();
    }
    let Ok(out) = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%i %T", "-j"])
        .arg(ids.join(","))
        .output()
    else {
        return Default::default();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, state)| (id.trim().to_string(), state.trim().to_string()))
        .collect()
}
