//! The commands that look rather than act: `status`, `explain`, `check`,
//! `check-commit-msg`, `init`, and `sync` (wait for the daemon to have read
//! everything so far).

use super::args::Common;
use super::{load_settings, paths_of};
use crate::diagnostic::Diagnostic;
use crate::{errln, outln};
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `gtmd status`: the state as the journal of the daemon serving the
/// workspace (or ours, with none) says.
pub(super) fn status(common: &Common, json: bool) -> Result<ExitCode> {
    paths_of(common).require_workspace()?;
    let settings = load_settings(common)?;
    let settings = crate::client::served(&settings).unwrap_or(settings);
    crate::status::print(&settings, json)?;
    Ok(ExitCode::SUCCESS)
}

/// `gtmd explain PATH`: what gtmd did with each version of a file.
pub(super) fn explain(common: &Common, path: &str) -> Result<ExitCode> {
    paths_of(common).require_workspace()?;
    let settings = load_settings(common)?;
    let settings = crate::client::served(&settings).unwrap_or(settings);
    crate::output::stdout(&crate::explain::explain(&settings, path)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `gtmd check`: validate playbook, agents and workspace.
pub(super) fn check(common: &Common, config: Option<PathBuf>) -> Result<ExitCode> {
    let paths = paths_of(common);
    let errors = crate::check::check(
        &paths,
        common.agent_command.as_deref(),
        common.runtime,
        common.backend,
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

/// `gtmd init [--runtime NAME] [DIR]`.
pub(super) fn init(common: &Common, dir: Option<PathBuf>) -> Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    crate::init::init(&dir, common.runtime)?;
    Ok(ExitCode::SUCCESS)
}

/// `gtmd sync`: return once the daemon has read every event before the call.
pub(super) fn sync(common: &Common, timeout: u64) -> Result<ExitCode> {
    let paths = paths_of(common);
    paths.require_workspace()?;
    // As `cancel`: with no daemon nothing would ever answer the cookie.
    if crate::journal::serving(&paths.workspace, &paths.state_dir).is_none() {
        anyhow::bail!(
            "no daemon is serving {}; there is nothing to sync with (start one with `gtmd run`)",
            paths.workspace.display()
        );
    }
    crate::client::sync(&paths.workspace, Duration::from_secs(timeout))?;
    Ok(ExitCode::SUCCESS)
}

/// `gtmd check-commit-msg FILE`: exit 0 when the message follows the
/// convention, else 1 with what is wrong and what is accepted. Action words:
/// the guide's, plus those of `--playbook` when given.
pub(super) fn check_commit_msg(common: &Common, file: &std::path::Path) -> Result<ExitCode> {
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
