//! The web view (`gtmd run --http`): a person follows a four-phase run in
//! a real browser, sees files land without a reload, ticks every gate and
//! rules on a conflict from the page; and, over plain HTTP, what keeps it
//! safe: CSRF tokens, loopback host names, tokens, read-only, paths.

// Helpers of these tests alone (a browser, plain HTTP), beside this file.
#[path = "web/browser.rs"]
mod browser;
mod common;
#[path = "web/http.rs"]
mod http;

use browser::{browser_or_skip, Browser};
use common::*;
use fantoccini::Locator;
use http::{csrf_of, form, request, serve};
use std::time::Duration;

const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const WAIT: Duration = Duration::from_secs(30);

fn agent_command() -> String {
    format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("agent.sh").display()
    )
}

fn conflict(title: &str, agents: &str) -> String {
    format!("---\nraised_by: brand\nagents: [{agents}]\n---\n# {title}\n\nThe two playbooks disagree.\n")
}

async fn css_count(b: &Browser, css: &str) -> usize {
    b.client
        .find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

/// Type into a field, replacing what it holds. A live update may replace
/// the page's nodes under the driver (a stale element): look again. Once
/// typed into, a form is kept as it is across updates.
async fn fill(b: &Browser, css: &str, text: &str) {
    b.until(WAIT, &format!("{css} to take {text:?}"), || async {
        let Ok(e) = b.client.find(Locator::Css(css)).await else {
            return false;
        };
        e.clear().await.is_ok()
            && e.send_keys(text).await.is_ok()
            && e.prop("value").await.ok().flatten().as_deref() == Some(text)
    })
    .await;
}

async fn click(b: &Browser, css: &str) {
    b.until(WAIT, &format!("{css} to be clicked"), || async {
        match b.client.find(Locator::Css(css)).await {
            Ok(e) => e.click().await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
}

/// Tick every box of the open gate's checklist in the page, one click at a
/// time, then save it as Dana. A live update may replace the page's nodes
/// between two clicks: look again, and go on.
async fn tick_gate(b: &Browser, phase: u8) {
    let form = format!("form.checklist:has(input[name=phase][value='{phase}'])");
    b.until(
        WAIT,
        &format!("the phase {phase} gate's checklist"),
        || async { css_count(b, &form).await == 1 },
    )
    .await;
    let unticked = format!("{form} input[type=checkbox]:not(:checked)");
    b.until(WAIT, "every box ticked", || async {
        match b.client.find(Locator::Css(&unticked)).await {
            Ok(e) => {
                let _ = e.click().await;
                false
            }
            Err(_) => true,
        }
    })
    .await;
    fill(b, &format!("{form} input[name=by]"), "Dana").await;
    click(b, &format!("{form} button")).await;
    landed_on(b, "/file/strategy/gates/").await;
}

/// Wait for the page a form's POST leads to (its file's story), so the
/// next navigation does not cut the submission short.
async fn landed_on(b: &Browser, prefix: &str) {
    b.until(WAIT, &format!("the page {prefix}…"), || async {
        b.client
            .current_url()
            .await
            .is_ok_and(|u| u.path().starts_with(prefix))
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_person_follows_a_four_phase_run_ticks_its_gates_and_rules_on_a_conflict() {
    let Some(tools) = browser_or_skip("web view in a browser") else {
        return;
    };
    let p = Project::new();
    let log = p.root().join("agent.log");
    std::fs::write(&log, "").unwrap();
    let release = p.root().join("release");
    let web = serve(
        &p,
        &["--agent-command", &agent_command()],
        &[
            ("GTMD_TEST_LOG", log.display().to_string()),
            ("GTMD_TEST_PERSON_DECIDES", "1".into()),
            ("GTMD_TEST_HOLD_STEP", "campaign-launch".into()),
            ("GTMD_TEST_RELEASE", release.display().to_string()),
        ],
    );
    let b = Browser::start(&tools, 1280, 1000).await;
    let c = &b.client;
    c.goto(&web.url("/")).await.unwrap();

    // Start a run of the four phases from the page.
    fill(&b, "form.start input[name=by]", "Dana").await;
    click(&b, "form.start button").await;
    landed_on(&b, "/file/requests/").await;
    c.goto(&web.url("/")).await.unwrap();
    b.until(WAIT, "the run on the overview", || async {
        css_count(&b, "article.run.active").await == 1
    })
    .await;
    let request = std::fs::read_dir(p.path("requests"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(request.path()).unwrap();
    assert!(text.starts_with("# by Dana on "), "{text}");

    // From here on the page is never reloaded: a mark set now stays.
    c.execute("window.gtmdMark = 42; return true;", vec![])
        .await
        .unwrap();
    let still_the_same_page = || async {
        c.execute("return window.gtmdMark === 42;", vec![])
            .await
            .unwrap()
            == serde_json::json!(true)
    };
    b.until(WAIT, "phase 1's gate, live", || async {
        css_count(&b, "form.checklist").await == 1
    })
    .await;
    assert!(still_the_same_page().await);

    // A conflict dropped into conflicts/ shows without a reload, its
    // hostile title as text.
    p.write(
        "conflicts/pricing.md",
        &conflict(HOSTILE, "demand-gen, pipeline"),
    );
    let took = b
        .until(WAIT, "the conflict on the page", || async {
            b.text("#conflicts article.conflict h4.title").await == HOSTILE
        })
        .await;
    eprintln!("a conflict file showed on the open page {took:?} after it was written");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(still_the_same_page().await);
    assert_eq!(css_count(&b, "img").await, 0, "the title made no element");
    assert!(c.get_alert_text().await.is_err(), "no script ran");

    // Rule on it: the affected agents get their tasks.
    click(&b, "#conflicts details.rule summary").await;
    fill(
        &b,
        "#conflicts form textarea[name=ruling]",
        "Score MQLs at 60; pricing stays as brand wrote it.",
    )
    .await;
    fill(&b, "#conflicts form input[name=by]", "Dana").await;
    for a in ["demand-generation", "pipeline-manager"] {
        let checked = c
            .find(Locator::Css(&format!("#conflicts input[name=agent-{a}]")))
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap();
        assert!(checked, "{a} is named by the conflict, so it is ticked");
    }
    click(&b, "#conflicts form button").await;
    landed_on(&b, "/file/strategy/decisions/pricing.md").await;
    b.until(WAIT, "the decision's apply tasks in its story", || async {
        let story = b.text("section.story").await;
        story.contains("apply-decision for demand-generation")
            && story.contains("apply-decision for pipeline-manager")
    })
    .await;
    let decision = p.read("strategy/decisions/pricing.md");
    assert!(
        decision.contains("resolves: conflicts/pricing.md"),
        "{decision}"
    );
    assert!(decision.contains("decided_by: Dana"), "{decision}");

    // Tick every gate in the page: each next phase starts.
    for phase in 1..=2u8 {
        c.goto(&web.url("/")).await.unwrap();
        tick_gate(&b, phase).await;
        c.goto(&web.url("/")).await.unwrap();
        b.until(WAIT, &format!("phase {} current", phase + 1), || async {
            css_count(&b, ".phase-passed").await == phase as usize
        })
        .await;
    }
    let gate = p.read("strategy/gates/phase-1-strategy.md");
    assert!(gate.contains("Ticked in gtmd's web view by Dana"), "{gate}");

    // The screenshot: phase 3 under way, a conflict decided by the
    // coordinator in a file whose demand-generation task waits for the one
    // held, a refused file.
    p.write(
        "conflicts/lead-scoring.md",
        &conflict("Lead scoring: MQL at 50 or 70?", "demand-gen, pipeline"),
    );
    p.write(
        "status/intern.md",
        "agent: intern\nphase: 3\ntask: help\nstatus: complete\n",
    );
    p.write(
        "strategy/decisions/lead-scoring.md",
        "---\nresolves: conflicts/lead-scoring.md\naffected: [demand-gen, pipeline]\n---\n# MQL at 60\n",
    );
    b.until(
        WAIT,
        "phase 3 held, a pending decision, a refused file",
        || async {
            css_count(&b, ".step-active").await >= 1
                && css_count(&b, "#conflicts article.decision .state-queued").await == 1
                && css_count(&b, "ul.refused li").await == 1
        },
    )
    .await;
    if let Ok(path) = std::env::var("GTMD_WEB_SCREENSHOT") {
        screenshot(&b, &path).await;
    }

    // Phase 4's gate has no checklist in the guide: its checks decide.
    std::fs::write(&release, "").unwrap();
    c.goto(&web.url("/")).await.unwrap();
    tick_gate(&b, 3).await;
    c.goto(&web.url("/")).await.unwrap();
    // On a miss, say whether the daemon or the page fell behind.
    let start = std::time::Instant::now();
    while css_count(&b, "article.run .state-complete").await != 1 {
        if start.elapsed() > WAIT {
            let page = c.source().await.unwrap_or_default();
            let status = p.run(&["status"]);
            panic!(
                "timed out waiting for the run complete\ngtmd status:\n{}\nagents:\n{}\ngtmd's log:\n{}\npage:\n{page}",
                String::from_utf8_lossy(&status.stdout),
                std::fs::read_to_string(&log).unwrap_or_default(),
                web.log.text(),
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The whole page, at the width a laptop shows.
async fn screenshot(b: &Browser, path: &str) {
    let h = b
        .client
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(1600) as u32;
    b.client
        .set_window_size(1280, h.clamp(800, 4000))
        .await
        .unwrap();
    let png = b.client.screenshot().await.unwrap();
    std::fs::write(path, png).unwrap();
    eprintln!("screenshot of the overview: {path}");
}

#[test]
fn actions_need_the_csrf_token_and_a_loopback_host_name() {
    let p = Project::new();
    let web = serve(&p, &[], &[]);
    p.write("conflicts/x.md", &conflict(HOSTILE, "demand-gen"));
    let page = wait_for(WAIT, "the conflict on the page", || {
        let r = request(&web.addr, "GET", "/", &[], "");
        r.body.contains("conflicts/x.md").then_some(r)
    });
    assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!page.body.contains("<img"));
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("script-src 'self'")));
    let csrf = csrf_of(&page.body);
    let rule = |csrf: &str| {
        form(&[
            ("csrf", csrf),
            ("conflict", "conflicts/x.md"),
            ("name", "x"),
            ("agent-demand-generation", "on"),
            ("ruling", "Do as brand says."),
            ("by", "Mallory"),
        ])
    };
    let decision = p.path("strategy/decisions/x.md");

    let r = request(&web.addr, "POST", "/act/rule", &[], &rule(""));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("CSRF token"), "{}", r.body);
    let r = request(
        &web.addr,
        "POST",
        "/act/rule",
        &[],
        &rule("0".repeat(64).as_str()),
    );
    assert_eq!(r.status, 403);
    // A page on another site whose name points at 127.0.0.1 gets nothing.
    let evil = format!("evil.example:{}", web.addr.rsplit(':').next().unwrap());
    let r = request(
        &web.addr,
        "POST",
        "/act/rule",
        &[("Host", &evil)],
        &rule(&csrf),
    );
    assert_eq!(r.status, 421);
    let r = request(&web.addr, "GET", "/", &[("Host", &evil)], "");
    assert_eq!(r.status, 421);
    assert!(!decision.exists(), "nothing written");

    let r = request(&web.addr, "POST", "/act/rule", &[], &rule(&csrf));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/file/strategy/decisions/x.md"));
    let text = std::fs::read_to_string(&decision).unwrap();
    assert!(text.contains("decided_by: Mallory"), "{text}");

    // Cancel the apply task it gave (in demand-generation's inbox): a
    // cancel request, as `gtmd cancel` writes it.
    let task = wait_for(WAIT, "the apply task", || {
        p.status_json()["open_tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"].as_str().unwrap().ends_with("-apply-decision"))
            .map(|t| t["id"].as_str().unwrap().to_string())
    });
    // `gtmd status` reads the journal; the page shows the daemon's latest
    // snapshot, published at most every 100 ms: act once the page has it.
    wait_for(WAIT, "the task on the page", || {
        let r = request(&web.addr, "GET", "/", &[], "");
        r.body.contains(&format!("/task/{task}")).then_some(())
    });
    let body = form(&[("csrf", &csrf), ("task", &task), ("by", "Mallory")]);
    let r = request(&web.addr, "POST", "/act/cancel", &[], &body);
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap();
    assert!(to.starts_with("/file/requests/cancel-"), "{to}");
    wait_for(WAIT, "the task cancelled", || {
        let t = p.task_json(&task);
        (t["state"]["outcome"]["outcome"] == "cancelled").then_some(())
    });
    let cancel = p.read(to.trim_start_matches("/file/"));
    assert!(cancel.starts_with("# by Mallory on "), "{cancel}");

    // Nothing outside the bus is served.
    for path in [
        "/file/..%2F..%2Fetc%2Fpasswd",
        "/file/.gtmd/journal.jsonl",
        "/file/%2Fetc%2Fpasswd",
        "/task/..%2Fjournal",
    ] {
        let r = request(&web.addr, "GET", path, &[], "");
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let story = request(&web.addr, "GET", "/file/conflicts/x.md", &[], "");
    assert_eq!(story.status, 200);
    assert!(story.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[test]
fn a_token_protects_every_request() {
    let p = Project::new();
    let tokens = p.root().join("tokens");
    std::fs::write(&tokens, "# who may look\nops: s3cret-token-0123456789\n").unwrap();
    let web = serve(
        &p,
        &["--http-token-file", &tokens.display().to_string()],
        &[],
    );
    assert!(web.log.text().contains("token=true"), "{}", web.log.text());
    p.write("conflicts/x.md", &conflict("Pricing", "demand-gen"));

    let r = request(&web.addr, "GET", "/", &[], "");
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    for (method, path) in [("GET", "/events"), ("POST", "/act/rule")] {
        let r = request(&web.addr, method, path, &[], "");
        assert_eq!(r.status, 401, "{method} {path}");
    }
    let r = request(
        &web.addr,
        "GET",
        "/",
        &[("Authorization", "Bearer wrong-token-0123456789")],
        "",
    );
    assert_eq!(r.status, 303);
    let r = request(
        &web.addr,
        "GET",
        "/",
        &[("Authorization", "Bearer s3cret-token-0123456789")],
        "",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("signed in as ops"));

    let r = request(
        &web.addr,
        "POST",
        "/login",
        &[],
        &form(&[("token", "nope-nope-nope-nope")]),
    );
    assert_eq!(r.status, 401);
    let r = request(
        &web.addr,
        "POST",
        "/login",
        &[],
        &form(&[("token", "s3cret-token-0123456789")]),
    );
    assert_eq!(r.status, 303);
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    assert!(r.header("set-cookie").unwrap().contains("HttpOnly"));
    let page = wait_for(WAIT, "the conflict on the page", || {
        let r = request(&web.addr, "GET", "/", &[("Cookie", &cookie)], "");
        r.body.contains("conflicts/x.md").then_some(r)
    });
    // No name given: the token's label says who acted.
    let body = form(&[
        ("csrf", &csrf_of(&page.body)),
        ("conflict", "conflicts/x.md"),
        ("name", "x"),
        ("agent-demand-generation", "on"),
        ("ruling", "Keep the list price."),
    ]);
    let r = request(
        &web.addr,
        "POST",
        "/act/rule",
        &[("Cookie", &cookie)],
        &body,
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(p
        .read("strategy/decisions/x.md")
        .contains("decided_by: ops"));
}

#[test]
fn read_only_shows_the_work_and_acts_on_nothing() {
    let p = Project::new();
    let web = serve(&p, &["--http-read-only"], &[]);
    assert!(
        web.log.text().contains("read_only=true"),
        "{}",
        web.log.text()
    );
    p.write("conflicts/x.md", &conflict("Pricing", "demand-gen"));
    let page = wait_for(WAIT, "the conflict on the page", || {
        let r = request(&web.addr, "GET", "/", &[], "");
        r.body.contains("conflicts/x.md").then_some(r)
    });
    assert!(!page.body.contains("action=\"/act/"), "{}", page.body);
    assert!(page.body.contains("read-only"));
    let r = request(
        &web.addr,
        "POST",
        "/act/rule",
        &[],
        &form(&[("conflict", "conflicts/x.md")]),
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("read-only"), "{}", r.body);
}

#[test]
fn a_non_loopback_address_without_a_token_is_refused_at_start() {
    let p = Project::new();
    let out = p.run(&["run", "--http", "0.0.0.0:8421"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve the web view on 0.0.0.0:8421 without a token"),
        "{err}"
    );
    assert!(err.contains("--http-token-file"), "{err}");
    let short = p.root().join("short");
    std::fs::write(&short, "ops:abc\n").unwrap();
    let out = p.run(&[
        "run",
        "--http",
        "0.0.0.0:8421",
        "--http-token-file",
        &short.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short:1: a token must be at least 16 characters"),
        "{err}"
    );
    assert!(!p.path(".gtmd/journal.jsonl").exists(), "nothing started");
}
