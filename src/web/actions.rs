//! What a person can do from the web view, each a file written on the bus
//! exactly as an editor would (a temporary file, fsynced, renamed over the
//! target; [`crate::fsutil::write_atomic`]), so the engine reacts through
//! its ordinary pipeline and the journal says what happened:
//!
//! - tick a gate's checklist: the gate file rewritten with those boxes set,
//!   everything else in it kept;
//! - rule on an open conflict: `strategy/decisions/<name>.md` in the
//!   guide's format (`resolves:`, `affected:` in front matter);
//! - cancel a task or a run, start a run: request files, as `gtmd cancel`
//!   and `gtmd team run` write them ([`crate::client::hand_over`]).
//!
//! Each file says who acted and when. Every action is a POST with the
//! session's CSRF token, refused when the view is read-only.

use super::access::Who;
use super::pages::refused;
use super::{App, Snapshot};
use crate::engine::{CancelRequest, CancelTarget, RunKind, RunRequest};
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

type Fields = HashMap<String, String>;

/// The most a ruling may say, in characters.
const MAX_RULING: usize = 20_000;

/// Why an action was not done: the answer's status and the page's words.
pub(super) struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, why: impl Into<String>) -> Refusal {
        Refusal(status, why.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refused(self.0, &self.1)
    }
}

pub(super) fn refuse_csrf() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "the form's CSRF token is missing or wrong: reload the page and try again",
    )
}

/// Who acts, once the view allows actions and the CSRF token is right: the
/// name the person gave, else the token's label.
fn acting(app: &App, who: &Who, f: &Fields) -> Result<String, Refusal> {
    if app.0.read_only {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "this web view is read-only (--http-read-only)",
        ));
    }
    if !app
        .0
        .access
        .csrf_ok(who, f.get("csrf").map_or("", String::as_str))
    {
        return Err(refuse_csrf());
    }
    let name = f.get("by").map(|s| clean(s, 80)).unwrap_or_default();
    match (name.is_empty(), &who.label) {
        (false, Some(label)) if name != *label => Ok(format!("{name} (token {label})")),
        (false, _) => Ok(name),
        (true, Some(label)) => Ok(label.clone()),
        (true, None) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "say who you are: give your name in the form (gtmd writes it into the file)",
        )),
    }
}

/// One line, no control characters, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    let one: String = crate::diagnostic::one_line(s)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    crate::bounds::clip(&one, max).into_owned()
}

fn now_ms() -> crate::engine::Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Run file I/O off the event loop's thread; a failure is the answer.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, Refusal> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(why)) => Err(Refusal::new(StatusCode::CONFLICT, why)),
        Err(e) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

/// After an action, the story of the file it wrote: gtmd's reaction shows
/// there as it comes.
fn to_story(rel: &str) -> Response {
    Redirect::to(&super::pages::file_href(rel)).into_response()
}

/// Tick (and untick) a gate's boxes as the form says.
pub(super) async fn tick_gate(
    State(app): State<App>,
    who: Who,
    Form(f): Form<Fields>,
) -> Result<Response, Refusal> {
    let by = acting(&app, &who, &f)?;
    let s = app.snapshot();
    let phase: u8 = f.get("phase").and_then(|p| p.parse().ok()).unwrap_or(0);
    let run = f.get("run").cloned().unwrap_or_default();
    let Some(gate) = open_gate(&s, &run, phase) else {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            format!("run {run} has no open gate for phase {phase} (it passed, or the run ended)"),
        ));
    };
    let wanted: Vec<(String, bool)> = (0..gate.boxes.len())
        .filter_map(|i| {
            let item = f.get(&format!("item-{i}"))?;
            Some((item.clone(), f.contains_key(&format!("box-{i}"))))
        })
        .collect();
    let rel = gate.path.clone();
    let abs = app.0.workspace.join(&rel);
    let max = app.0.max_file_size;
    let note = format!(
        "Ticked in gtmd's web view by {by} on {}",
        super::text::clock(now_ms())
    );
    let done = blocking(move || {
        let bytes = crate::input::read_bounded(&abs, max).map_err(|e| format!("{rel} {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{rel} is not UTF-8 text"))?;
        let ticked = tick(&text, &wanted, &note).ok_or_else(|| {
            format!("{rel} holds none of the gate's checklist items; gtmd writes them back, reload and try again")
        })?;
        crate::fsutil::write_atomic(&abs, ticked.as_bytes()).map_err(|e| e.to_string())?;
        Ok(rel)
    })
    .await?;
    Ok(to_story(&done))
}

fn open_gate<'a>(s: &'a Snapshot, run: &str, phase: u8) -> Option<&'a super::snapshot::GateView> {
    s.runs
        .iter()
        .filter(|r| r.active && r.id == run)
        .flat_map(|r| &r.phases)
        .filter_map(|p| p.gate.as_ref())
        .find(|g| g.phase == phase && g.passed_at.is_none())
}

