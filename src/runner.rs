//! Giving tasks to agents: an inbox file for a person (or an agent with no
//! command), or a child process for a command.
//!
//! A command is an argv template run without a shell: text from files reaches
//! the process only as whole arguments and environment values. Each process
//! runs in its own process group with the workspace as working directory, its
//! output in a log file per task (copied through a pipe, up to a size cap),
//! and a parent-death signal so it cannot outlive gtmd. Each child is owned by
//! one tokio task that waits for it, enforces the timeout (TERM to the group,
//! a grace period, then KILL) and reports the exit back to the daemon.
//!
//! With `--max-parallel N` the runner starts at most N processes at once; a
//! task given beyond that waits in a queue (the engine still counts it as
//! running) and starts when another process exits.

use crate::agents::{AgentDef, Agents};
use crate::diagnostic::chain;
use crate::diagnostic::one_line;
use crate::engine::{ExitOutcome, TaskId, TaskSpec};
use crate::fsutil::{write_replaceable, WriteError};
use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Environment variable naming the state directory of the gtmd that started
/// a process; inherited by everything the agent starts.
pub const STRAY_MARK: &str = "GTMD_STATE_DIR";

/// How long a process gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);
/// Default cap of one task's log file (`--max-task-log`).
pub const DEFAULT_MAX_TASK_LOG: u64 = 10 * 1024 * 1024;
/// Longest value gtmd passes as one argument or environment variable (the
/// task text, the trigger, the context list, ...). Longer ones are cut with
/// a note naming the file that holds them whole: Linux refuses a single
/// string over 128 KiB, and argv plus environment over about 2 MiB (E2BIG).
pub const MAX_VALUE: usize = 16 * 1024;
/// Longest argument once its placeholders are filled in (MAX_ARG_STRLEN is
/// 128 KiB with its NUL).
const MAX_ARG: usize = 128 * 1024 - 1;
/// What gtmd puts in argv and the environment in all, leaving room under
/// ARG_MAX for the environment the agent inherits.
const MAX_TOTAL: usize = 1024 * 1024;

/// Environment variables meant for gtmd alone, never passed to agents (an
/// agent writing to the notify socket would speak for gtmd; its output is a
/// log file, not the journal).
pub const SUPERVISOR_ENV: [&str; 4] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
];

/// What the runner enforces on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// At most this many agent processes at once (`--max-parallel`).
    pub max_parallel: Option<usize>,
    /// A task's log stops growing at this size (`--max-task-log`).
    pub max_log_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_parallel: None,
            max_log_bytes: DEFAULT_MAX_TASK_LOG,
        }
    }
}

