//! `status/<agent>.md`: what an agent says about its task.
//!
//! The guide's example is bare YAML; agents also wrap it in front matter or in
//! a fenced `yaml` block inside prose, so all three are read (see
//! [`extract_yaml`]). The values people write are
//! accepted in their usual spellings (aliases, `in progress`, `phase 2`,
//! `blockers: none`, a single output as a string), and anything that cannot be
//! trusted, above all an output path leading out of the workspace, is refused
//! with the line and what would be accepted.

use super::markdown::{extract_yaml, key_line, looks_like_yaml, parse_yaml_value, YamlBlock};
use crate::agents::{canonical_agent, AGENTS};
use crate::diagnostic::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Complete,
    Blocked,
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Complete,
        TaskStatus::Blocked,
        TaskStatus::Failed,
    ];

    /// The canonical spelling (`in-progress`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in-progress",
            TaskStatus::Complete => "complete",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Failed => "failed",
        }
    }

    /// Any case; `in-progress`, `in_progress` and `in progress` are the same.
    /// Only the five names are accepted (not `done` or `completed`).
    pub fn parse(s: &str) -> Option<TaskStatus> {
        let n = kebab(s);
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == n)
    }

    /// "pending, in-progress, complete, blocked, failed"
    pub fn accepted() -> String {
        TaskStatus::ALL.map(|t| t.as_str()).join(", ")
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Canonical agent name.
    pub agent: String,
    pub phase: Option<u8>,
    /// May be empty when the file names none.
    pub task: String,
    pub status: TaskStatus,
    /// Workspace-relative paths (a `workspace/` or `./` prefix removed).
    pub outputs: Vec<String>,
    pub blockers: Vec<String>,
    pub next: Option<String>,
    pub task_id: Option<String>,
    /// A `phase` that is none of the phases (`9`, `banana`), kept as written
    /// when `task_id` names the task: the task's own phase counts, and the
    /// engine warns. Without a task_id such a file is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_phase: Option<String>,
}

const FIELDS: &str = "agent, phase, task, status, outputs, blockers, next";

/// Canonical phase names, in order (phase N is `PHASES[N-1]`).
pub const PHASES: [&str; 4] = ["strategy", "pipeline-building", "execution", "analysis"];

/// "coordinator, brand-messaging, ... (aliases: demand-gen, brand, pipeline, cs, growth)"
pub fn accepted_agents() -> String {
    format!(
        "{} (aliases: demand-gen, brand, pipeline, cs, growth)",
        AGENTS.join(", ")
    )
}

