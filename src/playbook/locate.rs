//! Finding the line of a key or a value in a playbook's YAML text.
//!
//! serde_yaml reports no position for a value that deserialized fine, yet a
//! problem found later (a duplicate id, an unknown agent) should name its
//! line. These lookups search the text instead: a key at the start of a
//! line's content or in a flow mapping, a scalar value plain or quoted, a
//! path as a whole token. Line numbers here are 0-based.

/// Line lookups over YAML source; all line numbers here are 0-based and
/// ranges are `[from, to)`. Comment lines are skipped.
pub(super) struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.lines.len()
    }

    fn content(&self, i: usize) -> Option<&'a str> {
        let line = *self.lines.get(i)?;
        if line.trim_start().starts_with('#') {
            None
        } else {
            Some(line)
        }
    }

    /// First line in range with the key `key`.
    pub(super) fn key_line(&self, from: usize, to: usize, key: &str) -> Option<usize> {
        (from..to.min(self.len())).find(|&i| {
            self.content(i)
                .is_some_and(|l| !key_values(l, key).is_empty())
        })
    }

    /// The n-th line (0-based count) in the file with the key `key`.
    pub(super) fn nth_key_line(&self, key: &str, n: usize) -> Option<usize> {
        (0..self.len())
            .filter(|&i| {
                self.content(i)
                    .is_some_and(|l| !key_values(l, key).is_empty())
            })
            .nth(n)
    }

    /// First line in range where `key` has the scalar value `value`.
    pub(super) fn key_value_line(
        &self,
        from: usize,
        to: usize,
        key: &str,
        value: &str,
    ) -> Option<usize> {
        (from..to.min(self.len())).find(|&i| self.has_key_value(i, key, value))
    }

    /// The n-th line in the file where `key` has the scalar value `value`.
    pub(super) fn nth_key_value_line(&self, key: &str, value: &str, n: usize) -> Option<usize> {
        (0..self.len())
            .filter(|&i| self.has_key_value(i, key, value))
            .nth(n)
    }

    fn has_key_value(&self, i: usize, key: &str, value: &str) -> bool {
        self.content(i).is_some_and(|l| {
            key_values(l, key)
                .iter()
                .any(|rest| scalar_starts(rest, value))
        })
    }

    /// The line of `value` as (or in) the value of `key`, which may be a flow
    /// list on the key's line or a block list below it: the first line at or
    /// after the key holding `value` as a whole token. An empty value is
    /// found as `""` or `''`.
    pub(super) fn value_line(
        &self,
        from: usize,
        to: usize,
        key: &str,
        value: &str,
    ) -> Option<usize> {
        let start = self.key_line(from, to, key)?;
        (start..to.min(self.len())).find(|&i| {
            self.content(i).is_some_and(|l| {
                if value.trim().is_empty() {
                    l.contains("\"\"") || l.contains("''") || l.trim_end().ends_with('-')
                } else {
                    has_token(l, value)
                }
            })
        })
    }
}

/// For each place `key:` appears on `line` as a mapping key, the text after
/// the colon. A key counts when it starts the line's content (after indent
/// and `- ` markers) or follows `{` or `,` of a flow mapping.
fn key_values<'l>(line: &'l str, key: &str) -> Vec<&'l str> {
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(pos) = line[search..].find(key) {
        let p = search + pos;
        search = p + key.len();
        let before = line[..p].trim_end();
        let starts_content = before.chars().all(|c| c == '-' || c.is_whitespace());
        let in_flow = before.ends_with('{') || before.ends_with(',');
        if !(starts_content || in_flow) {
            continue;
        }
        let after = &line[p + key.len()..];
        if let Some(rest) = after.strip_prefix(':') {
            if rest.is_empty() || rest.starts_with([' ', '\t']) {
                out.push(rest);
            }
        }
    }
    out
}

/// `rest` (the text after `key:`) begins with the scalar `value`, plain or
/// quoted, followed by the end of the scalar.
fn scalar_starts(rest: &str, value: &str) -> bool {
    let rest = rest.trim_start();
    let (rest, quote) = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => (&rest[1..], Some(q)),
        _ => (rest, None),
    };
    let Some(after) = rest.strip_prefix(value) else {
        return false;
    };
    match quote {
        Some(q) => after.starts_with(q),
        None => {
            let after = after.trim_start();
            after.is_empty() || after.starts_with('#') || after.starts_with([',', '}', ']'])
        }
    }
}

/// `line` holds `token` not glued to other path-like characters.
fn has_token(line: &str, token: &str) -> bool {
    let glued = |c: char| c.is_alphanumeric() || "-_./*~\\".contains(c);
    let mut search = 0;
    while let Some(pos) = line[search..].find(token) {
        let p = search + pos;
        let end = p + token.len();
        let ok_before = line[..p].chars().next_back().is_none_or(|c| !glued(c));
        let ok_after = line[end..].chars().next().is_none_or(|c| !glued(c));
        if ok_before && ok_after {
            return true;
        }
        search = p + token.chars().next().map_or(1, char::len_utf8);
    }
    false
}
