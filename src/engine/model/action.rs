//! What gtmd should do about an event: the engine's only way to have an
//! effect, carried out by the daemon. Actions are not journaled: a replay
//! computes them again from the events.

use crate::diagnostic::Diagnostic;
use serde::{Deserialize, Serialize};

use super::{RunId, TaskId};

/// What the daemon must do. Everything with an effect outside the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Give the task to its agent: the inbox, or its command.
    StartTask {
        task: TaskSpec,
    },
    /// Submit a task's start as the batch job `name` (its name is in the
    /// journal already).
    SubmitJob {
        task: TaskSpec,
        name: String,
    },
    /// Follow the job a gtmd before this one submitted for a task: still
    /// queued or running, or finished. One never submitted (gtmd died in
    /// between) is submitted now if the task still waits for it
    /// (`submit_if_missing`).
    ReattachJob {
        task: TaskSpec,
        name: String,
        id: Option<String>,
        submit_if_missing: bool,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// What the task may still spend: its run's cap less what the run has
    /// spent (a runtime that can stop itself there is told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// The runtime session of the previous attempt, to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}
