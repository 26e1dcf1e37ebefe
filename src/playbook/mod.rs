//! The team's playbook as data: phases, steps, gates, hand-off routes, scenarios.
//!
//! The orchestration guide is prose; the engine needs it as a typed structure it
//! can trust. The guide's playbook is embedded (`default.yaml`) and a team can
//! override it with its own file of the same shape. Either way it is parsed and
//! validated once, here, and refused with `path:line` errors when it is wrong
//! (unknown agent, dependency cycle, an output outside the workspace), so the
//! engine never meets a half-valid playbook.

#[cfg(test)]
mod fixtures;
mod load;
mod locate;
mod raw;
mod validate;

pub use load::{load_playbook, parse_playbook, DEFAULT_PLAYBOOK, DEFAULT_PLAYBOOK_NAME};

use serde::{Deserialize, Serialize};

/// A validated playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playbook {
    /// Phases in order; `phases[i].number == i + 1`.
    pub phases: Vec<Phase>,
    /// The guide's communication table: which file, when it changes, gives whom a task.
    pub routes: Vec<Route>,
    /// The guide's "Scenario Validation" section.
    pub scenarios: Vec<Scenario>,
    /// Timeout for an agent whose definition names none, in seconds.
    pub default_timeout_secs: u64,
    /// Retries for an agent whose definition names none.
    pub default_retries: u32,
    /// The guide's "When to Iterate vs. Restart" thresholds (optional section).
    #[serde(default)]
    pub decision_rules: DecisionRules,
    /// [`Playbook::digest`], computed once: every start and every replay asks.
    #[serde(skip)]
    pub(crate) digest: DigestCache,
}

/// A digest computed on first use. It never takes part in comparisons, and
/// a clone keeps it (a clone is the same playbook); code that changes a
/// playbook's fields after asking for its digest must not rely on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct DigestCache(std::sync::OnceLock<String>);

impl PartialEq for DigestCache {
    fn eq(&self, _: &DigestCache) -> bool {
        true
    }
}

/// The thresholds of the guide's iterate-vs-restart rule, applied to the
/// growth analyst's unit economics when the coordinator's refinement step
/// starts (`src/decision_rules.rs`). Every key is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionRules {
    /// Restart when CAC is at least this multiple of the target...
    pub restart_cac_multiple: f64,
    /// ...and the CAC series is not improving: the latest period at least
    /// this many percent below the first, and not up on the one before.
    pub improving_min_drop_pct: f64,
    /// Scaling fits the next cycle when CAC is at most this multiple of the
    /// target (and LTV:CAC and payback meet theirs).
    pub scale_max_cac_multiple: f64,
    pub scale_min_ltv_cac: f64,
    /// The step whose task gets the recommendation.
    pub step: String,
    /// The unit-economics table, workspace-relative.
    pub file: String,
}

impl Default for DecisionRules {
    fn default() -> Self {
        DecisionRules {
            restart_cac_multiple: 3.0,
            improving_min_drop_pct: 10.0,
            scale_max_cac_multiple: 1.0,
            scale_min_ltv_cac: 3.0,
            step: "strategy-refinement".into(),
            file: "analytics/unit-economics.md".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// 1-based.
    pub number: u8,
    /// Canonical name: `strategy`, `pipeline-building`, `execution`, `analysis`.
    pub name: String,
    /// Human title, e.g. "Strategy & Foundation".
    pub title: String,
    pub steps: Vec<Step>,
    pub gate: Gate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique across the whole playbook, e.g. `gtm-strategy`.
    pub id: String,
    /// Canonical agent name.
    pub agent: String,
    /// What the agent is asked to do (becomes the task text).
    pub title: String,
    /// The guide's activities for this step, given to the agent with the task.
    #[serde(default)]
    pub activities: Vec<String>,
    /// Workspace-relative paths; a trailing `/` means a directory that must hold
    /// at least one non-empty file.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Workspace-relative paths, same convention as `inputs`.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// The guide's estimate, in minutes.
    pub estimate_minutes: u32,
    /// Ids of steps of the same phase that must be done first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The action word of the guide's commit convention (strategy, messaging, ...).
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// The guide's quality-gate lines, one checklist item each.
    pub checklist: Vec<String>,
    /// What a program can decide by itself before the coordinator reviews.
    pub checks: Vec<AutoCheck>,
}

/// An automatic gate check. Paths are workspace-relative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AutoCheck {
    /// Every expected output of the phase's steps exists and is non-empty.
    OutputsExist,
    /// The allocation table(s) in `file` sum to CONFIG.md's monthly budget.
    BudgetSums { file: String },
    /// Every persona file in `dir` covers each of `topics` (e.g. pain points).
    PersonasCover { dir: String, topics: Vec<String> },
    /// `file` covers each funnel stage in `stages`.
    KpiCoverage { file: String, stages: Vec<String> },
    /// Every persona in `personas_dir` is named in at least one of `files`.
    PersonaVariants {
        personas_dir: String,
        files: Vec<String>,
    },
    /// Every design in `dir` states each of `fields` (hypothesis, metrics, ...).
    ExperimentDesigns { dir: String, fields: Vec<String> },
}

/// A row of the guide's communication table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// A workspace-relative path, or a directory prefix ending in `/*`.
    pub path: String,
    /// Canonical agent name that receives the task (or the context).
    pub to: String,
    /// Why, e.g. "align the lead scoring model".
    pub purpose: String,
    /// `trigger` starts a task; `context` only lists the file to later tasks.
    pub kind: RouteKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteKind {
    Trigger,
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// `new-product-launch`, `scaling`, `new-market`, `quarterly-planning`.
    pub name: String,
    pub required_phases: Vec<u8>,
    #[serde(default)]
    pub focus: String,
}

impl Playbook {
    /// The guide's playbook, embedded in the binary.
    pub fn default_playbook() -> Playbook {
        parse_playbook(DEFAULT_PLAYBOOK_NAME, DEFAULT_PLAYBOOK)
            .expect("the embedded default playbook is valid (checked by a unit test)")
    }

