//! Phases and steps: a phase starts its steps as their dependencies are
//! done, a step is done when its task completes with its outputs present,
//! and the last step done opens the phase's gate. Also why a run is not
//! finished, for `gtmd status` and a run that stalls.

use super::*;
use crate::playbook::Step;

impl Engine {
    pub(super) fn start_phase(&mut self, run: &str, at: Millis, out: &mut Vec<Action>) {
        let phase = self.state.runs[run].current_phase().unwrap();
        let name = self
            .state
            .playbook
            .phase(phase)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let r = self.state.runs.get_mut(run).unwrap();
        r.note(at, format!("phase {phase} {name} started"));
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: format!("run {run}: phase {phase} {name} started"),
        });
        self.start_ready_steps(run, at, out);
    }

    pub(super) fn start_ready_steps(&mut self, run: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(phase) = self.state.runs[run].current_phase() else {
            return;
        };
        // A run's steps are those of its phases when it started; a reload
        // that changes them is refused, so a step missing here is skipped.
        let Some(steps) = self.state.playbook.phase(phase).map(|p| p.steps.clone()) else {
            return;
        };
        for step in steps {
            let r = &self.state.runs[run];
            if r.steps.get(&step.id).map(|s| &s.state) != Some(&StepState::Waiting) {
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
                .state
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

    pub(super) fn step_done(&mut self, run: &str, step: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(r) = self.state.runs.get_mut(run) else {
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
        r.note(at, format!("step {step} done"));
        out.push(Action::RecordChanged {
            run: run.to_string(),
        });
        if r.current_phase() != Some(phase) {
            return;
        }
        self.start_ready_steps(run, at, out);
        let r = &self.state.runs[run];
        let all_done = r
            .steps
            .values()
            .filter(|s| s.phase == phase)
            .all(|s| s.state == StepState::Done);
        if all_done && !r.gates.contains_key(&phase) {
            self.open_gate(run, phase, at, out);
        }
    }

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

    pub(super) fn missing_outputs(&self, outputs: &[String]) -> Vec<String> {
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
}
