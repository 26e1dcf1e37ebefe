//! `gtmd init`: the layout a team starts from: the workspace directories of
//! the guide, the seven agent definitions and a CONFIG.md to fill in. Never
//! overwrites a file that exists.

use crate::agents::BUILTIN_AGENTS;
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

pub fn init(dir: &Path) -> Result<()> {
    let ws = dir.join("workspace");
    for d in WORKSPACE_DIRS {
        let p = ws.join(d);
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    let agents = dir.join("agents");
    fs::create_dir_all(&agents)?;
    let mut written = Vec::new();
    for (name, text) in BUILTIN_AGENTS {
        if write_new(&agents.join(name), text)? {
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

fn write_new(path: &Path, text: &str) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}
