//! The real Codex CLI against the scripted Responses API, without gtmd: the
//! ground the codex runtime stands on. Each test pins one fact that
//! tests/fixtures/codex/FACTS.md records (the argv that works, what the
//! permission profile confines, the JSON events, tokens, API errors), so a
//! new CLI version that changes one fails here first, by name.
//!
//! Skipped, saying so, where the CLI is not installed (`.ci/install-codex.sh`),
//! unless `GTMD_REQUIRE_CODEX=1`. With `GTMD_RECORD_CODEX_FIXTURES=1` each
//! run's stdout is saved as tests/fixtures/codex/NAME.jsonl (temp paths
//! replaced by fixed ones), the sample lines FACTS.md quotes.

mod common;

use common::codex::{codex_or_skip, Codex, CodexRun, MODEL, PINNED_VERSION};
use common::fake_responses::{FakeResponses, Plan, Script, DEFAULT_USAGE};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

const TASK_ID: &str = "t0002-messaging-framework";

/// gtmd's prompt for a brand-messaging step, the part the fake reads.
fn prompt() -> String {
    format!(
        "# Task {TASK_ID} for brand-messaging\n\nWrite the messaging framework.\n\n\
         - task_id: `{TASK_ID}`\n\n## Expected outputs\n\n- `messaging/positioning.md`\n\n\
         ## When you are done\n\nWrite `status/brand-messaging.md`:\n\n```yaml\nagent: brand-messaging\n\
         task_id: {TASK_ID}\nstatus: complete\noutputs:\n  - messaging/positioning.md\n```\n"
    )
}

/// A workspace with the directories of gtmd's bus and files the agent must
/// not write.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("gtmd-codex-ws")
        .tempdir()
        .unwrap();
    for d in ["messaging", "status", "strategy/gates", ".gtmd"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    for (p, c) in [
        ("status/coordinator.md", "agent: coordinator\n"),
        ("strategy/gates/phase-1-strategy.md", "- [ ] personas\n"),
        (".gtmd/journal.jsonl", "{\"seq\":1}\n"),
    ] {
        fs::write(dir.path().join(p), c).unwrap();
    }
    dir
}

/// What gtmd's codex runtime gives brand-messaging: reads everywhere,
/// writes in `messaging/` and `status/` but not other agents' status files.
const PROFILE: &str = r#"permissions.gtmd.filesystem={":root"="read", ":workspace_roots"={"."="read", "messaging"="write", "status"="write", "status/coordinator.md"="read"}}"#;

/// The argv of gtmd's runtime, with `profile` as the permission profile.
fn gtmd_args<'a>(profile: &'a str, instructions: &'a str, task: &'a str) -> Vec<&'a str> {
    vec![
        "-a",
        "never",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--disable",
        "plugins",
        "--disable",
        "shell_tool",
        "-c",
        "default_permissions=\"gtmd\"",
        "-c",
        profile,
        "-c",
        instructions,
        "-m",
        MODEL,
        "--",
        task,
    ]
}

fn instructions() -> String {
    format!(
        "developer_instructions={}",
        serde_json::to_string(&prompt()).unwrap()
    )
}

fn run(codex: &Codex, ws: &Path, profile: &str, name: &str) -> CodexRun {
    let dev = instructions();
    let r = codex.run(
        ws,
        &gtmd_args(profile, &dev, "Write the framework"),
        TIMEOUT,
    );
    record(name, &r, ws, codex.home());
    r
}

/// With GTMD_RECORD_CODEX_FIXTURES=1, keep a run's stdout as a fixture.
fn record(name: &str, r: &CodexRun, ws: &Path, home: &Path) {
    if std::env::var("GTMD_RECORD_CODEX_FIXTURES").is_err() {
        return;
    }
    let text = r
        .stdout
        .replace(&ws.display().to_string(), "/tmp/gtmd-codex-test/ws")
        .replace(&home.display().to_string(), "/tmp/gtmd-codex-home");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codex")
        .join(format!("{name}.jsonl"));
    fs::write(path, text).unwrap();
}

fn read(ws: &Path, p: &str) -> String {
    fs::read_to_string(ws.join(p)).unwrap_or_default()
}

#[test]
fn the_pinned_version_is_the_one_tested() {
    let Some(bin) = codex_or_skip("the_pinned_version") else {
        return;
    };
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert_eq!(v.trim(), format!("codex-cli {PINNED_VERSION}"));
}

