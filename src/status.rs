//! `gtmd status`: the journal replayed into an engine, then described. Works
//! the same whether or not a daemon is running.

use crate::config::Settings;
use crate::diagnostic::one_line;
use crate::engine::{Engine, Millis, Run, StepState, Task, TaskState};
use crate::journal::StateLock;
use crate::record::time;
use anyhow::Result;
use serde_json::json;
use std::fmt::Write;

/// One line for a run: where it is.
pub fn run_line(engine: &Engine, run: &Run) -> String {
    format!(
        "run {}: {}",
        run.id,
        crate::summary::run_summary(engine, run)
    )
}

pub fn print(settings: &Settings, as_json: bool) -> Result<()> {
    let engine = crate::replay::load(settings)?;
    let daemon = StateLock::is_held(&settings.paths.state_dir);
    let workspace = settings.paths.workspace.display().to_string();
    let jobs = JobStates::ask(&engine);
    if as_json {
        let value = json_status(&engine, &workspace, daemon, &jobs);
        crate::outln!("{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    crate::output::stdout(&text_status(&engine, &workspace, daemon, now, &jobs))?;
    Ok(())
}

/// What the cluster scheduler says of the jobs of open tasks, by job id
/// (`PENDING`, `RUNNING`, ...): a job may wait in the queue for hours, and
/// "running" would then be a lie.
#[derive(Debug, Default)]
pub struct JobStates(std::collections::BTreeMap<String, String>);

impl JobStates {
    /// Ask `squeue`, once, about every open task's job (nothing when no
    /// task runs as a job).
    pub fn ask(engine: &Engine) -> JobStates {
        let ids: Vec<&str> = engine
            .tasks()
            .values()
            .filter(|t| t.is_open() && t.process_alive)
            .filter_map(|t| t.job.as_ref()?.id.as_deref())
            .collect();
        JobStates(crate::runner::slurm::job_states(&ids))
    }

    /// A task's job and its state: (`id`, `state`) when there is a job.
    fn of(&self, t: &Task) -> Option<(String, Option<&str>)> {
        let job = t.job.as_ref().filter(|_| t.process_alive)?;
        let id = job.id.clone().unwrap_or_else(|| job.name.clone());
        Some((
            id,
            job.id
                .as_deref()
                .and_then(|i| self.0.get(i))
                .map(String::as_str),
        ))
    }

    /// What a task is doing, as [`task_state`] says, with its job's state.
    fn task_state(&self, t: &Task, daemon_running: bool) -> (&'static str, String) {
        let submitting = t.job.as_ref().is_some_and(|j| j.id.is_none());
        match (&t.state, self.of(t)) {
            (TaskState::Running, Some((name, _))) if submitting && daemon_running => (
                "submitting",
                format!(
                    "being submitted to the cluster as {name} since {}",
                    t.started_at.map(time).unwrap_or_default()
                ),
            ),
            (TaskState::Running, Some((id, Some(state)))) if state.starts_with("PENDING") => (
                "pending",
                format!(
                    "waiting in the cluster's queue as job {id} since {}",
                    t.started_at.map(time).unwrap_or_default()
                ),
            ),
            (TaskState::Running, Some((id, state))) => (
                "running",
                format!(
                    "running as cluster job {id}{} since {}",
                    state.map(|s| format!(" ({s})")).unwrap_or_default(),
                    t.started_at.map(time).unwrap_or_default()
                ),
            ),
            _ => task_state(t, daemon_running),
        }
    }
}

/// What a task is doing as a person would put it, as a word for machines and
/// a phrase. The journal says "running" for a task given to a process; that
/// holds only while a gtmd runs it (when none does, it runs again at the next
/// start). A task in an inbox waits there whether gtmd runs or not.
pub fn task_state(t: &Task, daemon_running: bool) -> (&'static str, String) {
    match &t.state {
        TaskState::Queued => ("queued", "queued".into()),
        TaskState::Running if !t.process_alive => (
            "in-inbox",
            format!(
                "in the inbox of {} since {}",
                t.agent,
                t.started_at.map(time).unwrap_or_default()
            ),
        ),
        TaskState::Running if !daemon_running => (
            "interrupted",
            "interrupted; resumes when gtmd starts".into(),
        ),
        TaskState::Running => (
            "running",
            format!(
                "running since {}",
                t.started_at.map(time).unwrap_or_default()
            ),
        ),
        TaskState::RetryWait => (
            "waiting-to-retry",
            format!("waiting to retry (attempt {})", t.attempt),
        ),
        TaskState::Blocked => ("blocked", format!("blocked: {}", t.blockers.join("; "))),
        TaskState::Done { outcome } => ("done", outcome.label()),
    }
}

/// `gtmd status --json`: the engine's state, each task with its
/// `display_state` (see [`task_state`]).
pub fn json_status(
    engine: &Engine,
    workspace: &str,
    daemon: bool,
    jobs: &JobStates,
) -> serde_json::Value {
    let task = |t: &Task| {
        let mut v = json!(t);
        if let Some(m) = v.as_object_mut() {
            m.insert("display_state".into(), json!(jobs.task_state(t, daemon).0));
            if let Some((_, Some(state))) = jobs.of(t) {
                m.insert("job_state".into(), json!(state));
            }
        }
        v
    };
    json!({
        "workspace": workspace,
        "daemon_running": daemon,
        "active_run": engine.active_run().map(|r| r.id.clone()),
        "runs": engine.runs().values().map(|r| {
            let mut v = json!(r);
            if let Some(m) = v.as_object_mut() {
                m.insert("cost".into(), json!(engine.run_cost(&r.id)));
            }
            v
        }).collect::<Vec<_>>(),
        "open_tasks": engine.tasks().values().filter(|t| t.is_open()).map(task).collect::<Vec<_>>(),
        "tasks": engine.tasks().values().map(task).collect::<Vec<_>>(),
        "rejected": engine.rejected().values().map(|d| json!({
            "path": d.path, "line": d.line, "message": d.message, "text": d.to_string(),
        })).collect::<Vec<_>>(),
        "refused_requests": engine.refused_requests(),
        "conflicts": engine.conflicts().values().collect::<Vec<_>>(),
        "open_conflicts": engine.open_conflicts(),
        "decisions": engine.decisions().values().collect::<Vec<_>>(),
    })
}

/// The width of the widest of `items`, so columns line up whatever the
/// playbook's step names or the task ids are.
fn width<'a>(items: impl IntoIterator<Item = &'a str>) -> usize {
    items
        .into_iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
}

/// `gtmd status`: the latest run, open tasks, conflicts and refused files.
pub fn text_status(
    engine: &Engine,
    workspace: &str,
    daemon: bool,
    now: Millis,
    jobs: &JobStates,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "workspace {workspace} — daemon {}",
        if daemon { "running" } else { "not running" }
    );
    match engine.runs().values().last() {
        None => {
            let _ = writeln!(s, "no runs yet");
        }
        Some(run) => latest_run(&mut s, engine, run),
    }
    open_tasks(&mut s, engine, daemon, jobs);
    denied_writes(&mut s, engine);
    conflicts(&mut s, engine, now);
    if !engine.rejected().is_empty() {
        let _ = writeln!(s, "refused files: {}", engine.rejected().len());
        for d in engine.rejected().values() {
            let _ = writeln!(s, "  {}", one_line(&d.to_string()));
        }
    }
    s
}

