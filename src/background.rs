//! `gtmd run --daemon --pid-file F`: gtmd in the background, for servers
//! without systemd (under systemd, `Type=notify` runs it in the foreground).
//!
//! The fork happens before any thread or the tokio runtime exists (a fork
//! copies only the calling thread): `cli` calls [`start`] right after parsing
//! and validating the settings, and builds the runtime and the signal thread
//! afterwards, in the background process only.
//!
//! The parent does not return as soon as it has forked: it waits on a pipe
//! until the background gtmd is ready (the start-up scan done) or says why it
//! could not start, so `gtmd run --daemon` fails loudly, with the reason, in
//! the terminal that started it. The pid file is locked (flock) for the
//! daemon's whole life: a second start finds the lock held and is refused; a
//! pid file nobody holds is stale (its process died) and is replaced.

use anyhow::{Context, Result};
use daemonize::{Daemonize, Outcome};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The umask of the background gtmd: files are shared with the workspace's
/// group and hidden from others (the same as the systemd units' `UMask=`).
pub const UMASK: u32 = 0o007;

/// Which side of the fork this is.
pub enum Role {
    /// The process that was started: it has reported; exit with this code.
    Parent(ExitCode),
    /// The background gtmd: serve, then [`Background::finish`].
    Daemon(Background),
}

/// The background gtmd's own bookkeeping.
pub struct Background {
    pid_file: PathBuf,
}

impl Background {
    /// gtmd is exiting: remove the pid file if it still names this process.
    pub fn finish(&self) {
        let ours = fs::read_to_string(&self.pid_file)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            if let Err(e) = fs::remove_file(&self.pid_file) {
                tracing::warn!(file = %self.pid_file.display(), "cannot remove the pid file: {e}");
            }
        }
    }
}

/// Fork into the background. Must be called before any thread exists.
pub fn start(pid_file: &Path, log_file: &Path, workspace: &Path) -> Result<Role> {
    check_pid_file(pid_file)?;
    for dir in [pid_file.parent(), log_file.parent()].into_iter().flatten() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o660)
        .open(log_file)
        .with_context(|| format!("cannot open the log file {}", log_file.display()))?;
    // Close-on-exec: the agents the background gtmd starts never hold it.
    let (mut ready_read, ready_write) =
        std::io::pipe().context("cannot create the readiness pipe")?;
    let daemonize = Daemonize::new()
        .pid_file(pid_file)
        .working_directory("/")
        .umask(UMASK)
        .stdout(log.try_clone()?)
        .stderr(log);
    match daemonize.execute() {
        Outcome::Parent(Err(e)) => Err(anyhow::anyhow!("cannot fork into the background: {e}")),
        Outcome::Parent(Ok(_)) => {
            drop(ready_write);
            let mut said = String::new();
            let _ = ready_read.read_to_string(&mut said);
            if said.starts_with("ready") {
                let pid = fs::read_to_string(pid_file).unwrap_or_default();
                crate::errln!(
                    "gtmd: serving {} in the background, pid {} (pid file {}, log {})",
                    workspace.display(),
                    pid.trim(),
                    pid_file.display(),
                    log_file.display()
                );
                Ok(Role::Parent(ExitCode::SUCCESS))
            } else if said.trim().is_empty() {
                crate::errln!(
                    "gtmd: the background gtmd exited before it was ready; see {}",
                    log_file.display()
                );
                Ok(Role::Parent(ExitCode::from(1)))
            } else {
                crate::errln!("gtmd: {}", said.trim());
                Ok(Role::Parent(ExitCode::from(1)))
            }
        }
        Outcome::Child(Err(e)) => {
            // Most likely another gtmd took the pid file since the check.
            let why = format!(
                "cannot start in the background ({e}); is another gtmd holding the pid file {}?",
                pid_file.display()
            );
            let mut w = ready_write;
            let _ = std::io::Write::write_all(&mut w, why.as_bytes());
            std::process::exit(1);
        }
        Outcome::Child(Ok(_)) => {
            drop(ready_read);
            crate::service::set_ready_pipe(ready_write);
            Ok(Role::Daemon(Background {
                pid_file: pid_file.to_path_buf(),
            }))
        }
    }
}

/// Refuse to start when a live gtmd holds the pid file; say when a stale one
/// (its process gone, so its lock released) is about to be replaced.
fn check_pid_file(path: &Path) -> Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let pid = fs::read_to_string(path).unwrap_or_default();
    let pid = pid.trim();
    // The flock(2) daemonize holds on it for the daemon's life; our probe
    // is released when `file` drops.
    let held = file.try_lock().is_err();
    if held {
        anyhow::bail!(
            "refusing to start: another gtmd (pid {pid}) is running with the pid file {}; stop it first (kill -TERM {pid}) or give another --pid-file",
            path.display()
        );
    }
    if !pid.is_empty() {
        crate::errln!(
            "gtmd: replacing the stale pid file {} (pid {pid} is no longer running gtmd)",
            path.display()
        );
    }
    Ok(())
}
