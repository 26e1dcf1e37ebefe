//! Reading markdown and the YAML inside it, the same way for every file.
//!
//! Every bus file, agent definition and CONFIG.md is markdown that may carry
//! YAML (front matter, a fenced ```yaml block, or the whole file). All of it is
//! parsed by [`parse_markdown`], the one place a pulldown-cmark parser is built,
//! so a checkbox, a table or a heading means the same thing in every file. All
//! YAML goes through [`parse_yaml_value`], which maps errors to the line in the
//! file and refuses alias bombs ("billion laughs") before they cost memory.
//!
//! Each kind of thing read from markdown is a module of its own: front
//! matter, checkboxes, tables, sections, and the YAML a file carries
//! (found in `yaml`, parsed safely in `yaml_value` after the cheap
//! checks of `yaml_prescan`).

mod checkboxes;
mod front_matter;
mod sections;
mod tables;
mod yaml;
mod yaml_prescan;
mod yaml_value;

pub use checkboxes::{checkboxes, Checkbox};
pub use front_matter::{front_matter, parse_front_matter, FrontMatter};
pub use sections::{sections, Section};
pub use tables::{tables, Table};
pub use yaml::{extract_yaml, key_line, key_lines, looks_like_yaml, YamlBlock};
pub use yaml_prescan::{
    count_anchors_and_aliases, flow_depth, MAX_YAML_ANCHORS_AND_ALIASES, MAX_YAML_FLOW_DEPTH,
};
pub use yaml_value::{parse_yaml_value, yaml_error};

use pulldown_cmark::{Event, Options, Parser};
use std::ops::Range;

/// A markdown event and the byte range of `text` it came from.
pub type Spanned<'a> = (Event<'a>, Range<usize>);

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
}

/// The one place markdown is parsed: the events of `text` with their byte ranges.
///
/// Options: tables, task lists and YAML metadata blocks. pulldown-cmark 0.13
/// recognises a metadata block anywhere in a document, so a `---` rule followed
/// by text and another `---` would silently swallow that text
/// (pulldown-cmark#1000). Front matter only counts at the very start of the
/// file (after an optional BOM), so the rest of the document is parsed with
/// metadata blocks off. Events are produced lazily, so memory stays
/// proportional to pulldown-cmark's tree, not to a list of every event.
pub fn parse_markdown(text: &str) -> impl Iterator<Item = Spanned<'_>> {
    let (head, body_start) = front_matter::front_matter_events(text);
    let body = &text[body_start..];
    let opts = options() - Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    head.into_iter().chain(
        Parser::new_ext(body, opts)
            .into_offset_iter()
            .map(move |(ev, r)| (ev, r.start + body_start..r.end + body_start)),
    )
}

/// Byte offset → 1-based line, in O(log n) after one pass over the text.
struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        LineIndex {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }
    /// Same as [`crate::diagnostic::line_of_offset`]: newlines before `offset`, plus one.
    fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&p| p < offset) + 1
    }
}

/// Appends the plain text of an inline event to `buf`.
fn push_inline(buf: &mut String, ev: &Event<'_>) {
    match ev {
        Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
            buf.push_str(t)
        }
        Event::SoftBreak | Event::HardBreak => buf.push(' '),
        _ => {}
    }
}

/// Collapses runs of whitespace to one space and trims.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_rule_pair_is_not_front_matter_and_hides_nothing() {
        // pulldown-cmark#1000: a `---` ... `---` pair mid-document must not eat text.
        let text = "# Gate\n\nintro\n\n---\n- [ ] first item\n- [x] second\n---\n";
        assert!(front_matter(text).is_none());
        let boxes = checkboxes(text);
        assert_eq!(boxes.len(), 2);
        assert!(boxes[1].checked);
    }

    mod fuzz {
        //! Whatever bytes land on the bus, reading them must not panic.
        use super::super::*;
        use crate::protocol::classify::{classify, is_ignored};
        use crate::protocol::config::{parse_config, parse_money};
        use crate::protocol::status::parse_status;
        use proptest::prelude::*;

        fn exercise(text: &str) {
            let _ = parse_status("status/cs.md", text);
            let _ = parse_config("CONFIG.md", text);
            let _ = checkboxes(text);
            let _ = tables(text);
            let _ = sections(text);
            let _ = front_matter(text);
            if let Some(y) = extract_yaml(text) {
                let _ = parse_yaml_value("f", &y);
            }
            let _ = parse_money(text);
            let _ = classify(text);
            let _ = is_ignored(text);
        }

        /// Pieces of the formats involved, so generated files reach deep paths.
        fn fragment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("---\n".to_string()),
                Just("...\n".to_string()),
                Just("```yaml\n".to_string()),
                Just("```\n".to_string()),
                Just("- [ ] ".to_string()),
                Just("- [x] ".to_string()),
                Just("  - ".to_string()),
                Just("| Channel | Monthly budget | Rationale |\n".to_string()),
                Just("|---|---:|---|\n".to_string()),
                Just("| **Total** | $50,000 | |\n".to_string()),
                Just("agent: cs\n".to_string()),
                Just("status: complete\n".to_string()),
                Just("phase: 2\n".to_string()),
                Just("outputs:\n".to_string()),
                Just("blockers: none\n".to_string()),
                Just("task_id: 7\n".to_string()),
                Just("Monthly budget: $50k\n".to_string()),
                Just("Target CAC: ".to_string()),
                Just("&a ".to_string()),
                Just("*a ".to_string()),
                Just("# Business Context\n".to_string()),
                Just("## H\n".to_string()),
                Just("\r\n".to_string()),
                Just("\n".to_string()),
                Just("\u{feff}".to_string()),
                Just("\"".to_string()),
                Just("[".to_string()),
                Just("{".to_string()),
                "[a-z0-9 :,$.%/-]{0,12}",
                any::<String>(),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_strings_never_panic(text in any::<String>()) {
                exercise(&text);
            }

            #[test]
            fn arbitrary_bytes_decoded_lossily_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
                exercise(&String::from_utf8_lossy(&bytes));
            }

            #[test]
            fn markdown_and_yaml_fragments_never_panic(parts in prop::collection::vec(fragment(), 0..40)) {
                exercise(&parts.concat());
            }
        }
    }
}
