//! The commands' own input and output: a workspace that is not there, a
//! `sync` with nobody to answer, output into a pipe whose reader has gone,
//! and `--config`/`--playbook`/agent files that are not regular files or
//! never end.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn status_on_a_missing_workspace_fails_saying_how_to_create_one() {
    let p = Project::new();
    for args in [
        &["status", "--workspace", "nowhere"][..],
        &["status", "--json", "--workspace", "nowhere"][..],
        &["explain", "conflicts/x.md", "--workspace", "nowhere"][..],
    ] {
        let out = p.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.contains("nowhere does not exist") && err.contains("gtmd init"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}

#[test]
fn sync_without_a_daemon_fails_at_once() {
    let p = Project::new();
    let t = Instant::now();
    let out = p.run(&["sync"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("no daemon is serving"),
        "{}",
        stderr(&out)
    );
    // The default timeout is 10 s; knowing there is no daemon takes no waiting.
    assert!(took < Duration::from_secs(3), "sync took {took:?}");
    // No cookie is left behind for a later daemon to find.
    let left: Vec<_> = std::fs::read_dir(p.ws())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".gtmd-sync-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // With a daemon it still answers.
    let _g = p.serve(&[], &[]);
    p.sync();
}
