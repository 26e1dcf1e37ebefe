//! gtmd under a service manager: the systemd notify protocol, seen from a
//! unix datagram socket standing in for systemd.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Stands in for systemd's notify socket: each datagram is a set of lines.
pub struct NotifySocket {
    pub sock: UnixDatagram,
    pub path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    pub fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        NotifySocket {
            sock,
            path,
            _dir: dir,
        }
    }

    /// The next datagram's lines, if one comes within 50 ms.
    pub fn recv(&self) -> Option<Vec<String>> {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(String::from)
                .collect(),
        )
    }
}

#[test]
fn ready_comes_after_the_waiting_files_were_handled_then_watchdog_and_status() {
    let p = Project::new();
    // Files waiting before gtmd starts: a conflict (its coordinator review
    // must exist by READY) and an unusable status file (refused by READY).
    p.write(
        "conflicts/pricing.md",
        "# Pricing: annual discount\n\nbrand and demand-gen disagree.\n",
    );
    p.write(
        "status/growth-analyst.md",
        "agent: growth-analyst\nstatus: [\n",
    );
    let notify = NotifySocket::bind();
    let watchdog = Duration::from_millis(400);
    let mut gtmd = {
        let mut c = p.cmd();
        c.env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
            .arg("run")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Guard {
            child: Some(c.spawn().unwrap()),
        }
    };

    // READY=1: at that moment the journal already holds the reactions.
    let mut statuses = Vec::new();
    let ready = wait_for(Duration::from_secs(20), "READY=1", || {
        let lines = notify.recv()?;
        statuses.extend(lines.iter().filter(|l| l.starts_with("STATUS=")).cloned());
        lines.iter().any(|l| l == "READY=1").then(Instant::now)
    });
    let status = p.status_json();
    let review =
        status["tasks"].as_array().unwrap().iter().find(|t| {
            t["agent"] == "coordinator" && t["trigger"] == "conflict: conflicts/pricing.md"
        });
    assert!(
        review.is_some(),
        "no coordinator review of the waiting conflict at READY: {status:#}"
    );
    assert!(
        status["rejected"]
            .to_string()
            .contains("status/growth-analyst.md"),
        "the waiting bad status file was not refused by READY: {status:#}"
    );
    assert!(
        statuses
            .iter()
            .any(|s| s.contains("idle") && s.contains("1 open task(s)")),
        "STATUS with READY: {statuses:?}"
    );

    // WATCHDOG=1 at half the period asked for, from the event loop.
    let mut pings = Vec::new();
    while ready.elapsed() < Duration::from_secs(2) {
        if let Some(lines) = notify.recv() {
            if lines.iter().any(|l| l == "WATCHDOG=1") {
                pings.push(Instant::now());
            }
        }
    }
    assert!(pings.len() >= 4, "{} pings in 2 s", pings.len());
    for w in pings.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap < watchdog && gap > watchdog / 8,
            "a ping gap of {gap:?} for a watchdog of {watchdog:?}"
        );
    }

    // A status change is reported: an agent run starts a task.
    let run = p.spawn(&["agent", "run", "growth-analyst", "--task", "look"]);
    wait_for(Duration::from_secs(20), "STATUS with 2 open tasks", || {
        let lines = notify.recv()?;
        lines
            .iter()
            .any(|l| l.starts_with("STATUS=") && l.contains("2 open task(s)"))
            .then_some(())
    });
    drop(run);

    // SIGTERM: STOPPING=1, then exit 0.
    gtmd.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(20), "STOPPING=1", || {
        let lines = notify.recv()?;
        lines.iter().any(|l| l == "STOPPING=1").then_some(())
    });
    let out = gtmd.wait(Duration::from_secs(20));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_a_watchdog_for_this_pid_there_are_no_pings() {
    let p = Project::new();
    let notify = NotifySocket::bind();
    let mut gtmd = {
        let mut c = p.cmd();
        c.env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "200000")
            .env("WATCHDOG_PID", "1")
            .arg("run")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Guard {
            child: Some(c.spawn().unwrap()),
        }
    };
    let ready = wait_for(Duration::from_secs(20), "READY=1", || {
        let lines = notify.recv()?;
        lines.iter().any(|l| l == "READY=1").then(Instant::now)
    });
    while ready.elapsed() < Duration::from_millis(600) {
        if let Some(lines) = notify.recv() {
            assert!(!lines.iter().any(|l| l == "WATCHDOG=1"), "{lines:?}");
        }
    }
    gtmd.signal(libc::SIGTERM);
    let out = gtmd.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_manager_that_never_reads_its_socket_does_not_stop_gtmd() {
    let p = Project::new();
    // Bound, never read: its queue (net.unix.max_dgram_qlen, often 10) fills.
    let notify = NotifySocket::bind();
    let mut gtmd = {
        let mut c = p.cmd();
        c.env("NOTIFY_SOCKET", &notify.path)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        Guard {
            child: Some(c.spawn().unwrap()),
        }
    };
    let log = gtmd.tail_stderr();
    log.wait_for("ready: watching the workspace", 0, Duration::from_secs(20));
    // Each conflict opens a review task: a new STATUS= every time, far more
    // than the queue holds. A send that blocked would stop the event loop,
    // and `sync` would never be answered.
    for i in 0..30 {
        p.write(&format!("conflicts/c{i}.md"), &format!("# conflict {i}\n"));
        let out = p.run(&["sync", "--timeout", "10"]);
        assert!(
            out.status.success(),
            "conflict {i}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            log.text()
        );
    }
    let s = p.status_json();
    assert_eq!(s["open_tasks"].as_array().unwrap().len(), 30, "{s:#}");
    log.wait_for("notification(s) dropped so far", 0, Duration::from_secs(5));
    gtmd.signal(libc::SIGTERM);
    let out = gtmd.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", log.text());
}
