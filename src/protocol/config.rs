//! CONFIG.md: the team's business context, monthly budget and targets.
//!
//! People write CONFIG.md as prose, so the numbers gtmd needs (the monthly
//! budget the phase-1 gate checks the allocation against, and the targets the
//! analysis compares to) are read from wherever they are usually written:
//! front matter, a `Label: value` line, or a two-column table, in the money
//! spellings people use (`$50,000`, `50k`, `1.2M USD`).

use super::markdown::{parse_front_matter, sections, tables};
use crate::diagnostic::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BusinessConfig {
    /// Body of the "Business Context" section; else the text before the first heading.
    pub business_context: String,
    pub monthly_budget: Option<f64>,
    /// Numeric targets by lowercase key (`cac`, `ltv`, `payback_months`).
    pub targets: BTreeMap<String, f64>,
}

const MONEY_FORMS: &str = "write it like `Monthly budget: $50,000`, `50k` or `1.2M`";

/// An amount of money: `$50,000` → 50000, `50k` → 50000, `1.2M` → 1200000,
/// `USD 3,000` → 3000, `$50,000/month` → 50000. Percentages, negative and
/// non-numeric text give `None`.
pub fn parse_money(s: &str) -> Option<f64> {
    let mut t = s
        .trim()
        .trim_matches(|c: char| c == '*' || c == '_' || c == '`' || c == '~' || c == '≈')
        .trim()
        .to_ascii_lowercase();
    for suffix in [
        "/month",
        "/mo",
        "per month",
        "a month",
        "monthly",
        "/mth",
        "per mo",
    ] {
        if let Some(r) = t.strip_suffix(suffix) {
            t = r.trim_end().to_string();
        }
    }
    for cur in ["usd", "us$", "$", "€", "£", "eur", "gbp"] {
        if let Some(r) = t.strip_prefix(cur) {
            t = r.trim_start().to_string();
        }
        if let Some(r) = t.strip_suffix(cur) {
            t = r.trim_end().to_string();
        }
    }
    let (num, mult) = if let Some(r) = t.strip_suffix("million") {
        (r, 1e6)
    } else if let Some(r) = t.strip_suffix("thousand") {
        (r, 1e3)
    } else if let Some(r) = t.strip_suffix("mm") {
        (r, 1e6)
    } else if let Some(r) = t.strip_suffix("mn") {
        (r, 1e6)
    } else if let Some(r) = t.strip_suffix('m') {
        (r, 1e6)
    } else if let Some(r) = t.strip_suffix('k') {
        (r, 1e3)
    } else {
        (t.as_str(), 1.0)
    };
    let num = num.trim().trim_start_matches('$').trim();
    if num.is_empty() {
        return None;
    }
    // Digits with thousands separators and at most one decimal point.
    let mut digits = String::new();
    let mut dot = false;
    for c in num.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ',' | '_' | ' ' | '\u{a0}' | '\u{202f}' => {}
            '.' if !dot => {
                dot = true;
                digits.push('.');
            }
            _ => return None,
        }
    }
    if !digits.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: f64 = digits.parse().ok()?;
    let v = v * mult;
    v.is_finite().then_some(v)
}

/// A target's number: money, a percentage (`3%` → 3), a ratio (`3:1`, `3x`)
/// or a count with a unit (`12 months`).
fn parse_target_number(s: &str) -> Option<f64> {
    if let Some(v) = parse_money(s) {
        return Some(v);
    }
    let t = s
        .trim()
        .trim_matches(|c: char| c == '*' || c == '_' || c == '`');
    let t = t.trim_start_matches(['<', '>', '≤', '≥', '=', '~']).trim();
    for suffix in ["%", "x", ":1"] {
        if let Some(r) = t.strip_suffix(suffix) {
            return parse_money(r.trim()).filter(|_| !r.trim().contains('$'));
        }
    }
    let mut words = t.split_whitespace();
    let (n, unit) = (words.next()?, words.next());
    if words.next().is_some() {
        return None;
    }
    match unit?.to_ascii_lowercase().as_str() {
        "months" | "month" | "mo" | "days" | "day" | "weeks" | "week" | "years" | "year"
        | "percent" | "x" => parse_money(n),
        _ => None,
    }
}

