//! The command line: clap definitions, parsed once into typed settings, and
//! one function per command.

use crate::config::{Paths, Settings};
use crate::daemon::{self, Control, Mode, Options, Outcome};
use crate::diagnostic::Diagnostic;
use crate::engine::{CancelRequest, CancelTarget, Engine, RunKind, RunRequest};
use crate::protocol::{parse_config, DEFAULT_MAX_PROTOCOL_FILE};
use crate::{errln, outln};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

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
    /// One command for every agent, an argv template split as a shell would
    /// (no shell runs it), e.g. "my-agent --task {task} --id {task_id}".
    #[arg(long, global = true)]
    pub agent_command: Option<String>,
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
    },
}

/// Parse, dispatch, and turn the result into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        // The reader of our output has gone (`gtmd status | head -1`):
        // nothing is wrong and nothing more can be said, as in ripgrep.
        Err(e) if crate::output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("gtmd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let common = cli.common.clone();
    match cli.command {
        Command::Run {
            poll,
            daemon,
            pid_file,
            log_file,
            git,
        } => {
            let settings = load_settings(&common)?;
            let log_file = log_file.map(|f| crate::config::absolute(&f));
            // Fork now, while gtmd has no thread and no runtime yet.
            let background = match pid_file.filter(|_| daemon) {
                Some(pid_file) => {
                    let log_file = log_file
                        .clone()
                        .unwrap_or_else(|| settings.paths.state_dir.join("gtmd.log"));
                    match crate::background::start(
                        &crate::config::absolute(&pid_file),
                        &log_file,
                        &settings.paths.workspace,
                    )? {
                        crate::background::Role::Parent(code) => return Ok(code),
                        // stderr is the log file from here on.
                        crate::background::Role::Daemon(b) => Some(b),
                    }
                }
                None => None,
            };
            let log_to = if background.is_some() { None } else { log_file };
            init_logging(common.log_format, "info", log_to.as_deref())?;
            let mut options = options(&common, poll.map(Duration::from_millis), Mode::Serve, false);
            options.git = git;
            let outcome = serve(settings, options);
            if let Some(b) = &background {
                // The pid file goes first: the parent may be waiting on the error.
                b.finish();
                if let Err(e) = &outcome {
                    crate::service::start_failed(&format!("{e:#}"));
                }
            }
            Ok(match outcome? {
                Outcome::Failed { reason, .. } => {
                    errln!("gtmd: {reason}");
                    ExitCode::from(1)
                }
                _ => ExitCode::SUCCESS,
            })
        }
        Command::Team {
            command:
                TeamCommand::Run {
                    phases,
                    phase,
                    config,
                    scenario,
                    force,
                    run_budget,
                    git,
                },
        } => {
            init_logging(common.log_format, "warn", None)?;
            let settings = load_settings(&common)?;
            let list = match (phases, phase) {
                (Some(l), None) => l,
                (None, Some(p)) => p,
                _ => anyhow::bail!("give the phases to run: --phases LIST (e.g. all, or pipeline-building,execution) or --phase NAME"),
            };
            let phases = parse_phases(&settings, &list)?;
            let text = crate::config::read_config(&config, common.max_file_size)
                .map_err(|d| anyhow::anyhow!("{d}"))?;
            let parsed = parse_config(&config.display().to_string(), &text)
                .map_err(|d| anyhow::anyhow!("{d}"))?;
            let request = RunRequest {
                id: request_id(),
                kind: RunKind::Phases { phases },
                config: parsed,
                config_path: config.display().to_string(),
                scenario,
                force,
                budget_secs: run_budget,
            };
            submit(&common, settings, request, git)
        }
        Command::Agent {
            command:
                AgentCommand::Run {
                    agent,
                    task,
                    run_budget,
                },
        } => {
            init_logging(common.log_format, "warn", None)?;
            let settings = load_settings(&common)?;
            let Some(agent) = crate::agents::canonical_agent(&agent) else {
                anyhow::bail!(
                    "unknown agent {agent:?}; agents are {} (aliases: demand-gen, brand, pipeline, cs, growth)",
                    crate::agents::AGENTS.join(", ")
                );
            };
            let request = RunRequest {
                id: request_id(),
                kind: RunKind::Agent {
                    agent: agent.to_string(),
                    task,
                },
                config: Default::default(),
                config_path: String::new(),
                scenario: None,
                force: false,
                budget_secs: run_budget,
            };
            submit(&common, settings, request, false)
        }
        Command::Status { json } => {
            paths_of(&common).require_workspace()?;
            let settings = load_settings(&common)?;
            let settings = served(&settings).unwrap_or(settings);
            crate::status::print(&settings, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => {
            let paths = paths_of(&common);
            let errors = crate::check::check(
                &paths,
                common.agent_command.as_deref(),
                common.max_file_size,
                config.as_deref(),
            );
            for e in &errors {
                outln!("{e}")?;
            }
            if errors.is_empty() {
                outln!("ok: playbook, agents and workspace are valid")?;
                Ok(ExitCode::SUCCESS)
            } else {
                errln!("gtmd check: {} problem(s)", errors.len());
                Ok(ExitCode::from(1))
            }
        }
        Command::Init { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            crate::init::init(&dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { timeout } => {
            let paths = paths_of(&common);
            paths.require_workspace()?;
            // As `cancel`: with no daemon nothing would ever answer the cookie.
            if crate::journal::serving(&paths.workspace, &paths.state_dir).is_none() {
                anyhow::bail!(
                    "no daemon is serving {}; there is nothing to sync with (start one with `gtmd run`)",
                    paths.workspace.display()
                );
            }
            daemon::sync(&paths.workspace, Duration::from_secs(timeout))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { path } => {
            paths_of(&common).require_workspace()?;
            let settings = load_settings(&common)?;
            let settings = served(&settings).unwrap_or(settings);
            crate::output::stdout(&crate::status::explain(&settings, &path)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { task, run, timeout } => {
            let target = match (task, run) {
                (Some(task), None) => CancelTarget::Task { task },
                (None, Some(run)) => CancelTarget::Run { run },
                _ => anyhow::bail!("give a task id, or --run RUN_ID"),
            };
            let settings = load_settings(&common)?;
            cancel(&settings, target, Duration::from_secs(timeout))
        }
        Command::CheckCommitMsg { file } => check_commit_msg(&common, &file),
    }
}

/// `gtmd check-commit-msg FILE`: exit 0 when the message follows the
/// convention, else 1 with what is wrong and what is accepted. Action words:
/// the guide's, plus those of `--playbook` when given.
fn check_commit_msg(common: &Common, file: &std::path::Path) -> Result<ExitCode> {
    let bytes = crate::input::read_bounded(file, common.max_file_size)
        .map_err(|e| anyhow::anyhow!("the commit message {} {e}", file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let playbook = match &common.playbook {
        Some(p) => crate::playbook::load_playbook(p, common.max_file_size).map_err(|errors| {
            anyhow::anyhow!(
                "invalid playbook:\n{}",
                errors
                    .iter()
                    .map(Diagnostic::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?,
        None => crate::playbook::Playbook::default_playbook(),
    };
    let actions = crate::commit_msg::accepted_actions(&playbook);
    match crate::commit_msg::check(&text, &actions) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(why) => {
            errln!("gtmd check-commit-msg: {}: {why}", file.display());
            Ok(ExitCode::from(1))
        }
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

/// `gtmd cancel`: ask the daemon serving the workspace to stop a task or a
/// run, through a request file on the bus, and wait until the journal says
/// it is done. With no daemon there is nothing running to stop.
fn cancel(settings: &Settings, target: CancelTarget, timeout: Duration) -> Result<ExitCode> {
    let Some(settings) = &served(settings) else {
        errln!(
            "gtmd: no daemon is serving {}; nothing is running there to cancel (a foreground run stops with Ctrl-C)",
            settings.paths.workspace.display()
        );
        return Ok(ExitCode::from(1));
    };
    let paths = &settings.paths;
    let open = |engine: &Engine| -> Option<bool> {
        match &target {
            CancelTarget::Task { task } => engine.tasks().get(task).map(|t| t.is_open()),
            CancelTarget::Run { run } => engine.runs().get(run).map(|r| r.is_active()),
        }
    };
    let what = match &target {
        CancelTarget::Task { task } => format!("task {task}"),
        CancelTarget::Run { run } => format!("run {run}"),
    };
    match open(&crate::replay::load(settings)?) {
        None => {
            errln!("gtmd: there is no {what} (see `gtmd status`)");
            return Ok(ExitCode::from(1));
        }
        Some(false) => {
            errln!("gtmd: {what} has already ended");
            return Ok(ExitCode::from(1));
        }
        Some(true) => {}
    }
    let request = CancelRequest {
        id: request_id().replacen("req-", "cancel-", 1),
        cancel: target.clone(),
    };
    let path = paths
        .workspace
        .join("requests")
        .join(format!("{}.yaml", request.id));
    crate::fsutil::write_atomic(&path, serde_yaml::to_string(&request)?.as_bytes())?;
    let deadline = Instant::now() + timeout;
    loop {
        if open(&crate::replay::load(settings)?) == Some(false) {
            errln!("{what} cancelled");
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() > deadline {
            errln!(
                "gtmd: the daemon has not handled {} within {} s",
                path.display(),
                timeout.as_secs()
            );
            return Ok(ExitCode::from(1));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn paths_of(common: &Common) -> Paths {
    Paths::new(
        common.workspace.clone(),
        common.agents.clone(),
        common.state_dir.clone(),
        common.playbook.clone(),
    )
}

fn load_settings(common: &Common) -> Result<Settings> {
    Settings::load(
        paths_of(common),
        common.agent_command.as_deref(),
        common.max_file_size,
    )
    .map_err(|errors| {
        anyhow::anyhow!(
            "refusing to start:\n{}",
            errors
                .iter()
                .map(Diagnostic::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// `all`, names and numbers, comma-separated.
fn parse_phases(settings: &Settings, list: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.eq_ignore_ascii_case("all") {
            out.extend(settings.playbook.phases.iter().map(|p| p.number));
            continue;
        }
        match settings.playbook.phase_number(item) {
            Some(n) => out.push(n),
            None => anyhow::bail!(
                "unknown phase {item:?}; phases are {} (or their numbers, or all)",
                settings
                    .playbook
                    .phases
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("req-{}-{nanos}", std::process::id())
}

/// The daemon's options from the common flags.
fn options(common: &Common, poll: Option<Duration>, mode: Mode, progress: bool) -> Options {
    Options {
        poll,
        mode,
        progress,
        limits: crate::runner::Limits {
            max_parallel: common.max_parallel.map(|n| n as usize),
            max_log_bytes: common.max_task_log,
        },
        grace: Duration::from_secs(common.grace),
        git: false,
    }
}

/// Hand a request to the daemon serving the workspace, or run it here.
/// `git`: commit each completed task's files (`--git`); a daemon serving the
/// workspace commits only if it was started with `--git` itself.
fn submit(common: &Common, settings: Settings, request: RunRequest, git: bool) -> Result<ExitCode> {
    if let Some(settings) = served(&settings) {
        if git {
            errln!("note: --git: the gtmd serving this workspace commits only if it was started with `gtmd run --git`");
        }
        return follow_daemon(&settings, &request);
    }
    let mut options = options(common, None, Mode::Foreground(Box::new(request)), true);
    options.git = git;
    let outcome = serve(settings, options)?;
    Ok(report(outcome))
}

fn report(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Done { run, summary } => {
            errln!("run {run} complete: {summary}");
            ExitCode::SUCCESS
        }
        Outcome::Failed { run, reason } => {
            match run {
                Some(run) => errln!("gtmd: run {run}: {reason}"),
                None => errln!("gtmd: run refused: {reason}"),
            }
            ExitCode::from(2)
        }
        // A foreground run whose output pipe closed stopped as on Ctrl-C;
        // 141 is what a shell reports for a writer ended by SIGPIPE.
        Outcome::Stopped if crate::output::closed() => ExitCode::from(141),
        Outcome::Stopped => {
            errln!("gtmd: stopped before the run ended");
            ExitCode::from(130)
        }
    }
}

/// Drop the request into the bus and follow the journal until it ends.
fn follow_daemon(settings: &Settings, request: &RunRequest) -> Result<ExitCode> {
    let path = settings
        .paths
        .workspace
        .join("requests")
        .join(format!("{}.yaml", request.id));
    let text = serde_yaml::to_string(request)?;
    crate::fsutil::write_atomic(&path, text.as_bytes())?;
    errln!(
        "request {} handed to the gtmd serving {}",
        request.id,
        settings.paths.workspace.display()
    );
    let mut last = String::new();
    let started = Instant::now();
    loop {
        if crate::output::closed() {
            // Nobody reads the progress any more; the daemon runs the request
            // all the same.
            return Ok(ExitCode::SUCCESS);
        }
        let engine = crate::replay::load(settings)?;
        if let Some(r) = engine
            .refused_requests()
            .iter()
            .find(|r| r.id == request.id)
        {
            return Ok(report(Outcome::Failed {
                run: None,
                reason: r.reason.clone(),
            }));
        }
        if let Some(run) = engine.runs().values().find(|r| r.request.id == request.id) {
            let line = crate::status::run_line(&engine, run);
            if line != last {
                errln!("{line}");
                last = line;
            }
            if !run.is_active() {
                return Ok(report(match &run.state {
                    crate::engine::RunState::Passed => Outcome::Done {
                        run: run.id.clone(),
                        summary: "all requested work done".into(),
                    },
                    crate::engine::RunState::Failed { reason } => Outcome::Failed {
                        run: Some(run.id.clone()),
                        reason: reason.clone(),
                    },
                    _ => Outcome::Failed {
                        run: Some(run.id.clone()),
                        // The record's last word on it says why.
                        reason: run
                            .log
                            .iter()
                            .rev()
                            .map(|(_, l)| l)
                            .find(|l| l.starts_with("run cancelled"))
                            .cloned()
                            .unwrap_or_else(|| "run cancelled".into()),
                    },
                }));
            }
        } else if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!(
                "the daemon has not picked up {} after 30 s; is it watching {}?",
                path.display(),
                settings.paths.workspace.display()
            );
        }
        if !crate::journal::StateLock::is_held(&settings.paths.state_dir) {
            errln!(
                "gtmd: the daemon serving {} has stopped; the run goes on when gtmd starts again",
                settings.paths.workspace.display()
            );
            return Ok(report(Outcome::Stopped));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The settings of the gtmd serving the workspace, if one does: its state
/// directory (its journal) may not be ours when it runs with `--state-dir`.
fn served(settings: &Settings) -> Option<Settings> {
    let state_dir = crate::journal::serving(&settings.paths.workspace, &settings.paths.state_dir)?;
    let mut served = settings.clone();
    served.paths.state_dir = state_dir;
    Some(served)
}

/// Build the runtime (after any fork), wire signals, run the daemon.
fn serve(settings: Settings, options: Options) -> Result<Outcome> {
    let (tx, rx) = mpsc::unbounded_channel();
    spawn_signal_thread(tx)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(settings, options, rx))
}

fn spawn_signal_thread(tx: mpsc::UnboundedSender<Control>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let msg = if sig == SIGHUP {
                    Control::Reload
                } else {
                    Control::Shutdown
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}

/// Logs on stderr, or appended to `file`: the filter from `GTMD_LOG`, else
/// `default`; no timestamps when stderr is the journal (it stamps lines itself).
fn init_logging(format: LogFormat, default: &str, file: Option<&std::path::Path>) -> Result<()> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    // notify logs routine watch bookkeeping at info; keep it out unless asked.
    let filter = EnvFilter::try_from_env("GTMD_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},notify=warn")));
    let (writer, terminal, journald) = match file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(f)), false, false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
            crate::service::stderr_is_journal(),
        ),
    };
    // A log line that cannot be written is dropped: by default the
    // subscriber would report it with eprintln!, which panics when stderr is
    // a closed pipe (`gtmd run 2>&1 | tee` with tee gone), killing the daemon.
    let builder = tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(terminal && !journald);
    let _ = match (format, journald) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    Ok(())
}