/// Lowercase words joined by `-`: `In Progress`, `in_progress` → `in-progress`.
fn kebab(s: &str) -> String {
    s.trim()
        .to_ascii_lowercase()
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A phase given as a number, a name, or "phase 2": 1 to 4.
pub fn parse_phase(s: &str) -> Option<u8> {
    let n = kebab(s);
    let n = n
        .strip_prefix("phase")
        .map(|r| r.trim_start_matches(['-', ':', '#']))
        .unwrap_or(&n);
    let digits: String = n.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !digits.is_empty() {
        let rest = &n[digits.len()..];
        if rest.is_empty() || rest.starts_with(['-', ':']) {
            return digits.parse().ok().filter(|p| (1..=4).contains(p));
        }
        return None;
    }
    let n = n.replace("-&-", "-").replace("-and-", "-");
    if let Some(i) = PHASES.iter().position(|p| *p == n) {
        return Some(i as u8 + 1);
    }
    // The guide's titles: "Strategy & Foundation", "Pipeline Building",
    // "Execution & Optimization", "Analysis & Iteration".
    match n.as_str() {
        "strategy-foundation" => Some(1),
        "execution-optimization" => Some(3),
        "analysis-iteration" => Some(4),
        _ => None,
    }
}

/// Parses a status file. `path` is only used in messages.
pub fn parse_status(path: &str, text: &str) -> Result<StatusReport, Diagnostic> {
    let block = status_block(path, text)?;
    let value = parse_yaml_value(path, &block)?;
    let Value::Mapping(map) = value else {
        return Err(not_a_mapping(path, block.first_line));
    };
    let f = Fields::new(path, &block, map);
    let agent = f.agent()?;
    let (phase, bad_phase) = f.phase();
    let task = f.task()?;
    let status = f.status()?;
    let outputs = f.outputs()?;
    let blockers = f.blockers()?;
    let next = f.next()?;
    let task_id = f.task_id()?;
    // A phase that is no phase is only refused without a task_id: with one,
    // the task's own phase counts and the engine warns.
    let unknown_phase = match (bad_phase, &task_id) {
        (None, _) => None,
        (Some((_, v)), Some(_)) => Some(shown(v)),
        (Some((key, v)), None) => {
            return Err(f.err(
                key,
                format!(
                    "phase {} is not a phase: expected 1-4 or one of {}, or 0 or none for a task outside a phase (with a task_id, the task's own phase counts)",
                    shown(v),
                    PHASES.join(", ")
                ),
            ))
        }
    };
    Ok(StatusReport {
        agent,
        phase,
        task,
        status,
        outputs,
        blockers,
        next,
        task_id,
        unknown_phase,
    })
}

/// The YAML of a status file: the whole file, its front matter or a
/// fenced block. A file meant as YAML but broken (e.g. truncated
/// mid-write) is refused saying where.
fn status_block(path: &str, text: &str) -> Result<YamlBlock, Diagnostic> {
    if let Some(b) = extract_yaml(text) {
        return Ok(b);
    }
    if !looks_like_yaml(text) {
        return Err(Diagnostic::new(
            path,
            None,
            format!(
                "no status YAML found: expected YAML (whole file, front matter, or a ```yaml block) \
                 with {FIELDS}"
            ),
        ));
    }
    let whole = YamlBlock {
        text: text.strip_prefix('\u{feff}').unwrap_or(text).to_string(),
        first_line: 1,
    };
    match parse_yaml_value(path, &whole) {
        Err(mut d) => {
            d.message = format!(
                "{}; a status file holds YAML with {FIELDS} (whole file, front matter, or a ```yaml block)",
                d.message
            );
            Err(d)
        }
        Ok(_) => Err(not_a_mapping(path, 1)),
    }
}

/// The keys of a status mapping, found in any case with `-`, `_` or a
/// space (`Task-ID`, `task_id`), each read into its field with a message
/// at its line when it cannot be.
struct Fields<'a> {
    path: &'a str,
    block: &'a YamlBlock,
    /// (normalised key, key as written, value)
    fields: Vec<(String, String, Value)>,
}

impl<'a> Fields<'a> {
    fn new(path: &'a str, block: &'a YamlBlock, map: serde_yaml::Mapping) -> Fields<'a> {
        let mut fields = Vec::new();
        for (k, v) in map {
            let original = match &k {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            let norm = original
                .trim()
                .to_ascii_lowercase()
                .replace(['-', ' '], "_");
            fields.push((norm, original, v));
        }
        Fields {
            path,
            block,
            fields,
        }
    }

    /// The first field under any of `names`: (key as written, value).
    fn get(&self, names: &[&str]) -> Option<(&str, &Value)> {
        self.fields
            .iter()
            .find(|(n, _, _)| names.contains(&n.as_str()))
            .map(|(_, o, v)| (o.as_str(), v))
    }

    /// A message at the line of `key`.
    fn err(&self, key: &str, msg: String) -> Diagnostic {
        let line = key_line(self.block, key).or(Some(self.block.first_line));
        Diagnostic::new(self.path, line, msg)
    }

    /// A message about a field that is not there, at the block's start.
    fn missing(&self, msg: String) -> Diagnostic {
        Diagnostic::new(self.path, Some(self.block.first_line), msg)
    }

