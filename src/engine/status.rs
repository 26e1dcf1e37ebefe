//! A status file answers a task: matched to its task by `task_id`, else by
//! agent (and phase), it completes, blocks or fails that task, and a
//! completion asks for a commit of the files it lists (`--git`). A status
//! that answers no open task is refused, saying how to name one.

use super::*;
use crate::diagnostic::Diagnostic;
use crate::protocol::{StatusReport, TaskStatus};

impl Engine {
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
            TaskStatus::Complete if self.holds_status(&task_id) => {
                self.mutate_task(&task_id, |t| {
                    t.held = Some(HeldStatus {
                        path: path.to_string(),
                        report: report.clone(),
                    })
                });
                self.log_task(
                    &task_id,
                    at,
                    "complete: held until its process exits and its writes are checked".into(),
                    out,
                );
            }
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

    /// Whether a `complete` status of this task waits for its process's
    /// exit: its runtime tells only then what the task wrote, and a task
    /// that wrote another agent's files must fail, not complete.
    fn holds_status(&self, task_id: &str) -> bool {
        let t = &self.state.tasks[task_id];
        t.process_alive
            && t.state == TaskState::Running
            && self
                .state
                .agents
                .get(&t.agent)
                .is_some_and(|a| a.audits_writes)
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
}