/// The run's line, then each phase: its steps in columns and its gate.
fn latest_run(s: &mut String, engine: &Engine, run: &Run) {
    let _ = writeln!(s, "{}", run_line(engine, run));
    let defs: Vec<_> = run
        .phases
        .iter()
        .filter_map(|p| engine.playbook().phase(*p))
        .flat_map(|p| &p.steps)
        .filter(|d| run.steps.contains_key(&d.id))
        .collect();
    let id_w = width(defs.iter().map(|d| d.id.as_str()));
    let agent_w = width(defs.iter().map(|d| d.agent.as_str()));
    for p in &run.phases {
        let Some(phase) = engine.playbook().phase(*p) else {
            continue;
        };
        let phase_cost = crate::engine::Cost::total(
            engine
                .tasks()
                .values()
                .filter(|t| t.run.as_deref() == Some(run.id.as_str()) && t.phase == Some(*p))
                .map(|t| &t.cost),
        );
        let _ = writeln!(
            s,
            "  phase {} {}{}",
            p,
            phase.name,
            phase_cost.map_or(String::new(), |c| format!(" — {}", c.describe()))
        );
        for def in &phase.steps {
            if let Some(st) = run.steps.get(&def.id) {
                let state = match &st.state {
                    StepState::Waiting => "waiting".to_string(),
                    StepState::Active { task } => format!("active, task {task}"),
                    StepState::AwaitingOutputs { missing } => {
                        format!("missing {}", missing.join(", "))
                    }
                    StepState::Done => "done".to_string(),
                };
                let _ = writeln!(s, "    {:<id_w$}  {:<agent_w$}  {state}", def.id, def.agent);
            }
        }
        if let Some(g) = run.gates.get(p) {
            let ticked = g.boxes.iter().filter(|(_, t)| *t).count();
            let state = if g.passed_at.is_some() {
                "passed"
            } else {
                "open"
            };
            let _ = writeln!(
                s,
                "    gate {state}: {ticked}/{} ticked — {}",
                g.boxes.len(),
                g.path
            );
            for c in g.checks.iter().flatten().filter(|c| !c.passed) {
                let _ = writeln!(s, "      FAIL {}: {}", c.name, c.detail);
            }
        }
    }
}

