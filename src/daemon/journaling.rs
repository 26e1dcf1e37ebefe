//! The daemon's side of the journal: the engine rebuilt from it at start
//! (checked against its checkpoints, the configuration it carries weighed
//! against the files of today), checkpoints written as the daemon goes, and
//! compaction into a snapshot.

use super::{now_ms, Daemon};
use crate::config::Settings;
use crate::engine::{Engine, Event, Millis};
use crate::journal::Journal;
use anyhow::Result;
use std::path::Path;
use std::time::Instant;

/// Journal entries after which the state is snapshotted (GTMD_COMPACT_EVERY
/// overrides it, for tests).
fn compact_every() -> u64 {
    crate::test_hooks::compact_every().unwrap_or(50_000)
}

/// Journal entries between two checkpoints (GTMD_CHECKPOINT_EVERY
/// overrides it, for tests). A digest costs a pass over the whole state, so
/// not per event; a replay then tells within this many entries where it
/// parted from the daemon.
fn checkpoint_every() -> u64 {
    crate::test_hooks::checkpoint_every().unwrap_or(2_000)
}

/// Open the journal and replay it. A playbook changed while gtmd was down
/// may not take a phase or step from a run in progress: the run goes on
/// with the one it has, and `settings` says so from here on.
pub(super) fn recover(state_dir: &Path, settings: Settings) -> Result<(Journal, Engine, Settings)> {
    let workspace = settings.paths.workspace.clone();
    let (journal, recovered) = Journal::open(state_dir)?;
    let replayed = recovered.events.len();
    let from_snapshot = recovered.snapshot.is_some();
    let crate::replay::Replayed {
        engine,
        divergence,
        checkpoints,
    } = crate::replay::replay_with(&settings, recovered);
    tracing::info!(
        from_snapshot,
        checkpoints,
        workspace = %workspace.display(),
        journal = %journal.path().display(),
        "replayed {replayed} journal entries"
    );
    if let Some(d) = divergence {
        if crate::replay::strict() {
            anyhow::bail!("{d}");
        }
        tracing::error!("{d}");
    }
    // A playbook changed while gtmd was down may not take a phase or step
    // from a run in progress: the run goes on with the one it has.
    let mut settings = settings;
    let problems = engine.playbook_change_problems(&settings.playbook);
    if !problems.is_empty() {
        let file = settings
            .paths
            .playbook
            .as_deref()
            .map_or("the playbook".into(), |p| p.display().to_string());
        for p in problems {
            tracing::error!("{file}: {p}");
        }
        tracing::error!(
            "kept the playbook the active run started with (from the journal); use the new one once the run has ended (or `gtmd cancel --run`), then restart or reload gtmd"
        );
        settings.playbook = engine.playbook().clone();
    }

    Ok((journal, engine, settings))
}

impl Daemon {
    /// Keep the journal short: past a number of entries, snapshot the state.
    pub(super) fn maybe_compact(&mut self) {
        if self.journal.entries() < compact_every() || !self.unjournaled.is_empty() {
            return;
        }
        let t = Instant::now();
        match self.journal.compact(&self.engine.snapshot()) {
            Ok(()) => {
                tracing::info!(
                    "compacted the journal into a snapshot in {} ms",
                    t.elapsed().as_millis()
                );
                // The new generation opens with a checkpoint: the next replay
                // checks the snapshot itself.
                self.checkpoint();
            }
            Err(e) => tracing::error!("{e:#}"),
        }
    }

    /// Journal a digest of the engine for replays to compare against (see
    /// [`crate::replay`]): at start, after a compaction, at a clean stop,
    /// and every [`checkpoint_every`] entries.
    pub(super) fn checkpoint(&mut self) {
        match crate::apply::checkpoint(
            &mut self.engine,
            &mut self.journal,
            &self.unjournaled,
            now_ms(),
        ) {
            Ok(true) => self.checkpointed_at = self.journal.entries(),
            Ok(false) => {}
            Err(e) => tracing::error!("{e:#}"),
        }
    }

    pub(super) fn maybe_checkpoint(&mut self) {
        let since = self.journal.entries().saturating_sub(self.checkpointed_at);
        // A compaction starts the count again.
        if since >= checkpoint_every() || self.journal.entries() < self.checkpointed_at {
            self.checkpoint();
        }
    }

    /// The event that gives the engine the current settings' configuration.
    pub(super) fn configured_event(&self, at: Millis) -> Event {
        self.engine
            .configure(&self.settings.playbook, self.settings.policies(), at)
    }

    pub(super) fn reload(&mut self) {
        let paths = self.settings.paths.clone();
        let command = self
            .settings
            .agent_command
            .clone()
            .map(|v| shell_words::join(&v));
        match Settings::load(paths, command.as_deref(), self.settings.max_file_size) {
            Ok(mut s) => {
                s.runtime = self.settings.runtime;
                s.backend = self.settings.backend;
                // A run keeps the phases and steps it started with.
                let problems = self.engine.playbook_change_problems(&s.playbook);
                if !problems.is_empty() {
                    let file = s
                        .paths
                        .playbook
                        .as_deref()
                        .map_or("the playbook".into(), |p| p.display().to_string());
                    for p in problems {
                        tracing::error!("reload refused: {file}: {p}");
                    }
                    tracing::error!(
                        "kept the previous playbook and agent definitions: a playbook may not drop, rename or move a phase or step of an active run; reload it once the run has ended (or `gtmd cancel --run`)"
                    );
                    return;
                }
                self.fx.runner.set_agents(s.agents.clone());
                self.fx.runner.set_default_backend(s.backend);
                self.fx
                    .runner
                    .set_runtimes(s.runtime, &s.playbook, &s.prices);
                self.settings = s;
                let ev = self.configured_event(now_ms());
                self.apply(vec![ev]);
                tracing::info!("reloaded the playbook and agent definitions");
            }
            Err(errors) => {
                for e in errors {
                    tracing::error!("reload refused: {e}");
                }
                tracing::error!("kept the previous playbook and agent definitions");
            }
        }
    }
}
