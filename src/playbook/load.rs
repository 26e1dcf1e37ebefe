//! Reading a playbook file: the text, serde_yaml's parse into the raw
//! shapes ([`super::raw`]), then validation ([`super::validate`]).
//!
//! A playbook is refused with every problem found, each as a `path:line`
//! diagnostic; serde_yaml's own errors (syntax, an unknown key, a missing
//! field) carry their line, with serde_yaml's "at line L column C" taken out
//! of the message so the line is said once.

use super::raw::RawPlaybook;
use super::Playbook;
use crate::diagnostic::Diagnostic;

/// The guide's playbook, embedded in the binary.
pub const DEFAULT_PLAYBOOK: &str = include_str!("default.yaml");

/// The name diagnostics use for [`DEFAULT_PLAYBOOK`].
pub const DEFAULT_PLAYBOOK_NAME: &str = "<embedded playbook>";

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
    let errors = super::validate::validate(path, text, &mut playbook);
    if errors.is_empty() {
        Ok(playbook)
    } else {
        Err(errors)
    }
}

/// A serde_yaml error as a diagnostic: its line in the field, not in the text.
fn yaml_error(path: &str, e: &serde_yaml::Error) -> Diagnostic {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::AGENTS;
    use crate::playbook::fixtures::{one_error, SMALL};
    use crate::playbook::validate::path_problem;
    use crate::playbook::{AutoCheck, RouteKind};

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
