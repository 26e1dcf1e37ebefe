//! gtmd-bench: measured speed of the real `gtmd` binary.
//!
//! Drives the release `gtmd` found next to this executable on temp workspaces
//! made with `gtmd init`, with an agent command that only records the moment
//! it started (this binary, re-executed with a hidden `agent` subcommand), and
//! prints one table with the targets beside the results:
//!
//! 1. latency: a conflict file renamed into place / written in place → the
//!    coordinator's review process started;
//! 2. burst: 10,000 conflict files as fast as possible → every version
//!    journaled, lost and doubled counts, agent start rate;
//! 3. start-up catch-up on a 100,000-file workspace;
//! 4. RSS and CPU while idle;
//! 5. the four-phase run's overhead over its agents' own time.
//!
//! `--compare` runs cases 1 and 2 against an `inotifywait -m | while read`
//! loop too; `--http` runs every gtmd with its web view and a page open. `cargo build --release && target/release/gtmd-bench`.

mod agent;
mod cases;
mod harness;
mod inotify;
mod page;
mod report;

use anyhow::{bail, Context, Result};
use clap::Parser;
use harness::{Env, WriteMode};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "gtmd-bench",
    about = "Measure the real gtmd: reaction latency, bursts, start-up catch-up, memory, idle cost, orchestration overhead"
)]
struct Args {
    /// A shorter run: 50 latency files per case, 10 s idle, 15 s (not 30 s) watching burst agent starts.
    #[arg(long)]
    quick: bool,
    /// Also run the latency and burst cases against `inotifywait -m | while read` (inotify-tools).
    #[arg(long)]
    compare: bool,
    /// Also run the burst with fs.inotify.max_queued_events at 256 (root; the
    /// old value is restored as soon as the watcher exists).
    #[arg(long)]
    low_queue: bool,
    /// Cases to run, comma-separated: latency, burst, startup, idle, orchestration.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The gtmd binary [default: `gtmd` next to this executable].
    #[arg(long)]
    gtmd: Option<PathBuf>,
    /// Where the temp workspaces go [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temp workspaces (their paths are printed) instead of removing them.
    #[arg(long)]
    keep: bool,
    /// Idle window in seconds [default: 60, 10 with --quick].
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Run gtmd with its web view (`--http 127.0.0.1:0`) and keep a page
    /// open on it all along: server-sent events, and the overview loaded
    /// again at each change, as the page's script does.
    #[arg(long)]
    http: bool,
    /// Split each latency case into N rounds, gtmd's and the loop's taking
    /// turns (with --compare), so that a machine whose speed drifts during
    /// the run weighs on both sides alike; the table pools the rounds, a
    /// note gives each round's p50 ratio.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// With --compare: run gtmd and the loop at the same time in each
    /// latency round, on two workspaces, each file dropped for gtmd and
    /// half a spacing later for the loop, so that both are measured in the
    /// same moments of the machine rather than one after the other.
    #[arg(long)]
    paired: bool,
    /// The log filter of every gtmd started (GTMD_LOG), e.g.
    /// `info,gtmd::stage=trace` with `--keep` for the per-stage timestamps
    /// that scripts/stage-breakdown.py reads.
    #[arg(long)]
    gtmd_log: Option<String>,
}

