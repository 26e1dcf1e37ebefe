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
