//! Reloading the playbook: what a new one may not change under a run, and an
//! engine given one anyway.

use super::*;

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
    let mut b = Bus::with_run(&[1, 2]);
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

#[test]
fn an_engine_given_a_playbook_without_its_running_step_does_not_panic() {
    let mut b = Bus::with_run(&[1]);
    let task = b.task_of("gtm-strategy");
    // What a reload used to do: swap the playbook under the run.
    b.swap_playbook(playbook_with(|pb| {
        phase_mut(pb, 1).steps.retain(|s| s.id != "gtm-strategy");
        for s in &mut phase_mut(pb, 1).steps {
            s.depends_on.clear();
        }
    }));
    b.status("coordinator", Some(&task), TaskStatus::Complete);
    b.exit(&task, 0);
    assert_eq!(step_state(&b, "gtm-strategy"), StepState::Done);
    // The next step still starts, and ends, even with its phase gone.
    assert!(matches!(
        step_state(&b, "messaging-framework"),
        StepState::Active { .. }
    ));
    b.swap_playbook(playbook_with(|pb| pb.phases.clear()));
    let next = b.task_of("messaging-framework");
    b.exit(&next, 0);
    assert_eq!(step_state(&b, "messaging-framework"), StepState::Done);
}
