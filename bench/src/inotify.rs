//! The same latency and burst cases against the plain loop users compare gtmd
//! with: `inotifywait -m | while read; do prog; done`, starting the same
//! recorder agent with the file name as its task.

use crate::cases::{
    collect_starts, drop_burst, drop_interleaved, drop_spaced, record_landed, set_max_queued,
    trigger_file, Burst, Opts,
};
use crate::harness::*;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn available() -> bool {
    Command::new("inotifywait")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

const SCRIPT: &str = r#"inotifywait -m -r -e close_write -e moved_to --format '%f' "$1" |
while IFS= read -r f; do
  case $f in .*) continue ;; esac
  "$2" agent "$3" "$f"
done"#;

/// The loop, in its own process group, watching `dir` once it says so.
struct Loop {
    child: Option<Child>,
    pgid: i32,
}

impl Loop {
    fn start(env: &Env, dir: &Path, log: &Path) -> Result<Loop> {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("gtmd-bench-loop")
            .arg(dir)
            .arg(&env.bench)
            .arg(log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn()?;
        let pgid = child.id() as i32;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if line.contains("Watches established") {
                    let _ = tx.send(());
                }
            }
        });
        let l = Loop {
            child: Some(child),
            pgid,
        };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            bail!("inotifywait did not establish its watches");
        }
        Ok(l)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling the group we created.
            unsafe {
                libc::kill(-self.pgid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // SAFETY: as above.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }
}

pub fn latency(env: &Env, opts: &Opts, mode: WriteMode) -> Result<Latency> {
    let p = Project::new(env, "inotify-latency")?;
    let log = p.agent_log();
    let _l = Loop::start(env, &p.ws(), &log)?;
    sleep(Duration::from_millis(300))?;
    let put = drop_spaced(&p.ws().join("conflicts"), opts, mode)?;
    let starts = collect_starts(log, put.len())?;
    Ok(match_latencies(&put, &starts, |s| Some(s.task.clone())))
}

/// gtmd and the loop running at once on two workspaces, each file dropped
/// into gtmd's workspace and half a spacing later into the loop's: both
/// react in the same seconds of the machine, so a drift in its speed
/// (a host's load, its disk) weighs on both alike, file by file.
pub fn latency_paired(env: &Env, opts: &Opts, mode: WriteMode) -> Result<(Latency, Latency)> {
    let gp = Project::new(env, "latency")?;
    let lp = Project::new(env, "inotify-latency")?;
    let mut g = Gtmd::start(env, &gp, Some(&recorder_command(env, &gp.agent_log())))?;
    g.wait_ready(Duration::from_secs(30))?;
    let _l = Loop::start(env, &lp.ws(), &lp.agent_log())?;
    sleep(Duration::from_millis(300))?;
    let (gdir, ldir) = (gp.ws().join("conflicts"), lp.ws().join("conflicts"));
    let mut put = drop_interleaved(&[&gdir, &ldir], opts, mode)?;
    let (lput, gput) = (put.remove(1), put.remove(0));
    record_landed(&gp, &gput)?;
    let gstarts = collect_starts(gp.agent_log(), gput.len())?;
    let lstarts = collect_starts(lp.agent_log(), lput.len())?;
    g.stop()?;
    Ok((
        match_latencies(&gput, &gstarts, trigger_file),
        match_latencies(&lput, &lstarts, |s| Some(s.task.clone())),
    ))
}

pub fn burst(env: &Env, opts: &Opts, queue: Option<u64>) -> Result<Burst> {
    let p = Project::new(env, "inotify-burst")?;
    let log = p.agent_log();
    let saved = match queue {
        Some(q) => Some(set_max_queued(q)?),
        None => None,
    };
    let l = Loop::start(env, &p.ws(), &log);
    if let Some(s) = saved {
        set_max_queued(s)?;
    }
    let _l = l?;
    sleep(Duration::from_millis(300))?;
    let (names, first, last) = drop_burst(&p.ws().join("conflicts"), opts.burst_files)?;
    let first_ns = now_ns() - first.elapsed().as_nanos() as u64;
    let mut r = Burst {
        files: names.len(),
        write_secs: (last - first).as_secs_f64(),
        queue,
        ..Burst::default()
    };
    let mut tail = Tail::new(log);
    let mut tasks: HashMap<String, usize> = HashMap::new();
    let mut last_ns = 0;
    let cap = opts.burst_agent_cap.saturating_sub(first.elapsed());
    r.all_started = wait_progress(
        cap,
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            for s in tail.lines().iter().filter_map(|l| parse_start(l)) {
                last_ns = s.ns.max(last_ns);
                *tasks.entry(s.task).or_default() += 1;
            }
            (tasks.len() >= names.len(), tasks.len())
        },
    )?;
    let landed_ns = now_ns() - last.elapsed().as_nanos() as u64;
    if r.all_started {
        r.all_started_after_last = Some(last_ns.saturating_sub(landed_ns) as f64 / 1e9);
    }
    r.starts = tasks.len();
    r.start_doubled = tasks.values().map(|c| c - 1).sum();
    r.start_secs = last_ns.saturating_sub(first_ns) as f64 / 1e9;
    r.journaled = r.starts;
    r.task_lost = names.iter().filter(|n| !tasks.contains_key(*n)).count();
    r.task_doubled = r.start_doubled;
    Ok(r)
}
