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
use std::sync::{Arc, Mutex};
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

/// A job's id, given by the scheduler after the loop moved on: the daemon
/// journals it (`JobSubmitted`).
#[derive(Debug)]
pub struct Submitted {
    pub task: TaskId,
    pub name: String,
    pub id: String,
}

/// What a cancel and a submission in flight share: under one lock, so a
/// cancel that comes while `sbatch` runs is never lost (whichever comes
/// second sends the `scancel`).
#[derive(Debug, Default)]
struct Ticket {
    id: Option<String>,
    cancelled: bool,
}

/// A job followed (or being submitted).
struct Handle {
    ticket: Arc<Mutex<Ticket>>,
    wake: Arc<Notify>,
}

/// A start to submit: what `sbatch` is given, prepared on the loop and
/// submitted off it.
pub struct Submission {
    pub process: ProcessSpec,
    pub options: JobOptions,
    pub reader: Option<Box<dyn StreamReader>>,
}

/// Everything a submission or a follower needs, owned: it runs as its own
/// tokio task, never on the daemon's loop.
#[derive(Clone)]
struct JobPlace {
    task: TaskId,
    name: String,
    workspace: PathBuf,
    wrapper: PathBuf,
    log: PathBuf,
    exit_file: PathBuf,
    offset_file: PathBuf,
}

pub struct SlurmBackend {
    workspace: PathBuf,
    state_dir: PathBuf,
    exits: mpsc::UnboundedSender<TaskExit>,
    submitted: mpsc::UnboundedSender<Submitted>,
    /// Jobs followed or being submitted, by task.
    jobs: HashMap<TaskId, Handle>,
}

