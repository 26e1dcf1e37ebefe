//! How a task ends: complete once its step's outputs exist, failed and
//! retried with a backoff, escalated to the coordinator when it is blocked
//! or out of retries, cancelled. The end of a task may end an agent run or
//! close a conflict.

use super::*;

impl Engine {
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

    pub(super) fn on_exit(
        &mut self,
        task_id: &str,
        exit: &ExitOutcome,
        report: Option<&RuntimeReport>,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        if self
            .mutate_task(task_id, |t| t.process_alive = false)
            .is_none()
        {
            return;
        }
        if let Some(r) = report {
            self.take_report(task_id, r, out);
        }
        self.exit_ends(task_id, exit, report, at, out);
        // What it spent counts against its run's cap.
        if let Some(run) = self.state.tasks[task_id].run.clone() {
            self.check_cap(&run, at, out);
        }
    }

    /// What a process's end means for its task.
    fn exit_ends(
        &mut self,
        task_id: &str,
        exit: &ExitOutcome,
        report: Option<&RuntimeReport>,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
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
        if let Some(written) = report.map(|r| &r.unowned_writes).filter(|w| !w.is_empty()) {
            // Its runtime could not stop these writes; whatever it reported,
            // the task did what its agent may not do.
            let reason = format!(
                "wrote files it does not own: {}",
                crate::bounds::some_of(written, 20, 300, ", ")
            );
            return self.fail_now(task_id, reason, at, out);
        }
        if let Some(held) = self.mutate_task(task_id, |t| t.held.take()).flatten() {
            // Its `complete` status waited for this exit, which found
            // nothing wrong: the status counts now.
            self.complete_task(task_id, at, out);
            self.commit_action(task_id, &held.path, &held.report, out);
            return;
        }
        let t = &self.state.tasks[task_id];
        let missing = match &t.step {
            Some(s) => self.missing_step_outputs(s),
            None => Vec::new(),
        };
        if exit.success() && missing.is_empty() {
            self.complete_task(task_id, at, out);
            return;
        }
        match report.and_then(|r| r.error.clone()) {
            Some(ApiError::Transient { status, message }) => {
                let e = ApiError::Transient { status, message };
                return self.retry_after_api_error(task_id, e.describe(), at, out);
            }
            // Trying again cannot help: the task fails now, with the
            // runtime's own words.
            Some(e @ ApiError::Fatal { .. }) => {
                return self.fail_now(task_id, e.describe(), at, out)
            }
            None => {}
        }
        if report.is_some_and(|r| r.over_budget) {
            let reason = "stopped at the spending limit it was given".to_string();
            return self.fail_now(task_id, reason, at, out);
        }
        let denied = &self.state.tasks[task_id].denials;
        if !missing.is_empty() && !denied.is_empty() {
            // The same writes would be denied again.
            let reason = format!(
                "its writes were denied (it does not own them): {}; missing: {}",
                crate::bounds::some_of(
                    &denied.iter().map(Denial::describe).collect::<Vec<_>>(),
                    20,
                    300,
                    ", "
                ),
                missing.join(", ")
            );
            return self.fail_now(task_id, reason, at, out);
        }
        let reason = if exit.success() {
            format!(
                "exited 0 without a status and without its outputs: {}",
                missing.join(", ")
            )
        } else {
            exit.describe()
        };
        self.fail_task(task_id, reason, at, out);
    }

    /// The backoff after a failure has passed: the next attempt is queued
    /// (the same attempt again after a passing API error).
    pub(super) fn on_retry_due(&mut self, task: &str) {
        self.mutate_task(task, |t| {
            if t.state == TaskState::RetryWait {
                t.state = TaskState::Queued;
                if !std::mem::take(&mut t.api_wait) {
                    t.attempt += 1;
                }
            }
        });
    }

    /// A rate limit, an overload, a server error: try again after a
    /// backoff, without using up the agent's retries, up to
    /// [`MAX_API_RETRIES`] times in a row.
    fn retry_after_api_error(
        &mut self,
        task_id: &str,
        reason: String,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let n = self.state.tasks[task_id].api_retries + 1;
        if n > MAX_API_RETRIES {
            let reason = format!("{reason} ({MAX_API_RETRIES} tries after API errors)");
            return self.fail_task(task_id, reason, at, out);
        }
        let delay_ms = backoff_ms(n);
        self.mutate_task(task_id, |t| {
            t.state = TaskState::RetryWait;
            t.api_retries = n;
            t.api_wait = true;
        });
        self.log_task(
            task_id,
            at,
            format!(
                "{reason}; trying again in {}s (not counted against its retries)",
                delay_ms / 1000
            ),
            out,
        );
        out.push(Action::ScheduleRetry {
            task: task_id.to_string(),
            delay_ms,
        });
    }

    /// Fail without retrying: what failed would fail the same way again.
    fn fail_now(&mut self, task_id: &str, reason: String, at: Millis, out: &mut Vec<Action>) {
        let attempts = self.state.tasks[task_id].attempt;
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
}

/// Passing API errors in a row a task may meet before it counts as failed.
pub const MAX_API_RETRIES: u32 = 5;

/// Exponential backoff for retries: 1 s, 2 s, 4 s, ... capped at 60 s.
pub fn backoff_ms(attempt: u32) -> u64 {
    1000u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(60_000)
}
