//! Reads `codex exec --json` into a report: the thread from the first
//! event, tokens from each `turn.completed` (priced from the team's table),
//! the files each `file_change` wrote that the agent does not own, the
//! patches Codex rejected (told on stderr only, which shares the pipe), and
//! an API error from `turn.failed`.

use super::super::runtime::StreamReader;
use super::owns;
use crate::engine::{ApiError, Cost, Denial, RuntimeReport};
use crate::prices::Price;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What the stderr line of a patch rejected before it was applied says.
const REJECTED: &str = "patch rejected:";

pub struct CodexStream {
    /// The workspace as given and as the kernel resolves it: Codex reports
    /// absolute paths, resolved.
    roots: Vec<PathBuf>,
    scopes: Vec<String>,
    price: Option<Price>,
    thread: Option<String>,
    /// Sums over the turns: input (cached included), cached, output.
    tokens: Option<(u64, u64, u64)>,
    turns: u64,
    unowned: Vec<String>,
    rejected: usize,
    error: Option<ApiError>,
}

impl CodexStream {
    pub fn new(workspace: &Path, scopes: Vec<String>, price: Option<Price>) -> CodexStream {
        let mut roots = vec![workspace.to_path_buf()];
        if let Ok(real) = workspace.canonicalize() {
            if real != workspace {
                roots.push(real);
            }
        }
        CodexStream {
            roots,
            scopes,
            price,
            thread: None,
            tokens: None,
            turns: 0,
            unowned: Vec::new(),
            rejected: 0,
            error: None,
        }
    }

    /// A path as gtmd names it: workspace-relative when it lies inside.
    fn relative(&self, path: &str) -> Option<String> {
        self.roots.iter().find_map(|root| {
            Path::new(path)
                .strip_prefix(root)
                .ok()
                .map(|r| r.display().to_string())
        })
    }

    /// Every path a completed `file_change` wrote that the agent does not own.
    fn file_change(&mut self, item: &Value) {
        if item["status"].as_str() != Some("completed") {
            return; // a failed change wrote nothing
        }
        for change in item["changes"].as_array().into_iter().flatten() {
            for key in ["path", "move_path"] {
                let Some(path) = change[key].as_str() else {
                    continue;
                };
                let shown = match self.relative(path) {
                    Some(rel) if owns(&self.scopes, &rel) => continue,
                    Some(rel) => rel,
                    None => path.to_string(),
                };
                let shown = crate::bounds::clip(&shown, 300).into_owned();
                if !self.unowned.contains(&shown) {
                    self.unowned.push(shown);
                }
            }
        }
    }

    fn turn_completed(&mut self, usage: &Value) {
        let n = |k: &str| usage[k].as_u64().unwrap_or(0);
        let (i, c, o) = self.tokens.unwrap_or_default();
        self.tokens = Some((
            i + n("input_tokens"),
            c + n("cached_input_tokens"),
            o + n("output_tokens"),
        ));
        self.turns += 1;
    }

    fn cost(&self) -> Option<Cost> {
        let (input, cached, output) = self.tokens?;
        let uncached = input.saturating_sub(cached);
        Some(Cost {
            usd: self.price.map_or(0.0, |p| p.usd(uncached, cached, output)),
            input_tokens: uncached,
            output_tokens: output,
            cache_read_tokens: cached,
            cache_creation_tokens: 0,
            turns: self.turns,
            price_unknown: self.price.is_none(),
        })
    }
}

/// An API error from `turn.failed`'s message, the only place Codex tells
/// the status: `last status: 429 …`, `unexpected status 401 …`, the body of
/// a 400, or a 500's "high demand". `None` for a failure that names no
/// API error (it fails the task as any failed process does).
pub fn api_error(message: &str) -> Option<ApiError> {
    let clipped = crate::bounds::clip(message, 2000).into_owned();
    if let Some(status) = status_in(message) {
        return Some(ApiError::of_status(Some(status), clipped));
    }
    if message.contains("experiencing high demand") {
        return Some(ApiError::of_status(Some(500), clipped));
    }
    let body: Value = serde_json::from_str(message).ok()?;
    let kind = body["error"]["type"].as_str()?;
    let text = body["error"]["message"].as_str().unwrap_or(message);
    let text = crate::bounds::clip(text, 2000).into_owned();
    Some(if kind.contains("server") {
        ApiError::Transient {
            status: None,
            message: text,
        }
    } else {
        ApiError::Fatal {
            status: None,
            message: text,
        }
    })
}

/// `NNN` after `status ` or `status: `.
fn status_in(message: &str) -> Option<u16> {
    message.match_indices("status").find_map(|(i, m)| {
        let rest = message[i + m.len()..].trim_start_matches([':', ' ']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (digits.len() == 3).then(|| digits.parse().ok()).flatten()
    })
}

impl StreamReader for CodexStream {
    fn line(&mut self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            // Codex's own log lines come on stderr, through the same pipe.
            if String::from_utf8_lossy(line).contains(REJECTED) {
                self.rejected += 1;
            }
            return;
        };
        match v["type"].as_str() {
            Some("thread.started") => self.thread = v["thread_id"].as_str().map(String::from),
            Some("item.completed") if v["item"]["type"] == "file_change" => {
                self.file_change(&v["item"])
            }
            Some("turn.completed") => self.turn_completed(&v["usage"]),
            Some("turn.failed") => {
                self.error = v["error"]["message"].as_str().and_then(api_error);
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>) -> Option<RuntimeReport> {
        let cost = self.cost();
        if cost.is_none()
            && self.thread.is_none()
            && self.error.is_none()
            && self.unowned.is_empty()
        {
            return None;
        }
        // Codex names no path of a patch it rejected: the tool is all
        // there is to say.
        let denials = (self.rejected > 0)
            .then(|| Denial {
                tool: format!(
                    "apply_patch ({} patch(es) outside what it owns, rejected by Codex)",
                    self.rejected
                ),
                path: None,
            })
            .into_iter()
            .collect();
        Some(RuntimeReport {
            cost,
            session: self.thread,
            denials,
            error: self.error,
            over_budget: false,
            unowned_writes: self.unowned,
        })
    }
}
