//! Replay equals live: random histories of a team at work (conflicts saved
//! and removed, decisions, team runs, statuses, exits before and after
//! their status, spawn failures, retries, timeouts, cancels, reloads,
//! compactions, and SIGTERM or SIGKILL followed by a restart) go through
//! the path the daemon uses (`gtmd::apply`: journal, then engine, then
//! effects), with simulated agent processes and a journal in memory.
//!
//! Every few steps, and at every start and stop, the live engine journals a
//! checkpoint; at every restart and at the end the journal is replayed from
//! scratch, with another configuration on the command line than the live
//! daemon had, and must reach every checkpoint's digest. After a restart no
//! task is "running" without a process; no attempt of a task starts twice
//! in one daemon's life; and at the end every task ends once the agents do
//! their work (nothing is stranded).

use gtmd::apply::{apply, checkpoint, Effects};
use gtmd::engine::{
    Action, AgentPolicy, ApiError, CancelTarget, Cost, Denial, Engine, EngineState, Event,
    ExitOutcome, FileContent, RunKind, RunRequest, RuntimeReport, TaskId, TaskState,
};
use gtmd::journal::Recovered;
use gtmd::playbook::Playbook;
use gtmd::protocol::escalation::{Conflict, Decision};
use gtmd::protocol::{Checkbox, StatusReport, TaskStatus};
use gtmd::replay::{replay_checked, Check};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const AGENTS: [&str; 7] = [
    "coordinator",
    "brand-messaging",
    "growth-analyst",
    "demand-generation",
    "sales-enablement",
    "pipeline-manager",
    "customer-success",
];

/// What gtmd does with actions in the simulation: agent processes are
/// entries in a set, timers are lists, gate checks always pass.
#[derive(Default)]
struct SimEffects {
    /// Live agent processes, by task.
    procs: BTreeSet<TaskId>,
    /// Processes told to stop whose exit has not been seen yet.
    dying: Vec<(TaskId, ExitOutcome)>,
    /// Starts that will fail (the program cannot be run).
    spawn_failures: u32,
    retries: Vec<TaskId>,
    gate_evals: BTreeSet<(String, u8)>,
    /// (task, attempt, API retries) started by the current gtmd.
    started: BTreeSet<(TaskId, u32, u32)>,
    clock: u64,
}

impl Effects for SimEffects {
    fn execute(&mut self, engine: &Engine, action: Action) -> Vec<Event> {
        match action {
            Action::StartTask { task } => {
                assert!(!engine.stopping(), "{} started while gtmd stops", task.id);
                let command = engine
                    .agents()
                    .get(&task.agent)
                    .is_some_and(|a| a.has_command);
                if !command {
                    return Vec::new(); // an inbox file for a person
                }
                if self.spawn_failures > 0 {
                    self.spawn_failures -= 1;
                    return vec![Event::TaskExited {
                        task: task.id,
                        exit: ExitOutcome::SpawnFailed {
                            error: "No such file or directory".into(),
                        },
                        report: None,
                        at: self.clock,
                    }];
                }
                assert!(
                    self.procs.insert(task.id.clone())
                        && !self.dying.iter().any(|(t, _)| *t == task.id),
                    "task {} started while a process of it still runs",
                    task.id
                );
                // Only a restart, or a passing API error, may run the same
                // attempt again.
                let api_retries = engine.task(&task.id).map_or(0, |t| t.api_retries);
                assert!(
                    self.started
                        .insert((task.id.clone(), task.attempt, api_retries)),
                    "attempt {} of task {} started twice by one gtmd",
                    task.attempt,
                    task.id
                );
            }
            Action::StopTask { task } if self.procs.remove(&task) => {
                self.dying.push((task, ExitOutcome::Cancelled));
            }
            Action::ScheduleRetry { task, .. } => self.retries.push(task),
            Action::EvaluateGate { run, phase } => {
                self.gate_evals.insert((run, phase));
            }
            _ => {}
        }
        Vec::new()
    }

