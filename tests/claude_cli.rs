//! The real Claude Code CLI against the scripted model, without gtmd: the
//! ground the claude-code runtime stands on. Each test pins one fact that
//! tests/fixtures/claude/FACTS.md records (the argv that works, path-scoped
//! write permissions, the result event, costs, API errors, `--resume`), so a
//! new CLI version that changes one fails here first, by name.
//!
//! Skipped, saying so, where the CLI is not installed (`.ci/install-claude.sh`),
//! unless `GTMD_REQUIRE_CLAUDE=1`. With `GTMD_RECORD_CLAUDE_FIXTURES=1` each
//! run's stdout is saved as tests/fixtures/claude/NAME.jsonl (temp paths
//! replaced by fixed ones), the sample lines FACTS.md quotes.

mod common;

use common::claude::{claude_or_skip, Claude, ClaudeRun, PINNED_VERSION};
use common::fake_model::{
    ApiError, FakeModel, Plan, Script, Task, Usage, DEFAULT_USAGE, HAIKU, OPUS, SONNET,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

const AGENT: &str = "brand-messaging";
const TASK_ID: &str = "t0002-messaging-framework";
const TASK_TEXT: &str = "Write the messaging framework from the strategy.";

/// gtmd's prompt file for a brand-messaging step, as `src/runner/prompt.rs`
/// renders it.
fn prompt() -> String {
    format!(
        "# Task {TASK_ID} for {AGENT}\n\n{TASK_TEXT}\n\n\
         - task_id: `{TASK_ID}`\n- phase: 1 (strategy)\n- step: messaging-framework\n- trigger: step ready\n\n\
         ## Inputs (workspace paths)\n\n- `strategy/gtm-strategy.md`\n\n\
         ## Expected outputs (must exist and be non-empty; a path ending in / is a directory of files)\n\n\
         - `messaging/positioning.md`\n- `messaging/personas/`\n\n\
         ## When you are done\n\nWrite `status/{AGENT}.md`:\n\n```yaml\nagent: {AGENT}\nphase: 1\n\
         task_id: {TASK_ID}\ntask: \"{TASK_TEXT}\"\nstatus: complete   # or blocked / failed\n\
         outputs:\n  - messaging/positioning.md\n  - messaging/personas/\nblockers: none\nnext: \n```\n\n\
         ---\n\n## Your role\n\nYou own `messaging/`.\n"
    )
}

/// Files that exist before the task: one of the agent's own outputs (so the
/// CLI's read-before-write rule is exercised) and files it must not write.
const BEFORE: [(&str, &str); 4] = [
    ("messaging/positioning.md", "old positioning\n"),
    (
        "status/coordinator.md",
        "agent: coordinator\nstatus: complete\n",
    ),
    (
        "strategy/gates/phase-1-strategy.md",
        "- [ ] personas validated\n",
    ),
    (".gtmd/journal.jsonl", "{\"seq\":1}\n"),
];

/// A temp dir with the workspace `ws/` (the CLI's cwd) and the prompt file
/// beside it, as gtmd keeps prompts out of the agents' reach.
struct Ground {
    dir: tempfile::TempDir,
}

impl Ground {
    fn new() -> Ground {
        let dir = tempfile::Builder::new()
            .prefix("gtmd-claude-test")
            .tempdir()
            .unwrap();
        let g = Ground { dir };
        for (p, text) in BEFORE {
            g.write(p, text);
        }
        fs::write(g.prompt_file(), prompt()).unwrap();
        g
    }

    fn ws(&self) -> PathBuf {
        // The CLI reports the canonical path (/tmp may be a symlink).
        self.dir.path().canonicalize().unwrap().join("ws")
    }

    fn prompt_file(&self) -> PathBuf {
        self.dir.path().join("prompt.md")
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.ws().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.ws().join(rel)).unwrap_or_default()
    }

    fn abs(&self, rel: &str) -> String {
        self.ws().join(rel).display().to_string()
    }

    /// The argv gtmd's runtime would pass: the task as the user turn (after
    /// `--`, since `--allowedTools` takes every following word as a rule),
    /// the prompt file in the system prompt, no settings of the user's, and
    /// write permission for what the agent owns, anchored at the cwd.
    fn argv(&self, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--setting-sources",
            "",
            "--append-system-prompt-file",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(self.prompt_file().display().to_string());
        a.push("--allowedTools".into());
        // A leading / anchors a rule at the cwd; without it `messaging/**`
        // would match any directory named messaging at any depth.
        a.push(format!("Read,Edit(/messaging/**),Edit(/status/{AGENT}.md)"));
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push("--".into());
        a.push(TASK_TEXT.into());
        a
    }

    fn run(&self, claude: &Claude, extra: &[&str]) -> ClaudeRun {
        let argv = self.argv(extra);
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        claude.run(&self.ws(), &args, TIMEOUT)
    }

    /// With GTMD_RECORD_CLAUDE_FIXTURES=1, keep the run's stdout as a fixture.
    fn record(&self, claude: &Claude, name: &str, run: &ClaudeRun) {
        if std::env::var("GTMD_RECORD_CLAUDE_FIXTURES").is_ok_and(|v| v == "1") {
            let root = self
                .dir
                .path()
                .canonicalize()
                .unwrap()
                .display()
                .to_string();
            let home = claude.home().canonicalize().unwrap().display().to_string();
            let text = run
                .stdout
                .replace(&root, "/tmp/gtmd-claude-test")
                // The session directory's name is the cwd with / as -.
                .replace(&root.replace('/', "-"), "-tmp-gtmd-claude-test")
                .replace(&home, "/tmp/gtmd-claude-home")
                .replace(
                    claude
                        .var("ANTHROPIC_BASE_URL")
                        .trim_start_matches("http://"),
                    "127.0.0.1:PORT",
                );
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(format!("{name}.jsonl")), text).unwrap();
        }
    }
}

