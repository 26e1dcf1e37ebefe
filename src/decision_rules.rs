//! The guide's "When to Iterate vs. Restart" rule applied to the growth
//! analyst's numbers, and the "Scenario Validation" scenario that fits the
//! next cycle.
//!
//! Pure: the text of `analytics/unit-economics.md` (a markdown table of CAC,
//! LTV and payback by month or by channel), CONFIG.md's targets and the
//! playbook's thresholds in; a recommendation with the numbers that led to it
//! out, or a message saying why the numbers cannot be read. gtmd never guesses:
//! a table it cannot read gives the coordinator that message instead.

use crate::playbook::DecisionRules;
use crate::protocol::config::parse_money;
use crate::protocol::markdown::{tables, Table};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Iterate,
    Restart,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Iterate => "iterate",
            Verdict::Restart => "restart",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub verdict: Verdict,
    /// A scenario of the guide's "Scenario Validation" for the next cycle.
    pub scenario: &'static str,
    /// The numbers and the rules that led there, one sentence each.
    pub reasons: Vec<String>,
}

/// What the table holds: a series in time order, or one row per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Series,
    Channels,
}

/// The CAC (and LTV, payback where given) read from the table.
#[derive(Debug, Clone, PartialEq)]
struct Economics {
    shape: Shape,
    /// (row label, CAC) in table order, summary rows excluded.
    cac: Vec<(String, f64)>,
    /// The "Total" / "Blended" row's CAC, when there is one.
    summary_cac: Option<f64>,
    /// Latest (series) or summary/mean (channels) LTV and payback.
    ltv: Option<f64>,
    payback: Option<f64>,
}

const TABLE_FORM: &str =
    "expected a markdown table such as `| Month | CAC | LTV | Payback (months) |` \
     (one row per month, oldest first) or `| Channel | CAC | LTV | Payback (months) |` \
     with numbers like `$1,200` or `14`";

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

fn is_summary(label: &str) -> bool {
    words(label).iter().any(|w| {
        matches!(
            w.as_str(),
            "total" | "blended" | "overall" | "average" | "avg" | "all"
        )
    })
}

/// A cell as a number: money (`$1,200`, `1.2k`) or a count with a unit (`14 months`).
fn number(cell: &str) -> Option<f64> {
    if let Some(v) = parse_money(cell) {
        return Some(v);
    }
    let t = cell.trim().trim_matches(|c: char| c == '*' || c == '_');
    let first = t.split_whitespace().next()?;
    let rest: Vec<&str> = t.split_whitespace().skip(1).collect();
    let unit_ok = rest.len() <= 1
        && rest
            .first()
            .is_none_or(|u| matches!(u.to_lowercase().as_str(), "months" | "month" | "mo"));
    if unit_ok {
        parse_money(first)
    } else {
        None
    }
}

/// Why the rule cannot be applied: each says what gtmd expected, so the
/// coordinator (or the growth analyst) can fix the numbers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("CONFIG.md gives no CAC target to compare with; write it like `Target CAC: $400` (or a `targets:` mapping in its front matter)")]
    NoCacTarget,
    #[error(
        "{path} is missing or unreadable; the growth analyst's performance-analysis step writes it"
    )]
    Missing { path: String },
    #[error("{path}: no table with a CAC column; {form}", form = TABLE_FORM)]
    NoCacTable { path: String },
    #[error("{path}:{line}: the table has no CAC column; {form}", form = TABLE_FORM)]
    NoCacColumn { path: String, line: usize },
    #[error("{path}:{line}: the CAC of {label:?} is {raw:?}, not a number; {form}", form = TABLE_FORM)]
    NotANumber {
        path: String,
        line: usize,
        label: String,
        raw: String,
    },
    #[error("{path}:{line}: the CAC table has no rows; {form}", form = TABLE_FORM)]
    NoRows { path: String, line: usize },
}

/// Which column holds what, by header words.
fn column(t: &Table, want: &str, not: &[&str]) -> Option<usize> {
    t.headers.iter().position(|h| {
        let w = words(h);
        w.iter().any(|x| x == want) && !not.iter().any(|n| w.iter().any(|x| x == n))
    })
}

