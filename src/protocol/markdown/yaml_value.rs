//! Parsing YAML into a value, safely, with errors on the file's line.
//!
//! The value is built by [`ValueSeed`], like serde_yaml's own but charging
//! every node against a budget proportional to the text, so aliases cannot
//! make it expand without bound, and refusing duplicate keys (serde_yaml's
//! `Value` would keep the last silently). serde_yaml's messages become ones
//! that say what to write instead.

use super::yaml_prescan::{
    count_anchors_and_aliases, flow_depth, MAX_YAML_ANCHORS_AND_ALIASES, MAX_YAML_FLOW_DEPTH,
};
use super::{key_lines, YamlBlock};
use crate::diagnostic::Diagnostic;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_yaml::value::{Tag as YamlTag, TaggedValue};
use serde_yaml::{Mapping, Value};
use std::cell::Cell;
use std::fmt;

/// Parses YAML text into a value, mapping errors to the file's line
/// (`block.first_line + location.line - 1`).
///
/// Alias bombs are refused without expanding them: more than
/// [`MAX_YAML_ANCHORS_AND_ALIASES`] anchors and aliases is refused up front, and
/// the value is built against a budget proportional to the text, so memory
/// and time stay bounded whatever the aliases expand to.
pub fn parse_yaml_value(path: &str, block: &YamlBlock) -> Result<Value, Diagnostic> {
    let anchors = count_anchors_and_aliases(&block.text);
    if anchors > MAX_YAML_ANCHORS_AND_ALIASES {
        return Err(Diagnostic::new(
            path,
            Some(block.first_line),
            format!(
                "YAML uses {anchors} anchors/aliases (&name, *name), more than the {MAX_YAML_ANCHORS_AND_ALIASES} \
                 accepted (a guard against alias bombs); write the values out in full instead"
            ),
        ));
    }
    let depth = flow_depth(&block.text);
    if depth > MAX_YAML_FLOW_DEPTH {
        return Err(Diagnostic::new(
            path,
            Some(block.first_line),
            format!(
                "YAML nests [ ] or {{ }} {depth} deep, more than the {MAX_YAML_FLOW_DEPTH} accepted; \
                 use a flat mapping of `key: value` lines"
            ),
        ));
    }
    let budget = Cell::new(10_000 + block.text.len());
    let seed = ValueSeed { budget: &budget };
    match seed.deserialize(serde_yaml::Deserializer::from_str(&block.text)) {
        Ok(v) => Ok(v),
        Err(e) => Err(yaml_error(path, block, &e)),
    }
}

const BUDGET_EXCEEDED: &str = "gtmd: YAML expands past its size budget";
const DUPLICATE: &str = "gtmd: duplicate key `";

fn duplicate_key(raw: &str) -> Option<String> {
    let start = raw.find(DUPLICATE)? + DUPLICATE.len();
    let len = raw[start..].find('`')?;
    Some(raw[start..start + len].to_string())
}

/// A serde_yaml error as a Diagnostic on the file's line.
pub fn yaml_error(path: &str, block: &YamlBlock, e: &serde_yaml::Error) -> Diagnostic {
    let line = e
        .location()
        .map(|l| block.first_line + l.line().max(1) - 1)
        .unwrap_or(block.first_line);
    let raw = e.to_string();
    let message = if raw.contains(BUDGET_EXCEEDED) || raw.contains("repetition limit exceeded") {
        "YAML aliases expand to far more data than the file holds (an alias bomb); \
         refused: write the values out in full instead of repeating anchors"
            .to_string()
    } else if raw.contains("recursion limit exceeded") {
        "YAML is nested too deeply (more than 128 levels); \
         use a flat mapping of `key: value` lines"
            .to_string()
    } else if let Some(key) = duplicate_key(&raw) {
        let second = key_lines(block, &key).get(1).copied();
        return Diagnostic::new(
            path,
            second.or(Some(line)),
            format!("key `{key}` appears twice in the YAML; keep one `{key}:` line"),
        );
    } else if raw.contains("more than one document") {
        "YAML holds more than one document (a second `---`); \
         expected a single mapping of `key: value` lines"
            .to_string()
    } else {
        format!(
            "invalid YAML: {}; expected `key: value` lines with consistent indentation and closed quotes",
            strip_position(&raw)
        )
    };
    Diagnostic::new(path, Some(line), message)
}

/// Removes serde_yaml's " at line N column M" so the Diagnostic's own line is
/// the only one shown.
fn strip_position(msg: &str) -> String {
    let mut out = msg.to_string();
    while let Some(i) = out.find(" at line ") {
        let rest = &out[i + " at line ".len()..];
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let rest2 = &rest[digits..];
        let cut = if let Some(col) = rest2.strip_prefix(" column ") {
            digits + " column ".len() + col.chars().take_while(|c| c.is_ascii_digit()).count()
        } else {
            digits
        };
        if digits == 0 {
            break;
        }
        out.replace_range(i..i + " at line ".len() + cut, "");
    }
    out
}

/// Builds a [`Value`] like serde_yaml's own, but charges every node (and every
/// 16 bytes of string) against a budget, so aliases cannot blow it up.
struct ValueSeed<'b> {
    budget: &'b Cell<usize>,
}

