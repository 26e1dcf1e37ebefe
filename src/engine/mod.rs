//! The protocol engine: `(state, event) → (state, actions)`, with no I/O, no
//! clock and no async.
//!
//! This is where the guide's rules live: phases start when the previous gate
//! passes, steps start when their dependencies are done, a `complete` status
//! finishes a step only when its outputs exist, failures are retried then
//! escalated, gates pass when every box is ticked and every automatic check
//! passes. Keeping it pure makes every rule a fast unit test and makes crash
//! recovery "replay the journal into a fresh engine".

mod escalation;
mod files;
mod gate;
mod model;
mod runs;
mod tasks;
#[cfg(test)]
mod tests;

pub use gate::{gate_path, render_gate};
pub use model::*;

use crate::diagnostic::Diagnostic;
use crate::playbook::Playbook;
use std::collections::{BTreeMap, BTreeSet};

/// Longest chain of route-triggered tasks (a route task whose output triggers
/// another route...) before gtmd stops following it.
pub const MAX_ROUTE_DEPTH: u32 = 4;

/// Texts the engine builds from what files say (task texts, run log lines)
/// name at most this many items of a list ("and N more" for the rest)...
pub const TEXT_MAX_ITEMS: usize = 20;
/// ...and clip each title, path or name from a file to this many chars. The
/// file keeps the whole; a task text stays small enough for argv.
pub const TEXT_MAX_CHARS: usize = 300;

/// A list from a file, for a task text or a log line.
fn some_of(items: &[String], sep: &str) -> String {
    crate::bounds::some_of(items, TEXT_MAX_ITEMS, TEXT_MAX_CHARS, sep)
}

/// A title, path or name from a file, for a task text or a log line.
fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    crate::bounds::clip(s, TEXT_MAX_CHARS)
}

#[derive(Debug, Clone)]
pub struct Engine {
    playbook: Playbook,
    agents: BTreeMap<String, AgentPolicy>,
    files: BTreeMap<String, FileEntry>,
    runs: BTreeMap<RunId, Run>,
    tasks: BTreeMap<TaskId, Task>,
    refused_requests: Vec<RefusedRequest>,
    /// Files currently refused (path → why), cleared by a good version.
    rejected: BTreeMap<String, Diagnostic>,
    /// Every (path, content hash) a reaction was considered for: a version is
    /// acted on once, whatever order or how often its events arrive (an editor
    /// that renames the file away and writes it back unchanged, a replay, a
    /// duplicate event, a file reverted to an earlier content).
    acted: BTreeMap<String, BTreeSet<String>>,
    conflicts: BTreeMap<String, ConflictState>,
    decisions: BTreeMap<String, DecisionState>,
    /// Indexes derived from `tasks`, kept in step by [`Engine::mutate_task`] so
    /// that an event costs the same with ten tasks or ten thousand.
    /// Open tasks by creation order (ids sort as text, which breaks at 10,000).
    open: BTreeMap<u64, TaskId>,
    queues: BTreeMap<String, BTreeMap<u64, TaskId>>,
    busy: BTreeMap<String, usize>,
    next_task: u64,
    next_run: u64,
    /// Between [`Event::Restarted`] and [`Event::CaughtUp`]: the start-up
    /// scan is being handled, and no task starts until it is.
    catching_up: bool,
    /// [`Playbook::digest`] of `playbook`, to tell a changed one.
    playbook_digest: String,
    /// Order-independent digests of `files` and `acted` (sums of their
    /// members' hashes), kept in step with every change: a checkpoint then
    /// costs a pass over the runs and tasks, not over 100,000 files.
    files_sum: u128,
    acted_sum: u128,
}

/// Names what [`Engine::digest`] covers and how; a checkpoint written under
/// another scheme (another gtmd version) is not compared.
pub const DIGEST_SCHEME: &str = concat!("gtmd ", env!("CARGO_PKG_VERSION"), ", state digest 1");

/// A member's share of a set digest.
fn member_hash(parts: &[&[u8]]) -> u128 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    u128::from_le_bytes(h.finalize().as_bytes()[..16].try_into().unwrap())
}

