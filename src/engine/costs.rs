//! What tasks cost, and the caps that stop a run spending more.
//!
//! A runtime's report comes with a task's exit: its cost adds to the task
//! (over all its attempts), its session is kept for the next attempt to
//! resume, its denials are kept to say why outputs are missing. A run's
//! spend is the sum of its tasks'. Once it reaches the run's `--max-cost`
//! (dollars) or `--max-tokens` (every token reported, for runtimes whose
//! tokens gtmd cannot price, or any other), no task of the run starts again; running tasks finish (or are stopped,
//! with `--hard`), and the run ends, failed, naming the cap and the spend.

use super::*;

impl Engine {
    /// Take what a task's runtime reported of its last attempt; the run's
    /// record shows what it cost.
    pub(super) fn take_report(
        &mut self,
        task_id: &str,
        report: &RuntimeReport,
        out: &mut Vec<Action>,
    ) {
        if let Some(run) = self.state.tasks.get(task_id).and_then(|t| t.run.clone()) {
            out.push(Action::RecordChanged { run });
        }
        self.mutate_task(task_id, |t| {
            if let Some(c) = &report.cost {
                t.cost.get_or_insert_with(Cost::default).add(c);
            }
            if report.session.is_some() {
                t.session = report.session.clone();
            }
            for d in &report.denials {
                if !t.denials.contains(d) {
                    t.denials.push(d.clone());
                }
            }
        });
    }

    /// What a run has spent so far, as its tasks' runtimes reported.
    pub fn run_cost(&self, run: &str) -> Option<Cost> {
        Cost::total(
            self.state
                .tasks
                .values()
                .filter(|t| t.run.as_deref() == Some(run))
                .map(|t| &t.cost),
        )
    }

    /// What a task of `run` may still spend under the run's cap.
    pub(super) fn run_budget_left(&self, run: Option<&str>) -> Option<f64> {
        let r = self.state.runs.get(run?)?;
        let cap = r.request.max_cost?;
        let spent = self.run_cost(&r.id).map_or(0.0, |c| c.usd);
        Some((cap - spent).max(0.0))
    }

    /// Whether the tasks of `run` may start: not once its cap is reached.
    pub(super) fn run_may_start(&self, run: Option<&str>) -> bool {
        run.and_then(|r| self.state.runs.get(r))
            .is_none_or(|r| r.capped.is_none())
    }

    /// Which of the run's caps its spend has reached, if any, said for
    /// people: the dollars (`--max-cost`) or the tokens (`--max-tokens`).
    fn cap_reached(&self, r: &Run) -> Option<String> {
        let spent = self.run_cost(&r.id).unwrap_or_default();
        if let Some(cap) = r.request.max_cost.filter(|cap| spent.usd >= *cap) {
            return Some(format!(
                "its cost cap of ${cap:.2} (--max-cost) is reached: ${:.4} spent",
                spent.usd
            ));
        }
        let cap = r.request.max_tokens.filter(|cap| spent.tokens() >= *cap)?;
        Some(format!(
            "its token cap of {cap} (--max-tokens) is reached: {} tokens used",
            spent.tokens()
        ))
    }

    /// A task of `run` has spent: if one of the run's caps is reached now,
    /// it starts nothing more (and with `--hard` its running tasks are
    /// stopped).
    pub(super) fn check_cap(&mut self, run: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(r) = self.state.runs.get(run) else {
            return;
        };
        if r.capped.is_some() || !r.is_active() {
            return;
        }
        let Some(reason) = self.cap_reached(r) else {
            return;
        };
        let hard = r.request.hard_cap;
        let r = self.state.runs.get_mut(run).unwrap();
        r.capped = Some(reason.clone());
        r.note(
            at,
            format!(
                "{reason}; no task of it starts again{}",
                if hard {
                    ", and running tasks are stopped (--hard)"
                } else {
                    "; running tasks finish"
                }
            ),
        );
        out.push(Action::RecordChanged {
            run: run.to_string(),
        });
        out.push(Action::Notice {
            level: NoticeLevel::Warn,
            message: format!("run {run}: {reason}"),
        });
        if hard {
            let running: Vec<TaskId> = self
                .open_tasks()
                .filter(|t| t.run.as_deref() == Some(run) && t.process_alive)
                .map(|t| t.id.clone())
                .collect();
            for id in running {
                out.push(Action::StopTask { task: id.clone() });
                self.end_task(&id, Outcome::Cancelled, at, out);
            }
        }
    }

    /// Capped runs whose last running task has ended (by a status, an exit,
    /// a failure waiting for its retry, a restart) end: checked after every
    /// event, as it is cheap while no run is capped.
    pub(super) fn end_capped_runs(&mut self, at: Millis, out: &mut Vec<Action>) {
        let capped: Vec<RunId> = self
            .state
            .runs
            .values()
            .filter(|r| r.is_active() && r.capped.is_some())
            .map(|r| r.id.clone())
            .collect();
        for run in capped {
            self.maybe_end_capped_run(&run, at, out);
        }
    }

    /// A capped run ends once none of its tasks runs: what is left of it is
    /// cancelled and the run fails with the cap as its reason.
    fn maybe_end_capped_run(&mut self, run: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(r) = self.state.runs.get(run) else {
            return;
        };
        let (Some(reason), true) = (r.capped.clone(), r.is_active()) else {
            return;
        };
        let running = self.open_tasks().any(|t| {
            t.run.as_deref() == Some(run) && (t.state == TaskState::Running || t.process_alive)
        });
        if running {
            return;
        }
        let r = self.state.runs.get_mut(run).unwrap();
        r.state = RunState::Failed {
            reason: reason.clone(),
        };
        r.ended_at = Some(at);
        r.note(at, format!("run failed: {reason}"));
        out.push(Action::RecordChanged {
            run: run.to_string(),
        });
        out.push(Action::RunFinished {
            run: run.to_string(),
            ok: false,
            summary: reason,
        });
        let left: Vec<TaskId> = self
            .open_tasks()
            .filter(|t| t.run.as_deref() == Some(run))
            .map(|t| t.id.clone())
            .collect();
        for id in left {
            self.end_task(&id, Outcome::Cancelled, at, out);
        }
    }
}
