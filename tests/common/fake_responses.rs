//! A scripted OpenAI Responses API, so that the codex runtime is tested
//! through the real Codex CLI without a real model: the CLI is the thing
//! under test (its argv, sandbox, JSON events and token counts), only the
//! model's answers are made up. The sibling of [`super::fake_model`] (the
//! Messages API for Claude Code), and it shares its HTTP plumbing.
//!
//! It answers `POST /v1/responses` (`stream: true`) with the two events the
//! CLI needs, `response.output_item.done` per item and `response.completed`
//! with the usage, and follows a [`Script`]:
//!
//! ```ignore
//! let model = FakeResponses::start(
//!     Script::do_task()                                  // each output, then the status
//!         .usage(Usage::new(1000, 200, 100, 20))         // reported for every answer
//!         .fail_first(1, 429)                            // then as above
//!         .agent("brand-messaging", Plan::do_task().trespass(&["status/coordinator.md"])),
//! );
//! // [model_providers.fake] base_url = model.base_url()
//! ```
//!
//! No conversation state, as in [`super::fake_model`]: the tool calls a
//! request's input already holds say how far the plan has gone, and the
//! answer is its next `apply_patch` call (one file each), or a message at
//! the end.
//! gtmd's task is read from the request's texts (the prompt the runtime
//! passes as `developer_instructions`), the working directory from Codex's
//! `<cwd>…</cwd>`.

use super::fake_model::{http, output_content, serve_connection, status_content, Request, Task};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The token counts of one answer, as the Responses API reports them:
/// `input_tokens` includes the cached ones, `output_tokens` the reasoning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    pub const fn new(input: u64, cached: u64, output: u64, reasoning: u64) -> Usage {
        Usage {
            input_tokens: input,
            cached_tokens: cached,
            output_tokens: output,
            reasoning_tokens: reasoning,
        }
    }

    fn json(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        })
    }
}

/// Round numbers, so that a test can price them by hand.
pub const DEFAULT_USAGE: Usage = Usage::new(1000, 200, 100, 20);

/// What the model does for a task.
#[derive(Clone, Debug)]
pub struct Plan {
    kind: PlanKind,
    trespass: Vec<String>,
    status: String,
}

#[derive(Clone, Debug)]
enum PlanKind {
    /// Each expected output, a gate to tick, then the status file.
    DoTask,
    /// Exactly these files (one patch each), no status.
    Write(Vec<(String, String)>),
    /// This text, no tool call.
    Reply(String),
    /// This raw patch, as one `apply_patch` call.
    Patch(String),
}

impl Plan {
    /// Do the task as an agent would: an `apply_patch` adding each
    /// expected output (`dir/` as `dir/item.md`, content that passes the
    /// gate checks), the gate it is asked to review with every box ticked,
    /// and last `status/<agent>.md` from the task's template.
    pub fn do_task() -> Plan {
        Plan {
            kind: PlanKind::DoTask,
            trespass: Vec::new(),
            status: "complete".into(),
        }
    }

    /// Add exactly these files (relative to the working directory, or
    /// absolute), one patch each.
    pub fn write(files: &[(&str, &str)]) -> Plan {
        Plan {
            kind: PlanKind::Write(
                files
                    .iter()
                    .map(|(p, c)| (p.to_string(), c.to_string()))
                    .collect(),
            ),
            ..Plan::do_task()
        }
    }

    pub fn reply(text: &str) -> Plan {
        Plan {
            kind: PlanKind::Reply(text.into()),
            ..Plan::do_task()
        }
    }

    /// One `apply_patch` call with this patch, as given.
    pub fn patch(patch: &str) -> Plan {
        Plan {
            kind: PlanKind::Patch(patch.into()),
            ..Plan::do_task()
        }
    }

    /// Also add these files the agent does not own, one patch each, before
    /// its status.
    pub fn trespass(mut self, paths: &[&str]) -> Plan {
        self.trespass.extend(paths.iter().map(|p| p.to_string()));
        self
    }

    pub fn status(mut self, status: &str) -> Plan {
        self.status = status.into();
        self
    }
}

/// The model's whole behaviour.
#[derive(Clone, Debug)]
pub struct Script {
    default: Plan,
    /// (agent, plan): the first whose agent matches wins.
    overrides: Vec<(String, Plan)>,
    /// HTTP statuses to answer the first requests with, whoever sends them.
    errors: VecDeque<u16>,
    usage: Usage,
}