/// Why a task could not be given to its agent. The daemon journals it, with
/// its causes ([`chain`]), as the task's exit, so each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot write the inbox file {}", path.display())]
    Inbox { path: PathBuf, source: WriteError },
    /// The prompt or context file under `STATE/tasks/`.
    #[error(transparent)]
    TaskFile(WriteError),
    #[error("gtmd is stopping")]
    Stopping,
    #[error("the agent command is empty")]
    EmptyCommand,
    #[error(
        "an argument of the agent command is {len} bytes once its placeholders are filled in, over Linux's limit of 128 KiB per argument; give the agent {{prompt_file}} instead of repeating {{task}} or {{trigger}}"
    )]
    ArgTooLong { len: usize },
    #[error(
        "the agent command's arguments and environment are {total} bytes once its placeholders are filled in, over gtmd's limit of {max}; give the agent {{prompt_file}} instead of repeating {{task}} or {{trigger}}",
        max = MAX_TOTAL
    )]
    ArgsTooLong { total: usize },
    #[error("cannot create the task log directory {}", dir.display())]
    LogDir { dir: PathBuf, source: io::Error },
    #[error("cannot open the task log {}", path.display())]
    Log { path: PathBuf, source: io::Error },
    #[error("cannot create the output pipe")]
    Pipe(#[source] io::Error),
    #[error("cannot start the task log copier")]
    LogCopier(#[source] io::Error),
    #[error("cannot start {program:?}")]
    Spawn { program: String, source: io::Error },
}

#[derive(Debug)]
pub struct TaskExit {
    pub task: TaskId,
    pub exit: ExitOutcome,
}

pub struct Runner {
    workspace: PathBuf,
    state_dir: PathBuf,
    agents: Agents,
    /// `--agent-command`, already split: overrides every agent's command.
    command_override: Option<Vec<String>>,
    default_timeout: Duration,
    exits: mpsc::UnboundedSender<TaskExit>,
    running: HashMap<TaskId, RunningChild>,
    limits: Limits,
    /// Tasks waiting for a slot under `--max-parallel`, in order.
    queue: VecDeque<Pending>,
    /// Stopping: nothing new starts.
    closed: bool,
}

/// A command task waiting for a slot.
struct Pending {
    spec: TaskSpec,
    template: Vec<String>,
    files: TaskFiles,
    timeout: Duration,
}

/// What gtmd writes for a command task under `STATE/tasks/`: everything an
/// argument or environment value may only hold a part of.
#[derive(Debug, Clone)]
pub struct TaskFiles {
    /// The whole prompt: role, task text, details, inputs, outputs, context.
    pub prompt: PathBuf,
    /// Every context file (learnings), one workspace path a line.
    pub context: PathBuf,
}

struct RunningChild {
    pgid: i32,
    stop: Option<oneshot::Sender<()>>,
}

impl Runner {
    pub fn new(
        workspace: PathBuf,
        state_dir: PathBuf,
        agents: Agents,
        command_override: Option<Vec<String>>,
        default_timeout: Duration,
        exits: mpsc::UnboundedSender<TaskExit>,
    ) -> Runner {
        Runner {
            workspace,
            state_dir,
            agents,
            command_override,
            default_timeout,
            exits,
            running: HashMap::new(),
            limits: Limits::default(),
            queue: VecDeque::new(),
            closed: false,
        }
    }

    pub fn set_agents(&mut self, agents: Agents) {
        self.agents = agents;
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether an agent's tasks run as a process (else they go to the inbox).
    pub fn has_command(&self, agent: &str) -> bool {
        self.command_override.is_some()
            || self.agents.get(agent).is_some_and(|a| a.command.is_some())
    }

    /// Agent processes alive (not counting tasks waiting for a slot).
    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Tasks waiting for a slot under `--max-parallel`.
    pub fn queued_count(&self) -> usize {
        self.queue.len()
    }

    fn slot_free(&self) -> bool {
        match self.limits.max_parallel {
            Some(max) => self.running.len() < max,
            None => true,
        }
    }

    /// gtmd is stopping: start nothing more. Returns how many waiting tasks
    /// were dropped (they are still running for the engine, so they start
    /// again after a restart).
    pub fn close(&mut self) -> usize {
        self.closed = true;
        let n = self.queue.len();
        self.queue.clear();
        n
    }

    /// Give a task to its agent. Errors are reported as a failed start.
    pub fn start(&mut self, spec: &TaskSpec) -> Result<(), StartError> {
        let agent = self.agents.get(&spec.agent).cloned();
        let prompt = render_prompt(spec, agent.as_ref());
        let template = self
            .command_override
            .clone()
            .or_else(|| agent.as_ref().and_then(|a| a.command.clone()));
        match template {
            // The inbox file is the prompt: nothing under STATE/tasks/.
            None => self.write_inbox(spec, &prompt),
            Some(template) => {
                let files = self.write_task_files(spec, &prompt)?;
                let timeout = agent
                    .as_ref()
                    .and_then(|a| a.timeout_secs)
                    .map(Duration::from_secs)
                    .unwrap_or(self.default_timeout);
                if self.closed {
                    return Err(StartError::Stopping);
                }
                if !self.slot_free() {
                    tracing::info!(
                        task = %spec.id,
                        "task waits for a free slot: {} agent process(es) running (--max-parallel {})",
                        self.running.len(),
                        self.limits.max_parallel.unwrap_or(0)
                    );
                    self.queue.push_back(Pending {
                        spec: spec.clone(),
                        template,
                        files,
                        timeout,
                    });
                    return Ok(());
                }
                self.spawn(spec, &template, &files, timeout)
            }
        }
    }

    /// Start waiting tasks while there are free slots. A task that cannot
    /// start is reported as an exit, like any other.
    fn start_queued(&mut self) {
        while !self.closed && self.slot_free() {
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            if let Err(e) = self.spawn(&p.spec, &p.template, &p.files, p.timeout) {
                let error = chain(&e);
                tracing::warn!(task = %p.spec.id, "task could not start: {error}");
                let _ = self.exits.send(TaskExit {
                    task: p.spec.id.clone(),
                    exit: ExitOutcome::SpawnFailed { error },
                });
            }
        }
    }

    fn task_files(&self, task: &str) -> TaskFiles {
        let dir = self.state_dir.join("tasks");
        TaskFiles {
            prompt: dir.join(format!("{task}.md")),
            context: dir.join(format!("{task}.context")),
        }
    }

    fn write_task_files(&self, spec: &TaskSpec, prompt: &str) -> Result<TaskFiles, StartError> {
        let files = self.task_files(&spec.id);
        // Not fsynced: after a crash the task is started again and its files
        // rewritten from the journal; the fsync would delay every start.
        write_replaceable(&files.prompt, prompt.as_bytes()).map_err(StartError::TaskFile)?;
        let mut context = spec.context.join("\n");
        if !context.is_empty() {
            context.push('\n');
        }
        write_replaceable(&files.context, context.as_bytes()).map_err(StartError::TaskFile)?;
        Ok(files)
    }

    fn inbox_path(&self, agent: &str, task: &str) -> PathBuf {
        self.workspace
            .join("inbox")
            .join(agent)
            .join(format!("{task}.md"))
    }

    fn write_inbox(&self, spec: &TaskSpec, prompt: &str) -> Result<(), StartError> {
        let path = self.inbox_path(&spec.agent, &spec.id);
        write_replaceable(&path, prompt.as_bytes())
            .map_err(|source| StartError::Inbox { path, source })
    }

    /// The task ended: its inbox file goes away (the run record keeps the history).
    pub fn close_inbox(&self, agent: &str, task: &str) {
        let path = self.inbox_path(agent, task);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %path.display(), "cannot remove inbox file: {e}"),
        }
    }

    /// The task has ended and its process is gone: its prompt and context
    /// files go. Kept while the runner still knows a process (or a wait for
    /// a slot) of the task, which may yet read them.
    pub fn drop_task_files(&self, task: &str) {
        if self.running.contains_key(task) || self.queue.iter().any(|p| p.spec.id == task) {
            tracing::debug!(task, "task files kept: its process is still known");
            return;
        }
        let files = self.task_files(task);
        for path in [files.prompt, files.context] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %path.display(), "cannot remove a task file: {e}"),
            }
        }
    }

    fn spawn(
        &mut self,
        spec: &TaskSpec,
        template: &[String],
        files: &TaskFiles,
        timeout: Duration,
    ) -> Result<(), StartError> {
        let argv = expand_argv(template, &placeholders(spec, &self.workspace, files));
        let env = task_env(spec, &self.workspace, files);
        check_arg_sizes(&argv, &env)?;
        let (program, args) = argv.split_first().ok_or(StartError::EmptyCommand)?;
        let (log_path, output) = self.task_output(&spec.id)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&self.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::from(output.try_clone().map_err(StartError::Pipe)?))
            .stderr(Stdio::from(output))
            .process_group(0)
            .kill_on_drop(false);
        for k in SUPERVISOR_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Marks the process as ours, so a gtmd restarted after a SIGKILL can
        // find agents (and their children) the old one left behind.
        cmd.env(STRAY_MARK, self.state_dir.display().to_string());
        crate::os::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| StartError::Spawn {
            program: program.clone(),
            source,
        })?;
        // Our copies of the pipe's write end go, so the copier sees the end
        // of the output when the task's processes are gone.
        drop(cmd);
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        tracing::info!(task = %spec.id, pid = pgid, log = %log_path.display(), "agent process started");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        self.running.insert(
            spec.id.clone(),
            RunningChild {
                pgid,
                stop: Some(stop_tx),
            },
        );
        let exit = watch_child(child, pgid, timeout, stop_rx, spec.id.clone());
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let _ = exits.send(exit.await);
        });
        Ok(())
    }

    /// Where a task's output goes: its log file under `STATE/logs/` (the
    /// path is returned) and the write end of a pipe whose other end a
    /// thread copies into the log up to the cap, then drains. stdout and
    /// stderr share the pipe, so their order is kept.
    fn task_output(&self, task: &str) -> Result<(PathBuf, io::PipeWriter), StartError> {
        let log_dir = self.state_dir.join("logs");
        fs::create_dir_all(&log_dir).map_err(|source| StartError::LogDir {
            dir: log_dir.clone(),
            source,
        })?;
        let log_path = log_dir.join(format!("{task}.log"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| StartError::Log {
                path: log_path.clone(),
                source,
            })?;
        // Close-on-exec: the child gets the write end only as its stdout and
        // stderr, not any other process gtmd starts meanwhile.
        let (pipe_read, pipe_write) = io::pipe().map_err(StartError::Pipe)?;
        let cap = self.limits.max_log_bytes;
        let log_task = task.to_string();
        std::thread::Builder::new()
            .name("task-log".into())
            .spawn(move || {
                if let Err(e) = copy_capped(pipe_read, log, cap) {
                    tracing::warn!(task = %log_task, "cannot write the task log: {e}");
                }
            })
            .map_err(StartError::LogCopier)?;
        Ok((log_path, pipe_write))
    }

    /// The daemon saw the exit; forget the child, and start a waiting task
    /// in its slot.
    pub fn reaped(&mut self, task: &str) {
        self.running.remove(task);
        self.start_queued();
    }

    /// Stop one task's process group (cancel); its exit arrives as usual. A
    /// task still waiting for a slot is dropped and reported as cancelled.
    pub fn stop(&mut self, task: &str) {
        if let Some(child) = self.running.get_mut(task) {
            if let Some(tx) = child.stop.take() {
                let _ = tx.send(());
            }
        } else if let Some(i) = self.queue.iter().position(|p| p.spec.id == task) {
            self.queue.remove(i);
            let _ = self.exits.send(TaskExit {
                task: task.to_string(),
                exit: ExitOutcome::Cancelled,
            });
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

/// Copy a task's output into its log until the log holds `cap` bytes; say so
/// once in the log, and keep reading (discarding) so the task never blocks on
/// a full pipe. Returns at the end of the output.
pub fn copy_capped(mut from: impl Read, mut log: fs::File, cap: u64) -> std::io::Result<()> {
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
    mut child: tokio::process::Child,
    pgid: i32,
    timeout: Duration,
    mut stop: oneshot::Receiver<()>,
    task: TaskId,
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
    TaskExit { task, exit }
}

/// TERM the group, give it [`KILL_GRACE`], then KILL it.
async fn stop_group(pgid: i32, child: &mut tokio::process::Child) {
    crate::os::term_group(pgid);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        crate::os::kill_group(pgid);
        let _ = child.wait().await;
    }
}

/// The contract's placeholders and their values, each at most
/// [`MAX_VALUE`] bytes (the prompt file holds the task text whole).
pub fn placeholders(
    spec: &TaskSpec,
    workspace: &Path,
    files: &TaskFiles,
) -> Vec<(&'static str, String)> {
    let cut = |s: &str| bounded(s, files).into_owned();
    vec![
        ("agent", cut(&spec.agent)),
        ("task", cut(&spec.text)),
        ("task_id", cut(&spec.id)),
        (
            "phase",
            spec.phase.map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("step", cut(spec.step.as_deref().unwrap_or_default())),
        ("workspace", workspace.display().to_string()),
        ("prompt_file", files.prompt.display().to_string()),
        ("trigger", cut(&spec.trigger)),
    ]
}

/// A value from files for argv or the environment: at most [`MAX_VALUE`]
/// bytes, the cut saying where the whole text is.
fn bounded<'a>(s: &'a str, files: &TaskFiles) -> std::borrow::Cow<'a, str> {
    crate::bounds::truncate(
        s,
        MAX_VALUE,
        &format!(" … [truncated; full text in {}]", files.prompt.display()),
    )
}

/// A list, one item a line, in at most [`MAX_VALUE`] bytes: whole lines
/// only, then how many more there are and the file that lists them all.
fn bounded_lines(items: &[String], file: &Path) -> String {
    let whole = items.join("\n");
    if whole.len() <= MAX_VALUE {
        return whole;
    }
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let note = format!(
            "… [{} more; full list in {}]",
            items.len() - i,
            file.display()
        );
        if out.len() + item.len() + 1 + note.len() > MAX_VALUE {
            out.push_str(&note);
            return crate::bounds::truncate(&out, MAX_VALUE, "").into_owned();
        }
        out.push_str(item);
        out.push('\n');
    }
    whole
}

