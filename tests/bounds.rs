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
