//! From the journal back to an engine: the last snapshot, then every event
//! after it, in journal order, checked against the checkpoints the live
//! daemon wrote.
//!
//! The engine is a pure function of its events, and its configuration is
//! one of them, so the state a replay reaches is the state the daemon had.
//! The checkpoints make that promise checkable: the daemon journals a digest
//! of its engine every so often, and a replay that computes another one has
//! parted from what the daemon did somewhere since the last checkpoint they
//! agreed on. That is a bug in gtmd, never the user's doing: it is logged
//! loudly, and fatal where `GTMD_STRICT_REPLAY` is set (the test suite).

use crate::config::Settings;
use crate::engine::{AgentPolicy, Engine, EngineState, Event, DIGEST_SCHEME};
use crate::journal::Recovered;
use crate::playbook::Playbook;
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Where a replay parted from the daemon it replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub journal: PathBuf,
    /// 1-based line of the checkpoint that disagrees.
    pub entry: usize,
    /// The line of the last checkpoint that agreed, if any.
    pub agreed_until: Option<usize>,
    pub live: String,
    pub replayed: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: replaying the journal gives another state than the daemon had at this checkpoint (digest {} instead of {}); they parted after {}. `gtmd status` and a restarted gtmd may not show what the daemon did: this is a bug in gtmd, please keep the state directory for a report",
            self.journal.display(),
            self.entry,
            self.replayed,
            self.live,
            match self.agreed_until {
                Some(line) => format!("line {line}, the last checkpoint that agreed"),
                None => "the start of this journal".to_string(),
            }
        )
    }
}

/// An engine rebuilt from the journal.
pub struct Replayed {
    pub engine: Engine,
    /// The first checkpoint the replay disagreed with.
    pub divergence: Option<Divergence>,
    /// Checkpoints met (and compared).
    pub checkpoints: usize,
}

/// Whether a divergence must stop the program (tests) instead of being
/// reported and survived (production: the replayed state is all there is).
pub fn strict() -> bool {
    crate::test_hooks::strict_replay()
}

/// Which checkpoints a replay compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Every one: the first that disagrees is where replay and daemon parted.
    All,
    /// The last one only (a digest costs a pass over the state); if it
    /// disagrees, the journal is replayed again to find the first that does.
    Last,
}

/// Replay `rec`. `playbook` and `agents` are the configuration to start from
/// when the journal predates journaled configuration; a journal written by
/// this gtmd carries its own. With [`strict`], every checkpoint is compared.
pub fn replay(
    playbook: &Playbook,
    agents: BTreeMap<String, AgentPolicy>,
    rec: Recovered,
) -> Replayed {
    let check = if strict() { Check::All } else { Check::Last };
    replay_checked(playbook, agents, rec, check)
}

/// Replay `rec`, comparing the checkpoints `check` says.
pub fn replay_checked(
    playbook: &Playbook,
    agents: BTreeMap<String, AgentPolicy>,
    mut rec: Recovered,
    check: Check,
) -> Replayed {
    let ours = |e: &Event| matches!(e, Event::Checkpoint { scheme, .. } if scheme == DIGEST_SCHEME);
    let last = rec.events.iter().rposition(ours);
    let base = |snapshot: Option<EngineState>| match snapshot {
        Some(state) => Engine::restore(playbook.clone(), agents.clone(), state),
        None => Engine::new(playbook.clone(), agents.clone()),
    };
    let had_snapshot = rec.snapshot.is_some();
    let (engine, divergence, checkpoints) = run(base(rec.snapshot.take()), &rec, |i| match check {
        Check::All => true,
        Check::Last => Some(i) == last,
    });
    let divergence = match (divergence, check) {
        // Find where they parted: the first checkpoint that disagrees. The
        // snapshot is read again rather than kept in memory all along for
        // what should never happen.
        (Some(at_last), Check::Last) => {
            let again = if had_snapshot {
                rec.journal
                    .parent()
                    .and_then(|dir| crate::journal::reread_snapshot(dir, rec.generation))
                    .map(Some)
            } else {
                Some(None)
            };
            match again {
                Some(snapshot) => run(base(snapshot), &rec, |_| true).1.or(Some(at_last)),
                None => Some(at_last),
            }
        }
        (d, _) => d,
    };
    Replayed {
        engine,
        divergence,
        checkpoints,
    }
}

