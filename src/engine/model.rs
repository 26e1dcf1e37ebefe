//! The engine's vocabulary: what can happen (events), what gtmd should do about
//! it (actions), and the state those are about (runs, steps, gates, tasks).
//!
//! Events and actions are serde types because the journal stores events and
//! replays them into a fresh engine on start: the engine's state is a pure
//! function of the journal.

use crate::diagnostic::Diagnostic;
use crate::gate_checks::CheckResult;
use crate::playbook::Playbook;
use crate::protocol::escalation::{Conflict, Decision};
use crate::protocol::{BusinessConfig, Checkbox, StatusReport, TaskStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds since the Unix epoch, as read by the daemon (never by the engine).
pub type Millis = u64;
pub type TaskId = String;
pub type RunId = String;

/// Something that happened, as observed by the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A file on the bus has a version gtmd has not acted on yet.
    FileChanged {
        path: String,
        hash: String,
        size: u64,
        /// Modification time in nanoseconds, kept so a restart can tell what
        /// changed while gtmd was down without hashing every file.
        mtime_ns: u64,
        at: Millis,
        content: FileContent,
    },
    FileRemoved {
        path: String,
        at: Millis,
    },
    /// A known version with a new modification time: no reaction, only the
    /// index learns the mtime, so a restart does not read the file again.
    FileTouched {
        path: String,
        mtime_ns: u64,
        at: Millis,
    },
    RunRequested {
        request: RunRequest,
        at: Millis,
    },
    /// A task's process ended (or could not start).
    TaskExited {
        task: TaskId,
        exit: ExitOutcome,
        at: Millis,
    },
    /// The backoff before a retry has passed.
    RetryDue {
        task: TaskId,
        at: Millis,
    },
    /// The automatic checks of a gate, run by the daemon on the files as they are.
    GateEvaluated {
        run: RunId,
        phase: u8,
        checks: Vec<CheckResult>,
        at: Millis,
    },
    /// The configuration the engine decides with from here on: each agent's
    /// policy and the playbook. Journaled at every start and reload, so a
    /// replay decides with what the live daemon had, whatever the files on
    /// disk say by the time of the replay.
    Configured {
        agents: BTreeMap<String, AgentPolicy>,
        /// The playbook, when it is not the one in force already; its
        /// digest either way.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playbook: Option<Box<Playbook>>,
        playbook_digest: String,
        at: Millis,
    },
    /// A gtmd started: every agent process of the one before is gone (they
    /// die with it, or are killed at start). Journaled before the catch-up
    /// scan; no task starts until [`Event::CaughtUp`].
    Restarted {
        at: Millis,
    },
    /// The start-up scan has been handled: tasks that were running when gtmd
    /// stopped run again (command agents) or stay with their person (inbox).
    CaughtUp {
        at: Millis,
    },
    /// A digest of the engine's state after every entry before this one, as
    /// the live daemon had it: a replay that computes another has parted
    /// from what the daemon did.
    Checkpoint {
        digest: String,
        /// [`crate::engine::DIGEST_SCHEME`] of the gtmd that wrote it: a
        /// digest is compared only by a gtmd of the same scheme.
        scheme: String,
        at: Millis,
    },
    /// `gtmd cancel`, a run over its budget, a foreground run that ended.
    CancelRequested {
        target: CancelTarget,
        /// Why, for the run record and the log (`None`: a plain cancel).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        at: Millis,
    },
}

impl Event {
    pub fn at(&self) -> Millis {
        match self {
            Event::FileChanged { at, .. }
            | Event::FileRemoved { at, .. }
            | Event::FileTouched { at, .. }
            | Event::RunRequested { at, .. }
            | Event::TaskExited { at, .. }
            | Event::RetryDue { at, .. }
            | Event::GateEvaluated { at, .. }
            | Event::Configured { at, .. }
            | Event::Restarted { at }
            | Event::CaughtUp { at }
            | Event::Checkpoint { at, .. }
            | Event::CancelRequested { at, .. } => *at,
        }
    }
}

