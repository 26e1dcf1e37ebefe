//! A scripted Anthropic Messages API, so that the claude-code runtime is
//! tested through the real Claude Code CLI without a real model: the CLI is
//! the thing under test (its argv, permission rules, result events and
//! costs), only the model's answers are made up.
//!
//! An HTTP/1.1 server on 127.0.0.1 (an ephemeral port) in a thread, stopped
//! when dropped. It answers `POST /v1/messages` with server-sent events as the
//! real API streams them, logs every request (path, headers, JSON body) for
//! assertions, and follows a [`Script`]:
//!
//! ```ignore
//! let model = FakeModel::start(
//!     Script::do_task()                       // Read + Write each output and the status
//!         .usage(Usage::new(1000, 200))       // reported for every answer
//!         .fail_first(1, ApiError::Overloaded) // 529 for the first request, then as above
//!         .agent("brand-messaging", Plan::do_task().trespass(&["status/coordinator.md"])),
//! );
//! // ANTHROPIC_BASE_URL = model.base_url()
//! // the CLI's total_cost_usd == model.answers() as f64 * Usage::new(1000, 200).cost_usd(OPUS)
//! ```
//!
//! The fake keeps no conversation state: like the real API it reads each
//! request whole. A request whose last user message carries tool results is
//! the agent's second turn (it answers `end_turn` with a summary); any other
//! is a first turn (it answers with tool calls). So a CLI retry, a second
//! attempt of a task or a `--resume` all behave as an agent would.
//!
//! What it reads in a request (the CLI sends gtmd's prompt file, given with
//! `--append-system-prompt-file`, at the end of its system prompt; the task
//! text is the user message):
//! - the working directory: `Primary working directory: /abs` (default
//!   system prompt), `CWD: /abs` (`--bare`), or `working directory: /abs`;
//! - gtmd's task: `- task_id: \`ID\``, the agent from `Write \`status/AGENT.md\``
//!   (else `# Task ID for AGENT`), the backticked paths under
//!   `## Expected outputs`, the status template (the ```yaml block after
//!   `Write \`status/…\``), and a gate to tick (`tick … in strategy/gates/…`).

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Token counts the fake reports for one answer, in `message_start` and again
/// in `message_delta` (Claude Code takes the delta's counts where present, so
/// both say the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
        }
    }

    pub const fn with_cache(self, read: u64, creation: u64) -> Usage {
        Usage {
            cache_read_input_tokens: read,
            cache_creation_input_tokens: creation,
            ..self
        }
    }

    /// What Claude Code reports as `total_cost_usd` for one answer with this
    /// usage at `prices` (tests/fixtures/claude/FACTS.md, "Pricing").
    pub fn cost_usd(&self, prices: Prices) -> f64 {
        (self.input_tokens as f64 * prices.input
            + self.output_tokens as f64 * prices.output
            + self.cache_read_input_tokens as f64 * prices.cache_read
            + self.cache_creation_input_tokens as f64 * prices.cache_write)
            / 1_000_000.0
    }

    fn json(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
        })
    }
}

/// A model's prices in dollars per million tokens, as Claude Code 2.1.197
/// applies them to the usage a server reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    /// Cache creation (5-minute cache): 1.25 × input.
    pub cache_write: f64,
}

/// The default model (`claude-opus-4-8[1m]`), `opus`, `claude-opus-4-5`, and
/// any model name the CLI does not know (`claude-foo-1`).
pub const OPUS: Prices = Prices {
    input: 5.0,
    output: 25.0,
    cache_read: 0.5,
    cache_write: 6.25,
};
/// `sonnet` (`claude-sonnet-5`), `claude-sonnet-4-5`, `claude-sonnet-4-6`.
pub const SONNET: Prices = Prices {
    input: 3.0,
    output: 15.0,
    cache_read: 0.3,
    cache_write: 3.75,
};
/// `haiku` (`claude-haiku-4-5-20251001`), `claude-haiku-4-5`.
pub const HAIKU: Prices = Prices {
    input: 1.0,
    output: 5.0,
    cache_read: 0.1,
    cache_write: 1.25,
};

