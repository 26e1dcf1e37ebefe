//! Text from the workspace on its way to a page: which paths and task ids
//! a page may ask for, what of a file or a task log it shows (bounded), and
//! the paths and task ids inside a line of text, to link them.
//!
//! Nothing here escapes HTML: the templates do, for every value. This only
//! decides what may be read at all: a path is a bus path (relative, no
//! `..`, no dot-file, inside the workspace once symlinks are resolved, not
//! gtmd's state directory), as the watcher would take it.

use crate::engine::Millis;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The most of a file or a task log a page shows.
pub const SHOWN: u64 = 64 * 1024;

/// `rel` as a workspace-relative bus path, or `None` when it cannot be one.
pub fn bus_path(rel: &str) -> Option<String> {
    let rel = rel.strip_prefix("workspace/").unwrap_or(rel);
    let ok = !rel.is_empty()
        && rel.len() <= 1024
        && !rel.starts_with('/')
        && !rel.chars().any(|c| c.is_control() || c == '\\')
        && rel.split('/').all(|c| !c.is_empty() && !c.starts_with('.'));
    ok.then(|| rel.to_string())
}

/// `t0012-apply-decision`, as the engine names tasks.
pub fn is_task_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('t') else {
        return false;
    };
    let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    let Some(label) = rest[digits..].strip_prefix('-') else {
        return false;
    };
    digits >= 4
        && s.len() <= 200
        && !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A file as it is now, for its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileNow {
    /// Its text (the first [`SHOWN`] bytes) and its whole size.
    Text {
        text: String,
        size: u64,
    },
    Missing,
    /// Not shown, and why.
    Unreadable(String),
}

/// Read a bus file for its page: inside the workspace once symlinks are
/// resolved, never gtmd's state directory, a regular file, text.
pub fn read_bus_file(workspace: &Path, state_dir: &Path, rel: &str) -> FileNow {
    let (Ok(root), Some(rel)) = (workspace.canonicalize(), bus_path(rel)) else {
        return FileNow::Unreadable("not a path in the workspace".into());
    };
    let path = match root.join(&rel).canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileNow::Missing,
        Err(e) => return FileNow::Unreadable(format!("cannot be read: {e}")),
    };
    let state = state_dir.canonicalize().ok();
    if !path.starts_with(&root) || state.is_some_and(|s| path.starts_with(s)) {
        return FileNow::Unreadable(
            "it leads outside the bus (a symlink out of the workspace, or gtmd's state directory)"
                .into(),
        );
    }
    let (file, meta) = match crate::input::open_regular(&path) {
        Ok(f) => f,
        Err(e) => return FileNow::Unreadable(format!("it {e}")),
    };
    let mut bytes = Vec::new();
    if let Err(e) = file.take(SHOWN).read_to_end(&mut bytes) {
        return FileNow::Unreadable(format!("cannot be read: {e}"));
    }
    match String::from_utf8(bytes) {
        Ok(text) => FileNow::Text {
            text,
            size: meta.len(),
        },
        // Cut inside a character at the limit: show up to it.
        Err(e) if meta.len() > SHOWN && e.utf8_error().error_len().is_none() => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            FileNow::Text {
                text: String::from_utf8(bytes).unwrap_or_default(),
                size: meta.len(),
            }
        }
        Err(_) => FileNow::Unreadable("it is not UTF-8 text".into()),
    }
}

/// The end of a task's log: its last [`SHOWN`] bytes from a line start,
/// and the log's whole size. `None` when there is no log.
pub fn log_tail(path: &Path) -> Option<(String, u64)> {
    let (mut file, meta) = crate::input::open_regular(path).ok()?;
    let size = meta.len();
    let from = size.saturating_sub(SHOWN);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.take(SHOWN).read_to_end(&mut bytes).ok()?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if from > 0 {
        if let Some(nl) = text.find('\n') {
            text.drain(..=nl);
        }
    }
    Some((text, size))
}

