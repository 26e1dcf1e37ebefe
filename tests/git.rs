//! The guide's git strategy: `gtmd check-commit-msg` and commits by gtmd (`--git`).

mod common;

use common::*;

#[test]
fn check_commit_msg_accepts_the_convention_and_explains_refusals() {
    let p = Project::new();
    let msg = p.root().join("MSG");
    std::fs::write(
        &msg,
        "[demand-gen] campaign: create Google Ads search campaign\n\nWhy: the plan.\n# Please enter the commit message\n",
    )
    .unwrap();
    let out = p.run(&["check-commit-msg", msg.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");

    std::fs::write(&msg, "[marketing] stuff: did things\n").unwrap();
    let out = p.run(&["check-commit-msg", msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown agent \"marketing\""), "{err}");
    assert!(err.contains("[agent] action: brief description"), "{err}");
}

/// Phase 4 alone (forced, no earlier phases), with the scripted agent; the
/// growth analyst writes `unit_economics` as analytics/unit-economics.md.
/// Returns the prompt of the strategy-refinement task, as the agent kept it
/// (gtmd removes a task's prompt once the task has ended).
fn run_analysis(p: &Project, unit_economics: &str) -> String {
    let log = p.root().join("agent.log");
    let prompts = p.root().join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    std::fs::write(&log, "").unwrap();
    let agent = format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("agent.sh").display()
    );
    let mut c = p.cmd();
    c.env("GTMD_TEST_LOG", &log)
        .env("GTMD_TEST_UNIT_ECONOMICS", unit_economics)
        .env("GTMD_TEST_KEEP_PROMPTS", &prompts)
        .args([
            "team",
            "run",
            "--phase",
            "analysis",
            "--force",
            "--config",
            "CONFIG.md",
            "--agent-command",
            &agent,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut g = Guard {
        child: Some(c.spawn().unwrap()),
    };
    let out = g.wait(std::time::Duration::from_secs(60));
    assert!(
        out.status.success(),
        "team run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prompt = find_file(&prompts, "-strategy-refinement.md")
        .expect("a prompt file for the strategy-refinement task");
    std::fs::read_to_string(prompt).unwrap()
}

#[test]
fn the_refinement_task_gets_the_iterate_or_restart_recommendation() {
    // CONFIG.md's template: Target CAC $1,500, payback 12 months.
    let p = Project::new();
    let prompt = run_analysis(
        &p,
        "| Month | CAC | LTV | Payback (months) |\n|---|---|---|---|\n| Jan | $4,500 | $9,000 | 30 |\n| Feb | $4,700 | $9,000 | 31 |\n| Mar | $4,800 | $9,000 | 32 |",
    );
    assert!(prompt.contains("RESTART"), "{prompt}");
    assert!(prompt.contains("new-market"), "{prompt}");
    assert!(prompt.contains("3.2x"), "{prompt}");

    let p = Project::new();
    let prompt = run_analysis(&p, "| Month | CAC |\n|---|---|\n| Jan | lots |");
    assert!(prompt.contains("recommends nothing"), "{prompt}");
    assert!(prompt.contains("\"lots\""), "{prompt}");
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `team run --phase strategy --git` with the scripted agent; returns stderr.
fn run_strategy_with_git(p: &Project) -> String {
    let log = p.root().join("agent.log");
    std::fs::write(&log, "").unwrap();
    let agent = format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("agent.sh").display()
    );
    let mut c = p.cmd();
    c.env("GTMD_TEST_LOG", &log)
        .args([
            "team",
            "run",
            "--phase",
            "strategy",
            "--config",
            "CONFIG.md",
            "--git",
            "--agent-command",
            &agent,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut g = Guard {
        child: Some(c.spawn().unwrap()),
    };
    let out = g.wait(std::time::Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "team run failed: {stderr}");
    stderr
}

#[test]
fn git_commits_one_task_at_a_time_on_the_phase_branch() {
    let p = Project::new();
    let root = p.root();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["config", "user.name", "Test"]);
    git(root, &["config", "user.email", "test@example.com"]);
    git(root, &["config", "commit.gpgsign", "false"]);
    git(root, &["add", "CONFIG.md"]);
    git(
        root,
        &["commit", "-q", "-m", "[coordinator] strategy: the config"],
    );
    // Every commit gtmd makes goes through the convention's hook too.
    let hook = root.join(".git/hooks/commit-msg");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\nexec '{}' check-commit-msg \"$1\"\n", gtmd_bin()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let stderr = run_strategy_with_git(&p);

    assert_eq!(
        git(root, &["symbolic-ref", "--short", "HEAD"]),
        "gtm/phase-1-strategy",
        "{stderr}"
    );
    // The branch starts at main's HEAD: nothing rewritten.
    let base = git(root, &["rev-parse", "main"]);
    assert_eq!(git(root, &["merge-base", "main", "HEAD"]), base);
    let shas = git(root, &["rev-list", "--reverse", "main..HEAD"]);
    let shas: Vec<&str> = shas.lines().collect();
    // One commit per task completed by a status: the three steps of phase 1
    // (the scripted coordinator ticks the gate without writing a status).
    let expected = [
        (
            "coordinator",
            "strategy",
            "gtm-strategy",
            "workspace/strategy/",
        ),
        (
            "brand-messaging",
            "messaging",
            "messaging-framework",
            "workspace/messaging/",
        ),
        (
            "growth-analyst",
            "analysis",
            "analytics-foundation",
            "workspace/analytics/",
        ),
    ];
    assert_eq!(shas.len(), expected.len(), "{shas:?}\n{stderr}");
    let msg_file = root.join("MSG");
    for (sha, (agent, action, step, dir)) in shas.iter().zip(expected) {
        let msg = git(root, &["log", "-1", "--format=%B", sha]);
        assert_eq!(msg, format!("[{agent}] {action}: {step}"));
        std::fs::write(&msg_file, &msg).unwrap();
        let out = p.run(&["check-commit-msg", msg_file.to_str().unwrap()]);
        assert!(out.status.success(), "{msg}: {out:?}");
        let files = git(
            root,
            &["diff-tree", "--no-commit-id", "--name-only", "-r", sha],
        );
        let status = format!("workspace/status/{agent}.md");
        assert!(files.lines().any(|f| f == status), "{sha}: {files}");
        for f in files.lines() {
            assert!(
                f == status || f.starts_with(dir),
                "{msg} touched {f}, not one of its task's files"
            );
        }
    }
    // Nothing else was committed: gtmd's state, the run record and the gate
    // file are still untracked.
    let tracked = git(root, &["ls-files"]);
    assert!(!tracked.contains(".gtmd"), "{tracked}");
    assert!(!tracked.contains("workspace/runs/"), "{tracked}");
    assert!(!tracked.contains("workspace/strategy/gates/"), "{tracked}");
}

#[test]
fn git_outside_a_repository_says_so_once_and_runs_anyway() {
    let p = Project::new();
    let stderr = run_strategy_with_git(&p);
    assert_eq!(
        stderr.matches("not in a git repository").count(),
        1,
        "{stderr}"
    );
    assert!(p.path("analytics/kpi-definitions.md").exists());
}
