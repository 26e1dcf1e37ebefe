//! Front matter: the YAML between `---` lines at the very start of a file
//! (after an optional BOM), and the markdown body after it. Agent files and
//! gate files carry their fields this way.
//!
//! Only the very start counts: pulldown-cmark recognises a metadata block
//! anywhere, which would swallow the text between two `---` rules further
//! down (pulldown-cmark#1000); [`super::parse_markdown`] parses the rest of
//! the document without metadata blocks.

use super::{options, parse_yaml_value, Spanned, YamlBlock};
use crate::diagnostic::{line_of_offset, Diagnostic};
use pulldown_cmark::{Event, MetadataBlockKind, Parser, Tag, TagEnd};
use serde_yaml::Value;
use std::ops::Range;

/// Front matter and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontMatter {
    pub value: Value,
    /// The YAML as found, for line lookups.
    pub yaml: YamlBlock,
    /// The markdown after the closing `---`.
    pub body: String,
    /// 1-based line where `body` starts.
    pub body_line: usize,
}

/// The front matter of `text`, parsed: `Ok(None)` when there is none, an error
/// with its line when its YAML is invalid.
pub fn parse_front_matter(path: &str, text: &str) -> Result<Option<FrontMatter>, Diagnostic> {
    let Some((yaml, body_start)) = front_matter_block(text) else {
        return Ok(None);
    };
    let value = parse_yaml_value(path, &yaml)?;
    Ok(Some(FrontMatter {
        value,
        yaml,
        body: text[body_start..].to_string(),
        body_line: line_of_offset(text, body_start),
    }))
}

/// Front matter as (value, body after it, body's first line); `None` when
/// there is none or its YAML is invalid (use [`parse_front_matter`] for the error).
pub fn front_matter(text: &str) -> Option<(Value, String, usize)> {
    match parse_front_matter("", text) {
        Ok(Some(fm)) => Some((fm.value, fm.body, fm.body_line)),
        _ => None,
    }
}

/// The events of the front matter at the very start of `text` (none if there
/// is none) and the byte offset where the rest of the document begins.
pub(super) fn front_matter_events(text: &str) -> (Vec<Spanned<'_>>, usize) {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let doc = &text[bom..];
    let mut out = Vec::new();
    if !doc.starts_with("---") {
        return (out, bom);
    }
    let mut it = Parser::new_ext(doc, options()).into_offset_iter();
    if let Some((ev @ Event::Start(Tag::MetadataBlock(MetadataBlockKind::YamlStyle)), r)) =
        it.next()
    {
        if r.start == 0 {
            out.push((ev, r.start + bom..r.end + bom));
            for (ev, r) in it {
                let end = matches!(ev, Event::End(TagEnd::MetadataBlock(_)));
                out.push((ev, r.start + bom..r.end + bom));
                if end {
                    return (out, (r.end + bom).min(text.len()));
                }
            }
        }
    }
    (Vec::new(), bom)
}

/// The front matter at the very start of `text`: (its YAML, byte offset where the
/// body starts).
pub(super) fn front_matter_block(text: &str) -> Option<(YamlBlock, usize)> {
    let (events, _) = front_matter_events(text);
    let (first, range) = events.first()?;
    if !matches!(first, Event::Start(Tag::MetadataBlock(_))) {
        return None;
    }
    let mut yaml_range: Option<Range<usize>> = None;
    let mut end = range.end;
    for (ev, r) in &events[1..] {
        match ev {
            Event::Text(_) => {
                yaml_range = Some(match yaml_range {
                    Some(y) => y.start..r.end,
                    None => r.clone(),
                })
            }
            Event::End(TagEnd::MetadataBlock(_)) => {
                end = r.end;
                break;
            }
            _ => {}
        }
    }
    // The block's range ends on its closing `---`; the body begins on the next line.
    let body = if text[..end.min(text.len())].ends_with('\n') {
        end.min(text.len())
    } else {
        next_line_start(text, end)
    };
    let block = match yaml_range {
        Some(y) => YamlBlock {
            text: text[y.start..y.end].to_string(),
            first_line: line_of_offset(text, y.start),
        },
        None => YamlBlock {
            text: String::new(),
            first_line: line_of_offset(text, range.start) + 1,
        },
    };
    Some((block, body))
}

/// Start of the line after the one holding byte `offset` (or the end of text).
fn next_line_start(text: &str, offset: usize) -> usize {
    match text.get(offset..).and_then(|rest| rest.find('\n')) {
        Some(i) => offset + i + 1,
        None => text.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::markdown::extract_yaml;

    #[test]
    fn front_matter_block_is_found_with_its_line() {
        let text = "---\nagent: coordinator\nstatus: complete\n---\n# Body\n";
        let y = extract_yaml(text).unwrap();
        assert_eq!(y.first_line, 2);
        assert_eq!(y.text, "agent: coordinator\nstatus: complete\n");
        let (v, body, line) = front_matter(text).unwrap();
        assert_eq!(v["agent"].as_str(), Some("coordinator"));
        assert_eq!(body, "# Body\n");
        assert_eq!(line, 5);
    }

    #[test]
    fn front_matter_with_crlf_and_bom() {
        let text = "\u{feff}---\r\nname: cs\r\n---\r\nRole text\r\n";
        let (v, body, line) = front_matter(text).unwrap();
        assert_eq!(v["name"].as_str(), Some("cs"));
        assert_eq!(body, "Role text\r\n");
        assert_eq!(line, 4);
    }
}
