//! The file protocol: which bus file is which, and what each one says.
//!
//! Everything here is pure text in, typed value or [`Diagnostic`] out: the
//! daemon reads the bytes, this module decides what they mean. Markdown is read
//! with pulldown-cmark (front matter, fenced yaml blocks, task-list checkboxes,
//! tables, headings) and YAML with serde_yaml, always through the helpers in
//! [`markdown`] so every file is read the same way.

pub mod classify;
pub mod config;
pub mod markdown;
pub mod status;

pub use classify::{classify, is_ignored, FileKind};
pub use config::{parse_config, BusinessConfig};
pub use markdown::{checkboxes, extract_yaml, tables, Checkbox, Table, YamlBlock};
pub use status::{parse_status, StatusReport, TaskStatus};

/// Protocol files larger than this are refused without being parsed.
pub const DEFAULT_MAX_PROTOCOL_FILE: u64 = 1024 * 1024;

/// Prefix of the cookie files `gtmd sync` drops at the workspace root: the
/// daemon removes one once it has read every event before it.
pub const SYNC_PREFIX: &str = ".gtmd-sync-";
/// Prefix of the cookie files the daemon writes for its own ordering (a
/// task's exit is handled after every event before it).
pub const COOKIE_PREFIX: &str = ".gtmd-cookie-";
pub mod escalation;
