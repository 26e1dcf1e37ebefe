//! Where gtmd's own log goes and how it looks: stderr or a file, text or
//! JSON, no timestamps when systemd's journal stamps the lines itself.

use super::args::LogFormat;
use anyhow::{Context, Result};
use std::io::IsTerminal;

/// Logs on stderr, or appended to `file`: the filter from `GTMD_LOG`, else
/// `default`; no timestamps when stderr is the journal (it stamps lines itself).
pub(super) fn init_logging(
    format: LogFormat,
    default: &str,
    file: Option<&std::path::Path>,
) -> Result<()> {
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
