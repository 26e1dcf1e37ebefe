//! The escalation protocol through the real binary: conflicts saved the way
//! editors save them, decisions, and what `gtmd explain` says about it.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::Duration;

fn agent_cmd() -> String {
    format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("agent.sh").display()
    )
}

fn tasks_where(
    s: &serde_json::Value,
    f: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    s["tasks"]
        .as_object()
        .map(|m| m.values().filter(|t| f(t)).cloned().collect())
        .or_else(|| {
            s["tasks"]
                .as_array()
                .map(|a| a.iter().filter(|t| f(t)).cloned().collect())
        })
        .unwrap_or_default()
}

fn reviews_of(s: &serde_json::Value, conflict: &str) -> usize {
    tasks_where(s, |t| {
        t["kind"]["kind"] == "conflict-review" && t["kind"]["conflict"] == conflict
    })
    .len()
}

// ---- editors: the exact file operations each one does on save ----

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}

fn vim_save(dir: &Path, name: &str, text: &str) {
    let file = dir.join(name);
    let swap = dir.join(format!(".{name}.swp"));
    write(&swap, "b0VIM 9.0");
    // The probe vim uses to learn whether it may create files in the directory.
    let probe = dir.join("4913");
    write(&probe, "");
    fs::remove_file(&probe).unwrap();
    let backup = dir.join(format!("{name}~"));
    let existed = file.exists();
    if existed {
        fs::rename(&file, &backup).unwrap();
    }
    write(&file, text);
    if existed {
        fs::remove_file(&backup).unwrap();
    }
    fs::remove_file(&swap).unwrap();
}

fn emacs_save(dir: &Path, name: &str, text: &str) {
    let file = dir.join(name);
    let lock = dir.join(format!(".#{name}"));
    let _ = std::os::unix::fs::symlink("someone@host.4242:1764000000", &lock);
    write(&dir.join(format!("#{name}#")), text);
    if file.exists() {
        fs::rename(&file, dir.join(format!("{name}~"))).unwrap();
    }
    write(&file, text);
    fs::remove_file(dir.join(format!("#{name}#"))).unwrap();
    let _ = fs::remove_file(&lock);
}

fn vscode_save(dir: &Path, name: &str, text: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(dir.join(name))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn jetbrains_save(dir: &Path, name: &str, text: &str) {
    let file = dir.join(name);
    let tmp = dir.join(format!("{name}___jb_tmp___"));
    let old = dir.join(format!("{name}___jb_old___"));
    write(&tmp, text);
    let existed = file.exists();
    if existed {
        fs::rename(&file, &old).unwrap();
    }
    fs::rename(&tmp, &file).unwrap();
    if existed {
        fs::remove_file(&old).unwrap();
    }
}

fn nano_save(dir: &Path, name: &str, text: &str) {
    let file = dir.join(name);
    if file.exists() {
        fs::copy(&file, dir.join(format!("{name}~"))).unwrap();
    }
    vscode_save(dir, name, text);
}

fn gedit_save(dir: &Path, name: &str, text: &str) {
    let file = dir.join(name);
    let tmp = dir.join(".goutputstream-Q1W2E3");
    write(&tmp, text);
    if file.exists() {
        fs::copy(&file, dir.join(format!("{name}~"))).unwrap();
    }
    fs::rename(&tmp, &file).unwrap();
}

type Save = fn(&Path, &str, &str);

const EDITORS: [(&str, Save); 6] = [
    ("vim", vim_save),
    ("emacs", emacs_save),
    ("vscode", vscode_save),
    ("jetbrains", jetbrains_save),
    ("nano", nano_save),
    ("gedit", gedit_save),
];

#[test]
fn each_editor_save_gives_exactly_one_reaction_per_saved_version() {
    let p = Project::new();
    let mut daemon = p.serve(&[], &[]);
    let dir = p.path("conflicts");
    for (editor, save) in EDITORS {
        let name = format!("{editor}.md");
        save(
            &dir,
            &name,
            "# Scoring disagrees\n\nDemand gen: 50. Pipeline: 70.\n",
        );
        p.sync();
        assert_eq!(
            reviews_of(&p.status_json(), &format!("conflicts/{name}")),
            1,
            "{editor}: first save"
        );
        save(
            &dir,
            &name,
            "# Scoring disagrees\n\nDemand gen: 50. Pipeline: 75 now.\n",
        );
        p.sync();
        assert_eq!(
            reviews_of(&p.status_json(), &format!("conflicts/{name}")),
            2,
            "{editor}: second save"
        );
        // Saved again without a change: not a new version.
        save(
            &dir,
            &name,
            "# Scoring disagrees\n\nDemand gen: 50. Pipeline: 75 now.\n",
        );
        p.sync();
        assert_eq!(
            reviews_of(&p.status_json(), &format!("conflicts/{name}")),
            2,
            "{editor}: unchanged re-save"
        );
    }
    // No temporary file of any editor became a conflict.
    let s = p.status_json();
    let conflicts: Vec<String> = s["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(conflicts.len(), EDITORS.len(), "{conflicts:?}");

    // explain: a file that triggered tasks, an ignored temp file, an unchanged re-save.
    let out = String::from_utf8(p.run(&["explain", "conflicts/vim.md"]).stdout).unwrap();
    assert!(out.contains("version 1"), "{out}");
    assert!(out.contains("for coordinator"), "{out}");
    assert!(out.contains("not a new version"), "{out}");
    let out = String::from_utf8(
        p.run(&["explain", "conflicts/jetbrains.md___jb_tmp___"])
            .stdout,
    )
    .unwrap();
    assert!(out.contains("ignored"), "{out}");
    let out = String::from_utf8(p.run(&["explain", "conflicts/.vim.md.swp"]).stdout).unwrap();
    assert!(out.contains("ignored"), "{out}");
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).status.success());
}

