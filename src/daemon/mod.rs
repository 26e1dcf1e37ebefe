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
mod files;
mod journaling;
mod report;
mod supervise;
mod timers;

use crate::config::Settings;
use crate::engine::{Engine, Event, FileEntry, Millis, RunRequest, TaskId};
use crate::ingest::Ingest;
use crate::journal::{Journal, StateLock, WorkspaceLock};
use crate::protocol::SYNC_PREFIX;
use crate::runner::slurm::Submitted;
use crate::runner::{Runner, TaskExit};
use crate::watch::{self, WatchMsg};
use anyhow::{Context, Result};
use effects::Effects;
use journaling::recover;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use timers::{Due, Timers};
use tokio::sync::mpsc;

/// How often gtmd checks that the workspace directory is still the one it
/// watches (its own removal event triggers a check at once). Each check is a
/// wake-up of an idle daemon, so not more often than this.
const ROOT_CHECK: Duration = Duration::from_secs(5);
/// How long a finished foreground run waits for agent processes to exit by
/// themselves before stopping them.
const FINISH_GRACE: Duration = Duration::from_secs(10);

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
    /// `--http`: the web view's options; the server is started by the caller.
    pub http: Option<crate::web::HttpOptions>,
    /// The running web view: where the state is published.
    pub web: Option<std::sync::Arc<crate::web::Link>>,
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
    // An agent whose runtime cannot run here would fail every task it is
    // given: refuse to start instead, as for an invalid agent file.
    if settings.agent_command.is_none() {
        let missing = crate::check::runtimes_missing(&settings, settings.runtime);
        if !missing.is_empty() {
            let lines: Vec<String> = missing.iter().map(|d| d.to_string()).collect();
            anyhow::bail!("refusing to start:\n{}", lines.join("\n"));
        }
    }
    let missing = crate::check::backends_missing(&settings, settings.backend);
    if !missing.is_empty() {
        let lines: Vec<String> = missing.iter().map(|d| d.to_string()).collect();
        anyhow::bail!("refusing to start:\n{}", lines.join("\n"));
    }
    let state_dir = settings.paths.state_dir.clone();
    let _lock = StateLock::acquire(&state_dir)?;
    let _workspace_lock = WorkspaceLock::acquire(&workspace, &state_dir)?;
    let (journal, engine, settings) = recover(&state_dir, settings)?;

    let strays = crate::runner::kill_strays(&state_dir);
    if strays > 0 {
        tracing::warn!(
            "killed {strays} agent process(es) left behind by a gtmd that did not stop cleanly"
        );
    }
    let (watch_tx, watch_rx) = mpsc::channel(65_536);
    let ingest = Ingest::new(&workspace, &state_dir, settings.max_file_size);
    let watcher = watch::watch(
        &workspace,
        options.poll,
        ingest.state_dir_in_root(),
        watch_tx.clone(),
    )
    .with_context(|| {
        format!(
            "cannot watch {} (if the inotify limits are the cause, raise fs.inotify.max_user_watches, or use --poll)",
            workspace.display()
        )
    })?;
    let root_id = files::dir_id(&workspace);
    let (exit_tx, exit_rx) = mpsc::unbounded_channel();
    let (submitted_tx, submitted_rx) = mpsc::unbounded_channel();
    let mut runner = Runner::new(
        workspace.clone(),
        state_dir.clone(),
        settings.agents.clone(),
        settings.agent_command.clone(),
        Duration::from_secs(settings.playbook.default_timeout_secs),
        exit_tx,
        submitted_tx,
    );
    runner.set_limits(options.limits.clone());
    runner.set_runtimes(settings.runtime, &settings.playbook, &settings.prices);
    runner.set_default_backend(settings.backend);
    let durable = journal.durability();
    runner.set_durability(durable.clone());
    let git = options.git.then(|| crate::git::Git::new(&workspace));
    let mut d = Daemon {
        settings,
        options,
        engine,
        journal,
        fx: Effects {
            durable,
            runner,
            ingest,
            retries: Vec::new(),
            dirty_runs: BTreeSet::new(),
            gate_evals: BTreeSet::new(),
            git,
            follow: None,
            outcome: None,
            story: None,
        },
        timers: Timers::default(),
        parked: HashMap::new(),
        cookie_seq: 0,
        unjournaled: Vec::new(),
        records_written: None,
        feed: None,
        batch: Vec::new(),
        batch_index: HashMap::new(),
        last_progress: String::new(),
        watch_tx,
        watcher: Some(watcher),
        root_id,
        rescans: VecDeque::new(),
        pending_syncs: Vec::new(),
        checkpointed_at: 0,
    };
    if let Some(web) = &d.options.web {
        let mut recorder = web.recorder();
        recorder.start(now_ms());
        d.fx.story = Some(recorder);
    }
    d.start()?;
    d.event_loop(watch_rx, exit_rx, submitted_rx, &mut control)
        .await
}

