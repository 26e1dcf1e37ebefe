//! `gtmd check`: everything gtmd would refuse, reported at once as
//! `path:line: message`, before anything runs.

use crate::agents::{BackendName, RuntimeName};
use crate::config::{Paths, Settings};
use crate::diagnostic::Diagnostic;
use crate::engine::FileContent;
use crate::ingest::{Ingest, Observed};
use std::path::Path;

/// `runtime`: `--runtime`, the runtime of agents that name none.
pub fn check(
    paths: &Paths,
    agent_command: Option<&str>,
    runtime: Option<RuntimeName>,
    backend: Option<BackendName>,
    max_file_size: u64,
    config: Option<&Path>,
) -> Vec<Diagnostic> {
    let mut errors = match Settings::load(paths.clone(), agent_command, max_file_size) {
        Ok(s) => {
            let mut missing = Vec::new();
            if agent_command.is_none() {
                missing = runtimes_missing(&s, runtime);
            }
            missing.extend(backends_missing(&s, backend));
            missing
        }
        Err(e) => e,
    };
    if !paths.workspace.is_dir() {
        errors.push(Diagnostic::new(
            paths.workspace.display().to_string(),
            None,
            "the workspace directory does not exist; create one with `gtmd init`",
        ));
    } else {
        let ingest = Ingest::new(&paths.workspace, &paths.state_dir, max_file_size);
        for rel in ingest.scan("") {
            let Observed::New { content, .. } = ingest.observe(&rel, None, false) else {
                continue;
            };
            if let FileContent::Rejected { mut diagnostic } = *content {
                diagnostic.path = paths.workspace.join(&diagnostic.path).display().to_string();
                errors.push(diagnostic);
            }
        }
    }
    if let Some(config) = config {
        let name = config.display().to_string();
        match crate::config::read_config(config, max_file_size) {
            Ok(text) => {
                if let Err(d) = crate::protocol::parse_config(&name, &text) {
                    errors.push(d);
                }
            }
            Err(d) => errors.push(d),
        }
    }
    errors
}

/// An agent whose runtime's program cannot be found would fail every task:
/// say so now, with how to install it.
pub fn runtimes_missing(settings: &Settings, default: Option<RuntimeName>) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    for def in settings.agents.values() {
        if def.command.is_some() {
            continue;
        }
        let (what, found) = match def.runtime.or(default) {
            Some(RuntimeName::ClaudeCode) => (
                "claude-code",
                crate::runner::claude::find_bin(def.bin.as_deref()),
            ),
            Some(RuntimeName::Codex) => {
                ("codex", crate::runner::codex::find_bin(def.bin.as_deref()))
            }
            None => continue,
        };
        if let Err(why) = found {
            errors.push(Diagnostic::new(
                &def.path,
                None,
                format!("runtime {what}: {why}"),
            ));
        }
    }
    errors
}

/// An agent whose tasks run as Slurm jobs needs Slurm's client commands on
/// gtmd's machine: without `sbatch` every task would fail to start.
pub fn backends_missing(settings: &Settings, default: Option<BackendName>) -> Vec<Diagnostic> {
    let on_slurm: Vec<&crate::agents::AgentDef> = settings
        .agents
        .values()
        .filter(|d| d.backend.or(default) == Some(BackendName::Slurm))
        .collect();
    if on_slurm.is_empty() || crate::runner::slurm::client_found() {
        return Vec::new();
    }
    on_slurm
        .iter()
        .map(|d| {
            Diagnostic::new(
                &d.path,
                None,
                "backend slurm: Slurm's `sbatch` is not on the PATH; install Slurm's client (Debian: `apt install slurm-client`) and set SLURM_CONF if the cluster's slurm.conf is not in /etc/slurm, or run this agent with `--backend local`",
            )
        })
        .collect()
}
