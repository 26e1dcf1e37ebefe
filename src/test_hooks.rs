//! The environment variables that exist for tests only, in one place, so a
//! reader sees every way a test can bend the daemon and none hides in the
//! module it bends. None of them is needed in production; each is read where
//! its module asks for it.
//!
//! | variable | effect |
//! |---|---|
//! | `GTMD_COMPACT_EVERY=N` | compact the journal after N entries (default 50,000) |
//! | `GTMD_CHECKPOINT_EVERY=N` | a checkpoint every N journal entries (default 2,000) |
//! | `GTMD_STRICT_REPLAY=1` | a replay that parts from the daemon's checkpoints is an error, and every checkpoint is compared |
//! | `GTMD_DEBUG_DROP_EVENTS=N` | the watcher keeps only every Nth event, as a kernel queue overflow would |
//! | `GTMD_DEBUG_DIE_AFTER_SUBMIT=1` | the daemon dies (exit 137, no clean-up) right after the scheduler took a job, before the job's id is journaled |
//! | `GTMD_DEBUG_DIE_BEFORE_DURABLE=PATH` | the daemon dies (exit 137, no clean-up) once a journal entry of a new version of PATH is written, before the `fdatasync` that makes it durable returns |

fn number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// `GTMD_COMPACT_EVERY`: journal entries before a compaction.
pub fn compact_every() -> Option<u64> {
    number("GTMD_COMPACT_EVERY").filter(|n| *n > 0)
}

/// `GTMD_CHECKPOINT_EVERY`: journal entries between checkpoints.
pub fn checkpoint_every() -> Option<u64> {
    number("GTMD_CHECKPOINT_EVERY").filter(|n| *n > 0)
}

/// `GTMD_STRICT_REPLAY`: divergence is fatal and every checkpoint counts.
pub fn strict_replay() -> bool {
    std::env::var_os("GTMD_STRICT_REPLAY").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `GTMD_DEBUG_DROP_EVENTS`: keep every Nth watcher event (N > 1).
pub fn drop_events_every() -> Option<u64> {
    number("GTMD_DEBUG_DROP_EVENTS").filter(|n| *n > 1)
}

/// `GTMD_DEBUG_DIE_AFTER_SUBMIT`: a crash between a job's submission and
/// its id's journal entry.
pub fn die_after_submit() -> bool {
    std::env::var_os("GTMD_DEBUG_DIE_AFTER_SUBMIT").is_some_and(|v| v == "1")
}

/// `GTMD_DEBUG_DIE_BEFORE_DURABLE`: the path whose new version's journal
/// entry never becomes durable (the daemon dies first).
pub fn die_before_durable() -> Option<String> {
    std::env::var("GTMD_DEBUG_DIE_BEFORE_DURABLE")
        .ok()
        .filter(|p| !p.is_empty())
}
