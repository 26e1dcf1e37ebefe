//! Checking the steps, the largest part of a playbook: ids (kebab-case,
//! unique across the playbook), agents (known, stored canonical), input and
//! output paths (inside the workspace), dependencies (known steps of the same
//! phase) and dependency cycles.
//!
//! Each step is first located in the text: the k-th step with a given id is
//! at the k-th `id: <id>` line, and its lines run to the next `id:`. Every
//! problem of the step is then looked for within those lines.

use super::{expected_agents, is_kebab, path_problem, Validator};
use crate::agents::canonical_agent;
use crate::playbook::{Playbook, Step};
use std::collections::HashMap;

/// Where a step sits in the source: its `id:` line and the end of its lines.
#[derive(Clone, Copy)]
struct Span {
    start: Option<usize>,
    end: usize,
}

/// For each step id, the phase (index) and `id:` line of its first definition.
type Owners = HashMap<String, (usize, Option<usize>)>;

impl Validator<'_> {
    pub(super) fn validate_steps(&mut self, pb: &mut Playbook) {
        let spans = self.step_spans(pb);
        let owners = self.check_step_ids(pb, &spans);
        for (pi, phase) in pb.phases.iter_mut().enumerate() {
            let number = phase.number;
            let phase_name = phase.name.clone();
            for (si, step) in phase.steps.iter_mut().enumerate() {
                let span = spans[pi][si];
                self.check_agent(step, span);
                self.check_step_paths(step, span);
                for dep in &step.depends_on {
                    let problem = match owners.get(dep) {
                        None => format!("depends on unknown step `{dep}`"),
                        Some((dp, _)) if *dp != pi => {
                            format!(
                                "depends on `{dep}`, a step of phase {}; depends_on may only name steps of the same phase ({number}, {phase_name})",
                                *dp + 1
                            )
                        }
                        Some(_) => continue,
                    };
                    let line = self
                        .loc
                        .value_line(span.start.unwrap_or(0), span.end, "depends_on", dep)
                        .or(span.start);
                    self.error(line.map(|l| l + 1), format!("step `{}` {problem}", step.id));
                }
            }
        }
        self.check_cycles(pb, &spans);
    }

    /// Each step's lines, by phase: the k-th step with a given id is at the
    /// k-th `id: <id>` line.
    fn step_spans(&self, pb: &Playbook) -> Vec<Vec<Span>> {
        let mut seen_count: HashMap<&str, usize> = HashMap::new();
        pb.phases
            .iter()
            .map(|phase| {
                phase
                    .steps
                    .iter()
                    .map(|step| {
                        let k = seen_count.entry(&step.id).or_insert(0);
                        let start = self.loc.nth_key_value_line("id", &step.id, *k);
                        *k += 1;
                        let end = start
                            .and_then(|s| self.loc.key_line(s + 1, self.loc.len(), "id"))
                            .unwrap_or(self.loc.len());
                        Span { start, end }
                    })
                    .collect()
            })
            .collect()
    }

    /// Ids are kebab-case and unique; returns which phase each id belongs to
    /// (its first definition).
    fn check_step_ids(&mut self, pb: &Playbook, spans: &[Vec<Span>]) -> Owners {
        let mut owners = Owners::new();
        for (pi, phase) in pb.phases.iter().enumerate() {
            for (si, step) in phase.steps.iter().enumerate() {
                let span = spans[pi][si];
                if !is_kebab(&step.id) {
                    self.error(
                        span.start.map(|l| l + 1),
                        format!(
                            "step id `{}` must be kebab-case (lowercase letters, digits and `-`), like `gtm-strategy`",
                            step.id
                        ),
                    );
                }
                if let Some((_, first)) = owners.get(&step.id) {
                    let also =
                        first.map_or(String::new(), |l| format!(" (first at line {})", l + 1));
                    self.error(
                        span.start.map(|l| l + 1),
                        format!(
                            "step id `{}` is used twice{also}: step ids must be unique across the playbook",
                            step.id
                        ),
                    );
                } else {
                    owners.insert(step.id.clone(), (pi, span.start));
                }
            }
        }
        owners
    }

    /// The step's agent is known; it is stored canonical (`cs` →
    /// `customer-success`).
    fn check_agent(&mut self, step: &mut Step, span: Span) {
        match canonical_agent(&step.agent) {
            Some(c) => step.agent = c.to_string(),
            None => {
                let line = self
                    .loc
                    .key_value_line(span.start.unwrap_or(0), span.end, "agent", &step.agent)
                    .or(span.start);
                self.error(
                    line.map(|l| l + 1),
                    format!(
                        "step `{}`: unknown agent `{}`; {}",
                        step.id,
                        step.agent,
                        expected_agents()
                    ),
                );
            }
        }
    }

    /// Inputs and outputs stay inside the workspace.
    fn check_step_paths(&mut self, step: &Step, span: Span) {
        let from = span.start.unwrap_or(0);
        for (key, list) in [("inputs", &step.inputs), ("outputs", &step.outputs)] {
            let singular = &key[..key.len() - 1];
            for p in list {
                if let Some(problem) = path_problem(p) {
                    let line = self.loc.value_line(from, span.end, key, p).or(span.start);
                    self.error(
                        line.map(|l| l + 1),
                        format!(
                            "step `{}`: {singular} path {problem}: paths must stay inside the workspace",
                            step.id
                        ),
                    );
                }
            }
        }
    }

    /// One error per dependency cycle of each phase, at the `depends_on` of
    /// the cycle's first step.
    fn check_cycles(&mut self, pb: &Playbook, spans: &[Vec<Span>]) {
        for (pi, phase) in pb.phases.iter().enumerate() {
            for (cycle, first) in find_cycles(&phase.steps) {
                let span = spans[pi][first];
                let line = span
                    .start
                    .and_then(|s| self.loc.key_line(s, span.end, "depends_on"))
                    .or(span.start);
                self.error(
                    line.map(|l| l + 1),
                    format!(
                        "dependency cycle in phase {} ({}): {}",
                        phase.number,
                        phase.name,
                        cycle.join(" → ")
                    ),
                );
            }
        }
    }
}

