//! The guide's commit convention, `[agent] action: brief description`, as a
//! check (`gtmd check-commit-msg FILE`, usable as a git `commit-msg` hook) and
//! as the message gtmd writes when it commits a task's files (`--git`).
//!
//! Pure: text in, verdict out. Only the subject line is checked: git's `#`
//! comment lines and everything after its scissors line are dropped, leading
//! blank lines are skipped, and the body after the subject is free.

use crate::agents::{canonical_agent, short_name, AGENTS};
use crate::playbook::Playbook;

/// The guide's action words (its commit examples); the playbook's step
/// `action` fields are accepted too.
pub const GUIDE_ACTIONS: [&str; 7] = [
    "strategy",
    "messaging",
    "analysis",
    "campaign",
    "assets",
    "crm",
    "playbook",
];

/// Subjects git writes by itself; they pass unchecked.
const GIT_OWN: [&str; 5] = ["Merge ", "Revert ", "fixup! ", "squash! ", "amend! "];

/// The action words accepted: the guide's plus every step `action` of `playbook`,
/// sorted, without duplicates.
pub fn accepted_actions(playbook: &Playbook) -> Vec<String> {
    let mut v: Vec<String> = GUIDE_ACTIONS.iter().map(|s| s.to_string()).collect();
    v.extend(
        playbook
            .phases
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| s.action.clone())),
    );
    v.sort();
    v.dedup();
    v
}

/// The action word an agent's tasks use when the task is not a playbook step
/// (a conflict review, a decision applied): the guide's example for that agent.
pub fn default_action(agent: &str) -> &'static str {
    match canonical_agent(agent).unwrap_or("coordinator") {
        "brand-messaging" => "messaging",
        "growth-analyst" => "analysis",
        "demand-generation" => "campaign",
        "sales-enablement" => "assets",
        "pipeline-manager" => "crm",
        "customer-success" => "playbook",
        _ => "strategy",
    }
}

/// A message in the convention: `[demand-gen] campaign: <description>`, the
/// description on one line (whitespace squashed), never empty.
pub fn format_message(agent: &str, action: &str, description: &str) -> String {
    let agent = canonical_agent(agent).unwrap_or(agent);
    let mut desc = description.split_whitespace().collect::<Vec<_>>().join(" ");
    if desc.is_empty() {
        desc = "update".to_string();
    }
    if desc.chars().count() > 200 {
        desc = desc.chars().take(197).collect::<String>() + "...";
    }
    format!("[{}] {action}: {desc}", short_name(agent))
}

/// The subject line git would record: `#` lines and the scissors cut removed,
/// leading blank lines skipped. `None` for an empty message.
pub fn subject(text: &str) -> Option<&str> {
    for line in text.lines() {
        if line.starts_with("# ------------------------ >8 ------------------------") {
            return None;
        }
        if line.starts_with('#') {
            continue;
        }
        let t = line.trim_end();
        if t.trim().is_empty() {
            continue;
        }
        return Some(t);
    }
    None
}

/// What the convention accepts, for error messages.
fn accepted(actions: &[String]) -> String {
    format!(
        "expected `[agent] action: brief description`, e.g. `[demand-gen] campaign: create Google Ads search campaign`; \
         agents: {} (aliases: demand-gen, brand, pipeline, cs, growth); actions: {}",
        AGENTS.join(", "),
        actions.join(", ")
    )
}

/// A commit message that does not follow the convention. Its message says
/// what is wrong and, in `accepted`, every agent and action word accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitMsgError {
    #[error("the commit message is empty; {accepted}")]
    Empty { accepted: String },
    #[error("{problem} in {subject:?}; {accepted}")]
    Subject {
        problem: SubjectProblem,
        subject: String,
        accepted: String,
    },
}

/// What is wrong with a subject line, in the order it is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectProblem {
    #[error("the subject does not start with `[agent]`")]
    NoAgent,
    #[error("no `]` closes the agent name")]
    UnclosedAgent,
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    #[error("a space must follow `]`")]
    NoSpaceAfterAgent,
    #[error("no `action:` after the agent")]
    NoAction,
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error("the description after `action: ` is empty")]
    EmptyDescription,
}

