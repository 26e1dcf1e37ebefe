//! The escalation protocol's state: each conflict raised and each decision
//! written, kept so a conflict can be closed once its decision is applied.

use serde::{Deserialize, Serialize};

use super::{Millis, TaskId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictState {
    pub path: String,
    pub title: String,
    pub raised_by: Option<String>,
    pub agents: Vec<String>,
    pub severity: Option<String>,
    pub opened_at: Millis,
    /// Content versions seen (each got one coordinator review).
    pub versions: u32,
    /// Decisions that named this conflict, in order.
    pub decisions: Vec<String>,
    pub closed_at: Option<Millis>,
    /// The decision that closed it, or why it closed otherwise
    /// ([`WITHDRAWN`]).
    pub closed_by: Option<String>,
    /// Closed because its file is gone, not by a decision: it opens again
    /// when the file comes back.
    #[serde(default)]
    pub withdrawn: bool,
}

/// `closed_by` of a conflict whose file was removed or renamed away.
pub const WITHDRAWN: &str = "withdrawn: the file was removed";

impl ConflictState {
    /// A conflict first heard of at `at` (by its file, or by a decision naming it).
    pub fn new(path: &str, at: Millis) -> ConflictState {
        ConflictState {
            path: path.to_string(),
            title: String::new(),
            raised_by: None,
            agents: Vec::new(),
            severity: None,
            opened_at: at,
            versions: 0,
            decisions: Vec::new(),
            closed_at: None,
            closed_by: None,
            withdrawn: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionState {
    pub path: String,
    pub title: String,
    pub at: Millis,
    /// The conflict path it resolves, normalised, when it names one.
    pub resolves: Option<String>,
    pub affected: Vec<String>,
    /// What could not be read; the coordinator was told.
    pub problems: Vec<String>,
    /// The apply tasks of its latest version.
    pub tasks: Vec<TaskId>,
}
