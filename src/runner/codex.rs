//! The Codex CLI as a runtime: the argv of `codex exec` for a task, with the
//! agent's writes confined by a Codex permission profile to what the
//! playbook says it owns, and the reader of its `--json` events that prices
//! its tokens and checks every file it changed against that ownership.
//!
//! What the CLI does was found by running it against a scripted Responses
//! API (`tests/fixtures/codex/FACTS.md`, pinned by `tests/codex_cli.rs`).
//! The points this module rests on:
//! - A permission profile (`-c default_permissions=…`), not `-s
//!   workspace-write`, which lets every file of the workspace be written
//!   (`.gtmd/` included). The profile reads everywhere, writes in the
//!   directories the agent owns, and rejects a patch that touches anything
//!   else before applying it.
//! - A write grant on a single file fails every write to it, so a file the
//!   agent owns (`status/<agent>.md`) is granted through its directory, and
//!   every file another agent owns there is protected by a `read` entry.
//!   What still gets through (a new file of another name in that
//!   directory) is seen in the `file_change` events and fails the task.
//! - A granted directory must exist, or every write into it fails.
//! - `--disable shell_tool` leaves `apply_patch` the only way to write.
//! - `turn.completed` carries tokens, not dollars (input counting the
//!   cached ones, output the reasoning ones): gtmd prices them from the
//!   team's table. An API error is `turn.failed`, its status only in the
//!   message.

use super::runtime::{
    bounded, find_program, task_env, ProcessSpec, Program, Runtime, StreamReader, TaskContext,
};
use super::StartError;
use crate::prices::Price;
use std::path::{Path, PathBuf};

/// The environment variable naming the `codex` program.
pub const BIN_ENV: &str = "GTMD_CODEX_BIN";

/// How to install the CLI, for messages.
pub const INSTALL: &str = "npm install -g @openai/codex";

/// The permission profile's name in the `-c` flags.
const PROFILE: &str = "gtmd";

/// The longest prompt passed inline as developer instructions; a longer one
/// is read by the agent from its file (Linux's limit is 128 KiB an argument).
const MAX_INLINE_PROMPT: usize = 96 * 1024;

/// Where the `codex` program is: the agent's `codex_bin`, else
/// `GTMD_CODEX_BIN`, else `codex` on the PATH.
pub fn find_bin(agent_bin: Option<&str>) -> Result<PathBuf, String> {
    find_program(
        &Program {
            name: "codex",
            env: BIN_ENV,
            key: "codex_bin",
            install: INSTALL,
            what: "the Codex CLI",
        },
        agent_bin,
    )
}

#[derive(Debug, Clone)]
pub struct Codex {
    /// The `codex` program, or why it was not found.
    pub bin: Result<PathBuf, String>,
    /// What the agent may write (workspace-relative, `dir/**` or a file).
    pub scopes: Vec<String>,
    /// What the other agents own, in the same form: protected where the
    /// agent's directories would otherwise let it write them.
    pub others: Vec<String>,
    /// The agent's model's prices, if the team's table has them.
    pub price: Option<Price>,
}

/// Whether `rel` (workspace-relative) is covered by one of `scopes`.
pub fn owns(scopes: &[String], rel: &str) -> bool {
    scopes.iter().any(|s| match s.strip_suffix("**") {
        Some(dir) => rel.starts_with(dir),
        None => rel == s,
    })
}

/// The directory a scope is written through (a file's parent), or `None`
/// for a file at the top of the workspace, which cannot be granted alone.
fn grant_of(scope: &str) -> Option<&str> {
    match scope.strip_suffix("/**") {
        Some(dir) => Some(dir),
        None => scope.rsplit_once('/').map(|(dir, _)| dir),
    }
}

/// The `-c` value of the permission profile: reads everywhere, writes in
/// the agent's directories, other agents' files in them read-only.
pub fn profile(scopes: &[String], others: &[String]) -> String {
    let mut grants: Vec<&str> = scopes.iter().filter_map(|s| grant_of(s)).collect();
    grants.sort_unstable();
    grants.dedup();
    let mut entries = vec![(".".to_string(), "read")];
    entries.extend(grants.iter().map(|d| (d.to_string(), "write")));
    let mut protected: Vec<&str> = others
        .iter()
        .map(|o| o.strip_suffix("/**").unwrap_or(o))
        .filter(|o| grants.iter().any(|g| o.starts_with(&format!("{g}/"))) && !owns(scopes, o))
        .collect();
    protected.sort_unstable();
    protected.dedup();
    entries.extend(protected.iter().map(|p| (p.to_string(), "read")));
    let roots: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}=\"{v}\"", toml_string(k)))
        .collect();
    format!(
        "permissions.{PROFILE}.filesystem={{\":root\"=\"read\", \":workspace_roots\"={{{}}}}}",
        roots.join(", ")
    )
}

