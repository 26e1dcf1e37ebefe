//! `gtmd explain PATH`: each version of a file and what gtmd did with it.
//!
//! Told one event at a time ([`Story`]), so that the command, which replays
//! the journal, and the web view, which follows the daemon's events as they
//! are handled, say the same thing in the same words.

use crate::config::Settings;
use crate::diagnostic::one_line;
use crate::engine::{Action, Engine, Event, FileContent};
use crate::record::time;
use anyhow::Result;
use std::fmt::Write;

/// One moment of a file's story: what happened (`head`, with its time), and
/// what it led to (`then`, each shown after an arrow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub head: String,
    pub then: Vec<String>,
}

/// What an event is about to do, noted before the engine handles it.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    /// [`Engine::task_mark`]: the tasks it creates come after this.
    tasks: u64,
    /// A file version gtmd acted on before, now back (an editor's
    /// rename-and-write save, a file set back to an earlier content).
    restored: bool,
}

impl Before {
    pub fn of(engine: &Engine, event: &Event) -> Before {
        let restored = match event {
            Event::FileChanged { path, hash, .. } => {
                engine.acted_on(path, hash)
                    && engine.files().get(path).map(|f| &f.hash) != Some(hash)
            }
            _ => false,
        };
        Before {
            tasks: engine.task_mark(),
            restored,
        }
    }
}

/// The paths whose story `event` is part of: a file's version or removal,
/// and the files an agent's runtime refused it to write.
pub fn paths_of(event: &Event) -> Vec<&str> {
    match event {
        Event::FileChanged { path, .. } | Event::FileRemoved { path, .. } => vec![path.as_str()],
        Event::TaskExited {
            report: Some(report),
            ..
        } => {
            let mut paths: Vec<&str> = report
                .denials
                .iter()
                .filter_map(|d| d.path.as_deref())
                .collect();
            paths.dedup();
            paths
        }
        _ => Vec::new(),
    }
}

/// The story of one file as events come: its versions (content hashes, in
/// the order first seen) number the entries.
#[derive(Debug, Clone, Default)]
pub struct Story {
    versions: Vec<String>,
}

impl Story {
    /// How many versions of the file this story has seen.
    pub fn versions(&self) -> &[String] {
        &self.versions
    }

    /// What `event`, handled by `engine` with `actions` as the result, adds
    /// to the story of `rel` (`before` taken just before it was handled).
    pub fn entries(
        &mut self,
        engine: &Engine,
        event: &Event,
        actions: &[Action],
        before: &Before,
        rel: &str,
    ) -> Vec<Entry> {
        match event {
            // An agent's runtime refused it a write to this file.
            Event::TaskExited {
                task,
                report: Some(report),
                at,
                ..
            } => {
                let agent = engine
                    .task(task)
                    .map(|t| t.agent.clone())
                    .unwrap_or_default();
                report
                    .denials
                    .iter()
                    .filter(|d| d.path.as_deref() == Some(rel))
                    .map(|d| Entry {
                        head: format!(
                            "{}: {agent}'s task {task} tried to {} it: denied, it is not {agent}'s to write",
                            time(*at),
                            d.tool
                        ),
                        then: Vec::new(),
                    })
                    .collect()
            }
            Event::FileRemoved { path, at } if path == rel => vec![Entry {
                head: format!("{}: removed (or renamed away)", time(*at)),
                then: notices(actions).collect(),
            }],
            Event::FileChanged {
                path,
                hash,
                at,
                content,
                ..
            } if path == rel => {
                let short = &hash[..hash.len().min(12)];
                let label = match self.versions.iter().position(|h| h == hash) {
                    Some(n) => format!("version {} again", n + 1),
                    None => {
                        self.versions.push(hash.clone());
                        format!("version {}", self.versions.len())
                    }
                };
                let head = format!("{}: {label} ({short}): {}", time(*at), describe(content));
                let then = if before.restored {
                    // A withdrawn conflict's file coming back still opens it again.
                    std::iter::once(
                        "nothing new: gtmd already acted on this content of the file (an editor's rename-and-write save, or a file set back to an earlier content), so it is not a new version".to_string(),
                    )
                    .chain(notices(actions))
                    .collect()
                } else {
                    reaction(engine, before, actions, content)
                };
                vec![Entry { head, then }]
            }
            _ => Vec::new(),
        }
    }
}

