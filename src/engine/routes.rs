//! The guide's communication table: a hand-off file gives its receiver a
//! task, one open task per receiver and file, and a chain of hand-offs
//! (agents answering each other's files) stops after [`MAX_ROUTE_DEPTH`].

use super::*;
use crate::playbook::RouteKind;

impl Engine {
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
                self.stop_route_chain(path, &route.to, depth, run, at, out);
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

    /// A hand-off that would go past [`MAX_ROUTE_DEPTH`] is not given out:
    /// a warning each time, and one coordinator task while it is open.
    fn stop_route_chain(
        &mut self,
        path: &str,
        to: &str,
        depth: u32,
        run: Option<RunId>,
        at: Millis,
        out: &mut Vec<Action>,
    ) {
        let told = self
            .open_tasks()
            .any(|t| matches!(t.kind, TaskKind::RouteLoop { .. }));
        out.push(Action::Notice {
            level: NoticeLevel::Warn,
            message: format!(
                "{path}: hand-off to {to} not started: it would be hand-off number {depth} in a chain (limit {MAX_ROUTE_DEPTH})"
            ),
        });
        if told {
            return;
        }
        self.new_task(
            NewTask {
                agent: "coordinator".into(),
                run,
                phase: None,
                step: None,
                kind: TaskKind::RouteLoop { path: path.to_string() },
                text: format!(
                    "A chain of hand-offs was stopped after {MAX_ROUTE_DEPTH} steps: {path} would have given {to} another task. Check whether the agents keep answering each other's files, and decide what should happen."
                ),
                trigger: format!("hand-off loop at {path}"),
                details: vec![],
            },
            at,
            out,
        );
    }
}

/// A route's path: a file, or every path under a `prefix*`.
pub(super) fn route_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
