//! Supervision budgets with real processes: a task past its timeout is killed
//! with its children, task logs are capped, `--max-parallel` limits how many
//! agent processes run at once.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

fn agent_cmd(mode: &str, arg: &str) -> String {
    format!(
        "{} {mode} {{task_id}} {arg}",
        fixture("supervised.sh").display()
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_agent(p: &Project, name: &str, extra: &str) {
    fs::write(
        p.root().join("agents").join(format!("{name}.md")),
        format!("---\nname: {name}\n{extra}---\nThe {name}.\n"),
    )
    .unwrap();
}

#[test]
fn a_task_past_its_timeout_is_killed_with_its_children() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    write_agent(&p, "growth-analyst", "timeout: 1\nretries: 0\n");
    let mut gtmd = p.spawn(&[
        "agent",
        "run",
        "growth-analyst",
        "--task",
        "never ends",
        "--agent-command",
        &agent_cmd("hang", ""),
    ]);
    let (agent, child) = wait_for(Duration::from_secs(20), "the agent's pids", || {
        let agent = read_pid(&find_file(&pids, ".agent")?)?;
        let child = read_pid(&find_file(&pids, ".child")?)?;
        Some((agent, child))
    });
    let seen = Instant::now();
    assert!(pid_alive(agent) && pid_alive(child));
    // The timeout (1 s from the start) is enforced within a second: TERM to
    // the whole process group takes the agent and its `sleep` child.
    wait_for(
        Duration::from_secs(3),
        "the agent and its child to be gone",
        || (!pid_alive(agent) && !pid_alive(child)).then_some(()),
    );
    assert!(seen.elapsed() < Duration::from_secs(3));
    let out = gtmd.wait(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("timeout of 1 s"), "not logged:\n{err}");
    assert!(
        err.contains("stopped after its timeout of 1s"),
        "not reported:\n{err}"
    );
    let status = p.status_json();
    let task = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["agent"] == "growth-analyst")
        .unwrap()
        .clone();
    assert!(
        task["state"].to_string().contains("timeout"),
        "status: {task}"
    );
}

#[test]
fn a_task_log_stops_growing_at_its_cap() {
    let p = Project::new();
    let _cleanup = PidsGuard {
        dir: p.root().join("pids"),
    };
    let mut gtmd = p.spawn(&[
        "agent",
        "run",
        "growth-analyst",
        "--task",
        "talk a lot",
        "--max-task-log",
        "4096",
        "--agent-command",
        &agent_cmd("chatty", "100000"),
    ]);
    let out = gtmd.wait(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = find_file(&p.ws().join(".gtmd/logs"), ".log").expect("a task log");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.len() < 4096 + 200, "log of {} bytes", text.len());
    assert!(text.starts_with("xxxx"), "{}", &text[..40]);
    assert!(text.contains("reached its cap of 4096 bytes"), "{text}");
}

#[test]
fn max_parallel_limits_the_agent_processes_running_at_once() {
    let p = Project::new();
    let _cleanup = PidsGuard {
        dir: p.root().join("pids"),
    };
    let mut daemon = p.spawn(&[
        "run",
        "--max-parallel",
        "2",
        "--agent-command",
        &agent_cmd("slot", ""),
    ]);
    wait_for(Duration::from_secs(20), "the daemon to serve", || {
        p.status_json()["daemon_running"]
            .as_bool()
            .unwrap()
            .then_some(())
    });
    let agents = [
        "growth-analyst",
        "brand-messaging",
        "sales-enablement",
        "customer-success",
    ];
    let mut runs: Vec<Guard> = agents
        .iter()
        .map(|a| p.spawn(&["agent", "run", a, "--task", "take a slot"]))
        .collect();
    for r in &mut runs {
        let out = r.wait(Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let log = fs::read_to_string(p.root().join("slots.log")).unwrap();
    let mut events: Vec<(u128, i32)> = log
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            let t: u128 = parts[2].parse().unwrap();
            (t, if parts[0] == "start" { 1 } else { -1 })
        })
        .collect();
    assert_eq!(events.len(), 8, "{log}");
    events.sort();
    let mut now = 0;
    let mut most = 0;
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    assert!(most <= 2, "{most} agents ran at once:\n{log}");
    daemon.signal(libc::SIGTERM);
    let out = daemon.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waits for a free slot"),
        "{}",
        stderr(&out)
    );
}
