//! A run's history, the lines of its run record: what happened to its
//! tasks, conflicts and decisions, as it happened.

use super::*;

impl Engine {
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

    pub(super) fn log_run(
        &mut self,
        run: Option<RunId>,
        at: Millis,
        line: String,
        out: &mut Vec<Action>,
    ) {
        if let Some(r) = run.and_then(|r| self.state.runs.get_mut(&r)) {
            r.note(at, line);
            out.push(Action::RecordChanged { run: r.id.clone() });
        }
    }
}
