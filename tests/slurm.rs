//! The slurm backend against a real Slurm cluster (`scripts/slurm-single-node.sh
//! start` makes one on this machine; SLURM_CONF names its configuration):
//! the four phases run as batch jobs, a job outlives a SIGKILLed gtmd and its
//! task completes once, `gtmd cancel` ends a job, and a job over its time
//! limit is retried.
//!
//! Without a cluster (`sinfo` fails) each test says "skipped: ..." and
//! passes, unless `GTMD_REQUIRE_SLURM=1` (CI), where it fails.

mod common;

use common::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn cluster_or_skip(test: &str) -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%a"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("up"));
    if up {
        return true;
    }
    let how = "start one with `scripts/slurm-single-node.sh start` (as root) and export SLURM_CONF=/var/tmp/gtmd-slurm/slurm.conf";
    if std::env::var("GTMD_REQUIRE_SLURM").is_ok_and(|v| v == "1") {
        panic!("{test}: GTMD_REQUIRE_SLURM=1 but no Slurm cluster answers: {how}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: no Slurm cluster answers; {how}"
    );
    false
}

/// The jobs the test's tasks ran in, from job-agent.sh's log; each is
/// cancelled when the test ends, pass or fail, so none is left queued.
struct Jobs {
    file: PathBuf,
}

impl Jobs {
    fn new(p: &Project) -> Jobs {
        let file = p.root().join("jobs.log");
        std::fs::write(&file, "").unwrap();
        Jobs { file }
    }

    /// (task, job id) per line.
    fn list(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace().skip(1);
                Some((it.next()?.to_string(), it.next()?.to_string()))
            })
            .collect()
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        let ids: Vec<String> = self.list().into_iter().map(|(_, id)| id).collect();
        if !ids.is_empty() {
            let _ = Command::new("scancel").args(&ids).output();
        }
    }
}

