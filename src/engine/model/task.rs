//! A task as the engine tracks it: what it is for (its kind), where it is
//! (its state), how it ended, and each agent's policy for running tasks.

use crate::protocol::TaskStatus;
use serde::{Deserialize, Serialize};

use super::{Cost, Denial, Millis, RunId, TaskId};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// What its attempts cost, as the runtime reported (`null`: nothing
    /// reported, as for a plain command or a person).
    #[serde(default)]
    pub cost: Option<Cost>,
    /// The runtime's session of the last attempt, resumed by the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Writes the runtime refused it (it does not own their files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denials: Vec<Denial>,
    /// Attempts ended by a passing API error (rate limit, overload): they
    /// do not count against the agent's retries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub api_retries: u32,
    /// The wait for a retry is for such an error: the next start is the
    /// same attempt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub api_wait: bool,
    /// The batch job of its latest start on a cluster scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    /// Jobs submitted for it so far: each submission has a name of its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub submissions: u32,
    /// A `complete` status waiting for the process's exit and its audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldStatus>,
}

/// A task's start as a batch job of a cluster scheduler. The name is
/// journaled before the job is submitted, the id once the scheduler gave
/// it: after a crash in between, the job is found by its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The name of a task's `n`th job, submitted at `at`:
/// `gtmd-<task>-<n>-<at in base 36>`. Task ids repeat across workspaces
/// sharing a cluster (and after a workspace is reset); the time keeps a job
/// found by its name after a crash from being another workspace's.
pub fn job_name(task: &str, n: u32, at: Millis) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut stamp = Vec::new();
    let mut v = at;
    loop {
        stamp.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    stamp.reverse();
    format!("gtmd-{task}-{n}-{}", String::from_utf8_lossy(&stamp))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Task {
    pub fn is_open(&self) -> bool {
        !matches!(self.state, TaskState::Done { .. })
    }
}

/// What the engine knows of each agent's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPolicy {
    pub retries: u32,
    /// Tasks run as a process (else they go to the inbox).
    pub has_command: bool,
    /// Its runtime checks, when the process exits, what the task wrote
    /// against what the agent owns (Codex): a `complete` status is held
    /// until then, so a task that wrote another agent's files fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audits_writes: bool,
    /// Why its tokens cannot be priced in dollars (a model missing from the
    /// price table): a run with `--max-cost` is refused with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<String>,
}

/// A `complete` status held until the task's process exits (see
/// [`AgentPolicy::audits_writes`]): the file and what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldStatus {
    pub path: String,
    pub report: crate::protocol::StatusReport,
}
