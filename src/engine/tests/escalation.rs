//! Conflicts and decisions: a review per version, apply tasks, when a
//! conflict closes, withdrawn and reopened conflicts.

use super::*;

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

/// A version of a conflict file, titled by its path and hash.
fn conflict_version(b: &mut Bus, path: &str, hash: &str) -> Vec<Action> {
    let conflict = crate::protocol::escalation::Conflict {
        title: format!("{path} at {hash}"),
        ..Default::default()
    };
    b.version(path, hash, FileContent::Conflict { conflict })
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

    let out = b.remove("conflicts/b.md");
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
    b.remove("conflicts/a.md");
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
    b.remove("conflicts/a.md");
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
    b.remove("conflicts/a.md");
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
