//! The real Codex CLI in the tests: where it is installed, a `CODEX_HOME`
//! of its own pointed at the scripted Responses API, and its `--json`
//! events read back. Only the model is fake ([`super::fake_responses`]).
//!
//! The CLI is found, in order, at `GTMD_TEST_CODEX_BIN`, at
//! `node_modules/.bin/codex` in the checkout, and where
//! `.ci/install-codex.sh` puts it by default
//! (`${XDG_CACHE_HOME:-$HOME/.cache}/gtmd-ci/codex`). Without one a test says
//! "skipped: …" and passes, unless `GTMD_REQUIRE_CODEX=1` (CI).
//!
//! Each run gets its own `HOME` and `CODEX_HOME` (sessions, logs and the
//! config live there, never the developer's), an environment cleared of
//! everything else but `PATH`, and its own process group, killed if the test
//! ends first.

use super::fake_responses::FakeResponses;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version `.ci/install-codex.sh` installs, whose behaviour
/// tests/fixtures/codex/FACTS.md records.
pub const PINNED_VERSION: &str = "0.171.0";

/// The model the tests ask for: one Codex knows, so it offers `apply_patch`.
pub const MODEL: &str = "gpt-5.5";

/// The variable the fake provider's key is read from (`env_key`).
pub const KEY_ENV: &str = "GTMD_FAKE_OPENAI_KEY";

pub fn find_codex() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GTMD_TEST_CODEX_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GTMD_TEST_CODEX_BIN={} is not a file",
            p.display()
        );
        return Some(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let mut candidates =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/codex")];
    if let Some(c) = cache {
        candidates.push(c.join("gtmd-ci/codex/node_modules/.bin/codex"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// The CLI, or `None` after saying why the test is skipped; with
/// `GTMD_REQUIRE_CODEX=1` a missing CLI fails the test instead.
pub fn codex_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(bin) = find_codex() {
        return Some(bin);
    }
    let how = "install it with `.ci/install-codex.sh` (or set GTMD_TEST_CODEX_BIN)";
    if std::env::var("GTMD_REQUIRE_CODEX").is_ok_and(|v| v == "1") {
        panic!("{test}: GTMD_REQUIRE_CODEX=1 but the Codex CLI is not installed: {how}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: the Codex CLI is not installed; {how}"
    );
    None
}

/// `$CODEX_HOME/config.toml` for the fake: its provider (errors fail fast,
/// no retries) and no analytics.
pub fn config_toml(model: &FakeResponses) -> String {
    format!(
        "model = \"{MODEL}\"\nmodel_provider = \"fake\"\n\n\
         [model_providers.fake]\nname = \"fake\"\nbase_url = \"{}\"\nenv_key = \"{KEY_ENV}\"\n\
         wire_api = \"responses\"\nrequest_max_retries = 0\nstream_max_retries = 0\n\n\
         [analytics]\nenabled = false\n",
        model.base_url()
    )
}

/// The CLI set up to talk to a fake Responses API.
pub struct Codex {
    pub bin: PathBuf,
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Codex {
    pub fn new(bin: PathBuf, model: &FakeResponses) -> Codex {
        let home = tempfile::Builder::new()
            .prefix("gtmd-codex-home")
            .tempdir()
            .unwrap();
        std::fs::write(home.path().join("config.toml"), config_toml(model)).unwrap();
        let env = vec![
            ("HOME".into(), home.path().display().to_string()),
            ("CODEX_HOME".into(), home.path().display().to_string()),
            (KEY_ENV.into(), "sk-fake-for-tests".into()),
        ];
        Codex { bin, home, env }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The variables a run gets besides `PATH` (for a gtmd that starts the CLI).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// `codex ARGS` in `cwd`, stdin /dev/null, in its own process group.
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

    /// Run `codex ARGS` in `cwd` to its end, killing it after `timeout`.
    pub fn run(&self, cwd: &Path, args: &[&str], timeout: Duration) -> CodexRun {
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
                panic!("codex {args:?} did not end within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        child.0 = None;
        CodexRun {
            code: status.code(),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
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

/// Kills the child's whole process group (the CLI and its sandboxed helpers).
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
pub struct CodexRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CodexRun {
    /// Every `--json` event (one JSON object a line).
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

    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    /// The `item.completed` events of items of this type
    /// (`file_change`, `agent_message`, `command_execution`).
    pub fn items(&self, kind: &str) -> Vec<Value> {
        self.of_type("item.completed")
            .into_iter()
            .map(|e| e["item"].clone())
            .filter(|i| i["type"] == kind)
            .collect()
    }

    /// `(path, kind, item status)` of every change of every completed
    /// `file_change` item.
    pub fn changes(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for item in self.items("file_change") {
            for c in item["changes"].as_array().into_iter().flatten() {
                out.push((
                    c["path"].as_str().unwrap_or_default().to_string(),
                    c["kind"].as_str().unwrap_or_default().to_string(),
                    item["status"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        out
    }
}