/// `text` with each box whose item is in `wanted` set as it says, and a
/// last line saying how many are ticked and `note` (who, when). `None`
/// when no box of the file is among them.
fn tick(text: &str, wanted: &[(String, bool)], note: &str) -> Option<String> {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let boxes = crate::protocol::checkboxes(text);
    let mut set: HashMap<usize, bool> = HashMap::new();
    for b in &boxes {
        if let Some((_, on)) = wanted.iter().find(|(item, _)| norm(item) == norm(&b.text)) {
            set.insert(b.line, *on);
        }
    }
    if set.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 100);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        match set.get(&(i + 1)) {
            Some(on) => out.push_str(&with_box(line, *on)),
            None => out.push_str(line),
        }
    }
    let ticked = boxes
        .iter()
        .filter(|b| set.get(&b.line).copied().unwrap_or(b.checked))
        .count();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "\n_{note}: {ticked} of {} boxes ticked._\n",
        boxes.len()
    ));
    Some(out)
}

/// The line with its task-list marker (`[ ]`, `[x]`, `[X]`) set.
fn with_box(line: &str, on: bool) -> String {
    let mark = if on { "[x]" } else { "[ ]" };
    for old in ["[ ]", "[x]", "[X]"] {
        if let Some(i) = line.find(old) {
            return format!("{}{mark}{}", &line[..i], &line[i + old.len()..]);
        }
    }
    line.to_string()
}

/// Write the coordinator's decision on an open conflict.
pub(super) async fn rule(
    State(app): State<App>,
    who: Who,
    Form(f): Form<Fields>,
) -> Result<Response, Refusal> {
    let by = acting(&app, &who, &f)?;
    let s = app.snapshot();
    let path = f.get("conflict").cloned().unwrap_or_default();
    let Some(conflict) = s.conflicts.iter().find(|c| c.path == path) else {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            format!("{path} is not an open conflict"),
        ));
    };
    let name = f
        .get("name")
        .map(|n| n.trim().trim_end_matches(".md"))
        .unwrap_or("");
    let name_ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !name_ok {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "a decision's file name is letters, digits, dots, dashes and underscores",
        ));
    }
    let affected: Vec<String> = s
        .agents
        .iter()
        .filter(|a| f.contains_key(&format!("agent-{a}")))
        .cloned()
        .collect();
    if affected.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "name at least one affected agent: each gets a task to apply the ruling",
        ));
    }
    let ruling = f
        .get("ruling")
        .map(|r| r.trim().replace("\r\n", "\n"))
        .unwrap_or_default();
    if ruling.is_empty() || ruling.chars().count() > MAX_RULING {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the ruling is the decision's text: say it, in at most {MAX_RULING} characters"
            ),
        ));
    }
    let rel = format!("strategy/decisions/{name}.md");
    let text = decision_text(&path, &conflict.title, &affected, &ruling, &by, now_ms());
    let abs = app.0.workspace.join(&rel);
    let max = app.0.max_file_size;
    let rel2 = rel.clone();
    blocking(move || {
        if let Ok(bytes) = crate::input::read_bounded(&abs, max) {
            let old = String::from_utf8_lossy(&bytes);
            let other = crate::protocol::escalation::parse_decision(&rel2, &old)
                .ok()
                .and_then(|d| d.resolves)
                .map(|r| crate::protocol::escalation::conflict_path(&r))
                .filter(|r| *r != path);
            if let Some(other) = other {
                return Err(format!(
                    "{rel2} is already the decision on {other}: choose another name"
                ));
            }
        }
        crate::fsutil::write_atomic(&abs, text.as_bytes()).map_err(|e| e.to_string())
    })
    .await?;
    Ok(to_story(&rel))
}

#[derive(serde::Serialize)]
struct Front<'a> {
    resolves: &'a str,
    affected: &'a [String],
    decided_by: &'a str,
    decided_at: String,
}

/// A decision in the guide's format: front matter naming the conflict and
/// the affected agents (and who decided, when), then the ruling.
fn decision_text(
    conflict: &str,
    title: &str,
    affected: &[String],
    ruling: &str,
    by: &str,
    at: crate::engine::Millis,
) -> String {
    let front = Front {
        resolves: conflict,
        affected,
        decided_by: by,
        decided_at: crate::record::time(at),
    };
    // serde_yaml quotes whatever needs it: a name cannot break the front matter.
    let yaml = serde_yaml::to_string(&front).unwrap_or_default();
    let title = clean(title, 200);
    let title = if title.is_empty() {
        conflict.to_string()
    } else {
        title
    };
    format!(
        "---\n{yaml}---\n# Decision: {title}\n\n{ruling}\n\nDecided by {by} on {}, in gtmd's web view.\n",
        super::text::clock(at)
    )
}

/// Cancel a task or a run, through a cancel request as `gtmd cancel` writes.
pub(super) async fn cancel(
    State(app): State<App>,
    who: Who,
    Form(f): Form<Fields>,
) -> Result<Response, Refusal> {
    let by = acting(&app, &who, &f)?;
    let s = app.snapshot();
    let target = match (f.get("task"), f.get("run")) {
        (Some(task), _) if s.tasks.get(task).is_some_and(|t| t.open) => {
            CancelTarget::Task { task: task.clone() }
        }
        (None, Some(run)) if s.runs.iter().any(|r| r.active && r.id == *run) => {
            CancelTarget::Run { run: run.clone() }
        }
        _ => {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "no such open task or active run (it may have just ended)",
            ))
        }
    };
    let request = CancelRequest {
        id: crate::client::request_id("cancel"),
        cancel: target,
    };
    hand_over(&app, request.id.clone(), request, &by).await
}