    fn after_event(&mut self, _engine: &Engine) -> Vec<Event> {
        std::mem::take(&mut self.gate_evals)
            .into_iter()
            .map(|(run, phase)| Event::GateEvaluated {
                run,
                phase,
                checks: Vec::new(),
                at: self.clock,
            })
            .collect()
    }
}

/// One step of a history.
#[derive(Debug, Clone)]
enum Op {
    /// A new version of one of four conflict files.
    Conflict(u8),
    /// A conflict file is removed (renamed away, `git checkout`).
    Remove(u8),
    /// The coordinator decides on a conflict; two agents are affected.
    Decide(u8),
    /// `team run` of phase 1, or of all phases.
    /// `team run` of phase 1 or all; with a tight `--max-cost` or
    /// `--max-tokens` (hard or not).
    TeamRun { all: bool, cap: u8 },
    /// The agent of a running task writes its status: complete (with its
    /// outputs), failed, blocked or in progress; with or without task_id.
    Status { pick: u8, kind: u8, with_id: bool },
    /// A live process exits: 0, 1, or killed by a signal.
    /// `report`: nothing reported, a cost, a passing API error, a fatal
    /// one, a write the agent does not own, or a denied write with its cost.
    Exit { pick: u8, code: u8, report: u8 },
    /// A process runs past its timeout.
    Timeout(u8),
    /// The exits of cancelled processes arrive.
    Deliver,
    /// The next start fails.
    SpawnFail,
    /// Retry backoffs pass.
    RetriesDue,
    /// `gtmd cancel` of a task, or of the active run.
    Cancel { pick: u8, run: bool },
    /// The coordinator ticks every box of the open gate.
    TickGate,
    /// SIGHUP with customer-success switched between inbox and command.
    Reload,
    /// The journal is compacted into a snapshot.
    Compact,
    /// SIGTERM (processes in `exits` end within the grace period, those in
    /// `statuses` after writing a complete status) or SIGKILL, then a new
    /// gtmd; `toggle` switches customer-success between inbox and command.
    Restart {
        kill9: bool,
        exits: u8,
        statuses: u8,
        toggle: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Conflict),
        1 => any::<u8>().prop_map(Op::Remove),
        1 => any::<u8>().prop_map(Op::Decide),
        1 => (any::<bool>(), 0u8..5).prop_map(|(all, cap)| Op::TeamRun { all, cap }),
        6 => (any::<u8>(), 0u8..4, any::<bool>())
            .prop_map(|(pick, kind, with_id)| Op::Status { pick, kind, with_id }),
        5 => (any::<u8>(), 0u8..3, 0u8..6)
            .prop_map(|(pick, code, report)| Op::Exit { pick, code, report }),
        1 => any::<u8>().prop_map(Op::Timeout),
        1 => Just(Op::Deliver),
        1 => Just(Op::SpawnFail),
        2 => Just(Op::RetriesDue),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, run)| Op::Cancel { pick, run }),
        2 => Just(Op::TickGate),
        1 => Just(Op::Reload),
        1 => Just(Op::Compact),
        2 => (any::<bool>(), any::<u8>(), any::<u8>(), any::<bool>()).prop_map(
            |(kill9, exits, statuses, toggle)| Op::Restart { kill9, exits, statuses, toggle }
        ),
    ]
}

fn cost(usd: f64) -> Cost {
    Cost {
        usd,
        input_tokens: 1000,
        output_tokens: 200,
        turns: 2,
        ..Cost::default()
    }
}

/// A daemon and its world, simulated.
struct Sim {
    playbook: Playbook,
    /// Agents with a command; the rest use their inbox.
    commands: BTreeSet<String>,
    engine: Engine,
    snapshot: Option<EngineState>,
    journal: Vec<Event>,
    pending: Vec<Event>,
    fx: SimEffects,
    /// Files on disk: path → (hash, size, content).
    disk: BTreeMap<String, (String, u64, FileContent)>,
    versions: u64,
    requests: u64,
    restarts: u32,
    steps: u32,
}

