//! `gtmd status` and `gtmd explain`: the journal replayed into an engine, then
//! described. Works the same whether or not a daemon is running.

use crate::cli::replay;
use crate::config::Settings;
use crate::diagnostic::one_line;
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
            "conflicts": engine.conflicts().values().collect::<Vec<_>>(),
            "open_conflicts": engine.open_conflicts(),
            "decisions": engine.decisions().values().collect::<Vec<_>>(),
        });
        crate::outln!("{}", serde_json::to_string_pretty(&value)?)?;
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let open: Vec<_> = engine
        .conflicts()
        .values()
        .filter(|c| c.closed_at.is_none())
        .collect();
    let _ = writeln!(s, "open conflicts: {}", open.len());
    for c in open {
        let _ = writeln!(
            s,
            "  {:<40} open for {}{}: {}",
            c.path,
            crate::record::duration(now.saturating_sub(c.opened_at)),
            if c.decisions.is_empty() {
                String::new()
            } else {
                format!(
                    " (decided in {}, waiting for the agents)",
                    c.decisions.join(", ")
                )
            },
            one_line(&c.title)
        );
    }
    for d in engine
        .decisions()
        .values()
        .filter(|d| !d.problems.is_empty())
    {
        let _ = writeln!(
            s,
            "  decision {} could not be fully read: {}",
            d.path,
            d.problems.join("; ")
        );
    }
    if !engine.rejected().is_empty() {
        let _ = writeln!(s, "refused files: {}", engine.rejected().len());
        for d in engine.rejected().values() {
            let _ = writeln!(s, "  {}", one_line(&d.to_string()));
        }
    }
    crate::output::stdout(&s)?;
    Ok(())
}

/// What gtmd did with each version of a file, from the journal.
pub fn explain(settings: &Settings, path: &str) -> Result<String> {
    let rel = path
        .trim_start_matches("./")
        .trim_start_matches("workspace/")
        .to_string();
    let recovered = crate::journal::read(&settings.paths.state_dir)?;
    let compacted = recovered.snapshot.is_some();
    let events = recovered.events;
    // History before the last compaction lives only as state in the snapshot.
    let mut engine = crate::cli::engine_from(
        settings,
        crate::journal::Recovered {
            snapshot: recovered.snapshot,
            events: Vec::new(),
        },
    );
    let mut s = String::new();
    if compacted {
        let _ = writeln!(
            s,
            "(the journal was compacted; versions from before the last snapshot are not listed one by one)"
        );
    }
    let mut versions: Vec<String> = Vec::new();
    for e in &events {
        let before: std::collections::BTreeSet<String> = engine.tasks().keys().cloned().collect();
        let restored = match e {
            Event::FileChanged { path, hash, .. } if *path == rel => {
                engine.acted_on(path, hash)
                    && engine.files().get(path).map(|f| &f.hash) != Some(hash)
            }
            _ => false,
        };
        let actions = engine.handle(e);
        match e {
            Event::FileRemoved { path, at } if *path == rel => {
                let _ = writeln!(s, "{}: removed (or renamed away)", time(*at));
            }
            Event::FileChanged {
                path,
                hash,
                at,
                content,
                ..
            } if *path == rel => {
                let short = &hash[..hash.len().min(12)];
                let known = versions.iter().position(|h| h == hash);
                let label = match known {
                    Some(n) => format!("version {} again", n + 1),
                    None => {
                        versions.push(hash.clone());
                        format!("version {}", versions.len())
                    }
                };
                let _ = writeln!(s, "{}: {label} ({short}): {}", time(*at), describe(content));
                if restored {
                    let _ = writeln!(
                        s,
                        "  → nothing: gtmd already acted on this content of the file (an editor's rename-and-write save, or a file set back to an earlier content), so it is not a new version"
                    );
                    continue;
                }
                let mut said = false;
                for t in engine.tasks().values().filter(|t| !before.contains(&t.id)) {
                    let _ = writeln!(
                        s,
                        "  → task {} for {} ({}): {}",
                        t.id,
                        t.agent,
                        t.trigger,
                        one_line(&t.text)
                    );
                    said = true;
                }
                for a in &actions {
                    let line = match a {
                        crate::engine::Action::Refused { diagnostic } => {
                            format!("refused: {diagnostic}")
                        }
                        crate::engine::Action::EvaluateGate { run, phase } => {
                            format!("re-checked the phase {phase} gate of run {run}")
                        }
                        crate::engine::Action::RunFinished { run, summary, .. } => {
                            format!("run {run} finished: {summary}")
                        }
                        crate::engine::Action::Notice { message, .. } => message.clone(),
                        _ => continue,
                    };
                    let _ = writeln!(s, "  → {}", one_line(&line));
                    said = true;
                }
                if !said {
                    let _ = writeln!(s, "  → nothing to do: {}", why_nothing(content));
                }
            }
            _ => {}
        }
    }
    let ingest = crate::daemon::ingest::Ingest::new(
        &settings.paths.workspace,
        &settings.paths.state_dir,
        settings.max_file_size,
    );
    if ingest.ignored(&rel) {
        let _ = writeln!(
            s,
            "{rel} is ignored: editor and tool temporary files (vim 4913, *~, .*.swp, emacs #*# and .#*, JetBrains ___jb_tmp___/___jb_old___, gedit .goutputstream-*), dot-files and gtmd's state directory never trigger anything"
        );
        return Ok(s);
    }
    if versions.is_empty() {
        let kind = crate::protocol::classify(&rel);
        let why = match kind {
            crate::protocol::FileKind::Inbox | crate::protocol::FileKind::RunRecord => {
                "it is written by gtmd itself (inboxes and run records are not part of the protocol)"
            }
            _ => "gtmd has not seen it (not there while gtmd was running, or never written)",
        };
        let _ = writeln!(s, "{rel}: no version in the journal: {why}");
        return Ok(s);
    }
    if let Some(entry) = engine.files().get(&rel) {
        if let Some(n) = versions.iter().position(|h| *h == entry.hash) {
            let _ = writeln!(
                s,
                "now: version {} is current; saving it again with the same content is not a new version and does nothing",
                n + 1
            );
        }
    }
    Ok(s)
}

fn describe(content: &FileContent) -> String {
    match content {
        FileContent::Status { report } => format!(
            "status of {}: {}",
            report.agent,
            format!("{:?}", report.status).to_lowercase()
        ),
        FileContent::Conflict { conflict } => format!("conflict: {}", conflict.title),
        FileContent::Decision { decision } => format!(
            "decision on {}",
            decision
                .resolves
                .as_deref()
                .unwrap_or("(no conflict named)")
        ),
        FileContent::Gate { boxes } => format!(
            "gate file, {}/{} boxes ticked",
            boxes.iter().filter(|b| b.checked).count(),
            boxes.len()
        ),
        FileContent::Request { .. } => "run request".into(),
        FileContent::Cancel { request } => match &request.cancel {
            crate::engine::CancelTarget::Task { task } => format!("cancel request for task {task}"),
            crate::engine::CancelTarget::Run { run } => format!("cancel request for run {run}"),
        },
        FileContent::Rejected { diagnostic } => format!("refused: {diagnostic}"),
        FileContent::Plain => "a plain file".into(),
    }
}

fn why_nothing(content: &FileContent) -> &'static str {
    match content {
        FileContent::Plain => {
            "no rule reacts to this file (outputs only count as present for their steps)"
        }
        FileContent::Status { .. } => {
            "the status changed nothing (in progress, or its task had already ended)"
        }
        FileContent::Gate { .. } => "no open gate of an active run uses this file",
        _ => "no rule applies",
    }
}
