//! The run record `runs/<run-id>.md`: what happened in a run, for people.
//!
//! Rendered from the engine's state (a pure function), so it can be rewritten
//! at any time and always agrees with `gtmd status`.

use crate::bounds::{clip, some_of};
use crate::diagnostic::one_line;
use crate::engine::{Cost, Engine, Millis, Outcome, Run, StepState, Task, TaskState};
use std::fmt::Write;

/// The record is rewritten while its run goes on, so what it costs must not
/// grow with the run: it shows at most this many of the latest history
/// lines, and of the rows of each table that grows with the run (tasks,
/// conflicts, decisions, refused files), saying how many more there are.
pub const RECORD_ROWS: usize = 500;
/// A history line or list item from a file is clipped to this many chars.
const ITEM_CHARS: usize = 300;
/// A list from a file (a decision's problems) names at most this many items.
const LIST_ITEMS: usize = 20;

/// The last [`RECORD_ROWS`] of `items`, and how many came before them.
fn latest<T>(mut items: Vec<T>) -> (Vec<T>, usize) {
    let hidden = items.len().saturating_sub(RECORD_ROWS);
    items.drain(..hidden);
    (items, hidden)
}

pub fn record_path(run: &str) -> String {
    format!("runs/{run}.md")
}

pub fn render(engine: &Engine, run: &Run) -> String {
    let mut s = String::new();
    heading(&mut s, engine, run);
    steps(&mut s, engine, run);
    gates(&mut s, run);
    tasks(&mut s, engine, run);
    conflicts_and_decisions(&mut s, engine, run);
    refused(&mut s, run);
    history(&mut s, run);
    s
}

/// The title and what the run is: its state, times, phases, configuration.
fn heading(s: &mut String, engine: &Engine, run: &Run) {
    let _ = writeln!(s, "# Run {}\n", run.id);
    let _ = writeln!(s, "- state: {}", crate::summary::run_summary(engine, run));
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
    if let Some(c) = engine.run_cost(&run.id) {
        let _ = writeln!(s, "- cost: {}", c.describe());
    }
    let hard = if run.request.hard_cap { " (hard)" } else { "" };
    if let Some(cap) = run.request.max_cost {
        let _ = writeln!(s, "- cost cap: ${cap:.2}{hard}");
    }
    if let Some(cap) = run.request.max_tokens {
        let _ = writeln!(s, "- token cap: {cap} tokens{hard}");
    }
}

/// What the tasks of `run` that pass `which` cost, as a table cell.
fn cost_of(engine: &Engine, run: &Run, which: impl Fn(&Task) -> bool) -> String {
    let costs: Vec<_> = engine
        .tasks()
        .values()
        .filter(|t| t.run.as_deref() == Some(run.id.as_str()) && which(t))
        .map(|t| &t.cost)
        .collect();
    match Cost::total(costs) {
        Some(c) => c.cell(),
        None => "-".into(),
    }
}

/// Each step of the run's phases: its state, estimate and time taken.
fn steps(s: &mut String, engine: &Engine, run: &Run) {
    if !run.steps.is_empty() {
        let _ = writeln!(s, "\n## Steps\n");
        let _ = writeln!(
            s,
            "| phase | step | agent | state | estimate | actual | cost |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
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
                let cost = cost_of(engine, run, |t| t.step.as_deref() == Some(def.id.as_str()));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} min | {} | {} |",
                    p, def.id, def.agent, state, def.estimate_minutes, actual, cost
                );
            }
        }
        // Per phase: its steps, reviews, escalations and rework.
        for p in &run.phases {
            let cost = cost_of(engine, run, |t| t.phase == Some(*p));
            if cost != "-" {
                let _ = writeln!(s, "\nPhase {p} cost: {cost}");
            }
        }
    }
}

/// Each gate opened: passed or open, boxes ticked, checks failing.
fn gates(s: &mut String, run: &Run) {
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
}

