//! Never lose, never repeat: restarts, SIGKILL at random moments, bursts,
//! lost watcher events, and stray agents after a crash.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

/// Coordinator reviews per conflict path, from the journal.
fn reviews(p: &Project) -> BTreeMap<String, usize> {
    let s = p.status_json();
    let mut m = BTreeMap::new();
    for t in s["tasks"].as_array().unwrap() {
        if t["kind"]["kind"] == "conflict-review" {
            *m.entry(t["kind"]["conflict"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    m
}

fn stop(mut g: Guard) {
    g.signal(libc::SIGTERM);
    let out = g.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn conflict(i: usize, v: usize) -> String {
    format!("# Conflict {i}\n\nVersion {v}: the numbers disagree.\n")
}

#[test]
fn a_restart_acts_on_exactly_what_changed_while_down() {
    let p = Project::new();
    p.write("conflicts/a.md", &conflict(1, 1));
    p.write("conflicts/b.md", &conflict(2, 1));
    for i in 0..200 {
        p.write(&format!("demand-gen/campaigns/c{i}.md"), "campaign");
    }
    let g = p.serve(&[], &[]);
    p.sync();
    stop(g);
    let journal = p.path(".gtmd/journal.jsonl");
    let lines_before = fs::read_to_string(&journal).unwrap().lines().count();

    p.write("conflicts/b.md", &conflict(2, 2)); // changed
    p.write("conflicts/c.md", &conflict(3, 1)); // new
                                                // touched, same content: not a change
    p.write("conflicts/a.md", &conflict(1, 1));
    let g = p.serve(&[], &[]);
    p.sync();
    let r = reviews(&p);
    assert_eq!(r["conflicts/a.md"], 1);
    assert_eq!(r["conflicts/b.md"], 2);
    assert_eq!(r["conflicts/c.md"], 1);
    let new_lines = fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .skip(lines_before)
        .filter(|l| l.contains("\"event\":\"file-"))
        .count();
    // Two new versions, the touched file's new mtime, and nothing for the
    // 200 unchanged files.
    assert!(
        new_lines <= 4,
        "{new_lines} file entries in the journal for 2 changes"
    );
    stop(g);
    // The touched file's new mtime is recorded, so the next start can trust
    // size and mtime instead of reading it again.
    let touched = fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"file-touched\"") && l.contains("conflicts/a.md"))
        .count();
    assert_eq!(touched, 1);
}

#[test]
fn sigkill_at_random_moments_loses_and_repeats_no_reaction() {
    let p = Project::new();
    let log = p.root().join("agent.log");
    fs::write(&log, "").unwrap();
    let agent = format!("{} {{task_id}}", fixture("slow-agent.sh").display());
    let envs = [("GTMD_TEST_LOG", log.display().to_string())];
    let stop_writer = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Files keep arriving, in place and by rename, through every kill.
    let writer = {
        let dir = p.path("conflicts");
        let stop = stop_writer.clone();
        std::thread::spawn(move || {
            let mut written = BTreeMap::new();
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("c{}.md", i % 150);
                let v = written.entry(name.clone()).or_insert(0usize);
                *v += 1;
                let text = conflict(i % 150, *v);
                if i.is_multiple_of(2) {
                    fs::write(dir.join(&name), text).unwrap();
                } else {
                    let tmp = dir.join(format!(".{name}.tmp"));
                    fs::write(&tmp, text).unwrap();
                    fs::rename(&tmp, dir.join(&name)).unwrap();
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(7));
            }
            written
        })
    };
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..30 {
        let mut c = p.cmd();
        c.args(["run", "--agent-command", &agent]);
        for (k, v) in &envs {
            c.env(k, v);
        }
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut g = Guard {
            child: Some(c.spawn().unwrap()),
        };
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 300));
        g.signal(libc::SIGKILL);
        let _ = g.wait(Duration::from_secs(10));
    }
    stop_writer.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    let g = p.serve(&["--agent-command", &agent], &envs);
    p.sync();
    let r = reviews(&p);
    for (name, versions) in &written {
        let path = format!("conflicts/{name}");
        // Every version acted on once. A version overwritten while gtmd was
        // down before it saw it is never seen: fewer reviews, never more.
        let got = r.get(&path).copied().unwrap_or(0);
        assert!(got >= 1, "{path}: no review at all");
        assert!(
            got <= *versions,
            "{path}: {got} reviews for {versions} versions"
        );
    }
    // No version reviewed twice: the journal's review tasks name distinct versions.
    let s = p.status_json();
    let mut per_version = BTreeMap::new();
    for t in s["tasks"].as_array().unwrap() {
        if t["kind"]["kind"] == "conflict-review" {
            let key = (
                t["kind"]["conflict"].as_str().unwrap().to_string(),
                t["text"].as_str().unwrap().to_string(),
            );
            *per_version.entry(key).or_insert(0) += 1;
        }
    }
    assert!(
        per_version.values().all(|n| *n == 1),
        "a version reviewed twice: {per_version:?}"
    );
    let total: usize = written.values().sum();
    eprintln!(
        "{total} versions written, {} reviews",
        r.values().sum::<usize>()
    );
    stop(g);
}

