//! The guide's rules, one test each, driven through `Engine::handle` only.

use super::*;
use crate::gate_checks::CheckResult;
use crate::playbook::RouteKind;
use crate::protocol::{Checkbox, StatusReport, TaskStatus};

mod escalation;
mod gates;
mod phases;
mod reload;
mod replay;
mod requests;
mod routes;
mod status;
mod tasks;

struct Bus {
    e: Engine,
    now: Millis,
    n: u64,
}

fn policies(has_command: bool, retries: u32) -> BTreeMap<String, AgentPolicy> {
    crate::agents::AGENTS
        .iter()
        .map(|a| {
            (
                a.to_string(),
                AgentPolicy {
                    retries,
                    has_command,
                },
            )
        })
        .collect()
}

impl Bus {
    fn new() -> Bus {
        Bus::with(true, 1)
    }
    fn with(has_command: bool, retries: u32) -> Bus {
        Bus {
            e: Engine::new(Playbook::default_playbook(), policies(has_command, retries)),
            now: 1_764_000_000_000,
            n: 0,
        }
    }
    fn send(&mut self, ev: Event) -> Vec<Action> {
        self.now += 10;
        self.e.handle(&ev)
    }
    fn at(&mut self) -> Millis {
        self.now += 10;
        self.now
    }
    fn file(&mut self, path: &str, content: FileContent) -> Vec<Action> {
        self.n += 1;
        let at = self.at();
        self.send(Event::FileChanged {
            path: path.into(),
            hash: format!("h{}", self.n),
            size: 10,
            mtime_ns: 0,
            at,
            content,
        })
    }
    fn plain(&mut self, path: &str) -> Vec<Action> {
        self.file(path, FileContent::Plain)
    }
    fn request(&mut self, phases: &[u8], scenario: Option<&str>, force: bool) -> Vec<Action> {
        let at = self.at();
        self.send(Event::RunRequested {
            request: RunRequest {
                id: format!("req{}", self.now),
                kind: RunKind::Phases {
                    phases: phases.to_vec(),
                },
                config: Default::default(),
                config_path: "CONFIG.md".into(),
                scenario: scenario.map(String::from),
                force,
                budget_secs: None,
            },
            at,
        })
    }
    fn status(&mut self, agent: &str, task_id: Option<&str>, status: TaskStatus) -> Vec<Action> {
        let report = StatusReport {
            agent: agent.into(),
            phase: None,
            task: "t".into(),
            status,
            outputs: vec![],
            blockers: vec!["need budget".into()],
            next: None,
            task_id: task_id.map(String::from),
            unknown_phase: None,
        };
        self.file(
            &format!("status/{agent}.md"),
            FileContent::Status { report },
        )
    }
    /// Write every output of a step (directories get one file).
    fn write_outputs(&mut self, step: &str) {
        let outputs = self.e.playbook().step(step).unwrap().1.outputs.clone();
        for o in outputs {
            if o.ends_with('/') {
                self.plain(&format!("{o}item.md"));
            } else {
                self.plain(&o);
            }
        }
    }
    fn exit(&mut self, task: &str, code: i32) -> Vec<Action> {
        let at = self.at();
        self.send(Event::TaskExited {
            task: task.into(),
            exit: ExitOutcome::Code { code },
            at,
        })
    }
    /// Do a step the way an agent does: outputs, then status complete.
    fn finish_step(&mut self, step: &str) -> Vec<Action> {
        self.write_outputs(step);
        let task = self.task_of(step);
        let agent = self.e.task(&task).unwrap().agent.clone();
        let mut a = self.status(&agent, Some(&task), TaskStatus::Complete);
        a.extend(self.exit(&task, 0));
        a
    }
    fn task_of(&self, step: &str) -> TaskId {
        self.e
            .tasks()
            .values()
            .filter(|t| t.step.as_deref() == Some(step))
            .max_by_key(|t| t.seq)
            .unwrap_or_else(|| panic!("no task for step {step}"))
            .id
            .clone()
    }
    fn run_id(&self) -> RunId {
        self.e.runs().keys().last().unwrap().clone()
    }
    fn evaluate(&mut self, phase: u8, pass: bool) -> Vec<Action> {
        let run = self.run_id();
        let at = self.at();
        self.send(Event::GateEvaluated {
            run,
            phase,
            checks: vec![CheckResult {
                name: "outputs exist".into(),
                passed: pass,
                detail: if pass {
                    "all there".into()
                } else {
                    "x.md is missing".into()
                },
            }],
            at,
        })
    }
    fn tick_gate(&mut self, phase: u8, leave_unticked: usize) -> Vec<Action> {
        let p = self.e.playbook().phase(phase).unwrap().clone();
        let boxes = p
            .gate
            .checklist
            .iter()
            .enumerate()
            .map(|(i, t)| Checkbox {
                text: t.clone(),
                checked: i >= leave_unticked,
                line: i + 1,
            })
            .collect();
        self.file(&gate_path(&p), FileContent::Gate { boxes })
    }
}

fn started(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartTask { task } => {
                Some(task.step.clone().unwrap_or_else(|| task.id.clone()))
            }
            _ => None,
        })
        .collect()
}

fn step_state(b: &Bus, step: &str) -> StepState {
    b.e.run(&b.run_id()).unwrap().steps[step].state.clone()
}

fn pass_phase(b: &mut Bus, phase: u8) -> Vec<Action> {
    let steps: Vec<String> =
        b.e.playbook()
            .phase(phase)
            .unwrap()
            .steps
            .iter()
            .map(|s| s.id.clone())
            .collect();
    // Phase 4 has dependencies; finish steps as they become active.
    let mut guard = 0;
    while steps.iter().any(|s| step_state(b, s) != StepState::Done) {
        guard += 1;
        assert!(guard < 50, "phase {phase} does not finish");
        for s in &steps {
            if matches!(step_state(b, s), StepState::Active { .. }) {
                b.finish_step(s);
            }
        }
    }
    let mut all = b.evaluate(phase, true);
    all.extend(b.tick_gate(phase, 0));
    all.extend(b.evaluate(phase, true));
    all
}

fn conflict(b: &mut Bus, path: &str) -> Vec<Action> {
    b.file(
        path,
        FileContent::Conflict {
            conflict: crate::protocol::escalation::Conflict {
                title: "Lead scoring thresholds disagree".into(),
                ..Default::default()
            },
        },
    )
}

fn decision(
    b: &mut Bus,
    path: &str,
    resolves: Option<&str>,
    affected: &[&str],
    problems: &[&str],
) -> Vec<Action> {
    b.file(
        path,
        FileContent::Decision {
            decision: crate::protocol::escalation::Decision {
                title: "MQL at 60".into(),
                resolves: resolves.map(String::from),
                affected: affected.iter().map(|s| s.to_string()).collect(),
                problems: problems.iter().map(|s| s.to_string()).collect(),
            },
        },
    )
}

fn tasks_of_kind(b: &Bus, f: impl Fn(&TaskKind) -> bool) -> Vec<Task> {
    b.e.tasks()
        .values()
        .filter(|t| f(&t.kind))
        .cloned()
        .collect()
}

/// The latest review task of a conflict.
fn review_of(b: &Bus, conflict: &str) -> Task {
    tasks_of_kind(
        b,
        |k| matches!(k, TaskKind::ConflictReview { conflict: c } if c == conflict),
    )
    .into_iter()
    .max_by_key(|t| t.seq)
    .unwrap_or_else(|| panic!("no review of {conflict}"))
}