fn assert_cost(run: &ClaudeRun, expected: f64) {
    let cost = run.result()["total_cost_usd"].as_f64().unwrap();
    assert!(
        (cost - expected).abs() < 1e-9,
        "total_cost_usd {cost}, expected {expected}\n{}",
        run.stdout
    );
}

#[test]
fn the_fake_model_reads_gtmds_prompt() {
    let t = Task::parse(&prompt()).unwrap();
    assert_eq!(t.id, TASK_ID);
    assert_eq!(t.agent, AGENT);
    assert_eq!(
        t.outputs,
        ["messaging/positioning.md", "messaging/personas/"]
    );
    let tpl = t.status_template.unwrap();
    assert!(tpl.starts_with("agent: brand-messaging\n"), "{tpl}");
    assert_eq!(t.gate, None);
    let gate = Task::parse(
        "# Task t0009-gate-1 for coordinator\n\nReview the phase 1 quality gate: tick the 5 checklist item(s) in strategy/gates/phase-1-strategy.md\n\n- task_id: `t0009-gate-1`\n",
    )
    .unwrap();
    assert_eq!(gate.agent, "coordinator");
    assert_eq!(
        gate.gate.as_deref(),
        Some("strategy/gates/phase-1-strategy.md")
    );
}

#[test]
fn the_cli_does_a_task_for_the_fake_model_and_reports_its_usage_as_cost() {
    let Some(bin) = claude_or_skip("the_cli_does_a_task_for_the_fake_model") else {
        return;
    };
    let usage = Usage::new(1200, 300).with_cache(4000, 500);
    let model = FakeModel::start(Script::do_task().usage(usage));
    let claude = Claude::new(bin, &model);
    let g = Ground::new();
    let run = g.run(&claude, &[]);
    g.record(&claude, "success", &run);

    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let init = &run.of_type("system")[0];
    assert_eq!(init["subtype"], "init");
    assert_eq!(init["claude_code_version"], PINNED_VERSION);
    assert_eq!(init["cwd"], g.ws().display().to_string());

    // The outputs (an existing one overwritten after a Read), the directory
    // output's file, and the status from the template.
    assert!(g
        .read("messaging/positioning.md")
        .contains("Written by brand-messaging"));
    assert!(g.read("messaging/personas/item.md").contains(TASK_ID));
    let status = g.read("status/brand-messaging.md");
    assert!(status.contains("\nstatus: complete\n"), "{status}");
    assert!(status.contains(&format!("task_id: {TASK_ID}")), "{status}");

    // Two answers: the tool calls, then end_turn after their results.
    assert_eq!(model.answers(), 2);
    let r = run.result();
    assert_eq!(r["subtype"], "success");
    assert_eq!(r["is_error"], false);
    assert_eq!(r["permission_denials"], serde_json::json!([]));
    assert_eq!(r["session_id"], init["session_id"]);
    assert_eq!(r["result"], format!("Done: task {TASK_ID} for {AGENT}."));
    assert_eq!(r["usage"]["input_tokens"], 2 * 1200);
    assert_eq!(r["usage"]["output_tokens"], 2 * 300);
    assert_eq!(r["usage"]["cache_read_input_tokens"], 2 * 4000);
    assert_eq!(r["usage"]["cache_creation_input_tokens"], 2 * 500);
    assert!(r["duration_ms"].as_u64().is_some() && r["num_turns"].as_u64().unwrap() >= 2);
    assert_cost(&run, 2.0 * usage.cost_usd(OPUS));

    // What the CLI sent: the prompt file at the end of the system prompt, the
    // task as the user turn, the cwd, and the tool results in the second turn.
    let reqs = model.messages();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.path == "/v1/messages?beta=true"));
    assert_eq!(reqs[0].body["stream"], true);
    let system = reqs[0].system_text();
    assert!(system.contains(&format!("- task_id: `{TASK_ID}`")));
    assert!(system.contains(&format!("Primary working directory: {}", g.ws().display())));
    let user = &reqs[0].message_texts()[0].1;
    assert!(
        user.contains(TASK_TEXT) && !user.contains("task_id"),
        "{user}"
    );
    assert!(reqs[1].body.to_string().contains("tool_result"));
}