/// Start a run of the chosen phases with the CONFIG.md beside the workspace.
pub(super) async fn start_run(
    State(app): State<App>,
    who: Who,
    Form(f): Form<Fields>,
) -> Result<Response, Refusal> {
    let by = acting(&app, &who, &f)?;
    let s = app.snapshot();
    let phases: Vec<u8> = s
        .phases
        .iter()
        .map(|(n, _, _)| *n)
        .filter(|n| f.contains_key(&format!("phase-{n}")))
        .collect();
    if phases.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "choose at least one phase",
        ));
    }
    let scenario = f.get("scenario").filter(|v| !v.is_empty()).cloned();
    if scenario
        .as_ref()
        .is_some_and(|sc| !s.scenarios.contains(sc))
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "no such scenario in the playbook",
        ));
    }
    let config = config_beside(&app.0.workspace);
    let max = app.0.max_file_size;
    let config2 = config.clone();
    let parsed = blocking(move || {
        let text = crate::config::read_config(&config2, max).map_err(|d| d.to_string())?;
        crate::protocol::parse_config(&config2.display().to_string(), &text)
            .map_err(|d| d.to_string())
    })
    .await?;
    let request = RunRequest {
        id: crate::client::request_id("web"),
        kind: RunKind::Phases { phases },
        config: parsed,
        config_path: config.display().to_string(),
        scenario,
        force: f.contains_key("force"),
        budget_secs: None,
        max_cost: None,
        max_tokens: None,
        hard_cap: false,
    };
    hand_over(&app, request.id.clone(), request, &by).await
}

/// The CONFIG.md a run started from the web view uses: beside the
/// workspace, where `gtmd init` puts it.
pub(super) fn config_beside(workspace: &Path) -> PathBuf {
    workspace
        .parent()
        .unwrap_or(Path::new("."))
        .join("CONFIG.md")
}

async fn hand_over(
    app: &App,
    id: String,
    request: impl serde::Serialize + Send + 'static,
    by: &str,
) -> Result<Response, Refusal> {
    let workspace = app.0.workspace.clone();
    let note = format!(
        "by {by} on {}, in gtmd's web view",
        super::text::clock(now_ms())
    );
    let id2 = id.clone();
    blocking(move || {
        crate::client::hand_over(&workspace, &id2, &request, Some(&note))
            .map_err(|e| format!("{e:#}"))
    })
    .await?;
    Ok(to_story(&format!("requests/{id}.yaml")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATE: &str = "# Phase 1 quality gate\n\n## Automatic checks\n\n- PASS: outputs\n\n## Checklist\n\n- [ ] ICP is defined\n- [x] Budget  sums up\n- [ ] Personas cover objections\n";

    #[test]
    fn ticking_keeps_the_rest_of_the_gate_file_and_says_who() {
        let wanted = vec![
            ("ICP is defined".to_string(), true),
            ("budget sums up".to_string(), false),
            ("Not in the file".to_string(), true),
        ];
        let out = tick(GATE, &wanted, "Ticked by Alice").unwrap();
        assert!(
            out.starts_with("# Phase 1 quality gate\n\n## Automatic checks\n\n- PASS: outputs\n")
        );
        assert!(
            out.contains(
                "- [x] ICP is defined\n- [ ] Budget  sums up\n- [ ] Personas cover objections\n"
            ),
            "{out}"
        );
        assert!(
            out.ends_with("\n_Ticked by Alice: 1 of 3 boxes ticked._\n"),
            "{out}"
        );
        let boxes = crate::protocol::checkboxes(&out);
        assert_eq!(boxes.iter().filter(|b| b.checked).count(), 1);
        assert_eq!(tick(GATE, &[("other".into(), true)], "x"), None);
    }

    #[test]
    fn a_decision_names_its_conflict_and_agents_whatever_the_names_say() {
        let by = "Eve: \"x\"\n---\nresolves: conflicts/other.md";
        let text = decision_text(
            "conflicts/scoring.md",
            "<img src=x onerror=alert(1)>",
            &["demand-generation".into(), "pipeline-manager".into()],
            "Use the MQL threshold of 60.",
            &clean(by, 80),
            1_764_000_000_000,
        );
        let d =
            crate::protocol::escalation::parse_decision("strategy/decisions/x.md", &text).unwrap();
        assert_eq!(d.resolves.as_deref(), Some("conflicts/scoring.md"));
        assert_eq!(d.affected, ["demand-generation", "pipeline-manager"]);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        assert!(text.contains("Use the MQL threshold of 60."));
        assert!(
            text.contains("Decided by Eve: \"x\" --- resolves: conflicts/other.md on 2025-11-24"),
            "{text}"
        );
    }
}