/// Handle every event, comparing the checkpoints `compare` selects.
fn run(
    mut engine: Engine,
    rec: &Recovered,
    compare: impl Fn(usize) -> bool,
) -> (Engine, Option<Divergence>, usize) {
    let mut divergence = None;
    let mut agreed_until = None;
    let mut checkpoints = 0;
    for (i, event) in rec.events.iter().enumerate() {
        if let Event::Checkpoint { digest, scheme, .. } = event {
            if scheme == DIGEST_SCHEME && divergence.is_none() && compare(i) {
                checkpoints += 1;
                let replayed = engine.digest();
                if replayed == *digest {
                    agreed_until = Some(i + 1);
                } else {
                    divergence = Some(Divergence {
                        journal: rec.journal.clone(),
                        entry: i + 1,
                        agreed_until,
                        live: digest.clone(),
                        replayed,
                    });
                }
            }
        }
        engine.handle(event);
    }
    (engine, divergence, checkpoints)
}

/// Replay with the settings' configuration as the starting point.
pub fn replay_with(settings: &Settings, rec: Recovered) -> Replayed {
    replay(&settings.playbook, settings.policies(), rec)
}

/// The engine's state as the journal of `settings`' state directory says,
/// without a daemon (`gtmd status`, `explain`, clients following a run). A
/// divergence is said on stderr, and is an error when [`strict`].
pub fn load(settings: &Settings) -> Result<Engine> {
    let rec = crate::journal::read(&settings.paths.state_dir)?;
    let replayed = replay_with(settings, rec);
    if let Some(d) = replayed.divergence {
        if strict() {
            anyhow::bail!("{d}");
        }
        eprintln!("gtmd: warning: {d}");
    }
    Ok(replayed.engine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FileContent;
    use crate::journal::Journal;

    fn conflict(i: u64) -> Event {
        Event::FileChanged {
            path: format!("conflicts/{i}.md"),
            hash: format!("h{i}"),
            size: 1,
            mtime_ns: 0,
            at: i,
            content: FileContent::Conflict {
                conflict: Default::default(),
            },
        }
    }

    fn checkpoint(digest: String) -> Event {
        Event::Checkpoint {
            digest,
            scheme: DIGEST_SCHEME.into(),
            at: 0,
        }
    }

    /// A journal whose second checkpoint disagrees with what replay gives
    /// (an event the daemon handled without journaling it): both ways of
    /// checking name that checkpoint's line and the last one that agreed.
    #[test]
    fn a_replay_names_the_checkpoint_where_it_parted_from_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let pb = Playbook::default_playbook();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        let mut live = Engine::new(pb.clone(), BTreeMap::new());
        for i in 0..3 {
            live.handle(&conflict(i));
            journal.append(&[conflict(i)]).unwrap();
        }
        journal.append(&[checkpoint(live.digest())]).unwrap(); // line 4
        live.handle(&conflict(3)); // never journaled
        journal.append(&[conflict(4)]).unwrap();
        live.handle(&conflict(4));
        journal.append(&[checkpoint(live.digest())]).unwrap(); // line 6
        journal.append(&[conflict(5)]).unwrap();
        live.handle(&conflict(5));
        journal.append(&[checkpoint(live.digest())]).unwrap(); // line 8
        drop(journal);
        for check in [Check::All, Check::Last] {
            let rec = crate::journal::read(dir.path()).unwrap();
            let r = replay_checked(&pb, BTreeMap::new(), rec, check);
            let d = r.divergence.expect("the replay parts from the daemon");
            assert_eq!((d.entry, d.agreed_until), (6, Some(4)), "{check:?}: {d}");
            assert!(d.to_string().contains("journal.jsonl:6:"), "{d}");
        }
    }

    #[test]
    fn a_journal_that_agrees_has_no_divergence_and_old_schemes_are_skipped() {
        let pb = Playbook::default_playbook();
        let mut live = Engine::new(pb.clone(), BTreeMap::new());
        let mut events = Vec::new();
        for i in 0..3 {
            live.handle(&conflict(i));
            events.push(conflict(i));
        }
        events.push(checkpoint(live.digest()));
        // A checkpoint of another gtmd version is not compared.
        events.push(Event::Checkpoint {
            digest: "from another version".into(),
            scheme: "gtmd 0.0.1, state digest 0".into(),
            at: 0,
        });
        let rec = Recovered {
            events,
            ..Recovered::default()
        };
        let r = replay_checked(&pb, BTreeMap::new(), rec, Check::All);
        assert_eq!(r.divergence, None);
        assert_eq!(r.checkpoints, 1);
        assert_eq!(r.engine.digest(), live.digest());
    }
}
