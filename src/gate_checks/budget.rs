//! The budget allocation sums to CONFIG.md's monthly budget and every
//! channel is justified: the money column and the rationale column of the
//! allocation tables are found by their headers, total rows left out.

use super::{CheckResult, WorkspaceView};
use crate::protocol::config::parse_money;
use crate::protocol::markdown::{tables, Table};
use crate::protocol::BusinessConfig;

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

/// One table (or all of them together) sums to CONFIG.md's monthly budget,
/// within half a percent, and every channel has a rationale.
pub(super) fn budget_sums(
    file: &str,
    view: &dyn WorkspaceView,
    config: &BusinessConfig,
) -> CheckResult {
    let name = "budget allocation sums to the monthly budget";
    let fail = |d: String| CheckResult::new(name, false, d);
    let Some(budget) = config.monthly_budget else {
        return fail(
            "CONFIG.md states no monthly budget to check against: add a line like \
             `Monthly budget: $50,000`"
                .to_string(),
        );
    };
    let allocs = match allocations(file, view) {
        Ok(a) => a,
        Err(why) => return fail(why),
    };
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
        return fail(sum_mismatch(file, &lines, &allocs, sum, budget));
    }
    if let Some(why) = justification_problem(file, &lines, &chosen, sum) {
        return fail(why);
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

/// The allocation tables of `file`, or why there are none.
fn allocations(file: &str, view: &dyn WorkspaceView) -> Result<Vec<Allocation>, String> {
    let Some(text) = view.read(file) else {
        return Err(format!("{file} does not exist"));
    };
    let all_tables = tables(&text);
    if all_tables.is_empty() {
        return Err(format!(
            "{file} has no table: expected a markdown table like \
             `| Channel | Monthly budget | Rationale |` with one row per channel"
        ));
    }
    let allocs: Vec<Allocation> = all_tables.iter().filter_map(allocation).collect();
    if allocs.is_empty() {
        return Err(format!(
            "{file}: no table has a money column (a header with budget, amount, allocation, spend or $ \
             whose every channel row is an amount like $20,000 or 20k)"
        ));
    }
    Ok(allocs)
}

/// What the tables sum to against the budget: the one table's sum, or each
/// table's and all of them together.
fn sum_mismatch(file: &str, lines: &str, allocs: &[Allocation], sum: f64, budget: f64) -> String {
    if allocs.len() == 1 {
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
    }
}

/// A chosen table without a justification column, or the channels without
/// a rationale; `None` when every channel has one.
fn justification_problem(
    file: &str,
    lines: &str,
    chosen: &[&Allocation],
    sum: f64,
) -> Option<String> {
    let mut unjustified = Vec::new();
    for a in chosen {
        match &a.unjustified {
            None => {
                return Some(format!(
                    "{file}:{}: the table sums to {} but has no justification column: add a \
                     `Rationale` column with a reason for each channel",
                    a.line,
                    format_money(sum)
                ))
            }
            Some(u) => unjustified.extend(u.iter().cloned()),
        }
    }
    (!unjustified.is_empty()).then(|| {
        format!(
            "{file}:{lines}: no rationale for {}: every channel needs a justification",
            unjustified.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate_checks::test_support::*;
    use crate::playbook::AutoCheck;

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

    #[test]
    fn money_formatting() {
        assert_eq!(format_money(50_000.0), "$50,000");
        assert_eq!(format_money(1_234.5), "$1,234.50");
        assert_eq!(format_money(999.0), "$999");
        assert_eq!(format_money(0.0), "$0");
    }
}
