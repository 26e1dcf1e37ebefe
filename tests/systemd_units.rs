//! The shipped systemd units: hardened to an exposure of 1.5 or less by
//! `systemd-analyze security`, while agents keep the network, and free of
//! unit errors by `systemd-analyze verify`; and the shipped tmpfiles rule,
//! run by `systemd-tmpfiles` on a state directory gtmd made. Skipped
//! (saying so) only where those programs are not installed.

mod common;

use common::{fixture, Project};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const UNITS: [&str; 2] = ["gtmd.service", "gtmd@.service"];
const MAX_EXPOSURE: f64 = 1.5;

fn systemd_analyze() -> Option<PathBuf> {
    systemd_program("systemd-analyze")
}

fn systemd_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name)
}

fn unit_text(name: &str) -> String {
    std::fs::read_to_string(unit_path(name)).unwrap()
}

/// `Key=value` lines of the [Service] section (comments and blanks dropped).
fn settings(name: &str) -> Vec<(String, String)> {
    unit_text(name)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn value(name: &str, key: &str) -> Option<String> {
    // The last assignment wins, as in systemd.
    settings(name)
        .into_iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[test]
fn the_units_are_notify_services_with_a_watchdog_that_keep_the_network() {
    for unit in UNITS {
        assert_eq!(value(unit, "Type").as_deref(), Some("notify"), "{unit}");
        assert_eq!(
            value(unit, "NotifyAccess").as_deref(),
            Some("main"),
            "{unit}"
        );
        assert!(value(unit, "WatchdogSec").is_some(), "{unit}: WatchdogSec");
        assert_eq!(
            value(unit, "ExecReload").as_deref(),
            Some("/bin/kill -HUP $MAINPID"),
            "{unit}"
        );
        assert_eq!(
            value(unit, "Restart").as_deref(),
            Some("on-failure"),
            "{unit}"
        );
        assert!(value(unit, "StateDirectory").is_some(), "{unit}");
        assert_eq!(value(unit, "User").as_deref(), Some("gtmd"), "{unit}");
        let kill_mode = value(unit, "KillMode").unwrap_or_default();
        assert!(
            kill_mode == "mixed" || kill_mode == "control-group",
            "{unit}: KillMode={kill_mode}: agents must die with the service"
        );
        let families = value(unit, "RestrictAddressFamilies").unwrap_or_default();
        for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
            assert!(
                families.split_whitespace().any(|f| f == family),
                "{unit}: agents need {family} (RestrictAddressFamilies={families})"
            );
        }
        assert_ne!(value(unit, "PrivateNetwork").as_deref(), Some("yes"));
        // The grace period gtmd gives agents must fit in the stop timeout.
        let exec = value(unit, "ExecStart").unwrap();
        let grace: u64 = exec
            .split_whitespace()
            .skip_while(|a| *a != "--grace")
            .nth(1)
            .map(|g| g.parse().unwrap())
            .unwrap_or(10);
        let stop = value(unit, "TimeoutStopSec").unwrap();
        let stop: u64 = stop.trim_end_matches('s').parse().unwrap();
        assert!(
            stop > grace + gtmd::runner::KILL_GRACE.as_secs(),
            "{unit}: TimeoutStopSec={stop} leaves no time for --grace {grace} plus the TERM→KILL grace"
        );
    }
}

#[test]
fn systemd_analyze_security_rates_the_units_at_most_1_5() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("SKIPPED: systemd-analyze is not installed; cannot measure the units' exposure");
        return;
    };
    for unit in UNITS {
        let out = Command::new(&analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit_path(unit))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stdout
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("{unit}: no exposure figure in:\n{stdout}\n{stderr}"));
        let figure: f64 = line
            .split(':')
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: cannot read the figure in {line:?}"));
        eprintln!("{unit}: {}", line.trim());
        assert!(
            figure <= MAX_EXPOSURE,
            "{unit}: exposure {figure} > {MAX_EXPOSURE}:\n{stdout}"
        );
    }
}

