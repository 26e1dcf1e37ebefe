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
fn run_analysis(p: &Project, unit_economics: &str) -> String {
    let log = p.root().join("agent.log");
    std::fs::write(&log, "").unwrap();
    let agent = format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("agent.sh").display()
    );
    let mut c = p.cmd();
    c.env("GTMD_TEST_LOG", &log)
        .env("GTMD_TEST_UNIT_ECONOMICS", unit_economics)
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
    let prompt = find_file(&p.ws().join(".gtmd/tasks"), "-strategy-refinement.md")
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
