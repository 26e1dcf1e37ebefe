//! What the web view shows, taken from the engine in one pass after a batch
//! of events and handed to the server whole.
//!
//! The server never sees the engine: the daemon owns it in its one task, and
//! a page rendered from a snapshot can take its time without holding the
//! event loop back. A snapshot is a pure function of the engine, small and
//! bounded (the latest runs, at most [`MAX_ROWS`] of each list, saying how
//! many more there are), so it costs the same with ten tasks or ten thousand
//! open.

use crate::engine::{Cost, Engine, Millis, Run, RunState, StepState, Task};
use crate::gate_checks::CheckResult;
use std::collections::{BTreeMap, HashMap};

/// Ended runs shown besides the active one.
const RECENT_RUNS: usize = 5;
/// The most rows of any one list (open tasks, conflicts, refused files).
pub const MAX_ROWS: usize = 300;
/// Tasks kept for their pages besides the open ones and the runs' own.
const RECENT_TASKS: u64 = 100;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Bumped by each publication: pages compare it to know they are behind.
    pub version: u64,
    pub taken_at: Millis,
    pub workspace: String,
    /// The active runs, then the latest ended ones, newest first.
    pub runs: Vec<RunView>,
    pub open_tasks: Vec<String>,
    pub open_tasks_total: usize,
    /// Every task a page may name: open, of the runs shown, the latest.
    pub tasks: BTreeMap<String, TaskView>,
    pub conflicts: Vec<ConflictView>,
    pub conflicts_total: usize,
    /// Decisions waiting for their agents, or that could not be read.
    pub decisions: Vec<DecisionView>,
    /// Refused files: (path, why, with the line when there is one).
    pub refused: Vec<(String, String)>,
    pub refused_total: usize,
    /// The latest run requests gtmd refused: (id, why).
    pub refused_requests: Vec<(String, String)>,
    /// The playbook's phases (number, name, title) and scenarios, for the
    /// form that starts a run.
    pub phases: Vec<(u8, String, String)>,
    pub scenarios: Vec<String>,
    pub agents: Vec<String>,
    /// CONFIG.md files earlier runs used, newest first.
    pub configs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RunView {
    pub id: String,
    /// Where it is, in the words of `gtmd status`.
    pub line: String,
    pub active: bool,
    pub ok: Option<bool>,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub cost: Option<String>,
    pub phases: Vec<PhaseView>,
}

#[derive(Debug, Clone)]
pub struct PhaseView {
    pub number: u8,
    pub name: String,
    pub title: String,
    /// `waiting`, `current` or `passed`.
    pub state: &'static str,
    pub cost: Option<String>,
    pub steps: Vec<StepView>,
    pub gate: Option<GateView>,
}

