//! The overview: the runs (each phase a row of its steps, then its gate),
//! open tasks, open conflicts and pending decisions, refused files, and the
//! forms that act on them.

use super::*;
use crate::web::snapshot::{
    ConflictView, DecisionView, GateView, PhaseView, RunView, Snapshot, StepView,
};

/// What the overview needs besides the snapshot.
pub struct Extra<'a> {
    /// The CONFIG.md a run started here uses, when there is one.
    pub config: Option<&'a str>,
}

pub fn overview(s: &Snapshot, ctx: &PageCtx, extra: &Extra) -> Markup {
    let now = ctx.now;
    let acts = !ctx.read_only;
    let body = html! {
        @if s.taken_at == 0 {
            p.muted { "gtmd is starting; this page fills in once it is ready." }
        }
        section #runs {
            h2 { "Runs" }
            @if s.runs.is_empty() { p.muted { "No runs yet." } }
            @for r in &s.runs { (run(s, r, ctx, now)) }
        }
        section #tasks {
            h2 { "Open tasks " span.count { (s.open_tasks_total) } }
            (open_tasks(s, ctx, now))
        }
        section #conflicts {
            h2 { "Open conflicts " span.count { (s.conflicts_total) } }
            @if s.conflicts.is_empty() { p.muted { "None." } }
            @for c in &s.conflicts { (conflict(s, c, ctx, now)) }
            @if s.conflicts_total > s.conflicts.len() { (more(s.conflicts_total - s.conflicts.len())) }
            @if !s.decisions.is_empty() {
                h3 { "Pending decisions" }
                @for d in &s.decisions { (decision(s, d)) }
            }
        }
        section #refused {
            h2 { "Refused files " span.count { (s.refused_total) } }
            @if s.refused.is_empty() { p.muted { "None." } }
            ul.refused {
                @for (path, why) in &s.refused {
                    li { (path_link(path)) div.why { (linked(why)) } }
                }
            }
            @if s.refused_total > s.refused.len() { (more(s.refused_total - s.refused.len())) }
            @if !s.refused_requests.is_empty() {
                h3 { "Refused run requests" }
                ul.refused { @for (id, why) in &s.refused_requests { li { code { (id) } div.why { (why) } } } }
            }
        }
        @if acts { (start_run(s, ctx, extra)) }
    };
    frame(&s.workspace, Some(ctx), s.version, body)
}

fn more(n: usize) -> Markup {
    html! { p.muted { "… and " (n) " more (" code { "gtmd status" } " lists every one)." } }
}

fn run(s: &Snapshot, r: &RunView, ctx: &PageCtx, now: Millis) -> Markup {
    let state = match r.ok {
        None => "running",
        Some(true) => "complete",
        Some(false) => "ended",
    };
    html! {
        article.run.active[r.active] id={ "run-" (r.id) } {
            header {
                h3 { "Run " code { (r.id) } " " (badge(state)) }
                p.line { (r.line) }
                p.meta {
                    "started " (at(r.started_at))
                    @if let Some(end) = r.ended_at { " · ended " (at(end)) " · took " (text::span(end.saturating_sub(r.started_at))) }
                    @else { " · running for " (since(r.started_at, now)) }
                    @if let Some(c) = &r.cost { " · cost " (c) }
                }
                @if r.active && !ctx.read_only {
                    details.act {
                        summary { "Cancel this run…" }
                        form method="post" action="/act/cancel" data-key={ "cancel-" (r.id) } {
                            (csrf(ctx))
                            input type="hidden" name="run" value=(r.id);
                            (who_field(ctx))
                            button.danger type="submit" { "Cancel run " (r.id) }
                        }
                    }
                }
            }
            @for p in &r.phases { (phase(s, p, ctx, now, r.active)) }
        }
    }
}

fn phase(s: &Snapshot, p: &PhaseView, ctx: &PageCtx, now: Millis, active: bool) -> Markup {
    html! {
        div class={ "phase phase-" (p.state) } {
            h4 {
                "Phase " (p.number) " · " (p.title) " " (badge(p.state))
                @if let Some(c) = &p.cost { span.cost { (c) } }
            }
            ol.steps { @for st in &p.steps { (step(s, st, now)) } }
            @if let Some(g) = &p.gate { (gate(g, ctx, active)) }
        }
    }
}