#[test]
fn exec_writes_through_apply_patch_and_reports_each_change_and_the_tokens() {
    let Some(bin) = codex_or_skip("exec_writes_through_apply_patch") else {
        return;
    };
    let model = FakeResponses::start(Script::do_task());
    let codex = Codex::new(bin, &model);
    let ws = workspace();
    let r = run(&codex, ws.path(), PROFILE, "success");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let kinds: Vec<String> = r
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("thread.started"));
    assert_eq!(kinds.last().map(String::as_str), Some("turn.completed"));
    // One file_change per patch, absolute paths, "completed".
    let root = ws.path().display().to_string();
    let changes = r.changes();
    for p in ["messaging/positioning.md", "status/brand-messaging.md"] {
        let abs = format!("{root}/{p}");
        assert!(
            changes
                .iter()
                .any(|(path, kind, st)| *path == abs && kind == "add" && st == "completed"),
            "{p} not among {changes:?}"
        );
        assert!(!read(ws.path(), p).is_empty(), "{p}");
    }
    // Three requests (a patch, a patch, a message); usage summed over
    // them, raw: input includes the cached tokens, output the reasoning ones.
    assert_eq!(model.answers(), 3);
    let u = &r.of_type("turn.completed")[0]["usage"];
    let n = model.answers() as u64;
    assert_eq!(u["input_tokens"], DEFAULT_USAGE.input_tokens * n);
    assert_eq!(u["cached_input_tokens"], DEFAULT_USAGE.cached_tokens * n);
    assert_eq!(u["output_tokens"], DEFAULT_USAGE.output_tokens * n);
    assert_eq!(
        u["reasoning_output_tokens"],
        DEFAULT_USAGE.reasoning_tokens * n
    );
    // The prompt reaches the model as developer text, the task as the user
    // turn, the workspace as the cwd; the shell tool is off.
    let req = &model.requests()[0];
    let input = req.body["input"].as_array().unwrap();
    let text = serde_json::to_string(input).unwrap();
    assert!(text.contains(&format!("- task_id: `{TASK_ID}`")), "{text}");
    assert!(text.contains(&format!("<cwd>{root}</cwd>")));
    let last = &input.last().unwrap()["content"][0]["text"];
    assert_eq!(last, "Write the framework");
    let tools: Vec<&str> = req.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"apply_patch"), "{tools:?}");
    assert!(!tools.contains(&"exec_command"), "{tools:?}");
    assert_eq!(req.body["model"], MODEL);
    assert_eq!(
        req.header("authorization"),
        Some("Bearer sk-fake-for-tests")
    );
}

#[test]
fn the_profile_rejects_a_patch_outside_the_writable_paths_before_applying_it() {
    let Some(bin) = codex_or_skip("the_profile_rejects_a_patch") else {
        return;
    };
    let model = FakeResponses::start(Script::new(Plan::write(&[
        ("status/coordinator.md", "overwritten\n"),
        ("strategy/gates/phase-1-strategy.md", "- [x] personas\n"),
        (".gtmd/journal.jsonl", "overwritten\n"),
        ("notes.md", "at the root\n"),
        ("messaging/ok.md", "mine\n"),
    ])));
    let codex = Codex::new(bin, &model);
    let ws = workspace();
    let r = run(&codex, ws.path(), PROFILE, "rejected");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        read(ws.path(), "status/coordinator.md"),
        "agent: coordinator\n"
    );
    assert_eq!(
        read(ws.path(), "strategy/gates/phase-1-strategy.md"),
        "- [ ] personas\n"
    );
    assert_eq!(read(ws.path(), ".gtmd/journal.jsonl"), "{\"seq\":1}\n");
    assert!(!ws.path().join("notes.md").exists());
    assert_eq!(read(ws.path(), "messaging/ok.md"), "mine\n");
    // A rejected patch leaves no file_change event: only a log line on
    // stderr, naming no path.
    let changed: Vec<String> = r.changes().into_iter().map(|c| c.0).collect();
    assert_eq!(
        changed,
        [format!("{}/messaging/ok.md", ws.path().display())],
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stderr
            .matches("patch rejected: writing outside of the project")
            .count(),
        4,
        "{}",
        r.stderr
    );
}

#[test]
fn a_new_file_in_a_writable_directory_is_applied_and_reported() {
    let Some(bin) = codex_or_skip("a_new_file_in_a_writable_directory") else {
        return;
    };
    // status/ is writable for the agent's own status file: another name in
    // it is written, and only the file_change event tells.
    let model = FakeResponses::start(Script::new(Plan::write(&[(
        "status/summary.md",
        "not a status of mine\n",
    )])));
    let codex = Codex::new(bin, &model);
    let ws = workspace();
    let r = run(&codex, ws.path(), PROFILE, "unowned-write");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.changes(),
        [(
            format!("{}/status/summary.md", ws.path().display()),
            "add".to_string(),
            "completed".to_string()
        )]
    );
}

