//! Talking to the gtmd that serves a workspace, from another process:
//! finding it (whatever state directory it uses), handing it a request file
//! through the bus like anyone else, following what it does through the
//! feed it keeps current (`STATE/feed.json`, see [`crate::feed`]), and
//! waiting until it has read every file event before a moment (`sync`).
//!
//! Nothing here replays the journal over and over: a follower reads a few
//! hundred bytes every 200 ms. Only a daemon of an older gtmd, which keeps
//! no feed, is followed by replaying its journal.

use crate::config::Settings;
use crate::engine::{CancelRequest, CancelTarget, RunRequest};
use crate::feed::{Ending, Feed};
use crate::journal::StateLock;
use crate::protocol::SYNC_PREFIX;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a follower looks at the feed.
const POLL: Duration = Duration::from_millis(200);

/// The settings of the gtmd serving the workspace, if one does: its state
/// directory (its journal and feed) may not be ours when it runs with
/// `--state-dir`.
pub fn served(settings: &Settings) -> Option<Settings> {
    let state_dir = crate::journal::serving(&settings.paths.workspace, &settings.paths.state_dir)?;
    let mut served = settings.clone();
    served.paths.state_dir = state_dir;
    Some(served)
}

/// The daemon's feed: read from its file, or built from a replay when the
/// daemon keeps none.
fn feed(settings: &Settings) -> Result<Feed> {
    match crate::feed::read(&settings.paths.state_dir) {
        Some(f) => Ok(f),
        None => Ok(Feed::of(&crate::replay::load(settings)?)),
    }
}

/// How a request handed to a daemon ended, as far as its follower saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The daemon refused the request.
    Refused(String),
    /// The run ended.
    Ended { run: String, ending: Ending },
    /// The daemon stopped first; the run goes on when gtmd starts again.
    DaemonStopped,
    /// Nobody reads the progress any more (the output pipe closed).
    Abandoned,
}

/// Drop `request` into the bus of the daemon `settings` point at, and
/// follow it until it ends, saying each new progress line with `progress`.
pub fn follow(
    settings: &Settings,
    request: &RunRequest,
    mut progress: impl FnMut(&str),
    abandoned: impl Fn() -> bool,
) -> Result<Followed> {
    let path = hand_over(&settings.paths.workspace, &request.id, request, None)?;
    progress(&format!(
        "request {} handed to the gtmd serving {}",
        request.id,
        settings.paths.workspace.display()
    ));
    let mut last = String::new();
    let started = Instant::now();
    loop {
        if abandoned() {
            return Ok(Followed::Abandoned);
        }
        let f = feed(settings)?;
        if let Some(why) = f.refusal(&request.id) {
            return Ok(Followed::Refused(why.to_string()));
        }
        if let Some(run) = f.run_of_request(&request.id) {
            if run.line != last {
                progress(&run.line);
                last = run.line.clone();
            }
            if let Some(ending) = &run.ended {
                return Ok(Followed::Ended {
                    run: run.id.clone(),
                    ending: ending.clone(),
                });
            }
        } else if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!(
                "the daemon has not picked up {} after 30 s; is it watching {}?",
                path.display(),
                settings.paths.workspace.display()
            );
        }
        if !StateLock::is_held(&settings.paths.state_dir) {
            return Ok(Followed::DaemonStopped);
        }
        std::thread::sleep(POLL);
    }
}

/// What `gtmd cancel` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    Done,
    NoSuchTarget,
    AlreadyEnded,
    /// The daemon did not handle the request file in time.
    TimedOut(PathBuf),
}

