//! The daemon: watcher, engine, journal and runner wired into one event loop.
//!
//! One tokio task owns the engine and the journal, so events are handled one
//! at a time in the order they were observed. Each batch of events is written
//! to the journal (fsynced) before the engine sees it and before any of its
//! actions are carried out. Around that loop: the notify callback feeding a
//! bounded channel, one tokio task per child process reporting exits, and a
//! shutdown signal passed in from outside (mini-redis style).
//!
//! Ordering with processes: a task's exit is only handled once every file
//! event that happened before it has been read. gtmd writes a cookie file and
//! waits for its own event (watchman's sync trick), so an agent's outputs and
//! status are always seen before its exit.

mod effects;
pub mod ingest;
mod supervise;

use crate::config::Settings;
use crate::engine::{Engine, Event, FileEntry, Millis, RunRequest, TaskId};
use crate::journal::{Journal, StateLock, WorkspaceLock};
use crate::protocol::FileKind;
use crate::record;
use crate::runner::{Runner, TaskExit};
use crate::watch::{self, Change, WatchMsg};
use anyhow::{Context, Result};
use effects::Effects;
use ingest::{Ingest, Observed};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// A file modified without a close (mmap writers, hard links) is read after
/// this much quiet.
const SETTLE: Duration = Duration::from_millis(300);
/// Journal entries after which the state is snapshotted (GTMD_COMPACT_EVERY
/// overrides it, for tests).
fn compact_every() -> u64 {
    std::env::var("GTMD_COMPACT_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(50_000)
}

/// Journal entries between two checkpoints (GTMD_CHECKPOINT_EVERY
/// overrides it, for tests). A digest costs a pass over the whole state, so
/// not per event; a replay then tells within this many entries where it
/// parted from the daemon.
fn checkpoint_every() -> u64 {
    std::env::var("GTMD_CHECKPOINT_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2_000)
}

/// How often gtmd checks that the workspace directory is still the one it
/// watches (its own removal event triggers a check at once). Each check is a
/// wake-up of an idle daemon, so not more often than this.
const ROOT_CHECK: Duration = Duration::from_secs(5);
/// Rescans closer together than this count as repeating.
const RESCAN_WINDOW: Duration = Duration::from_secs(10);
/// How long a new directory is looked at again, for files written into it
/// before notify watched it.
const NEW_DIR_WATCH: Duration = Duration::from_secs(1);
/// How long an exit waits for its cookie before it is handled anyway.
const COOKIE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a finished foreground run waits for agent processes to exit by
/// themselves before stopping them.
const FINISH_GRACE: Duration = Duration::from_secs(10);
/// A run record changed by a burst of events is rewritten at most this often
/// (at once when its run has ended, and at shutdown).
const RECORD_EVERY: Duration = Duration::from_millis(250);
/// Prefix of the cookie files gtmd writes for its own ordering.
pub const COOKIE_PREFIX: &str = ".gtmd-cookie-";
/// Prefix of the cookie files `gtmd sync` writes.
pub const SYNC_PREFIX: &str = ".gtmd-sync-";

/// What the daemon is for this time.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `gtmd run`: serve until told to stop.
    Serve,
    /// `gtmd team run` / `gtmd agent run` with no daemon: run this request to its end.
    Foreground(Box<RunRequest>),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub poll: Option<Duration>,
    pub mode: Mode,
    /// Print progress lines (phase, steps done) for a foreground run.
    pub progress: bool,
    /// `--max-parallel`, `--max-task-log`: enforced by the runner.
    pub limits: crate::runner::Limits,
    /// `--grace`: how long running tasks may go on after SIGTERM/SIGINT.
    pub grace: Duration,
    /// `--git`: commit each task's files when a status completes it.
    pub git: bool,
}

/// How a foreground run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done { run: String, summary: String },
    Failed { run: Option<String>, reason: String },
    Stopped,
}

pub enum Control {
    Shutdown,
    Reload,
}

