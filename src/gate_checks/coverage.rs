//! Each file of a directory mentions every topic: personas include pain
//! points, buying triggers and objections; experiment designs state their
//! hypothesis, metrics and sample size. A README there describes the
//! directory and is left out.

use super::words::{mentions, normalize};
use super::{files_under, is_readme, CheckResult, WorkspaceView};

/// For each file under `dir`, the topics it does not mention.
fn coverage(
    view: &dyn WorkspaceView,
    dir: &str,
    topics: &[String],
) -> Option<Vec<(String, Vec<String>)>> {
    let files: Vec<String> = files_under(view, dir)
        .into_iter()
        .filter(|f| !is_readme(f))
        .collect();
    if files.is_empty() {
        return None;
    }
    Some(
        files
            .into_iter()
            .map(|f| {
                let text = normalize(&view.read(&f).unwrap_or_default());
                let lacking = topics
                    .iter()
                    .filter(|t| !mentions(&text, t))
                    .cloned()
                    .collect();
                (f, lacking)
            })
            .collect(),
    )
}

fn coverage_result(
    name: String,
    what: &str,
    dir: &str,
    topics: &[String],
    view: &dyn WorkspaceView,
) -> CheckResult {
    let dir = dir.trim_end_matches('/');
    let Some(cov) = coverage(view, dir, topics) else {
        return CheckResult::new(
            name,
            false,
            format!("no {what} files in {dir}/: expected one markdown file per {what}"),
        );
    };
    let gaps: Vec<String> = cov
        .iter()
        .filter(|(_, l)| !l.is_empty())
        .map(|(f, l)| format!("{f} lacks {}", l.join(", ")))
        .collect();
    if gaps.is_empty() {
        CheckResult::new(
            name,
            true,
            format!(
                "all {} {what} files in {dir}/ cover {}",
                cov.len(),
                topics.join(", ")
            ),
        )
    } else {
        CheckResult::new(name, false, gaps.join("; "))
    }
}

/// Every persona file mentions every topic.
pub(super) fn personas_cover(
    dir: &str,
    topics: &[String],
    view: &dyn WorkspaceView,
) -> CheckResult {
    coverage_result(
        format!("personas include {}", topics.join(", ")),
        "persona",
        dir,
        topics,
        view,
    )
}

/// Every experiment design states every field.
pub(super) fn experiment_designs(
    dir: &str,
    fields: &[String],
    view: &dyn WorkspaceView,
) -> CheckResult {
    coverage_result(
        format!("experiment designs state {}", fields.join(", ")),
        "experiment design",
        dir,
        fields,
        view,
    )
}

#[cfg(test)]
mod tests {
    use crate::gate_checks::test_support::*;
    use crate::playbook::AutoCheck;

    fn personas_check() -> AutoCheck {
        AutoCheck::PersonasCover {
            dir: "strategy/personas/".into(),
            topics: vec![
                "pain points".into(),
                "buying triggers".into(),
                "objections".into(),
            ],
        }
    }

    #[test]
    fn personas_cover_fails_naming_file_and_gap() {
        let view = MemView::default()
            .with(
                "strategy/personas/dana.md",
                "# Dana\n## Pain points\n## Buying triggers\n## Objections\n",
            )
            .with(
                "strategy/personas/vp.md",
                "# VP Eng\n## Pain Points\n- slow CI\n",
            );
        let r = run(personas_check(), &view, &config(1.0));
        assert!(!r.passed);
        assert_eq!(
            r.detail,
            "strategy/personas/vp.md lacks buying triggers, objections"
        );
        let r = run(personas_check(), &MemView::default(), &config(1.0));
        assert!(!r.passed);
        assert!(
            r.detail.contains("no persona files in strategy/personas/"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn personas_cover_passes_with_singular_and_hyphens() {
        let view = MemView::default()
            .with(
                "strategy/personas/dana.md",
                "# Dana\n**Pain-points**: x\n**Buying trigger**: y\n**Objection**: z\n",
            )
            .with("strategy/personas/README.md", "index")
            .with(
                "strategy/personas/vp.md",
                "# VP\nPAIN POINTS\nbuying_triggers\nobjections",
            );
        let r = run(personas_check(), &view, &config(1.0));
        assert!(r.passed, "{}", r.detail);
    }

    fn experiments_check() -> AutoCheck {
        AutoCheck::ExperimentDesigns {
            dir: "analytics/experiments/".into(),
            fields: ["hypothesis", "metrics", "sample size", "duration"]
                .map(String::from)
                .to_vec(),
        }
    }

    #[test]
    fn experiment_designs_fail_on_a_missing_field() {
        let view = MemView::default().with(
            "analytics/experiments/headline.md",
            "## Hypothesis\nShorter wins.\n## Metric\nCTR\n",
        );
        let r = run(experiments_check(), &view, &config(1.0));
        assert!(!r.passed);
        assert_eq!(
            r.detail,
            "analytics/experiments/headline.md lacks sample size, duration"
        );
        let r = run(experiments_check(), &MemView::default(), &config(1.0));
        assert!(!r.passed);
        assert!(
            r.detail.contains("no experiment design files"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn experiment_designs_pass_when_complete() {
        let view = MemView::default().with(
            "analytics/experiments/headline.md",
            "- Hypothesis: shorter wins\n- Metrics: CTR\n- Sample-size: 4,000\n- Duration: 14 days\n",
        );
        let r = run(experiments_check(), &view, &config(1.0));
        assert!(r.passed, "{}", r.detail);
    }
}