fn read_table(path: &str, t: &Table) -> Result<Economics, RuleError> {
    let cac_col =
        column(t, "cac", &["ltv", "marginal", "target"]).ok_or_else(|| RuleError::NoCacColumn {
            path: path.to_string(),
            line: t.line,
        })?;
    let ltv_col = column(t, "ltv", &["cac", "target"]);
    let payback_col = column(t, "payback", &["target"]);
    let first = words(t.headers.first().map(String::as_str).unwrap_or(""));
    let shape = if first
        .iter()
        .any(|w| matches!(w.as_str(), "channel" | "channels" | "source" | "campaign"))
    {
        Shape::Channels
    } else {
        Shape::Series
    };
    let mut e = Economics {
        shape,
        cac: Vec::new(),
        summary_cac: None,
        ltv: None,
        payback: None,
    };
    let mut ltvs = Vec::new();
    let mut paybacks = Vec::new();
    let (mut summary_ltv, mut summary_payback) = (None, None);
    for (k, row) in t.rows.iter().enumerate() {
        let line = t.line + 2 + k;
        let label = row.first().cloned().unwrap_or_default();
        let cell = |c: usize| row.get(c).map(String::as_str).unwrap_or("").trim();
        let raw = cell(cac_col);
        let Some(cac) = number(raw) else {
            return Err(RuleError::NotANumber {
                path: path.to_string(),
                line,
                label,
                raw: raw.to_string(),
            });
        };
        let opt = |c: Option<usize>| c.and_then(|c| number(cell(c)));
        if is_summary(&label) {
            e.summary_cac = Some(cac);
            summary_ltv = opt(ltv_col);
            summary_payback = opt(payback_col);
            continue;
        }
        e.cac.push((label, cac));
        ltvs.extend(opt(ltv_col));
        paybacks.extend(opt(payback_col));
    }
    if e.cac.is_empty() && e.summary_cac.is_none() {
        return Err(RuleError::NoRows {
            path: path.to_string(),
            line: t.line,
        });
    }
    let pick = |v: &[f64], summary: Option<f64>| match shape {
        Shape::Series => v.last().copied().or(summary),
        Shape::Channels => summary.or_else(|| mean(v)),
    };
    e.ltv = pick(&ltvs, summary_ltv);
    e.payback = pick(&paybacks, summary_payback);
    Ok(e)
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn money(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        let s = format!("{}", v as i64);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
                out.push(',');
            }
            out.push(c);
        }
        format!("${out}")
    } else {
        format!("${v:.2}")
    }
}

/// Apply the rule to `text` (the file at `path`, for messages).
pub fn evaluate(
    path: &str,
    text: &str,
    targets: &BTreeMap<String, f64>,
    rules: &DecisionRules,
) -> Result<Recommendation, RuleError> {
    let Some(target) = targets.get("cac").copied().filter(|t| *t > 0.0) else {
        return Err(RuleError::NoCacTarget);
    };
    let e = read_economics(path, text)?;
    let mut reasons = Vec::new();
    let current = current_cac(&e);
    let multiple = current / target;
    reasons.push(format!(
        "{} is {} against a target of {}: {multiple:.1}x (restart at {:.1}x or more without an improving trend)",
        cac_label(&e),
        money(current),
        money(target),
        rules.restart_cac_multiple
    ));
    let improving = improving_trend(&e, rules, &mut reasons);
    let ltv_cac = e.ltv.filter(|_| current > 0.0).map(|l| l / current);
    if let Some(r) = ltv_cac {
        reasons.push(format!(
            "LTV {} : CAC {} = {r:.1} (scaling wants at least {:.1})",
            money(e.ltv.unwrap_or(0.0)),
            money(current),
            rules.scale_min_ltv_cac
        ));
    }
    let payback_target = targets.get("payback_months").or(targets.get("payback"));
    if let Some(p) = e.payback {
        reasons.push(match payback_target {
            Some(t) => format!("payback {p:.0} months against a target of {t:.0}"),
            None => format!("payback {p:.0} months (CONFIG.md gives no payback target)"),
        });
    }

    let verdict = if multiple >= rules.restart_cac_multiple && !improving {
        Verdict::Restart
    } else {
        Verdict::Iterate
    };
    let healthy = multiple <= rules.scale_max_cac_multiple
        && ltv_cac.is_none_or(|r| r >= rules.scale_min_ltv_cac)
        && match (e.payback, payback_target) {
            (Some(p), Some(t)) => p <= *t,
            _ => true,
        };
    let scenario = next_cycle(verdict, healthy, rules, &mut reasons);
    Ok(Recommendation {
        verdict,
        scenario,
        reasons,
    })
}

/// The table the rule reads: the first with a CAC column, a series by
/// month preferred over a table by channel (a series shows a trend).
fn read_economics(path: &str, text: &str) -> Result<Economics, RuleError> {
    let found = tables(text);
    let candidates: Vec<&Table> = found
        .iter()
        .filter(|t| column(t, "cac", &["ltv", "marginal", "target"]).is_some())
        .collect();
    if candidates.is_empty() {
        return Err(RuleError::NoCacTable {
            path: path.to_string(),
        });
    }
    let mut read = Vec::new();
    for t in candidates {
        read.push(read_table(path, t)?);
    }
    let series = read.iter().position(|e| e.shape == Shape::Series);
    Ok(read.swap_remove(series.unwrap_or(0)))
}

