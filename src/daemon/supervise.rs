//! The daemon as a service: what it tells its supervisor (ready, status,
//! stopping) and how it stops (a grace period for running agents, then TERM
//! and KILL of their process groups; a second signal skips the wait).
//!
//! Kept apart from the event loop in `mod.rs`, which only calls in here at a
//! few points.

use super::{now_ms, Control, Daemon};
use crate::engine::{CancelTarget, Event};
use crate::runner::{TaskExit, KILL_GRACE};
use crate::service::{self, Watchdog};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long gtmd waits for killed processes to be reaped before it exits.
const REAP_WAIT: Duration = Duration::from_secs(1);

impl Daemon {
    /// The start-up scan and catch-up are done: say so to systemd (READY=1)
    /// and to a `--daemon` parent.
    pub(super) fn notify_ready(&self) {
        service::ready(&self.status_text());
    }

    /// `STATUS=` for systemd: the run and phase, and the tasks running.
    pub(super) fn report_status(&self) {
        service::status(&self.status_text());
    }

    pub(super) fn status_text(&self) -> String {
        let run = match self.engine.active_run() {
            Some(r) => format!(
                "run {}: {}",
                r.id,
                crate::summary::run_summary(&self.engine, r)
            ),
            None => "idle (no active run)".to_string(),
        };
        let open = self.engine.tasks().values().filter(|t| t.is_open()).count();
        let mut text = format!(
            "{run}; {} task process(es) running",
            self.fx.runner.running_count()
        );
        let queued = self.fx.runner.queued_count();
        if queued > 0 {
            text.push_str(&format!(", {queued} waiting for a slot (--max-parallel)"));
        }
        text.push_str(&format!(", {open} open task(s)"));
        text
    }

    /// When the next active run reaches its wall-clock budget (`--run-budget`).
    pub(super) fn budget_deadline(&self) -> Option<Instant> {
        let now = now_ms();
        self.engine
            .runs()
            .values()
            .filter(|r| r.is_active())
            .filter_map(|r| r.request.budget_secs.map(|b| r.started_at + b * 1000))
            .min()
            .map(|end| Instant::now() + Duration::from_millis(end.saturating_sub(now)))
    }

    /// Cancel every active run past its budget, saying why; its tasks'
    /// process groups are stopped like any cancelled task's.
    pub(super) fn enforce_run_budgets(&mut self) {
        let now = now_ms();
        let over: Vec<(String, u64)> = self
            .engine
            .runs()
            .values()
            .filter(|r| r.is_active())
            .filter_map(|r| r.request.budget_secs.map(|b| (r, b)))
            .filter(|(r, b)| r.started_at + b * 1000 <= now)
            .map(|(r, b)| (r.id.clone(), b))
            .collect();
        let events: Vec<Event> = over
            .into_iter()
            .map(|(run, budget)| {
                let reason = format!(
                    "over its wall-clock budget of {} (--run-budget)",
                    humantime::format_duration(Duration::from_secs(budget))
                );
                tracing::warn!(run = %run, "run {reason}: cancelling it and stopping its tasks");
                Event::CancelRequested {
                    target: CancelTarget::Run { run },
                    reason: Some(reason),
                    at: now,
                }
            })
            .collect();
        if !events.is_empty() {
            self.apply(events);
        }
    }

    /// Stop the task processes: no new ones start; those running get `grace`
    /// to finish by themselves, then their process groups get TERM and, after
    /// [`KILL_GRACE`], KILL. A second SIGTERM/SIGINT on `control` during the
    /// wait KILLs them at once. Returns when every process is gone (or
    /// [`REAP_WAIT`] after the last KILL).
    pub(super) async fn stop_tasks(
        &mut self,
        exit_rx: &mut mpsc::UnboundedReceiver<TaskExit>,
        mut control: Option<&mut mpsc::UnboundedReceiver<Control>>,
        grace: Duration,
    ) {
        let dropped = self.fx.runner.close();
        if dropped > 0 {
            tracing::info!(
                "{dropped} task(s) waiting for a slot were not started; they start after a restart"
            );
        }
        let jobs = self.fx.runner.jobs_count();
        if jobs > 0 {
            tracing::info!(
                "{jobs} cluster job(s) go on without gtmd; the next gtmd follows them to their end"
            );
        }
        let mut watchdog = Watchdog::from_env();
        let running = self.fx.runner.running_count();
        if running > 0 && !grace.is_zero() {
            let text = format!(
                "stopping: waiting up to {} s for {running} task process(es) to finish",
                grace.as_secs_f32()
            );
            tracing::info!("{text} (a second SIGTERM stops them now)");
            service::stopping(&text);
        } else {
            service::stopping("stopping");
        }
        let deadline = Instant::now() + grace;
        let mut hurry = false;
        // 1. The grace period: tasks may finish by themselves.
        while !hurry && self.fx.runner.running_count() > 0 && Instant::now() < deadline {
            tokio::select! {
                exit = exit_rx.recv() => match exit {
                    Some(exit) => self.ended_while_stopping(exit),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {}
                again = next_control(&mut control) => hurry = again,
                _ = watchdog.tick() => watchdog.ping(),
            }
        }
        // 2. TERM, then KILL after KILL_GRACE (at once on a second signal).
        if self.fx.runner.running_count() > 0 {
            if hurry {
                tracing::warn!(
                    "second stop signal: killing {} task process group(s) now",
                    self.fx.runner.running_count()
                );
            } else {
                tracing::info!(
                    "grace period over: stopping {} task process group(s) (TERM, then KILL after {} s)",
                    self.fx.runner.running_count(),
                    KILL_GRACE.as_secs()
                );
                service::status("stopping: TERM sent to the remaining task processes");
                self.fx.runner.stop_all();
                let deadline = Instant::now() + KILL_GRACE + Duration::from_secs(1);
                while !hurry && self.fx.runner.running_count() > 0 && Instant::now() < deadline {
                    tokio::select! {
                        exit = exit_rx.recv() => match exit {
                            Some(exit) => self.ended_while_stopping(exit),
                            None => break,
                        },
                        _ = tokio::time::sleep_until(deadline.into()) => {}
                        again = next_control(&mut control) => hurry = again,
                        _ = watchdog.tick() => watchdog.ping(),
                    }
                }
            }
        }
        // 3. Whatever is left is KILLed; wait a moment so the children are
        // reaped by us rather than left as zombies for init.
        if self.fx.runner.running_count() > 0 {
            self.fx.runner.kill_all();
            let deadline = Instant::now() + REAP_WAIT;
            while self.fx.runner.running_count() > 0 {
                match tokio::time::timeout_at(deadline.into(), exit_rx.recv()).await {
                    Ok(Some(exit)) => self.ended_while_stopping(exit),
                    _ => break,
                }
            }
        }
    }
}

/// The next stop request on `control`, if there is a channel to listen to:
/// `true` for a second SIGTERM/SIGINT; a SIGHUP while stopping is ignored.
async fn next_control(control: &mut Option<&mut mpsc::UnboundedReceiver<Control>>) -> bool {
    loop {
        let Some(rx) = control.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Some(Control::Shutdown) => return true,
            Some(Control::Reload) => {
                tracing::info!("SIGHUP while stopping: ignored");
            }
            None => *control = None,
        }
    }
}
