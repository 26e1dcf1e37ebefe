//! Replay: the same events give the same state, whatever their order or
//! duplicates; a snapshot restores it.

use super::*;

#[test]
fn replaying_the_same_events_gives_the_same_state() {
    let mut b = Bus::new();
    let mut log = Vec::new();
    let record = |b: &mut Bus, log: &mut Vec<Event>, ev: Event| {
        log.push(ev.clone());
        b.send(ev)
    };
    let at = b.at();
    record(
        &mut b,
        &mut log,
        Event::RunRequested {
            request: RunRequest {
                id: "x".into(),
                kind: RunKind::Phases { phases: vec![1, 2] },
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
        },
    );
    for (i, p) in [
        "strategy/gtm-strategy.md",
        "strategy/personas/a.md",
        "strategy/competitive-analysis.md",
        "strategy/budget-allocation.md",
    ]
    .iter()
    .enumerate()
    {
        record(
            &mut b,
            &mut log,
            Event::FileChanged {
                path: p.to_string(),
                hash: format!("{i}"),
                size: 5,
                mtime_ns: 0,
                at,
                content: FileContent::Plain,
            },
        );
    }
    let task = b.task_of("gtm-strategy");
    record(
        &mut b,
        &mut log,
        Event::TaskExited {
            task,
            exit: ExitOutcome::Code { code: 0 },
            report: None,
            at,
        },
    );
    let mut again = Engine::new(Playbook::default_playbook(), policies(true, 1));
    for e in &log {
        again.handle(e);
    }
    assert_eq!(
        serde_json::to_string(b.e.runs()).unwrap(),
        serde_json::to_string(again.runs()).unwrap()
    );
    assert_eq!(
        serde_json::to_string(b.e.tasks()).unwrap(),
        serde_json::to_string(again.tasks()).unwrap()
    );
}

mod order {
    use super::*;
    use proptest::prelude::*;

    fn event(path_idx: u8, content: u8, kind: u8, at: Millis) -> Event {
        let (path, file) = match kind {
            0 => (
                format!("conflicts/c{path_idx}.md"),
                FileContent::Conflict {
                    conflict: Default::default(),
                },
            ),
            1 => ("demand-gen/lead-scoring.md".to_string(), FileContent::Plain),
            _ => (
                format!("demand-gen/campaigns/c{path_idx}.md"),
                FileContent::Plain,
            ),
        };
        Event::FileChanged {
            path,
            hash: format!("v{content}"),
            size: 1,
            mtime_ns: 0,
            at,
            content: file,
        }
    }

    /// What the engine reacted with: which agent got a task, and why.
    fn reactions(events: &[Event]) -> Vec<(String, String)> {
        let mut e = Engine::new(Playbook::default_playbook(), policies(false, 0));
        for ev in events {
            e.handle(ev);
        }
        let mut r: Vec<_> = e
            .tasks()
            .values()
            .map(|t| (t.agent.clone(), t.trigger.clone()))
            .collect();
        r.sort();
        r
    }

    fn shuffle<T>(v: &mut [T], mut seed: u64) {
        for i in (1..v.len()).rev() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let j = (seed >> 33) as usize % (i + 1);
            v.swap(i, j);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn reactions_do_not_depend_on_order_duplication_or_replay(
            versions in prop::collection::vec((0u8..5, 0u8..3, 0u8..3), 1..40),
            seed in any::<u64>(),
            dups in prop::collection::vec(any::<prop::sample::Index>(), 0..15),
        ) {
            let events: Vec<Event> = versions
                .iter()
                .enumerate()
                .map(|(i, (p, c, k))| event(*p, *c, *k, 1_000 + i as u64))
                .collect();
            let once = reactions(&events);

            let mut shuffled = events.clone();
            shuffle(&mut shuffled, seed);
            prop_assert_eq!(&reactions(&shuffled), &once, "reordered");

            let mut duplicated = events.clone();
            for d in &dups {
                let e = events[d.index(events.len())].clone();
                let at = d.index(duplicated.len() + 1);
                duplicated.insert(at, e);
            }
            prop_assert_eq!(&reactions(&duplicated), &once, "duplicated");

            let mut replayed = events.clone();
            replayed.extend(events.iter().cloned());
            prop_assert_eq!(&reactions(&replayed), &once, "replayed");
        }
    }
}

#[test]
fn a_snapshot_without_configuration_or_catching_up_restores_with_the_current_configuration() {
    let mut b = Bus::with_run(&[1]);
    b.finish_step("gtm-strategy");
    let mut json = serde_json::to_value(b.e.snapshot()).unwrap();
    let fields = json.as_object_mut().unwrap();
    assert!(
        fields["playbook"]["phases"].is_array(),
        "the playbook as itself"
    );
    assert!(fields["agents"]["coordinator"].is_object());
    // A snapshot written before these were journaled.
    for old in ["playbook", "agents", "catching_up"] {
        fields.remove(old);
    }
    let state: EngineState = serde_json::from_value(json).unwrap();
    let restored = Engine::restore(Playbook::default_playbook(), policies(true, 1), state);
    assert_eq!(restored.digest(), b.e.digest());
    assert_eq!(
        serde_json::to_string(&restored.snapshot()).unwrap(),
        serde_json::to_string(&b.e.snapshot()).unwrap()
    );
}
