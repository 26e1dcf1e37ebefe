//! Runtimes that report tokens and writes rather than dollars and denials
//! (issue 15, Codex): a token cap stops a run whatever the runtime, a
//! `--max-cost` run is refused when an agent's tokens have no price, and a
//! task whose runtime says it wrote another agent's file fails even though
//! its status said complete.

use super::*;

/// Agents whose runtime audits their writes; `unpriced` for coordinator.
fn audited(unpriced: bool) -> Bus {
    let agents = crate::agents::AGENTS
        .iter()
        .map(|a| {
            let policy = AgentPolicy {
                retries: 1,
                has_command: true,
                audits_writes: true,
                unpriced: (unpriced && *a == "coordinator")
                    .then(|| "model gpt-5.5 has no price in prices.yaml".into()),
            };
            (a.to_string(), policy)
        })
        .collect();
    Bus {
        e: Engine::new(Playbook::default_playbook(), agents),
        now: 1_764_000_000_000,
        n: 0,
    }
}

fn request(b: &mut Bus, max_cost: Option<f64>, max_tokens: Option<u64>) -> Vec<Action> {
    let at = b.at();
    b.send(Event::RunRequested {
        request: RunRequest {
            id: format!("req{}", b.now),
            kind: RunKind::Phases { phases: vec![1] },
            config: Default::default(),
            config_path: "CONFIG.md".into(),
            scenario: None,
            force: false,
            budget_secs: None,
            max_cost,
            hard_cap: false,
            max_tokens,
        },
        at,
    })
}

fn tokens(n: u64) -> RuntimeReport {
    RuntimeReport {
        cost: Some(Cost {
            input_tokens: n,
            price_unknown: true,
            ..Cost::default()
        }),
        ..RuntimeReport::default()
    }
}

fn exit_with(b: &mut Bus, task: &str, code: i32, report: RuntimeReport) -> Vec<Action> {
    let at = b.at();
    b.send(Event::TaskExited {
        task: task.into(),
        exit: ExitOutcome::Code { code },
        report: Some(Box::new(report)),
        at,
    })
}

#[test]
fn a_max_cost_run_with_an_agent_whose_price_is_unknown_is_refused_at_start() {
    let mut b = audited(true);
    let a = request(&mut b, Some(5.0), None);
    let reason = a
        .iter()
        .find_map(|a| match a {
            Action::RunRefused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{a:?}"));
    assert!(
        reason.contains("coordinator: model gpt-5.5 has no price in prices.yaml")
            && reason.contains("--max-tokens"),
        "{reason}"
    );
    assert!(b.e.runs().is_empty());
    // Without --max-cost, or with a token cap, it runs.
    request(&mut b, None, Some(1_000));
    assert_eq!(b.e.runs().len(), 1);
}

#[test]
fn a_token_cap_stops_the_run_once_its_tasks_report_that_many_tokens() {
    let mut b = audited(true);
    request(&mut b, None, Some(1_000));
    let first = b.task_of("gtm-strategy");
    b.write_outputs("gtm-strategy");
    let a = exit_with(&mut b, &first, 0, tokens(600));
    assert_eq!(
        a.iter()
            .filter(|a| matches!(a, Action::StartTask { .. }))
            .count(),
        1,
        "under the cap the next step starts: {a:?}"
    );
    let brand = b.task_of("messaging-framework");
    exit_with(&mut b, &brand, 1, tokens(500));
    let r = b.e.run(&b.run_id()).unwrap();
    let RunState::Failed { reason } = &r.state else {
        panic!("{:?}", r.state)
    };
    assert!(
        reason.contains("token cap of 1000 (--max-tokens)") && reason.contains("1100 tokens"),
        "{reason}"
    );
    assert!(b.e.run_cost(&r.id).unwrap().price_unknown);
}

#[test]
fn a_complete_status_waits_for_the_exit_and_an_unowned_write_fails_the_task() {
    let mut b = audited(false);
    request(&mut b, None, None);
    let t = b.task_of("gtm-strategy");
    b.write_outputs("gtm-strategy");
    b.status("coordinator", Some(&t), TaskStatus::Complete);
    assert_eq!(b.e.task(&t).unwrap().state, TaskState::Running, "held");
    assert!(b.e.task(&t).unwrap().held.is_some());
    let report = RuntimeReport {
        unowned_writes: vec!["status/growth-analyst.md".into()],
        ..RuntimeReport::default()
    };
    exit_with(&mut b, &t, 0, report);
    let TaskState::Done {
        outcome: Outcome::Failed { reason },
    } = &b.e.task(&t).unwrap().state
    else {
        panic!("{:?}", b.e.task(&t).unwrap().state)
    };
    assert_eq!(
        reason,
        "wrote files it does not own: status/growth-analyst.md"
    );
    // The coordinator hears of it.
    assert!(b
        .e
        .tasks()
        .values()
        .any(|x| matches!(x.kind, TaskKind::Escalation { .. })));
}

#[test]
fn a_held_status_completes_the_task_at_an_exit_that_found_nothing_wrong() {
    let mut b = audited(false);
    request(&mut b, None, None);
    let t = b.task_of("gtm-strategy");
    b.write_outputs("gtm-strategy");
    b.status("coordinator", Some(&t), TaskStatus::Complete);
    exit_with(&mut b, &t, 0, tokens(10));
    assert_eq!(
        b.e.task(&t).unwrap().state,
        TaskState::Done {
            outcome: Outcome::Complete
        }
    );
    assert!(b.e.task(&b.task_of("messaging-framework")).is_some());
}
