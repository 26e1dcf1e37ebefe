//! A run as the engine tracks it: its phases, steps and gates, its history
//! for the run record, and a request refused before it became one.

use crate::diagnostic::Diagnostic;
use crate::gate_checks::CheckResult;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{Millis, RunId, RunRequest, TaskId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum StepState {
    Waiting,
    Active {
        task: TaskId,
    },
    /// Reported complete with outputs missing; done as soon as they exist.
    AwaitingOutputs {
        missing: Vec<String>,
    },
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    pub phase: u8,
    pub state: StepState,
    pub started_at: Option<Millis>,
    pub done_at: Option<Millis>,
    pub estimate_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    pub phase: u8,
    pub path: String,
    pub opened_at: Millis,
    /// The checklist as last read from the gate file (text, ticked).
    pub boxes: Vec<(String, bool)>,
    /// Latest automatic check results; `None` until first evaluated.
    pub checks: Option<Vec<CheckResult>>,
    /// Whether the gate file has been written for this gate.
    pub written: bool,
    pub passed_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RunState {
    Running,
    Passed,
    Failed { reason: String },
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub request: RunRequest,
    /// The phases of a team run, in order; empty for an agent run.
    pub phases: Vec<u8>,
    /// Index into `phases` of the phase in progress.
    pub current: usize,
    pub state: RunState,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub steps: BTreeMap<String, StepRecord>,
    pub gates: BTreeMap<u8, GateState>,
    /// Files refused while the run was active (path → latest message).
    pub refused: BTreeMap<String, Diagnostic>,
    /// Human-readable history for the run record: the latest lines (see
    /// [`Run::note`]).
    pub log: Vec<(Millis, String)>,
    /// Lines dropped from the front of `log`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_dropped: u64,
    /// Why the run may start no task any more: its spending cap is reached.
    /// It ends once no task of it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A run keeps at least this many of its latest history lines (and at most
/// twice as many): a run of thousands of conflict reviews would otherwise
/// grow by a few lines per event for as long as it lasts. The run record
/// shows fewer; every event behind them is in the journal.
pub const RUN_LOG_KEEP: usize = 1000;

impl Run {
    /// Add a line to the run's history.
    pub fn note(&mut self, at: Millis, line: String) {
        if self.log.len() >= 2 * RUN_LOG_KEEP {
            // Dropped in chunks, so a line costs O(1) amortised.
            let n = self.log.len() - RUN_LOG_KEEP;
            self.log.drain(..n);
            self.log_dropped += n as u64;
        }
        self.log.push((at, line));
    }

    pub fn is_active(&self) -> bool {
        self.state == RunState::Running
    }

    pub fn current_phase(&self) -> Option<u8> {
        if self.is_active() {
            self.phases.get(self.current).copied()
        } else {
            None
        }
    }
}

/// A request that was refused before it became a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRequest {
    pub id: String,
    pub reason: String,
    pub at: Millis,
}
