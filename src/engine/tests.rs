//! The guide's rules, one test each, driven through `Engine::handle` only.

use super::*;
use crate::gate_checks::CheckResult;
use crate::playbook::RouteKind;
use crate::protocol::{Checkbox, StatusReport, TaskStatus};

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

#[test]
fn phase_one_runs_its_steps_strictly_in_sequence() {
    let mut b = Bus::new();
    let a = b.request(&[1], None, false);
    assert_eq!(started(&a), vec!["gtm-strategy"]);
    let a = b.finish_step("gtm-strategy");
    assert_eq!(started(&a), vec!["messaging-framework"]);
    let a = b.finish_step("messaging-framework");
    assert_eq!(started(&a), vec!["analytics-foundation"]);
    let a = b.finish_step("analytics-foundation");
    assert!(a.contains(&Action::EvaluateGate {
        run: b.run_id(),
        phase: 1
    }));
}

#[test]
fn phase_two_starts_all_four_agents_at_once() {
    let mut b = Bus::new();
    b.request(&[1, 2], None, false);
    let a = pass_phase(&mut b, 1);
    // Steps only: the coordinator's gate review started in the same stretch.
    let mut s: Vec<String> = started(&a)
        .into_iter()
        .filter(|s| !s.starts_with('t'))
        .collect();
    s.sort();
    assert_eq!(
        s,
        vec![
            "campaign-design",
            "crm-infrastructure",
            "enablement-kit",
            "post-sale-foundation"
        ]
    );
}

#[test]
fn complete_without_outputs_keeps_the_step_open_and_tells_the_coordinator() {
    let mut b = Bus::new();
    b.request(&[1], None, false);
    let task = b.task_of("gtm-strategy");
    b.plain("strategy/gtm-strategy.md");
    let a = b.status("coordinator", Some(&task), TaskStatus::Complete);
    match step_state(&b, "gtm-strategy") {
        StepState::AwaitingOutputs { missing } => {
            assert!(missing.contains(&"strategy/personas/".to_string()));
            assert!(missing.contains(&"strategy/budget-allocation.md".to_string()));
        }
        other => panic!("expected the step to wait for outputs, got {other:?}"),
    }
    // The coordinator task names what is missing.
    let t =
        b.e.tasks()
            .values()
            .find(|t| matches!(t.kind, TaskKind::MissingOutputs { .. }))
            .expect("a missing-outputs task");
    assert_eq!(t.agent, "coordinator");
    assert!(t.text.contains("strategy/budget-allocation.md"));
    let missing_task = t.id.clone();
    // Brand-messaging does not start before the outputs exist.
    assert!(!started(&a).contains(&"messaging-framework".to_string()));
    // The coordinator gets the task once its strategy process has exited.
    let a = b.exit(&task, 0);
    assert!(started(&a).contains(&missing_task), "{a:?}");
    b.plain("strategy/personas/devon.md");
    b.plain("strategy/competitive-analysis.md");
    let a = b.plain("strategy/budget-allocation.md");
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
    assert!(started(&a).contains(&"messaging-framework".to_string()));
}

#[test]
fn an_empty_output_does_not_count() {
    let mut b = Bus::new();
    b.request(&[1], None, false);
    b.write_outputs("gtm-strategy");
    b.n += 1;
    let at = b.at();
    b.send(Event::FileChanged {
        path: "strategy/gtm-strategy.md".into(),
        hash: "empty".into(),
        size: 0,
        mtime_ns: 0,
        at,
        content: FileContent::Plain,
    });
    let task = b.task_of("gtm-strategy");
    b.status("coordinator", Some(&task), TaskStatus::Complete);
    assert_eq!(
        step_state(&b, "gtm-strategy"),
        StepState::AwaitingOutputs {
            missing: vec!["strategy/gtm-strategy.md".into()]
        }
    );
}

#[test]
fn gate_opens_with_a_coordinator_review_and_one_unticked_box_holds_the_next_phase() {
    let mut b = Bus::new();
    b.request(&[1, 2], None, false);
    for s in [
        "gtm-strategy",
        "messaging-framework",
        "analytics-foundation",
    ] {
        b.finish_step(s);
    }
    let a = b.evaluate(1, true);
    let written = a.iter().find_map(|a| match a {
        Action::WriteFile { path, contents } => Some((path.clone(), contents.clone())),
        _ => None,
    });
    let (path, contents) = written.expect("the gate file is written");
    assert_eq!(path, "strategy/gates/phase-1-strategy.md");
    assert!(contents.contains("- [ ] Budget allocation sums to monthly budget"));
    assert!(contents.contains("PASS: outputs exist"));
    let review =
        b.e.tasks()
            .values()
            .find(|t| t.kind == TaskKind::GateReview { phase: 1 })
            .expect("a gate review task");
    assert_eq!(review.agent, "coordinator");

    let a = b.tick_gate(1, 1);
    assert!(a.contains(&Action::EvaluateGate {
        run: b.run_id(),
        phase: 1
    }));
    let a = b.evaluate(1, true);
    assert!(started(&a).is_empty(), "phase 2 must wait: {a:?}");
    assert_eq!(b.e.run(&b.run_id()).unwrap().current_phase(), Some(1));

    b.tick_gate(1, 0);
    let a = b.evaluate(1, true);
    assert_eq!(started(&a).len(), 4);
    assert_eq!(b.e.run(&b.run_id()).unwrap().current_phase(), Some(2));
}

#[test]
fn a_failing_automatic_check_holds_a_fully_ticked_gate() {
    let mut b = Bus::new();
    b.request(&[1, 2], None, false);
    for s in [
        "gtm-strategy",
        "messaging-framework",
        "analytics-foundation",
    ] {
        b.finish_step(s);
    }
    b.evaluate(1, false);
    b.tick_gate(1, 0);
    let a = b.evaluate(1, false);
    assert!(started(&a).is_empty());
    // The fix arrives: the checks pass, the gate file is rewritten with the ticks kept.
    let a = b.evaluate(1, true);
    let contents = a
        .iter()
        .find_map(|a| match a {
            Action::WriteFile { contents, .. } => Some(contents.clone()),
            _ => None,
        })
        .expect("gate rewritten with the new check results");
    assert!(contents.contains("- [x] Budget allocation sums"));
    assert_eq!(started(&a).len(), 4);
}