/// Check a whole commit message (as git hands it to a `commit-msg` hook).
/// `Ok` with nothing to say, or `Err` with what is wrong and what is accepted.
pub fn check(text: &str, actions: &[String]) -> Result<(), CommitMsgError> {
    let Some(subject) = subject(text) else {
        return Err(CommitMsgError::Empty {
            accepted: accepted(actions),
        });
    };
    if GIT_OWN.iter().any(|p| subject.starts_with(p)) {
        return Ok(());
    }
    check_subject(subject, actions).map_err(|problem| CommitMsgError::Subject {
        problem,
        subject: subject.to_string(),
        accepted: accepted(actions),
    })
}

fn check_subject(subject: &str, actions: &[String]) -> Result<(), SubjectProblem> {
    let rest = subject.strip_prefix('[').ok_or(SubjectProblem::NoAgent)?;
    let (agent, rest) = rest.split_once(']').ok_or(SubjectProblem::UnclosedAgent)?;
    if canonical_agent(agent).is_none() || agent.trim() != agent || agent.is_empty() {
        return Err(SubjectProblem::UnknownAgent(agent.to_string()));
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or(SubjectProblem::NoSpaceAfterAgent)?;
    let (action, desc) = rest.split_once(':').ok_or(SubjectProblem::NoAction)?;
    if !actions.iter().any(|a| a == action) {
        return Err(SubjectProblem::UnknownAction(action.to_string()));
    }
    if !desc.starts_with(' ') || desc.trim().is_empty() {
        return Err(SubjectProblem::EmptyDescription);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions() -> Vec<String> {
        accepted_actions(&Playbook::default_playbook())
    }

    #[test]
    fn the_guides_examples_pass() {
        for m in [
            "[coordinator] strategy: define Q1 GTM strategy and budget allocation",
            "[demand-gen] campaign: create Google Ads search campaign for developer persona",
            "[sales-enablement] assets: build competitive battle cards for Competitor A and B",
            "[pipeline-manager] crm: define pipeline stages with entry/exit criteria",
            "[customer-success] playbook: design 14-day onboarding sequence",
            "[growth-analyst] analysis: build multi-touch attribution model specification",
            "[brand-messaging] messaging: create messaging hierarchy and persona variants",
            "[demand-generation] campaign: canonical names pass too",
        ] {
            assert_eq!(check(m, &actions()), Ok(()), "{m}");
        }
    }

    #[test]
    fn comments_leading_blanks_and_body_are_ignored() {
        let m = "\n# Please enter the commit message\n[cs] playbook: onboarding\n\nBody text: anything [at] all\n# comment\n";
        assert_eq!(check(m, &actions()), Ok(()));
        let cut = "[coordinator] strategy: x\n# ------------------------ >8 ------------------------\ndiff --git a b\n";
        assert_eq!(check(cut, &actions()), Ok(()));
    }

    #[test]
    fn gits_own_messages_pass() {
        for m in [
            "Merge branch 'gtm/phase-1-strategy'",
            "Revert \"[coordinator] strategy: x\"",
            "fixup! [coordinator] strategy: x",
        ] {
            assert_eq!(check(m, &actions()), Ok(()), "{m}");
        }
    }

    #[test]
    fn failures_say_what_is_wrong_and_what_is_accepted() {
        let cases = [
            ("", "empty"),
            ("# only a comment\n", "empty"),
            ("fix stuff", "does not start with `[agent]`"),
            ("[marketing] campaign: x", "unknown agent \"marketing\""),
            ("[demand-gen] campaigns: x", "unknown action \"campaigns\""),
            ("[demand-gen] campaign:", "description"),
            ("[demand-gen] campaign:   ", "description"),
            ("[demand-gen]campaign: x", "space"),
            ("[demand-gen] campaign x", "no `action:`"),
        ];
        for (m, want) in cases {
            let err = check(m, &actions()).unwrap_err().to_string();
            assert!(err.contains(want), "{m:?}: {err}");
            assert!(err.contains("[agent] action: brief description"), "{err}");
            assert!(err.contains("crm"), "{err}");
        }
    }

    #[test]
    fn gtmds_own_messages_pass_the_check() {
        let m = format_message(
            "demand-generation",
            "campaign",
            "  Google Ads\ncampaign design ",
        );
        assert_eq!(m, "[demand-gen] campaign: Google Ads campaign design");
        assert_eq!(check(&m, &actions()), Ok(()));
        assert_eq!(
            check(&format_message("coordinator", "strategy", ""), &actions()),
            Ok(())
        );
        assert_eq!(default_action("cs"), "playbook");
    }
}