    /// A short digest of the whole playbook: tells whether two are the same
    /// without comparing them field by field (the journal records a
    /// playbook only when its digest changes).
    pub fn digest(&self) -> String {
        self.digest.0.get_or_init(|| self.compute_digest()).clone()
    }

    fn compute_digest(&self) -> String {
        let mut hasher = std::io::BufWriter::with_capacity(64 * 1024, blake3::Hasher::new());
        serde_json::to_writer(&mut hasher, self).expect("a playbook serializes");
        let hasher = hasher.into_inner().expect("hashing cannot fail");
        hasher.finalize().to_hex()[..16].to_string()
    }

    pub fn phase(&self, number: u8) -> Option<&Phase> {
        self.phases.iter().find(|p| p.number == number)
    }

    /// Resolve a phase given by name or number ("execution", "3").
    pub fn phase_number(&self, name_or_number: &str) -> Option<u8> {
        let s = name_or_number.trim().to_ascii_lowercase();
        if let Ok(n) = s.parse::<u8>() {
            return self.phase(n).map(|p| p.number);
        }
        self.phases.iter().find(|p| p.name == s).map(|p| p.number)
    }

    pub fn step(&self, id: &str) -> Option<(&Phase, &Step)> {
        self.phases
            .iter()
            .flat_map(|p| p.steps.iter().map(move |s| (p, s)))
            .find(|(_, s)| s.id == id)
    }

    /// What `agent` may write, as workspace-relative patterns (`dir/**` for
    /// a directory and all below it): the top directory of each of its
    /// steps' outputs when no other agent has outputs there, else the output
    /// itself; its own status and learnings files; `conflicts/**` (anyone
    /// may raise a conflict); and for the coordinator the gates it ticks and
    /// the decisions it writes. Everything else is another agent's, or
    /// gtmd's.
    pub fn write_scopes(&self, agent: &str) -> Vec<String> {
        let outputs = |a: &str| -> Vec<&str> {
            self.phases
                .iter()
                .flat_map(|p| &p.steps)
                .filter(|s| s.agent == a)
                .flat_map(|s| s.outputs.iter().map(String::as_str))
                .collect()
        };
        let top = |path: &str| path.split_once('/').map(|(d, _)| d.to_string());
        let shared = [
            "learnings",
            "status",
            "conflicts",
            "inbox",
            "runs",
            "requests",
        ];
        let mut scopes = std::collections::BTreeSet::new();
        for out in outputs(agent) {
            let owned_dir = top(out).filter(|dir| {
                !shared.contains(&dir.as_str())
                    && self.phases.iter().flat_map(|p| &p.steps).all(|s| {
                        s.agent == agent || s.outputs.iter().all(|o| top(o).as_ref() != Some(dir))
                    })
            });
            scopes.insert(match owned_dir {
                Some(dir) => format!("{dir}/**"),
                None if out.ends_with('/') => format!("{out}**"),
                None => out.to_string(),
            });
        }
        scopes.insert(format!("status/{agent}.md"));
        scopes.insert(format!("learnings/{agent}.md"));
        scopes.insert("conflicts/**".into());
        if agent == "coordinator" {
            scopes.insert("strategy/gates/**".into());
            scopes.insert("strategy/decisions/**".into());
        }
        scopes.into_iter().collect()
    }

    pub fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod write_scope_tests {
    use super::*;

    #[test]
    fn each_agent_may_write_its_own_directories_status_and_learnings_only() {
        let pb = Playbook::default_playbook();
        assert_eq!(
            pb.write_scopes("brand-messaging"),
            [
                "conflicts/**",
                "learnings/brand-messaging.md",
                "messaging/**",
                "status/brand-messaging.md"
            ]
        );
        let coordinator = pb.write_scopes("coordinator");
        for s in ["strategy/**", "strategy/gates/**", "strategy/decisions/**"] {
            assert!(coordinator.contains(&s.to_string()), "{coordinator:?}");
        }
        // No two agents own the same directory, and nobody owns gtmd's.
        let mut dirs = std::collections::BTreeMap::new();
        for a in crate::agents::AGENTS {
            for s in pb.write_scopes(a) {
                assert!(
                    !s.starts_with(".gtmd") && !s.starts_with("runs/") && !s.starts_with("inbox/")
                );
                if s.ends_with("/**") && s != "conflicts/**" && !s.starts_with("strategy/") {
                    assert_eq!(dirs.insert(s.clone(), a), None, "{s} owned twice");
                }
            }
        }
        assert_eq!(dirs.len(), 6, "{dirs:?}");
    }
}
