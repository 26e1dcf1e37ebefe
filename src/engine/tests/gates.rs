//! Quality gates: the review, the boxes and checks that hold the next phase,
//! a gate file edited or put back.

use super::*;

#[test]
fn gate_opens_with_a_coordinator_review_and_one_unticked_box_holds_the_next_phase() {
    let mut b = Bus::at_gate(1);
    let a = b.evaluate(1, true);
    let (path, contents) = written(&a).expect("the gate file is written");
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
    let mut b = Bus::at_gate(1);
    b.evaluate(1, false);
    b.tick_gate(1, 0);
    let a = b.evaluate(1, false);
    assert!(started(&a).is_empty());
    // The fix arrives: the checks pass, the gate file is rewritten with the ticks kept.
    let a = b.evaluate(1, true);
    let (_, contents) = written(&a).expect("gate rewritten with the new check results");
    assert!(contents.contains("- [x] Budget allocation sums"));
    assert_eq!(started(&a).len(), 4);
}

#[test]
fn a_gate_file_edited_into_nonsense_is_refused_and_written_back() {
    let mut b = Bus::at_gate(1);
    b.evaluate(1, true);
    let a = b.file("strategy/gates/phase-1-strategy.md", not_a_gate());
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
    // A copy from long ago, seen while no gate was open.
    b.version(path, "old", not_a_gate());
    b.request(&[1, 2], None, false);
    b.finish_steps(1);
    b.evaluate(1, true);
    let (_, unticked) = b.gate_file(1, usize::MAX);
    b.version(path, "gtmd-wrote", unticked);
    assert!(!b.e.rejected().contains_key(path));
    // The old copy is put back over it.
    let a = b.version(path, "old", not_a_gate());
    let d = b.e.rejected().get(path).expect("the old copy is refused");
    assert!(d.message.contains("checklist items"), "{}", d.message);
    let rewritten = a.iter().any(|a| matches!(a, Action::WriteFile { contents, .. } if contents.contains("- [ ] Budget allocation")));
    assert!(rewritten, "the gate is written back: {a:?}");
    assert_eq!(b.e.run(&b.run_id()).unwrap().current_phase(), Some(1));
}

/// A gate file edited into something that holds none of the checklist.
fn not_a_gate() -> FileContent {
    FileContent::Gate {
        boxes: vec![Checkbox {
            text: "lgtm".into(),
            checked: true,
            line: 1,
        }],
    }
}
