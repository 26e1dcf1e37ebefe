//! Reading agent definitions: `agents/<name>.md` files with YAML front matter.
//!
//! The front matter is read as a plain YAML mapping rather than a struct so
//! that a Claude Code agent file (with `description`, `tools`, `model`, ...)
//! carries over unchanged: gtmd takes `name`, `command`, `timeout` and
//! `retries` and ignores the rest. Every problem is reported with the line of
//! the key it concerns, and all of them at once.

use super::{canonical_agent, AgentDef, Agents, BackendName, Diagnostic, RuntimeName, AGENTS};
use serde_yaml::Value;
use std::path::Path;

/// The definitions shipped in the binary (the repository's `agents/` files),
/// as (file name, contents), in the guide's order. Used for every agent whose
/// definition a team's `agents/` directory does not provide.
pub const BUILTIN_AGENTS: [(&str, &str); 7] = [
    (
        "coordinator.md",
        include_str!("../../agents/coordinator.md"),
    ),
    (
        "brand-messaging.md",
        include_str!("../../agents/brand-messaging.md"),
    ),
    (
        "growth-analyst.md",
        include_str!("../../agents/growth-analyst.md"),
    ),
    (
        "demand-generation.md",
        include_str!("../../agents/demand-generation.md"),
    ),
    (
        "sales-enablement.md",
        include_str!("../../agents/sales-enablement.md"),
    ),
    (
        "pipeline-manager.md",
        include_str!("../../agents/pipeline-manager.md"),
    ),
    (
        "customer-success.md",
        include_str!("../../agents/customer-success.md"),
    ),
];

/// Where built-in definitions say they come from.
const BUILTIN_DIR: &str = "<built-in agents>";

/// Retries above this are almost certainly a mistake (and would hide a broken agent).
const MAX_RETRIES: u64 = 100;

/// Parse one agent definition; `path` is only used in diagnostics and stored
/// in [`AgentDef::path`].
pub fn parse_agent(path: &str, text: &str) -> Result<AgentDef, Vec<Diagnostic>> {
    parse_with_name_line(path, text).map(|(def, _)| def)
}

/// Read every `*.md` file of `dir` (sorted by name; dot-files and other files
/// ignored), then add the built-in definition of every agent the directory
/// does not define. A missing directory gives the seven built-ins. Each file
/// must be a regular file of at most `max_size` bytes.
pub fn load_agents(dir: &Path, max_size: u64) -> Result<Agents, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut agents = Agents::new();
    // Where each agent was defined: (path, line of `name`).
    let mut defined_at: std::collections::HashMap<String, (String, Option<usize>)> =
        Default::default();

    for (path, text) in read_definitions(dir, max_size, &mut errors) {
        let text = match text {
            Ok(text) => text,
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        match parse_with_name_line(&path, &text) {
            Ok((def, line)) => {
                if let Some((first, first_line)) = defined_at.get(&def.name) {
                    let at = first_line.map_or(String::new(), |l| format!(":{l}"));
                    errors.push(Diagnostic::new(
                        &path,
                        line,
                        format!(
                            "agent `{}` is already defined in {first}{at}: each agent needs exactly one file",
                            def.name
                        ),
                    ));
                } else {
                    defined_at.insert(def.name.clone(), (path.clone(), line));
                    agents.insert(def.name.clone(), def);
                }
            }
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    for (file, text) in BUILTIN_AGENTS {
        let def = parse_agent(&format!("{BUILTIN_DIR}/{file}"), text)
            .expect("the built-in agent definitions are valid (checked by a unit test)");
        agents.entry(def.name.clone()).or_insert(def);
    }
    Ok(agents)
}

/// The path and text (or why it could not be read) of every definition file
/// in `dir`, sorted by file name. Problems listing `dir` go to `errors`.
fn read_definitions(
    dir: &Path,
    max_size: u64,
    errors: &mut Vec<Diagnostic>,
) -> Vec<(String, Result<String, Diagnostic>)> {
    let shown = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(Diagnostic::new(
                shown,
                None,
                format!("cannot read the agents directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !name.ends_with(".md") {
                    continue;
                }
                // Follows symlinks: a linked definition is still a definition.
                if entry.path().is_dir() {
                    continue;
                }
                names.push(name);
            }
            Err(e) => errors.push(Diagnostic::new(
                &shown,
                None,
                format!("cannot read the agents directory: {e}"),
            )),
        }
    }
    names.sort();

    let mut files = Vec::new();
    for name in names {
        let file = dir.join(&name);
        let path = file.display().to_string();
        let text = match crate::input::read_bounded(&file, max_size) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
                Diagnostic::new(
                    &path,
                    Some(line),
                    "not valid UTF-8: an agent definition must be UTF-8 text",
                )
            }),
            Err(e) => Err(Diagnostic::new(
                &path,
                None,
                format!("the agent definition {e}"),
            )),
        };
        files.push((path, text));
    }
    files
}

