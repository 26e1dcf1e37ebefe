//! `gtmd status` and `gtmd explain`: the journal replayed into an engine, then
//! described. Works the same whether or not a daemon is running.

use crate::cli::replay;
use crate::config::Settings;
use crate::engine::{Engine, Event, FileContent, Run, StepState, TaskState};
use crate::journal::StateLock;
use crate::record::time;
use anyhow::Result;
use serde_json::json;
use std::fmt::Write;

/// One line for a run: where it is.
pub fn run_line(engine: &Engine, run: &Run) -> String {
    match run.current_phase().and_then(|p| engine.playbook().phase(p)) {
        Some(p) => {
            let steps: Vec<_> = run.steps.values().filter(|s| s.phase == p.number).collect();
            let done = steps.iter().filter(|s| s.state == StepState::Done).count();
            format!(
                "run {}: running, phase {} {} ({}/{} of the run), {done}/{} steps done",
                run.id,
                p.number,
                p.name,
                run.current + 1,
                run.phases.len(),
                steps.len()
            )
        }
        None => format!("run {}: {}", run.id, state_word(run)),
    }
}

fn state_word(run: &Run) -> String {
    match &run.state {
        crate::engine::RunState::Running => "running".into(),
        crate::engine::RunState::Passed => "complete".into(),
        crate::engine::RunState::Failed { reason } => format!("failed: {reason}"),
        crate::engine::RunState::Cancelled => "cancelled".into(),
    }
}

pub fn print(settings: &Settings, as_json: bool) -> Result<()> {
    let engine = replay(settings)?;
    let daemon = StateLock::is_held(&settings.paths.state_dir);
    if as_json {
        let open: Vec<_> = engine.tasks().values().filter(|t| t.is_open()).collect();
        let value = json!({
            "workspace": settings.paths.workspace.display().to_string(),
            "daemon_running": daemon,
            "active_run": engine.active_run().map(|r| r.id.clone()),
            "runs": engine.runs().values().collect::<Vec<_>>(),
            "open_tasks": open,
            "tasks": engine.tasks().values().collect::<Vec<_>>(),
            "rejected": engine.rejected().values().map(|d| json!({
                "path": d.path, "line": d.line, "message": d.message, "text": d.to_string(),
            })).collect::<Vec<_>>(),
            "refused_requests": engine.refused_requests(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "workspace {} — daemon {}",
        settings.paths.workspace.display(),
        if daemon { "running" } else { "not running" }
    );
    match engine.runs().values().last() {
        None => {
            let _ = writeln!(s, "no runs yet");
        }
        Some(run) => {
            let _ = writeln!(s, "{}", run_line(&engine, run));
            for p in &run.phases {
                let Some(phase) = engine.playbook().phase(*p) else {
                    continue;
                };
                let _ = writeln!(s, "  phase {} {}", p, phase.name);
                for def in &phase.steps {
                    if let Some(st) = run.steps.get(&def.id) {
                        let state = match &st.state {
                            StepState::Waiting => "waiting".to_string(),
                            StepState::Active { task } => format!("active, task {task}"),
                            StepState::AwaitingOutputs { missing } => {
                                format!("missing {}", missing.join(", "))
                            }
                            StepState::Done => "done".to_string(),
                        };
                        let _ = writeln!(s, "    {:<28} {:<18} {state}", def.id, def.agent);
                    }
                }
                if let Some(g) = run.gates.get(p) {
                    let ticked = g.boxes.iter().filter(|(_, t)| *t).count();
                    let state = if g.passed_at.is_some() {
                        "passed"
                    } else {
                        "open"
                    };
                    let _ = writeln!(
                        s,
                        "    gate {state}: {ticked}/{} ticked — {}",
                        g.boxes.len(),
                        g.path
                    );
                    for c in g.checks.iter().flatten().filter(|c| !c.passed) {
                        let _ = writeln!(s, "      FAIL {}: {}", c.name, c.detail);
                    }
                }
            }
        }
    }
    let open: Vec<_> = engine.tasks().values().filter(|t| t.is_open()).collect();
    let _ = writeln!(s, "open tasks: {}", open.len());
    for t in open {
        let state = match &t.state {
            TaskState::Queued => "queued".to_string(),
            TaskState::Running => format!(
                "running since {}",
                t.started_at.map(time).unwrap_or_default()
            ),
            TaskState::RetryWait => format!("waiting to retry (attempt {})", t.attempt),
            TaskState::Blocked => format!("blocked: {}", t.blockers.join("; ")),
            TaskState::Done { .. } => unreachable!(),
        };
        let _ = writeln!(
            s,
            "  {:<32} {:<18} {state}: {}",
            t.id,
            t.agent,
            one_line(&t.text)
        );
    }
    if !engine.rejected().is_empty() {
        let _ = writeln!(s, "refused files: {}", engine.rejected().len());
        for d in engine.rejected().values() {
            let _ = writeln!(s, "  {}", one_line(&d.to_string()));
        }
    }
    print!("{s}");
    Ok(())
}

/// What gtmd did with each version of a file, from the journal.
pub fn explain(settings: &Settings, path: &str) -> Result<String> {
    let rel = path
        .trim_start_matches("./")
        .trim_start_matches("workspace/")
        .to_string();
    let events = crate::journal::read_events(&settings.paths.state_dir)?;
    let mut engine = Engine::new(settings.playbook.clone(), settings.policies());
    let mut s = String::new();
    let mut versions = 0;
    for e in &events {
        let before = engine.tasks().len();
        let actions = engine.handle(e);
        let Event::FileChanged {
            path,
            hash,
            at,
            content,
            ..
        } = e
        else {
            continue;
        };
        if *path != rel {
            continue;
        }
        versions += 1;
        let what = match content {
            FileContent::Status { report } => {
                format!("status of {} ({:?})", report.agent, report.status).to_lowercase()
            }
            FileContent::Gate { boxes } => format!(
                "gate file, {}/{} boxes ticked",
                boxes.iter().filter(|b| b.checked).count(),
                boxes.len()
            ),
            FileContent::Request { .. } => "run request".into(),
            FileContent::Rejected { diagnostic } => format!("refused: {diagnostic}"),
            FileContent::Plain => {
                "a plain file (outputs and other files only count as present)".into()
            }
        };
        let _ = writeln!(
            s,
            "version {versions} ({}, {}): {what}",
            &hash[..hash.len().min(12)],
            time(*at)
        );
        let new_tasks: Vec<_> = engine.tasks().values().skip(before).collect();
        for t in new_tasks {
            let _ = writeln!(
                s,
                "  → task {} for {}: {}",
                t.id,
                t.agent,
                one_line(&t.text)
            );
        }
        for a in actions {
            if let crate::engine::Action::StartTask { .. }
            | crate::engine::Action::RecordChanged { .. } = a
            {
                continue;
            }
            let _ = writeln!(s, "  → {}", one_line(&format!("{a:?}")));
        }
    }
    if versions == 0 {
        let ingest_ignored = crate::protocol::is_ignored(&rel);
        if ingest_ignored {
            let _ = writeln!(
                s,
                "{rel}: ignored: editor/tool temporary files and dot-files never trigger anything"
            );
        } else {
            let _ = writeln!(s, "{rel}: gtmd has no version of this file in its journal (never seen, or written by gtmd itself)");
        }
    }
    Ok(s)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
