//! SIGHUP to a real daemon while a run is active: a playbook that drops a
//! phase of the run is refused (the daemon keeps the old one and runs on); a
//! compatible change is taken.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

const DEFAULT: &str = include_str!("../src/playbook/default.yaml");

/// The embedded playbook without its phase 4 (and the scenarios that need it).
fn without_phase_four() -> String {
    let start = DEFAULT.find("  - number: 4\n").unwrap();
    let end = DEFAULT.find("\nroutes:\n").unwrap();
    let scenarios = DEFAULT.find("\nscenarios:\n").unwrap();
    format!(
        "{}{}\nscenarios: []\n",
        &DEFAULT[..start],
        &DEFAULT[end..scenarios]
    )
}

#[test]
fn sighup_refuses_a_playbook_that_drops_a_phase_of_the_active_run() {
    let p = Project::new();
    let playbook = p.root().join("playbook.yaml");
    fs::write(&playbook, DEFAULT).unwrap();
    let mut gtmd = p.spawn(&["run", "--playbook", "playbook.yaml"]);
    let log = gtmd.tail_stderr();
    log.wait_for("ready: watching the workspace", 0, Duration::from_secs(20));
    let _team = p.spawn(&[
        "team",
        "run",
        "--phase",
        "analysis",
        "--config",
        "CONFIG.md",
        "--force",
    ]);
    let task = wait_for(Duration::from_secs(20), "phase 4's first task", || {
        let s = p.status_json();
        s["open_tasks"]
            .as_array()?
            .iter()
            .find(|t| t["step"] == "performance-analysis")
            .map(|t| t["id"].as_str().unwrap().to_string())
    });

    // The new file is a valid playbook, but the run is in its dropped phase.
    let dropped = without_phase_four();
    let check = p.run(&["check", "--playbook", "playbook.yaml"]);
    fs::write(&playbook, &dropped).unwrap();
    let check_dropped = p.run(&["check", "--playbook", "playbook.yaml"]);
    assert_eq!(
        (check.status.code(), check_dropped.status.code()),
        (Some(0), Some(0)),
        "{}",
        String::from_utf8_lossy(&check_dropped.stdout)
    );
    gtmd.signal(libc::SIGHUP);
    let at = log.wait_for(
        "kept the previous playbook and agent definitions",
        0,
        Duration::from_secs(10),
    );
    let text = log.text();
    assert!(
        text.contains("reload refused") && text.contains("playbook.yaml"),
        "{text}"
    );
    assert!(text.contains("phase 4 analysis"), "{text}");
    assert!(!text.contains("reloaded the playbook"), "{text}");

    // It runs on with the old playbook: phase 4's step completes.
    for out in [
        "analytics/performance-analysis.md",
        "analytics/unit-economics.md",
        "analytics/recommendations.md",
    ] {
        p.write(out, "# Analysis\n\nCAC is down.\n");
    }
    p.write(
        "status/growth-analyst.md",
        &format!(
            "agent: growth-analyst\nphase: 4\ntask_id: {task}\ntask: analysis\nstatus: complete\n"
        ),
    );
    p.sync();
    let s = p.status_json();
    assert_eq!(
        s["runs"][0]["steps"]["performance-analysis"]["state"]["state"], "done",
        "{s}"
    );
    assert!(gtmd.child.as_mut().unwrap().try_wait().unwrap().is_none());

    // A change that leaves the run's phases and steps alone is taken.
    fs::write(
        &playbook,
        DEFAULT.replace("default_timeout_secs: 3600", "default_timeout_secs: 1800"),
    )
    .unwrap();
    gtmd.signal(libc::SIGHUP);
    log.wait_for(
        "reloaded the playbook and agent definitions",
        at,
        Duration::from_secs(10),
    );

    gtmd.signal(libc::SIGTERM);
    let out = gtmd.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0));
}
