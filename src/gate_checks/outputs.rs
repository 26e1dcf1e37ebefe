//! Every expected output of a phase is there and non-empty: the check every
//! gate of the guide starts with.

use super::{output_present, CheckResult, WorkspaceView};
use crate::playbook::Phase;

/// Every output of the phase's steps, each once, is present.
pub(super) fn outputs_exist(phase: &Phase, view: &dyn WorkspaceView) -> CheckResult {
    let name = format!("every output of phase {} exists", phase.number);
    let mut all: Vec<&str> = Vec::new();
    for o in phase.steps.iter().flat_map(|s| s.outputs.iter()) {
        if !all.contains(&o.as_str()) {
            all.push(o);
        }
    }
    let missing: Vec<&str> = all
        .iter()
        .copied()
        .filter(|o| !output_present(view, o))
        .collect();
    if missing.is_empty() {
        CheckResult::new(
            name,
            true,
            format!(
                "all {} expected outputs are present and non-empty",
                all.len()
            ),
        )
    } else {
        CheckResult::new(
            name,
            false,
            format!(
                "missing or empty ({} of {}): {} (a directory needs at least one non-empty file)",
                missing.len(),
                all.len(),
                missing.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate_checks::test_support::*;
    use crate::playbook::AutoCheck;

    #[test]
    fn outputs_exist_fails_on_missing_and_empty() {
        let view = MemView::default()
            .with("strategy/gtm-strategy.md", "")
            .with("strategy/personas/.dana.md.swp", "x")
            .with("messaging/positioning.md", "For developers who ...");
        let r = run(AutoCheck::OutputsExist, &view, &config(1.0));
        assert!(!r.passed);
        assert!(
            r.detail.contains("strategy/gtm-strategy.md"),
            "{}",
            r.detail
        );
        assert!(r.detail.contains("strategy/personas/"), "{}", r.detail);
        assert!(!r.detail.contains("positioning"), "{}", r.detail);
    }

    #[test]
    fn outputs_exist_passes_when_all_present() {
        let view = MemView::default()
            .with("strategy/gtm-strategy.md", "# Strategy")
            .with("strategy/personas/dana.md", "# Dana")
            .with("messaging/positioning.md", "For developers who ...");
        let r = run(AutoCheck::OutputsExist, &view, &config(1.0));
        assert!(r.passed, "{}", r.detail);
        assert!(output_present(&view, "strategy/personas/"));
        assert!(!output_present(&view, "analytics/"));
    }
}