/// What gtmd did with each version of a file, from the journal.
pub fn explain(settings: &Settings, path: &str) -> Result<String> {
    let rel = path
        .trim_start_matches("./")
        .trim_start_matches("workspace/")
        .to_string();
    let recovered = crate::journal::read(&settings.paths.state_dir)?;
    let compacted = recovered.snapshot.is_some();
    let events = recovered.events;
    // History before the last compaction lives only as state in the snapshot.
    let mut engine = crate::replay::replay_with(
        settings,
        crate::journal::Recovered {
            snapshot: recovered.snapshot,
            events: Vec::new(),
            journal: recovered.journal,
            generation: recovered.generation,
        },
    )
    .engine;
    let mut s = String::new();
    if compacted {
        let _ = writeln!(
            s,
            "(the journal was compacted; versions from before the last snapshot are not listed one by one)"
        );
    }
    let mut story = Story::default();
    for e in &events {
        let before = Before::of(&engine, e);
        let actions = engine.handle(e);
        if paths_of(e).contains(&rel.as_str()) {
            for entry in story.entries(&engine, e, &actions, &before, &rel) {
                write_entry(&mut s, &entry);
            }
        }
    }
    let ingest = crate::ingest::Ingest::new(
        &settings.paths.workspace,
        &settings.paths.state_dir,
        settings.max_file_size,
    );
    if ingest.ignored(&rel) {
        let _ = writeln!(s, "{rel} is ignored: {IGNORED}");
        return Ok(s);
    }
    if story.versions.is_empty() {
        let _ = writeln!(
            s,
            "{rel}: no version in the journal: {}",
            never_seen_because(&rel)
        );
        return Ok(s);
    }
    if let Some(entry) = engine.files().get(&rel) {
        if let Some(n) = story.versions.iter().position(|h| *h == entry.hash) {
            let _ = writeln!(
                s,
                "now: version {} is current; saving it again with the same content is not a new version and does nothing",
                n + 1
            );
        }
    }
    Ok(s)
}

/// Why an ignored file never triggers anything.
pub const IGNORED: &str = "editor and tool temporary files (vim 4913, *~, .*.swp, emacs #*# and .#*, JetBrains ___jb_tmp___/___jb_old___, gedit .goutputstream-*), dot-files and gtmd's state directory never trigger anything";

/// Why gtmd has no version of a file that is not ignored.
pub fn never_seen_because(rel: &str) -> &'static str {
    match crate::protocol::classify(rel) {
        crate::protocol::FileKind::Inbox | crate::protocol::FileKind::RunRecord => {
            "it is written by gtmd itself (inboxes and run records are not part of the protocol)"
        }
        _ => "gtmd has not seen it (not there while gtmd was running, or never written)",
    }
}

/// An entry as `gtmd explain` prints it.
pub fn write_entry(s: &mut String, entry: &Entry) {
    let _ = writeln!(s, "{}", entry.head);
    for line in &entry.then {
        let _ = writeln!(s, "  → {line}");
    }
}

/// What a new version led to: the tasks it created and the actions worth
/// saying, or why nothing happened.
fn reaction(
    engine: &Engine,
    before: &Before,
    actions: &[Action],
    content: &FileContent,
) -> Vec<String> {
    let mut then: Vec<String> = engine
        .tasks_since(before.tasks)
        .map(|t| {
            format!(
                "task {} for {} ({}): {}",
                t.id,
                t.agent,
                t.trigger,
                one_line(&t.text)
            )
        })
        .collect();
    for a in actions {
        let line = match a {
            Action::Refused { diagnostic } => format!("refused: {diagnostic}"),
            Action::EvaluateGate { run, phase } => {
                format!("re-checked the phase {phase} gate of run {run}")
            }
            Action::RunFinished { run, summary, .. } => format!("run {run} finished: {summary}"),
            Action::Notice { message, .. } => message.clone(),
            _ => continue,
        };
        then.push(one_line(&line));
    }
    if then.is_empty() {
        then.push(format!("nothing to do: {}", why_nothing(content)));
    }
    then
}

