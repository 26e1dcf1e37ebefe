//! The protocol engine: `(state, event) → (state, actions)`, with no I/O, no
//! clock and no async.
//!
//! This is where the guide's rules live. Keeping it pure makes every rule a
//! fast unit test and makes crash recovery "replay the journal into a fresh
//! engine". [`Engine::handle`] takes each event to its rule, one module per
//! idea:
//!
//! - `requests`: the execution modes and scenario validation a run request
//!   must pass; cancelling a task or a run.
//! - `phases`: a phase's steps start as their dependencies are done; a step
//!   is done when its task completes and its outputs exist.
//! - `gates`: a gate opens when its phase's steps are done and holds the
//!   next phase until every box is ticked and every automatic check passes
//!   (`gate_file` renders the file the coordinator ticks).
//! - `status`: a status file answers its task, by `task_id` or by agent.
//! - `completion`: complete, failed and retried with a backoff, escalated
//!   to the coordinator, cancelled.
//! - `dispatch`: one task at a time per agent, oldest first.
//! - `escalation`: a conflict gets a review per version, a decision gives
//!   each affected agent a task, and the conflict closes once they are done.
//! - `routes`: the communication table's hand-offs, and the chain limit.
//! - `files`: what a file version sets off; each version acted on once.
//! - `restart`: tasks a restart interrupted run again or stay in the inbox.
//! - `reload`: what a new playbook may not change under work in progress.
//! - `history`: the lines of a run's record.
//! - `state`: the durable state a snapshot holds, its indexes, its digest;
//!   `model`: the vocabulary (events, actions, tasks, runs, conflicts).

mod completion;
mod costs;
mod dispatch;
mod escalation;
mod files;
mod gate_file;
mod gates;
mod history;
mod jobs;
mod model;
mod phases;
mod reload;
mod requests;
mod restart;
mod routes;
mod state;
mod status;
#[cfg(test)]
mod tests;

pub use completion::{backoff_ms, MAX_API_RETRIES};
pub use gate_file::{gate_path, render_gate};
pub use model::*;
pub use state::{EngineState, DIGEST_SCHEME};

use dispatch::NewTask;
use state::Index;

use crate::diagnostic::Diagnostic;
use crate::playbook::Playbook;
use std::collections::{BTreeMap, BTreeSet};

/// Longest chain of route-triggered tasks (a route task whose output triggers
/// another route...) before gtmd stops following it.
pub const MAX_ROUTE_DEPTH: u32 = 4;

/// Texts the engine builds from what files say (task texts, run log lines)
/// name at most this many items of a list ("and N more" for the rest)...
pub const TEXT_MAX_ITEMS: usize = 20;
/// ...and clip each title, path or name from a file to this many chars. The
/// file keeps the whole; a task text stays small enough for argv.
pub const TEXT_MAX_CHARS: usize = 300;

/// A list from a file, for a task text or a log line.
fn some_of(items: &[String], sep: &str) -> String {
    crate::bounds::some_of(items, TEXT_MAX_ITEMS, TEXT_MAX_CHARS, sep)
}

/// A title, path or name from a file, for a task text or a log line.
fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    crate::bounds::clip(s, TEXT_MAX_CHARS)
}

#[derive(Debug, Clone)]
pub struct Engine {
    /// The durable state: what a snapshot holds and a restore starts from.
    state: EngineState,
    /// Derived from `state`, rebuilt by [`Engine::restore`] and kept in step
    /// with it.
    index: Index,
}

impl Engine {
    pub fn new(playbook: Playbook, agents: BTreeMap<String, AgentPolicy>) -> Engine {
        Engine::restore(playbook, agents, EngineState::default())
    }

    // ---- read access, for the daemon, status and the run record ----