impl Script {
    pub fn new(plan: Plan) -> Script {
        Script {
            default: plan,
            overrides: Vec::new(),
            errors: VecDeque::new(),
            usage: DEFAULT_USAGE,
        }
    }

    pub fn do_task() -> Script {
        Script::new(Plan::do_task())
    }

    pub fn agent(mut self, agent: &str, plan: Plan) -> Script {
        self.overrides.push((agent.into(), plan));
        self
    }

    /// Answer the first `n` requests with this HTTP status (429, 401, 500…)
    /// and an OpenAI-style error body.
    pub fn fail_first(mut self, n: usize, status: u16) -> Script {
        self.errors.extend(std::iter::repeat_n(status, n));
        self
    }

    pub fn usage(mut self, usage: Usage) -> Script {
        self.usage = usage;
        self
    }
}

struct State {
    script: Script,
    log: Vec<Request>,
    answers: usize,
    errors_sent: usize,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

/// The server, on 127.0.0.1 at an ephemeral port. Dropping it stops it.
pub struct FakeResponses {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FakeResponses {
    pub fn start(script: Script) -> FakeResponses {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Responses API");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                script,
                log: Vec::new(),
                answers: 0,
                errors_sent: 0,
            }),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fake-responses".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    let _ = std::thread::Builder::new()
                        .name("fake-responses-conn".into())
                        .spawn(move || serve_connection(conn, &s.stop, |req| respond(req, &s)));
                }
            })
            .unwrap();
        FakeResponses {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// For a model provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().unwrap().log.clone()
    }

    /// Requests answered with a response (each reported the usage once).
    pub fn answers(&self) -> usize {
        self.shared.state.lock().unwrap().answers
    }

    pub fn errors_sent(&self) -> usize {
        self.shared.state.lock().unwrap().errors_sent
    }

    pub fn usage(&self) -> Usage {
        self.shared.state.lock().unwrap().script.usage
    }
}

impl Drop for FakeResponses {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // accept() blocks: a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn respond(req: &Request, shared: &Shared) -> Vec<u8> {
    let mut st = shared.state.lock().unwrap();
    st.log.push(req.clone());
    let route = req.path.split('?').next().unwrap_or_default();
    if (req.method.as_str(), route) != ("POST", "/v1/responses") {
        let body = json!({"error": {"message": format!("no {route} here"), "type": "not_found"}});
        return http(404, "application/json", body.to_string().as_bytes());
    }
    if let Some(status) = st.script.errors.pop_front() {
        st.errors_sent += 1;
        return http(status, "application/json", error_body(status).as_bytes());
    }
    st.answers += 1;
    let n = st.answers;
    let task = task_of(req);
    let plan = task
        .as_ref()
        .and_then(|t| {
            st.script
                .overrides
                .iter()
                .find(|(a, _)| *a == t.agent)
                .map(|(_, p)| p.clone())
        })
        .unwrap_or_else(|| st.script.default.clone());
    let items = next_step(&plan, task.as_ref(), req, n);
    let usage = st.script.usage;
    drop(st);
    http(200, "text/event-stream", sse(n, &items, usage).as_bytes())
}

/// The body the OpenAI API sends with an error status.
fn error_body(status: u16) -> String {
    let (kind, message) = match status {
        401 => (
            "invalid_request_error",
            "Incorrect API key provided: sk-fake. You can find your API key at the provider's site.",
        ),
        429 => (
            "rate_limit_error",
            "Rate limit reached for requests per minute. Please try again in 1s.",
        ),
        400 => ("invalid_request_error", "Invalid value for 'input'."),
        _ => ("server_error", "The server had an error processing your request."),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}}).to_string()
}

/// Every text of the request's input items, oldest first.
fn texts(req: &Request) -> Vec<String> {
    let mut out = Vec::new();
    for item in req.body["input"].as_array().into_iter().flatten() {
        for part in item["content"].as_array().into_iter().flatten() {
            if let Some(t) = part["text"].as_str() {
                out.push(t.to_string());
            }
        }
    }
    out
}

/// gtmd's task and the working directory Codex tells the model about.
fn task_of(req: &Request) -> Option<Task> {
    let texts = texts(req);
    let mut task = texts.iter().find_map(|t| Task::parse(t))?;
    task.cwd = texts.iter().find_map(|t| {
        let i = t.find("<cwd>")? + "<cwd>".len();
        let j = t[i..].find("</cwd>")?;
        Some(t[i..i + j].to_string())
    });
    Some(task)
}

