//! What every case needs: temp directories that remove themselves, `gtmd init`
//! projects, a `gtmd run` child whose log lines are timestamped as they
//! arrive, readers for the journal and the agents' record, /proc counters,
//! and the two ways a writer puts a file on the bus.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Set by SIGINT/SIGTERM: every wait loop checks it and returns an error, so
/// the guards below clean up on the way out.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `--keep`: leave the temp workspaces behind for a look.
pub static KEEP: AtomicBool = AtomicBool::new(false);

pub fn install_interrupt() {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe {
            signal_hook::low_level::register(sig, || INTERRUPTED.store(true, Ordering::SeqCst))
        };
    }
}

pub fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleep in small steps so an interrupt is seen.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_interrupt()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// CLOCK_REALTIME in nanoseconds: the clock the agent records with, so times
/// taken in different processes compare.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Where this bench's scratch directories go (`--dir`, else the system temp dir).
pub struct Env {
    pub base: PathBuf,
    pub gtmd: PathBuf,
    pub bench: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A scratch directory removed (with everything in it) when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(env: &Env, what: &str) -> Result<TempDir> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = env
            .base
            .join(format!("gtmd-bench-{}-{n}-{what}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir { path })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if KEEP.load(Ordering::Relaxed) {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A project made by `gtmd init`: `workspace/`, `agents/`, `CONFIG.md`.
pub struct Project {
    pub dir: TempDir,
}

impl Project {
    pub fn new(env: &Env, what: &str) -> Result<Project> {
        let dir = TempDir::new(env, what)?;
        let out = Command::new(&env.gtmd)
            .arg("init")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", env.gtmd.display()))?;
        if !out.status.success() {
            bail!(
                "gtmd init failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Project { dir })
    }
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn ws(&self) -> PathBuf {
        self.root().join("workspace")
    }
    /// The journal gtmd writes now: `journal.jsonl`, or `journal.N.jsonl`
    /// after N compactions (the newest generation).
    pub fn journal(&self) -> PathBuf {
        let dir = self.ws().join(".gtmd");
        let generation = |name: &str| -> Option<u64> {
            if name == "journal.jsonl" {
                return Some(0);
            }
            name.strip_prefix("journal.")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()
        };
        fs::read_dir(&dir)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                generation(&name).map(|g| (g, e.path()))
            })
            .max_by_key(|(g, _)| *g)
            .map(|(_, p)| p)
            .unwrap_or_else(|| dir.join("journal.jsonl"))
    }
    /// The agents' record: one line per agent start.
    pub fn agent_log(&self) -> PathBuf {
        self.root().join("agent-starts.log")
    }
    /// `gtmd` with this project's paths.
    pub fn gtmd_cmd(&self, env: &Env) -> Command {
        let mut c = Command::new(&env.gtmd);
        c.current_dir(self.root())
            .arg("--workspace")
            .arg(self.ws())
            .arg("--agents")
            .arg(self.root().join("agents"))
            .stdin(Stdio::null());
        c
    }
    /// `gtmd status --json`, parsed (works with or without a daemon).
    pub fn status_json(&self, env: &Env) -> Result<serde_json::Value> {
        let out = self
            .gtmd_cmd(env)
            .args(["status", "--json"])
            .stderr(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("gtmd status --json failed");
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// The recorder agent: `<bench> agent <log> {task_id} {trigger}`.
/// `--gtmd-log`: the log filter of every gtmd the bench starts (default `info`).
pub static GTMD_LOG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn recorder_command(env: &Env, log: &Path) -> String {
    shell_words::join([
        env.bench.to_string_lossy().as_ref(),
        "agent",
        log.to_string_lossy().as_ref(),
        "{task_id}",
        "{trigger}",
    ])
}

/// Children get SIGKILL if the bench dies, so nothing outlives it.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A `gtmd run` child. Its stderr lines are kept with the moment they were read.
pub struct Gtmd {
    child: Option<Child>,
    pub pid: i32,
    pub spawned: Instant,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    /// With `--http`, the page kept open on its web view once it is ready.
    page: Option<crate::page::Page>,
}

impl Gtmd {
    pub fn start(env: &Env, project: &Project, agent_command: Option<&str>) -> Result<Gtmd> {
        let mut cmd = project.gtmd_cmd(env);
        if let Some(a) = agent_command {
            cmd.arg("--agent-command").arg(a);
        }
        cmd.arg("run");
        if crate::page::HTTP.load(Ordering::Relaxed) {
            cmd.args(["--http", "127.0.0.1:0"]);
        }
        cmd.env("GTMD_LOG", GTMD_LOG.get().map_or("info", String::as_str))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", env.gtmd.display()))?;
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        // With --keep, gtmd's log is kept beside its workspace too.
        let mut copy = KEEP
            .load(Ordering::Relaxed)
            .then(|| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(project.root().join("gtmd.stderr"))
                    .ok()
            })
            .flatten();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                let at = Instant::now();
                if let Some(f) = copy.as_mut() {
                    let _ = f.write_all(line.as_bytes());
                }
                sink.lock().unwrap().push((at, std::mem::take(&mut line)));
            }
        });
        Ok(Gtmd {
            pid: child.id() as i32,
            child: Some(child),
            spawned,
            lines,
            page: None,
        })
    }

    /// When a log line containing `needle` was read; waits up to `timeout`.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            check_interrupt()?;
            if let Some((at, _)) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, l)| l.contains(needle))
            {
                return Ok(*at);
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "gtmd exited ({st}) before \"{needle}\":\n{}",
                    self.log_tail(20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "no \"{needle}\" from gtmd within {timeout:?}:\n{}",
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Seconds from spawn to the ready line.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let at = self.wait_line("ready: watching the workspace", timeout)?;
        if crate::page::HTTP.load(Ordering::Relaxed) && self.page.is_none() {
            let addr = self.web_addr()?;
            self.page = Some(crate::page::Page::open(addr));
        }
        Ok(at - self.spawned)
    }

    /// Where `--http 127.0.0.1:0` listens, from gtmd's log.
    fn web_addr(&mut self) -> Result<String> {
        const SAYS: &str = "web view: http://";
        self.wait_line(SAYS, Duration::from_secs(5))?;
        let lines = self.lines.lock().unwrap();
        let line = lines.iter().find(|(_, l)| l.contains(SAYS)).unwrap();
        let at = line.1.find(SAYS).unwrap() + SAYS.len();
        Ok(line.1[at..].chars().take_while(|c| *c != '/').collect())
    }

    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .count()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap();
        let start = lines.len().saturating_sub(n);
        lines[start..]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<String>()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("gtmd did not stop within 10 s of SIGTERM; killed it");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Gtmd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads the lines appended to a file since the last call.
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    pub fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }
    /// Start after what the file holds now.
    pub fn from_end(path: PathBuf) -> Tail {
        let offset = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Tail {
            path,
            offset,
            partial: Vec::new(),
        }
    }
    pub fn lines(&mut self) -> Vec<String> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        let mut start = 0;
        for (i, b) in self.partial.iter().enumerate() {
            if *b == b'\n' {
                out.push(String::from_utf8_lossy(&self.partial[start..i]).into_owned());
                start = i + 1;
            }
        }
        self.partial.drain(..start);
        out
    }
}

