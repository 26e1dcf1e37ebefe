//! Giving tasks to agents: an inbox file for a person (or an agent with no
//! command), or a process for an agent that has one.
//!
//! Split by question: what to run for a task ([`runtime`]: the argv and
//! environment, built from the agent's command without a shell), where it
//! runs ([`local`]: a process group of ours, with its log and timeout), and
//! what the agent reads ([`prompt`]). This front decides which of the three
//! a task needs, writes the files a task's process may read in full
//! (`STATE/tasks/<id>.md` and `.context`), and with `--max-parallel N`
//! starts at most N processes at once: a task given beyond that waits in a
//! queue (the engine still counts it as running) and starts when another
//! process exits.

pub mod claude;
mod cluster;
pub mod codex;
mod files;
pub mod local;
pub mod prompt;
pub mod runtime;
pub mod slurm;

pub use local::{kill_strays, KILL_GRACE, STRAY_MARK, SUPERVISOR_ENV};
pub use prompt::render_prompt;
pub use runtime::{PlainCommand, ProcessSpec, Runtime, StreamReader, TaskContext, MAX_VALUE};

use crate::agents::{Agents, BackendName, RuntimeName};
use crate::diagnostic::chain;
use crate::engine::{ExitOutcome, RuntimeReport, TaskId, TaskSpec};
use crate::fsutil::{write_replaceable, WriteError};
use crate::playbook::Playbook;
use crate::prices::Prices;
use claude::ClaudeCode;
use codex::Codex;
use files::write_files;
use local::LocalBackend;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// Default cap of one task's log file (`--max-task-log`).
pub const DEFAULT_MAX_TASK_LOG: u64 = 10 * 1024 * 1024;

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
    /// The runtime cannot run here (its program is missing).
    #[error("{0}")]
    Runtime(String),
    #[error(
        "an argument of the agent command is {len} bytes once its placeholders are filled in, over Linux's limit of 128 KiB per argument; give the agent {{prompt_file}} instead of repeating {{task}} or {{trigger}}"
    )]
    ArgTooLong { len: usize },
    #[error(
        "the agent command's arguments and environment are {total} bytes once its placeholders are filled in, over gtmd's limit of {max}; give the agent {{prompt_file}} instead of repeating {{task}} or {{trigger}}",
        max = runtime::MAX_TOTAL
    )]
    ArgsTooLong { total: usize },
    #[error("cannot create the task log directory {}", dir.display())]
    LogDir { dir: PathBuf, source: io::Error },
    #[error("cannot create the output pipe")]
    Pipe(#[source] io::Error),
    #[error("cannot create the pipe that holds the process until its journal entry is durable")]
    Gate(#[source] io::Error),
    #[error("cannot start {program:?}")]
    Spawn { program: String, source: io::Error },
    /// A step of submitting a job to the cluster scheduler.
    #[error("cannot {what}")]
    Job { what: String, source: io::Error },
}

#[derive(Debug)]
pub struct TaskExit {
    pub task: TaskId,
    pub exit: ExitOutcome,
    /// What the task's runtime reported of it (cost, session, denials).
    pub report: Option<RuntimeReport>,
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

pub struct Runner {
    workspace: PathBuf,
    state_dir: PathBuf,
    agents: Agents,
    /// `--agent-command`, already split: overrides every agent's command.
    command_override: Option<Vec<String>>,
    /// `--runtime`: for agents that name neither a command nor a runtime.
    default_runtime: Option<RuntimeName>,
    /// What each agent may write, from the playbook.
    scopes: BTreeMap<String, Vec<String>>,
    /// What tokens cost, for runtimes that report no dollars.
    prices: Prices,
    default_timeout: Duration,
    exits: mpsc::UnboundedSender<TaskExit>,
    backend: LocalBackend,
    /// Tasks of agents whose backend is `slurm`.
    cluster: slurm::SlurmBackend,
    /// `--backend`: for agents that name none.
    default_backend: Option<BackendName>,
    limits: Limits,
    /// Tasks waiting for a slot under `--max-parallel`, in order.
    queue: VecDeque<Pending>,
    /// Stopping: nothing new starts.
    closed: bool,
    /// The journal's: a process is started behind a gate that opens once
    /// the entry that started it is durable; an inbox file is written only
    /// then.
    durability: Option<crate::journal::Durability>,
    /// Writes task files while their process starts (`None`: the thread
    /// could not start; they are written before the process is).
    writer: Option<files::Writer>,
}

/// A task's process, ready to start.
struct Prepared {
    process: ProcessSpec,
    reader: Option<Box<dyn StreamReader>>,
    timeout: Duration,
    /// The task's prompt and context files, still to be written.
    files: Vec<(PathBuf, Vec<u8>)>,
}

/// A command task waiting for a slot.
struct Pending {
    task: TaskId,
    process: ProcessSpec,
    timeout: Duration,
    reader: Option<Box<dyn StreamReader>>,
}

impl Runner {
    pub fn new(
        workspace: PathBuf,
        state_dir: PathBuf,
        agents: Agents,
        command_override: Option<Vec<String>>,
        default_timeout: Duration,
        exits: mpsc::UnboundedSender<TaskExit>,
        submitted: mpsc::UnboundedSender<slurm::Submitted>,
    ) -> Runner {
        Runner {
            backend: LocalBackend::new(workspace.clone(), state_dir.clone(), exits.clone()),
            cluster: slurm::SlurmBackend::new(
                workspace.clone(),
                state_dir.clone(),
                exits.clone(),
                submitted,
            ),
            default_backend: None,
            workspace,
            state_dir,
            agents,
            command_override,
            default_runtime: None,
            scopes: BTreeMap::new(),
            prices: Prices::default(),
            default_timeout,
            exits,
            limits: Limits::default(),
            queue: VecDeque::new(),
            closed: false,
            durability: None,
            writer: files::Writer::start(),
        }
    }

    /// A gate for a process about to start: it execs once the journal's
    /// entries so far are durable (`None`: they are, or there is no journal).
    fn gate(&self) -> Result<Option<crate::journal::Gate>, StartError> {
        match &self.durability {
            Some(d) => d.gate().map_err(StartError::Gate),
            None => Ok(None),
        }
    }

    pub fn set_agents(&mut self, agents: Agents) {
        self.agents = agents;
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The runtime of agents that name none (`--runtime`), what each agent
    /// may write, as the playbook says, and what tokens cost.
    pub fn set_runtimes(
        &mut self,
        default: Option<RuntimeName>,
        playbook: &Playbook,
        prices: &Prices,
    ) {
        self.default_runtime = default;
        self.prices = prices.clone();
        self.scopes = crate::agents::AGENTS
            .iter()
            .map(|a| (a.to_string(), playbook.write_scopes(a)))
            .collect();
    }

    /// The runtime of an agent's tasks; `None`: they go to its inbox.
    /// `--agent-command` first, then the agent's own `command` or
    /// `runtime`, then `--runtime`.
    fn runtime(&self, agent: &str) -> Option<Box<dyn Runtime>> {
        let def = self.agents.get(agent);
        let template = self
            .command_override
            .clone()
            .or_else(|| def.and_then(|a| a.command.clone()));
        if let Some(template) = template {
            return Some(Box::new(PlainCommand { template }));
        }
        match def.and_then(|a| a.runtime).or(self.default_runtime)? {
            RuntimeName::ClaudeCode => Some(Box::new(ClaudeCode {
                bin: claude::find_bin(def.and_then(|a| a.bin.as_deref())),
                scopes: self.scopes.get(agent).cloned().unwrap_or_default(),
            })),
            RuntimeName::Codex => Some(Box::new(Codex {
                bin: codex::find_bin(def.and_then(|a| a.bin.as_deref())),
                scopes: self.scopes.get(agent).cloned().unwrap_or_default(),
                others: self
                    .scopes
                    .iter()
                    .filter(|(a, _)| *a != agent)
                    .flat_map(|(_, s)| s.iter().cloned())
                    .collect(),
                price: def
                    .and_then(|a| a.model.as_deref())
                    .and_then(|m| self.prices.get(m)),
            })),
        }
    }

    /// Whether an agent's tasks run as a process (else they go to the inbox).
    pub fn has_command(&self, agent: &str) -> bool {
        self.runtime(agent).is_some()
    }

    /// Agent processes alive (not counting tasks waiting for a slot).
    pub fn running_count(&self) -> usize {
        self.backend.running()
    }

    /// Tasks waiting for a slot under `--max-parallel`.
    pub fn queued_count(&self) -> usize {
        self.queue.len()
    }

    fn slot_free(&self) -> bool {
        match self.limits.max_parallel {
            Some(max) => self.backend.running() < max,
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

    /// What a task's process is, its files written (`None`: the task went
    /// to its agent's inbox).
    fn prepare(&self, spec: &TaskSpec) -> Result<Option<Prepared>, StartError> {
        let agent = self.agents.get(&spec.agent);
        let prompt = render_prompt(spec, agent);
        tracing::trace!(target: "gtmd::stage", task = %spec.id, "rendered");
        let Some(runtime) = self.runtime(&spec.agent) else {
            // A person may read the inbox at once: only once it is durable.
            if let Some(d) = &self.durability {
                d.wait();
            }
            // The inbox file is the prompt: nothing under STATE/tasks/.
            self.write_inbox(spec, &prompt)?;
            return Ok(None);
        };
        let (files, contents) = self.task_file_contents(spec, &prompt);
        let context = TaskContext {
            spec,
            agent,
            workspace: &self.workspace,
            files: &files,
            prompt: &prompt,
        };
        Ok(Some(Prepared {
            process: runtime.process(&context)?,
            reader: runtime.reader(&context),
            timeout: self.timeout(&spec.agent),
            files: contents,
        }))
    }

    fn timeout(&self, agent: &str) -> Duration {
        self.agents
            .get(agent)
            .and_then(|a| a.timeout_secs)
            .map(Duration::from_secs)
            .unwrap_or(self.default_timeout)
    }

    /// How to read the output of a task's process started before (by a
    /// gtmd before this one): its runtime's reader, its files untouched.
    fn reader_for(&self, spec: &TaskSpec) -> Option<Box<dyn StreamReader>> {
        let runtime = self.runtime(&spec.agent)?;
        let files = self.task_files(&spec.id);
        let agent = self.agents.get(&spec.agent);
        runtime.reader(&TaskContext {
            spec,
            agent,
            workspace: &self.workspace,
            files: &files,
            prompt: &render_prompt(spec, agent),
        })
    }

    /// Give a task to its agent. Errors are reported as a failed start.
    pub fn start(&mut self, spec: &TaskSpec) -> Result<(), StartError> {
        let Some(Prepared {
            process,
            reader,
            timeout,
            files,
        }) = self.prepare(spec)?
        else {
            return Ok(());
        };
        tracing::trace!(target: "gtmd::stage", task = %spec.id, "prepared");
        if self.closed {
            return Err(StartError::Stopping);
        }
        if !self.slot_free() {
            write_files(files)?;
            tracing::info!(
                task = %spec.id,
                "task waits for a free slot: {} agent process(es) running (--max-parallel {})",
                self.backend.running(),
                self.limits.max_parallel.unwrap_or(0)
            );
            self.queue.push_back(Pending {
                task: spec.id.clone(),
                process,
                timeout,
                reader,
            });
            return Ok(());
        }
        // The files are written on the writer's thread while the process is
        // started; it execs once they are there and its entry is durable.
        let mut gates: Vec<crate::journal::Gate> = self.gate()?.into_iter().collect();
        let (written, failure) = match self.writer.as_ref() {
            Some(w) => w.submit(files)?,
            None => {
                write_files(files)?;
                (None, None)
            }
        };
        gates.extend(written);
        let started = self
            .backend
            .spawn(&spec.id, &process, timeout, &self.limits, reader, gates);
        match (started, failure.map(|mut f| f.try_recv())) {
            (Err(_), Some(Ok(e))) => Err(StartError::TaskFile(e)),
            (started, _) => started,
        }
    }

    /// Start waiting tasks while there are free slots. A task that cannot
    /// start is reported as an exit, like any other.
    fn start_queued(&mut self) {
        while !self.closed && self.slot_free() {
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            let started = self.gate().and_then(|gate| {
                let gates = gate.into_iter().collect();
                self.backend.spawn(
                    &p.task,
                    &p.process,
                    p.timeout,
                    &self.limits,
                    p.reader,
                    gates,
                )
            });
            if let Err(e) = started {
                let error = chain(&e);
                tracing::warn!(task = %p.task, "task could not start: {error}");
                let _ = self.exits.send(TaskExit {
                    task: p.task.clone(),
                    exit: ExitOutcome::SpawnFailed { error },
                    report: None,
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

    /// A task's files under `STATE/tasks/`, and what they are to hold.
    fn task_file_contents(
        &self,
        spec: &TaskSpec,
        prompt: &str,
    ) -> (TaskFiles, Vec<(PathBuf, Vec<u8>)>) {
        let files = self.task_files(&spec.id);
        let mut context = spec.context.join("\n");
        if !context.is_empty() {
            context.push('\n');
        }
        let contents = vec![
            (files.prompt.clone(), prompt.as_bytes().to_vec()),
            (files.context.clone(), context.into_bytes()),
        ];
        (files, contents)
    }

    pub fn set_durability(&mut self, durability: crate::journal::Durability) {
        self.durability = Some(durability);
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
        if self.backend.knows(task)
            || self.cluster.knows(task)
            || self.queue.iter().any(|p| p.task == task)
        {
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

    /// The daemon saw the exit; forget the child, and start a waiting task
    /// in its slot.
    pub fn reaped(&mut self, task: &str) {
        self.backend.reaped(task);
        self.cluster.reaped(task);
        self.start_queued();
    }

    /// Stop one task's process group (cancel); its exit arrives as usual. A
    /// task still waiting for a slot is dropped and reported as cancelled.
    pub fn stop(&mut self, task: &str) {
        if self.backend.stop(task) || self.cluster.stop(task) {
            return;
        }
        if let Some(i) = self.queue.iter().position(|p| p.task == task) {
            self.queue.remove(i);
            let _ = self.exits.send(TaskExit {
                task: task.to_string(),
                exit: ExitOutcome::Cancelled,
                report: None,
            });
        }
    }

    /// Stop every running process (shutdown).
    pub fn stop_all(&mut self) {
        self.backend.stop_all();
    }

    /// Last resort at exit: KILL every group still known.
    pub fn kill_all(&mut self) {
        self.backend.kill_all();
    }
}
