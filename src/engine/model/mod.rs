//! The engine's vocabulary: what can happen (events), what gtmd should do about
//! it (actions), and the state those are about (runs, steps, gates, tasks).
//!
//! Events and actions are serde types because the journal stores events and
//! replays them into a fresh engine on start: the engine's state is a pure
//! function of the journal.

mod action;
mod escalation;
mod event;
mod report;
mod run;
mod task;

pub use action::*;
pub use escalation::*;
pub use event::*;
pub use report::*;
pub use run::*;
pub use task::*;
