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
            .state
            .conflicts
            .entry(path.to_string())
            .or_insert_with(|| ConflictState::new(path, at));
        let reopened = st.closed_at.is_some();
        if reopened {
            st.closed_at = None;
            st.closed_by = None;
            st.withdrawn = false;
            st.opened_at = at;
        }
        st.title = c.title.clone();
        st.raised_by = c.raised_by.clone();
        st.agents = c.agents.clone();
        st.severity = c.severity.clone();
        st.versions += 1;
        let version = st.versions;
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
                details: review_details(path, c),
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

    /// A conflict whose file is gone (deleted, renamed away, taken by a `git
    /// checkout`) is withdrawn: closed, saying so, its queued review
    /// cancelled (a running one finishes). A conflict a decision closed
    /// stays closed by it: removing a settled conflict's file is tidying up.
    pub(super) fn on_conflict_file_removed(
        &mut self,
        path: &str,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.state.conflicts.get_mut(path) else {
            return;
        };
        if c.closed_at.is_some() {
            return;
        }
        c.closed_at = Some(at);
        c.closed_by = Some(WITHDRAWN.to_string());
        c.withdrawn = true;
        let queued: Vec<TaskId> = self
            .open_tasks()
            .filter(|t| t.state != TaskState::Running && self.reviews(t, path))
            .map(|t| t.id.clone())
            .collect();
        for t in &queued {
            self.end_task(t, Outcome::Cancelled, at, out);
        }
        let line = format!(
            "conflict {path} {WITHDRAWN}{}; it opens again if the file comes back",
            if queued.is_empty() {
                String::new()
            } else {
                format!(" (review {} cancelled)", queued.join(", "))
            }
        );
        let run = self.active_run().map(|r| r.id.clone());
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: line.clone(),
        });
        self.log_run(run, at, line, out);
    }

    /// A withdrawn conflict's file is back with content gtmd has acted on
    /// before (`git checkout` restoring it, a rename away and back): the same
    /// version, reviewed already, so it is open again as it was, with no new
    /// review; a review the withdrawal cancelled is queued again (the same
    /// task). If its standing decision was applied meanwhile, it closes by it.
    /// (New content is a new version: [`Engine::on_conflict`].)
    pub(super) fn on_conflict_file_back(
        &mut self,
        path: &str,
        content: &FileContent,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let FileContent::Conflict { conflict } = content else {
            return;
        };
        let Some(c) = self.state.conflicts.get_mut(path).filter(|c| c.withdrawn) else {
            return;
        };
        c.title = conflict.title.clone();
        c.raised_by = conflict.raised_by.clone();
        c.agents = conflict.agents.clone();
        c.severity = conflict.severity.clone();
        // The reviews the withdrawal cancelled are queued again: the same
        // tasks, so a version still gets exactly one review.
        let withdrawn_at = c.closed_at.take();
        c.closed_by = None;
        c.withdrawn = false;
        let cancelled: Vec<TaskId> = self
            .state
            .tasks
            .values()
            .filter(|t| {
                self.reviews(t, path)
                    && t.ended_at == withdrawn_at
                    && t.state
                        == TaskState::Done {
                            outcome: Outcome::Cancelled,
                        }
            })
            .map(|t| t.id.clone())
            .collect();
        for id in &cancelled {
            self.mutate_task(id, |t| {
                t.state = TaskState::Queued;
                t.ended_at = None;
            });
            self.log_task(id, at, format!("queued again: {path} is back"), out);
        }
        let line = format!(
            "conflict {path} is back with content already seen: open again{}",
            if cancelled.is_empty() {
                ", no new review".to_string()
            } else {
                format!(", its review {} queued again", cancelled.join(", "))
            }
        );
        let run = self.active_run().map(|r| r.id.clone());
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: line.clone(),
        });
        self.log_run(run, at, line, out);
        self.close_if_settled(path, at, out);
    }

    fn reviews(&self, t: &Task, conflict: &str) -> bool {
        matches!(&t.kind, TaskKind::ConflictReview { conflict: c } if c == conflict)
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
            .clone()
            .filter(|c| self.state.conflicts.contains_key(c) || self.state.files.contains_key(c));
        if let (Some(c), None) = (&conflict, &known_conflict) {
            problems.push(format!(
                "it resolves {}, which is no conflict gtmd has seen (open conflicts: {})",
                clip(c),
                some_of(&self.open_conflicts(), ", ")
            ));
        }
        let run = self.active_run().map(|r| r.id.clone());
        self.supersede_decision(path, at, out);
        let tasks = match &known_conflict {
            Some(c) => self.give_apply_tasks(path, d, c, run.clone(), at, out),
            None => Vec::new(),
        };
        if let Some(c) = known_conflict.as_ref().filter(|_| !tasks.is_empty()) {
            self.reopen_for_decision(c, path, d, run.clone(), at, out);
        }
        if !problems.is_empty() {
            self.tell_decision_problems(path, &problems, run.clone(), at, out);
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
        self.state.decisions.insert(
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

    /// Apply tasks of an earlier version of this decision are superseded
    /// (a running one finishes).
    fn supersede_decision(&mut self, path: &str, at: Millis, out: &mut Vec<Action>) {
        let Some(old) = self.state.decisions.get(path) else {
            return;
        };
        for t in old.tasks.clone() {
            if self
                .state
                .tasks
                .get(&t)
                .is_some_and(|t| t.is_open() && t.state != TaskState::Running)
            {
                self.end_task(&t, Outcome::Cancelled, at, out);
            }
        }
    }

    /// The decision is recorded on its conflict, and each affected agent
    /// gets a task to apply it.
    fn give_apply_tasks(
        &mut self,
        path: &str,
        d: &Decision,
        conflict: &str,
        run: Option<RunId>,
        at: Millis,
        out: &mut Vec<Action>,
    ) -> Vec<TaskId> {
        let st = self
            .state
            .conflicts
            .entry(conflict.to_string())
            .or_insert_with(|| ConflictState::new(conflict, at));
        if !st.decisions.iter().any(|p| p == path) {
            st.decisions.push(path.to_string());
        }
        let title = if d.title.is_empty() {
            path.to_string()
        } else {
            clip(&d.title).into_owned()
        };
        let mut tasks = Vec::new();
        for agent in &d.affected {
            let id = self.new_task(
                NewTask {
                    agent: agent.clone(),
                    run: run.clone(),
                    phase: None,
                    step: None,
                    kind: TaskKind::ApplyDecision {
                        decision: path.to_string(),
                        conflict: conflict.to_string(),
                    },
                    text: format!(
                        "Apply the coordinator's decision {path} on the conflict {conflict}: {title}"
                    ),
                    trigger: format!("decision: {path}"),
                    details: vec![
                        format!("Read {path} and {conflict}, update your outputs to follow the decision, then report complete."),
                    ],
                },
                at,
                out,
            );
            tasks.push(id);
        }
        tasks
    }

    /// A new or changed decision opens its conflict again, if a decision
    /// had closed it, until its agents have applied it.
    fn reopen_for_decision(
        &mut self,
        conflict: &str,
        path: &str,
        d: &Decision,
        run: Option<RunId>,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.state.conflicts.get_mut(conflict) else {
            return;
        };
        if c.closed_at.is_none() || c.withdrawn {
            return;
        }
        c.closed_at = None;
        c.closed_by = None;
        c.opened_at = at;
        let line = format!(
            "conflict {} reopened: the decision {path} is new or changed; it closes when {} have applied it",
            c.path,
            d.affected.join(", ")
        );
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: line.clone(),
        });
        self.log_run(run, at, line, out);
    }

    /// What could not be read in a decision goes to the coordinator.
    fn tell_decision_problems(
        &mut self,
        path: &str,
        problems: &[String],
        run: Option<RunId>,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        self.new_task(
            NewTask {
                agent: "coordinator".into(),
                run,
                phase: None,
                step: None,
                kind: TaskKind::DecisionProblem {
                    decision: path.to_string(),
                },
                text: format!(
                    "The decision {path} could not be fully read: {}",
                    some_of(problems, "; ")
                ),
                trigger: format!("decision: {path}"),
                details: vec!["Fix the decision file; gtmd reads it again when it changes.".into()],
            },
            at,
            out,
        );
    }

    pub fn open_conflicts(&self) -> Vec<String> {
        self.state
            .conflicts
            .values()
            .filter(|c| c.closed_at.is_none())
            .map(|c| c.path.clone())
            .collect()
    }

    /// The decision a conflict stands by: the latest one written that
    /// still names it.
    fn standing_decision(&self, conflict: &str) -> Option<&DecisionState> {
        self.state
            .conflicts
            .get(conflict)?
            .decisions
            .iter()
            .filter_map(|p| self.state.decisions.get(p))
            .filter(|d| d.resolves.as_deref() == Some(conflict))
            .max_by_key(|d| d.at)
    }

    /// Every agent the decision affects has completed the task of applying
    /// its latest version.
    fn applied(&self, d: &DecisionState) -> bool {
        !d.tasks.is_empty()
            && d.tasks.iter().all(|t| {
                self.state.tasks.get(t).is_some_and(|t| {
                    t.state
                        == TaskState::Done {
                            outcome: Outcome::Complete,
                        }
                })
            })
    }

    /// When a conflict closes:
    ///
    /// - when the last affected agent completes the task of applying its
    ///   standing decision (the latest decision naming it);
    /// - when the coordinator completes the review of a later version and
    ///   no review of it is left open, if the standing decision has been
    ///   applied: a review that writes no new decision (or writes the same
    ///   one again, which is no new version) upholds the ruling the agents
    ///   already follow;
    /// - a new or changed decision gives its affected agents new tasks and
    ///   opens a closed conflict again until they complete them
    ///   ([`Engine::on_decision`]). So a review that completes before the
    ///   coordinator's changed decision lands may close the conflict for a
    ///   moment; the decision then opens it again.
    ///
    /// A withdrawn conflict stays withdrawn whatever its tasks do.
    pub(super) fn maybe_close_conflict(
        &mut self,
        decision: &str,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(conflict) = self
            .state
            .decisions
            .get(decision)
            .and_then(|d| d.resolves.clone())
        else {
            return;
        };
        let standing = self.standing_decision(&conflict);
        if standing.is_some_and(|d| d.path == decision && self.applied(d)) {
            self.close(&conflict, decision.to_string(), String::new(), at, out);
        }
    }

    /// A review of a conflict ended: see [`Engine::maybe_close_conflict`].
    pub(super) fn on_review_ended(
        &mut self,
        conflict: &str,
        task_id: &str,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let complete = self.state.tasks[task_id].state
            == TaskState::Done {
                outcome: Outcome::Complete,
            };
        if complete {
            self.close_if_settled(conflict, at, out);
        }
    }

    /// Close a conflict whose every version has been reviewed and whose
    /// standing decision has been applied.
    fn close_if_settled(&mut self, conflict: &str, at: Millis, out: &mut Vec<Action>) {
        // The decision first: most reviews have none yet, and the scan of
        // open tasks would make a burst of reviews quadratic.
        let Some(d) = self.standing_decision(conflict).filter(|d| self.applied(d)) else {
            return;
        };
        let decision = d.path.clone();
        if self.open_tasks().any(|t| self.reviews(t, conflict)) {
            return;
        }
        let version = self.state.conflicts[conflict].versions;
        self.close(
            conflict,
            decision,
            format!(" (upheld after the review of version {version}; its affected agents had applied it)"),
            at,
            out,
        );
    }

    fn close(
        &mut self,
        conflict: &str,
        decision: String,
        why: String,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.state.conflicts.get_mut(conflict) else {
            return;
        };
        if c.closed_at.is_some() {
            return;
        }
        c.closed_at = Some(at);
        c.closed_by = Some(decision.clone());
        let line = format!("conflict {conflict} closed by {decision}{why}");
        let run = self.active_run().map(|r| r.id.clone());
        out.push(Action::Notice {
            level: NoticeLevel::Info,
            message: line.clone(),
        });
        self.log_run(run, at, line, out);
    }
}

/// What the coordinator's review of a conflict is given to go on.
fn review_details(path: &str, c: &Conflict) -> Vec<String> {
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
    details
}
