//! Reading markdown and the YAML inside it, the same way for every file.
//!
//! Every bus file, agent definition and CONFIG.md is markdown that may carry
//! YAML (front matter, a fenced ```yaml block, or the whole file). All of it is
//! parsed by [`parse_markdown`], the one place a pulldown-cmark parser is built,
//! so a checkbox, a table or a heading means the same thing in every file. All
//! YAML goes through [`parse_yaml_value`], which maps errors to the line in the
//! file and refuses alias bombs ("billion laughs") before they cost memory.

use crate::diagnostic::{line_of_offset, Diagnostic};
use pulldown_cmark::{CodeBlockKind, Event, MetadataBlockKind, Options, Parser, Tag, TagEnd};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_yaml::value::{Tag as YamlTag, TaggedValue};
use serde_yaml::{Mapping, Value};
use std::cell::Cell;
use std::fmt;
use std::ops::Range;

/// A YAML document found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlBlock {
    /// The YAML text itself (without `---` or fence lines).
    pub text: String,
    /// 1-based line in the file where `text` starts.
    pub first_line: usize,
}

/// A task-list item: `- [ ] text` or `- [x] text`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkbox {
    /// The item's text, inline markup flattened to plain text, trimmed.
    pub text: String,
    pub checked: bool,
    /// 1-based line of the item.
    pub line: usize,
}

/// A GFM table, cell text flattened to plain text and trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// 1-based line of the header row.
    pub line: usize,
}

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

/// A document holding more anchors and aliases than this is refused unparsed.
pub const MAX_YAML_ANCHORS_AND_ALIASES: usize = 100;

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
    let (head, body_start) = front_matter_events(text);
    let body = &text[body_start..];
    let opts = options() - Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    head.into_iter().chain(
        Parser::new_ext(body, opts)
            .into_offset_iter()
            .map(move |(ev, r)| (ev, r.start + body_start..r.end + body_start)),
    )
}