#[test]
fn a_write_outside_the_allowed_tools_is_denied_and_the_file_left_as_it_was() {
    let Some(bin) = claude_or_skip("a_write_outside_the_allowed_tools_is_denied") else {
        return;
    };
    let trespass = [
        "status/coordinator.md",
        "strategy/gates/phase-1-strategy.md",
        ".gtmd/journal.jsonl",
        "../outside.md",
    ];
    let model =
        FakeModel::start(Script::do_task().agent(AGENT, Plan::do_task().trespass(&trespass)));
    let claude = Claude::new(bin, &model);
    let g = Ground::new();
    let run = g.run(&claude, &[]);
    g.record(&claude, "permission-denials", &run);

    // A denied write is no failure of the run: the model is told and goes on.
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.result()["is_error"], false);
    for (p, text) in BEFORE.iter().skip(1) {
        assert_eq!(g.read(p), *text, "{p} was changed");
    }
    assert!(!g.ws().join("../outside.md").exists());
    // Its own files were written: Edit(dir/**) scopes Write as well.
    assert!(g
        .read("status/brand-messaging.md")
        .contains("status: complete"));

    // Each denial names the tool and the absolute path, normalized (the
    // model asked for `ws/../outside.md`).
    let mut expected: Vec<(String, String)> = trespass
        .iter()
        .map(|p| match p.strip_prefix("../") {
            Some(up) => g.ws().parent().unwrap().join(up).display().to_string(),
            None => g.abs(p),
        })
        .map(|p| ("Write".to_string(), p))
        .collect();
    expected.sort();
    let mut denials = run.denials();
    denials.sort();
    assert_eq!(denials, expected, "{}", run.stdout);
    // Every call of the answer got a result, denied ones included: the CLI
    // carried out the calls after a denial.
    let calls = run
        .of_type("assistant")
        .iter()
        .filter(|e| e["message"]["content"][0]["type"] == "tool_use")
        .count();
    assert_eq!(calls, 2 * (trespass.len() + 3));
    assert_eq!(run.of_type("user").len(), calls);
}

#[test]
fn an_api_error_ends_the_cli_with_exit_1_and_names_the_status() {
    let Some(bin) = claude_or_skip("an_api_error_ends_the_cli_with_exit_1") else {
        return;
    };
    for (err, name, says) in [
        (ApiError::Overloaded, "error-529", "529 Overloaded"),
        (ApiError::RateLimited, "error-429", "Request rejected (429)"),
        (ApiError::Unauthorized, "error-401", "Invalid API key"),
    ] {
        let status = err.status();
        let model = FakeModel::start(Script::do_task().fail_first(1, err));
        let claude = Claude::new(bin.clone(), &model);
        let g = Ground::new();
        let run = g.run(&claude, &[]);
        g.record(&claude, name, &run);
        assert_eq!(run.code, Some(1), "{status}: {}", run.stdout);
        let r = run.result();
        assert_eq!(r["is_error"], true, "{status}");
        // Not "error_…": an API error is a "success" subtype with is_error.
        assert_eq!(r["subtype"], "success", "{status}");
        assert_eq!(r["api_error_status"], status);
        assert!(r["result"].as_str().unwrap().contains(says), "{r}");
        assert_eq!(r["total_cost_usd"], 0.0);
        assert_eq!(model.errors_sent(), 1);
        assert_eq!(model.answers(), 0);
        assert_eq!(g.read("status/brand-messaging.md"), "");
    }
}

