//! The playbook file's shape, as serde_yaml reads it.
//!
//! Private mirrors of the public types that refuse unknown keys, so that a
//! typo such as `depend_on:` is an error with a line rather than a field
//! silently ignored, and that fill in the defaults a file may leave out.
//! [`RawPlaybook::into_playbook`] turns them into the public types, which
//! the validator then checks for what the type system cannot.

use super::{AutoCheck, Gate, Phase, Playbook, Route, RouteKind, Scenario, Step};
use serde::Deserialize;

/// Used when a playbook file does not set `default_timeout_secs`.
const FALLBACK_TIMEOUT_SECS: u64 = 3600;
/// Used when a playbook file does not set `default_retries`.
const FALLBACK_RETRIES: u32 = 2;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlaybook {
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
    pub(super) fn into_playbook(self) -> Playbook {
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
