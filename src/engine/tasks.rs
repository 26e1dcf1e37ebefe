//! Tasks from start to end: matching a status to its task, completion,
//! retries and escalation, and dispatch (one task at a time per agent) with
//! the indexes that keep it cheap.
use super::*;
use crate::agents::short_name;
use crate::diagnostic::Diagnostic;
use crate::playbook::{RouteKind, Step};
use crate::protocol::{StatusReport, TaskStatus};

impl Engine {
    // ---- status files ----

    pub(super) fn on_status(
        &mut self,
        path: &str,
        report: &StatusReport,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(task_id) = self.match_task(report) else {
            if matches!(report.status, TaskStatus::Pending | TaskStatus::InProgress) {
                return;
            }
            let what = match &report.task_id {
                Some(id) => format!("task_id {} is not a task gtmd gave out", clip(id)),
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
                        report.status.as_str()
                    ),
                ),
                at,
                out,
            );
            return;
        };
        self.check_phase(path, report, &task_id, at, out);
        self.mutate_task(&task_id, |t| t.last_status = Some(report.status));
        if !self.state.tasks[&task_id].is_open() {
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
                    some_of(&report.blockers, "; ")
                };
                self.log_task(&task_id, at, format!("blocked: {blockers}"), out);
                self.escalate(&task_id, format!("is blocked: {blockers}"), at, out);
            }
            TaskStatus::Failed => {
                let reason = if report.blockers.is_empty() {
                    "reported failed".to_string()
                } else {
                    format!("reported failed: {}", some_of(&report.blockers, "; "))
                };
                self.fail_task(&task_id, reason, at, out);
            }
        }
    }

    /// A status that names its task by `task_id` takes the task's own phase;
    /// a `phase` that says otherwise (or is no phase at all) is only worth a
    /// warning, in the log and the run record, since the file is not lost
    /// over it. `phase: 0` or none for a task outside a phase is no
    /// contradiction.
    fn check_phase(
        &mut self,
        path: &str,
        report: &StatusReport,
        task_id: &str,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        if report.task_id.is_none() {
            return;
        }
        let actual = self.state.tasks[task_id].phase;
        let given = match (&report.unknown_phase, report.phase) {
            (Some(raw), _) => format!("phase {raw}, which is not a phase,"),
            (None, Some(p)) if actual != Some(p) => format!("phase {p}"),
            _ => return,
        };
        let (is, write) = match actual {
            Some(p) => (format!("is in phase {p}"), format!("`phase: {p}`")),
            None => ("is outside any phase".to_string(), "`phase: 0`".to_string()),
        };
        let message = format!(
            "{path}: gives {given} but task {task_id} {is}; the task's own phase counts (write {write} or leave phase out)"
        );
        self.log_task(task_id, at, format!("warning: {message}"), out);
        out.push(Action::Notice {
            level: NoticeLevel::Warn,
            message,
        });
    }

    /// A task that a status completed: its files, for `--git`.
    pub(super) fn commit_action(
        &self,
        task_id: &str,
        status_path: &str,
        report: &StatusReport,
        out: &mut Vec<Action>,
    ) {
        let t = &self.state.tasks[task_id];
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
        let step = t.step.as_deref().and_then(|s| self.state.playbook.step(s));
        let phase = t.phase.and_then(|p| self.state.playbook.phase(p));
        out.push(Action::Commit {
            task: t.id.clone(),
            agent: t.agent.clone(),
            action_word: match step {
                Some((_, s)) => s.action.clone(),
                None => crate::commit_msg::default_action(&t.agent).to_string(),
            },
            // A commit message is an argument of `git`: bounded like a task text.
            message_task: if report.task.trim().is_empty() {
                t.text.clone()
            } else {
                clip(&report.task).into_owned()
            },
            paths,
            branch: phase.map(|p| format!("gtm/phase-{}-{}", p.number, p.name)),
        });
    }

    /// A status names its task by `task_id`, else by agent (and phase when given).
    pub(super) fn match_task(&self, report: &StatusReport) -> Option<TaskId> {
        if let Some(id) = &report.task_id {
            return self
                .state
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

    pub(super) fn complete_task(&mut self, task_id: &str, at: Millis, out: &mut Vec<Action>) {
        let t = &self.state.tasks[task_id];
        let (run, step) = (t.run.clone(), t.step.clone());
        let missing = match &step {
            Some(s) => self.missing_step_outputs(s),
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
            if let Some(s) = self
                .state
                .runs
                .get_mut(&run)
                .and_then(|r| r.steps.get_mut(&step))
            {
                s.state = StepState::AwaitingOutputs {
                    missing: missing.clone(),
                };
            }
            let agent = self.state.tasks[task_id].agent.clone();
            self.new_task(
                NewTask {
                    agent: "coordinator".into(),
                    run: Some(run.clone()),
                    phase: self.state.tasks[task_id].phase,
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

    pub(super) fn fail_task(
        &mut self,
        task_id: &str,
        reason: String,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let t = &self.state.tasks[task_id];
        let retries = self
            .state
            .agents
            .get(&t.agent)
            .map(|a| a.retries)
            .unwrap_or(0);
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
    pub(super) fn escalate(
        &mut self,
        task_id: &str,
        what: String,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let t = self.state.tasks[task_id].clone();
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

    pub(super) fn end_task(
        &mut self,
        task_id: &str,
        outcome: Outcome,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let label = outcome.label();
        self.mutate_task(task_id, |t| {
            t.state = TaskState::Done { outcome };
            t.ended_at = Some(at);
        });
        let t = &self.state.tasks[task_id];
        out.push(Action::TaskEnded {
            task: task_id.to_string(),
            agent: t.agent.clone(),
            outcome: label.clone(),
            duration_ms: t.started_at.map(|s| at.saturating_sub(s)),
        });
        let agent = self.state.tasks[task_id].agent.clone();
        let has_command = self.state.agents.get(&agent).is_some_and(|a| a.has_command);
        if !has_command {
            out.push(Action::CloseInbox {
                agent,
                task: task_id.to_string(),
            });
        }
        // A process still running may read its prompt: the files go at its exit.
        if !self.state.tasks[task_id].process_alive {
            out.push(Action::DropTaskFiles {
                task: task_id.to_string(),
            });
        }
        self.log_task(task_id, at, label, out);
        self.on_task_ended(task_id, at, out);
    }

    pub(super) fn log_task(
        &mut self,
        task_id: &str,
        at: Millis,
        what: String,
        out: &mut Vec<Action>,
    ) {
        let t = &self.state.tasks[task_id];
        if let Some(run) = t.run.clone() {
            let line = format!("{} {}: {}", t.id, t.agent, what);
            if let Some(r) = self.state.runs.get_mut(&run) {
                r.note(at, line);
                out.push(Action::RecordChanged { run });
            }
        }
    }

    /// An agent run ends with its only task; a decision's last apply task,
    /// or a review upholding an applied decision, closes its conflict.
    pub(super) fn on_task_ended(&mut self, task_id: &str, at: Millis, out: &mut Vec<Action>) {
        match self.state.tasks[task_id].kind.clone() {
            TaskKind::ApplyDecision { decision, .. } => {
                self.maybe_close_conflict(&decision, at, out)
            }
            TaskKind::ConflictReview { conflict } => {
                self.on_review_ended(&conflict, task_id, at, out)
            }
            _ => {}
        }
        let t = &self.state.tasks[task_id];
        let Some(run) = t.run.clone() else { return };
        let TaskState::Done { outcome } = &t.state else {
            return;
        };
        let outcome = outcome.clone();
        let r = self.state.runs.get_mut(&run).unwrap();
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

    /// A gtmd started: the processes of the one before are gone, whatever
    /// the journal last said of them. Tasks still running wait for
    /// [`Engine::on_caught_up`], after the scan has read what they wrote.
    pub(super) fn on_restarted(&mut self, at: Millis, out: &mut Vec<Action>) {
        self.state.catching_up = true;
        let alive: Vec<TaskId> = self
            .state
            .tasks
            .values()
            .filter(|t| t.process_alive)
            .map(|t| t.id.clone())
            .collect();
        for id in &alive {
            self.mutate_task(id, |t| t.process_alive = false);
            if self.state.tasks[id].state == TaskState::Running {
                self.log_task(id, at, "interrupted: gtmd stopped while it ran".into(), out);
            }
        }
    }

    /// The start-up scan is handled: a task still running from before runs
    /// again if its agent has a command (tasks are at-least-once; the same
    /// attempt, as the interruption was not the agent's failure), and is
    /// handed to its person again (the inbox file rewritten) if not.
    pub(super) fn on_caught_up(&mut self, at: Millis, out: &mut Vec<Action>) {
        self.state.catching_up = false;
        let running: Vec<TaskId> = self
            .open_tasks()
            .filter(|t| t.state == TaskState::Running)
            .map(|t| t.id.clone())
            .collect();
        let (mut rerun, mut resumed) = (Vec::new(), Vec::new());
        for id in running {
            let agent = self.state.tasks[&id].agent.clone();
            if self.state.agents.get(&agent).is_some_and(|a| a.has_command) {
                self.mutate_task(&id, |t| t.state = TaskState::Queued);
                self.log_task(&id, at, "runs again after a restart".into(), out);
                rerun.push(id);
            } else {
                self.log_task(&id, at, "still in the inbox after a restart".into(), out);
                out.push(Action::StartTask {
                    task: self.spec_for(&self.state.tasks[&id]),
                });
                resumed.push(id);
            }
        }
        if !rerun.is_empty() || !resumed.is_empty() {
            let list = |v: &[TaskId]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            out.push(Action::Notice {
                level: NoticeLevel::Info,
                message: format!(
                    "tasks that were running when gtmd stopped: {} run again ({}); {} still in their inbox ({})",
                    rerun.len(),
                    list(&rerun),
                    resumed.len(),
                    list(&resumed)
                ),
            });
        }
    }

    pub(super) fn on_exit(
        &mut self,
        task_id: &str,
        exit: &ExitOutcome,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        if self
            .mutate_task(task_id, |t| t.process_alive = false)
            .is_none()
        {
            return;
        }
        let t = &self.state.tasks[task_id];
        if !t.is_open() {
            // Ended earlier (its status came first): now nothing reads its files.
            out.push(Action::DropTaskFiles {
                task: task_id.to_string(),
            });
            return;
        }
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
                Some(s) => self.missing_step_outputs(s),
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

    // ---- tasks ----

    /// A step of the playbook. `None` only if a playbook without it was
    /// loaded while one of its tasks was open, which a reload refuses
    /// ([`Engine::playbook_change_problems`]); its outputs are then unknown.
    pub(super) fn step_def(&self, id: &str) -> Option<&Step> {
        self.state.playbook.step(id).map(|(_, s)| s)
    }

    /// The outputs of a step that are missing or empty.
    pub(super) fn missing_step_outputs(&self, step: &str) -> Vec<String> {
        match self.step_def(step) {
            Some(s) => self.missing_outputs(&s.outputs),
            None => Vec::new(),
        }
    }

    pub(super) fn new_task(&mut self, n: NewTask, at: Millis, out: &mut Vec<Action>) -> TaskId {
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
        let id = format!("t{:04}-{label}", self.state.next_task);
        self.state.next_task += 1;
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
            seq: self.state.next_task - 1,
        };
        self.insert_task(task);
        self.log_task(&id, at, "queued".into(), out);
        id
    }

    pub(super) fn agent_busy(&self, agent: &str) -> bool {
        self.index.busy.get(agent).is_some_and(|n| *n > 0)
    }

    /// Tasks not yet done, oldest first.
    pub(super) fn open_tasks(&self) -> impl Iterator<Item = &Task> {
        self.index.open.values().map(|id| &self.state.tasks[id])
    }

    /// One task at a time per agent, oldest first. Nothing starts while the
    /// start-up scan is handled: a task that ran when gtmd stopped may have
    /// ended meanwhile, and only the scan can tell.
    pub(super) fn dispatch(&mut self, at: Millis, out: &mut Vec<Action>) {
        if self.state.catching_up {
            return;
        }
        let next: Vec<(String, TaskId)> = self
            .index
            .queues
            .iter()
            .filter(|(agent, q)| !q.is_empty() && !self.agent_busy(agent))
            .filter_map(|(agent, q)| q.values().next().map(|id| (agent.clone(), id.clone())))
            .collect();
        for (agent, id) in next {
            let has_command = self.state.agents.get(&agent).is_some_and(|a| a.has_command);
            self.mutate_task(&id, |t| {
                t.state = TaskState::Running;
                t.started_at.get_or_insert(at);
                t.process_alive = has_command;
            });
            let spec = self.spec_for(&self.state.tasks[&id]);
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

    pub(super) fn spec_for(&self, t: &Task) -> TaskSpec {
        let step = t.step.as_deref().and_then(|s| self.step_def(s));
        let run = t.run.as_deref().and_then(|r| self.state.runs.get(r));
        let context = self
            .state
            .playbook
            .routes
            .iter()
            .filter(|r| r.kind == RouteKind::Context && (r.to == "all" || r.to == t.agent))
            .flat_map(|r| {
                let prefix = r.path.trim_end_matches('*').to_string();
                self.state
                    .files
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
                .and_then(|p| self.state.playbook.phase(p))
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
