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

/// `runtime`: the agent files run their tasks through that runtime
/// (`gtmd init --runtime claude-code`); else their tasks go to the inbox.
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

/// A shipped agent file with its runtime line switched on.
fn with_runtime(text: &str, runtime: RuntimeName) -> String {
    let commented = text
        .lines()
        .find(|l| l.starts_with("# runtime: "))
        .expect("every shipped agent file has a commented runtime line");
    text.replacen(commented, &format!("runtime: {}", runtime.as_str()), 1)
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
            assert_eq!(def.role, plain.role);
        }
    }
}
