//! Status files: matched to their task, refused when they answer none, a
//! commit of what they list, a phase that says otherwise.

use super::*;

#[test]
fn a_status_is_matched_by_agent_and_phase_without_task_id() {
    let mut b = Bus::with_run(&[1]);
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
    let mut b = Bus::with_run(&[1]);
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
fn a_completed_status_asks_for_a_commit_of_its_files_and_nothing_else_does() {
    let mut b = Bus::with_run(&[1, 2]);
    b.pass_phase(1);
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
