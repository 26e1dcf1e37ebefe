//! A file's story (what `gtmd explain` says, since this gtmd started, and
//! the file as it is now) and a task (its state, and the end of its log).

use super::*;
use crate::protocol::FileKind;
use crate::web::snapshot::Snapshot;
use crate::web::stories::Told;
use crate::web::text::FileNow;

/// What kind of bus file a path is, in words.
fn kind(rel: &str) -> String {
    match crate::protocol::classify(rel) {
        FileKind::Status { agent } => format!("the status file of {agent}"),
        FileKind::UnknownStatus { name } => format!("a status file of {name}, which is no agent"),
        FileKind::Conflict => "a conflict".into(),
        FileKind::Decision => "a coordinator's decision".into(),
        FileKind::Gate { phase } => format!("the quality gate of phase {phase}"),
        FileKind::Request => "a request to the daemon".into(),
        FileKind::Learning => "a learnings file (context for later tasks)".into(),
        FileKind::Inbox => "a task in a person's inbox (written by gtmd)".into(),
        FileKind::RunRecord => "a run record (written by gtmd)".into(),
        FileKind::Other => "a file on the bus (an output, a hand-off, …)".into(),
    }
}

pub fn file(s: &Snapshot, ctx: &PageCtx, rel: &str, told: Told, now: FileNow) -> Markup {
    let body = html! {
        h1 { code { (rel) } }
        p.muted { (kind(rel)) }
        section.story {
            h2 { "What gtmd did with it" }
            @if told.dropped > 0 { p.muted { (told.dropped) " earlier entries not shown." } }
            @if told.entries.is_empty() {
                p.muted { "Nothing since this gtmd started." }
            }
            ol.entries {
                @for e in &told.entries {
                    li.entry {
                        div.head { (linked(&e.head)) }
                        @if !e.then.is_empty() {
                            ul.then { @for t in &e.then { li { "→ " (linked(t)) } } }
                        }
                    }
                }
            }
            p.muted {
                "Since gtmd started"
                @if let Some(t) = told.since { " (" (at(t)) ")" }
                "; " code { "gtmd explain " (rel) } " tells every version in the journal."
            }
        }
        section.now {
            h2 { "The file now" }
            @match &now {
                FileNow::Text { text, size } => {
                    @if *size > text.len() as u64 {
                        p.muted { "The first " (text.len()) " of " (size) " bytes." }
                    }
                    pre.file { (text) }
                },
                FileNow::Missing => p.muted { "It is not there now (removed, renamed, or never written)." },
                FileNow::Unreadable(why) => p.problem { "Not shown: " (why) "." },
            }
        }
    };
    frame(rel, Some(ctx), s.version, body)
}

pub fn task(s: &Snapshot, ctx: &PageCtx, id: &str, log: Option<(String, u64)>) -> Markup {
    let t = s.tasks.get(id);
    let now = ctx.now;
    let body = html! {
        h1 { "Task " code { (id) } }
        @match t {
            None => p.muted {
                "Not among the tasks this view keeps (the open ones, those of the runs shown and the latest); "
                code { "gtmd status --json" } " lists every task."
            },
            Some(t) => {
                dl.task {
                    dt { "agent" } dd { (t.agent) }
                    dt { "state" } dd { (badge(t.state)) " " (t.phrase) }
                    @if let Some(r) = &t.run { dt { "run" } dd { code { (r) } } }
                    dt { "trigger" } dd { (linked(&t.trigger)) }
                    dt { "attempt" } dd { (t.attempt) }
                    dt { "created" } dd { (at(t.created_at)) }
                    @if let Some(a) = t.started_at {
                        dt { "started" } dd {
                            (at(a))
                            @if t.busy() { " · for " (since(a, now)) }
                        }
                    }
                    @if let Some(e) = t.ended_at { dt { "ended" } dd { (at(e)) } }
                    @if let Some(c) = &t.cost { dt { "cost" } dd { (c) } }
                }
                h2 { "What it is asked" }
                pre.text { (linked(&t.text)) }
            },
        }
        section.log {
            h2 { "Its log" }
            @match &log {
                None => p.muted { "No log: a task in a person's inbox has none, a task that has not started has none yet, and an ended task's log may have been removed as old (systemd/gtmd.tmpfiles)." },
                Some((tail, size)) => {
                    @if *size > tail.len() as u64 {
                        p.muted { "The end of " (size) " bytes." }
                    }
                    pre.log { (tail) }
                },
            }
        }
        @if let Some(t) = t {
            @if t.open && !ctx.read_only {
                details.act {
                    summary { "Cancel this task…" }
                    form method="post" action="/act/cancel" {
                        (csrf(ctx))
                        input type="hidden" name="task" value=(t.id);
                        (who_field(ctx))
                        button.danger type="submit" { "Cancel " (t.id) }
                    }
                }
            }
        }
    };
    frame(id, Some(ctx), s.version, body)
}
