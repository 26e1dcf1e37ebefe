//! Runs, phases, steps and gates: the guide's execution modes, the order of
//! steps within a phase, and a gate that holds the next phase until every box
//! is ticked and every automatic check passes.
use super::*;
use crate::diagnostic::Diagnostic;

impl Engine {
    // ---- runs, phases, steps, gates ----

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
                return Ok(Vec::new());
            }
            RunKind::Phases { phases } => phases.clone(),
        };
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

    /// What a new playbook would pull from under the work in progress, one
    /// line per problem: a phase of an active run that it drops or renames; a
    /// step of such a phase that it drops, moves to another phase, or adds
    /// (a run's steps are fixed when it starts, and its gates check them);
    /// the step of an open task that it drops. The daemon refuses such a
    /// playbook at reload and keeps the old one. Anything else may change
    /// while a run is active: a step's agent (tasks already given out stay
    /// with theirs; tasks the step gives later go to the new one), its title,
    /// inputs, outputs, estimate and dependencies, gates, routes, scenarios,
    /// and phases and steps no active run uses.
    pub fn playbook_change_problems(&self, new: &Playbook) -> Vec<String> {
        let mut problems = Vec::new();
        for r in self.state.runs.values().filter(|r| r.is_active()) {
            for &number in &r.phases {
                let Some(old) = self.state.playbook.phase(number) else {
                    continue;
                };
                let Some(phase) = new.phase(number) else {
                    problems.push(format!(
                        "run {} has phase {number} {}, which the new playbook drops",
                        r.id, old.name
                    ));
                    continue;
                };
                if phase.name != old.name {
                    problems.push(format!(
                        "run {} has phase {number} {}, which the new playbook renames to {}",
                        r.id, old.name, phase.name
                    ));
                }
                for step in r.steps.values().filter(|s| s.phase == number) {
                    match new.step(&step.id) {
                        None => problems.push(format!(
                            "run {} has step {} in phase {number}, which the new playbook drops (or renames)",
                            r.id, step.id
                        )),
                        Some((p, _)) if p.number != number => problems.push(format!(
                            "run {} has step {} in phase {number}, which the new playbook moves to phase {}",
                            r.id, step.id, p.number
                        )),
                        Some(_) => {}
                    }
                }
                for s in phase.steps.iter().filter(|s| !r.steps.contains_key(&s.id)) {
                    problems.push(format!(
                        "run {} is running phase {number} {} without step {}, which the new playbook adds to it",
                        r.id, old.name, s.id
                    ));
                }
            }
        }
        for t in self.open_tasks() {
            let Some(step) = &t.step else { continue };
            let in_active_run = t
                .run
                .as_ref()
                .and_then(|r| self.state.runs.get(r))
                .is_some_and(|r| r.is_active() && r.steps.contains_key(step));
            if !in_active_run && new.step(step).is_none() {
                problems.push(format!(
                    "open task {} is for step {step}, which the new playbook drops (or renames)",
                    t.id
                ));
            }
        }
        problems
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

    pub(super) fn start_phase(&mut self, run: &str, at: Millis, out: &mut Vec<Action>) {
        let phase = self.state.runs[run].current_phase().unwrap();
        let name = self
            .state
            .playbook
            .phase(phase)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let r = self.state.runs.get_mut(run).unwrap();
        r.note(at, format!("phase {phase} {name} started"));
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: format!("run {run}: phase {phase} {name} started"),
        });
        self.start_ready_steps(run, at, out);
    }

    pub(super) fn start_ready_steps(&mut self, run: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(phase) = self.state.runs[run].current_phase() else {
            return;
        };
        // A run's steps are those of its phases when it started; a reload
        // that changes them is refused, so a step missing here is skipped.
        let Some(steps) = self.state.playbook.phase(phase).map(|p| p.steps.clone()) else {
            return;
        };
        for step in steps {
            let r = &self.state.runs[run];
            if r.steps.get(&step.id).map(|s| &s.state) != Some(&StepState::Waiting) {
                continue;
            }
            let ready = step
                .depends_on
                .iter()
                .all(|d| r.steps.get(d).is_some_and(|s| s.state == StepState::Done));
            if !ready {
                continue;
            }
            let task = self.new_task(
                NewTask {
                    agent: step.agent.clone(),
                    run: Some(run.to_string()),
                    phase: Some(phase),
                    step: Some(step.id.clone()),
                    kind: TaskKind::Step,
                    text: step.title.clone(),
                    trigger: format!("phase {phase} step {}", step.id),
                    details: step.activities.clone(),
                },
                at,
                out,
            );
            let s = self
                .state
                .runs
                .get_mut(run)
                .unwrap()
                .steps
                .get_mut(&step.id)
                .unwrap();
            s.state = StepState::Active { task };
            s.started_at.get_or_insert(at);
        }
    }

    pub(super) fn step_done(&mut self, run: &str, step: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(r) = self.state.runs.get_mut(run) else {
            return;
        };
        if !r.is_active() {
            return;
        }
        let Some(s) = r.steps.get_mut(step) else {
            return;
        };
        if s.state == StepState::Done {
            return;
        }
        s.state = StepState::Done;
        s.done_at = Some(at);
        let phase = s.phase;
        r.note(at, format!("step {step} done"));
        out.push(Action::RecordChanged {
            run: run.to_string(),
        });
        if r.current_phase() != Some(phase) {
            return;
        }
        self.start_ready_steps(run, at, out);
        let r = &self.state.runs[run];
        let all_done = r
            .steps
            .values()
            .filter(|s| s.phase == phase)
            .all(|s| s.state == StepState::Done);
        if all_done && !r.gates.contains_key(&phase) {
            self.open_gate(run, phase, at, out);
        }
    }

    pub(super) fn open_gate(&mut self, run: &str, phase: u8, at: Millis, out: &mut Vec<Action>) {
        let Some(p) = self.state.playbook.phase(phase) else {
            return;
        };
        let path = gate_path(p);
        let boxes = p
            .gate
            .checklist
            .iter()
            .map(|c| (c.clone(), false))
            .collect();
        let r = self.state.runs.get_mut(run).unwrap();
        r.gates.insert(
            phase,
            GateState {
                phase,
                path: path.clone(),
                opened_at: at,
                boxes,
                checks: None,
                written: false,
                passed_at: None,
            },
        );
        r.note(at, format!("phase {phase} done; gate {path} opened"));
        out.push(Action::EvaluateGate {
            run: run.to_string(),
            phase,
        });
    }

    pub(super) fn on_gate_evaluated(
        &mut self,
        run: &str,
        phase: u8,
        checks: &[crate::gate_checks::CheckResult],
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.state.runs.get_mut(run) else {
            return;
        };
        if !r.is_active() {
            return;
        }
        let Some(g) = r.gates.get_mut(&phase) else {
            return;
        };
        if g.passed_at.is_some() {
            return;
        }
        let changed = g.checks.as_deref() != Some(checks);
        g.checks = Some(checks.to_vec());
        let first = !g.written;
        if let Some(p) = self
            .state
            .playbook
            .phase(phase)
            .filter(|_| changed || first)
        {
            g.written = true;
            out.push(Action::WriteFile {
                path: g.path.clone(),
                contents: render_gate(p, g, run),
            });
        }
        if first {
            let failing: Vec<String> = checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            let needs_review = !g.boxes.is_empty() || !failing.is_empty();
            let path = g.path.clone();
            let n = g.boxes.len();
            if needs_review {
                let mut details = vec![format!(
                    "Open {path}, review the phase's outputs against each checklist item, and tick ([x]) the boxes that hold."
                )];
                if !failing.is_empty() {
                    details.push(format!(
                        "Automatic checks that fail (the gate stays closed until they pass): {}",
                        failing.join("; ")
                    ));
                }
                self.new_task(
                    NewTask {
                        agent: "coordinator".into(),
                        run: Some(run.to_string()),
                        phase: Some(phase),
                        step: None,
                        kind: TaskKind::GateReview { phase },
                        text: format!(
                            "Review the phase {phase} quality gate: tick the {n} checklist item(s) in {path}"
                        ),
                        trigger: format!("phase {phase} done"),
                        details,
                    },
                    at,
                    out,
                );
            }
        }
        self.try_pass_gate(run, phase, at, out);
    }

    pub(super) fn on_gate_file(
        &mut self,
        path: &str,
        boxes: &[crate::protocol::Checkbox],
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let ids = self.active_run_ids();
        for id in ids {
            let r = self.state.runs.get_mut(&id).unwrap();
            let Some(g) = r.gates.values_mut().find(|g| g.path == path) else {
                continue;
            };
            if g.passed_at.is_some() {
                continue;
            }
            let playbook_items: Vec<String> = self
                .state
                .playbook
                .phase(g.phase)
                .map(|p| p.gate.checklist.clone())
                .unwrap_or_default();
            let recognised = boxes
                .iter()
                .any(|b| playbook_items.iter().any(|i| same_item(&b.text, i)));
            if !playbook_items.is_empty() && !recognised {
                // Edited into something that is no gate any more: say so, and
                // put the gate back as it was (ticks kept) for the coordinator.
                let phase = g.phase;
                let Some(p) = self.state.playbook.phase(phase) else {
                    continue;
                };
                let contents = render_gate(p, g, &id);
                let n = playbook_items.len();
                self.refuse(
                    Diagnostic::new(
                        path,
                        None,
                        format!(
                            "holds none of the phase {phase} gate's {n} checklist items; a gate file keeps the `- [ ] item` lines gtmd wrote, ticked as `- [x] item`. gtmd wrote the gate back"
                        ),
                    ),
                    at,
                    out,
                );
                out.push(Action::WriteFile {
                    path: path.to_string(),
                    contents,
                });
                continue;
            }
            // Every checklist item of the playbook must be present and ticked;
            // boxes the coordinator added must be ticked too.
            let mut merged: Vec<(String, bool)> = playbook_items
                .iter()
                .map(|text| {
                    let ticked = boxes.iter().any(|b| b.checked && same_item(&b.text, text));
                    (text.clone(), ticked)
                })
                .collect();
            for b in boxes {
                if !playbook_items.iter().any(|i| same_item(&b.text, i)) {
                    merged.push((b.text.clone(), b.checked));
                }
            }
            let r = self.state.runs.get_mut(&id).unwrap();
            let g = r.gates.values_mut().find(|g| g.path == path).unwrap();
            g.boxes = merged;
            let phase = g.phase;
            out.push(Action::EvaluateGate { run: id, phase });
        }
    }

    pub(super) fn try_pass_gate(
        &mut self,
        run: &str,
        phase: u8,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let r = self.state.runs.get_mut(run).unwrap();
        let g = r.gates.get_mut(&phase).unwrap();
        let checks_pass = g
            .checks
            .as_ref()
            .is_some_and(|c| c.iter().all(|c| c.passed));
        let ticked = g.boxes.iter().all(|(_, t)| *t);
        if !(checks_pass && ticked) || g.passed_at.is_some() {
            return;
        }
        g.passed_at = Some(at);
        r.note(at, format!("gate of phase {phase} passed"));
        out.push(Action::RecordChanged {
            run: run.to_string(),
        });
        // The review task has nothing left to do.
        let review: Vec<TaskId> = self
            .open_tasks()
            .filter(|t| {
                t.is_open()
                    && t.run.as_deref() == Some(run)
                    && t.kind == TaskKind::GateReview { phase }
                    && t.state != TaskState::Running
            })
            .map(|t| t.id.clone())
            .collect();
        for t in review {
            self.end_task(&t, Outcome::Complete, at, out);
        }
        let r = self.state.runs.get_mut(run).unwrap();
        r.current += 1;
        if r.current < r.phases.len() {
            self.start_phase(run, at, out);
        } else {
            r.state = RunState::Passed;
            r.ended_at = Some(at);
            r.note(at, "run complete".into());
            out.push(Action::RunFinished {
                run: run.to_string(),
                ok: true,
                summary: format!("all phases passed their gates ({})", join_nums(&r.phases)),
            });
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