/// The CAC the rule judges: the latest of a series, else the blended (or
/// mean) CAC of the channels.
fn current_cac(e: &Economics) -> f64 {
    match e.shape {
        Shape::Series => e.cac.last().map(|(_, v)| *v).or(e.summary_cac),
        Shape::Channels => e
            .summary_cac
            .or_else(|| mean(&e.cac.iter().map(|(_, v)| *v).collect::<Vec<_>>())),
    }
    .unwrap_or(0.0)
}

/// What [`current_cac`] is, in words: `CAC in March`, `blended CAC`, ...
fn cac_label(e: &Economics) -> String {
    match e.shape {
        Shape::Series => match e.cac.last() {
            Some((label, _)) => format!("CAC in {label}"),
            None => "CAC".into(),
        },
        Shape::Channels if e.summary_cac.is_some() => "blended CAC".into(),
        Shape::Channels => format!("mean CAC of {} channels", e.cac.len()),
    }
}

/// Whether CAC is improving: the latest period at least
/// `improving_min_drop_pct` below the first and not up on the one before.
/// Only a series can show it; the reason says which way it went.
fn improving_trend(e: &Economics, rules: &DecisionRules, reasons: &mut Vec<String>) -> bool {
    if e.shape != Shape::Series || e.cac.len() < 2 {
        reasons.push(
            "no CAC series by month, so no improving trend can be shown (a table by channel has none)"
                .into(),
        );
        return false;
    }
    let series: Vec<f64> = e.cac.iter().map(|(_, v)| *v).collect();
    let (first, prev, last) = (
        series[0],
        series[series.len() - 2],
        series[series.len() - 1],
    );
    let drop_pct = (first - last) / first * 100.0;
    let improving = drop_pct >= rules.improving_min_drop_pct && last <= prev;
    reasons.push(format!(
        "CAC trend over {} periods ({}): {} from {} to {} ({}{:.0}%){}",
        series.len(),
        e.cac
            .iter()
            .map(|(l, v)| format!("{l} {}", money(*v)))
            .collect::<Vec<_>>()
            .join(", "),
        if improving {
            "improving"
        } else if last > first {
            "rising"
        } else {
            "not improving"
        },
        money(first),
        money(last),
        if drop_pct > 0.0 { "-" } else { "+" },
        drop_pct.abs(),
        if improving {
            String::new()
        } else {
            format!(
                "; improving means at least {:.0}% below the first period and not up on the last",
                rules.improving_min_drop_pct
            )
        }
    ));
    improving
}

/// The guide's "Scenario Validation" scenario for the next cycle, with the
/// reason for it.
fn next_cycle(
    verdict: Verdict,
    healthy: bool,
    rules: &DecisionRules,
    reasons: &mut Vec<String>,
) -> &'static str {
    match verdict {
        Verdict::Restart => {
            reasons.push(
                "next cycle: new-market (all 4 phases): the guide restarts on a positioning change or a new target market; re-validate personas and positioning with a small budget"
                    .into(),
            );
            "new-market"
        }
        Verdict::Iterate if healthy => {
            reasons.push(format!(
                "next cycle: scaling (phases 2, 3, 4): unit economics meet the targets (CAC at most {:.1}x target), so keep the strategy and scale the channels that work",
                rules.scale_max_cac_multiple
            ));
            "scaling"
        }
        Verdict::Iterate => {
            reasons.push(
                "next cycle: quarterly-planning (phases 1 and 4): the strategy holds but the numbers miss their targets; refresh the strategy and reallocate the budget"
                    .into(),
            );
            "quarterly-planning"
        }
    }
}