/// The lowercase words of a label: `Payback target (months)` → payback, target, months.
fn words(label: &str) -> Vec<String> {
    label
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

fn is_budget_label(w: &[String]) -> bool {
    w.iter().any(|x| x == "budget")
        && w.iter()
            .any(|x| x == "monthly" || x == "month" || x == "mo")
}

/// `Target CAC` → `cac`; `Payback target (months)` → `payback_months`.
fn target_key(w: &[String]) -> String {
    w.iter()
        .filter(|x| !matches!(x.as_str(), "target" | "targets" | "goal" | "goals" | "the"))
        .cloned()
        .collect::<Vec<_>>()
        .join("_")
}

/// A `label: value` found in the text.
struct Labelled {
    label: String,
    value: String,
    line: usize,
    /// Inside a section whose heading says "targets" or "goals".
    in_targets_section: bool,
}

fn strip_line_markup(line: &str) -> &str {
    let mut t = line.trim();
    t = t.trim_start_matches('>').trim_start();
    t = t.trim_start_matches('#').trim_start();
    for marker in ["- ", "* ", "+ "] {
        if let Some(r) = t.strip_prefix(marker) {
            t = r.trim_start();
        }
    }
    let num = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if num > 0 {
        if let Some(r) = t[num..].strip_prefix(". ").or(t[num..].strip_prefix(") ")) {
            t = r.trim_start();
        }
    }
    t
}

/// Every `Label: value` line and two-column table pair in `body`, with lines
/// counted from `first_line`.
fn labelled(body: &str, first_line: usize) -> Vec<Labelled> {
    let under_targets = targets_sections(body);
    let in_targets = |line: usize| under_targets.get(line).copied().unwrap_or(false);
    let mut out = labelled_lines(body, first_line, &in_targets);
    for table in tables(body) {
        let line = first_line + table.line - 1;
        let in_sec = in_targets(table.line);
        let mut pair = |l: &str, v: &str, line: usize| {
            out.push(Labelled {
                label: l.to_string(),
                value: v.to_string(),
                line,
                in_targets_section: in_sec,
            })
        };
        if table.headers.len() >= 2 {
            pair(&table.headers[0], &table.headers[1], line);
        }
        for (k, row) in table.rows.iter().enumerate() {
            if row.len() >= 2 {
                pair(&row[0], &row[1], line + 2 + k);
            }
        }
        // Labels across the header, values in the only row.
        if let [first] = table.rows.as_slice() {
            for (h, v) in table.headers.iter().zip(first).skip(1) {
                pair(h, v, line + 2);
            }
        }
    }
    out.sort_by_key(|l| l.line);
    out
}

/// For each 1-based line of `body`: whether it lies under a heading that
/// says "targets" or "goals" (up to the next heading of its level or higher).
fn targets_sections(body: &str) -> Vec<bool> {
    let line_count = body.lines().count() + 2;
    let mut marks = vec![0i64; line_count + 1];
    let secs = sections(body);
    for (i, s) in secs.iter().enumerate() {
        let says_targets = words(&s.heading)
            .iter()
            .any(|x| matches!(x.as_str(), "target" | "targets" | "goal" | "goals"));
        if !says_targets {
            continue;
        }
        let end = secs[i + 1..]
            .iter()
            .find(|n| n.level <= s.level)
            .map(|n| n.line)
            .unwrap_or(line_count)
            .min(line_count);
        let start = (s.line + 1).min(line_count);
        if start < end {
            marks[start] += 1;
            marks[end] -= 1;
        }
    }
    let mut depth = 0;
    marks
        .iter()
        .map(|m| {
            depth += m;
            depth > 0
        })
        .collect()
}

/// `Label: value` lines outside code fences and tables.
fn labelled_lines(
    body: &str,
    first_line: usize,
    in_targets: &dyn Fn(usize) -> bool,
) -> Vec<Labelled> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, raw) in body.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || trimmed.starts_with('|') {
            continue;
        }
        let t = strip_line_markup(raw).replace("**", "").replace("__", "");
        // The first `:` followed by a space or the end ("LTV:CAC ratio: 3").
        let split = t.char_indices().find(|(j, c)| {
            *c == ':' && {
                let rest = &t[j + 1..];
                rest.is_empty() || rest.starts_with([' ', '\t'])
            }
        });
        let Some((j, _)) = split else { continue };
        out.push(Labelled {
            label: t[..j].trim().to_string(),
            value: t[j + 1..].trim().to_string(),
            line: first_line + i,
            in_targets_section: in_targets(i + 1),
        });
    }
    out
}