/// Parse a definition and also return the line of its `name` key, which the
/// duplicate check in [`load_agents`] points at.
fn parse_with_name_line(
    path: &str,
    text: &str,
) -> Result<(AgentDef, Option<usize>), Vec<Diagnostic>> {
    let file = Sections::of(path, text)?;
    let map = file.front_matter(path)?;
    let get = |key: &str| map.get(key).map(without_tag);
    let mut errors = Vec::new();
    let name_line = file.key_line("name");
    let name = agent_name(path, get("name"), name_line, &mut errors);
    let mut errs = KeyErrors {
        path,
        file: &file,
        errors: &mut errors,
    };
    let command = errs.read(&map, "command", parse_command);
    let timeout_secs = errs.read(&map, "timeout", parse_timeout);
    let retries = errs.read(&map, "retries", parse_retries);
    let runtime = errs.read(&map, "runtime", parse_runtime);
    let model = errs.read(&map, "model", |v| {
        parse_text(v, "model", "claude-sonnet-4-5")
    });
    let tools = errs.read(&map, "tools", parse_tools);
    let max_cost = errs.read(&map, "max_cost", parse_max_cost);
    let backend = errs.read(&map, "backend", parse_backend);
    let partition = errs.read(&map, "partition", |v| parse_text(v, "partition", "batch"));
    let mem = errs.read(&map, "mem", |v| parse_text(v, "mem", "4G"));
    let account = errs.read(&map, "account", |v| parse_text(v, "account", "marketing"));
    let bin = errs
        .read(&map, "claude_bin", |v| {
            parse_text(v, "claude_bin", "/usr/local/bin/claude")
        })
        .or(errs.read(&map, "codex_bin", |v| {
            parse_text(v, "codex_bin", "/usr/local/bin/codex")
        }));
    if command.is_some() && runtime.is_some() {
        errors.push(Diagnostic::new(
            path,
            file.key_line("runtime"),
            "both `command` and `runtime` are given: a runtime builds the command itself; keep one of them",
        ));
    }
    match name {
        Some(name) if errors.is_empty() => Ok((
            AgentDef {
                name,
                command,
                timeout_secs,
                retries,
                runtime,
                model,
                tools,
                max_cost,
                bin,
                backend,
                partition,
                mem,
                account,
                role: file.role(),
                path: path.to_string(),
            },
            name_line,
        )),
        _ => Err(errors),
    }
}

/// `runtime`: an agent CLI gtmd knows.
fn parse_runtime(v: &Value) -> Result<Option<RuntimeName>, String> {
    match without_tag(v) {
        Value::Null => Ok(None),
        other => match scalar_string(other).as_deref().and_then(RuntimeName::parse) {
            Some(r) => Ok(Some(r)),
            None => Err(format!(
                "unknown runtime {}: expected one of {} (or a `command`)",
                show(other),
                RuntimeName::NAMES
            )),
        },
    }
}

