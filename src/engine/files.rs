//! What a file version sets off: each version is acted on once, then by
//! what it is (a status, gate, conflict, decision, request or refused
//! file) it goes to its rule; any file may be an output a step was waiting
//! for, one a gate checks, or a hand-off ([`super::routes`]).

use super::routes::route_matches;
use super::*;
use crate::diagnostic::Diagnostic;

impl Engine {
    /// A file version seen. Each version is acted on once, whatever order
    /// or how often its events arrive; a version seen before (a replay, a
    /// duplicate event, an editor's unchanged rename-and-write save, a file
    /// put back to an earlier content) only updates what may have changed.
    pub(super) fn on_file_changed(
        &mut self,
        path: &str,
        entry: FileEntry,
        content: &FileContent,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        // The same version again (a replayed or duplicated event) changes nothing.
        if self
            .state
            .files
            .get(path)
            .is_some_and(|f| f.hash == entry.hash)
        {
            return;
        }
        let hash = entry.hash.clone();
        self.set_file(path, Some(entry));
        let reactive = !matches!(content, FileContent::Plain)
            || self
                .state
                .playbook
                .routes
                .iter()
                .any(|r| route_matches(&r.path, path));
        // A gate file is read whatever content it has had before: it is
        // gtmd's own file, and an old copy put back must be answered
        // (rewritten) rather than taken as done.
        let gate = matches!(content, FileContent::Gate { .. });
        if reactive && !gate && !self.mark_acted(path, &hash) {
            self.on_version_back(path, content, at, out);
            return;
        }
        self.on_file(path, content, at, out);
    }

    /// A version acted on before is back: only whether it is refused may
    /// change, an output may be present again, and a withdrawn conflict
    /// opens again.
    fn on_version_back(
        &mut self,
        path: &str,
        content: &FileContent,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        match content {
            FileContent::Rejected { diagnostic } => {
                self.state
                    .rejected
                    .insert(path.to_string(), diagnostic.clone());
            }
            _ => {
                self.state.rejected.remove(path);
            }
        }
        self.on_output_changed(path, at, out);
        self.on_conflict_file_back(path, content, at, out);
    }

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
}
