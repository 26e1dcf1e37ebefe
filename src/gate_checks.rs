//! The automatic part of a quality gate: what a program can decide by itself.
//!
//! The guide's gates are checklists for the coordinator; some lines of them can
//! be checked mechanically ("Budget allocation sums to monthly budget",
//! "Personas include pain points, buying triggers, and objections"). The
//! playbook names those as [`AutoCheck`]s; here they are run against a
//! read-only [`WorkspaceView`], purely, so they are tested without a disk and
//! every result says why it passed or failed in words a person can act on.

use crate::playbook::{AutoCheck, Phase};
use crate::protocol::config::parse_money;
use crate::protocol::markdown::{sections, tables, Table};
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
        AutoCheck::OutputsExist => outputs_exist(phase, view),
        AutoCheck::BudgetSums { file } => budget_sums(file, view, config),
        AutoCheck::PersonasCover { dir, topics } => personas_cover(dir, topics, view),
        AutoCheck::KpiCoverage { file, stages } => kpi_coverage(file, stages, view),
        AutoCheck::PersonaVariants {
            personas_dir,
            files,
        } => persona_variants(personas_dir, files, view),
        AutoCheck::ExperimentDesigns { dir, fields } => experiment_designs(dir, fields, view),
    }
}

fn outputs_exist(phase: &Phase, view: &dyn WorkspaceView) -> CheckResult {
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

/// `$50,000`, `$1,234.50`.
pub fn format_money(v: f64) -> String {
    let neg = v < 0.0;
    let cents = (v.abs() * 100.0).round() as u128;
    let (whole, frac) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if neg { "-" } else { "" };
    if frac == 0 {
        format!("{sign}${grouped}")
    } else {
        format!("{sign}${grouped}.{frac:02}")
    }
}

fn is_total_label(cell: &str) -> bool {
    let l = cell
        .trim()
        .trim_matches(|c: char| c == '*' || c == '_' || c == ':')
        .trim()
        .to_lowercase();
    l.starts_with("total")
        || l.starts_with("grand total")
        || l.starts_with("subtotal")
        || l.starts_with("sub-total")
        || l == "sum"
}

/// What a monetary allocation table holds.
struct Allocation {
    line: usize,
    rows: usize,
    sum: f64,
    /// Channels whose justification cell is empty (or `None` when the table
    /// has no justification column).
    unjustified: Option<Vec<String>>,
}

fn allocation(table: &Table) -> Option<Allocation> {
    let header_says = |h: &str, words: &[&str]| {
        let h = h.to_lowercase();
        words.iter().any(|w| h.contains(w))
    };
    let data: Vec<&Vec<String>> = table
        .rows
        .iter()
        .filter(|r| !r.first().is_some_and(|c| is_total_label(c)))
        .filter(|r| r.iter().any(|c| !c.is_empty()))
        .collect();
    if data.is_empty() {
        return None;
    }
    let money_col = table.headers.iter().enumerate().find_map(|(i, h)| {
        if !header_says(h, &["budget", "amount", "allocation", "$", "spend"]) {
            return None;
        }
        let amounts: Option<Vec<f64>> = data
            .iter()
            .map(|r| r.get(i).and_then(|c| parse_money(c)))
            .collect();
        amounts.map(|a| (i, a))
    });
    let (_, amounts) = money_col?;
    let why_col = table
        .headers
        .iter()
        .position(|h| header_says(h, &["rationale", "justification", "why", "reason"]));
    let unjustified = why_col.map(|w| {
        data.iter()
            .filter(|r| r.get(w).is_none_or(|c| c.trim().is_empty()))
            .map(|r| r.first().cloned().unwrap_or_default())
            .collect()
    });
    Some(Allocation {
        line: table.line,
        rows: data.len(),
        sum: amounts.iter().sum(),
        unjustified,
    })
}

fn budget_sums(file: &str, view: &dyn WorkspaceView, config: &BusinessConfig) -> CheckResult {
    let name = "budget allocation sums to the monthly budget";
    let fail = |d: String| CheckResult::new(name, false, d);
    let Some(budget) = config.monthly_budget else {
        return fail(
            "CONFIG.md states no monthly budget to check against: add a line like \
             `Monthly budget: $50,000`"
                .to_string(),
        );
    };
    let Some(text) = view.read(file) else {
        return fail(format!("{file} does not exist"));
    };
    let all_tables = tables(&text);
    if all_tables.is_empty() {
        return fail(format!(
            "{file} has no table: expected a markdown table like \
             `| Channel | Monthly budget | Rationale |` with one row per channel"
        ));
    }
    let allocs: Vec<Allocation> = all_tables.iter().filter_map(allocation).collect();
    if allocs.is_empty() {
        return fail(format!(
            "{file}: no table has a money column (a header with budget, amount, allocation, spend or $ \
             whose every channel row is an amount like $20,000 or 20k)"
        ));
    }
    let tolerance = (budget * 0.005).max(1.0);
    let fits = |sum: f64| (sum - budget).abs() <= tolerance;
    // One table that sums to the budget, or else all of them together (an
    // allocation split across tables, e.g. paid and organic channels).
    let chosen: Vec<&Allocation> = match allocs.iter().find(|a| fits(a.sum)) {
        Some(a) => vec![a],
        None => allocs.iter().collect(),
    };
    let sum: f64 = chosen.iter().map(|a| a.sum).sum();
    let rows: usize = chosen.iter().map(|a| a.rows).sum();
    let lines = chosen
        .iter()
        .map(|a| a.line.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if !fits(sum) {
        let detail = if allocs.len() == 1 {
            format!(
                "{file}:{lines}: the table sums to {}, CONFIG.md's monthly budget is {} (off by {})",
                format_money(sum),
                format_money(budget),
                format_money((sum - budget).abs())
            )
        } else {
            let each = allocs
                .iter()
                .map(|a| format!("line {}: {}", a.line, format_money(a.sum)))
                .collect::<Vec<_>>()
                .join("; ");
            format!(
                "{file}: no table sums to CONFIG.md's monthly budget of {} ({each}; all together {})",
                format_money(budget),
                format_money(sum)
            )
        };
        return fail(detail);
    }
    let mut unjustified = Vec::new();
    for a in &chosen {
        match &a.unjustified {
            None => {
                return fail(format!(
                    "{file}:{}: the table sums to {} but has no justification column: add a \
                     `Rationale` column with a reason for each channel",
                    a.line,
                    format_money(sum)
                ))
            }
            Some(u) => unjustified.extend(u.iter().cloned()),
        }
    }
    if !unjustified.is_empty() {
        return fail(format!(
            "{file}:{lines}: no rationale for {}: every channel needs a justification",
            unjustified.join(", ")
        ));
    }
    CheckResult::new(
        name,
        true,
        format!(
            "{file}: {rows} channels sum to {}, CONFIG.md's monthly budget is {}; each has a rationale",
            format_money(sum),
            format_money(budget)
        ),
    )
}

/// Lowercase, `-` and `_` as spaces, whitespace collapsed.
fn normalize(s: &str) -> String {
    s.to_lowercase()
        .replace(['-', '_'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Whether normalized `text` holds `phrase` starting at a word boundary and
/// ending at one, allowing a plural `s`/`es` after it.
fn has_word(text: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return true;
    }
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(phrase) {
        let start = from + i;
        let end = start + phrase.len();
        let left_ok = start == 0 || !is_word_byte(bytes[start - 1]);
        let tail = &text[end..];
        let tail = tail
            .strip_prefix("es")
            .filter(|t| !t.bytes().next().is_some_and(is_word_byte))
            .or_else(|| tail.strip_prefix('s'))
            .unwrap_or(tail);
        let right_ok = !tail.bytes().next().is_some_and(is_word_byte);
        if left_ok && right_ok {
            return true;
        }
        from = start + 1;
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

/// A topic or field is mentioned in its plural or singular form ("pain
/// points" or "pain point", "metrics" or "metric").
fn mentions(text_norm: &str, topic: &str) -> bool {
    let t = normalize(topic);
    let singular = t.strip_suffix('s').unwrap_or(&t);
    has_word(text_norm, &t) || has_word(text_norm, singular)
}

/// A README in a persona or experiment directory describes the directory; it
/// is not a persona or a design, so coverage checks leave it out.
fn is_readme(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_lowercase();
    name.starts_with("readme")
}

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

fn personas_cover(dir: &str, topics: &[String], view: &dyn WorkspaceView) -> CheckResult {
    coverage_result(
        format!("personas include {}", topics.join(", ")),
        "persona",
        dir,
        topics,
        view,
    )
}

fn experiment_designs(dir: &str, fields: &[String], view: &dyn WorkspaceView) -> CheckResult {
    coverage_result(
        format!("experiment designs state {}", fields.join(", ")),
        "experiment design",
        dir,
        fields,
        view,
    )
}

fn kpi_coverage(file: &str, stages: &[String], view: &dyn WorkspaceView) -> CheckResult {
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

/// A persona's names to look for: its first H1 (without a `Persona:` prefix),
/// that without a parenthetical, and its file stem as words.
fn persona_names(path: &str, text: &str) -> (String, Vec<String>) {
    let stem = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .split('.')
        .next()
        .unwrap_or("");
    let stem_name = stem.replace(['-', '_'], " ").trim().to_string();
    let h1 = sections(text)
        .into_iter()
        .find(|s| s.level == 1)
        .map(|s| s.heading);
    let display = match h1 {
        Some(h) => {
            let prefixed = h
                .get(.."persona:".len())
                .is_some_and(|p| p.eq_ignore_ascii_case("persona:"));
            let h = if prefixed {
                h["persona:".len()..].trim().to_string()
            } else {
                h.trim().to_string()
            };
            if h.is_empty() {
                stem_name.clone()
            } else {
                h
            }
        }
        None => stem_name.clone(),
    };
    let mut names = vec![display.clone()];
    if let Some(i) = display.find(" (") {
        names.push(display[..i].trim().to_string());
    }
    names.push(stem_name);
    let names = names
        .into_iter()
        .map(|n| normalize(&n))
        .filter(|n| !n.is_empty())
        .collect();
    (display, names)
}

fn persona_variants(personas_dir: &str, files: &[String], view: &dyn WorkspaceView) -> CheckResult {
    let name = "persona-specific variants exist for each persona".to_string();
    let dir = personas_dir.trim_end_matches('/');
    let personas: Vec<(String, Vec<String>)> = files_under(view, dir)
        .into_iter()
        .filter(|f| !is_readme(f))
        .map(|f| {
            let text = view.read(&f).unwrap_or_default();
            persona_names(&f, &text)
        })
        .collect();
    if personas.is_empty() {
        return CheckResult::new(
            name,
            false,
            format!("no persona files in {dir}/: expected one markdown file per persona"),
        );
    }
    let mut corpus = String::new();
    let mut read = Vec::new();
    for f in files {
        let paths = if f.ends_with('/') {
            files_under(view, f)
        } else {
            vec![f.clone()]
        };
        for p in paths {
            if let Some(t) = view.read(&p) {
                corpus.push_str(&t);
                corpus.push('\n');
                read.push(p);
            }
        }
    }
    if read.is_empty() {
        return CheckResult::new(
            name,
            false,
            format!(
                "none of {} exists, so no persona has a variant",
                files.join(", ")
            ),
        );
    }
    let corpus = normalize(&corpus);
    let without: Vec<&str> = personas
        .iter()
        .filter(|(_, names)| !names.iter().any(|n| corpus.contains(n.as_str())))
        .map(|(d, _)| d.as_str())
        .collect();
    if without.is_empty() {
        CheckResult::new(
            name,
            true,
            format!(
                "all {} personas are named in {}",
                personas.len(),
                read.join(", ")
            ),
        )
    } else {
        CheckResult::new(
            name,
            false,
            format!(
                "no variant for {} in {}: name each persona from {dir}/ in its variant",
                without.join(", "),
                read.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::{Gate, Step};
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct MemView(BTreeMap<String, String>);

    impl MemView {
        fn with(mut self, path: &str, text: &str) -> Self {
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

    fn step(id: &str, outputs: &[&str]) -> Step {
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

    fn phase(checks: Vec<AutoCheck>) -> Phase {
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

    fn config(budget: f64) -> BusinessConfig {
        BusinessConfig {
            monthly_budget: Some(budget),
            ..Default::default()
        }
    }

    fn run(check: AutoCheck, view: &MemView, cfg: &BusinessConfig) -> CheckResult {
        let p = phase(vec![check.clone()]);
        let r = run_check(&check, &p, view, cfg);
        assert_eq!(run_gate_checks(&p, view, cfg), vec![r.clone()]);
        r
    }

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

    const GOOD_BUDGET: &str = "# Budget allocation

Monthly budget split by channel.

| Channel | Monthly budget | Rationale |
|---|---:|---|
| Paid search | $20,000 | High-intent developers search for alternatives |
| Paid social (LinkedIn) | $15,000 | Reaches VP Engineering persona by title |
| Content & SEO | 10k | Compounding organic acquisition |
| Events | $5,000 | Two community meetups for referrals |
| **Total** | **$50,000** | |
";

    fn budget_check() -> AutoCheck {
        AutoCheck::BudgetSums {
            file: "strategy/budget-allocation.md".into(),
        }
    }

    #[test]
    fn budget_sums_passes_on_a_good_table() {
        let view = MemView::default().with("strategy/budget-allocation.md", GOOD_BUDGET);
        let r = run(budget_check(), &view, &config(50_000.0));
        assert!(r.passed, "{}", r.detail);
        assert!(
            r.detail.contains("4 channels sum to $50,000"),
            "{}",
            r.detail
        );
        assert_eq!(r.name, "budget allocation sums to the monthly budget");
    }

    #[test]
    fn budget_sums_fails_when_the_sum_is_off() {
        let text = GOOD_BUDGET.replace("| Events | $5,000 |", "| Events | $3,000 |");
        let view = MemView::default().with("strategy/budget-allocation.md", &text);
        let r = run(budget_check(), &view, &config(50_000.0));
        assert!(!r.passed);
        assert_eq!(
            r.detail,
            "strategy/budget-allocation.md:5: the table sums to $48,000, CONFIG.md's monthly budget is $50,000 (off by $2,000)"
        );
    }

    #[test]
    fn budget_sums_fails_without_rationale() {
        let text = GOOD_BUDGET.replace("| Two community meetups for referrals |", "| |");
        let view = MemView::default().with("strategy/budget-allocation.md", &text);
        let r = run(budget_check(), &view, &config(50_000.0));
        assert!(!r.passed);
        assert!(r.detail.contains("no rationale for Events"), "{}", r.detail);

        let no_col = "| Channel | Budget |\n|---|---|\n| Search | $50,000 |\n";
        let view = MemView::default().with("strategy/budget-allocation.md", no_col);
        let r = run(budget_check(), &view, &config(50_000.0));
        assert!(!r.passed);
        assert!(r.detail.contains("no justification column"), "{}", r.detail);
    }

    #[test]
    fn budget_sums_fails_without_table_file_or_config_budget() {
        let view =
            MemView::default().with("strategy/budget-allocation.md", "We spend it all on ads.");
        let r = run(budget_check(), &view, &config(50_000.0));
        assert!(!r.passed);
        assert!(r.detail.contains("has no table"), "{}", r.detail);

        let r = run(budget_check(), &MemView::default(), &config(50_000.0));
        assert!(!r.passed);
        assert!(r.detail.contains("does not exist"), "{}", r.detail);

        let view = MemView::default().with("strategy/budget-allocation.md", GOOD_BUDGET);
        let r = run(budget_check(), &view, &BusinessConfig::default());
        assert!(!r.passed);
        assert!(r.detail.contains("no monthly budget"), "{}", r.detail);

        let text = "| Channel | Share | Rationale |\n|---|---|---|\n| Search | 40% | intent |\n";
        let view = MemView::default().with("strategy/budget-allocation.md", text);
        let r = run(budget_check(), &view, &config(50_000.0));
        assert!(!r.passed);
        assert!(
            r.detail.contains("no table has a money column"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn budget_sums_skips_percent_columns_and_other_tables() {
        let text = "| Quarter | Spend | Why |\n|---|---|---|\n| Q1 | $150,000 | plan |\n\n\
                    | Channel | Allocation % | Budget ($) | Justification |\n|---|---|---|---|\n\
                    | Search | 60% | 30,000 | intent |\n| Social | 40% | 20,000 | reach |\n| Total | 100% | 50,000 | |\n";
        let view = MemView::default().with("strategy/budget-allocation.md", text);
        let r = run(budget_check(), &view, &config(50_000.0));
        assert!(r.passed, "{}", r.detail);
    }

    #[test]
    fn budget_tolerance_is_half_a_percent() {
        let text = GOOD_BUDGET.replace("| Events | $5,000 |", "| Events | $4,800 |");
        let view = MemView::default().with("strategy/budget-allocation.md", &text);
        assert!(run(budget_check(), &view, &config(50_000.0)).passed);
        let small =
            "| Channel | Budget | Why |\n|---|---|---|\n| A | $33.33 | x |\n| B | $66.66 | y |\n";
        let view = MemView::default().with("strategy/budget-allocation.md", small);
        assert!(run(budget_check(), &view, &config(100.0)).passed);
    }

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

    fn variants_check() -> AutoCheck {
        AutoCheck::PersonaVariants {
            personas_dir: "strategy/personas".into(),
            files: vec![
                "messaging/messaging-hierarchy.md".into(),
                "messaging/variants/".into(),
            ],
        }
    }

    #[test]
    fn persona_variants_fail_naming_the_persona() {
        let view = MemView::default()
            .with("strategy/personas/dana.md", "# Persona: DevOps Dana\n")
            .with("strategy/personas/victor-vp.md", "No heading here")
            .with(
                "messaging/messaging-hierarchy.md",
                "## Variant for DevOps Dana\n",
            );
        let r = run(variants_check(), &view, &config(1.0));
        assert!(!r.passed);
        assert!(
            r.detail.starts_with("no variant for victor vp"),
            "{}",
            r.detail
        );
        assert!(!r.detail.contains("Dana,"), "{}", r.detail);
        let r = run(variants_check(), &MemView::default(), &config(1.0));
        assert!(!r.passed);
        assert!(r.detail.contains("no persona files"), "{}", r.detail);
    }

    #[test]
    fn persona_variants_pass_when_each_is_named() {
        let view = MemView::default()
            .with(
                "strategy/personas/dana.md",
                "# Persona: DevOps Dana (Platform lead)\n",
            )
            .with("strategy/personas/victor-vp.md", "No heading here")
            .with("messaging/messaging-hierarchy.md", "## devops dana\n")
            .with("messaging/variants/victor.md", "For Victor-VP: ...");
        let r = run(variants_check(), &view, &config(1.0));
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

    #[test]
    fn money_formatting() {
        assert_eq!(format_money(50_000.0), "$50,000");
        assert_eq!(format_money(1_234.5), "$1,234.50");
        assert_eq!(format_money(999.0), "$999");
        assert_eq!(format_money(0.0), "$0");
    }

    #[test]
    fn has_word_boundaries() {
        assert!(has_word("the referral rate", "referral"));
        assert!(has_word("referrals", "referral"));
        assert!(!has_word("referrer", "referral"));
        assert!(!has_word("preactivation", "activation"));
        assert!(has_word("pre activation", "activation"));
        assert!(!has_word("revenued", "revenue"));
    }
}
