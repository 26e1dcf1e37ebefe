//! The measured cases against the real `gtmd` binary.

use crate::harness::*;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone)]
pub struct Opts {
    /// Files in each latency case.
    pub latency_files: usize,
    pub latency_spacing: Duration,
    /// Files in the burst.
    pub burst_files: usize,
    /// How long the burst may take to start every agent before the bench stops looking.
    pub burst_agent_cap: Duration,
    /// Files in the large workspace, and protocol files changed while gtmd is down.
    pub big_files: usize,
    pub big_changed: usize,
    pub idle: Duration,
}

/// The file name a recorded start is about (`conflict: conflicts/x.md` → `x.md`).
pub fn trigger_file(s: &Start) -> Option<String> {
    let path = s.trigger.strip_prefix("conflict: ")?;
    Some(path.rsplit('/').next()?.to_string())
}

// ---- 1. latency ----

pub fn latency(env: &Env, opts: &Opts, mode: WriteMode) -> Result<Latency> {
    let p = Project::new(env, "latency")?;
    let log = p.agent_log();
    let mut g = Gtmd::start(env, &p, Some(&recorder_command(env, &log)))?;
    g.wait_ready(Duration::from_secs(30))?;
    sleep(Duration::from_millis(300))?;
    let put = drop_spaced(&p.ws().join("conflicts"), opts, mode)?;
    record_landed(&p, &put)?;
    let starts = collect_starts(log, put.len())?;
    g.stop()?;
    Ok(match_latencies(&put, &starts, trigger_file))
}

/// For scripts/stage-breakdown.py in a kept workspace: when each file
/// landed, on the clock the agents stamp with.
pub fn record_landed(p: &Project, put: &HashMap<String, u64>) -> Result<()> {
    let mut landed: Vec<_> = put.iter().collect();
    landed.sort_by_key(|(_, t)| **t);
    let landed: String = landed.iter().map(|(f, t)| format!("{f} {t}\n")).collect();
    fs::write(p.root().join("files-landed.log"), landed)?;
    Ok(())
}

/// The agent starts recorded in `log`, once `n` have come or none has for
/// a while, and a moment more for late doubles to show.
pub fn collect_starts(log: std::path::PathBuf, n: usize) -> Result<Vec<Start>> {
    let mut tail = Tail::new(log);
    let mut starts = Vec::new();
    wait_progress(
        Duration::from_secs(10),
        Duration::from_secs(3),
        Duration::from_millis(5),
        || {
            starts.extend(tail.lines().iter().filter_map(|l| parse_start(l)));
            (starts.len() >= n, starts.len())
        },
    )?;
    sleep(Duration::from_millis(300))?;
    starts.extend(tail.lines().iter().filter_map(|l| parse_start(l)));
    Ok(starts)
}

/// `n` conflict files, one every `spacing`; returns file name → put time.
pub fn drop_spaced(dir: &Path, opts: &Opts, mode: WriteMode) -> Result<HashMap<String, u64>> {
    let mut put = drop_interleaved(&[dir], opts, mode)?;
    Ok(put.remove(0))
}

/// The same `n` conflict files into each of `dirs`, one every `spacing` in
/// each, the directories' turns spread evenly within a spacing; returns,
/// per directory, file name → put time.
pub fn drop_interleaved(
    dirs: &[&Path],
    opts: &Opts,
    mode: WriteMode,
) -> Result<Vec<HashMap<String, u64>>> {
    let mut put = vec![HashMap::new(); dirs.len()];
    let t0 = Instant::now();
    let turn = opts.latency_spacing / dirs.len() as u32;
    for k in 0..opts.latency_files {
        let name = format!("lat-{k}.md");
        let body = conflict_body(&name);
        for (j, dir) in dirs.iter().enumerate() {
            let due = t0 + opts.latency_spacing * k as u32 + turn * j as u32;
            let now = Instant::now();
            if due > now {
                sleep(due - now)?;
            }
            put[j].insert(
                name.clone(),
                put_file(&dir.join(&name), body.as_bytes(), mode)?,
            );
        }
    }
    Ok(put)
}

