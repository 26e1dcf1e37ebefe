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
pub mod client;
pub mod commit_msg;
pub mod config;
pub mod daemon;
pub mod decision_rules;
pub mod diagnostic;
pub mod engine;
pub mod feed;
pub mod fsutil;
pub mod gate_checks;
pub mod git;
pub mod ingest;
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
pub mod summary;
pub mod test_hooks;
pub mod watch;
