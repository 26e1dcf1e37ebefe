//! Conflicts and decisions: the guide's escalation protocol as data.
//!
//! A conflict is any markdown file in `conflicts/`; front matter (`raised_by`,
//! `agents`, `files`, `severity`) is optional, because people drop these by
//! hand. A decision names the conflict it resolves and the agents it affects,
//! in front matter (`resolves:`, `affected:`) or as labelled lines in the text
//! (`Resolves: conflicts/x.md`, `Affected agents: demand-gen, pipeline-manager`).
//! What cannot be read in a decision is kept as a problem, not dropped, so
//! the coordinator can be told.

use super::markdown::parse_front_matter;
use crate::agents::canonical_agent;
use crate::diagnostic::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Conflict {
    /// First heading or first line, for task texts.
    pub title: String,
    pub raised_by: Option<String>,
    /// Canonical agent names the conflict is about.
    pub agents: Vec<String>,
    pub files: Vec<String>,
    pub severity: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Decision {
    pub title: String,
    /// Workspace-relative path of the conflict (`conflicts/x.md`), as written.
    pub resolves: Option<String>,
    /// Canonical agent names.
    pub affected: Vec<String>,
    /// Names given as affected that are no agent, and other things that could
    /// not be read: the coordinator is told about each.
    pub problems: Vec<String>,
}

pub fn parse_conflict(path: &str, text: &str) -> Result<Conflict, Diagnostic> {
    let fm = parse_front_matter(path, text)?;
    let body = fm.as_ref().map(|f| f.body.as_str()).unwrap_or(text);
    let mut c = Conflict {
        title: title_of(body),
        ..Conflict::default()
    };
    if let Some(fm) = fm {
        c.raised_by = string_of(fm.value.get("raised_by"))
            .and_then(|s| canonical_agent(&s).map(String::from).or(Some(s)));
        for name in strings_of(fm.value.get("agents")) {
            if let Some(a) = canonical_agent(&name) {
                push_unique(&mut c.agents, a.to_string());
            }
        }
        c.files = strings_of(fm.value.get("files"));
        c.severity = string_of(fm.value.get("severity"));
    }
    Ok(c)
}

pub fn parse_decision(path: &str, text: &str) -> Result<Decision, Diagnostic> {
    let fm = parse_front_matter(path, text)?;
    let body = fm.as_ref().map(|f| f.body.as_str()).unwrap_or(text);
    let mut d = Decision {
        title: title_of(body),
        ..Decision::default()
    };
    let mut affected_raw = Vec::new();
    if let Some(fm) = &fm {
        d.resolves = string_of(fm.value.get("resolves"));
        affected_raw = strings_of(fm.value.get("affected"));
        if affected_raw.is_empty() {
            affected_raw = strings_of(fm.value.get("affected_agents"));
        }
    }
    // Labelled lines fill what the front matter did not say.
    for line in body.lines() {
        let Some((label, value)) = labelled(line) else {
            continue;
        };
        match label.as_str() {
            "resolves" | "resolves conflict" | "conflict" if d.resolves.is_none() => {
                d.resolves = Some(strip_markup(value))
            }
            "affected" | "affected agents" | "affects" if affected_raw.is_empty() => {
                affected_raw = split_list(value)
            }
            _ => {}
        }
    }
    for name in affected_raw {
        match canonical_agent(&name) {
            Some(a) => push_unique(&mut d.affected, a.to_string()),
            None => d.problems.push(format!(
                "\"{name}\" is not an agent (agents: {}; aliases demand-gen, brand, pipeline, cs, growth)",
                crate::agents::AGENTS.join(", ")
            )),
        }
    }
    if d.resolves.is_none() {
        d.problems.push(
            "it names no conflict: add `resolves: conflicts/<file>.md` to its front matter or a line `Resolves: conflicts/<file>.md`".into(),
        );
    }
    if d.affected.is_empty() && d.problems.iter().all(|p| !p.contains("is not an agent")) {
        d.problems.push(
            "it names no affected agents: add `affected: [agent, ...]` to its front matter or a line `Affected agents: a, b`".into(),
        );
    }
    Ok(d)
}

/// The workspace path a decision's `resolves` means: `conflicts/x.md` from
/// `x`, `x.md`, `conflicts/x.md`, `workspace/conflicts/x.md` or `./conflicts/x.md`.
pub fn conflict_path(resolves: &str) -> String {
    let mut s = resolves.trim().trim_matches('`').trim();
    for prefix in ["./", "workspace/"] {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    let s = s.strip_prefix("conflicts/").unwrap_or(s);
    if s.ends_with(".md") {
        format!("conflicts/{s}")
    } else {
        format!("conflicts/{s}.md")
    }
}

/// `Label: value` at the start of a line, with markdown emphasis or a list
/// marker around the label tolerated. The label comes back lowercased.
fn labelled(line: &str) -> Option<(String, &str)> {
    let l = line.trim_start().trim_start_matches(['-', '*', '>', ' ']);
    let (label, value) = l.split_once(':')?;
    let label = label
        .trim()
        .trim_matches(['*', '_'])
        .trim()
        .to_ascii_lowercase();
    if label.is_empty() || label.len() > 40 {
        return None;
    }
    let value = value.trim().trim_start_matches(['*', '_']).trim();
    Some((label, value))
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split([',', ';'])
        .flat_map(|s| s.split(" and "))
        .map(strip_markup)
        .filter(|s| !s.is_empty())
        .collect()
}

fn strip_markup(s: &str) -> String {
    s.trim()
        .trim_matches(|c| matches!(c, '`' | '*' | '_' | '[' | ']' | '"' | '\''))
        .trim()
        .to_string()
}

fn title_of(body: &str) -> String {
    body.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

fn string_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(items)) => items.iter().filter_map(|i| string_of(Some(i))).collect(),
        Some(Value::String(s)) => split_list(s),
        _ => Vec::new(),
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_from_front_matter_with_aliases() {
        let d = parse_decision(
            "strategy/decisions/d.md",
            "---\nresolves: conflicts/lead-scoring.md\naffected: [demand-gen, pipeline]\n---\n# Use MQL at 60\n",
        )
        .unwrap();
        assert_eq!(d.resolves.as_deref(), Some("conflicts/lead-scoring.md"));
        assert_eq!(d.affected, vec!["demand-generation", "pipeline-manager"]);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        assert_eq!(d.title, "Use MQL at 60");
    }

    #[test]
    fn decision_from_labelled_lines() {
        let d = parse_decision(
            "d.md",
            "# Decision\n\n**Resolves**: `conflicts/scoring.md`\n- Affected agents: demand-generation and cs\n\nRationale: ...\n",
        )
        .unwrap();
        assert_eq!(d.resolves.as_deref(), Some("conflicts/scoring.md"));
        assert_eq!(d.affected, vec!["demand-generation", "customer-success"]);
        assert!(d.problems.is_empty());
    }

    #[test]
    fn a_decision_naming_an_unknown_agent_keeps_the_problem() {
        let d = parse_decision(
            "d.md",
            "Resolves: conflicts/x.md\nAffected agents: marketing-wizard\n",
        )
        .unwrap();
        assert!(d.affected.is_empty());
        assert_eq!(d.problems.len(), 1);
        assert!(d.problems[0].contains("marketing-wizard"));
    }

    #[test]
    fn a_decision_naming_nothing_says_what_is_missing() {
        let d = parse_decision("d.md", "We decided things.\n").unwrap();
        assert_eq!(d.problems.len(), 2, "{:?}", d.problems);
        assert!(d.problems[0].contains("resolves"));
    }

    #[test]
    fn conflict_paths_are_normalised() {
        for s in [
            "x",
            "x.md",
            "conflicts/x.md",
            "workspace/conflicts/x.md",
            "./conflicts/x.md",
            "`conflicts/x.md`",
        ] {
            assert_eq!(conflict_path(s), "conflicts/x.md", "{s}");
        }
    }

    #[test]
    fn a_conflict_needs_no_front_matter() {
        let c = parse_conflict(
            "conflicts/a.md",
            "# Lead scoring disagrees\n\nDemand gen says 50, pipeline says 70.\n",
        )
        .unwrap();
        assert_eq!(c.title, "Lead scoring disagrees");
        assert!(c.agents.is_empty());
        let c = parse_conflict(
            "conflicts/a.md",
            "---\nraised_by: pipeline\nagents: [demand-gen, pipeline-manager]\nseverity: high\n---\nText\n",
        )
        .unwrap();
        assert_eq!(c.raised_by.as_deref(), Some("pipeline-manager"));
        assert_eq!(c.agents, vec!["demand-generation", "pipeline-manager"]);
        assert_eq!(c.severity.as_deref(), Some("high"));
    }

    #[test]
    fn broken_front_matter_is_refused_with_a_line() {
        let e = parse_decision("d.md", "---\nresolves: [a\n---\nx\n").unwrap_err();
        assert!(e.line.is_some());
    }
}
