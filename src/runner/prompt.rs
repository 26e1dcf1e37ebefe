//! What an agent reads: its role, the task, its inputs and outputs, the
//! context so far, and how to report back. The same text is a person's inbox
//! file and a command's prompt file, so both get the same instructions.

use crate::agents::AgentDef;
use crate::diagnostic::one_line;
use crate::engine::TaskSpec;

/// What an agent reads: its role, the task, where its inputs and outputs are,
/// and how to report back. The same text is the inbox file and the prompt file.
pub fn render_prompt(spec: &TaskSpec, agent: Option<&AgentDef>) -> String {
    let mut s = String::new();
    s.push_str(&format!("# Task {} for {}\n\n", spec.id, spec.agent));
    s.push_str(&format!("{}\n\n", spec.text));
    let phase = match (&spec.phase, &spec.phase_name) {
        (Some(n), Some(name)) => format!("{n} ({name})"),
        (Some(n), None) => n.to_string(),
        _ => "-".into(),
    };
    s.push_str(&format!("- task_id: `{}`\n", spec.id));
    s.push_str(&format!("- phase: {phase}\n"));
    if let Some(step) = &spec.step {
        s.push_str(&format!("- step: {step}\n"));
    }
    s.push_str(&format!("- trigger: {}\n", spec.trigger));
    if spec.attempt > 1 {
        s.push_str(&format!("- attempt: {}\n", spec.attempt));
    }
    if !spec.details.is_empty() {
        s.push_str("\n## Details\n\n");
        for d in &spec.details {
            s.push_str(&format!("- {d}\n"));
        }
    }
    let list = |s: &mut String, title: &str, items: &[String]| {
        if !items.is_empty() {
            s.push_str(&format!("\n## {title}\n\n"));
            for i in items {
                s.push_str(&format!("- `{i}`\n"));
            }
        }
    };
    list(&mut s, "Inputs (workspace paths)", &spec.inputs);
    list(
        &mut s,
        "Expected outputs (must exist and be non-empty; a path ending in / is a directory of files)",
        &spec.outputs,
    );
    list(&mut s, "Context (learnings so far)", &spec.context);
    if !spec.business_context.trim().is_empty() {
        s.push_str("\n## Business context (CONFIG.md)\n\n");
        s.push_str(spec.business_context.trim());
        s.push('\n');
    }
    s.push_str(&format!(
        "\n## When you are done\n\nWrite `status/{agent}.md`:\n\n```yaml\nagent: {agent}\nphase: {phase_num}\ntask_id: {id}\ntask: {text:?}\nstatus: complete   # or blocked / failed\noutputs:\n{outs}blockers: none\nnext: \n```\n",
        agent = spec.agent,
        phase_num = spec.phase.map(|p| p.to_string()).unwrap_or_else(|| "null".into()),
        id = spec.id,
        text = one_line(&spec.text),
        outs = if spec.outputs.is_empty() {
            "  []\n".to_string()
        } else {
            spec.outputs.iter().map(|o| format!("  - {o}\n")).collect::<String>()
        },
    ));
    if let Some(agent) = agent {
        if !agent.role.trim().is_empty() {
            s.push_str("\n---\n\n## Your role\n\n");
            s.push_str(agent.role.trim());
            s.push('\n');
        }
    }
    s
}
