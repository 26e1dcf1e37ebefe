//! Tasks run as cluster jobs: the job's name is journaled before it is
//! submitted, and a restart follows the job instead of running the task
//! again.

use super::*;

impl Bus {
    fn submitting(&mut self, task: &str, name: &str) -> Vec<Action> {
        let at = self.at();
        self.send(Event::JobSubmitting {
            task: task.into(),
            name: name.into(),
            at,
        })
    }
    fn submitted(&mut self, task: &str, name: &str, id: &str) -> Vec<Action> {
        let at = self.at();
        self.send(Event::JobSubmitted {
            task: task.into(),
            name: name.into(),
            id: id.into(),
            at,
        })
    }
    fn restart(&mut self) -> Vec<Action> {
        let at = self.at();
        let mut a = self.send(Event::Restarted { at });
        let at = self.at();
        a.extend(self.send(Event::CaughtUp { at }));
        a
    }
}

fn reattached(actions: &[Action]) -> Vec<(String, String, Option<String>, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ReattachJob {
                task,
                name,
                id,
                submit_if_missing,
            } => Some((
                task.id.clone(),
                name.clone(),
                id.clone(),
                *submit_if_missing,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_job_is_submitted_under_the_name_journaled_first() {
    let mut b = Bus::with_run(&[1]);
    let task = b.task_of("gtm-strategy");
    let name = job_name(&task, 1, 1);
    let a = b.submitting(&task, &name);
    assert!(
        a.iter().any(
            |a| matches!(a, Action::SubmitJob { task: t, name: n } if t.id == task && *n == name)
        ),
        "{a:?}"
    );
    let t = b.e.task(&task).unwrap();
    assert_eq!(t.submissions, 1);
    assert_eq!(
        t.job.as_ref().map(|j| (j.name.as_str(), j.id.clone())),
        Some((name.as_str(), None))
    );
    b.submitted(&task, &name, "42");
    let job = b.e.task(&task).unwrap().job.clone().unwrap();
    assert_eq!(job.id.as_deref(), Some("42"));
}

#[test]
fn a_restart_follows_a_running_job_instead_of_running_its_task_again() {
    let mut b = Bus::with_run(&[1]);
    let task = b.task_of("gtm-strategy");
    let name = job_name(&task, 1, 1);
    b.submitting(&task, &name);
    b.submitted(&task, &name, "42");
    let a = b.restart();
    assert_eq!(
        reattached(&a),
        vec![(task.clone(), name, Some("42".to_string()), true)]
    );
    assert!(started(&a).is_empty(), "started again: {a:?}");
    let t = b.e.task(&task).unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert!(t.process_alive);
    assert_eq!(t.attempt, 1);
    // The job's end is the task's exit, as for a process.
    b.write_outputs("gtm-strategy");
    b.status("coordinator", Some(&task), TaskStatus::Complete);
    b.exit(&task, 0);
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
    assert!(!b.e.task(&task).unwrap().process_alive);
}

#[test]
fn a_job_whose_submission_was_cut_short_is_looked_up_by_name() {
    let mut b = Bus::with_run(&[1]);
    let task = b.task_of("gtm-strategy");
    let name = job_name(&task, 1, 1);
    b.submitting(&task, &name);
    // gtmd died before the scheduler's answer was journaled.
    let a = b.restart();
    assert_eq!(reattached(&a), vec![(task, name, None, true)]);
}

#[test]
fn a_local_task_still_runs_again_after_a_restart() {
    let mut b = Bus::with_run(&[1]);
    let task = b.task_of("gtm-strategy");
    let a = b.restart();
    assert!(reattached(&a).is_empty());
    assert_eq!(started(&a), vec!["gtm-strategy"]);
    assert_eq!(b.e.task(&task).unwrap().attempt, 1);
}

#[test]
fn a_job_outliving_its_finished_task_is_followed_but_never_submitted_again() {
    let mut b = Bus::with_run(&[1]);
    let task = b.task_of("gtm-strategy");
    let name = job_name(&task, 1, 1);
    b.submitting(&task, &name);
    b.submitted(&task, &name, "7");
    // The status came, the job had not ended yet when gtmd stopped.
    b.write_outputs("gtm-strategy");
    b.status("coordinator", Some(&task), TaskStatus::Complete);
    let a = b.restart();
    assert_eq!(reattached(&a), vec![(task, name, Some("7".into()), false)]);
}

#[test]
fn a_retry_is_a_new_job_with_a_name_of_its_own() {
    let mut b = Bus::with(true, 1).running(&[1]);
    let task = b.task_of("gtm-strategy");
    b.submitting(&task, &job_name(&task, 1, 1));
    b.submitted(&task, &job_name(&task, 1, 1), "1");
    b.exit(&task, 3);
    let a = b.retry_due(&task);
    assert_eq!(started(&a), vec!["gtm-strategy"]);
    let t = b.e.task(&task).unwrap();
    assert_eq!((t.job.clone(), t.submissions), (None, 1));
    assert_eq!(
        job_name(&task, t.submissions + 1, 1_764_000_000_000),
        format!("gtmd-{task}-2-midc1z40")
    );
}

#[test]
fn no_job_is_submitted_for_a_task_cancelled_meanwhile() {
    let mut b = Bus::with_run(&[1]);
    let task = b.task_of("gtm-strategy");
    b.cancel(CancelTarget::Task { task: task.clone() }, None);
    let a = b.submitting(&task, &job_name(&task, 1, 1));
    assert!(
        !a.iter().any(|a| matches!(a, Action::SubmitJob { .. })),
        "{a:?}"
    );
}

#[test]
fn a_job_whose_task_was_cancelled_before_a_restart_is_cancelled_again() {
    let mut b = Bus::with_run(&[1]);
    let task = b.task_of("gtm-strategy");
    let name = job_name(&task, 1, 1);
    b.submitting(&task, &name);
    b.submitted(&task, &name, "7");
    // Cancelled; the gtmd that sent the scancel may have died before it
    // reached the scheduler.
    let a = b.cancel(CancelTarget::Task { task: task.clone() }, None);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::StopTask { task: t } if *t == task)));
    let a = b.restart();
    assert_eq!(
        reattached(&a),
        vec![(task.clone(), name, Some("7".into()), false)]
    );
    let stop = a
        .iter()
        .position(|a| matches!(a, Action::StopTask { task: t } if *t == task));
    let follow = a
        .iter()
        .position(|a| matches!(a, Action::ReattachJob { .. }));
    assert!(stop > follow, "followed, then stopped: {a:?}");
}