/// The run's latest tasks, with how the earlier ones came out.
fn tasks(s: &mut String, engine: &Engine, run: &Run) {
    let mut tasks: Vec<_> = engine
        .tasks()
        .values()
        .filter(|t| t.run.as_deref() == Some(run.id.as_str()))
        .collect();
    tasks.sort_by_key(|t| t.seq);
    let earlier = tasks.len().saturating_sub(RECORD_ROWS);
    let (earlier, tasks) = tasks.split_at(earlier);
    if !tasks.is_empty() {
        let _ = writeln!(s, "\n## Tasks\n");
        if !earlier.is_empty() {
            let _ = writeln!(
                s,
                "{} earlier task(s) not shown ({}); `gtmd status --json` lists every task.\n",
                earlier.len(),
                task_summary(earlier)
            );
        }
        let _ = writeln!(
            s,
            "| task | agent | trigger | start | end | outcome | cost |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for t in tasks {
            let outcome = match &t.state {
                TaskState::Done { outcome } => outcome.label(),
                TaskState::Queued => "queued".into(),
                TaskState::Running => "running".into(),
                TaskState::RetryWait => format!("waiting to retry (attempt {})", t.attempt),
                TaskState::Blocked => format!(
                    "blocked: {}",
                    some_of(&t.blockers, LIST_ITEMS, ITEM_CHARS, "; ")
                ),
            };
            let outcome = if t.denials.is_empty() {
                outcome
            } else {
                let denied: Vec<String> = t.denials.iter().map(|d| d.describe()).collect();
                format!(
                    "{outcome}; denied: {}",
                    some_of(&denied, LIST_ITEMS, ITEM_CHARS, ", ")
                )
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                t.id,
                t.agent,
                cell(&t.trigger),
                t.started_at.map(time).unwrap_or_else(|| "-".into()),
                t.ended_at.map(time).unwrap_or_else(|| "-".into()),
                cell(&outcome),
                t.cost.map_or("-".into(), |c| c.cell())
            );
        }
    }
}

/// Conflicts raised or closed and decisions written while the run went on.
fn conflicts_and_decisions(s: &mut String, engine: &Engine, run: &Run) {
    let end = run.ended_at.unwrap_or(u64::MAX);
    let in_run = |at: Millis| at >= run.started_at && at <= end;
    let mut conflicts: Vec<_> = engine
        .conflicts()
        .values()
        .filter(|c| in_run(c.opened_at) || c.closed_at.is_some_and(in_run))
        .collect();
    conflicts.sort_by_key(|c| c.opened_at);
    let (conflicts, conflicts_hidden) = latest(conflicts);
    let mut decisions: Vec<_> = engine
        .decisions()
        .values()
        .filter(|d| in_run(d.at))
        .collect();
    decisions.sort_by_key(|d| d.at);
    let (decisions, decisions_hidden) = latest(decisions);
    if !conflicts.is_empty() || !decisions.is_empty() {
        let _ = writeln!(s, "\n## Conflicts and decisions\n");
        if conflicts_hidden + decisions_hidden > 0 {
            let _ = writeln!(
                s,
                "{conflicts_hidden} earlier conflict(s) and {decisions_hidden} earlier decision(s) not shown; `gtmd status` lists the open conflicts.\n"
            );
        }
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
                d.resolves
                    .as_deref()
                    .map_or("(no conflict named)".into(), |r| clip(r, ITEM_CHARS)),
                if d.affected.is_empty() {
                    "no agent".to_string()
                } else {
                    d.affected.join(", ")
                },
                if d.problems.is_empty() {
                    String::new()
                } else {
                    format!(
                        " — could not read: {}",
                        some_of(&d.problems, LIST_ITEMS, ITEM_CHARS, "; ")
                    )
                }
            );
        }
    }
}

/// Files refused while the run was active.
fn refused(s: &mut String, run: &Run) {
    if !run.refused.is_empty() {
        let _ = writeln!(s, "\n## Refused files\n");
        for d in run.refused.values().take(RECORD_ROWS) {
            let _ = writeln!(s, "- {}", clip(&one_line(&d.to_string()), ITEM_CHARS));
        }
        if run.refused.len() > RECORD_ROWS {
            let _ = writeln!(
                s,
                "- … and {} more; `gtmd status` lists every refused file",
                run.refused.len() - RECORD_ROWS
            );
        }
    }
}

