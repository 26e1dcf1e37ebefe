//! Who may see the web view and act through it.
//!
//! Safe by default: without a token the view answers only on a loopback
//! address, and only to requests that name a loopback host (so a page on
//! another site cannot reach it by pointing its own name at 127.0.0.1). With
//! a token file (`--http-token-file`, one token or `label:token` per line)
//! every request needs a token, as `Authorization: Bearer TOKEN` or as the
//! session cookie the login form sets; only the login form and the two
//! static assets answer without one. A non-loopback address without a token
//! is refused at start. Every state-changing request is a POST carrying a
//! CSRF token derived from the session, checked in constant time; a page
//! from another origin can neither read it nor guess it.

use super::App;
use axum::extract::{Form, FromRequestParts, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The shortest token accepted: one that cannot be guessed.
const MIN_TOKEN: usize = 16;
/// Sessions kept at once (the oldest go first).
const MAX_SESSIONS: usize = 1024;
const COOKIE: &str = "gtmd_session";

/// `--http`, `--http-token-file`, `--http-read-only`, validated.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    pub tokens: Vec<Token>,
    pub read_only: bool,
}

#[derive(Clone)]
pub struct Token {
    /// Who holds it, as actions record it (`label:token` lines).
    pub label: Option<String>,
    hash: blake3::Hash,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?})", self.label)
    }
}

/// Why the web view's options were refused, before anything started.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("refusing to serve the web view on {0} without a token: anyone who can reach that address could approve gates and rule on conflicts. Give --http-token-file FILE (a token of at least {MIN_TOKEN} characters, or `label:token` lines), or listen on a loopback address such as 127.0.0.1:8421")]
    OpenToTheNetwork(SocketAddr),
    #[error("cannot read the token file {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{}:{line}: a token must be at least {MIN_TOKEN} characters", file.display())]
    Short { file: PathBuf, line: usize },
    #[error("{}: no token in it (one token, or `label:token` lines)", .0.display())]
    Empty(PathBuf),
}

impl HttpOptions {
    pub fn new(
        addr: SocketAddr,
        token_file: Option<&Path>,
        read_only: bool,
    ) -> Result<HttpOptions, OptionsError> {
        let tokens = match token_file {
            Some(f) => read_tokens(f)?,
            None => Vec::new(),
        };
        if tokens.is_empty() && !addr.ip().is_loopback() {
            return Err(OptionsError::OpenToTheNetwork(addr));
        }
        Ok(HttpOptions {
            addr,
            tokens,
            read_only,
        })
    }
}

fn read_tokens(file: &Path) -> Result<Vec<Token>, OptionsError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| OptionsError::Read(file.to_path_buf(), e))?;
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (label, token) = match line.split_once(':') {
            Some((l, t)) if is_label(l.trim()) => (Some(l.trim().to_string()), t.trim()),
            _ => (None, line),
        };
        if token.chars().count() < MIN_TOKEN {
            return Err(OptionsError::Short {
                file: file.to_path_buf(),
                line: i + 1,
            });
        }
        tokens.push(Token {
            label,
            hash: blake3::hash(token.as_bytes()),
        });
    }
    if tokens.is_empty() {
        return Err(OptionsError::Empty(file.to_path_buf()));
    }
    Ok(tokens)
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | ' ' | '@'))
}

/// The access rules of one server, and its sessions.
pub struct Access {
    tokens: Vec<Token>,
    /// Keys the CSRF tokens; new at each start.
    secret: [u8; 32],
    sessions: Mutex<Sessions>,
    port: u16,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Option<String>>,
    order: VecDeque<String>,
}

/// Who is asking: the token's label, if any, and the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub struct Who {
    pub label: Option<String>,
    pub csrf: String,
    /// Signed in with a session cookie (so there is something to sign out of).
    pub session: bool,
}

/// What a page needs to know of who looks at it, and when.
pub struct PageCtx {
    /// The time of the request: ages are counted to it.
    pub now: crate::engine::Millis,
    pub csrf: String,
    pub label: Option<String>,
    pub read_only: bool,
    pub session: bool,
}