fn step(s: &Snapshot, st: &StepView, now: Millis) -> Markup {
    let task = st.task.as_ref().and_then(|t| s.tasks.get(t));
    html! {
        li class={ "step step-" (st.state.replace(' ', "-")) } {
            div.step-id { (st.id) }
            div.agent { (st.agent) }
            div { (badge(st.state)) }
            div.times {
                "est " (st.estimate_minutes) " min"
                @match (st.started_at, st.done_at) {
                    (Some(a), Some(b)) => { " · took " (text::span(b.saturating_sub(a))) },
                    (Some(a), None) => { " · for " (since(a, now)) },
                    _ => {},
                }
            }
            @if let Some(c) = &st.cost { div.cost { (c) } }
            @if !st.missing.is_empty() {
                div.missing { "missing: " @for m in &st.missing { (path_link(m)) " " } }
            }
            @if let Some(t) = &st.task {
                div.tasklink { (task_link(t)) @if let Some(t) = task { " " span.muted { (t.state) } } }
            }
        }
    }
}

fn gate(g: &GateView, ctx: &PageCtx, active: bool) -> Markup {
    let ticked = g.boxes.iter().filter(|(_, t)| *t).count();
    let head = html! {
        "Gate " (path_link(&g.path)) " "
        @if let Some(p) = g.passed_at { (badge("passed")) " " span.muted { (at(p)) } }
        @else { (badge("open")) " " span.muted { (ticked) "/" (g.boxes.len()) " ticked" } }
    };
    match g.passed_at {
        // A passed gate is history: one line, the rest on demand.
        Some(_) => html! {
            details.gate { summary { (head) } (gate_body(g, ctx, false)) }
        },
        None => html! {
            div.gate.open { h5 { (head) } (gate_body(g, ctx, active)) }
        },
    }
}

fn gate_body(g: &GateView, ctx: &PageCtx, active: bool) -> Markup {
    let open = g.passed_at.is_none();
    html! {
            @match &g.checks {
                None => p.muted { "Automatic checks not run yet." },
                Some(checks) => ul.checks {
                    @for c in checks {
                        li class=(if c.passed { "pass" } else { "fail" }) {
                            span.mark { (if c.passed { "PASS" } else { "FAIL" }) }
                            " " b { (c.name) } ": " (linked(&c.detail))
                        }
                    }
                },
            }
            @if open && active && !ctx.read_only && !g.boxes.is_empty() {
                form.checklist method="post" action="/act/gate" data-key={ "gate-" (g.run) "-" (g.phase) } {
                    (csrf(ctx))
                    input type="hidden" name="run" value=(g.run);
                    input type="hidden" name="phase" value=(g.phase);
                    ul.boxes {
                        @for (i, (item, on)) in g.boxes.iter().enumerate() {
                            li {
                                label {
                                    input type="checkbox" name={ "box-" (i) } checked[*on];
                                    input type="hidden" name={ "item-" (i) } value=(item);
                                    (nbsp()) (item)
                                }
                            }
                        }
                    }
                    (who_field(ctx))
                    button type="submit" { "Save the checklist" }
                }
            } @else {
                ul.boxes.readonly {
                    @for (item, on) in &g.boxes {
                        li { span.box { (if *on { "☑" } else { "☐" }) } " " (item) }
                    }
                }
            }
    }
}