/// Reads CONFIG.md. Only a monthly budget that is present but not an amount is
/// an error; everything else is optional.
pub fn parse_config(path: &str, text: &str) -> Result<BusinessConfig, Diagnostic> {
    let mut cfg = BusinessConfig::default();
    let (body, body_line) = match parse_front_matter(path, text)? {
        Some(fm) => {
            read_front_matter(path, &fm, &mut cfg)?;
            (fm.body, fm.body_line)
        }
        None => (text.to_string(), 1),
    };

    let secs = sections(&body);
    cfg.business_context = business_context(&body, &secs);
    let found = labelled(&body, body_line);
    if cfg.monthly_budget.is_none() {
        cfg.monthly_budget = budget_in_text(path, &found, &secs, body_line)?;
    }
    for (key, value) in targets_in_text(&found) {
        cfg.targets.entry(key).or_insert(value);
    }
    Ok(cfg)
}

/// The "Business Context" section, else the text before the first heading.
fn business_context(body: &str, secs: &[super::markdown::Section]) -> String {
    match secs
        .iter()
        .find(|s| s.heading.to_lowercase().contains("business context"))
    {
        Some(s) => s.body.trim().to_string(),
        None => {
            let end = secs
                .first()
                .map(|s| line_start_offset(body, s.line))
                .unwrap_or(body.len());
            body[..end].trim().to_string()
        }
    }
}

/// The monthly budget from a labelled line (`Monthly budget: $50,000`, a
/// table row) or a section whose first line is the amount.
fn budget_in_text(
    path: &str,
    found: &[Labelled],
    secs: &[super::markdown::Section],
    body_line: usize,
) -> Result<Option<f64>, Diagnostic> {
    if let Some(l) = found.iter().find(|l| is_budget_label(&words(&l.label))) {
        return match parse_money(&l.value) {
            Some(v) => Ok(Some(v)),
            None => Err(Diagnostic::new(
                path,
                Some(l.line),
                format!(
                    "monthly budget {:?} is not an amount: {MONEY_FORMS}",
                    l.value
                ),
            )),
        };
    }
    let Some(s) = secs.iter().find(|s| is_budget_label(&words(&s.heading))) else {
        return Ok(None);
    };
    // "## Monthly budget" with the amount as the section's first line.
    let first = s.body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    match parse_money(strip_line_markup(first)) {
        Some(v) => Ok(Some(v)),
        None => Err(Diagnostic::new(
            path,
            Some(body_line + s.line - 1),
            format!(
                "the \"{}\" section does not start with an amount: {MONEY_FORMS}",
                s.heading
            ),
        )),
    }
}