// ---- 2. burst ----

#[derive(Debug, Default)]
pub struct Burst {
    pub files: usize,
    /// How long dropping the files took.
    pub write_secs: f64,
    /// Distinct burst files with a new version in the journal, and repeats.
    pub journaled: usize,
    pub journal_doubled: usize,
    /// From the last file landing until the journal held every one of them.
    pub journaled_after_last: Option<f64>,
    /// Review tasks in `gtmd status --json`: files without one, files with more than one.
    pub task_lost: usize,
    pub task_doubled: usize,
    /// Agent starts seen, repeats of a task, and over what time.
    pub starts: usize,
    pub start_doubled: usize,
    pub start_secs: f64,
    pub all_started: bool,
    /// From the last file landing until the last agent start, when all started.
    pub all_started_after_last: Option<f64>,
    /// Rescans gtmd logged (queue overflow).
    pub rescans: usize,
    pub queue: Option<u64>,
    /// gtmd's RSS when the bench stopped looking (KiB).
    pub rss_after: u64,
}

impl Burst {
    pub fn rate(&self) -> f64 {
        self.starts as f64 / self.start_secs
    }
}

pub fn drop_burst(dir: &Path, n: usize) -> Result<(Vec<String>, Instant, Instant)> {
    let bodies: Vec<(String, String)> = (0..n)
        .map(|k| {
            let name = format!("b-{k}.md");
            let body = conflict_body(&name);
            (name, body)
        })
        .collect();
    let first = Instant::now();
    for (name, body) in &bodies {
        put_file(&dir.join(name), body.as_bytes(), WriteMode::InPlace)?;
    }
    let last = Instant::now();
    Ok((bodies.into_iter().map(|(n, _)| n).collect(), first, last))
}

