//! A task is journaled durably before its agent runs. A gtmd that dies
//! between writing a journal entry and the `fdatasync` that makes it durable
//! (`GTMD_DEBUG_DIE_BEFORE_DURABLE`) has run no agent for it, whatever it had
//! already prepared, and the next gtmd runs that agent once.

mod common;

use common::*;
use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn conflict(name: &str) -> String {
    format!("# Conflict {name}\n\nThe numbers disagree.\n")
}

/// `gtmd run` with `agent` as every agent's command and `envs` set, its
/// stderr followed, once it is watching.
fn serve(p: &Project, agent: &str, envs: &[(&str, &str)]) -> (Guard, LogTail) {
    let mut c = p.cmd();
    c.args(["run", "--agent-command", agent])
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut g = Guard {
        child: Some(c.spawn().unwrap()),
    };
    let log = g.tail_stderr();
    log.wait_for("ready: watching the workspace", 0, Duration::from_secs(20));
    (g, log)
}

/// The task ids the agent was started for, one a line.
fn runs(p: &Project) -> Vec<String> {
    fs::read_to_string(p.root().join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn no_agent_runs_for_an_entry_that_never_became_durable_and_the_next_gtmd_runs_it_once() {
    let p = Project::new();
    let root = p.root().display().to_string();
    // The project's path is in the agent's command line, so every process
    // the daemon starts (before and after its exec) can be found by it.
    let agent = format!("sh -c 'echo \"$0\" >> {root}/runs.log' {{task_id}}");
    let (mut g, log) = serve(
        &p,
        &agent,
        &[("GTMD_DEBUG_DIE_BEFORE_DURABLE", "conflicts/doomed.md")],
    );

    // A conflict before it is acted on as usual: the agent command works.
    // Its task is done (its exit journaled) before the crash, as tasks are
    // at-least-once: one still running then would run again after it.
    p.write("conflicts/first.md", &conflict("first"));
    wait_for(
        Duration::from_secs(20),
        "the first review to be done",
        || {
            let status = p.status_json();
            let done = status["tasks"].as_array().unwrap().iter().any(|t| {
                t["kind"]["conflict"] == "conflicts/first.md" && t["state"]["state"] == "done"
            });
            (done && runs(&p).len() == 1).then_some(())
        },
    );

    p.write("conflicts/doomed.md", &conflict("doomed"));
    let out = g.wait(Duration::from_secs(20));
    assert_eq!(
        out.status.code(),
        Some(137),
        "the daemon did not die by the hook:\n{}",
        log.text()
    );
    assert!(log.text().contains("GTMD_DEBUG_DIE_BEFORE_DURABLE"));
    // Whatever the daemon had started for the doomed entry is gone with it.
    wait_for(
        Duration::from_secs(10),
        "no process of the dead daemon to be left",
        || pids_with_arg(&root).is_empty().then_some(()),
    );
    assert_eq!(
        runs(&p),
        ["t0001-conflict-review"],
        "an agent ran for an entry that was not durable"
    );

    // The entry was written, if not synced: the next gtmd finds the version
    // (in the journal, or by its start-up scan) and reviews it once.
    let (mut g, log) = serve(&p, &agent, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs(&p).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the doomed review did not run after the restart:\n{}",
            log.text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    g.signal(libc::SIGTERM);
    let out = g.wait(Duration::from_secs(20));
    assert!(out.status.success(), "{out:?}\n{}", log.text());
    let runs = runs(&p);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_ne!(runs[0], runs[1], "one review ran twice: {runs:?}");
    let status = p.status_json();
    let reviews: Vec<&serde_json::Value> = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"]["conflict"] == "conflicts/doomed.md")
        .collect();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
}

/// A task's files are written while its process is forked, which execs only
/// once they are there: when they cannot be written, the process never
/// runs, the start fails saying why, and the daemon goes on.
#[test]
fn a_task_whose_files_cannot_be_written_never_runs_and_the_daemon_goes_on() {
    let p = Project::new();
    let root = p.root().display().to_string();
    let agent = format!("sh -c 'echo \"$0\" >> {root}/runs.log' {{task_id}}");
    // A file where the task files' directory would be.
    fs::create_dir_all(p.path(".gtmd")).unwrap();
    fs::write(p.path(".gtmd/tasks"), "not a directory").unwrap();
    let (mut g, log) = serve(&p, &agent, &[]);
    p.write("conflicts/a.md", &conflict("a"));
    let at = log.wait_for("task could not start", 0, Duration::from_secs(20));
    assert!(
        log.text()[at..].contains(".gtmd/tasks"),
        "the failure does not name the task files:\n{}",
        log.text()
    );
    // The loop still serves: a sync is answered, and nothing ran.
    p.sync();
    assert!(runs(&p).is_empty(), "{:?}", runs(&p));
    g.signal(libc::SIGTERM);
    let out = g.wait(Duration::from_secs(20));
    assert!(out.status.success(), "{out:?}\n{}", log.text());
}
