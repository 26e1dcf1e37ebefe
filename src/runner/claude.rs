//! Claude Code as a runtime: the argv of `claude -p` for a task, with the
//! agent's write permission limited to what the playbook says it owns, and
//! the reader of its `stream-json` output that tells what the task cost.
//!
//! What the CLI does was found by running it against a scripted model
//! (`tests/fixtures/claude/FACTS.md`, pinned by `tests/claude_cli.rs`). The
//! points this module rests on:
//! - The least privilege is the CLI's own: in `-p` mode with the default
//!   permission mode a Write or Edit no `--allowedTools` rule covers is
//!   denied, and listed in the result's `permission_denials`. `Edit(/dir/**)`
//!   rules scope Write as well; the leading `/` anchors them at the working
//!   directory (the workspace) — without it `Edit(messaging/**)` would match
//!   any `messaging` directory at any depth. Never `acceptEdits` (it allows
//!   every write in the workspace, `.gtmd/` included) and never a bare
//!   `Write` rule (it allows every path). `--setting-sources ""` keeps a
//!   user's own settings from widening the rules.
//! - `--tools` is the model's whole tool set: Bash only when the agent's
//!   `tools:` asks for it.
//! - The task text goes after `--`: `--tools` and `--allowedTools` take every
//!   word that follows them.
//! - The final `result` event has the run's cost (`total_cost_usd`, tokens
//!   in `modelUsage`), its session, its denials and, on an API error,
//!   `api_error_status`; `--max-budget-usd` ends a run with
//!   `error_max_budget_usd`.

use super::runtime::{
    bounded, find_program, task_env, ProcessSpec, Program, Runtime, StreamReader, TaskContext,
};
use super::StartError;
use crate::engine::{ApiError, Cost, Denial, RuntimeReport};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The tools every agent has: read the workspace, write what it owns.
const BASE_TOOLS: [&str; 5] = ["Read", "Write", "Edit", "Glob", "Grep"];

/// The environment variable naming the `claude` program.
pub const BIN_ENV: &str = "GTMD_CLAUDE_BIN";

/// How to install the CLI, for messages.
pub const INSTALL: &str = "npm install -g @anthropic-ai/claude-code";

#[derive(Debug, Clone)]
pub struct ClaudeCode {
    /// The `claude` program, or why it was not found.
    pub bin: Result<PathBuf, String>,
    /// What the agent may write (workspace-relative patterns, `dir/**`).
    pub scopes: Vec<String>,
}

/// Where the `claude` program is: the agent's `claude_bin`, else
/// `GTMD_CLAUDE_BIN`, else `claude` on the PATH.
pub fn find_bin(agent_bin: Option<&str>) -> Result<PathBuf, String> {
    find_program(
        &Program {
            name: "claude",
            env: BIN_ENV,
            key: "claude_bin",
            install: INSTALL,
            what: "the Claude Code CLI",
        },
        agent_bin,
    )
}

impl Runtime for ClaudeCode {
    fn process(&self, task: &TaskContext<'_>) -> Result<ProcessSpec, StartError> {
        let bin = self.bin.clone().map_err(StartError::Runtime)?;
        let agent = task.agent;
        let extra_tools = agent.and_then(|a| a.tools.clone()).unwrap_or_default();
        let mut tools: Vec<String> = BASE_TOOLS.iter().map(|t| t.to_string()).collect();
        for t in &extra_tools {
            // `Bash(git *)` names the tool Bash.
            let name = t.split('(').next().unwrap_or(t).trim().to_string();
            if !tools.contains(&name) {
                tools.push(name);
            }
        }
        let mut allowed = vec!["Read".to_string(), "Glob".into(), "Grep".into()];
        allowed.extend(self.scopes.iter().map(|s| format!("Edit(/{s})")));
        allowed.extend(
            extra_tools
                .iter()
                .filter(|t| !BASE_TOOLS.contains(&t.as_str()))
                .cloned(),
        );
        let mut argv = vec![
            bin.display().to_string(),
            "-p".into(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
            "--setting-sources".into(),
            String::new(),
            "--append-system-prompt-file".into(),
            task.files.prompt.display().to_string(),
            "--tools".into(),
            tools.join(","),
            "--allowedTools".into(),
            allowed.join(","),
        ];
        if let Some(model) = agent.and_then(|a| a.model.as_deref()) {
            argv.extend(["--model".into(), model.to_string()]);
        }
        let budget = [agent.and_then(|a| a.max_cost), task.spec.budget_usd]
            .into_iter()
            .flatten()
            .reduce(f64::min);
        if let Some(usd) = budget {
            argv.extend(["--max-budget-usd".into(), format!("{usd:.4}")]);
        }
        if let Some(session) = &task.spec.resume {
            argv.extend(["--resume".into(), session.clone()]);
        }
        argv.push("--".into());
        argv.push(bounded(&task.spec.text, task.files).into_owned());
        let mut env = task_env(task.spec, task.workspace, task.files);
        // gtmd retries passing API errors itself, with its backoff, and
        // fails the others at once; the CLI's own ten retries would take
        // three minutes to report a bad key. A value in gtmd's environment
        // is the team's choice and wins.
        if std::env::var_os("CLAUDE_CODE_MAX_RETRIES").is_none() {
            env.push(("CLAUDE_CODE_MAX_RETRIES", "0".into()));
        }
        Ok(ProcessSpec { argv, env })
    }

    fn reader(&self, task: &TaskContext<'_>) -> Option<Box<dyn StreamReader>> {
        Some(Box::new(ClaudeStream::new(task.workspace)))
    }
}

/// Reads `claude -p --output-format stream-json` into a report: the
/// session from the first event, everything else from the `result` event.
pub struct ClaudeStream {
    workspace: PathBuf,
    session: Option<String>,
    report: Option<RuntimeReport>,
}

impl ClaudeStream {
    pub fn new(workspace: &Path) -> ClaudeStream {
        ClaudeStream {
            workspace: workspace.to_path_buf(),
            session: None,
            report: None,
        }
    }

