//! The command line as clap sees it: every command, flag and default, and
//! the value parsers that refuse a bad value before anything runs. Nothing
//! here acts; `super::dispatch` turns what was parsed into typed settings.

use crate::protocol::DEFAULT_MAX_PROTOCOL_FILE;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gtmd",
    version,
    about = "Turns a workspace directory into the message bus of a go-to-market agent team"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The workspace directory (the bus).
    #[arg(long, global = true, env = "GTMD_WORKSPACE_DIR")]
    pub workspace: Option<PathBuf>,
    /// The directory of agent definitions (agents/<name>.md).
    #[arg(long, global = true)]
    pub agents: Option<PathBuf>,
    /// Where gtmd keeps its journal and task logs [default: WORKSPACE/.gtmd].
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// A team's own playbook (YAML) instead of the guide's embedded one.
    #[arg(long, global = true)]
    pub playbook: Option<PathBuf>,
    /// The price table (USD per million tokens per model) for runtimes that
    /// report tokens, not dollars [default: prices.yaml beside the agents
    /// directory, if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// One command for every agent, an argv template split as a shell would
    /// (no shell runs it), e.g. "my-agent --task {task} --id {task_id}".
    #[arg(long, global = true)]
    pub agent_command: Option<String>,
    /// The agent CLI that runs the tasks of agents whose file names neither
    /// a `command` nor a `runtime` (claude-code, codex).
    #[arg(long, global = true, value_enum, value_name = "NAME")]
    pub runtime: Option<crate::agents::RuntimeName>,
    /// Where the tasks of agents whose file names no `backend` run: local
    /// (child processes) or slurm (batch jobs, see the README).
    #[arg(long, global = true, value_enum, value_name = "NAME")]
    pub backend: Option<crate::agents::BackendName>,
    /// Largest file gtmd reads as text, in bytes: protocol files (status,
    /// conflict, decision, gate, request), CONFIG.md, the playbook, agent files.
    #[arg(long, global = true, default_value_t = DEFAULT_MAX_PROTOCOL_FILE)]
    pub max_file_size: u64,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// At most N agent processes at once; further tasks wait for a free slot.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Cap of each task's log (STATE/logs/<task>.log) in bytes; output past
    /// it is discarded, with a note in the log.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = crate::runner::DEFAULT_MAX_TASK_LOG)]
    pub max_task_log: u64,
    /// On SIGTERM/SIGINT, how long running tasks may go on before their
    /// process groups get TERM (then KILL); a second signal stops them at once.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10)]
    pub grace: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The long-running daemon (foreground unless --daemon).
    Run {
        /// Poll the workspace instead of using inotify (network filesystems).
        /// Optional interval in milliseconds [default: 500].
        #[arg(long, num_args = 0..=1, default_missing_value = "500", value_name = "MS")]
        poll: Option<u64>,
        /// Fork into the background (for servers without systemd); returns
        /// once the background gtmd is ready, or says why it could not start.
        #[arg(long, requires = "pid_file")]
        daemon: bool,
        /// With --daemon: the pid file, locked while gtmd runs, removed when it stops.
        #[arg(long, requires = "daemon", value_name = "FILE")]
        pid_file: Option<PathBuf>,
        /// Write the log to this file (appending) instead of stderr
        /// [default with --daemon: STATE_DIR/gtmd.log].
        #[arg(long, value_name = "FILE")]
        log_file: Option<PathBuf>,
        /// Commit each completed task's files on the phase's branch
        /// (gtm/phase-N-<name>), in the guide's commit convention.
        #[arg(long)]
        git: bool,
        #[command(flatten)]
        http: Http,
    },
    /// Team runs: phases of the playbook.
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// Single-agent work.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// The state: runs, phases, steps, gates, tasks, refused files.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Validate the workspace, the agents and the playbook.
    Check {
        /// Also validate this CONFIG.md.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Lay out a new workspace, agents/ and a CONFIG.md template.
    Init { dir: Option<PathBuf> },
    /// Return once the daemon has handled every file event before this call.
    Sync {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// What gtmd did with each version of a file, and why.
    Explain { path: String },
    /// Stop a task, or a whole run, of the daemon serving the workspace.
    Cancel {
        /// The task to stop (its id, as in `gtmd status`).
        #[arg(required_unless_present = "run", conflicts_with = "run")]
        task: Option<String>,
        /// Stop this run and every open task of it.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Give up waiting for the daemon after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Check a commit message against the guide's convention
    /// (`[agent] action: brief description`); for a git `commit-msg` hook.
    CheckCommitMsg {
        /// The message file (git passes `.git/COMMIT_EDITMSG`).
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum TeamCommand {
    /// Start a run of some phases (the guide's execution modes).
    Run {
        /// Phases by name or number, comma-separated, or `all`.
        #[arg(long, conflicts_with = "phase", value_name = "LIST")]
        phases: Option<String>,
        /// One phase, by name or number.
        #[arg(long)]
        phase: Option<String>,
        /// The team's CONFIG.md (business context, budget, targets).
        #[arg(long)]
        config: PathBuf,
        /// new-product-launch, scaling, new-market or quarterly-planning.
        #[arg(long)]
        scenario: Option<String>,
        /// Run even if the phases do not fit the scenario or earlier inputs are missing.
        #[arg(long)]
        force: bool,
        /// Wall-clock budget of the run (seconds, or 90s, 10m, 2h): past it
        /// the run is cancelled, its tasks stopped.
        #[arg(long, value_name = "DURATION", value_parser = parse_budget)]
        run_budget: Option<u64>,
        #[command(flatten)]
        caps: CostCap,
        /// Commit each completed task's files on the phase's branch
        /// (gtm/phase-N-<name>), in the guide's commit convention.
        #[arg(long)]
        git: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// One task for one agent, no phases, no gates.
    Run {
        agent: String,
        #[arg(long)]
        task: String,
        /// Wall-clock budget of the run (seconds, or 90s, 10m, 2h).
        #[arg(long, value_name = "DURATION", value_parser = parse_budget)]
        run_budget: Option<u64>,
        #[command(flatten)]
        caps: CostCap,
    },
}

/// The web view of `gtmd run`.
#[derive(Args, Debug, Clone)]
pub struct Http {
    /// Serve a live web view of the team's work on this address (e.g.
    /// 127.0.0.1:8421); a loopback address unless a token file is given.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// With --http: every request needs a token from this file (one token,
    /// or `label:token` lines; the label is recorded as who acted).
    #[arg(long, value_name = "FILE", requires = "http")]
    pub http_token_file: Option<PathBuf>,
    /// With --http: show, but do not let anyone act (no gate ticks,
    /// rulings, cancels or runs from the page).
    #[arg(long, requires = "http")]
    pub http_read_only: bool,
}

impl Http {
    /// The options, checked before anything starts: a non-loopback
    /// address without a token is refused here.
    pub fn options(&self) -> anyhow::Result<Option<crate::web::HttpOptions>> {
        let Some(addr) = self.http else {
            return Ok(None);
        };
        let file = self.http_token_file.as_deref().map(crate::config::absolute);
        Ok(Some(crate::web::HttpOptions::new(
            addr,
            file.as_deref(),
            self.http_read_only,
        )?))
    }
}

/// A run's spending cap, from what the agents' runtimes report.
#[derive(Args, Debug, Clone, Copy)]
pub struct CostCap {
    /// Stop the run once its agents have spent this many dollars (as their
    /// runtimes report): no task starts again, and the run ends, failed.
    #[arg(long, value_name = "USD", value_parser = parse_usd)]
    pub max_cost: Option<f64>,
    /// Stop the run once its agents have used this many tokens (in, cached
    /// and out, as their runtimes report), whatever they cost.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tokens: Option<u64>,
    /// With --max-cost or --max-tokens: also stop the tasks running when the
    /// cap is reached (else they finish).
    #[arg(long)]
    pub hard: bool,
}

/// `--max-cost`: dollars, a positive number (`5`, `2.50`, `$10`).
fn parse_usd(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_start_matches('$');
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not an amount of dollars; give a positive number such as 5 or 2.50"
        )),
    }
}

/// `--run-budget`: seconds, or a duration such as 90s, 10m, 2h.
fn parse_budget(s: &str) -> Result<u64, String> {
    let secs = match s.trim().parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{e}; give seconds or a duration such as 90s, 10m, 2h"))?
            .as_secs(),
    };
    if secs == 0 {
        return Err("a run budget must be at least 1 second".into());
    }
    Ok(secs)
}
