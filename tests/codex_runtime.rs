//! gtmd with `runtime: codex`, through the real Codex CLI and a scripted
//! Responses API (issue 15): the four phases from `gtmd init --runtime
//! codex`, tokens priced from the team's table and adding up to what the
//! CLI reported, a write the agent does not own failing its task, API
//! errors retried or failed, a `--max-cost` run refused when a model has
//! no price, and `--max-tokens` stopping a run.
//!
//! Skipped, saying so, where the CLI is not installed (`.ci/install-codex.sh`),
//! unless `GTMD_REQUIRE_CODEX=1` (CI sets it).

mod common;

use common::codex::{codex_or_skip, Codex, MODEL};
use common::fake_responses::{FakeResponses, Plan, Script};
use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Prices for the tests only, round so that a cost is checked by hand
/// (USD per million tokens): not the model's real prices.
const INPUT: f64 = 2.0;
const CACHED: f64 = 0.5;
const OUTPUT: f64 = 10.0;

struct CodexProject {
    dir: tempfile::TempDir,
    codex: Codex,
}

impl CodexProject {
    /// `gtmd init --runtime codex`, with a price table for the model or not.
    fn new(bin: PathBuf, model: &FakeResponses, priced: bool) -> CodexProject {
        let dir = tempfile::Builder::new()
            .prefix("gtmd-codex-project")
            .tempdir()
            .unwrap();
        let out = Command::new(gtmd_bin())
            .args(["init", "--runtime", "codex"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        if priced {
            fs::write(
                dir.path().join("prices.yaml"),
                format!(
                    "{MODEL}:\n  input: {INPUT}\n  cached_input: {CACHED}\n  output: {OUTPUT}\n"
                ),
            )
            .unwrap();
        }
        CodexProject {
            dir,
            codex: Codex::new(bin, model),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn ws(&self) -> PathBuf {
        self.root().join("workspace")
    }

    fn run(&self, args: &[&str], timeout: Duration) -> Output {
        self.run_to(args, timeout, Stdio::piped())
    }

    /// As [`CodexProject::run`], stdout to `stdout` (a file for an output
    /// larger than a pipe holds: the guard reads it only at the end).
    fn run_to(&self, args: &[&str], timeout: Duration, stdout: Stdio) -> Output {
        let child = Command::new(gtmd_bin())
            .args(args)
            .current_dir(self.root())
            .env("GTMD_LOG", "info,notify=warn")
            .env("GTMD_STRICT_REPLAY", "1")
            .env("GTMD_CODEX_BIN", &self.codex.bin)
            .envs(self.codex.env().iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        Guard { child: Some(child) }.wait(timeout)
    }

    fn status(&self) -> Value {
        let file = self.root().join("status.json");
        let stdout = Stdio::from(fs::File::create(&file).unwrap());
        let out = self.run_to(&["status", "--json"], Duration::from_secs(60), stdout);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&fs::read(&file).unwrap()).unwrap()
    }

    /// The CLI's own token counts over every `turn.completed` in the task
    /// logs: (input, cached, output).
    fn cli_tokens(&self) -> (u64, u64, u64) {
        let mut t = (0, 0, 0);
        for e in fs::read_dir(self.ws().join(".gtmd/logs"))
            .unwrap()
            .flatten()
        {
            for line in fs::read_to_string(e.path()).unwrap().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if v["type"] == "turn.completed" {
                    let u = &v["usage"];
                    t.0 += u["input_tokens"].as_u64().unwrap();
                    t.1 += u["cached_input_tokens"].as_u64().unwrap();
                    t.2 += u["output_tokens"].as_u64().unwrap();
                }
            }
        }
        t
    }
}

impl CodexProject {
    /// The task logs, for a failure's message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for e in fs::read_dir(self.ws().join(".gtmd/logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            out.push_str(&format!("== {}\n{text}\n", e.path().display()));
        }
        out
    }
}

fn tasks(s: &Value) -> &Vec<Value> {
    s["tasks"].as_array().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const RUN: Duration = Duration::from_secs(300);

#[test]
fn four_phases_through_codex_with_tokens_priced_from_the_table() {
    let Some(bin) = codex_or_skip("four_phases_through_codex") else {
        return;
    };
    let model = FakeResponses::start(Script::do_task());
    let p = CodexProject::new(bin, &model, true);
    let check = p.run(&["check"], Duration::from_secs(30));
    assert!(check.status.success(), "{check:?}");
    // Phase 2's four agents run side by side: their sandboxes must not
    // undo each other's writes (tests/fixtures/codex/FACTS.md).
    let out = p.run(
        &["team", "run", "--phases", "all", "--config", "CONFIG.md"],
        RUN,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}\nlogs:\n{}",
        stderr(&out),
        p.logs()
    );
    let s = p.status();
    let run = &s["runs"][0];
    assert_eq!(run["state"]["state"], "passed", "{run}");
    let all = tasks(&s);
    assert!(all.len() >= 20, "{} tasks", all.len());
    for t in all.iter().filter(|t| !t["started_at"].is_null()) {
        assert!(t["cost"]["usd"].as_f64().unwrap_or(0.0) > 0.0, "{t}");
        assert!(t["cost"]["price_unknown"].is_null(), "{t}");
    }
    // The run's tokens are the CLI's, and its dollars those tokens priced.
    let (input, cached, output) = p.cli_tokens();
    assert!(input > 0 && cached > 0 && output > 0);
    let c = &run["cost"];
    assert_eq!(c["input_tokens"], input - cached);
    assert_eq!(c["cache_read_tokens"], cached);
    assert_eq!(c["output_tokens"], output);
    let usd =
        ((input - cached) as f64 * INPUT + cached as f64 * CACHED + output as f64 * OUTPUT) / 1e6;
    assert!(
        (c["usd"].as_f64().unwrap() - usd).abs() < 1e-9,
        "{c} vs {usd}"
    );
    let text = p.run(&["status"], Duration::from_secs(30));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("${usd:.4}")), "{text}");
}

