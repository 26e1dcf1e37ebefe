//! The settings every command shares, validated once.
//!
//! Raw flags (paths, the agent command string) become a [`Settings`] the rest
//! of the program trusts: the playbook and the agent definitions are loaded
//! and checked here, and refused with `path:line` errors before anything runs.

use crate::agents::{load_agents, AgentDef, Agents, BackendName, RuntimeName};
use crate::diagnostic::Diagnostic;
use crate::engine::AgentPolicy;
use crate::playbook::{load_playbook, Playbook};
use crate::prices::Prices;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where things are, as given on the command line.
#[derive(Debug, Clone)]
pub struct Paths {
    pub workspace: PathBuf,
    pub agents: PathBuf,
    pub state_dir: PathBuf,
    /// A team's own playbook; `None` uses the guide's, embedded.
    pub playbook: Option<PathBuf>,
    /// `--prices FILE`; `None`: `prices.yaml` beside the agents directory,
    /// if there is one.
    pub prices: Option<PathBuf>,
}

impl Paths {
    pub fn new(
        workspace: Option<PathBuf>,
        agents: Option<PathBuf>,
        state_dir: Option<PathBuf>,
        playbook: Option<PathBuf>,
    ) -> Paths {
        // Absolute from here on: agents run in the workspace, and GTMD_WORKSPACE
        // must mean the same directory to them as to us.
        let workspace = absolute(&workspace.unwrap_or_else(|| PathBuf::from("workspace")));
        let state_dir = absolute(&state_dir.unwrap_or_else(|| workspace.join(".gtmd")));
        Paths {
            workspace,
            agents: absolute(&agents.unwrap_or_else(|| PathBuf::from("agents"))),
            state_dir,
            playbook: playbook.map(|p| absolute(&p)),
            prices: None,
        }
    }

    /// The price table's file, and whether it was named (`--prices`): a
    /// named one must exist, the default one may not.
    pub fn prices_file(&self) -> (PathBuf, bool) {
        match &self.prices {
            Some(p) => (p.clone(), true),
            None => {
                let dir = self.agents.parent().unwrap_or(Path::new("/"));
                (dir.join("prices.yaml"), false)
            }
        }
    }

    /// Commands that read the bus need it to exist: a missing workspace is
    /// a mistake (a wrong directory, a typo), not an empty history.
    pub fn require_workspace(&self) -> anyhow::Result<()> {
        let ws = &self.workspace;
        match std::fs::metadata(ws) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => anyhow::bail!(
                "the workspace {} is not a directory; pass the workspace directory with --workspace",
                ws.display()
            ),
            Err(_) => anyhow::bail!(
                "the workspace {} does not exist; create it with `gtmd init` (run in the directory that should hold workspace/), or pass --workspace DIR",
                ws.display()
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub paths: Paths,
    pub playbook: Playbook,
    pub agents: Agents,
    /// `--agent-command`, split as a shell would (no shell runs it).
    pub agent_command: Option<Vec<String>>,
    /// `--runtime`: the runtime of agents that name neither a command nor
    /// a runtime of their own.
    pub runtime: Option<RuntimeName>,
    /// `--backend`: where the tasks of agents that name no backend run.
    pub backend: Option<BackendName>,
    /// What tokens cost, for runtimes that report no dollars.
    pub prices: Prices,
    pub max_file_size: u64,
}

impl Settings {
    pub fn load(
        paths: Paths,
        agent_command: Option<&str>,
        max_file_size: u64,
    ) -> Result<Settings, Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let playbook = match &paths.playbook {
            Some(p) => load_playbook(p, max_file_size)
                .map_err(|e| errors.extend(e))
                .ok(),
            None => Some(Playbook::default_playbook()),
        };
        let agents = load_agents(&paths.agents, max_file_size)
            .map_err(|e| errors.extend(e))
            .ok();
        let (prices_file, given) = paths.prices_file();
        let prices = Prices::load(&prices_file, given, max_file_size)
            .map_err(|e| errors.extend(e))
            .unwrap_or_default();
        let agent_command = match agent_command.map(parse_command) {
            Some(Err(d)) => {
                errors.push(d);
                None
            }
            Some(Ok(v)) => Some(v),
            None => None,
        };
        match (playbook, agents) {
            (Some(playbook), Some(agents)) if errors.is_empty() => Ok(Settings {
                paths,
                playbook,
                agents,
                agent_command,
                runtime: None,
                backend: None,
                prices,
                max_file_size,
            }),
            _ => Err(errors),
        }
    }

    /// What the engine needs to know of each agent.
    pub fn policies(&self) -> BTreeMap<String, AgentPolicy> {
        self.agents
            .iter()
            .map(|(name, def)| {
                let runtime = self.runtime_of(def);
                (
                    name.clone(),
                    AgentPolicy {
                        retries: def.retries.unwrap_or(self.playbook.default_retries),
                        has_command: self.agent_command.is_some()
                            || def.command.is_some()
                            || runtime.is_some(),
                        audits_writes: runtime == Some(RuntimeName::Codex),
                        unpriced: match runtime {
                            Some(RuntimeName::Codex) => self.unpriced(def),
                            _ => None,
                        },
                    },
                )
            })
            .collect()
    }

    /// The agent CLI that runs an agent's tasks, if any: none when a
    /// command (its own or `--agent-command`) does.
    pub fn runtime_of(&self, def: &AgentDef) -> Option<RuntimeName> {
        if self.agent_command.is_some() || def.command.is_some() {
            return None;
        }
        def.runtime.or(self.runtime)
    }

    /// Why the tokens of an agent whose runtime reports no dollars cannot
    /// be priced, if they cannot.
    fn unpriced(&self, def: &AgentDef) -> Option<String> {
        let table = self
            .prices
            .path
            .clone()
            .unwrap_or_else(|| self.paths.prices_file().0.display().to_string());
        match &def.model {
            None => Some(format!(
                "{} names no `model:`, so gtmd cannot tell which prices apply",
                def.path
            )),
            Some(m) if self.prices.get(m).is_none() => {
                Some(format!("model {m} has no price in {table}"))
            }
            Some(_) => None,
        }
    }
}

fn parse_command(s: &str) -> Result<Vec<String>, Diagnostic> {
    let argv = shell_words::split(s).map_err(|e| {
        Diagnostic::new(
            "--agent-command",
            None,
            format!("cannot be split into arguments ({e}); quote it as a shell would"),
        )
    })?;
    if argv.is_empty() {
        return Err(Diagnostic::new(
            "--agent-command",
            None,
            "is empty; give a program and its arguments, e.g. \"claude -p {prompt_file}\"",
        ));
    }
    Ok(argv)
}

/// The text of a CONFIG.md (`team run --config`, `check --config`): a
/// regular UTF-8 file of at most `max_size` bytes, or why not.
pub fn read_config(path: &std::path::Path, max_size: u64) -> Result<String, Diagnostic> {
    let name = path.display().to_string();
    let bytes = crate::input::read_bounded(path, max_size).map_err(|e| {
        Diagnostic::new(
            &name,
            None,
            format!("the config {e}; give the team's CONFIG.md"),
        )
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        Diagnostic::new(
            &name,
            Some(crate::diagnostic::line_of_offset(
                &String::from_utf8_lossy(&e.as_bytes()[..valid]),
                valid,
            )),
            "the config is not UTF-8 text; CONFIG.md must be UTF-8 markdown",
        )
    })
}

/// `path` made absolute against the current directory, without resolving links.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}
