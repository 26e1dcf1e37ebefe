//! What can happen: the events the daemon observes and journals, and the
//! requests and file contents they carry. The journal stores these, so they
//! are serde types whose names are part of the journal's format.

use crate::diagnostic::Diagnostic;
use crate::gate_checks::CheckResult;
use crate::playbook::Playbook;
use crate::protocol::escalation::{Conflict, Decision};
use crate::protocol::{BusinessConfig, Checkbox, StatusReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{AgentPolicy, RuntimeReport};

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
    /// A task's process ended (or could not start), with what its runtime
    /// reported of it.
    TaskExited {
        task: TaskId,
        exit: ExitOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report: Option<Box<RuntimeReport>>,
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
    /// A task's start is about to be submitted to the cluster scheduler as
    /// the job `name`: journaled before the submission, so that a gtmd that
    /// dies in between finds the job by its name instead of submitting a
    /// second one.
    JobSubmitting {
        task: TaskId,
        name: String,
        at: Millis,
    },
    /// The scheduler took the job `name` as `id`.
    JobSubmitted {
        task: TaskId,
        name: String,
        id: String,
        at: Millis,
    },
    /// gtmd stops (SIGTERM, a foreground run that ended): no task starts
    /// again until the next start.
    Stopping {
        at: Millis,
    },
    /// What a task's runtime reported when its process ended while gtmd
    /// stopped, the task not yet ended: its cost counts, its session can be
    /// resumed, but the task is left as it is for the next start to settle.
    TaskReported {
        task: TaskId,
        report: Box<RuntimeReport>,
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
            | Event::Stopping { at }
            | Event::JobSubmitting { at, .. }
            | Event::JobSubmitted { at, .. }
            | Event::TaskReported { at, .. }
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
    /// Spending cap of the run in dollars (`--max-cost`), from what the
    /// runtimes report: once reached, no task of the run starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// `--hard`: at the cap, running tasks are stopped too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hard_cap: bool,
    /// Token cap of the run (`--max-tokens`), every token its runtimes
    /// report (in, cached, out): it works whatever they cost or whether
    /// gtmd can price them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
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
    Code {
        code: i32,
    },
    Signal {
        signal: i32,
    },
    TimedOut {
        after_secs: u64,
    },
    SpawnFailed {
        error: String,
    },
    Cancelled,
    /// The cluster scheduler ended the job with this state (OUT_OF_MEMORY,
    /// NODE_FAIL, ...) before the task could say how it ended.
    Ended {
        state: String,
    },
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
            ExitOutcome::Ended { state } => format!("its job ended {state}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CancelTarget {
    Task { task: TaskId },
    Run { run: RunId },
}

/// One file version as the engine last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub hash: String,
    pub size: u64,
    pub mtime_ns: u64,
}
