//! Which bus file is which, from its workspace-relative path alone.
//!
//! The watcher drops what [`is_ignored`] says (editor and tool temporary files,
//! dot-files, gtmd's own state directory) before anything else looks at it;
//! everything else gets a [`FileKind`] that tells the daemon which parser and
//! which rule apply. Hand-off routes (`demand-gen/lead-scoring.md`, ...) are
//! playbook data, not protocol: they classify as [`FileKind::Other`].

use crate::agents::canonical_agent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// `status/<agent>.md` (or `.yaml`/`.yml`) for a known agent or alias;
    /// `agent` is canonical.
    Status { agent: String },
    /// `status/<x>.md` where `x` is no known agent, so it can be refused by name.
    UnknownStatus { name: String },
    /// `conflicts/**/*.md`
    Conflict,
    /// `strategy/decisions/**/*.md`
    Decision,
    /// `strategy/gates/phase-<N>-<name>.md`
    Gate { phase: u8 },
    /// `requests/*.yaml|*.yml|*.md`: team-run requests dropped by the CLI.
    Request,
    /// `learnings/**`
    Learning,
    /// `inbox/**` (written by the daemon)
    Inbox,
    /// `runs/**` (written by the daemon)
    RunRecord,
    /// Anything else (agent outputs, hand-off files).
    Other,
}

/// The extension of a file name, lowercase, and the stem before it.
fn split_ext(name: &str) -> (&str, String) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], name[i + 1..].to_ascii_lowercase()),
        _ => (name, String::new()),
    }
}

/// What the file at `rel` (workspace-relative, `/` separators) is.
pub fn classify(rel: &str) -> FileKind {
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let Some((&name, dirs)) = parts.split_last() else {
        return FileKind::Other;
    };
    let (stem, ext) = split_ext(name);
    let is_md = ext == "md" || ext == "markdown";
    match dirs {
        ["status"] if is_md || ext == "yaml" || ext == "yml" => match canonical_agent(stem) {
            Some(agent) => FileKind::Status {
                agent: agent.to_string(),
            },
            None => FileKind::UnknownStatus {
                name: stem.to_string(),
            },
        },
        ["conflicts", ..] if is_md => FileKind::Conflict,
        ["strategy", "decisions", ..] if is_md => FileKind::Decision,
        ["strategy", "gates"] if is_md => match gate_phase(stem) {
            Some(phase) => FileKind::Gate { phase },
            None => FileKind::Other,
        },
        ["requests"] if is_md || ext == "yaml" || ext == "yml" => FileKind::Request,
        ["learnings", ..] => FileKind::Learning,
        ["inbox", ..] => FileKind::Inbox,
        ["runs", ..] => FileKind::RunRecord,
        _ => FileKind::Other,
    }
}

/// `phase-2-pipeline-building` → 2 (also `phase-2`).
fn gate_phase(stem: &str) -> Option<u8> {
    let rest = stem.to_ascii_lowercase();
    let rest = rest.strip_prefix("phase-")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let after = &rest[digits.len()..];
    if digits.is_empty() || !(after.is_empty() || after.starts_with('-')) {
        return None;
    }
    digits.parse().ok()
}

/// Name suffixes of editor and download temporaries.
const TEMP_SUFFIXES: &[&str] = &[
    "~",
    ".swp",
    ".swx",
    ".swo",
    ".tmp",
    "___jb_tmp___",
    "___jb_old___",
    ".part",
    ".crdownload",
    ".kate-swp",
];

/// Whether `rel` is an editor or tool temporary file, or a dot-file, on any
/// path component: such files never trigger anything.
///
/// Covers vim (`4913` probe, `.x.swp`, `x~`), emacs (`#x#`, `.#x`), JetBrains
/// (`x___jb_tmp___`, `x___jb_old___`), gedit (`.goutputstream-*`), kate,
/// partial downloads, and every dot-file or dot-directory (`.gtmd/`, `.git/`).
pub fn is_ignored(rel: &str) -> bool {
    rel.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .any(ignored_component)
}