fn file_hash(path: &str, f: &FileEntry) -> u128 {
    member_hash(&[
        path.as_bytes(),
        f.hash.as_bytes(),
        &f.size.to_le_bytes(),
        &f.mtime_ns.to_le_bytes(),
    ])
}

fn acted_hash(path: &str, hash: &str) -> u128 {
    member_hash(&[path.as_bytes(), hash.as_bytes()])
}

/// The engine's durable state without derived indexes: what a journal
/// snapshot holds. The configuration is part of it, so a replay from a
/// snapshot decides with what the live daemon had.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct EngineState {
    files: BTreeMap<String, FileEntry>,
    runs: BTreeMap<RunId, Run>,
    tasks: BTreeMap<TaskId, Task>,
    refused_requests: Vec<RefusedRequest>,
    rejected: BTreeMap<String, Diagnostic>,
    acted: BTreeMap<String, BTreeSet<String>>,
    conflicts: BTreeMap<String, ConflictState>,
    decisions: BTreeMap<String, DecisionState>,
    next_task: u64,
    next_run: u64,
    #[serde(default)]
    catching_up: bool,
    /// `None` in snapshots written before the configuration was journaled:
    /// the current configuration is taken then.
    #[serde(default)]
    playbook: Option<Playbook>,
    #[serde(default)]
    agents: Option<BTreeMap<String, AgentPolicy>>,
}

/// The part of the state a [`Event::Checkpoint`] digest covers, borrowed:
/// computing a digest must not copy ten thousand tasks.
#[derive(serde::Serialize)]
struct StateView<'a> {
    files: String,
    runs: &'a BTreeMap<RunId, Run>,
    tasks: &'a BTreeMap<TaskId, Task>,
    refused_requests: &'a [RefusedRequest],
    rejected: &'a BTreeMap<String, Diagnostic>,
    acted: String,
    conflicts: &'a BTreeMap<String, ConflictState>,
    decisions: &'a BTreeMap<String, DecisionState>,
    next_task: u64,
    next_run: u64,
    catching_up: bool,
    agents: &'a BTreeMap<String, AgentPolicy>,
    playbook_digest: &'a str,
}

impl Engine {
    /// The durable state, for a journal snapshot.
    pub fn snapshot(&self) -> EngineState {
        EngineState {
            files: self.files.clone(),
            runs: self.runs.clone(),
            tasks: self.tasks.clone(),
            refused_requests: self.refused_requests.clone(),
            rejected: self.rejected.clone(),
            acted: self.acted.clone(),
            conflicts: self.conflicts.clone(),
            decisions: self.decisions.clone(),
            next_task: self.next_task,
            next_run: self.next_run,
            catching_up: self.catching_up,
            playbook: Some(self.playbook.clone()),
            agents: Some(self.agents.clone()),
        }
    }

    /// A digest of everything the engine decides with and has decided: two
    /// engines with the same digest act the same on the next event.
    pub fn digest(&self) -> String {
        let view = StateView {
            files: format!("{} {:032x}", self.files.len(), self.files_sum),
            runs: &self.runs,
            tasks: &self.tasks,
            refused_requests: &self.refused_requests,
            rejected: &self.rejected,
            acted: format!("{:032x}", self.acted_sum),
            conflicts: &self.conflicts,
            decisions: &self.decisions,
            next_task: self.next_task,
            next_run: self.next_run,
            catching_up: self.catching_up,
            agents: &self.agents,
            playbook_digest: &self.playbook_digest,
        };
        // serde_json writes in small pieces; blake3 wants large ones.
        let mut hasher = std::io::BufWriter::with_capacity(64 * 1024, blake3::Hasher::new());
        serde_json::to_writer(&mut hasher, &view).expect("engine state serializes");
        let hasher = hasher.into_inner().expect("hashing cannot fail");
        hasher.finalize().to_hex()[..32].to_string()
    }

