//! Runs asked for and cancelled: the guide's execution modes and scenario
//! validation decide whether a requested run starts; a cancel ends a task,
//! or a run and all its tasks.

use super::*;

impl Engine {
    pub(super) fn on_request(&mut self, req: &RunRequest, at: Millis, out: &mut Vec<Action>) {
        if self.state.runs.values().any(|r| r.request.id == req.id)
            || self.state.refused_requests.iter().any(|r| r.id == req.id)
        {
            return; // the same request seen again
        }
        match self.validate_request(req) {
            Err(reason) => {
                self.state.refused_requests.push(RefusedRequest {
                    id: req.id.clone(),
                    reason: reason.clone(),
                    at,
                });
                out.push(Action::RunRefused {
                    request: req.id.clone(),
                    reason,
                });
            }
            Ok(phases) => self.start_run(req, phases, at, out),
        }
    }

    /// The guide's execution modes and scenario validation.
    pub(super) fn validate_request(&self, req: &RunRequest) -> Result<Vec<u8>, String> {
        let phases = match &req.kind {
            RunKind::Agent { agent, .. } => {
                if !self.state.agents.contains_key(agent) {
                    return Err(format!("unknown agent {agent}"));
                }
                self.cost_cap_keepable(req, &[agent.as_str()])?;
                return Ok(Vec::new());
            }
            RunKind::Phases { phases } => phases.clone(),
        };
        // Any agent may get a task of a run of phases (a review, a
        // hand-off, a decision to apply).
        let all: Vec<&str> = self.state.agents.keys().map(String::as_str).collect();
        self.cost_cap_keepable(req, &all)?;
        if phases.is_empty() {
            return Err("no phases requested".into());
        }
        let mut sorted = phases.clone();
        sorted.sort_unstable();
        sorted.dedup();
        for p in &sorted {
            if self.state.playbook.phase(*p).is_none() {
                return Err(format!("the playbook has no phase {p}"));
            }
        }
        if let Some(active) = self.active_run() {
            return Err(format!(
                "run {} is still active (phase {}); cancel it with `gtmd cancel --run {}` first",
                active.id,
                active.current_phase().unwrap_or(0),
                active.id
            ));
        }
        if let Some(name) = &req.scenario {
            let Some(sc) = self.state.playbook.scenario(name) else {
                let names: Vec<&str> = self
                    .state
                    .playbook
                    .scenarios
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                return Err(format!(
                    "unknown scenario {name}; accepted: {}",
                    names.join(", ")
                ));
            };
            let mut required = sc.required_phases.clone();
            required.sort_unstable();
            if required != sorted && !req.force {
                return Err(format!(
                    "scenario {name} runs phases {}, this run asks for {}; use --force to run it anyway",
                    join_nums(&required),
                    join_nums(&sorted)
                ));
            }
        }
        // Inputs that earlier phases, not part of this run, should have produced.
        let mut missing = BTreeSet::new();
        for p in &sorted {
            for step in &self.state.playbook.phase(*p).unwrap().steps {
                for input in &step.inputs {
                    let from = self.producing_phase(input);
                    if let Some(from) = from {
                        if from < *p && !sorted.contains(&from) && !self.output_present(input) {
                            missing.insert(format!("{input} (phase {from})"));
                        }
                    }
                }
            }
        }
        if !missing.is_empty() && !req.force {
            return Err(format!(
                "inputs from earlier phases are missing: {}; run those phases first (or use --force)",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(sorted)
    }

    /// A `--max-cost` counts dollars: a run whose agents report tokens that
    /// gtmd cannot price would pass its cap unseen, so it does not start.
    fn cost_cap_keepable(&self, req: &RunRequest, agents: &[&str]) -> Result<(), String> {
        if req.max_cost.is_none() {
            return Ok(());
        }
        let unpriced: Vec<String> = agents
            .iter()
            .filter_map(|a| {
                let why = self.state.agents.get(*a)?.unpriced.as_ref()?;
                Some(format!("{a}: {why}"))
            })
            .collect();
        if unpriced.is_empty() {
            return Ok(());
        }
        Err(format!(
            "--max-cost cannot be kept, the price is unknown for {}; add the model's prices to the price table (prices.yaml), or cap the run with --max-tokens instead",
            unpriced.join("; ")
        ))
    }

    pub(super) fn producing_phase(&self, path: &str) -> Option<u8> {
        self.state
            .playbook
            .phases
            .iter()
            .find(|ph| ph.steps.iter().any(|s| s.outputs.iter().any(|o| o == path)))
            .map(|ph| ph.number)
    }

    pub(super) fn start_run(
        &mut self,
        req: &RunRequest,
        phases: Vec<u8>,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let id = format!("{}-{:03}", date_of(at), self.state.next_run);
        self.state.next_run += 1;
        let mut steps = BTreeMap::new();
        for p in &phases {
            for s in &self.state.playbook.phase(*p).unwrap().steps {
                steps.insert(
                    s.id.clone(),
                    StepRecord {
                        id: s.id.clone(),
                        phase: *p,
                        state: StepState::Waiting,
                        started_at: None,
                        done_at: None,
                        estimate_minutes: s.estimate_minutes,
                    },
                );
            }
        }
        let what = match &req.kind {
            RunKind::Phases { .. } => format!("phases {}", join_nums(&phases)),
            RunKind::Agent { agent, .. } => format!("agent {agent}"),
        };
        self.state.runs.insert(
            id.clone(),
            Run {
                id: id.clone(),
                request: req.clone(),
                phases: phases.clone(),
                current: 0,
                state: RunState::Running,
                started_at: at,
                ended_at: None,
                steps,
                gates: BTreeMap::new(),
                refused: BTreeMap::new(),
                log: vec![(at, format!("run started: {what}"))],
                log_dropped: 0,
                capped: None,
            },
        );
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: format!("run {id} started: {what}"),
        });
        out.push(Action::RecordChanged { run: id.clone() });
        match &req.kind {
            RunKind::Agent { agent, task } => {
                self.new_task(
                    NewTask {
                        agent: agent.clone(),
                        run: Some(id.clone()),
                        phase: None,
                        step: None,
                        kind: TaskKind::Adhoc,
                        text: task.clone(),
                        trigger: "gtmd agent run".into(),
                        details: Vec::new(),
                    },
                    at,
                    out,
                );
            }
            RunKind::Phases { .. } => self.start_phase(&id, at, out),
        }
    }

    pub(super) fn on_cancel(
        &mut self,
        target: &CancelTarget,
        reason: Option<&str>,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
        if let CancelTarget::Task { task } = target {
            if let Some(t) = self.state.tasks.get(task).filter(|t| t.is_open()) {
                if let Some(run) = t.run.clone() {
                    if let Some(r) = self.state.runs.get_mut(&run) {
                        r.note(at, format!("task {task} cancelled{why}"));
                    }
                }
            }
        }
        // The run first: an agent run would otherwise end as failed with its task.
        if let CancelTarget::Run { run } = target {
            if let Some(r) = self.state.runs.get_mut(run) {
                if r.is_active() {
                    r.state = RunState::Cancelled;
                    r.ended_at = Some(at);
                    r.note(at, format!("run cancelled{why}"));
                    out.push(Action::RecordChanged { run: run.clone() });
                    out.push(Action::RunFinished {
                        run: run.clone(),
                        ok: false,
                        summary: format!("cancelled{why}"),
                    });
                }
            }
        }
        let ids: Vec<TaskId> = match target {
            CancelTarget::Task { task } => vec![task.clone()],
            CancelTarget::Run { run } => self
                .state
                .tasks
                .values()
                .filter(|t| t.run.as_deref() == Some(run.as_str()))
                .map(|t| t.id.clone())
                .collect(),
        };
        for id in ids {
            let Some(t) = self.state.tasks.get(&id) else {
                continue;
            };
            if !t.is_open() {
                continue;
            }
            if t.process_alive {
                out.push(Action::StopTask { task: id.clone() });
            }
            self.end_task(&id, Outcome::Cancelled, at, out);
        }
    }
}
