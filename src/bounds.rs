//! Bounds on text that comes from files on the bus.
//!
//! Anyone can write a 1 MiB conflict, a decision naming 10,000 agents or
//! 10,000 learnings files. Texts gtmd builds from them (task texts, log
//! lines, the run record) and values it hands to agent processes (argv and
//! environment, where Linux allows at most 128 KiB per string and about
//! 2 MiB in all) are cut here, saying so; the full content stays in the
//! file it came from, or in a file gtmd writes for the task.

use std::borrow::Cow;

/// `s` in at most `max` bytes: cut at a char boundary and ended with
/// `marker` when it does not fit (the marker counts against `max`).
pub fn truncate<'a>(s: &'a str, max: usize, marker: &str) -> Cow<'a, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut cut = max.saturating_sub(marker.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + marker.len());
    out.push_str(&s[..cut]);
    out.push_str(marker);
    Cow::Owned(out)
}

/// A title, path or name from a file, shortened to `max` chars for a task
/// text or a log line.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!(
            "{}… ({} more chars)",
            &s[..cut],
            s[cut..].chars().count()
        )),
    }
}

/// The first `n` items, each clipped to `item_max` chars, joined by `sep`;
/// "and N more" for the rest.
pub fn some_of(items: &[String], n: usize, item_max: usize, sep: &str) -> String {
    let shown: Vec<Cow<str>> = items.iter().take(n).map(|i| clip(i, item_max)).collect();
    let mut out = shown.join(sep);
    if items.len() > n {
        out.push_str(&format!(" and {} more", items.len() - n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_at_a_char_boundary_and_says_so() {
        assert_eq!(truncate("short", 10, "…cut"), "short");
        assert!(matches!(truncate("short", 5, "…cut"), Cow::Borrowed(_)));
        // "é" is two bytes: a cut at byte 5 would split the third one.
        let s = "ééééé";
        let t = truncate(s, 8, "[+]");
        assert_eq!(t, "éé[+]");
        assert!(t.len() <= 8);
        let big = "日本語".repeat(10_000);
        let t = truncate(&big, 16 * 1024, " … [truncated]");
        assert!(t.len() <= 16 * 1024, "{}", t.len());
        assert!(t.ends_with(" … [truncated]"));
        assert!(big.starts_with(t.trim_end_matches(" … [truncated]")));
        // A bound smaller than the marker still returns something valid.
        assert_eq!(truncate("abcdef", 2, "[truncated]"), "[truncated]");
    }

    #[test]
    fn clip_and_some_of_bound_what_files_bring_into_texts() {
        assert_eq!(clip("conflicts/x.md", 20), "conflicts/x.md");
        let long = "a".repeat(100_000);
        let c = clip(&long, 10);
        assert_eq!(c, "aaaaaaaaaa… (99990 more chars)");
        let items: Vec<String> = (0..10_000).map(|i| format!("agent{i}")).collect();
        let s = some_of(&items, 3, 50, ", ");
        assert_eq!(s, "agent0, agent1, agent2 and 9997 more");
        assert_eq!(some_of(&items[..2], 3, 50, "; "), "agent0; agent1");
    }
}
