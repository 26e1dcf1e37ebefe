//! Persona-specific variants exist for each persona: every persona of the
//! personas directory is named in the messaging files that should hold its
//! variant, by its heading, that without a parenthetical, or its file name.

use super::words::normalize;
use super::{files_under, is_readme, CheckResult, WorkspaceView};
use crate::protocol::markdown::sections;

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

/// Every persona of `personas_dir` is named in the variant `files` (a
/// path ending in `/` is every file under it).
pub(super) fn persona_variants(
    personas_dir: &str,
    files: &[String],
    view: &dyn WorkspaceView,
) -> CheckResult {
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
    let (corpus, read) = read_variants(files, view);
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

/// The text of the variant files that exist, one after the other, and
/// their paths.
fn read_variants(files: &[String], view: &dyn WorkspaceView) -> (String, Vec<String>) {
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
    (corpus, read)
}

#[cfg(test)]
mod tests {
    use crate::gate_checks::test_support::*;
    use crate::playbook::AutoCheck;

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
}