#[test]
fn a_conflict_saved_the_vim_way_is_decided_applied_and_closed() {
    let p = Project::new();
    let log = p.root().join("agent.log");
    let release = p.root().join("release");
    fs::write(&log, "").unwrap();
    let mut c = p.cmd();
    c.env("GTMD_TEST_LOG", &log)
        .env("GTMD_TEST_HOLD_STEP", "enablement-kit")
        .env("GTMD_TEST_RELEASE", &release)
        .args(["run", "--agent-command", &agent_cmd()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut daemon = Guard {
        child: Some(c.spawn().unwrap()),
    };
    wait_for(Duration::from_secs(10), "the daemon", || {
        (p.status_json()["daemon_running"] == true).then_some(())
    });
    // A run in progress (phase 2, forced past the missing phase-1 inputs),
    // held open by sales-enablement until the conflict is settled.
    let mut team = p.spawn(&[
        "team",
        "run",
        "--phase",
        "pipeline-building",
        "--config",
        "CONFIG.md",
        "--force",
    ]);
    wait_for(Duration::from_secs(20), "the run to start", || {
        fs::read_to_string(&log)
            .unwrap()
            .contains("step=enablement-kit")
            .then_some(())
    });
    vim_save(
        &p.path("conflicts"),
        "lead-scoring.md",
        "---\nraised_by: pipeline-manager\nagents: [demand-gen, pipeline-manager]\n---\n# MQL threshold\n\nDemand gen scores at 50, pipeline wants 70.\n",
    );
    let s = wait_for(Duration::from_secs(20), "the conflict to close", || {
        let s = p.status_json();
        let closed = s["conflicts"]
            .as_array()
            .and_then(|a| a.first())
            .is_some_and(|c| !c["closed_at"].is_null());
        closed.then_some(s)
    });
    assert_eq!(reviews_of(&s, "conflicts/lead-scoring.md"), 1);
    let applies = tasks_where(&s, |t| t["kind"]["kind"] == "apply-decision");
    let mut agents: Vec<&str> = applies
        .iter()
        .map(|t| t["agent"].as_str().unwrap())
        .collect();
    agents.sort();
    assert_eq!(agents, vec!["demand-generation", "pipeline-manager"]);
    assert_eq!(
        s["conflicts"][0]["closed_by"],
        "strategy/decisions/lead-scoring.md"
    );
    assert!(s["open_conflicts"].as_array().unwrap().is_empty());

    fs::write(&release, "").unwrap();
    let out = team.wait(Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = s["runs"][0]["id"].as_str().unwrap().to_string();
    let record = p.read(&format!("runs/{run}.md"));
    assert!(
        record.contains("conflict `conflicts/lead-scoring.md`"),
        "{record}"
    );
    assert!(record.contains("closed"), "{record}");
    assert!(
        record.contains("by strategy/decisions/lead-scoring.md"),
        "{record}"
    );
    assert!(
        record.contains("decision `strategy/decisions/lead-scoring.md`"),
        "{record}"
    );
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).status.success());
}

#[test]
fn decisions_in_labelled_lines_and_with_unknown_agents() {
    let p = Project::new();
    let mut daemon = p.serve(&[], &[]);
    p.write(
        "conflicts/budget.md",
        "# Budget split\n\nPaid social wants more.\n",
    );
    p.sync();
    p.write(
        "strategy/decisions/budget.md",
        "# Decision: keep the split\n\n**Resolves**: conflicts/budget.md\nAffected agents: demand-gen, cs\n",
    );
    p.sync();
    let s = p.status_json();
    let applies = tasks_where(&s, |t| t["kind"]["kind"] == "apply-decision");
    let mut agents: Vec<&str> = applies
        .iter()
        .map(|t| t["agent"].as_str().unwrap())
        .collect();
    agents.sort();
    assert_eq!(agents, vec!["customer-success", "demand-generation"]);

    p.write(
        "strategy/decisions/other.md",
        "Resolves: conflicts/budget.md\nAffected agents: growth-hacker\n",
    );
    p.sync();
    let s = p.status_json();
    let problems = tasks_where(&s, |t| t["kind"]["kind"] == "decision-problem");
    assert_eq!(problems.len(), 1);
    assert!(problems[0]["text"]
        .as_str()
        .unwrap()
        .contains("growth-hacker"));
    let text = String::from_utf8(p.run(&["status"]).stdout).unwrap();
    assert!(
        text.contains("strategy/decisions/other.md could not be fully read"),
        "{text}"
    );
    assert!(text.contains("conflicts/budget.md"), "{text}");
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).status.success());
}