#[test]
fn the_run_ends_after_the_last_requested_gate() {
    let mut b = Bus::new();
    b.request(&[1, 2, 3, 4], None, false);
    for p in 1..=3 {
        pass_phase(&mut b, p);
    }
    let a = pass_phase(&mut b, 4);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::RunFinished { ok: true, .. })),
        "{a:?}"
    );
    let run = b.e.run(&b.run_id()).unwrap();
    assert_eq!(run.state, RunState::Passed);
    assert!(run.steps.values().all(|s| s.state == StepState::Done));
}

#[test]
fn phase_four_refinement_waits_for_the_analysis() {
    let mut b = Bus::new();
    for p in 1..=3 {
        if p == 1 {
            b.request(&[1, 2, 3, 4], None, false);
        }
        pass_phase(&mut b, p);
    }
    assert!(matches!(
        step_state(&b, "performance-analysis"),
        StepState::Active { .. }
    ));
    assert_eq!(step_state(&b, "strategy-refinement"), StepState::Waiting);
    b.finish_step("performance-analysis");
    assert!(matches!(
        step_state(&b, "strategy-refinement"),
        StepState::Active { .. }
    ));
}

#[test]
fn one_task_at_a_time_per_agent() {
    let mut b = Bus::new();
    b.request(&[1], None, false);
    // A hand-off for the coordinator while its strategy task runs waits.
    let a = b.plain("analytics/recommendations.md");
    assert!(started(&a).is_empty());
    let a = b.finish_step("gtm-strategy");
    let s = started(&a);
    assert!(
        s.iter().any(|id| id.contains("handoff-coordinator")),
        "{s:?}"
    );
}

#[test]
fn failed_is_retried_then_escalated() {
    let mut b = Bus::with(true, 1);
    b.request(&[1], None, false);
    let task = b.task_of("gtm-strategy");
    let a = b.exit(&task, 3);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::ScheduleRetry { delay_ms: 1000, .. })));
    let at = b.at();
    let a = b.send(Event::RetryDue {
        task: task.clone(),
        at,
    });
    assert_eq!(started(&a), vec!["gtm-strategy"]);
    assert_eq!(b.e.task(&task).unwrap().attempt, 2);
    let a = b.status("coordinator", Some(&task), TaskStatus::Failed);
    assert!(!a.iter().any(|a| matches!(a, Action::ScheduleRetry { .. })));
    let esc =
        b.e.tasks()
            .values()
            .find(|t| matches!(t.kind, TaskKind::Escalation { .. }))
            .expect("escalated");
    assert_eq!(esc.agent, "coordinator");
    assert!(esc.text.contains("failed after 2 attempt(s)"));
}

#[test]
fn blocked_gives_the_coordinator_the_blockers() {
    let mut b = Bus::new();
    b.request(&[1], None, false);
    let task = b.task_of("gtm-strategy");
    b.status("coordinator", Some(&task), TaskStatus::Blocked);
    let esc =
        b.e.tasks()
            .values()
            .find(|t| matches!(t.kind, TaskKind::Escalation { .. }))
            .expect("escalated");
    assert!(esc.text.contains("need budget"));
    assert_eq!(b.e.task(&task).unwrap().state, TaskState::Blocked);
    // A later complete from the blocked agent still finishes the step.
    b.write_outputs("gtm-strategy");
    b.status("coordinator", Some(&task), TaskStatus::Complete);
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
}

#[test]
fn exit_zero_without_status_completes_only_with_outputs() {
    let mut b = Bus::with(true, 0);
    b.request(&[1], None, false);
    let task = b.task_of("gtm-strategy");
    b.exit(&task, 0);
    assert!(matches!(
        b.e.task(&task).unwrap().state,
        TaskState::Done {
            outcome: Outcome::Failed { .. }
        }
    ));

    let mut b = Bus::with(true, 0);
    b.request(&[1], None, false);
    let task = b.task_of("gtm-strategy");
    b.write_outputs("gtm-strategy");
    let a = b.exit(&task, 0);
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
    assert_eq!(started(&a), vec!["messaging-framework"]);
}

#[test]
fn a_status_is_matched_by_agent_and_phase_without_task_id() {
    let mut b = Bus::new();
    b.request(&[1], None, false);
    b.write_outputs("gtm-strategy");
    b.status("coordinator", None, TaskStatus::Complete);
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
}

#[test]
fn a_status_for_a_task_that_never_existed_is_refused() {
    let mut b = Bus::new();
    let a = b.status(
        "demand-generation",
        Some("t9999-nope"),
        TaskStatus::Complete,
    );
    assert!(a.iter().any(|a| matches!(a, Action::Refused { .. })));
    let d = &b.e.rejected()["status/demand-generation.md"];
    assert!(d.message.contains("t9999-nope"));
    assert!(d.message.contains("task_id"));
}

#[test]
fn a_refused_file_counts_once_fixed() {
    let mut b = Bus::new();
    b.request(&[1], None, false);
    b.file(
        "status/coordinator.md",
        FileContent::Rejected {
            diagnostic: Diagnostic::new("status/coordinator.md", Some(3), "bad yaml"),
        },
    );
    assert!(b.e.rejected().contains_key("status/coordinator.md"));
    b.write_outputs("gtm-strategy");
    let task = b.task_of("gtm-strategy");
    b.status("coordinator", Some(&task), TaskStatus::Complete);
    assert!(b.e.rejected().is_empty());
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
}

