//! Tasks given out: a new task is queued, and dispatch starts the oldest
//! queued task of each agent that has none running (one task at a time per
//! agent), with the spec a runner needs. The queues it reads are indexes
//! kept in step with the tasks ([`super::state`]).

use super::*;
use crate::agents::short_name;
use crate::playbook::RouteKind;

impl Engine {
    pub(super) fn new_task(&mut self, n: NewTask, at: Millis, out: &mut Vec<Action>) -> TaskId {
        let label = match &n.kind {
            TaskKind::Step => n.step.clone().unwrap_or_default(),
            TaskKind::GateReview { phase } => format!("gate-{phase}"),
            TaskKind::MissingOutputs { .. } => "missing-outputs".into(),
            TaskKind::Escalation { .. } => "escalation".into(),
            TaskKind::Route { .. } => format!("handoff-{}", short_name(&n.agent)),
            TaskKind::ConflictReview { .. } => "conflict-review".into(),
            TaskKind::ApplyDecision { .. } => "apply-decision".into(),
            TaskKind::DecisionProblem { .. } => "decision-problem".into(),
            TaskKind::RouteLoop { .. } => "handoff-loop".into(),
            TaskKind::Adhoc => short_name(&n.agent).to_string(),
        };
        let id = format!("t{:04}-{label}", self.state.next_task);
        self.state.next_task += 1;
        let task = Task {
            id: id.clone(),
            agent: n.agent,
            run: n.run,
            phase: n.phase,
            step: n.step,
            kind: n.kind,
            text: n.text,
            trigger: n.trigger,
            details: n.details,
            state: TaskState::Queued,
            attempt: 1,
            process_alive: false,
            created_at: at,
            started_at: None,
            ended_at: None,
            last_status: None,
            blockers: Vec::new(),
            depth: 0,
            seq: self.state.next_task - 1,
            cost: None,
            session: None,
            denials: Vec::new(),
            api_retries: 0,
            api_wait: false,
            job: None,
            submissions: 0,
            held: None,
        };
        self.insert_task(task);
        self.log_task(&id, at, "queued".into(), out);
        id
    }

    /// Tasks not yet done, oldest first.
    pub(super) fn open_tasks(&self) -> impl Iterator<Item = &Task> {
        self.index.open.values().map(|id| &self.state.tasks[id])
    }

    pub(super) fn agent_busy(&self, agent: &str) -> bool {
        self.index.busy.get(agent).is_some_and(|n| *n > 0)
    }

    /// One task at a time per agent, oldest first. Nothing starts while the
    /// start-up scan is handled: a task that ran when gtmd stopped may have
    /// ended meanwhile, and only the scan can tell.
    pub(super) fn dispatch(&mut self, at: Millis, out: &mut Vec<Action>) {
        if self.state.catching_up || self.state.stopping {
            return;
        }
        self.end_capped_runs(at, out);
        // The oldest task of each free agent whose run may still start one
        // (a run at its cost cap starts none).
        let next: Vec<(String, TaskId)> = self
            .index
            .queues
            .iter()
            .filter(|(agent, q)| !q.is_empty() && !self.agent_busy(agent))
            .filter_map(|(agent, q)| {
                q.values()
                    .find(|id| self.run_may_start(self.state.tasks[*id].run.as_deref()))
                    .map(|id| (agent.clone(), id.clone()))
            })
            .collect();
        for (agent, id) in next {
            let has_command = self.state.agents.get(&agent).is_some_and(|a| a.has_command);
            self.mutate_task(&id, |t| {
                t.state = TaskState::Running;
                t.started_at.get_or_insert(at);
                t.process_alive = has_command;
                // A job of an earlier start is over; a new one gets a name
                // of its own when it is submitted.
                t.job = None;
                // A status held for an earlier attempt's audit is void.
                t.held = None;
            });
            let spec = self.spec_for(&self.state.tasks[&id]);
            let attempt = spec.attempt;
            self.log_task(
                &id,
                at,
                if attempt > 1 {
                    format!("started (attempt {attempt})")
                } else {
                    "started".into()
                },
                out,
            );
            out.push(Action::StartTask { task: spec });
        }
    }

    pub(super) fn spec_for(&self, t: &Task) -> TaskSpec {
        let step = t.step.as_deref().and_then(|s| self.step_def(s));
        let run = t.run.as_deref().and_then(|r| self.state.runs.get(r));
        let context = self
            .state
            .playbook
            .routes
            .iter()
            .filter(|r| r.kind == RouteKind::Context && (r.to == "all" || r.to == t.agent))
            .flat_map(|r| {
                let prefix = r.path.trim_end_matches('*').to_string();
                self.state
                    .files
                    .range(prefix.clone()..)
                    .take_while(move |(p, _)| p.starts_with(&prefix))
                    .filter(|(_, f)| f.size > 0)
                    .map(|(p, _)| p.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        TaskSpec {
            id: t.id.clone(),
            agent: t.agent.clone(),
            run: t.run.clone(),
            phase: t.phase,
            phase_name: t
                .phase
                .and_then(|p| self.state.playbook.phase(p))
                .map(|p| p.name.clone()),
            step: t.step.clone(),
            text: t.text.clone(),
            trigger: t.trigger.clone(),
            inputs: step.map(|s| s.inputs.clone()).unwrap_or_default(),
            outputs: step.map(|s| s.outputs.clone()).unwrap_or_default(),
            details: t.details.clone(),
            context,
            attempt: t.attempt,
            business_context: run
                .map(|r| r.request.config.business_context.clone())
                .unwrap_or_default(),
            budget_usd: self.run_budget_left(t.run.as_deref()),
            resume: t.session.clone(),
        }
    }
}

/// What a new task is, as the rule that gives it out says.
pub(super) struct NewTask {
    pub(super) agent: String,
    pub(super) run: Option<RunId>,
    pub(super) phase: Option<u8>,
    pub(super) step: Option<String>,
    pub(super) kind: TaskKind,
    pub(super) text: String,
    pub(super) trigger: String,
    pub(super) details: Vec<String>,
}
