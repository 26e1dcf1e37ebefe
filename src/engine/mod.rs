//! The protocol engine: `(state, event) → (state, actions)`, with no I/O, no
//! clock and no async.
//!
//! This is where the guide's rules live: phases start when the previous gate
//! passes, steps start when their dependencies are done, a `complete` status
//! finishes a step only when its outputs exist, failures are retried then
//! escalated, gates pass when every box is ticked and every automatic check
//! passes. Keeping it pure makes every rule a fast unit test and makes crash
//! recovery "replay the journal into a fresh engine".

mod escalation;
mod files;
mod gate;
mod model;
mod runs;
mod state;
mod tasks;
#[cfg(test)]
mod tests;

pub use gate::{gate_path, render_gate};
pub use model::*;
pub use state::{EngineState, DIGEST_SCHEME};

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

    /// Whether the engine is between [`Event::Restarted`] and [`Event::CaughtUp`].
    pub fn catching_up(&self) -> bool {
        self.state.catching_up
    }

    /// A file is present when it exists and is non-empty; a directory output
    /// (`dir/`) when at least one non-empty file lies under it.
    pub fn output_present(&self, output: &str) -> bool {
        if output.ends_with('/') {
            self.state
                .files
                .range(output.to_string()..)
                .take_while(|(p, _)| p.starts_with(output))
                .any(|(_, f)| f.size > 0)
        } else {
            self.state.files.get(output).is_some_and(|f| f.size > 0)
        }
    }

    fn missing_outputs(&self, outputs: &[String]) -> Vec<String> {
        outputs
            .iter()
            .filter(|o| !self.output_present(o))
            .cloned()
            .collect()
    }

    /// A run is stalled when it is active and nothing can move it: no task
    /// queued, running, or waiting for a retry, anywhere.
    pub fn stalled(&self, run: &str) -> Option<String> {
        let r = self.state.runs.get(run)?;
        if !r.is_active() {
            return None;
        }
        let moving = self.open_tasks().any(|t| {
            matches!(
                t.state,
                TaskState::Queued | TaskState::Running | TaskState::RetryWait
            )
        });
        if moving {
            return None;
        }
        Some(self.explain_wait(r))
    }

    /// Why a run is not finished, in one paragraph.
    pub fn explain_wait(&self, r: &Run) -> String {
        let mut why = Vec::new();
        if let Some(phase) = r.current_phase() {
            for s in r.steps.values().filter(|s| s.phase == phase) {
                match &s.state {
                    StepState::Done => {}
                    StepState::AwaitingOutputs { missing } => {
                        why.push(format!("step {} is missing {}", s.id, missing.join(", ")))
                    }
                    StepState::Active { task } => {
                        let state = self
                            .state
                            .tasks
                            .get(task)
                            .map(|t| match &t.state {
                                TaskState::Done { outcome } => outcome.label(),
                                TaskState::Blocked => {
                                    format!("blocked: {}", t.blockers.join("; "))
                                }
                                other => format!("{other:?}").to_lowercase(),
                            })
                            .unwrap_or_default();
                        why.push(format!("step {} ({}) is {}", s.id, task, state));
                    }
                    StepState::Waiting => why.push(format!("step {} has not started", s.id)),
                }
            }
            if let Some(g) = r.gates.get(&phase) {
                if g.passed_at.is_none() {
                    let unticked: Vec<&str> = g
                        .boxes
                        .iter()
                        .filter(|(_, t)| !t)
                        .map(|(s, _)| s.as_str())
                        .collect();
                    if !unticked.is_empty() {
                        why.push(format!(
                            "gate {} has {} unticked box(es), first: \"{}\"",
                            g.path,
                            unticked.len(),
                            unticked[0]
                        ));
                    }
                    if let Some(checks) = &g.checks {
                        for c in checks.iter().filter(|c| !c.passed) {
                            why.push(format!("gate check failed: {}: {}", c.name, c.detail));
                        }
                    }
                }
            }
        }
        if why.is_empty() {
            "nothing is running and nothing is left to start".to_string()
        } else {
            why.join("; ")
        }
    }

    // ---- the one entry point ----

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
                // The same version again (a replayed or duplicated event) changes nothing.
                if self.state.files.get(path).is_some_and(|f| f.hash == *hash) {
                    self.dispatch(at, &mut out);
                    return out;
                }
                self.set_file(
                    path,
                    Some(FileEntry {
                        hash: hash.clone(),
                        size: *size,
                        mtime_ns: *mtime_ns,
                    }),
                );
                let reactive = !matches!(content, FileContent::Plain)
                    || self
                        .state
                        .playbook
                        .routes
                        .iter()
                        .any(|r| route_matches(&r.path, path));
                // A gate file is read whatever content it has had before: it
                // is gtmd's own file, and an old copy put back must be
                // answered (rewritten) rather than taken as done.
                let gate = matches!(content, FileContent::Gate { .. });
                if reactive && !gate && !self.mark_acted(path, hash) {
                    // Already acted on; only whether it is refused may change.
                    match content {
                        FileContent::Rejected { diagnostic } => {
                            self.state.rejected.insert(path.clone(), diagnostic.clone());
                        }
                        _ => {
                            self.state.rejected.remove(path);
                        }
                    }
                    self.on_output_changed(path, at, &mut out);
                    self.on_conflict_file_back(path, content, at, &mut out);
                    self.dispatch(at, &mut out);
                    return out;
                }
                self.on_file(path, content, at, &mut out);
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
            Event::TaskExited { task, exit, .. } => self.on_exit(task, exit, at, &mut out),
            Event::RetryDue { task, .. } => {
                self.mutate_task(task, |t| {
                    if t.state == TaskState::RetryWait {
                        t.state = TaskState::Queued;
                        t.attempt += 1;
                    }
                });
            }
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
            // Only a replay looks at it; nothing changes, nothing starts.
            Event::Checkpoint { .. } => return out,
        }
        self.dispatch(at, &mut out);
        out
    }
}

struct NewTask {
    agent: String,
    run: Option<RunId>,
    phase: Option<u8>,
    step: Option<String>,
    kind: TaskKind,
    text: String,
    trigger: String,
    details: Vec<String>,
}

/// Exponential backoff for retries: 1 s, 2 s, 4 s, ... capped at 60 s.
pub fn backoff_ms(attempt: u32) -> u64 {
    1000u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(60_000)
}

fn route_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

fn same_item(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
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
