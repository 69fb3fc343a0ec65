//! The owner's console: a local web page, served by the daemon, to see the node, its records,
//! its trust list and its audit, to answer the requests that wait for the owner (trust mode
//! "ask"), and to run queries as a commissioner.
//!
//! - **Off by default.** The daemon serves it when `console_listen` is set in the config or
//!   `grove daemon --console [ADDR]` is given, on a loopback address only; the address bound is
//!   written to `DIR/console.addr`.
//! - **Login.** `grove console` asks the daemon (over the control socket, which only the
//!   owner can open) for a one-time link `http://ADDR/login?token=T`. The token is 32 random
//!   bytes, valid once and for [`LOGIN_LINK_TTL`]. Redeeming it sets a session cookie
//!   (`HttpOnly`, `SameSite=Strict`, named after the port since cookies are not port-scoped)
//!   and forgets the token. Sessions live in memory: a restart signs the owner out.
//! - **Every change** is a `POST` of a form that carries the session's CSRF token (compared in
//!   constant time), from a browser whose `Origin`, if it sends one, is the console's own.
//! - **Every answer** carries a Content-Security-Policy that allows no script at all, styles
//!   and images from the console only, forms posting to it only and no framing
//!   ([`CONTENT_SECURITY_POLICY`]); everything the page uses is served by the daemon. A request
//!   whose `Host` is not the console's address is refused (DNS rebinding).
//! - **One owner of the store.** The console reads and changes the node only through the
//!   daemon's control requests (the same queue as the CLI and the ingest endpoint), so a
//!   trust added here is validated by the very code `grove trust add` goes through
//!   (`crate::owner::trust`).
//!
//! Pages are rendered on the server with askama templates (`templates/`), compiled into the
//! binary; charts are SVG drawn on the server ([`chart`]).

mod auth;
mod chart;
mod pages;
mod render;
mod runs;
mod time;

use crate::control::Incoming;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// The file the console's bound address is written to, in the data dir.
pub const ADDR_FILE: &str = "console.addr";
/// How long a login link stays valid.
pub const LOGIN_LINK_TTL: Duration = Duration::from_secs(10 * 60);
/// A session unused this long is signed out.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Login links not yet used, at most (the oldest goes first).
pub const MAX_LOGIN_LINKS: usize = 8;
/// Sessions at once, at most (the least recently used goes first).
pub const MAX_SESSIONS: usize = 16;
/// Requests served at once; more get `503`.
pub const MAX_CONCURRENT_REQUESTS: usize = 32;
/// Largest form body, in bytes (a query is at most `MAX_QUERY_BYTES`).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;
/// Largest upload (a record file, a Cozy export zip), in bytes; larger: use the CLI.
pub const MAX_UPLOAD_BYTES: usize = 128 * 1024 * 1024;
/// Computations launched from the console whose state and result it keeps (the oldest
/// finished one goes first).
pub const MAX_RUNS: usize = 32;
/// Audit entries one page shows, at most (the newest that match the filter).
pub const MAX_AUDIT_SHOWN: usize = 500;
/// No script at all; styles and images from the console; forms post to it; no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The daemon's handle on its console: it hands out login links.
#[derive(Clone)]
pub struct Console {
    shared: Arc<Shared>,
}

/// What every request handler of the console shares.
pub(crate) struct Shared {
    /// `http://ADDR`, the console's origin.
    base_url: String,
    /// `Host` header values the console answers (its address, and `localhost:PORT`).
    hosts: Vec<String>,
    /// Origins a change may come from (`http://` and each host).
    origins: Vec<String>,
    /// The session cookie's name.
    cookie: String,
    to_loop: mpsc::Sender<Incoming>,
    auth: Mutex<auth::Auth>,
    runs: Mutex<runs::Runs>,
    slots: Arc<Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a handler panicked; the maps are consistent between calls.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Console {
    /// A new one-time login link.
    pub fn login_link(&self) -> String {
        let token = lock(&self.shared.auth).new_link(Instant::now());
        format!("{}/login?token={token}", self.shared.base_url)
    }

    /// The console's address, `http://ADDR`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }
}

/// Binds the console (loopback addresses only), writes `console.addr` and serves it in the
/// background on the daemon's runtime.
pub async fn start(
    dir: &Path,
    listen: &str,
    to_loop: mpsc::Sender<Incoming>,
) -> anyhow::Result<Console> {
    let (listener, bound) =
        crate::sources::ingest::bind_local(dir, listen, "console_listen", "7390", ADDR_FILE)
            .await?;
    let hosts = vec![bound.to_string(), format!("localhost:{}", bound.port())];
    let shared = Arc::new(Shared {
        base_url: format!("http://{bound}"),
        origins: hosts.iter().map(|h| format!("http://{h}")).collect(),
        hosts,
        cookie: format!("grove_console_{}", bound.port()),
        to_loop,
        auth: Mutex::new(auth::Auth::default()),
        runs: Mutex::new(runs::Runs::default()),
        slots: Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS)),
    });
    let app = router(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the console stopped: {e}");
        }
    });
    tracing::info!("console on http://{bound} (run `grove console` for a login link)");
    Ok(Console { shared })
}

fn router(shared: Arc<Shared>) -> Router {
    let upload = DefaultBodyLimit::max(MAX_UPLOAD_BYTES);
    Router::new()
        .route("/", get(pages::node))
        .route("/records", get(pages::records))
        .route("/records/import", post(pages::import_file).layer(upload))
        .route(
            "/records/import-cozy",
            post(pages::import_cozy).layer(upload),
        )
        .route("/trust", get(pages::trust).post(pages::trust_save))
        .route("/trust/remove", post(pages::trust_remove))
        .route("/requests", get(pages::requests))
        .route("/requests/answer", post(pages::requests_answer))
        .route("/audit", get(pages::audit))
        .route("/compute", get(pages::compute).post(pages::compute_launch))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/result.csv", get(pages::run_csv))
        .route("/runs/{id}/result.json", get(pages::run_json))
        .route("/login", get(pages::login))
        .route("/logout", post(pages::logout))
        .route("/static/console.css", get(pages::css))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// Whether a change comes from the console's own page: a browser names the page's origin
/// in `Origin` on a form post; a client that sends none still needs the CSRF token.
fn origin_allowed(shared: &Shared, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(o) => o
            .to_str()
            .is_ok_and(|o| shared.origins.iter().any(|a| a.eq_ignore_ascii_case(o))),
    }
}

/// Around every request: the `Host` check, the `Origin` check of changes, the bound on
/// requests served at once, and the security headers on every answer.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let host_ok = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| shared.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)));
    let mut response = if !host_ok {
        render::refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "This console answers only at its own address.",
        )
    } else if request.method() != Method::GET
        && request.method() != Method::HEAD
        && !origin_allowed(&shared, request.headers())
    {
        render::refusal(
            StatusCode::FORBIDDEN,
            "This change does not come from the console's own page: nothing was changed.",
        )
    } else {
        match shared.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let response = next.run(request).await;
                drop(permit);
                response
            }
            Err(_) => render::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The console is busy; try again in a moment.",
            ),
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Same-origin: a form post still names its origin (no-referrer would make it "null").
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
