//! The protocol engine: `(state, event) → (state, actions)`, with no I/O, no
//! clock and no async.
//!
//! This is where the guide's rules live: phases start when the previous gate
//! passes, steps start when their dependencies are done, a `complete` status
//! finishes a step only when its outputs exist, failures are retried then
//! escalated, gates pass when every box is ticked and every automatic check
//! passes. Keeping it pure makes every rule a fast unit test and makes crash
//! recovery "replay the journal into a fresh engine".

mod gate;
mod model;
#[cfg(test)]
mod tests;

pub use gate::{gate_path, render_gate};
pub use model::*;

use crate::agents::short_name;
use crate::diagnostic::Diagnostic;
use crate::playbook::{Playbook, RouteKind, Step};
use crate::protocol::escalation::{Conflict, Decision};
use crate::protocol::{StatusReport, TaskStatus};
use std::collections::{BTreeMap, BTreeSet};

/// Longest chain of route-triggered tasks (a route task whose output triggers
/// another route...) before gtmd stops following it.
pub const MAX_ROUTE_DEPTH: u32 = 4;

#[derive(Debug, Clone)]
pub struct Engine {
    playbook: Playbook,
    agents: BTreeMap<String, AgentPolicy>,
    files: BTreeMap<String, FileEntry>,
    runs: BTreeMap<RunId, Run>,
    tasks: BTreeMap<TaskId, Task>,
    refused_requests: Vec<RefusedRequest>,
    /// Files currently refused (path → why), cleared by a good version.
    rejected: BTreeMap<String, Diagnostic>,
    /// Every (path, content hash) a reaction was considered for: a version is
    /// acted on once, whatever order or how often its events arrive (an editor
    /// that renames the file away and writes it back unchanged, a replay, a
    /// duplicate event, a file reverted to an earlier content).
    acted: BTreeMap<String, BTreeSet<String>>,
    conflicts: BTreeMap<String, ConflictState>,
    decisions: BTreeMap<String, DecisionState>,
    /// Indexes derived from `tasks`, kept in step by [`Engine::mutate_task`] so
    /// that an event costs the same with ten tasks or ten thousand.
    /// Open tasks by creation order (ids sort as text, which breaks at 10,000).
    open: BTreeMap<u64, TaskId>,
    queues: BTreeMap<String, BTreeMap<u64, TaskId>>,
    busy: BTreeMap<String, usize>,
    next_task: u64,
    next_run: u64,
}

/// The engine's durable state, without the playbook and agents (which come
/// from the current configuration) and without derived indexes: what a
/// journal snapshot holds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct EngineState {
    files: BTreeMap<String, FileEntry>,
    runs: BTreeMap<RunId, Run>,
    tasks: BTreeMap<TaskId, Task>,
    refused_requests: Vec<RefusedRequest>,
    rejected: BTreeMap<String, Diagnostic>,
    acted: BTreeMap<String, BTreeSet<String>>,
    conflicts: BTreeMap<String, ConflictState>,
    decisions: BTreeMap<String, DecisionState>,
    next_task: u64,
    next_run: u64,
}

impl Engine {
    /// The durable state, for a journal snapshot.
    pub fn snapshot(&self) -> EngineState {
        EngineState {
            files: self.files.clone(),
            runs: self.runs.clone(),
            tasks: self.tasks.clone(),
            refused_requests: self.refused_requests.clone(),
            rejected: self.rejected.clone(),
            acted: self.acted.clone(),
            conflicts: self.conflicts.clone(),
            decisions: self.decisions.clone(),
            next_task: self.next_task,
            next_run: self.next_run,
        }
    }

    /// An engine at a snapshot's state, its indexes rebuilt.
    pub fn restore(
        playbook: Playbook,
        agents: BTreeMap<String, AgentPolicy>,
        state: EngineState,
    ) -> Engine {
        let mut e = Engine::new(playbook, agents);
        e.files = state.files;
        e.runs = state.runs;
        e.refused_requests = state.refused_requests;
        e.rejected = state.rejected;
        e.acted = state.acted;
        e.conflicts = state.conflicts;
        e.decisions = state.decisions;
        e.next_task = state.next_task.max(1);
        e.next_run = state.next_run.max(1);
        for (id, task) in state.tasks {
            let facts = Facts::of(&task);
            e.tasks.insert(id.clone(), task);
            e.reindex(&id, Facts::NONE, facts);
        }
        e
    }

    pub fn new(playbook: Playbook, agents: BTreeMap<String, AgentPolicy>) -> Engine {
        Engine {
            playbook,
            agents,
            files: BTreeMap::new(),
            runs: BTreeMap::new(),
            tasks: BTreeMap::new(),
            refused_requests: Vec::new(),
            rejected: BTreeMap::new(),
            acted: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            decisions: BTreeMap::new(),
            open: BTreeMap::new(),
            queues: BTreeMap::new(),
            busy: BTreeMap::new(),
            next_task: 1,
            next_run: 1,
        }
    }

    // ---- read access, for the daemon, status and the run record ----

