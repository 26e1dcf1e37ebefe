//! The web view (`gtmd run --http ADDR`): the team's work, live, in a
//! browser, and the two human jobs of the guide (approve a gate, rule on a
//! conflict) as forms that write files.
//!
//! It runs on the daemon's own tokio runtime but never touches the engine or
//! the journal. The daemon publishes a [`Snapshot`] after each batch of
//! events (throttled like the feed) through a `watch` channel, which never
//! blocks the sender: a page renders from the latest snapshot, and a slow or
//! stuck browser holds back nobody. A file's story comes from [`Stories`],
//! filled as the daemon handles events. Pages follow changes through
//! server-sent events: each says "there is a newer snapshot", and the page
//! fetches itself again.
//!
//! Actions are file writes on the bus through [`crate::fsutil`], exactly as
//! an editor's save, so the engine reacts through its ordinary pipeline:
//! there is no second way in. See [`access`] for who may do what.

pub mod access;
mod actions;
mod pages;
mod snapshot;
mod stories;
mod text;

pub use access::{Access, HttpOptions};
pub use snapshot::Snapshot;
pub use stories::{Recorder, Stories};

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why the web view could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} for the web view (--http)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The daemon's end: where it publishes snapshots and records stories.
pub struct Link {
    snapshots: watch::Sender<Arc<Snapshot>>,
    stories: Stories,
    /// The address the server listens on (the port, when 0 was asked for).
    pub addr: SocketAddr,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "web::Link({})", self.addr)
    }
}

impl Link {
    /// Replace the snapshot pages render from, and tell the pages open.
    /// Never waits: a `watch` channel keeps only the latest value.
    pub fn publish(&self, mut snapshot: Snapshot) {
        snapshot.version = self.snapshots.borrow().version + 1;
        self.snapshots.send_replace(Arc::new(snapshot));
    }

    /// What records each file's story as the daemon handles events.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.stories.clone())
    }
}

/// What the handlers share.
struct Shared {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    stories: Stories,
    access: Access,
    read_only: bool,
    workspace: PathBuf,
    state_dir: PathBuf,
    max_file_size: u64,
}

#[derive(Clone)]
struct App(Arc<Shared>);

impl App {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.0.snapshots.borrow().clone()
    }
}

/// Where the web view looks: the bus, gtmd's state (task logs), the size
/// limit for files it reads.
pub struct Paths {
    pub workspace: PathBuf,
    pub state_dir: PathBuf,
    pub max_file_size: u64,
}

/// Listen on `options.addr` and serve on the current tokio runtime (the
/// daemon's) until it ends. The caller gives the [`Link`] to the daemon.
pub async fn start(options: HttpOptions, paths: Paths) -> Result<Link, StartError> {
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: options.addr,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(options.addr);
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let stories = Stories::default();
    let read_only = options.read_only;
    let access = Access::new(options, addr);
    let app = App(Arc::new(Shared {
        snapshots: rx,
        stories: stories.clone(),
        access,
        read_only,
        workspace: paths.workspace,
        state_dir: paths.state_dir,
        max_file_size: paths.max_file_size,
    }));
    let router = router(app);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the web view stopped: {e}");
        }
    });
    Ok(Link {
        snapshots: tx,
        stories,
        addr,
    })
}

fn router(app: App) -> Router {
    let guarded = Router::new()
        .route("/", get(overview))
        .route("/events", get(events))
        .route("/file/{*path}", get(file))
        .route("/task/{id}", get(task))
        .route("/act/gate", post(actions::tick_gate))
        .route("/act/rule", post(actions::rule))
        .route("/act/cancel", post(actions::cancel))
        .route("/act/start", post(actions::start_run))
        .route("/logout", post(access::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::guard,
        ));
    Router::new()
        .merge(guarded)
        .route("/login", get(access::login_page).post(access::login))
        .route("/assets/style.css", get(style))
        .route("/assets/live.js", get(script))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::headers,
        ))
        .with_state(app)
}

async fn overview(State(app): State<App>, who: access::Who) -> Response {
    let s = app.snapshot();
    let config = actions::config_beside(&app.0.workspace);
    let config = config.is_file().then(|| config.display().to_string());
    let extra = pages::Extra {
        config: config.as_deref(),
    };
    pages::overview(&s, &who.page(&app), &extra).into_response()
}

async fn file(State(app): State<App>, who: access::Who, Path(path): Path<String>) -> Response {
    let Some(rel) = text::bus_path(&path) else {
        return pages::not_found("not a workspace path", &path);
    };
    let s = app.snapshot();
    let story = app.0.stories.of(&rel);
    let (workspace, state_dir) = (app.0.workspace.clone(), app.0.state_dir.clone());
    let rel2 = rel.clone();
    let now =
        tokio::task::spawn_blocking(move || text::read_bus_file(&workspace, &state_dir, &rel2))
            .await
            .unwrap_or_else(|_| text::FileNow::Unreadable("could not be read".into()));
    pages::file(&s, &who.page(&app), &rel, story, now).into_response()
}

async fn task(State(app): State<App>, who: access::Who, Path(id): Path<String>) -> Response {
    if !text::is_task_id(&id) {
        return pages::not_found("not a task id", &id);
    }
    let s = app.snapshot();
    let log = app.0.state_dir.join("logs").join(format!("{id}.log"));
    let tail = tokio::task::spawn_blocking(move || text::log_tail(&log))
        .await
        .unwrap_or(None);
    pages::task(&s, &who.page(&app), &id, tail).into_response()
}

/// Server-sent events: `state` with the snapshot's version, at once and on
/// each publication. A page that is behind fetches itself again.
async fn events(State(app): State<App>) -> impl IntoResponse {
    let mut rx = app.0.snapshots.clone();
    // Seen now: the next `changed` is the next publication.
    let first = rx.borrow_and_update().version;
    let now = futures_util::stream::once(async move { Ok(state_event(first)) });
    let later = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let v = rx.borrow_and_update().version;
        Some((Ok::<_, Infallible>(state_event(v)), rx))
    });
    use futures_util::StreamExt;
    Sse::new(now.chain(later)).keep_alive(KeepAlive::new().interval(Duration::from_secs(30)))
}

fn state_event(version: u64) -> SseEvent {
    SseEvent::default().event("state").data(version.to_string())
}

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/live.js");

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, kind),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
