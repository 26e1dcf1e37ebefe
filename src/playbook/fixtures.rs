//! A small valid playbook that the tests of loading and validation break one
//! line at a time, and the helpers that parse the broken copy.

use super::parse_playbook;
use crate::diagnostic::Diagnostic;

/// A small valid playbook that tests break one line at a time.
pub const SMALL: &str = "\
default_timeout_secs: 60
default_retries: 1
phases:
  - number: 1
    name: strategy
    title: Strategy
    steps:
      - id: a
        agent: coordinator
        title: Do a
        estimate_minutes: 5
        action: strategy
        outputs: [strategy/a.md]
      - id: b
        agent: brand
        title: Do b
        estimate_minutes: 5
        action: messaging
        depends_on: [a]
        inputs:
          - strategy/a.md
        outputs:
          - messaging/b.md
    gate:
      checklist: [ok]
      checks:
        - kind: outputs-exist
        - kind: budget-sums
          file: strategy/a.md
  - number: 2
    name: build
    title: Build
    steps:
      - id: c
        agent: cs
        title: Do c
        estimate_minutes: 5
        action: playbook
    gate:
      checklist: []
routes:
  - path: messaging/b.md
    to: demand-gen
    purpose: use it
    kind: trigger
scenarios:
  - name: launch
    required_phases: [1, 2]
";

/// Replace the one occurrence of `from` in SMALL, parse, and return the errors.
pub fn errors_with(from: &str, to: &str) -> Vec<Diagnostic> {
    assert_eq!(SMALL.matches(from).count(), 1, "`{from}` must occur once");
    let text = SMALL.replace(from, to);
    match parse_playbook("pb.yaml", &text) {
        Ok(_) => panic!("expected errors for {from:?} → {to:?}"),
        Err(errs) => errs,
    }
}

pub fn one_error(from: &str, to: &str) -> Diagnostic {
    let errs = errors_with(from, to);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}
