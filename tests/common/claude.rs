//! The real Claude Code CLI in the tests: where it is installed, an
//! environment of its own to run it in, and its `stream-json` output read
//! back. Only the model is fake ([`super::fake_model`]).
//!
//! The CLI is found, in order, at `GTMD_TEST_CLAUDE_BIN`, at
//! `node_modules/.bin/claude` in the checkout (`npm install
//! @anthropic-ai/claude-code@2.1.197` there), and where `.ci/install-claude.sh`
//! puts it by default (`${XDG_CACHE_HOME:-$HOME/.cache}/gtmd-ci/claude-code`).
//! Without one a test says "skipped: …" and passes, unless
//! `GTMD_REQUIRE_CLAUDE=1` (CI), where a missing CLI fails the test.
//!
//! Each run gets its own `HOME` (the CLI keeps its sessions and settings
//! there, and must never read or write the developer's), an environment
//! cleared of everything but `PATH` (a developer's `ANTHROPIC_*` or
//! `CLAUDE_CODE_*` variables would change what is tested), and its own
//! process group, killed if the test ends first.

use super::fake_model::FakeModel;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version `.ci/install-claude.sh` installs, whose behaviour
/// tests/fixtures/claude/FACTS.md records.
pub const PINNED_VERSION: &str = "2.1.197";

/// The CLI, if one is installed where the tests look.
pub fn find_claude() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GTMD_TEST_CLAUDE_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GTMD_TEST_CLAUDE_BIN={} is not a file",
            p.display()
        );
        return Some(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let mut candidates =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/claude")];
    if let Some(c) = cache {
        candidates.push(c.join("gtmd-ci/claude-code/node_modules/.bin/claude"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// The CLI, or `None` after saying why the test is skipped; with
/// `GTMD_REQUIRE_CLAUDE=1` a missing CLI fails the test instead.
pub fn claude_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(bin) = find_claude() {
        return Some(bin);
    }
    let how = "install it with `.ci/install-claude.sh` (or set GTMD_TEST_CLAUDE_BIN)";
    if std::env::var("GTMD_REQUIRE_CLAUDE").is_ok_and(|v| v == "1") {
        panic!("{test}: GTMD_REQUIRE_CLAUDE=1 but the Claude Code CLI is not installed: {how}");
    }
    // Straight to stderr, not eprintln!: the test harness hides what a
    // passing test prints, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: the Claude Code CLI is not installed; {how}"
    );
    None
}

/// The CLI set up to talk to a fake model, with a `HOME` of its own that
/// lasts as long as this value (so a second run can `--resume` the first).
pub struct Claude {
    pub bin: PathBuf,
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Claude {
    pub fn new(bin: PathBuf, model: &FakeModel) -> Claude {
        let home = tempfile::Builder::new()
            .prefix("gtmd-claude-home")
            .tempdir()
            .unwrap();
        let env = vec![
            ("HOME".into(), home.path().display().to_string()),
            ("ANTHROPIC_BASE_URL".into(), model.base_url()),
            ("ANTHROPIC_API_KEY".into(), "sk-ant-fake-for-tests".into()),
            // Nothing but the base URL is reached (no telemetry, no update
            // check, no DNS lookup of api.anthropic.com).
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
                "1".into(),
            ),
            // A scripted error ends the run at once instead of after the
            // CLI's own 10 retries (about 3 minutes of backoff).
            ("CLAUDE_CODE_MAX_RETRIES".into(), "0".into()),
        ];
        Claude { bin, home, env }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Set (or replace) a variable of the CLI's environment.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// The variables a run gets besides `PATH` (for a gtmd that starts the CLI).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// One variable of the CLI's environment ("" when unset).
    pub fn var(&self, key: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// `claude ARGS` in `cwd`, in its own process group.
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        c
    }

    /// Run `claude ARGS` in `cwd` to its end, killing it after `timeout`.
    pub fn run(&self, cwd: &Path, args: &[&str], timeout: Duration) -> ClaudeRun {
        let started = Instant::now();
        let mut child = KillOnDrop(Some(self.command(cwd, args).spawn().unwrap()));
        let c = child.0.as_mut().unwrap();
        let out = reader(c.stdout.take().unwrap());
        let err = reader(c.stderr.take().unwrap());
        let deadline = started + timeout;
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                drop(child);
                panic!(
                    "claude {args:?} did not end within {timeout:?}; stderr so far is lost with it"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        child.0 = None;
        ClaudeRun {
            code: status.code(),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
            wall: started.elapsed(),
        }
    }
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Kills the child's whole process group (the CLI and any tool it started).
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SAFETY: kill(2) on the process group of a child we started in
            // a group of its own.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }
}

/// One finished run of the CLI.
#[derive(Debug)]
pub struct ClaudeRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
}

impl ClaudeRun {
    /// Every `stream-json` event (one JSON object a line).
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.stderr))
            })
            .collect()
    }

    /// Events of a `type` (`system`, `assistant`, `user`, `result`).
    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    /// The final `result` event.
    pub fn result(&self) -> Value {
        self.of_type("result").pop().unwrap_or_else(|| {
            panic!(
                "no result event (exit {:?})\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    /// `(tool_name, file_path or command)` of each entry of the result's
    /// `permission_denials`.
    pub fn denials(&self) -> Vec<(String, String)> {
        self.result()["permission_denials"]
            .as_array()
            .map(|ds| {
                ds.iter()
                    .map(|d| {
                        let input = &d["tool_input"];
                        let what = input["file_path"]
                            .as_str()
                            .or(input["command"].as_str())
                            .unwrap_or_default();
                        (
                            d["tool_name"].as_str().unwrap_or_default().into(),
                            what.into(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