    fn agent(&self) -> Result<String, Diagnostic> {
        let Some((key, v)) = self
            .get(&["agent"])
            .filter(|(_, v)| !matches!(v, Value::Null))
        else {
            return Err(self.missing(format!(
                "status has no `agent`: expected `agent:` with one of {}",
                accepted_agents()
            )));
        };
        let raw = scalar(v).unwrap_or_default();
        match canonical_agent(&raw) {
            Some(a) => Ok(a.to_string()),
            None => Err(self.err(
                key,
                format!(
                    "agent {} is not a known agent: expected one of {}",
                    shown(v),
                    accepted_agents()
                ),
            )),
        }
    }

    /// The phase, or the field as written when it is no phase (judged once
    /// the task_id is known).
    fn phase(&self) -> (Option<u8>, Option<(&str, &Value)>) {
        match self.get(&["phase"]) {
            None | Some((_, Value::Null)) => (None, None),
            Some((key, v)) => match scalar(v) {
                Some(raw) if is_no_phase(&raw) => (None, None),
                Some(raw) => match parse_phase(&raw) {
                    Some(p) => (Some(p), None),
                    None => (None, Some((key, v))),
                },
                None => (None, Some((key, v))),
            },
        }
    }

    fn task(&self) -> Result<String, Diagnostic> {
        match self.get(&["task"]) {
            None | Some((_, Value::Null)) => Ok(String::new()),
            Some((key, v)) => match scalar(v) {
                Some(s) => Ok(s.trim().to_string()),
                None => Err(self.err(
                    key,
                    "task must be text (e.g. `task: Google Ads campaign design`), not a list or mapping"
                        .to_string(),
                )),
            },
        }
    }

    fn status(&self) -> Result<TaskStatus, Diagnostic> {
        let Some((key, v)) = self
            .get(&["status"])
            .filter(|(_, v)| !matches!(v, Value::Null))
        else {
            return Err(self.missing(format!(
                "status has no `status`: expected `status:` with one of {}",
                TaskStatus::accepted()
            )));
        };
        scalar(v)
            .as_deref()
            .and_then(TaskStatus::parse)
            .ok_or_else(|| {
                self.err(
                    key,
                    format!(
                        "status {} is not one of {}",
                        shown(v),
                        TaskStatus::accepted()
                    ),
                )
            })
    }

    /// Workspace-relative paths, each once; a path leading out of the
    /// workspace is refused.
    fn outputs(&self) -> Result<Vec<String>, Diagnostic> {
        let Some((key, v)) = self.get(&["outputs", "output"]) else {
            return Ok(Vec::new());
        };
        let items = string_list(v).ok_or_else(|| {
            self.err(
                key,
                "outputs must be a list of paths (or one path, or `none`), not a mapping"
                    .to_string(),
            )
        })?;
        let mut out = Vec::new();
        for item in items {
            match normalize_output(&item) {
                Ok(Some(p)) => {
                    if !out.contains(&p) {
                        out.push(p)
                    }
                }
                Ok(None) => {}
                Err(why) => {
                    return Err(self.err(
                        key,
                        format!(
                            "output {item:?} {why}: outputs must be paths inside the workspace, \
                             like `demand-gen/campaigns/google-ads.md` or `workspace/demand-gen/campaigns/google-ads.md`"
                        ),
                    ))
                }
            }
        }
        Ok(out)
    }

    fn blockers(&self) -> Result<Vec<String>, Diagnostic> {
        match self.get(&["blockers", "blocker", "blocked_by"]) {
            None => Ok(Vec::new()),
            Some((_, Value::Bool(false))) => Ok(Vec::new()),
            Some((key, v)) => Ok(string_list(v)
                .ok_or_else(|| {
                    self.err(
                        key,
                        "blockers must be `none`, one sentence, or a list of sentences, not a mapping"
                            .to_string(),
                    )
                })?
                .into_iter()
                .map(|b| b.trim().to_string())
                .filter(|b| !is_none_word(b))
                .collect()),
        }
    }