/// Every dependency cycle among `steps` (one per strongly connected group),
/// as the ids along it with the first repeated at the end, plus the index of
/// the step it starts from (the group's first step in file order).
fn find_cycles(steps: &[Step]) -> Vec<(Vec<String>, usize)> {
    let edges = dependency_edges(steps);
    let reach = reachability(&edges);
    let n = steps.len();
    let mut reported = vec![false; n];
    let mut cycles = Vec::new();
    for start in 0..n {
        if reported[start] || !reach[start][start] {
            continue;
        }
        let group: Vec<bool> = (0..n).map(|j| reach[start][j] && reach[j][start]).collect();
        for (j, in_group) in group.iter().enumerate() {
            if *in_group {
                reported[j] = true;
            }
        }
        let path = shortest_cycle(start, &edges, &group);
        let mut ids: Vec<String> = path.iter().map(|&i| steps[i].id.clone()).collect();
        ids.push(steps[start].id.clone());
        cycles.push((ids, start));
    }
    cycles
}

/// For each step, the indexes of the steps it depends on (unknown ids are
/// left out: they are reported on their own).
fn dependency_edges(steps: &[Step]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .rev() // the first definition wins on duplicate ids
        .collect();
    steps
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect()
}

/// `reach[i][j]`: j can be reached from i by one or more edges.
fn reachability(edges: &[Vec<usize>]) -> Vec<Vec<bool>> {
    let n = edges.len();
    (0..n)
        .map(|i| {
            let mut seen = vec![false; n];
            let mut stack = edges[i].clone();
            while let Some(j) = stack.pop() {
                if !seen[j] {
                    seen[j] = true;
                    stack.extend(&edges[j]);
                }
            }
            seen
        })
        .collect()
}