/// Run the daemon until `control` says stop (or the foreground run ends).
pub async fn run(
    settings: Settings,
    options: Options,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> Result<Outcome> {
    let workspace = settings.paths.workspace.clone();
    if !workspace.is_dir() {
        anyhow::bail!(
            "the workspace {} does not exist; create it with `gtmd init` or pass --workspace",
            workspace.display()
        );
    }
    let state_dir = settings.paths.state_dir.clone();
    let _lock = StateLock::acquire(&state_dir)?;
    let _workspace_lock = WorkspaceLock::acquire(&workspace, &state_dir)?;
    let (journal, recovered) = Journal::open(&state_dir)?;
    let replayed = recovered.events.len();
    let from_snapshot = recovered.snapshot.is_some();
    let crate::replay::Replayed {
        engine,
        divergence,
        checkpoints,
    } = crate::replay::replay_with(&settings, recovered);
    tracing::info!(
        from_snapshot,
        checkpoints,
        workspace = %workspace.display(),
        journal = %journal.path().display(),
        "replayed {replayed} journal entries"
    );
    if let Some(d) = divergence {
        if crate::replay::strict() {
            anyhow::bail!("{d}");
        }
        tracing::error!("{d}");
    }
    // A playbook changed while gtmd was down may not take a phase or step
    // from a run in progress: the run goes on with the one it has.
    let mut settings = settings;
    let problems = engine.playbook_change_problems(&settings.playbook);
    if !problems.is_empty() {
        let file = settings
            .paths
            .playbook
            .as_deref()
            .map_or("the playbook".into(), |p| p.display().to_string());
        for p in problems {
            tracing::error!("{file}: {p}");
        }
        tracing::error!(
            "kept the playbook the active run started with (from the journal); use the new one once the run has ended (or `gtmd cancel --run`), then restart or reload gtmd"
        );
        settings.playbook = engine.playbook().clone();
    }

    let strays = crate::runner::kill_strays(&state_dir);
    if strays > 0 {
        tracing::warn!(
            "killed {strays} agent process(es) left behind by a gtmd that did not stop cleanly"
        );
    }
    let (watch_tx, watch_rx) = mpsc::channel(65_536);
    let watcher = watch::watch(&workspace, options.poll, watch_tx.clone()).with_context(|| {
        format!(
            "cannot watch {} (if the inotify limits are the cause, raise fs.inotify.max_user_watches, or use --poll)",
            workspace.display()
        )
    })?;
    let root_id = dir_id(&workspace);
    let (exit_tx, exit_rx) = mpsc::unbounded_channel();
    let mut runner = Runner::new(
        workspace.clone(),
        state_dir.clone(),
        settings.agents.clone(),
        settings.agent_command.clone(),
        Duration::from_secs(settings.playbook.default_timeout_secs),
        exit_tx,
    );
    runner.set_limits(options.limits.clone());
    let ingest = Ingest::new(&workspace, &state_dir, settings.max_file_size);
    let git = options.git.then(|| crate::git::Git::new(&workspace));
    let mut d = Daemon {
        settings,
        options,
        engine,
        journal,
        fx: Effects {
            runner,
            ingest,
            retries: Vec::new(),
            dirty_runs: BTreeSet::new(),
            gate_evals: BTreeSet::new(),
            git,
            follow: None,
            outcome: None,
        },
        settle: BTreeMap::new(),
        new_dirs: BTreeMap::new(),
        parked: HashMap::new(),
        cookie_seq: 0,
        unjournaled: Vec::new(),
        records_written: None,
        records_due: None,
        batch: Vec::new(),
        batch_index: HashMap::new(),
        last_progress: String::new(),
        watch_tx,
        watcher: Some(watcher),
        root_id,
        rescans: VecDeque::new(),
        rescan_at: None,
        pending_syncs: Vec::new(),
        checkpointed_at: 0,
    };
    d.start()?;
    d.event_loop(watch_rx, exit_rx, &mut control).await
}

/// Device and inode of a directory: tells a recreated workspace from the old one.
fn dir_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

struct Daemon {
    settings: Settings,
    options: Options,
    engine: Engine,
    journal: Journal,
    /// What carries out the engine's actions (runner, gate checks, records).
    fx: Effects,
    /// Files touched but not yet closed: read at the deadline.
    settle: BTreeMap<String, Instant>,
    /// Directories that appeared recently: looked at again at every cookie
    /// and once more at the deadline.
    new_dirs: BTreeMap<String, Instant>,
    /// Exits waiting for their cookie: cookie name → (deadline, event).
    parked: HashMap<String, (Instant, Event)>,
    cookie_seq: u64,
    /// Events observed but not yet durable (the journal could not be written).
    unjournaled: Vec<Event>,
    /// When the run records were last written, and when the next rewrite
    /// is due (see [`RECORD_EVERY`]).
    records_written: Option<Instant>,
    records_due: Option<Instant>,
    /// Events observed in this turn of the loop, applied together.
    batch: Vec<Event>,
    /// The file versions `batch` will give the engine (None: removed), so a
    /// path seen twice in one turn is not taken as new twice.
    batch_index: HashMap<String, Option<FileEntry>>,
    last_progress: String,
    watch_tx: mpsc::Sender<WatchMsg>,
    /// `None` while the workspace directory itself is gone.
    watcher: Option<watch::WatchHandle>,
    root_id: Option<(u64, u64)>,
    /// Recent rescans, to back off when they repeat (a recrawl storm).
    rescans: VecDeque<Instant>,
    rescan_at: Option<Instant>,
    /// `gtmd sync` cookies to answer once the pending rescan has run.
    pending_syncs: Vec<PathBuf>,
    /// Journal entries (of this generation) when the last checkpoint was written.
    checkpointed_at: u64,
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl Daemon {
    /// Catch up with what changed while gtmd was not running, then resume.
    fn start(&mut self) -> Result<()> {
        let started = Instant::now();
        // The configuration this gtmd decides with, and the fact that the
        // processes of the one before are gone, go into the journal first:
        // a replay must meet them where this gtmd did.
        let configured = self.configured_event(now_ms());
        self.apply(vec![configured, Event::Restarted { at: now_ms() }]);
        let scanned = self.rescan();
        // `gtmd sync` calls made before the watch existed are answered now:
        // the scan has seen everything written before them.
        if let Ok(entries) = std::fs::read_dir(self.fx.ingest.root()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(SYNC_PREFIX) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // What the scan did not finish of the tasks that ran when gtmd
        // stopped runs again (command) or stays in its inbox (person).
        let interrupted = self
            .engine
            .tasks()
            .values()
            .filter(|t| t.state == crate::engine::TaskState::Running)
            .count();
        self.apply(vec![Event::CaughtUp { at: now_ms() }]);
        let waiting: Vec<TaskId> = self
            .engine
            .tasks()
            .values()
            .filter(|t| t.state == crate::engine::TaskState::RetryWait)
            .map(|t| t.id.clone())
            .collect();
        for t in waiting {
            self.fx.retries.push((Instant::now(), t));
        }
        tracing::info!(
            "start-up scan: {scanned} new file version(s), {interrupted} task(s) taken up again after the stop, in {} ms",
            started.elapsed().as_millis()
        );
        self.checkpoint();
        // Start-up (replay, scan) is the high-water mark of the heap; give
        // what it no longer needs back to the system before idling.
        crate::os::release_free_memory();
        tracing::info!(
            workspace = %self.fx.ingest.root().display(),
            "ready: watching the workspace"
        );
        self.notify_ready();
        if let Mode::Foreground(req) = &self.options.mode {
            self.fx.follow = Some((req.id.clone(), None));
            let ev = Event::RunRequested {
                request: (**req).clone(),
                at: now_ms(),
            };
            self.apply(vec![ev]);
        }
        self.after_batch();
        Ok(())
    }

    async fn event_loop(
        &mut self,
        mut watch_rx: mpsc::Receiver<WatchMsg>,
        mut exit_rx: mpsc::UnboundedReceiver<TaskExit>,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Outcome> {
        let mut root_check = tokio::time::interval(ROOT_CHECK);
        root_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watchdog = crate::service::Watchdog::from_env();
        loop {
            if let Some(outcome) = self.fx.outcome.clone() {
                self.finish_foreground(&mut exit_rx).await;
                return Ok(outcome);
            }
            if self.options.progress && crate::output::closed() {
                // Whoever followed this foreground run has gone (`team run |
                // head`): stop as on Ctrl-C; its tasks resume at the next start.
                self.shutdown(&mut exit_rx, Some(control), self.options.grace)
                    .await;
                return Ok(Outcome::Stopped);
            }
            let deadline = self.next_deadline();
            tokio::select! {
                msg = watch_rx.recv() => {
                    let Some(msg) = msg else { anyhow::bail!("the file watcher stopped") };
                    let mut batch = vec![msg];
                    while batch.len() < 4096 {
                        match watch_rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    for m in batch {
                        match m {
                            WatchMsg::Path(change, path) => self.on_path(change, &path),
                            WatchMsg::Rescan(why) => self.request_rescan(&why),
                        }
                    }
                }
                _ = root_check.tick() => self.check_root(),
                exit = exit_rx.recv() => {
                    if let Some(exit) = exit {
                        self.fx.runner.reaped(&exit.task);
                        self.park_exit(exit);
                    }
                }
                ctl = control.recv() => match ctl {
                    Some(Control::Reload) => self.reload(),
                    Some(Control::Shutdown) | None => {
                        self.shutdown(&mut exit_rx, Some(control), self.options.grace).await;
                        return Ok(Outcome::Stopped);
                    }
                },
                _ = sleep_until(deadline) => self.fire_timers(),
                _ = watchdog.tick() => watchdog.ping(),
            }
            if self
                .watcher
                .as_ref()
                .is_some_and(|w| w.overflowed.swap(false, Ordering::AcqRel))
            {
                self.request_rescan("events were lost between the watcher and gtmd");
            }
            self.after_batch();
        }
    }

    // ---- files ----

    fn on_path(&mut self, change: Change, abs: &Path) {
        let Some(rel) = self.fx.ingest.relative(abs) else {
            if change == Change::Gone && abs == self.fx.ingest.root() {
                // The workspace itself was deleted or moved away: its watch is
                // gone with it. The root check watches whatever is there next
                // (a new directory may even reuse the old inode number).
                tracing::warn!(workspace = %abs.display(), "the workspace directory was removed");
                self.watcher = None;
                self.root_id = None;
                self.check_root();
            }
            return;
        };
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if !rel.contains('/') && name.starts_with(COOKIE_PREFIX) {
            if change != Change::Gone {
                self.release_cookie(&rel);
            }
            return;
        }
        if !rel.contains('/') && name.starts_with(SYNC_PREFIX) {
            if change != Change::Gone {
                // Everything before this point has been read; files still
                // settling were written before it too. Answer by removing it.
                self.settle_all();
                if self.rescan_at.is_some() || self.watcher.is_none() {
                    // Events may have been lost: answer once the rescan ran.
                    self.pending_syncs.push(abs.to_path_buf());
                } else {
                    let _ = std::fs::remove_file(abs);
                }
            }
            return;
        }
        match change {
            Change::Touched => {
                if self.fx.ingest.ignored(&rel) {
                    return;
                }
                // A symlink is complete when it is created: no write follows.
                let is_link =
                    std::fs::symlink_metadata(abs).is_ok_and(|m| m.file_type().is_symlink());
                if is_link {
                    self.settle.remove(&rel);
                    self.look_at(&rel);
                } else {
                    self.settle.insert(rel, Instant::now() + SETTLE);
                }
            }
            Change::Complete => {
                self.settle.remove(&rel);
                if matches!(crate::protocol::classify(&rel), FileKind::Status { .. }) {
                    // Outputs written before this status may sit in a new
                    // directory notify has not watched yet: find them first.
                    let dirs: Vec<String> = self.new_dirs.keys().cloned().collect();
                    for dir in dirs {
                        self.look_at(&dir);
                    }
                }
                self.look_at(&rel);
                // A directory moved in: its subdirectories' watches come later.
                if std::fs::symlink_metadata(abs).is_ok_and(|m| m.is_dir()) {
                    self.new_dirs.insert(rel, Instant::now() + NEW_DIR_WATCH);
                }
            }
            Change::DirCreated => {
                self.look_at(&rel);
                // Files may land in it, or in its subdirectories, before
                // notify has added their watches: look again at every sync
                // or exit cookie until the watches surely exist.
                self.new_dirs.insert(rel, Instant::now() + NEW_DIR_WATCH);
            }
            Change::Gone => {
                self.settle.remove(&rel);
                self.look_at(&rel);
            }
        }
    }

    /// Look at a path now; what changed joins the batch being collected.
    fn look_at(&mut self, rel: &str) {
        self.observe(rel, false);
    }

    /// The version the engine will know once the collected batch is applied.
    fn known(&self, rel: &str) -> Option<FileEntry> {
        match self.batch_index.get(rel) {
            Some(entry) => entry.clone(),
            None => self.engine.files().get(rel).cloned(),
        }
    }

    fn observe(&mut self, rel: &str, trust_mtime: bool) {
        let known = self.known(rel);
        match self.fx.ingest.observe(rel, known.as_ref(), trust_mtime) {
            Observed::New {
                hash,
                size,
                mtime_ns,
                content,
            } => {
                self.batch_index.insert(
                    rel.to_string(),
                    Some(FileEntry {
                        hash: hash.clone(),
                        size,
                        mtime_ns,
                    }),
                );
                self.batch.push(Event::FileChanged {
                    path: rel.to_string(),
                    hash,
                    size,
                    mtime_ns,
                    at: now_ms(),
                    content: *content,
                });
            }
            Observed::Dir => {
                // A new directory may already hold files (mkdir -p, mv of a folder).
                for f in self.fx.ingest.scan(rel) {
                    self.observe(&f, trust_mtime);
                }
            }
            Observed::Missing => {
                let prefix = format!("{rel}/");
                let mut gone: Vec<String> = self
                    .engine
                    .files()
                    .range(rel.to_string()..)
                    .take_while(|(p, _)| p.starts_with(rel))
                    .filter(|(p, _)| p.as_str() == rel || p.starts_with(&prefix))
                    .map(|(p, _)| p.clone())
                    .collect();
                gone.extend(
                    self.batch_index
                        .iter()
                        .filter(|(p, e)| {
                            e.is_some() && (p.as_str() == rel || p.starts_with(&prefix))
                        })
                        .map(|(p, _)| p.clone()),
                );
                gone.sort();
                gone.dedup();
                for path in gone {
                    if self.known(&path).is_some() {
                        self.batch_index.insert(path.clone(), None);
                        self.batch.push(Event::FileRemoved { path, at: now_ms() });
                    }
                }
            }
            Observed::Touched { mtime_ns } => {
                if let Some(mut entry) = known {
                    entry.mtime_ns = mtime_ns;
                    self.batch_index.insert(rel.to_string(), Some(entry));
                }
                self.batch.push(Event::FileTouched {
                    path: rel.to_string(),
                    mtime_ns,
                    at: now_ms(),
                });
            }
            Observed::Settling => {
                self.settle.insert(rel.to_string(), Instant::now() + SETTLE);
            }
            Observed::Ignored | Observed::Owned | Observed::Unchanged => {}
        }
    }

    /// Compare the whole tree with what the journal knows; act on the difference.
    fn rescan(&mut self) -> usize {
        let before = self.batch.len();
        let on_disk = self.fx.ingest.scan("");
        for rel in &on_disk {
            self.observe(rel, true);
        }
        let present: BTreeSet<&String> = on_disk.iter().collect();
        let gone: Vec<String> = self
            .engine
            .files()
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.batch_index.insert(path.clone(), None);
            self.batch.push(Event::FileRemoved { path, at: now_ms() });
        }
        let n = self.batch.len() - before;
        self.flush();
        n
    }

    /// Apply the collected batch: one journal write (and fsync) for all of it.
    fn flush(&mut self) {
        let events = std::mem::take(&mut self.batch);
        self.batch_index.clear();
        if !events.is_empty() || !self.unjournaled.is_empty() {
            self.apply(events);
        }
    }

    /// Rescan soon; when rescans keep coming (a recrawl storm), wait longer
    /// between them: 1 s, 2 s, 4 s ... up to 30 s.
    fn request_rescan(&mut self, why: &str) {
        let now = Instant::now();
        if let Some(w) = &self.watcher {
            w.overflowed.store(false, Ordering::Release);
        }
        if self.rescan_at.is_some() {
            // One is already due; it will see this loss too.
            return;
        }
        while self
            .rescans
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESCAN_WINDOW)
        {
            self.rescans.pop_front();
        }
        self.rescans.push_back(now);
        let n = self.rescans.len() as u32;
        let delay = if n <= 3 {
            Duration::ZERO
        } else {
            Duration::from_secs((1u64 << (n - 4).min(5)).min(30))
        };
        if let Some(w) = &self.watcher {
            w.overflowed.store(false, Ordering::Release);
        }
        tracing::warn!(
            "{why}; rescanning the workspace{} (if this repeats, raise fs.inotify.max_queued_events)",
            if delay.is_zero() {
                String::new()
            } else {
                format!(" in {} s: rescans are repeating", delay.as_secs())
            }
        );
        let at = now + delay;
        self.rescan_at = Some(self.rescan_at.map_or(at, |d| d.min(at)));
    }

    /// The workspace directory itself may be deleted and created again: keep
    /// watching the one that is there now.
    fn check_root(&mut self) {
        let root = self.fx.ingest.root().to_path_buf();
        let id = dir_id(&root);
        if id.is_none() {
            if self.watcher.take().is_some() {
                tracing::warn!(workspace = %root.display(), "the workspace directory is gone; waiting for it to come back");
                self.root_id = None;
            }
            return;
        }
        if id == self.root_id && self.watcher.is_some() {
            return;
        }
        match watch::watch(&root, self.options.poll, self.watch_tx.clone()) {
            Ok(w) => {
                tracing::warn!(workspace = %root.display(), "the workspace directory was replaced; watching the new one and rescanning");
                self.watcher = Some(w);
                self.root_id = id;
                self.fx.ingest.refresh_root();
                self.request_rescan("the workspace directory was replaced");
            }
            Err(e) => {
                tracing::warn!(workspace = %root.display(), "cannot watch the workspace yet: {e}")
            }
        }
    }

    // ---- processes ----

    /// An exit is handled after every file event before it: write a cookie
    /// and handle the exit when the watcher reports the cookie.
    fn park_exit(&mut self, exit: TaskExit) {
        self.cookie_seq += 1;
        let name = format!("{COOKIE_PREFIX}{}-{}", std::process::id(), self.cookie_seq);
        let event = Event::TaskExited {
            task: exit.task,
            exit: exit.exit,
            at: now_ms(),
        };
        let path = self.fx.ingest.root().join(&name);
        if std::fs::write(&path, b"").is_err() {
            self.batch.push(event);
            return;
        }
        self.parked
            .insert(name, (Instant::now() + COOKIE_TIMEOUT, event));
    }

    /// Keep the journal short: past a number of entries, snapshot the state.
    fn maybe_compact(&mut self) {
        if self.journal.entries() < compact_every() || !self.unjournaled.is_empty() {
            return;
        }
        let t = Instant::now();
        match self.journal.compact(&self.engine.snapshot()) {
            Ok(()) => {
                tracing::info!(
                    "compacted the journal into a snapshot in {} ms",
                    t.elapsed().as_millis()
                );
                // The new generation opens with a checkpoint: the next replay
                // checks the snapshot itself.
                self.checkpoint();
            }
            Err(e) => tracing::error!("{e:#}"),
        }
    }

    /// Journal a digest of the engine for replays to compare against (see
    /// [`crate::replay`]): at start, after a compaction, at a clean stop,
    /// and every [`checkpoint_every`] entries.
    fn checkpoint(&mut self) {
        match crate::apply::checkpoint(
            &mut self.engine,
            &mut self.journal,
            &self.unjournaled,
            now_ms(),
        ) {
            Ok(true) => self.checkpointed_at = self.journal.entries(),
            Ok(false) => {}
            Err(e) => tracing::error!("{e:#}"),
        }
    }

    fn maybe_checkpoint(&mut self) {
        let since = self.journal.entries().saturating_sub(self.checkpointed_at);
        // A compaction starts the count again.
        if since >= checkpoint_every() || self.journal.entries() < self.checkpointed_at {
            self.checkpoint();
        }
    }

    /// Read every file still settling now.
    fn settle_all(&mut self) {
        for rel in std::mem::take(&mut self.settle).into_keys() {
            self.look_at(&rel);
        }
        // New directories stay on the list until their deadline: notify may
        // not have watched them yet even when a later event has arrived.
        let dirs: Vec<String> = self.new_dirs.keys().cloned().collect();
        for rel in dirs {
            self.look_at(&rel);
        }
    }

    fn release_cookie(&mut self, name: &str) {
        if let Some((_, event)) = self.parked.remove(name) {
            self.settle_all();
            let _ = std::fs::remove_file(self.fx.ingest.root().join(name));
            self.batch.push(event);
        }
    }

    // ---- timers ----

    fn next_deadline(&self) -> Option<Instant> {
        let settle = self
            .settle
            .values()
            .chain(self.new_dirs.values())
            .min()
            .copied();
        let cookie = self.parked.values().map(|(d, _)| *d).min();
        let retry = self.fx.retries.iter().map(|(d, _)| *d).min();
        let journal_retry =
            (!self.unjournaled.is_empty()).then(|| Instant::now() + Duration::from_secs(1));
        [
            settle,
            cookie,
            retry,
            journal_retry,
            self.rescan_at,
            self.records_due,
            self.budget_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        if self.rescan_at.is_some_and(|d| d <= now) {
            self.rescan_at = None;
            if self.watcher.is_some() {
                let n = self.rescan();
                tracing::info!("rescan done: {n} change(s) found");
                for cookie in std::mem::take(&mut self.pending_syncs) {
                    let _ = std::fs::remove_file(cookie);
                }
            }
        }
        let due: Vec<String> = self
            .settle
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for rel in due {
            self.settle.remove(&rel);
            self.look_at(&rel);
        }
        let due_dirs: Vec<String> = self
            .new_dirs
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for rel in due_dirs {
            self.new_dirs.remove(&rel);
            self.look_at(&rel);
        }
        let late: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, (d, _))| *d <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in late {
            tracing::debug!("cookie {name} not seen in time; handling the exit anyway");
            self.release_cookie(&name);
        }
        let (due, later): (Vec<_>, Vec<_>) =
            self.fx.retries.drain(..).partition(|(d, _)| *d <= now);
        self.fx.retries = later;
        for (_, task) in due {
            self.batch.push(Event::RetryDue { task, at: now_ms() });
        }
        self.enforce_run_budgets();
    }

    // ---- the engine ----

    /// Journal, then handle, then act (see [`crate::apply`]); what cannot
    /// be journaled waits in `unjournaled` and is tried again each second.
    fn apply(&mut self, events: Vec<Event>) {
        if let Err(e) = crate::apply::apply(
            &mut self.engine,
            &mut self.journal,
            &mut self.unjournaled,
            events,
            &mut self.fx,
        ) {
            tracing::error!("{e:#}");
        }
    }

    /// After each batch: apply it, rewrite changed run records, report
    /// progress, and notice a foreground run that can no longer move.
    fn after_batch(&mut self) {
        self.flush();
        self.maybe_compact();
        self.maybe_checkpoint();
        self.report_status();
        self.write_records(false);
        let Some((req, run)) = self.fx.follow.clone() else {
            return;
        };
        let run = run.or_else(|| {
            self.engine
                .runs()
                .values()
                .find(|r| r.request.id == req)
                .map(|r| r.id.clone())
        });
        self.fx.follow = Some((req, run.clone()));
        let Some(run) = run else { return };
        if self.options.progress {
            self.print_progress(&run);
        }
        if self.fx.outcome.is_none()
            && self.parked.is_empty()
            && self.settle.is_empty()
            && self.new_dirs.is_empty()
            && self.unjournaled.is_empty()
        {
            if let Some(why) = self.engine.stalled(&run) {
                self.fx.outcome = Some(Outcome::Failed {
                    run: Some(run),
                    reason: format!("the run cannot go on: {why}"),
                });
            }
        }
    }

    /// Rewrite the records of the runs that changed. A record is rendered
    /// whole, so during a burst (thousands of conflict reviews) it is written
    /// at most every [`RECORD_EVERY`]; at once when a run has ended, and
    /// with `now` (shutdown).
    fn write_records(&mut self, now: bool) {
        if self.fx.dirty_runs.is_empty() {
            return;
        }
        let at = Instant::now();
        let due = self.records_written.map_or(at, |t| t + RECORD_EVERY);
        let ended = self
            .fx
            .dirty_runs
            .iter()
            .any(|r| self.engine.run(r).is_some_and(|r| !r.is_active()));
        if !now && !ended && due > at {
            self.records_due = Some(due);
            return;
        }
        self.records_due = None;
        self.records_written = Some(at);
        for run in std::mem::take(&mut self.fx.dirty_runs) {
            if let Some(r) = self.engine.run(&run) {
                let text = record::render(&self.engine, r);
                let path = self.fx.ingest.root().join(record::record_path(&run));
                // Rebuilt from the journal at any time: no fsync on this path.
                if let Err(e) = crate::fsutil::write_replaceable(&path, text.as_bytes()) {
                    tracing::error!(file = %path.display(), "cannot write the run record: {}", crate::diagnostic::chain(&e));
                }
            }
        }
    }

    fn print_progress(&mut self, run: &str) {
        let Some(r) = self.engine.run(run) else {
            return;
        };
        let line = match r
            .current_phase()
            .and_then(|p| self.engine.playbook().phase(p))
        {
            Some(p) => {
                let steps: Vec<_> = r.steps.values().filter(|s| s.phase == p.number).collect();
                let done = steps
                    .iter()
                    .filter(|s| s.state == crate::engine::StepState::Done)
                    .count();
                let gate = match r.gates.get(&p.number) {
                    Some(g) if g.passed_at.is_none() => {
                        let ticked = g.boxes.iter().filter(|(_, t)| *t).count();
                        format!(", gate {ticked}/{} ticked", g.boxes.len())
                    }
                    _ => String::new(),
                };
                format!(
                    "[{}] phase {}/{} {}: {done}/{} steps done{gate}",
                    r.id,
                    r.current + 1,
                    r.phases.len(),
                    p.name,
                    steps.len()
                )
            }
            None => format!("[{}] {:?}", r.id, r.state).to_lowercase(),
        };
        if line != self.last_progress {
            crate::errln!("{line}");
            self.last_progress = line;
        }
    }

    /// The event that gives the engine the current settings' configuration.
    fn configured_event(&self, at: Millis) -> Event {
        self.engine
            .configure(&self.settings.playbook, self.settings.policies(), at)
    }

    fn reload(&mut self) {
        let paths = self.settings.paths.clone();
        let command = self
            .settings
            .agent_command
            .clone()
            .map(|v| shell_words::join(&v));
        match Settings::load(paths, command.as_deref(), self.settings.max_file_size) {
            Ok(s) => {
                // A run keeps the phases and steps it started with.
                let problems = self.engine.playbook_change_problems(&s.playbook);
                if !problems.is_empty() {
                    let file = s
                        .paths
                        .playbook
                        .as_deref()
                        .map_or("the playbook".into(), |p| p.display().to_string());
                    for p in problems {
                        tracing::error!("reload refused: {file}: {p}");
                    }
                    tracing::error!(
                        "kept the previous playbook and agent definitions: a playbook may not drop, rename or move a phase or step of an active run; reload it once the run has ended (or `gtmd cancel --run`)"
                    );
                    return;
                }
                self.fx.runner.set_agents(s.agents.clone());
                self.settings = s;
                let ev = self.configured_event(now_ms());
                self.apply(vec![ev]);
                tracing::info!("reloaded the playbook and agent definitions");
            }
            Err(errors) => {
                for e in errors {
                    tracing::error!("reload refused: {e}");
                }
                tracing::error!("kept the previous playbook and agent definitions");
            }
        }
    }

    /// Stop: no more events; running processes get `grace` to finish, then
    /// TERM, then KILL (a second signal on `control` cuts the wait short; see
    /// `supervise.rs`). Their exits are not journaled, so the tasks run again
    /// after a restart unless the start-up scan finds their status.
    async fn shutdown(
        &mut self,
        exit_rx: &mut mpsc::UnboundedReceiver<TaskExit>,
        control: Option<&mut mpsc::UnboundedReceiver<Control>>,
        grace: Duration,
    ) {
        self.write_records(true);
        self.stop_tasks(exit_rx, control, grace).await;
        self.cleanup_cookies();
        self.checkpoint();
    }

    /// A foreground run ended: tasks of it still open are cancelled (so the
    /// record says so and no later gtmd resumes them), then processes stop.
    async fn finish_foreground(&mut self, exit_rx: &mut mpsc::UnboundedReceiver<TaskExit>) {
        if let Some((_, Some(run))) = self.fx.follow.clone() {
            let open = self
                .engine
                .tasks()
                .values()
                .any(|t| t.run.as_deref() == Some(run.as_str()) && t.is_open());
            let active = self.engine.run(&run).is_some_and(|r| r.is_active());
            if open || active {
                self.apply(vec![Event::CancelRequested {
                    target: crate::engine::CancelTarget::Run { run },
                    reason: None,
                    at: now_ms(),
                }]);
            }
            self.after_batch();
        }
        // Agents whose tasks are done may still be finishing (their status
        // written, the process not yet exited): let them end by themselves.
        let deadline = Instant::now() + FINISH_GRACE;
        while self.fx.runner.running_count() > 0 {
            match tokio::time::timeout_at(deadline.into(), exit_rx.recv()).await {
                Ok(Some(exit)) => self.reaped_unjournaled(&exit.task),
                _ => break,
            }
        }
        self.shutdown(exit_rx, None, Duration::ZERO).await;
    }

    /// A process ended while gtmd stops, its exit not journaled: if its task
    /// has ended (its status came first), nothing reads the task's files any
    /// more. A task still open keeps them for the next start.
    fn reaped_unjournaled(&mut self, task: &str) {
        self.fx.runner.reaped(task);
        if self.engine.task(task).is_some_and(|t| !t.is_open()) {
            self.fx.runner.drop_task_files(task);
        }
    }

    fn cleanup_cookies(&mut self) {
        for name in self.parked.keys() {
            let _ = std::fs::remove_file(self.fx.ingest.root().join(name));
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Write a sync cookie and wait until a daemon serving `workspace` has read
/// every event before it (it removes the cookie), or until `timeout`.
pub fn sync(workspace: &Path, timeout: Duration) -> Result<()> {
    let name = format!(
        "{SYNC_PREFIX}{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
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