/// The events of the front matter at the very start of `text` (none if there
/// is none) and the byte offset where the rest of the document begins.
fn front_matter_events(text: &str) -> (Vec<Spanned<'_>>, usize) {
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
    /// Same as [`line_of_offset`]: newlines before `offset`, plus one.
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

/// Start of the line after the one holding byte `offset` (or the end of text).
fn next_line_start(text: &str, offset: usize) -> usize {
    match text.get(offset..).and_then(|rest| rest.find('\n')) {
        Some(i) => offset + i + 1,
        None => text.len(),
    }
}

/// The front matter at the very start of `text`: (its YAML, byte offset where the
/// body starts).
fn front_matter_block(text: &str) -> Option<(YamlBlock, usize)> {
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

/// Roughly counts YAML anchors (`&name`) and aliases (`*name`): a `&` or `*`
/// followed by a name, where a YAML node may start (line start, after `- `,
/// `: `, `? `, `[`, `{` or `,`). Over-counting only matters past the limit.
pub fn count_anchors_and_aliases(yaml: &str) -> usize {
    let mut n = 0;
    for line in yaml.lines() {
        let bytes = line.as_bytes();
        let mut prev_non_space: Option<u8> = None;
        let mut saw_space = true;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'#' && saw_space {
                break; // a comment
            }
            if (b == b'&' || b == b'*') && node_may_start(prev_non_space, saw_space) {
                if let Some(&next) = bytes.get(i + 1) {
                    if !next.is_ascii_whitespace() && !b",[]{}".contains(&next) {
                        n += 1;
                    }
                }
            }
            if b.is_ascii_whitespace() {
                saw_space = true;
            } else {
                saw_space = false;
                prev_non_space = Some(b);
            }
        }
    }
    n
}

/// Deeper flow nesting (`[[[`, `{a: {a: ...`) is refused before libyaml sees
/// it: libyaml's time grows with the square of the depth (a 400 KB file of
/// `{a: ` takes a minute).
pub const MAX_YAML_FLOW_DEPTH: usize = 64;

/// The deepest nesting of flow collections (`[` and `{` where a YAML node may
/// start), skipping quoted scalars and comments; an over-estimate at worst.
pub fn flow_depth(yaml: &str) -> usize {
    let bytes = yaml.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    let mut prev_non_space: Option<u8> = None;
    let mut saw_space = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            prev_non_space = None;
            saw_space = true;
            i += 1;
            continue;
        }
        if b == b'#' && saw_space {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let at_node = node_may_start(prev_non_space, saw_space);
        if at_node && (b == b'"' || b == b'\'') {
            // Skip the quoted scalar (it may span lines).
            i += 1;
            while i < bytes.len() {
                if b == b'"' && bytes[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if bytes[i] == b {
                    break;
                }
                i += 1;
            }
        } else if at_node && (b == b'[' || b == b'{') {
            depth += 1;
            max = max.max(depth);
        } else if (b == b']' || b == b'}') && depth > 0 {
            depth -= 1;
        }
        if b.is_ascii_whitespace() {
            saw_space = true;
        } else {
            saw_space = false;
            prev_non_space = Some(b);
        }
        i += 1;
    }
    max
}

fn node_may_start(prev: Option<u8>, saw_space: bool) -> bool {
    match prev {
        None => true,
        Some(b'[') | Some(b'{') | Some(b',') => true,
        Some(b'-') | Some(b':') | Some(b'?') => saw_space,
        _ => false,
    }
}

/// Parses YAML text into a value, mapping errors to the file's line
/// (`block.first_line + location.line - 1`).
///
/// Alias bombs are refused without expanding them: more than
/// [`MAX_YAML_ANCHORS_AND_ALIASES`] anchors and aliases is refused up front, and
/// the value is built against a budget proportional to the text, so memory
/// and time stay bounded whatever the aliases expand to.
pub fn parse_yaml_value(path: &str, block: &YamlBlock) -> Result<Value, Diagnostic> {
    let anchors = count_anchors_and_aliases(&block.text);
    if anchors > MAX_YAML_ANCHORS_AND_ALIASES {
        return Err(Diagnostic::new(
            path,
            Some(block.first_line),
            format!(
                "YAML uses {anchors} anchors/aliases (&name, *name), more than the {MAX_YAML_ANCHORS_AND_ALIASES} \
                 accepted (a guard against alias bombs); write the values out in full instead"
            ),
        ));
    }
    let depth = flow_depth(&block.text);
    if depth > MAX_YAML_FLOW_DEPTH {
        return Err(Diagnostic::new(
            path,
            Some(block.first_line),
            format!(
                "YAML nests [ ] or {{ }} {depth} deep, more than the {MAX_YAML_FLOW_DEPTH} accepted; \
                 use a flat mapping of `key: value` lines"
            ),
        ));
    }
    let budget = Cell::new(10_000 + block.text.len());
    let seed = ValueSeed { budget: &budget };
    match seed.deserialize(serde_yaml::Deserializer::from_str(&block.text)) {
        Ok(v) => Ok(v),
        Err(e) => Err(yaml_error(path, block, &e)),
    }
}

const BUDGET_EXCEEDED: &str = "gtmd: YAML expands past its size budget";
const DUPLICATE: &str = "gtmd: duplicate key `";

fn duplicate_key(raw: &str) -> Option<String> {
    let start = raw.find(DUPLICATE)? + DUPLICATE.len();
    let len = raw[start..].find('`')?;
    Some(raw[start..start + len].to_string())
}

/// A serde_yaml error as a Diagnostic on the file's line.
pub fn yaml_error(path: &str, block: &YamlBlock, e: &serde_yaml::Error) -> Diagnostic {
    let line = e
        .location()
        .map(|l| block.first_line + l.line().max(1) - 1)
        .unwrap_or(block.first_line);
    let raw = e.to_string();
    let message = if raw.contains(BUDGET_EXCEEDED) || raw.contains("repetition limit exceeded") {
        "YAML aliases expand to far more data than the file holds (an alias bomb); \
         refused: write the values out in full instead of repeating anchors"
            .to_string()
    } else if raw.contains("recursion limit exceeded") {
        "YAML is nested too deeply (more than 128 levels); \
         use a flat mapping of `key: value` lines"
            .to_string()
    } else if let Some(key) = duplicate_key(&raw) {
        let second = key_lines(block, &key).get(1).copied();
        return Diagnostic::new(
            path,
            second.or(Some(line)),
            format!("key `{key}` appears twice in the YAML; keep one `{key}:` line"),
        );
    } else if raw.contains("more than one document") {
        "YAML holds more than one document (a second `---`); \
         expected a single mapping of `key: value` lines"
            .to_string()
    } else {
        format!(
            "invalid YAML: {}; expected `key: value` lines with consistent indentation and closed quotes",
            strip_position(&raw)
        )
    };
    Diagnostic::new(path, Some(line), message)
}

/// Removes serde_yaml's " at line N column M" so the Diagnostic's own line is
/// the only one shown.
fn strip_position(msg: &str) -> String {
    let mut out = msg.to_string();
    while let Some(i) = out.find(" at line ") {
        let rest = &out[i + " at line ".len()..];
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let rest2 = &rest[digits..];
        let cut = if let Some(col) = rest2.strip_prefix(" column ") {
            digits + " column ".len() + col.chars().take_while(|c| c.is_ascii_digit()).count()
        } else {
            digits
        };
        if digits == 0 {
            break;
        }
        out.replace_range(i..i + " at line ".len() + cut, "");
    }
    out
}

/// Builds a [`Value`] like serde_yaml's own, but charges every node (and every
/// 16 bytes of string) against a budget, so aliases cannot blow it up.
struct ValueSeed<'b> {
    budget: &'b Cell<usize>,
}

