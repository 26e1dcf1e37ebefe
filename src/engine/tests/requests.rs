//! Run requests and cancels: execution modes, scenario validation, agent
//! runs, cancelling a task or a run.

use super::*;

#[test]
fn scenario_must_fit_unless_forced() {
    let mut b = Bus::new();
    let a = b.request(&[1, 2, 3, 4], Some("scaling"), false);
    let reason = refusal(&a);
    assert!(reason.contains("scaling runs phases 2,3,4"), "{reason}");
    assert!(b.e.runs().is_empty());
    let a = b.request(&[1, 2, 3, 4], Some("new-product-launch"), false);
    assert_eq!(started(&a), vec!["gtm-strategy"]);
}

#[test]
fn a_run_starting_at_phase_two_needs_phase_one_outputs() {
    let mut b = Bus::new();
    let a = b.request(&[2, 3], None, false);
    let reason = refusal(&a);
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
            max_cost: None,
            hard_cap: false,
            max_tokens: None,
        },
        at,
    });
    let spec = first_start(&a).unwrap();
    assert_eq!(spec.text, "Design a Google Ads campaign; rm -rf / `x` $(y)");
    let a = b.exit(&spec.id, 0);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::RunFinished { ok: true, .. })));
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
    let a = b.cancel(
        CancelTarget::Run { run: run.clone() },
        Some("over its wall-clock budget of 5s (--run-budget)"),
    );
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
fn dates_are_computed_without_a_clock() {
    assert_eq!(date_of(0), "1970-01-01");
    assert_eq!(date_of(1_770_681_600_000), "2026-02-10");
}