    /// An engine at a snapshot's state, its indexes rebuilt. `playbook` and
    /// `agents` are used only when the snapshot predates journaled
    /// configuration.
    pub fn restore(
        playbook: Playbook,
        agents: BTreeMap<String, AgentPolicy>,
        state: EngineState,
    ) -> Engine {
        let mut e = Engine::new(
            state.playbook.unwrap_or(playbook),
            state.agents.unwrap_or(agents),
        );
        e.catching_up = state.catching_up;
        e.files_sum = state
            .files
            .iter()
            .fold(0, |sum, (p, f)| sum.wrapping_add(file_hash(p, f)));
        e.acted_sum = state.acted.iter().fold(0, |sum, (p, versions)| {
            versions
                .iter()
                .fold(sum, |sum, h| sum.wrapping_add(acted_hash(p, h)))
        });
        e.files = state.files;
        e.runs = state.runs;
        e.refused_requests = state.refused_requests;
        e.rejected = state.rejected;
        e.acted = state.acted;
        e.conflicts = state.conflicts;
        e.decisions = state.decisions;
        e.next_task = state.next_task.max(1);
        e.next_run = state.next_run.max(1);
        for (id, task) in state.tasks {
            let facts = Facts::of(&task);
            e.tasks.insert(id.clone(), task);
            e.reindex(&id, Facts::NONE, facts);
        }
        e
    }

    pub fn new(playbook: Playbook, agents: BTreeMap<String, AgentPolicy>) -> Engine {
        Engine {
            playbook_digest: playbook.digest(),
            catching_up: false,
            files_sum: 0,
            acted_sum: 0,
            playbook,
            agents,
            files: BTreeMap::new(),
            runs: BTreeMap::new(),
            tasks: BTreeMap::new(),
            refused_requests: Vec::new(),
            rejected: BTreeMap::new(),
            acted: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            decisions: BTreeMap::new(),
            open: BTreeMap::new(),
            queues: BTreeMap::new(),
            busy: BTreeMap::new(),
            next_task: 1,
            next_run: 1,
        }
    }

    // ---- read access, for the daemon, status and the run record ----

