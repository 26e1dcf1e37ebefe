//! Files on the bus that are not what a protocol file can be: a name that is
//! not UTF-8, a FIFO or a socket where a conflict should be, a symlink to a
//! FIFO. Each is refused by name (in the log, `gtmd status` and `gtmd
//! check`), once, and none of them can stall the daemon.

mod common;

use common::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// `conflicts/bad\xff\xfename.md` as gtmd shows it.
const BAD_NAME: &str = "conflicts/bad\u{FFFD}\u{FFFD}name.md";

fn bad_name_path(p: &Project) -> std::path::PathBuf {
    p.path("conflicts")
        .join(OsStr::from_bytes(b"bad\xff\xfename.md"))
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path the test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn rejected(p: &Project) -> Vec<(String, String)> {
    p.status_json()["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Journal lines that mention `needle` (every generation).
fn journal_lines(p: &Project, needle: &str) -> usize {
    std::fs::read_dir(p.path(".gtmd"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .filter(|l| l.contains(needle))
                .count()
        })
        .sum()
}

fn run_daemon(p: &Project) -> (Guard, LogTail) {
    let mut g = p.spawn(&["run"]);
    let log = g.tail_stderr();
    log.wait_for("ready: watching the workspace", 0, Duration::from_secs(20));
    (g, log)
}

fn stop(mut g: Guard) {
    g.signal(libc::SIGTERM);
    let out = g.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_conflict_named_in_bytes_that_are_not_utf8_is_refused_by_name_once() {
    let p = Project::new();
    let (g, log) = run_daemon(&p);
    std::fs::write(bad_name_path(&p), "# Pricing\n\nWho decides?\n").unwrap();
    // Outside the protocol directories such a name is no business of gtmd's.
    std::fs::create_dir_all(p.path("messaging")).unwrap();
    std::fs::write(
        p.path("messaging").join(OsStr::from_bytes(b"draft\xff.md")),
        "notes\n",
    )
    .unwrap();
    p.sync();
    log.wait_for(
        &format!("refused: {BAD_NAME}: the file name is not UTF-8"),
        0,
        Duration::from_secs(10),
    );
    let r = rejected(&p);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, BAD_NAME);
    assert!(r[0].1.contains("rename it"), "{r:?}");
    let s = p.status_json();
    assert_eq!(s["open_tasks"].as_array().unwrap().len(), 0, "{s:#}");
    let text = String::from_utf8_lossy(&p.run(&["status"]).stdout).into_owned();
    assert!(
        text.contains(&format!(
            "refused files: 1\n  {BAD_NAME}: the file name is not UTF-8"
        )),
        "{text}"
    );
    // The journal holds it by its lossy name, as valid JSON lines (status
    // above replayed them); a restart's scan does not refuse it again.
    assert_eq!(journal_lines(&p, BAD_NAME), 1);
    stop(g);
    let (g, log) = run_daemon(&p);
    p.sync();
    assert_eq!(journal_lines(&p, BAD_NAME), 1);
    assert!(!log.text().contains("refused"), "{}", log.text());
    // A new version of it is refused again, once.
    std::fs::write(bad_name_path(&p), "# Pricing\n\nWho decides? Soon.\n").unwrap();
    p.sync();
    log.wait_for("refused: ", 0, Duration::from_secs(10));
    assert_eq!(journal_lines(&p, BAD_NAME), 2);
    // Renamed to a UTF-8 name, it is a conflict like any other.
    std::fs::rename(bad_name_path(&p), p.path("conflicts/pricing.md")).unwrap();
    p.sync();
    let s = p.status_json();
    assert!(
        s["open_tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["trigger"] == "conflict: conflicts/pricing.md"),
        "{s:#}"
    );
    stop(g);
}

#[test]
fn fifos_and_sockets_in_protocol_directories_are_refused_and_never_read() {
    let p = Project::new();
    let (g, log) = run_daemon(&p);
    mkfifo(&p.path("conflicts/x.md"));
    let _sock = std::os::unix::net::UnixListener::bind(p.path("conflicts/sock.md")).unwrap();
    // A symlink to a FIFO: refused where it is a protocol file; elsewhere
    // ignored. Following either must not block the daemon.
    std::fs::create_dir_all(p.path("pipes")).unwrap();
    mkfifo(&p.path("pipes/p"));
    std::os::unix::fs::symlink("../pipes/p", p.path("conflicts/link.md")).unwrap();
    std::os::unix::fs::symlink("../pipes/p", p.path("messaging/link.md")).unwrap();
    p.sync();
    wait_for(Duration::from_secs(10), "three refusals", || {
        (rejected(&p).len() == 3).then_some(())
    });
    let mut r = rejected(&p);
    r.sort();
    assert_eq!(r[0].0, "conflicts/link.md");
    assert!(
        r[0].1
            .starts_with("is a FIFO (named pipe), not a regular file"),
        "{r:?}"
    );
    assert_eq!(r[1].0, "conflicts/sock.md");
    assert!(
        r[1].1.starts_with("is a socket, not a regular file"),
        "{r:?}"
    );
    assert_eq!(r[2].0, "conflicts/x.md");
    assert!(
        r[2].1
            .starts_with("is a FIFO (named pipe), not a regular file"),
        "{r:?}"
    );
    for path in ["conflicts/x.md", "conflicts/sock.md", "conflicts/link.md"] {
        log.wait_for(
            &format!("refused: {path}: is a"),
            0,
            Duration::from_secs(10),
        );
    }
    // Still answering, and a rescan (the restart's) refuses nothing again.
    stop(g);
    let (g, log) = run_daemon(&p);
    p.sync();
    assert!(!log.text().contains("refused"), "{}", log.text());
    assert_eq!(journal_lines(&p, "conflicts/x.md"), 1);
    // `gtmd check` names them too, without reading them.
    let out = p.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("conflicts/x.md: is a FIFO"), "{text}");
    assert!(text.contains("conflicts/sock.md: is a socket"), "{text}");
    stop(g);
}