/// What a file version says, parsed by the daemon with [`crate::protocol`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FileContent {
    Status {
        report: StatusReport,
    },
    Conflict {
        conflict: Conflict,
    },
    Decision {
        decision: Decision,
    },
    Gate {
        boxes: Vec<Checkbox>,
    },
    Request {
        request: RunRequest,
    },
    /// `gtmd cancel`, dropped into `requests/` for the daemon.
    Cancel {
        request: CancelRequest,
    },
    /// A protocol file that cannot be used; nothing else stops.
    Rejected {
        diagnostic: Diagnostic,
    },
    /// Any other file: only its presence and size matter to the engine.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Chosen by the requester so it can follow the run it asked for.
    pub id: String,
    pub kind: RunKind,
    #[serde(default)]
    pub config: BusinessConfig,
    #[serde(default)]
    pub config_path: String,
    #[serde(default)]
    pub scenario: Option<String>,
    #[serde(default)]
    pub force: bool,
    /// Wall-clock budget of the run (`--run-budget`): past it, the run is
    /// cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_secs: Option<u64>,
}

/// `gtmd cancel TASK_ID` / `gtmd cancel --run RUN_ID` as a request file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Chosen by the requester, like a run request's.
    pub id: String,
    pub cancel: CancelTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunKind {
    /// `gtmd team run`: these phases, in order.
    Phases { phases: Vec<u8> },
    /// `gtmd agent run`: one task for one agent, no phases, no gates.
    Agent { agent: String, task: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExitOutcome {
    Code { code: i32 },
    Signal { signal: i32 },
    TimedOut { after_secs: u64 },
    SpawnFailed { error: String },
    Cancelled,
}

impl ExitOutcome {
    pub fn success(&self) -> bool {
        matches!(self, ExitOutcome::Code { code: 0 })
    }

    pub fn describe(&self) -> String {
        match self {
            ExitOutcome::Code { code } => format!("exited with status {code}"),
            ExitOutcome::Signal { signal } => format!("killed by signal {signal}"),
            ExitOutcome::TimedOut { after_secs } => {
                format!("stopped after its timeout of {after_secs}s")
            }
            ExitOutcome::SpawnFailed { error } => format!("could not be started: {error}"),
            ExitOutcome::Cancelled => "cancelled".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CancelTarget {
    Task { task: TaskId },
    Run { run: RunId },
}

/// What the daemon must do. Everything with an effect outside the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Give the task to its agent: the inbox, or its command.
    StartTask {
        task: TaskSpec,
    },
    /// Stop a running task's process (cancel).
    StopTask {
        task: TaskId,
    },
    /// Remove the inbox file of a task that ended.
    CloseInbox {
        agent: String,
        task: TaskId,
    },
    /// The task has ended and no process of it is alive: what gtmd wrote
    /// for it under the state directory (prompt, context list) can go.
    DropTaskFiles {
        task: TaskId,
    },
    /// Call back with [`Event::RetryDue`] after the delay.
    ScheduleRetry {
        task: TaskId,
        delay_ms: u64,
    },
    /// Run the gate's automatic checks and call back with [`Event::GateEvaluated`].
    EvaluateGate {
        run: RunId,
        phase: u8,
    },
    /// Write a file the daemon owns (gate files). Workspace-relative path.
    WriteFile {
        path: String,
        contents: String,
    },
    /// The run's record needs rewriting.
    RecordChanged {
        run: RunId,
    },
    /// A file was refused; say so in the log.
    Refused {
        diagnostic: Diagnostic,
    },
    /// Something a person should know (logged at info or warn).
    Notice {
        level: NoticeLevel,
        message: String,
    },
    RunRefused {
        request: String,
        reason: String,
    },
    RunFinished {
        run: RunId,
        ok: bool,
        summary: String,
    },
    /// A task ended (once per task): for the log line that says how.
    TaskEnded {
        task: TaskId,
        agent: String,
        /// The outcome's label: `complete`, `failed (…)`, `cancelled`, …
        outcome: String,
        /// From its first start to its end; `None` if it never started.
        duration_ms: Option<u64>,
    },
    /// A task completed with a status: commit the files it listed, for
    /// `--git` (the daemon ignores it otherwise). Message:
    /// `[agent] action_word: message_task`; on `branch` when given.
    Commit {
        task: TaskId,
        agent: String,
        /// The convention's action word (the step's `action`).
        action_word: String,
        message_task: String,
        /// Workspace-relative: the status file, the outputs it listed, and
        /// the decision/conflict files an apply or review task was about.
        paths: Vec<String>,
        /// `gtm/phase-N-<name>` for a task of a phase.
        branch: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeLevel {
    Info,
    Warn,
}

/// Everything a runner needs to give a task to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub id: TaskId,
    pub agent: String,
    pub run: Option<RunId>,
    pub phase: Option<u8>,
    pub phase_name: Option<String>,
    pub step: Option<String>,
    /// The task text given to the agent.
    pub text: String,
    /// Why the task exists (a step of a phase, a file that changed, ...).
    pub trigger: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Step activities or details (e.g. the blockers being escalated).
    pub details: Vec<String>,
    /// Files given as context (learnings).
    pub context: Vec<String>,
    pub attempt: u32,
    /// Business context from the run's CONFIG.md.
    pub business_context: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TaskKind {
    Step,
    GateReview {
        phase: u8,
    },
    MissingOutputs {
        step: String,
        missing: Vec<String>,
    },
    Escalation {
        of: TaskId,
    },
    Route {
        path: String,
    },
    /// The coordinator reviews one version of a conflict.
    ConflictReview {
        conflict: String,
    },
    /// An affected agent applies the coordinator's decision.
    ApplyDecision {
        decision: String,
        conflict: String,
    },
    /// The coordinator is told what could not be read in a decision.
    DecisionProblem {
        decision: String,
    },
    /// The coordinator is told a chain of hand-offs was stopped.
    RouteLoop {
        path: String,
    },
    Adhoc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum TaskState {
    Queued,
    Running,
    /// Failed, waiting for its backoff before the next attempt.
    RetryWait,
    /// The agent said it is blocked; the coordinator has been told.
    Blocked,
    Done {
        outcome: Outcome,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Complete,
    /// Reported complete, but expected outputs were missing or empty.
    Incomplete {
        missing: Vec<String>,
    },
    Failed {
        reason: String,
    },
    Cancelled,
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Complete => "complete".into(),
            Outcome::Incomplete { missing } => {
                format!("incomplete (missing {})", missing.join(", "))
            }
            Outcome::Failed { reason } => format!("failed ({reason})"),
            Outcome::Cancelled => "cancelled".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub agent: String,
    pub run: Option<RunId>,
    pub phase: Option<u8>,
    pub step: Option<String>,
    pub kind: TaskKind,
    pub text: String,
    pub trigger: String,
    pub details: Vec<String>,
    pub state: TaskState,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Whether a process of this task may still be alive (command agents).
    pub process_alive: bool,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub last_status: Option<TaskStatus>,
    pub blockers: Vec<String>,
    /// For hand-off tasks: how many hand-offs led to this one (1 = first).
    #[serde(default)]
    pub depth: u32,
    /// Creation order (ids sort as text, which breaks at 10,000).
    #[serde(default)]
    pub seq: u64,
}

impl Task {
    pub fn is_open(&self) -> bool {
        !matches!(self.state, TaskState::Done { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum StepState {
    Waiting,
    Active {
        task: TaskId,
    },
    /// Reported complete with outputs missing; done as soon as they exist.
    AwaitingOutputs {
        missing: Vec<String>,
    },
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    pub phase: u8,
    pub state: StepState,
    pub started_at: Option<Millis>,
    pub done_at: Option<Millis>,
    pub estimate_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    pub phase: u8,
    pub path: String,
    pub opened_at: Millis,
    /// The checklist as last read from the gate file (text, ticked).
    pub boxes: Vec<(String, bool)>,
    /// Latest automatic check results; `None` until first evaluated.
    pub checks: Option<Vec<CheckResult>>,
    /// Whether the gate file has been written for this gate.
    pub written: bool,
    pub passed_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RunState {
    Running,
    Passed,
    Failed { reason: String },
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub request: RunRequest,
    /// The phases of a team run, in order; empty for an agent run.
    pub phases: Vec<u8>,
    /// Index into `phases` of the phase in progress.
    pub current: usize,
    pub state: RunState,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub steps: BTreeMap<String, StepRecord>,
    pub gates: BTreeMap<u8, GateState>,
    /// Files refused while the run was active (path → latest message).
    pub refused: BTreeMap<String, Diagnostic>,
    /// Human-readable history for the run record: the latest lines (see
    /// [`Run::note`]).
    pub log: Vec<(Millis, String)>,
    /// Lines dropped from the front of `log`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A run keeps at least this many of its latest history lines (and at most
/// twice as many): a run of thousands of conflict reviews would otherwise
/// grow by a few lines per event for as long as it lasts. The run record
/// shows fewer; every event behind them is in the journal.
pub const RUN_LOG_KEEP: usize = 1000;

impl Run {
    /// Add a line to the run's history.
    pub fn note(&mut self, at: Millis, line: String) {
        if self.log.len() >= 2 * RUN_LOG_KEEP {
            // Dropped in chunks, so a line costs O(1) amortised.
            let n = self.log.len() - RUN_LOG_KEEP;
            self.log.drain(..n);
            self.log_dropped += n as u64;
        }
        self.log.push((at, line));
    }

    pub fn is_active(&self) -> bool {
        self.state == RunState::Running
    }

    pub fn current_phase(&self) -> Option<u8> {
        if self.is_active() {
            self.phases.get(self.current).copied()
        } else {
            None
        }
    }
}

/// What the engine knows of each agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPolicy {
    pub retries: u32,
    /// Tasks run as a process (else they go to the inbox).
    pub has_command: bool,
}

/// A request that was refused before it became a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRequest {
    pub id: String,
    pub reason: String,
    pub at: Millis,
}

/// One file version as the engine last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub hash: String,
    pub size: u64,
    pub mtime_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictState {
    pub path: String,
    pub title: String,
    pub raised_by: Option<String>,
    pub agents: Vec<String>,
    pub severity: Option<String>,
    pub opened_at: Millis,
    /// Content versions seen (each got one coordinator review).
    pub versions: u32,
    /// Decisions that named this conflict, in order.
    pub decisions: Vec<String>,
    pub closed_at: Option<Millis>,
    /// The decision that closed it, or why it closed otherwise
    /// ([`WITHDRAWN`]).
    pub closed_by: Option<String>,
    /// Closed because its file is gone, not by a decision: it opens again
    /// when the file comes back.
    #[serde(default)]
    pub withdrawn: bool,
}

/// `closed_by` of a conflict whose file was removed or renamed away.
pub const WITHDRAWN: &str = "withdrawn: the file was removed";

impl ConflictState {
    /// A conflict first heard of at `at` (by its file, or by a decision naming it).
    pub fn new(path: &str, at: Millis) -> ConflictState {
        ConflictState {
            path: path.to_string(),
            title: String::new(),
            raised_by: None,
            agents: Vec::new(),
            severity: None,
            opened_at: at,
            versions: 0,
            decisions: Vec::new(),
            closed_at: None,
            closed_by: None,
            withdrawn: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionState {
    pub path: String,
    pub title: String,
    pub at: Millis,
    /// The conflict path it resolves, normalised, when it names one.
    pub resolves: Option<String>,
    pub affected: Vec<String>,
    /// What could not be read; the coordinator was told.
    pub problems: Vec<String>,
    /// The apply tasks of its latest version.
    pub tasks: Vec<TaskId>,
}