pub fn burst(env: &Env, opts: &Opts, queue: Option<u64>) -> Result<Burst> {
    let p = Project::new(env, "burst")?;
    let log = p.agent_log();
    let saved = match queue {
        Some(q) => Some(set_max_queued(q)?),
        None => None,
    };
    let started = Gtmd::start(env, &p, Some(&recorder_command(env, &log)));
    let mut g = match started {
        Ok(g) => g,
        Err(e) => {
            if let Some(s) = saved {
                set_max_queued(s)?;
            }
            return Err(e);
        }
    };
    let ready = g.wait_ready(Duration::from_secs(30));
    if let Some(s) = saved {
        // Each inotify instance keeps the limit it was created with: restore
        // at once, so nothing else on the machine gets the small queue.
        set_max_queued(s)?;
    }
    ready?;
    sleep(Duration::from_millis(300))?;
    let dir = p.ws().join("conflicts");
    let (names, first, last) = drop_burst(&dir, opts.burst_files)?;
    let mut r = Burst {
        files: names.len(),
        write_secs: (last - first).as_secs_f64(),
        queue,
        ..Burst::default()
    };

    // Reactions: every burst file's version journaled (fsynced) by gtmd.
    let mut jtail = Tail::new(p.journal());
    let mut seen: HashMap<String, usize> = HashMap::new();
    let all = wait_progress(
        Duration::from_secs(120),
        Duration::from_secs(20),
        Duration::from_millis(2),
        || {
            for l in jtail.lines() {
                if let Some(path) = journaled_path_fast(&l) {
                    if path.starts_with("conflicts/b-") {
                        *seen.entry(path).or_default() += 1;
                    }
                }
            }
            (seen.len() >= names.len(), seen.len())
        },
    )?;
    if all {
        r.journaled_after_last = Some(last.elapsed().as_secs_f64());
    }

    // Agent starts: serialized per agent by design; look until all or the cap.
    let mut atail = Tail::new(log.clone());
    let mut tasks: HashMap<String, usize> = HashMap::new();
    let mut last_start_ns = 0u64;
    let first_ns = now_ns() - first.elapsed().as_nanos() as u64;
    let cap = opts.burst_agent_cap.saturating_sub(first.elapsed());
    r.all_started = wait_progress(
        cap,
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            for s in atail.lines().iter().filter_map(|l| parse_start(l)) {
                last_start_ns = last_start_ns.max(s.ns);
                *tasks.entry(s.task).or_default() += 1;
            }
            (tasks.len() >= names.len(), tasks.len())
        },
    )?;
    r.rss_after = rss_kib(g.pid).unwrap_or(0);
    g.stop()?;
    for s in atail.lines().iter().filter_map(|l| parse_start(l)) {
        last_start_ns = last_start_ns.max(s.ns);
        *tasks.entry(s.task).or_default() += 1;
    }
    for l in jtail.lines() {
        if let Some(path) = journaled_path_fast(&l) {
            if path.starts_with("conflicts/b-") {
                *seen.entry(path).or_default() += 1;
            }
        }
    }
    r.journaled = seen.len();
    r.journal_doubled = seen.values().map(|c| c - 1).sum();
    r.starts = tasks.len();
    r.start_doubled = tasks.values().map(|c| c - 1).sum();
    r.start_secs = (last_start_ns.saturating_sub(first_ns)) as f64 / 1e9;
    let landed_ns = now_ns() - last.elapsed().as_nanos() as u64;
    if r.all_started {
        r.all_started_after_last = Some(last_start_ns.saturating_sub(landed_ns) as f64 / 1e9);
    }
    r.rescans = g.count_lines("rescanning");

    // The engine's view: one review task per burst file.
    let status = p.status_json(env)?;
    let per_file = review_tasks(&status, "conflicts/b-");
    r.task_lost = names
        .iter()
        .filter(|n| !per_file.contains_key(&format!("conflicts/{n}")))
        .count();
    r.task_doubled = per_file.values().map(|c| c.saturating_sub(1)).sum();
    Ok(r)
}

/// The path of a `file-changed` journal line, without parsing the whole line
/// (the event tag and the path are its first two fields).
pub fn journaled_path_fast(line: &str) -> Option<String> {
    if !line.starts_with("{\"event\":\"file-changed\"") {
        return journaled_path(line);
    }
    let at = line.find("\"path\":\"")? + 8;
    let end = line[at..].find('"')?;
    Some(line[at..at + end].to_string())
}

/// Conflict-review tasks per conflict path (under `prefix`) in `status --json`.
pub fn review_tasks(status: &serde_json::Value, prefix: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in status["tasks"].as_array().into_iter().flatten() {
        let kind = &t["kind"];
        if kind["kind"] != "conflict-review" {
            continue;
        }
        if let Some(c) = kind["conflict"].as_str() {
            if c.starts_with(prefix) {
                *out.entry(c.to_string()).or_default() += 1;
            }
        }
    }
    out
}

/// Review tasks whose state is not done-complete: `id (state/outcome)`.
pub fn unfinished_reviews(status: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for t in status["tasks"].as_array().into_iter().flatten() {
        if t["kind"]["kind"] != "conflict-review" {
            continue;
        }
        let state = t["state"]["state"].as_str().unwrap_or("?");
        let outcome = t["state"]["outcome"]["outcome"].as_str().unwrap_or("");
        if state != "done" || outcome != "complete" {
            out.push(format!(
                "{} ({state}{}{outcome})",
                t["id"].as_str().unwrap_or("?"),
                if outcome.is_empty() { "" } else { ": " }
            ));
        }
    }
    out
}

const QUEUE_SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";

