//! The daemon's state as one small document, kept current in
//! `STATE/feed.json`, for the clients that follow it from another process:
//! a `team run` or `agent run` handed to the daemon, and `gtmd cancel`.
//!
//! Before it, each of them replayed the whole journal every 100-200 ms; a
//! feed of a few hundred bytes costs the same with ten entries in the
//! journal or a million. It holds only what a follower needs: runs (their
//! progress line and how they ended), refused requests, and open tasks.
//! `gtmd status` still replays the journal: it shows everything, and works
//! with no daemon. A feed is built by a pure function of the engine, so a
//! client with no feed to read (a daemon of an older gtmd) builds the same
//! one from a replay.

use crate::engine::{Engine, Run, RunState, TaskState};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FEED_FILE: &str = "feed.json";

/// How many ended runs and refused requests the feed keeps, newest first:
/// a follower looks for the one it asked for moments ago.
const RECENT: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    /// Active runs and the most recent ended ones, oldest first.
    pub runs: Vec<RunFeed>,
    /// The most recent refused requests: (request id, why).
    pub refused: Vec<(String, String)>,
    /// Tasks not yet ended: (task id, agent, state word).
    pub open_tasks: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFeed {
    pub id: String,
    /// The id of the request that started it (`team run` chose it).
    pub request: String,
    /// Where it is, in one line (`gtmd status`'s first line for it).
    pub line: String,
    /// `None` while the run goes on.
    pub ended: Option<Ending>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    pub ok: bool,
    /// Why it ended, in the run record's words.
    pub reason: String,
}

impl Feed {
    pub fn of(engine: &Engine) -> Feed {
        let ended: Vec<&Run> = engine.runs().values().filter(|r| !r.is_active()).collect();
        let recent_ended = &ended[ended.len().saturating_sub(RECENT)..];
        let runs = engine
            .runs()
            .values()
            .filter(|r| r.is_active() || recent_ended.iter().any(|e| e.id == r.id))
            .map(|r| RunFeed {
                id: r.id.clone(),
                request: r.request.id.clone(),
                line: format!("run {}: {}", r.id, crate::summary::run_summary(engine, r)),
                ended: ending(r),
            })
            .collect();
        let refused = engine.refused_requests();
        let refused = refused[refused.len().saturating_sub(RECENT)..]
            .iter()
            .map(|r| (r.id.clone(), r.reason.clone()))
            .collect();
        let open_tasks = engine
            .tasks()
            .values()
            .filter(|t| t.is_open())
            .map(|t| (t.id.clone(), t.agent.clone(), state_word(&t.state).into()))
            .collect();
        Feed {
            runs,
            refused,
            open_tasks,
        }
    }

    /// The run a request started, if it has.
    pub fn run_of_request(&self, request: &str) -> Option<&RunFeed> {
        self.runs.iter().find(|r| r.request == request)
    }

    /// Why a request was refused, if it was.
    pub fn refusal(&self, request: &str) -> Option<&str> {
        self.refused
            .iter()
            .find(|(id, _)| id == request)
            .map(|(_, why)| why.as_str())
    }

    pub fn task_open(&self, task: &str) -> bool {
        self.open_tasks.iter().any(|(id, _, _)| id == task)
    }

    pub fn run_active(&self, run: &str) -> bool {
        self.runs.iter().any(|r| r.id == run && r.ended.is_none())
    }
}

fn ending(r: &Run) -> Option<Ending> {
    let (ok, reason) = match &r.state {
        RunState::Running => return None,
        RunState::Passed => (true, "all requested work done".to_string()),
        RunState::Failed { reason } => (false, reason.clone()),
        // The record's last word on it says why.
        RunState::Cancelled => (
            false,
            r.log
                .iter()
                .rev()
                .map(|(_, l)| l)
                .find(|l| l.starts_with("run cancelled"))
                .cloned()
                .unwrap_or_else(|| "run cancelled".into()),
        ),
    };
    Some(Ending { ok, reason })
}

fn state_word(s: &TaskState) -> &'static str {
    match s {
        TaskState::Queued => "queued",
        TaskState::Running => "running",
        TaskState::RetryWait => "waiting-to-retry",
        TaskState::Blocked => "blocked",
        TaskState::Done { .. } => "done",
    }
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FEED_FILE)
}

/// The feed a daemon keeps in `state_dir`, if there is a readable one.
pub fn read(state_dir: &Path) -> Option<Feed> {
    let bytes = std::fs::read(path(state_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Event, RunKind, RunRequest};
    use crate::playbook::Playbook;

    fn request(id: &str, phases: Vec<u8>) -> Event {
        Event::RunRequested {
            request: RunRequest {
                id: id.into(),
                kind: RunKind::Phases { phases },
                config: Default::default(),
                config_path: String::new(),
                scenario: None,
                force: true,
                budget_secs: None,
                max_cost: None,
                hard_cap: false,
                max_tokens: None,
            },
            at: 1_764_000_000_000,
        }
    }

    #[test]
    fn a_follower_finds_its_run_its_refusal_and_the_open_tasks() {
        let mut e = Engine::new(Playbook::default_playbook(), Default::default());
        e.handle(&request("req-a", vec![1]));
        // A second run while the first is active is refused.
        e.handle(&request("req-b", vec![2]));
        let f = Feed::of(&e);
        let run = f.run_of_request("req-a").expect("req-a started a run");
        assert!(run.ended.is_none());
        assert!(run.line.contains("phase 1 strategy"), "{}", run.line);
        assert!(f.run_active(&run.id));
        assert!(f.refusal("req-b").unwrap().contains("still active"));
        let (task, agent, state) = &f.open_tasks[0];
        assert!(task.ends_with("gtm-strategy"), "{task}");
        assert_eq!((agent.as_str(), state.as_str()), ("coordinator", "running"));
        assert!(f.task_open(task));
        // It round-trips through its file format.
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Feed>(&text).unwrap(), f);
    }

    #[test]
    fn a_cancelled_run_ends_with_the_records_reason() {
        let mut e = Engine::new(Playbook::default_playbook(), Default::default());
        e.handle(&request("req-a", vec![1]));
        let run = e.runs().keys().next().unwrap().clone();
        e.handle(&Event::CancelRequested {
            target: crate::engine::CancelTarget::Run { run: run.clone() },
            reason: Some("over its wall-clock budget of 1s (--run-budget)".into()),
            at: 1_764_000_000_100,
        });
        let f = Feed::of(&e);
        let ended = f.run_of_request("req-a").unwrap().ended.clone().unwrap();
        assert!(!ended.ok);
        assert!(
            ended.reason.contains("wall-clock budget"),
            "{}",
            ended.reason
        );
        assert!(!f.run_active(&run));
        assert!(f.open_tasks.is_empty());
    }
}