/// What the scheduler says of a job: `squeue` while it remembers it, else
/// the job-completion log.
fn job_state(id: &str) -> String {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-j", id, "-o", "%T"])
        .output()
        .unwrap();
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !state.is_empty() {
        return state;
    }
    let out = Command::new("sacct")
        .args(["-c", "-n", "-P", "-j", id, "-o", "JobID,State"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .find(|(j, _)| *j == id)
        .map(|(_, s)| s.to_string())
        .unwrap_or_default()
}

fn agent_cmd() -> String {
    format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("job-agent.sh").display()
    )
}

fn envs(p: &Project, jobs: &Jobs, mode: &str) -> Vec<(&'static str, String)> {
    let log = p.root().join("agent.log");
    if !log.exists() {
        std::fs::write(&log, "").unwrap();
    }
    vec![
        ("GTMD_TEST_LOG", log.display().to_string()),
        ("GTMD_TEST_JOBS", jobs.file.display().to_string()),
        ("GTMD_TEST_MODE", mode.to_string()),
        (
            "GTMD_TEST_RELEASE",
            p.root().join("release").display().to_string(),
        ),
        (
            "GTMD_TEST_MARK",
            p.root().join("overran").display().to_string(),
        ),
    ]
}

fn starts(p: &Project) -> usize {
    std::fs::read_to_string(p.root().join("agent.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("start "))
        .count()
}

#[test]
fn the_four_phases_run_as_slurm_jobs() {
    if !cluster_or_skip("the_four_phases_run_as_slurm_jobs") {
        return;
    }
    let p = Project::new();
    let jobs = Jobs::new(&p);
    let mut c = p.cmd();
    for (k, v) in envs(&p, &jobs, "") {
        c.env(k, v);
    }
    c.args([
        "team",
        "run",
        "--phases",
        "all",
        "--config",
        "CONFIG.md",
        "--backend",
        "slurm",
        "--agent-command",
        &agent_cmd(),
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut g = Guard {
        child: Some(c.spawn().unwrap()),
    };
    let out = g.wait(Duration::from_secs(600));
    assert!(
        out.status.success(),
        "team run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran = jobs.list();
    let status = p.status_json();
    let tasks = status["tasks"].as_array().unwrap();
    // Every task (21 steps, 3 gate reviews, the hand-offs) ran in a job of
    // its own, once.
    assert_eq!(ran.len(), tasks.len(), "{ran:?}");
    let distinct: std::collections::BTreeSet<&String> = ran.iter().map(|(t, _)| t).collect();
    assert_eq!(distinct.len(), ran.len(), "a task ran twice: {ran:?}");
    let steps = tasks.iter().filter(|t| t["step"].is_string()).count();
    assert_eq!(steps, 3 + 4 + 5 + 9);
    assert_eq!(starts(&p), ran.len());
    for (task_id, job) in &ran {
        assert_ne!(job, "none", "{task_id} did not run in a Slurm job");
        let t = task_in(&status, task_id);
        assert_eq!(t["job"]["id"], job.as_str(), "{t}");
        assert_eq!(job_state(job), "COMPLETED", "job {job} of {task_id}");
    }
    let record = std::fs::read_dir(p.path("runs"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".md"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap();
    assert!(record.contains("- state: complete"), "{record}");
}

/// A daemon serving the workspace with the slurm backend.
fn serve(p: &Project, envs: &[(&'static str, String)]) -> Guard {
    p.serve(
        &["--backend", "slurm", "--agent-command", &agent_cmd()],
        envs,
    )
}

/// `gtmd agent run growth-analyst` handed to the daemon; the task's id once
/// its job has started.
fn held_task(p: &Project, jobs: &Jobs) -> (Guard, String, String) {
    let follower = p.spawn(&["agent", "run", "growth-analyst", "--task", "hold on"]);
    let (task, job) = wait_for(Duration::from_secs(60), "the task's job to start", || {
        jobs.list().into_iter().next()
    });
    (follower, task, job)
}

#[test]
fn a_job_outlives_a_killed_gtmd_and_its_task_completes_once() {
    if !cluster_or_skip("a_job_outlives_a_killed_gtmd_and_its_task_completes_once") {
        return;
    }
    let p = Project::new();
    let jobs = Jobs::new(&p);
    let envs = envs(&p, &jobs, "hold");
    let mut g = serve(&p, &envs);
    let (_follower, task_id, job) = held_task(&p, &jobs);
    g.signal(libc::SIGKILL);
    let _ = g.wait(Duration::from_secs(10));
    // The job is not gtmd's child: it runs on.
    assert_eq!(job_state(&job), "RUNNING");
    let t = p.task_json(&task_id);
    assert_eq!(t["display_state"], "running", "{t}");

    let g = serve(&p, &envs);
    std::fs::write(p.root().join("release"), "").unwrap();
    wait_for(Duration::from_secs(60), "the task to complete", || {
        let t = p.task_json(&task_id);
        t["state"].to_string().contains("complete").then_some(())
    });
    assert_eq!(jobs.list(), vec![(task_id.clone(), job.clone())]);
    assert_eq!(starts(&p), 1);
    let t = p.task_json(&task_id);
    assert_eq!(
        (t["attempt"].as_u64(), t["submissions"].as_u64()),
        (Some(1), Some(1)),
        "{t}"
    );
    assert_eq!(job_state(&job), "COMPLETED");
    drop(g);
}

#[test]
fn a_job_submitted_just_before_a_crash_is_found_by_its_name() {
    if !cluster_or_skip("a_job_submitted_just_before_a_crash_is_found_by_its_name") {
        return;
    }
    let p = Project::new();
    let jobs = Jobs::new(&p);
    let envs = envs(&p, &jobs, "hold");
    // This gtmd dies right after sbatch answered: the journal has the job's
    // name, not its id.
    let mut dying = envs.clone();
    dying.push(("GTMD_DEBUG_DIE_AFTER_SUBMIT", "1".into()));
    let mut g = serve(&p, &dying);
    let _follower = p.spawn(&["agent", "run", "growth-analyst", "--task", "hold on"]);
    let out = g.wait(Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let (task_id, job) = wait_for(Duration::from_secs(60), "the job to start", || {
        jobs.list().into_iter().next()
    });
    assert!(p.task_json(&task_id)["job"]["id"].is_null());

    let _g = serve(&p, &envs);
    wait_for(
        Duration::from_secs(30),
        "the job's id to be journaled",
        || (p.task_json(&task_id)["job"]["id"] == job.as_str()).then_some(()),
    );
    std::fs::write(p.root().join("release"), "").unwrap();
    wait_for(Duration::from_secs(60), "the task to complete", || {
        p.task_json(&task_id)["state"]
            .to_string()
            .contains("complete")
            .then_some(())
    });
    // One job: the restarted gtmd followed it instead of submitting another.
    assert_eq!(jobs.list(), vec![(task_id, job)]);
    assert_eq!(starts(&p), 1);
}

#[test]
fn cancel_ends_the_tasks_job() {
    if !cluster_or_skip("cancel_ends_the_tasks_job") {
        return;
    }
    let p = Project::new();
    let jobs = Jobs::new(&p);
    let _g = serve(&p, &envs(&p, &jobs, "hold"));
    let (mut follower, task_id, job) = held_task(&p, &jobs);
    let out = p.run(&["cancel", &task_id]);
    assert!(out.status.success(), "{out:?}");
    wait_for(Duration::from_secs(60), "the job to be cancelled", || {
        job_state(&job).starts_with("CANCELLED").then_some(())
    });
    let out = follower.wait(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(p.task_json(&task_id)["state"]
        .to_string()
        .contains("cancelled"));
    assert_eq!(starts(&p), 0, "the agent ran past its cancel");
}

/// An agent file that runs on Slurm with a one-minute limit and one retry.
fn overrunning_agent(p: &Project) {
    let def = format!(
        "---\nname: growth-analyst\ncommand: [{:?}, \"{{agent}}\", \"{{task_id}}\", \"{{phase}}\", \"{{step}}\"]\nbackend: slurm\ntimeout: 60\nretries: 1\n---\n# Growth Analyst\n\nMeasures.\n",
        fixture("job-agent.sh").display().to_string()
    );
    std::fs::write(p.root().join("agents/growth-analyst.md"), def).unwrap();
}

#[test]
fn a_job_past_its_time_limit_is_retried() {
    if !cluster_or_skip("a_job_past_its_time_limit_is_retried") {
        return;
    }
    let p = Project::new();
    let jobs = Jobs::new(&p);
    overrunning_agent(&p);
    // No --backend: the agent file says where it runs.
    let _g = p.serve(&[], &envs(&p, &jobs, "overrun-once"));
    let _follower = p.spawn(&["agent", "run", "growth-analyst", "--task", "measure"]);
    // Slurm ends the first job a minute or so after its limit (its own
    // checks and kill wait); the retry is a second job.
    let ran = wait_for(Duration::from_secs(300), "a second job", || {
        let l = jobs.list();
        (l.len() >= 2).then_some(l)
    });
    assert_eq!(ran[0].0, ran[1].0);
    assert_ne!(ran[0].1, ran[1].1);
    assert_eq!(job_state(&ran[0].1), "TIMEOUT");
    wait_for(Duration::from_secs(60), "the retry to complete", || {
        let t = p.task_json(&ran[0].0);
        t["state"].to_string().contains("complete").then_some(t)
    });
    let t = p.task_json(&ran[0].0);
    assert_eq!(t["attempt"], 2, "{t}");
    // The run record says why the first attempt ended.
    wait_for(
        Duration::from_secs(20),
        "the record to say it timed out",
        || {
            std::fs::read_dir(p.path("runs"))
                .ok()?
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".md"))
                .any(|e| {
                    std::fs::read_to_string(e.path())
                        .is_ok_and(|r| r.contains("stopped after its timeout"))
                })
                .then_some(())
        },
    );
}

#[test]
fn check_says_when_slurms_client_is_missing() {
    let p = Project::new();
    // A PATH without sbatch.
    let empty = p.root().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = p
        .cmd()
        .env("PATH", &empty)
        .args(["check", "--backend", "slurm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("backend slurm: Slurm's `sbatch` is not on the PATH"),
        "{text}"
    );
}

/// A copy of the cluster's configuration whose controller port nobody
/// listens on: `sbatch` tries it for several seconds, then gives up.
fn unreachable_controller(p: &Project) -> PathBuf {
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| "/etc/slurm/slurm.conf".into());
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&conf).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("SlurmctldPort="))
        .map(|l| format!("{l}\n"))
        .collect();
    let dead = p.root().join("unreachable-slurm.conf");
    std::fs::write(&dead, format!("{text}SlurmctldPort={port}\n")).unwrap();
    dead
}

#[test]
fn a_scheduler_that_does_not_answer_holds_back_no_other_agent() {
    if !cluster_or_skip("a_scheduler_that_does_not_answer_holds_back_no_other_agent") {
        return;
    }
    let p = Project::new();
    let jobs = Jobs::new(&p);
    let def = format!(
        "---\nname: growth-analyst\ncommand: [{:?}, \"{{agent}}\", \"{{task_id}}\", \"{{phase}}\", \"{{step}}\"]\nbackend: slurm\nretries: 0\n---\n# Growth Analyst\n\nMeasures.\n",
        fixture("job-agent.sh").display().to_string()
    );
    std::fs::write(p.root().join("agents/growth-analyst.md"), def).unwrap();
    let mut env = envs(&p, &jobs, "plain");
    env.push((
        "SLURM_CONF",
        unreachable_controller(&p).display().to_string(),
    ));
    // Every other agent runs here, as a local process.
    let local = format!(
        "{} {{agent}} {{task_id}} {{phase}} {{step}}",
        fixture("agent.sh").display()
    );
    let _g = p.serve(&["--agent-command", &local], &env);
    let _on_cluster = p.spawn(&["agent", "run", "growth-analyst", "--task", "measure"]);
    let submitting = wait_for(Duration::from_secs(20), "the job being submitted", || {
        p.status_json()["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["agent"] == "growth-analyst")
            .filter(|t| t["display_state"] == "submitting")
            .map(|t| t["id"].as_str().unwrap().to_string())
    });
    let mut here = p.spawn(&["agent", "run", "brand-messaging", "--task", "write"]);
    let out = here.wait(Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    let brand = p.status_json()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["agent"] == "brand-messaging")
        .cloned()
        .unwrap();
    // sbatch gives up on the controller after several seconds, and only
    // then does the job's task fail: the local one ended before.
    let failed = wait_for(Duration::from_secs(120), "the submission to fail", || {
        let t = p.task_json(&submitting);
        t["state"].to_string().contains("failed").then_some(t)
    });
    assert!(
        failed
            .to_string()
            .contains("Unable to contact slurm controller"),
        "{failed}"
    );
    let (brand_end, job_end) = (brand["ended_at"].as_u64(), failed["ended_at"].as_u64());
    assert!(
        brand_end.unwrap() < job_end.unwrap(),
        "the local task waited for sbatch: {brand} {failed}"
    );
    assert!(jobs.list().is_empty(), "no job ran");
}

#[test]
fn a_task_cancelled_while_gtmd_was_down_has_its_job_cancelled_at_start() {
    if !cluster_or_skip("a_task_cancelled_while_gtmd_was_down_has_its_job_cancelled_at_start") {
        return;
    }
    let p = Project::new();
    let jobs = Jobs::new(&p);
    let envs = envs(&p, &jobs, "hold");
    let mut g = serve(&p, &envs);
    let (_follower, task_id, job) = held_task(&p, &jobs);
    g.signal(libc::SIGKILL);
    let _ = g.wait(Duration::from_secs(10));
    // No daemon: the cancel waits in requests/ for the next one.
    let out = p.run(&["cancel", &task_id]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(job_state(&job), "RUNNING");
    let _g = serve(&p, &envs);
    wait_for(Duration::from_secs(60), "the job to be cancelled", || {
        job_state(&job).starts_with("CANCELLED").then_some(())
    });
    wait_for(Duration::from_secs(60), "the task to end cancelled", || {
        let t = p.task_json(&task_id);
        t["state"].to_string().contains("cancelled").then_some(t)
    });
    assert_eq!(starts(&p), 0, "the agent ran past its cancel");
    assert_eq!(jobs.list().len(), 1, "no second job");
}
