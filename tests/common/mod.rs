//! Shared helpers for the integration tests: a fresh temp workspace per test,
//! the real `gtmd` binary, polling with a deadline (never a fixed sleep), and
//! child processes that are killed when the test ends, pass or fail. For
//! the claude-code runtime: a scripted Messages API (`fake_model`) and the
//! real Claude Code CLI run against it (`claude`); for the codex runtime, a
//! scripted Responses API (`fake_responses`) and the real Codex CLI (`codex`).

#![allow(dead_code)]

pub mod claude;
pub mod codex;
pub mod fake_model;
pub mod fake_responses;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn gtmd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gtmd")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A project directory: `workspace/` (from `gtmd init`), `agents/`, CONFIG.md.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("gtmd-test")
            .tempdir()
            .unwrap();
        let out = Command::new(gtmd_bin())
            .arg("init")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "gtmd init failed: {out:?}");
        Project { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn ws(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.ws().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// `gtmd` with the project's paths, run from the project directory.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(gtmd_bin());
        // Every replay in the tests (status, a restarted daemon) must agree
        // with the daemon's checkpoints, and checkpoints come often.
        c.current_dir(self.root())
            .env("GTMD_LOG", "info,notify=warn")
            .env("GTMD_STRICT_REPLAY", "1")
            .env("GTMD_CHECKPOINT_EVERY", "20")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> Guard {
        let child = self
            .cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Guard { child: Some(child) }
    }

    /// `gtmd run ARGS` with extra environment, output discarded; returns
    /// once the daemon holds the workspace's lock.
    pub fn serve(&self, args: &[&str], envs: &[(&str, String)]) -> Guard {
        let mut c = self.cmd();
        c.arg("run").args(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let g = Guard {
            child: Some(c.spawn().unwrap()),
        };
        wait_for(Duration::from_secs(20), "the daemon to start", || {
            (self.status_json()["daemon_running"] == true).then_some(())
        });
        g
    }

    /// `gtmd sync`: every file event so far has been handled.
    pub fn sync(&self) {
        let out = self.run(&["sync", "--timeout", "60"]);
        assert!(
            out.status.success(),
            "sync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The task `id` as `gtmd status --json` shows it (null when absent).
    pub fn task_json(&self, id: &str) -> serde_json::Value {
        task_in(&self.status_json(), id)
    }
}

/// A child that is killed (with its process group's agents) when dropped.
pub struct Guard {
    pub child: Option<Child>,
}

impl Guard {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Wait for the process to end, up to `timeout`; kill it if it does not.
    pub fn wait(&mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.child.as_mut().unwrap().try_wait().unwrap().is_some();
            if done {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.as_mut().unwrap().kill();
                let out = self.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "gtmd did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.take().unwrap().wait_with_output().unwrap()
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Poll `f` until it returns Some, or panic with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process exists and is not a zombie (an exited process that its
/// parent, perhaps init, has not reaped yet counts as gone).
pub fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// A pid written by a test agent (`supervised.sh`) into `dir/name`.
pub fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Kills, when dropped, every process whose pid a test agent wrote under a
/// directory (and that still runs a test program), so a failing test leaves
/// nothing behind.
pub struct PidsGuard {
    pub dir: PathBuf,
}

impl Drop for PidsGuard {
    fn drop(&mut self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let Some(pid) = read_pid(&e.path()) else {
                continue;
            };
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("sleep") || cmdline.contains("supervised.sh") {
                // SAFETY: kill(2) on a pid of a test program we started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// A process that is not our child (a `--daemon` gtmd), killed when dropped.
pub struct PidGuard(pub i32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if pid_alive(self.0) {
            // SAFETY: kill(2) on the gtmd this test started.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
            }
        }
    }
}

/// A child's stderr read as it comes, to wait for a log line.
pub struct LogTail {
    text: std::sync::Arc<std::sync::Mutex<String>>,
}

impl LogTail {
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Wait until the log holds `needle` (`after` bytes in, to skip older lines).
    pub fn wait_for(&self, needle: &str, after: usize, timeout: Duration) -> usize {
        wait_for(timeout, &format!("{needle:?} in the log"), || {
            let text = self.text();
            text.get(after..)
                .and_then(|t| t.find(needle))
                .map(|i| after + i + needle.len())
        })
    }
}

impl Guard {
    /// Read the child's stderr from now on in a thread; `wait` then returns
    /// an empty stderr (use the tail's text instead).
    pub fn tail_stderr(&mut self) -> LogTail {
        use std::io::Read;
        let mut err = self.child.as_mut().unwrap().stderr.take().unwrap();
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = text.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        LogTail { text }
    }
}

/// The first file under `dir` whose name ends with `suffix`.
pub fn find_file(dir: &Path, suffix: &str) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
}

/// Processes whose command line has an argument containing `mark` (a
/// temporary directory of one test), to kill what a test left behind.
pub fn pids_with_arg(mark: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    c.split(|b| *b == 0)
                        .any(|arg| String::from_utf8_lossy(arg).contains(mark))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The task `id` in a `gtmd status --json` answer (null when absent).
pub fn task_in(status: &serde_json::Value, id: &str) -> serde_json::Value {
    status["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["id"] == id))
        .cloned()
        .unwrap_or_default()
}
