//! One workspace, one gtmd, whatever its state directory: a second gtmd with
//! another `--state-dir` would act on every file a second time.

mod common;

use common::*;
use std::fs;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn a_second_gtmd_with_another_state_dir_is_refused_and_every_conflict_is_reviewed_once() {
    let p = Project::new();
    let log = p.root().join("starts.log");
    let cmd = format!("{} {{task_id}}", fixture("slow-agent.sh").display());
    let envs = [("GTMD_TEST_LOG", log.display().to_string())];
    let first = p.serve(&["--agent-command", &cmd], &envs);

    let elsewhere = p.root().join("elsewhere");
    let mut c = p.cmd();
    c.args(["run", "--agent-command", &cmd, "--state-dir"])
        .arg(&elsewhere)
        .env("GTMD_TEST_LOG", &log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut second = Guard {
        child: Some(c.spawn().unwrap()),
    };
    let out = second.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("another gtmd (pid {})", first.pid()))
            && err.contains(&p.ws().join(".gtmd").display().to_string()),
        "{err}"
    );

    // Clients given the other state directory find the gtmd serving the
    // workspace, and read its journal.
    let other = ["--state-dir", elsewhere.to_str().unwrap()];
    let out = p.run(&[&["status", "--json"][..], &other].concat());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["daemon_running"], true, "{s}");
    let out = p.run(&[&["cancel", "--run", "r-nope"][..], &other].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("there is no run r-nope"), "{err}");

    for i in 0..20 {
        p.write(
            &format!("conflicts/c{i:02}.md"),
            &format!("# Conflict {i}\n"),
        );
    }
    let done = || -> usize {
        let s = p.status_json();
        s["tasks"]
            .as_array()
            .map(|t| t.iter().filter(|t| t["state"]["state"] == "done").count())
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(60), "20 reviews to end", || {
        (done() == 20).then_some(())
    });
    p.sync();
    let starts = fs::read_to_string(&log).unwrap();
    assert_eq!(starts.lines().count(), 20, "{starts}");
}
