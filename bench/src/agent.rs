//! The agents gtmd starts during the bench: this same binary, re-executed with
//! a hidden subcommand, so that a process start costs one exec of a small
//! Rust program and nothing else (no shell, no interpreter).
//!
//! - `agent LOG TASK_ID [TRIGGER]`: append `TASK_ID NS TRIGGER` (CLOCK_REALTIME
//!   at the top of `main`) to LOG with one O_APPEND write, exit 0.
//! - `agent4 LOG AGENT TASK_ID PHASE STEP`: a four-phase agent that finishes at
//!   once: writes its step's outputs (content that passes the automatic gate
//!   checks, as tests/fixtures/agent.sh does) and a `complete` status; as the
//!   coordinator on a gate review it ticks every box. Appends
//!   `TASK_ID START_NS END_NS` when done.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

fn append(log: &str, line: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// `args` are the arguments after the subcommand.
pub fn record(t: u64, args: &[String]) -> i32 {
    let (Some(log), Some(task)) = (args.first(), args.get(1)) else {
        return 2;
    };
    let trigger = args.get(2).map(String::as_str).unwrap_or("");
    append(log, &format!("{task} {t} {trigger}\n"));
    0
}

pub fn four_phase(t: u64, args: &[String]) -> i32 {
    let [log, agent, task_id, phase, step] = args else {
        return 2;
    };
    let ok = if step.is_empty() {
        if task_id.contains("-gate-") {
            tick_gate(phase)
        } else {
            Ok(())
        }
    } else {
        write_outputs(agent, task_id, phase, step)
    };
    let end = crate::harness::now_ns();
    append(log, &format!("{task_id} {t} {end}\n"));
    match ok {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gtmd-bench agent4: {e}");
            1
        }
    }
}

/// Tick every box of `strategy/gates/phase-N-*.md`, saved as `sed -i` does
/// (a temporary beside it, renamed over it).
fn tick_gate(phase: &str) -> std::io::Result<()> {
    let prefix = format!("phase-{phase}-");
    for e in fs::read_dir("strategy/gates")?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(&prefix) && name.ends_with(".md")) {
            continue;
        }
        let text = fs::read_to_string(e.path())?;
        let ticked: String = text
            .split_inclusive('\n')
            .map(|l| match l.strip_prefix("- [ ]") {
                Some(rest) => format!("- [x]{rest}"),
                None => l.to_string(),
            })
            .collect();
        let tmp = e.path().with_file_name(format!(".{name}.tick"));
        fs::write(&tmp, ticked)?;
        fs::rename(&tmp, e.path())?;
    }
    Ok(())
}

fn write_outputs(agent: &str, task_id: &str, phase: &str, step: &str) -> std::io::Result<()> {
    let outputs = std::env::var("GTMD_OUTPUTS").unwrap_or_default();
    let mut listed = Vec::new();
    for out in outputs.lines().filter(|l| !l.trim().is_empty()) {
        let file = if out.ends_with('/') {
            format!("{out}item.md")
        } else {
            out.to_string()
        };
        if let Some(dir) = Path::new(&file).parent() {
            fs::create_dir_all(dir)?;
        }
        let body = if file == "strategy/budget-allocation.md" {
            BUDGET.to_string()
        } else if file.starts_with("strategy/personas/") {
            PERSONA.to_string()
        } else {
            format!(
                "# {file}\n\nWritten by {agent} for task {task_id} ({step}).\n\n\
                 Persona coverage: Devon the PM. Pain points, buying triggers and objections are addressed.\n\
                 Funnel: awareness, acquisition, activation, retention, revenue, referral.\n\
                 Experiment: hypothesis, metrics, sample size 2,000 per arm, duration 14 days.\n"
            )
        };
        fs::write(&file, body)?;
        listed.push(out.to_string());
    }
    let mut status = format!(
        "agent: {agent}\nphase: {phase}\ntask_id: {task_id}\ntask: \"{step}\"\nstatus: complete\noutputs:\n"
    );
    for o in &listed {
        status.push_str(&format!("  - workspace/{o}\n"));
    }
    status.push_str("blockers: none\nnext: none\n");
    fs::write(format!("status/{agent}.md"), status)
}

const BUDGET: &str = "# Budget allocation

| Channel | Monthly budget | Rationale |
|---|---|---|
| Paid search | $20,000 | High intent |
| Paid social | $15,000 | Reach the persona |
| Content | $10,000 | Compounding organic |
| Events | $5,000 | Community |
| **Total** | $50,000 | |
";

const PERSONA: &str = "# Persona: Devon the PM

## Pain points
- slow insight

## Buying triggers
- new funding

## Objections
- price
";
