//! What a protocol file says: its bytes (already read within the size
//! limit) checked for UTF-8 and parsed by kind, or refused with a
//! [`Diagnostic`] naming the file and what would be accepted.

use super::*;

/// Parse a protocol file's bytes into what the engine needs.
pub fn parse(rel: &str, kind: &FileKind, bytes: &[u8]) -> FileContent {
    // An empty protocol file is one being written (truncate, then write):
    // it says nothing yet, so it is neither acted on nor refused.
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return FileContent::Plain;
    }
    let text = match text_of(rel, bytes) {
        Ok(t) => t,
        Err(d) => return FileContent::Rejected { diagnostic: d },
    };
    let rejected = |diagnostic| FileContent::Rejected { diagnostic };
    match kind {
        FileKind::Status { .. } => match protocol::parse_status(rel, text) {
            Ok(report) => FileContent::Status { report },
            Err(d) => rejected(d),
        },
        FileKind::UnknownStatus { name } => rejected(Diagnostic::new(
            rel,
            None,
            format!(
                "\"{name}\" is not an agent; status files are status/<agent>.md for one of {} (aliases: demand-gen, brand, pipeline, cs, growth)",
                crate::agents::AGENTS.join(", ")
            ),
        )),
        FileKind::Conflict => match protocol::escalation::parse_conflict(rel, text) {
            Ok(conflict) => FileContent::Conflict { conflict },
            Err(d) => rejected(d),
        },
        FileKind::Decision => match protocol::escalation::parse_decision(rel, text) {
            Ok(decision) => FileContent::Decision { decision },
            Err(d) => rejected(d),
        },
        FileKind::Gate { .. } => FileContent::Gate {
            boxes: protocol::checkboxes(text),
        },
        FileKind::Request => match parse_request(rel, text) {
            Ok(content) => content,
            Err(d) => rejected(d),
        },
        _ => FileContent::Plain,
    }
}

/// Protocol files are UTF-8 text without NUL bytes.
pub(super) fn text_of<'a>(rel: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = crate::diagnostic::line_of_offset(
            &String::from_utf8_lossy(&bytes[..e.valid_up_to()]),
            e.valid_up_to(),
        );
        Diagnostic::new(
            rel,
            Some(line),
            format!(
                "is not UTF-8 text (invalid byte at offset {}); protocol files must be UTF-8 markdown or YAML",
                e.valid_up_to()
            ),
        )
    })?;
    if let Some(pos) = text.find('\0') {
        return Err(Diagnostic::new(
            rel,
            Some(crate::diagnostic::line_of_offset(text, pos)),
            "contains a NUL byte; protocol files must be plain UTF-8 text",
        ));
    }
    Ok(text)
}

/// A run request, or (with a `cancel:` key) a cancel request.
pub(super) fn parse_request(rel: &str, text: &str) -> Result<FileContent, Diagnostic> {
    let is_cancel =
        serde_yaml::from_str::<serde_yaml::Value>(text).is_ok_and(|v| v.get("cancel").is_some());
    if is_cancel {
        return serde_yaml::from_str::<CancelRequest>(text)
            .map(|request| FileContent::Cancel { request })
            .map_err(|e| {
                Diagnostic::new(
                    rel,
                    e.location().map(|l| l.line()),
                    format!("is not a cancel request gtmd understands ({e}); cancel requests are written by `gtmd cancel`"),
                )
            });
    }
    serde_yaml::from_str::<RunRequest>(text).map(|request| FileContent::Request { request }).map_err(|e| {
        Diagnostic::new(
            rel,
            e.location().map(|l| l.line()),
            format!("is not a run request gtmd understands ({e}); requests are written by `gtmd team run` and `gtmd agent run`"),
        )
    })
}

pub(super) fn kind_name(kind: &FileKind) -> &'static str {
    match kind {
        FileKind::Status { .. } | FileKind::UnknownStatus { .. } => "status",
        FileKind::Conflict => "conflict",
        FileKind::Decision => "decision",
        FileKind::Gate { .. } => "gate",
        FileKind::Request => "request",
        _ => "protocol",
    }
}

pub(super) fn is_protocol(kind: &FileKind) -> bool {
    matches!(
        kind,
        FileKind::Status { .. }
            | FileKind::UnknownStatus { .. }
            | FileKind::Conflict
            | FileKind::Decision
            | FileKind::Gate { .. }
            | FileKind::Request
    )
}
