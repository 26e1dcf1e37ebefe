//! The feed the daemon keeps for clients (`STATE/feed.json`): followers of a
//! run read it instead of replaying the journal every 200 ms.

mod common;

use common::*;
use std::time::Duration;

fn feed(p: &Project) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(p.path(".gtmd/feed.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[test]
fn the_feed_follows_open_tasks_and_runs_as_they_change() {
    let p = Project::new();
    // No agent command: tasks go to the inbox and stay open.
    let _g = p.serve(&[], &[]);
    p.write("conflicts/tone.md", "# Tone of voice\n");
    wait_for(Duration::from_secs(20), "the review in the feed", || {
        let f = feed(&p)?;
        let open = f["open_tasks"].as_array()?;
        open.iter()
            .any(|t| t[0] == "t0001-conflict-review" && t[1] == "coordinator")
            .then_some(())
    });
    // A run handed to the daemon is followed to its refusal through it.
    let out = p.run(&[
        "team",
        "run",
        "--phase",
        "execution",
        "--config",
        "CONFIG.md",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run refused"), "{err}");
    let f = feed(&p).unwrap();
    assert!(
        f["refused"][0][1]
            .as_str()
            .is_some_and(|why| why.contains("inputs from earlier phases are missing")),
        "{f}"
    );
}