#[test]
fn the_cli_retries_an_api_error_itself_when_allowed_to() {
    let Some(bin) = claude_or_skip("the_cli_retries_an_api_error_itself") else {
        return;
    };
    let model = FakeModel::start(Script::do_task().fail_first(1, ApiError::Overloaded));
    let mut claude = Claude::new(bin, &model);
    claude.set_env("CLAUDE_CODE_MAX_RETRIES", "1");
    let g = Ground::new();
    let run = g.run(&claude, &[]);
    g.record(&claude, "retry-then-success", &run);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let retry = run
        .of_type("system")
        .into_iter()
        .find(|e| e["subtype"] == "api_retry")
        .expect("an api_retry event");
    assert_eq!(retry["attempt"], 1);
    assert_eq!(retry["max_retries"], 1);
    assert_eq!(retry["error_status"], 529);
    assert_eq!(retry["error"], "overloaded");
    assert!(retry["retry_delay_ms"].as_f64().unwrap() > 0.0);
    // The failed attempt cost nothing.
    assert_cost(&run, 2.0 * DEFAULT_USAGE.cost_usd(OPUS));
    assert!(g
        .read("status/brand-messaging.md")
        .contains("status: complete"));
}

#[test]
fn the_budget_cap_ends_the_cli_after_the_answer_that_reached_it() {
    let Some(bin) = claude_or_skip("the_budget_cap_ends_the_cli") else {
        return;
    };
    let model = FakeModel::start(Script::do_task());
    let claude = Claude::new(bin, &model);
    let g = Ground::new();
    // One answer costs 0.0075 (1000 in, 100 out at the default model's
    // prices): the first stays under 0.01, the second (the closing text,
    // after the work is done) reaches it.
    let run = g.run(&claude, &["--max-budget-usd", "0.01"]);
    g.record(&claude, "max-budget", &run);
    assert_eq!(model.answers(), 2);
    assert!(g
        .read("status/brand-messaging.md")
        .contains("status: complete"));
    // An error all the same, though the task's files are written.
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let r = run.result();
    assert_eq!(r["subtype"], "error_max_budget_usd");
    assert_eq!(r["is_error"], true);
    assert_eq!(r["errors"][0], "Reached maximum budget ($0.01)");
    assert_eq!(r.get("result"), None);
    assert_cost(&run, 2.0 * DEFAULT_USAGE.cost_usd(OPUS));
    // Here `usage` is the last answer's alone; `modelUsage` has the run's.
    assert_eq!(r["usage"]["input_tokens"], 1000);
    assert_eq!(r["modelUsage"]["claude-opus-4-8[1m]"]["inputTokens"], 2000);
    assert_eq!(r["modelUsage"]["claude-opus-4-8[1m]"]["outputTokens"], 200);

    // A cap the first answer reaches: its tool calls are not carried out.
    let model = FakeModel::start(Script::do_task());
    let claude = Claude::new(claude.bin.clone(), &model);
    let g = Ground::new();
    let run = g.run(&claude, &["--max-budget-usd", "0.005"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert_eq!(run.result()["subtype"], "error_max_budget_usd");
    assert_eq!(model.answers(), 1);
    assert_eq!(g.read("status/brand-messaging.md"), "");
    assert_eq!(g.read("messaging/positioning.md"), "old positioning\n");
}

#[test]
fn resume_sends_the_earlier_conversation_and_costs_only_the_new_turns() {
    let Some(bin) = claude_or_skip("resume_sends_the_earlier_conversation") else {
        return;
    };
    let model = FakeModel::start(Script::reply("first answer"));
    let claude = Claude::new(bin, &model);
    let g = Ground::new();
    let first = g.run(&claude, &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let session = first.result()["session_id"].as_str().unwrap().to_string();

    let second = g.run(&claude, &["--resume", &session]);
    g.record(&claude, "resume", &second);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(second.result()["session_id"], session.as_str());
    assert_cost(&second, DEFAULT_USAGE.cost_usd(OPUS));
    let texts = model.messages()[1].message_texts();
    let roles: Vec<&str> = texts.iter().map(|(r, _)| r.as_str()).collect();
    assert!(roles.contains(&"assistant"), "{roles:?}");
    assert!(texts
        .iter()
        .any(|(r, t)| r == "assistant" && t == "first answer"));
}

#[test]
fn model_aliases_are_priced_as_recorded() {
    let Some(bin) = claude_or_skip("model_aliases_are_priced_as_recorded") else {
        return;
    };
    let usage = Usage::new(1_000_000, 100_000).with_cache(1_000_000, 100_000);
    for (model_arg, sent, prices) in [
        ("sonnet", "claude-sonnet-5", SONNET),
        ("haiku", "claude-haiku-4-5-20251001", HAIKU),
        ("claude-sonnet-4-5", "claude-sonnet-4-5", SONNET),
    ] {
        let model = FakeModel::start(Script::reply("ok").usage(usage));
        let claude = Claude::new(bin.clone(), &model);
        let g = Ground::new();
        let run = g.run(&claude, &["--model", model_arg]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(model.messages()[0].body["model"], sent);
        assert_cost(&run, usage.cost_usd(prices));
    }
}

#[test]
fn bash_runs_only_read_only_commands_unless_allowed_and_tools_can_remove_it() {
    let Some(bin) = claude_or_skip("bash_runs_only_read_only_commands_unless_allowed") else {
        return;
    };
    let plan = || {
        Plan::do_task()
            .call(
                "Bash",
                serde_json::json!({"command": "cat status/coordinator.md"}),
            )
            .call(
                "Bash",
                serde_json::json!({"command": "rm status/coordinator.md"}),
            )
    };
    let coordinator = BEFORE[1];

    // Default mode, Bash not in --allowedTools: a read-only command runs
    // without asking, one that writes is denied.
    let model = FakeModel::start(Script::new(plan()));
    let claude = Claude::new(bin.clone(), &model);
    let g = Ground::new();
    let run = g.run(&claude, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(g.read(coordinator.0), coordinator.1);
    let denials = run.denials();
    assert_eq!(
        denials,
        [("Bash".to_string(), "rm status/coordinator.md".to_string())]
    );
    let cat = run
        .of_type("user")
        .into_iter()
        .find(|u| u["tool_use_result"]["stdout"].is_string())
        .expect("the cat's result");
    assert_eq!(cat["tool_use_result"]["stdout"], coordinator.1.trim_end());

    // `Bash` in --allowedTools: every command runs, writes included; its
    // rule is not scoped by the Edit(...) rules.
    let model = FakeModel::start(Script::new(plan()));
    let claude = Claude::new(bin.clone(), &model);
    let g = Ground::new();
    let run = g.run(&claude, &["--allowedTools", "Bash"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!g.ws().join(coordinator.0).exists());

    // --tools without Bash: no such tool, so no call and no denial either.
    let model = FakeModel::start(Script::new(plan()));
    let claude = Claude::new(bin, &model);
    let g = Ground::new();
    let run = g.run(&claude, &["--tools", "Read,Write,Edit,Glob,Grep"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.of_type("system")[0]["tools"],
        serde_json::json!(["Edit", "Glob", "Grep", "Read", "Write"])
    );
    assert_eq!(model.messages()[0].tool_names().len(), 5);
    assert_eq!(run.denials(), []);
    assert_eq!(g.read(coordinator.0), coordinator.1);
    assert!(g
        .read("status/brand-messaging.md")
        .contains("status: complete"));
}

#[test]
fn a_rule_is_anchored_at_the_cwd_only_with_a_leading_slash() {
    let Some(bin) = claude_or_skip("a_rule_is_anchored_at_the_cwd_only_with_a_leading_slash")
    else {
        return;
    };
    let files = [
        ("messaging/x.md", "W\n"),
        ("strategy/messaging/x.md", "W\n"),
        ("status/brand-messaging.md", "W\n"),
        ("old/status/brand-messaging.md", "W\n"),
    ];
    for (rules, written) in [
        // gitignore-style: a directory pattern without a leading / matches
        // at any depth, `./` does not anchor it either.
        (
            "Edit(messaging/**)",
            &["messaging/x.md", "strategy/messaging/x.md"][..],
        ),
        (
            "Edit(./messaging/**)",
            &["messaging/x.md", "strategy/messaging/x.md"][..],
        ),
        ("Edit(/messaging/**)", &["messaging/x.md"][..]),
        (
            "Edit(status/brand-messaging.md)",
            &["status/brand-messaging.md"][..],
        ),
        (
            "Edit(/status/brand-messaging.md)",
            &["status/brand-messaging.md"][..],
        ),
    ] {
        let model = FakeModel::start(Script::new(Plan::write(&files)));
        let claude = Claude::new(bin.clone(), &model);
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().canonicalize().unwrap();
        let run = claude.run(
            &ws,
            &[
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--setting-sources",
                "",
                "--allowedTools",
                rules,
                "--",
                "go",
            ],
            TIMEOUT,
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let found: Vec<&str> = files
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| ws.join(p).exists())
            .collect();
        assert_eq!(found, written, "{rules}");
        assert_eq!(run.denials().len(), files.len() - written.len(), "{rules}");
    }
}
