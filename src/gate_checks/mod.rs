//! The automatic part of a quality gate: what a program can decide by itself.
//!
//! The guide's gates are checklists for the coordinator; some lines of them can
//! be checked mechanically ("Budget allocation sums to monthly budget",
//! "Personas include pain points, buying triggers, and objections"). The
//! playbook names those as [`AutoCheck`]s; here they are run against a
//! read-only [`WorkspaceView`], purely, so they are tested without a disk and
//! every result says why it passed or failed in words a person can act on.
//!
//! One module per kind of check; this one holds what they share: the view
//! of the workspace, the result type, and listing a directory's files.

mod budget;
mod coverage;
mod kpi;
mod outputs;
#[cfg(test)]
mod test_support;
mod variants;
mod words;

pub use budget::format_money;

use crate::playbook::{AutoCheck, Phase};
use crate::protocol::{is_ignored, BusinessConfig};
use serde::{Deserialize, Serialize};

/// Read-only access to the workspace, as the checks need it.
pub trait WorkspaceView {
    /// The text of a workspace-relative file, `None` if it does not exist or is unreadable.
    fn read(&self, rel: &str) -> Option<String>;
    /// Workspace-relative paths of the files under `dir` (recursive, sorted,
    /// ignored files left out). `dir` has no trailing `/`.
    fn list(&self, dir: &str) -> Vec<String>;
    /// Size in bytes, `None` if the file does not exist.
    fn size(&self, rel: &str) -> Option<u64>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Short human name, e.g. "budget allocation sums to the monthly budget".
    pub name: String,
    pub passed: bool,
    /// Why it passed or failed, naming files and numbers.
    pub detail: String,
}

impl CheckResult {
    fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Self {
        CheckResult {
            name: name.into(),
            passed,
            detail: detail.into(),
        }
    }
}

/// The files under `dir` (no trailing `/`), without ignored ones.
fn files_under(view: &dyn WorkspaceView, dir: &str) -> Vec<String> {
    let dir = dir.trim_end_matches('/');
    let mut files: Vec<String> = view
        .list(dir)
        .into_iter()
        .filter(|f| !is_ignored(f))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// An expected output is there: a file exists and is non-empty; a directory
/// (`dir/`) holds at least one non-empty file.
pub fn output_present(view: &dyn WorkspaceView, output: &str) -> bool {
    if output.ends_with('/') {
        files_under(view, output)
            .iter()
            .any(|f| view.size(f).unwrap_or(0) > 0)
    } else {
        view.size(output).unwrap_or(0) > 0
    }
}

/// Runs every automatic check of the phase's gate, in the playbook's order.
pub fn run_gate_checks(
    phase: &Phase,
    view: &dyn WorkspaceView,
    config: &BusinessConfig,
) -> Vec<CheckResult> {
    phase
        .gate
        .checks
        .iter()
        .map(|c| run_check(c, phase, view, config))
        .collect()
}

/// Runs one automatic check.
pub fn run_check(
    check: &AutoCheck,
    phase: &Phase,
    view: &dyn WorkspaceView,
    config: &BusinessConfig,
) -> CheckResult {
    match check {
        AutoCheck::OutputsExist => outputs::outputs_exist(phase, view),
        AutoCheck::BudgetSums { file } => budget::budget_sums(file, view, config),
        AutoCheck::PersonasCover { dir, topics } => coverage::personas_cover(dir, topics, view),
        AutoCheck::KpiCoverage { file, stages } => kpi::kpi_coverage(file, stages, view),
        AutoCheck::PersonaVariants {
            personas_dir,
            files,
        } => variants::persona_variants(personas_dir, files, view),
        AutoCheck::ExperimentDesigns { dir, fields } => {
            coverage::experiment_designs(dir, fields, view)
        }
    }
}

/// A README in a persona or experiment directory describes the directory; it
/// is not a persona or a design, so coverage checks leave it out.
fn is_readme(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_lowercase();
    name.starts_with("readme")
}
