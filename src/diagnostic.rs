//! A problem found in one of the team's files, reported as `path:line: message`.
//!
//! Every refusal in gtmd (a bad playbook, agent file, status file, gate file)
//! ends up as one of these, so that `gtmd check`, the log, `gtmd status` and the
//! run record all say the same thing in the same shape, the shape editors and
//! terminals already know how to jump to.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file, as the user would name it (relative to the workspace for bus files).
    pub path: String,
    /// 1-based line, when it is known.
    pub line: Option<usize>,
    /// What is wrong and what would be accepted instead.
    pub message: String,
}

impl Diagnostic {
    pub fn new(path: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path, line, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for Diagnostic {}

/// 1-based line number of a byte offset in `text`.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// An error and its causes on one line, `outer: inner: innermost`, as
/// anyhow's `{:#}` prints them: for typed errors that end up as text in a
/// log line or the journal, where `Display` alone would drop the cause.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Text on one line, runs of whitespace (newlines included) made one space:
/// for log lines, table cells and list items built from what files say.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