/// Each open task in columns, with what it is doing.
fn open_tasks(s: &mut String, engine: &Engine, daemon: bool, jobs: &JobStates) {
    let open: Vec<_> = engine.tasks().values().filter(|t| t.is_open()).collect();
    let _ = writeln!(s, "open tasks: {}", open.len());
    let id_w = width(open.iter().map(|t| t.id.as_str()));
    let agent_w = width(open.iter().map(|t| t.agent.as_str()));
    for t in open {
        let _ = writeln!(
            s,
            "  {:<id_w$}  {:<agent_w$}  {}: {}",
            t.id,
            t.agent,
            jobs.task_state(t, daemon).1,
            one_line(&t.text)
        );
    }
}

/// The latest tasks whose runtime denied them a write (a file they do not
/// own): a person should know an agent tried.
fn denied_writes(s: &mut String, engine: &Engine) {
    let denied: Vec<&Task> = engine
        .tasks()
        .values()
        .filter(|t| !t.denials.is_empty())
        .collect();
    if denied.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "writes denied (not the agent's to write): {} task(s)",
        denied.len()
    );
    for t in denied.iter().rev().take(20) {
        let what: Vec<String> = t.denials.iter().map(|d| d.describe()).collect();
        let _ = writeln!(
            s,
            "  {} {}: {}",
            t.id,
            t.agent,
            crate::bounds::some_of(&what, 10, 200, ", ")
        );
    }
}

