//! Talking to whoever supervises gtmd: systemd's notify protocol (`READY=1`,
//! `STATUS=`, `WATCHDOG=1`, `STOPPING=1`) and, under `--daemon`, the pipe on
//! which the background process tells the waiting parent that it is ready or
//! why it could not start.
//!
//! Every function here is a no-op when gtmd is not supervised (no
//! `NOTIFY_SOCKET`, no readiness pipe), so the daemon calls them unconditionally.
//!
//! Notifications are sent without blocking, as sd_notify(3) does: the
//! socket is a datagram socket with a short queue (`net.unix.max_dgram_qlen`,
//! often 10), and a blocking send to a manager that reads slowly, or not at
//! all, would stop the event loop, and shutdown with it. A datagram that
//! does not fit is dropped and counted; the next status supersedes it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, PipeWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The last `STATUS=` sent, so an unchanged status is not sent again.
static LAST_STATUS: Mutex<String> = Mutex::new(String::new());
/// `--daemon`: the write end of the parent's readiness pipe, until used.
static READY_PIPE: Mutex<Option<PipeWriter>> = Mutex::new(None);

/// Notifications dropped because the manager's queue was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Send `lines` (each `KEY=value`) as one datagram to `NOTIFY_SOCKET`.
fn notify(lines: &[&str]) {
    let Some(addr) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let mut msg = String::new();
    for l in lines {
        msg.push_str(l);
        msg.push('\n');
    }
    match send_to(&addr, msg.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
            // Warn at 1, 2, 4, 8... dropped: said, but not once per message.
            if n.is_power_of_two() {
                tracing::warn!(
                    "the service manager is not reading its notify socket; {n} notification(s) dropped so far (gtmd does not wait for it)"
                );
            } else {
                tracing::debug!("notify socket full; {n} notification(s) dropped so far");
            }
        }
        Err(e) => tracing::debug!("cannot notify the service manager: {e}"),
    }
}

/// One datagram to the notify socket `addr`, without blocking: a path, or
/// with a leading `@`, an abstract socket name (as systemd gives it).
fn send_to(addr: &OsStr, msg: &[u8]) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    match addr.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let abstract_addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.connect_addr(&abstract_addr)?;
        }
        None => sock.connect(addr)?,
    }
    let sent = sock.send(msg)?;
    if sent != msg.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was cut short",
        ));
    }
    Ok(())
}

/// The start-up scan and catch-up are done: gtmd serves the workspace.
pub fn ready(status: &str) {
    notify(&["READY=1", &format!("STATUS={status}")]);
    *LAST_STATUS.lock().unwrap_or_else(|e| e.into_inner()) = status.to_string();
    if let Some(mut pipe) = READY_PIPE.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = pipe.write_all(b"ready\n");
    }
}

/// A one-line state for `systemctl status`; sent only when it changed.
pub fn status(text: &str) {
    let mut last = LAST_STATUS.lock().unwrap_or_else(|e| e.into_inner());
    if *last != text {
        notify(&[&format!("STATUS={text}")]);
        *last = text.to_string();
    }
}

/// gtmd is stopping (systemd shows "deactivating").
pub fn stopping(status: &str) {
    notify(&["STOPPING=1", &format!("STATUS={status}")]);
    *LAST_STATUS.lock().unwrap_or_else(|e| e.into_inner()) = status.to_string();
}

/// `--daemon`: where to say "ready" (or why not) to the parent.
pub fn set_ready_pipe(pipe: PipeWriter) {
    *READY_PIPE.lock().unwrap_or_else(|e| e.into_inner()) = Some(pipe);
}

/// `--daemon`: gtmd could not start; tell the waiting parent why (it prints it).
pub fn start_failed(reason: &str) {
    if let Some(mut pipe) = READY_PIPE.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = pipe.write_all(reason.as_bytes());
    }
}

/// The watchdog period systemd asked for (`WATCHDOG_USEC`), when it is for
/// this process (`WATCHDOG_PID` unset or ours), as `sd_watchdog_enabled(3)`.
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings `WATCHDOG=1` at half the period systemd asked for. Polled in the
/// event loop's `select!`, so a loop that hangs stops pinging and systemd
/// restarts gtmd; without a watchdog its tick never completes.
pub struct Watchdog {
    interval: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// Must be called inside the tokio runtime.
    pub fn from_env() -> Watchdog {
        let interval = watchdog_period().map(|period| {
            let mut i = tokio::time::interval(period / 2);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        Watchdog { interval }
    }

    /// Completes when the next ping is due (at once the first time).
    pub async fn tick(&mut self) {
        match &mut self.interval {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    pub fn ping(&self) {
        notify(&["WATCHDOG=1"]);
    }
}

/// Whether stderr is the journal: `JOURNAL_STREAM` names its device and inode
/// (systemd.exec(5)); a redirected stderr with an inherited variable is not.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let value = value.to_string_lossy();
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // fstat(2) of fd 2, through a duplicate that a File can own and close.
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = File::from(fd).metadata() else {
        return false;
    };
    meta.dev() == dev && meta.ino() == ino
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_status_reach_the_notify_socket_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Tests run in threads of one process: only this test sets the variable.
        std::env::set_var("NOTIFY_SOCKET", &path);
        ready("idle");
        status("idle");
        status("run r1: phase 1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=idle\n");
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=run r1: phase 1\n");
    }

    #[test]
    fn abstract_socket_names_are_reached() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("gtmd-test-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send_to(OsStr::new(&format!("@{name}")), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn a_manager_that_does_not_read_makes_sends_fail_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unread.sock");
        let _sock = UnixDatagram::bind(&path).unwrap();
        // The queue holds a few datagrams; a blocking send would hang here.
        let full = (0..10_000)
            .find_map(|i| send_to(path.as_os_str(), format!("STATUS={i}\n").as_bytes()).err());
        assert_eq!(full.map(|e| e.kind()), Some(io::ErrorKind::WouldBlock));
    }
}