/// `backend`: where the agent's tasks run.
fn parse_backend(v: &Value) -> Result<Option<BackendName>, String> {
    match without_tag(v) {
        Value::Null => Ok(None),
        other => match scalar_string(other).as_deref().and_then(BackendName::parse) {
            Some(b) => Ok(Some(b)),
            None => Err(format!(
                "unknown backend {}: expected one of {}",
                show(other),
                BackendName::NAMES
            )),
        },
    }
}

/// A key whose value is one line of text, like `model: claude-sonnet-4-5`.
fn parse_text(v: &Value, key: &str, example: &str) -> Result<Option<String>, String> {
    match without_tag(v) {
        Value::Null => Ok(None),
        Value::String(s) if !s.trim().is_empty() && !s.contains('\n') => {
            Ok(Some(s.trim().to_string()))
        }
        other => Err(format!(
            "`{key}` is {}: expected one line of text, like `{key}: {example}`",
            show(other)
        )),
    }
}

/// `tools`: as in a Claude Code agent file, a list or one comma-separated
/// line (`Read, Grep, Bash(git *)`).
fn parse_tools(v: &Value) -> Result<Option<Vec<String>>, String> {
    const EXPECTED: &str =
        "expected tool names, as a list or one line like \"Read, Grep, WebSearch\"";
    let items: Vec<String> = match without_tag(v) {
        Value::Null => return Ok(None),
        Value::String(s) => s.split(',').map(|t| t.trim().to_string()).collect(),
        Value::Sequence(seq) => seq
            .iter()
            .map(|t| {
                scalar_string(without_tag(t))
                    .ok_or_else(|| format!("`tools` holds {}: {EXPECTED}", show(t)))
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("`tools` is {}: {EXPECTED}", show(other))),
    };
    let items: Vec<String> = items.into_iter().filter(|t| !t.is_empty()).collect();
    if let Some(bad) = items
        .iter()
        .find(|t| !t.starts_with(|c: char| c.is_ascii_alphabetic()) || t.contains(['\n', '\0']))
    {
        return Err(format!("`tools` holds {bad:?}: {EXPECTED}"));
    }
    Ok(Some(items))
}

/// `max_cost`: dollars, a positive number.
fn parse_max_cost(v: &Value) -> Result<Option<f64>, String> {
    const EXPECTED: &str = "expected a positive number of dollars, like 2.50";
    let amount = match without_tag(v) {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_start_matches('$').parse::<f64>().ok(),
        other => return Err(format!("`max_cost` is {}: {EXPECTED}", show(other))),
    };
    match amount {
        Some(a) if a.is_finite() && a > 0.0 => Ok(Some(a)),
        _ => Err(format!("`max_cost` is {}: {EXPECTED}", show(v))),
    }
}

/// Where the problems of the optional keys are gathered, each at its
/// key's line.
struct KeyErrors<'a> {
    path: &'a str,
    file: &'a Sections<'a>,
    errors: &'a mut Vec<Diagnostic>,
}

impl KeyErrors<'_> {
    /// An optional key's value, or `None` (absent, or refused with the
    /// parser's message).
    fn read<T>(
        &mut self,
        map: &serde_yaml::Mapping,
        key: &str,
        parse: fn(&Value) -> Result<Option<T>, String>,
    ) -> Option<T> {
        let value = map.get(key).map(without_tag)?;
        parse(value).unwrap_or_else(|message| {
            self.errors
                .push(Diagnostic::new(self.path, self.file.key_line(key), message));
            None
        })
    }
}

/// An agent file cut at its `---` fences: the front matter's lines and the
/// role after them.
struct Sections<'a> {
    lines: Vec<&'a str>,
    /// Index of the closing fence.
    close: usize,
}