#[test]
fn scenario_must_fit_unless_forced() {
    let mut b = Bus::new();
    let a = b.request(&[1, 2, 3, 4], Some("scaling"), false);
    let reason = a
        .iter()
        .find_map(|a| match a {
            Action::RunRefused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("refused");
    assert!(reason.contains("scaling runs phases 2,3,4"), "{reason}");
    assert!(b.e.runs().is_empty());
    let a = b.request(&[1, 2, 3, 4], Some("new-product-launch"), false);
    assert_eq!(started(&a), vec!["gtm-strategy"]);
}

#[test]
fn a_run_starting_at_phase_two_needs_phase_one_outputs() {
    let mut b = Bus::new();
    let a = b.request(&[2, 3], None, false);
    let reason = a
        .iter()
        .find_map(|a| match a {
            Action::RunRefused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("refused");
    assert!(
        reason.contains("strategy/gtm-strategy.md (phase 1)"),
        "{reason}"
    );
    assert!(
        reason.contains("messaging/messaging-hierarchy.md (phase 1)"),
        "{reason}"
    );
    // With phase 1's outputs in place the same request runs.
    for s in [
        "gtm-strategy",
        "messaging-framework",
        "analytics-foundation",
    ] {
        b.write_outputs(s);
    }
    let a = b.request(&[2, 3], None, false);
    assert_eq!(started(&a).len(), 4);
}

#[test]
fn an_agent_run_is_one_task() {
    let mut b = Bus::new();
    let at = b.at();
    let a = b.send(Event::RunRequested {
        request: RunRequest {
            id: "r1".into(),
            kind: RunKind::Agent {
                agent: "demand-generation".into(),
                task: "Design a Google Ads campaign; rm -rf / `x` $(y)".into(),
            },
            config: Default::default(),
            config_path: String::new(),
            scenario: None,
            force: false,
            budget_secs: None,
        },
        at,
    });
    let spec = a
        .iter()
        .find_map(|a| match a {
            Action::StartTask { task } => Some(task.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(spec.text, "Design a Google Ads campaign; rm -rf / `x` $(y)");
    let a = b.exit(&spec.id, 0);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::RunFinished { ok: true, .. })));
}

#[test]
fn replaying_the_same_events_gives_the_same_state() {
    let mut b = Bus::new();
    let mut log = Vec::new();
    let record = |b: &mut Bus, log: &mut Vec<Event>, ev: Event| {
        log.push(ev.clone());
        b.send(ev)
    };
    let at = b.at();
    record(
        &mut b,
        &mut log,
        Event::RunRequested {
            request: RunRequest {
                id: "x".into(),
                kind: RunKind::Phases { phases: vec![1, 2] },
                config: Default::default(),
                config_path: String::new(),
                scenario: None,
                force: false,
                budget_secs: None,
            },
            at,
        },
    );
    for (i, p) in [
        "strategy/gtm-strategy.md",
        "strategy/personas/a.md",
        "strategy/competitive-analysis.md",
        "strategy/budget-allocation.md",
    ]
    .iter()
    .enumerate()
    {
        record(
            &mut b,
            &mut log,
            Event::FileChanged {
                path: p.to_string(),
                hash: format!("{i}"),
                size: 5,
                mtime_ns: 0,
                at,
                content: FileContent::Plain,
            },
        );
    }
    let task = b.task_of("gtm-strategy");
    record(
        &mut b,
        &mut log,
        Event::TaskExited {
            task,
            exit: ExitOutcome::Code { code: 0 },
            at,
        },
    );
    let mut again = Engine::new(Playbook::default_playbook(), policies(true, 1));
    for e in &log {
        again.handle(e);
    }
    assert_eq!(
        serde_json::to_string(b.e.runs()).unwrap(),
        serde_json::to_string(again.runs()).unwrap()
    );
    assert_eq!(
        serde_json::to_string(b.e.tasks()).unwrap(),
        serde_json::to_string(again.tasks()).unwrap()
    );
}

#[test]
fn dates_are_computed_without_a_clock() {
    assert_eq!(date_of(0), "1970-01-01");
    assert_eq!(date_of(1_770_681_600_000), "2026-02-10");
}

// ---- conflicts, decisions, hand-offs ----

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

#[test]
fn a_conflict_gets_one_review_per_version_and_closes_when_the_affected_agents_complete() {
    let mut b = Bus::new();
    conflict(&mut b, "conflicts/scoring.md");
    conflict(&mut b, "conflicts/scoring.md");
    let reviews = tasks_of_kind(&b, |k| matches!(k, TaskKind::ConflictReview { .. }));
    assert_eq!(reviews.len(), 2, "one review per content version");
    assert!(reviews.iter().all(|t| t.agent == "coordinator"));
    assert_eq!(b.e.open_conflicts(), vec!["conflicts/scoring.md"]);

    let a = decision(
        &mut b,
        "strategy/decisions/scoring.md",
        Some("conflicts/scoring.md"),
        &["demand-generation", "pipeline-manager"],
        &[],
    );
    let applies = tasks_of_kind(&b, |k| matches!(k, TaskKind::ApplyDecision { .. }));
    let mut agents: Vec<_> = applies.iter().map(|t| t.agent.clone()).collect();
    agents.sort();
    assert_eq!(agents, vec!["demand-generation", "pipeline-manager"]);
    assert!(applies[0].text.contains("strategy/decisions/scoring.md"));
    assert!(applies[0].text.contains("conflicts/scoring.md"));
    assert_eq!(started(&a).len(), 2, "both affected agents start at once");

    b.exit(&applies[0].id, 0);
    assert_eq!(
        b.e.open_conflicts().len(),
        1,
        "still waiting for the second agent"
    );
    b.exit(&applies[1].id, 0);
    assert!(b.e.open_conflicts().is_empty());
    let c = &b.e.conflicts()["conflicts/scoring.md"];
    assert_eq!(
        c.closed_by.as_deref(),
        Some("strategy/decisions/scoring.md")
    );
}

#[test]
fn a_conflict_renamed_away_and_written_back_unchanged_is_not_a_new_version() {
    let mut b = Bus::new();
    let at = b.at();
    let ev = Event::FileChanged {
        path: "conflicts/x.md".into(),
        hash: "same".into(),
        size: 10,
        mtime_ns: 0,
        at,
        content: FileContent::Conflict {
            conflict: Default::default(),
        },
    };
    b.send(ev.clone());
    b.send(Event::FileRemoved {
        path: "conflicts/x.md".into(),
        at,
    });
    b.send(ev);
    assert_eq!(
        tasks_of_kind(&b, |k| matches!(k, TaskKind::ConflictReview { .. })).len(),
        1
    );
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

/// Complete every open apply task (each agent runs one at a time).
fn apply_all(b: &mut Bus) {
    while let Some(t) = b
        .e
        .tasks()
        .values()
        .find(|t| t.state == TaskState::Running && matches!(t.kind, TaskKind::ApplyDecision { .. }))
        .cloned()
    {
        b.exit(&t.id, 0);
    }
}

fn closed_by(b: &Bus, conflict: &str) -> Option<String> {
    b.e.conflicts()[conflict].closed_by.clone()
}

/// A conflict decided and applied, then saved again with new content.
fn decided_applied_and_saved_again(b: &mut Bus) {
    conflict(b, "conflicts/scoring.md");
    decision(
        b,
        "strategy/decisions/scoring.md",
        Some("conflicts/scoring.md"),
        &["demand-generation", "pipeline-manager"],
        &[],
    );
    let r1 = review_of(b, "conflicts/scoring.md").id;
    b.exit(&r1, 0);
    apply_all(b);
    assert_eq!(
        closed_by(b, "conflicts/scoring.md").as_deref(),
        Some("strategy/decisions/scoring.md")
    );
    conflict(b, "conflicts/scoring.md");
    assert_eq!(b.e.open_conflicts(), vec!["conflicts/scoring.md"]);
    assert_ne!(
        review_of(b, "conflicts/scoring.md").id,
        r1,
        "a second review"
    );
}

#[test]
fn a_conflict_saved_again_closes_when_the_review_upholds_the_applied_decision() {
    let mut b = Bus::new();
    decided_applied_and_saved_again(&mut b);
    let r2 = review_of(&b, "conflicts/scoring.md");
    // The coordinator writes the same decision again (no new version reaches
    // the engine) and completes the review.
    b.exit(&r2.id, 0);
    assert!(b.e.open_conflicts().is_empty(), "{:?}", b.e.conflicts());
    assert_eq!(
        closed_by(&b, "conflicts/scoring.md").as_deref(),
        Some("strategy/decisions/scoring.md")
    );
    assert_eq!(
        tasks_of_kind(&b, |k| matches!(k, TaskKind::ApplyDecision { .. })).len(),
        2,
        "an upheld decision is not applied again"
    );
}

#[test]
fn a_changed_decision_reopens_its_conflict_until_the_agents_apply_it_again() {
    let mut b = Bus::new();
    decided_applied_and_saved_again(&mut b);
    let r2 = review_of(&b, "conflicts/scoring.md").id;
    // The review's status lands before its changed decision: the standing
    // decision was applied, so the conflict closes...
    b.exit(&r2, 0);
    assert!(b.e.open_conflicts().is_empty());
    // ...and the changed decision opens it again for its agents.
    decision(
        &mut b,
        "strategy/decisions/scoring.md",
        Some("conflicts/scoring.md"),
        &["demand-generation"],
        &[],
    );
    assert_eq!(b.e.open_conflicts(), vec!["conflicts/scoring.md"]);
    let applies = tasks_of_kind(&b, |k| matches!(k, TaskKind::ApplyDecision { .. }));
    assert_eq!(applies.len(), 3, "one new apply task");
    apply_all(&mut b);
    assert!(b.e.open_conflicts().is_empty());
}

#[test]
fn a_review_does_not_close_a_conflict_before_its_changed_decision_is_applied() {
    let mut b = Bus::new();
    decided_applied_and_saved_again(&mut b);
    decision(
        &mut b,
        "strategy/decisions/scoring.md",
        Some("conflicts/scoring.md"),
        &["pipeline-manager"],
        &[],
    );
    let r2 = review_of(&b, "conflicts/scoring.md").id;
    b.exit(&r2, 0);
    assert_eq!(
        b.e.open_conflicts(),
        vec!["conflicts/scoring.md"],
        "pipeline-manager has not applied the changed decision yet"
    );
    apply_all(&mut b);
    assert!(b.e.open_conflicts().is_empty());

    // A review with no decision ever written leaves its conflict open.
    conflict(&mut b, "conflicts/other.md");
    let r = review_of(&b, "conflicts/other.md").id;
    b.exit(&r, 0);
    assert_eq!(b.e.open_conflicts(), vec!["conflicts/other.md"]);
}

fn conflict_version(b: &mut Bus, path: &str, hash: &str) -> Vec<Action> {
    let at = b.at();
    b.send(Event::FileChanged {
        path: path.into(),
        hash: hash.into(),
        size: 10,
        mtime_ns: 0,
        at,
        content: FileContent::Conflict {
            conflict: crate::protocol::escalation::Conflict {
                title: format!("{path} at {hash}"),
                ..Default::default()
            },
        },
    })
}

fn remove(b: &mut Bus, path: &str) -> Vec<Action> {
    let at = b.at();
    b.send(Event::FileRemoved {
        path: path.into(),
        at,
    })
}

#[test]
fn a_conflict_whose_file_is_removed_is_withdrawn_and_its_queued_review_cancelled() {
    let mut b = Bus::new();
    conflict_version(&mut b, "conflicts/a.md", "a1");
    conflict_version(&mut b, "conflicts/b.md", "b1");
    let (ra, rb) = (
        review_of(&b, "conflicts/a.md"),
        review_of(&b, "conflicts/b.md"),
    );
    assert_eq!(ra.state, TaskState::Running);
    assert_eq!(
        rb.state,
        TaskState::Queued,
        "one coordinator task at a time"
    );

    let out = remove(&mut b, "conflicts/b.md");
    let c = &b.e.conflicts()["conflicts/b.md"];
    assert!(c.withdrawn && c.closed_at.is_some(), "{c:?}");
    assert_eq!(c.closed_by.as_deref(), Some(WITHDRAWN));
    assert_eq!(b.e.open_conflicts(), vec!["conflicts/a.md"]);
    assert_eq!(
        b.e.task(&rb.id).unwrap().state,
        TaskState::Done {
            outcome: Outcome::Cancelled
        }
    );
    assert!(
        out.iter().any(|a| matches!(a, Action::Notice { message, .. } if message.contains("conflicts/b.md withdrawn"))),
        "{out:?}"
    );

    // A running review is left to finish.
    remove(&mut b, "conflicts/a.md");
    assert!(b.e.open_conflicts().is_empty());
    assert_eq!(b.e.task(&ra.id).unwrap().state, TaskState::Running);

    // Back with new content: a new version, reviewed.
    conflict_version(&mut b, "conflicts/a.md", "a2");
    assert_eq!(b.e.open_conflicts(), vec!["conflicts/a.md"]);
    assert!(!b.e.conflicts()["conflicts/a.md"].withdrawn);
    assert_eq!(b.e.conflicts()["conflicts/a.md"].versions, 2);
    assert_ne!(review_of(&b, "conflicts/a.md").id, ra.id);

    // Back with the content it had, whose review the withdrawal cancelled:
    // the same version, open again, and the same review queued again (an
    // editor's unchanged rename-and-write save does just this).
    conflict_version(&mut b, "conflicts/b.md", "b1");
    assert_eq!(
        b.e.open_conflicts(),
        vec!["conflicts/a.md", "conflicts/b.md"]
    );
    let again = review_of(&b, "conflicts/b.md");
    assert_eq!(again.id, rb.id);
    assert_eq!(again.state, TaskState::Queued);
    assert_eq!(again.ended_at, None);
    assert_eq!(b.e.conflicts()["conflicts/b.md"].versions, 1);
    assert_eq!(
        tasks_of_kind(
            &b,
            |k| matches!(k, TaskKind::ConflictReview { conflict } if conflict == "conflicts/b.md")
        )
        .len(),
        1
    );
}

#[test]
fn a_reviewed_conflict_renamed_away_and_back_is_open_again_without_a_new_review() {
    let mut b = Bus::new();
    conflict_version(&mut b, "conflicts/a.md", "a1");
    let r = review_of(&b, "conflicts/a.md").id;
    b.exit(&r, 0);
    remove(&mut b, "conflicts/a.md");
    assert!(b.e.open_conflicts().is_empty());
    conflict_version(&mut b, "conflicts/a.md", "a1");
    assert_eq!(b.e.open_conflicts(), vec!["conflicts/a.md"]);
    let c = &b.e.conflicts()["conflicts/a.md"];
    assert!(!c.withdrawn && c.closed_by.is_none(), "{c:?}");
    assert_eq!(review_of(&b, "conflicts/a.md").id, r, "no new review");

    // A conflict a decision closed stays closed by it when its file goes
    // and comes back.
    decision(
        &mut b,
        "strategy/decisions/a.md",
        Some("conflicts/a.md"),
        &["pipeline-manager"],
        &[],
    );
    apply_all(&mut b);
    assert_eq!(
        closed_by(&b, "conflicts/a.md").as_deref(),
        Some("strategy/decisions/a.md")
    );
    remove(&mut b, "conflicts/a.md");
    conflict_version(&mut b, "conflicts/a.md", "a1");
    let c = &b.e.conflicts()["conflicts/a.md"];
    assert!(!c.withdrawn, "{c:?}");
    assert_eq!(c.closed_by.as_deref(), Some("strategy/decisions/a.md"));
}

#[test]
fn a_decision_naming_an_unknown_agent_or_conflict_tells_the_coordinator() {
    let mut b = Bus::new();
    conflict(&mut b, "conflicts/a.md");
    decision(
        &mut b,
        "strategy/decisions/a.md",
        Some("conflicts/a.md"),
        &["pipeline-manager"],
        &["\"wizard\" is not an agent"],
    );
    let problems = tasks_of_kind(&b, |k| matches!(k, TaskKind::DecisionProblem { .. }));
    assert_eq!(problems.len(), 1);
    assert!(problems[0].text.contains("wizard"));
    // The known agent still gets its task.
    assert_eq!(
        tasks_of_kind(&b, |k| matches!(k, TaskKind::ApplyDecision { .. })).len(),
        1
    );

    decision(
        &mut b,
        "strategy/decisions/b.md",
        Some("conflicts/nope.md"),
        &["pipeline-manager"],
        &[],
    );
    let problems = tasks_of_kind(&b, |k| matches!(k, TaskKind::DecisionProblem { .. }));
    assert_eq!(problems.len(), 2);
    assert!(
        problems[1].text.contains("conflicts/nope.md"),
        "{}",
        problems[1].text
    );
    assert!(b.e.decisions()["strategy/decisions/b.md"].tasks.is_empty());
}

#[test]
fn texts_built_from_a_huge_decision_stay_small() {
    let mut b = Bus::new();
    conflict(&mut b, "conflicts/a.md");
    // 10,000 names, two of them agents: ten thousand problems.
    let names: Vec<String> = (0..10_000).map(|i| format!("ghost-{i}")).collect();
    let text = format!(
        "---\nresolves: conflicts/a.md\naffected: [demand-gen, pipeline-manager, {}]\n---\n# Big\n",
        names.join(", ")
    );
    let d =
        crate::protocol::escalation::parse_decision("strategy/decisions/big.md", &text).unwrap();
    assert_eq!(d.problems.len(), 10_000);
    let start = b.file(
        "strategy/decisions/big.md",
        FileContent::Decision { decision: d },
    );
    let problem = &tasks_of_kind(&b, |k| matches!(k, TaskKind::DecisionProblem { .. }))[0];
    assert!(problem.text.len() < 8 * 1024, "{}", problem.text.len());
    assert!(problem.text.contains("\"ghost-0\" is not an agent"));
    assert!(problem.text.ends_with("and 9980 more"), "{}", problem.text);
    assert_eq!(
        started(&start).len(),
        2,
        "both apply tasks (the coordinator is still on its review)"
    );

    // A 100 KB `resolves:` path: named, shortened, in the task and the log.
    let long = format!("conflicts/{}.md", "x".repeat(100_000));
    decision(
        &mut b,
        "strategy/decisions/long.md",
        Some(&long),
        &["pipeline-manager"],
        &[],
    );
    let problem = &tasks_of_kind(&b, |k| matches!(k, TaskKind::DecisionProblem { .. }))[1];
    assert!(problem.text.len() < 2 * 1024, "{}", problem.text.len());
    assert!(problem.text.contains("conflicts/xxx"));
    assert!(problem.text.contains("more chars)"));
    assert_eq!(
        b.e.decisions()["strategy/decisions/long.md"]
            .resolves
            .as_deref(),
        Some(long.as_str()),
        "the engine keeps the whole path"
    );
}

#[test]
fn a_tasks_files_go_once_it_has_ended_and_no_process_of_it_runs() {
    let drops = |a: &[Action], id: &str| {
        a.iter()
            .filter(|x| matches!(x, Action::DropTaskFiles { task } if task == id))
            .count()
    };
    let mut b = Bus::new();
    // Completed by its status while its process goes on: the files stay
    // until the exit.
    let first = started(&conflict(&mut b, "conflicts/a.md"))[0].clone();
    let queued = conflict(&mut b, "conflicts/b.md");
    let second = b.e.tasks().keys().find(|k| **k != first).unwrap().clone();
    assert_eq!(drops(&queued, &second), 0);
    let a = b.status("coordinator", Some(&first), TaskStatus::Complete);
    assert!(!b.e.task(&first).unwrap().is_open());
    assert_eq!(
        drops(&a, &first),
        0,
        "its process may still read its prompt"
    );
    assert_eq!(drops(&b.exit(&first, 0), &first), 1);
    // Ended by its exit.
    assert_eq!(drops(&b.exit(&second, 0), &second), 1);
    // Failed with a retry to come: not ended, the files stay.
    let third = started(&conflict(&mut b, "conflicts/c.md"))[0].clone();
    assert_eq!(drops(&b.exit(&third, 3), &third), 0);
    assert_eq!(b.e.task(&third).unwrap().state, TaskState::RetryWait);
}

#[test]
fn each_hand_off_route_gives_its_receiver_a_task() {
    for (path, to) in [
        ("demand-gen/lead-scoring.md", "pipeline-manager"),
        ("pipeline/handoff-criteria.md", "customer-success"),
        ("analytics/recommendations.md", "coordinator"),
    ] {
        let mut b = Bus::new();
        let a = b.plain(path);
        let spec = a
            .iter()
            .find_map(|a| match a {
                Action::StartTask { task } => Some(task.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{path} started nothing"));
        assert_eq!(spec.agent, to);
        assert!(spec.trigger.contains(path));
    }
    // learnings are context, not a trigger.
    let mut b = Bus::new();
    assert!(started(&b.plain("learnings/what-worked.md")).is_empty());
    let a = b.plain("demand-gen/lead-scoring.md");
    let spec = a
        .iter()
        .find_map(|a| match a {
            Action::StartTask { task } => Some(task.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(spec.context, vec!["learnings/what-worked.md"]);
}

#[test]
fn a_loop_of_hand_offs_stops_and_tells_the_coordinator() {
    let mut pb = Playbook::default_playbook();
    pb.routes = vec![
        crate::playbook::Route {
            path: "a.md".into(),
            to: "pipeline-manager".into(),
            purpose: "answer a".into(),
            kind: RouteKind::Trigger,
        },
        crate::playbook::Route {
            path: "b.md".into(),
            to: "demand-generation".into(),
            purpose: "answer b".into(),
            kind: RouteKind::Trigger,
        },
    ];
    let mut b = Bus::new();
    let agents = b.e.agents().clone();
    let ev = b.e.configure(&pb, agents, 0);
    b.e.handle(&ev);
    b.plain("a.md");
    // Each receiver answers by writing the other's file, then exits.
    for _ in 0..20 {
        let Some(running) =
            b.e.tasks()
                .values()
                .find(|t| t.state == TaskState::Running && matches!(t.kind, TaskKind::Route { .. }))
                .cloned()
        else {
            break;
        };
        let answer = if running.agent == "pipeline-manager" {
            "b.md"
        } else {
            "a.md"
        };
        b.plain(answer);
        b.exit(&running.id, 0);
    }
    let routes = tasks_of_kind(&b, |k| matches!(k, TaskKind::Route { .. }));
    assert_eq!(routes.len() as u32, MAX_ROUTE_DEPTH, "{routes:#?}");
    let told = tasks_of_kind(&b, |k| matches!(k, TaskKind::RouteLoop { .. }));
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].agent, "coordinator");
}

// ---- order, duplication, replay ----

mod order {
    use super::*;
    use proptest::prelude::*;

    fn event(path_idx: u8, content: u8, kind: u8, at: Millis) -> Event {
        let (path, file) = match kind {
            0 => (
                format!("conflicts/c{path_idx}.md"),
                FileContent::Conflict {
                    conflict: Default::default(),
                },
            ),
            1 => ("demand-gen/lead-scoring.md".to_string(), FileContent::Plain),
            _ => (
                format!("demand-gen/campaigns/c{path_idx}.md"),
                FileContent::Plain,
            ),
        };
        Event::FileChanged {
            path,
            hash: format!("v{content}"),
            size: 1,
            mtime_ns: 0,
            at,
            content: file,
        }
    }

    /// What the engine reacted with: which agent got a task, and why.
    fn reactions(events: &[Event]) -> Vec<(String, String)> {
        let mut e = Engine::new(Playbook::default_playbook(), policies(false, 0));
        for ev in events {
            e.handle(ev);
        }
        let mut r: Vec<_> = e
            .tasks()
            .values()
            .map(|t| (t.agent.clone(), t.trigger.clone()))
            .collect();
        r.sort();
        r
    }

    fn shuffle<T>(v: &mut [T], mut seed: u64) {
        for i in (1..v.len()).rev() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let j = (seed >> 33) as usize % (i + 1);
            v.swap(i, j);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn reactions_do_not_depend_on_order_duplication_or_replay(
            versions in prop::collection::vec((0u8..5, 0u8..3, 0u8..3), 1..40),
            seed in any::<u64>(),
            dups in prop::collection::vec(any::<prop::sample::Index>(), 0..15),
        ) {
            let events: Vec<Event> = versions
                .iter()
                .enumerate()
                .map(|(i, (p, c, k))| event(*p, *c, *k, 1_000 + i as u64))
                .collect();
            let once = reactions(&events);

            let mut shuffled = events.clone();
            shuffle(&mut shuffled, seed);
            prop_assert_eq!(&reactions(&shuffled), &once, "reordered");

            let mut duplicated = events.clone();
            for d in &dups {
                let e = events[d.index(events.len())].clone();
                let at = d.index(duplicated.len() + 1);
                duplicated.insert(at, e);
            }
            prop_assert_eq!(&reactions(&duplicated), &once, "duplicated");

            let mut replayed = events.clone();
            replayed.extend(events.iter().cloned());
            prop_assert_eq!(&reactions(&replayed), &once, "replayed");
        }
    }
}

#[test]
fn a_gate_file_edited_into_nonsense_is_refused_and_written_back() {
    let mut b = Bus::new();
    b.request(&[1, 2], None, false);
    for s in [
        "gtm-strategy",
        "messaging-framework",
        "analytics-foundation",
    ] {
        b.finish_step(s);
    }
    b.evaluate(1, true);
    let a = b.file(
        "strategy/gates/phase-1-strategy.md",
        FileContent::Gate {
            boxes: vec![Checkbox {
                text: "lgtm".into(),
                checked: true,
                line: 1,
            }],
        },
    );
    let d = &b.e.rejected()["strategy/gates/phase-1-strategy.md"];
    assert!(d.message.contains("checklist items"), "{}", d.message);
    let rewritten = a.iter().any(|a| matches!(a, Action::WriteFile { contents, .. } if contents.contains("- [ ] Budget allocation")));
    assert!(rewritten, "{a:?}");
    assert_eq!(b.e.run(&b.run_id()).unwrap().current_phase(), Some(1));
}

/// Issue 11, item 5: an old copy of a gate file, a content gtmd has seen
/// before, put back after gtmd wrote the gate, is answered (refused and the
/// gate written back), not ignored as a version already acted on.
#[test]
fn a_gate_file_put_back_with_a_content_seen_before_is_answered_again() {
    let mut b = Bus::new();
    let path = "strategy/gates/phase-1-strategy.md";
    let version = |b: &mut Bus, hash: &str, content: FileContent| {
        let at = b.at();
        b.send(Event::FileChanged {
            path: path.into(),
            hash: hash.into(),
            size: 10,
            mtime_ns: 0,
            at,
            content,
        })
    };
    let old = FileContent::Gate {
        boxes: vec![Checkbox {
            text: "lgtm".into(),
            checked: true,
            line: 1,
        }],
    };
    // A copy from long ago, seen while no gate was open.
    version(&mut b, "old", old.clone());
    b.request(&[1, 2], None, false);
    for s in [
        "gtm-strategy",
        "messaging-framework",
        "analytics-foundation",
    ] {
        b.finish_step(s);
    }
    b.evaluate(1, true);
    let p = b.e.playbook().phase(1).unwrap().clone();
    let boxes = p
        .gate
        .checklist
        .iter()
        .enumerate()
        .map(|(i, t)| Checkbox {
            text: t.clone(),
            checked: false,
            line: i + 1,
        })
        .collect();
    version(&mut b, "gtmd-wrote", FileContent::Gate { boxes });
    assert!(!b.e.rejected().contains_key(path));
    // The old copy is put back over it.
    let a = version(&mut b, "old", old);
    let d = b.e.rejected().get(path).expect("the old copy is refused");
    assert!(d.message.contains("checklist items"), "{}", d.message);
    let rewritten = a.iter().any(|a| matches!(a, Action::WriteFile { contents, .. } if contents.contains("- [ ] Budget allocation")));
    assert!(rewritten, "the gate is written back: {a:?}");
    assert_eq!(b.e.run(&b.run_id()).unwrap().current_phase(), Some(1));
}

#[test]
fn a_cancel_request_file_stops_the_task_and_the_record_says_why() {
    let mut b = Bus::new();
    let a = b.request(&[1], None, false);
    let step = started(&a)[0].clone();
    let task = b.task_of(&step);
    let a = b.file(
        "requests/cancel-1.yaml",
        FileContent::Cancel {
            request: CancelRequest {
                id: "cancel-1".into(),
                cancel: CancelTarget::Task { task: task.clone() },
            },
        },
    );
    assert!(
        a.contains(&Action::StopTask { task: task.clone() }),
        "{a:#?}"
    );
    assert_eq!(
        b.e.task(&task).unwrap().state,
        TaskState::Done {
            outcome: Outcome::Cancelled
        }
    );
    let run = b.e.run(&b.run_id()).unwrap();
    assert!(
        run.log
            .iter()
            .any(|(_, l)| l
                == &format!("task {task} cancelled: gtmd cancel (requests/cancel-1.yaml)")),
        "{:#?}",
        run.log
    );
}

#[test]
fn a_run_cancelled_for_its_budget_ends_with_the_reason() {
    let mut b = Bus::new();
    let a = b.request(&[1], None, false);
    let task = b.task_of(&started(&a)[0]);
    let run = b.run_id();
    let at = b.at();
    let a = b.send(Event::CancelRequested {
        target: CancelTarget::Run { run: run.clone() },
        reason: Some("over its wall-clock budget of 5s (--run-budget)".into()),
        at,
    });
    assert!(a.contains(&Action::StopTask { task }), "{a:#?}");
    let summary = a
        .iter()
        .find_map(|x| match x {
            Action::RunFinished {
                ok: false, summary, ..
            } => Some(summary.clone()),
            _ => None,
        })
        .expect("the run finished");
    assert_eq!(
        summary,
        "cancelled: over its wall-clock budget of 5s (--run-budget)"
    );
    let r = b.e.run(&run).unwrap();
    assert_eq!(r.state, RunState::Cancelled);
    assert!(r.log.iter().any(|(_, l)| l.contains("wall-clock budget")));
}

#[test]
fn a_completed_status_asks_for_a_commit_of_its_files_and_nothing_else_does() {
    let mut b = Bus::new();
    b.request(&[1, 2], None, false);
    pass_phase(&mut b, 1);
    b.write_outputs("campaign-design");
    let task = b.task_of("campaign-design");
    let report = StatusReport {
        agent: "demand-generation".into(),
        phase: Some(2),
        task: "Google Ads campaign design".into(),
        status: TaskStatus::Complete,
        outputs: vec!["demand-gen/campaigns/item.md".into()],
        blockers: vec![],
        next: None,
        task_id: Some(task.clone()),
        unknown_phase: None,
    };
    let a = b.file(
        "status/demand-generation.md",
        FileContent::Status { report },
    );
    let commits: Vec<&Action> = a
        .iter()
        .filter(|a| matches!(a, Action::Commit { .. }))
        .collect();
    assert_eq!(
        commits,
        vec![&Action::Commit {
            task: task.clone(),
            agent: "demand-generation".into(),
            action_word: "campaign".into(),
            message_task: "Google Ads campaign design".into(),
            paths: vec![
                "status/demand-generation.md".into(),
                "demand-gen/campaigns/item.md".into()
            ],
            branch: Some("gtm/phase-2-pipeline-building".into()),
        }]
    );
    // The exit after it, and a task completed by exit 0 alone, commit nothing.
    let a = b.exit(&task, 0);
    assert!(!a.iter().any(|a| matches!(a, Action::Commit { .. })));
    b.write_outputs("enablement-kit");
    let a = b.exit(&b.task_of("enablement-kit"), 0);
    assert!(!a.iter().any(|a| matches!(a, Action::Commit { .. })));
}

// ---- reloading the playbook ----

/// The default playbook, changed by `f`.
fn playbook_with(f: impl FnOnce(&mut Playbook)) -> Playbook {
    let mut pb = Playbook::default_playbook();
    f(&mut pb);
    pb
}

fn phase_mut(pb: &mut Playbook, n: u8) -> &mut crate::playbook::Phase {
    pb.phases.iter_mut().find(|p| p.number == n).unwrap()
}

#[test]
fn a_playbook_that_drops_renames_or_moves_what_an_active_run_uses_is_named() {
    let mut b = Bus::new();
    b.request(&[1, 2], None, false);
    let run = b.run_id();
    let problems = |b: &Bus, pb: Playbook| b.e.playbook_change_problems(&pb);

    let p = problems(&b, playbook_with(|pb| pb.phases.truncate(1)));
    assert_eq!(
        p,
        vec![format!(
            "run {run} has phase 2 pipeline-building, which the new playbook drops"
        )]
    );
    let p = problems(
        &b,
        playbook_with(|pb| phase_mut(pb, 1).name = "foundation".into()),
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("renames to foundation"), "{p:?}");
    let p = problems(
        &b,
        playbook_with(|pb| phase_mut(pb, 1).steps[0].id = "strategy".into()),
    );
    assert!(
        p.iter()
            .any(|l| l.contains("gtm-strategy") && l.contains("drops")),
        "{p:?}"
    );
    let p = problems(
        &b,
        playbook_with(|pb| {
            let s = phase_mut(pb, 2).steps.remove(0);
            phase_mut(pb, 3).steps.push(s);
        }),
    );
    assert!(
        p.iter()
            .any(|l| l.contains("campaign-design") && l.contains("moves to phase 3")),
        "{p:?}"
    );
    let p = problems(
        &b,
        playbook_with(|pb| {
            let mut s = phase_mut(pb, 2).steps[0].clone();
            s.id = "webinars".into();
            phase_mut(pb, 2).steps.push(s);
        }),
    );
    assert!(
        p.iter()
            .any(|l| l.contains("webinars") && l.contains("adds")),
        "{p:?}"
    );

    // Accepted: a step given to another agent, a changed title, and phases
    // the run does not use.
    let fine = playbook_with(|pb| {
        phase_mut(pb, 2).steps[0].agent = "growth-analyst".into();
        phase_mut(pb, 1).steps[0].title = "Strategy, take two".into();
        pb.phases.truncate(2);
    });
    assert_eq!(problems(&b, fine), Vec::<String>::new());

    // Once the run has ended, anything goes.
    let at = b.at();
    b.send(Event::CancelRequested {
        target: CancelTarget::Run { run },
        reason: None,
        at,
    });
    assert!(problems(&b, playbook_with(|pb| pb.phases.truncate(1))).is_empty());
}

/// Give the engine another playbook, unchecked, as a journaled configuration.
fn swap_playbook(b: &mut Bus, pb: Playbook) {
    let agents = b.e.agents().clone();
    let ev = b.e.configure(&pb, agents, 0);
    b.e.handle(&ev);
}

#[test]
fn an_engine_given_a_playbook_without_its_running_step_does_not_panic() {
    let mut b = Bus::new();
    b.request(&[1], None, false);
    let task = b.task_of("gtm-strategy");
    // What a reload used to do: swap the playbook under the run.
    swap_playbook(
        &mut b,
        playbook_with(|pb| {
            phase_mut(pb, 1).steps.retain(|s| s.id != "gtm-strategy");
            for s in &mut phase_mut(pb, 1).steps {
                s.depends_on.clear();
            }
        }),
    );
    b.status("coordinator", Some(&task), TaskStatus::Complete);
    b.exit(&task, 0);
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
    // The next step still starts, and ends, even with its phase gone.
    assert!(matches!(
        step_state(&b, "messaging-framework"),
        StepState::Active { .. }
    ));
    swap_playbook(&mut b, playbook_with(|pb| pb.phases.clear()));
    let next = b.task_of("messaging-framework");
    b.exit(&next, 0);
    assert_eq!(step_state(&b, "messaging-framework"), StepState::Done);
}

// ---- status files of tasks outside a phase ----

fn status_with_phase(
    b: &mut Bus,
    task_id: &str,
    phase: Option<u8>,
    unknown_phase: Option<&str>,
) -> Vec<Action> {
    let agent = b.e.task(task_id).unwrap().agent.clone();
    let report = StatusReport {
        agent: agent.clone(),
        phase,
        task: "review".into(),
        status: TaskStatus::Complete,
        outputs: vec![],
        blockers: vec![],
        next: None,
        task_id: Some(task_id.into()),
        unknown_phase: unknown_phase.map(String::from),
    };
    b.file(
        &format!("status/{agent}.md"),
        FileContent::Status { report },
    )
}

fn warnings(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notice {
                level: NoticeLevel::Warn,
                message,
            } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_status_naming_its_task_takes_the_tasks_phase_and_warns_when_it_says_otherwise() {
    let mut b = Bus::new();
    b.request(&[2], None, true);
    let done = TaskState::Done {
        outcome: Outcome::Complete,
    };

    // `phase: 0` (read as no phase) for a review outside any phase.
    conflict(&mut b, "conflicts/a.md");
    let r = review_of(&b, "conflicts/a.md").id;
    let out = status_with_phase(&mut b, &r, None, None);
    assert_eq!(b.e.task(&r).unwrap().state, done);
    assert!(warnings(&out).is_empty(), "{out:?}");

    // A phase that contradicts the task, or is none: the task completes, with a warning.
    for (phase, unknown, says) in [
        (Some(2), None, "gives phase 2 but"),
        (
            None,
            Some("\"banana\""),
            "gives phase \"banana\", which is not a phase,",
        ),
    ] {
        let path = format!("conflicts/{}.md", b.n);
        conflict(&mut b, &path);
        let r = review_of(&b, &path).id;
        let out = status_with_phase(&mut b, &r, phase, unknown);
        assert_eq!(b.e.task(&r).unwrap().state, done, "{says}");
        let w = warnings(&out);
        assert_eq!(w.len(), 1, "{out:?}");
        assert!(w[0].contains(says), "{w:?}");
        assert!(
            w[0].contains(&format!("task {r} is outside any phase")),
            "{w:?}"
        );
        assert!(w[0].contains("`phase: 0`"), "{w:?}");
        let log = &b.e.run(&b.run_id()).unwrap().log;
        assert!(
            log.iter()
                .any(|(_, l)| l.contains("warning") && l.contains(&r)),
            "{log:?}"
        );
    }

    // The right phase for a step's task says nothing.
    let task = b.task_of("campaign-design");
    b.write_outputs("campaign-design");
    let out = status_with_phase(&mut b, &task, Some(2), None);
    assert!(warnings(&out).is_empty(), "{out:?}");
    assert_eq!(b.e.task(&task).unwrap().state, done);
}

// ---- snapshots ----

#[test]
fn a_snapshot_without_configuration_or_catching_up_restores_with_the_current_configuration() {
    let mut b = Bus::new();
    b.request(&[1], None, false);
    b.finish_step("gtm-strategy");
    let mut json = serde_json::to_value(b.e.snapshot()).unwrap();
    let fields = json.as_object_mut().unwrap();
    assert!(
        fields["playbook"]["phases"].is_array(),
        "the playbook as itself"
    );
    assert!(fields["agents"]["coordinator"].is_object());
    // A snapshot written before these were journaled.
    for old in ["playbook", "agents", "catching_up"] {
        fields.remove(old);
    }
    let state: EngineState = serde_json::from_value(json).unwrap();
    let restored = Engine::restore(Playbook::default_playbook(), policies(true, 1), state);
    assert_eq!(restored.digest(), b.e.digest());
    assert_eq!(
        serde_json::to_string(&restored.snapshot()).unwrap(),
        serde_json::to_string(&b.e.snapshot()).unwrap()
    );
}
