//! Where a file's YAML is: front matter, else the first fenced `yaml` block,
//! else the whole file when it is a mapping; and on which file line a key
//! of it is, for errors that point at the value that is wrong.

use super::front_matter::front_matter_block;
use super::{parse_markdown, parse_yaml_value, LineIndex};
use pulldown_cmark::{CodeBlockKind, Event, Tag, TagEnd};
use serde_yaml::Value;

/// A YAML document found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlBlock {
    /// The YAML text itself (without `---` or fence lines).
    pub text: String,
    /// 1-based line in the file where `text` starts.
    pub first_line: usize,
}

/// The YAML of a file: (1) front matter `---` ... `---` at the very start;
/// (2) the first fenced code block whose info string is `yaml` or `yml`;
/// (3) the whole file, if it parses as a YAML mapping. A plain markdown file
/// without any of these yields `None`.
pub fn extract_yaml(text: &str) -> Option<YamlBlock> {
    if let Some((block, _)) = front_matter_block(text) {
        return Some(block);
    }
    let mut in_yaml: Option<(String, usize)> = None;
    let mut start_line = 0;
    let lines = LineIndex::new(text);
    for (ev, r) in parse_markdown(text) {
        match &ev {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let lang = info
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if lang == "yaml" || lang == "yml" {
                    start_line = lines.line(r.start) + 1;
                    in_yaml = Some((String::new(), 0));
                }
            }
            Event::Text(t) => {
                if let Some((buf, first)) = in_yaml.as_mut() {
                    if *first == 0 {
                        *first = lines.line(r.start);
                    }
                    buf.push_str(t);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((buf, first)) = in_yaml.take() {
                    return Some(YamlBlock {
                        text: buf,
                        first_line: if first == 0 { start_line } else { first },
                    });
                }
            }
            _ => {}
        }
    }
    if let Some((buf, first)) = in_yaml {
        // An unclosed fence runs to the end of the document.
        return Some(YamlBlock {
            text: buf,
            first_line: if first == 0 { start_line } else { first },
        });
    }
    let whole = YamlBlock {
        text: text.strip_prefix('\u{feff}').unwrap_or(text).to_string(),
        first_line: 1,
    };
    match parse_yaml_value("", &whole) {
        Ok(Value::Mapping(_)) => Some(whole),
        _ => None,
    }
}

/// Whether `text` looks like a YAML mapping someone tried to write (its first
/// meaningful line is `key: value` or `---`), used to report a broken one with
/// its line instead of saying no YAML was found.
pub fn looks_like_yaml(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue; // a YAML comment or a markdown heading: look further
        }
        if t == "---" {
            return true;
        }
        let Some(colon) = t.find(':') else {
            return false;
        };
        let key = t[..colon].trim().trim_matches(|c| c == '"' || c == '\'');
        let after = &t[colon + 1..];
        return !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            && (after.is_empty() || after.starts_with([' ', '\t']));
    }
    false
}

/// The 1-based file lines of every `key:` in the block, in order.
pub fn key_lines(block: &YamlBlock, key: &str) -> Vec<usize> {
    block
        .text
        .lines()
        .enumerate()
        .filter(|(_, l)| line_has_key(l, key))
        .map(|(i, _)| block.first_line + i)
        .collect()
}

fn line_has_key(line: &str, key: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix("- ").unwrap_or(t);
    for q in ["", "\"", "'"] {
        if let Some(rest) = t.strip_prefix(q).and_then(|r| r.strip_prefix(key)) {
            if let Some(rest) = rest.strip_prefix(q) {
                if rest.trim_start().starts_with(':') {
                    return true;
                }
            }
        }
    }
    false
}

/// The 1-based file line of `key:` in the block (top-level keys first), for
/// pointing at the value that is wrong.
pub fn key_line(block: &YamlBlock, key: &str) -> Option<usize> {
    let top = block
        .text
        .lines()
        .position(|l| !l.starts_with([' ', '\t']) && line_has_key(l, key));
    top.or_else(|| block.text.lines().position(|l| line_has_key(l, key)))
        .map(|i| block.first_line + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fenced_yaml_block() {
        let text = "# Status\n\nSome words.\n\n```json\n{}\n```\n\n```yaml\nagent: cs\nstatus: blocked\n```\n\n```yaml\nagent: other\n```\n";
        let y = extract_yaml(text).unwrap();
        assert_eq!(y.first_line, 10);
        assert_eq!(y.text, "agent: cs\nstatus: blocked\n");
    }

    #[test]
    fn fenced_yml_and_indented_in_list() {
        let text = "- item\n\n  ```YML\n  a: 1\n  ```\n";
        let y = extract_yaml(text).unwrap();
        assert_eq!(y.text, "a: 1\n");
        assert_eq!(y.first_line, 4);
    }

    #[test]
    fn whole_file_yaml_and_plain_markdown() {
        let y = extract_yaml("agent: cs\nstatus: complete\n").unwrap();
        assert_eq!(y.first_line, 1);
        assert!(extract_yaml("# Title\n\nJust prose here.\n").is_none());
        assert!(extract_yaml("just a sentence").is_none());
        assert!(extract_yaml("").is_none());
    }

    #[test]
    fn key_line_prefers_top_level() {
        let y = YamlBlock {
            text: "meta:\n  status: x\nstatus: done\n".into(),
            first_line: 10,
        };
        assert_eq!(key_line(&y, "status"), Some(12));
        assert_eq!(key_line(&y, "missing"), None);
    }
}