/// A TOML basic string: a JSON string is one (the same escapes).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

impl Codex {
    /// The prompt as developer instructions: whole when it fits in one
    /// argument, else where to read it.
    fn instructions(task: &TaskContext<'_>) -> String {
        let text = if task.prompt.len() <= MAX_INLINE_PROMPT {
            task.prompt.to_string()
        } else {
            format!(
                "Your role and the whole task (inputs, outputs, how to report) are in {}: read it first.",
                task.files.prompt.display()
            )
        };
        format!("developer_instructions={}", toml_string(&text))
    }

    /// A directory the agent owns must exist for Codex to write into it.
    fn make_dirs(&self, workspace: &Path) -> Result<(), StartError> {
        for dir in self.scopes.iter().filter_map(|s| grant_of(s)) {
            let path = workspace.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| {
                StartError::Runtime(format!(
                    "cannot create {}, which the agent owns and Codex must find: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(())
    }
}

impl Codex {
    /// What of the other agents' files and directories exists now: only
    /// those are protected in the profile.
    ///
    /// For a protected path that does not exist, Codex's sandbox creates
    /// an empty placeholder on the real filesystem to mount over, and
    /// removes it when it ends. Sandboxes running side by side (phase 2's
    /// four agents, every one protecting the others' `status/` files) then
    /// remove each other's placeholders and, worse, the real file an agent
    /// wrote where a placeholder stood: writes failed and statuses could
    /// vanish. A file of another agent that appears later is not covered
    /// by the sandbox, but by the audit of every `file_change`, which fails
    /// the task and names the path (tests/fixtures/codex/FACTS.md).
    fn existing_others(&self, workspace: &Path) -> Vec<String> {
        self.others
            .iter()
            .filter(|o| workspace.join(o.strip_suffix("/**").unwrap_or(o)).exists())
            .cloned()
            .collect()
    }
}

impl Runtime for Codex {
    fn process(&self, task: &TaskContext<'_>) -> Result<ProcessSpec, StartError> {
        let bin = self.bin.clone().map_err(StartError::Runtime)?;
        self.make_dirs(task.workspace)?;
        let mut argv: Vec<String> = [
            bin.display().to_string().as_str(),
            "-a",
            "never",
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--disable",
            "plugins",
        ]
        .map(String::from)
        .to_vec();
        let shell = task
            .agent
            .and_then(|a| a.tools.as_ref())
            .is_some_and(|t| t.iter().any(|t| is_shell(t)));
        if !shell {
            argv.extend(["--disable".into(), "shell_tool".into()]);
        }
        argv.extend([
            "-c".into(),
            format!("default_permissions=\"{PROFILE}\""),
            "-c".into(),
            profile(&self.scopes, &self.existing_others(task.workspace)),
            "-c".into(),
            Codex::instructions(task),
        ]);
        if let Some(model) = task.agent.and_then(|a| a.model.as_deref()) {
            argv.extend(["-m".into(), model.to_string()]);
        }
        argv.push("--".into());
        argv.push(bounded(&task.spec.text, task.files).into_owned());
        let env = task_env(task.spec, task.workspace, task.files);
        super::runtime::check_arg_sizes(&argv, &env)?;
        Ok(ProcessSpec { argv, env })
    }

    fn reader(&self, task: &TaskContext<'_>) -> Option<Box<dyn StreamReader>> {
        Some(Box::new(CodexStream::new(
            task.workspace,
            self.scopes.clone(),
            self.price,
        )))
    }
}

/// `tools:` names that ask for Codex's shell (off otherwise).
fn is_shell(tool: &str) -> bool {
    let name = tool.split('(').next().unwrap_or(tool).trim();
    ["Bash", "shell", "exec_command"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
}

mod stream;
pub use stream::CodexStream;

#[cfg(test)]
mod tests;
