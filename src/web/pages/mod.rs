//! The pages, as maud templates: checked when gtmd is compiled, and every
//! value inserted into them escaped, so a title such as
//! `<img src=x onerror=alert(1)>` from a conflict file shows as those
//! characters. This file holds the frame every page shares and the small
//! pieces they repeat (links, times, the "who are you" field); the
//! overview, a file's story and a task are beside it.

mod detail;
mod overview;

pub use detail::{file, task};
pub use overview::{overview, Extra};

use super::access::PageCtx;
use super::text::{self, Seg};
use crate::engine::Millis;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The frame of every page: the live indicator, the sign-out button, the
/// snapshot's version (the page's script compares it with the server's).
fn frame(title: &str, ctx: Option<&PageCtx>, version: u64, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · gtmd" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/live.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "gtmd" }
                    span.where { (title) }
                    span.live id="live" title="following the daemon's changes" { "live" }
                    @if let Some(ctx) = ctx {
                        @if let Some(label) = &ctx.label {
                            span.who { "signed in as " (label) }
                        }
                        @if ctx.read_only {
                            span.badge.muted { "read-only" }
                        }
                        @if ctx.session {
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                button.link type="submit" { "sign out" }
                            }
                        }
                    }
                }
                main data-version=(version) { (body) }
                footer { "gtmd " (env!("CARGO_PKG_VERSION")) " · the bus stays plain files: every action here writes one, as an editor would" }
            }
        }
    }
}

/// A page that says what was wrong with the request.
pub fn not_found(what: &str, given: &str) -> Response {
    let body = html! {
        h1 { "Not here" }
        p { (what) ": " code { (given) } }
        p { a href="/" { "Back to the overview" } }
    };
    (StatusCode::NOT_FOUND, frame("not found", None, 0, body)).into_response()
}

/// The answer to an action that could not be done, with why.
pub fn refused(status: StatusCode, why: &str) -> Response {
    let body = html! {
        h1 { "Not done" }
        p.problem { (why) }
        p { a href="/" { "Back to the overview" } }
    };
    (status, frame("not done", None, 0, body)).into_response()
}

pub fn login(problem: Option<&str>) -> Markup {
    frame(
        "sign in",
        None,
        0,
        html! {
            section.card.narrow {
                h1 { "Sign in" }
                p { "This web view needs a token (from the file given to " code { "--http-token-file" } ")." }
                @if let Some(p) = problem { p.problem { (p) } }
                form method="post" action="/login" {
                    label { "Token " input type="password" name="token" autocomplete="current-password" required autofocus; }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// `/file/PATH`, each segment percent-encoded.
pub(crate) fn file_href(path: &str) -> String {
    let mut s = String::from("/file/");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~' | b'/') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn path_link(path: &str) -> Markup {
    html! { a.path href=(file_href(path)) { (path) } }
}

fn task_link(id: &str) -> Markup {
    html! { a.task href={ "/task/" (id) } { (id) } }
}

/// A line of text with the paths and task ids in it linked.
fn linked(line: &str) -> Markup {
    html! {
        @for seg in text::segments(line) {
            @match seg {
                Seg::Text(t) => (t),
                Seg::Path(p) => (path_link(p.strip_prefix("workspace/").unwrap_or(p))),
                Seg::Task(t) => (task_link(t)),
            }
        }
    }
}

/// A time, shown in UTC.
fn at(ms: Millis) -> Markup {
    html! { time datetime=(crate::record::time(ms)) { (text::clock(ms)) } }
}

/// How long since `since`; the page's script keeps it counting.
fn since(since: Millis, now: Millis) -> Markup {
    html! { span.age data-since=(since) { (text::span(now.saturating_sub(since))) } }
}

/// The field that says who acts, remembered by the page's script. A
/// token's label stands in when no name is given.
fn who_field(ctx: &PageCtx) -> Markup {
    html! {
        label.by {
            "Your name "
            input type="text" name="by" maxlength="80" autocomplete="name"
                placeholder=(ctx.label.as_deref().unwrap_or("who is acting"))
                required[ctx.label.is_none()];
        }
    }
}

fn csrf(ctx: &PageCtx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// A word as a badge: `state-WORD` gives it its colour.
fn badge(word: &str) -> Markup {
    let class = format!("badge state-{}", word.replace(' ', "-"));
    html! { span class=(class) { (word) } }
}

/// Text that must not be taken as markup even by mistake: maud escapes
/// it already; this marks the few places a raw entity is wanted.
fn nbsp() -> PreEscaped<&'static str> {
    PreEscaped("&nbsp;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_in_links_and_text() {
        let m =
            linked("conflict: conflicts/<img src=x onerror=alert(1)>.md and t0001-gtm-strategy");
        let s = m.into_string();
        assert!(!s.contains("<img"), "{s}");
        assert!(s.contains("&lt;img"), "{s}");
        assert!(
            s.contains(r#"<a class="task" href="/task/t0001-gtm-strategy">"#),
            "{s}"
        );
        assert_eq!(
            file_href("conflicts/a b#?.md"),
            "/file/conflicts/a%20b%23%3F.md"
        );
    }
}