impl SlurmBackend {
    pub fn new(
        workspace: PathBuf,
        state_dir: PathBuf,
        exits: mpsc::UnboundedSender<TaskExit>,
        submitted: mpsc::UnboundedSender<Submitted>,
    ) -> SlurmBackend {
        SlurmBackend {
            workspace,
            state_dir,
            exits,
            submitted,
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

    fn place(&self, task: &TaskId, name: &str) -> Result<JobPlace, StartError> {
        Ok(JobPlace {
            task: task.clone(),
            name: name.to_string(),
            workspace: self.workspace.clone(),
            wrapper: self.wrapper()?,
            log: self.log(task),
            exit_file: self.exit_file(name),
            offset_file: self.offset_file(name),
        })
    }

    pub fn count(&self) -> usize {
        self.jobs.len()
    }

    pub fn knows(&self, task: &str) -> bool {
        self.jobs.contains_key(task)
    }

    fn handle(&mut self, task: &TaskId) -> (Arc<Mutex<Ticket>>, Arc<Notify>) {
        let handle = Handle {
            ticket: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let shared = (handle.ticket.clone(), handle.wake.clone());
        self.jobs.insert(task.clone(), handle);
        shared
    }

    /// Submit a task's start as the job `name`, and follow it. `sbatch`
    /// runs off the loop (an unreachable controller makes it retry for
    /// minutes): its id comes back as a [`Submitted`], a refusal as the
    /// task's exit.
    pub fn submit(
        &mut self,
        task: &TaskId,
        name: &str,
        submission: Submission,
    ) -> Result<(), StartError> {
        let place = self.place(task, name)?;
        let (ticket, wake) = self.handle(task);
        let (exits, submitted) = (self.exits.clone(), self.submitted.clone());
        tokio::spawn(async move {
            let exit = place
                .submit_and_follow(submission, &ticket, &wake, &submitted)
                .await;
            let _ = exits.send(exit);
        });
        Ok(())
    }

    /// After a restart: find the job `name` (by `id` when the journal has
    /// it) and follow it; submit it when it never was and `resubmit` says
    /// how, else end the task as not started. The lookup asks the
    /// scheduler: off the loop, as a submission.
    pub fn reattach(
        &mut self,
        task: &TaskId,
        name: &str,
        id: Option<&str>,
        timeout: Duration,
        reader: Option<Box<dyn StreamReader>>,
        resubmit: Option<Submission>,
    ) -> Result<(), StartError> {
        let place = self.place(task, name)?;
        let (ticket, wake) = self.handle(task);
        let (exits, submitted) = (self.exits.clone(), self.submitted.clone());
        let journaled = id.map(str::to_string);
        tokio::spawn(async move {
            let found = match &journaled {
                Some(id) => Some(id.clone()),
                None => find_by_name(&place.name).await,
            };
            let exit = match (found, resubmit) {
                (Some(id), _) => {
                    tracing::info!(task = %place.task, job = %id, name = %place.name, "following a job submitted before the restart");
                    if journaled.is_none() {
                        // Found by its name: its id goes into the journal now.
                        place.submitted(&id, &ticket, &submitted).await;
                    } else {
                        place.known(&id, &ticket).await;
                    }
                    place.follow(&id, timeout, &wake, reader).await
                }
                // Ended and gone from the scheduler's memory, its exit kept.
                (None, _) if place.exit_file.exists() => {
                    place.follow("", timeout, &wake, reader).await
                }
                (None, Some(submission)) => {
                    place
                        .submit_and_follow(submission, &ticket, &wake, &submitted)
                        .await
                }
                (None, None) => place.refused(&StartError::Runtime(format!(
                    "its job {} is not known to the scheduler",
                    place.name
                ))),
            };
            let _ = exits.send(exit);
        });
        Ok(())
    }

    /// An exit file appeared: every follower looks (a stat each).
    pub fn wake(&self) {
        for handle in self.jobs.values() {
            handle.wake.notify_one();
        }
    }

    /// Cancel a task's job; its end arrives as usual. A job still being
    /// submitted is cancelled as soon as its id is known.
    pub fn stop(&mut self, task: &str) -> bool {
        let Some(handle) = self.jobs.get(task) else {
            return false;
        };
        let id = {
            let mut ticket = lock(&handle.ticket);
            ticket.cancelled = true;
            ticket.id.clone()
        };
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            tokio::spawn(scancel(task.to_string(), id));
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

impl JobPlace {
    /// `sbatch` the wrapper with the task's argv; the job's id.
    async fn submit(
        &self,
        process: &ProcessSpec,
        options: &JobOptions,
    ) -> Result<String, StartError> {
        let io = |source| StartError::Job {
            what: "prepare".into(),
            source,
        };
        std::fs::create_dir_all(self.log.parent().unwrap_or(Path::new("."))).map_err(io)?;
        let offset = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        crate::fsutil::write_replaceable(&self.offset_file, offset.to_string().as_bytes())
            .map_err(StartError::TaskFile)?;
        let _ = std::fs::remove_file(&self.exit_file);
        // Slurm counts in whole minutes.
        let minutes = options.timeout.as_secs().div_ceil(60).max(1);
        let mut cmd = tokio::process::Command::new("sbatch");
        cmd.args(["--parsable", "--job-name", &self.name, "--chdir"])
            .arg(&self.workspace)
            .arg("--output")
            .arg(&self.log)
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
        cmd.arg(&self.wrapper).args(&process.argv);
        // A job is not a stray of a gtmd that restarts: on a node that is
        // gtmd's own machine it must not carry the mark it kills by.
        for k in SUPERVISOR_ENV.iter().chain([&STRAY_MARK]) {
            cmd.env_remove(k);
        }
        // The task's environment reaches the job through sbatch's own
        // (--export=ALL): a value holding a comma would break --export=VAR=...
        cmd.envs(process.env.iter().map(|(k, v)| (k, v)))
            .env("GTMD_JOB_EXIT", &self.exit_file);
        // Not killed when gtmd stops mid-submission: the job may be taken
        // anyway, and a gtmd that starts again finds it by its name.
        let out = cmd.output().await.map_err(|source| StartError::Job {
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
        tracing::info!(task = %self.task, job = %id, name = %self.name, "job submitted");
        Ok(id)
    }

    /// Submit, hand the id over, and follow the job to its end; a refusal
    /// ends the task as a start that failed.
    async fn submit_and_follow(
        &self,
        submission: Submission,
        ticket: &Mutex<Ticket>,
        wake: &Notify,
        to: &mpsc::UnboundedSender<Submitted>,
    ) -> TaskExit {
        match self.submit(&submission.process, &submission.options).await {
            Ok(id) => {
                self.submitted(&id, ticket, to).await;
                let timeout = submission.options.timeout;
                self.follow(&id, timeout, wake, submission.reader).await
            }
            Err(e) => self.refused(&e),
        }
    }

    /// The id is known: hand it to the daemon to journal, and cancel the
    /// job now if the task was cancelled while it was being submitted.
    async fn submitted(
        &self,
        id: &str,
        ticket: &Mutex<Ticket>,
        to: &mpsc::UnboundedSender<Submitted>,
    ) {
        let _ = to.send(Submitted {
            task: self.task.clone(),
            name: self.name.clone(),
            id: id.to_string(),
        });
        self.known(id, ticket).await;
    }

    async fn known(&self, id: &str, ticket: &Mutex<Ticket>) {
        let cancelled = {
            let mut t = lock(ticket);
            t.id = Some(id.to_string());
            t.cancelled
        };
        if cancelled {
            scancel(self.task.clone(), id.to_string()).await;
        }
    }

    /// Not submitted: the task ends as a start that failed.
    fn refused(&self, e: &StartError) -> TaskExit {
        let error = crate::diagnostic::chain(e);
        tracing::warn!(task = %self.task, "task could not start: {error}");
        TaskExit {
            task: self.task.clone(),
            exit: ExitOutcome::SpawnFailed { error },
            report: None,
        }
    }

    /// Follow the job `id` to its end.
    async fn follow(
        &self,
        id: &str,
        timeout: Duration,
        wake: &Notify,
        reader: Option<Box<dyn StreamReader>>,
    ) -> TaskExit {
        let job = Followed {
            task: self.task.clone(),
            id: id.to_string(),
            exit_file: self.exit_file.clone(),
            offset_file: self.offset_file.clone(),
            log: self.log.clone(),
            timeout,
        };
        job.until_done(wake, reader).await
    }
}

fn lock(ticket: &Mutex<Ticket>) -> std::sync::MutexGuard<'_, Ticket> {
    ticket.lock().unwrap_or_else(|e| e.into_inner())
}

async fn scancel(task: TaskId, id: String) {
    let out = tokio::process::Command::new("scancel")
        .arg(&id)
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            tracing::warn!(task = %task, job = %id, "scancel: {}", String::from_utf8_lossy(&o.stderr).trim())
        }
        Err(e) => tracing::warn!(task = %task, job = %id, "cannot run scancel: {e}"),
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
    if let Some(out) = ask("squeue", &["-h", "-t", "all", "-j", id, "-o", "%T"]).await {
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
        let Some(out) = ask("sacct", &args).await else {
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

/// Run one of the scheduler's commands off the loop (killed if its
/// follower is dropped); nothing if it cannot be run.
async fn ask(program: &str, args: &[&str]) -> Option<std::process::Output> {
    tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .ok()
}

/// What a scheduler's command printed, empty if it could not be run.
async fn stdout_of(program: &str, args: &[&str]) -> String {
    ask(program, args)
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The id of the job named `name`, queued, running or ended: `squeue` while
/// the scheduler remembers it, else the accounting database, else the
/// job-completion log (which `sacct -c` cannot filter by name).
async fn find_by_name(name: &str) -> Option<String> {
    // "ID|NAME" lines: the latest job of that name.
    let named = |text: String| {
        text.lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(_, n)| *n == name)
            .map(|(id, _)| id.trim().to_string())
            .next_back()
    };
    let queued = ["-h", "-t", "all", "--name", name, "-o", "%i|%j"];
    if let Some(id) = named(stdout_of("squeue", &queued).await) {
        return Some(id);
    }
    let accounted = [
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
    if let Some(id) = named(stdout_of("sacct", &accounted).await) {
        return Some(id);
    }
    named(stdout_of("sacct", &["-c", "-n", "-P", "-o", "JobID,JobName"]).await)
}

/// Whether Slurm's client (`sbatch`) is on the PATH.
pub fn client_found() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    crate::os::spawn::find_on_path("sbatch".as_ref(), &path, Path::new("")).is_ok()
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