    fn next(&self) -> Result<Option<String>, Diagnostic> {
        match self.get(&["next", "next_task", "next_step"]) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((key, v)) => match scalar(v) {
                Some(s) if is_none_word(s.trim()) => Ok(None),
                Some(s) => Ok(Some(s.trim().to_string())),
                None => Err(self.err(
                    key,
                    "next must be text (what the agent does next) or `none`, not a list or mapping"
                        .to_string(),
                )),
            },
        }
    }

    fn task_id(&self) -> Result<Option<String>, Diagnostic> {
        match self.get(&["task_id", "taskid", "id"]) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, v @ (Value::String(_) | Value::Number(_)))) => Ok(Some(
                scalar(v).unwrap_or_default().trim().to_string(),
            )
            .filter(|s| !s.is_empty())),
            Some((key, v)) => {
                let shown = shown(v);
                let msg =
                    format!("task_id {shown} must be text or a number (e.g. `task_id: t-42`)");
                Err(self.err(key, msg))
            }
        }
    }
}

/// A phase that says "outside any phase", as agents write it for a conflict
/// review or a decision task: `0`, `none`, `null`, `-`, empty.
fn is_no_phase(s: &str) -> bool {
    let l = s.trim().to_ascii_lowercase();
    is_none_word(&l) || matches!(l.as_str(), "0" | "null" | "~")
}

fn not_a_mapping(path: &str, line: usize) -> Diagnostic {
    Diagnostic::new(
        path,
        Some(line),
        format!("status YAML is not a mapping: expected `key: value` lines with {FIELDS}"),
    )
}

/// A scalar as text (strings, numbers, booleans); `None` for lists and mappings.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Tagged(t) => scalar(&t.value),
        _ => None,
    }
}

/// A value as it would appear in a message: `"done"`, `7`, `a list`.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s),
        Value::Sequence(_) => "(a list)".to_string(),
        Value::Mapping(_) => "(a mapping)".to_string(),
        Value::Tagged(t) => shown(&t.value),
        other => scalar(other).unwrap_or_default(),
    }
}

fn is_none_word(s: &str) -> bool {
    let l = s.trim().to_ascii_lowercase();
    matches!(
        l.as_str(),
        "" | "none" | "n/a" | "na" | "-" | "[]" | "nothing"
    )
}

/// A string, a list of scalars, `none` or null as a list of strings
/// (`None` for a mapping or a list holding one).
fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Sequence(items) => {
            let mut out = Vec::new();
            for i in items {
                match i {
                    Value::Null => {}
                    other => out.push(scalar(other)?),
                }
            }
            Some(out)
        }
        Value::Tagged(t) => string_list(&t.value),
        Value::Mapping(_) => None,
        other => {
            let s = scalar(other)?;
            Some(if is_none_word(&s) {
                Vec::new()
            } else {
                vec![s]
            })
        }
    }
}

