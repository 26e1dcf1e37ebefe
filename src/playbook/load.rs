//! Reading and validating a playbook file.
//!
//! Parsing happens in two passes. serde_yaml turns the text into private `Raw*`
//! mirrors of the public types that refuse unknown keys (so a typo such as
//! `depend_on:` is an error with a line, not a silently ignored field). Then a
//! validator checks what the type system cannot (numbering, unique ids, known
//! agents, dependencies, cycles, paths that stay inside the workspace) and
//! collects every problem, not just the first.
//!
//! serde_yaml gives no positions for values that deserialized fine, so the
//! semantic errors locate their line by searching the source text: from the
//! line of the offending step's `id:` (or the phase's `number:`, or the
//! section's key) forward to the value. That is a heuristic, but one that holds
//! for any ordinary block- or flow-style file.

use super::{AutoCheck, Gate, Phase, Playbook, Route, RouteKind, Scenario, Step};
use crate::agents::{canonical_agent, AGENTS};
use crate::diagnostic::Diagnostic;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// The guide's playbook, embedded in the binary.
pub const DEFAULT_PLAYBOOK: &str = include_str!("default.yaml");

/// The name diagnostics use for [`DEFAULT_PLAYBOOK`].
pub const DEFAULT_PLAYBOOK_NAME: &str = "<embedded playbook>";

/// Used when a playbook file does not set `default_timeout_secs`.
const FALLBACK_TIMEOUT_SECS: u64 = 3600;
/// Used when a playbook file does not set `default_retries`.
const FALLBACK_RETRIES: u32 = 2;

/// Read and validate the playbook at `path`, a regular file of at most
/// `max_size` bytes. A read error is one diagnostic.
pub fn load_playbook(path: &std::path::Path, max_size: u64) -> Result<Playbook, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let bytes = crate::input::read_bounded(path, max_size)
        .map_err(|e| vec![Diagnostic::new(&name, None, format!("the playbook {e}"))])?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = crate::diagnostic::line_of_offset(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        vec![Diagnostic::new(
            &name,
            Some(line),
            "the playbook is not valid UTF-8",
        )]
    })?;
    parse_playbook(&name, &text)
}

/// Parse and validate a playbook; `path` is only used in diagnostics.
///
/// Agent names are stored canonical (aliases such as `cs` are accepted).
/// Returns every problem found, each with its line where it can be located.
pub fn parse_playbook(path: &str, text: &str) -> Result<Playbook, Vec<Diagnostic>> {
    let raw: RawPlaybook = serde_yaml::from_str(text).map_err(|e| vec![yaml_error(path, &e)])?;
    let mut playbook = raw.into_playbook();
    let mut v = Validator {
        path,
        loc: Locator::new(text),
        errors: Vec::new(),
    };
    v.validate(&mut playbook);
    if v.errors.is_empty() {
        Ok(playbook)
    } else {
        Err(v.errors)
    }
}

/// A serde_yaml error as a diagnostic: its line in the field, not in the text.
pub(crate) fn yaml_error(path: &str, e: &serde_yaml::Error) -> Diagnostic {
    let line = e.location().map(|l| l.line());
    Diagnostic::new(path, line, strip_marks(&e.to_string()))
}

/// Remove serde_yaml's " at line L column C" / " at position P" from a message;
/// the diagnostic carries the line itself.
fn strip_marks(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    loop {
        let found = [" at line ", " at position "]
            .iter()
            .filter_map(|pat| rest.find(pat).map(|i| (i, *pat)))
            .min_by_key(|(i, _)| *i);
        let Some((i, pat)) = found else {
            out.push_str(rest);
            return out;
        };
        let after = &rest[i + pat.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            out.push_str(&rest[..i + pat.len()]);
            rest = after;
            continue;
        }
        let mut end = i + pat.len() + digits;
        if pat == " at line " {
            if let Some(col) = rest[end..].strip_prefix(" column ") {
                let d = col.bytes().take_while(u8::is_ascii_digit).count();
                if d > 0 {
                    end += " column ".len() + d;
                }
            }
        }
        out.push_str(&rest[..i]);
        rest = &rest[end..];
    }
}

// ---------------------------------------------------------------------------
// Raw shapes: the public types plus `deny_unknown_fields`.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    phases: Vec<RawPhase>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    scenarios: Vec<RawScenario>,
    #[serde(default = "fallback_timeout")]
    default_timeout_secs: u64,
    #[serde(default = "fallback_retries")]
    default_retries: u32,
    #[serde(default)]
    decision_rules: super::DecisionRules,
}

fn fallback_timeout() -> u64 {
    FALLBACK_TIMEOUT_SECS
}

