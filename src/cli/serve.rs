//! `gtmd run`, and the foreground run of `team run`/`agent run` with no
//! daemon: fork first if asked (before any thread exists), then the logging,
//! the signal thread and the async runtime around [`crate::daemon::run`].

use super::args::Common;
use super::{load_settings, logging::init_logging, options};
use crate::config::Settings;
use crate::daemon::{self, Control, Mode, Options, Outcome};
use crate::errln;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;

/// What `gtmd run` was given besides the common flags.
pub(super) struct Serve {
    pub poll: Option<u64>,
    pub daemon: bool,
    pub pid_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub git: bool,
    pub http: Option<crate::web::HttpOptions>,
}

/// `gtmd run`: the daemon, in the foreground unless `--daemon`.
pub(super) fn run(common: &Common, s: Serve) -> Result<ExitCode> {
    let Serve {
        poll,
        daemon,
        pid_file,
        log_file,
        git,
        http,
    } = s;
    let settings = load_settings(common)?;
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
    let mut options = options(common, poll.map(Duration::from_millis), Mode::Serve, false);
    options.git = git;
    options.http = http;
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

/// Build the runtime (after any fork), wire signals, run the daemon.
pub(super) fn serve(settings: Settings, options: Options) -> Result<Outcome> {
    let (tx, rx) = mpsc::unbounded_channel();
    spawn_signal_thread(tx)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut options = options;
        if let Some(http) = options.http.clone() {
            options.web = Some(std::sync::Arc::new(start_web(http, &settings).await?));
        }
        daemon::run(settings, options, rx).await
    })
}

/// `--http`: listen before the daemon starts, so a port in use stops the
/// start with a clear message.
async fn start_web(http: crate::web::HttpOptions, settings: &Settings) -> Result<crate::web::Link> {
    let read_only = http.read_only;
    let tokens = !http.tokens.is_empty();
    let paths = crate::web::Paths {
        workspace: settings.paths.workspace.clone(),
        state_dir: settings.paths.state_dir.clone(),
        max_file_size: settings.max_file_size,
    };
    let link = crate::web::start(http, paths).await?;
    tracing::info!(read_only, token = tokens, "web view: http://{}/", link.addr);
    Ok(link)
}

pub(super) fn spawn_signal_thread(tx: mpsc::UnboundedSender<Control>) -> Result<()> {
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