/// Refuse to start a process the kernel would refuse (E2BIG) with a message
/// that says why: a template repeating `{task}` many times, say.
fn check_arg_sizes(argv: &[String], env: &[(&str, String)]) -> Result<(), StartError> {
    if let Some(a) = argv.iter().find(|a| a.len() > MAX_ARG) {
        return Err(StartError::ArgTooLong { len: a.len() });
    }
    let total: usize = argv.iter().map(|a| a.len() + 1).sum::<usize>()
        + env
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>();
    if total > MAX_TOTAL {
        return Err(StartError::ArgsTooLong { total });
    }
    Ok(())
}

/// Substitute the placeholders inside each argument. One pass, so text that
/// a placeholder brings in is never expanded again.
pub fn expand_argv(template: &[String], values: &[(&str, String)]) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            'scan: while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let after = &rest[open + 1..];
                for (name, value) in values {
                    if let Some(tail) = after.strip_prefix(name).and_then(|t| t.strip_prefix('}')) {
                        out.push_str(value);
                        rest = tail;
                        continue 'scan;
                    }
                }
                out.push('{');
                rest = after;
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// The contract's environment for an agent process, each value at most
/// [`MAX_VALUE`] bytes; the files named by `GTMD_PROMPT_FILE` and
/// `GTMD_CONTEXT_FILE` hold what was cut.
pub fn task_env(
    spec: &TaskSpec,
    workspace: &Path,
    files: &TaskFiles,
) -> Vec<(&'static str, String)> {
    let cut = |s: &str| bounded(s, files).into_owned();
    vec![
        ("GTMD_AGENT", cut(&spec.agent)),
        ("GTMD_TASK", cut(&spec.text)),
        ("GTMD_TASK_ID", cut(&spec.id)),
        (
            "GTMD_PHASE",
            spec.phase.map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("GTMD_STEP", cut(spec.step.as_deref().unwrap_or_default())),
        ("GTMD_WORKSPACE", workspace.display().to_string()),
        ("GTMD_TRIGGER", cut(&spec.trigger)),
        ("GTMD_OUTPUTS", bounded_lines(&spec.outputs, &files.prompt)),
        ("GTMD_CONTEXT", bounded_lines(&spec.context, &files.context)),
        ("GTMD_PROMPT_FILE", files.prompt.display().to_string()),
        ("GTMD_CONTEXT_FILE", files.context.display().to_string()),
    ]
}

/// What an agent reads: its role, the task, where its inputs and outputs are,
/// and how to report back. The same text is the inbox file and the prompt file.
pub fn render_prompt(spec: &TaskSpec, agent: Option<&AgentDef>) -> String {
    let mut s = String::new();
    s.push_str(&format!("# Task {} for {}\n\n", spec.id, spec.agent));
    s.push_str(&format!("{}\n\n", spec.text));
    let phase = match (&spec.phase, &spec.phase_name) {
        (Some(n), Some(name)) => format!("{n} ({name})"),
        (Some(n), None) => n.to_string(),
        _ => "-".into(),
    };
    s.push_str(&format!("- task_id: `{}`\n", spec.id));
    s.push_str(&format!("- phase: {phase}\n"));
    if let Some(step) = &spec.step {
        s.push_str(&format!("- step: {step}\n"));
    }
    s.push_str(&format!("- trigger: {}\n", spec.trigger));
    if spec.attempt > 1 {
        s.push_str(&format!("- attempt: {}\n", spec.attempt));
    }
    if !spec.details.is_empty() {
        s.push_str("\n## Details\n\n");
        for d in &spec.details {
            s.push_str(&format!("- {d}\n"));
        }
    }
    let list = |s: &mut String, title: &str, items: &[String]| {
        if !items.is_empty() {
            s.push_str(&format!("\n## {title}\n\n"));
            for i in items {
                s.push_str(&format!("- `{i}`\n"));
            }
        }
    };
    list(&mut s, "Inputs (workspace paths)", &spec.inputs);
    list(
        &mut s,
        "Expected outputs (must exist and be non-empty; a path ending in / is a directory of files)",
        &spec.outputs,
    );
    list(&mut s, "Context (learnings so far)", &spec.context);
    if !spec.business_context.trim().is_empty() {
        s.push_str("\n## Business context (CONFIG.md)\n\n");
        s.push_str(spec.business_context.trim());
        s.push('\n');
    }
    s.push_str(&format!(
        "\n## When you are done\n\nWrite `status/{agent}.md`:\n\n```yaml\nagent: {agent}\nphase: {phase_num}\ntask_id: {id}\ntask: {text:?}\nstatus: complete   # or blocked / failed\noutputs:\n{outs}blockers: none\nnext: \n```\n",
        agent = spec.agent,
        phase_num = spec.phase.map(|p| p.to_string()).unwrap_or_else(|| "null".into()),
        id = spec.id,
        text = one_line(&spec.text),
        outs = if spec.outputs.is_empty() {
            "  []\n".to_string()
        } else {
            spec.outputs.iter().map(|o| format!("  - {o}\n")).collect::<String>()
        },
    ));
    if let Some(agent) = agent {
        if !agent.role.trim().is_empty() {
            s.push_str("\n---\n\n## Your role\n\n");
            s.push_str(agent.role.trim());
            s.push('\n');
        }
    }
    s
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
        copy_capped(&output[..], log, 100).unwrap();
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
        copy_capped(&b"more"[..], log, 100).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }

    fn spec(text: &str, context: Vec<String>) -> TaskSpec {
        TaskSpec {
            id: "t0001-conflict-review".into(),
            agent: "coordinator".into(),
            run: None,
            phase: None,
            phase_name: None,
            step: None,
            text: text.into(),
            trigger: "conflict: conflicts/x.md".into(),
            inputs: vec![],
            outputs: vec![],
            details: vec![],
            context,
            attempt: 1,
            business_context: String::new(),
        }
    }

    fn files() -> TaskFiles {
        TaskFiles {
            prompt: "/state/tasks/t0001-conflict-review.md".into(),
            context: "/state/tasks/t0001-conflict-review.context".into(),
        }
    }

    #[test]
    fn argv_and_environment_values_are_bounded_and_name_the_file_with_the_rest() {
        let context: Vec<String> = (0..10_000)
            .map(|i| format!("learnings/lesson-{i:05}.md"))
            .collect();
        let text = "é".repeat(1_000_000);
        let s = spec(&text, context.clone());
        let env = task_env(&s, Path::new("/ws"), &files());
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        let task = get("GTMD_TASK");
        assert!(task.len() <= MAX_VALUE, "{}", task.len());
        assert!(
            task.ends_with(" … [truncated; full text in /state/tasks/t0001-conflict-review.md]")
        );
        let listed = get("GTMD_CONTEXT");
        assert!(listed.len() <= MAX_VALUE, "{}", listed.len());
        let lines: Vec<&str> = listed.lines().collect();
        let (note, paths) = lines.split_last().unwrap();
        assert_eq!(paths, &context[..paths.len()], "whole lines, in order");
        assert_eq!(
            *note,
            format!(
                "… [{} more; full list in /state/tasks/t0001-conflict-review.context]",
                10_000 - paths.len()
            )
        );
        assert_eq!(
            get("GTMD_CONTEXT_FILE"),
            "/state/tasks/t0001-conflict-review.context"
        );
        let total: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        assert!(total < 12 * MAX_VALUE, "{total}");

        let argv = expand_argv(
            &["agent".into(), "{task}".into(), "--why={trigger}".into()],
            &placeholders(&s, Path::new("/ws"), &files()),
        );
        assert_eq!(argv[1], task);
        assert_eq!(argv[2], "--why=conflict: conflicts/x.md");
        check_arg_sizes(&argv, &env).unwrap();

        // Small values pass unchanged.
        let s = spec(
            "Review it",
            vec!["learnings/a.md".into(), "learnings/b.md".into()],
        );
        let env = task_env(&s, Path::new("/ws"), &files());
        assert!(env.contains(&("GTMD_TASK", "Review it".into())));
        assert!(env.contains(&("GTMD_CONTEXT", "learnings/a.md\nlearnings/b.md".into())));
    }

    #[test]
    fn a_template_that_would_overflow_argv_is_refused_saying_why() {
        let s = spec(&"x".repeat(100_000), vec![]);
        let values = placeholders(&s, Path::new("/ws"), &files());
        let argv = expand_argv(&["agent".into(), "{task}".repeat(9)], &values);
        let err = check_arg_sizes(&argv, &[]).unwrap_err().to_string();
        assert!(err.contains("{prompt_file}"), "{err}");
        let argv = expand_argv(&vec!["{task}".to_string(); 80], &values);
        let err = check_arg_sizes(&argv, &[]).unwrap_err().to_string();
        assert!(err.contains("arguments and environment"), "{err}");
    }

    #[test]
    fn output_under_the_cap_is_copied_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let log = fs::File::create(&path).unwrap();
        copy_capped(&b"hello\nworld\n"[..], log, DEFAULT_MAX_TASK_LOG).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "hello\nworld\n");
    }
}