/// An error the fake answers instead of a message, with the status and the
/// JSON body the real API sends.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// 529 `overloaded_error`.
    Overloaded,
    /// 429 `rate_limit_error`.
    RateLimited,
    /// 401 `authentication_error`.
    Unauthorized,
    /// 500 `api_error`.
    Internal,
    /// Any other: status, error type, message.
    Other(u16, String, String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Overloaded => 529,
            ApiError::RateLimited => 429,
            ApiError::Unauthorized => 401,
            ApiError::Internal => 500,
            ApiError::Other(s, _, _) => *s,
        }
    }

    /// The error's `type` and `message` in the body.
    pub fn kind_and_message(&self) -> (&str, &str) {
        match self {
            ApiError::Overloaded => ("overloaded_error", "Overloaded"),
            ApiError::RateLimited => (
                "rate_limit_error",
                "This request would exceed your organization's rate limit",
            ),
            ApiError::Unauthorized => ("authentication_error", "invalid x-api-key"),
            ApiError::Internal => ("api_error", "Internal server error"),
            ApiError::Other(_, kind, message) => (kind, message),
        }
    }

    fn body(&self) -> String {
        let (kind, message) = self.kind_and_message();
        json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
    }
}

/// What the model does for a task (the first turn; the second turn always
/// ends with a text summary).
#[derive(Clone, Debug)]
pub struct Plan {
    kind: PlanKind,
    trespass: Vec<String>,
    calls: Vec<(String, Value)>,
    status: String,
    errors: VecDeque<ApiError>,
}

#[derive(Clone, Debug)]
enum PlanKind {
    /// Each expected output, a gate to tick, then the status file.
    DoTask,
    /// Exactly these files, no status.
    Write(Vec<(String, String)>),
    /// No tool call: this text and `end_turn`.
    Reply(String),
}

impl Plan {
    /// Do the task as an agent would: Read then Write each expected output
    /// (`dir/` as `dir/item.md`, with content that passes gtmd's automatic
    /// gate checks), tick every box of a gate it is asked to review (Read,
    /// then Edit with `replace_all`), and last Read then Write
    /// `status/<agent>.md` from the task's template with `status: complete`.
    pub fn do_task() -> Plan {
        Plan {
            kind: PlanKind::DoTask,
            trespass: Vec::new(),
            calls: Vec::new(),
            status: "complete".into(),
            errors: VecDeque::new(),
        }
    }

    /// Read then Write exactly these files (relative to the working
    /// directory, or absolute), and nothing else.
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

    /// Answer with this text and no tool call.
    pub fn reply(text: &str) -> Plan {
        Plan {
            kind: PlanKind::Reply(text.into()),
            ..Plan::do_task()
        }
    }

    /// Also Read then Write these paths, which the agent does not own (another
    /// agent's status, a gate, `.gtmd/journal.jsonl`), before its status.
    pub fn trespass(mut self, paths: &[&str]) -> Plan {
        self.trespass.extend(paths.iter().map(|p| p.to_string()));
        self
    }

    /// Also call this tool with this input (`Bash` with `{"command": …}`,
    /// `Edit`, …), after the trespasses and before the status. A relative
    /// `file_path` in the input is made absolute against the working
    /// directory.
    pub fn call(mut self, tool: &str, input: Value) -> Plan {
        self.calls.push((tool.into(), input));
        self
    }

    /// The `status:` the status file says (`complete` by default).
    pub fn status(mut self, status: &str) -> Plan {
        self.status = status.into();
        self
    }

    /// Answer this plan's first `n` requests with `err` (after any errors of
    /// the script itself).
    pub fn fail_first(mut self, n: usize, err: ApiError) -> Plan {
        self.errors.extend(std::iter::repeat_n(err, n));
        self
    }
}

