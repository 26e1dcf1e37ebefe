//! Carrying out the engine's actions: starting tasks, stopping them,
//! scheduling retries, writing gate files, running a gate's checks, noting
//! which run records to rewrite, committing for `--git`.
//!
//! Kept apart from the event loop (`mod.rs`) because it is the other half of
//! [`crate::apply`]: the loop decides when events are applied, this decides
//! what an action does. Events an action leads to (a task that could not
//! start, a gate's check results) are returned, never handled here, so they
//! are journaled before the engine sees them like any other event.

use super::{now_ms, Outcome};
use crate::diagnostic::chain;
use crate::engine::{Action, Engine, Event, ExitOutcome, NoticeLevel, TaskId, TaskSpec};
use crate::fsutil::write_atomic;
use crate::gate_checks::run_gate_checks;
use crate::runner::Runner;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::ingest::{DiskView, Ingest};

pub(super) struct Effects {
    /// Every action that reaches outside gtmd waits here for its event to
    /// be durable; a start is held at its gate instead (see `Runner::start`).
    pub durable: crate::journal::Durability,
    pub runner: Runner,
    pub ingest: Ingest,
    /// Retries due: (when, task).
    pub retries: Vec<(Instant, TaskId)>,
    /// Run records to rewrite after this turn of the loop.
    pub dirty_runs: BTreeSet<String>,
    /// Gates whose checks the current event asked for, run once each.
    pub gate_evals: BTreeSet<(String, u8)>,
    /// `--git`: commits of completed tasks.
    pub git: Option<crate::git::Git>,
    /// The foreground request and, once started, its run.
    pub follow: Option<(String, Option<String>)>,
    /// How the foreground run ended, once it has.
    pub outcome: Option<Outcome>,
    /// `--http`: each file's story, told as its events are handled.
    pub story: Option<crate::web::Recorder>,
}

impl crate::apply::Effects for Effects {
    fn execute(&mut self, engine: &Engine, action: Action) -> Vec<Event> {
        // What only changes gtmd's own memory or log may go ahead; a start
        // is held at its gate; anything that reaches outside waits.
        let inward = matches!(
            action,
            Action::StartTask { .. }
                | Action::ScheduleRetry { .. }
                | Action::EvaluateGate { .. }
                | Action::RecordChanged { .. }
                | Action::Refused { .. }
                | Action::Notice { .. }
                | Action::TaskEnded { .. }
                | Action::RunRefused { .. }
                | Action::RunFinished { .. }
        );
        if !inward {
            self.durable.wait();
        }
        match action {
            Action::StartTask { task } => return self.start_task(engine, &task),
            Action::SubmitJob { task, name } => return self.submit_job(engine, &task, &name),
            Action::ReattachJob {
                task,
                name,
                id,
                submit_if_missing,
            } => return self.reattach_job(engine, &task, &name, id.as_deref(), submit_if_missing),
            Action::StopTask { task } => self.runner.stop(&task),
            Action::CloseInbox { agent, task } => self.runner.close_inbox(&agent, &task),
            Action::DropTaskFiles { task } => self.runner.drop_task_files(&task),
            Action::ScheduleRetry { task, delay_ms } => self
                .retries
                .push((Instant::now() + Duration::from_millis(delay_ms), task)),
            Action::EvaluateGate { run, phase } => {
                self.gate_evals.insert((run, phase));
            }
            Action::WriteFile { path, contents } => {
                let abs = self.ingest.root().join(&path);
                if let Err(e) = write_atomic(&abs, contents.as_bytes()) {
                    tracing::error!(file = %path, "cannot write: {}", chain(&e));
                } else {
                    tracing::info!(file = %path, "wrote gate file");
                }
            }
            Action::RecordChanged { run } => {
                self.dirty_runs.insert(run);
            }
            Action::Refused { diagnostic } => {
                tracing::warn!(file = %diagnostic.path, "refused: {diagnostic}");
            }
            Action::Notice { level, message } => match level {
                NoticeLevel::Info => tracing::info!("{message}"),
                NoticeLevel::Warn => tracing::warn!("{message}"),
            },
            Action::TaskEnded {
                task,
                agent,
                outcome,
                duration_ms,
            } => {
                let took = duration_ms
                    .map(crate::record::duration)
                    .unwrap_or_else(|| "never started".into());
                tracing::info!(task = %task, agent = %agent, outcome = %outcome, duration = %took, "task ended");
            }
            Action::RunRefused { request, reason } => {
                tracing::warn!(request = %request, "run refused: {reason}");
                if self.follow.as_ref().is_some_and(|(id, _)| *id == request) {
                    self.outcome = Some(Outcome::Failed { run: None, reason });
                }
            }
            Action::Commit {
                task,
                agent,
                action_word,
                message_task,
                paths,
                branch,
            } => {
                if let Some(git) = self.git.as_mut() {
                    let message =
                        crate::commit_msg::format_message(&agent, &action_word, &message_task);
                    git.commit(&task, branch.as_deref(), &message, &paths);
                }
            }
            Action::RunFinished { run, ok, summary } => self.run_finished(engine, run, ok, summary),
        }
        Vec::new()
    }

    fn after_event(&mut self, engine: &Engine) -> Vec<Event> {
        std::mem::take(&mut self.gate_evals)
            .into_iter()
            .map(|(run, phase)| self.evaluate_gate(engine, &run, phase))
            .collect()
    }

