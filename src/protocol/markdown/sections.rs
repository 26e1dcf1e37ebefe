//! Headings and the markdown under each: CONFIG.md's business context and
//! a persona's name are found by heading.

use super::{parse_markdown, push_inline, squash, LineIndex};
use pulldown_cmark::{Event, Tag, TagEnd};

/// A heading and the raw markdown under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// 1 for `#`, 2 for `##`, ...
    pub level: u8,
    /// The heading text, flattened to plain text.
    pub heading: String,
    /// Raw markdown after the heading up to the next heading of the same or a
    /// higher level (so it includes sub-sections).
    pub body: String,
    /// 1-based line of the heading.
    pub line: usize,
}

/// Headings and the raw markdown under each, in document order.
pub fn sections(text: &str) -> Vec<Section> {
    // (level, heading text, heading start, heading end)
    let mut heads: Vec<(u8, String, usize, usize)> = Vec::new();
    let mut open: Option<(u8, String, usize)> = None;
    for (ev, r) in parse_markdown(text) {
        match &ev {
            Event::Start(Tag::Heading { level, .. }) => {
                open = Some((*level as u8, String::new(), r.start));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, h, start)) = open.take() {
                    heads.push((level, squash(&h), start, r.end.max(start)));
                }
            }
            other => {
                if let Some((_, h, _)) = open.as_mut() {
                    push_inline(h, other);
                }
            }
        }
    }
    let lines = LineIndex::new(text);
    let mut out = Vec::with_capacity(heads.len());
    for (i, (level, heading, start, end)) in heads.iter().enumerate() {
        let stop = heads[i + 1..]
            .iter()
            .find(|(l, ..)| l <= level)
            .map(|(_, _, s, _)| *s)
            .unwrap_or(text.len());
        let body_start = (*end).min(stop);
        let body = text.get(body_start..stop).unwrap_or("");
        out.push(Section {
            level: *level,
            heading: heading.clone(),
            body: body.trim_start_matches(['\r', '\n']).trim_end().to_string(),
            line: lines.line(*start),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_nest() {
        let text = "Preamble\n\n# A\nbody a\n## A1\nbody a1\n# B\nbody b\n";
        let s = sections(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].heading, "A");
        assert_eq!(s[0].level, 1);
        assert_eq!(s[0].line, 3);
        assert_eq!(s[0].body, "body a\n## A1\nbody a1");
        assert_eq!(s[1].body, "body a1");
        assert_eq!(s[2].body, "body b");
    }
}
