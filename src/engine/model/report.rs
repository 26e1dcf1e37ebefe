//! What an agent's runtime reports of a task when its process ends: what it
//! cost (dollars, tokens, turns), the session a retry can resume, the writes
//! the runtime denied, and an API error and whether it is worth retrying.
//!
//! It travels in the journal with the task's exit ([`super::Event::TaskExited`]),
//! so a replay counts the same dollars as the live daemon did and the cost
//! caps are engine rules like any other.

use serde::{Deserialize, Serialize};

/// What a task cost, as its runtime reported it (or gtmd priced the tokens
/// it reported). The field names are those of `gtmd status --json`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cost {
    pub usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    pub turns: u64,
    /// Some of the tokens have no price gtmd knows (a model missing from
    /// the price table): `usd` counts only the priced ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub price_unknown: bool,
}

impl Cost {
    pub fn add(&mut self, other: &Cost) {
        self.usd += other.usd;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_creation_tokens += other.cache_creation_tokens;
        self.turns += other.turns;
        self.price_unknown |= other.price_unknown;
    }

    /// Every token reported, in and out: what `--max-tokens` counts.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens + self.output_tokens
    }

    /// `$0.0123`, `price unknown`, or `$0.0123 + price unknown` when only
    /// some of the tokens could be priced.
    pub fn money(&self) -> String {
        match (self.price_unknown, self.usd > 0.0) {
            (false, _) => format!("${:.4}", self.usd),
            (true, false) => "price unknown".into(),
            (true, true) => format!("${:.4} + price unknown", self.usd),
        }
    }

    /// The sum of the costs that were reported; `None` when none was.
    pub fn total<'a>(costs: impl IntoIterator<Item = &'a Option<Cost>>) -> Option<Cost> {
        costs.into_iter().flatten().fold(None, |sum, c| {
            let mut sum = sum.unwrap_or_default();
            sum.add(c);
            Some(sum)
        })
    }

    /// A table cell: the dollars, with the tokens when some have no price.
    pub fn cell(&self) -> String {
        if self.price_unknown {
            format!("{} ({} tokens)", self.money(), self.tokens())
        } else {
            self.money()
        }
    }

    /// `$0.0123, 1,234 tokens in / 567 out`, for people.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} tokens in / {} out",
            self.money(),
            self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens,
            self.output_tokens
        )
    }
}

/// A write (or another tool use) the runtime refused because the agent does
/// not own its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub tool: String,
    /// The file it was about, workspace-relative when it lies inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Denial {
    pub fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("{} {p}", self.tool),
            None => self.tool.clone(),
        }
    }
}

/// An error of the model's API that ended the task's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ApiError {
    /// Rate limited, overloaded, a server error: try again later, without
    /// using up the agent's retries.
    Transient {
        status: Option<u16>,
        message: String,
    },
    /// Authentication, a bad request: trying again cannot help.
    Fatal {
        status: Option<u16>,
        message: String,
    },
}

impl ApiError {
    /// An API error by its HTTP status: 429, 529 and 5xx pass, the rest
    /// (401, 403, 400, 404, ...) do not.
    pub fn of_status(status: Option<u16>, message: String) -> ApiError {
        match status {
            Some(429 | 529) | Some(500..=599) | None => ApiError::Transient { status, message },
            Some(_) => ApiError::Fatal { status, message },
        }
    }

    pub fn describe(&self) -> String {
        let (status, message) = match self {
            ApiError::Transient { status, message } | ApiError::Fatal { status, message } => {
                (status, message)
            }
        };
        match status {
            Some(s) => format!("API error {s}: {message}"),
            None => format!("API error: {message}"),
        }
    }
}

/// Everything a runtime reported of one attempt of a task.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuntimeReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// The runtime's session, for a retry to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denials: Vec<Denial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// The runtime stopped the task at the spending limit it was given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_budget: bool,
    /// Files the task wrote that its agent does not own (workspace-relative
    /// when inside), from the runtime's own account of its writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unowned_writes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_that_pass_are_retried_and_the_rest_fail_at_once() {
        for s in [429, 529, 500, 503] {
            assert!(matches!(
                ApiError::of_status(Some(s), "x".into()),
                ApiError::Transient { .. }
            ));
        }
        for s in [400, 401, 403, 404] {
            assert!(matches!(
                ApiError::of_status(Some(s), "x".into()),
                ApiError::Fatal { .. }
            ));
        }
    }

    #[test]
    fn costs_add_up_and_none_reported_is_none() {
        let c = |usd| {
            Some(Cost {
                usd,
                input_tokens: 10,
                output_tokens: 2,
                turns: 1,
                ..Cost::default()
            })
        };
        let total = Cost::total(&[c(0.01), None, c(0.02)]).unwrap();
        assert!((total.usd - 0.03).abs() < 1e-12);
        assert_eq!(
            (total.input_tokens, total.output_tokens, total.turns),
            (20, 4, 2)
        );
        assert_eq!(Cost::total(&[None, None]), None);
    }
}
