//! Phases and steps: steps in order, outputs that must exist, the run's end.

use super::*;

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
    let mut b = Bus::with_run(&[1, 2]);
    let a = b.pass_phase(1);
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
    let mut b = Bus::with_run(&[1]);
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
    let mut b = Bus::with_run(&[1]);
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
fn the_run_ends_after_the_last_requested_gate() {
    let mut b = Bus::with_run(&[1, 2, 3, 4]);
    for p in 1..=3 {
        b.pass_phase(p);
    }
    let a = b.pass_phase(4);
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
    let mut b = Bus::with_run(&[1, 2, 3, 4]);
    for p in 1..=3 {
        b.pass_phase(p);
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