fn ignored_component(c: &str) -> bool {
    if c.starts_with('.') || c == "4913" {
        return true;
    }
    if c.len() >= 2 && c.starts_with('#') && c.ends_with('#') {
        return true;
    }
    let lower = c.to_ascii_lowercase();
    TEMP_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(agent: &str) -> FileKind {
        FileKind::Status {
            agent: agent.into(),
        }
    }

    #[test]
    fn status_files_canonicalise_aliases() {
        assert_eq!(classify("status/coordinator.md"), status("coordinator"));
        assert_eq!(
            classify("status/demand-gen.md"),
            status("demand-generation")
        );
        assert_eq!(classify("status/cs.yaml"), status("customer-success"));
        assert_eq!(classify("status/growth.yml"), status("growth-analyst"));
        assert_eq!(classify("status/Brand.MD"), status("brand-messaging"));
        assert_eq!(
            classify("status/marketing.md"),
            FileKind::UnknownStatus {
                name: "marketing".into()
            }
        );
        assert_eq!(classify("status/coordinator.txt"), FileKind::Other);
        assert_eq!(classify("status/old/coordinator.md"), FileKind::Other);
    }

    #[test]
    fn every_kind() {
        assert_eq!(classify("conflicts/budget.md"), FileKind::Conflict);
        assert_eq!(classify("conflicts/2026/q1/x.md"), FileKind::Conflict);
        assert_eq!(classify("conflicts/notes.txt"), FileKind::Other);
        assert_eq!(classify("strategy/decisions/d1.md"), FileKind::Decision);
        assert_eq!(classify("strategy/decisions/a/b.md"), FileKind::Decision);
        assert_eq!(
            classify("strategy/gates/phase-1-strategy.md"),
            FileKind::Gate { phase: 1 }
        );
        assert_eq!(
            classify("strategy/gates/phase-2-pipeline-building.md"),
            FileKind::Gate { phase: 2 }
        );
        assert_eq!(
            classify("strategy/gates/phase-3.md"),
            FileKind::Gate { phase: 3 }
        );
        assert_eq!(classify("strategy/gates/phasex.md"), FileKind::Other);
        assert_eq!(classify("strategy/gates/phase-12a.md"), FileKind::Other);
        assert_eq!(classify("requests/r1.yaml"), FileKind::Request);
        assert_eq!(classify("requests/r1.yml"), FileKind::Request);
        assert_eq!(classify("requests/r1.md"), FileKind::Request);
        assert_eq!(classify("requests/sub/r1.md"), FileKind::Other);
        assert_eq!(classify("learnings/q1.md"), FileKind::Learning);
        assert_eq!(classify("learnings/a/b.txt"), FileKind::Learning);
        assert_eq!(classify("inbox/cs/t-1.md"), FileKind::Inbox);
        assert_eq!(classify("runs/r-1.md"), FileKind::RunRecord);
        assert_eq!(classify("demand-gen/lead-scoring.md"), FileKind::Other);
        assert_eq!(classify("strategy/gtm-strategy.md"), FileKind::Other);
        assert_eq!(classify(""), FileKind::Other);
        assert_eq!(classify("status"), FileKind::Other);
    }

    #[test]
    fn editor_and_tool_temporaries_are_ignored() {
        for p in [
            "status/4913",
            "status/.coordinator.md.swp",
            "status/coordinator.md.swp",
            "status/coordinator.md.swx",
            "status/coordinator.md~",
            "conflicts/#budget.md#",
            "conflicts/.#budget.md",
            "status/cs.md___jb_tmp___",
            "status/cs.md___jb_old___",
            "strategy/.goutputstream-ABC123",
            ".gtmd/journal.log",
            ".gtmd",
            "a/.git/HEAD",
            "learnings/notes.md.part",
            "learnings/file.crdownload",
            "learnings/file.md.kate-swp",
            "learnings/file.tmp",
            "learnings/.hidden",
        ] {
            assert!(is_ignored(p), "{p} should be ignored");
        }
    }

    #[test]
    fn real_files_are_not_ignored() {
        for p in [
            "status/coordinator.md",
            "conflicts/budget.md",
            "strategy/gates/phase-1-strategy.md",
            "learnings/4913-notes.md",
            "status/49130",
            "a#b.md",
            "#",
            "",
        ] {
            assert!(!is_ignored(p), "{p} should not be ignored");
        }
    }
}
