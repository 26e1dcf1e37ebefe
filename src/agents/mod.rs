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
    /// `runtime:`: an agent CLI runs its tasks, gtmd builds the argv.
    #[serde(default)]
    pub runtime: Option<RuntimeName>,
    /// `model:`, as in a Claude Code agent file: the runtime's model.
    #[serde(default)]
    pub model: Option<String>,
    /// `tools:`, as in a Claude Code agent file (`Read, Grep, Bash`): the
    /// tools the runtime may use besides writing what the agent owns.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// `max_cost:`: the most one task of this agent may spend, in dollars.
    #[serde(default)]
    pub max_cost: Option<f64>,
    /// `claude_bin:` or `codex_bin:`: where the runtime's program is, if
    /// not on the PATH.
    #[serde(default)]
    pub bin: Option<String>,
    /// `backend:`: where its tasks run; `None` follows `--backend`.
    #[serde(default)]
    pub backend: Option<BackendName>,
    /// `partition:`, `mem:`, `account:`: what its jobs ask a cluster
    /// scheduler for (`sbatch --partition`, `--mem`, `--account`).
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub mem: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    /// The markdown body: the agent's role.
    pub role: String,
    /// Where it was read from (for messages).
    pub path: String,
}

/// The agent CLIs gtmd runs tasks through, beside plain commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeName {
    /// Anthropic's Claude Code CLI (`claude -p`).
    ClaudeCode,
    /// OpenAI's Codex CLI (`codex exec`).
    Codex,
}

impl RuntimeName {
    pub fn as_str(&self) -> &'static str {
        match self {
            RuntimeName::ClaudeCode => "claude-code",
            RuntimeName::Codex => "codex",
        }
    }

    /// A runtime by the name an agent file or a flag gives it.
    pub fn parse(name: &str) -> Option<RuntimeName> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "claude-code" | "claude" => Some(RuntimeName::ClaudeCode),
            "codex" | "codex-cli" => Some(RuntimeName::Codex),
            _ => None,
        }
    }

    /// Every runtime's name, for messages.
    pub const NAMES: &'static str = "claude-code, codex";
}

/// Where an agent's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendName {
    /// A child process of gtmd, on its machine.
    Local,
    /// A batch job of a Slurm cluster (`sbatch`), on the node it picks.
    Slurm,
}

impl BackendName {
    pub fn as_str(&self) -> &'static str {
        match self {
            BackendName::Local => "local",
            BackendName::Slurm => "slurm",
        }
    }

    /// A backend by the name an agent file or a flag gives it.
    pub fn parse(name: &str) -> Option<BackendName> {
        match name.trim().to_ascii_lowercase().as_str() {
            "local" => Some(BackendName::Local),
            "slurm" => Some(BackendName::Slurm),
            _ => None,
        }
    }

    /// Every backend's name, for messages.
    pub const NAMES: &'static str = "local, slurm";
}

/// All agent definitions, by canonical name.
pub type Agents = BTreeMap<String, AgentDef>;

mod load;
pub use load::{load_agents, parse_agent, BUILTIN_AGENTS};