/// The latest lines of the run's history.
fn history(s: &mut String, run: &Run) {
    let _ = writeln!(s, "\n## History\n");
    let (lines, hidden) = latest(run.log.iter().collect());
    let earlier = run.log_dropped + hidden as u64;
    if earlier > 0 {
        let _ = writeln!(
            s,
            "{earlier} earlier line(s) not shown; the journal holds every event behind them (`gtmd explain PATH`).\n"
        );
    }
    for (at, line) in lines {
        let _ = writeln!(s, "- {} {}", time(*at), clip(&one_line(line), ITEM_CHARS));
    }
}

/// What tasks came to: "1200 complete, 3 failed, 40 open".
fn task_summary(tasks: &[&Task]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for t in tasks {
        let word = match &t.state {
            TaskState::Done { outcome } => match outcome {
                Outcome::Complete => "complete",
                Outcome::Incomplete { .. } => "incomplete",
                Outcome::Failed { .. } => "failed",
                Outcome::Cancelled => "cancelled",
            },
            _ => "open",
        };
        match counts.iter_mut().find(|(w, _)| *w == word) {
            Some((_, n)) => *n += 1,
            None => counts.push((word, 1)),
        }
    }
    counts
        .iter()
        .map(|(w, n)| format!("{n} {w}"))
        .collect::<Vec<_>>()
        .join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{AgentPolicy, Event, FileContent, RunKind, RunRequest};
    use crate::playbook::Playbook;

    /// An engine with a team run of phase 1 going on.
    fn engine_with_a_run() -> Engine {
        let agents = crate::agents::AGENTS
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    AgentPolicy {
                        retries: 0,
                        has_command: true,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let mut e = Engine::new(Playbook::default_playbook(), agents);
        e.handle(&Event::RunRequested {
            request: RunRequest {
                id: "req".into(),
                kind: RunKind::Phases { phases: vec![1] },
                config: Default::default(),
                config_path: String::new(),
                scenario: None,
                force: false,
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
    fn the_record_of_a_run_with_100000_history_lines_is_bounded() {
        let e = engine_with_a_run();
        let mut run = e.runs().values().next().unwrap().clone();
        let before = run.log.len() as u64;
        for i in 0..100_000u64 {
            run.note(
                1_764_000_000_000 + i,
                format!("t{i:05}-conflict-review coordinator: complete"),
            );
        }
        assert!(
            run.log.len() <= 2 * crate::engine::RUN_LOG_KEEP,
            "the engine keeps the latest lines only"
        );
        let text = render(&e, &run);
        assert!(text.len() < 64 * 1024, "{} bytes", text.len());
        let history = text.split("## History").nth(1).unwrap();
        assert_eq!(
            history.lines().filter(|l| l.starts_with("- ")).count(),
            RECORD_ROWS
        );
        let hidden = before + 100_000 - RECORD_ROWS as u64;
        assert!(
            history.contains(&format!("{hidden} earlier line(s) not shown")),
            "{history}"
        );
        assert!(history.contains("t99999-conflict-review"));
    }

    #[test]
    fn thousands_of_conflict_reviews_in_a_run_give_a_bounded_task_table() {
        let mut e = engine_with_a_run();
        for i in 0..2_000u64 {
            e.handle(&Event::FileChanged {
                path: format!("conflicts/c{i:04}.md"),
                hash: format!("h{i}"),
                size: 10,
                mtime_ns: 0,
                at: 1_764_000_000_100 + i,
                content: FileContent::Conflict {
                    conflict: Default::default(),
                },
            });
        }
        let run = e.runs().values().next().unwrap();
        let text = render(&e, run);
        let tasks = text
            .split("## Tasks")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        assert_eq!(
            tasks
                .lines()
                .filter(|l| l.starts_with("| t") && !l.starts_with("| task"))
                .count(),
            RECORD_ROWS
        );
        // 2,001 tasks: the first step's and 2,000 reviews waiting behind it.
        assert!(
            tasks.contains("1501 earlier task(s) not shown (1501 open)"),
            "{tasks}"
        );
        let conflicts = text.split("## Conflicts and decisions").nth(1).unwrap();
        assert!(conflicts.contains("1500 earlier conflict(s)"));
        assert_eq!(
            conflicts
                .lines()
                .filter(|l| l.starts_with("- conflict"))
                .count(),
            RECORD_ROWS
        );
        assert!(text.len() < 256 * 1024, "{} bytes", text.len());
    }
}