#[test]
fn a_write_the_agent_does_not_own_fails_its_task_naming_the_path() {
    let Some(bin) = codex_or_skip("a_write_the_agent_does_not_own") else {
        return;
    };
    let model = FakeResponses::start(Script::new(
        Plan::do_task().trespass(&["status/summary.md", "status/coordinator.md"]),
    ));
    let p = CodexProject::new(bin, &model, true);
    fs::write(p.ws().join("status/coordinator.md"), "agent: coordinator\n").unwrap();
    let out = p.run(
        &[
            "agent",
            "run",
            "brand-messaging",
            "--task",
            "Refresh the value propositions",
        ],
        RUN,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("wrote files it does not own: status/summary.md"),
        "{err}"
    );
    // The sandbox kept it from another agent's status.
    assert_eq!(
        fs::read_to_string(p.ws().join("status/coordinator.md")).unwrap(),
        "agent: coordinator\n"
    );
    let s = p.status();
    let t = &tasks(&s)[0];
    assert_eq!(t["state"]["outcome"]["outcome"], "failed", "{t}");
    let denied = t["denials"][0]["tool"].as_str().unwrap_or_default();
    assert!(denied.starts_with("apply_patch"), "{t}");
}

#[test]
fn a_rate_limit_is_retried_without_using_up_the_agents_retries() {
    let Some(bin) = codex_or_skip("a_rate_limit_is_retried") else {
        return;
    };
    let model = FakeResponses::start(Script::do_task().fail_first(1, 429));
    let p = CodexProject::new(bin, &model, true);
    let agent = p.root().join("agents/brand-messaging.md");
    let text = fs::read_to_string(&agent).unwrap();
    fs::write(&agent, text.replacen("---\n", "---\nretries: 0\n", 1)).unwrap();
    let out = p.run(
        &[
            "agent",
            "run",
            "brand-messaging",
            "--task",
            "Refresh the value propositions",
        ],
        RUN,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = p.status();
    let t = &tasks(&s)[0];
    assert_eq!(t["state"]["outcome"]["outcome"], "complete", "{t}");
    assert_eq!(
        (t["attempt"].as_u64(), t["api_retries"].as_u64()),
        (Some(1), Some(1)),
        "{t}"
    );
}

#[test]
fn a_bad_api_key_fails_the_task_at_once_with_the_message() {
    let Some(bin) = codex_or_skip("a_bad_api_key_fails") else {
        return;
    };
    let model = FakeResponses::start(Script::do_task().fail_first(100, 401));
    let p = CodexProject::new(bin, &model, true);
    let out = p.run(
        &["agent", "run", "brand-messaging", "--task", "Anything"],
        RUN,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("API error 401") && err.contains("Incorrect API key"),
        "{err}"
    );
    assert_eq!(model.errors_sent(), 1, "no retry");
}

#[test]
fn a_max_cost_run_with_an_unpriced_model_is_refused_at_start() {
    let Some(bin) = codex_or_skip("a_max_cost_run_with_an_unpriced_model") else {
        return;
    };
    let model = FakeResponses::start(Script::do_task());
    let p = CodexProject::new(bin, &model, false);
    let out = p.run(
        &[
            "team",
            "run",
            "--phase",
            "strategy",
            "--config",
            "CONFIG.md",
            "--max-cost",
            "5",
        ],
        RUN,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("run refused") && err.contains(&format!("model {MODEL} has no price")),
        "{err}"
    );
    assert_eq!(model.answers(), 0, "nothing ran");
    // Without the cap it runs, and says the price is unknown.
    let out = p.run(&["agent", "run", "brand-messaging", "--task", "x"], RUN);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = p.status();
    let c = &tasks(&s)[0]["cost"];
    assert_eq!(c["price_unknown"], true, "{c}");
    assert!(c["input_tokens"].as_u64().unwrap() > 0);
    let text = p.run(&["status"], Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&text.stdout).contains("price unknown"));
}

#[test]
fn a_token_cap_stops_a_run() {
    let Some(bin) = codex_or_skip("a_token_cap_stops_a_run") else {
        return;
    };
    // Each task: two answers of 1,100 tokens.
    let model = FakeResponses::start(Script::do_task());
    let p = CodexProject::new(bin, &model, false);
    let out = p.run(
        &[
            "team",
            "run",
            "--phase",
            "strategy",
            "--config",
            "CONFIG.md",
            "--max-tokens",
            "3000",
        ],
        RUN,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("token cap of 3000 (--max-tokens) is reached"),
        "{err}"
    );
    let s = p.status();
    assert!(
        tasks(&s).iter().any(|t| t["started_at"].is_null()),
        "some task was left unstarted"
    );
}