/// Set fs.inotify.max_queued_events; returns the previous value.
pub fn set_max_queued(v: u64) -> Result<u64> {
    let old: u64 = fs::read_to_string(QUEUE_SYSCTL)?.trim().parse()?;
    fs::write(QUEUE_SYSCTL, v.to_string())
        .with_context(|| format!("cannot write {QUEUE_SYSCTL} (needs root)"))?;
    Ok(old)
}

// ---- 3 and 4. start-up catch-up, memory and idle cost ----

#[derive(Debug, Default)]
pub struct Startup {
    pub files: usize,
    pub changed: usize,
    pub touched: usize,
    pub first_ready: f64,
    pub ready: f64,
    /// New versions gtmd journaled at the second start: protocol files, others.
    pub new_protocol: usize,
    pub new_other: usize,
    /// New review tasks, files acted on not exactly once.
    pub new_tasks: usize,
    pub wrong: usize,
    /// Agent starts of a task that had started already (both starts).
    pub start_doubled: usize,
    /// Review tasks that did not end `complete` (every agent here exits 0 at once).
    pub not_complete: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Idle {
    pub secs: f64,
    pub fresh_rss: u64,
    pub fresh_hwm: u64,
    pub fresh_ticks_per_min: f64,
    pub fresh_ns_per_min: f64,
    pub fresh_threads: usize,
    pub big_rss: u64,
    pub big_hwm: u64,
    pub big_ticks_per_min: f64,
    pub big_ns_per_min: f64,
    pub big_threads: usize,
    pub big_files: usize,
}

fn plain_body(i: usize) -> String {
    format!(
        "# Note {i}\n\n{}\n",
        "Some plain workspace content. ".repeat(4)
    )
}

/// Build the large workspace, start gtmd on it, stop it, change files, start
/// again: the catch-up. Then both idle measurements.
pub fn big_workspace(
    env: &Env,
    opts: &Opts,
    want_startup: bool,
    want_idle: bool,
) -> Result<(Option<Startup>, Option<Idle>)> {
    let p = Project::new(env, "big")?;
    let ws = p.ws();
    let log = p.agent_log();
    let agent = recorder_command(env, &log);
    let old = opts.big_changed / 2;
    let new = opts.big_changed - old;
    let plain = opts.big_files - old;
    eprintln!("  creating {} files ...", opts.big_files);
    let dirs = 1000;
    for d in 0..dirs {
        fs::create_dir_all(ws.join(format!("data/d{:02}/e{}", d / 10, d % 10)))?;
    }
    for i in 0..plain {
        let d = i % dirs;
        fs::write(
            ws.join(format!("data/d{:02}/e{}/f{i}.md", d / 10, d % 10)),
            plain_body(i),
        )?;
        if i % 10_000 == 0 {
            check_interrupt()?;
        }
    }
    let conflicts = ws.join("conflicts");
    for k in 0..old {
        fs::write(
            conflicts.join(format!("old-{k}.md")),
            conflict_body(&format!("old-{k}")),
        )?;
    }
    let mut s = Startup {
        files: opts.big_files,
        changed: opts.big_changed,
        ..Startup::default()
    };

    // First start: every file is new to gtmd; the old conflicts get reviewed.
    eprintln!("  first start (every file unseen) ...");
    let mut g = Gtmd::start(env, &p, Some(&agent))?;
    s.first_ready = g.wait_ready(Duration::from_secs(300))?.as_secs_f64();
    // Re-resolved each time: the first start compacts the journal into a
    // snapshot (100,000 entries) and moves on to the next generation.
    let done = wait_progress(
        Duration::from_secs(180),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let n = count_journal_events(&p.journal(), "task-exited");
            (n >= old, n)
        },
    )?;
    if !done {
        bail!("the first start did not finish the {old} reviews in time");
    }
    g.stop()?;

