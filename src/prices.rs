//! The price table a team keeps: dollars per million tokens, per model, for
//! runtimes that report tokens and not dollars (Codex). gtmd ships no
//! prices: they change, differ by account and provider, and a guessed price
//! would make a cost cap lie. A model missing from the table shows its
//! tokens and "price unknown", and a run with `--max-cost` refuses to start.
//!
//! `prices.yaml` beside `agents/` (or `--prices FILE`):
//!
//! ```yaml
//! gpt-5.5:
//!   input: 1.25          # USD per million input tokens, not cached
//!   cached_input: 0.125  # USD per million cached input tokens
//!   output: 10.00        # USD per million output tokens (reasoning included)
//! ```
//!
//! Read once with the agents, refused with `path:line` errors like them.

use crate::diagnostic::Diagnostic;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One model's prices, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub cached_input: f64,
    pub output: f64,
}

impl Price {
    /// What the tokens cost: `input` is the uncached input only.
    pub fn usd(&self, input: u64, cached_input: u64, output: u64) -> f64 {
        (input as f64 * self.input
            + cached_input as f64 * self.cached_input
            + output as f64 * self.output)
            / 1_000_000.0
    }
}

/// The table, by model name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    models: BTreeMap<String, Price>,
    /// Where it was read from, for messages (`None`: no file).
    pub path: Option<String>,
}

const FIELDS: [&str; 3] = ["input", "cached_input", "output"];

const SHAPE: &str = "each model is a key with `input`, `cached_input` and `output`: USD per million tokens, like\n  gpt-5.5:\n    input: 1.25\n    cached_input: 0.125\n    output: 10.00";

impl Prices {
    pub fn get(&self, model: &str) -> Option<Price> {
        self.models.get(model).copied()
    }

    /// The file at `path`. A missing file is an empty table when it is the
    /// default place (`given` false), an error when it was named.
    pub fn load(path: &Path, given: bool, max_size: u64) -> Result<Prices, Vec<Diagnostic>> {
        let name = path.display().to_string();
        let bytes = match crate::input::read_bounded(path, max_size) {
            Ok(b) => b,
            Err(_) if !given && !path.exists() => return Ok(Prices::default()),
            Err(e) => {
                return Err(vec![Diagnostic::new(
                    name,
                    None,
                    format!("the price table {e}"),
                )])
            }
        };
        let text = String::from_utf8(bytes).map_err(|_| {
            vec![Diagnostic::new(
                &name,
                None,
                "the price table is not UTF-8 text",
            )]
        })?;
        Prices::parse(&name, &text)
    }

    /// A table's text; `path` names it in messages.
    pub fn parse(path: &str, text: &str) -> Result<Prices, Vec<Diagnostic>> {
        let value: Value = serde_yaml::from_str(text).map_err(|e| {
            vec![Diagnostic::new(
                path,
                e.location().map(|l| l.line()),
                format!("not valid YAML: {e}"),
            )]
        })?;
        let map = match value {
            Value::Null => return Ok(Prices::at(path)),
            Value::Mapping(m) => m,
            _ => return Err(vec![Diagnostic::new(path, Some(1), SHAPE)]),
        };
        let mut errors = Vec::new();
        let mut prices = Prices::at(path);
        for (key, entry) in &map {
            let Some(model) = key.as_str().map(str::trim).filter(|m| !m.is_empty()) else {
                errors.push(Diagnostic::new(
                    path,
                    None,
                    format!("a model name must be text; {SHAPE}"),
                ));
                continue;
            };
            let line = key_line(text, model);
            match price(entry) {
                Ok(p) => {
                    prices.models.insert(model.to_string(), p);
                }
                Err(m) => errors.push(Diagnostic::new(path, line, format!("`{model}`: {m}"))),
            }
        }
        if errors.is_empty() {
            Ok(prices)
        } else {
            Err(errors)
        }
    }