/// Numeric targets from labelled lines (`Target CAC: $1,500`), or any
/// labelled number in a targets section; the first of each key counts.
fn targets_in_text(found: &[Labelled]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for l in found {
        let w = words(&l.label);
        if is_budget_label(&w) {
            continue;
        }
        let labelled_target = w
            .iter()
            .any(|x| matches!(x.as_str(), "target" | "targets" | "goal"));
        if !(labelled_target || l.in_targets_section) {
            continue;
        }
        let key = target_key(&w);
        if key.is_empty() || out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        // Prose such as "Target customer: mid-market SaaS" is not a number: skip it.
        if let Some(v) = parse_target_number(&l.value) {
            out.push((key, v));
        }
    }
    out
}

fn line_start_offset(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map(|(i, _)| i + 1)
        .unwrap_or(text.len())
}

fn read_front_matter(
    path: &str,
    fm: &super::markdown::FrontMatter,
    cfg: &mut BusinessConfig,
) -> Result<(), Diagnostic> {
    let Value::Mapping(map) = &fm.value else {
        return Ok(());
    };
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        let w = words(key);
        let line = super::markdown::key_line(&fm.yaml, key).or(Some(fm.yaml.first_line));
        if is_budget_label(&w) {
            let amount = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => parse_money(s),
                _ => None,
            };
            match amount {
                Some(a) if a >= 0.0 => cfg.monthly_budget = Some(a),
                _ => {
                    return Err(Diagnostic::new(
                        path,
                        line,
                        format!(
                            "{key} {} is not an amount: {MONEY_FORMS}",
                            serde_yaml::to_string(v).unwrap_or_default().trim()
                        ),
                    ))
                }
            }
        } else if w == ["targets"] || w == ["target"] {
            if let Value::Mapping(targets) = v {
                for (tk, tv) in targets {
                    let (Some(tk), Some(n)) = (tk.as_str(), yaml_number(tv)) else {
                        continue;
                    };
                    let key = target_key(&words(tk));
                    if !key.is_empty() {
                        cfg.targets.insert(key, n);
                    }
                }
            }
        } else if w.iter().any(|x| x == "target") {
            if let Some(n) = yaml_number(v) {
                let key = target_key(&w);
                if !key.is_empty() {
                    cfg.targets.insert(key, n);
                }
            }
        }
    }
    Ok(())
}

