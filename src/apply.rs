//! The one path every event takes: journaled first, then handed to the
//! engine, then the engine's actions carried out, and the events those lead
//! to (a task that could not start, a gate's checks) the same way, in the
//! order the journal gives them. No action takes effect before its event is
//! durable: the journal's `fdatasync` may still run while the engine decides
//! and a task's process is forked, but that process execs only once the
//! entry is durable, and every other effect waits for it (see
//! [`crate::journal::Durability`]).
//!
//! Kept apart from the daemon's loop so that the property test of
//! "replay equals live" drives exactly this code with a journal in memory
//! and simulated processes: the order it checks is the order the daemon uses.

use crate::engine::{Action, Engine, Event};
use std::collections::VecDeque;

/// Where events become durable.
pub trait Journal {
    /// Append `events`, durable when this returns.
    fn append(&mut self, events: &[Event]) -> anyhow::Result<()>;
    /// Append `events`, maybe durable only later ([`Journal::wait_durable`]).
    fn write(&mut self, events: &[Event]) -> anyhow::Result<()> {
        self.append(events)
    }
    /// Return once everything written is durable.
    fn wait_durable(&mut self) {}
}

impl Journal for crate::journal::Journal {
    fn append(&mut self, events: &[Event]) -> anyhow::Result<()> {
        crate::journal::Journal::append(self, events)
    }
    fn write(&mut self, events: &[Event]) -> anyhow::Result<()> {
        crate::journal::Journal::write(self, events)
    }
    fn wait_durable(&mut self) {
        self.durability().wait();
    }
}

/// A journal in memory (tests, simulations).
impl Journal for Vec<Event> {
    fn append(&mut self, events: &[Event]) -> anyhow::Result<()> {
        self.extend_from_slice(events);
        Ok(())
    }
}

/// What carries out the engine's actions.
pub trait Effects {
    /// Carry out one action; return the events it led to at once (a task
    /// that could not start).
    fn execute(&mut self, engine: &Engine, action: Action) -> Vec<Event>;
    /// Called after all actions of one event: events owed for them (one gate
    /// evaluation per gate, however many actions asked for it).
    fn after_event(&mut self, engine: &Engine) -> Vec<Event>;
    /// Told of each event just before the engine handles it, then with the
    /// actions it gave (before they are carried out): for a view that says
    /// what each event led to (the web view's file stories). By default,
    /// nothing.
    fn handling(&mut self, _engine: &Engine, _event: &Event) {}
    fn handled(&mut self, _engine: &Engine, _event: &Event, _actions: &[Action]) {}
}

/// Journal `events` (after any still `pending` from a failed write), then
/// handle them and what they lead to; everything is durable when this
/// returns. On a journal error the events not yet written are left in
/// `pending`, in order, to be tried again; nothing was acted on for them.
pub fn apply(
    engine: &mut Engine,
    journal: &mut impl Journal,
    pending: &mut Vec<Event>,
    events: Vec<Event>,
    fx: &mut impl Effects,
) -> anyhow::Result<()> {
    let mut queue: VecDeque<Event> = std::mem::take(pending).into();
    queue.extend(events);
    while !queue.is_empty() {
        let batch: Vec<Event> = queue.drain(..).collect();
        if let Err(e) = journal.write(&batch) {
            *pending = batch;
            journal.wait_durable();
            return Err(e);
        }
        for event in &batch {
            fx.handling(engine, event);
            let actions = engine.handle(event);
            tracing::trace!(target: "gtmd::stage", actions = actions.len(), "handled");
            fx.handled(engine, event, &actions);
            for action in actions {
                queue.extend(fx.execute(engine, action));
            }
            queue.extend(fx.after_event(engine));
        }
    }
    journal.wait_durable();
    Ok(())
}

/// Journal a [`Event::Checkpoint`] of the engine as it is. Only when nothing
/// is pending: the digest must cover every entry before it.
pub fn checkpoint(
    engine: &mut Engine,
    journal: &mut impl Journal,
    pending: &[Event],
    at: crate::engine::Millis,
) -> anyhow::Result<bool> {
    if !pending.is_empty() {
        return Ok(false);
    }
    let event = Event::Checkpoint {
        digest: engine.digest(),
        scheme: crate::engine::DIGEST_SCHEME.to_string(),
        at,
    };
    journal.append(std::slice::from_ref(&event))?;
    engine.handle(&event);
    Ok(true)
}