fn main() -> ExitCode {
    // The agent paths come first and do nothing else: their start-up is on
    // the measured path.
    let t = harness::now_ns();
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("agent") => return ExitCode::from(agent::record(t, &argv[2..]) as u8),
        Some("agent4") => return ExitCode::from(agent::four_phase(t, &argv[2..]) as u8),
        _ => {}
    }
    harness::install_interrupt();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gtmd-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<()> {
    let bench = std::env::current_exe().context("cannot find this executable")?;
    let gtmd = match &args.gtmd {
        Some(g) => g.clone(),
        None => bench.with_file_name("gtmd"),
    };
    if !gtmd.is_file() {
        bail!(
            "no gtmd binary at {}; build it with `cargo build --release` (or pass --gtmd)",
            gtmd.display()
        );
    }
    if gtmd.components().any(|c| c.as_os_str() == "debug") {
        eprintln!(
            "gtmd-bench: warning: {} looks like a debug build; numbers mean little",
            gtmd.display()
        );
    }
    harness::KEEP.store(args.keep, std::sync::atomic::Ordering::Relaxed);
    if let Some(filter) = &args.gtmd_log {
        let _ = harness::GTMD_LOG.set(filter.clone());
    }
    page::HTTP.store(args.http, std::sync::atomic::Ordering::Relaxed);
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let env = Env { base, gtmd, bench };
    let known = ["latency", "burst", "startup", "idle", "orchestration"];
    for o in &args.only {
        if !known.contains(&o.as_str()) {
            bail!("unknown case {o:?}; cases: {}", known.join(", "));
        }
    }
    let want = |c: &str| args.only.is_empty() || args.only.iter().any(|o| o == c);
    let opts = cases::Opts {
        latency_files: if args.quick { 50 } else { 200 },
        latency_spacing: Duration::from_millis(100),
        burst_files: 10_000,
        burst_agent_cap: Duration::from_secs(if args.quick { 15 } else { 30 }),
        big_files: 100_000,
        big_changed: 1_000,
        idle: Duration::from_secs(args.idle_secs.unwrap_or(if args.quick { 10 } else { 60 })),
    };
    let compare = args.compare
        && {
            let ok = inotify::available();
            if !ok {
                eprintln!("gtmd-bench: --compare: inotifywait is not installed (apt-get install inotify-tools); skipping the comparison");
            }
            ok
        };
    let mut r = report::Report::new(&env, &args_line(&args), compare);
    if args.paired && !compare {
        eprintln!("gtmd-bench: --paired means nothing without --compare");
    }

    if want("latency") {
        let rounds = args.rounds as usize;
        let per_round = cases::Opts {
            latency_files: opts.latency_files.div_ceil(rounds),
            ..opts.clone()
        };
        for mode in [WriteMode::Rename, WriteMode::InPlace] {
            let (mut gs, mut is) = (Vec::new(), Vec::new());
            for round in 1..=rounds {
                if compare && args.paired {
                    eprintln!(
                        "latency: {mode:?}, {} files for gtmd and the loop at once (round {round} of {rounds}) ...",
                        per_round.latency_files
                    );
                    let (g, i) = inotify::latency_paired(&env, &per_round, mode)?;
                    gs.push(g);
                    is.push(i);
                    continue;
                }
                eprintln!(
                    "latency: {mode:?}, {} files (round {round} of {rounds}) ...",
                    per_round.latency_files
                );
                gs.push(cases::latency(&env, &per_round, mode)?);
                if compare {
                    eprintln!("latency: {mode:?} with inotifywait (round {round} of {rounds}) ...");
                    is.push(inotify::latency(&env, &per_round, mode)?);
                }
            }
            let g = harness::Latency::pooled(&gs);
            let i = compare.then(|| harness::Latency::pooled(&is));
            r.latency(mode, opts.latency_spacing, &g, i.as_ref());
            if compare && args.paired {
                r.note(format!(
                    "latency {mode:?}: --paired: gtmd and the loop ran at once on two workspaces, each file dropped for gtmd and {} ms later for the loop",
                    opts.latency_spacing.as_millis() / 2
                ));
            }
            if compare && rounds > 1 {
                let ratios: Vec<String> = gs
                    .iter()
                    .zip(&is)
                    .map(|(g, i)| format!("{:.2}x", g.p50 / i.p50))
                    .collect();
                r.note(format!(
                    "latency {mode:?}: gtmd's p50 over the loop's, round by round: {}",
                    ratios.join(" ")
                ));
            }
        }
    }
    if want("burst") {
        let mut queues = vec![None];
        if args.low_queue {
            queues.push(Some(256));
        }
        for q in queues {
            eprintln!("burst: {} files (queue {q:?}) ...", opts.burst_files);
            let g = cases::burst(&env, &opts, q)?;
            let i = if compare {
                eprintln!("burst with inotifywait ...");
                Some(inotify::burst(&env, &opts, q)?)
            } else {
                None
            };
            r.burst(&g, i.as_ref());
        }
    }
    if want("startup") || want("idle") {
        eprintln!("start-up and idle: {} files ...", opts.big_files);
        let (s, i) = cases::big_workspace(&env, &opts, want("startup"), want("idle"))?;
        if let Some(s) = s {
            r.startup(&s);
            r.startup_notes(&s);
        }
        if let Some(i) = i {
            r.idle(&i);
        }
    }
    if want("orchestration") {
        eprintln!("orchestration: four phases ...");
        let o = cases::orchestration(&env)?;
        r.orchestration(&o);
    }
    if args.http {
        r.note(format!(
            "--http: every gtmd served its web view with a page open on it (server-sent events; {} overview loads in all)",
            page::LOADS.load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    r.print();
    Ok(())
}

fn args_line(args: &Args) -> String {
    let mut v = Vec::new();
    if args.quick {
        v.push("--quick".to_string());
    }
    if args.compare {
        v.push("--compare".to_string());
    }
    if args.low_queue {
        v.push("--low-queue".to_string());
    }
    if !args.only.is_empty() {
        v.push(format!("--only {}", args.only.join(",")));
    }
    if args.http {
        v.push("--http".to_string());
    }
    if args.paired {
        v.push("--paired".into());
    }
    if args.rounds > 1 {
        v.push(format!("--rounds {}", args.rounds));
    }
    v.join(" ")
}