/// One agent start as the recorder wrote it: `<task_id> <ns> [<trigger>]`.
#[derive(Debug, Clone)]
pub struct Start {
    pub task: String,
    pub ns: u64,
    pub trigger: String,
}

pub fn parse_start(line: &str) -> Option<Start> {
    let mut it = line.splitn(3, ' ');
    let task = it.next()?.to_string();
    let ns = it.next()?.parse().ok()?;
    let trigger = it.next().unwrap_or("").to_string();
    Some(Start { task, ns, trigger })
}

/// Journal lines that record a new version of a file: the path.
pub fn journaled_path(line: &str) -> Option<String> {
    if !line.contains("\"event\":\"file-changed\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("path")?.as_str().map(String::from)
}

pub fn count_journal_events(path: &Path, event: &str) -> usize {
    let needle = format!("\"event\":\"{event}\"");
    fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.contains(&needle)).count())
        .unwrap_or(0)
}

/// How a writer puts a file on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Write a dot-named temporary beside it, then rename into place.
    Rename,
    /// open(O_CREAT|O_TRUNC), write, close.
    InPlace,
}

/// Put a file in place; returns CLOCK_REALTIME taken just before the final
/// system call (the rename, or the close), i.e. when the writer is done.
pub fn put_file(path: &Path, body: &[u8], mode: WriteMode) -> Result<u64> {
    match mode {
        WriteMode::Rename => {
            let name = path.file_name().unwrap().to_string_lossy();
            let tmp = path.with_file_name(format!(".{name}.tmp"));
            fs::write(&tmp, body)?;
            let t = now_ns();
            fs::rename(&tmp, path)?;
            Ok(t)
        }
        WriteMode::InPlace => {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            f.write_all(body)?;
            let t = now_ns();
            drop(f);
            Ok(t)
        }
    }
}