#[test]
fn a_failing_command_is_retried_then_escalated() {
    let p = Project::new();
    let out = p.run(&[
        "agent",
        "run",
        "demand-gen",
        "--task",
        "Design the Q2 campaign",
        "--agent-command",
        "false",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed"), "{err}");
    let s = p.status_json();
    let first = tasks_where(&s, |t| t["agent"] == "demand-generation");
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0]["attempt"], 3,
        "two retries (the default), then given up"
    );
    let esc = tasks_where(&s, |t| t["kind"]["kind"] == "escalation");
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0]["agent"], "coordinator");
    assert!(esc[0]["text"]
        .as_str()
        .unwrap()
        .contains("failed after 3 attempt(s)"));
}

fn conflict_in(s: &serde_json::Value, path: &str) -> Option<serde_json::Value> {
    s["conflicts"]
        .as_array()?
        .iter()
        .find(|c| c["path"] == path)
        .cloned()
}

#[test]
fn a_conflict_saved_again_after_it_closed_closes_again_when_the_review_upholds_the_decision() {
    let p = Project::new();
    let log = p.root().join("agent.log");
    fs::write(&log, "").unwrap();
    let mut daemon = p.serve(
        &["--agent-command", &agent_cmd()],
        &[("GTMD_TEST_LOG", log.display().to_string())],
    );
    let path = "conflicts/pricing.md";
    let closed =
        |s: &serde_json::Value| conflict_in(s, path).is_some_and(|c| !c["closed_at"].is_null());
    vim_save(
        &p.path("conflicts"),
        "pricing.md",
        "# Pricing\n\nSales wants annual plans only.\n",
    );
    wait_for(Duration::from_secs(20), "the conflict to close", || {
        closed(&p.status_json()).then_some(())
    });
    // Saved once more, a line added: a second review, whose coordinator
    // writes the same decision again (no new decision version).
    vim_save(
        &p.path("conflicts"),
        "pricing.md",
        "# Pricing\n\nSales wants annual plans only.\nMarketing still wants monthly.\n",
    );
    let s = wait_for(
        Duration::from_secs(20),
        "the second review to close the conflict again",
        || {
            let s = p.status_json();
            (reviews_of(&s, path) == 2 && closed(&s)).then_some(s)
        },
    );
    let c = conflict_in(&s, path).unwrap();
    assert_eq!(c["closed_by"], "strategy/decisions/pricing.md");
    assert_eq!(c["versions"], 2);
    assert_eq!(
        tasks_where(&s, |t| t["kind"]["kind"] == "apply-decision").len(),
        2,
        "the upheld decision is not applied again"
    );
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).status.success());
}

