//! What grows with the bus stays bounded where it must: argv and the
//! environment of agent processes (E2BIG), the run record, `STATE/tasks/`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// Most bytes gtmd puts in one argument or environment value (`MAX_VALUE`).
const MAX_VALUE: usize = 16 * 1024;

fn record_env_cmd() -> String {
    format!("{} {{task}}", fixture("record-env.sh").display())
}

fn env_dir(p: &Project) -> PathBuf {
    p.root().join("env")
}

/// What `record-env.sh` recorded for the first task whose id ends with
/// `suffix`: its id and environment. Waits for it.
fn recorded(p: &Project, suffix: &str) -> (String, BTreeMap<String, String>) {
    let path = wait_for(
        Duration::from_secs(60),
        &format!("an agent process of a task *{suffix}"),
        || find_file(&env_dir(p), suffix),
    );
    let id = path.file_name().unwrap().to_string_lossy().to_string();
    let env = fs::read(&path)
        .unwrap()
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    (id, env)
}

fn read(p: &Project, name: &str) -> String {
    fs::read_to_string(env_dir(p).join(name)).unwrap()
}

#[test]
fn ten_thousand_learnings_reach_an_agent_as_a_file_not_an_argument_list_too_long() {
    let p = Project::new();
    let learnings: Vec<String> = (0..10_000)
        .map(|i| format!("learnings/lesson-{i:05}.md"))
        .collect();
    for l in &learnings {
        p.write(l, "Shorter subject lines won.\n");
    }
    let _daemon = p.serve(&["--agent-command", &record_env_cmd()], &[]);
    // The start-up scan has read every learnings file.
    p.sync();
    p.write("conflicts/tone.md", "# Tone of voice\n");
    let (id, env) = recorded(&p, "-conflict-review");

    let listed = &env["GTMD_CONTEXT"];
    assert!(
        listed.len() <= MAX_VALUE,
        "GTMD_CONTEXT is {} bytes",
        listed.len()
    );
    let (note, paths) = listed
        .lines()
        .collect::<Vec<_>>()
        .split_last()
        .map(|(n, p)| (n.to_string(), p.to_vec()))
        .unwrap();
    assert!(!paths.is_empty() && paths.iter().all(|l| l.starts_with("learnings/")));
    assert!(
        note.contains(&format!("{} more; full list in", 10_000 - paths.len()))
            && note.contains(&env["GTMD_CONTEXT_FILE"]),
        "{note}"
    );
    // The file lists them all, one a line.
    let all: Vec<String> = read(&p, &format!("{id}.context"))
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(all, learnings);
    let total: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    assert!(total < 512 * 1024, "the environment is {total} bytes");
}

#[test]
fn huge_decisions_still_start_their_tasks() {
    let p = Project::new();
    let _daemon = p.serve(&["--agent-command", &record_env_cmd()], &[]);
    p.write("conflicts/scoring.md", "# Lead scoring thresholds\n");
    recorded(&p, "-conflict-review");

    // 10,000 affected agents, all but two unknown: 10,000 problems.
    let ghosts: Vec<String> = (0..10_000).map(|i| format!("ghost-{i}")).collect();
    p.write(
        "strategy/decisions/scoring.md",
        &format!(
            "---\nresolves: conflicts/scoring.md\naffected: [demand-gen, pipeline-manager, {}]\n---\n# MQL at 60\n",
            ghosts.join(", ")
        ),
    );
    let (id, env) = recorded(&p, "-decision-problem");
    let task = &env["GTMD_TASK"];
    assert!(task.len() <= MAX_VALUE, "GTMD_TASK is {} bytes", task.len());
    assert!(task.contains("\"ghost-0\" is not an agent"), "{task}");
    assert!(task.ends_with("and 9980 more"), "{task}");
    assert_eq!(&read(&p, &format!("{id}.arg")), task, "{{task}} as argv");
    assert!(read(&p, &format!("{id}.prompt")).contains(task.as_str()));
    recorded(&p, "-apply-decision");

    // A 100 KB `resolves:` path.
    let long = format!("conflicts/{}.md", "x".repeat(100_000));
    p.write(
        "strategy/decisions/long.md",
        &format!("---\nresolves: {long}\naffected: [pipeline-manager]\n---\n# Long\n"),
    );
    let (_, env) = wait_for(Duration::from_secs(60), "a second decision problem", || {
        let dir = fs::read_dir(env_dir(&p)).ok()?;
        let mut ids: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with("-decision-problem"))
            .collect();
        ids.sort();
        (ids.len() == 2).then(|| recorded(&p, &ids[1]))
    });
    let task = &env["GTMD_TASK"];
    assert!(task.len() < 2048, "GTMD_TASK is {} bytes", task.len());
    assert!(
        task.contains("conflicts/xxx") && task.contains("more chars)"),
        "{task}"
    );
}

/// Counts, with inotify, the renames onto one name in a directory: how often
/// gtmd replaced that file (it writes a temporary file and renames it).
struct Renames {
    fd: i32,
    name: Vec<u8>,
    count: usize,
}

