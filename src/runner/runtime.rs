//! What to run for a task: a runtime turns a task into the process that
//! does it (its argv and the environment it adds). The runner stays the
//! same whatever the runtime; where the process runs is the backend's
//! business ([`super::local`]).
//!
//! The one runtime today is the plain command of the contract: an argv
//! template with placeholders, substituted inside single arguments, never
//! through a shell. Every value that comes from files is bounded (Linux
//! refuses one string over 128 KiB and argv plus environment over about
//! 2 MiB), and the prompt and context files hold them whole. Agent CLIs with
//! their own flags, output streams and permission rules (Claude Code,
//! Codex) are runtimes of their own beside it.

use super::{StartError, TaskFiles};
use crate::agents::AgentDef;
use crate::engine::TaskSpec;
use crate::os::spawn::{find_on_path, is_executable};
use std::path::Path;

/// Longest value gtmd passes as one argument or environment variable (the
/// task text, the trigger, the context list, ...). Longer ones are cut with
/// a note naming the file that holds them whole.
pub const MAX_VALUE: usize = 16 * 1024;
/// Longest argument once its placeholders are filled in (MAX_ARG_STRLEN is
/// 128 KiB with its NUL).
const MAX_ARG: usize = 128 * 1024 - 1;
/// What gtmd puts in argv and the environment in all, leaving room under
/// ARG_MAX for the environment the agent inherits.
pub(super) const MAX_TOTAL: usize = 1024 * 1024;

/// Everything a runtime may use to build a task's process.
pub struct TaskContext<'a> {
    pub spec: &'a TaskSpec,
    pub agent: Option<&'a AgentDef>,
    pub workspace: &'a Path,
    pub files: &'a TaskFiles,
    /// The whole prompt, as `files.prompt` holds it.
    pub prompt: &'a str,
}

/// An agent CLI's program: how it is named, found and installed, for
/// [`find_program`] and its messages.
pub struct Program {
    /// Its name on the PATH (`claude`, `codex`).
    pub name: &'static str,
    /// The environment variable that names it (`GTMD_CLAUDE_BIN`).
    pub env: &'static str,
    /// The agent file's key that names it (`claude_bin`).
    pub key: &'static str,
    /// How to install it (`npm install -g …`).
    pub install: &'static str,
    /// What it is called in messages (`the Claude Code CLI`).
    pub what: &'static str,
}

