//! `gtmd run --daemon --pid-file F`: the parent returns once the background
//! gtmd is ready, the pid file names it, a second start is refused, SIGTERM
//! removes the pid file, and a stale pid file is replaced.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Start `gtmd run --daemon` and wait for the parent to return.
fn start(p: &Project) -> std::process::Output {
    let mut parent = p.spawn(&["run", "--daemon", "--pid-file", "run/gtmd.pid"]);
    parent.wait(Duration::from_secs(30))
}

fn stop(p: &Project, pid: i32) {
    // SAFETY: kill(2) on the gtmd this test started.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let pid_file = p.root().join("run/gtmd.pid");
    wait_for(
        Duration::from_secs(20),
        "gtmd to exit and remove its pid file",
        || (!pid_alive(pid) && !pid_file.exists()).then_some(()),
    );
}

#[test]
fn a_daemon_runs_in_the_background_with_a_pid_file_and_refuses_a_second_start() {
    let p = Project::new();
    let pid_file = p.root().join("run/gtmd.pid");
    let out = start(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = read_pid(&pid_file).expect("a pid in the pid file");
    let _guard = PidGuard(pid);
    assert!(pid_alive(pid), "pid {pid} from the pid file is not running");
    assert!(
        stderr(&out).contains("in the background, pid"),
        "{}",
        stderr(&out)
    );

    // A daemon: / as working directory, the umask set, the log in the state
    // directory.
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, std::path::Path::new("/"));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Umask:\t0007"), "{status}");
    // Its own session (the double fork leaves it no controlling terminal).
    // SAFETY: getsid(2) only reads.
    let (sid, ours) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    assert!(sid > 0 && sid != ours, "session {sid}, ours {ours}");
    let log = fs::read_to_string(p.ws().join(".gtmd/gtmd.log")).unwrap();
    assert!(log.contains("ready: watching the workspace"), "{log}");
    assert!(p.status_json()["daemon_running"].as_bool().unwrap());

    // A second start is refused, naming the live gtmd and the pid file.
    let again = start(&p);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    let err = stderr(&again);
    assert!(
        err.contains(&format!("another gtmd (pid {pid})")) && err.contains("gtmd.pid"),
        "{err}"
    );
    assert_eq!(read_pid(&pid_file), Some(pid), "the pid file was touched");
    assert!(pid_alive(pid));

    // SIGTERM: it stops and removes its pid file.
    stop(&p, pid);
}

#[test]
fn a_stale_pid_file_from_a_dead_process_is_replaced() {
    let p = Project::new();
    let pid_file = p.root().join("run/gtmd.pid");
    fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
    // A pid that existed and is gone: a child that has been waited for.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id() as i32;
    dead.wait().unwrap();
    fs::write(&pid_file, format!("{dead_pid}\n")).unwrap();
    let out = start(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("stale pid file"), "{}", stderr(&out));
    let pid = read_pid(&pid_file).unwrap();
    let _guard = PidGuard(pid);
    assert_ne!(pid, dead_pid);
    assert!(pid_alive(pid));
    stop(&p, pid);
}

#[test]
fn a_daemon_that_cannot_start_says_why_in_the_terminal() {
    let p = Project::new();
    // A gtmd in the foreground already serves the workspace.
    let mut fg = p.spawn(&["run"]);
    let log = fg.tail_stderr();
    log.wait_for("ready: watching the workspace", 0, Duration::from_secs(20));
    let out = start(&p);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("another gtmd (pid {})", fg.pid()))
            && err.contains("already serves this workspace"),
        "{err}"
    );
    assert!(!p.root().join("run/gtmd.pid").exists());
    fg.signal(libc::SIGTERM);
    assert_eq!(fg.wait(Duration::from_secs(20)).status.code(), Some(0));
}