fn open_tasks(s: &Snapshot, ctx: &PageCtx, now: Millis) -> Markup {
    html! {
        @if s.open_tasks.is_empty() { p.muted { "None." } }
        @else {
            table.tasks {
                thead { tr { th { "task" } th { "agent" } th { "state" } th { "for" } th { "what" } th {} } }
                tbody {
                    @for id in &s.open_tasks {
                        @if let Some(t) = s.tasks.get(id) {
                            tr {
                                td { (task_link(&t.id)) }
                                td { (t.agent) }
                                td { (badge(t.state)) }
                                td { @if t.busy() { (since(t.started_at.unwrap_or(t.created_at), now)) } @else { span.muted { "queued " (since(t.created_at, now)) } } }
                                td.what { (linked(&crate::diagnostic::one_line(&t.text))) }
                                td {
                                    @if !ctx.read_only {
                                        details.act {
                                            summary { "Cancel…" }
                                            form method="post" action="/act/cancel" data-key={ "cancel-" (t.id) } {
                                                (csrf(ctx))
                                                input type="hidden" name="task" value=(t.id);
                                                (who_field(ctx))
                                                button.danger type="submit" { "Cancel " (t.id) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if s.open_tasks_total > s.open_tasks.len() { (more(s.open_tasks_total - s.open_tasks.len())) }
        }
    }
}

fn conflict(s: &Snapshot, c: &ConflictView, ctx: &PageCtx, now: Millis) -> Markup {
    let stem = c
        .path
        .rsplit('/')
        .next()
        .unwrap_or("decision")
        .trim_end_matches(".md");
    html! {
        article.conflict {
            h4.title { (if c.title.is_empty() { "(untitled)" } else { &c.title }) }
            p.meta {
                (path_link(&c.path)) " · open for " (since(c.opened_at, now))
                @if let Some(by) = &c.raised_by { " · raised by " (by) }
                @if let Some(sev) = &c.severity { " · severity " (sev) }
                @if !c.agents.is_empty() { " · about " (c.agents.join(", ")) }
                @if c.versions > 1 { " · " (c.versions) " versions" }
            }
            @if !c.decisions.is_empty() {
                p.meta { "decided in " @for d in &c.decisions { (path_link(d)) " " } "— waiting for the agents" }
            }
            @if !ctx.read_only {
                details.act.rule {
                    summary { "Rule on it…" }
                    form method="post" action="/act/rule" data-key={ "rule-" (c.path) } {
                        (csrf(ctx))
                        input type="hidden" name="conflict" value=(c.path);
                        label {
                            "Decision file " span.muted { "strategy/decisions/" }
                            input type="text" name="name" value=(stem) required maxlength="100";
                            span.muted { ".md" }
                        }
                        fieldset.agents {
                            legend { "Affected agents (each gets a task to apply the ruling)" }
                            @for a in &s.agents {
                                label.agent {
                                    input type="checkbox" name={ "agent-" (a) } checked[c.agents.contains(a)];
                                    " " (a)
                                }
                            }
                        }
                        label.block { "The ruling" textarea name="ruling" rows="5" required maxlength="20000" {} }
                        (who_field(ctx))
                        button type="submit" { "Write the decision" }
                    }
                }
            }
        }
    }
}

fn decision(s: &Snapshot, d: &DecisionView) -> Markup {
    html! {
        article.decision {
            p {
                (path_link(&d.path))
                @if !d.title.is_empty() { " · " (d.title) }
                @if let Some(r) = &d.resolves { " · resolves " (path_link(r)) }
            }
            @if !d.problems.is_empty() {
                ul.problems { @for p in &d.problems { li { (p) } } }
            }
            @if !d.tasks.is_empty() {
                ul.applies {
                    @for id in &d.tasks {
                        li {
                            (task_link(id))
                            @if let Some(t) = s.tasks.get(id) { " " (t.agent) " " (badge(t.state)) }
                        }
                    }
                }
            }
        }
    }
}

fn start_run(s: &Snapshot, ctx: &PageCtx, extra: &Extra) -> Markup {
    html! {
        section #start {
            h2 { "Start a run" }
            @match extra.config {
                None => p.muted {
                    "No CONFIG.md beside the workspace: start runs with "
                    code { "gtmd team run --config FILE" } "."
                },
                Some(config) => form.start method="post" action="/act/start" data-key="start" {
                    (csrf(ctx))
                    fieldset {
                        legend { "Phases" }
                        @for (n, _, title) in &s.phases {
                            label.phase-pick {
                                input type="checkbox" name={ "phase-" (n) } checked;
                                " " (n) ". " (title)
                            }
                        }
                    }
                    label {
                        "Scenario "
                        select name="scenario" {
                            option value="" { "none" }
                            @for sc in &s.scenarios { option value=(sc) { (sc) } }
                        }
                    }
                    label { input type="checkbox" name="force"; " force (run even if the phases do not fit the scenario or earlier inputs are missing)" }
                    p.muted { "With " code { (config) } "." }
                    (who_field(ctx))
                    button type="submit" { "Start the run" }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::snapshot::ConflictView;

    #[test]
    fn a_hostile_title_is_text_and_read_only_pages_have_no_forms() {
        let mut s = Snapshot {
            taken_at: 1_764_000_000_000,
            ..Snapshot::default()
        };
        s.conflicts.push(ConflictView {
            path: "conflicts/x.md".into(),
            title: "<img src=x onerror=alert(1)>".into(),
            raised_by: None,
            agents: vec![],
            severity: None,
            opened_at: 1_764_000_000_000,
            versions: 1,
            decisions: vec![],
        });
        s.conflicts_total = 1;
        let ctx = PageCtx {
            now: 1_764_000_001_000,
            csrf: "c".into(),
            label: None,
            read_only: false,
            session: false,
        };
        let page = overview(
            &s,
            &ctx,
            &Extra {
                config: Some("CONFIG.md"),
            },
        )
        .into_string();
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
        assert!(!page.contains("<img"));
        assert!(page.contains(r#"action="/act/rule""#));
        let ro = PageCtx {
            read_only: true,
            ..ctx
        };
        let page = overview(
            &s,
            &ro,
            &Extra {
                config: Some("CONFIG.md"),
            },
        )
        .into_string();
        assert!(
            !page.contains("<form method=\"post\" action=\"/act"),
            "{page}"
        );
        assert!(!page.contains(r#"action="/act/"#), "{page}");
    }
}
