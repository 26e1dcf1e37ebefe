//! A stop and a start never strand a run (issue 11): the findings of a chaos
//! run, replayed with the real binary, real signals and real processes.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

/// An agent that reports its task complete at once, then takes `linger`
/// seconds to exit (as an LLM CLI does while it flushes its session).
fn lingering_agent(p: &Project, linger: &str) -> PathBuf {
    let path = p.root().join("agent.sh");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf 'agent: %s\\ntask_id: %s\\nstatus: complete\\noutputs: []\\n' \"$GTMD_AGENT\" \"$GTMD_TASK_ID\" > \"status/$GTMD_AGENT.md\"\nsleep {linger}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Conflict reviews that are done, by conflict path.
fn reviews_done(p: &Project) -> Vec<String> {
    let s = p.status_json();
    let mut done: Vec<String> = s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"]["kind"] == "conflict-review" && t["state"]["state"] == "done")
        .map(|t| t["kind"]["conflict"].as_str().unwrap().to_string())
        .collect();
    done.sort();
    done
}

/// Finding 1: the agent writes `complete` and exits 3 s later; SIGTERM comes
/// in between, its exit is never journaled. The restarted gtmd must know the
/// old process is gone and review the queued and the new conflicts.
#[test]
fn a_stop_while_an_agent_outlives_its_status_strands_no_review() {
    let p = Project::new();
    let agent = lingering_agent(&p, "3");
    let cmd = agent.display().to_string();
    let mut g = p.serve(&["--agent-command", &cmd], &[]);
    p.write("conflicts/c1.md", "# c1\n");
    p.write("conflicts/c2.md", "# c2\n");
    // The first review is done (its status read), its process still runs.
    wait_for(
        Duration::from_secs(20),
        "the first review to be done",
        || (reviews_done(&p).len() == 1).then_some(()),
    );
    g.signal(libc::SIGTERM);
    let out = g.wait(Duration::from_secs(30));
    assert!(out.status.success(), "gtmd did not stop cleanly: {out:?}");

    let s = p.status_json();
    assert_eq!(s["daemon_running"], false);

    let _g = p.serve(&["--agent-command", &cmd], &[]);
    p.write("conflicts/c3.md", "# c3\n");
    wait_for(Duration::from_secs(30), "all three reviews", || {
        (reviews_done(&p)
            == [
                "conflicts/c1.md".to_string(),
                "conflicts/c2.md".to_string(),
                "conflicts/c3.md".to_string(),
            ])
        .then_some(())
    });
}

/// Finding 2: what `gtmd status` shows (a replay, with whatever flags it is
/// given) is what the daemon did. Here the first review is complete while
/// its process still runs, so the daemon holds the second one back; a
/// `gtmd status` without `--agent-command` used to replay the agent as an
/// inbox agent and show the second review running. Every status call also
/// checks the daemon's checkpoints (GTMD_STRICT_REPLAY, set for all tests).
#[test]
fn status_without_the_daemons_flags_shows_what_the_daemon_did() {
    let p = Project::new();
    let agent = lingering_agent(&p, "5");
    let cmd = agent.display().to_string();
    let _g = p.serve(&["--agent-command", &cmd], &[]);
    p.write("conflicts/c1.md", "# c1\n");
    p.write("conflicts/c2.md", "# c2\n");
    wait_for(
        Duration::from_secs(20),
        "the first review to be done",
        || (reviews_done(&p).len() == 1).then_some(()),
    );
    let with_flags = p.run(&["--agent-command", &cmd, "status", "--json"]);
    assert!(with_flags.status.success(), "{with_flags:?}");
    let with_flags: serde_json::Value = serde_json::from_slice(&with_flags.stdout).unwrap();
    let plain = p.status_json();
    let states = |s: &serde_json::Value| -> Vec<(String, String)> {
        s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].to_string(), t["state"]["state"].to_string()))
            .collect()
    };
    // The second review waits for the first one's process to exit.
    assert!(
        states(&with_flags).contains(&("\"t0002-conflict-review\"".into(), "\"queued\"".into())),
        "{:?}",
        states(&with_flags)
    );
    assert_eq!(
        states(&with_flags),
        states(&plain),
        "`gtmd status` without --agent-command tells another story than with it"
    );
}
