//! `gtmd status` tells the truth about tasks whether or not a daemon runs:
//! a task whose process died with gtmd is interrupted, not running.

mod common;

use common::*;
use std::time::Duration;

fn display_state(s: &serde_json::Value, task: &str) -> Option<String> {
    task_in(s, task)["display_state"].as_str().map(String::from)
}

#[test]
fn status_says_interrupted_for_a_running_task_while_gtmd_is_down() {
    let p = Project::new();
    let pids = p.root().join("pids");
    let _cleanup = PidsGuard { dir: pids.clone() };
    // The command in the agent's file (not `--agent-command` on `gtmd run`
    // alone), so that `gtmd status` knows the agent runs a process.
    std::fs::write(
        p.root().join("agents/coordinator.md"),
        format!(
            "---\nname: coordinator\ncommand: [\"{}\", hang, \"{{task_id}}\"]\n---\nThe coordinator.\n",
            fixture("supervised.sh").display()
        ),
    )
    .unwrap();
    let mut gtmd = p.serve(&[], &[]);
    p.write("conflicts/pricing.md", "# Pricing\n\nTwo prices.\n");
    let task = wait_for(Duration::from_secs(20), "the review's process", || {
        let file = find_file(&pids, ".agent")?;
        read_pid(&file)?;
        let name = file.file_name()?.to_string_lossy().to_string();
        Some(name.trim_end_matches(".agent").to_string())
    });
    assert_eq!(
        display_state(&p.status_json(), &task).as_deref(),
        Some("running")
    );

    gtmd.signal(libc::SIGKILL);
    gtmd.wait(Duration::from_secs(10));
    let out = p.run(&["status"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("daemon not running"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(&task))
        .unwrap_or_else(|| panic!("no line for {task}:\n{text}"));
    assert!(
        line.contains("interrupted; resumes when gtmd starts"),
        "{text}"
    );
    assert!(!text.contains("running since"), "{text}");
    let s = p.status_json();
    assert_eq!(s["daemon_running"], false);
    assert_eq!(display_state(&s, &task).as_deref(), Some("interrupted"));
    assert_eq!(
        s["tasks"][0]["state"]["state"], "running",
        "the journal's state is kept beside it"
    );

    // And it does resume.
    let mut gtmd = p.serve(&["--grace", "0"], &[]);
    wait_for(Duration::from_secs(20), "the task to run again", || {
        (display_state(&p.status_json(), &task).as_deref() == Some("running")).then_some(())
    });
    gtmd.signal(libc::SIGTERM);
    assert!(gtmd.wait(Duration::from_secs(30)).status.success());
}