impl ValueSeed<'_> {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let cost = 1 + bytes / 16;
        let left = self.budget.get();
        if left < cost {
            return Err(E::custom(BUDGET_EXCEEDED));
        }
        self.budget.set(left - cost);
        Ok(())
    }
    fn again(&self) -> ValueSeed<'_> {
        ValueSeed {
            budget: self.budget,
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) => self.visit_f64(v as f64),
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => self.visit_f64(v as f64),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self.again())? {
            items.push(v);
        }
        Ok(Value::Sequence(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut m = Mapping::new();
        while let Some(k) = map.next_key_seed(self.again())? {
            let v = map.next_value_seed(self.again())?;
            if m.contains_key(&k) {
                let name = match &k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                return Err(de::Error::custom(format!("{DUPLICATE}{name}`")));
            }
            m.insert(k, v);
        }
        Ok(Value::Mapping(m))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let (tag, variant): (String, _) = data.variant()?;
        let value = de::VariantAccess::newtype_variant_seed(variant, self.again())?;
        Ok(Value::Tagged(Box::new(TaggedValue {
            tag: YamlTag::new(tag),
            value,
        })))
    }
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

    #[test]
    fn a_later_rule_pair_is_not_front_matter_and_hides_nothing() {
        // pulldown-cmark#1000: a `---` ... `---` pair mid-document must not eat text.
        let text = "# Gate\n\nintro\n\n---\n- [ ] first item\n- [x] second\n---\n";
        assert!(front_matter(text).is_none());
        let boxes = checkboxes(text);
        assert_eq!(boxes.len(), 2);
        assert!(boxes[1].checked);
    }

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
    fn yaml_errors_carry_the_file_line() {
        let text = "# S\n\n```yaml\nagent: cs\nstatus: [complete\n```\n";
        let y = extract_yaml(text).unwrap();
        let err = parse_yaml_value("status/cs.md", &y).unwrap_err();
        assert_eq!(err.path, "status/cs.md");
        let line = err.line.unwrap();
        assert!((5..=6).contains(&line), "line {line}: {err}");
        assert!(err.message.contains("invalid YAML"), "{err}");
        assert!(!err.message.contains("at line"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let y = YamlBlock {
            text: "a: 1\na: 2\n".into(),
            first_line: 3,
        };
        let err = parse_yaml_value("f.md", &y).unwrap_err();
        assert_eq!(
            err.message,
            "key `a` appears twice in the YAML; keep one `a:` line"
        );
        assert_eq!(err.line, Some(4));
    }

    #[test]
    fn tags_and_numbers_round_trip() {
        let y = YamlBlock {
            text: "a: !thing 3\nb: 2.5\nc: ~\nd: [1, x]\nbig: 99999999999999999999999\n".into(),
            first_line: 1,
        };
        let v = parse_yaml_value("f", &y).unwrap();
        assert!(matches!(v["a"], Value::Tagged(_)));
        assert_eq!(v["b"].as_f64(), Some(2.5));
        assert!(v["c"].is_null());
        assert_eq!(v["d"][1].as_str(), Some("x"));
    }

    fn bomb(levels: usize, fanout: usize) -> String {
        let mut s = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..=levels {
            let refs = vec![format!("*a{}", i - 1); fanout].join(", ");
            s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        s
    }

    #[test]
    fn billion_laughs_with_many_aliases_is_refused_up_front() {
        let y = YamlBlock {
            text: bomb(10, 10),
            first_line: 2,
        };
        let t = std::time::Instant::now();
        let err = parse_yaml_value("status/cs.md", &y).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(err.message.contains("anchors/aliases"), "{err}");
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn billion_laughs_under_the_alias_count_is_stopped_by_the_budget() {
        // 9 levels of 9 aliases: 81 aliases + 10 anchors, 9^9 strings if expanded.
        let y = YamlBlock {
            text: bomb(9, 9),
            first_line: 1,
        };
        assert!(count_anchors_and_aliases(&y.text) <= MAX_YAML_ANCHORS_AND_ALIASES);
        let t = std::time::Instant::now();
        let err = parse_yaml_value("status/cs.md", &y).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(err.message.contains("alias bomb"), "{err}");
    }

    #[test]
    fn big_anchored_string_repeated_is_bounded() {
        let big = "x".repeat(200_000);
        let mut text = format!("a: &a \"{big}\"\nb: [");
        text.push_str(&vec!["*a"; 90].join(", "));
        text.push_str("]\n");
        let y = YamlBlock {
            text,
            first_line: 1,
        };
        let err = parse_yaml_value("f", &y).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{err}");
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let y = YamlBlock {
            text: "base: &b {x: 1}\nother: *b\nlist: [*b, *b]\n".into(),
            first_line: 1,
        };
        let v = parse_yaml_value("f", &y).unwrap();
        assert_eq!(v["list"][1]["x"].as_i64(), Some(1));
    }

    #[test]
    fn deep_flow_nesting_is_refused_quickly() {
        // libyaml is quadratic in flow depth: this would take about a minute.
        let text = format!("a: {}", "{a: ".repeat(100_000));
        let y = YamlBlock {
            text,
            first_line: 3,
        };
        let t = std::time::Instant::now();
        let err = parse_yaml_value("f", &y).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(
            err.message.contains("nests [ ] or { } 100000 deep"),
            "{err}"
        );
        assert_eq!(err.line, Some(3));
        assert_eq!(
            flow_depth("a: \"[[[[\"\nb: [x, {y: [1]}] # [[[[\nc: a[b\n"),
            3
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        // Block sequences nested 500 deep, under the flow-depth guard.
        let text = format!("a:\n  {}x\n", "- ".repeat(500));
        let y = YamlBlock {
            text,
            first_line: 1,
        };
        let err = parse_yaml_value("f", &y).unwrap_err();
        assert!(err.message.contains("nested too deeply"), "{err}");
    }

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

    #[test]
    fn key_line_prefers_top_level() {
        let y = YamlBlock {
            text: "meta:\n  status: x\nstatus: done\n".into(),
            first_line: 10,
        };
        assert_eq!(key_line(&y, "status"), Some(12));
        assert_eq!(key_line(&y, "missing"), None);
    }

    #[test]
    fn strip_position_removes_locations() {
        assert_eq!(
            strip_position("did not find expected node content at line 2 column 5, while parsing a flow node at line 2 column 4"),
            "did not find expected node content, while parsing a flow node"
        );
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