impl Sim {
    fn new() -> Sim {
        // Parsed once: thousands of histories share it.
        static PLAYBOOK: std::sync::OnceLock<Playbook> = std::sync::OnceLock::new();
        let playbook = PLAYBOOK.get_or_init(Playbook::default_playbook).clone();
        // Everyone has a command but customer-success, who starts with a person.
        let commands: BTreeSet<String> = AGENTS
            .iter()
            .filter(|a| **a != "customer-success")
            .map(|a| a.to_string())
            .collect();
        let mut sim = Sim {
            engine: Engine::new(playbook.clone(), BTreeMap::new()),
            playbook,
            commands,
            snapshot: None,
            journal: Vec::new(),
            pending: Vec::new(),
            fx: SimEffects::default(),
            disk: BTreeMap::new(),
            versions: 0,
            requests: 0,
            restarts: 0,
            steps: 0,
        };
        sim.start();
        sim
    }

    fn policies(&self) -> BTreeMap<String, AgentPolicy> {
        AGENTS
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    AgentPolicy {
                        retries: 2,
                        has_command: self.commands.contains(*a),
                        // Some runtimes hold a complete status until their
                        // exit says what the task wrote (Codex).
                        audits_writes: self.commands.contains(*a) && a.len() % 2 == 0,
                        unpriced: None,
                    },
                )
            })
            .collect()
    }

    fn now(&mut self) -> u64 {
        self.fx.clock += 1_000;
        self.fx.clock
    }

    fn apply(&mut self, events: Vec<Event>) {
        apply(
            &mut self.engine,
            &mut self.journal,
            &mut self.pending,
            events,
            &mut self.fx,
        )
        .unwrap();
    }

    /// The daemon's start-up: configuration and "the old processes are
    /// gone", the scan of what changed while down, then taking up the
    /// interrupted tasks, and a checkpoint.
    fn start(&mut self) {
        let at = self.now();
        let configured = self.engine.configure(&self.playbook, self.policies(), at);
        self.apply(vec![configured, Event::Restarted { at }]);
        let mut scan = Vec::new();
        for (path, (hash, size, content)) in &self.disk {
            if self.engine.files().get(path).map(|f| &f.hash) != Some(hash) {
                scan.push(Event::FileChanged {
                    path: path.clone(),
                    hash: hash.clone(),
                    size: *size,
                    mtime_ns: 0,
                    at,
                    content: content.clone(),
                });
            }
        }
        for path in self.engine.files().keys() {
            if !self.disk.contains_key(path) {
                scan.push(Event::FileRemoved {
                    path: path.clone(),
                    at,
                });
            }
        }
        self.apply(scan);
        self.apply(vec![Event::CaughtUp { at }]);
        self.fx.retries = self
            .engine
            .tasks()
            .values()
            .filter(|t| t.state == TaskState::RetryWait)
            .map(|t| t.id.clone())
            .collect();
        self.checkpoint();
        // After a start, no command task is running without its process.
        for t in self.engine.tasks().values() {
            if t.state == TaskState::Running && self.commands.contains(&t.agent) {
                assert!(
                    self.fx.procs.contains(&t.id),
                    "after a restart task {} is running without a process",
                    t.id
                );
            }
        }
    }

    fn checkpoint(&mut self) {
        let at = self.now();
        checkpoint(&mut self.engine, &mut self.journal, &self.pending, at).unwrap();
    }

    /// A file written while gtmd watches: on disk, and its event applied.
    fn write(&mut self, path: &str, content: FileContent) {
        let at = self.now();
        let ev = self.write_unseen(path, content, at);
        self.apply(vec![ev]);
    }

    /// A file written, not (yet) seen by gtmd.
    fn write_unseen(&mut self, path: &str, content: FileContent, at: u64) -> Event {
        self.versions += 1;
        let hash = format!("v{}", self.versions);
        self.disk
            .insert(path.to_string(), (hash.clone(), 10, content.clone()));
        Event::FileChanged {
            path: path.to_string(),
            hash,
            size: 10,
            mtime_ns: 0,
            at,
            content,
        }
    }

    /// Running tasks, by id; `pick` chooses one.
    fn running(&self, pick: u8) -> Option<TaskId> {
        let running: Vec<&TaskId> = self
            .engine
            .tasks()
            .values()
            .filter(|t| t.state == TaskState::Running)
            .map(|t| &t.id)
            .collect();
        (!running.is_empty()).then(|| running[pick as usize % running.len()].clone())
    }

    /// The status a task's agent writes, and the outputs before it.
    fn status_files(&self, task: &TaskId, kind: u8, with_id: bool) -> Vec<(String, FileContent)> {
        let t = &self.engine.tasks()[task];
        let status = match kind {
            0 => TaskStatus::Complete,
            1 => TaskStatus::Failed,
            2 => TaskStatus::Blocked,
            _ => TaskStatus::InProgress,
        };
        let mut files = Vec::new();
        let outputs: Vec<String> = t
            .step
            .as_deref()
            .and_then(|s| self.engine.playbook().step(s))
            .map(|(_, s)| s.outputs.clone())
            .unwrap_or_default();
        if status == TaskStatus::Complete {
            for o in &outputs {
                let path = if o.ends_with('/') {
                    format!("{o}one.md")
                } else {
                    o.clone()
                };
                files.push((path, FileContent::Plain));
            }
        }
        let report = StatusReport {
            agent: t.agent.clone(),
            phase: t.phase,
            task: t.text.clone(),
            status,
            outputs,
            blockers: if status == TaskStatus::Blocked {
                vec!["waiting for data".into()]
            } else {
                Vec::new()
            },
            next: None,
            task_id: with_id.then(|| t.id.clone()),
            unknown_phase: None,
        };
        files.push((
            format!("status/{}.md", t.agent),
            FileContent::Status { report },
        ));
        files
    }

    fn step(&mut self, op: &Op) {
        match op.clone() {
            Op::Conflict(n) => {
                let conflict = Conflict {
                    title: format!("conflict {}", n % 4),
                    ..Conflict::default()
                };
                self.write(
                    &format!("conflicts/c{}.md", n % 4),
                    FileContent::Conflict { conflict },
                );
            }
            Op::Remove(n) => {
                let path = format!("conflicts/c{}.md", n % 4);
                if self.disk.remove(&path).is_some() {
                    let at = self.now();
                    self.apply(vec![Event::FileRemoved { path, at }]);
                }
            }
            Op::Decide(n) => {
                let decision = Decision {
                    title: "ruling".into(),
                    resolves: Some(format!("conflicts/c{}.md", n % 4)),
                    affected: vec!["brand-messaging".into(), "customer-success".into()],
                    problems: Vec::new(),
                };
                self.write(
                    &format!("strategy/decisions/d{}.md", n % 4),
                    FileContent::Decision { decision },
                );
            }
            Op::TeamRun { all, cap } => {
                self.requests += 1;
                let at = self.now();
                let request = RunRequest {
                    id: format!("req-{}", self.requests),
                    kind: RunKind::Phases {
                        phases: if all { vec![1, 2, 3, 4] } else { vec![1] },
                    },
                    config: Default::default(),
                    config_path: "CONFIG.md".into(),
                    scenario: None,
                    force: true,
                    budget_secs: None,
                    max_cost: (cap == 1 || cap == 2).then_some(0.05),
                    hard_cap: cap == 2 || cap == 4,
                    max_tokens: (cap >= 3).then_some(5_000),
                };
                self.apply(vec![Event::RunRequested { request, at }]);
            }
            Op::Status {
                pick,
                kind,
                with_id,
            } => {
                if let Some(task) = self.running(pick) {
                    for (path, content) in self.status_files(&task, kind, with_id) {
                        self.write(&path, content);
                    }
                }
            }
            Op::Exit { pick, code, report } => {
                let procs: Vec<TaskId> = self.fx.procs.iter().cloned().collect();
                if procs.is_empty() {
                    return;
                }
                let task = procs[pick as usize % procs.len()].clone();
                self.fx.procs.remove(&task);
                let exit = match code {
                    0 => ExitOutcome::Code { code: 0 },
                    1 => ExitOutcome::Code { code: 1 },
                    _ => ExitOutcome::Signal { signal: 9 },
                };
                let report = match report {
                    0 => None,
                    1 => Some(RuntimeReport {
                        cost: Some(cost(0.02)),
                        session: Some(format!("s-{task}")),
                        ..RuntimeReport::default()
                    }),
                    2 => Some(RuntimeReport {
                        error: Some(ApiError::of_status(Some(529), "Overloaded".into())),
                        ..RuntimeReport::default()
                    }),
                    3 => Some(RuntimeReport {
                        error: Some(ApiError::of_status(Some(401), "invalid x-api-key".into())),
                        ..RuntimeReport::default()
                    }),
                    4 => Some(RuntimeReport {
                        cost: Some(cost(0.01)),
                        unowned_writes: vec!["status/coordinator.md".into()],
                        ..RuntimeReport::default()
                    }),
                    _ => Some(RuntimeReport {
                        cost: Some(cost(0.01)),
                        denials: vec![Denial {
                            tool: "Write".into(),
                            path: Some("strategy/gates/phase-1-strategy.md".into()),
                        }],
                        ..RuntimeReport::default()
                    }),
                }
                .map(Box::new);
                let at = self.now();
                self.apply(vec![Event::TaskExited {
                    task,
                    exit,
                    report,
                    at,
                }]);
            }
            Op::Timeout(pick) => {
                let procs: Vec<TaskId> = self.fx.procs.iter().cloned().collect();
                if procs.is_empty() {
                    return;
                }
                let task = procs[pick as usize % procs.len()].clone();
                self.fx.procs.remove(&task);
                let at = self.now();
                self.apply(vec![Event::TaskExited {
                    task,
                    exit: ExitOutcome::TimedOut { after_secs: 60 },
                    report: None,
                    at,
                }]);
            }
            Op::Deliver => {
                let at = self.now();
                let exits: Vec<Event> = std::mem::take(&mut self.fx.dying)
                    .into_iter()
                    .map(|(task, exit)| Event::TaskExited {
                        task,
                        exit,
                        report: None,
                        at,
                    })
                    .collect();
                self.apply(exits);
            }
            Op::SpawnFail => self.fx.spawn_failures += 1,
            Op::RetriesDue => {
                let at = self.now();
                let due: Vec<Event> = std::mem::take(&mut self.fx.retries)
                    .into_iter()
                    .map(|task| Event::RetryDue { task, at })
                    .collect();
                self.apply(due);
            }
            Op::Cancel { pick, run } => {
                let target = if run {
                    match self.engine.runs().values().find(|r| r.is_active()) {
                        Some(r) => CancelTarget::Run { run: r.id.clone() },
                        None => return,
                    }
                } else {
                    let open: Vec<TaskId> = self
                        .engine
                        .tasks()
                        .values()
                        .filter(|t| t.is_open())
                        .map(|t| t.id.clone())
                        .collect();
                    if open.is_empty() {
                        return;
                    }
                    CancelTarget::Task {
                        task: open[pick as usize % open.len()].clone(),
                    }
                };
                let at = self.now();
                self.apply(vec![Event::CancelRequested {
                    target,
                    reason: None,
                    at,
                }]);
            }
            Op::TickGate => {
                let gate = self.engine.runs().values().find_map(|r| {
                    r.gates
                        .values()
                        .find(|g| g.passed_at.is_none() && r.is_active())
                        .map(|g| (g.path.clone(), g.boxes.clone()))
                });
                if let Some((path, boxes)) = gate {
                    let boxes = boxes
                        .into_iter()
                        .enumerate()
                        .map(|(i, (text, _))| Checkbox {
                            text,
                            checked: true,
                            line: i + 1,
                        })
                        .collect();
                    self.write(&path, FileContent::Gate { boxes });
                }
            }
            Op::Reload => {
                self.toggle();
                let at = self.now();
                let ev = self.engine.configure(&self.playbook, self.policies(), at);
                self.apply(vec![ev]);
            }
            Op::Compact => {
                self.snapshot = Some(self.engine.snapshot());
                self.journal.clear();
            }
            Op::Restart {
                kill9,
                exits,
                statuses,
                toggle,
            } => self.restart(kill9, exits, statuses, toggle),
        }
        // A digest costs a pass over the state; every few steps is enough
        // to tell where a replay parts (starts and stops add their own).
        self.steps += 1;
        if self.steps.is_multiple_of(4) {
            self.checkpoint();
        }
        self.check_processes();
    }

    fn toggle(&mut self) {
        if !self.commands.remove("customer-success") {
            self.commands.insert("customer-success".into());
        }
    }

    fn restart(&mut self, kill9: bool, exits: u8, statuses: u8, toggle: bool) {
        let at = self.now();
        if !kill9 {
            // SIGTERM: nothing starts any more; processes that end within
            // the grace period may write a status first, which gtmd no longer
            // reads (only the disk knows). Their exits are journaled for a
            // task already ended, else only what the runtime reported.
            self.apply(vec![Event::Stopping { at }]);
            let procs: Vec<TaskId> = self.fx.procs.iter().cloned().collect();
            for (i, task) in procs.iter().enumerate() {
                let bit = 1u8 << (i % 8);
                if exits & bit == 0 {
                    continue;
                }
                if statuses & bit != 0 && self.engine.tasks()[task].is_open() {
                    for (path, content) in self.status_files(task, 0, true) {
                        self.write_unseen(&path, content, at);
                    }
                }
                self.fx.procs.remove(task);
                let report = Box::new(RuntimeReport {
                    cost: Some(cost(0.01)),
                    ..RuntimeReport::default()
                });
                let event = if self.engine.tasks()[task].is_open() {
                    Event::TaskReported {
                        task: task.clone(),
                        report,
                        at,
                    }
                } else {
                    Event::TaskExited {
                        task: task.clone(),
                        exit: ExitOutcome::Code { code: 0 },
                        report: Some(report),
                        at,
                    }
                };
                self.apply(vec![event]);
                assert!(self
                    .fx
                    .procs
                    .iter()
                    .all(|p| self.engine.tasks()[p].process_alive));
            }
            self.checkpoint();
        }
        let live = self.engine.digest();
        // While gtmd is down a conflict may go (a `git checkout`).
        if statuses & 0x80 != 0 {
            self.disk.remove(&format!("conflicts/c{}.md", exits % 4));
        }
        // Whatever still runs is stopped (or died with gtmd).
        self.fx.procs.clear();
        self.fx.dying.clear();
        self.fx.started.clear();
        self.fx.retries.clear();
        self.fx.spawn_failures = 0;
        self.restarts += 1;
        // The new gtmd replays with another configuration on its command
        // line than the old one had: the journal's own must win.
        let replayed = self.replay(BTreeMap::new(), Check::Last);
        assert_eq!(
            replayed.digest(),
            live,
            "the replayed engine differs from the live one before restart {}",
            self.restarts
        );
        self.engine = replayed;
        if toggle {
            self.toggle();
        }
        self.start();
    }

    /// Replay snapshot and journal, comparing checkpoints.
    fn replay(&self, agents: BTreeMap<String, AgentPolicy>, check: Check) -> Engine {
        let r = replay_checked(
            &self.playbook,
            agents,
            Recovered {
                snapshot: self.snapshot.clone(),
                events: self.journal.clone(),
                journal: "journal.jsonl".into(),
                generation: 0,
            },
            check,
        );
        if let Some(d) = r.divergence {
            panic!("{d}");
        }
        r.engine
    }

    /// Everyone does their work until nothing is left: every open task must
    /// end (nothing is stranded, whatever happened before).
    fn drain(&mut self) {
        for _ in 0..200 {
            if self.engine.tasks().values().all(|t| !t.is_open()) {
                return;
            }
            self.step(&Op::Deliver);
            self.step(&Op::RetriesDue);
            self.step(&Op::TickGate);
            let working: Vec<TaskId> = self
                .engine
                .tasks()
                .values()
                .filter(|t| matches!(t.state, TaskState::Running | TaskState::Blocked))
                .map(|t| t.id.clone())
                .collect();
            for task in working {
                for (path, content) in self.status_files(&task, 0, true) {
                    self.write(&path, content);
                }
            }
            while !self.fx.procs.is_empty() {
                self.step(&Op::Exit {
                    pick: 0,
                    code: 0,
                    report: 0,
                });
            }
        }
        let stuck: Vec<String> = self
            .engine
            .tasks()
            .values()
            .filter(|t| t.is_open())
            .map(|t| format!("{} {:?} process_alive={}", t.id, t.state, t.process_alive))
            .collect();
        panic!("tasks never end: {}", stuck.join("; "));
    }

    /// Processes and the engine agree: a task has a live process exactly
    /// when the engine says one may be alive.
    fn check_processes(&self) {
        let alive: BTreeSet<&TaskId> = self
            .engine
            .tasks()
            .values()
            .filter(|t| t.process_alive)
            .map(|t| &t.id)
            .collect();
        let ours: BTreeSet<&TaskId> = self
            .fx
            .procs
            .iter()
            .chain(self.fx.dying.iter().map(|(t, _)| t))
            .collect();
        assert_eq!(
            alive, ours,
            "the engine's live processes differ from the real ones"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replay_equals_live_across_restarts(ops in proptest::collection::vec(op(), 1..80)) {
        let mut sim = Sim::new();
        for op in &ops {
            sim.step(op);
        }
        sim.drain();
        let replayed = sim.replay(BTreeMap::new(), Check::All);
        prop_assert_eq!(replayed.digest(), sim.engine.digest());
    }
}

/// Finding 1 of issue 11, in the engine: an agent reports complete, its
/// process takes longer to exit, gtmd is stopped meanwhile and started
/// again. The next task of that agent must start, and the replay must agree.
#[test]
fn a_task_done_whose_process_outlived_the_stop_frees_its_agent() {
    let mut sim = Sim::new();
    sim.step(&Op::Conflict(1));
    sim.step(&Op::Conflict(2));
    let first = sim.running(0).expect("the first review runs");
    sim.step(&Op::Status {
        pick: 0,
        kind: 0,
        with_id: true,
    });
    assert!(!sim.engine.tasks()[&first].is_open());
    // Its process still runs; the second review waits for it.
    assert!(sim.running(0).is_none());
    // SIGTERM; the process exits during the grace period (not journaled).
    sim.step(&Op::Restart {
        kill9: false,
        exits: 0xff,
        statuses: 0,
        toggle: false,
    });
    let second = sim
        .running(0)
        .expect("the second review runs after the restart");
    assert_ne!(first, second);
    assert!(sim.fx.procs.contains(&second));
    sim.step(&Op::Conflict(3));
    sim.step(&Op::Status {
        pick: 0,
        kind: 0,
        with_id: true,
    });
    sim.step(&Op::Exit {
        pick: 0,
        code: 0,
        report: 0,
    });
    assert!(
        sim.running(0).is_some(),
        "the third review starts once the second has ended"
    );
}

/// Finding 2 of issue 11: a replay with another `--agent-command` (here:
/// none, as `gtmd status` is often run) decides as the live daemon did.
#[test]
fn replay_with_another_configuration_on_the_command_line_agrees() {
    let mut sim = Sim::new();
    sim.step(&Op::SpawnFail);
    sim.step(&Op::Conflict(0));
    sim.step(&Op::RetriesDue);
    sim.step(&Op::Conflict(1));
    sim.step(&Op::Status {
        pick: 0,
        kind: 0,
        with_id: true,
    });
    let no_commands: BTreeMap<String, AgentPolicy> = AGENTS
        .iter()
        .map(|a| {
            (
                a.to_string(),
                AgentPolicy {
                    retries: 0,
                    has_command: false,
                    ..Default::default()
                },
            )
        })
        .collect();
    assert_eq!(
        sim.replay(no_commands, Check::All).digest(),
        sim.engine.digest()
    );
}
