//! What tasks cost and report (issue 13): costs add up per task and per
//! run, a run stops at its cap, passing API errors are retried without using
//! up the agent's retries and fatal ones fail at once, denied writes say
//! why outputs are missing, and a retry resumes the runtime's session.

use super::*;

fn cost(usd: f64) -> Cost {
    Cost {
        usd,
        input_tokens: 1000,
        output_tokens: 100,
        cache_read_tokens: 10,
        cache_creation_tokens: 5,
        turns: 2,
        price_unknown: false,
    }
}

impl Bus {
    /// A run of phase 1 with a spending cap.
    fn with_capped_run(max_cost: f64, hard: bool) -> Bus {
        let mut b = Bus::new();
        let at = b.at();
        b.send(Event::RunRequested {
            request: RunRequest {
                id: "req-capped".into(),
                kind: RunKind::Phases { phases: vec![1] },
                config: Default::default(),
                config_path: "CONFIG.md".into(),
                scenario: None,
                force: false,
                budget_secs: None,
                max_cost: Some(max_cost),
                hard_cap: hard,
                max_tokens: None,
            },
            at,
        });
        b
    }
    fn exit_reporting(&mut self, task: &str, code: i32, report: RuntimeReport) -> Vec<Action> {
        let at = self.at();
        self.send(Event::TaskExited {
            task: task.into(),
            exit: ExitOutcome::Code { code },
            report: Some(Box::new(report)),
            at,
        })
    }
    fn spent(&self, usd: f64) -> RuntimeReport {
        RuntimeReport {
            cost: Some(cost(usd)),
            session: Some("sess-1".into()),
            ..RuntimeReport::default()
        }
    }
}

fn starts(actions: &[Action]) -> Vec<TaskSpec> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartTask { task } => Some(task.clone()),
            _ => None,
        })
        .collect()
}

/// The coordinator's review of a conflict, raised now: it joins the run.
fn review(b: &mut Bus) -> TaskId {
    b.file(
        "conflicts/tone.md",
        FileContent::Conflict {
            conflict: Default::default(),
        },
    );
    b.e.tasks()
        .values()
        .find(|t| matches!(t.kind, TaskKind::ConflictReview { .. }))
        .unwrap()
        .id
        .clone()
}

#[test]
fn a_tasks_cost_adds_up_over_attempts_and_its_run_sums_its_tasks() {
    let mut b = Bus::with_run(&[1]);
    let t = b.task_of("gtm-strategy");
    // The first attempt fails having spent; the second completes.
    b.exit_reporting(&t, 1, b.spent(0.25));
    b.retry_due(&t);
    b.write_outputs("gtm-strategy");
    b.status("coordinator", Some(&t), TaskStatus::Complete);
    b.exit_reporting(&t, 0, b.spent(0.5));
    let c = b.e.task(&t).unwrap().cost.unwrap();
    assert!((c.usd - 0.75).abs() < 1e-9, "{c:?}");
    assert_eq!((c.input_tokens, c.output_tokens, c.turns), (2000, 200, 4));
    let next = b.task_of("messaging-framework");
    b.exit_reporting(&next, 1, b.spent(0.125));
    let run = b.e.run_cost(&b.run_id()).unwrap();
    assert!((run.usd - 0.875).abs() < 1e-9, "{run:?}");
    // A task that reported nothing has no cost.
    let r = review(&mut b);
    b.exit(&r, 0);
    assert_eq!(b.e.task(&r).unwrap().cost, None);
}

