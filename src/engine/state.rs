//! The engine's state, split by what a restart keeps: the durable part a
//! journal snapshot holds ([`EngineState`]), and the indexes derived from it
//! ([`Index`]) that make an event cost the same with ten tasks or ten
//! thousand.
//!
//! A restore rebuilds the indexes from the state; while the engine runs, the
//! two functions that change what an index covers keep it in step
//! ([`Engine::mutate_task`] and [`Engine::set_file`], with
//! [`Engine::insert_task`] and [`Engine::mark_acted`]). The state digest is
//! here too: it covers the durable state and nothing else.

use super::*;
use std::ops::Deref;

/// The engine's durable state: what a journal snapshot holds and a restore
/// starts from. The configuration is part of it, so a replay from a
/// snapshot decides with what the live daemon had. A field added here is
/// snapshotted and restored; [`Engine::digest`] names every field, so the
/// compiler asks whether the digest covers it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct EngineState {
    pub(super) files: BTreeMap<String, FileEntry>,
    pub(super) runs: BTreeMap<RunId, Run>,
    pub(super) tasks: BTreeMap<TaskId, Task>,
    pub(super) refused_requests: Vec<RefusedRequest>,
    /// Files currently refused (path → why), cleared by a good version.
    pub(super) rejected: BTreeMap<String, Diagnostic>,
    /// Every (path, content hash) a reaction was considered for: a version is
    /// acted on once, whatever order or how often its events arrive (an editor
    /// that renames the file away and writes it back unchanged, a replay, a
    /// duplicate event, a file reverted to an earlier content).
    pub(super) acted: BTreeMap<String, BTreeSet<String>>,
    pub(super) conflicts: BTreeMap<String, ConflictState>,
    pub(super) decisions: BTreeMap<String, DecisionState>,
    pub(super) next_task: u64,
    pub(super) next_run: u64,
    /// Between [`Event::Restarted`] and [`Event::CaughtUp`]: the start-up
    /// scan is being handled, and no task starts until it is.
    #[serde(default)]
    pub(super) catching_up: bool,
    /// After [`Event::Stopping`]: gtmd stops, and no task starts until the
    /// next [`Event::Restarted`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) stopping: bool,
    #[serde(default)]
    pub(super) playbook: Journaled<Playbook>,
    #[serde(default)]
    pub(super) agents: Journaled<BTreeMap<String, AgentPolicy>>,
}

/// Part of the configuration, held in the state. A snapshot written before
/// gtmd journaled its configuration has none; [`Engine::restore`] gives it
/// the current one then, so an engine's state always has it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Journaled<T>(Option<T>);

impl<T> Default for Journaled<T> {
    fn default() -> Self {
        Journaled(None)
    }
}

impl<T> Journaled<T> {
    pub(super) fn new(value: T) -> Journaled<T> {
        Journaled(Some(value))
    }
}

impl<T> Deref for Journaled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
            .as_ref()
            .expect("an engine's state has its configuration: Engine::restore gives it one")
    }
}

/// What the engine derives from its state to answer cheaply; never stored.
#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    /// Open tasks by creation order (ids sort as text, which breaks at 10,000).
    pub(super) open: BTreeMap<u64, TaskId>,
    /// Queued tasks per agent, by creation order.
    pub(super) queues: BTreeMap<String, BTreeMap<u64, TaskId>>,
    /// Tasks per agent that are running or whose process may be alive.
    pub(super) busy: BTreeMap<String, usize>,
    /// [`Playbook::digest`] of the state's playbook, to tell a changed one.
    pub(super) playbook_digest: String,
    /// Order-independent digests of `files` and `acted` (sums of their
    /// members' hashes): a checkpoint then costs a pass over the runs and
    /// tasks, not over 100,000 files.
    pub(super) files_sum: u128,
    pub(super) acted_sum: u128,
}

impl Index {
    fn of(state: &EngineState) -> Index {
        let mut index = Index {
            playbook_digest: state.playbook.digest(),
            files_sum: state
                .files
                .iter()
                .fold(0, |sum, (p, f)| sum.wrapping_add(file_hash(p, f))),
            acted_sum: state.acted.iter().fold(0, |sum, (p, versions)| {
                versions
                    .iter()
                    .fold(sum, |sum, h| sum.wrapping_add(acted_hash(p, h)))
            }),
            ..Index::default()
        };
        for task in state.tasks.values() {
            index.reindex(task, Facts::NONE, Facts::of(task));
        }
        index
    }

