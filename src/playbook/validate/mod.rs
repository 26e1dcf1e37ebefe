//! Checking a parsed playbook for what the type system cannot: numbering,
//! unique ids and names, known agents, dependencies and cycles, paths that
//! stay inside the workspace, sane numbers. Every problem is collected, not
//! just the first, each with its line.
//!
//! serde_yaml gives no positions for values that deserialized fine, so each
//! problem locates its line by searching the source text ([`Locator`]): from
//! the line of the offending step's `id:` (or the phase's `number:`, or the
//! section's key) forward to the value. That is a heuristic, but one that
//! holds for any ordinary block- or flow-style file. The steps, the largest
//! part, are checked in [`steps`].

mod steps;

use super::locate::Locator;
use super::{AutoCheck, Phase, Playbook};
use crate::agents::{canonical_agent, AGENTS};
use crate::diagnostic::Diagnostic;
use std::collections::{HashMap, HashSet};

/// Every problem of `pb` (parsed from `text`), in the order of the checks;
/// agent names of steps and routes are made canonical on the way.
pub(super) fn validate(path: &str, text: &str, pb: &mut Playbook) -> Vec<Diagnostic> {
    let mut v = Validator {
        path,
        loc: Locator::new(text),
        errors: Vec::new(),
    };
    v.validate(pb);
    v.errors
}

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
fn is_kebab(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Why `p` would leave the workspace, or `None` when it stays inside.
pub(super) fn path_problem(p: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use crate::playbook::fixtures::{one_error, SMALL};
    use crate::playbook::parse_playbook;

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
}
