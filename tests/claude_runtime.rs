//! gtmd with `runtime: claude-code`, through the real Claude Code CLI and a
//! scripted model (issue 13): the four phases with no hand edits, costs that
//! add up to what the CLI reported, a cost cap that stops a run, writes the
//! CLI denies because the agent does not own them, and API errors retried
//! or failed as they should be.
//!
//! Skipped, saying so, where the CLI is not installed (`.ci/install-claude.sh`),
//! unless `GTMD_REQUIRE_CLAUDE=1` (CI sets it).

mod common;

use common::claude::{claude_or_skip, Claude};
use common::fake_model::{ApiError, FakeModel, Plan, Script};
use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A project made by `gtmd init --runtime claude-code`, and gtmd's commands
/// run in it with the CLI pointed at the fake model.
struct ClaudeProject {
    dir: tempfile::TempDir,
    claude: Claude,
}

impl ClaudeProject {
    fn new(bin: std::path::PathBuf, model: &FakeModel) -> ClaudeProject {
        let dir = tempfile::Builder::new()
            .prefix("gtmd-claude-project")
            .tempdir()
            .unwrap();
        let out = Command::new(gtmd_bin())
            .args(["init", "--runtime", "claude-code"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        ClaudeProject {
            dir,
            claude: Claude::new(bin, model),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn ws(&self) -> std::path::PathBuf {
        self.root().join("workspace")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(gtmd_bin());
        c.args(args)
            .current_dir(self.root())
            .env("GTMD_LOG", "info,notify=warn")
            .env("GTMD_STRICT_REPLAY", "1")
            .env("GTMD_CLAUDE_BIN", &self.claude.bin)
            .envs(self.claude.env().iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    /// Run a gtmd command to its end (at most `timeout`).
    fn run(&self, args: &[&str], timeout: Duration) -> Output {
        let child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut g = Guard { child: Some(child) };
        g.wait(timeout)
    }

    fn status(&self) -> Value {
        let out = self.run(&["status", "--json"], Duration::from_secs(30));
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Set a key in an agent's front matter.
    fn agent_key(&self, agent: &str, line: &str) {
        let path = self.root().join(format!("agents/{agent}.md"));
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replacen("---\n", &format!("---\n{line}\n"), 1)).unwrap();
    }

    fn task_log(&self, id: &Value) -> String {
        fs::read_to_string(
            self.ws()
                .join(format!(".gtmd/logs/{}.log", id.as_str().unwrap())),
        )
        .unwrap_or_default()
    }

    /// The CLI's own `total_cost_usd` over every result event in the task
    /// logs: what the runs cost by the CLI's count.
    fn cli_total_usd(&self) -> f64 {
        let logs = self.ws().join(".gtmd/logs");
        let mut total = 0.0;
        for e in fs::read_dir(&logs).unwrap().flatten() {
            for line in fs::read_to_string(e.path()).unwrap().lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    if v["type"] == "result" {
                        total += v["total_cost_usd"].as_f64().unwrap();
                    }
                }
            }
        }
        total
    }
}

use std::os::unix::process::CommandExt;

fn usd(v: &Value) -> f64 {
    v["cost"]["usd"].as_f64().unwrap_or(0.0)
}

fn tasks(s: &Value) -> &Vec<Value> {
    s["tasks"].as_array().unwrap()
}

const RUN: Duration = Duration::from_secs(240);

#[test]
fn four_phases_through_claude_code_with_costs_that_add_up() {
    let Some(bin) = claude_or_skip("four_phases_through_claude_code") else {
        return;
    };
    let model = FakeModel::start(Script::do_task());
    let p = ClaudeProject::new(bin, &model);
    let check = p.run(&["check"], Duration::from_secs(30));
    assert!(check.status.success(), "{check:?}");
    let out = p.run(
        &["team", "run", "--phases", "all", "--config", "CONFIG.md"],
        RUN,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = p.status();
    let run = &s["runs"][0];
    assert_eq!(run["state"]["state"], "passed", "{run}");
    // Every task ran through the CLI and reported its cost; the run's is
    // their sum, and that is what the CLI reported, to the cent.
    let all = tasks(&s);
    assert!(all.len() >= 20, "{} tasks", all.len());
    // (A gate review the coordinator's ticks made moot never ran.)
    for t in all.iter().filter(|t| !t["started_at"].is_null()) {
        assert!(t["cost"]["usd"].as_f64().unwrap_or(0.0) > 0.0, "{t}");
        assert!(t["cost"]["input_tokens"].as_u64().unwrap_or(0) > 0, "{t}");
    }
    let sum: f64 = all.iter().map(usd).sum();
    assert!(
        (usd(run) - sum).abs() < 1e-9,
        "run {} vs tasks {sum}",
        usd(run)
    );
    let cli = p.cli_total_usd();
    assert!(
        (usd(run) - cli).abs() < 0.005,
        "gtmd {} vs CLI {cli}",
        usd(run)
    );
    assert!(cli > 0.0);
    // The run record says what it cost.
    let record = fs::read_to_string(
        p.ws()
            .join(format!("runs/{}.md", run["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(record.contains(&format!("${:.4}", usd(run))), "{record}");
}

#[test]
fn a_run_over_its_cost_cap_stops_with_exit_2_naming_the_cap() {
    let Some(bin) = claude_or_skip("a_run_over_its_cost_cap") else {
        return;
    };
    // Two answers a task at $0.0075 each: the first task costs $0.015.
    let model = FakeModel::start(Script::do_task());
    let p = ClaudeProject::new(bin, &model);
    let out = p.run(
        &[
            "team",
            "run",
            "--phase",
            "strategy",
            "--config",
            "CONFIG.md",
            "--max-cost",
            "0.02",
        ],
        RUN,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cost cap of $0.02"), "{err}");
    let s = p.status();
    let run = &s["runs"][0];
    assert!(usd(run) >= 0.02, "{run}");
    // No task started once the cap was reached (the escalation of the task
    // stopped at its limit, say, stays unstarted).
    let capped_at = run["log"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l[1].as_str().unwrap().contains("cost cap"))
        .map(|l| l[0].as_u64().unwrap())
        .expect("the record says when the cap was reached");
    for t in tasks(&s) {
        if let Some(started) = t["started_at"].as_u64() {
            assert!(started <= capped_at, "started after the cap: {t}");
        }
    }
    assert!(
        tasks(&s).iter().any(|t| t["started_at"].is_null()),
        "some task was left unstarted"
    );
}

#[test]
fn writes_an_agent_does_not_own_are_denied_and_named() {
    let Some(bin) = claude_or_skip("writes_an_agent_does_not_own") else {
        return;
    };
    let model = FakeModel::start(Script::new(Plan::do_task().trespass(&[
        "status/coordinator.md",
        "strategy/gates/phase-1-strategy.md",
        ".gtmd/journal.jsonl",
    ])));
    let p = ClaudeProject::new(bin, &model);
    fs::write(p.ws().join("status/coordinator.md"), "agent: coordinator\n").unwrap();
    fs::write(
        p.ws().join("strategy/gates/phase-1-strategy.md"),
        "- [ ] personas\n",
    )
    .unwrap();
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
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(p.ws().join("status/coordinator.md")).unwrap(),
        "agent: coordinator\n"
    );
    assert_eq!(
        fs::read_to_string(p.ws().join("strategy/gates/phase-1-strategy.md")).unwrap(),
        "- [ ] personas\n"
    );
    let journal = fs::read_to_string(p.ws().join(".gtmd/journal.jsonl")).unwrap();
    assert!(journal
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    let s = p.status();
    let t = &tasks(&s)[0];
    let denied: Vec<&str> = t["denials"]
        .as_array()
        .unwrap_or_else(|| panic!("no denials: {t}\nlog:\n{}", p.task_log(&t["id"])))
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    for path in [
        "status/coordinator.md",
        "strategy/gates/phase-1-strategy.md",
        ".gtmd/journal.jsonl",
    ] {
        assert!(denied.contains(&path), "{path} not among {denied:?}");
    }
    let text = p.run(&["status"], Duration::from_secs(30));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("denied"), "{text}");
}

#[test]
fn an_overloaded_api_is_retried_without_using_up_the_agents_retries() {
    let Some(bin) = claude_or_skip("an_overloaded_api_is_retried") else {
        return;
    };
    let model = FakeModel::start(Script::do_task().fail_first(1, ApiError::Overloaded));
    let p = ClaudeProject::new(bin, &model);
    p.agent_key("brand-messaging", "retries: 0");
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
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = p.status();
    let t = &tasks(&s)[0];
    assert_eq!(t["state"]["outcome"]["outcome"], "complete", "{t}");
    assert_eq!(t["attempt"], 1, "{t}");
    assert_eq!(t["api_retries"], 1, "{t}");
}

#[test]
fn a_bad_api_key_fails_the_task_at_once_with_the_clis_message() {
    let Some(bin) = claude_or_skip("a_bad_api_key_fails") else {
        return;
    };
    let model = FakeModel::start(Script::do_task().fail_first(100, ApiError::Unauthorized));
    let p = ClaudeProject::new(bin, &model);
    let out = p.run(
        &["agent", "run", "brand-messaging", "--task", "Anything"],
        RUN,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("401") && err.contains("Invalid API key"),
        "{err}"
    );
    let s = p.status();
    let t = &tasks(&s)[0];
    assert_eq!(t["attempt"], 1, "no retry: {t}");
    assert_eq!(
        model.errors_sent(),
        1,
        "one request, not the CLI's ten retries"
    );
}

/// A missing `claude` is said by `gtmd check` and refuses a start, naming
/// how to install it, instead of failing every task it would be given.
#[test]
fn a_missing_claude_program_is_a_check_error_and_no_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(gtmd_bin())
        .args(["init", "--runtime", "claude-code"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let run = |args: &[&str]| {
        Command::new(gtmd_bin())
            .args(args)
            .current_dir(dir.path())
            .env("PATH", "/usr/bin:/bin")
            .env_remove("GTMD_CLAUDE_BIN")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let check = run(&["check"]);
    assert_eq!(check.status.code(), Some(1));
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("agents/coordinator.md")
            && text.contains("npm install -g @anthropic-ai/claude-code"),
        "{text}"
    );
    let start = run(&["agent", "run", "coordinator", "--task", "x"]);
    assert_eq!(start.status.code(), Some(1), "{start:?}");
    let err = String::from_utf8_lossy(&start.stderr);
    assert!(
        err.contains("refusing to start") && err.contains("claude"),
        "{err}"
    );
}
