//! Each file's story (what `gtmd explain` says of it), told as the daemon
//! handles its events, for the web view's file pages.
//!
//! `gtmd explain` replays the journal; the web view must not, so the daemon
//! tells the story as it goes ([`Recorder`], called from [`crate::apply`]
//! around each event) with the same words ([`crate::explain::Story`]). It
//! covers what happened since this gtmd started: the page says so and
//! points at `gtmd explain` for the rest. Bounded: the latest
//! [`MAX_ENTRIES`] entries of the [`MAX_FILES`] files changed last.

use crate::engine::{Action, Engine, Event, Millis};
use crate::explain::{paths_of, Before, Entry, Story};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const MAX_FILES: usize = 2000;
const MAX_ENTRIES: usize = 50;

/// The stories, shared between the daemon (writing) and the pages (reading
/// one file's at a time, briefly, on the same thread).
#[derive(Clone, Default)]
pub struct Stories(Arc<Mutex<Book>>);

#[derive(Default)]
struct Book {
    files: HashMap<String, FileStory>,
    /// Files by when their story last grew, to forget the stalest first.
    order: BTreeMap<u64, String>,
    tick: u64,
    since: Option<Millis>,
}

#[derive(Default)]
struct FileStory {
    story: Story,
    entries: VecDeque<Entry>,
    /// Entries forgotten from the front.
    dropped: u64,
    tick: u64,
}

/// A file's story as a page shows it.
#[derive(Debug, Clone, Default)]
pub struct Told {
    pub entries: Vec<Entry>,
    pub dropped: u64,
    /// When the daemon started telling stories.
    pub since: Option<Millis>,
}

impl Stories {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn of(&self, rel: &str) -> Told {
        let book = self.lock();
        let since = book.since;
        match book.files.get(rel) {
            Some(f) => Told {
                entries: f.entries.iter().cloned().collect(),
                dropped: f.dropped,
                since,
            },
            None => Told {
                since,
                ..Told::default()
            },
        }
    }
}

impl Book {
    fn add(&mut self, rel: &str, entries: Vec<Entry>) {
        self.tick += 1;
        let tick = self.tick;
        let f = self.files.entry(rel.to_string()).or_default();
        self.order.remove(&f.tick);
        f.tick = tick;
        self.order.insert(tick, rel.to_string());
        f.entries.extend(entries);
        while f.entries.len() > MAX_ENTRIES {
            f.entries.pop_front();
            f.dropped += 1;
        }
        while self.files.len() > MAX_FILES {
            let Some((_, stale)) = self.order.pop_first() else {
                break;
            };
            self.files.remove(&stale);
        }
    }
}

/// The daemon's end: told of each event before and after the engine
/// handles it.
pub struct Recorder {
    stories: Stories,
    before: Option<Before>,
}

impl Recorder {
    pub fn new(stories: Stories) -> Recorder {
        Recorder {
            stories,
            before: None,
        }
    }

    /// Stories start now (the engine as recovered from the journal).
    pub fn start(&mut self, at: Millis) {
        self.stories.lock().since.get_or_insert(at);
    }

    pub fn handling(&mut self, engine: &Engine, event: &Event) {
        self.before = (!paths_of(event).is_empty()).then(|| Before::of(engine, event));
    }

    pub fn handled(&mut self, engine: &Engine, event: &Event, actions: &[Action]) {
        let Some(before) = self.before.take() else {
            return;
        };
        let mut book = self.stories.lock();
        for rel in paths_of(event) {
            // The story's version count lives with the file's entries.
            let mut story = book
                .files
                .get_mut(rel)
                .map(|f| std::mem::take(&mut f.story))
                .unwrap_or_default();
            let entries = story.entries(engine, event, actions, &before, rel);
            book.add(rel, entries);
            if let Some(f) = book.files.get_mut(rel) {
                f.story = story;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            head: format!("e{n}"),
            then: Vec::new(),
        }
    }

    #[test]
    fn stories_keep_the_latest_entries_of_the_files_changed_last() {
        let mut book = Book::default();
        for n in 0..MAX_ENTRIES + 5 {
            book.add("conflicts/a.md", vec![entry(n)]);
        }
        let a = &book.files["conflicts/a.md"];
        assert_eq!(a.entries.len(), MAX_ENTRIES);
        assert_eq!(a.dropped, 5);
        assert_eq!(a.entries[0].head, "e5");
        for n in 0..MAX_FILES {
            book.add(&format!("conflicts/f{n}.md"), vec![entry(n)]);
        }
        assert_eq!(book.files.len(), MAX_FILES);
        assert!(
            !book.files.contains_key("conflicts/a.md"),
            "the stalest goes"
        );
        book.add("conflicts/f0.md", vec![entry(1)]);
        book.add("conflicts/new.md", vec![entry(1)]);
        assert!(
            book.files.contains_key("conflicts/f0.md"),
            "touched again, kept"
        );
        assert!(!book.files.contains_key("conflicts/f1.md"));
        assert_eq!(book.order.len(), book.files.len());
    }
}