struct Daemon {
    settings: Settings,
    options: Options,
    engine: Engine,
    journal: Journal,
    /// What carries out the engine's actions (runner, gate checks, records).
    fx: Effects,
    /// Deadlines: files settling, new directories, cookies, retries, the
    /// next rescan and record rewrite.
    timers: Timers,
    /// Exits waiting for their cookie: cookie name → the exit.
    parked: HashMap<String, Event>,
    cookie_seq: u64,
    /// Events observed but not yet durable (the journal could not be written).
    unjournaled: Vec<Event>,
    /// When the run records were last written (see `report::RECORD_EVERY`).
    records_written: Option<Instant>,
    /// The feed last written for clients.
    feed: Option<report::Published>,
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
            self.timers.retry(t, Instant::now());
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
        mut submitted_rx: mpsc::UnboundedReceiver<Submitted>,
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
                Some(job) = submitted_rx.recv() => self.job_submitted(job),
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

    /// A job's id arrived from the scheduler: journal it with the batch.
    fn job_submitted(&mut self, job: Submitted) {
        if crate::test_hooks::die_after_submit() {
            tracing::error!(job = %job.id, "GTMD_DEBUG_DIE_AFTER_SUBMIT: dying before the job's id is journaled");
            std::process::exit(137);
        }
        self.batch.push(Event::JobSubmitted {
            task: job.task,
            name: job.name,
            id: job.id,
            at: now_ms(),
        });
    }

    // ---- timers ----

    fn next_deadline(&self) -> Option<Instant> {
        let journal_retry =
            (!self.unjournaled.is_empty()).then(|| Instant::now() + Duration::from_secs(1));
        [
            self.timers.next_deadline(),
            journal_retry,
            self.budget_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn fire_timers(&mut self) {
        for due in self.timers.due(Instant::now()) {
            match due {
                Due::Rescan => {
                    if self.watcher.is_some() {
                        let n = self.rescan();
                        tracing::info!("rescan done: {n} change(s) found");
                        for cookie in std::mem::take(&mut self.pending_syncs) {
                            let _ = std::fs::remove_file(cookie);
                        }
                    }
                }
                Due::Settled(rel) | Due::NewDir(rel) => self.look_at(&rel),
                Due::Cookie(name) => {
                    tracing::debug!("cookie {name} not seen in time; handling the exit anyway");
                    self.release_cookie(&name);
                }
                Due::Retry(task) => self.batch.push(Event::RetryDue { task, at: now_ms() }),
                Due::Records => self.write_records(false),
                Due::Feed => self.publish_feed(false),
            }
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
        for (at, task) in self.fx.retries.drain(..) {
            self.timers.retry(task, at);
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
        self.publish_feed(false);
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
        if self.fx.outcome.is_none() && self.timers.quiet() && self.unjournaled.is_empty() {
            if let Some(why) = self.engine.stalled(&run) {
                self.fx.outcome = Some(Outcome::Failed {
                    run: Some(run),
                    reason: format!("the run cannot go on: {why}"),
                });
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
        self.stop_starting();
        self.stop_tasks(exit_rx, control, grace).await;
        self.write_records(true);
        self.publish_feed(true);
        self.cleanup_cookies();
        self.checkpoint();
    }

    /// A foreground run ended: tasks of it still open are cancelled (so the
    /// record says so and no later gtmd resumes them), then processes stop.
    async fn finish_foreground(&mut self, exit_rx: &mut mpsc::UnboundedReceiver<TaskExit>) {
        self.stop_starting();
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
                Ok(Some(exit)) => self.ended_while_stopping(exit),
                _ => break,
            }
        }
        self.shutdown(exit_rx, None, Duration::ZERO).await;
    }

    /// A process ended while gtmd stops, its exit not journaled: if its task
    /// has ended (its status came first), nothing reads the task's files any
    /// more. A task still open keeps them for the next start.
    /// A process ended while gtmd stops. If its task has ended (its status
    /// came first), the exit is journaled like any other: nothing of the
    /// task is left to read. If not, only what its runtime reported is (its
    /// cost counts, a retry may resume its session), and the task is left
    /// for the next start: its status, if it wrote one, is read by the
    /// start-up scan, else it runs again.
    pub(super) fn ended_while_stopping(&mut self, exit: TaskExit) {
        tracing::info!(task = %exit.task, "task process ended while stopping: {}", exit.exit.describe());
        self.fx.runner.reaped(&exit.task);
        let at = now_ms();
        let done = self.engine.task(&exit.task).is_some_and(|t| !t.is_open());
        let event = match (done, exit.report) {
            (true, report) => Event::TaskExited {
                task: exit.task,
                exit: exit.exit,
                report: report.map(Box::new),
                at,
            },
            (false, Some(report)) => Event::TaskReported {
                task: exit.task,
                report: Box::new(report),
                at,
            },
            (false, None) => return,
        };
        self.apply(vec![event]);
    }

    /// From here on no task starts (journaled, so a replay knows too).
    pub(super) fn stop_starting(&mut self) {
        if !self.engine.stopping() {
            self.apply(vec![Event::Stopping { at: now_ms() }]);
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
