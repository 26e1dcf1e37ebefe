//! Quality gates: a phase's gate opens when its steps are done, gets a
//! coordinator review, and passes, starting the next phase, when every box
//! is ticked and every automatic check passes. A gate file edited into
//! something else is refused and written back.

use super::*;
use crate::diagnostic::Diagnostic;

impl Engine {
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
}

/// Two checklist items are the same whatever their case and spacing.
fn same_item(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}