    pub fn playbook(&self) -> &Playbook {
        &self.playbook
    }
    pub fn files(&self) -> &BTreeMap<String, FileEntry> {
        &self.files
    }
    pub fn runs(&self) -> &BTreeMap<RunId, Run> {
        &self.runs
    }
    pub fn run(&self, id: &str) -> Option<&Run> {
        self.runs.get(id)
    }
    pub fn tasks(&self) -> &BTreeMap<TaskId, Task> {
        &self.tasks
    }
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(id)
    }
    pub fn rejected(&self) -> &BTreeMap<String, Diagnostic> {
        &self.rejected
    }
    /// Whether this version of a file has been acted on already.
    pub fn acted_on(&self, path: &str, hash: &str) -> bool {
        self.acted.get(path).is_some_and(|v| v.contains(hash))
    }
    pub fn conflicts(&self) -> &BTreeMap<String, ConflictState> {
        &self.conflicts
    }
    pub fn decisions(&self) -> &BTreeMap<String, DecisionState> {
        &self.decisions
    }
    pub fn refused_requests(&self) -> &[RefusedRequest] {
        &self.refused_requests
    }
    pub fn active_run(&self) -> Option<&Run> {
        self.runs
            .values()
            .find(|r| r.is_active() && !r.phases.is_empty())
    }
    /// Runs in progress (team runs and agent runs).
    fn active_run_ids(&self) -> Vec<RunId> {
        self.runs
            .values()
            .filter(|r| r.is_active())
            .map(|r| r.id.clone())
            .collect()
    }

    pub fn agents(&self) -> &BTreeMap<String, AgentPolicy> {
        &self.agents
    }
    pub fn playbook_digest(&self) -> &str {
        &self.playbook_digest
    }

    /// The event that gives the engine this configuration: the playbook goes
    /// into the journal only when it is not the one in force already.
    pub fn configure(
        &self,
        playbook: &Playbook,
        agents: BTreeMap<String, AgentPolicy>,
        at: Millis,
    ) -> Event {
        let digest = playbook.digest();
        Event::Configured {
            agents,
            playbook: (digest != self.playbook_digest).then(|| Box::new(playbook.clone())),
            playbook_digest: digest,
            at,
        }
    }

    /// Whether the engine is between [`Event::Restarted`] and [`Event::CaughtUp`].
    pub fn catching_up(&self) -> bool {
        self.catching_up
    }

    /// A file is present when it exists and is non-empty; a directory output
    /// (`dir/`) when at least one non-empty file lies under it.
    pub fn output_present(&self, output: &str) -> bool {
        if output.ends_with('/') {
            self.files
                .range(output.to_string()..)
                .take_while(|(p, _)| p.starts_with(output))
                .any(|(_, f)| f.size > 0)
        } else {
            self.files.get(output).is_some_and(|f| f.size > 0)
        }
    }

    fn missing_outputs(&self, outputs: &[String]) -> Vec<String> {
        outputs
            .iter()
            .filter(|o| !self.output_present(o))
            .cloned()
            .collect()
    }

    /// A run is stalled when it is active and nothing can move it: no task
    /// queued, running, or waiting for a retry, anywhere.
    pub fn stalled(&self, run: &str) -> Option<String> {
        let r = self.runs.get(run)?;
        if !r.is_active() {
            return None;
        }
        let moving = self.open_tasks().any(|t| {
            matches!(
                t.state,
                TaskState::Queued | TaskState::Running | TaskState::RetryWait
            )
        });
        if moving {
            return None;
        }
        Some(self.explain_wait(r))
    }

    /// Why a run is not finished, in one paragraph.
    pub fn explain_wait(&self, r: &Run) -> String {
        let mut why = Vec::new();
        if let Some(phase) = r.current_phase() {
            for s in r.steps.values().filter(|s| s.phase == phase) {
                match &s.state {
                    StepState::Done => {}
                    StepState::AwaitingOutputs { missing } => {
                        why.push(format!("step {} is missing {}", s.id, missing.join(", ")))
                    }
                    StepState::Active { task } => {
                        let state = self
                            .tasks
                            .get(task)
                            .map(|t| match &t.state {
                                TaskState::Done { outcome } => outcome.label(),
                                TaskState::Blocked => {
                                    format!("blocked: {}", t.blockers.join("; "))
                                }
                                other => format!("{other:?}").to_lowercase(),
                            })
                            .unwrap_or_default();
                        why.push(format!("step {} ({}) is {}", s.id, task, state));
                    }
                    StepState::Waiting => why.push(format!("step {} has not started", s.id)),
                }
            }
            if let Some(g) = r.gates.get(&phase) {
                if g.passed_at.is_none() {
                    let unticked: Vec<&str> = g
                        .boxes
                        .iter()
                        .filter(|(_, t)| !t)
                        .map(|(s, _)| s.as_str())
                        .collect();
                    if !unticked.is_empty() {
                        why.push(format!(
                            "gate {} has {} unticked box(es), first: \"{}\"",
                            g.path,
                            unticked.len(),
                            unticked[0]
                        ));
                    }
                    if let Some(checks) = &g.checks {
                        for c in checks.iter().filter(|c| !c.passed) {
                            why.push(format!("gate check failed: {}: {}", c.name, c.detail));
                        }
                    }
                }
            }
        }
        if why.is_empty() {
            "nothing is running and nothing is left to start".to_string()
        } else {
            why.join("; ")
        }
    }

    // ---- the one entry point ----

    /// Apply one event; return what the daemon must do about it.
    pub fn handle(&mut self, event: &Event) -> Vec<Action> {
        let mut out = Vec::new();
        let at = event.at();
        match event {
            Event::FileChanged {
                path,
                hash,
                size,
                mtime_ns,
                content,
                ..
            } => {
                // The same version again (a replayed or duplicated event) changes nothing.
                if self.files.get(path).is_some_and(|f| f.hash == *hash) {
                    self.dispatch(at, &mut out);
                    return out;
                }
                self.set_file(
                    path,
                    Some(FileEntry {
                        hash: hash.clone(),
                        size: *size,
                        mtime_ns: *mtime_ns,
                    }),
                );
                let reactive = !matches!(content, FileContent::Plain)
                    || self
                        .playbook
                        .routes
                        .iter()
                        .any(|r| route_matches(&r.path, path));
                // A gate file is read whatever content it has had before: it
                // is gtmd's own file, and an old copy put back must be
                // answered (rewritten) rather than taken as done.
                let gate = matches!(content, FileContent::Gate { .. });
                if reactive && !gate {
                    let versions = self.acted.entry(path.clone()).or_default();
                    let new = versions.insert(hash.clone());
                    if new {
                        self.acted_sum = self.acted_sum.wrapping_add(acted_hash(path, hash));
                    } else {
                        // Already acted on; only whether it is refused may change.
                        match content {
                            FileContent::Rejected { diagnostic } => {
                                self.rejected.insert(path.clone(), diagnostic.clone());
                            }
                            _ => {
                                self.rejected.remove(path);
                            }
                        }
                        self.on_output_changed(path, at, &mut out);
                        self.on_conflict_file_back(path, content, at, &mut out);
                        self.dispatch(at, &mut out);
                        return out;
                    }
                }
                self.on_file(path, content, at, &mut out);
            }
            Event::FileTouched { path, mtime_ns, .. } => {
                if let Some(f) = self.files.get(path) {
                    let touched = FileEntry {
                        mtime_ns: *mtime_ns,
                        ..f.clone()
                    };
                    self.set_file(path, Some(touched));
                }
            }
            Event::FileRemoved { path, .. } => {
                self.set_file(path, None);
                self.on_conflict_file_removed(path, at, &mut out);
            }
            Event::RunRequested { request, .. } => self.on_request(request, at, &mut out),
            Event::TaskExited { task, exit, .. } => self.on_exit(task, exit, at, &mut out),
            Event::RetryDue { task, .. } => {
                self.mutate_task(task, |t| {
                    if t.state == TaskState::RetryWait {
                        t.state = TaskState::Queued;
                        t.attempt += 1;
                    }
                });
            }
            Event::GateEvaluated {
                run, phase, checks, ..
            } => self.on_gate_evaluated(run, *phase, checks, at, &mut out),
            Event::CancelRequested { target, reason, .. } => {
                self.on_cancel(target, reason.as_deref(), at, &mut out)
            }
            Event::Configured {
                agents,
                playbook,
                playbook_digest,
                ..
            } => {
                self.agents = agents.clone();
                if let Some(p) = playbook {
                    self.playbook = (**p).clone();
                    self.playbook_digest = playbook_digest.clone();
                }
            }
            Event::Restarted { .. } => self.on_restarted(at, &mut out),
            Event::CaughtUp { .. } => self.on_caught_up(at, &mut out),
            // Only a replay looks at it; nothing changes, nothing starts.
            Event::Checkpoint { .. } => return out,
        }
        self.dispatch(at, &mut out);
        out
    }
}