    // While gtmd is down: change half the conflicts, add as many, and touch
    // plain files without changing them (a new mtime, the same content).
    for k in 0..old {
        let path = conflicts.join(format!("old-{k}.md"));
        let mut text = fs::read_to_string(&path)?;
        text.push_str("\nUpdate: brand messaging accepts a softer discount line.\n");
        fs::write(&path, text)?;
    }
    for k in 0..new {
        fs::write(
            conflicts.join(format!("new-{k}.md")),
            conflict_body(&format!("new-{k}")),
        )?;
    }
    let later = SystemTime::now() + Duration::from_secs(5);
    s.touched = plain.min(1000);
    for i in (0..plain).step_by(plain / s.touched).take(s.touched) {
        let d = i % dirs;
        let f = fs::File::options().write(true).open(ws.join(format!(
            "data/d{:02}/e{}/f{i}.md",
            d / 10,
            d % 10
        )))?;
        f.set_modified(later)?;
    }
    // Drop the page cache's advantage? No: a restart usually finds a warm
    // cache too. Measured as it is.
    let journal = p.journal();
    let mut jtail = Tail::from_end(journal.clone());
    let exited_before = count_journal_events(&journal, "task-exited");

    eprintln!("  second start (catch-up) ...");
    let mut g = Gtmd::start(env, &p, Some(&agent))?;
    s.ready = g.wait_ready(Duration::from_secs(120))?.as_secs_f64();
    for l in jtail.lines() {
        if let Some(path) = journaled_path_fast(&l) {
            if path.starts_with("conflicts/") {
                s.new_protocol += 1;
            } else {
                s.new_other += 1;
            }
        }
    }
    // Let it work through the new reviews, so what follows measures it idle.
    let _ = wait_progress(
        Duration::from_secs(180),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let n = count_journal_events(&journal, "task-exited") - exited_before;
            (n >= opts.big_changed, n)
        },
    )?;
    sleep(Duration::from_secs(1))?;

    let idle = if want_idle {
        Some(idle_pair(env, opts, &g, opts.big_files + new)?)
    } else {
        None
    };
    g.stop()?;
    let status = p.status_json(env)?;
    s.not_complete = unfinished_reviews(&status);
    let per_file = review_tasks(&status, "conflicts/");
    let mut wrong = 0;
    let mut total = 0;
    for (path, n) in &per_file {
        total += n;
        let expected = if path.contains("/old-") { 2 } else { 1 };
        if *n != expected {
            wrong += 1;
        }
    }
    wrong += (0..new)
        .filter(|k| !per_file.contains_key(&format!("conflicts/new-{k}.md")))
        .count();
    s.new_tasks = total.saturating_sub(old);
    s.wrong = wrong;
    let mut starts: HashMap<String, usize> = HashMap::new();
    for l in fs::read_to_string(&log).unwrap_or_default().lines() {
        if let Some(st) = parse_start(l) {
            *starts.entry(st.task).or_default() += 1;
        }
    }
    s.start_doubled = starts.values().map(|c| c - 1).sum();
    Ok((want_startup.then_some(s), idle))
}