    fn result(&self, v: &Value) -> RuntimeReport {
        let num = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        // Tokens from `modelUsage`, which covers the whole run even when it
        // ended at its budget (then `usage` holds the last answer only).
        let mut cost = Cost {
            usd: v["total_cost_usd"].as_f64().unwrap_or(0.0),
            turns: num(v.get("num_turns")),
            ..Cost::default()
        };
        match v.get("modelUsage").and_then(Value::as_object) {
            Some(models) => {
                for m in models.values() {
                    cost.input_tokens += num(m.get("inputTokens"));
                    cost.output_tokens += num(m.get("outputTokens"));
                    cost.cache_read_tokens += num(m.get("cacheReadInputTokens"));
                    cost.cache_creation_tokens += num(m.get("cacheCreationInputTokens"));
                }
            }
            None => {
                let u = &v["usage"];
                cost.input_tokens = num(u.get("input_tokens"));
                cost.output_tokens = num(u.get("output_tokens"));
                cost.cache_read_tokens = num(u.get("cache_read_input_tokens"));
                cost.cache_creation_tokens = num(u.get("cache_creation_input_tokens"));
            }
        }
        let denials = v["permission_denials"]
            .as_array()
            .map(|d| d.iter().map(|d| self.denial(d)).collect())
            .unwrap_or_default();
        let is_error = v["is_error"].as_bool().unwrap_or(false);
        let status = v["api_error_status"].as_u64().map(|s| s as u16);
        let message = v["result"]
            .as_str()
            .map(String::from)
            .or_else(|| {
                v["errors"]
                    .as_array()
                    .and_then(|e| e.first())
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or_default();
        let error = (is_error && status.is_some()).then(|| ApiError::of_status(status, message));
        RuntimeReport {
            cost: Some(cost),
            session: v["session_id"]
                .as_str()
                .map(String::from)
                .or_else(|| self.session.clone()),
            denials,
            error,
            over_budget: v["subtype"].as_str() == Some("error_max_budget_usd"),
            unowned_writes: Vec::new(),
        }
    }

    /// A denied tool call: the tool, and the file (workspace-relative when
    /// it lies inside) or the command it was for.
    fn denial(&self, d: &Value) -> Denial {
        let input = &d["tool_input"];
        let path = input["file_path"]
            .as_str()
            .map(|p| {
                Path::new(p)
                    .strip_prefix(&self.workspace)
                    .map(|r| r.display().to_string())
                    .unwrap_or_else(|_| p.to_string())
            })
            .or_else(|| input["command"].as_str().map(String::from))
            .or_else(|| input["path"].as_str().map(String::from));
        Denial {
            tool: d["tool_name"].as_str().unwrap_or("?").to_string(),
            path: path.map(|p| crate::bounds::clip(&p, 300).into_owned()),
        }
    }
}

impl StreamReader for ClaudeStream {
    fn line(&mut self, line: &[u8]) {
        // Not every line is an event (a warning on stderr shares the pipe).
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        match v["type"].as_str() {
            Some("system") if self.session.is_none() => {
                self.session = v["session_id"].as_str().map(String::from);
            }
            Some("result") => self.report = Some(self.result(&v)),
            _ => {}
        }
    }

    fn finish(self: Box<Self>) -> Option<RuntimeReport> {
        // No result event (killed, crashed): the session may still resume.
        let ClaudeStream {
            session, report, ..
        } = *self;
        report.or_else(|| {
            session.map(|s| RuntimeReport {
                session: Some(s),
                ..RuntimeReport::default()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed a recorded stream (tests/fixtures/claude) to the reader.
    fn read(fixture: &str) -> RuntimeReport {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude")
            .join(fixture);
        let text = std::fs::read(path).unwrap();
        let mut r: Box<dyn StreamReader> =
            Box::new(ClaudeStream::new(Path::new("/tmp/gtmd-claude-test/ws")));
        for line in text.split(|b| *b == b'\n') {
            r.line(line);
        }
        r.finish().unwrap()
    }

    #[test]
    fn a_successful_run_reports_its_cost_tokens_turns_and_session() {
        let r = read("success.jsonl");
        let c = r.cost.unwrap();
        assert!((c.usd - 0.03725).abs() < 1e-12, "{c:?}");
        assert_eq!(
            (
                c.input_tokens,
                c.output_tokens,
                c.cache_read_tokens,
                c.cache_creation_tokens
            ),
            (2400, 600, 8000, 1000)
        );
        assert_eq!(c.turns, 7);
        assert_eq!(
            r.session.as_deref(),
            Some("84957d62-b004-4ad9-b8eb-a6ddffae0226")
        );
        assert_eq!((r.error, r.over_budget), (None, false));
        assert!(r.denials.is_empty());
    }

    #[test]
    fn api_errors_are_told_apart_by_status() {
        for (fixture, transient) in [
            ("error-529.jsonl", true),
            ("error-429.jsonl", true),
            ("error-401.jsonl", false),
        ] {
            let r = read(fixture);
            match (r.error, transient) {
                (Some(ApiError::Transient { .. }), true)
                | (Some(ApiError::Fatal { .. }), false) => {}
                (e, _) => panic!("{fixture}: {e:?}"),
            }
        }
        let Some(ApiError::Fatal { message, status }) = read("error-401.jsonl").error else {
            panic!()
        };
        assert_eq!(status, Some(401));
        assert!(message.contains("Invalid API key"), "{message}");
    }

    #[test]
    fn denied_writes_are_named_by_workspace_path() {
        let r = read("permission-denials.jsonl");
        assert!(!r.denials.is_empty());
        for d in &r.denials {
            assert!(!d.tool.is_empty());
            let p = d.path.as_deref().unwrap();
            assert!(!p.starts_with("/tmp/gtmd-claude-test/ws/"), "{p}");
        }
    }

    #[test]
    fn a_run_at_its_budget_says_so_and_counts_the_whole_runs_tokens() {
        let r = read("max-budget.jsonl");
        assert!(r.over_budget);
        assert_eq!(r.error, None);
        assert!(r.cost.unwrap().usd > 0.0);
    }

    #[test]
    fn the_argv_anchors_write_rules_at_the_workspace_and_puts_the_task_last() {
        let spec = crate::engine::TaskSpec {
            id: "t0002-messaging-framework".into(),
            agent: "brand-messaging".into(),
            run: None,
            phase: Some(1),
            phase_name: None,
            step: None,
            text: "--allowedTools Write".into(),
            trigger: "t".into(),
            inputs: vec![],
            outputs: vec![],
            details: vec![],
            context: vec![],
            attempt: 2,
            business_context: String::new(),
            budget_usd: Some(0.75),
            resume: Some("sess-1".into()),
        };
        let files = super::super::TaskFiles {
            prompt: "/state/tasks/t.md".into(),
            context: "/state/tasks/t.context".into(),
        };
        let mut agent = crate::agents::parse_agent(
            "agents/brand-messaging.md",
            "---\nname: brand-messaging\nruntime: claude-code\nmodel: sonnet\ntools: Read, WebSearch\nmax_cost: 0.5\n---\nRole.\n",
        )
        .unwrap();
        agent.bin = None;
        let rt = ClaudeCode {
            bin: Ok("/opt/claude".into()),
            scopes: vec!["messaging/**".into(), "status/brand-messaging.md".into()],
        };
        let p = rt
            .process(&TaskContext {
                spec: &spec,
                agent: Some(&agent),
                workspace: Path::new("/ws"),
                files: &files,
                prompt: "",
            })
            .unwrap();
        let at = |flag: &str| p.argv[p.argv.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(
            at("--allowedTools"),
            "Read,Glob,Grep,Edit(/messaging/**),Edit(/status/brand-messaging.md),WebSearch"
        );
        assert_eq!(at("--tools"), "Read,Write,Edit,Glob,Grep,WebSearch");
        assert_eq!(at("--model"), "sonnet");
        assert_eq!(
            at("--max-budget-usd"),
            "0.5000",
            "the smaller of the two caps"
        );
        assert_eq!(at("--resume"), "sess-1");
        assert_eq!(at("--setting-sources"), "");
        assert_eq!(at("--append-system-prompt-file"), "/state/tasks/t.md");
        // The task text, even one that looks like a flag, is the last word.
        assert_eq!(&p.argv[p.argv.len() - 2..], ["--", "--allowedTools Write"]);
        assert!(!p.argv.iter().any(|a| a == "acceptEdits" || a == "Write"));
    }
}
