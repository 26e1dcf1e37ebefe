//! The escalation protocol: conflicts get a coordinator review per version,
//! decisions give each affected agent a task, and a conflict closes when they
//! have all applied it.
use super::*;
use crate::protocol::escalation::{Conflict, Decision};

impl Engine {
    // ---- conflicts and decisions ----

    /// One coordinator review per content version; a closed conflict that
    /// changes is open again.
    pub(super) fn on_conflict(
        &mut self,
        path: &str,
        c: &Conflict,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let st = self
            .conflicts
            .entry(path.to_string())
            .or_insert_with(|| ConflictState::new(path, at));
        let reopened = st.closed_at.is_some();
        if reopened {
            st.closed_at = None;
            st.closed_by = None;
            st.opened_at = at;
        }
        st.title = c.title.clone();
        st.raised_by = c.raised_by.clone();
        st.agents = c.agents.clone();
        st.severity = c.severity.clone();
        st.versions += 1;
        let version = st.versions;
        let mut details = vec![format!(
            "Read {path}, review both positions, then write a decision in strategy/decisions/ with front matter `resolves: {path}` and `affected: [agents who must change their outputs]`, and the rationale in the text."
        )];
        if !c.agents.is_empty() {
            details.push(format!("Agents named: {}", c.agents.join(", ")));
        }
        if !c.files.is_empty() {
            details.push(format!("Files named: {}", some_of(&c.files, ", ")));
        }
        if let Some(sev) = &c.severity {
            details.push(format!("Severity: {}", clip(sev)));
        }
        let run = self.active_run().map(|r| r.id.clone());
        let title = if c.title.is_empty() {
            path.to_string()
        } else {
            clip(&c.title).into_owned()
        };
        let id = self.new_task(
            NewTask {
                agent: "coordinator".into(),
                run: run.clone(),
                phase: None,
                step: None,
                kind: TaskKind::ConflictReview {
                    conflict: path.to_string(),
                },
                text: format!(
                    "Review the conflict {path}{}: {title}",
                    if version > 1 {
                        format!(" (version {version})")
                    } else {
                        String::new()
                    }
                ),
                trigger: format!("conflict: {path}"),
                details,
            },
            at,
            out,
        );
        self.log_run(
            run,
            at,
            format!(
                "conflict {path} {} (version {version}); review task {id}",
                if reopened {
                    "reopened"
                } else if version == 1 {
                    "raised"
                } else {
                    "changed"
                }
            ),
            out,
        );
    }

    /// Each affected agent gets a task to apply the decision; what cannot be
    /// read goes to the coordinator instead of being dropped.
    pub(super) fn on_decision(
        &mut self,
        path: &str,
        d: &Decision,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let mut problems = d.problems.clone();
        let conflict = d
            .resolves
            .as_deref()
            .map(crate::protocol::escalation::conflict_path);
        let known_conflict = conflict
            .as_ref()
            .filter(|c| self.conflicts.contains_key(*c) || self.files.contains_key(*c));
        if let (Some(c), None) = (&conflict, known_conflict) {
            problems.push(format!(
                "it resolves {}, which is no conflict gtmd has seen (open conflicts: {})",
                clip(c),
                some_of(&self.open_conflicts(), ", ")
            ));
        }
        let run = self.active_run().map(|r| r.id.clone());
        // Apply tasks of an earlier version of this decision are superseded.
        if let Some(old) = self.decisions.get(path) {
            for t in old.tasks.clone() {
                if self
                    .tasks
                    .get(&t)
                    .is_some_and(|t| t.is_open() && t.state != TaskState::Running)
                {
                    self.end_task(&t, Outcome::Cancelled, at, out);
                }
            }
        }
        let mut tasks = Vec::new();
        if let Some(c) = known_conflict.cloned() {
            let st = self
                .conflicts
                .entry(c.clone())
                .or_insert_with(|| ConflictState::new(&c, at));
            if !st.decisions.iter().any(|p| p == path) {
                st.decisions.push(path.to_string());
            }
            let title = if d.title.is_empty() {
                path.to_string()
            } else {
                clip(&d.title).into_owned()
            };
            for agent in &d.affected {
                let id = self.new_task(
                    NewTask {
                        agent: agent.clone(),
                        run: run.clone(),
                        phase: None,
                        step: None,
                        kind: TaskKind::ApplyDecision {
                            decision: path.to_string(),
                            conflict: c.clone(),
                        },
                        text: format!(
                            "Apply the coordinator's decision {path} on the conflict {c}: {title}"
                        ),
                        trigger: format!("decision: {path}"),
                        details: vec![
                            format!("Read {path} and {c}, update your outputs to follow the decision, then report complete."),
                        ],
                    },
                    at,
                    out,
                );
                tasks.push(id);
            }
        }
        if !problems.is_empty() {
            self.new_task(
                NewTask {
                    agent: "coordinator".into(),
                    run: run.clone(),
                    phase: None,
                    step: None,
                    kind: TaskKind::DecisionProblem {
                        decision: path.to_string(),
                    },
                    text: format!(
                        "The decision {path} could not be fully read: {}",
                        some_of(&problems, "; ")
                    ),
                    trigger: format!("decision: {path}"),
                    details: vec![
                        "Fix the decision file; gtmd reads it again when it changes.".into(),
                    ],
                },
                at,
                out,
            );
        }
        self.log_run(
            run,
            at,
            format!(
                "decision {path}{}{}",
                conflict
                    .as_ref()
                    .map(|c| format!(" on {}", clip(c)))
                    .unwrap_or_default(),
                if tasks.is_empty() {
                    String::new()
                } else {
                    format!(": tasks {}", tasks.join(", "))
                }
            ),
            out,
        );
        self.decisions.insert(
            path.to_string(),
            DecisionState {
                path: path.to_string(),
                title: d.title.clone(),
                at,
                resolves: conflict,
                affected: d.affected.clone(),
                problems,
                tasks,
            },
        );
    }

    pub fn open_conflicts(&self) -> Vec<String> {
        self.conflicts
            .values()
            .filter(|c| c.closed_at.is_none())
            .map(|c| c.path.clone())
            .collect()
    }

    /// A conflict closes when every agent its decision affects has completed
    /// the task of applying it.
    pub(super) fn maybe_close_conflict(
        &mut self,
        decision: &str,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(d) = self.decisions.get(decision) else {
            return;
        };
        let Some(conflict) = d.resolves.clone() else {
            return;
        };
        let all_done = !d.tasks.is_empty()
            && d.tasks.iter().all(|t| {
                self.tasks.get(t).is_some_and(|t| {
                    t.state
                        == TaskState::Done {
                            outcome: Outcome::Complete,
                        }
                })
            });
        if !all_done {
            return;
        }
        let Some(c) = self.conflicts.get_mut(&conflict) else {
            return;
        };
        if c.closed_at.is_some() {
            return;
        }
        c.closed_at = Some(at);
        c.closed_by = Some(decision.to_string());
        let run = self.active_run().map(|r| r.id.clone());
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: format!("conflict {conflict} closed by {decision}"),
        });
        self.log_run(
            run,
            at,
            format!("conflict {conflict} closed by {decision}"),
            out,
        );
    }

    pub(super) fn log_run(
        &mut self,
        run: Option<RunId>,
        at: Millis,
        line: String,
        out: &mut Vec<Action>,
    ) {
        if let Some(r) = run.and_then(|r| self.runs.get_mut(&r)) {
            r.note(at, line);
            out.push(Action::RecordChanged { run: r.id.clone() });
        }
    }
}