#[derive(Debug, Clone)]
pub struct StepView {
    pub id: String,
    pub agent: String,
    /// `waiting`, `active`, `missing outputs` or `done`.
    pub state: &'static str,
    pub missing: Vec<String>,
    pub task: Option<String>,
    pub estimate_minutes: u32,
    pub started_at: Option<Millis>,
    pub done_at: Option<Millis>,
    pub cost: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GateView {
    pub run: String,
    pub phase: u8,
    pub path: String,
    pub opened_at: Millis,
    pub passed_at: Option<Millis>,
    pub boxes: Vec<(String, bool)>,
    pub checks: Option<Vec<CheckResult>>,
}

#[derive(Debug, Clone)]
pub struct TaskView {
    pub id: String,
    pub agent: String,
    pub run: Option<String>,
    pub text: String,
    pub trigger: String,
    /// `gtmd status --json`'s `display_state`, and its phrase.
    pub state: &'static str,
    pub phrase: String,
    pub open: bool,
    pub attempt: u32,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub cost: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ConflictView {
    pub path: String,
    pub title: String,
    pub raised_by: Option<String>,
    pub agents: Vec<String>,
    pub severity: Option<String>,
    pub opened_at: Millis,
    pub versions: u32,
    pub decisions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DecisionView {
    pub path: String,
    pub title: String,
    pub resolves: Option<String>,
    pub affected: Vec<String>,
    pub problems: Vec<String>,
    pub tasks: Vec<String>,
}

impl Snapshot {
    pub fn of(engine: &Engine, workspace: &str, now: Millis) -> Snapshot {
        let runs = shown_runs(engine);
        let costs = Costs::of(engine, &runs);
        let mut s = Snapshot {
            taken_at: now,
            workspace: workspace.to_string(),
            phases: engine
                .playbook()
                .phases
                .iter()
                .map(|p| (p.number, p.name.clone(), p.title.clone()))
                .collect(),
            scenarios: engine
                .playbook()
                .scenarios
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            agents: crate::agents::AGENTS
                .iter()
                .map(|a| a.to_string())
                .collect(),
            ..Snapshot::default()
        };
        s.runs = runs.iter().map(|r| run_view(engine, r, &costs)).collect();
        for r in engine.runs().values().rev() {
            if !r.request.config_path.is_empty() && !s.configs.contains(&r.request.config_path) {
                s.configs.push(r.request.config_path.clone());
            }
            if s.configs.len() >= 5 {
                break;
            }
        }
        s.take_tasks(engine, &runs);
        s.take_escalations(engine);
        let rejected = engine.rejected();
        s.refused_total = rejected.len();
        s.refused = rejected
            .values()
            .take(MAX_ROWS)
            .map(|d| {
                let why = match d.line {
                    Some(l) => format!("line {l}: {}", d.message),
                    None => d.message.clone(),
                };
                (d.path.clone(), why)
            })
            .collect();
        let refused = engine.refused_requests();
        s.refused_requests = refused[refused.len().saturating_sub(5)..]
            .iter()
            .rev()
            .map(|r| (r.id.clone(), r.reason.clone()))
            .collect();
        s
    }

    /// Open tasks (oldest first), the tasks the runs shown name, the latest.
    fn take_tasks(&mut self, engine: &Engine, runs: &[&Run]) {
        let open: Vec<&Task> = engine.tasks().values().filter(|t| t.is_open()).collect();
        self.open_tasks_total = open.len();
        let mut open = open;
        open.sort_by_key(|t| t.seq);
        open.truncate(MAX_ROWS);
        self.open_tasks = open.iter().map(|t| t.id.clone()).collect();
        let named = runs.iter().flat_map(|r| {
            r.steps.values().filter_map(|s| match &s.state {
                StepState::Active { task } => Some(task.as_str()),
                _ => None,
            })
        });
        let recent = engine.tasks_since(engine.task_mark().saturating_sub(RECENT_TASKS));
        let tasks: Vec<&Task> = open
            .into_iter()
            .chain(named.filter_map(|id| engine.task(id)))
            .chain(recent)
            .collect();
        for t in tasks {
            self.tasks
                .entry(t.id.clone())
                .or_insert_with(|| task_view(t));
        }
    }

    /// Open conflicts, and decisions still waiting or unreadable.
    fn take_escalations(&mut self, engine: &Engine) {
        let open: Vec<_> = engine
            .conflicts()
            .values()
            .filter(|c| c.closed_at.is_none())
            .collect();
        self.conflicts_total = open.len();
        self.conflicts = open
            .into_iter()
            .take(MAX_ROWS)
            .map(|c| ConflictView {
                path: c.path.clone(),
                title: c.title.clone(),
                raised_by: c.raised_by.clone(),
                agents: c.agents.clone(),
                severity: c.severity.clone(),
                opened_at: c.opened_at,
                versions: c.versions,
                decisions: c.decisions.clone(),
            })
            .collect();
        let waiting = |d: &crate::engine::DecisionState| {
            !d.problems.is_empty()
                || d.tasks
                    .iter()
                    .any(|t| engine.task(t).is_some_and(|t| t.is_open()))
        };
        for d in engine.decisions().values().filter(|d| waiting(d)) {
            if self.decisions.len() >= MAX_ROWS {
                break;
            }
            for t in d.tasks.iter().filter_map(|t| engine.task(t)) {
                self.tasks
                    .entry(t.id.clone())
                    .or_insert_with(|| task_view(t));
            }
            self.decisions.push(DecisionView {
                path: d.path.clone(),
                title: d.title.clone(),
                resolves: d.resolves.clone(),
                affected: d.affected.clone(),
                problems: d.problems.clone(),
                tasks: d.tasks.clone(),
            });
        }
    }
}

/// The active runs, then the latest ended ones, newest first.
fn shown_runs(engine: &Engine) -> Vec<&Run> {
    let mut runs: Vec<&Run> = engine.runs().values().filter(|r| r.is_active()).collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    let mut ended: Vec<&Run> = engine.runs().values().filter(|r| !r.is_active()).collect();
    ended.sort_by_key(|r| std::cmp::Reverse(r.ended_at.unwrap_or(r.started_at)));
    runs.extend(ended.into_iter().take(RECENT_RUNS));
    runs
}

/// What the tasks of the runs shown cost, by step and by phase.
#[derive(Default)]
struct Costs {
    steps: HashMap<(String, String), Cost>,
    phases: HashMap<(String, u8), Cost>,
}

impl Costs {
    fn of(engine: &Engine, runs: &[&Run]) -> Costs {
        let mut c = Costs::default();
        for t in engine.tasks().values() {
            let (Some(run), Some(cost)) = (t.run.as_ref(), t.cost.as_ref()) else {
                continue;
            };
            if !runs.iter().any(|r| &r.id == run) {
                continue;
            }
            if let Some(step) = &t.step {
                c.steps
                    .entry((run.clone(), step.clone()))
                    .or_default()
                    .add(cost);
            }
            if let Some(phase) = t.phase {
                c.phases.entry((run.clone(), phase)).or_default().add(cost);
            }
        }
        c
    }
}

fn usd(c: &Cost) -> String {
    format!("${:.4}", c.usd)
}

fn run_view(engine: &Engine, r: &Run, costs: &Costs) -> RunView {
    let phases = r
        .phases
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let p = engine.playbook().phase(*n)?;
            let state = match r.gates.get(n) {
                Some(g) if g.passed_at.is_some() => "passed",
                _ if r.is_active() && i == r.current => "current",
                _ if i < r.current => "passed",
                _ => "waiting",
            };
            let steps = p
                .steps
                .iter()
                .filter_map(|def| {
                    let st = r.steps.get(&def.id)?;
                    let (state, task, missing) = match &st.state {
                        StepState::Waiting => ("waiting", None, Vec::new()),
                        StepState::Active { task } => ("active", Some(task.clone()), Vec::new()),
                        StepState::AwaitingOutputs { missing } => {
                            ("missing outputs", None, missing.clone())
                        }
                        StepState::Done => ("done", None, Vec::new()),
                    };
                    Some(StepView {
                        id: def.id.clone(),
                        agent: def.agent.clone(),
                        state,
                        missing,
                        task,
                        estimate_minutes: st.estimate_minutes,
                        started_at: st.started_at,
                        done_at: st.done_at,
                        cost: costs.steps.get(&(r.id.clone(), def.id.clone())).map(usd),
                    })
                })
                .collect();
            let gate = r.gates.get(n).map(|g| GateView {
                run: r.id.clone(),
                phase: *n,
                path: g.path.clone(),
                opened_at: g.opened_at,
                passed_at: g.passed_at,
                boxes: g.boxes.clone(),
                checks: g.checks.clone(),
            });
            Some(PhaseView {
                number: *n,
                name: p.name.clone(),
                title: p.title.clone(),
                state,
                cost: costs.phases.get(&(r.id.clone(), *n)).map(usd),
                steps,
                gate,
            })
        })
        .collect();
    RunView {
        id: r.id.clone(),
        line: crate::summary::run_summary(engine, r),
        active: r.is_active(),
        ok: match r.state {
            RunState::Running => None,
            RunState::Passed => Some(true),
            _ => Some(false),
        },
        started_at: r.started_at,
        ended_at: r.ended_at,
        cost: engine.run_cost(&r.id).as_ref().map(usd),
        phases,
    }
}

fn task_view(t: &Task) -> TaskView {
    // The daemon is serving: a running task runs.
    let (state, phrase) = crate::status::task_state(t, true);
    TaskView {
        id: t.id.clone(),
        agent: t.agent.clone(),
        run: t.run.clone(),
        text: t.text.clone(),
        trigger: t.trigger.clone(),
        state,
        phrase,
        open: t.is_open(),
        attempt: t.attempt,
        created_at: t.created_at,
        started_at: t.started_at,
        ended_at: t.ended_at,
        cost: t.cost.as_ref().map(usd),
    }
}

impl TaskView {
    /// Whether it is doing something now (its age then counts up).
    pub fn busy(&self) -> bool {
        self.open && self.state != "queued"
    }
}