/// The shortest way from `start` back to itself inside its group (breadth
/// first), as the steps along it from `start`.
fn shortest_cycle(start: usize, edges: &[Vec<usize>], group: &[bool]) -> Vec<usize> {
    let n = edges.len();
    let mut prev: Vec<Option<usize>> = vec![None; n];
    let mut queue = std::collections::VecDeque::from([start]);
    let mut visited = vec![false; n];
    let mut last = start;
    'search: while let Some(u) = queue.pop_front() {
        for &v in &edges[u] {
            if v == start {
                last = u;
                break 'search;
            }
            if group[v] && !visited[v] {
                visited[v] = true;
                prev[v] = Some(u);
                queue.push_back(v);
            }
        }
    }
    let mut path = vec![last];
    while let Some(p) = prev[*path.last().unwrap()] {
        path.push(p);
    }
    if *path.last().unwrap() != start {
        path.push(start);
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use crate::playbook::fixtures::one_error;

    #[test]
    fn step_ids_must_be_unique() {
        let d = one_error("      - id: c\n", "      - id: a\n");
        assert_eq!(d.line, Some(34), "{d}");
        assert_eq!(
            d.message,
            "step id `a` is used twice (first at line 8): step ids must be unique across the playbook"
        );
    }

    #[test]
    fn unknown_agent_names_the_known_ones() {
        let d = one_error("agent: brand\n", "agent: marketing\n");
        assert_eq!(d.line, Some(15), "{d}");
        assert!(d.message.starts_with("step `b`: unknown agent `marketing`; expected one of coordinator, brand-messaging, growth-analyst"), "{d}");
    }

    #[test]
    fn dependency_on_unknown_step() {
        let d = one_error("depends_on: [a]", "depends_on: [a, zz]");
        assert_eq!(d.line, Some(19), "{d}");
        assert_eq!(d.message, "step `b` depends on unknown step `zz`");
    }

    #[test]
    fn dependency_on_another_phase() {
        let d = one_error(
            "        action: playbook\n",
            "        action: playbook\n        depends_on:\n          - a\n",
        );
        assert_eq!(d.line, Some(40), "{d}");
        assert_eq!(
            d.message,
            "step `c` depends on `a`, a step of phase 1; depends_on may only name steps of the same phase (2, build)"
        );
    }

    #[test]
    fn dependency_cycle_is_named() {
        let d = one_error(
            "        outputs: [strategy/a.md]",
            "        depends_on: [b]\n        outputs: [strategy/a.md]",
        );
        assert_eq!(d.line, Some(13), "{d}");
        assert_eq!(
            d.message,
            "dependency cycle in phase 1 (strategy): a → b → a"
        );
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let d = one_error("depends_on: [a]", "depends_on: [b]");
        assert_eq!(d.line, Some(19), "{d}");
        assert_eq!(d.message, "dependency cycle in phase 1 (strategy): b → b");
    }

    #[test]
    fn absolute_output_path_is_refused() {
        let d = one_error("          - messaging/b.md", "          - /etc/b.md");
        assert_eq!(d.line, Some(23), "{d}");
        assert_eq!(
            d.message,
            "step `b`: output path `/etc/b.md` is absolute: paths must stay inside the workspace"
        );
    }

    #[test]
    fn parent_component_in_input_is_refused() {
        let d = one_error(
            "          - strategy/a.md",
            "          - strategy/../../a.md",
        );
        assert_eq!(d.line, Some(21), "{d}");
        assert_eq!(
            d.message,
            "step `b`: input path `strategy/../../a.md` contains a `..` component: paths must stay inside the workspace"
        );
    }

    #[test]
    fn empty_output_path_is_refused() {
        let d = one_error("outputs: [strategy/a.md]", "outputs: [strategy/a.md, \"\"]");
        assert_eq!(d.line, Some(13), "{d}");
        assert_eq!(
            d.message,
            "step `a`: output path is empty: paths must stay inside the workspace"
        );
    }
}
