//! A new playbook while work is in progress: what it would pull from under
//! an active run or an open task, for the daemon to refuse such a reload.

use super::*;

impl Engine {
    /// What a new playbook would pull from under the work in progress, one
    /// line per problem: a phase of an active run that it drops or renames; a
    /// step of such a phase that it drops, moves to another phase, or adds
    /// (a run's steps are fixed when it starts, and its gates check them);
    /// the step of an open task that it drops. The daemon refuses such a
    /// playbook at reload and keeps the old one. Anything else may change
    /// while a run is active: a step's agent (tasks already given out stay
    /// with theirs; tasks the step gives later go to the new one), its title,
    /// inputs, outputs, estimate and dependencies, gates, routes, scenarios,
    /// and phases and steps no active run uses.
    pub fn playbook_change_problems(&self, new: &Playbook) -> Vec<String> {
        let mut problems = Vec::new();
        for r in self.state.runs.values().filter(|r| r.is_active()) {
            for &number in &r.phases {
                let Some(old) = self.state.playbook.phase(number) else {
                    continue;
                };
                let Some(phase) = new.phase(number) else {
                    problems.push(format!(
                        "run {} has phase {number} {}, which the new playbook drops",
                        r.id, old.name
                    ));
                    continue;
                };
                if phase.name != old.name {
                    problems.push(format!(
                        "run {} has phase {number} {}, which the new playbook renames to {}",
                        r.id, old.name, phase.name
                    ));
                }
                for step in r.steps.values().filter(|s| s.phase == number) {
                    match new.step(&step.id) {
                        None => problems.push(format!(
                            "run {} has step {} in phase {number}, which the new playbook drops (or renames)",
                            r.id, step.id
                        )),
                        Some((p, _)) if p.number != number => problems.push(format!(
                            "run {} has step {} in phase {number}, which the new playbook moves to phase {}",
                            r.id, step.id, p.number
                        )),
                        Some(_) => {}
                    }
                }
                for s in phase.steps.iter().filter(|s| !r.steps.contains_key(&s.id)) {
                    problems.push(format!(
                        "run {} is running phase {number} {} without step {}, which the new playbook adds to it",
                        r.id, old.name, s.id
                    ));
                }
            }
        }
        for t in self.open_tasks() {
            let Some(step) = &t.step else { continue };
            let in_active_run = t
                .run
                .as_ref()
                .and_then(|r| self.state.runs.get(r))
                .is_some_and(|r| r.is_active() && r.steps.contains_key(step));
            if !in_active_run && new.step(step).is_none() {
                problems.push(format!(
                    "open task {} is for step {step}, which the new playbook drops (or renames)",
                    t.id
                ));
            }
        }
        problems
    }
}
