//! Logs: no timestamps when stderr is the journal (JOURNAL_STREAM names it),
//! timestamps otherwise; `--log-file`; `--log-format json`; every reaction
//! logged with its file, rule and task.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Run `gtmd run ARGS` with stderr into `err_file` until it is ready and has
/// handled a conflict file, then stop it; return what it wrote there.
fn run_until_ready(p: &Project, err_file: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let err = fs::File::create(err_file).unwrap();
    let mut c = p.cmd();
    c.arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::from(err));
    for (k, v) in env {
        c.env(k, v);
    }
    let mut g = Guard {
        child: Some(c.spawn().unwrap()),
    };
    let log_path = args
        .iter()
        .position(|a| *a == "--log-file")
        .map(|i| p.root().join(args[i + 1]))
        .unwrap_or_else(|| err_file.to_path_buf());
    wait_for(Duration::from_secs(20), "the ready line", || {
        fs::read_to_string(&log_path)
            .ok()
            .filter(|t| t.contains("ready: watching the workspace"))
    });
    p.write("conflicts/tone.md", "# Tone of voice\n");
    wait_for(Duration::from_secs(20), "the conflict's task", || {
        fs::read_to_string(&log_path)
            .ok()
            .filter(|t| t.contains("conflict: conflicts/tone.md"))
    });
    g.signal(libc::SIGTERM);
    assert_eq!(g.wait(Duration::from_secs(20)).status.code(), Some(0));
    fs::read_to_string(&log_path).unwrap()
}

fn starts_with_timestamp(line: &str) -> bool {
    line.len() > 4 && line[..4].chars().all(|c| c.is_ascii_digit()) && line[4..].starts_with('-')
}

#[test]
fn no_timestamps_when_stderr_is_the_journal_and_only_then() {
    let p = Project::new();
    let err_file = p.root().join("stderr.txt");
    fs::write(&err_file, "").unwrap();
    let meta = fs::metadata(&err_file).unwrap();
    // What systemd sets: the device and inode of the stream it gave as stderr.
    let journal = format!("{}:{}", meta.dev(), meta.ino());
    let text = run_until_ready(&p, &err_file, &[("JOURNAL_STREAM", journal)], &[]);
    let ready = text.lines().find(|l| l.contains("ready:")).unwrap();
    assert!(!starts_with_timestamp(ready), "{ready}");

    // An inherited JOURNAL_STREAM that is not our stderr: timestamps stay.
    let p = Project::new();
    let err_file = p.root().join("stderr.txt");
    let text = run_until_ready(&p, &err_file, &[("JOURNAL_STREAM", "1:1".into())], &[]);
    let ready = text.lines().find(|l| l.contains("ready:")).unwrap();
    assert!(starts_with_timestamp(ready), "{ready}");
}

#[test]
fn log_file_and_json_format_with_the_file_rule_and_task_of_a_reaction() {
    let p = Project::new();
    let err_file = p.root().join("stderr.txt");
    let text = run_until_ready(
        &p,
        &err_file,
        &[],
        &["--log-file", "logs/gtmd.json", "--log-format", "json"],
    );
    assert_eq!(
        fs::read_to_string(&err_file).unwrap(),
        "",
        "stderr was used"
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let started = lines
        .iter()
        .find(|l| l["fields"]["message"] == "task started")
        .unwrap_or_else(|| panic!("no task started line in {text}"));
    // The rule and the file (the trigger) and the task.
    assert_eq!(started["fields"]["trigger"], "conflict: conflicts/tone.md");
    assert_eq!(started["fields"]["agent"], "coordinator");
    assert!(started["fields"]["task"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
}

/// Issue 10, item 6: the log says when a task ends, once, with its agent,
/// outcome and duration (it said only when one started).
#[test]
fn each_task_end_is_logged_once_with_outcome_and_duration() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    let agent = p.root().join("agent.sh");
    fs::write(
        &agent,
        "#!/bin/sh\nprintf 'agent: %s\\ntask_id: %s\\nstatus: complete\\n' \"$GTMD_AGENT\" \"$GTMD_TASK_ID\" > \"status/$GTMD_AGENT.md\"\n",
    )
    .unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = agent.display().to_string();
    let mut g = p.spawn(&["run", "--agent-command", &cmd]);
    let tail = g.tail_stderr();
    tail.wait_for("ready: watching the workspace", 0, Duration::from_secs(20));
    p.write("conflicts/tone.md", "# Tone of voice\n");
    tail.wait_for(
        "task ended task=t0001-conflict-review",
        0,
        Duration::from_secs(20),
    );
    p.sync();
    g.signal(libc::SIGTERM);
    let _ = g.wait(Duration::from_secs(20));
    let text = tail.text();
    let ends: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("task ended task=t0001-conflict-review"))
        .collect();
    assert_eq!(ends.len(), 1, "{text}");
    for want in ["agent=coordinator", "outcome=complete", "duration="] {
        assert!(ends[0].contains(want), "{want} missing: {}", ends[0]);
    }
}
