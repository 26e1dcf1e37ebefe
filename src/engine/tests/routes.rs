//! Hand-offs: each route of the communication table, context files, and a
//! loop of hand-offs stopped.

use super::*;

#[test]
fn each_hand_off_route_gives_its_receiver_a_task() {
    for (path, to) in [
        ("demand-gen/lead-scoring.md", "pipeline-manager"),
        ("pipeline/handoff-criteria.md", "customer-success"),
        ("analytics/recommendations.md", "coordinator"),
    ] {
        let mut b = Bus::new();
        let a = b.plain(path);
        let spec = first_start(&a).unwrap_or_else(|| panic!("{path} started nothing"));
        assert_eq!(spec.agent, to);
        assert!(spec.trigger.contains(path));
    }
    // learnings are context, not a trigger.
    let mut b = Bus::new();
    assert!(started(&b.plain("learnings/what-worked.md")).is_empty());
    let a = b.plain("demand-gen/lead-scoring.md");
    let spec = first_start(&a).unwrap();
    assert_eq!(spec.context, vec!["learnings/what-worked.md"]);
}

#[test]
fn a_loop_of_hand_offs_stops_and_tells_the_coordinator() {
    let mut pb = Playbook::default_playbook();
    pb.routes = vec![
        crate::playbook::Route {
            path: "a.md".into(),
            to: "pipeline-manager".into(),
            purpose: "answer a".into(),
            kind: RouteKind::Trigger,
        },
        crate::playbook::Route {
            path: "b.md".into(),
            to: "demand-generation".into(),
            purpose: "answer b".into(),
            kind: RouteKind::Trigger,
        },
    ];
    let mut b = Bus::new();
    b.swap_playbook(pb);
    b.plain("a.md");
    // Each receiver answers by writing the other's file, then exits.
    for _ in 0..20 {
        let Some(running) =
            b.e.tasks()
                .values()
                .find(|t| t.state == TaskState::Running && matches!(t.kind, TaskKind::Route { .. }))
                .cloned()
        else {
            break;
        };
        let answer = if running.agent == "pipeline-manager" {
            "b.md"
        } else {
            "a.md"
        };
        b.plain(answer);
        b.exit(&running.id, 0);
    }
    let routes = tasks_of_kind(&b, |k| matches!(k, TaskKind::Route { .. }));
    assert_eq!(routes.len() as u32, MAX_ROUTE_DEPTH, "{routes:#?}");
    let told = tasks_of_kind(&b, |k| matches!(k, TaskKind::RouteLoop { .. }));
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].agent, "coordinator");
}