/// The model's whole behaviour: a plan for every task, plans for some agents
/// or tasks, errors first, the usage of each answer, a delay before each.
#[derive(Clone, Debug)]
pub struct Script {
    default: Plan,
    /// (agent or task id, plan): the first whose key matches wins.
    overrides: Vec<(Match, Plan)>,
    errors: VecDeque<ApiError>,
    usage: Usage,
    delay: Duration,
}

#[derive(Clone, Debug)]
enum Match {
    Agent(String),
    TaskContains(String),
}

/// The usage of each answer unless a script says otherwise: round numbers so
/// that a test can work the cost out by hand.
pub const DEFAULT_USAGE: Usage = Usage::new(1000, 100);

impl Script {
    pub fn new(plan: Plan) -> Script {
        Script {
            default: plan,
            overrides: Vec::new(),
            errors: VecDeque::new(),
            usage: DEFAULT_USAGE,
            delay: Duration::ZERO,
        }
    }

    /// Every task done as [`Plan::do_task`] says.
    pub fn do_task() -> Script {
        Script::new(Plan::do_task())
    }

    /// Every request answered with this text and no tool call.
    pub fn reply(text: &str) -> Script {
        Script::new(Plan::reply(text))
    }

    /// This agent's tasks follow `plan`.
    pub fn agent(mut self, agent: &str, plan: Plan) -> Script {
        self.overrides.push((Match::Agent(agent.into()), plan));
        self
    }

    /// Tasks whose id contains `part` (`-gate-`, `t0003-`) follow `plan`.
    pub fn task(mut self, part: &str, plan: Plan) -> Script {
        self.overrides
            .push((Match::TaskContains(part.into()), plan));
        self
    }

    /// Answer the first `n` Messages requests, whoever sends them, with `err`.
    pub fn fail_first(mut self, n: usize, err: ApiError) -> Script {
        self.errors.extend(std::iter::repeat_n(err, n));
        self
    }

    /// The usage reported for each answer.
    pub fn usage(mut self, usage: Usage) -> Script {
        self.usage = usage;
        self
    }

