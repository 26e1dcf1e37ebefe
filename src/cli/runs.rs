//! `team run`, `agent run` and `cancel`: a request for the daemon serving
//! the workspace (handed over through the bus and followed, see
//! [`crate::client`]), or, with no daemon, the orchestration run here in the
//! foreground until the requested work is done.

use super::args::{Common, CostCap};
use super::{load_settings, logging::init_logging, options, serve::serve};
use crate::client::{self, Cancelled, Followed};
use crate::config::Settings;
use crate::daemon::{Mode, Outcome};
use crate::engine::{CancelTarget, RunKind, RunRequest};
use crate::errln;
use crate::protocol::parse_config;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// What `team run` asks for, as given on the command line.
pub(super) struct TeamRun {
    pub phases: Option<String>,
    pub phase: Option<String>,
    pub config: PathBuf,
    pub scenario: Option<String>,
    pub force: bool,
    pub run_budget: Option<u64>,
    pub caps: CostCap,
    pub git: bool,
}

/// `--hard` stops running tasks at a cap: there must be one.
fn check_caps(caps: &CostCap) -> Result<()> {
    if caps.hard && caps.max_cost.is_none() && caps.max_tokens.is_none() {
        anyhow::bail!("--hard stops the running tasks at a cap: give --max-cost or --max-tokens");
    }
    Ok(())
}

/// `gtmd team run`: a run of some phases, the guide's execution modes.
pub(super) fn team_run(common: &Common, t: TeamRun) -> Result<ExitCode> {
    check_caps(&t.caps)?;
    init_logging(common.log_format, "warn", None)?;
    let settings = load_settings(common)?;
    let list = match (t.phases, t.phase) {
        (Some(l), None) => l,
        (None, Some(p)) => p,
        _ => anyhow::bail!("give the phases to run: --phases LIST (e.g. all, or pipeline-building,execution) or --phase NAME"),
    };
    let phases = parse_phases(&settings, &list)?;
    let text = crate::config::read_config(&t.config, common.max_file_size)
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let parsed =
        parse_config(&t.config.display().to_string(), &text).map_err(|d| anyhow::anyhow!("{d}"))?;
    let request = RunRequest {
        id: client::request_id("req"),
        kind: RunKind::Phases { phases },
        config: parsed,
        config_path: t.config.display().to_string(),
        scenario: t.scenario,
        force: t.force,
        budget_secs: t.run_budget,
        max_cost: t.caps.max_cost,
        hard_cap: t.caps.hard,
        max_tokens: t.caps.max_tokens,
    };
    submit(common, settings, request, t.git)
}

/// `gtmd agent run`: one task for one agent, no phases, no gates.
pub(super) fn agent_run(
    common: &Common,
    agent: &str,
    task: String,
    run_budget: Option<u64>,
    caps: CostCap,
) -> Result<ExitCode> {
    check_caps(&caps)?;
    init_logging(common.log_format, "warn", None)?;
    let settings = load_settings(common)?;
    let Some(agent) = crate::agents::canonical_agent(agent) else {
        anyhow::bail!(
            "unknown agent {agent:?}; agents are {} (aliases: demand-gen, brand, pipeline, cs, growth)",
            crate::agents::AGENTS.join(", ")
        );
    };
    let request = RunRequest {
        id: client::request_id("req"),
        kind: RunKind::Agent {
            agent: agent.to_string(),
            task,
        },
        config: Default::default(),
        config_path: String::new(),
        scenario: None,
        force: false,
        budget_secs: run_budget,
        max_cost: caps.max_cost,
        hard_cap: caps.hard,
        max_tokens: caps.max_tokens,
    };
    submit(common, settings, request, false)
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

/// Hand a request to the daemon serving the workspace, or run it here.
/// `git`: commit each completed task's files (`--git`); a daemon serving the
/// workspace commits only if it was started with `--git` itself.
fn submit(common: &Common, settings: Settings, request: RunRequest, git: bool) -> Result<ExitCode> {
    if let Some(settings) = client::served(&settings) {
        if git {
            errln!("note: --git: the gtmd serving this workspace commits only if it was started with `gtmd run --git`");
        }
        let followed = client::follow(
            &settings,
            &request,
            |line| errln!("{line}"),
            crate::output::closed,
        )?;
        return Ok(match followed {
            Followed::Refused(reason) => report(Outcome::Failed { run: None, reason }),
            Followed::Ended { run, ending } if ending.ok => report(Outcome::Done {
                run,
                summary: ending.reason,
            }),
            Followed::Ended { run, ending } => report(Outcome::Failed {
                run: Some(run),
                reason: ending.reason,
            }),
            Followed::DaemonStopped => {
                errln!(
                    "gtmd: the daemon serving {} has stopped; the run goes on when gtmd starts again",
                    settings.paths.workspace.display()
                );
                report(Outcome::Stopped)
            }
            // Nobody reads the progress any more; the daemon runs the
            // request all the same.
            Followed::Abandoned => ExitCode::SUCCESS,
        });
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

/// `gtmd cancel`: ask the daemon serving the workspace to stop a task or a
/// run, and wait until it has. With no daemon, a task the journal says is
/// open (it runs again at the next start; a cluster job runs on meanwhile)
/// is cancelled by that start: the request waits for it in `requests/`.
pub(super) fn cancel(common: &Common, target: CancelTarget, timeout: Duration) -> Result<ExitCode> {
    let settings = load_settings(common)?;
    let what = match &target {
        CancelTarget::Task { task } => format!("task {task}"),
        CancelTarget::Run { run } => format!("run {run}"),
    };
    let Some(settings) = client::served(&settings) else {
        let workspace = settings.paths.workspace.display().to_string();
        return Ok(match client::cancel_later(&settings, target)? {
            Some(path) => {
                errln!(
                    "gtmd: no daemon is serving {workspace}: the cancel of {what} waits in {} and takes effect when gtmd starts there, before any task runs again (a cluster job runs on until then)",
                    path.display()
                );
                ExitCode::SUCCESS
            }
            None => {
                errln!(
                    "gtmd: no daemon is serving {workspace}, and its journal has no open {what} to cancel (a foreground run stops with Ctrl-C)"
                );
                ExitCode::from(1)
            }
        });
    };
    Ok(match client::cancel(&settings, target, timeout)? {
        Cancelled::Done => {
            errln!("{what} cancelled");
            ExitCode::SUCCESS
        }
        Cancelled::NoSuchTarget => {
            errln!("gtmd: there is no {what} (see `gtmd status`)");
            ExitCode::from(1)
        }
        Cancelled::AlreadyEnded => {
            errln!("gtmd: {what} has already ended");
            ExitCode::from(1)
        }
        Cancelled::TimedOut(path) => {
            errln!(
                "gtmd: the daemon has not handled {} within {} s",
                path.display(),
                timeout.as_secs()
            );
            ExitCode::from(1)
        }
    })
}