    fn at(path: &str) -> Prices {
        Prices {
            models: BTreeMap::new(),
            path: Some(path.to_string()),
        }
    }
}

/// One model's entry: exactly the three prices, each a number of dollars
/// of zero or more.
fn price(entry: &Value) -> Result<Price, String> {
    let Value::Mapping(m) = entry else {
        return Err(SHAPE.into());
    };
    if let Some(k) = m
        .keys()
        .find(|k| !k.as_str().is_some_and(|k| FIELDS.contains(&k)))
    {
        return Err(format!(
            "unknown key {}: {SHAPE}",
            serde_yaml::to_string(k).unwrap_or_default().trim()
        ));
    }
    let get = |field: &str| -> Result<f64, String> {
        let v = m
            .get(field)
            .ok_or_else(|| format!("`{field}` is missing: {SHAPE}"))?;
        match v.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
            _ => Err(format!(
                "`{field}` is {}: expected a number of dollars per million tokens, 0 or more",
                serde_yaml::to_string(v).unwrap_or_default().trim()
            )),
        }
    };
    Ok(Price {
        input: get("input")?,
        cached_input: get("cached_input")?,
        output: get("output")?,
    })
}

/// The line of a top-level key (`gpt-5.5:`, quoted or not).
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_end();
            [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
                .iter()
                .any(|k| {
                    l.strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with(':'))
                })
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_prices_uncached_cached_and_output_tokens() {
        let p = Prices::parse(
            "prices.yaml",
            "# comment\ngpt-5.5:\n  input: 2\n  cached_input: 0.5\n  output: 8\n\"o9\":\n  input: 0\n  cached_input: 0\n  output: 0\n",
        )
        .unwrap();
        let g = p.get("gpt-5.5").unwrap();
        assert!((g.usd(1_000_000, 2_000_000, 500_000) - (2.0 + 1.0 + 4.0)).abs() < 1e-12);
        assert_eq!(p.get("o9").unwrap().usd(10, 10, 10), 0.0);
        assert_eq!(p.get("gpt-4"), None);
    }

    #[test]
    fn an_empty_or_commented_table_has_no_prices() {
        assert_eq!(
            Prices::parse("p.yaml", "# gpt-5.5:\n#   input: 1\n")
                .unwrap()
                .get("gpt-5.5"),
            None
        );
        let missing = Path::new("/nonexistent/prices.yaml");
        assert_eq!(Prices::load(missing, false, 1 << 20).unwrap().path, None);
        let err = Prices::load(missing, true, 1 << 20).unwrap_err();
        assert!(
            err[0].to_string().starts_with("/nonexistent/prices.yaml"),
            "{}",
            err[0]
        );
    }

    #[test]
    fn each_wrong_entry_is_refused_at_its_line() {
        let errs = Prices::parse(
            "prices.yaml",
            "gpt-5.5:\n  input: 1\n  output: 2\nmodel-b:\n  input: -1\n  cached_input: 0\n  output: 1\nmodel-c:\n  input: 1\n  cached_input: 1\n  output: 1\n  currency: EUR\nmodel-d: 3\n",
        )
        .unwrap_err();
        let got: Vec<(Option<usize>, String)> =
            errs.iter().map(|d| (d.line, d.message.clone())).collect();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(got[0].0, Some(1));
        assert!(
            got[0].1.contains("`cached_input` is missing"),
            "{}",
            got[0].1
        );
        assert_eq!(got[1].0, Some(4));
        assert!(got[1].1.contains("`input` is -1"), "{}", got[1].1);
        assert_eq!(got[2].0, Some(8));
        assert!(got[2].1.contains("unknown key currency"), "{}", got[2].1);
        assert_eq!(got[3].0, Some(13));
        let yaml = Prices::parse("prices.yaml", "a: [b\n").unwrap_err();
        assert!(yaml[0].message.starts_with("not valid YAML"), "{}", yaml[0]);
    }
}
