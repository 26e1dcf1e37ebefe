use super::stream::api_error;
use super::*;
use crate::engine::{ApiError, RuntimeReport};

const WS: &str = "/tmp/gtmd-codex-test/ws";

fn scopes() -> Vec<String> {
    ["conflicts/**", "messaging/**", "status/brand-messaging.md"]
        .map(String::from)
        .to_vec()
}

/// Feed a recorded stream (tests/fixtures/codex), and these stderr lines.
fn read(fixture: &str, extra: &[&str], price: Option<Price>) -> RuntimeReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codex")
        .join(fixture);
    let text = std::fs::read(path).unwrap();
    let mut r: Box<dyn StreamReader> = Box::new(CodexStream::new(Path::new(WS), scopes(), price));
    for line in text.split(|b| *b == b'\n') {
        r.line(line);
    }
    for line in extra {
        r.line(line.as_bytes());
    }
    r.finish().unwrap()
}

const PRICE: Price = Price {
    input: 2.0,
    cached_input: 0.5,
    output: 8.0,
};

#[test]
fn tokens_are_priced_from_the_table_with_cached_input_apart() {
    // success.jsonl: 2000 in (400 cached), 200 out.
    let r = read("success.jsonl", &[], Some(PRICE));
    let c = r.cost.unwrap();
    assert_eq!(
        (
            c.input_tokens,
            c.cache_read_tokens,
            c.output_tokens,
            c.turns
        ),
        (1600, 400, 200, 1)
    );
    let usd = (1600.0 * 2.0 + 400.0 * 0.5 + 200.0 * 8.0) / 1e6;
    assert!((c.usd - usd).abs() < 1e-12, "{c:?}");
    assert!(!c.price_unknown);
    assert!(r.unowned_writes.is_empty() && r.denials.is_empty());
    assert!(r.session.is_some());
    assert_eq!(r.error, None);
}

#[test]
fn a_model_with_no_price_reports_its_tokens_and_price_unknown() {
    let c = read("success.jsonl", &[], None).cost.unwrap();
    assert!(c.price_unknown);
    assert_eq!((c.usd, c.tokens()), (0.0, 2200));
    assert_eq!(c.money(), "price unknown");
}

#[test]
fn a_file_the_agent_does_not_own_is_named_by_workspace_path() {
    let r = read("unowned-write.jsonl", &[], Some(PRICE));
    assert_eq!(r.unowned_writes, ["status/summary.md"]);
}

#[test]
fn a_patch_codex_rejected_is_a_denial_without_a_path() {
    let r = read(
        "rejected.jsonl",
        &["2026-11-30T03:43:24.963460Z ERROR codex_core::tools::router: error=patch rejected: writing outside of the project; rejected by user approval settings"],
        Some(PRICE),
    );
    assert_eq!(r.denials.len(), 1);
    assert!(
        r.denials[0].tool.starts_with("apply_patch (1 patch"),
        "{:?}",
        r.denials
    );
    assert!(
        r.unowned_writes.is_empty(),
        "the one applied write was its own"
    );
}

#[test]
fn api_errors_are_told_apart_from_turn_failed() {
    for (fixture, status, transient) in [
        ("error-429.jsonl", Some(429), true),
        ("error-503.jsonl", Some(503), true),
        ("error-500.jsonl", Some(500), true),
        ("error-401.jsonl", Some(401), false),
        ("error-400.jsonl", None, false),
    ] {
        let r = read(fixture, &[], None);
        assert!(r.cost.is_none(), "{fixture}");
        match (r.error, transient) {
            (Some(ApiError::Transient { status: s, .. }), true)
            | (Some(ApiError::Fatal { status: s, .. }), false) => {
                assert_eq!(s, status, "{fixture}")
            }
            (e, _) => panic!("{fixture}: {e:?}"),
        }
    }
    let Some(ApiError::Fatal { message, .. }) = read("error-400.jsonl", &[], None).error else {
        panic!()
    };
    assert_eq!(message, "Invalid value for 'input'.");
    assert_eq!(api_error("the model refused"), None);
}