impl Engine {
    /// Change the file index, keeping its digest in step.
    fn set_file(&mut self, path: &str, entry: Option<FileEntry>) {
        let old = match entry {
            Some(e) => {
                self.files_sum = self.files_sum.wrapping_add(file_hash(path, &e));
                self.files.insert(path.to_string(), e)
            }
            None => self.files.remove(path),
        };
        if let Some(old) = old {
            self.files_sum = self.files_sum.wrapping_sub(file_hash(path, &old));
        }
    }
}

struct NewTask {
    agent: String,
    run: Option<RunId>,
    phase: Option<u8>,
    step: Option<String>,
    kind: TaskKind,
    text: String,
    trigger: String,
    details: Vec<String>,
}

/// Exponential backoff for retries: 1 s, 2 s, 4 s, ... capped at 60 s.
pub fn backoff_ms(attempt: u32) -> u64 {
    1000u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(60_000)
}

fn route_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

fn same_item(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub fn join_nums(v: &[u8]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `YYYY-MM-DD` (UTC) of a timestamp, computed without a clock.
pub fn date_of(at: Millis) -> String {
    let days = (at / 86_400_000) as i64;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// What the indexes need to know of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    open: bool,
    queued: bool,
    busy: bool,
}

impl Facts {
    const NONE: Facts = Facts {
        open: false,
        queued: false,
        busy: false,
    };

    fn of(t: &Task) -> Facts {
        Facts {
            open: t.is_open(),
            queued: t.state == TaskState::Queued,
            busy: t.state == TaskState::Running || t.process_alive,
        }
    }
}