/// A fresh workspace and the large one, both idle over the same window.
fn idle_pair(env: &Env, opts: &Opts, big: &Gtmd, big_files: usize) -> Result<Idle> {
    let p = Project::new(env, "fresh")?;
    let log = p.agent_log();
    let mut fresh = Gtmd::start(env, &p, Some(&recorder_command(env, &log)))?;
    fresh.wait_ready(Duration::from_secs(30))?;
    // Let start-up work (and tokio's blocking threads) wind down.
    sleep(Duration::from_secs(2))?;
    eprintln!(
        "  idle for {} s (fresh and {big_files}-file workspaces) ...",
        opts.idle.as_secs()
    );
    let t0 = Instant::now();
    let f0 = (cpu_ticks(fresh.pid), cpu_ns(fresh.pid));
    let b0 = (cpu_ticks(big.pid), cpu_ns(big.pid));
    sleep(opts.idle)?;
    let f1 = (cpu_ticks(fresh.pid), cpu_ns(fresh.pid));
    let b1 = (cpu_ticks(big.pid), cpu_ns(big.pid));
    let secs = t0.elapsed().as_secs_f64();
    let per_min = 60.0 / secs;
    let tick_ms = 1000.0 / clock_ticks() as f64;
    let d = |a: Option<u64>, b: Option<u64>| b.unwrap_or(0).saturating_sub(a.unwrap_or(0)) as f64;
    let r = Idle {
        secs,
        fresh_rss: rss_kib(fresh.pid).unwrap_or(0),
        fresh_hwm: hwm_kib(fresh.pid).unwrap_or(0),
        fresh_ticks_per_min: d(f0.0, f1.0) * tick_ms * per_min,
        fresh_ns_per_min: d(f0.1, f1.1) * per_min,
        fresh_threads: thread_count(fresh.pid),
        big_rss: rss_kib(big.pid).unwrap_or(0),
        big_hwm: hwm_kib(big.pid).unwrap_or(0),
        big_ticks_per_min: d(b0.0, b1.0) * tick_ms * per_min,
        big_ns_per_min: d(b0.1, b1.1) * per_min,
        big_threads: thread_count(big.pid),
        big_files,
    };
    fresh.stop()?;
    Ok(r)
}

// ---- 5. orchestration overhead ----

#[derive(Debug, Default)]
pub struct Orchestration {
    pub ok: bool,
    pub wall: f64,
    /// Time at least one agent was running (union of the agents' own intervals).
    pub agents: f64,
    pub tasks: usize,
    /// Spawn → first agent start; last agent end → exit; gaps between agents.
    pub head: f64,
    pub tail: f64,
    pub gaps: f64,
    pub gap_count: usize,
    pub largest_gap: f64,
}

impl Orchestration {
    pub fn overhead(&self) -> f64 {
        self.wall - self.agents
    }
}

pub fn orchestration(env: &Env) -> Result<Orchestration> {
    let p = Project::new(env, "orchestration")?;
    let log = p.agent_log();
    let agent = shell_words::join([
        env.bench.to_string_lossy().as_ref(),
        "agent4",
        log.to_string_lossy().as_ref(),
        "{agent}",
        "{task_id}",
        "{phase}",
        "{step}",
    ]);
    let mut cmd = p.gtmd_cmd(env);
    cmd.args(["--agent-command", &agent])
        .args(["team", "run", "--phases", "all", "--config", "CONFIG.md"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    die_with_parent(&mut cmd);
    let spawn_ns = now_ns();
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline || check_interrupt().is_err() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the four-phase run did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    let end_ns = now_ns();
    let err = reader.join().unwrap_or_default();
    let mut iv: Vec<(u64, u64)> = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
        })
        .collect();
    iv.sort();
    let mut r = Orchestration {
        ok: status.success(),
        wall: (end_ns - spawn_ns) as f64 / 1e9,
        tasks: iv.len(),
        ..Orchestration::default()
    };
    if !r.ok {
        eprintln!("  the four-phase run failed ({status}):\n{err}");
    }
    let Some(&(first, _)) = iv.first() else {
        return Ok(r);
    };
    r.head = (first - spawn_ns) as f64 / 1e9;
    let (mut cur_s, mut cur_e) = iv[0];
    let mut union = 0u64;
    for &(s, e) in &iv[1..] {
        if s > cur_e {
            union += cur_e - cur_s;
            let gap = (s - cur_e) as f64 / 1e9;
            r.gaps += gap;
            r.gap_count += 1;
            r.largest_gap = r.largest_gap.max(gap);
            cur_s = s;
            cur_e = e;
        } else {
            cur_e = cur_e.max(e);
        }
    }
    union += cur_e - cur_s;
    r.agents = union as f64 / 1e9;
    r.tail = end_ns.saturating_sub(cur_e) as f64 / 1e9;
    Ok(r)
}