    pub fn playbook(&self) -> &Playbook {
        &self.state.playbook
    }
    pub fn files(&self) -> &BTreeMap<String, FileEntry> {
        &self.state.files
    }
    pub fn runs(&self) -> &BTreeMap<RunId, Run> {
        &self.state.runs
    }
    pub fn run(&self, id: &str) -> Option<&Run> {
        self.state.runs.get(id)
    }
    pub fn tasks(&self) -> &BTreeMap<TaskId, Task> {
        &self.state.tasks
    }
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.state.tasks.get(id)
    }
    /// A mark to pass to [`Engine::tasks_since`]: the tasks created so far.
    pub fn task_mark(&self) -> u64 {
        self.state.next_task
    }
    /// The tasks created since `mark` ([`Engine::task_mark`]), oldest
    /// first: what one event led to, for `gtmd explain` and the web view,
    /// without a pass over every task.
    pub fn tasks_since(&self, mark: u64) -> impl Iterator<Item = &Task> {
        (mark..self.state.next_task).filter_map(|seq| {
            // Ids are `t{seq:04}-label` (see `new_task`): the first id from
            // that prefix on is this task's, if it is there.
            let prefix = format!("t{seq:04}-");
            self.state
                .tasks
                .range(prefix.clone()..)
                .next()
                .filter(|(id, t)| id.starts_with(&prefix) && t.seq == seq)
                .map(|(_, t)| t)
        })
    }
    pub fn rejected(&self) -> &BTreeMap<String, Diagnostic> {
        &self.state.rejected
    }
    /// Whether this version of a file has been acted on already.
    pub fn acted_on(&self, path: &str, hash: &str) -> bool {
        self.state.acted.get(path).is_some_and(|v| v.contains(hash))
    }
    pub fn conflicts(&self) -> &BTreeMap<String, ConflictState> {
        &self.state.conflicts
    }
    pub fn decisions(&self) -> &BTreeMap<String, DecisionState> {
        &self.state.decisions
    }
    pub fn refused_requests(&self) -> &[RefusedRequest] {
        &self.state.refused_requests
    }
    pub fn active_run(&self) -> Option<&Run> {
        self.state
            .runs
            .values()
            .find(|r| r.is_active() && !r.phases.is_empty())
    }
    /// Runs in progress (team runs and agent runs).
    fn active_run_ids(&self) -> Vec<RunId> {
        self.state
            .runs
            .values()
            .filter(|r| r.is_active())
            .map(|r| r.id.clone())
            .collect()
    }

    pub fn agents(&self) -> &BTreeMap<String, AgentPolicy> {
        &self.state.agents
    }
    pub fn playbook_digest(&self) -> &str {
        &self.index.playbook_digest
    }

    /// The event that gives the engine this configuration: the playbook goes
    /// into the journal only when it is not the one in force already.
    pub fn configure(
        &self,
        playbook: &Playbook,
        agents: BTreeMap<String, AgentPolicy>,
        at: Millis,
    ) -> Event {
        let digest = playbook.digest();
        Event::Configured {
            agents,
            playbook: (digest != self.index.playbook_digest).then(|| Box::new(playbook.clone())),
            playbook_digest: digest,
            at,
        }
    }

    /// Whether gtmd is stopping ([`Event::Stopping`]): no task starts.
    pub fn stopping(&self) -> bool {
        self.state.stopping
    }

    /// Whether the engine is between [`Event::Restarted`] and [`Event::CaughtUp`].
    pub fn catching_up(&self) -> bool {
        self.state.catching_up
    }

    /// Apply one event; return what the daemon must do about it.
    pub fn handle(&mut self, event: &Event) -> Vec<Action> {
        let mut out = Vec::new();
        let at = event.at();
        match event {
            Event::FileChanged {
                path,
                hash,
                size,
                mtime_ns,
                content,
                ..
            } => {
                let entry = FileEntry {
                    hash: hash.clone(),
                    size: *size,
                    mtime_ns: *mtime_ns,
                };
                self.on_file_changed(path, entry, content, at, &mut out);
            }
            Event::FileTouched { path, mtime_ns, .. } => {
                if let Some(f) = self.state.files.get(path) {
                    let touched = FileEntry {
                        mtime_ns: *mtime_ns,
                        ..f.clone()
                    };
                    self.set_file(path, Some(touched));
                }
            }
            Event::FileRemoved { path, .. } => {
                self.set_file(path, None);
                self.on_conflict_file_removed(path, at, &mut out);
            }
            Event::RunRequested { request, .. } => self.on_request(request, at, &mut out),
            Event::TaskExited {
                task, exit, report, ..
            } => self.on_exit(task, exit, report.as_deref(), at, &mut out),
            Event::RetryDue { task, .. } => self.on_retry_due(task),
            Event::GateEvaluated {
                run, phase, checks, ..
            } => self.on_gate_evaluated(run, *phase, checks, at, &mut out),
            Event::CancelRequested { target, reason, .. } => {
                self.on_cancel(target, reason.as_deref(), at, &mut out)
            }
            Event::Configured {
                agents,
                playbook,
                playbook_digest,
                ..
            } => {
                let playbook = playbook
                    .as_ref()
                    .map(|p| ((**p).clone(), playbook_digest.clone()));
                self.set_configuration(agents.clone(), playbook);
            }
            Event::Restarted { .. } => self.on_restarted(at, &mut out),
            Event::CaughtUp { .. } => self.on_caught_up(at, &mut out),
            Event::Stopping { .. } => self.state.stopping = true,
            Event::JobSubmitting { task, name, .. } => self.on_job_submitting(task, name, &mut out),
            Event::JobSubmitted { task, name, id, .. } => self.on_job_submitted(task, name, id),
            Event::TaskReported { task, report, .. } => {
                self.take_report(task, report, &mut out);
                if let Some(run) = self.state.tasks.get(task).and_then(|t| t.run.clone()) {
                    self.check_cap(&run, at, &mut out);
                }
            }
            // Only a replay looks at it; nothing changes, nothing starts.
            Event::Checkpoint { .. } => return out,
        }
        self.dispatch(at, &mut out);
        out
    }
}

pub fn join_nums(v: &[u8]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `YYYY-MM-DD` (UTC) of a timestamp, computed without a clock.
pub fn date_of(at: Millis) -> String {
    let days = (at / 86_400_000) as i64;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}