#[test]
fn a_write_grant_on_a_single_file_fails_every_write_to_it() {
    let Some(bin) = codex_or_skip("a_write_grant_on_a_single_file") else {
        return;
    };
    let model = FakeResponses::start(Script::new(Plan::write(&[(
        "status/brand-messaging.md",
        "status: complete\n",
    )])));
    let codex = Codex::new(bin, &model);
    let ws = workspace();
    let file_grant = r#"permissions.gtmd.filesystem={":root"="read", ":workspace_roots"={"."="read", "status/brand-messaging.md"="write"}}"#;
    let r = run(&codex, ws.path(), file_grant, "file-grant");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!ws.path().join("status/brand-messaging.md").exists());
    let changes = r.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].2, "failed");
}

#[test]
fn a_writable_directory_that_does_not_exist_cannot_be_written() {
    let Some(bin) = codex_or_skip("a_writable_directory_that_does_not_exist") else {
        return;
    };
    let model = FakeResponses::start(Script::new(Plan::write(&[("analytics/report.md", "x\n")])));
    let codex = Codex::new(bin, &model);
    let ws = workspace();
    let grant = r#"permissions.gtmd.filesystem={":root"="read", ":workspace_roots"={"."="read", "analytics"="write"}}"#;
    let r = run(&codex, ws.path(), grant, "missing-dir");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!ws.path().join("analytics").exists());
    assert!(
        r.stderr.contains("Failed to create parent directories"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_legacy_workspace_write_sandbox_lets_any_file_of_the_workspace_be_written() {
    let Some(bin) = codex_or_skip("the_legacy_workspace_write_sandbox") else {
        return;
    };
    let model = FakeResponses::start(Script::new(Plan::write(&[(
        ".gtmd/journal.jsonl",
        "overwritten\n",
    )])));
    let codex = Codex::new(bin, &model);
    let ws = workspace();
    let r = codex.run(
        ws.path(),
        &[
            "-a",
            "never",
            "exec",
            "--json",
            "--skip-git-repo-check",
            "-s",
            "workspace-write",
            "--",
            "go",
        ],
        TIMEOUT,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(read(ws.path(), ".gtmd/journal.jsonl"), "overwritten\n");
}

#[test]
fn a_sandbox_mode_in_the_users_config_does_not_undo_the_profile() {
    let Some(bin) = codex_or_skip("a_sandbox_mode_in_the_users_config") else {
        return;
    };
    let model = FakeResponses::start(Script::new(Plan::write(&[(
        "status/coordinator.md",
        "overwritten\n",
    )])));
    let codex = Codex::new(bin, &model);
    let config = codex.home().join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        format!("sandbox_mode = \"danger-full-access\"\n{text}"),
    )
    .unwrap();
    let ws = workspace();
    let r = run(&codex, ws.path(), PROFILE, "user-sandbox-mode");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        read(ws.path(), "status/coordinator.md"),
        "agent: coordinator\n"
    );
}

/// An API error ends the run with exit 1 and a `turn.failed` event whose
/// message is the only place the status is told (none for a 500, the body
/// for a 400).
#[test]
fn api_errors_end_the_run_with_exit_1_and_turn_failed() {
    let Some(bin) = codex_or_skip("api_errors_end_the_run") else {
        return;
    };
    for (status, says) in [
        (429, "last status: 429 Too Many Requests"),
        (401, "unexpected status 401 Unauthorized: Incorrect API key"),
        (503, "unexpected status 503 Service Unavailable"),
        (500, "experiencing high demand"),
        (400, "\"invalid_request_error\""),
    ] {
        let model = FakeResponses::start(Script::do_task().fail_first(1, status));
        let codex = Codex::new(bin.clone(), &model);
        let ws = workspace();
        let r = run(&codex, ws.path(), PROFILE, &format!("error-{status}"));
        assert_eq!(r.code, Some(1), "{status}: {}", r.stderr);
        let failed = r.of_type("turn.failed");
        assert_eq!(failed.len(), 1, "{status}: {}", r.stdout);
        let message = failed[0]["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{status}: {message}");
        assert!(r.of_type("turn.completed").is_empty());
        assert_eq!(model.errors_sent(), 1, "{status}: no retry of its own");
    }
}
