//! The run record `runs/<run-id>.md`: what happened in a run, for people.
//!
//! Rendered from the engine's state (a pure function), so it can be rewritten
//! at any time and always agrees with `gtmd status`.

use crate::diagnostic::one_line;
use crate::engine::{Engine, Millis, Run, RunState, StepState, TaskState};
use std::fmt::Write;

pub fn record_path(run: &str) -> String {
    format!("runs/{run}.md")
}

pub fn render(engine: &Engine, run: &Run) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Run {}\n", run.id);
    let state = match &run.state {
        RunState::Running => "running".to_string(),
        RunState::Passed => "complete".to_string(),
        RunState::Failed { reason } => format!("failed: {reason}"),
        RunState::Cancelled => "cancelled".to_string(),
    };
    let _ = writeln!(s, "- state: {state}");
    let _ = writeln!(s, "- started: {}", time(run.started_at));
    if let Some(end) = run.ended_at {
        let _ = writeln!(
            s,
            "- ended: {} ({})",
            time(end),
            duration(end.saturating_sub(run.started_at))
        );
    }
    if !run.phases.is_empty() {
        let names: Vec<String> = run
            .phases
            .iter()
            .map(|p| {
                engine
                    .playbook()
                    .phase(*p)
                    .map(|ph| format!("{} {}", p, ph.name))
                    .unwrap_or_else(|| p.to_string())
            })
            .collect();
        let _ = writeln!(s, "- phases: {}", names.join(", "));
    }
    if !run.request.config_path.is_empty() {
        let _ = writeln!(s, "- config: {}", run.request.config_path);
    }
    if let Some(sc) = &run.request.scenario {
        let _ = writeln!(s, "- scenario: {sc}");
    }

    if !run.steps.is_empty() {
        let _ = writeln!(s, "\n## Steps\n");
        let _ = writeln!(s, "| phase | step | agent | state | estimate | actual |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for p in &run.phases {
            let Some(phase) = engine.playbook().phase(*p) else {
                continue;
            };
            for def in &phase.steps {
                let Some(st) = run.steps.get(&def.id) else {
                    continue;
                };
                let state = match &st.state {
                    StepState::Waiting => "waiting".to_string(),
                    StepState::Active { task } => format!("active ({task})"),
                    StepState::AwaitingOutputs { missing } => {
                        format!("missing {}", missing.join(", "))
                    }
                    StepState::Done => "done".to_string(),
                };
                let actual = match (st.started_at, st.done_at) {
                    (Some(a), Some(b)) => duration(b.saturating_sub(a)),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} min | {} |",
                    p, def.id, def.agent, state, def.estimate_minutes, actual
                );
            }
        }
    }

    if !run.gates.is_empty() {
        let _ = writeln!(s, "\n## Gates\n");
        for g in run.gates.values() {
            let ticked = g.boxes.iter().filter(|(_, t)| *t).count();
            let failing = g
                .checks
                .as_ref()
                .map(|c| c.iter().filter(|c| !c.passed).count())
                .unwrap_or(0);
            let state = match g.passed_at {
                Some(at) => format!("passed {}", time(at)),
                None => "open".into(),
            };
            let _ = writeln!(
                s,
                "- phase {}: {} — {}/{} boxes ticked, {} automatic check(s) failing — `{}`",
                g.phase,
                state,
                ticked,
                g.boxes.len(),
                failing,
                g.path
            );
        }
    }

    let tasks: Vec<_> = engine
        .tasks()
        .values()
        .filter(|t| t.run.as_deref() == Some(run.id.as_str()))
        .collect();
    if !tasks.is_empty() {
        let _ = writeln!(s, "\n## Tasks\n");
        let _ = writeln!(s, "| task | agent | trigger | start | end | outcome |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for t in tasks {
            let outcome = match &t.state {
                TaskState::Done { outcome } => outcome.label(),
                TaskState::Queued => "queued".into(),
                TaskState::Running => "running".into(),
                TaskState::RetryWait => format!("waiting to retry (attempt {})", t.attempt),
                TaskState::Blocked => format!("blocked: {}", t.blockers.join("; ")),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                t.id,
                t.agent,
                cell(&t.trigger),
                t.started_at.map(time).unwrap_or_else(|| "-".into()),
                t.ended_at.map(time).unwrap_or_else(|| "-".into()),
                cell(&outcome)
            );
        }
    }

    let end = run.ended_at.unwrap_or(u64::MAX);
    let in_run = |at: Millis| at >= run.started_at && at <= end;
    let conflicts: Vec<_> = engine
        .conflicts()
        .values()
        .filter(|c| in_run(c.opened_at) || c.closed_at.is_some_and(in_run))
        .collect();
    let decisions: Vec<_> = engine
        .decisions()
        .values()
        .filter(|d| in_run(d.at))
        .collect();
    if !conflicts.is_empty() || !decisions.is_empty() {
        let _ = writeln!(s, "\n## Conflicts and decisions\n");
        for c in conflicts {
            let state = match (&c.closed_at, &c.closed_by) {
                (Some(at), Some(by)) if c.withdrawn => format!("{by} ({})", time(*at)),
                (Some(at), Some(by)) => format!("closed {} by {by}", time(*at)),
                _ => "open".to_string(),
            };
            let _ = writeln!(
                s,
                "- conflict `{}` raised {} ({} version(s)): {} — {}",
                c.path,
                time(c.opened_at),
                c.versions,
                one_line(&c.title),
                state
            );
        }
        for d in decisions {
            let _ = writeln!(
                s,
                "- decision `{}` {} on {}: affects {}{}",
                d.path,
                time(d.at),
                d.resolves.as_deref().unwrap_or("(no conflict named)"),
                if d.affected.is_empty() {
                    "no agent".to_string()
                } else {
                    d.affected.join(", ")
                },
                if d.problems.is_empty() {
                    String::new()
                } else {
                    format!(" — could not read: {}", d.problems.join("; "))
                }
            );
        }
    }

    if !run.refused.is_empty() {
        let _ = writeln!(s, "\n## Refused files\n");
        for d in run.refused.values() {
            let _ = writeln!(s, "- {}", one_line(&d.to_string()));
        }
    }

    let _ = writeln!(s, "\n## History\n");
    for (at, line) in &run.log {
        let _ = writeln!(s, "- {} {}", time(*at), one_line(line));
    }
    s
}

pub fn time(at: Millis) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(at))
        .to_string()
}

pub fn duration(ms: Millis) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{:.1} min", ms as f64 / 60_000.0)
    }
}

fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}