pub fn conflict_body(tag: &str) -> String {
    format!(
        "---\nraised_by: demand-generation\nagents: [demand-generation, brand-messaging]\nseverity: low\n---\n# Conflict {tag}: lead scoring vs messaging tone\n\nDemand generation wants a discount-led subject line; brand messaging objects.\n"
    )
}

// ---- /proc ----

pub fn rss_kib(pid: i32) -> Option<u64> {
    proc_status_field(pid, "VmRSS:")
}

pub fn hwm_kib(pid: i32) -> Option<u64> {
    proc_status_field(pid, "VmHWM:")
}

fn proc_status_field(pid: i32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime of the process (all its threads, living or gone), in ticks.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are utime and stime; `rest` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Time on CPU of the living threads, in ns (schedstat: finer than ticks).
pub fn cpu_ns(pid: i32) -> Option<u64> {
    let mut total = 0;
    for e in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let s = fs::read_to_string(e.path().join("schedstat")).unwrap_or_default();
        total += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

pub fn thread_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// ---- numbers ----

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub n: usize,
    pub got: usize,
    pub doubled: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Every latency measured, ms, sorted.
    pub samples: Vec<f64>,
}

impl Latency {
    pub fn from_ms(mut ms: Vec<f64>, n: usize, doubled: usize) -> Latency {
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Latency {
            n,
            got: ms.len(),
            doubled,
            p50: percentile(&ms, 50.0),
            p90: percentile(&ms, 90.0),
            p99: percentile(&ms, 99.0),
            max: ms.last().copied().unwrap_or(f64::NAN),
            samples: ms,
        }
    }

    /// Rounds of the same case as one: their samples pooled.
    pub fn pooled(rounds: &[Latency]) -> Latency {
        let ms = rounds
            .iter()
            .flat_map(|r| r.samples.iter().copied())
            .collect();
        let n = rounds.iter().map(|r| r.n).sum();
        let doubled = rounds.iter().map(|r| r.doubled).sum();
        Latency::from_ms(ms, n, doubled)
    }
    pub fn lost(&self) -> usize {
        self.n - self.got
    }
}

/// Latencies from put times (by key) and agent starts (key from each start).
pub fn match_latencies(
    put: &HashMap<String, u64>,
    starts: &[Start],
    key: impl Fn(&Start) -> Option<String>,
) -> Latency {
    let mut first: HashMap<String, u64> = HashMap::new();
    let mut doubled = 0;
    for s in starts {
        let Some(k) = key(s) else { continue };
        if !put.contains_key(&k) {
            continue;
        }
        if first.insert(k, s.ns).is_some() {
            doubled += 1;
        }
    }
    let ms = first
        .iter()
        .map(|(k, ns)| (*ns as f64 - put[k] as f64) / 1e6)
        .collect();
    Latency::from_ms(ms, put.len(), doubled)
}

/// Wait until `f` says done or nothing new has come for `quiet`, up to `cap`.
/// `f` returns (done, progress counter).
pub fn wait_progress(
    cap: Duration,
    quiet: Duration,
    poll: Duration,
    mut f: impl FnMut() -> (bool, usize),
) -> Result<bool> {
    let start = Instant::now();
    let mut last = usize::MAX;
    let mut last_change = Instant::now();
    loop {
        check_interrupt()?;
        let (done, n) = f();
        if done {
            return Ok(true);
        }
        if n != last {
            last = n;
            last_change = Instant::now();
        }
        if start.elapsed() > cap || last_change.elapsed() > quiet {
            return Ok(false);
        }
        std::thread::sleep(poll);
    }
}