impl<'a> Sections<'a> {
    fn of(path: &str, text: &'a str) -> Result<Sections<'a>, Vec<Diagnostic>> {
        let err = |message: &str| vec![Diagnostic::new(path, Some(1), message)];
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines: Vec<&str> = text.lines().collect();
        let is_fence = |l: &str| l.trim_end() == "---";
        if !lines.first().is_some_and(|l| is_fence(l)) {
            return Err(err("missing front matter: an agent file starts with a `---` line, then YAML with at least `name: <agent>`, then a `---` line, then the agent's role"));
        }
        let close = lines
            .iter()
            .skip(1)
            .position(|l| is_fence(l))
            .map(|i| i + 1)
            .ok_or_else(|| {
                err("the front matter opened at line 1 is never closed: add a `---` line after it")
            })?;
        Ok(Sections { lines, close })
    }

    /// The file's line of a top-level key of the front matter (whose line k
    /// is line k + 1 of the file).
    fn key_line(&self, key: &str) -> Option<usize> {
        self.lines[1..self.close]
            .iter()
            .position(|l| {
                l.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
            })
            .map(|i| i + 2)
    }

    /// The front matter as a YAML mapping (an empty one is allowed here; a
    /// missing `name` is said by the caller).
    fn front_matter(&self, path: &str) -> Result<serde_yaml::Mapping, Vec<Diagnostic>> {
        let front = self.lines[1..self.close].join("\n");
        let value: Value = serde_yaml::from_str(&front).map_err(|e| {
            // serde_yaml counts from the first front-matter line, the file's line 2.
            let line = e.location().map(|l| l.line() + 1);
            vec![Diagnostic::new(
                path,
                line,
                without_position(&e.to_string()),
            )]
        })?;
        match value {
            Value::Mapping(map) => Ok(map),
            Value::Null => Ok(Default::default()),
            _ => Err(vec![Diagnostic::new(
                path,
                Some(2),
                "the front matter must be a YAML mapping of keys like `name: coordinator`",
            )]),
        }
    }

    /// Everything after the front matter: the agent's role.
    fn role(&self) -> String {
        self.lines[self.close + 1..].join("\n").trim().to_string()
    }
}

/// The canonical agent a `name:` value names, or why it names none.
fn agent_name(
    path: &str,
    value: Option<&Value>,
    line: Option<usize>,
    errors: &mut Vec<Diagnostic>,
) -> Option<String> {
    match value {
        None | Some(Value::Null) => {
            errors.push(Diagnostic::new(
                path,
                line.or(Some(1)),
                format!(
                    "missing `name`: the front matter must name the agent, one of {}",
                    AGENTS.join(", ")
                ),
            ));
            None
        }
        Some(v) => match scalar_string(v).as_deref().and_then(canonical_agent) {
            Some(c) => Some(c.to_string()),
            None => {
                errors.push(Diagnostic::new(
                    path,
                    line,
                    format!(
                        "unknown agent {}: expected one of {} (or an alias: demand-gen, brand, pipeline, cs, growth)",
                        show(v),
                        AGENTS.join(", ")
                    ),
                ));
                None
            }
        },
    }
}

/// serde_yaml's message without its " at line L column C" and " at position P"
/// parts (they count from the front matter; the diagnostic has the file's line).
fn without_position(msg: &str) -> String {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find(" at ") {
        let tail = &rest[i + " at ".len()..];
        let skip = if let Some(t) = tail.strip_prefix("line ") {
            let n = digits(t);
            let col = t[n..].strip_prefix(" column ").map_or(0, digits);
            (n > 0 && col > 0).then(|| "line ".len() + n + " column ".len() + col)
        } else if let Some(t) = tail.strip_prefix("position ") {
            let n = digits(t);
            (n > 0).then(|| "position ".len() + n)
        } else {
            None
        };
        match skip {
            Some(len) => {
                out.push_str(&rest[..i]);
                rest = &tail[len..];
            }
            None => {
                out.push_str(&rest[..i + 1]);
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A `!tag value` is read as its value.
fn without_tag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => without_tag(&t.value),
        other => other,
    }
}

/// A scalar as the text it was written as, or `None` for lists and mappings.
fn scalar_string(v: &Value) -> Option<String> {
    match without_tag(v) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value for a message: scalars in backticks, anything else by its kind.
fn show(v: &Value) -> String {
    match without_tag(v) {
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Null => "an empty value".into(),
        other => format!("`{}`", scalar_string(other).unwrap_or_default()),
    }
}

/// `command`: a list of arguments, or one string split as a shell would split
/// it (quotes and backslashes; no shell runs). `~` means no command.
fn parse_command(v: &Value) -> Result<Option<Vec<String>>, String> {
    const EXPECTED: &str = "expected a list of arguments like [\"claude\", \"-p\", \"{prompt_file}\"] or one string like \"claude -p {prompt_file}\"";
    let argv = match without_tag(v) {
        Value::Null => return Ok(None),
        Value::String(s) => shell_words::split(s).map_err(|_| {
            format!("`command` has an unbalanced quote in {s:?}: close every ' and \" (or give the arguments as a list)")
        })?,
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar_string(item).ok_or_else(|| {
                    format!(
                        "`command` argument {} is {}: every argument must be a string; {EXPECTED}",
                        i + 1,
                        show(item)
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(format!("`command` is {}: {EXPECTED}", show(other))),
    };
    match argv.first() {
        None => Err(format!(
            "`command` is empty: {EXPECTED}, or leave `command` out to send this agent's tasks to its inbox"
        )),
        Some(program) if program.trim().is_empty() => Err(format!(
            "`command` starts with an empty program name: {EXPECTED}"
        )),
        Some(_) => Ok(Some(argv)),
    }
}

/// `timeout`: whole seconds, or a duration such as `90s`, `10m`, `1h 30m`;
/// more than zero. A fraction of a second rounds up.
fn parse_timeout(v: &Value) -> Result<Option<u64>, String> {
    const EXPECTED: &str =
        "expected a number of seconds (like 600) or a duration (like \"90s\", \"10m\", \"1h\")";
    let secs = match without_tag(v) {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("`timeout` {n} is not a whole number of seconds: {EXPECTED}"))?,
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<u64>() {
                n
            } else {
                let d = humantime::parse_duration(s)
                    .map_err(|e| format!("`timeout` {s:?} is not a duration ({e}): {EXPECTED}"))?;
                d.as_secs() + u64::from(d.subsec_nanos() > 0)
            }
        }
        other => return Err(format!("`timeout` is {}: {EXPECTED}", show(other))),
    };
    if secs == 0 {
        return Err(format!("`timeout` must be more than zero: {EXPECTED}"));
    }
    Ok(Some(secs))
}

/// `retries`: a whole number from 0 to [`MAX_RETRIES`].
fn parse_retries(v: &Value) -> Result<Option<u32>, String> {
    let expected = format!("expected a whole number from 0 to {MAX_RETRIES}");
    match without_tag(v) {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(r) if r <= MAX_RETRIES => Ok(Some(r as u32)),
            _ => Err(format!("`retries` {n} is out of range: {expected}")),
        },
        other => Err(format!("`retries` is {}: {expected}", show(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(front: &str) -> Result<AgentDef, Vec<Diagnostic>> {
        parse_agent(
            "agents/x.md",
            &format!("---\n{front}---\n# Role\n\nDo things.\n"),
        )
    }

    fn one_error(front: &str) -> Diagnostic {
        let errs = agent(front).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn builtin_agents_parse_without_commands() {
        for (i, (file, text)) in BUILTIN_AGENTS.iter().enumerate() {
            let def = parse_agent(file, text).unwrap_or_else(|e| panic!("{file}: {e:?}"));
            assert_eq!(def.name, AGENTS[i]);
            assert_eq!(*file, format!("{}.md", def.name));
            assert_eq!(
                def.command, None,
                "{file}: tasks go to the inbox by default"
            );
            assert_eq!((def.timeout_secs, def.retries), (None, None));
            assert!(def.role.starts_with("# "), "{file}");
            assert!(
                def.role.contains(&format!("status/{}.md", def.name)),
                "{file}"
            );
            assert!(def.role.contains("task_id"), "{file}");
            assert!(def.role.contains("conflicts/"), "{file}");
        }
    }

    #[test]
    fn builtin_descriptions_are_one_line() {
        for (file, text) in BUILTIN_AGENTS {
            let front = text.split("\n---").next().unwrap();
            let v: Value = serde_yaml::from_str(front.trim_start_matches("---")).unwrap();
            let d = v["description"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}"));
            assert!(!d.contains('\n') && d.len() > 40, "{file}");
        }
    }

    #[test]
    fn minimal_definition() {
        let def = agent("name: coordinator\n").unwrap();
        assert_eq!(def.name, "coordinator");
        assert_eq!(def.command, None);
        assert_eq!(def.role, "# Role\n\nDo things.");
        assert_eq!(def.path, "agents/x.md");
    }

    #[test]
    fn aliases_are_canonicalised() {
        assert_eq!(agent("name: cs\n").unwrap().name, "customer-success");
        assert_eq!(
            agent("name: Demand-Gen\n").unwrap().name,
            "demand-generation"
        );
        assert_eq!(agent("name: growth\n").unwrap().name, "growth-analyst");
    }

    #[test]
    fn claude_code_keys_are_ignored() {
        let def = agent(
            "name: brand\ndescription: Writes the messaging\ntools: Read, Write\nmodel: sonnet\ncolor: blue\n",
        )
        .unwrap();
        assert_eq!(def.name, "brand-messaging");
    }

    #[test]
    fn command_as_list() {
        let def = agent("name: cs\ncommand: [\"claude\", \"-p\", \"{prompt_file}\", 3]\n").unwrap();
        assert_eq!(def.command.unwrap(), ["claude", "-p", "{prompt_file}", "3"]);
    }

    #[test]
    fn command_as_string_is_split_like_a_shell() {
        let def =
            agent("name: cs\ncommand: run-agent --role 'customer success' \"{task}\"\n").unwrap();
        assert_eq!(
            def.command.unwrap(),
            ["run-agent", "--role", "customer success", "{task}"]
        );
    }

    #[test]
    fn command_with_unbalanced_quote() {
        let d = one_error("name: cs\ndescription: x\ncommand: claude -p 'oops\n");
        assert_eq!(d.line, Some(4));
        assert!(
            d.message.starts_with("`command` has an unbalanced quote"),
            "{d}"
        );
    }

    #[test]
    fn empty_command() {
        for cmd in ["command: []\n", "command: \"\"\n", "command: \"   \"\n"] {
            let d = one_error(&format!("name: cs\n{cmd}"));
            assert_eq!(d.line, Some(3), "{cmd}");
            assert!(d.message.starts_with("`command` is empty"), "{d}");
        }
        let d = one_error("name: cs\ncommand: [\"\", x]\n");
        assert!(
            d.message
                .starts_with("`command` starts with an empty program"),
            "{d}"
        );
    }

    #[test]
    fn command_of_wrong_shape() {
        let d = one_error("name: cs\ncommand: [claude, [nested]]\n");
        assert_eq!(d.line, Some(3));
        assert!(
            d.message.starts_with("`command` argument 2 is a list"),
            "{d}"
        );
        let d = one_error("name: cs\ncommand: {program: claude}\n");
        assert!(d.message.starts_with("`command` is a mapping"), "{d}");
    }

    #[test]
    fn null_command_means_inbox() {
        assert_eq!(agent("name: cs\ncommand:\n").unwrap().command, None);
    }

    #[test]
    fn timeout_forms() {
        let t = |v: &str| {
            agent(&format!("name: cs\ntimeout: {v}\n"))
                .unwrap()
                .timeout_secs
        };
        assert_eq!(t("90"), Some(90));
        assert_eq!(t("\"90\""), Some(90));
        assert_eq!(t("90s"), Some(90));
        assert_eq!(t("10m"), Some(600));
        assert_eq!(t("1h"), Some(3600));
        assert_eq!(t("1h 30m"), Some(5400));
        assert_eq!(t("1500ms"), Some(2));
    }

    #[test]
    fn bad_timeouts() {
        for (v, start) in [
            ("0", "`timeout` must be more than zero"),
            ("0s", "`timeout` must be more than zero"),
            ("-5", "`timeout` -5 is not a whole number"),
            ("1.5", "`timeout` 1.5 is not a whole number"),
            ("soon", "`timeout` \"soon\" is not a duration"),
            ("[1]", "`timeout` is a list"),
        ] {
            let d = one_error(&format!("name: cs\n\ntimeout: {v}\n"));
            assert_eq!(d.line, Some(4), "{v}");
            assert!(d.message.starts_with(start), "{v}: {d}");
        }
    }

    #[test]
    fn retries_forms() {
        let r = |v: &str| agent(&format!("name: cs\nretries: {v}\n"));
        assert_eq!(r("0").unwrap().retries, Some(0));
        assert_eq!(r("100").unwrap().retries, Some(100));
        for v in ["101", "-1", "2.5", "three"] {
            let errs = r(v).unwrap_err();
            assert_eq!(errs[0].line, Some(3), "{v}");
            assert!(errs[0].message.starts_with("`retries`"), "{v}: {}", errs[0]);
            assert!(
                errs[0].message.ends_with("from 0 to 100"),
                "{v}: {}",
                errs[0]
            );
        }
    }

    #[test]
    fn missing_front_matter() {
        let errs = parse_agent("agents/x.md", "# Coordinator\n").unwrap_err();
        assert_eq!(errs[0].line, Some(1));
        assert!(
            errs[0].message.starts_with("missing front matter"),
            "{}",
            errs[0]
        );
        let errs = parse_agent("agents/x.md", "").unwrap_err();
        assert!(errs[0].message.starts_with("missing front matter"));
    }

    #[test]
    fn unclosed_front_matter() {
        let errs = parse_agent("agents/x.md", "---\nname: cs\n# Role\n").unwrap_err();
        assert_eq!(errs[0].line, Some(1));
        assert!(errs[0].message.contains("never closed"), "{}", errs[0]);
    }

    #[test]
    fn bad_yaml_in_front_matter() {
        let d = one_error("name: cs\ncommand: [a, b\ntimeout: 5\n");
        assert_eq!(d.path, "agents/x.md");
        assert!(d.line.is_some_and(|l| (3..=5).contains(&l)), "{d}");
        assert!(!d.message.contains("at line"), "{d}");
        let d = one_error("- name\n- cs\n");
        assert_eq!(d.line, Some(2));
        assert!(d.message.contains("must be a YAML mapping"), "{d}");
    }

    #[test]
    fn positions_are_removed_from_yaml_messages() {
        assert_eq!(
            without_position("did not find expected key at line 5 column 3, while parsing a block mapping at line 2 column 1"),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(without_position("bad at position 0"), "bad");
        assert_eq!(without_position("looked at lines"), "looked at lines");
    }

    #[test]
    fn missing_name() {
        let d = one_error("description: no name here\n");
        assert_eq!(d.line, Some(1));
        assert!(d.message.starts_with("missing `name`"), "{d}");
        assert!(d.message.contains("coordinator, brand-messaging, growth-analyst, demand-generation, sales-enablement, pipeline-manager, customer-success"), "{d}");
        assert!(parse_agent("x.md", "---\n---\nrole\n").is_err());
    }

    #[test]
    fn unknown_name_lists_the_seven() {
        let d = one_error("description: x\nname: marketer\n");
        assert_eq!(d.line, Some(3));
        assert_eq!(
            d.message,
            "unknown agent `marketer`: expected one of coordinator, brand-messaging, growth-analyst, demand-generation, sales-enablement, pipeline-manager, customer-success (or an alias: demand-gen, brand, pipeline, cs, growth)"
        );
    }

    #[test]
    fn all_errors_are_reported() {
        let errs = agent("name: nobody\ncommand: []\ntimeout: 0\nretries: 1000\n").unwrap_err();
        let lines: Vec<_> = errs.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4), Some(5)], "{errs:#?}");
    }

    #[test]
    fn crlf_and_bom_are_accepted() {
        let def = parse_agent(
            "x.md",
            "\u{feff}---\r\nname: cs\r\ntimeout: 5m\r\n---\r\nRole.\r\n",
        )
        .unwrap();
        assert_eq!(
            (def.name.as_str(), def.timeout_secs),
            ("customer-success", Some(300))
        );
        assert_eq!(def.role, "Role.");
    }

    #[test]
    fn missing_dir_gives_the_builtins() {
        let agents = load_agents(Path::new("/nonexistent/agents"), 1 << 20).unwrap();
        assert_eq!(agents.len(), 7);
        for name in AGENTS {
            let def = &agents[name];
            assert_eq!(def.path, format!("<built-in agents>/{name}.md"));
        }
    }

    #[test]
    fn dir_definitions_override_and_builtins_fill_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cs.md"),
            "---\nname: cs\ncommand: my-agent {task}\ntimeout: 10m\nretries: 0\n---\nLook after customers.\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not an agent").unwrap();
        std::fs::write(dir.path().join(".draft.md"), "not an agent").unwrap();
        std::fs::create_dir(dir.path().join("old.md")).unwrap();
        let agents = load_agents(dir.path(), 1 << 20).unwrap();
        assert_eq!(agents.len(), 7);
        let cs = &agents["customer-success"];
        assert_eq!(
            cs.command.as_deref(),
            Some(&["my-agent".to_string(), "{task}".to_string()][..])
        );
        assert_eq!((cs.timeout_secs, cs.retries), (Some(600), Some(0)));
        assert_eq!(cs.role, "Look after customers.");
        assert_eq!(cs.path, dir.path().join("cs.md").display().to_string());
        assert!(agents["coordinator"].path.starts_with("<built-in agents>/"));
    }

    #[test]
    fn two_files_for_one_agent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.md"),
            "---\nname: customer-success\n---\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.md"),
            "---\ndescription: x\nname: cs\n---\n",
        )
        .unwrap();
        let errs = load_agents(dir.path(), 1 << 20).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        let first = dir.path().join("a.md").display().to_string();
        assert_eq!(errs[0].path, dir.path().join("b.md").display().to_string());
        assert_eq!(errs[0].line, Some(3));
        assert_eq!(
            errs[0].message,
            format!("agent `customer-success` is already defined in {first}:2: each agent needs exactly one file")
        );
    }

    #[test]
    fn errors_from_every_file_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.md"), "no front matter\n").unwrap();
        std::fs::write(
            dir.path().join("b.md"),
            "---\nname: cs\ntimeout: never\n---\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.md"), b"---\nname: cs\n---\n\xff\n").unwrap();
        let errs = load_agents(dir.path(), 1 << 20).unwrap_err();
        let got: Vec<_> = errs
            .iter()
            .map(|d| {
                (
                    Path::new(&d.path)
                        .file_name()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string(),
                    d.line,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a.md".to_string(), Some(1)),
                ("b.md".to_string(), Some(3)),
                ("c.md".to_string(), Some(4)),
            ],
            "{errs:#?}"
        );
    }
}