fn fallback_retries() -> u32 {
    FALLBACK_RETRIES
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    number: u8,
    name: String,
    title: String,
    steps: Vec<RawStep>,
    gate: RawGate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    agent: String,
    title: String,
    #[serde(default)]
    activities: Vec<String>,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    outputs: Vec<String>,
    estimate_minutes: u32,
    #[serde(default)]
    depends_on: Vec<String>,
    action: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    #[serde(default)]
    checklist: Vec<String>,
    #[serde(default)]
    checks: Vec<RawCheck>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum RawCheck {
    OutputsExist,
    BudgetSums {
        file: String,
    },
    PersonasCover {
        dir: String,
        topics: Vec<String>,
    },
    KpiCoverage {
        file: String,
        stages: Vec<String>,
    },
    PersonaVariants {
        personas_dir: String,
        files: Vec<String>,
    },
    ExperimentDesigns {
        dir: String,
        fields: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    to: String,
    #[serde(default)]
    purpose: String,
    kind: RouteKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    required_phases: Vec<u8>,
    #[serde(default)]
    focus: String,
}

impl RawPlaybook {
    fn into_playbook(self) -> Playbook {
        Playbook {
            phases: self.phases.into_iter().map(RawPhase::into_phase).collect(),
            routes: self
                .routes
                .into_iter()
                .map(|r| Route {
                    path: r.path,
                    to: r.to,
                    purpose: r.purpose,
                    kind: r.kind,
                })
                .collect(),
            scenarios: self
                .scenarios
                .into_iter()
                .map(|s| Scenario {
                    name: s.name,
                    required_phases: s.required_phases,
                    focus: s.focus,
                })
                .collect(),
            default_timeout_secs: self.default_timeout_secs,
            default_retries: self.default_retries,
            decision_rules: self.decision_rules,
            digest: Default::default(),
        }
    }
}

impl RawPhase {
    fn into_phase(self) -> Phase {
        Phase {
            number: self.number,
            name: self.name,
            title: self.title,
            steps: self
                .steps
                .into_iter()
                .map(|s| Step {
                    id: s.id,
                    agent: s.agent,
                    title: s.title,
                    activities: s.activities,
                    inputs: s.inputs,
                    outputs: s.outputs,
                    estimate_minutes: s.estimate_minutes,
                    depends_on: s.depends_on,
                    action: s.action,
                })
                .collect(),
            gate: Gate {
                checklist: self.gate.checklist,
                checks: self
                    .gate
                    .checks
                    .into_iter()
                    .map(RawCheck::into_check)
                    .collect(),
            },
        }
    }
}

impl RawCheck {
    fn into_check(self) -> AutoCheck {
        match self {
            RawCheck::OutputsExist => AutoCheck::OutputsExist,
            RawCheck::BudgetSums { file } => AutoCheck::BudgetSums { file },
            RawCheck::PersonasCover { dir, topics } => AutoCheck::PersonasCover { dir, topics },
            RawCheck::KpiCoverage { file, stages } => AutoCheck::KpiCoverage { file, stages },
            RawCheck::PersonaVariants {
                personas_dir,
                files,
            } => AutoCheck::PersonaVariants {
                personas_dir,
                files,
            },
            RawCheck::ExperimentDesigns { dir, fields } => {
                AutoCheck::ExperimentDesigns { dir, fields }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Validation.

/// The scenario names the guide defines (any other kebab-case name is allowed).
const KNOWN_SCENARIOS: [&str; 4] = [
    "new-product-launch",
    "scaling",
    "new-market",
    "quarterly-planning",
];

struct Validator<'a> {
    path: &'a str,
    loc: Locator<'a>,
    errors: Vec<Diagnostic>,
}

/// Where a step sits in the source: its `id:` line and the end of its lines.
#[derive(Clone, Copy)]
struct Span {
    start: Option<usize>,
    end: usize,
}

impl Validator<'_> {
    fn error(&mut self, line: Option<usize>, message: String) {
        self.errors.push(Diagnostic::new(self.path, line, message));
    }

    fn validate(&mut self, pb: &mut Playbook) {
        if pb.default_timeout_secs == 0 {
            let line = self.loc.key_line(0, self.loc.len(), "default_timeout_secs");
            self.error(
                line.map(|l| l + 1),
                "default_timeout_secs must be at least 1 second".into(),
            );
        }
        self.validate_phases(pb);
        self.validate_steps(pb);
        self.validate_routes(pb);
        self.validate_scenarios(pb);
        self.validate_decision_rules(pb);
    }

    fn validate_decision_rules(&mut self, pb: &Playbook) {
        let r = &pb.decision_rules;
        let section = self.loc.key_line(0, self.loc.len(), "decision_rules");
        let line_of = |v: &Validator, key: &str| {
            section
                .and_then(|s| v.loc.key_line(s, v.loc.len(), key))
                .or(section)
                .map(|l| l + 1)
        };
        for (key, v) in [
            ("restart_cac_multiple", r.restart_cac_multiple),
            ("scale_max_cac_multiple", r.scale_max_cac_multiple),
            ("scale_min_ltv_cac", r.scale_min_ltv_cac),
        ] {
            if !(v.is_finite() && v > 0.0) {
                let line = line_of(self, key);
                self.error(
                    line,
                    format!("decision_rules.{key} must be a number above 0"),
                );
            }
        }
        if !(0.0..100.0).contains(&r.improving_min_drop_pct) {
            let line = line_of(self, "improving_min_drop_pct");
            self.error(
                line,
                "decision_rules.improving_min_drop_pct must be a percentage from 0 to 100".into(),
            );
        }
        if r.file.starts_with('/') || r.file.split('/').any(|c| c == "..") || r.file.is_empty() {
            let line = line_of(self, "file");
            self.error(
                line,
                format!(
                    "decision_rules.file {:?} must be a path inside the workspace, like analytics/unit-economics.md",
                    r.file
                ),
            );
        }
    }

    /// The `number:` line of the i-th phase (only phases have a `number` key).
    fn phase_anchor(&self, i: usize) -> Option<usize> {
        self.loc.nth_key_line("number", i)
    }

    /// Lines that belong to the i-th phase, as well as they can be told: from
    /// its `number:` line to the next phase's (or the next top-level section).
    fn phase_span(&self, i: usize) -> (usize, usize) {
        let start = self
            .phase_anchor(i)
            .or_else(|| self.loc.key_line(0, self.loc.len(), "phases"))
            .unwrap_or(0);
        let end = self
            .phase_anchor(i + 1)
            .or_else(|| self.loc.key_line(start, self.loc.len(), "routes"))
            .or_else(|| self.loc.key_line(start, self.loc.len(), "scenarios"))
            .unwrap_or(self.loc.len());
        (start, end.max(start))
    }

    /// The line of the i-th phase's `key: value`: after its `number:` line,
    /// or else between the previous phase's `number:` line and its own.
    fn phase_key_value_line(&self, i: usize, key: &str, value: &str) -> Option<usize> {
        let (start, end) = self.phase_span(i);
        self.loc.key_value_line(start, end, key, value).or_else(|| {
            let before = match i {
                0 => 0,
                _ => self.phase_anchor(i - 1).map_or(0, |l| l + 1),
            };
            self.loc.key_value_line(before, start, key, value)
        })
    }

    fn validate_phases(&mut self, pb: &Playbook) {
        if pb.phases.is_empty() {
            let line = self.loc.key_line(0, self.loc.len(), "phases");
            self.error(line.map(|l| l + 1), "the playbook has no phases".into());
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, phase) in pb.phases.iter().enumerate() {
            if usize::from(phase.number) != i + 1 {
                let line = self
                    .phase_anchor(i)
                    .or_else(|| self.phase_key_value_line(i, "name", &phase.name));
                self.error(
                    line.map(|l| l + 1),
                    format!(
                        "phase `{}` is numbered {} but is phase {} in the file: phases must be numbered 1, 2, 3, ... in order",
                        phase.name,
                        phase.number,
                        i + 1
                    ),
                );
            }
            let name_line = self
                .phase_key_value_line(i, "name", &phase.name)
                .or(self.phase_anchor(i));
            if !is_kebab(&phase.name) {
                self.error(
                    name_line.map(|l| l + 1),
                    format!(
                        "phase name `{}` must be kebab-case (lowercase letters, digits and `-`), like `pipeline-building`: it names the gate file",
                        phase.name
                    ),
                );
            }
            if let Some(first) = names.get(phase.name.as_str()) {
                self.error(
                    name_line.map(|l| l + 1),
                    format!(
                        "phase name `{}` is used twice (phases {} and {}): phase names must be unique",
                        phase.name,
                        first,
                        i + 1
                    ),
                );
            } else {
                names.insert(&phase.name, i + 1);
            }
            self.validate_checks(i, phase);
        }
    }

    fn validate_checks(&mut self, i: usize, phase: &Phase) {
        let (start, end) = self.phase_span(i);
        let gate_line = self.loc.key_line(start, end, "gate");
        let from = gate_line.unwrap_or(start);
        for check in &phase.gate.checks {
            let paths: Vec<(&str, &String)> = match check {
                AutoCheck::OutputsExist => vec![],
                AutoCheck::BudgetSums { file } => vec![("file", file)],
                AutoCheck::PersonasCover { dir, .. } => vec![("dir", dir)],
                AutoCheck::KpiCoverage { file, .. } => vec![("file", file)],
                AutoCheck::PersonaVariants {
                    personas_dir,
                    files,
                } => std::iter::once(("personas_dir", personas_dir))
                    .chain(files.iter().map(|f| ("files", f)))
                    .collect(),
                AutoCheck::ExperimentDesigns { dir, .. } => vec![("dir", dir)],
            };
            for (key, p) in paths {
                if let Some(problem) = path_problem(p) {
                    let line = self.loc.value_line(from, end, key, p).or(gate_line);
                    self.error(
                        line.map(|l| l + 1),
                        format!(
                            "phase {} gate check `{}` path {problem}: paths must stay inside the workspace",
                            phase.number, key
                        ),
                    );
                }
            }
        }
    }

    fn validate_steps(&mut self, pb: &mut Playbook) {
        // Locate every step first: the k-th step with a given id is at the
        // k-th `id: <id>` line.
        let mut seen_count: HashMap<String, usize> = HashMap::new();
        let mut spans: Vec<Vec<Span>> = Vec::new();
        for phase in &pb.phases {
            let mut phase_spans = Vec::new();
            for step in &phase.steps {
                let k = seen_count.entry(step.id.clone()).or_insert(0);
                let start = self.loc.nth_key_value_line("id", &step.id, *k);
                *k += 1;
                let end = start
                    .and_then(|s| self.loc.key_line(s + 1, self.loc.len(), "id"))
                    .unwrap_or(self.loc.len());
                phase_spans.push(Span { start, end });
            }
            spans.push(phase_spans);
        }

        // Which phase each step id belongs to (its first definition).
        let mut owner: HashMap<String, (usize, Option<usize>)> = HashMap::new();
        for (pi, phase) in pb.phases.iter().enumerate() {
            for (si, step) in phase.steps.iter().enumerate() {
                let span = spans[pi][si];
                if !is_kebab(&step.id) {
                    self.error(
                        span.start.map(|l| l + 1),
                        format!(
                            "step id `{}` must be kebab-case (lowercase letters, digits and `-`), like `gtm-strategy`",
                            step.id
                        ),
                    );
                }
                if let Some((_, first)) = owner.get(&step.id) {
                    let also =
                        first.map_or(String::new(), |l| format!(" (first at line {})", l + 1));
                    self.error(
                        span.start.map(|l| l + 1),
                        format!(
                            "step id `{}` is used twice{also}: step ids must be unique across the playbook",
                            step.id
                        ),
                    );
                } else {
                    owner.insert(step.id.clone(), (pi, span.start));
                }
            }
        }

        for (pi, phase) in pb.phases.iter_mut().enumerate() {
            let number = phase.number;
            let phase_name = phase.name.clone();
            for (si, step) in phase.steps.iter_mut().enumerate() {
                let span = spans[pi][si];
                let from = span.start.unwrap_or(0);
                match canonical_agent(&step.agent) {
                    Some(c) => step.agent = c.to_string(),
                    None => {
                        let line = self
                            .loc
                            .key_value_line(from, span.end, "agent", &step.agent)
                            .or(span.start);
                        self.error(
                            line.map(|l| l + 1),
                            format!(
                                "step `{}`: unknown agent `{}`; {}",
                                step.id,
                                step.agent,
                                expected_agents()
                            ),
                        );
                    }
                }
                for (key, list) in [("inputs", &step.inputs), ("outputs", &step.outputs)] {
                    let singular = &key[..key.len() - 1];
                    for p in list {
                        if let Some(problem) = path_problem(p) {
                            let line = self.loc.value_line(from, span.end, key, p).or(span.start);
                            self.error(
                                line.map(|l| l + 1),
                                format!(
                                    "step `{}`: {singular} path {problem}: paths must stay inside the workspace",
                                    step.id
                                ),
                            );
                        }
                    }
                }
                for dep in &step.depends_on {
                    let problem = match owner.get(dep) {
                        None => format!("depends on unknown step `{dep}`"),
                        Some((dp, _)) if *dp != pi => {
                            format!(
                                "depends on `{dep}`, a step of phase {}; depends_on may only name steps of the same phase ({number}, {phase_name})",
                                *dp + 1
                            )
                        }
                        Some(_) => continue,
                    };
                    let line = self
                        .loc
                        .value_line(from, span.end, "depends_on", dep)
                        .or(span.start);
                    self.error(line.map(|l| l + 1), format!("step `{}` {problem}", step.id));
                }
            }
        }

        for (pi, phase) in pb.phases.iter().enumerate() {
            for (cycle, first) in find_cycles(&phase.steps) {
                let span = spans[pi][first];
                let line = span
                    .start
                    .and_then(|s| self.loc.key_line(s, span.end, "depends_on"))
                    .or(span.start);
                self.error(
                    line.map(|l| l + 1),
                    format!(
                        "dependency cycle in phase {} ({}): {}",
                        phase.number,
                        phase.name,
                        cycle.join(" → ")
                    ),
                );
            }
        }
    }

    fn validate_routes(&mut self, pb: &mut Playbook) {
        let section = self.loc.key_line(0, self.loc.len(), "routes").unwrap_or(0);
        let end = self.loc.len();
        for route in &mut pb.routes {
            if let Some(problem) = path_problem(&route.path) {
                let line = self
                    .loc
                    .value_line(section, end, "path", &route.path)
                    .or(Some(section));
                self.error(
                    line.map(|l| l + 1),
                    format!("route path {problem}: paths must stay inside the workspace"),
                );
            }
            if route.to.trim().eq_ignore_ascii_case("all") {
                route.to = "all".into();
            } else if let Some(c) = canonical_agent(&route.to) {
                route.to = c.to_string();
            } else {
                let line = self
                    .loc
                    .key_value_line(section, end, "to", &route.to)
                    .or(Some(section));
                self.error(
                    line.map(|l| l + 1),
                    format!(
                        "route for `{}`: unknown recipient `{}`; {}, or `all`",
                        route.path,
                        route.to,
                        expected_agents()
                    ),
                );
            }
        }
    }

    fn validate_scenarios(&mut self, pb: &Playbook) {
        let section = self
            .loc
            .key_line(0, self.loc.len(), "scenarios")
            .unwrap_or(0);
        let end = self.loc.len();
        let mut seen: HashSet<&str> = HashSet::new();
        for scenario in &pb.scenarios {
            let anchor = self
                .loc
                .key_value_line(section, end, "name", &scenario.name);
            let at = anchor.or(Some(section)).map(|l| l + 1);
            if !is_kebab(&scenario.name) {
                self.error(
                    at,
                    format!(
                        "scenario name `{}` must be kebab-case (lowercase letters, digits and `-`), like {}",
                        scenario.name,
                        KNOWN_SCENARIOS.join(", ")
                    ),
                );
            }
            if !seen.insert(&scenario.name) {
                self.error(
                    at,
                    format!(
                        "scenario `{}` is defined twice: scenario names must be unique",
                        scenario.name
                    ),
                );
            }
            // Phases are judged by position, so that a misnumbered phase is
            // reported once, not again by every scenario that names it.
            let numbers: Vec<String> = (1..=pb.phases.len()).map(|n| n.to_string()).collect();
            for n in &scenario.required_phases {
                if *n == 0 || usize::from(*n) > pb.phases.len() {
                    let from = anchor.unwrap_or(section);
                    let line = self
                        .loc
                        .key_line(from, end, "required_phases")
                        .or(anchor)
                        .or(Some(section));
                    self.error(
                        line.map(|l| l + 1),
                        format!(
                            "scenario `{}` requires phase {n}, which does not exist (phases: {})",
                            scenario.name,
                            numbers.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

fn expected_agents() -> String {
    format!(
        "expected one of {} (aliases: demand-gen, brand, pipeline, cs, growth)",
        AGENTS.join(", ")
    )
}

/// `name` is non-empty lowercase kebab-case: `[a-z0-9]+(-[a-z0-9]+)*`.
pub(crate) fn is_kebab(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Why `p` would leave the workspace, or `None` when it stays inside.
fn path_problem(p: &str) -> Option<String> {
    if p.trim().is_empty() {
        return Some("is empty".into());
    }
    let bytes = p.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if p.starts_with('/') || p.starts_with('\\') || drive || std::path::Path::new(p).is_absolute() {
        return Some(format!("`{p}` is absolute"));
    }
    if p.split(['/', '\\']).any(|c| c == "..") {
        return Some(format!("`{p}` contains a `..` component"));
    }
    None
}

/// Every dependency cycle among `steps` (one per strongly connected group),
/// as the ids along it with the first repeated at the end, plus the index of
/// the step it starts from (the group's first step in file order).
fn find_cycles(steps: &[Step]) -> Vec<(Vec<String>, usize)> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .rev() // the first definition wins on duplicate ids
        .collect();
    let edges: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let n = steps.len();
    // reach[i][j]: j can be reached from i by one or more edges.
    let reach: Vec<Vec<bool>> = (0..n)
        .map(|i| {
            let mut seen = vec![false; n];
            let mut stack = edges[i].clone();
            while let Some(j) = stack.pop() {
                if !seen[j] {
                    seen[j] = true;
                    stack.extend(&edges[j]);
                }
            }
            seen
        })
        .collect();
    let mut reported = vec![false; n];
    let mut cycles = Vec::new();
    for start in 0..n {
        if reported[start] || !reach[start][start] {
            continue;
        }
        let group: Vec<bool> = (0..n).map(|j| reach[start][j] && reach[j][start]).collect();
        for (j, in_group) in group.iter().enumerate() {
            if *in_group {
                reported[j] = true;
            }
        }
        // Shortest way back to `start` inside the group (breadth first).
        let mut prev: Vec<Option<usize>> = vec![None; n];
        let mut queue = std::collections::VecDeque::from([start]);
        let mut visited = vec![false; n];
        let mut last = start;
        'search: while let Some(u) = queue.pop_front() {
            for &v in &edges[u] {
                if v == start {
                    last = u;
                    break 'search;
                }
                if group[v] && !visited[v] {
                    visited[v] = true;
                    prev[v] = Some(u);
                    queue.push_back(v);
                }
            }
        }
        let mut path = vec![last];
        while let Some(p) = prev[*path.last().unwrap()] {
            path.push(p);
        }
        if *path.last().unwrap() != start {
            path.push(start);
        }
        path.reverse();
        let mut ids: Vec<String> = path.iter().map(|&i| steps[i].id.clone()).collect();
        ids.push(steps[start].id.clone());
        cycles.push((ids, start));
    }
    cycles
}

// ---------------------------------------------------------------------------
// Finding lines in the source text.

/// Line lookups over YAML source; all line numbers here are 0-based and
/// ranges are `[from, to)`. Comment lines are skipped.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    fn len(&self) -> usize {
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
    fn key_line(&self, from: usize, to: usize, key: &str) -> Option<usize> {
        (from..to.min(self.len())).find(|&i| {
            self.content(i)
                .is_some_and(|l| !key_values(l, key).is_empty())
        })
    }

    /// The n-th line (0-based count) in the file with the key `key`.
    fn nth_key_line(&self, key: &str, n: usize) -> Option<usize> {
        (0..self.len())
            .filter(|&i| {
                self.content(i)
                    .is_some_and(|l| !key_values(l, key).is_empty())
            })
            .nth(n)
    }

    /// First line in range where `key` has the scalar value `value`.
    fn key_value_line(&self, from: usize, to: usize, key: &str, value: &str) -> Option<usize> {
        (from..to.min(self.len())).find(|&i| self.has_key_value(i, key, value))
    }

    /// The n-th line in the file where `key` has the scalar value `value`.
    fn nth_key_value_line(&self, key: &str, value: &str, n: usize) -> Option<usize> {
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
    fn value_line(&self, from: usize, to: usize, key: &str, value: &str) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Playbook {
        parse_playbook(DEFAULT_PLAYBOOK_NAME, DEFAULT_PLAYBOOK).unwrap_or_else(|errs| {
            panic!(
                "default playbook invalid:\n{}",
                errs.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
    }

    #[test]
    fn embedded_default_parses_with_the_guides_shape() {
        let pb = default();
        let names: Vec<_> = pb.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["strategy", "pipeline-building", "execution", "analysis"]
        );
        let numbers: Vec<_> = pb.phases.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4]);
        let steps: Vec<_> = pb.phases.iter().map(|p| p.steps.len()).collect();
        assert_eq!(steps, [3, 4, 5, 9]);
        let checklist: Vec<_> = pb.phases.iter().map(|p| p.gate.checklist.len()).collect();
        assert_eq!(checklist, [12, 7, 6, 0]);
        assert_eq!(pb.default_timeout_secs, 3600);
        assert_eq!(pb.default_retries, 2);
        assert_eq!(pb.phases[0].title, "Strategy & Foundation");
        assert_eq!(pb.phases[2].title, "Execution & Optimization");
    }

    #[test]
    fn embedded_default_steps_agents_and_dependencies() {
        let pb = default();
        let (phase, step) = pb.step("messaging-framework").unwrap();
        assert_eq!(phase.number, 1);
        assert_eq!(step.agent, "brand-messaging");
        assert_eq!(step.estimate_minutes, 8);
        assert_eq!(step.depends_on, ["gtm-strategy"]);
        assert_eq!(step.action, "messaging");
        assert_eq!(
            step.inputs,
            [
                "strategy/gtm-strategy.md",
                "strategy/personas/",
                "strategy/competitive-analysis.md"
            ]
        );
        assert_eq!(step.activities.len(), 6);
        assert!(step.activities[0].starts_with("Define brand positioning statement (for [target]"));

        let (_, s) = pb.step("analytics-foundation").unwrap();
        assert_eq!(
            (s.agent.as_str(), s.estimate_minutes),
            ("growth-analyst", 7)
        );
        assert_eq!(s.depends_on, ["messaging-framework"]);

        for id in [
            "campaign-design",
            "enablement-kit",
            "crm-infrastructure",
            "post-sale-foundation",
        ] {
            let (p, s) = pb.step(id).unwrap();
            assert_eq!((p.number, s.estimate_minutes), (2, 45), "{id}");
            assert!(s.depends_on.is_empty(), "{id}");
        }
        for id in [
            "campaign-launch",
            "training-refinement",
            "operational-cadences",
            "journey-expansion",
            "dashboards-experiments",
        ] {
            let (p, s) = pb.step(id).unwrap();
            assert_eq!((p.number, s.estimate_minutes), (3, 60), "{id}");
            assert!(s.depends_on.is_empty(), "{id}");
        }
        let (_, s) = pb.step("strategy-refinement").unwrap();
        assert_eq!(s.depends_on, ["performance-analysis"]);
        for agent in AGENTS {
            let (p, s) = pb.step(&format!("playbook-update-{agent}")).unwrap();
            assert_eq!(p.number, 4);
            assert_eq!(s.agent, agent);
            assert_eq!(s.estimate_minutes, 10);
            assert_eq!(s.action, "playbook");
            assert_eq!(s.outputs, [format!("learnings/{agent}.md")]);
            assert_eq!(s.inputs, ["analytics/performance-analysis.md"]);
            assert_eq!(s.activities.len(), 5);
            let dep = if agent == "coordinator" {
                "strategy-refinement"
            } else {
                "performance-analysis"
            };
            assert_eq!(s.depends_on, [dep], "{agent}");
        }
    }

    #[test]
    fn embedded_default_holds_the_guides_outputs() {
        let pb = default();
        let outputs: Vec<&str> = pb
            .phases
            .iter()
            .flat_map(|p| &p.steps)
            .flat_map(|s| s.outputs.iter().map(String::as_str))
            .collect();
        for path in [
            "strategy/gtm-strategy.md",
            "strategy/personas/",
            "strategy/competitive-analysis.md",
            "strategy/budget-allocation.md",
            "messaging/positioning.md",
            "messaging/brand-voice.md",
            "analytics/experiment-framework.md",
            "demand-gen/campaigns/",
            "demand-gen/lead-scoring.md",
            "sales-enablement/battle-cards/",
            "sales-enablement/training/",
            "pipeline/review-cadences.md",
            "customer-success/segmentation.md",
            "demand-gen/content-calendar.md",
            "sales-enablement/training/modules/",
            "pipeline/leadership-reports/",
            "customer-success/touchpoint-sequences/",
            "analytics/dashboards/customer-health.md",
            "analytics/reporting-templates/",
            "analytics/recommendations.md",
            "strategy/iteration-brief.md",
            "strategy/budget-reallocation.md",
            "strategy/learnings.md",
        ] {
            assert!(outputs.contains(&path), "missing output {path}");
        }
        // 4+4+4 + 6+7+6+6 + 5+4+5+5+6 + 3+3+7
        assert_eq!(outputs.len(), 75);
        assert!(outputs
            .iter()
            .all(|p| path_problem(p).is_none() && !p.starts_with("workspace/")));
    }

    #[test]
    fn embedded_default_inputs_come_from_earlier_steps() {
        let pb = default();
        let mut produced: Vec<&str> = Vec::new();
        for phase in &pb.phases {
            // Within a phase, a step may use the outputs of the steps it depends on,
            // which the default lists before it.
            for step in &phase.steps {
                for input in &step.inputs {
                    let found = produced.iter().any(|o| {
                        o == input || (input.ends_with('/') && o.starts_with(input.as_str()))
                    });
                    assert!(
                        found,
                        "{}: input {input} is nobody's earlier output",
                        step.id
                    );
                }
                produced.extend(step.outputs.iter().map(String::as_str));
            }
        }
    }

    #[test]
    fn embedded_default_gates_routes_and_scenarios() {
        let pb = default();
        let g1 = &pb.phases[0].gate;
        assert_eq!(
            g1.checklist[0],
            "Strategy covers market analysis, personas, positioning, channels, and metrics"
        );
        assert_eq!(
            g1.checklist[11],
            "Experiment framework includes sample size and significance requirements"
        );
        assert_eq!(g1.checks.len(), 5);
        assert_eq!(g1.checks[0], AutoCheck::OutputsExist);
        assert_eq!(
            g1.checks[1],
            AutoCheck::BudgetSums {
                file: "strategy/budget-allocation.md".into()
            }
        );
        assert_eq!(
            g1.checks[4],
            AutoCheck::PersonaVariants {
                personas_dir: "strategy/personas/".into(),
                files: vec![
                    "messaging/messaging-hierarchy.md".into(),
                    "messaging/value-props.md".into()
                ],
            }
        );
        assert_eq!(pb.phases[1].gate.checks, [AutoCheck::OutputsExist]);
        assert_eq!(
            pb.phases[2].gate.checks[1],
            AutoCheck::ExperimentDesigns {
                dir: "analytics/experiments/".into(),
                fields: vec![
                    "hypothesis".into(),
                    "metrics".into(),
                    "sample size".into(),
                    "duration".into()
                ],
            }
        );
        assert_eq!(pb.phases[3].gate.checks, [AutoCheck::OutputsExist]);

        let routes: Vec<_> = pb
            .routes
            .iter()
            .map(|r| (r.path.as_str(), r.to.as_str(), r.kind))
            .collect();
        assert_eq!(
            routes,
            [
                (
                    "demand-gen/lead-scoring.md",
                    "pipeline-manager",
                    RouteKind::Trigger
                ),
                (
                    "pipeline/handoff-criteria.md",
                    "customer-success",
                    RouteKind::Trigger
                ),
                (
                    "analytics/recommendations.md",
                    "coordinator",
                    RouteKind::Trigger
                ),
                ("learnings/*", "all", RouteKind::Context),
            ]
        );
        assert_eq!(pb.scenario("scaling").unwrap().required_phases, [2, 3, 4]);
        assert_eq!(
            pb.scenario("quarterly-planning").unwrap().required_phases,
            [1, 4]
        );
        assert_eq!(
            pb.scenario("new-market").unwrap().required_phases,
            [1, 2, 3, 4]
        );
        assert_eq!(
            pb.scenario("new-product-launch").unwrap().focus,
            "Messaging (no existing brand equity), campaign design (no historical data), CRM setup (clean slate)"
        );
        assert_eq!(pb.phase_number("execution"), Some(3));
        assert_eq!(Playbook::default_playbook(), pb);
    }

    /// A small valid playbook that tests break one line at a time.
    const SMALL: &str = "\
default_timeout_secs: 60
default_retries: 1
phases:
  - number: 1
    name: strategy
    title: Strategy
    steps:
      - id: a
        agent: coordinator
        title: Do a
        estimate_minutes: 5
        action: strategy
        outputs: [strategy/a.md]
      - id: b
        agent: brand
        title: Do b
        estimate_minutes: 5
        action: messaging
        depends_on: [a]
        inputs:
          - strategy/a.md
        outputs:
          - messaging/b.md
    gate:
      checklist: [ok]
      checks:
        - kind: outputs-exist
        - kind: budget-sums
          file: strategy/a.md
  - number: 2
    name: build
    title: Build
    steps:
      - id: c
        agent: cs
        title: Do c
        estimate_minutes: 5
        action: playbook
    gate:
      checklist: []
routes:
  - path: messaging/b.md
    to: demand-gen
    purpose: use it
    kind: trigger
scenarios:
  - name: launch
    required_phases: [1, 2]
";

    /// Replace the one occurrence of `from` in SMALL, parse, and return the errors.
    fn errors_with(from: &str, to: &str) -> Vec<Diagnostic> {
        assert_eq!(SMALL.matches(from).count(), 1, "`{from}` must occur once");
        let text = SMALL.replace(from, to);
        match parse_playbook("pb.yaml", &text) {
            Ok(_) => panic!("expected errors for {from:?} → {to:?}"),
            Err(errs) => errs,
        }
    }

    fn one_error(from: &str, to: &str) -> Diagnostic {
        let errs = errors_with(from, to);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn small_playbook_is_valid_and_canonicalised() {
        let pb = parse_playbook("pb.yaml", SMALL).unwrap();
        assert_eq!(pb.phases[0].steps[1].agent, "brand-messaging");
        assert_eq!(pb.phases[1].steps[0].agent, "customer-success");
        assert_eq!(pb.routes[0].to, "demand-generation");
        assert!(pb.phases[1].gate.checks.is_empty());
    }

    #[test]
    fn defaults_for_timeout_and_retries() {
        let text = SMALL.replace("default_timeout_secs: 60\ndefault_retries: 1\n", "");
        let pb = parse_playbook("pb.yaml", &text).unwrap();
        assert_eq!((pb.default_timeout_secs, pb.default_retries), (3600, 2));
    }

    #[test]
    fn yaml_syntax_error_has_its_line() {
        let d = one_error("        title: Do b\n", "        title: Do b\n      oops\n");
        assert_eq!(d.path, "pb.yaml");
        assert_eq!(d.line, Some(18), "{d}");
        assert!(d.message.starts_with("could not find expected ':'"), "{d}");
        assert!(!d.message.contains("at line"), "{d}");
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let d = one_error("        depends_on: [a]", "        depend_on: [a]");
        assert_eq!(d.line, Some(19), "{d}");
        assert!(d.message.contains("unknown field `depend_on`"), "{d}");
    }

    #[test]
    fn missing_field_is_refused() {
        let d = one_error("        action: playbook\n", "");
        assert!(d.message.contains("missing field `action`"), "{d}");
        assert!(d.line.is_some(), "{d}");
    }

    #[test]
    fn unknown_check_kind_is_refused() {
        let d = one_error("kind: budget-sums", "kind: budget-sum");
        assert!(d.message.contains("unknown variant `budget-sum`"), "{d}");
    }

    #[test]
    fn phases_must_be_numbered_in_order() {
        let d = one_error("  - number: 2", "  - number: 3");
        assert_eq!(d.line, Some(30), "{d}");
        assert_eq!(
            d.message,
            "phase `build` is numbered 3 but is phase 2 in the file: phases must be numbered 1, 2, 3, ... in order"
        );
    }

    #[test]
    fn phase_names_must_be_unique() {
        let d = one_error("    name: build", "    name: strategy");
        assert_eq!(d.line, Some(31), "{d}");
        assert!(
            d.message
                .contains("phase name `strategy` is used twice (phases 1 and 2)"),
            "{d}"
        );
    }

    #[test]
    fn phase_names_must_be_kebab_case() {
        let d = one_error("    name: build", "    name: Build It");
        assert_eq!(d.line, Some(31), "{d}");
        assert!(
            d.message
                .contains("phase name `Build It` must be kebab-case"),
            "{d}"
        );
    }

    #[test]
    fn step_ids_must_be_unique() {
        let d = one_error("      - id: c\n", "      - id: a\n");
        assert_eq!(d.line, Some(34), "{d}");
        assert_eq!(
            d.message,
            "step id `a` is used twice (first at line 8): step ids must be unique across the playbook"
        );
    }

    #[test]
    fn unknown_agent_names_the_known_ones() {
        let d = one_error("agent: brand\n", "agent: marketing\n");
        assert_eq!(d.line, Some(15), "{d}");
        assert!(d.message.starts_with("step `b`: unknown agent `marketing`; expected one of coordinator, brand-messaging, growth-analyst"), "{d}");
    }

    #[test]
    fn dependency_on_unknown_step() {
        let d = one_error("depends_on: [a]", "depends_on: [a, zz]");
        assert_eq!(d.line, Some(19), "{d}");
        assert_eq!(d.message, "step `b` depends on unknown step `zz`");
    }

    #[test]
    fn dependency_on_another_phase() {
        let d = one_error(
            "        action: playbook\n",
            "        action: playbook\n        depends_on:\n          - a\n",
        );
        assert_eq!(d.line, Some(40), "{d}");
        assert_eq!(
            d.message,
            "step `c` depends on `a`, a step of phase 1; depends_on may only name steps of the same phase (2, build)"
        );
    }

    #[test]
    fn dependency_cycle_is_named() {
        let d = one_error(
            "        outputs: [strategy/a.md]",
            "        depends_on: [b]\n        outputs: [strategy/a.md]",
        );
        assert_eq!(d.line, Some(13), "{d}");
        assert_eq!(
            d.message,
            "dependency cycle in phase 1 (strategy): a → b → a"
        );
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let d = one_error("depends_on: [a]", "depends_on: [b]");
        assert_eq!(d.line, Some(19), "{d}");
        assert_eq!(d.message, "dependency cycle in phase 1 (strategy): b → b");
    }

    #[test]
    fn absolute_output_path_is_refused() {
        let d = one_error("          - messaging/b.md", "          - /etc/b.md");
        assert_eq!(d.line, Some(23), "{d}");
        assert_eq!(
            d.message,
            "step `b`: output path `/etc/b.md` is absolute: paths must stay inside the workspace"
        );
    }

    #[test]
    fn parent_component_in_input_is_refused() {
        let d = one_error(
            "          - strategy/a.md",
            "          - strategy/../../a.md",
        );
        assert_eq!(d.line, Some(21), "{d}");
        assert_eq!(
            d.message,
            "step `b`: input path `strategy/../../a.md` contains a `..` component: paths must stay inside the workspace"
        );
    }

    #[test]
    fn empty_output_path_is_refused() {
        let d = one_error("outputs: [strategy/a.md]", "outputs: [strategy/a.md, \"\"]");
        assert_eq!(d.line, Some(13), "{d}");
        assert_eq!(
            d.message,
            "step `a`: output path is empty: paths must stay inside the workspace"
        );
    }

    #[test]
    fn check_path_outside_is_refused() {
        let d = one_error(
            "          file: strategy/a.md",
            "          file: ../budget.md",
        );
        assert_eq!(d.line, Some(29), "{d}");
        assert_eq!(
            d.message,
            "phase 1 gate check `file` path `../budget.md` contains a `..` component: paths must stay inside the workspace"
        );
    }

    #[test]
    fn route_path_outside_is_refused() {
        let d = one_error("  - path: messaging/b.md", "  - path: /tmp/b.md");
        assert_eq!(d.line, Some(42), "{d}");
        assert_eq!(
            d.message,
            "route path `/tmp/b.md` is absolute: paths must stay inside the workspace"
        );
    }

    #[test]
    fn route_to_unknown_agent_is_refused() {
        let d = one_error("    to: demand-gen", "    to: everyone");
        assert_eq!(d.line, Some(43), "{d}");
        assert!(
            d.message.starts_with("route for `messaging/b.md`: unknown recipient `everyone`; expected one of coordinator"),
            "{d}"
        );
        assert!(d.message.ends_with(", or `all`"), "{d}");
    }

    #[test]
    fn route_to_all_is_accepted() {
        let text = SMALL.replace("    to: demand-gen", "    to: ALL");
        let pb = parse_playbook("pb.yaml", &text).unwrap();
        assert_eq!(pb.routes[0].to, "all");
    }

    #[test]
    fn scenario_name_must_be_kebab_case() {
        let d = one_error("  - name: launch", "  - name: Big Launch");
        assert_eq!(d.line, Some(47), "{d}");
        assert!(
            d.message
                .starts_with("scenario name `Big Launch` must be kebab-case"),
            "{d}"
        );
        assert!(
            d.message
                .contains("new-product-launch, scaling, new-market, quarterly-planning"),
            "{d}"
        );
    }

    #[test]
    fn scenario_phases_must_exist() {
        let d = one_error("required_phases: [1, 2]", "required_phases: [1, 5]");
        assert_eq!(d.line, Some(48), "{d}");
        assert_eq!(
            d.message,
            "scenario `launch` requires phase 5, which does not exist (phases: 1, 2)"
        );
    }

    #[test]
    fn zero_timeout_is_refused() {
        let d = one_error("default_timeout_secs: 60", "default_timeout_secs: 0");
        assert_eq!(d.line, Some(1), "{d}");
    }

    #[test]
    fn all_errors_are_collected() {
        let text = SMALL
            .replace("agent: brand\n", "agent: nobody\n")
            .replace("  - path: messaging/b.md", "  - path: ../x")
            .replace("required_phases: [1, 2]", "required_phases: [9]")
            .replace("      - id: c\n", "      - id: a\n");
        let errs = parse_playbook("pb.yaml", &text).unwrap_err();
        let lines: Vec<_> = errs.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(34), Some(15), Some(42), Some(48)], "{errs:#?}");
    }

    #[test]
    fn load_playbook_reports_a_missing_file() {
        let errs =
            load_playbook(std::path::Path::new("/nonexistent/playbook.yaml"), 1 << 20).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "/nonexistent/playbook.yaml");
        assert!(
            errs[0].message.starts_with("the playbook cannot be read:"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn load_playbook_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("playbook.yaml");
        std::fs::write(&file, SMALL.replace("agent: cs", "agent: ghost")).unwrap();
        let errs = load_playbook(&file, 1 << 20).unwrap_err();
        assert_eq!(errs[0].path, file.display().to_string());
        assert_eq!(errs[0].line, Some(35));
    }

    #[test]
    fn strip_marks_removes_positions() {
        assert_eq!(
            strip_marks("did not find expected key at line 5 column 3, while parsing a block mapping at line 2 column 1"),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(strip_marks("x at position 7"), "x");
        assert_eq!(strip_marks("at line none"), "at line none");
    }
}