#[test]
fn a_run_at_its_cap_starts_nothing_more_and_ends_failed_naming_the_cap() {
    let mut b = Bus::with_capped_run(1.0, false);
    let first = b.task_of("gtm-strategy");
    // Under the cap: the next step starts, told what is left to spend (the
    // agent wrote its outputs and exited 0 without a status).
    b.write_outputs("gtm-strategy");
    let a = b.exit_reporting(&first, 0, b.spent(0.4));
    let started = starts(&a);
    assert_eq!(started.len(), 1, "{a:?}");
    assert!((started[0].budget_usd.unwrap() - 0.6).abs() < 1e-9);
    // The brand messaging task spends past the cap while a review runs.
    let brand = b.task_of("messaging-framework");
    let review = review(&mut b);
    let a = b.exit_reporting(&brand, 1, b.spent(0.7));
    assert!(starts(&a).is_empty(), "nothing starts at the cap: {a:?}");
    let r = b.e.run(&b.run_id()).unwrap();
    assert!(r.is_active(), "it waits for the task still running");
    assert!(r.capped.as_deref().unwrap().contains("$1.00"));
    // Its retry does not start either; when the review ends, the run ends.
    assert!(starts(&b.retry_due(&brand)).is_empty());
    let a = b.exit_reporting(&review, 0, b.spent(0.1));
    let r = b.e.run(&b.run_id()).unwrap();
    let RunState::Failed { reason } = &r.state else {
        panic!("{:?}", r.state)
    };
    assert!(
        reason.contains("cost cap of $1.00") && reason.contains("$1.1000 spent"),
        "{reason}"
    );
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::RunFinished { ok: false, .. })));
    assert!(
        b.e.tasks().values().all(|t| !t.is_open()),
        "what was left is cancelled"
    );
}

#[test]
fn a_hard_cap_stops_the_running_tasks_at_once() {
    let mut b = Bus::with_capped_run(0.5, true);
    let first = b.task_of("gtm-strategy");
    b.write_outputs("gtm-strategy");
    b.status("coordinator", Some(&first), TaskStatus::Complete);
    b.exit_reporting(&first, 0, b.spent(0.3));
    let brand = b.task_of("messaging-framework");
    let review = review(&mut b);
    let a = b.exit_reporting(&brand, 1, b.spent(0.3));
    assert!(a.contains(&Action::StopTask {
        task: review.clone()
    }));
    assert!(!b.e.run(&b.run_id()).unwrap().is_active());
}

#[test]
fn a_passing_api_error_is_retried_without_using_up_the_retries() {
    // One retry allowed; two overloads in a row do not use it.
    let mut b = Bus::with_run(&[1]);
    let t = b.task_of("gtm-strategy");
    for n in 1..=2 {
        let a = b.exit_reporting(
            &t,
            1,
            RuntimeReport {
                error: Some(ApiError::of_status(Some(529), "Overloaded".into())),
                session: Some(format!("sess-{n}")),
                ..RuntimeReport::default()
            },
        );
        assert!(
            a.iter().any(|a| matches!(a, Action::ScheduleRetry { .. })),
            "{a:?}"
        );
        let a = b.retry_due(&t);
        let spec = &starts(&a)[0];
        assert_eq!(spec.attempt, 1, "the same attempt again");
        assert_eq!(spec.resume.as_deref(), Some(format!("sess-{n}").as_str()));
    }
    // A real failure then uses the one retry, and the next ends it.
    b.exit(&t, 1);
    assert_eq!(starts(&b.retry_due(&t))[0].attempt, 2);
    b.exit(&t, 1);
    assert!(!b.e.task(&t).unwrap().is_open());
}

#[test]
fn a_fatal_api_error_fails_the_task_at_once_with_its_message() {
    let mut b = Bus::with_run(&[1]);
    let t = b.task_of("gtm-strategy");
    let a = b.exit_reporting(
        &t,
        1,
        RuntimeReport {
            error: Some(ApiError::of_status(Some(401), "invalid x-api-key".into())),
            ..RuntimeReport::default()
        },
    );
    assert!(!a.iter().any(|a| matches!(a, Action::ScheduleRetry { .. })));
    let TaskState::Done {
        outcome: Outcome::Failed { reason },
    } = &b.e.task(&t).unwrap().state
    else {
        panic!()
    };
    assert_eq!(reason, "API error 401: invalid x-api-key");
}

#[test]
fn outputs_missing_because_writes_were_denied_fail_saying_so() {
    let mut b = Bus::with_run(&[1]);
    let t = b.task_of("gtm-strategy");
    b.exit_reporting(
        &t,
        0,
        RuntimeReport {
            cost: Some(cost(0.01)),
            denials: vec![Denial {
                tool: "Write".into(),
                path: Some("strategy/gtm-strategy.md".into()),
            }],
            ..RuntimeReport::default()
        },
    );
    let task = b.e.task(&t).unwrap();
    let TaskState::Done {
        outcome: Outcome::Failed { reason },
    } = &task.state
    else {
        panic!("{:?}", task.state)
    };
    assert!(
        reason.contains("denied") && reason.contains("Write strategy/gtm-strategy.md"),
        "{reason}"
    );
    assert_eq!(task.denials.len(), 1);
}
