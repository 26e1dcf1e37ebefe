//! Task-list items (`- [ ]`, `- [x]`): the boxes of a gate file's checklist,
//! which the coordinator ticks to pass a gate.

use super::{parse_markdown, push_inline, squash, LineIndex};
use pulldown_cmark::{Event, Tag, TagEnd};

/// A task-list item: `- [ ] text` or `- [x] text`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkbox {
    /// The item's text, inline markup flattened to plain text, trimmed.
    pub text: String,
    pub checked: bool,
    /// 1-based line of the item.
    pub line: usize,
}

/// Task-list items (`- [ ]`, `- [x]`, `- [X]`) in document order.
pub fn checkboxes(text: &str) -> Vec<Checkbox> {
    struct Open {
        start: usize,
        checked: Option<bool>,
        text: String,
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut found: Vec<(usize, Checkbox)> = Vec::new();
    let lines = LineIndex::new(text);
    for (ev, r) in parse_markdown(text) {
        match &ev {
            Event::Start(Tag::Item) => stack.push(Open {
                start: r.start,
                checked: None,
                text: String::new(),
            }),
            Event::TaskListMarker(c) => {
                if let Some(top) = stack.last_mut() {
                    top.checked = Some(*c);
                }
            }
            Event::End(TagEnd::Item) => {
                if let Some(item) = stack.pop() {
                    if let Some(checked) = item.checked {
                        found.push((
                            item.start,
                            Checkbox {
                                text: squash(&item.text),
                                checked,
                                line: lines.line(item.start),
                            },
                        ));
                    }
                }
            }
            Event::Start(Tag::Paragraph) | Event::End(TagEnd::Paragraph) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push(' ');
                }
            }
            other => {
                if let Some(top) = stack.last_mut() {
                    push_inline(&mut top.text, other);
                }
            }
        }
    }
    found.sort_by_key(|(start, _)| *start);
    found.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkboxes_in_order_with_lines_and_flattened_text() {
        let text = "# Gate\n\n- [ ] Strategy covers **market** analysis\n- [x] Budget `sums`\n  - [X] nested [link](http://x) item\n- plain item\n\n1. [ ] ordered\n";
        let b = checkboxes(text);
        assert_eq!(b.len(), 4);
        assert_eq!(b[0].text, "Strategy covers market analysis");
        assert!(!b[0].checked);
        assert_eq!(b[0].line, 3);
        assert_eq!(b[1].text, "Budget sums");
        assert!(b[1].checked);
        assert_eq!(b[2].text, "nested link item");
        assert!(b[2].checked);
        assert_eq!(b[2].line, 5);
        assert_eq!(b[3].text, "ordered");
        assert_eq!(b[3].line, 8);
    }
}