/// Open conflicts, decisions that could not be fully read, and withdrawn
/// conflicts.
fn conflicts(s: &mut String, engine: &Engine, now: Millis) {
    let (open, closed): (Vec<_>, Vec<_>) = engine
        .conflicts()
        .values()
        .partition(|c| c.closed_at.is_none());
    let _ = writeln!(s, "open conflicts: {}", open.len());
    let path_w = width(open.iter().map(|c| c.path.as_str()));
    for c in open {
        let _ = writeln!(
            s,
            "  {:<path_w$}  open for {}{}: {}",
            c.path,
            crate::record::duration(now.saturating_sub(c.opened_at)),
            if c.decisions.is_empty() {
                String::new()
            } else {
                format!(
                    " (decided in {}, waiting for the agents)",
                    c.decisions.join(", ")
                )
            },
            one_line(&c.title)
        );
    }
    for d in engine
        .decisions()
        .values()
        .filter(|d| !d.problems.is_empty())
    {
        let _ = writeln!(
            s,
            "  decision {} could not be fully read: {}",
            d.path,
            d.problems.join("; ")
        );
    }
    let withdrawn: Vec<_> = closed.into_iter().filter(|c| c.withdrawn).collect();
    if withdrawn.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "withdrawn conflicts (their file was removed; each opens again if its file comes back): {}",
        withdrawn.len()
    );
    let path_w = width(withdrawn.iter().map(|c| c.path.as_str()));
    for c in withdrawn {
        let _ = writeln!(
            s,
            "  {:<path_w$}  withdrawn {}: {}",
            c.path,
            c.closed_at.map(time).unwrap_or_default(),
            one_line(&c.title)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{AgentPolicy, Event, FileContent, RunKind, RunRequest};
    use crate::playbook::Playbook;

    /// An engine in phase 4 (the playbook's longest step names), its steps
    /// given to processes, and a conflict review in the coordinator's inbox.
    fn engine_in_phase_four() -> Engine {
        let agents = crate::agents::AGENTS
            .iter()
            .map(|a| {
                let policy = AgentPolicy {
                    retries: 0,
                    has_command: *a != "coordinator",
                    ..Default::default()
                };
                (a.to_string(), policy)
            })
            .collect();
        let mut e = Engine::new(Playbook::default_playbook(), agents);
        e.handle(&Event::RunRequested {
            request: RunRequest {
                id: "r".into(),
                kind: RunKind::Phases { phases: vec![4] },
                config: Default::default(),
                config_path: "CONFIG.md".into(),
                scenario: None,
                force: true,
                budget_secs: None,
                max_cost: None,
                hard_cap: false,
                max_tokens: None,
            },
            at: 1_764_000_000_000,
        });
        // Its first step done, so the steps after it run.
        let outputs = e
            .playbook()
            .step("performance-analysis")
            .unwrap()
            .1
            .outputs
            .clone();
        for o in outputs {
            let path = if o.ends_with('/') {
                format!("{o}x.md")
            } else {
                o
            };
            e.handle(&Event::FileChanged {
                path,
                hash: "o".into(),
                size: 1,
                mtime_ns: 0,
                at: 1_764_000_000_100,
                content: FileContent::Plain,
            });
        }
        e.handle(&Event::TaskExited {
            task: "t0001-performance-analysis".into(),
            exit: crate::engine::ExitOutcome::Code { code: 0 },
            report: None,
            at: 1_764_000_000_200,
        });
        e.handle(&Event::FileChanged {
            path: "conflicts/scoring.md".into(),
            hash: "h".into(),
            size: 1,
            mtime_ns: 0,
            at: 1_764_000_001_000,
            content: FileContent::Conflict {
                conflict: Default::default(),
            },
        });
        e
    }

    /// Where each line's second column starts, for lines starting with one
    /// of `firsts` (after `indent`).
    fn second_column(text: &str, indent: &str, firsts: &[&str]) -> Vec<usize> {
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(indent)?;
                let first = firsts
                    .iter()
                    .find(|f| rest.strip_prefix(**f).is_some_and(|r| r.starts_with(' ')))?;
                let after = &rest[first.len()..];
                Some(indent.len() + first.len() + after.len() - after.trim_start().len())
            })
            .collect()
    }

    #[test]
    fn columns_fit_the_longest_step_names_and_task_ids() {
        let e = engine_in_phase_four();
        let text = text_status(&e, "ws", true, 1_764_000_002_000, &JobStates::default());
        let steps: Vec<&str> = e.run("2025-11-24-001").map_or_else(
            || panic!("no run: {text}"),
            |r| r.steps.keys().map(String::as_str).collect(),
        );
        assert!(steps.contains(&"playbook-update-demand-generation"));
        let cols = second_column(&text, "    ", &steps);
        assert_eq!(cols.len(), steps.len(), "{text}");
        assert!(cols.iter().all(|c| *c == cols[0]), "{cols:?}\n{text}");
        assert!(cols[0] > "    playbook-update-demand-generation".len());

        let ids: Vec<&str> = e
            .tasks()
            .values()
            .filter(|t| t.is_open())
            .map(|t| t.id.as_str())
            .collect();
        assert!(ids.iter().any(|i| i.len() > 32), "{ids:?}");
        let cols = second_column(&text, "  ", &ids);
        assert_eq!(cols.len(), ids.len(), "{text}");
        assert!(cols.iter().all(|c| *c == cols[0]), "{cols:?}\n{text}");
    }

    #[test]
    fn a_running_task_is_interrupted_while_no_daemon_runs_it() {
        let e = engine_in_phase_four();
        let process = e
            .tasks()
            .values()
            .find(|t| t.state == TaskState::Running && t.process_alive)
            .unwrap();
        let inbox = e
            .tasks()
            .values()
            .find(|t| t.agent == "coordinator")
            .unwrap();
        assert_eq!(inbox.state, TaskState::Running);

        let down = text_status(&e, "ws", false, 1_764_000_002_000, &JobStates::default());
        let line = |text: &str, id: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(id))
                .unwrap_or_else(|| panic!("no line for {id}: {text}"))
                .to_string()
        };
        assert!(
            line(&down, &process.id).contains("interrupted; resumes when gtmd starts"),
            "{down}"
        );
        assert!(!down.contains("running since"), "{down}");
        assert!(
            line(&down, &inbox.id).contains("in the inbox of coordinator since"),
            "{down}"
        );
        let up = text_status(&e, "ws", true, 1_764_000_002_000, &JobStates::default());
        assert!(line(&up, &process.id).contains("running since"), "{up}");
        assert!(line(&up, &inbox.id).contains("in the inbox of coordinator"));

        let state_of = |v: &serde_json::Value, id: &str| {
            v["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["id"] == id)
                .map(|t| (t["display_state"].clone(), t["state"]["state"].clone()))
                .unwrap()
        };
        let down = json_status(&e, "ws", false, &JobStates::default());
        assert_eq!(
            state_of(&down, &process.id),
            (json!("interrupted"), json!("running")),
            "the engine's state is kept beside it"
        );
        assert_eq!(state_of(&down, &inbox.id).0, json!("in-inbox"));
        for t in down["open_tasks"].as_array().unwrap() {
            let id = t["id"].as_str().unwrap();
            assert_eq!(t["display_state"], state_of(&down, id).0, "{id}");
        }
        let up = json_status(&e, "ws", true, &JobStates::default());
        assert_eq!(state_of(&up, &process.id).0, json!("running"));
    }
}