/// Ask the daemon `settings` point at to stop a task or a run, through a
/// request file on the bus, and wait until it has.
pub fn cancel(settings: &Settings, target: CancelTarget, timeout: Duration) -> Result<Cancelled> {
    let open = |f: &Feed| match &target {
        CancelTarget::Task { task } => f.task_open(task),
        CancelTarget::Run { run } => f.run_active(run),
    };
    if !open(&feed(settings)?) {
        // Not in the feed: ended, never there, or too new for a feed that
        // is written at most every 100 ms. The journal knows which.
        let engine = crate::replay::load(settings)?;
        let state = match &target {
            CancelTarget::Task { task } => engine.task(task).map(|t| t.is_open()),
            CancelTarget::Run { run } => engine.run(run).map(|r| r.is_active()),
        };
        match state {
            None => return Ok(Cancelled::NoSuchTarget),
            Some(false) => return Ok(Cancelled::AlreadyEnded),
            Some(true) => {}
        }
    }
    let request = CancelRequest {
        id: request_id("cancel"),
        cancel: target.clone(),
    };
    let path = hand_over(&settings.paths.workspace, &request.id, &request, None)?;
    let deadline = Instant::now() + timeout;
    let ended = || -> Result<bool> {
        let engine = crate::replay::load(settings)?;
        Ok(match &target {
            CancelTarget::Task { task } => engine.task(task).is_some_and(|t| !t.is_open()),
            CancelTarget::Run { run } => engine.run(run).is_some_and(|r| !r.is_active()),
        })
    };
    loop {
        // The feed may not have caught up with the task yet; the journal,
        // read once it says so, has the last word.
        if !open(&feed(settings)?) && ended()? {
            return Ok(Cancelled::Done);
        }
        if Instant::now() > deadline {
            return Ok(Cancelled::TimedOut(path));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With no daemon serving the workspace: leave a cancel request for the
/// next one if the journal says the target is open (its path), else nothing.
pub fn cancel_later(settings: &Settings, target: CancelTarget) -> Result<Option<PathBuf>> {
    let engine = crate::replay::load(settings)?;
    let open = match &target {
        CancelTarget::Task { task } => engine.task(task).is_some_and(|t| t.is_open()),
        CancelTarget::Run { run } => engine.run(run).is_some_and(|r| r.is_active()),
    };
    if !open {
        return Ok(None);
    }
    let request = CancelRequest {
        id: request_id("cancel"),
        cancel: target,
    };
    hand_over(&settings.paths.workspace, &request.id, &request, None).map(Some)
}

/// Write a sync cookie and wait until a daemon serving `workspace` has read
/// every event before it (it removes the cookie), or until `timeout`.
pub fn sync(workspace: &Path, timeout: Duration) -> Result<()> {
    let name = format!("{SYNC_PREFIX}{}-{}", std::process::id(), nanos());
    let path: PathBuf = workspace.join(name);
    std::fs::write(&path, b"").with_context(|| format!("cannot write {}", path.display()))?;
    let deadline = Instant::now() + timeout;
    while path.exists() {
        if Instant::now() > deadline {
            let _ = std::fs::remove_file(&path);
            anyhow::bail!(
                "no gtmd answered within {} s; is `gtmd run` serving {}?",
                timeout.as_secs(),
                workspace.display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Drop a request (a [`RunRequest`] or a [`CancelRequest`]) into the bus
/// of the daemon serving `workspace`, as `requests/ID.yaml`, written
/// atomically like any bus file. `note` (who asked, from where) goes first,
/// as YAML comments.
pub fn hand_over(
    workspace: &Path,
    id: &str,
    request: &impl serde::Serialize,
    note: Option<&str>,
) -> Result<PathBuf> {
    let path = request_path(workspace, id);
    let mut text = String::new();
    for line in note.into_iter().flat_map(str::lines) {
        text.push_str("# ");
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&serde_yaml::to_string(request)?);
    crate::fsutil::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// A request id no other client will choose: `KIND-PID-NANOS`.
pub fn request_id(kind: &str) -> String {
    format!("{kind}-{}-{}", std::process::id(), nanos())
}

fn request_path(workspace: &Path, id: &str) -> PathBuf {
    workspace.join("requests").join(format!("{id}.yaml"))
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