fn notices(actions: &[Action]) -> impl Iterator<Item = String> + '_ {
    actions.iter().filter_map(|a| match a {
        Action::Notice { message, .. } => Some(one_line(message)),
        _ => None,
    })
}

fn describe(content: &FileContent) -> String {
    match content {
        FileContent::Status { report } => format!(
            "status of {}: {}",
            report.agent,
            format!("{:?}", report.status).to_lowercase()
        ),
        FileContent::Conflict { conflict } => format!("conflict: {}", conflict.title),
        FileContent::Decision { decision } => format!(
            "decision on {}",
            decision
                .resolves
                .as_deref()
                .unwrap_or("(no conflict named)")
        ),
        FileContent::Gate { boxes } => format!(
            "gate file, {}/{} boxes ticked",
            boxes.iter().filter(|b| b.checked).count(),
            boxes.len()
        ),
        FileContent::Request { .. } => "run request".into(),
        FileContent::Cancel { request } => match &request.cancel {
            crate::engine::CancelTarget::Task { task } => format!("cancel request for task {task}"),
            crate::engine::CancelTarget::Run { run } => format!("cancel request for run {run}"),
        },
        FileContent::Rejected { diagnostic } => format!("refused: {diagnostic}"),
        FileContent::Plain => "a plain file".into(),
    }
}

fn why_nothing(content: &FileContent) -> &'static str {
    match content {
        FileContent::Plain => {
            "no rule reacts to this file (outputs only count as present for their steps)"
        }
        FileContent::Status { .. } => {
            "the status changed nothing (in progress, or its task had already ended)"
        }
        FileContent::Gate { .. } => "no open gate of an active run uses this file",
        _ => "no rule applies",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FileContent, RunKind, RunRequest};
    use crate::playbook::Playbook;

    fn changed(path: &str, hash: &str, at: u64) -> Event {
        Event::FileChanged {
            path: path.into(),
            hash: hash.into(),
            size: 1,
            mtime_ns: 0,
            at,
            content: FileContent::Conflict {
                conflict: crate::protocol::escalation::Conflict {
                    title: "Scoring".into(),
                    ..Default::default()
                },
            },
        }
    }

    /// Feed events one at a time as the daemon does, telling the story of `rel`.
    fn tell(engine: &mut Engine, story: &mut Story, events: &[Event], rel: &str) -> Vec<Entry> {
        let mut out = Vec::new();
        for e in events {
            let before = Before::of(engine, e);
            let actions = engine.handle(e);
            if paths_of(e).contains(&rel) {
                out.extend(story.entries(engine, e, &actions, &before, rel));
            }
        }
        out
    }

    #[test]
    fn a_conflict_s_versions_their_review_tasks_and_a_restored_version() {
        let mut e = Engine::new(Playbook::default_playbook(), Default::default());
        e.handle(&Event::RunRequested {
            request: RunRequest {
                id: "r".into(),
                kind: RunKind::Phases { phases: vec![1] },
                config: Default::default(),
                config_path: "CONFIG.md".into(),
                scenario: None,
                force: true,
                budget_secs: None,
                max_cost: None,
                max_tokens: None,
                hard_cap: false,
            },
            at: 1_764_000_000_000,
        });
        let mut story = Story::default();
        let rel = "conflicts/scoring.md";
        let entries = tell(
            &mut e,
            &mut story,
            &[
                changed(rel, "aaaa", 1_764_000_001_000),
                changed(rel, "bbbb", 1_764_000_002_000),
                changed(rel, "aaaa", 1_764_000_003_000),
                changed("conflicts/other.md", "cccc", 1_764_000_004_000),
            ],
            rel,
        );
        assert_eq!(entries.len(), 3, "{entries:#?}");
        assert!(entries[0]
            .head
            .ends_with("version 1 (aaaa): conflict: Scoring"));
        assert!(
            entries[0].then[0]
                .contains("-conflict-review for coordinator (conflict: conflicts/scoring.md)"),
            "{:?}",
            entries[0].then
        );
        assert!(entries[1].head.contains("version 2 (bbbb)"));
        assert!(entries[2].head.contains("version 1 again"));
        assert!(entries[2].then[0].starts_with("nothing new"));
        assert_eq!(story.versions().len(), 2);
    }
}
