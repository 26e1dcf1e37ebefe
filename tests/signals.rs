//! Real signals to a real daemon: SIGTERM lets running tasks finish within
//! the grace period, then stops their process groups; a second SIGTERM stops
//! at once; SIGHUP with a broken agent file keeps the old definitions.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn agent_cmd(mode: &str, arg: &str) -> String {
    format!(
        "{} {mode} {{task_id}} {arg}",
        fixture("supervised.sh").display()
    )
}

/// `gtmd run` with these extra arguments, its stderr tailed.
fn daemon(p: &Project, args: &[&str]) -> (Guard, LogTail) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let mut g = p.spawn(&all);
    let tail = g.tail_stderr();
    tail.wait_for("ready: watching the workspace", 0, Duration::from_secs(20));
    (g, tail)
}

/// Start a one-task agent run through the daemon and return the agent's pids
/// once its process is up (the follower is returned to be dropped).
fn start_task(p: &Project, pids: &Path, with_child: bool) -> (Guard, i32, Option<i32>) {
    let follower = p.spawn(&["agent", "run", "growth-analyst", "--task", "work"]);
    let agent = wait_for(Duration::from_secs(20), "the agent's pid", || {
        read_pid(&find_file(pids, ".agent")?)
    });
    let child = with_child.then(|| {
        wait_for(Duration::from_secs(20), "the agent child's pid", || {
            read_pid(&find_file(pids, ".child")?)
        })
    });
    (follower, agent, child)
}

#[test]
fn sigterm_lets_a_running_task_finish_within_the_grace_period() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    let (mut gtmd, _log) = daemon(
        &p,
        &["--grace", "20", "--agent-command", &agent_cmd("work", "1")],
    );
    let (mut follower, agent, _) = start_task(&p, &pids, false);
    let signalled = Instant::now();
    gtmd.signal(libc::SIGTERM);
    let out = gtmd.wait(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    // It waited for the task (which needed about a second), not for the grace.
    assert!(
        find_file(&pids, ".done").is_some(),
        "the task was not let finish"
    );
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(!pid_alive(agent));
    // The follower notices the daemon is gone instead of waiting forever.
    let out = follower.wait(Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped before the run ended"), "{err}");
}

#[test]
fn sigterm_stops_a_task_that_outlives_the_grace_period_with_its_children() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    let grace = Duration::from_secs(1);
    let (mut gtmd, log) = daemon(
        &p,
        &["--grace", "1", "--agent-command", &agent_cmd("hang", "")],
    );
    let (_follower, agent, child) = start_task(&p, &pids, true);
    let child = child.unwrap();
    let signalled = Instant::now();
    gtmd.signal(libc::SIGTERM);
    wait_for(
        Duration::from_secs(10),
        "the task's processes to end",
        || (!pid_alive(agent) && !pid_alive(child)).then_some(()),
    );
    let stopped = signalled.elapsed();
    assert!(
        stopped >= grace,
        "the task was stopped after {stopped:?}, before its grace of {grace:?}"
    );
    let out = gtmd.wait(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", log.text());
    // Within the grace, then TERM (the agent dies of it at once).
    assert!(
        signalled.elapsed() < grace + Duration::from_secs(3),
        "{:?}",
        signalled.elapsed()
    );
    let text = log.text();
    assert!(text.contains("grace period over"), "{text}");
    // State saved: the journal reads back, the task is still open (it runs
    // again at the next start).
    let status = p.status_json();
    assert_eq!(status["daemon_running"], false);
    assert_eq!(
        status["open_tasks"].as_array().unwrap().len(),
        1,
        "{status:#}"
    );
}

#[test]
fn a_second_sigterm_during_the_grace_period_stops_at_once() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    let (mut gtmd, log) = daemon(
        &p,
        &["--grace", "60", "--agent-command", &agent_cmd("hang", "")],
    );
    let (_follower, agent, child) = start_task(&p, &pids, true);
    let child = child.unwrap();
    gtmd.signal(libc::SIGTERM);
    log.wait_for("waiting up to 60", 0, Duration::from_secs(10));
    assert!(pid_alive(agent), "the grace period did not wait");
    let second = Instant::now();
    gtmd.signal(libc::SIGTERM);
    let out = gtmd.wait(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", log.text());
    assert!(second.elapsed() < Duration::from_secs(3));
    wait_for(
        Duration::from_secs(2),
        "the task's processes to end",
        || (!pid_alive(agent) && !pid_alive(child)).then_some(()),
    );
    assert!(log.text().contains("second stop signal"), "{}", log.text());
    let status = p.status_json();
    assert_eq!(
        status["open_tasks"].as_array().unwrap().len(),
        1,
        "{status:#}"
    );
}

#[test]
fn sighup_with_a_broken_agent_file_keeps_the_old_definitions_and_runs_on() {
    let p = Project::new();
    let _cleanup = PidsGuard {
        dir: p.root().join("pids"),
    };
    // The coordinator is the agent under test: each new conflict file gives
    // it a review task, so the daemon is driven through the bus alone.
    let agent_file = p.root().join("agents/coordinator.md");
    let define = |tag: &str| {
        fs::write(
            &agent_file,
            format!(
                "---\nname: coordinator\ncommand: [\"{}\", version, \"{{task_id}}\", {tag}]\n---\nThe coordinator.\n",
                fixture("supervised.sh").display()
            ),
        )
        .unwrap();
    };
    let versions = p.root().join("versions.txt");
    let conflicts = std::cell::Cell::new(0);
    let run_once = |expect: &str| {
        conflicts.set(conflicts.get() + 1);
        let n = conflicts.get();
        p.write(&format!("conflicts/c{n}.md"), &format!("# Conflict {n}\n"));
        let last = wait_for(Duration::from_secs(20), "the coordinator's review", || {
            let text = fs::read_to_string(&versions).unwrap_or_default();
            (text.lines().count() == n).then(|| text.lines().last().unwrap().to_string())
        });
        assert!(last.starts_with(expect), "ran {last:?}, expected {expect}");
    };
    define("v1");
    let (mut gtmd, log) = daemon(&p, &[]);
    run_once("v1");

    // A broken definition: refused, logged with the file, the old one kept.
    fs::write(
        &agent_file,
        "---\nname: coordinator\ncommand: [unclosed\n---\nThe coordinator.\n",
    )
    .unwrap();
    gtmd.signal(libc::SIGHUP);
    let at = log.wait_for(
        "kept the previous playbook and agent definitions",
        0,
        Duration::from_secs(10),
    );
    let text = log.text();
    assert!(
        text.contains("reload refused") && text.contains("coordinator.md"),
        "{text}"
    );
    assert!(gtmd.child.as_mut().unwrap().try_wait().unwrap().is_none());
    run_once("v1");

    // Fixed: the next SIGHUP takes it.
    define("v2");
    gtmd.signal(libc::SIGHUP);
    log.wait_for(
        "reloaded the playbook and agent definitions",
        at,
        Duration::from_secs(10),
    );
    run_once("v2");

    gtmd.signal(libc::SIGTERM);
    let out = gtmd.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0));
}
