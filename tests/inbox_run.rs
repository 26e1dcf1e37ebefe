//! The same four-phase run with no agent commands at all: every task goes to
//! `inbox/<agent>/<task-id>.md`, and a person (this test) reads each one and
//! writes the outputs and the status file by hand, and ticks the gates.

mod common;

use common::*;
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const GENERIC: &str =
    "Persona coverage: Devon the PM. Pain points, buying triggers and objections.\n\
Funnel: awareness, acquisition, activation, retention, revenue, referral.\n\
Experiment: hypothesis, metrics, sample size 2,000, duration 14 days.\n";

fn content_for(path: &str) -> String {
    if path == "strategy/budget-allocation.md" {
        "| Channel | Monthly budget | Rationale |\n|---|---|---|\n| Search | $30,000 | intent |\n| Social | $20,000 | reach |\n".into()
    } else if path.starts_with("strategy/personas/") {
        "# Persona: Devon the PM\n\nPain points: slow insight. Buying triggers: funding. Objections: price.\n".into()
    } else {
        format!("# {path}\n\n{GENERIC}")
    }
}

/// What a person reads off an inbox file.
struct InboxTask {
    agent: String,
    id: String,
    phase: Option<String>,
    outputs: Vec<String>,
}

fn read_task(path: &Path) -> Option<InboxTask> {
    let text = fs::read_to_string(path).ok()?;
    let agent = path.parent()?.file_name()?.to_string_lossy().into_owned();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("- task_id: `"))?
        .trim_end_matches('`')
        .to_string();
    let phase = text
        .lines()
        .find_map(|l| l.strip_prefix("- phase: "))
        .and_then(|p| p.split_whitespace().next())
        .filter(|p| *p != "-")
        .map(String::from);
    let mut outputs = Vec::new();
    let mut in_outputs = false;
    for l in text.lines() {
        if l.starts_with("## ") {
            in_outputs = l.starts_with("## Expected outputs");
            continue;
        }
        if in_outputs {
            if let Some(o) = l.strip_prefix("- `") {
                outputs.push(o.trim_end_matches('`').to_string());
            }
        }
    }
    Some(InboxTask {
        agent,
        id,
        phase,
        outputs,
    })
}

fn act_as_person(p: &Project, t: &InboxTask) {
    if t.id.contains("-gate-") {
        let phase = t.phase.clone().unwrap();
        let gates = p.path("strategy/gates");
        for e in fs::read_dir(gates).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("phase-{phase}-")) {
                let text = fs::read_to_string(e.path()).unwrap();
                fs::write(e.path(), text.replace("- [ ]", "- [x]")).unwrap();
            }
        }
    }
    for o in &t.outputs {
        let file = if o.ends_with('/') {
            format!("{o}notes.md")
        } else {
            o.clone()
        };
        p.write(&file, &content_for(&file));
    }
    let mut status = format!(
        "# Status\n\nDone by hand.\n\n```yaml\nagent: {}\ntask_id: {}\ntask: by hand\nstatus: complete\noutputs:\n",
        t.agent, t.id
    );
    for o in &t.outputs {
        status.push_str(&format!("  - {o}\n"));
    }
    status.push_str("blockers: none\nnext: none\n```\n");
    p.write(&format!("status/{}.md", t.agent), &status);
}

#[test]
fn a_person_working_the_inbox_runs_all_four_phases() {
    let p = Project::new();
    let mut g = p.spawn(&["team", "run", "--phases", "all", "--config", "CONFIG.md"]);
    let mut done: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if g.child.as_mut().unwrap().try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the inbox run did not finish");
        let mut found = false;
        for agent in fs::read_dir(p.path("inbox")).unwrap().flatten() {
            for f in fs::read_dir(agent.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !name.ends_with(".md") || done.contains(&name) {
                    continue;
                }
                if let Some(t) = read_task(&f.path()) {
                    act_as_person(&p, &t);
                    done.insert(name);
                    found = true;
                }
            }
        }
        if !found {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let out = g.wait(Duration::from_secs(5));
    assert!(
        out.status.success(),
        "inbox run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every step of the guide went through the inbox: 21 steps + 3 gate reviews + hand-offs.
    assert!(
        done.len() >= 24,
        "only {} inbox tasks: {done:?}",
        done.len()
    );
    let status = p.status_json();
    let run = &status["runs"][0];
    assert_eq!(run["state"]["state"], "passed");
    // Finished tasks leave the inbox.
    let left: usize = fs::read_dir(p.path("inbox"))
        .unwrap()
        .flatten()
        .map(|a| {
            fs::read_dir(a.path())
                .unwrap()
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(".md"))
                .count()
        })
        .sum();
    assert_eq!(left, 0, "inbox files of finished tasks remain");
}
