//! The command-line surface: check, status, sync, execution modes, and a
//! daemon that takes run requests dropped into the bus.

mod common;

use common::*;
use std::time::Duration;

fn agent_cmd() -> String {
    format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("agent.sh").display()
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_passes_on_the_shipped_workspace_and_agents() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(gtmd_bin())
        .current_dir(repo)
        .args(["check", "--config", "CONFIG.md", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn check_reports_a_broken_playbook_agent_and_status_as_path_line() {
    let p = Project::new();
    std::fs::write(
        p.root().join("playbook.yaml"),
        gtmd::playbook::DEFAULT_PLAYBOOK.replacen(
            "agent: brand-messaging",
            "agent: brand-wizard",
            1,
        ),
    )
    .unwrap();
    std::fs::write(
        p.root().join("agents/coordinator.md"),
        "---\nname: coordinator\ntimeout: soon\n---\nThe coordinator.\n",
    )
    .unwrap();
    p.write(
        "status/growth-analyst.md",
        "agent: growth-analyst\nstatus: [complete\n",
    );
    let out = p.run(&["check", "--playbook", "playbook.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let line_of = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line about {needle} in:\n{text}"))
            .to_string()
    };
    let playbook = line_of("brand-wizard");
    let after = playbook.split("playbook.yaml:").nth(1).expect("path:line");
    assert!(
        after.split(':').next().unwrap().parse::<usize>().is_ok(),
        "{playbook}"
    );
    let agent = line_of("coordinator.md");
    assert!(agent.contains("coordinator.md:3:"), "{agent}");
    let status = line_of("growth-analyst.md");
    let after = status
        .split("status/growth-analyst.md:")
        .nth(1)
        .expect("path:line");
    assert!(
        after.split(':').next().unwrap().parse::<usize>().is_ok(),
        "{status}"
    );
}

#[test]
fn a_scenario_that_does_not_fit_is_refused_unless_forced() {
    let p = Project::new();
    let out = p.run(&[
        "team",
        "run",
        "--phases",
        "all",
        "--config",
        "CONFIG.md",
        "--scenario",
        "scaling",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("scenario scaling runs phases 2,3,4"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&[
        "team",
        "run",
        "--phase",
        "strategy",
        "--config",
        "CONFIG.md",
        "--scenario",
        "nonsense",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("quarterly-planning"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn starting_at_phase_two_without_phase_one_outputs_is_refused_naming_them() {
    let p = Project::new();
    let out = p.run(&[
        "team",
        "run",
        "--phases",
        "pipeline-building,execution",
        "--config",
        "CONFIG.md",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("strategy/gtm-strategy.md"), "{err}");
    assert!(err.contains("messaging/messaging-hierarchy.md"), "{err}");
}

#[test]
fn a_daemon_takes_a_team_run_dropped_into_the_bus() {
    let p = Project::new();
    let log = p.root().join("agent.log");
    std::fs::write(&log, "").unwrap();
    let mut daemon = {
        let mut c = p.cmd();
        c.env("GTMD_TEST_LOG", &log)
            .args(["run", "--agent-command", &agent_cmd()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Guard {
            child: Some(c.spawn().unwrap()),
        }
    };
    wait_for(
        Duration::from_secs(10),
        "the daemon to take its lock",
        || {
            p.run(&["status", "--json"])
                .status
                .success()
                .then_some(())
                .and_then(|_| {
                    let s = p.status_json();
                    (s["daemon_running"] == true).then_some(())
                })
        },
    );
    let out = p.run(&[
        "team",
        "run",
        "--phase",
        "strategy",
        "--config",
        "CONFIG.md",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("handed to the gtmd"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = p.status_json();
    assert_eq!(s["runs"][0]["state"]["state"], "passed");
    assert_eq!(s["runs"][0]["phases"], serde_json::json!([1]));
    daemon.signal(libc::SIGTERM);
    let out = daemon.wait(Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_bad_status_is_refused_with_its_line_and_counts_once_fixed() {
    let p = Project::new();
    let mut daemon = p.spawn(&["run"]);
    wait_for(Duration::from_secs(10), "the daemon", || {
        (p.status_json()["daemon_running"] == true).then_some(())
    });
    // Truncated YAML, as a half-written file would be.
    p.write(
        "status/coordinator.md",
        "agent: coordinator\nphase: 1\nstatus: [compl",
    );
    assert!(p.run(&["sync"]).status.success());
    let s = p.status_json();
    let rejected = s["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{s}");
    assert_eq!(rejected[0]["path"], "status/coordinator.md");
    assert!(rejected[0]["line"].as_u64().is_some(), "{s}");
    let text = String::from_utf8_lossy(&p.run(&["status"]).stdout).into_owned();
    assert!(text.contains("status/coordinator.md:"), "{text}");
    // Fixed: no longer refused (it matches no task, which is said instead).
    p.write(
        "status/coordinator.md",
        "agent: coordinator\nphase: 1\nstatus: in-progress\ntask: x\n",
    );
    assert!(p.run(&["sync"]).status.success());
    assert!(p.status_json()["rejected"].as_array().unwrap().is_empty());
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).status.success());
}

#[test]
fn task_text_reaches_the_agent_unchanged_as_one_argument() {
    let p = Project::new();
    let text = "Design ads; rm -rf / && echo `id` $(whoami) 'quoted' \"dq\" {agent}\nsecond line";
    let cmd = format!(
        "{} --task {{task}} --id {{task_id}}",
        fixture("record-args.sh").display()
    );
    let out = p.run(&[
        "agent",
        "run",
        "demand-gen",
        "--task",
        text,
        "--agent-command",
        &cmd,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let args = std::fs::read(p.root().join("args.bin")).unwrap();
    let args: Vec<String> = args
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8(a.to_vec()).unwrap())
        .collect();
    assert_eq!(args[0], "--task");
    assert_eq!(args[1], text);
    assert_eq!(args[2], "--id");
    assert!(args[3].starts_with("t0001-"), "{args:?}");
}

#[test]
fn init_lays_out_a_workspace_that_checks_clean() {
    let p = Project::new();
    for d in [
        "strategy/decisions",
        "strategy/gates",
        "conflicts",
        "status",
        "learnings",
    ] {
        assert!(p.path(d).is_dir(), "{d} missing");
    }
    for a in gtmd::agents::AGENTS {
        assert!(p.root().join(format!("agents/{a}.md")).is_file());
    }
    let out = p.run(&["check", "--config", "CONFIG.md"]);
    assert!(out.status.success(), "{}", stdout(&out));
}