    pub fn playbook(&self) -> &Playbook {
        &self.playbook
    }
    pub fn files(&self) -> &BTreeMap<String, FileEntry> {
        &self.files
    }
    pub fn runs(&self) -> &BTreeMap<RunId, Run> {
        &self.runs
    }
    pub fn run(&self, id: &str) -> Option<&Run> {
        self.runs.get(id)
    }
    pub fn tasks(&self) -> &BTreeMap<TaskId, Task> {
        &self.tasks
    }
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(id)
    }
    pub fn rejected(&self) -> &BTreeMap<String, Diagnostic> {
        &self.rejected
    }
    /// Whether this version of a file has been acted on already.
    pub fn acted_on(&self, path: &str, hash: &str) -> bool {
        self.acted.get(path).is_some_and(|v| v.contains(hash))
    }
    pub fn conflicts(&self) -> &BTreeMap<String, ConflictState> {
        &self.conflicts
    }
    pub fn decisions(&self) -> &BTreeMap<String, DecisionState> {
        &self.decisions
    }
    pub fn refused_requests(&self) -> &[RefusedRequest] {
        &self.refused_requests
    }
    pub fn active_run(&self) -> Option<&Run> {
        self.runs
            .values()
            .find(|r| r.is_active() && !r.phases.is_empty())
    }
    pub fn set_agents(&mut self, agents: BTreeMap<String, AgentPolicy>) {
        self.agents = agents;
    }
    pub fn set_playbook(&mut self, playbook: Playbook) {
        self.playbook = playbook;
    }

    /// Tasks that were running when the daemon stopped: after a replay they are
    /// started again (tasks are at-least-once).
    pub fn running_tasks(&self) -> Vec<TaskSpec> {
        self.tasks
            .values()
            .filter(|t| t.state == TaskState::Running)
            .map(|t| self.spec_for(t))
            .collect()
    }

    /// A file is present when it exists and is non-empty; a directory output
    /// (`dir/`) when at least one non-empty file lies under it.
    pub fn output_present(&self, output: &str) -> bool {
        if output.ends_with('/') {
            self.files
                .range(output.to_string()..)
                .take_while(|(p, _)| p.starts_with(output))
                .any(|(_, f)| f.size > 0)
        } else {
            self.files.get(output).is_some_and(|f| f.size > 0)
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
        let r = self.runs.get(run)?;
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
                if self.files.get(path).is_some_and(|f| f.hash == *hash) {
                    self.dispatch(at, &mut out);
                    return out;
                }
                self.files.insert(
                    path.clone(),
                    FileEntry {
                        hash: hash.clone(),
                        size: *size,
                        mtime_ns: *mtime_ns,
                    },
                );
                let reactive = !matches!(content, FileContent::Plain)
                    || self
                        .playbook
                        .routes
                        .iter()
                        .any(|r| route_matches(&r.path, path));
                if reactive {
                    let versions = self.acted.entry(path.clone()).or_default();
                    if !versions.insert(hash.clone()) {
                        // Already acted on; only whether it is refused may change.
                        match content {
                            FileContent::Rejected { diagnostic } => {
                                self.rejected.insert(path.clone(), diagnostic.clone());
                            }
                            _ => {
                                self.rejected.remove(path);
                            }
                        }
                        self.on_output_changed(path, at, &mut out);
                        self.dispatch(at, &mut out);
                        return out;
                    }
                }
                self.on_file(path, content, at, &mut out);
            }
            Event::FileRemoved { path, .. } => {
                self.files.remove(path);
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
        }
        self.dispatch(at, &mut out);
        out
    }

    // ---- files ----

    fn on_file(&mut self, path: &str, content: &FileContent, at: Millis, out: &mut Vec<Action>) {
        match content {
            FileContent::Rejected { diagnostic } => {
                self.refuse(diagnostic.clone(), at, out);
                return;
            }
            _ => {
                if self.rejected.remove(path).is_some() {
                    out.push(Action::Notice {
                        level: NoticeLevel::Info,
                        message: format!("{path}: accepted now (it was refused before)"),
                    });
                }
            }
        }
        match content {
            FileContent::Status { report } => self.on_status(path, report, at, out),
            FileContent::Gate { boxes } => self.on_gate_file(path, boxes, at, out),
            FileContent::Conflict { conflict } => self.on_conflict(path, conflict, at, out),
            FileContent::Decision { decision } => self.on_decision(path, decision, at, out),
            FileContent::Request { request } => self.on_request(request, at, out),
            FileContent::Cancel { request } => {
                let reason = format!("gtmd cancel ({path})");
                self.on_cancel(&request.cancel, Some(&reason), at, out)
            }
            FileContent::Plain | FileContent::Rejected { .. } => {}
        }
        self.on_route(path, at, out);
        self.on_output_changed(path, at, out);
    }

    fn refuse(&mut self, d: Diagnostic, at: Millis, out: &mut Vec<Action>) {
        self.rejected.insert(d.path.clone(), d.clone());
        let ids: Vec<RunId> = self
            .runs
            .values()
            .filter(|r| r.is_active())
            .map(|r| r.id.clone())
            .collect();
        for id in ids {
            let r = self.runs.get_mut(&id).unwrap();
            r.refused.insert(d.path.clone(), d.clone());
            r.log.push((at, format!("refused {}", d)));
            out.push(Action::RecordChanged { run: id });
        }
        out.push(Action::Refused { diagnostic: d });
    }

    /// A file a step was waiting for may have arrived; a gate under review may
    /// need its checks run again.
    fn on_output_changed(&mut self, path: &str, at: Millis, out: &mut Vec<Action>) {
        let run_ids: Vec<RunId> = self
            .runs
            .values()
            .filter(|r| r.is_active())
            .map(|r| r.id.clone())
            .collect();
        for id in run_ids {
            let Some(phase) = self.runs[&id].current_phase() else {
                continue;
            };
            let waiting: Vec<String> = self.runs[&id]
                .steps
                .values()
                .filter(|s| {
                    s.phase == phase && matches!(s.state, StepState::AwaitingOutputs { .. })
                })
                .map(|s| s.id.clone())
                .collect();
            for step_id in waiting {
                let outputs = self.step_def(&step_id).outputs.clone();
                let missing = self.missing_outputs(&outputs);
                if missing.is_empty() {
                    self.step_done(&id, &step_id, at, out);
                } else if let Some(s) = self.runs.get_mut(&id).unwrap().steps.get_mut(&step_id) {
                    s.state = StepState::AwaitingOutputs { missing };
                }
            }
            let r = &self.runs[&id];
            if let Some(g) = r.gates.get(&phase) {
                if g.passed_at.is_none() && g.written && self.is_phase_output(phase, path) {
                    out.push(Action::EvaluateGate {
                        run: id.clone(),
                        phase,
                    });
                }
            }
        }
    }

    fn is_phase_output(&self, phase: u8, path: &str) -> bool {
        self.playbook.phase(phase).is_some_and(|p| {
            p.steps.iter().any(|s| {
                s.outputs
                    .iter()
                    .any(|o| o == path || (o.ends_with('/') && path.starts_with(o.as_str())))
            })
        })
    }

    /// The guide's communication table: a hand-off file gives its receiver a task.
    fn on_route(&mut self, path: &str, at: Millis, out: &mut Vec<Action>) {
        let routes: Vec<_> = self
            .playbook
            .routes
            .iter()
            .filter(|r| r.kind == RouteKind::Trigger && route_matches(&r.path, path))
            .cloned()
            .collect();
        for route in routes {
            // One open hand-off task per (receiver, file): a re-save while it is
            // queued, or the receiver's own edits while it works, add nothing.
            let already_open = self.open_tasks().any(|t| {
                t.agent == route.to
                    && t.kind
                        == TaskKind::Route {
                            path: path.to_string(),
                        }
            });
            if already_open {
                continue;
            }
            // A hand-off written while another hand-off task runs continues its chain.
            let depth = 1 + self
                .open_tasks()
                .filter(|t| {
                    t.state == TaskState::Running && matches!(t.kind, TaskKind::Route { .. })
                })
                .map(|t| t.depth)
                .max()
                .unwrap_or(0);
            let run = self.active_run().map(|r| r.id.clone());
            if depth > MAX_ROUTE_DEPTH {
                let told = self
                    .open_tasks()
                    .any(|t| matches!(t.kind, TaskKind::RouteLoop { .. }));
                out.push(Action::Notice {
                    level: NoticeLevel::Warn,
                    message: format!(
                        "{path}: hand-off to {} not started: it would be hand-off number {depth} in a chain (limit {MAX_ROUTE_DEPTH})",
                        route.to
                    ),
                });
                if !told {
                    self.new_task(
                        NewTask {
                            agent: "coordinator".into(),
                            run,
                            phase: None,
                            step: None,
                            kind: TaskKind::RouteLoop { path: path.to_string() },
                            text: format!(
                                "A chain of hand-offs was stopped after {MAX_ROUTE_DEPTH} steps: {path} would have given {} another task. Check whether the agents keep answering each other's files, and decide what should happen.",
                                route.to
                            ),
                            trigger: format!("hand-off loop at {path}"),
                            details: vec![],
                        },
                        at,
                        out,
                    );
                }
                continue;
            }
            let text = format!("{} ({path} changed)", capitalise(&route.purpose));
            let id = self.new_task(
                NewTask {
                    agent: route.to.clone(),
                    run,
                    phase: None,
                    step: None,
                    kind: TaskKind::Route {
                        path: path.to_string(),
                    },
                    text,
                    trigger: format!("hand-off: {path}"),
                    details: vec![format!("Read {path} and act on it: {}.", route.purpose)],
                },
                at,
                out,
            );
            self.tasks.get_mut(&id).unwrap().depth = depth;
        }
    }

    // ---- conflicts and decisions ----

    /// One coordinator review per content version; a closed conflict that
    /// changes is open again.
    fn on_conflict(&mut self, path: &str, c: &Conflict, at: Millis, out: &mut Vec<Action>) {
        let st = self
            .conflicts
            .entry(path.to_string())
            .or_insert_with(|| ConflictState::new(path, at));
        let reopened = st.closed_at.is_some();
        if reopened {
            st.closed_at = None;
            st.closed_by = None;
            st.opened_at = at;
        }
        st.title = c.title.clone();
        st.raised_by = c.raised_by.clone();
        st.agents = c.agents.clone();
        st.severity = c.severity.clone();
        st.versions += 1;
        let version = st.versions;
        let mut details = vec![format!(
            "Read {path}, review both positions, then write a decision in strategy/decisions/ with front matter `resolves: {path}` and `affected: [agents who must change their outputs]`, and the rationale in the text."
        )];
        if !c.agents.is_empty() {
            details.push(format!("Agents named: {}", c.agents.join(", ")));
        }
        if !c.files.is_empty() {
            details.push(format!("Files named: {}", c.files.join(", ")));
        }
        if let Some(sev) = &c.severity {
            details.push(format!("Severity: {sev}"));
        }
        let run = self.active_run().map(|r| r.id.clone());
        let title = if c.title.is_empty() {
            path.to_string()
        } else {
            c.title.clone()
        };
        let id = self.new_task(
            NewTask {
                agent: "coordinator".into(),
                run: run.clone(),
                phase: None,
                step: None,
                kind: TaskKind::ConflictReview {
                    conflict: path.to_string(),
                },
                text: format!(
                    "Review the conflict {path}{}: {title}",
                    if version > 1 {
                        format!(" (version {version})")
                    } else {
                        String::new()
                    }
                ),
                trigger: format!("conflict: {path}"),
                details,
            },
            at,
            out,
        );
        self.log_run(
            run,
            at,
            format!(
                "conflict {path} {} (version {version}); review task {id}",
                if reopened {
                    "reopened"
                } else if version == 1 {
                    "raised"
                } else {
                    "changed"
                }
            ),
            out,
        );
    }

    /// Each affected agent gets a task to apply the decision; what cannot be
    /// read goes to the coordinator instead of being dropped.
    fn on_decision(&mut self, path: &str, d: &Decision, at: Millis, out: &mut Vec<Action>) {
        let mut problems = d.problems.clone();
        let conflict = d
            .resolves
            .as_deref()
            .map(crate::protocol::escalation::conflict_path);
        let known_conflict = conflict
            .as_ref()
            .filter(|c| self.conflicts.contains_key(*c) || self.files.contains_key(*c));
        if let (Some(c), None) = (&conflict, known_conflict) {
            problems.push(format!(
                "it resolves {c}, which is no conflict gtmd has seen (open conflicts: {})",
                self.open_conflicts().join(", ")
            ));
        }
        let run = self.active_run().map(|r| r.id.clone());
        // Apply tasks of an earlier version of this decision are superseded.
        if let Some(old) = self.decisions.get(path) {
            for t in old.tasks.clone() {
                if self
                    .tasks
                    .get(&t)
                    .is_some_and(|t| t.is_open() && t.state != TaskState::Running)
                {
                    self.end_task(&t, Outcome::Cancelled, at, out);
                }
            }
        }
        let mut tasks = Vec::new();
        if let Some(c) = known_conflict.cloned() {
            let st = self
                .conflicts
                .entry(c.clone())
                .or_insert_with(|| ConflictState::new(&c, at));
            if !st.decisions.iter().any(|p| p == path) {
                st.decisions.push(path.to_string());
            }
            let title = if d.title.is_empty() {
                path.to_string()
            } else {
                d.title.clone()
            };
            for agent in &d.affected {
                let id = self.new_task(
                    NewTask {
                        agent: agent.clone(),
                        run: run.clone(),
                        phase: None,
                        step: None,
                        kind: TaskKind::ApplyDecision {
                            decision: path.to_string(),
                            conflict: c.clone(),
                        },
                        text: format!(
                            "Apply the coordinator's decision {path} on the conflict {c}: {title}"
                        ),
                        trigger: format!("decision: {path}"),
                        details: vec![
                            format!("Read {path} and {c}, update your outputs to follow the decision, then report complete."),
                        ],
                    },
                    at,
                    out,
                );
                tasks.push(id);
            }
        }
        if !problems.is_empty() {
            self.new_task(
                NewTask {
                    agent: "coordinator".into(),
                    run: run.clone(),
                    phase: None,
                    step: None,
                    kind: TaskKind::DecisionProblem {
                        decision: path.to_string(),
                    },
                    text: format!(
                        "The decision {path} could not be fully read: {}",
                        problems.join("; ")
                    ),
                    trigger: format!("decision: {path}"),
                    details: vec![
                        "Fix the decision file; gtmd reads it again when it changes.".into(),
                    ],
                },
                at,
                out,
            );
        }
        self.log_run(
            run,
            at,
            format!(
                "decision {path}{}{}",
                conflict
                    .as_ref()
                    .map(|c| format!(" on {c}"))
                    .unwrap_or_default(),
                if tasks.is_empty() {
                    String::new()
                } else {
                    format!(": tasks {}", tasks.join(", "))
                }
            ),
            out,
        );
        self.decisions.insert(
            path.to_string(),
            DecisionState {
                path: path.to_string(),
                title: d.title.clone(),
                at,
                resolves: conflict,
                affected: d.affected.clone(),
                problems,
                tasks,
            },
        );
    }

    pub fn open_conflicts(&self) -> Vec<String> {
        self.conflicts
            .values()
            .filter(|c| c.closed_at.is_none())
            .map(|c| c.path.clone())
            .collect()
    }

    /// A conflict closes when every agent its decision affects has completed
    /// the task of applying it.
    fn maybe_close_conflict(&mut self, decision: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(d) = self.decisions.get(decision) else {
            return;
        };
        let Some(conflict) = d.resolves.clone() else {
            return;
        };
        let all_done = !d.tasks.is_empty()
            && d.tasks.iter().all(|t| {
                self.tasks.get(t).is_some_and(|t| {
                    t.state
                        == TaskState::Done {
                            outcome: Outcome::Complete,
                        }
                })
            });
        if !all_done {
            return;
        }
        let Some(c) = self.conflicts.get_mut(&conflict) else {
            return;
        };
        if c.closed_at.is_some() {
            return;
        }
        c.closed_at = Some(at);
        c.closed_by = Some(decision.to_string());
        let run = self.active_run().map(|r| r.id.clone());
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: format!("conflict {conflict} closed by {decision}"),
        });
        self.log_run(
            run,
            at,
            format!("conflict {conflict} closed by {decision}"),
            out,
        );
    }

    fn log_run(&mut self, run: Option<RunId>, at: Millis, line: String, out: &mut Vec<Action>) {
        if let Some(r) = run.and_then(|r| self.runs.get_mut(&r)) {
            r.log.push((at, line));
            out.push(Action::RecordChanged { run: r.id.clone() });
        }
    }

    // ---- status files ----

    fn on_status(&mut self, path: &str, report: &StatusReport, at: Millis, out: &mut Vec<Action>) {
        let Some(task_id) = self.match_task(report) else {
            if matches!(report.status, TaskStatus::Pending | TaskStatus::InProgress) {
                return;
            }
            let what = match &report.task_id {
                Some(id) => format!("task_id {id} is not a task gtmd gave out"),
                None => format!(
                    "no open task of {}{} to match",
                    report.agent,
                    report
                        .phase
                        .map(|p| format!(" in phase {p}"))
                        .unwrap_or_default()
                ),
            };
            self.refuse(
                Diagnostic::new(
                    path,
                    None,
                    format!(
                        "status \"{}\" ignored: {what}; a status answers an open task (see `gtmd status`), named by its task_id or by agent and phase",
                        status_word(report.status)
                    ),
                ),
                at,
                out,
            );
            return;
        };
        self.mutate_task(&task_id, |t| t.last_status = Some(report.status));
        if !self.tasks[&task_id].is_open() {
            // A late report for a task that already ended (its process exit came first).
            return;
        }
        match report.status {
            TaskStatus::Pending | TaskStatus::InProgress => {}
            TaskStatus::Complete => {
                self.complete_task(&task_id, at, out);
                self.commit_action(&task_id, path, report, out);
            }
            TaskStatus::Blocked => {
                self.mutate_task(&task_id, |t| {
                    t.state = TaskState::Blocked;
                    t.blockers = report.blockers.clone();
                });
                let blockers = if report.blockers.is_empty() {
                    "no blockers given".to_string()
                } else {
                    report.blockers.join("; ")
                };
                self.log_task(&task_id, at, format!("blocked: {blockers}"), out);
                self.escalate(&task_id, format!("is blocked: {blockers}"), at, out);
            }
            TaskStatus::Failed => {
                let reason = if report.blockers.is_empty() {
                    "reported failed".to_string()
                } else {
                    format!("reported failed: {}", report.blockers.join("; "))
                };
                self.fail_task(&task_id, reason, at, out);
            }
        }
    }

    /// A task that a status completed: its files, for `--git`.
    fn commit_action(
        &self,
        task_id: &str,
        status_path: &str,
        report: &StatusReport,
        out: &mut Vec<Action>,
    ) {
        let t = &self.tasks[task_id];
        if t.state
            != (TaskState::Done {
                outcome: Outcome::Complete,
            })
        {
            return;
        }
        let mut paths = vec![status_path.to_string()];
        paths.extend(report.outputs.iter().cloned());
        match &t.kind {
            TaskKind::ApplyDecision { decision, conflict } => {
                paths.extend([decision.clone(), conflict.clone()])
            }
            TaskKind::ConflictReview { conflict } => paths.push(conflict.clone()),
            _ => {}
        }
        let step = t.step.as_deref().and_then(|s| self.playbook.step(s));
        let phase = t.phase.and_then(|p| self.playbook.phase(p));
        out.push(Action::Commit {
            task: t.id.clone(),
            agent: t.agent.clone(),
            action_word: match step {
                Some((_, s)) => s.action.clone(),
                None => crate::commit_msg::default_action(&t.agent).to_string(),
            },
            message_task: if report.task.trim().is_empty() {
                t.text.clone()
            } else {
                report.task.clone()
            },
            paths,
            branch: phase.map(|p| format!("gtm/phase-{}-{}", p.number, p.name)),
        });
    }

    /// A status names its task by `task_id`, else by agent (and phase when given).
    fn match_task(&self, report: &StatusReport) -> Option<TaskId> {
        if let Some(id) = &report.task_id {
            return self
                .tasks
                .get(id)
                .filter(|t| t.agent == report.agent)
                .map(|t| t.id.clone());
        }
        let candidates = self.open_tasks().filter(|t| {
            t.agent == report.agent
                && matches!(
                    t.state,
                    TaskState::Running | TaskState::Blocked | TaskState::RetryWait
                )
                && (report.phase.is_none() || t.phase.is_none() || t.phase == report.phase)
        });
        // Prefer the task that is running now, then the oldest one.
        let mut best: Option<&Task> = None;
        for t in candidates {
            best = match best {
                None => Some(t),
                Some(b) if b.state != TaskState::Running && t.state == TaskState::Running => {
                    Some(t)
                }
                Some(b) => Some(b),
            };
        }
        best.map(|t| t.id.clone())
    }

    fn complete_task(&mut self, task_id: &str, at: Millis, out: &mut Vec<Action>) {
        let t = &self.tasks[task_id];
        let (run, step) = (t.run.clone(), t.step.clone());
        let missing = match &step {
            Some(s) => self.missing_outputs(&self.step_def(s).outputs.clone()),
            None => Vec::new(),
        };
        if missing.is_empty() {
            self.end_task(task_id, Outcome::Complete, at, out);
            if let (Some(run), Some(step)) = (run, step) {
                self.step_done(&run, &step, at, out);
            }
        } else {
            self.end_task(
                task_id,
                Outcome::Incomplete {
                    missing: missing.clone(),
                },
                at,
                out,
            );
            let (Some(run), Some(step)) = (run, step) else {
                return;
            };
            if let Some(s) = self.runs.get_mut(&run).and_then(|r| r.steps.get_mut(&step)) {
                s.state = StepState::AwaitingOutputs {
                    missing: missing.clone(),
                };
            }
            let agent = self.tasks[task_id].agent.clone();
            self.new_task(
                NewTask {
                    agent: "coordinator".into(),
                    run: Some(run.clone()),
                    phase: self.tasks[task_id].phase,
                    step: None,
                    kind: TaskKind::MissingOutputs {
                        step: step.clone(),
                        missing: missing.clone(),
                    },
                    text: format!(
                        "{agent} reported step {step} complete, but these outputs are missing or empty: {}",
                        missing.join(", ")
                    ),
                    trigger: format!("status of task {task_id}"),
                    details: vec![
                        "The step stays open and finishes by itself once every output exists and is non-empty.".into(),
                        format!("Missing: {}", missing.join(", ")),
                    ],
                },
                at,
                out,
            );
        }
    }

    fn fail_task(&mut self, task_id: &str, reason: String, at: Millis, out: &mut Vec<Action>) {
        let t = &self.tasks[task_id];
        let retries = self.agents.get(&t.agent).map(|a| a.retries).unwrap_or(0);
        if t.attempt <= retries {
            let delay_ms = backoff_ms(t.attempt);
            let attempt = t.attempt;
            self.mutate_task(task_id, |t| t.state = TaskState::RetryWait);
            self.log_task(
                task_id,
                at,
                format!(
                    "attempt {attempt} failed ({reason}); retrying in {}s",
                    delay_ms / 1000
                ),
                out,
            );
            out.push(Action::ScheduleRetry {
                task: task_id.to_string(),
                delay_ms,
            });
        } else {
            let attempts = t.attempt;
            self.end_task(
                task_id,
                Outcome::Failed {
                    reason: reason.clone(),
                },
                at,
                out,
            );
            self.escalate(
                task_id,
                format!("failed after {attempts} attempt(s): {reason}"),
                at,
                out,
            );
        }
    }

    /// Give the coordinator a task about another task's trouble.
    fn escalate(&mut self, task_id: &str, what: String, at: Millis, out: &mut Vec<Action>) {
        let t = self.tasks[task_id].clone();
        if t.agent == "coordinator" && matches!(t.kind, TaskKind::Escalation { .. }) {
            // Escalating an escalation would loop; say it instead.
            out.push(Action::Notice {
                level: NoticeLevel::Warn,
                message: format!("coordinator escalation task {task_id} {what}"),
            });
            return;
        }
        self.new_task(
            NewTask {
                agent: "coordinator".into(),
                run: t.run.clone(),
                phase: t.phase,
                step: None,
                kind: TaskKind::Escalation { of: t.id.clone() },
                text: format!("{}'s task {} {}", t.agent, t.id, what),
                trigger: format!("escalation of task {}", t.id),
                details: vec![
                    format!("The task: {}", t.text),
                    "Resolve it: write a decision in strategy/decisions/, fix the inputs, or do the work and write the agent's status file with its task_id.".into(),
                ],
            },
            at,
            out,
        );
    }

    fn end_task(&mut self, task_id: &str, outcome: Outcome, at: Millis, out: &mut Vec<Action>) {
        let label = outcome.label();
        self.mutate_task(task_id, |t| {
            t.state = TaskState::Done { outcome };
            t.ended_at = Some(at);
        });
        let agent = self.tasks[task_id].agent.clone();
        let has_command = self.agents.get(&agent).is_some_and(|a| a.has_command);
        if !has_command {
            out.push(Action::CloseInbox {
                agent,
                task: task_id.to_string(),
            });
        }
        self.log_task(task_id, at, label, out);
        self.on_task_ended(task_id, at, out);
    }

    fn log_task(&mut self, task_id: &str, at: Millis, what: String, out: &mut Vec<Action>) {
        let t = &self.tasks[task_id];
        if let Some(run) = t.run.clone() {
            let line = format!("{} {}: {}", t.id, t.agent, what);
            if let Some(r) = self.runs.get_mut(&run) {
                r.log.push((at, line));
                out.push(Action::RecordChanged { run });
            }
        }
    }

    /// An agent run ends with its only task; a decision's last apply task
    /// closes its conflict.
    fn on_task_ended(&mut self, task_id: &str, at: Millis, out: &mut Vec<Action>) {
        if let TaskKind::ApplyDecision { decision, .. } = self.tasks[task_id].kind.clone() {
            self.maybe_close_conflict(&decision, at, out);
        }
        let t = &self.tasks[task_id];
        let Some(run) = t.run.clone() else { return };
        let TaskState::Done { outcome } = &t.state else {
            return;
        };
        let outcome = outcome.clone();
        let r = self.runs.get_mut(&run).unwrap();
        if !r.is_active() || !r.phases.is_empty() || t.kind != TaskKind::Adhoc {
            return;
        }
        r.ended_at = Some(at);
        let ok = outcome == Outcome::Complete;
        r.state = if ok {
            RunState::Passed
        } else {
            RunState::Failed {
                reason: outcome.label(),
            }
        };
        out.push(Action::RecordChanged { run: run.clone() });
        out.push(Action::RunFinished {
            run,
            ok,
            summary: format!("task {task_id} {}", outcome.label()),
        });
    }

    fn on_exit(&mut self, task_id: &str, exit: &ExitOutcome, at: Millis, out: &mut Vec<Action>) {
        if self
            .mutate_task(task_id, |t| t.process_alive = false)
            .is_none()
        {
            return;
        }
        let t = &self.tasks[task_id];
        if t.state != TaskState::Running {
            return;
        }
        if *exit == ExitOutcome::Cancelled {
            self.end_task(task_id, Outcome::Cancelled, at, out);
            return;
        }
        let step = t.step.clone();
        if exit.success() {
            let missing = match &step {
                Some(s) => self.missing_outputs(&self.step_def(s).outputs.clone()),
                None => Vec::new(),
            };
            if missing.is_empty() {
                self.complete_task(task_id, at, out);
            } else {
                self.fail_task(
                    task_id,
                    format!(
                        "exited 0 without a status and without its outputs: {}",
                        missing.join(", ")
                    ),
                    at,
                    out,
                );
            }
        } else {
            self.fail_task(task_id, exit.describe(), at, out);
        }
    }

    // ---- runs, phases, steps, gates ----

    fn on_request(&mut self, req: &RunRequest, at: Millis, out: &mut Vec<Action>) {
        if self.runs.values().any(|r| r.request.id == req.id)
            || self.refused_requests.iter().any(|r| r.id == req.id)
        {
            return; // the same request seen again
        }
        match self.validate_request(req) {
            Err(reason) => {
                self.refused_requests.push(RefusedRequest {
                    id: req.id.clone(),
                    reason: reason.clone(),
                    at,
                });
                out.push(Action::RunRefused {
                    request: req.id.clone(),
                    reason,
                });
            }
            Ok(phases) => self.start_run(req, phases, at, out),
        }
    }

    /// The guide's execution modes and scenario validation.
    fn validate_request(&self, req: &RunRequest) -> Result<Vec<u8>, String> {
        let phases = match &req.kind {
            RunKind::Agent { agent, .. } => {
                if !self.agents.contains_key(agent) {
                    return Err(format!("unknown agent {agent}"));
                }
                return Ok(Vec::new());
            }
            RunKind::Phases { phases } => phases.clone(),
        };
        if phases.is_empty() {
            return Err("no phases requested".into());
        }
        let mut sorted = phases.clone();
        sorted.sort_unstable();
        sorted.dedup();
        for p in &sorted {
            if self.playbook.phase(*p).is_none() {
                return Err(format!("the playbook has no phase {p}"));
            }
        }
        if let Some(active) = self.active_run() {
            return Err(format!(
                "run {} is still active (phase {}); cancel it with `gtmd cancel --run {}` first",
                active.id,
                active.current_phase().unwrap_or(0),
                active.id
            ));
        }
        if let Some(name) = &req.scenario {
            let Some(sc) = self.playbook.scenario(name) else {
                let names: Vec<&str> = self
                    .playbook
                    .scenarios
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                return Err(format!(
                    "unknown scenario {name}; accepted: {}",
                    names.join(", ")
                ));
            };
            let mut required = sc.required_phases.clone();
            required.sort_unstable();
            if required != sorted && !req.force {
                return Err(format!(
                    "scenario {name} runs phases {}, this run asks for {}; use --force to run it anyway",
                    join_nums(&required),
                    join_nums(&sorted)
                ));
            }
        }
        // Inputs that earlier phases, not part of this run, should have produced.
        let mut missing = BTreeSet::new();
        for p in &sorted {
            for step in &self.playbook.phase(*p).unwrap().steps {
                for input in &step.inputs {
                    let from = self.producing_phase(input);
                    if let Some(from) = from {
                        if from < *p && !sorted.contains(&from) && !self.output_present(input) {
                            missing.insert(format!("{input} (phase {from})"));
                        }
                    }
                }
            }
        }
        if !missing.is_empty() && !req.force {
            return Err(format!(
                "inputs from earlier phases are missing: {}; run those phases first (or use --force)",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(sorted)
    }

    fn producing_phase(&self, path: &str) -> Option<u8> {
        self.playbook
            .phases
            .iter()
            .find(|ph| ph.steps.iter().any(|s| s.outputs.iter().any(|o| o == path)))
            .map(|ph| ph.number)
    }

    fn start_run(&mut self, req: &RunRequest, phases: Vec<u8>, at: Millis, out: &mut Vec<Action>) {
        let id = format!("{}-{:03}", date_of(at), self.next_run);
        self.next_run += 1;
        let mut steps = BTreeMap::new();
        for p in &phases {
            for s in &self.playbook.phase(*p).unwrap().steps {
                steps.insert(
                    s.id.clone(),
                    StepRecord {
                        id: s.id.clone(),
                        phase: *p,
                        state: StepState::Waiting,
                        started_at: None,
                        done_at: None,
                        estimate_minutes: s.estimate_minutes,
                    },
                );
            }
        }
        let what = match &req.kind {
            RunKind::Phases { .. } => format!("phases {}", join_nums(&phases)),
            RunKind::Agent { agent, .. } => format!("agent {agent}"),
        };
        self.runs.insert(
            id.clone(),
            Run {
                id: id.clone(),
                request: req.clone(),
                phases: phases.clone(),
                current: 0,
                state: RunState::Running,
                started_at: at,
                ended_at: None,
                steps,
                gates: BTreeMap::new(),
                refused: BTreeMap::new(),
                log: vec![(at, format!("run started: {what}"))],
            },
        );
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: format!("run {id} started: {what}"),
        });
        out.push(Action::RecordChanged { run: id.clone() });
        match &req.kind {
            RunKind::Agent { agent, task } => {
                self.new_task(
                    NewTask {
                        agent: agent.clone(),
                        run: Some(id.clone()),
                        phase: None,
                        step: None,
                        kind: TaskKind::Adhoc,
                        text: task.clone(),
                        trigger: "gtmd agent run".into(),
                        details: Vec::new(),
                    },
                    at,
                    out,
                );
            }
            RunKind::Phases { .. } => self.start_phase(&id, at, out),
        }
    }

    fn start_phase(&mut self, run: &str, at: Millis, out: &mut Vec<Action>) {
        let phase = self.runs[run].current_phase().unwrap();
        let name = self.playbook.phase(phase).unwrap().name.clone();
        let r = self.runs.get_mut(run).unwrap();
        r.log.push((at, format!("phase {phase} {name} started")));
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: format!("run {run}: phase {phase} {name} started"),
        });
        self.start_ready_steps(run, at, out);
    }

    fn start_ready_steps(&mut self, run: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(phase) = self.runs[run].current_phase() else {
            return;
        };
        let steps = self.playbook.phase(phase).unwrap().steps.clone();
        for step in steps {
            let r = &self.runs[run];
            if r.steps[&step.id].state != StepState::Waiting {
                continue;
            }
            let ready = step
                .depends_on
                .iter()
                .all(|d| r.steps.get(d).is_some_and(|s| s.state == StepState::Done));
            if !ready {
                continue;
            }
            let task = self.new_task(
                NewTask {
                    agent: step.agent.clone(),
                    run: Some(run.to_string()),
                    phase: Some(phase),
                    step: Some(step.id.clone()),
                    kind: TaskKind::Step,
                    text: step.title.clone(),
                    trigger: format!("phase {phase} step {}", step.id),
                    details: step.activities.clone(),
                },
                at,
                out,
            );
            let s = self
                .runs
                .get_mut(run)
                .unwrap()
                .steps
                .get_mut(&step.id)
                .unwrap();
            s.state = StepState::Active { task };
            s.started_at.get_or_insert(at);
        }
    }

    fn step_done(&mut self, run: &str, step: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(r) = self.runs.get_mut(run) else {
            return;
        };
        if !r.is_active() {
            return;
        }
        let Some(s) = r.steps.get_mut(step) else {
            return;
        };
        if s.state == StepState::Done {
            return;
        }
        s.state = StepState::Done;
        s.done_at = Some(at);
        let phase = s.phase;
        r.log.push((at, format!("step {step} done")));
        out.push(Action::RecordChanged {
            run: run.to_string(),
        });
        if r.current_phase() != Some(phase) {
            return;
        }
        self.start_ready_steps(run, at, out);
        let r = &self.runs[run];
        let all_done = r
            .steps
            .values()
            .filter(|s| s.phase == phase)
            .all(|s| s.state == StepState::Done);
        if all_done && !r.gates.contains_key(&phase) {
            self.open_gate(run, phase, at, out);
        }
    }

    fn open_gate(&mut self, run: &str, phase: u8, at: Millis, out: &mut Vec<Action>) {
        let p = self.playbook.phase(phase).unwrap();
        let path = gate_path(p);
        let boxes = p
            .gate
            .checklist
            .iter()
            .map(|c| (c.clone(), false))
            .collect();
        let r = self.runs.get_mut(run).unwrap();
        r.gates.insert(
            phase,
            GateState {
                phase,
                path: path.clone(),
                opened_at: at,
                boxes,
                checks: None,
                written: false,
                passed_at: None,
            },
        );
        r.log
            .push((at, format!("phase {phase} done; gate {path} opened")));
        out.push(Action::EvaluateGate {
            run: run.to_string(),
            phase,
        });
    }

    fn on_gate_evaluated(
        &mut self,
        run: &str,
        phase: u8,
        checks: &[crate::gate_checks::CheckResult],
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.runs.get_mut(run) else {
            return;
        };
        if !r.is_active() {
            return;
        }
        let Some(g) = r.gates.get_mut(&phase) else {
            return;
        };
        if g.passed_at.is_some() {
            return;
        }
        let changed = g.checks.as_deref() != Some(checks);
        g.checks = Some(checks.to_vec());
        let first = !g.written;
        if changed || first {
            g.written = true;
            let contents = render_gate(self.playbook.phase(phase).unwrap(), g, run);
            out.push(Action::WriteFile {
                path: g.path.clone(),
                contents,
            });
        }
        if first {
            let failing: Vec<String> = checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            let needs_review = !g.boxes.is_empty() || !failing.is_empty();
            let path = g.path.clone();
            let n = g.boxes.len();
            if needs_review {
                let mut details = vec![format!(
                    "Open {path}, review the phase's outputs against each checklist item, and tick ([x]) the boxes that hold."
                )];
                if !failing.is_empty() {
                    details.push(format!(
                        "Automatic checks that fail (the gate stays closed until they pass): {}",
                        failing.join("; ")
                    ));
                }
                self.new_task(
                    NewTask {
                        agent: "coordinator".into(),
                        run: Some(run.to_string()),
                        phase: Some(phase),
                        step: None,
                        kind: TaskKind::GateReview { phase },
                        text: format!(
                            "Review the phase {phase} quality gate: tick the {n} checklist item(s) in {path}"
                        ),
                        trigger: format!("phase {phase} done"),
                        details,
                    },
                    at,
                    out,
                );
            }
        }
        self.try_pass_gate(run, phase, at, out);
    }

    fn on_gate_file(
        &mut self,
        path: &str,
        boxes: &[crate::protocol::Checkbox],
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let ids: Vec<RunId> = self
            .runs
            .values()
            .filter(|r| r.is_active())
            .map(|r| r.id.clone())
            .collect();
        for id in ids {
            let r = self.runs.get_mut(&id).unwrap();
            let Some(g) = r.gates.values_mut().find(|g| g.path == path) else {
                continue;
            };
            if g.passed_at.is_some() {
                continue;
            }
            let playbook_items: Vec<String> = self
                .playbook
                .phase(g.phase)
                .map(|p| p.gate.checklist.clone())
                .unwrap_or_default();
            let recognised = boxes
                .iter()
                .any(|b| playbook_items.iter().any(|i| same_item(&b.text, i)));
            if !playbook_items.is_empty() && !recognised {
                // Edited into something that is no gate any more: say so, and
                // put the gate back as it was (ticks kept) for the coordinator.
                let phase = g.phase;
                let contents = render_gate(self.playbook.phase(phase).unwrap(), g, &id);
                let n = playbook_items.len();
                self.refuse(
                    Diagnostic::new(
                        path,
                        None,
                        format!(
                            "holds none of the phase {phase} gate's {n} checklist items; a gate file keeps the `- [ ] item` lines gtmd wrote, ticked as `- [x] item`. gtmd wrote the gate back"
                        ),
                    ),
                    at,
                    out,
                );
                out.push(Action::WriteFile {
                    path: path.to_string(),
                    contents,
                });
                continue;
            }
            // Every checklist item of the playbook must be present and ticked;
            // boxes the coordinator added must be ticked too.
            let mut merged: Vec<(String, bool)> = playbook_items
                .iter()
                .map(|text| {
                    let ticked = boxes.iter().any(|b| b.checked && same_item(&b.text, text));
                    (text.clone(), ticked)
                })
                .collect();
            for b in boxes {
                if !playbook_items.iter().any(|i| same_item(&b.text, i)) {
                    merged.push((b.text.clone(), b.checked));
                }
            }
            let r = self.runs.get_mut(&id).unwrap();
            let g = r.gates.values_mut().find(|g| g.path == path).unwrap();
            g.boxes = merged;
            let phase = g.phase;
            out.push(Action::EvaluateGate { run: id, phase });
        }
    }

    fn try_pass_gate(&mut self, run: &str, phase: u8, at: Millis, out: &mut Vec<Action>) {
        let r = self.runs.get_mut(run).unwrap();
        let g = r.gates.get_mut(&phase).unwrap();
        let checks_pass = g
            .checks
            .as_ref()
            .is_some_and(|c| c.iter().all(|c| c.passed));
        let ticked = g.boxes.iter().all(|(_, t)| *t);
        if !(checks_pass && ticked) || g.passed_at.is_some() {
            return;
        }
        g.passed_at = Some(at);
        r.log.push((at, format!("gate of phase {phase} passed")));
        out.push(Action::RecordChanged {
            run: run.to_string(),
        });
        // The review task has nothing left to do.
        let review: Vec<TaskId> = self
            .open_tasks()
            .filter(|t| {
                t.is_open()
                    && t.run.as_deref() == Some(run)
                    && t.kind == TaskKind::GateReview { phase }
                    && t.state != TaskState::Running
            })
            .map(|t| t.id.clone())
            .collect();
        for t in review {
            self.end_task(&t, Outcome::Complete, at, out);
        }
        let r = self.runs.get_mut(run).unwrap();
        r.current += 1;
        if r.current < r.phases.len() {
            self.start_phase(run, at, out);
        } else {
            r.state = RunState::Passed;
            r.ended_at = Some(at);
            r.log.push((at, "run complete".into()));
            out.push(Action::RunFinished {
                run: run.to_string(),
                ok: true,
                summary: format!("all phases passed their gates ({})", join_nums(&r.phases)),
            });
        }
    }

    fn on_cancel(
        &mut self,
        target: &CancelTarget,
        reason: Option<&str>,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
        if let CancelTarget::Task { task } = target {
            if let Some(t) = self.tasks.get(task).filter(|t| t.is_open()) {
                if let Some(run) = t.run.clone() {
                    if let Some(r) = self.runs.get_mut(&run) {
                        r.log.push((at, format!("task {task} cancelled{why}")));
                    }
                }
            }
        }
        // The run first: an agent run would otherwise end as failed with its task.
        if let CancelTarget::Run { run } = target {
            if let Some(r) = self.runs.get_mut(run) {
                if r.is_active() {
                    r.state = RunState::Cancelled;
                    r.ended_at = Some(at);
                    r.log.push((at, format!("run cancelled{why}")));
                    out.push(Action::RecordChanged { run: run.clone() });
                    out.push(Action::RunFinished {
                        run: run.clone(),
                        ok: false,
                        summary: format!("cancelled{why}"),
                    });
                }
            }
        }
        let ids: Vec<TaskId> = match target {
            CancelTarget::Task { task } => vec![task.clone()],
            CancelTarget::Run { run } => self
                .tasks
                .values()
                .filter(|t| t.run.as_deref() == Some(run.as_str()))
                .map(|t| t.id.clone())
                .collect(),
        };
        for id in ids {
            let Some(t) = self.tasks.get(&id) else {
                continue;
            };
            if !t.is_open() {
                continue;
            }
            if t.process_alive {
                out.push(Action::StopTask { task: id.clone() });
            }
            self.end_task(&id, Outcome::Cancelled, at, out);
        }
    }

    // ---- tasks ----

    fn step_def(&self, id: &str) -> &Step {
        self.playbook
            .step(id)
            .map(|(_, s)| s)
            .expect("steps of a run come from the playbook")
    }

    fn new_task(&mut self, n: NewTask, at: Millis, out: &mut Vec<Action>) -> TaskId {
        let label = match &n.kind {
            TaskKind::Step => n.step.clone().unwrap_or_default(),
            TaskKind::GateReview { phase } => format!("gate-{phase}"),
            TaskKind::MissingOutputs { .. } => "missing-outputs".into(),
            TaskKind::Escalation { .. } => "escalation".into(),
            TaskKind::Route { .. } => format!("handoff-{}", short_name(&n.agent)),
            TaskKind::ConflictReview { .. } => "conflict-review".into(),
            TaskKind::ApplyDecision { .. } => "apply-decision".into(),
            TaskKind::DecisionProblem { .. } => "decision-problem".into(),
            TaskKind::RouteLoop { .. } => "handoff-loop".into(),
            TaskKind::Adhoc => short_name(&n.agent).to_string(),
        };
        let id = format!("t{:04}-{label}", self.next_task);
        self.next_task += 1;
        let task = Task {
            id: id.clone(),
            agent: n.agent,
            run: n.run,
            phase: n.phase,
            step: n.step,
            kind: n.kind,
            text: n.text,
            trigger: n.trigger,
            details: n.details,
            state: TaskState::Queued,
            attempt: 1,
            process_alive: false,
            created_at: at,
            started_at: None,
            ended_at: None,
            last_status: None,
            blockers: Vec::new(),
            depth: 0,
            seq: self.next_task - 1,
        };
        let facts = Facts::of(&task);
        self.tasks.insert(id.clone(), task);
        self.reindex(&id, Facts::NONE, facts);
        self.log_task(&id, at, "queued".into(), out);
        id
    }

    fn agent_busy(&self, agent: &str) -> bool {
        self.busy.get(agent).is_some_and(|n| *n > 0)
    }

    /// Change a task, keeping the derived indexes in step.
    fn mutate_task<R>(&mut self, id: &str, f: impl FnOnce(&mut Task) -> R) -> Option<R> {
        let t = self.tasks.get_mut(id)?;
        let before = Facts::of(t);
        let r = f(t);
        let after = Facts::of(t);
        if before != after {
            self.reindex(id, before, after);
        }
        Some(r)
    }

    fn reindex(&mut self, id: &str, before: Facts, after: Facts) {
        let t = &self.tasks[id];
        let (agent, seq) = (t.agent.clone(), t.seq);
        if before.open != after.open {
            if after.open {
                self.open.insert(seq, id.to_string());
            } else {
                self.open.remove(&seq);
            }
        }
        if before.queued != after.queued {
            let q = self.queues.entry(agent.clone()).or_default();
            if after.queued {
                q.insert(seq, id.to_string());
            } else {
                q.remove(&seq);
            }
        }
        if before.busy != after.busy {
            let n = self.busy.entry(agent).or_default();
            if after.busy {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Tasks not yet done, oldest first.
    fn open_tasks(&self) -> impl Iterator<Item = &Task> {
        self.open.values().map(|id| &self.tasks[id])
    }

    /// One task at a time per agent, oldest first.
    fn dispatch(&mut self, at: Millis, out: &mut Vec<Action>) {
        let next: Vec<(String, TaskId)> = self
            .queues
            .iter()
            .filter(|(agent, q)| !q.is_empty() && !self.agent_busy(agent))
            .filter_map(|(agent, q)| q.values().next().map(|id| (agent.clone(), id.clone())))
            .collect();
        for (agent, id) in next {
            let has_command = self.agents.get(&agent).is_some_and(|a| a.has_command);
            self.mutate_task(&id, |t| {
                t.state = TaskState::Running;
                t.started_at.get_or_insert(at);
                t.process_alive = has_command;
            });
            let spec = self.spec_for(&self.tasks[&id]);
            let attempt = spec.attempt;
            self.log_task(
                &id,
                at,
                if attempt > 1 {
                    format!("started (attempt {attempt})")
                } else {
                    "started".into()
                },
                out,
            );
            out.push(Action::StartTask { task: spec });
        }
    }

    fn spec_for(&self, t: &Task) -> TaskSpec {
        let step = t.step.as_deref().map(|s| self.step_def(s));
        let run = t.run.as_deref().and_then(|r| self.runs.get(r));
        let context = self
            .playbook
            .routes
            .iter()
            .filter(|r| r.kind == RouteKind::Context && (r.to == "all" || r.to == t.agent))
            .flat_map(|r| {
                let prefix = r.path.trim_end_matches('*').to_string();
                self.files
                    .range(prefix.clone()..)
                    .take_while(move |(p, _)| p.starts_with(&prefix))
                    .filter(|(_, f)| f.size > 0)
                    .map(|(p, _)| p.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        TaskSpec {
            id: t.id.clone(),
            agent: t.agent.clone(),
            run: t.run.clone(),
            phase: t.phase,
            phase_name: t
                .phase
                .and_then(|p| self.playbook.phase(p))
                .map(|p| p.name.clone()),
            step: t.step.clone(),
            text: t.text.clone(),
            trigger: t.trigger.clone(),
            inputs: step.map(|s| s.inputs.clone()).unwrap_or_default(),
            outputs: step.map(|s| s.outputs.clone()).unwrap_or_default(),
            details: t.details.clone(),
            context,
            attempt: t.attempt,
            business_context: run
                .map(|r| r.request.config.business_context.clone())
                .unwrap_or_default(),
        }
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

fn status_word(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Pending => "pending",
        TaskStatus::InProgress => "in-progress",
        TaskStatus::Complete => "complete",
        TaskStatus::Blocked => "blocked",
        TaskStatus::Failed => "failed",
    }
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

/// What the indexes need to know of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    open: bool,
    queued: bool,
    busy: bool,
}

impl Facts {
    const NONE: Facts = Facts {
        open: false,
        queued: false,
        busy: false,
    };

    fn of(t: &Task) -> Facts {
        Facts {
            open: t.is_open(),
            queued: t.state == TaskState::Queued,
            busy: t.state == TaskState::Running || t.process_alive,
        }
    }
}
