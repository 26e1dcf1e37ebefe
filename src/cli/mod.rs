//! The command line: parsed once by clap ([`args`]), validated into typed
//! [`Settings`], then one function per command. Commands that talk to a
//! running daemon go through [`crate::client`]; `run` and a foreground
//! `team run` start one ([`serve`]).

mod args;
mod inspect;
mod logging;
mod runs;
mod serve;

pub use args::{AgentCommand, Cli, Command, Common, LogFormat, TeamCommand};

use crate::config::{Paths, Settings};
use crate::daemon::{Mode, Options};
use crate::diagnostic::Diagnostic;
use crate::engine::CancelTarget;
use crate::errln;
use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

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
    let common = &cli.common;
    match cli.command {
        Command::Run {
            poll,
            daemon,
            pid_file,
            log_file,
            git,
            http,
        } => serve::run(
            common,
            serve::Serve {
                poll,
                daemon,
                pid_file,
                log_file,
                git,
                http: http.options()?,
            },
        ),
        Command::Team {
            command:
                TeamCommand::Run {
                    phases,
                    phase,
                    config,
                    scenario,
                    force,
                    run_budget,
                    caps,
                    git,
                },
        } => runs::team_run(
            common,
            runs::TeamRun {
                phases,
                phase,
                config,
                scenario,
                force,
                run_budget,
                caps,
                git,
            },
        ),
        Command::Agent {
            command:
                AgentCommand::Run {
                    agent,
                    task,
                    run_budget,
                    caps,
                },
        } => runs::agent_run(common, &agent, task, run_budget, caps),
        Command::Status { json } => inspect::status(common, json),
        Command::Check { config } => inspect::check(common, config),
        Command::Init { dir } => inspect::init(common, dir),
        Command::Sync { timeout } => inspect::sync(common, timeout),
        Command::Explain { path } => inspect::explain(common, &path),
        Command::Cancel { task, run, timeout } => {
            let target = match (task, run) {
                (Some(task), None) => CancelTarget::Task { task },
                (None, Some(run)) => CancelTarget::Run { run },
                _ => anyhow::bail!("give a task id, or --run RUN_ID"),
            };
            runs::cancel(common, target, Duration::from_secs(timeout))
        }
        Command::CheckCommitMsg { file } => inspect::check_commit_msg(common, &file),
    }
}

fn paths_of(common: &Common) -> Paths {
    let mut paths = Paths::new(
        common.workspace.clone(),
        common.agents.clone(),
        common.state_dir.clone(),
        common.playbook.clone(),
    );
    paths.prices = common.prices.as_deref().map(crate::config::absolute);
    paths
}

fn load_settings(common: &Common) -> Result<Settings> {
    let mut settings = Settings::load(
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
    })?;
    settings.runtime = common.runtime;
    settings.backend = common.backend;
    Ok(settings)
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
        http: None,
        web: None,
    }
}