    fn reindex(&mut self, t: &Task, before: Facts, after: Facts) {
        if before.open != after.open {
            if after.open {
                self.open.insert(t.seq, t.id.clone());
            } else {
                self.open.remove(&t.seq);
            }
        }
        if before.queued != after.queued {
            let q = self.queues.entry(t.agent.clone()).or_default();
            if after.queued {
                q.insert(t.seq, t.id.clone());
            } else {
                q.remove(&t.seq);
            }
        }
        if before.busy != after.busy {
            let n = self.busy.entry(t.agent.clone()).or_default();
            if after.busy {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        }
    }
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

/// The part of the state a [`Event::Checkpoint`] digest covers, borrowed:
/// computing a digest must not copy ten thousand tasks. The file index and
/// the versions acted on are covered by their sums.
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
    stopping: bool,
    agents: &'a BTreeMap<String, AgentPolicy>,
    playbook_digest: &'a str,
}

impl Engine {
    /// An engine at a snapshot's state, its indexes rebuilt. `playbook` and
    /// `agents` are used only when the snapshot predates journaled
    /// configuration.
    pub fn restore(
        playbook: Playbook,
        agents: BTreeMap<String, AgentPolicy>,
        mut state: EngineState,
    ) -> Engine {
        state.playbook.0.get_or_insert(playbook);
        state.agents.0.get_or_insert(agents);
        state.next_task = state.next_task.max(1);
        state.next_run = state.next_run.max(1);
        Engine {
            index: Index::of(&state),
            state,
        }
    }

    /// The durable state, for a journal snapshot.
    pub fn snapshot(&self) -> EngineState {
        self.state.clone()
    }

    /// A digest of everything the engine decides with and has decided: two
    /// engines with the same digest act the same on the next event. Cheap
    /// enough for every checkpoint: files and acted versions count by their
    /// sums, the playbook by its digest.
    pub fn digest(&self) -> String {
        // Every field by name: a new one must be added here, or ignored here
        // on purpose.
        let EngineState {
            files,
            runs,
            tasks,
            refused_requests,
            rejected,
            acted: _,
            conflicts,
            decisions,
            next_task,
            next_run,
            catching_up,
            stopping,
            playbook: _,
            agents,
        } = &self.state;
        let view = StateView {
            files: format!("{} {:032x}", files.len(), self.index.files_sum),
            runs,
            tasks,
            refused_requests,
            rejected,
            acted: format!("{:032x}", self.index.acted_sum),
            conflicts,
            decisions,
            next_task: *next_task,
            next_run: *next_run,
            catching_up: *catching_up,
            stopping: *stopping,
            agents,
            playbook_digest: &self.index.playbook_digest,
        };
        // serde_json writes in small pieces; blake3 wants large ones.
        let mut hasher = std::io::BufWriter::with_capacity(64 * 1024, blake3::Hasher::new());
        serde_json::to_writer(&mut hasher, &view).expect("engine state serializes");
        let hasher = hasher.into_inner().expect("hashing cannot fail");
        hasher.finalize().to_hex()[..32].to_string()
    }

    /// Take a configuration: the agents' policies always, the playbook when
    /// it is a new one (`digest` is its [`Playbook::digest`]).
    pub(super) fn set_configuration(
        &mut self,
        agents: BTreeMap<String, AgentPolicy>,
        playbook: Option<(Playbook, String)>,
    ) {
        self.state.agents = Journaled::new(agents);
        if let Some((playbook, digest)) = playbook {
            self.state.playbook = Journaled::new(playbook);
            self.index.playbook_digest = digest;
        }
    }

    /// Change the file index, keeping its digest in step.
    pub(super) fn set_file(&mut self, path: &str, entry: Option<FileEntry>) {
        let old = match entry {
            Some(e) => {
                self.index.files_sum = self.index.files_sum.wrapping_add(file_hash(path, &e));
                self.state.files.insert(path.to_string(), e)
            }
            None => self.state.files.remove(path),
        };
        if let Some(old) = old {
            self.index.files_sum = self.index.files_sum.wrapping_sub(file_hash(path, &old));
        }
    }

    /// Record that a reaction to this version of a file was considered;
    /// `false` if it had been already.
    pub(super) fn mark_acted(&mut self, path: &str, hash: &str) -> bool {
        let new = self
            .state
            .acted
            .entry(path.to_string())
            .or_default()
            .insert(hash.to_string());
        if new {
            self.index.acted_sum = self.index.acted_sum.wrapping_add(acted_hash(path, hash));
        }
        new
    }

    /// Add a task, indexed.
    pub(super) fn insert_task(&mut self, task: Task) {
        self.index.reindex(&task, Facts::NONE, Facts::of(&task));
        self.state.tasks.insert(task.id.clone(), task);
    }

    /// Change a task, keeping the derived indexes in step.
    pub(super) fn mutate_task<R>(&mut self, id: &str, f: impl FnOnce(&mut Task) -> R) -> Option<R> {
        let t = self.state.tasks.get_mut(id)?;
        let before = Facts::of(t);
        let r = f(t);
        let after = Facts::of(t);
        if before != after {
            self.index.reindex(t, before, after);
        }
        Some(r)
    }
}
