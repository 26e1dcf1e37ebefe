//! Tasks run as batch jobs of a cluster scheduler: a job's name is journaled
//! before it is submitted and its id once it is, and a gtmd that starts
//! again follows the jobs the one before submitted instead of running their
//! tasks again: jobs are not gtmd's children and outlive it.

use super::*;

impl Engine {
    /// A start is about to be submitted as the job `name`.
    pub(super) fn on_job_submitting(&mut self, task_id: &str, name: &str, out: &mut Vec<Action>) {
        let Some(t) = self.state.tasks.get(task_id) else {
            return;
        };
        if t.state != TaskState::Running {
            return;
        }
        self.mutate_task(task_id, |t| {
            t.job = Some(Job {
                name: name.to_string(),
                id: None,
            });
            t.submissions += 1;
        });
        out.push(Action::SubmitJob {
            task: self.spec_for(&self.state.tasks[task_id]),
            name: name.to_string(),
        });
    }

    /// The scheduler took the job.
    pub(super) fn on_job_submitted(&mut self, task_id: &str, name: &str, id: &str) {
        self.mutate_task(task_id, |t| {
            if let Some(job) = t.job.as_mut().filter(|j| j.name == name) {
                job.id = Some(id.to_string());
            }
        });
    }

    /// At a start: the jobs still alive when the gtmd before stopped are
    /// followed again, and those of cancelled tasks cancelled. A task whose job is queued or running is still
    /// running, its agent still busy; a task that ended before its job did
    /// waits for the job's end like any other process.
    pub(super) fn reattach_jobs(&mut self, at: Millis, out: &mut Vec<Action>) {
        let jobs: Vec<(TaskId, Job, bool, bool)> = self
            .state
            .tasks
            .values()
            .filter(|t| t.process_alive)
            .filter_map(|t| {
                let running = t.is_open() && t.state == TaskState::Running;
                let cancelled = matches!(
                    t.state,
                    TaskState::Done {
                        outcome: Outcome::Cancelled
                    }
                );
                t.job.clone().map(|j| (t.id.clone(), j, running, cancelled))
            })
            .collect();
        for (id, job, running, cancelled) in jobs {
            if running {
                self.log_task(
                    &id,
                    at,
                    format!("its job {} is followed again after a restart", job.name),
                    out,
                );
            }
            out.push(Action::ReattachJob {
                task: self.spec_for(&self.state.tasks[&id]),
                name: job.name,
                id: job.id,
                submit_if_missing: running,
            });
            // Cancelled (by a person or a hard cap) while the gtmd before
            // could not stop its job (it stopped first, or the cancel
            // waited for this start): the job is cancelled now.
            if cancelled {
                out.push(Action::StopTask { task: id });
            }
        }
    }

    /// Whether a task's start is a job a restart must not take from it.
    pub(super) fn runs_as_job(&self, task: &Task) -> bool {
        task.job.is_some() && task.process_alive
    }
}