impl Renames {
    fn watch(dir: &std::path::Path, name: &str) -> Renames {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain system calls; the descriptor is closed on drop.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1");
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_MOVED_TO) };
        assert!(wd >= 0, "inotify_add_watch {}", dir.display());
        Renames {
            fd,
            name: name.as_bytes().to_vec(),
            count: 0,
        }
    }

    /// Count what has arrived so far (call it often: the kernel's queue is
    /// finite, and an overflow fails the test rather than undercounting).
    fn poll(&mut self) -> usize {
        let head = std::mem::size_of::<libc::inotify_event>();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: reading into a buffer we own, of the length given.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return self.count;
            }
            let mut off = 0;
            while off < n as usize {
                // SAFETY: the kernel wrote whole events; unaligned read of one.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                assert!(ev.mask & libc::IN_Q_OVERFLOW == 0, "inotify queue overflow");
                let name = &buf[off + head..off + head + ev.len as usize];
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                if name == self.name.as_slice() {
                    self.count += 1;
                }
                off += head + ev.len as usize;
            }
        }
    }
}

impl Drop for Renames {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

#[test]
fn a_burst_of_conflict_reviews_rewrites_the_run_record_a_few_times_a_second() {
    let p = Project::new();
    let cmd = fixture("burst-agent.sh").display().to_string();
    let _daemon = p.serve(&["--agent-command", &cmd], &[]);
    let _run = p.spawn(&["team", "run", "--phases", "1", "--config", "CONFIG.md"]);
    let run = wait_for(Duration::from_secs(60), "phase 1's second step", || {
        let s = p.status_json();
        let second = s["tasks"]
            .as_array()?
            .iter()
            .any(|t| t["step"] == "messaging-framework" && t["state"]["state"] == "running");
        second.then(|| s["active_run"].as_str().unwrap().to_string())
    });
    let record = format!("runs/{run}.md");
    let mut renames = Renames::watch(&p.path("runs"), &format!("{run}.md"));
    let started = std::time::Instant::now();
    const N: usize = 500;
    for i in 0..N {
        p.write(
            &format!("conflicts/c{i:03}.md"),
            &format!("# Conflict {i}\n"),
        );
    }
    wait_for(Duration::from_secs(180), "every review to run", || {
        renames.poll();
        let log = fs::read_to_string(p.root().join("reviews.log")).unwrap_or_default();
        (log.lines().count() >= N).then_some(())
    });
    // Every review has ended once the record says so: the last change is
    // written without any event after it.
    wait_for(
        Duration::from_secs(30),
        "the record to show every review complete",
        || {
            renames.poll();
            let text = p.read(&record);
            let done = text
                .lines()
                .filter(|l| l.contains("-conflict-review |") && l.contains("| complete |"))
                .count();
            (done == N).then_some(())
        },
    );
    let elapsed = started.elapsed();
    let n = renames.poll();
    // Rewritten per change, a review (start, end) costs at least one rewrite.
    assert!(
        n < N / 2,
        "{n} rewrites of the record for {N} reviews in {elapsed:?}"
    );
    let allowed = elapsed.as_millis() as usize / 250 + 10;
    assert!(
        n <= allowed,
        "{n} rewrites in {elapsed:?}: more than one per 250 ms"
    );
    fs::write(p.root().join("release"), "").unwrap();
}

/// Files under `STATE/tasks/` (gtmd's own temporary files aside).
fn task_files(p: &Project) -> Vec<String> {
    fs::read_dir(p.ws().join(".gtmd/tasks"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_files_of_ended_tasks_are_removed_once_their_process_is_gone() {
    let p = Project::new();
    let cmd = fixture("report-then-linger.sh").display().to_string();
    let _daemon = p.serve(&["--agent-command", &cmd], &[]);
    p.write("conflicts/linger.md", "# Waits after its status\n");
    for i in 0..5 {
        p.write(&format!("conflicts/quick-{i}.md"), "# Quick\n");
    }
    // The lingering review is complete by its status, its process still runs.
    let lingering = wait_for(
        Duration::from_secs(60),
        "the lingering review's status",
        || {
            let s = p.status_json();
            s["tasks"].as_array()?.iter().find_map(|t| {
                (t["trigger"] == "conflict: conflicts/linger.md" && t["state"]["state"] == "done")
                    .then(|| t["id"].as_str().unwrap().to_string())
            })
        },
    );
    let prompt = p.ws().join(format!(".gtmd/tasks/{lingering}.md"));
    assert!(
        prompt.exists(),
        "the prompt of a running process was removed"
    );
    fs::write(p.root().join("release"), "").unwrap();
    wait_for(Duration::from_secs(60), "every review to end", || {
        let s = p.status_json();
        let tasks = s["tasks"].as_array()?;
        (tasks.len() == 6 && tasks.iter().all(|t| t["state"]["state"] == "done")).then_some(())
    });
    wait_for(Duration::from_secs(10), "STATE/tasks/ to be empty", || {
        task_files(&p).is_empty().then_some(())
    });
}