impl Who {
    pub(super) fn page(&self, app: &App) -> PageCtx {
        PageCtx {
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            csrf: self.csrf.clone(),
            label: self.label.clone(),
            read_only: app.0.read_only,
            session: self.session,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = StatusCode;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Who>()
            .cloned()
            .ok_or(StatusCode::UNAUTHORIZED)
    }
}

impl Access {
    pub fn new(options: HttpOptions, bound: SocketAddr) -> Access {
        Access {
            tokens: options.tokens,
            secret: random_bytes(),
            sessions: Mutex::new(Sessions::default()),
            port: bound.port(),
        }
    }

    fn who(&self, key: &str, label: Option<String>, session: bool) -> Who {
        Who {
            label,
            csrf: self.csrf_for(key).to_hex().to_string(),
            session,
        }
    }

    fn csrf_for(&self, key: &str) -> blake3::Hash {
        blake3::keyed_hash(&self.secret, format!("csrf:{key}").as_bytes())
    }

    /// Whether `given` is the CSRF token of `who` (constant time).
    pub fn csrf_ok(&self, who: &Who, given: &str) -> bool {
        match (
            blake3::Hash::from_hex(given.trim()),
            blake3::Hash::from_hex(&who.csrf),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    fn token(&self, given: &str) -> Option<(usize, &Token)> {
        let h = blake3::hash(given.trim().as_bytes());
        // Compare with every token, not stopping at the first: the time
        // taken says nothing of which one matched.
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if t.hash == h {
                found = Some((i, t));
            }
        }
        found
    }

    /// Who a request comes from, or `None` when it may not come in.
    fn identify(&self, headers: &HeaderMap) -> Option<Who> {
        if self.tokens.is_empty() {
            return self
                .loopback_host(headers)
                .then(|| self.who("anonymous", None, false));
        }
        if let Some(bearer) =
            header_str(headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "))
        {
            let (i, t) = self.token(bearer)?;
            return Some(self.who(&format!("bearer:{i}"), t.label.clone(), false));
        }
        let id = cookie(headers, COOKIE)?;
        let label = self.lock().by_id.get(id).cloned()?;
        Some(self.who(&format!("session:{id}"), label, true))
    }

    /// With no token, only a loopback host name is answered: a page whose
    /// own name resolves to 127.0.0.1 (DNS rebinding) gets nothing.
    fn loopback_host(&self, headers: &HeaderMap) -> bool {
        let Some(host) = header_str(headers, header::HOST) else {
            return false;
        };
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !name.ends_with(':') && port.parse::<u16>().is_ok() => {
                if port.parse::<u16>() != Ok(self.port) {
                    return false;
                }
                name
            }
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name.eq_ignore_ascii_case("localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open_session(&self, label: Option<String>) -> String {
        let id = hex(&random_bytes());
        let mut s = self.lock();
        while s.order.len() >= MAX_SESSIONS {
            if let Some(old) = s.order.pop_front() {
                s.by_id.remove(&old);
            }
        }
        s.by_id.insert(id.clone(), label);
        s.order.push_back(id.clone());
        id
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn random_bytes() -> [u8; 32] {
    use std::io::Read;
    let mut b = [0u8; 32];
    // The kernel's random source; without it there is no secret to keep.
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom is readable");
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Let in only who may come in: the identity goes with the request as
/// [`Who`]. A page asked for without a token goes to the login form.
pub(super) async fn guard(State(app): State<App>, mut req: Request, next: Next) -> Response {
    match app.0.access.identify(req.headers()) {
        Some(who) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        None if app.0.access.tokens.is_empty() => (
            StatusCode::MISDIRECTED_REQUEST,
            "this web view answers only to a loopback host name (localhost, 127.0.0.1, [::1])\n",
        )
            .into_response(),
        None if req.method() == Method::GET && req.uri().path() != "/events" => {
            Redirect::to("/login").into_response()
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a token is needed: sign in at /login, or send Authorization: Bearer TOKEN\n",
        )
            .into_response(),
    }
}

/// Headers on every answer: nothing runs but our own script, nothing frames
/// the page, nothing is guessed from content, nothing leaks as a referrer.
pub(super) async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

pub(super) async fn login_page(State(app): State<App>) -> Response {
    if app.0.access.tokens.is_empty() {
        return Redirect::to("/").into_response();
    }
    super::pages::login(None).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

pub(super) async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Response {
    let access = &app.0.access;
    if access.tokens.is_empty() {
        return Redirect::to("/").into_response();
    }
    match access.token(&form.token) {
        Some((_, t)) => {
            let id = access.open_session(t.label.clone());
            let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        None => (
            StatusCode::UNAUTHORIZED,
            super::pages::login(Some("That is not a token of this web view.")),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(app): State<App>,
    who: Who,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if !app.0.access.csrf_ok(&who, &form.csrf) {
        return super::actions::refuse_csrf().into_response();
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        let mut s = app.0.access.lock();
        s.by_id.remove(id);
        s.order.retain(|x| x != id);
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(tokens: &str) -> Access {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(&f, tokens).unwrap();
        let addr: SocketAddr = "127.0.0.1:8421".parse().unwrap();
        Access::new(HttpOptions::new(addr, Some(&f), false).unwrap(), addr)
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_non_loopback_address_needs_a_token_and_short_tokens_are_refused() {
        let open: SocketAddr = "0.0.0.0:8421".parse().unwrap();
        let e = HttpOptions::new(open, None, false).unwrap_err();
        assert!(e.to_string().contains("without a token"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "ops:short\n").unwrap();
        let e = HttpOptions::new(open, Some(&f), false).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("t:1: a token must be at least 16 characters"),
            "{e}"
        );
        std::fs::write(&f, "# tokens\n\n").unwrap();
        assert!(matches!(
            HttpOptions::new(open, Some(&f), false),
            Err(OptionsError::Empty(_))
        ));
    }

    #[test]
    fn tokens_with_labels_bearer_and_sessions() {
        let a = access("# who\nops: 0123456789abcdef0123\nplain-token-without-label\n");
        assert_eq!(a.tokens.len(), 2);
        assert!(a.identify(&HeaderMap::new()).is_none());
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer 0123456789abcdef0123")]);
        let who = a.identify(&bearer).unwrap();
        assert_eq!(who.label.as_deref(), Some("ops"));
        assert!(a.csrf_ok(&who, &who.csrf));
        assert!(!a.csrf_ok(&who, "00"));
        let who = a
            .identify(&headers(&[(
                header::AUTHORIZATION,
                "Bearer plain-token-without-label",
            )]))
            .unwrap();
        assert_eq!(who.label, None);
        assert!(a
            .identify(&headers(&[(
                header::AUTHORIZATION,
                "Bearer wrong-token-wrong-token"
            )]))
            .is_none());
        let id = a.open_session(Some("ops".into()));
        let c = format!("theme=dark; {COOKIE}={id}");
        let who = a.identify(&headers(&[(header::COOKIE, &c)])).unwrap();
        assert!(who.session);
        // Another session has another CSRF token.
        let other = a.open_session(Some("ops".into()));
        let c2 = format!("{COOKIE}={other}");
        let who2 = a.identify(&headers(&[(header::COOKIE, &c2)])).unwrap();
        assert!(!a.csrf_ok(&who2, &who.csrf));
    }

    #[test]
    fn without_a_token_only_loopback_host_names_are_answered() {
        let addr: SocketAddr = "127.0.0.1:8421".parse().unwrap();
        let a = Access::new(HttpOptions::new(addr, None, false).unwrap(), addr);
        for ok in [
            "127.0.0.1:8421",
            "localhost:8421",
            "[::1]:8421",
            "localhost",
        ] {
            assert!(
                a.identify(&headers(&[(header::HOST, ok)])).is_some(),
                "{ok}"
            );
        }
        for bad in ["evil.example:8421", "127.0.0.1:9999", "evil.example"] {
            assert!(
                a.identify(&headers(&[(header::HOST, bad)])).is_none(),
                "{bad}"
            );
        }
        assert!(a.identify(&HeaderMap::new()).is_none());
    }
}
