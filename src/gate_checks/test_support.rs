//! A workspace in memory and a phase to run checks on, for the tests of
//! every check.

use super::{run_check, run_gate_checks, CheckResult, WorkspaceView};
use crate::playbook::{AutoCheck, Gate, Phase, Step};
use crate::protocol::{is_ignored, BusinessConfig};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct MemView(BTreeMap<String, String>);

impl MemView {
    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.0.insert(path.to_string(), text.to_string());
        self
    }
}

impl WorkspaceView for MemView {
    fn read(&self, rel: &str) -> Option<String> {
        self.0.get(rel).cloned()
    }
    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.0
            .keys()
            .filter(|k| k.starts_with(&prefix) && !is_ignored(k))
            .cloned()
            .collect()
    }
    fn size(&self, rel: &str) -> Option<u64> {
        self.0.get(rel).map(|t| t.len() as u64)
    }
}

pub fn step(id: &str, outputs: &[&str]) -> Step {
    Step {
        id: id.into(),
        agent: "coordinator".into(),
        title: id.into(),
        activities: vec![],
        inputs: vec![],
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        estimate_minutes: 10,
        depends_on: vec![],
        action: "strategy".into(),
    }
}

pub fn phase(checks: Vec<AutoCheck>) -> Phase {
    Phase {
        number: 1,
        name: "strategy".into(),
        title: "Strategy & Foundation".into(),
        steps: vec![
            step(
                "gtm-strategy",
                &["strategy/gtm-strategy.md", "strategy/personas/"],
            ),
            step("messaging", &["messaging/positioning.md"]),
        ],
        gate: Gate {
            checklist: vec![],
            checks,
        },
    }
}

pub fn config(budget: f64) -> BusinessConfig {
    BusinessConfig {
        monthly_budget: Some(budget),
        ..Default::default()
    }
}

pub fn run(check: AutoCheck, view: &MemView, cfg: &BusinessConfig) -> CheckResult {
    let p = phase(vec![check.clone()]);
    let r = run_check(&check, &p, view, cfg);
    assert_eq!(run_gate_checks(&p, view, cfg), vec![r.clone()]);
    r
}
