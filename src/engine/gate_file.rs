//! The gate file a coordinator reviews: the automatic check results gtmd
//! computed, then the guide's checklist as task-list boxes to tick.
//!
//! Rendering keeps the coordinator's ticks, so gtmd can rewrite the automatic
//! section when a fix makes a check pass without undoing the review.

use super::GateState;
use crate::diagnostic::one_line;
use crate::playbook::Phase;

/// `strategy/gates/phase-N-<name>.md`
pub fn gate_path(phase: &Phase) -> String {
    format!("strategy/gates/phase-{}-{}.md", phase.number, phase.name)
}

pub fn render_gate(phase: &Phase, gate: &GateState, run: &str) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "# Phase {} quality gate: {}\n\n",
        phase.number, phase.title
    ));
    s.push_str(&format!(
        "Run `{run}`. The next phase starts when every box below is ticked (`- [x]`) \
         and every automatic check passes. gtmd re-runs the checks each time this file \
         or one of the phase's outputs changes.\n\n"
    ));
    s.push_str("## Automatic checks\n\n");
    match &gate.checks {
        None => s.push_str("- (not run yet)\n"),
        Some(checks) if checks.is_empty() => s.push_str("- (none for this phase)\n"),
        Some(checks) => {
            for c in checks {
                let mark = if c.passed { "PASS" } else { "FAIL" };
                s.push_str(&format!("- {mark}: {}: {}\n", c.name, one_line(&c.detail)));
            }
        }
    }
    s.push_str("\n## Checklist\n\n");
    if gate.boxes.is_empty() {
        s.push_str(
            "The guide lists no review items for this phase; the automatic checks decide.\n",
        );
    }
    for (text, ticked) in &gate.boxes {
        let mark = if *ticked { "x" } else { " " };
        s.push_str(&format!("- [{mark}] {}\n", one_line(text)));
    }
    s
}