/// A piece of a line: text, or something a page links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg<'a> {
    Text(&'a str),
    /// A bus path (its page is `/file/PATH`).
    Path(&'a str),
    /// A task id (`/task/ID`).
    Task(&'a str),
}

/// Split `line` into text and the paths and task ids in it.
pub fn segments(line: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    let mut text_from = 0;
    let mut i = 0;
    for word in line.split(' ') {
        let start = i;
        i += word.len() + 1;
        let core = word.trim_start_matches(['(', '[', '{', '<', '"', '\'', '`']);
        let core = core.trim_end_matches([')', ']', '}', '>', '"', '\'', '`', ',', ';', ':', '.']);
        if core.is_empty() {
            continue;
        }
        let seg = if is_task_id(core) {
            Seg::Task(core)
        } else if looks_like_a_bus_path(core) {
            Seg::Path(core)
        } else {
            continue;
        };
        let at = start + word.find(core).unwrap_or(0);
        if at > text_from {
            out.push(Seg::Text(&line[text_from..at]));
        }
        out.push(seg);
        text_from = at + core.len();
    }
    if text_from < line.len() {
        out.push(Seg::Text(&line[text_from..]));
    }
    out
}

fn looks_like_a_bus_path(s: &str) -> bool {
    const EXT: [&str; 6] = [".md", ".yaml", ".yml", ".csv", ".json", ".txt"];
    s.contains('/')
        && !s.contains("://")
        && bus_path(s).is_some()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && (EXT.iter().any(|e| s.ends_with(e)) || s.ends_with('/'))
}

/// `2026-12-01 10:02:03 UTC`.
pub fn clock(at: Millis) -> String {
    let t = crate::record::time(at);
    // RFC 3339 with milliseconds: 2026-12-01T10:02:03.456Z
    let day = t.get(..10).unwrap_or(&t);
    let time = t.get(11..19).unwrap_or("");
    format!("{day} {time} UTC")
}

/// How long ago, or how long, in gtmd's words (`3.2 s`, `4.0 min`).
pub fn span(ms: Millis) -> String {
    crate::record::duration(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_paths_stay_in_the_workspace() {
        assert_eq!(
            bus_path("conflicts/x.md").as_deref(),
            Some("conflicts/x.md")
        );
        assert_eq!(
            bus_path("workspace/status/a.md").as_deref(),
            Some("status/a.md")
        );
        for bad in [
            "",
            "/etc/passwd",
            "../secret",
            "conflicts/../../x",
            "a//b",
            ".gtmd/journal.jsonl",
            "conflicts/.x.swp",
            "a\\b",
            "a\nb",
        ] {
            assert_eq!(bus_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn files_outside_the_workspace_or_in_the_state_dir_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        let state = ws.join("state");
        std::fs::create_dir_all(ws.join("conflicts")).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(dir.path().join("secret.md"), "secret").unwrap();
        std::fs::write(state.join("journal.jsonl"), "journal").unwrap();
        std::fs::write(ws.join("conflicts/a.md"), "# A").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.md"), ws.join("conflicts/out.md"))
            .unwrap();
        assert_eq!(
            read_bus_file(&ws, &state, "conflicts/a.md"),
            FileNow::Text {
                text: "# A".into(),
                size: 3
            }
        );
        assert_eq!(
            read_bus_file(&ws, &state, "conflicts/none.md"),
            FileNow::Missing
        );
        for bad in ["conflicts/out.md", "state/journal.jsonl", "../secret.md"] {
            assert!(
                matches!(read_bus_file(&ws, &state, bad), FileNow::Unreadable(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn paths_and_task_ids_in_a_line_are_found() {
        let segs = segments("task t0012-apply-decision for demand-generation (decision: strategy/decisions/x.md): apply");
        assert!(
            segs.contains(&Seg::Task("t0012-apply-decision")),
            "{segs:?}"
        );
        assert!(
            segs.contains(&Seg::Path("strategy/decisions/x.md")),
            "{segs:?}"
        );
        let back: String = segs
            .iter()
            .map(|s| match s {
                Seg::Text(t) | Seg::Path(t) | Seg::Task(t) => *t,
            })
            .collect();
        assert_eq!(back, "task t0012-apply-decision for demand-generation (decision: strategy/decisions/x.md): apply");
        assert_eq!(
            segments("http://x.y/z.md"),
            vec![Seg::Text("http://x.y/z.md")]
        );
        assert!(!is_task_id("t12-x") && !is_task_id("t0012-X") && is_task_id("t10000-gate-1"));
    }

    #[test]
    fn a_log_tail_starts_at_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.log");
        let line = "x".repeat(99) + "\n";
        std::fs::write(&f, line.repeat(2000)).unwrap();
        let (tail, size) = log_tail(&f).unwrap();
        assert_eq!(size, 200_000);
        assert!(tail.len() as u64 <= SHOWN && tail.starts_with('x') && tail.ends_with('\n'));
        assert_eq!(tail.len() % 100, 0);
        assert!(log_tail(&dir.path().join("none.log")).is_none());
    }
}