    fn handling(&mut self, engine: &Engine, event: &Event) {
        if let Some(story) = self.story.as_mut() {
            story.handling(engine, event);
        }
    }

    fn handled(&mut self, engine: &Engine, event: &Event, actions: &[Action]) {
        if let Some(story) = self.story.as_mut() {
            story.handled(engine, event, actions);
        }
    }
}

impl Effects {
    /// A run ended: the foreground run this gtmd follows ends with it.
    fn run_finished(&mut self, engine: &Engine, run: String, ok: bool, summary: String) {
        tracing::info!(run = %run, ok, "run finished: {summary}");
        let ours = engine.run(&run).is_some_and(|r| {
            self.follow
                .as_ref()
                .is_some_and(|(id, _)| *id == r.request.id)
        });
        if ours {
            self.dirty_runs.insert(run.clone());
            self.outcome = Some(if ok {
                Outcome::Done { run, summary }
            } else {
                Outcome::Failed {
                    run: Some(run),
                    reason: summary,
                }
            });
        }
    }

    /// Give a task to its runner; a start that fails is the task's exit.
    fn start_task(&mut self, engine: &Engine, spec: &TaskSpec) -> Vec<Event> {
        let with_rules = self.with_decision_rules(engine, spec);
        let spec = with_rules.as_ref().unwrap_or(spec);
        tracing::info!(task = %spec.id, agent = %spec.agent, trigger = %spec.trigger, "task started");
        if self.runner.on_cluster(&spec.agent) {
            // The job's name is journaled before it is submitted: a gtmd
            // that dies in between finds the job instead of submitting
            // another.
            let n = engine.task(&spec.id).map_or(0, |t| t.submissions) + 1;
            let at = now_ms();
            return vec![Event::JobSubmitting {
                task: spec.id.clone(),
                name: crate::engine::job_name(&spec.id, n, at),
                at,
            }];
        }
        match self.runner.start(spec) {
            Ok(()) => Vec::new(),
            Err(e) => start_failed(spec, &e),
        }
    }

    /// Submit a task's start as the batch job `name`.
    fn submit_job(&mut self, engine: &Engine, spec: &TaskSpec, name: &str) -> Vec<Event> {
        let with_rules = self.with_decision_rules(engine, spec);
        let spec = with_rules.as_ref().unwrap_or(spec);
        // The job's id comes back later (the daemon journals it as it
        // arrives); a refusal, as the task's exit.
        match self.runner.submit(spec, name) {
            Ok(()) => Vec::new(),
            Err(e) => start_failed(spec, &e),
        }
    }

    /// Follow again the job a gtmd before this one submitted; submit it if
    /// it never was.
    fn reattach_job(
        &mut self,
        engine: &Engine,
        spec: &TaskSpec,
        name: &str,
        id: Option<&str>,
        submit_if_missing: bool,
    ) -> Vec<Event> {
        let with_rules = self.with_decision_rules(engine, spec);
        let spec = with_rules.as_ref().unwrap_or(spec);
        match self.runner.reattach(spec, name, id, submit_if_missing) {
            Ok(()) => Vec::new(),
            Err(e) => start_failed(spec, &e),
        }
    }

    /// Run a gate's automatic checks on the files as they are.
    fn evaluate_gate(&self, engine: &Engine, run: &str, phase: u8) -> Event {
        let checks = match (engine.playbook().phase(phase), engine.run(run)) {
            (Some(p), Some(r)) => run_gate_checks(
                p,
                &DiskView {
                    ingest: &self.ingest,
                },
                &r.request.config,
            ),
            _ => Vec::new(),
        };
        Event::GateEvaluated {
            run: run.to_string(),
            phase,
            checks,
            at: now_ms(),
        }
    }

    /// The coordinator's refinement step gets the guide's iterate-vs-restart
    /// recommendation from the unit economics on disk (`decision_rules`).
    fn with_decision_rules(&self, engine: &Engine, spec: &TaskSpec) -> Option<TaskSpec> {
        let rules = &engine.playbook().decision_rules;
        if spec.step.as_deref() != Some(rules.step.as_str()) {
            return None;
        }
        let targets = spec
            .run
            .as_deref()
            .and_then(|r| engine.run(r))
            .map(|r| r.request.config.targets.clone())
            .unwrap_or_default();
        // An agent's output: bounded, and a FIFO put there must not block the loop.
        let text = crate::input::read_bounded(
            &self.ingest.root().join(&rules.file),
            self.ingest.max_protocol_size,
        )
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
        let lines =
            crate::decision_rules::task_details(&rules.file, text.as_deref(), &targets, rules);
        tracing::info!(task = %spec.id, "decision rules: {}", lines[0]);
        let mut spec = spec.clone();
        spec.details.extend(lines);
        Some(spec)
    }
}

/// A start that failed is the task's exit.
fn start_failed(spec: &TaskSpec, e: &crate::runner::StartError) -> Vec<Event> {
    let error = chain(e);
    tracing::warn!(task = %spec.id, "task could not start: {error}");
    vec![Event::TaskExited {
        task: spec.id.clone(),
        exit: ExitOutcome::SpawnFailed { error },
        report: None,
        at: now_ms(),
    }]
}