fn yaml_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_target_number(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_forms() {
        assert_eq!(parse_money("$50,000"), Some(50_000.0));
        assert_eq!(parse_money("50k"), Some(50_000.0));
        assert_eq!(parse_money("50K"), Some(50_000.0));
        assert_eq!(parse_money("$1.2M"), Some(1_200_000.0));
        assert_eq!(parse_money("1.2m"), Some(1_200_000.0));
        assert_eq!(parse_money("USD 3,000"), Some(3_000.0));
        assert_eq!(parse_money("3000 USD"), Some(3_000.0));
        assert_eq!(parse_money("**$12,500**"), Some(12_500.0));
        assert_eq!(parse_money("$50,000/month"), Some(50_000.0));
        assert_eq!(parse_money("$ 7.50"), Some(7.5));
        assert_eq!(parse_money("12%"), None);
        assert_eq!(parse_money("TBD"), None);
        assert_eq!(parse_money(""), None);
        assert_eq!(parse_money("$"), None);
        assert_eq!(parse_money("-500"), None);
        assert_eq!(parse_money("1.2.3"), None);
        assert_eq!(parse_money("inf"), None);
        assert_eq!(parse_money("NaN"), None);
    }

    #[test]
    fn budget_in_a_labelled_line() {
        let c = parse_config("CONFIG.md", "# Goals\n\nMonthly budget: $50,000\n").unwrap();
        assert_eq!(c.monthly_budget, Some(50_000.0));
        let c = parse_config("CONFIG.md", "- **Monthly budget**: 50k\n").unwrap();
        assert_eq!(c.monthly_budget, Some(50_000.0));
        let c = parse_config("CONFIG.md", "**Monthly Budget:** USD 75,000\n").unwrap();
        assert_eq!(c.monthly_budget, Some(75_000.0));
    }

    #[test]
    fn budget_in_a_table() {
        let text = "# Budget\n\n| Item | Value |\n|---|---|\n| Monthly budget | $50,000 |\n| Target CAC | $500 |\n";
        let c = parse_config("CONFIG.md", text).unwrap();
        assert_eq!(c.monthly_budget, Some(50_000.0));
        assert_eq!(c.targets.get("cac"), Some(&500.0));
        let c = parse_config("CONFIG.md", "| Monthly budget | $50,000 |\n|---|---|\n").unwrap();
        assert_eq!(c.monthly_budget, Some(50_000.0));
    }

    #[test]
    fn budget_in_front_matter() {
        let c = parse_config(
            "CONFIG.md",
            "---\nmonthly_budget: 40000\n---\n# Business Context\nWe sell X.\n",
        )
        .unwrap();
        assert_eq!(c.monthly_budget, Some(40_000.0));
        assert_eq!(c.business_context, "We sell X.");
        let c = parse_config(
            "CONFIG.md",
            "---\nmonthly_budget: \"$45k\"\ntarget_cac: 450\ntargets:\n  LTV: 9000\n---\nbody\n",
        )
        .unwrap();
        assert_eq!(c.monthly_budget, Some(45_000.0));
        assert_eq!(c.targets.get("cac"), Some(&450.0));
        assert_eq!(c.targets.get("ltv"), Some(&9000.0));
        let err =
            parse_config("CONFIG.md", "---\ntitle: x\nmonthly_budget: lots\n---\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("not an amount"), "{err}");
        assert!(err.message.contains("$50,000"), "{err}");
    }

    #[test]
    fn non_numeric_budget_is_an_error_with_its_line() {
        let err = parse_config("CONFIG.md", "# Config\n\nMonthly budget: TBD\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert_eq!(
            err.to_string(),
            "CONFIG.md:3: monthly budget \"TBD\" is not an amount: write it like `Monthly budget: $50,000`, `50k` or `1.2M`"
        );
        let err = parse_config(
            "CONFIG.md",
            "intro\n\n| Monthly budget | ask finance |\n|---|---|\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn budget_as_a_section() {
        let c = parse_config("CONFIG.md", "# Monthly Budget\n\n$30,000\n").unwrap();
        assert_eq!(c.monthly_budget, Some(30_000.0));
    }

    #[test]
    fn no_budget_is_fine() {
        let c = parse_config("CONFIG.md", "# Business Context\n\nWe sell things.\n").unwrap();
        assert_eq!(c.monthly_budget, None);
        assert_eq!(c.business_context, "We sell things.");
    }

    #[test]
    fn targets_and_context() {
        let text = "Acme sells widgets.\n\n# Goals\n\n- Target CAC: $500\n- LTV target: $6,000\n- Payback target (months): 12\n- Target customer: mid-market SaaS, 50-200 employees\n- Target conversion rate: 3%\n\n## Targets\n\n- Pipeline: $2M\n";
        let c = parse_config("CONFIG.md", text).unwrap();
        assert_eq!(c.business_context, "Acme sells widgets.");
        assert_eq!(c.targets.get("cac"), Some(&500.0));
        assert_eq!(c.targets.get("ltv"), Some(&6000.0));
        assert_eq!(c.targets.get("payback_months"), Some(&12.0));
        assert_eq!(c.targets.get("conversion_rate"), Some(&3.0));
        assert_eq!(c.targets.get("pipeline"), Some(&2_000_000.0));
        assert!(!c.targets.contains_key("customer"));
    }

    #[test]
    fn business_context_section_any_level() {
        let text = "# Acme\n\nintro\n\n## business context\n\nB2B devtools.\n\n### Detail\nmore\n\n## Goals\nx\n";
        let c = parse_config("CONFIG.md", text).unwrap();
        assert_eq!(c.business_context, "B2B devtools.\n\n### Detail\nmore");
    }
}
