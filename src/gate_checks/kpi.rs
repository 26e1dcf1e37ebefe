//! The KPI framework names every funnel stage, so each stage gets a KPI
//! with a target.

use super::words::{has_word, normalize};
use super::{CheckResult, WorkspaceView};

/// The KPI file names every funnel stage.
pub(super) fn kpi_coverage(file: &str, stages: &[String], view: &dyn WorkspaceView) -> CheckResult {
    let name = format!("KPIs cover {}", stages.join(", "));
    let Some(text) = view.read(file) else {
        return CheckResult::new(name, false, format!("{file} does not exist"));
    };
    let text = normalize(&text);
    let missing: Vec<&str> = stages
        .iter()
        .filter(|s| !has_word(&text, &normalize(s)))
        .map(|s| s.as_str())
        .collect();
    if missing.is_empty() {
        CheckResult::new(
            name,
            true,
            format!("{file} names every funnel stage: {}", stages.join(", ")),
        )
    } else {
        CheckResult::new(
            name,
            false,
            format!(
                "{file} does not mention the funnel stage(s) {}: define a KPI with a target for each",
                missing.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::gate_checks::test_support::*;
    use crate::playbook::AutoCheck;

    fn kpi_check() -> AutoCheck {
        AutoCheck::KpiCoverage {
            file: "analytics/kpi-definitions.md".into(),
            stages: [
                "awareness",
                "acquisition",
                "activation",
                "retention",
                "revenue",
                "referral",
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    #[test]
    fn kpi_coverage_fails_on_a_missing_stage() {
        let view = MemView::default().with(
            "analytics/kpi-definitions.md",
            "# KPIs\n## Awareness\n## Acquisition\n## Activation\n## Retention\n## Revenues\nPre-referral work\n",
        );
        let r = run(kpi_check(), &view, &config(1.0));
        assert!(r.passed, "{}", r.detail); // "referral" after "pre-" is a whole word
        let view = MemView::default().with(
            "analytics/kpi-definitions.md",
            "# KPIs\nAwareness, acquisition, activation, retention, revenue. Referrers: none.\n",
        );
        let r = run(kpi_check(), &view, &config(1.0));
        assert!(!r.passed);
        assert!(r.detail.contains("referral"), "{}", r.detail);
        let r = run(kpi_check(), &MemView::default(), &config(1.0));
        assert!(!r.passed);
    }

    #[test]
    fn kpi_coverage_passes_on_all_stages() {
        let view = MemView::default().with(
            "analytics/kpi-definitions.md",
            "| Stage | KPI |\n|---|---|\n| AWARENESS | visits |\n| Acquisition | signups |\n| Activation | first build |\n| Retention | W4 |\n| Revenue | MRR |\n| Referral | invites |\n",
        );
        let r = run(kpi_check(), &view, &config(1.0));
        assert!(r.passed, "{}", r.detail);
    }
}
