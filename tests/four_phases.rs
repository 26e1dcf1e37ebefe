//! The bus end to end: all four phases of the guide run through files alone,
//! with a scripted agent command and a scripted coordinator that ticks gates.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug)]
struct Line {
    kind: String,
    task: String,
    agent: String,
    phase: String,
    step: String,
    t: u128,
}

fn parse_log(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let kind = parts.next().unwrap().to_string();
            let mut kv: HashMap<&str, &str> = HashMap::new();
            let mut task = String::new();
            for p in parts {
                match p.split_once('=') {
                    Some((k, v)) => {
                        kv.insert(k, v);
                    }
                    None => task = p.to_string(),
                }
            }
            Line {
                kind,
                task,
                agent: kv.get("agent").unwrap_or(&"").to_string(),
                phase: kv.get("phase").unwrap_or(&"").to_string(),
                step: kv.get("step").unwrap_or(&"").to_string(),
                t: kv["t"].parse().unwrap(),
            }
        })
        .collect()
}

fn time_of(lines: &[Line], kind: &str, step: &str) -> u128 {
    lines
        .iter()
        .find(|l| l.kind == kind && l.step == step)
        .unwrap_or_else(|| panic!("no {kind} of step {step}"))
        .t
}

#[test]
fn four_phases_run_in_the_guide_order_with_gates_between() {
    let p = Project::new();
    let log = p.root().join("agent.log");
    std::fs::write(&log, "").unwrap();
    let agent = format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("agent.sh").display()
    );
    let mut g = {
        let mut c = p.cmd();
        c.env("GTMD_TEST_LOG", &log).args([
            "team",
            "run",
            "--phases",
            "all",
            "--config",
            "CONFIG.md",
            "--agent-command",
            &agent,
        ]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Guard {
            child: Some(c.spawn().unwrap()),
        }
    };
    let out = g.wait(Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "team run failed: {stderr}");
    let lines = parse_log(&std::fs::read_to_string(&log).unwrap());

    // Phase 1: strictly one after another.
    assert!(
        time_of(&lines, "end", "gtm-strategy") < time_of(&lines, "start", "messaging-framework")
    );
    assert!(
        time_of(&lines, "end", "messaging-framework")
            < time_of(&lines, "start", "analytics-foundation")
    );
    // Phase 2: all four started before any of them finished.
    let p2 = [
        "campaign-design",
        "enablement-kit",
        "crm-infrastructure",
        "post-sale-foundation",
    ];
    let last_start = p2
        .iter()
        .map(|s| time_of(&lines, "start", s))
        .max()
        .unwrap();
    let first_end = p2.iter().map(|s| time_of(&lines, "end", s)).min().unwrap();
    assert!(
        last_start < first_end,
        "phase 2 did not run in parallel: {lines:#?}"
    );
    // Nothing of phase N+1 before gate N was ticked.
    for n in 1..=3u32 {
        let tick = lines
            .iter()
            .find(|l| l.kind == "tick" && l.phase == n.to_string())
            .unwrap_or_else(|| panic!("gate {n} never ticked"))
            .t;
        let next = (n + 1).to_string();
        for l in lines
            .iter()
            .filter(|l| l.phase == next && l.kind == "start")
        {
            assert!(l.t > tick, "{l:?} started before gate {n} was ticked");
        }
        // And every step of phase N ended before its gate was ticked.
        for l in lines
            .iter()
            .filter(|l| l.phase == n.to_string() && l.kind == "end" && !l.step.is_empty())
        {
            assert!(l.t < tick, "{l:?} ended after gate {n}");
        }
    }
    // Phase 4: refinement after the analysis.
    assert!(
        time_of(&lines, "end", "performance-analysis")
            < time_of(&lines, "start", "strategy-refinement")
    );
    // Every step ran exactly once.
    let steps: Vec<&str> = lines
        .iter()
        .filter(|l| l.kind == "start" && !l.step.is_empty())
        .map(|l| l.step.as_str())
        .collect();
    assert_eq!(steps.len(), 3 + 4 + 5 + 9, "{steps:?}");
    let coordinator_gate_reviews = lines
        .iter()
        .filter(|l| l.kind == "start" && l.agent == "coordinator" && l.task.contains("-gate-"))
        .count();
    assert_eq!(
        coordinator_gate_reviews, 3,
        "one review per gate with a checklist"
    );

    // The run record is complete.
    let runs: Vec<_> = std::fs::read_dir(p.path("runs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".md"))
        .collect();
    assert_eq!(runs.len(), 1);
    let record = std::fs::read_to_string(runs[0].path()).unwrap();
    assert!(record.contains("- state: complete"), "{record}");
    for step in steps {
        assert!(
            record.contains(&format!("| {step} |")),
            "{step} missing from the record"
        );
    }
    assert!(!record.contains("| waiting |"));
    assert!(
        record.contains("15 min"),
        "estimates beside actuals: {record}"
    );
    for n in 1..=4 {
        assert!(record.contains(&format!("- phase {n}: passed")), "{record}");
    }
    // Every output was seen before its status (none reported missing): a
    // regression test for an output indexed with the size it had before its
    // writer finished, and for files in directories not yet watched.
    assert!(
        !record.contains("missing-outputs"),
        "an output was taken as missing: {record}"
    );
    // Every task has ended and its process is gone: none of the files
    // written for them is left (the last ones' processes ended after the run).
    let left: Vec<String> = std::fs::read_dir(p.ws().join(".gtmd/tasks"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in STATE/tasks/: {left:?}");
    // No agent left behind: every start has an end.
    let starts = lines.iter().filter(|l| l.kind == "start").count();
    let ends = lines.iter().filter(|l| l.kind == "end").count();
    assert_eq!(
        starts,
        ends,
        "{lines:#?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