/// The lines gtmd adds to the coordinator's strategy-refinement task: the
/// recommendation, or why there is none.
pub fn task_details(
    path: &str,
    text: Option<&str>,
    targets: &BTreeMap<String, f64>,
    rules: &DecisionRules,
) -> Vec<String> {
    let result = match text {
        None => Err(RuleError::Missing {
            path: path.to_string(),
        }),
        Some(text) => evaluate(path, text, targets, rules),
    };
    match result {
        Ok(r) => {
            let mut v = vec![format!(
                "gtmd's reading of the guide's iterate-vs-restart rule: {} (next cycle's scenario: {})",
                r.verdict.word().to_uppercase(),
                r.scenario
            )];
            v.extend(r.reasons.into_iter().map(|s| format!("- {s}")));
            v
        }
        Err(why) => vec![format!(
            "gtmd could not apply the guide's iterate-vs-restart rule, so it recommends nothing: {why}. Decide from the analysis yourself, and have the table fixed for the next cycle."
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("cac".to_string(), 400.0),
            ("payback_months".to_string(), 12.0),
        ])
    }

    fn eval(text: &str) -> Result<Recommendation, RuleError> {
        evaluate(
            "analytics/unit-economics.md",
            text,
            &targets(),
            &DecisionRules::default(),
        )
    }

    #[test]
    fn cac_over_3x_target_and_rising_restarts() {
        let r = eval(
            "# Unit economics\n\n| Month | CAC | LTV | Payback (months) |\n|---|---|---|---|\n| January | $1,150 | $2,000 | 30 |\n| February | $1,220 | $2,000 | 31 |\n| March | $1,280 | $2,100 | 32 |\n",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Restart, "{r:?}");
        assert_eq!(r.scenario, "new-market");
        let text = r.reasons.join("\n");
        assert!(text.contains("$1,280"), "{text}");
        assert!(text.contains("3.2x"), "{text}");
        assert!(text.contains("rising"), "{text}");
    }

    #[test]
    fn cac_falling_towards_target_iterates() {
        let r = eval(
            "| Month | CAC | LTV | Payback |\n|---|---|---|---|\n| Jan | $1,600 | $3,000 | 20 months |\n| Feb | $1,400 | $3,000 | 18 months |\n| Mar | $1,280 | $3,100 | 16 months |\n",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Iterate, "{r:?}");
        assert_eq!(r.scenario, "quarterly-planning");
        assert!(r.reasons.join("\n").contains("improving"), "{r:?}");
    }

    #[test]
    fn healthy_numbers_by_channel_scale() {
        let r = eval(
            "| Channel | CAC | LTV | Payback (months) |\n|---|---|---|---|\n| Paid search | $350 | $2,400 | 8 |\n| Content | $250 | $2,400 | 6 |\n| **Blended** | $300 | $2,400 | 7 |\n",
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Iterate);
        assert_eq!(r.scenario, "scaling");
        assert!(r.reasons[0].contains("blended CAC is $300"), "{r:?}");
    }

    #[test]
    fn by_channel_over_3x_restarts_without_a_trend() {
        let r =
            eval("| Channel | CAC |\n|---|---|\n| Paid social | $1,400 |\n| Events | $1,300 |\n")
                .unwrap();
        assert_eq!(r.verdict, Verdict::Restart);
        assert!(r
            .reasons
            .join(" ")
            .contains("no improving trend can be shown"));
    }

    #[test]
    fn thresholds_are_playbook_data() {
        let rules = DecisionRules {
            restart_cac_multiple: 4.0,
            ..DecisionRules::default()
        };
        let r = evaluate(
            "u.md",
            "| Month | CAC |\n|---|---|\n| Jan | $1,200 |\n| Feb | $1,300 |\n",
            &targets(),
            &rules,
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::Iterate);
    }

    #[test]
    fn a_malformed_table_gives_a_clear_message_not_a_guess() {
        let err = eval("| Month | CAC |\n|---|---|\n| Jan | $1,200 |\n| Feb | about a grand |\n")
            .unwrap_err();
        assert!(
            matches!(&err, RuleError::NotANumber { line: 4, raw, .. } if raw == "about a grand"),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(
            err.contains("analytics/unit-economics.md:4:") && err.contains("\"about a grand\""),
            "{err}"
        );
        assert!(err.contains("| Month | CAC |"), "{err}");
        let err = eval("# Unit economics\n\nCAC went up a lot.\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no table with a CAC column"), "{err}");
        let err = evaluate(
            "u.md",
            "| Month | CAC |\n|---|---|\n| Jan | $1 |\n",
            &BTreeMap::new(),
            &DecisionRules::default(),
        )
        .unwrap_err();
        assert_eq!(err, RuleError::NoCacTarget);
        let err = err.to_string();
        assert!(err.contains("Target CAC"), "{err}");

        let details = task_details(
            "analytics/unit-economics.md",
            Some("| Month | CAC |\n|---|---|\n| Jan | n/a |\n"),
            &targets(),
            &DecisionRules::default(),
        );
        assert_eq!(details.len(), 1);
        assert!(details[0].contains("recommends nothing"), "{details:?}");
        assert!(!details[0].contains("RESTART") && !details[0].contains("ITERATE"));
        let missing = task_details(
            "analytics/unit-economics.md",
            None,
            &targets(),
            &DecisionRules::default(),
        );
        assert!(missing[0].contains("missing"), "{missing:?}");
    }
}
