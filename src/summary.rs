//! A run in one line, worded the same wherever gtmd shows one: `gtmd
//! status`, the run record, the progress lines of a foreground run and
//! systemd's `STATUS=`. One formatter, so a reader who learns the line in
//! one place can read it in all of them.

use crate::engine::{Engine, Run, RunState, StepState};

/// The word for how a run stands: `running`, `complete`, `failed: why`,
/// `cancelled`.
pub fn state_word(run: &Run) -> String {
    match &run.state {
        RunState::Running => "running".into(),
        RunState::Passed => "complete".into(),
        RunState::Failed { reason } => format!("failed: {reason}"),
        RunState::Cancelled => "cancelled".into(),
    }
}

/// How a run stands and, for a team run in a phase, how far it is:
/// `running, phase 2 pipeline-building (2/4 of the run), 1/4 steps done`,
/// then `, gate 3/5 ticked` while the phase's gate is open.
pub fn run_summary(engine: &Engine, run: &Run) -> String {
    format!("{}{}", progress(engine, run), spent(engine, run))
}

/// `, $0.0450 spent` (of its cap, when it has one), `, 12,000 tokens of
/// its 50,000 cap` under a token cap, or nothing while no runtime has
/// reported a cost.
fn spent(engine: &Engine, run: &Run) -> String {
    let cap = run
        .request
        .max_cost
        .map(|c| format!(" of its ${c:.2} cap"))
        .unwrap_or_default();
    let tokens = |c: &crate::engine::Cost| match run.request.max_tokens {
        Some(max) => format!(", {} tokens of its {max} cap", c.tokens()),
        None => String::new(),
    };
    match engine.run_cost(&run.id) {
        Some(c) if c.price_unknown => format!(
            ", {} tokens used ({}){cap}{}",
            c.tokens(),
            c.money(),
            tokens(&c)
        ),
        Some(c) => format!(", {} spent{cap}{}", c.money(), tokens(&c)),
        None if !cap.is_empty() || run.request.max_tokens.is_some() => {
            format!(", nothing spent{cap}{}", tokens(&Default::default()))
        }
        None => String::new(),
    }
}

fn progress(engine: &Engine, run: &Run) -> String {
    let Some(p) = run.current_phase().and_then(|p| engine.playbook().phase(p)) else {
        return state_word(run);
    };
    let steps: Vec<_> = run.steps.values().filter(|s| s.phase == p.number).collect();
    let done = steps.iter().filter(|s| s.state == StepState::Done).count();
    let gate = match run.gates.get(&p.number) {
        Some(g) if g.passed_at.is_none() => {
            let ticked = g.boxes.iter().filter(|(_, t)| *t).count();
            format!(", gate {ticked}/{} ticked", g.boxes.len())
        }
        _ => String::new(),
    };
    format!(
        "{}, phase {} {} ({}/{} of the run), {done}/{} steps done{gate}",
        state_word(run),
        p.number,
        p.name,
        run.current + 1,
        run.phases.len(),
        steps.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{AgentPolicy, CancelTarget, Event, RunKind, RunRequest};
    use crate::playbook::Playbook;

    fn engine_with_run(phases: Vec<u8>) -> Engine {
        let agents = crate::agents::AGENTS
            .iter()
            .map(|a| {
                let policy = AgentPolicy {
                    retries: 0,
                    has_command: true,
                    ..Default::default()
                };
                (a.to_string(), policy)
            })
            .collect();
        let mut e = Engine::new(Playbook::default_playbook(), agents);
        e.handle(&Event::RunRequested {
            request: RunRequest {
                id: "req".into(),
                kind: RunKind::Phases { phases },
                config: Default::default(),
                config_path: String::new(),
                scenario: None,
                force: true,
                budget_secs: None,
                max_cost: None,
                hard_cap: false,
                max_tokens: None,
            },
            at: 1_764_000_000_000,
        });
        e
    }

    #[test]
    fn a_run_in_a_phase_says_where_and_an_ended_one_says_how_it_ended() {
        let mut e = engine_with_run(vec![2, 3]);
        let run = e.runs().values().next().unwrap().clone();
        assert_eq!(
            run_summary(&e, &run),
            "running, phase 2 pipeline-building (1/2 of the run), 0/4 steps done"
        );
        e.handle(&Event::CancelRequested {
            target: CancelTarget::Run {
                run: run.id.clone(),
            },
            reason: Some("over budget".into()),
            at: 1_764_000_001_000,
        });
        let run = e.run(&run.id).unwrap();
        assert_eq!(run_summary(&e, run), "cancelled");
        assert_eq!(state_word(run), "cancelled");
    }
}
