//! `gtmd init`: the layout a team starts from: the workspace directories of
//! the guide, the seven agent definitions and a CONFIG.md to fill in. Never
//! overwrites a file that exists.

use crate::agents::{RuntimeName, BUILTIN_AGENTS};
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;

/// The directories of the guide's workspace, plus the bus's own.
pub const WORKSPACE_DIRS: &[&str] = &[
    "strategy/personas",
    "strategy/decisions",
    "strategy/gates",
    "messaging",
    "analytics",
    "demand-gen",
    "sales-enablement",
    "pipeline",
    "customer-success",
    "learnings",
    "conflicts",
    "status",
    "inbox",
    "runs",
    "requests",
];

pub const CONFIG_TEMPLATE: &str = include_str!("../CONFIG.md");

/// The price table `gtmd init` writes: its shape, and no price (gtmd ships
/// none; see `src/prices.rs`).
pub const PRICES_TEMPLATE: &str = "\
# What tokens cost, for runtimes that report tokens and not dollars (Codex):
# USD per million tokens, per model, as your provider bills you. gtmd ships
# no prices. A model missing here shows its tokens and \"price unknown\", and
# a run with --max-cost that could give it a task refuses to start
# (--max-tokens works whatever the price). `gtmd check` validates this file.
#
# gpt-5.5:
#   input: 0.00          # per million input tokens, not cached
#   cached_input: 0.00   # per million cached input tokens
#   output: 0.00         # per million output tokens, reasoning included
";

/// The model `gtmd init --runtime codex` gives each agent: Codex offers its
/// `apply_patch` tool only with a model it knows, and gtmd prices tokens by
/// the model the agent file names.
pub const CODEX_MODEL: &str = "gpt-5.5";

/// `runtime`: the agent files run their tasks through that runtime
/// (`gtmd init --runtime claude-code|codex`); else their tasks go to the
/// inbox. A `prices.yaml` with no prices comes beside `agents/`.
pub fn init(dir: &Path, runtime: Option<RuntimeName>) -> Result<()> {
    let ws = dir.join("workspace");
    for d in WORKSPACE_DIRS {
        let p = ws.join(d);
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    let agents = dir.join("agents");
    fs::create_dir_all(&agents)?;
    let mut written = Vec::new();
    for (name, text) in BUILTIN_AGENTS {
        let text = match runtime {
            Some(r) => with_runtime(text, r),
            None => text.to_string(),
        };
        if write_new(&agents.join(name), &text)? {
            written.push(format!("agents/{name}"));
        }
    }
    if write_new(&dir.join("CONFIG.md"), CONFIG_TEMPLATE)? {
        written.push("CONFIG.md".into());
    }
    if write_new(&dir.join("prices.yaml"), PRICES_TEMPLATE)? {
        written.push("prices.yaml".into());
    }
    crate::outln!(
        "initialised {}: workspace/ ({} directories){}",
        dir.display(),
        WORKSPACE_DIRS.len(),
        if written.is_empty() {
            String::new()
        } else {
            format!(", {}", written.join(", "))
        }
    )?;
    crate::outln!("next: fill in CONFIG.md, then `gtmd run` and `gtmd team run --phases all --config CONFIG.md`")?;
    Ok(())
}

/// A shipped agent file with its runtime line switched on (and for Codex
/// a model it knows, in place of the commented Claude model).
fn with_runtime(text: &str, runtime: RuntimeName) -> String {
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("every shipped agent file has a `{prefix}` line"))
    };
    let text = text.replacen(
        line("# runtime: "),
        &format!("runtime: {}", runtime.as_str()),
        1,
    );
    match runtime {
        RuntimeName::Codex => text.replacen(line("# model: "), &format!("model: {CODEX_MODEL}"), 1),
        RuntimeName::ClaudeCode => text,
    }
}

fn write_new(path: &Path, text: &str) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_with_a_runtime_writes_agent_files_that_use_it() {
        for (name, text) in BUILTIN_AGENTS {
            let path = format!("agents/{name}");
            let plain = crate::agents::parse_agent(&path, text).unwrap();
            assert_eq!(plain.runtime, None, "{name}");
            let with = with_runtime(text, RuntimeName::ClaudeCode);
            let def = crate::agents::parse_agent(&path, &with).unwrap();
            assert_eq!(def.runtime, Some(RuntimeName::ClaudeCode), "{name}");
            assert_eq!(def.model, None, "{name}");
            assert_eq!(def.role, plain.role);
            let codex = with_runtime(text, RuntimeName::Codex);
            let def = crate::agents::parse_agent(&path, &codex).unwrap();
            assert_eq!(def.runtime, Some(RuntimeName::Codex), "{name}");
            assert_eq!(def.model.as_deref(), Some(CODEX_MODEL), "{name}");
        }
    }

    #[test]
    fn the_price_table_template_is_valid_and_prices_nothing() {
        let p = crate::prices::Prices::parse("prices.yaml", PRICES_TEMPLATE).unwrap();
        assert_eq!(p.get(CODEX_MODEL), None);
    }
}