/// Where a runtime's program is: the agent file's key, else the
/// environment variable, else the PATH; or why it is not there.
pub fn find_program(p: &Program, agent_bin: Option<&str>) -> Result<std::path::PathBuf, String> {
    use std::path::PathBuf;
    let given = agent_bin.map(|b| (PathBuf::from(b), p.key)).or_else(|| {
        std::env::var_os(p.env)
            .filter(|b| !b.is_empty())
            .map(|b| (PathBuf::from(b), p.env))
    });
    if let Some((bin, from)) = given {
        return if is_executable(&bin) {
            Ok(bin)
        } else {
            Err(format!(
                "{from} names {}, which is not an executable file; install the CLI with `{}` and give the path of its `{}`",
                bin.display(),
                p.install,
                p.name
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_on_path(p.name.as_ref(), &path, Path::new(""))
        .map_err(|_| {
            format!(
                "{} (`{}`) is not on the PATH; install it with `{}`, or give its path with `{}:` in the agent file or {}",
                p.what, p.name, p.install, p.key, p.env
            )
        })
}

/// A process to start: its argv (program first) and the environment gtmd
/// gives it on top of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub env: Vec<(&'static str, String)>,
}

/// What to run for a task.
pub trait Runtime: Send {
    fn process(&self, task: &TaskContext<'_>) -> Result<ProcessSpec, StartError>;

    /// What reads the process's output as it streams, line by line, into
    /// what the runtime reports of the task (cost, session, denials,
    /// errors). A plain command reports nothing.
    fn reader(&self, _task: &TaskContext<'_>) -> Option<Box<dyn StreamReader>> {
        None
    }
}

/// Reads a task's output, one line at a time as it arrives (a task may run
/// an hour: nothing is kept but what the report needs), into its report.
pub trait StreamReader: Send {
    fn line(&mut self, line: &[u8]);
    fn finish(self: Box<Self>) -> Option<crate::engine::RuntimeReport>;
}

/// The contract's plain command: an argv template, `--agent-command` or an
/// agent's `command:`.
#[derive(Debug, Clone)]
pub struct PlainCommand {
    pub template: Vec<String>,
}

impl Runtime for PlainCommand {
    fn process(&self, task: &TaskContext<'_>) -> Result<ProcessSpec, StartError> {
        let argv = expand_argv(
            &self.template,
            &placeholders(task.spec, task.workspace, task.files),
        );
        let env = task_env(task.spec, task.workspace, task.files);
        check_arg_sizes(&argv, &env)?;
        if argv.is_empty() {
            return Err(StartError::EmptyCommand);
        }
        Ok(ProcessSpec { argv, env })
    }
}

/// The contract's placeholders and their values, each at most
/// [`MAX_VALUE`] bytes (the prompt file holds the task text whole).
pub fn placeholders(
    spec: &TaskSpec,
    workspace: &Path,
    files: &TaskFiles,
) -> Vec<(&'static str, String)> {
    let cut = |s: &str| bounded(s, files).into_owned();
    vec![
        ("agent", cut(&spec.agent)),
        ("task", cut(&spec.text)),
        ("task_id", cut(&spec.id)),
        (
            "phase",
            spec.phase.map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("step", cut(spec.step.as_deref().unwrap_or_default())),
        ("workspace", workspace.display().to_string()),
        ("prompt_file", files.prompt.display().to_string()),
        ("trigger", cut(&spec.trigger)),
    ]
}

/// A value from files for argv or the environment: at most [`MAX_VALUE`]
/// bytes, the cut saying where the whole text is.
pub(super) fn bounded<'a>(s: &'a str, files: &TaskFiles) -> std::borrow::Cow<'a, str> {
    crate::bounds::truncate(
        s,
        MAX_VALUE,
        &format!(" … [truncated; full text in {}]", files.prompt.display()),
    )
}

/// A list, one item a line, in at most [`MAX_VALUE`] bytes: whole lines
/// only, then how many more there are and the file that lists them all.
fn bounded_lines(items: &[String], file: &Path) -> String {
    let whole = items.join("\n");
    if whole.len() <= MAX_VALUE {
        return whole;
    }
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let note = format!(
            "… [{} more; full list in {}]",
            items.len() - i,
            file.display()
        );
        if out.len() + item.len() + 1 + note.len() > MAX_VALUE {
            out.push_str(&note);
            return crate::bounds::truncate(&out, MAX_VALUE, "").into_owned();
        }
        out.push_str(item);
        out.push('\n');
    }
    whole
}

/// Refuse to start a process the kernel would refuse (E2BIG) with a message
/// that says why: a template repeating `{task}` many times, say.
pub(super) fn check_arg_sizes(argv: &[String], env: &[(&str, String)]) -> Result<(), StartError> {
    if let Some(a) = argv.iter().find(|a| a.len() > MAX_ARG) {
        return Err(StartError::ArgTooLong { len: a.len() });
    }
    let total: usize = argv.iter().map(|a| a.len() + 1).sum::<usize>()
        + env
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>();
    if total > MAX_TOTAL {
        return Err(StartError::ArgsTooLong { total });
    }
    Ok(())
}

/// Substitute the placeholders inside each argument. One pass, so text that
/// a placeholder brings in is never expanded again.
pub fn expand_argv(template: &[String], values: &[(&str, String)]) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            'scan: while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let after = &rest[open + 1..];
                for (name, value) in values {
                    if let Some(tail) = after.strip_prefix(name).and_then(|t| t.strip_prefix('}')) {
                        out.push_str(value);
                        rest = tail;
                        continue 'scan;
                    }
                }
                out.push('{');
                rest = after;
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// The contract's environment for an agent process, each value at most
/// [`MAX_VALUE`] bytes; the files named by `GTMD_PROMPT_FILE` and
/// `GTMD_CONTEXT_FILE` hold what was cut.
pub fn task_env(
    spec: &TaskSpec,
    workspace: &Path,
    files: &TaskFiles,
) -> Vec<(&'static str, String)> {
    let cut = |s: &str| bounded(s, files).into_owned();
    vec![
        ("GTMD_AGENT", cut(&spec.agent)),
        ("GTMD_TASK", cut(&spec.text)),
        ("GTMD_TASK_ID", cut(&spec.id)),
        (
            "GTMD_PHASE",
            spec.phase.map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("GTMD_STEP", cut(spec.step.as_deref().unwrap_or_default())),
        ("GTMD_WORKSPACE", workspace.display().to_string()),
        ("GTMD_TRIGGER", cut(&spec.trigger)),
        ("GTMD_OUTPUTS", bounded_lines(&spec.outputs, &files.prompt)),
        ("GTMD_CONTEXT", bounded_lines(&spec.context, &files.context)),
        ("GTMD_PROMPT_FILE", files.prompt.display().to_string()),
        ("GTMD_CONTEXT_FILE", files.context.display().to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str, context: Vec<String>) -> TaskSpec {
        TaskSpec {
            id: "t0001-conflict-review".into(),
            agent: "coordinator".into(),
            run: None,
            phase: None,
            phase_name: None,
            step: None,
            text: text.into(),
            trigger: "conflict: conflicts/x.md".into(),
            inputs: vec![],
            outputs: vec![],
            details: vec![],
            context,
            attempt: 1,
            business_context: String::new(),
            budget_usd: None,
            resume: None,
        }
    }

    fn files() -> TaskFiles {
        TaskFiles {
            prompt: "/state/tasks/t0001-conflict-review.md".into(),
            context: "/state/tasks/t0001-conflict-review.context".into(),
        }
    }

    #[test]
    fn argv_and_environment_values_are_bounded_and_name_the_file_with_the_rest() {
        let context: Vec<String> = (0..10_000)
            .map(|i| format!("learnings/lesson-{i:05}.md"))
            .collect();
        let text = "é".repeat(1_000_000);
        let s = spec(&text, context.clone());
        let env = task_env(&s, Path::new("/ws"), &files());
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        let task = get("GTMD_TASK");
        assert!(task.len() <= MAX_VALUE, "{}", task.len());
        assert!(
            task.ends_with(" … [truncated; full text in /state/tasks/t0001-conflict-review.md]")
        );
        let listed = get("GTMD_CONTEXT");
        assert!(listed.len() <= MAX_VALUE, "{}", listed.len());
        let lines: Vec<&str> = listed.lines().collect();
        let (note, paths) = lines.split_last().unwrap();
        assert_eq!(paths, &context[..paths.len()], "whole lines, in order");
        assert_eq!(
            *note,
            format!(
                "… [{} more; full list in /state/tasks/t0001-conflict-review.context]",
                10_000 - paths.len()
            )
        );
        assert_eq!(
            get("GTMD_CONTEXT_FILE"),
            "/state/tasks/t0001-conflict-review.context"
        );
        let total: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        assert!(total < 12 * MAX_VALUE, "{total}");

        let argv = expand_argv(
            &["agent".into(), "{task}".into(), "--why={trigger}".into()],
            &placeholders(&s, Path::new("/ws"), &files()),
        );
        assert_eq!(argv[1], task);
        assert_eq!(argv[2], "--why=conflict: conflicts/x.md");
        check_arg_sizes(&argv, &env).unwrap();

        // Small values pass unchanged.
        let s = spec(
            "Review it",
            vec!["learnings/a.md".into(), "learnings/b.md".into()],
        );
        let env = task_env(&s, Path::new("/ws"), &files());
        assert!(env.contains(&("GTMD_TASK", "Review it".into())));
        assert!(env.contains(&("GTMD_CONTEXT", "learnings/a.md\nlearnings/b.md".into())));
    }

    #[test]
    fn a_template_that_would_overflow_argv_is_refused_saying_why() {
        let s = spec(&"x".repeat(100_000), vec![]);
        let values = placeholders(&s, Path::new("/ws"), &files());
        let argv = expand_argv(&["agent".into(), "{task}".repeat(9)], &values);
        let err = check_arg_sizes(&argv, &[]).unwrap_err().to_string();
        assert!(err.contains("{prompt_file}"), "{err}");
        let argv = expand_argv(&vec!["{task}".to_string(); 80], &values);
        let err = check_arg_sizes(&argv, &[]).unwrap_err().to_string();
        assert!(err.contains("arguments and environment"), "{err}");
    }
}