#[test]
fn ten_thousand_files_dropped_at_once_none_lost_none_doubled() {
    let p = Project::new();
    let g = p.serve(&[], &[]);
    let dir = p.path("conflicts");
    let t = Instant::now();
    for i in 0..10_000 {
        fs::write(dir.join(format!("burst-{i}.md")), conflict(i, 1)).unwrap();
    }
    let written = t.elapsed();
    p.sync();
    let r = reviews(&p);
    eprintln!(
        "10,000 files written in {written:?}, all handled after {:?}",
        t.elapsed()
    );
    assert_eq!(r.len(), 10_000, "lost some");
    assert!(r.values().all(|n| *n == 1), "doubled some");
    stop(g);
}

#[test]
fn lost_watcher_events_are_recovered_by_a_rescan() {
    let p = Project::new();
    // Keep only every 7th event between the kernel and gtmd.
    let g = p.serve(&[], &[("GTMD_DEBUG_DROP_EVENTS", "7".into())]);
    let dir = p.path("conflicts");
    for i in 0..500 {
        fs::write(dir.join(format!("lossy-{i}.md")), conflict(i, 1)).unwrap();
    }
    // sync's own cookie may be among the dropped events; the rescan finds the files anyway.
    wait_for(Duration::from_secs(30), "every file to be reviewed", || {
        let r = reviews(&p);
        (r.len() == 500).then_some(r)
    });
    let r = reviews(&p);
    assert!(r.values().all(|n| *n == 1), "doubled some");
    stop(g);
}

/// With the kernel's queue lowered to 256 events (where this machine lets
/// the test change it), a burst overflows inotify for real.
#[test]
fn a_real_inotify_overflow_loses_nothing() {
    const KNOB: &str = "/proc/sys/fs/inotify/max_queued_events";
    let Ok(old) = fs::read_to_string(KNOB) else {
        eprintln!("skipped: {KNOB} is not readable here");
        return;
    };
    if fs::write(KNOB, "256").is_err() {
        eprintln!("skipped: {KNOB} cannot be changed here");
        return;
    }
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = fs::write(KNOB, self.0.trim());
        }
    }
    let restore = Restore(old);
    let p = Project::new();
    let g = p.serve(&[], &[]);
    // The daemon's inotify instance was created with the low limit; restore
    // it for everyone else right away.
    drop(restore);
    let dir = p.path("conflicts");
    for i in 0..3000 {
        fs::write(dir.join(format!("of-{i}.md")), conflict(i, 1)).unwrap();
    }
    wait_for(Duration::from_secs(60), "every file to be reviewed", || {
        let r = reviews(&p);
        (r.len() == 3000).then_some(())
    });
    assert!(reviews(&p).values().all(|n| *n == 1));
    stop(g);
}

