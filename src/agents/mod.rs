//! The seven agents: their canonical names, the aliases people type, and the
//! definitions in `agents/<name>.md`.
//!
//! A definition has the same shape as a Claude Code `.claude/agents/*.md` file
//! (YAML front matter, markdown body), so a team's existing agent files carry
//! over. The body is the agent's role and is handed to it with every task.

use crate::diagnostic::Diagnostic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Canonical agent names, in the guide's order.
pub const AGENTS: [&str; 7] = [
    "coordinator",
    "brand-messaging",
    "growth-analyst",
    "demand-generation",
    "sales-enablement",
    "pipeline-manager",
    "customer-success",
];

/// The canonical name for a name or alias, case-insensitive
/// (`demand-gen` → `demand-generation`, `cs` → `customer-success`).
pub fn canonical_agent(name: &str) -> Option<&'static str> {
    let n = name.trim().to_ascii_lowercase().replace(['_', ' '], "-");
    if let Some(a) = AGENTS.iter().find(|a| **a == n) {
        return Some(a);
    }
    match n.as_str() {
        "demand-gen" => Some("demand-generation"),
        "brand" => Some("brand-messaging"),
        "pipeline" => Some("pipeline-manager"),
        "cs" => Some("customer-success"),
        "growth" => Some("growth-analyst"),
        _ => None,
    }
}

/// The short name the guide's commit examples use (`demand-gen` for demand-generation).
pub fn short_name(agent: &str) -> &str {
    match agent {
        "demand-generation" => "demand-gen",
        other => other,
    }
}

/// One agent's definition, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDef {
    /// Canonical name.
    pub name: String,
    /// argv template; `None` sends tasks to the inbox.
    pub command: Option<Vec<String>>,
    /// Per-task timeout in seconds; `None` uses the playbook default.
    pub timeout_secs: Option<u64>,
    /// Retries after a failure; `None` uses the playbook default.
    pub retries: Option<u32>,
    /// The markdown body: the agent's role.
    pub role: String,
    /// Where it was read from (for messages).
    pub path: String,
}

/// All agent definitions, by canonical name.
pub type Agents = BTreeMap<String, AgentDef>;

mod load;
pub use load::{load_agents, parse_agent, BUILTIN_AGENTS};
