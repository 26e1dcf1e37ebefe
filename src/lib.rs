//! gtmd: a daemon that turns a workspace directory into the message bus of a
//! go-to-market team of AI agents and people.
//!
//! Data flows one way: files → events → decisions → actions → files. The
//! modules are layers, and a module uses only those below it:
//!
//! ```text
//! cli                      the command line: one function per command
//! daemon   client  web     the long-running loop | talking to it from outside |
//!                          the live web view (`run --http`), fed by the loop
//! status   explain check   views and tools (replay the journal, read files);
//! init     background      forking before any thread (`run --daemon`)
//! apply    replay  feed    journal → engine → effects; the journal back to an
//!                          engine; the state as clients follow it
//! journal  runner  ingest  durable events | tasks to agents | a path to an event
//! service                  what systemd is told (ready, status, watchdog)
//! watch    record  git     file events | run records | commits
//! config   summary         settings validated once | a run in one line
//! engine                   the rules of the guide: pure, no I/O, no clock
//! protocol playbook agents gate_checks decision_rules commit_msg prices
//!                          reading bus files, the team as data, the checks,
//!                          what tokens cost
//! input  fsutil  os  output  bounds  diagnostic  test_hooks
//!                          plumbing: bounded reads, atomic writes, the few
//!                          unsafe calls, quiet pipes, error text
//! ```
//!
//! Where each rule of the guide lives:
//!
//! - **Phases, steps and gates** (execution modes, dependencies, outputs
//!   present, a gate's checklist and automatic checks):
//!   `engine::{requests, phases, gates, gate_file}`, the checks themselves in
//!   [`gate_checks`], the playbook's phases and steps in [`playbook`].
//! - **Statuses** (a status answers its task; complete, blocked, failed,
//!   retries and escalation): [`protocol::status`] reads the file,
//!   `engine::{status, completion}` act on it.
//! - **Conflicts and decisions** (a review per version, apply tasks, closing
//!   and withdrawal): [`protocol::escalation`], `engine::escalation`.
//! - **Hand-offs** (the communication table, the chain limit):
//!   `engine::routes`, the routes in [`playbook`].
//! - **Iterate vs. restart** (phase 4's decision rules): [`decision_rules`].
//! - **The commit convention** (`[agent] action: description`, `--git`):
//!   [`commit_msg`], [`git`].
//! - **Exactly once**: a version is keyed by its content hash
//!   (`engine::files`, [`ingest`]); every event is journaled before it is
//!   acted on ([`apply`], [`journal`]); a restart replays it ([`replay`]) and
//!   catches up with the workspace (`daemon`).

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
pub mod explain;
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
pub mod prices;
pub mod protocol;
pub mod record;
pub mod replay;
pub mod runner;
pub mod service;
pub mod status;
pub mod summary;
pub mod test_hooks;
pub mod watch;
pub mod web;