#[test]
fn systemd_analyze_verify_reports_no_unit_errors() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("SKIPPED: systemd-analyze is not installed; cannot verify the units");
        return;
    };
    // verify checks that ExecStart= names an executable: point copies of the
    // units at the binary just built instead of /usr/local/bin/gtmd.
    let dir = tempfile::tempdir().unwrap();
    for unit in UNITS {
        let text = unit_text(unit);
        assert!(text.contains("ExecStart=/usr/local/bin/gtmd "), "{unit}");
        let text = text.replace("/usr/local/bin/gtmd", common::gtmd_bin());
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    for unit in ["gtmd.service", "gtmd@acme.service"] {
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(dir.path().join(unit))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        // verify exits 0 on warnings such as an unknown key; any message is a finding.
        assert!(
            out.status.success() && stderr.trim().is_empty() && stdout.trim().is_empty(),
            "systemd-analyze verify {unit}:\n{stdout}{stderr}"
        );
    }
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `out`, once it is known to be a success (else its stderr is the failure).
fn succeeded(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn age(path: &Path, days: u64) {
    let then = SystemTime::now() - Duration::from_secs(days * 24 * 3600);
    let times = std::fs::FileTimes::new()
        .set_accessed(then)
        .set_modified(then);
    std::fs::File::open(path).unwrap().set_times(times).unwrap();
}

#[test]
fn the_tmpfiles_rule_removes_old_task_logs_and_nothing_else() {
    let Some(tmpfiles) = systemd_program("systemd-tmpfiles") else {
        eprintln!("SKIPPED: systemd-tmpfiles is not installed; cannot run the tmpfiles rule");
        return;
    };
    let p = Project::new();
    // The state where gtmd.service keeps it, under a root of the test's own.
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("var/lib/gtmd");
    let state_arg = state.to_str().unwrap();
    let agent = format!(
        "{} chatty {{task_id}} 10",
        fixture("supervised.sh").display()
    );
    let run_task = |task: &str| {
        succeeded(p.run(&[
            "agent",
            "run",
            "growth-analyst",
            "--task",
            task,
            "--state-dir",
            state_arg,
            "--agent-command",
            &agent,
        ]));
    };
    run_task("an old task");
    let made = files_under(&state);
    let is_log = |f: &Path| f.starts_with(state.join("logs"));
    assert!(made.iter().any(|f| is_log(f)), "{made:?}");
    assert!(
        made.iter().any(|f| f.ends_with("journal.jsonl")),
        "{made:?}"
    );
    // Nobody wrote or read any of it for 40 days, the journal included.
    for f in &made {
        age(f, 40);
    }
    // An instance's state (gtmd@acme.service) beside it: an old log and
    // one of this week.
    let acme = state.join("acme/logs");
    std::fs::create_dir_all(&acme).unwrap();
    std::fs::write(acme.join("t0001.log"), "old\n").unwrap();
    std::fs::write(acme.join("t0002.log"), "recent\n").unwrap();
    age(&acme.join("t0001.log"), 40);
    age(&acme.join("t0002.log"), 6);

    succeeded(
        Command::new(&tmpfiles)
            .arg("--clean")
            .arg(format!("--root={}", root.path().display()))
            .arg(unit_path("gtmd.tmpfiles"))
            .output()
            .unwrap(),
    );
    for f in &made {
        assert_eq!(f.exists(), !is_log(f), "{}", f.display());
    }
    assert!(state.join("logs").is_dir());
    assert!(!acme.join("t0001.log").exists());
    assert!(acme.join("t0002.log").exists());

    // gtmd goes on from that state: the old task is still known, a new one
    // runs and has its log.
    run_task("a new task");
    let out = succeeded(p.run(&["status", "--json", "--state-dir", state_arg]));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = status["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{status}");
    let logs = files_under(&state.join("logs"));
    assert_eq!(logs.len(), 1, "{logs:?}");
}