#[test]
fn the_profile_writes_in_owned_directories_and_protects_other_agents_files_there() {
    let others: Vec<String> = [
        "status/coordinator.md",
        "learnings/coordinator.md",
        "strategy/**",
        "strategy/gates/**",
        "conflicts/**",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        profile(&scopes(), &others),
        r#"permissions.gtmd.filesystem={":root"="read", ":workspace_roots"={"."="read", "conflicts"="write", "messaging"="write", "status"="write", "status/coordinator.md"="read"}}"#
    );
    assert!(owns(&scopes(), "messaging/a/b.md"));
    assert!(!owns(&scopes(), "messaging"));
    assert!(!owns(&scopes(), "status/coordinator.md"));
}

#[test]
fn only_other_agents_files_that_exist_are_protected() {
    // Codex makes (and later removes) a placeholder for a protected path
    // that does not exist, which races with the agent that writes it.
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join("status")).unwrap();
    std::fs::write(ws.path().join("status/coordinator.md"), "x").unwrap();
    std::fs::create_dir_all(ws.path().join("strategy/gates")).unwrap();
    let codex = Codex {
        bin: Err("unused".into()),
        scopes: scopes(),
        others: [
            "status/coordinator.md",
            "status/growth-analyst.md",
            "strategy/gates/**",
            "strategy/decisions/**",
        ]
        .map(String::from)
        .to_vec(),
        price: None,
    };
    assert_eq!(
        codex.existing_others(ws.path()),
        ["status/coordinator.md", "strategy/gates/**"]
    );
}

#[test]
fn the_argv_confines_writes_passes_the_prompt_and_puts_the_task_last() {
    let spec = crate::engine::TaskSpec {
        id: "t0002-messaging-framework".into(),
        agent: "brand-messaging".into(),
        run: None,
        phase: Some(1),
        phase_name: None,
        step: None,
        text: "--model other".into(),
        trigger: "t".into(),
        inputs: vec![],
        outputs: vec![],
        details: vec![],
        context: vec![],
        attempt: 1,
        business_context: String::new(),
        budget_usd: None,
        resume: None,
    };
    let files = super::super::TaskFiles {
        prompt: "/state/tasks/t.md".into(),
        context: "/state/tasks/t.context".into(),
    };
    let agent = crate::agents::parse_agent(
        "agents/brand-messaging.md",
        "---\nname: brand-messaging\nruntime: codex\nmodel: gpt-5.5\n---\nRole.\n",
    )
    .unwrap();
    let ws = tempfile::tempdir().unwrap();
    let rt = Codex {
        bin: Ok("/opt/codex".into()),
        scopes: scopes(),
        others: vec!["status/coordinator.md".into()],
        price: None,
    };
    let p = rt
        .process(&TaskContext {
            spec: &spec,
            agent: Some(&agent),
            workspace: ws.path(),
            files: &files,
            prompt: "# Task\n\"quoted\"\n",
        })
        .unwrap();
    assert_eq!(&p.argv[..4], ["/opt/codex", "-a", "never", "exec"]);
    assert!(p.argv.windows(2).any(|w| w == ["--disable", "shell_tool"]));
    assert!(p.argv.contains(&"default_permissions=\"gtmd\"".to_string()));
    assert!(p
        .argv
        .contains(&"developer_instructions=\"# Task\\n\\\"quoted\\\"\\n\"".to_string()));
    assert!(p.argv.windows(2).any(|w| w == ["-m", "gpt-5.5"]));
    assert!(!p.argv.iter().any(|a| a == "workspace-write"));
    assert_eq!(&p.argv[p.argv.len() - 2..], ["--", "--model other"]);
    // The directories it owns exist for Codex to write into.
    assert!(ws.path().join("messaging").is_dir() && ws.path().join("status").is_dir());
}
