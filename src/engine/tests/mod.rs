//! The guide's rules, one test each, driven through `Engine::handle` only.
//!
//! A [`Bus`] plays the daemon and the agents: it sends the events they
//! would, a tick apart, and its builders ([`Bus::with_run`],
//! [`Bus::at_gate`]) give the setups the tests share. One file per rule
//! area.

use super::*;
use crate::gate_checks::CheckResult;
use crate::playbook::RouteKind;
use crate::protocol::{Checkbox, StatusReport, TaskStatus};

mod audited;
mod costs;
mod escalation;
mod gates;
mod jobs;
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
                    ..Default::default()
                },
            )
        })
        .collect()
}

impl Bus {
    /// Agents with a command and one retry, nothing running.
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
    /// A run of `phases` requested: the first steps have started.
    fn with_run(phases: &[u8]) -> Bus {
        Bus::new().running(phases)
    }
    /// This bus with a run of `phases` requested.
    fn running(mut self, phases: &[u8]) -> Bus {
        self.request(phases, None, false);
        self
    }
    /// A run of phases 1 to `phase` + 1 whose earlier phases have passed and
    /// whose `phase` has every step done: its gate is open, nothing ticked,
    /// its checks asked for (not yet evaluated).
    fn at_gate(phase: u8) -> Bus {
        let phases: Vec<u8> = (1..=(phase + 1).min(4)).collect();
        let mut b = Bus::with_run(&phases);
        for p in 1..phase {
            b.pass_phase(p);
        }
        b.finish_steps(phase);
        b
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
    /// A version of a file with the content hash given: the same hash is
    /// the same version.
    fn version(&mut self, path: &str, hash: &str, content: FileContent) -> Vec<Action> {
        let at = self.at();
        self.send(Event::FileChanged {
            path: path.into(),
            hash: hash.into(),
            size: 10,
            mtime_ns: 0,
            at,
            content,
        })
    }
    fn remove(&mut self, path: &str) -> Vec<Action> {
        let at = self.at();
        self.send(Event::FileRemoved {
            path: path.into(),
            at,
        })
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
                max_cost: None,
                hard_cap: false,
                max_tokens: None,
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
            report: None,
            at,
        })
    }
    fn retry_due(&mut self, task: &str) -> Vec<Action> {
        let at = self.at();
        self.send(Event::RetryDue {
            task: task.into(),
            at,
        })
    }
    fn cancel(&mut self, target: CancelTarget, reason: Option<&str>) -> Vec<Action> {
        let at = self.at();
        self.send(Event::CancelRequested {
            target,
            reason: reason.map(String::from),
            at,
        })
    }
    /// Give the engine another playbook, unchecked, as a journaled configuration.
    fn swap_playbook(&mut self, pb: Playbook) {
        let agents = self.e.agents().clone();
        let ev = self.e.configure(&pb, agents, 0);
        self.e.handle(&ev);
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
    /// Finish every step of `phase` as it becomes active (phase 4 has
    /// dependencies), in the playbook's order.
    fn finish_steps(&mut self, phase: u8) {
        let steps: Vec<String> = self
            .e
            .playbook()
            .phase(phase)
            .unwrap()
            .steps
            .iter()
            .map(|s| s.id.clone())
            .collect();
        let mut guard = 0;
        while steps.iter().any(|s| step_state(self, s) != StepState::Done) {
            guard += 1;
            assert!(guard < 50, "phase {phase} does not finish");
            for s in &steps {
                if matches!(step_state(self, s), StepState::Active { .. }) {
                    self.finish_step(s);
                }
            }
        }
    }
    /// Finish `phase`'s steps, then pass its gate: checks pass, every box ticked.
    fn pass_phase(&mut self, phase: u8) -> Vec<Action> {
        self.finish_steps(phase);
        let mut all = self.evaluate(phase, true);
        all.extend(self.tick_gate(phase, 0));
        all.extend(self.evaluate(phase, true));
        all
    }
    /// The gate file of `phase` with its checklist, the first
    /// `leave_unticked` boxes unticked and the rest ticked.
    fn gate_file(&self, phase: u8, leave_unticked: usize) -> (String, FileContent) {
        let p = self.e.playbook().phase(phase).unwrap();
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
        (gate_path(p), FileContent::Gate { boxes })
    }
    fn tick_gate(&mut self, phase: u8, leave_unticked: usize) -> Vec<Action> {
        let (path, content) = self.gate_file(phase, leave_unticked);
        self.file(&path, content)
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

/// The task of the first `StartTask` among `actions`.
fn first_start(actions: &[Action]) -> Option<TaskSpec> {
    actions.iter().find_map(|a| match a {
        Action::StartTask { task } => Some(task.clone()),
        _ => None,
    })
}

/// Why a run request was refused.
fn refusal(actions: &[Action]) -> String {
    actions
        .iter()
        .find_map(|a| match a {
            Action::RunRefused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("refused")
}

/// The first file written among `actions`: (path, contents).
fn written(actions: &[Action]) -> Option<(String, String)> {
    actions.iter().find_map(|a| match a {
        Action::WriteFile { path, contents } => Some((path.clone(), contents.clone())),
        _ => None,
    })
}

fn step_state(b: &Bus, step: &str) -> StepState {
    b.e.run(&b.run_id()).unwrap().steps[step].state.clone()
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
