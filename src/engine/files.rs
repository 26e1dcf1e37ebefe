//! What a new file version sets off: refusals, outputs a step was waiting
//! for, gates to check again, and the guide's hand-off routes.
use super::*;
use crate::diagnostic::Diagnostic;
use crate::playbook::RouteKind;

impl Engine {
    // ---- files ----

    pub(super) fn on_file(
        &mut self,
        path: &str,
        content: &FileContent,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        match content {
            FileContent::Rejected { diagnostic } => {
                self.refuse(diagnostic.clone(), at, out);
                return;
            }
            _ => {
                if self.state.rejected.remove(path).is_some() {
                    out.push(Action::Notice {
                        level: NoticeLevel::Info,
                        message: format!("{path}: accepted now (it was refused before)"),
                    });
                }
            }
        }
        match content {
            FileContent::Status { report } => self.on_status(path, report, at, out),
            FileContent::Gate { boxes } => self.on_gate_file(path, boxes, at, out),
            FileContent::Conflict { conflict } => self.on_conflict(path, conflict, at, out),
            FileContent::Decision { decision } => self.on_decision(path, decision, at, out),
            FileContent::Request { request } => self.on_request(request, at, out),
            FileContent::Cancel { request } => {
                let reason = format!("gtmd cancel ({path})");
                self.on_cancel(&request.cancel, Some(&reason), at, out)
            }
            FileContent::Plain | FileContent::Rejected { .. } => {}
        }
        self.on_route(path, at, out);
        self.on_output_changed(path, at, out);
    }

    pub(super) fn refuse(&mut self, d: Diagnostic, at: Millis, out: &mut Vec<Action>) {
        self.state.rejected.insert(d.path.clone(), d.clone());
        let ids = self.active_run_ids();
        for id in ids {
            let r = self.state.runs.get_mut(&id).unwrap();
            r.refused.insert(d.path.clone(), d.clone());
            r.note(at, format!("refused {}", d));
            out.push(Action::RecordChanged { run: id });
        }
        out.push(Action::Refused { diagnostic: d });
    }

    /// A file a step was waiting for may have arrived; a gate under review may
    /// need its checks run again.
    pub(super) fn on_output_changed(&mut self, path: &str, at: Millis, out: &mut Vec<Action>) {
        let run_ids = self.active_run_ids();
        for id in run_ids {
            let Some(phase) = self.state.runs[&id].current_phase() else {
                continue;
            };
            let waiting: Vec<String> = self.state.runs[&id]
                .steps
                .values()
                .filter(|s| {
                    s.phase == phase && matches!(s.state, StepState::AwaitingOutputs { .. })
                })
                .map(|s| s.id.clone())
                .collect();
            for step_id in waiting {
                let missing = self.missing_step_outputs(&step_id);
                if missing.is_empty() {
                    self.step_done(&id, &step_id, at, out);
                } else if let Some(s) = self
                    .state
                    .runs
                    .get_mut(&id)
                    .unwrap()
                    .steps
                    .get_mut(&step_id)
                {
                    s.state = StepState::AwaitingOutputs { missing };
                }
            }
            let r = &self.state.runs[&id];
            if let Some(g) = r.gates.get(&phase) {
                if g.passed_at.is_none() && g.written && self.is_phase_output(phase, path) {
                    out.push(Action::EvaluateGate {
                        run: id.clone(),
                        phase,
                    });
                }
            }
        }
    }

    pub(super) fn is_phase_output(&self, phase: u8, path: &str) -> bool {
        self.state.playbook.phase(phase).is_some_and(|p| {
            p.steps.iter().any(|s| {
                s.outputs
                    .iter()
                    .any(|o| o == path || (o.ends_with('/') && path.starts_with(o.as_str())))
            })
        })
    }

    /// The guide's communication table: a hand-off file gives its receiver a task.
    pub(super) fn on_route(&mut self, path: &str, at: Millis, out: &mut Vec<Action>) {
        let routes: Vec<_> = self
            .state
            .playbook
            .routes
            .iter()
            .filter(|r| r.kind == RouteKind::Trigger && route_matches(&r.path, path))
            .cloned()
            .collect();
        for route in routes {
            // One open hand-off task per (receiver, file): a re-save while it is
            // queued, or the receiver's own edits while it works, add nothing.
            let already_open = self.open_tasks().any(|t| {
                t.agent == route.to
                    && t.kind
                        == TaskKind::Route {
                            path: path.to_string(),
                        }
            });
            if already_open {
                continue;
            }
            // A hand-off written while another hand-off task runs continues its chain.
            let depth = 1 + self
                .open_tasks()
                .filter(|t| {
                    t.state == TaskState::Running && matches!(t.kind, TaskKind::Route { .. })
                })
                .map(|t| t.depth)
                .max()
                .unwrap_or(0);
            let run = self.active_run().map(|r| r.id.clone());
            if depth > MAX_ROUTE_DEPTH {
                let told = self
                    .open_tasks()
                    .any(|t| matches!(t.kind, TaskKind::RouteLoop { .. }));
                out.push(Action::Notice {
                    level: NoticeLevel::Warn,
                    message: format!(
                        "{path}: hand-off to {} not started: it would be hand-off number {depth} in a chain (limit {MAX_ROUTE_DEPTH})",
                        route.to
                    ),
                });
                if !told {
                    self.new_task(
                        NewTask {
                            agent: "coordinator".into(),
                            run,
                            phase: None,
                            step: None,
                            kind: TaskKind::RouteLoop { path: path.to_string() },
                            text: format!(
                                "A chain of hand-offs was stopped after {MAX_ROUTE_DEPTH} steps: {path} would have given {} another task. Check whether the agents keep answering each other's files, and decide what should happen.",
                                route.to
                            ),
                            trigger: format!("hand-off loop at {path}"),
                            details: vec![],
                        },
                        at,
                        out,
                    );
                }
                continue;
            }
            let text = format!("{} ({path} changed)", capitalise(&route.purpose));
            let id = self.new_task(
                NewTask {
                    agent: route.to.clone(),
                    run,
                    phase: None,
                    step: None,
                    kind: TaskKind::Route {
                        path: path.to_string(),
                    },
                    text,
                    trigger: format!("hand-off: {path}"),
                    details: vec![format!("Read {path} and act on it: {}.", route.purpose)],
                },
                at,
                out,
            );
            self.state.tasks.get_mut(&id).unwrap().depth = depth;
        }
    }
}