impl ValueSeed<'_> {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let cost = 1 + bytes / 16;
        let left = self.budget.get();
        if left < cost {
            return Err(E::custom(BUDGET_EXCEEDED));
        }
        self.budget.set(left - cost);
        Ok(())
    }
    fn again(&self) -> ValueSeed<'_> {
        ValueSeed {
            budget: self.budget,
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) => self.visit_f64(v as f64),
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => self.visit_f64(v as f64),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self.again())? {
            items.push(v);
        }
        Ok(Value::Sequence(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut m = Mapping::new();
        while let Some(k) = map.next_key_seed(self.again())? {
            let v = map.next_value_seed(self.again())?;
            if m.contains_key(&k) {
                let name = match &k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                return Err(de::Error::custom(format!("{DUPLICATE}{name}`")));
            }
            m.insert(k, v);
        }
        Ok(Value::Mapping(m))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let (tag, variant): (String, _) = data.variant()?;
        let value = de::VariantAccess::newtype_variant_seed(variant, self.again())?;
        Ok(Value::Tagged(Box::new(TaggedValue {
            tag: YamlTag::new(tag),
            value,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::markdown::extract_yaml;

    #[test]
    fn yaml_errors_carry_the_file_line() {
        let text = "# S\n\n```yaml\nagent: cs\nstatus: [complete\n```\n";
        let y = extract_yaml(text).unwrap();
        let err = parse_yaml_value("status/cs.md", &y).unwrap_err();
        assert_eq!(err.path, "status/cs.md");
        let line = err.line.unwrap();
        assert!((5..=6).contains(&line), "line {line}: {err}");
        assert!(err.message.contains("invalid YAML"), "{err}");
        assert!(!err.message.contains("at line"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let y = YamlBlock {
            text: "a: 1\na: 2\n".into(),
            first_line: 3,
        };
        let err = parse_yaml_value("f.md", &y).unwrap_err();
        assert_eq!(
            err.message,
            "key `a` appears twice in the YAML; keep one `a:` line"
        );
        assert_eq!(err.line, Some(4));
    }

    #[test]
    fn tags_and_numbers_round_trip() {
        let y = YamlBlock {
            text: "a: !thing 3\nb: 2.5\nc: ~\nd: [1, x]\nbig: 99999999999999999999999\n".into(),
            first_line: 1,
        };
        let v = parse_yaml_value("f", &y).unwrap();
        assert!(matches!(v["a"], Value::Tagged(_)));
        assert_eq!(v["b"].as_f64(), Some(2.5));
        assert!(v["c"].is_null());
        assert_eq!(v["d"][1].as_str(), Some("x"));
    }

    fn bomb(levels: usize, fanout: usize) -> String {
        let mut s = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..=levels {
            let refs = vec![format!("*a{}", i - 1); fanout].join(", ");
            s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        s
    }

    #[test]
    fn billion_laughs_with_many_aliases_is_refused_up_front() {
        let y = YamlBlock {
            text: bomb(10, 10),
            first_line: 2,
        };
        let t = std::time::Instant::now();
        let err = parse_yaml_value("status/cs.md", &y).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(err.message.contains("anchors/aliases"), "{err}");
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn billion_laughs_under_the_alias_count_is_stopped_by_the_budget() {
        // 9 levels of 9 aliases: 81 aliases + 10 anchors, 9^9 strings if expanded.
        let y = YamlBlock {
            text: bomb(9, 9),
            first_line: 1,
        };
        assert!(count_anchors_and_aliases(&y.text) <= MAX_YAML_ANCHORS_AND_ALIASES);
        let t = std::time::Instant::now();
        let err = parse_yaml_value("status/cs.md", &y).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(err.message.contains("alias bomb"), "{err}");
    }

    #[test]
    fn big_anchored_string_repeated_is_bounded() {
        let big = "x".repeat(200_000);
        let mut text = format!("a: &a \"{big}\"\nb: [");
        text.push_str(&vec!["*a"; 90].join(", "));
        text.push_str("]\n");
        let y = YamlBlock {
            text,
            first_line: 1,
        };
        let err = parse_yaml_value("f", &y).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{err}");
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let y = YamlBlock {
            text: "base: &b {x: 1}\nother: *b\nlist: [*b, *b]\n".into(),
            first_line: 1,
        };
        let v = parse_yaml_value("f", &y).unwrap();
        assert_eq!(v["list"][1]["x"].as_i64(), Some(1));
    }

    #[test]
    fn deep_flow_nesting_is_refused_quickly() {
        // libyaml is quadratic in flow depth: this would take about a minute.
        let text = format!("a: {}", "{a: ".repeat(100_000));
        let y = YamlBlock {
            text,
            first_line: 3,
        };
        let t = std::time::Instant::now();
        let err = parse_yaml_value("f", &y).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(
            err.message.contains("nests [ ] or { } 100000 deep"),
            "{err}"
        );
        assert_eq!(err.line, Some(3));
        assert_eq!(
            flow_depth("a: \"[[[[\"\nb: [x, {y: [1]}] # [[[[\nc: a[b\n"),
            3
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        // Block sequences nested 500 deep, under the flow-depth guard.
        let text = format!("a:\n  {}x\n", "- ".repeat(500));
        let y = YamlBlock {
            text,
            first_line: 1,
        };
        let err = parse_yaml_value("f", &y).unwrap_err();
        assert!(err.message.contains("nested too deeply"), "{err}");
    }

    #[test]
    fn strip_position_removes_locations() {
        assert_eq!(
            strip_position("did not find expected node content at line 2 column 5, while parsing a flow node at line 2 column 4"),
            "did not find expected node content, while parsing a flow node"
        );
    }
}