/// An output path made workspace-relative: `Ok(None)` for an empty entry or
/// `none`, `Err(why)` for a path that leads out of the workspace.
pub fn normalize_output(raw: &str) -> Result<Option<String>, &'static str> {
    let mut p = raw.trim().trim_matches('`').trim();
    if is_none_word(p) {
        return Ok(None);
    }
    if p.starts_with('/') || p.starts_with('\\') || p.starts_with('~') {
        return Err("is absolute");
    }
    let b = p.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err("is absolute");
    }
    loop {
        if let Some(r) = p.strip_prefix("./") {
            p = r;
        } else if let Some(r) = p.strip_prefix("workspace/") {
            p = r;
        } else {
            break;
        }
    }
    let dir = p.ends_with('/');
    let parts: Vec<&str> = p
        .split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Err("has a `..` component");
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let mut out = parts.join("/");
    if dir {
        out.push('/');
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE_EXAMPLE: &str = "agent: demand-generation
phase: 2
task: Google Ads campaign design
status: complete
outputs:
  - workspace/demand-gen/campaigns/google-ads-search.md
  - workspace/demand-gen/campaigns/google-ads-display.md
blockers: none
next: LinkedIn Ads campaign design
";

    fn guide_report() -> StatusReport {
        StatusReport {
            agent: "demand-generation".into(),
            phase: Some(2),
            task: "Google Ads campaign design".into(),
            status: TaskStatus::Complete,
            outputs: vec![
                "demand-gen/campaigns/google-ads-search.md".into(),
                "demand-gen/campaigns/google-ads-display.md".into(),
            ],
            blockers: vec![],
            next: Some("LinkedIn Ads campaign design".into()),
            task_id: None,
            unknown_phase: None,
        }
    }

    #[test]
    fn guide_example_as_whole_file() {
        assert_eq!(
            parse_status("status/demand-generation.md", GUIDE_EXAMPLE).unwrap(),
            guide_report()
        );
    }

    #[test]
    fn guide_example_as_front_matter() {
        let text = format!("---\n{GUIDE_EXAMPLE}---\n\n# Notes\n\nAll done.\n");
        assert_eq!(parse_status("s", &text).unwrap(), guide_report());
    }

    #[test]
    fn guide_example_in_first_fenced_yaml_block() {
        let text = format!(
            "# Status\n\nFinished the campaign.\n\n```yaml\n{GUIDE_EXAMPLE}```\n\n```yaml\nagent: cs\nstatus: failed\n```\n"
        );
        assert_eq!(parse_status("s", &text).unwrap(), guide_report());
    }

    /// The guide's example with one key's value replaced (its indented
    /// continuation lines dropped).
    fn with(key: &str, value: &str) -> String {
        let mut out = Vec::new();
        let mut replacing = false;
        for l in GUIDE_EXAMPLE.lines() {
            if l.starts_with(&format!("{key}:")) {
                out.push(format!("{key}: {value}"));
                replacing = true;
            } else if !(replacing && l.starts_with(' ')) {
                replacing = false;
                out.push(l.to_string());
            }
        }
        out.join("\n")
    }

    #[test]
    fn blockers_none_string_list() {
        let r = parse_status("s", &with("blockers", "none")).unwrap();
        assert!(r.blockers.is_empty());
        let r = parse_status("s", &with("blockers", "None")).unwrap();
        assert!(r.blockers.is_empty());
        let r = parse_status("s", &with("blockers", "")).unwrap();
        assert!(r.blockers.is_empty());
        let r = parse_status("s", &GUIDE_EXAMPLE.replace("blockers: none\n", "")).unwrap();
        assert!(r.blockers.is_empty());
        let r = parse_status("s", &with("blockers", "waiting for budget approval")).unwrap();
        assert_eq!(r.blockers, vec!["waiting for budget approval"]);
        let r = parse_status("s", &with("blockers", "[\"no CRM access\", \"no budget\"]")).unwrap();
        assert_eq!(r.blockers, vec!["no CRM access", "no budget"]);
        let text = GUIDE_EXAMPLE.replace("blockers: none", "blockers:\n  - one\n  - two");
        assert_eq!(
            parse_status("s", &text).unwrap().blockers,
            vec!["one", "two"]
        );
        let err = parse_status("s", &with("blockers", "{a: 1}")).unwrap_err();
        assert!(err.message.contains("blockers must be"), "{err}");
    }

    #[test]
    fn outputs_are_normalised_and_confined() {
        let r = parse_status("s", &with("outputs", "./workspace/analytics/kpi.md")).unwrap();
        assert_eq!(r.outputs, vec!["analytics/kpi.md"]);
        let r = parse_status("s", &with("outputs", "[strategy/personas/, none]")).unwrap();
        assert_eq!(r.outputs, vec!["strategy/personas/"]);
        let r = parse_status("s", &with("outputs", "none")).unwrap();
        assert!(r.outputs.is_empty());

        let err = parse_status("status/cs.md", &with("outputs", "../x")).unwrap_err();
        assert!(
            err.message
                .contains("outputs must be paths inside the workspace"),
            "{err}"
        );
        assert_eq!(err.line, Some(5));
        let err = parse_status("s", &with("outputs", "/etc/passwd")).unwrap_err();
        assert!(err.message.contains("\"/etc/passwd\" is absolute"), "{err}");
        let err = parse_status("s", &with("outputs", "[ok.md, a/../../b.md]")).unwrap_err();
        assert!(err.message.contains(".."), "{err}");
        let err = parse_status("s", &with("outputs", "workspace/../etc")).unwrap_err();
        assert!(err.message.contains(".."), "{err}");
        assert!(normalize_output("C:\\x").is_err());
        assert!(normalize_output("~/x").is_err());
    }

    #[test]
    fn unknown_status_is_refused_with_the_five() {
        let err = parse_status("status/cs.md", &with("status", "done")).unwrap_err();
        assert_eq!(
            err.message,
            "status \"done\" is not one of pending, in-progress, complete, blocked, failed"
        );
        assert_eq!(err.line, Some(4));
        assert_eq!(err.to_string(), format!("status/cs.md:4: {}", err.message));
        assert!(parse_status("s", &with("status", "completed")).is_err());
        let err = parse_status("s", &GUIDE_EXAMPLE.replace("status: complete\n", "")).unwrap_err();
        assert!(err.message.contains("no `status`"), "{err}");
        assert!(err.message.contains("in-progress"), "{err}");
    }

    #[test]
    fn status_spellings() {
        for s in ["in-progress", "in_progress", "In Progress", "IN-PROGRESS"] {
            assert_eq!(
                parse_status("s", &with("status", s)).unwrap().status,
                TaskStatus::InProgress
            );
        }
        assert_eq!(
            parse_status("s", &with("status", "Blocked"))
                .unwrap()
                .status,
            TaskStatus::Blocked
        );
    }

    #[test]
    fn unknown_agent_names_the_accepted_ones() {
        let err = parse_status("s", &with("agent", "marketing-bot")).unwrap_err();
        assert!(
            err.message
                .contains("\"marketing-bot\" is not a known agent"),
            "{err}"
        );
        for a in AGENTS {
            assert!(err.message.contains(a), "{err}");
        }
        assert!(err.message.contains("demand-gen"), "{err}");
        assert_eq!(err.line, Some(1));
        let err = parse_status(
            "s",
            &GUIDE_EXAMPLE.replace("agent: demand-generation\n", ""),
        )
        .unwrap_err();
        assert!(err.message.contains("no `agent`"), "{err}");
    }

    #[test]
    fn aliases_are_canonical() {
        for (alias, canon) in [
            ("demand-gen", "demand-generation"),
            ("brand", "brand-messaging"),
            ("pipeline", "pipeline-manager"),
            ("cs", "customer-success"),
            ("growth", "growth-analyst"),
            ("Customer_Success", "customer-success"),
        ] {
            assert_eq!(
                parse_status("s", &with("agent", alias)).unwrap().agent,
                canon
            );
        }
    }

    #[test]
    fn phases_by_number_and_name() {
        for (v, p) in [
            ("1", 1),
            ("\"3\"", 3),
            ("strategy", 1),
            ("pipeline-building", 2),
            ("Pipeline Building", 2),
            ("phase 2", 2),
            ("Phase 4", 4),
            ("execution", 3),
            ("Analysis & Iteration", 4),
        ] {
            assert_eq!(
                parse_status("s", &with("phase", v)).unwrap().phase,
                Some(p),
                "{v}"
            );
        }
        assert_eq!(parse_status("s", &with("phase", "")).unwrap().phase, None);
        let err = parse_status("s", &with("phase", "5")).unwrap_err();
        assert!(
            err.message.contains("expected 1-4 or one of strategy"),
            "{err}"
        );
        assert_eq!(err.line, Some(2));
        assert!(parse_status("s", &with("phase", "launch")).is_err());
        assert!(parse_status("s", &with("phase", "2.5")).is_err());
        assert_eq!(parse_phase("Phase 2: Pipeline Building"), Some(2));
    }

    #[test]
    fn a_task_outside_a_phase_may_say_phase_0_or_none() {
        for v in [
            "0", "\"0\"", "none", "None", "null", "\"null\"", "~", "\"-\"", "\"\"", "n/a",
        ] {
            let r = parse_status("s", &with("phase", v)).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!((r.phase, r.unknown_phase), (None, None), "{v}");
        }
        let r = parse_status("s", &GUIDE_EXAMPLE.replace("phase: 2\n", "")).unwrap();
        assert_eq!(r.phase, None);
    }

    #[test]
    fn an_unknown_phase_with_a_task_id_is_kept_for_a_warning_not_refused() {
        for (v, shown) in [("9", "9"), ("banana", "\"banana\""), ("[1, 2]", "(a list)")] {
            let text = format!("{}\ntask_id: t0004-conflict-review\n", with("phase", v));
            let r = parse_status("status/coordinator.md", &text).unwrap();
            assert_eq!(r.phase, None, "{v}");
            assert_eq!(r.unknown_phase.as_deref(), Some(shown), "{v}");
            assert_eq!(r.outputs.len(), 2, "nothing else of the file is lost");
        }
        // Without a task_id nothing says which task it is about.
        let err = parse_status("status/coordinator.md", &with("phase", "banana")).unwrap_err();
        assert!(
            err.message.contains("phase \"banana\" is not a phase"),
            "{err}"
        );
        assert!(
            err.message.contains("0 or none for a task outside a phase"),
            "{err}"
        );
        assert!(err.message.contains("task_id"), "{err}");
    }

    #[test]
    fn task_id_string_or_number() {
        let text = format!("{GUIDE_EXAMPLE}task_id: 42\n");
        assert_eq!(
            parse_status("s", &text).unwrap().task_id.as_deref(),
            Some("42")
        );
        let text = format!("{GUIDE_EXAMPLE}task-id: t-7\n");
        assert_eq!(
            parse_status("s", &text).unwrap().task_id.as_deref(),
            Some("t-7")
        );
        let text = format!("{GUIDE_EXAMPLE}task_id: [1]\n");
        assert!(parse_status("s", &text).is_err());
    }

    #[test]
    fn next_none_and_task_number() {
        let r = parse_status("s", &with("next", "none")).unwrap();
        assert_eq!(r.next, None);
        let r = parse_status("s", &with("task", "42")).unwrap();
        assert_eq!(r.task, "42");
    }

    #[test]
    fn truncated_yaml_gives_a_line() {
        // A writer stopped mid-file: an unclosed quote on line 3.
        let text = "agent: demand-generation\nphase: 2\ntask: \"Google Ads campa";
        let err = parse_status("status/demand-gen.md", text).unwrap_err();
        assert!(err.line.is_some(), "{err}");
        assert!(err.message.contains("invalid YAML"), "{err}");
        assert!(err.message.contains("status, outputs"), "{err}");

        // Truncated inside a fenced block.
        let text = "# Status\n\n```yaml\nagent: cs\nstatus: complete\noutputs: [a.md,\n";
        let err = parse_status("s", text).unwrap_err();
        assert!(err.line.unwrap() >= 4, "{err}");

        // Front matter cut before its closing line.
        let text = "---\nagent: cs\nstatus: [comp";
        let err = parse_status("s", text).unwrap_err();
        assert!(err.line.is_some(), "{err}");
    }

    #[test]
    fn no_yaml_at_all() {
        let err = parse_status("status/cs.md", "# Status\n\nAll good, shipped it.\n").unwrap_err();
        assert!(err.message.starts_with("no status YAML found"), "{err}");
        assert!(err.message.contains("```yaml"), "{err}");
        let err = parse_status("s", "- a\n- b\n").unwrap_err();
        assert!(err.message.contains("no status YAML") || err.message.contains("not a mapping"));
    }

    #[test]
    fn alias_bomb_status_is_refused_quickly() {
        let mut s = String::from("agent: cs\nstatus: complete\na0: &a0 [\"lol\"]\n");
        for i in 1..=9 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let t = std::time::Instant::now();
        let err = parse_status("status/cs.md", &s).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(err.message.contains("alias"), "{err}");
    }
}
