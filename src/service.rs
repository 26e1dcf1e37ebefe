//! Talking to whoever supervises gtmd: systemd's notify protocol (`READY=1`,
//! `STATUS=`, `WATCHDOG=1`, `STOPPING=1`) and, under `--daemon`, the pipe on
//! which the background process tells the waiting parent that it is ready or
//! why it could not start.
//!
//! Every function here is a no-op when gtmd is not supervised (no
//! `NOTIFY_SOCKET`, no readiness pipe), so the daemon calls them unconditionally.

use sd_notify::NotifyState;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// The last `STATUS=` sent, so an unchanged status is not sent again.
static LAST_STATUS: Mutex<String> = Mutex::new(String::new());
/// `--daemon`: the write end of the parent's readiness pipe, until used.
static READY_PIPE: Mutex<Option<File>> = Mutex::new(None);

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("cannot notify the service manager: {e}");
    }
}

/// The start-up scan and catch-up are done: gtmd serves the workspace.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
    *LAST_STATUS.lock().unwrap_or_else(|e| e.into_inner()) = status.to_string();
    if let Some(mut pipe) = READY_PIPE.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = pipe.write_all(b"ready\n");
    }
}

/// A one-line state for `systemctl status`; sent only when it changed.
pub fn status(text: &str) {
    let mut last = LAST_STATUS.lock().unwrap_or_else(|e| e.into_inner());
    if *last != text {
        notify(&[NotifyState::Status(text)]);
        *last = text.to_string();
    }
}

/// gtmd is stopping (systemd shows "deactivating").
pub fn stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
    *LAST_STATUS.lock().unwrap_or_else(|e| e.into_inner()) = status.to_string();
}

/// `--daemon`: where to say "ready" (or why not) to the parent.
pub fn set_ready_pipe(pipe: File) {
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
        notify(&[NotifyState::Watchdog]);
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
    // SAFETY: fstat on fd 2 into a zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
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
}
