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

/// The write end of a pipe whose read end is already closed: every write to
/// it fails with EPIPE, as once `| head -1` has read its line and exited.
fn closed_pipe() -> std::process::Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) into an array we own; the read end is closed at once
    // and the write end is owned by the returned Stdio.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        libc::close(fds[0]);
        std::process::Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

#[test]
fn output_into_a_closed_pipe_ends_the_command_quietly() {
    let p = Project::new();
    p.write("conflicts/x.md", "# x\n");
    for args in [
        &["status"][..],
        &["status", "--json"][..],
        &["explain", "conflicts/x.md"][..],
        &["check"][..],
        &["init", "again"][..],
    ] {
        let out = p
            .cmd()
            .args(args)
            .stdout(closed_pipe())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_run_followed_through_a_closed_pipe_ends_quietly() {
    let p = Project::new();
    // Handed to a daemon: the follower goes, the daemon keeps the run.
    {
        let _daemon = p.serve(&[], &[]);
        let mut follow = Guard {
            child: Some(
                p.cmd()
                    .args(["agent", "run", "growth-analyst", "--task", "look"])
                    .stdout(closed_pipe())
                    .stderr(closed_pipe())
                    .spawn()
                    .unwrap(),
            ),
        };
        let out = follow.wait(Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        wait_for(
            Duration::from_secs(20),
            "the daemon's task for the run",
            || {
                let s = p.status_json();
                s["open_tasks"]
                    .as_array()?
                    .iter()
                    .any(|t| t["agent"] == "growth-analyst" && t["text"] == "look")
                    .then_some(())
            },
        );
    }
    // In the foreground: the run stops as on Ctrl-C (141, as after SIGPIPE),
    // its task left open to resume at the next start.
    let p = Project::new();
    let mut fg = Guard {
        child: Some(
            p.cmd()
                .args(["agent", "run", "growth-analyst", "--task", "look"])
                .stdout(closed_pipe())
                .stderr(closed_pipe())
                .spawn()
                .unwrap(),
        ),
    };
    let out = fg.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    let s = p.status_json();
    assert_eq!(s["daemon_running"], false, "{s:#}");
    assert_eq!(s["open_tasks"].as_array().unwrap().len(), 1, "{s:#}");
}

#[test]
fn the_daemon_logging_into_a_closed_pipe_goes_on() {
    let p = Project::new();
    let mut gtmd = Guard {
        child: Some(
            p.cmd()
                .arg("run")
                .stdout(closed_pipe())
                .stderr(closed_pipe())
                .spawn()
                .unwrap(),
        ),
    };
    wait_for(Duration::from_secs(20), "the daemon to start", || {
        (p.status_json()["daemon_running"] == true).then_some(())
    });
    // Each reaction is logged at info: many writes into the closed pipe.
    for i in 0..5 {
        p.write(&format!("conflicts/c{i}.md"), &format!("# conflict {i}\n"));
        p.sync();
    }
    let s = p.status_json();
    assert_eq!(s["open_tasks"].as_array().unwrap().len(), 5, "{s:#}");
    gtmd.signal(libc::SIGTERM);
    let out = gtmd.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path the test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Run gtmd with `args`, which must fail within 10 s (a FIFO nobody writes
/// would block a plain read for ever; /dev/zero would grow it without end).
fn fails_at_once(p: &Project, args: &[&str]) -> String {
    let mut g = p.spawn(args);
    let out = g.wait(Duration::from_secs(10));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
    text
}

#[test]
fn a_config_playbook_or_agent_file_that_is_no_regular_file_is_refused_at_once() {
    let p = Project::new();
    let fifo = p.root().join("config-fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    for (file, what) in [
        (fifo, "is a FIFO (named pipe), not a regular file"),
        ("/dev/zero", "is a character device, not a regular file"),
        ("agents", "is a directory, not a regular file"),
    ] {
        for args in [
            &["check", "--config", file][..],
            &["team", "run", "--phases", "all", "--config", file][..],
            &["status", "--playbook", file][..],
        ] {
            let text = fails_at_once(&p, args);
            assert!(
                text.contains(&format!("{file}: the ")) && text.contains(what),
                "{args:?}: {text}"
            );
        }
    }
    // An agent definition that is a FIFO: named, not waited for.
    let agent = p.root().join("agents/coordinator.md");
    std::fs::remove_file(&agent).unwrap();
    mkfifo(&agent);
    for args in [&["check"][..], &["status"][..]] {
        let text = fails_at_once(&p, args);
        assert!(
            text.contains("agents/coordinator.md: the agent definition is a FIFO"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn a_config_over_the_size_limit_is_refused() {
    let p = Project::new();
    let text = fails_at_once(
        &p,
        &["check", "--config", "CONFIG.md", "--max-file-size", "64"],
    );
    assert!(
        text.contains("CONFIG.md: the config is larger than 64 bytes"),
        "{text}"
    );
}
