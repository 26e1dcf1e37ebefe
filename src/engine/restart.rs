//! A restart of gtmd: the agent processes of the one before are gone, and
//! the tasks they ran run again (command agents) or stay with their person
//! (inbox) once the start-up scan has read what they wrote meanwhile.

use super::*;

impl Engine {
    /// A gtmd started: the processes of the one before are gone, whatever
    /// the journal last said of them. Tasks still running wait for
    /// [`Engine::on_caught_up`], after the scan has read what they wrote.
    pub(super) fn on_restarted(&mut self, at: Millis, out: &mut Vec<Action>) {
        self.state.catching_up = true;
        self.state.stopping = false;
        // A job of a cluster scheduler outlives gtmd: it is followed again.
        self.reattach_jobs(at, out);
        let alive: Vec<TaskId> = self
            .state
            .tasks
            .values()
            .filter(|t| t.process_alive && !self.runs_as_job(t))
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
            .filter(|t| t.state == TaskState::Running && !self.runs_as_job(t))
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
}