#[test]
fn a_removed_conflict_is_withdrawn_and_open_again_when_its_file_comes_back() {
    let p = Project::new();
    let mut daemon = p.serve(&[], &[]);
    // The coordinator has no command: a's review waits in its inbox, b's
    // is queued behind it.
    p.write("conflicts/a.md", "# A\n\nOne view.\n");
    p.sync();
    p.write("conflicts/b.md", "# B\n\nAnother view.\n");
    p.sync();
    fs::remove_file(p.path("conflicts/b.md")).unwrap();
    let away = p.root().join("a.md.away");
    fs::rename(p.path("conflicts/a.md"), &away).unwrap();
    p.sync();

    let s = p.status_json();
    assert_eq!(s["open_conflicts"], serde_json::json!([]), "{s}");
    for path in ["conflicts/a.md", "conflicts/b.md"] {
        let c = conflict_in(&s, path).unwrap();
        assert_eq!(c["withdrawn"], true, "{c}");
        assert_eq!(c["closed_by"], "withdrawn: the file was removed", "{c}");
    }
    let review = |s: &serde_json::Value, path: &str| {
        tasks_where(s, |t| t["kind"]["conflict"] == path)
            .last()
            .cloned()
            .unwrap()
    };
    assert_eq!(
        review(&s, "conflicts/b.md")["state"]["outcome"]["outcome"],
        "cancelled"
    );
    assert_eq!(review(&s, "conflicts/a.md")["state"]["state"], "running");
    let text = String::from_utf8(p.run(&["status"]).stdout).unwrap();
    assert!(text.contains("open conflicts: 0"), "{text}");
    assert!(text.contains("withdrawn conflicts"), "{text}");
    assert!(text.contains("conflicts/b.md"), "{text}");
    let out = String::from_utf8(p.run(&["explain", "conflicts/b.md"]).stdout).unwrap();
    assert!(out.contains("withdrawn"), "{out}");

    // a renamed back unchanged: open again, reviewed already. b written anew:
    // a new version and its review.
    fs::rename(&away, p.path("conflicts/a.md")).unwrap();
    p.write("conflicts/b.md", "# B\n\nAnother view, and a third.\n");
    p.sync();
    let s = p.status_json();
    assert_eq!(
        s["open_conflicts"],
        serde_json::json!(["conflicts/a.md", "conflicts/b.md"]),
        "{s}"
    );
    assert_eq!(reviews_of(&s, "conflicts/a.md"), 1);
    assert_eq!(reviews_of(&s, "conflicts/b.md"), 2);
    assert_eq!(
        conflict_in(&s, "conflicts/a.md").unwrap()["withdrawn"],
        false
    );
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).status.success());
}

#[test]
fn a_status_with_phase_0_for_a_conflict_review_is_read_not_refused() {
    let p = Project::new();
    let mut daemon = p.serve(&[], &[]);
    p.write("conflicts/a.md", "# A\n\nOne view.\n");
    p.sync();
    let s = p.status_json();
    let review = tasks_where(&s, |t| t["kind"]["kind"] == "conflict-review")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.write(
        "status/coordinator.md",
        &format!(
            "agent: coordinator\nphase: 0\ntask_id: {review}\ntask: review the conflict\nstatus: blocked\nblockers:\n  - need the Q3 pricing data\n"
        ),
    );
    p.sync();
    let s = p.status_json();
    assert_eq!(s["rejected"], serde_json::json!([]), "{s}");
    let t = tasks_where(&s, |t| t["id"] == review.as_str())[0].clone();
    assert_eq!(t["state"]["state"], "blocked", "{t}");
    assert_eq!(
        t["blockers"],
        serde_json::json!(["need the Q3 pricing data"])
    );
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).status.success());
}
