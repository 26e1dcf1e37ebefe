//! `gtmd cancel TASK_ID`, `gtmd cancel --run RUN_ID` and `--run-budget`: tasks
//! stopped on demand or when their run is over its wall-clock budget, with no
//! process of theirs left.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn hang_cmd() -> String {
    format!("{} hang {{task_id}}", fixture("supervised.sh").display())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The running task's id and its two pids (agent, sleep child).
fn running_task(pids: &Path) -> (String, i32, i32) {
    wait_for(Duration::from_secs(20), "the task's processes", || {
        let child = find_file(pids, ".child")?;
        let task = child
            .file_name()?
            .to_string_lossy()
            .trim_end_matches(".child")
            .to_string();
        let agent = read_pid(&pids.join(format!("{task}.agent")))?;
        Some((task, agent, read_pid(&child)?))
    })
}

fn gone(agent: i32, child: i32) {
    wait_for(
        Duration::from_secs(6),
        "the task's processes to end",
        || (!pid_alive(agent) && !pid_alive(child)).then_some(()),
    );
}

fn serve(p: &Project) -> (Guard, LogTail) {
    let mut g = p.spawn(&["run", "--agent-command", &hang_cmd()]);
    let log = g.tail_stderr();
    log.wait_for("ready: watching the workspace", 0, Duration::from_secs(20));
    (g, log)
}

#[test]
fn cancel_without_a_daemon_says_so() {
    let p = Project::new();
    let out = p.run(&["cancel", "some-task"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no daemon is serving"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cancel_a_task_stops_its_process_group() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    let (mut gtmd, _log) = serve(&p);
    let mut follower = p.spawn(&["agent", "run", "growth-analyst", "--task", "hang"]);
    let (task, agent, child) = running_task(&pids);

    let out = p.run(&["cancel", "no-such-task"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("there is no task no-such-task"));

    let out = p.run(&["cancel", &task]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("task {task} cancelled")));
    gone(agent, child);
    let out = follower.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let t = p.task_json(&task);
    assert!(t["state"].to_string().contains("cancelled"), "{t}");

    // Cancelling it again: it has already ended.
    let out = p.run(&["cancel", &task]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already ended"), "{}", stderr(&out));
    gtmd.signal(libc::SIGTERM);
    assert_eq!(gtmd.wait(Duration::from_secs(20)).status.code(), Some(0));
}

#[test]
fn a_task_cancelled_while_gtmd_is_down_does_not_run_again() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    let (mut gtmd, _log) = serve(&p);
    let _follower = p.spawn(&["agent", "run", "growth-analyst", "--task", "hang"]);
    let (task, agent, child) = running_task(&pids);
    gtmd.signal(libc::SIGKILL);
    let _ = gtmd.wait(Duration::from_secs(20));
    // Its agent runs on, a stray the next start kills.
    for e in fs::read_dir(&pids).unwrap().flatten() {
        fs::remove_file(e.path()).unwrap();
    }

    // Without gtmd the task would run again at the next start: the cancel
    // waits for that start.
    let out = p.run(&["cancel", &task]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("takes effect when gtmd starts"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["cancel", "no-such-task"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no open task no-such-task"),
        "{}",
        stderr(&out)
    );

    let (mut gtmd, _log) = serve(&p);
    let out = p.run(&["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = p.task_json(&task);
    assert!(t["state"].to_string().contains("cancelled"), "{t}");
    gone(agent, child);
    // The start read the cancel before it ran the tasks of the gtmd before.
    assert!(find_file(&pids, ".agent").is_none(), "the task ran again");
    gtmd.signal(libc::SIGTERM);
    assert_eq!(gtmd.wait(Duration::from_secs(20)).status.code(), Some(0));
}

#[test]
fn cancel_a_run_stops_all_of_it() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    let (mut gtmd, _log) = serve(&p);
    let mut follower = p.spawn(&["agent", "run", "brand-messaging", "--task", "hang"]);
    let (_, agent, child) = running_task(&pids);
    let run = p.status_json()["runs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = p.run(&["cancel", "--run", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    gone(agent, child);
    let out = follower.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("run cancelled"), "{}", stderr(&out));
    let status = p.status_json();
    assert_eq!(
        status["runs"][0]["state"]["state"], "cancelled",
        "{status:#}"
    );
    gtmd.signal(libc::SIGTERM);
    assert_eq!(gtmd.wait(Duration::from_secs(20)).status.code(), Some(0));
}

#[test]
fn a_foreground_run_over_its_budget_is_cancelled_with_the_reason() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    let started = Instant::now();
    let mut run = p.spawn(&[
        "team",
        "run",
        "--phase",
        "strategy",
        "--config",
        "CONFIG.md",
        "--run-budget",
        "2s",
        "--agent-command",
        &hang_cmd(),
    ]);
    let (_, agent, child) = running_task(&pids);
    let out = run.wait(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let err = stderr(&out);
    assert!(err.contains("over its wall-clock budget of 2s"), "{err}");
    gone(agent, child);
    let record = fs::read_dir(p.path("runs"))
        .unwrap()
        .flatten()
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .next()
        .unwrap();
    assert!(record.contains("wall-clock budget"), "{record}");
}

#[test]
fn a_daemon_cancels_a_run_over_its_budget() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    let (mut gtmd, log) = serve(&p);
    let mut follower = p.spawn(&[
        "agent",
        "run",
        "customer-success",
        "--task",
        "hang",
        "--run-budget",
        "1",
    ]);
    let (_, agent, child) = running_task(&pids);
    let out = follower.wait(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("over its wall-clock budget of 1s"),
        "{}",
        stderr(&out)
    );
    gone(agent, child);
    log.wait_for("wall-clock budget", 0, Duration::from_secs(5));
    gtmd.signal(libc::SIGTERM);
    assert_eq!(gtmd.wait(Duration::from_secs(20)).status.code(), Some(0));
}
