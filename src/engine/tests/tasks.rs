//! Tasks: one at a time per agent, retries, escalation, an exit without a
//! status, the files a task leaves.

use super::*;

#[test]
fn one_task_at_a_time_per_agent() {
    let mut b = Bus::with_run(&[1]);
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
    let mut b = Bus::with(true, 1).running(&[1]);
    let task = b.task_of("gtm-strategy");
    let a = b.exit(&task, 3);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::ScheduleRetry { delay_ms: 1000, .. })));
    let a = b.retry_due(&task);
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
    let mut b = Bus::with_run(&[1]);
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
    let mut b = Bus::with(true, 0).running(&[1]);
    let task = b.task_of("gtm-strategy");
    b.exit(&task, 0);
    assert!(matches!(
        b.e.task(&task).unwrap().state,
        TaskState::Done {
            outcome: Outcome::Failed { .. }
        }
    ));

    let mut b = Bus::with(true, 0).running(&[1]);
    let task = b.task_of("gtm-strategy");
    b.write_outputs("gtm-strategy");
    let a = b.exit(&task, 0);
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
    assert_eq!(started(&a), vec!["messaging-framework"]);
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
fn tasks_since_a_mark_are_the_tasks_an_event_made_even_past_ten_thousand() {
    let mut b = Bus::with_run(&[1]);
    let conflict = || FileContent::Conflict {
        conflict: Default::default(),
    };
    let mark = b.e.task_mark();
    b.file("conflicts/a.md", conflict());
    let new: Vec<&str> = b.e.tasks_since(mark).map(|t| t.id.as_str()).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].ends_with("-conflict-review"), "{new:?}");
    // Ids sort as text, so `t10000-…` sorts before `t1001-…`: the lookup
    // goes by sequence number, not by the map's order.
    for i in 0..10_050 {
        b.file(&format!("conflicts/c{i}.md"), conflict());
    }
    let mark = b.e.task_mark();
    b.file("conflicts/last.md", conflict());
    let new: Vec<&Task> = b.e.tasks_since(mark).collect();
    assert_eq!(new.len(), 1);
    assert!(new[0].seq >= 10_000 && new[0].id.starts_with(&format!("t{}-", new[0].seq)));
    assert_eq!(b.e.tasks_since(b.e.task_mark()).count(), 0);
}