#[test]
fn a_restart_after_sigkill_leaves_no_stray_agent() {
    let p = Project::new();
    let log = p.root().join("agent.log");
    let pids = p.root().join("pids");
    fs::write(&log, "").unwrap();
    let agent = format!("{} {{task_id}}", fixture("slow-agent.sh").display());
    let envs = [
        ("GTMD_TEST_LOG", log.display().to_string()),
        ("GTMD_TEST_GRANDCHILD", pids.display().to_string()),
    ];
    let mut g = p.serve(&["--agent-command", &agent], &envs);
    p.write("conflicts/x.md", &conflict(1, 1));
    let (grandchild, child) = wait_for(
        Duration::from_secs(20),
        "the agent to start its child",
        || {
            let text = fs::read_to_string(&pids).ok()?;
            let mut it = text.split_whitespace();
            Some((
                it.next()?.parse::<i32>().ok()?,
                it.next()?.parse::<i32>().ok()?,
            ))
        },
    );
    g.signal(libc::SIGKILL);
    let _ = g.wait(Duration::from_secs(10));
    let alive = |pid: i32| unsafe { libc::kill(pid, 0) == 0 };
    // The agent itself dies with gtmd (parent-death signal).
    wait_for(
        Duration::from_secs(10),
        "the agent to die with gtmd",
        || (!alive(child)).then_some(()),
    );
    // Its own child is cleaned up by the next gtmd.
    let g = p.serve(&["--agent-command", &agent], &envs);
    wait_for(Duration::from_secs(10), "the stray to be killed", || {
        (!alive(grandchild)).then_some(())
    });
    stop(g);
    // The restarted gtmd ran the interrupted task again; kill what it started.
    if let Ok(text) = fs::read_to_string(&pids) {
        for pid in text
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn directories_arriving_with_files_in_them_lose_none() {
    let p = Project::new();
    let g = p.serve(&[], &[]);
    // mkdir -p and write at once, deep.
    let deep = p.path("conflicts/q3/west/urgent");
    fs::create_dir_all(&deep).unwrap();
    for i in 0..20 {
        fs::write(deep.join(format!("d{i}.md")), conflict(i, 1)).unwrap();
    }
    // mv of a whole folder prepared outside the workspace.
    let outside = p.root().join("prepared");
    fs::create_dir_all(outside.join("inner")).unwrap();
    for i in 0..20 {
        fs::write(
            outside.join("inner").join(format!("m{i}.md")),
            conflict(100 + i, 1),
        )
        .unwrap();
    }
    fs::rename(&outside, p.path("conflicts/moved")).unwrap();
    p.sync();
    let r = reviews(&p);
    assert_eq!(r.len(), 40, "{r:?}");
    assert!(r.values().all(|n| *n == 1));
    stop(g);
}

#[test]
fn the_workspace_deleted_and_recreated_is_still_watched() {
    let p = Project::new();
    // The state lives outside the workspace, which is about to be deleted.
    let mut c = p.cmd();
    c.args(["run", "--state-dir", "state"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let g = Guard {
        child: Some(c.spawn().unwrap()),
    };
    let status = || -> serde_json::Value {
        serde_json::from_slice(&p.run(&["status", "--json", "--state-dir", "state"]).stdout)
            .unwrap()
    };
    wait_for(Duration::from_secs(20), "the daemon", || {
        (status()["daemon_running"] == true).then_some(())
    });
    p.write("conflicts/before.md", &conflict(1, 1));
    assert!(p.run(&["sync", "--state-dir", "state"]).status.success());
    // gtmd may remove its cookie files during the walk: retry until it is gone.
    wait_for(
        Duration::from_secs(5),
        "the workspace to be deleted",
        || fs::remove_dir_all(p.ws()).ok(),
    );
    fs::create_dir_all(p.path("conflicts")).unwrap();
    // Written once the new directory is watched again (gtmd checks every second).
    let r = wait_for(
        Duration::from_secs(20),
        "the new workspace to be watched",
        || {
            let name = format!("after-{}.md", Instant::now().elapsed().as_nanos());
            p.write(&format!("conflicts/{name}"), &conflict(2, 1));
            let out = p.run(&["sync", "--timeout", "1", "--state-dir", "state"]);
            out.status.success().then(status)
        },
    );
    let after = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["kind"]["conflict"]
                .as_str()
                .is_some_and(|c| c.starts_with("conflicts/after-"))
        })
        .count();
    assert!(after >= 1, "{r}");
    stop(g);
}

#[test]
fn a_compacted_journal_still_acts_once_across_restarts() {
    let p = Project::new();
    let envs = [("GTMD_COMPACT_EVERY", "50".to_string())];
    let g = p.serve(&[], &envs);
    for i in 0..300 {
        p.write(&format!("conflicts/k{i}.md"), &conflict(i, 1));
    }
    p.sync();
    stop(g);
    assert!(
        p.path(".gtmd/snapshot.json").exists(),
        "no snapshot was written"
    );
    assert!(
        !p.path(".gtmd/journal.jsonl").exists(),
        "the first journal was not replaced"
    );
    // Changed while down: 10 new versions, the rest untouched.
    for i in 0..10 {
        p.write(&format!("conflicts/k{i}.md"), &conflict(i, 2));
    }
    let g = p.serve(&[], &envs);
    p.sync();
    let r = reviews(&p);
    assert_eq!(r.len(), 300);
    for i in 0..300 {
        let want = if i < 10 { 2 } else { 1 };
        assert_eq!(r[&format!("conflicts/k{i}.md")], want, "k{i}");
    }
    stop(g);
}
