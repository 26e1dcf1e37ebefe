//! gtmd: a daemon that turns a workspace directory into the message bus of a
//! go-to-market team of AI agents and people.
//!
//! Data flows one way: files → events → decisions → actions → files.
//! [`watch`] reports file changes, [`protocol`] reads bus files, [`engine`]
//! decides (pure, no I/O), [`journal`] makes every event durable before it is
//! acted on, [`runner`] gives tasks to agents, and [`daemon`] wires the stages.

pub mod agents;
pub mod apply;
pub mod background;
pub mod bounds;
pub mod check;
pub mod cli;
pub mod commit_msg;
pub mod config;
pub mod daemon;
// Being rewritten on another branch (issue 12); its two `map_or(true, ..)`
// are left to that rewrite rather than edited on both sides. Remove this
// allow when it lands.
#[allow(clippy::unnecessary_map_or)]
pub mod decision_rules;
pub mod diagnostic;
pub mod engine;
pub mod fsutil;
pub mod gate_checks;
pub mod git;
pub mod init;
pub mod input;
pub mod journal;
pub mod os;
pub mod output;
pub mod playbook;
pub mod protocol;
pub mod record;
pub mod replay;
pub mod runner;
pub mod service;
pub mod status;
pub mod watch;
