//! GFM tables, cells flattened to plain text: budget allocations and unit
//! economics are read from them.

use super::{parse_markdown, push_inline, squash, LineIndex};
use pulldown_cmark::{Event, Tag, TagEnd};

/// A GFM table, cell text flattened to plain text and trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// 1-based line of the header row.
    pub line: usize,
}

/// Tables in document order.
pub fn tables(text: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let mut current: Option<Table> = None;
    let mut in_head = false;
    let mut row: Vec<String> = Vec::new();
    let mut cell: Option<String> = None;
    let lines = LineIndex::new(text);
    for (ev, r) in parse_markdown(text) {
        match &ev {
            Event::Start(Tag::Table(_)) => {
                current = Some(Table {
                    headers: Vec::new(),
                    rows: Vec::new(),
                    line: lines.line(r.start),
                })
            }
            Event::End(TagEnd::Table) => {
                if let Some(t) = current.take() {
                    out.push(t);
                }
            }
            Event::Start(Tag::TableHead) => {
                in_head = true;
                row.clear();
            }
            Event::End(TagEnd::TableHead) => {
                in_head = false;
                if let Some(t) = current.as_mut() {
                    t.headers = std::mem::take(&mut row);
                }
            }
            Event::Start(Tag::TableRow) => row.clear(),
            Event::End(TagEnd::TableRow) => {
                if let Some(t) = current.as_mut() {
                    if in_head {
                        t.headers = std::mem::take(&mut row);
                    } else {
                        t.rows.push(std::mem::take(&mut row));
                    }
                }
            }
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => {
                if let Some(c) = cell.take() {
                    row.push(squash(&c));
                }
            }
            other => {
                if let Some(c) = cell.as_mut() {
                    push_inline(c, other);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_flatten_cells() {
        let text = "Intro\n\n| Channel | **Monthly budget** | Rationale |\n|---|---:|---|\n| Paid search | $20,000 | *intent* |\n| **Total** | $20,000 | |\n";
        let t = tables(text);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].headers, vec!["Channel", "Monthly budget", "Rationale"]);
        assert_eq!(t[0].rows.len(), 2);
        assert_eq!(t[0].rows[0], vec!["Paid search", "$20,000", "intent"]);
        assert_eq!(t[0].rows[1][0], "Total");
        assert_eq!(t[0].rows[1][2], "");
        assert_eq!(t[0].line, 3);
    }
}