    /// Wait this long before each answer (a task that is still running when
    /// a test cancels it, or runs past a timeout).
    pub fn delay(mut self, delay: Duration) -> Script {
        self.delay = delay;
        self
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// With its query (`/v1/messages?beta=true`).
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    /// The JSON body, or `Value::Null` when there was none or it was not JSON.
    pub body: Value,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A `POST /v1/messages` (not `count_tokens`).
    pub fn is_messages(&self) -> bool {
        self.method == "POST" && self.path.split('?').next() == Some("/v1/messages")
    }

    /// The system prompt's text, its blocks joined.
    pub fn system_text(&self) -> String {
        texts(&self.body["system"]).join("\n")
    }

    /// The text of each message, oldest first, with its role (tool results
    /// included, as their text).
    pub fn message_texts(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        let role = m["role"].as_str().unwrap_or_default().to_string();
                        (role, texts(&m["content"]).join("\n"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names of the tools offered to the model.
    pub fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The text of a `content` or `system` value: a string, or blocks with `text`
/// (tool results' `content` too).
fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .flat_map(|b| {
                if let Some(t) = b["text"].as_str() {
                    vec![t.to_string()]
                } else {
                    texts(&b["content"])
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

struct State {
    script: Script,
    /// Errors still to answer per override (by index; the last is the default).
    plan_errors: Vec<VecDeque<ApiError>>,
    log: Vec<Request>,
    answers: usize,
    errors_sent: usize,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

/// The server. Dropping it stops it.
pub struct FakeModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FakeModel {
    pub fn start(script: Script) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake model");
        let addr = listener.local_addr().unwrap();
        let mut plan_errors: Vec<VecDeque<ApiError>> = script
            .overrides
            .iter()
            .map(|(_, p)| p.errors.clone())
            .collect();
        plan_errors.push(script.default.errors.clone());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                script,
                plan_errors,
                log: Vec::new(),
                answers: 0,
                errors_sent: 0,
            }),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fake-model".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    let _ = std::thread::Builder::new()
                        .name("fake-model-conn".into())
                        .spawn(move || serve_connection(conn, &s.stop, |req| respond(req, &s)));
                }
            })
            .unwrap();
        FakeModel {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// For `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().unwrap().log.clone()
    }

    /// The `POST /v1/messages` requests so far.
    pub fn messages(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_messages)
            .collect()
    }

    /// Messages requests answered with a message (each reported the script's
    /// usage once), errors not counted.
    pub fn answers(&self) -> usize {
        self.shared.state.lock().unwrap().answers
    }

    /// Messages requests answered with an error.
    pub fn errors_sent(&self) -> usize {
        self.shared.state.lock().unwrap().errors_sent
    }

    /// The usage each answer reports.
    pub fn usage(&self) -> Usage {
        self.shared.state.lock().unwrap().script.usage
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // accept() blocks: a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Requests on one connection until the client closes it (the CLI keeps its
/// connections alive) or `stop` is set, each answered by `respond` (shared
/// with the scripted Responses API, `super::fake_responses`).
pub fn serve_connection(conn: TcpStream, stop: &AtomicBool, respond: impl Fn(&Request) -> Vec<u8>) {
    // Idle reads time out so that a connection left open notices the stop;
    // once a request has begun it is read whole.
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut out = conn;
    loop {
        match reader.fill_buf() {
            Ok([]) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        }
        let _ = out.set_read_timeout(Some(Duration::from_secs(30)));
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        let _ = out.set_read_timeout(Some(Duration::from_millis(100)));
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = respond(&req);
        if out.write_all(&response).and_then(|_| out.flush()).is_err() || close {
            return;
        }
    }
}

pub fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// An HTTP/1.1 response with a body.
pub fn http(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nrequest-id: req_fake\r\ncache-control: no-cache\r\nconnection: keep-alive\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn respond(req: &Request, shared: &Shared) -> Vec<u8> {
    let route = req.path.split('?').next().unwrap_or_default();
    // What to answer is decided under the lock, the delay waited outside it
    // so that parallel agents are answered in parallel.
    let decided = {
        let mut st = shared.state.lock().unwrap();
        st.log.push(req.clone());
        match (req.method.as_str(), route) {
            ("POST", "/v1/messages") => Some(decide(req, &mut st)),
            _ => None,
        }
    };
    match (req.method.as_str(), route, decided) {
        (_, _, Some((delay, answer))) => {
            if !delay.is_zero() {
                sleep_unless_stopped(delay, shared);
            }
            answer
        }
        ("POST", "/v1/messages/count_tokens", _) => http(
            200,
            "application/json",
            json!({"input_tokens": DEFAULT_USAGE.input_tokens})
                .to_string()
                .as_bytes(),
        ),
        // The CLI's HEAD / before its first request: any answer will do.
        ("HEAD" | "GET", "/", _) => http(200, "text/plain", b""),
        _ => http(
            404,
            "application/json",
            ApiError::Other(404, "not_found_error".into(), format!("no {route} here"))
                .body()
                .as_bytes(),
        ),
    }
}

fn sleep_unless_stopped(d: Duration, shared: &Shared) {
    let deadline = std::time::Instant::now() + d;
    while std::time::Instant::now() < deadline && !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The answer to one Messages request, and the delay before it.
fn decide(req: &Request, st: &mut State) -> (Duration, Vec<u8>) {
    let delay = st.script.delay;
    let task = Task::from_request(req);
    let index = st
        .script
        .overrides
        .iter()
        .position(|(m, _)| match (m, &task) {
            (Match::Agent(a), Some(t)) => t.agent == *a,
            (Match::TaskContains(part), Some(t)) => t.id.contains(part.as_str()),
            _ => false,
        })
        .unwrap_or(st.script.overrides.len());
    let err = match st.script.errors.pop_front() {
        Some(e) => Some(e),
        None => st.plan_errors[index].pop_front(),
    };
    if let Some(err) = err {
        st.errors_sent += 1;
        return (
            delay,
            http(err.status(), "application/json", err.body().as_bytes()),
        );
    }
    let plan = match st.script.overrides.get(index) {
        Some((_, p)) => p.clone(),
        None => st.script.default.clone(),
    };
    st.answers += 1;
    let n = st.answers;
    let blocks = if after_tools(req) {
        vec![Block::Text(summary(task.as_ref()))]
    } else {
        first_turn(&plan, req, task.as_ref(), n)
    };
    let model = req.body["model"]
        .as_str()
        .unwrap_or("claude-fake")
        .to_string();
    let usage = st.script.usage;
    let stream = req.body["stream"].as_bool().unwrap_or(false);
    let answer = if stream {
        http(
            200,
            "text/event-stream",
            sse(&model, n, &blocks, usage).as_bytes(),
        )
    } else {
        http(
            200,
            "application/json",
            message_json(&model, n, &blocks, usage)
                .to_string()
                .as_bytes(),
        )
    };
    (delay, answer)
}

/// Whether the request's last user message carries tool results: the agent
/// has acted and ends its turn.
fn after_tools(req: &Request) -> bool {
    let Some(msgs) = req.body["messages"].as_array() else {
        return false;
    };
    msgs.iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
}

/// What the fake understood of gtmd's task from a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Task {
    pub id: String,
    pub agent: String,
    /// Workspace paths as listed (`dir/` for a directory).
    pub outputs: Vec<String>,
    /// The status file's YAML, as the prompt's template gives it.
    pub status_template: Option<String>,
    /// A gate file the task asks to tick.
    pub gate: Option<String>,
    /// The absolute working directory the CLI says it runs in.
    pub cwd: Option<String>,
}

impl Task {
    /// The task in the system prompt (gtmd's prompt file), else in the
    /// latest user message that names one (a resumed session carries older
    /// tasks too).
    pub fn from_request(req: &Request) -> Option<Task> {
        let system = req.system_text();
        let msgs = req.message_texts();
        let mut texts: Vec<&str> = vec![&system];
        texts.extend(
            msgs.iter()
                .rev()
                .filter(|(role, _)| role == "user")
                .map(|(_, t)| t.as_str()),
        );
        let mut task = texts.iter().find_map(|t| Task::parse(t))?;
        task.cwd = std::iter::once(system.as_str())
            .chain(msgs.iter().map(|(_, t)| t.as_str()))
            .find_map(working_directory);
        Some(task)
    }

    /// gtmd's task in a prompt (`src/runner/prompt.rs`).
    pub fn parse(text: &str) -> Option<Task> {
        let id = between(text, "- task_id: `", "`")?.to_string();
        let agent = between(text, "Write `status/", ".md`")
            .map(String::from)
            .or_else(|| {
                let line = text
                    .lines()
                    .find(|l| l.starts_with("# Task ") && l.contains(" for "))?;
                Some(line.rsplit(" for ").next()?.trim().to_string())
            })?;
        let mut outputs = Vec::new();
        let mut in_outputs = false;
        for line in text.lines() {
            if line.starts_with("## ") {
                in_outputs = line.starts_with("## Expected outputs");
                continue;
            }
            if in_outputs {
                if let Some(p) = line
                    .trim()
                    .strip_prefix("- `")
                    .and_then(|l| l.strip_suffix('`'))
                {
                    outputs.push(p.to_string());
                }
            }
        }
        let status_template = text
            .find("Write `status/")
            .and_then(|i| between(&text[i..], "```yaml\n", "```"))
            .map(String::from);
        let gate = text
            .find("tick")
            .and_then(|i| text[i..].find("strategy/gates/").map(|j| i + j))
            .map(|i| {
                text[i..]
                    .split(|c: char| c.is_whitespace() || c == '`' || c == ',')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('.')
                    .to_string()
            });
        Some(Task {
            id,
            agent,
            outputs,
            status_template,
            gate,
            cwd: None,
        })
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = text.find(start)? + start.len();
    let j = text[i..].find(end)?;
    Some(&text[i..i + j])
}

/// The working directory the CLI tells the model about.
fn working_directory(text: &str) -> Option<String> {
    [
        "Primary working directory: ",
        "CWD: ",
        "working directory: ",
    ]
    .iter()
    .find_map(|m| {
        let i = text.find(m)? + m.len();
        let dir = text[i..].lines().next()?.trim();
        dir.starts_with('/').then(|| dir.to_string())
    })
}

enum Block {
    Text(String),
    Tool {
        id: String,
        name: String,
        input: Value,
    },
}

fn summary(task: Option<&Task>) -> String {
    match task {
        Some(t) => format!("Done: task {} for {}.", t.id, t.agent),
        None => "Done.".into(),
    }
}

/// The tool calls of one answer, numbered so that ids are unique per answer.
struct Calls {
    blocks: Vec<Block>,
    answer: usize,
    cwd: Option<String>,
}

impl Calls {
    fn abs(&self, p: &str) -> String {
        match (&self.cwd, p.starts_with('/')) {
            (Some(dir), false) => format!("{}/{}", dir.trim_end_matches('/'), p),
            _ => p.to_string(),
        }
    }

    fn tool(&mut self, name: &str, input: Value) {
        let k = self.blocks.len();
        self.blocks.push(Block::Tool {
            id: format!("toolu_fake_{:03}_{k:02}", self.answer),
            name: name.to_string(),
            input,
        });
    }

    /// Read first: the CLI writes over no file it has not read in the session.
    fn read_write(&mut self, path: &str, content: String) {
        let abs = self.abs(path);
        self.tool("Read", json!({"file_path": abs}));
        self.tool("Write", json!({"file_path": abs, "content": content}));
    }

    fn tick_gate(&mut self, path: &str) {
        let abs = self.abs(path);
        self.tool("Read", json!({"file_path": abs}));
        self.tool(
            "Edit",
            json!({"file_path": abs, "old_string": "- [ ]", "new_string": "- [x]", "replace_all": true}),
        );
    }
}

fn first_turn(plan: &Plan, req: &Request, task: Option<&Task>, answer: usize) -> Vec<Block> {
    let cwd = task
        .and_then(|t| t.cwd.clone())
        .or_else(|| working_directory(&req.system_text()));
    let mut calls = Calls {
        blocks: Vec::new(),
        answer,
        cwd,
    };
    match (&plan.kind, task) {
        (PlanKind::Reply(text), _) => return vec![Block::Text(text.clone())],
        (PlanKind::Write(files), _) => {
            calls.blocks.push(Block::Text("Writing the files.".into()));
            for (p, c) in files {
                calls.read_write(p, c.clone());
            }
        }
        (PlanKind::DoTask, None) => {
            return vec![Block::Text(
                "The scripted model found no gtmd task (`- task_id:`) in the request.".into(),
            )]
        }
        (PlanKind::DoTask, Some(t)) => {
            calls
                .blocks
                .push(Block::Text(format!("Working on {}.", t.id)));
            for out in &t.outputs {
                let file = if out.ends_with('/') {
                    format!("{out}item.md")
                } else {
                    out.clone()
                };
                calls.read_write(&file, output_content(&file, t));
            }
            if let Some(gate) = &t.gate {
                calls.tick_gate(gate);
            }
        }
    }
    for p in &plan.trespass {
        calls.read_write(
            p,
            format!("Written by the scripted model where it should not ({p}).\n"),
        );
    }
    for (tool, input) in &plan.calls {
        let mut input = input.clone();
        if let Some(p) = input["file_path"].as_str() {
            input["file_path"] = json!(calls.abs(p));
        }
        calls.tool(tool, input);
    }
    // The status last: gtmd takes it as the task's end.
    if let (PlanKind::DoTask, Some(t)) = (&plan.kind, task) {
        calls.read_write(
            &format!("status/{}.md", t.agent),
            status_content(t, &plan.status),
        );
    }
    calls.blocks
}

/// Content that passes gtmd's automatic gate checks, as the shell agent of
/// the tests writes it (tests/fixtures/agent.sh).
pub fn output_content(file: &str, t: &Task) -> String {
    if file == "strategy/budget-allocation.md" {
        return "# Budget allocation\n\n| Channel | Monthly budget | Rationale |\n|---|---|---|\n\
                | Paid search | $20,000 | High intent |\n| Paid social | $15,000 | Reach the persona |\n\
                | Content | $10,000 | Compounding organic |\n| Events | $5,000 | Community |\n\
                | **Total** | $50,000 | |\n"
            .into();
    }
    if file.starts_with("strategy/personas/") {
        return "# Persona: Devon the PM\n\n## Pain points\n- slow insight\n\n## Buying triggers\n- new funding\n\n## Objections\n- price\n".into();
    }
    format!(
        "# {file}\n\nWritten by {} for task {} (scripted model).\n\n\
         Persona coverage: Devon the PM. Pain points, buying triggers and objections are addressed.\n\
         Funnel: awareness, acquisition, activation, retention, revenue, referral.\n\
         Experiment: hypothesis, metrics, sample size 2,000 per arm, duration 14 days.\n",
        t.agent, t.id
    )
}

/// The task's status template filled in, else the fields gtmd needs.
pub fn status_content(t: &Task, status: &str) -> String {
    match &t.status_template {
        Some(tpl) => {
            tpl.lines()
                .map(|l| {
                    if l.starts_with("status:") {
                        format!("status: {status}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
        None => {
            let mut s = format!(
                "agent: {}\ntask_id: {}\nstatus: {status}\noutputs:\n",
                t.agent, t.id
            );
            for o in &t.outputs {
                s.push_str(&format!("  - {o}\n"));
            }
            if t.outputs.is_empty() {
                s.push_str("  []\n");
            }
            s
        }
    }
}

fn message_json(model: &str, n: usize, blocks: &[Block], usage: Usage) -> Value {
    let content: Vec<Value> = blocks
        .iter()
        .map(|b| match b {
            Block::Text(t) => json!({"type": "text", "text": t}),
            Block::Tool { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        })
        .collect();
    json!({
        "id": format!("msg_fake_{n:03}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(blocks),
        "stop_sequence": null,
        "usage": usage.json(),
    })
}

fn stop_reason(blocks: &[Block]) -> &'static str {
    if blocks.iter().any(|b| matches!(b, Block::Tool { .. })) {
        "tool_use"
    } else {
        "end_turn"
    }
}

/// The answer as the real API streams it: `message_start`, per block
/// `content_block_start`, one delta (`text_delta`, or `input_json_delta`
/// with the whole input), `content_block_stop`, then `message_delta` with the
/// stop reason and usage, `message_stop`.
fn sse(model: &str, n: usize, blocks: &[Block], usage: Usage) -> String {
    let mut events: Vec<(&str, Value)> = Vec::new();
    let mut start_usage = usage.json();
    start_usage["output_tokens"] = json!(1);
    events.push((
        "message_start",
        json!({"type": "message_start", "message": {
            "id": format!("msg_fake_{n:03}"), "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": start_usage}}),
    ));
    for (i, b) in blocks.iter().enumerate() {
        let (start, delta) = match b {
            Block::Text(t) => (
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": t}),
            ),
            Block::Tool { id, name, input } => (
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                json!({"type": "input_json_delta", "partial_json": input.to_string()}),
            ),
        };
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": start}),
        ));
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i, "delta": delta}),
        ));
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    events.push((
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason(blocks), "stop_sequence": null},
               "usage": usage.json()}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    events
        .iter()
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .collect()
}