/// How many tool calls the conversation so far holds: the steps of the
/// plan already taken.
fn calls_made(req: &Request) -> usize {
    req.body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| {
            matches!(
                i["type"].as_str(),
                Some("custom_tool_call" | "function_call")
            )
        })
        .count()
}

fn summary(task: Option<&Task>) -> String {
    match task {
        Some(t) => format!("Done: task {} for {}.", t.id, t.agent),
        None => "Done.".into(),
    }
}

fn message(n: usize, text: &str) -> Value {
    json!({"type": "message", "id": format!("msg_fake_{n:03}"), "role": "assistant",
           "status": "completed",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// A patch adding one file (Codex's Add File overwrites an existing one).
fn add_file(path: &str, content: &str) -> String {
    let mut patch = format!("*** Begin Patch\n*** Add File: {path}\n");
    for line in content.lines() {
        patch.push('+');
        patch.push_str(line);
        patch.push('\n');
    }
    patch.push_str("*** End Patch");
    patch
}

fn patch_call(n: usize, k: usize, patch: String) -> Value {
    json!({"type": "custom_tool_call", "id": format!("ctc_fake_{n:03}_{k:02}"),
           "call_id": format!("call_fake_{n:03}_{k:02}"), "name": "apply_patch",
           "input": patch, "status": "completed"})
}

/// A gate with every box ticked, read from the workspace the CLI runs in.
fn ticked_gate(task: &Task, gate: &str) -> Option<String> {
    let path = std::path::Path::new(task.cwd.as_deref()?).join(gate);
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.replace("- [ ]", "- [x]"))
}

/// The answer to one request: the plan's next patch, one call an answer
/// (Codex runs the calls of one answer in parallel, and two patches making
/// directories side by side failed now and then; an agent working step by
/// step is the common case anyway), then a message once every patch has
/// had its output.
fn next_step(plan: &Plan, task: Option<&Task>, req: &Request, n: usize) -> Vec<Value> {
    let patches = match (&plan.kind, task) {
        (PlanKind::Reply(text), _) => return vec![message(n, text)],
        (PlanKind::DoTask, None) => {
            return vec![message(
                n,
                "The scripted model found no gtmd task (`- task_id:`) in the request.",
            )]
        }
        (_, task) => patches(plan, task),
    };
    let done = calls_made(req);
    match patches.into_iter().nth(done) {
        Some(p) => vec![patch_call(n, done, p)],
        None => vec![message(n, &summary(task))],
    }
}

/// Every patch of the plan, in order; the status last.
fn patches(plan: &Plan, task: Option<&Task>) -> Vec<String> {
    let mut patches: Vec<String> = Vec::new();
    match (&plan.kind, task) {
        (PlanKind::Patch(p), _) => patches.push(p.clone()),
        (PlanKind::Write(files), _) => {
            patches.extend(files.iter().map(|(p, c)| add_file(p, c)));
        }
        (PlanKind::DoTask, Some(t)) => {
            for out in &t.outputs {
                let file = if out.ends_with('/') {
                    format!("{out}item.md")
                } else {
                    out.clone()
                };
                patches.push(add_file(&file, &output_content(&file, t)));
            }
            if let Some(gate) = &t.gate {
                if let Some(text) = ticked_gate(t, gate) {
                    patches.push(add_file(gate, &text));
                }
            }
        }
        (PlanKind::DoTask, None) | (PlanKind::Reply(_), _) => {}
    }
    for p in &plan.trespass {
        patches.push(add_file(
            p,
            &format!("Written by the scripted model where it should not ({p}).\n"),
        ));
    }
    if let (PlanKind::DoTask, Some(t)) = (&plan.kind, task) {
        let status = status_content(t, &plan.status);
        patches.push(add_file(&format!("status/{}.md", t.agent), &status));
    }
    patches
}

/// The answer as server-sent events: `response.created`, one
/// `response.output_item.done` per item, `response.completed` with the usage.
fn sse(n: usize, items: &[Value], usage: Usage) -> String {
    let id = format!("resp_fake_{n:03}");
    let mut events = vec![(
        "response.created",
        json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}}),
    )];
    for (i, item) in items.iter().enumerate() {
        events.push((
            "response.output_item.done",
            json!({"type": "response.output_item.done", "output_index": i, "item": item}),
        ));
    }
    events.push((
        "response.completed",
        json!({"type": "response.completed",
               "response": {"id": id, "status": "completed", "usage": usage.json()}}),
    ));
    events
        .iter()
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .collect()
}
