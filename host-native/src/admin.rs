//! The admin HTTP listener: what the operator sees (SPEC §8) and the agent's metrics.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/telemetry/inputs` | JSON in the shape the Console widget reads (web-preview/README.md): `inputs` (the core's `Inputs::to_json` bytes as they are), `inputs_json` (the same text as a string), `sha256`, `enabled`, `off_reason`, `target`, `interval`, `last_send {time,status}`, `next_due`; plus `size`, `last_success`, `last_sha256`, `consecutive_failures`; and for `telemetry.local-only`: `local_only`, `note` (core `LOCAL_ONLY_NOTE` in local-only mode, else null), `last_kept`, `kept_total` |
//! | `GET /api/v1/telemetry/report` | the exact report bytes built by the core, with `Content-Digest` |
//! | `GET /metrics` | Prometheus text (see [`crate::metrics`]) |
//! | `GET /console/telemetry[/…]` | the Console page's static assets, when a [`ConsoleAssets`] is plugged in |
//!
//! Everything else is refused: unknown paths get 404, other methods 405. A listener bound to
//! loopback also refuses (421) requests whose `Host` is not a loopback name, against DNS
//! rebinding. Every refusal and failure is an [`AdminError`], the one place that maps them to
//! statuses; its body is JSON `{"error":"…"}`.
//!
//! The Console page and its assets carry the same security headers as the collector's
//! dashboard ([`crate::server::page_headers`]): a Content-Security-Policy that forbids framing
//! and foreign scripts ([`crate::server::CONSOLE_CSP`]), and `X-Content-Type-Options: nosniff`.
//!
//! # Decisions where SPEC is silent
//! - Bounded cost: the listener serves through [`crate::server::serve`] with [`ADMIN_LIMITS`]:
//!   at most 64 connections at once, and a connection that has not sent a request's headers
//!   within 5 s (idle keep-alive included) is closed. Further clients wait in the kernel's
//!   listen backlog, which costs this process no file descriptor. So the listener stays far
//!   below any usual descriptor limit (1,024) and the report loop always has the few it needs
//!   (the schedule, the audit log, the database, the collector), however many clients connect:
//!   1,100 connection attempts leave the agent at 81 descriptors (17 of its own, plus 64).
//! - The Console's Content-Security-Policy is the dashboard's, plus `'wasm-unsafe-eval'` for
//!   scripts (Chromium refuses to compile the core's wasm without it) and `'unsafe-inline'` for
//!   styles (the page and the widget's shadow root carry their style sheets inline). Scripts
//!   stay this origin's files only.
//!
//! With a token (`telemetry.admin.token`), the API and metrics routes require
//! `Authorization: Bearer <token>`, compared in constant time; a missing or wrong token gets 401.
//! The Console's static assets are served without it: they hold no data, and a browser cannot
//! attach a bearer token to a page load (the page asks the operator for the token instead).
//!
//! With telemetry off, the inputs route says so and the provider is never called: nothing is
//! counted and no database connection is made; the report route answers 409.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use serde_json::value::RawValue;
use ttn_telemetry_core::{Inputs, content_digest, format_duration, redact_uri, sha256, sha256_hex};

use crate::audit::rfc3339;
use crate::metrics::SharedStatus;
use crate::server::{self, CONSOLE_CSP, ConnLimits, json_error, page_headers};

/// Default address of the listener (`telemetry.admin.listen`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1886";

/// The admin listener's connection limits. An operator's browser and a metrics scraper need a
/// few connections, and a browser sends its request headers at once.
pub const ADMIN_LIMITS: ConnLimits = ConnLimits {
    header_timeout: Duration::from_secs(5),
    max_connections: 64,
};

/// Why the admin listener refused or failed a request; the one place that maps them to HTTP
/// statuses (see its [`IntoResponse`]).
#[derive(Debug)]
pub enum AdminError {
    /// 404: no such route.
    NoRoute,
    /// 405: the route answers `GET` only.
    MethodNotAllowed,
    /// 421: a loopback listener was asked for a host name that is not loopback.
    ForeignHost,
    /// 401: the bearer token is missing or wrong.
    Unauthorized,
    /// 409: telemetry is off (why): no report is built.
    Off(String),
    /// 503: counting the database failed; the agent may count again later.
    Counting(anyhow::Error),
    /// 500: counting panicked, or the core could not build the report.
    Internal(String),
    /// 404: the Console page or one of its assets is not in this build (why).
    NoAsset(String),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, msg) = match &self {
            AdminError::NoRoute => (StatusCode::NOT_FOUND, "no such route".to_owned()),
            AdminError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: the admin listener is read-only (GET)".to_owned(),
            ),
            AdminError::ForeignHost => (
                StatusCode::MISDIRECTED_REQUEST,
                "this listener answers only to loopback host names (localhost, 127.0.0.1, [::1])"
                    .to_owned(),
            ),
            AdminError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required".to_owned(),
            ),
            AdminError::Off(reason) => (
                StatusCode::CONFLICT,
                format!("telemetry is off ({reason}): no report is built or sent"),
            ),
            AdminError::Counting(e) => {
                tracing::warn!("counting for the admin API failed: {e:#}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("counting failed: {e:#}"),
                )
            }
            AdminError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m.clone()),
            AdminError::NoAsset(why) => (StatusCode::NOT_FOUND, why.clone()),
        };
        let mut r = json_error(status, &msg);
        if let AdminError::Unauthorized = self {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ttn-lw-telemetry\""),
            );
        }
        r
    }
}

/// Returns the plain inputs of the next report; the agent plugs in its database counting.
///
/// It may block (it counts a database): the listener calls it on a blocking thread.
pub trait InputsProvider: Send + Sync + 'static {
    /// Counts now and returns the inputs.
    fn inputs(&self) -> anyhow::Result<Inputs>;
}

impl<F> InputsProvider for F
where
    F: Fn() -> anyhow::Result<Inputs> + Send + Sync + 'static,
{
    fn inputs(&self) -> anyhow::Result<Inputs> {
        self()
    }
}

/// One static asset of the Console page.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: Cow<'static, [u8]>,
}

/// The hook for the Console telemetry page (`/console/telemetry`): the wasm/web-preview work
/// provides an implementation serving its built assets. `path` is the part after
/// `/console/telemetry/`, empty for the page itself.
pub trait ConsoleAssets: Send + Sync + 'static {
    /// The asset at `path`, if there is one.
    fn get(&self, path: &str) -> Option<Asset>;

    /// Why `path` is missing when it is an asset this build lacks (for example the wasm
    /// output that was not built): the 404 says so instead of a bare "no such asset".
    fn missing(&self, _path: &str) -> Option<String> {
        None
    }
}

/// The listener's settings.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Bearer token; `None` (or empty) means no token is required.
    pub token: Option<String>,
    /// Why telemetry is off (core `Config::off_reason`), `None` when reports are sent.
    pub off_reason: Option<String>,
    /// `telemetry.local-only` with telemetry on: reports are kept, never sent.
    pub local_only: bool,
    /// `telemetry.target`; shown redacted.
    pub target: String,
    /// The report interval.
    pub interval: Duration,
    /// Refuse requests whose `Host` is not a loopback name or address. Set when the listener
    /// is bound to loopback: a web page the operator visits could otherwise re-bind its own
    /// host name to 127.0.0.1 (DNS rebinding) and read the preview from the operator's browser.
    pub loopback_hosts_only: bool,
    /// The UID elements in use, served as `uid_elements` whether telemetry is on or off.
    pub uid_elements: Vec<String>,
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct AdminState {
    cfg: Arc<AdminConfig>,
    provider: Arc<dyn InputsProvider>,
    status: SharedStatus,
    console: Option<Arc<dyn ConsoleAssets>>,
    limits: ConnLimits,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("off_reason", &self.cfg.off_reason)
            .field("console", &self.console.is_some())
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// The state of a listener.
    pub fn new(cfg: AdminConfig, provider: Arc<dyn InputsProvider>, status: SharedStatus) -> Self {
        AdminState {
            cfg: Arc::new(cfg),
            provider,
            status,
            console: None,
            limits: ADMIN_LIMITS,
        }
    }

    /// Sets the connection limits (default [`ADMIN_LIMITS`]; tests use short ones).
    pub fn with_limits(mut self, limits: ConnLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Plugs in the Console page's assets.
    pub fn with_console(mut self, console: Arc<dyn ConsoleAssets>) -> Self {
        self.console = Some(console);
        self
    }
}

/// The listener's routes.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/api/v1/telemetry/inputs", get(inputs))
        .route("/api/v1/telemetry/report", get(report))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let console = Router::new()
        // The page's relative URLs (`src/…`) need the trailing slash.
        .route(
            "/console/telemetry",
            get(|| async { axum::response::Redirect::permanent("/console/telemetry/") }),
        )
        .route("/console/telemetry/", get(console_index))
        .route("/console/telemetry/{*path}", get(console_asset));
    api.merge(console)
        .fallback(|| async { AdminError::NoRoute })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, within the state's connection
/// limits ([`ADMIN_LIMITS`] unless [`AdminState::with_limits`] says otherwise).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits;
    server::serve(listener, router(state), limits, "admin listener", shutdown).await;
    Ok(())
}

/// Constant-time equality of two secrets: both are hashed to 32 bytes first so the comparison
/// does not leak their lengths either.
fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (sha256(a.as_bytes()), sha256(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Whether a `Host` header value names this machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn check_host(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    if s.cfg.loopback_hosts_only {
        let host = req
            .headers()
            .get(header::HOST)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        if host.is_some_and(|h| !is_loopback_host(h)) {
            return AdminError::ForeignHost.into_response();
        }
    }
    next.run(req).await
}

async fn require_token(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    if let Some(token) = s.cfg.token.as_deref().filter(|t| !t.is_empty()) {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same_secret(g, token)) {
            return AdminError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

async fn count(s: &AdminState) -> Result<(Inputs, Vec<u8>), AdminError> {
    let provider = s.provider.clone();
    let inputs = tokio::task::spawn_blocking(move || provider.inputs())
        .await
        .map_err(|_| AdminError::Internal("counting panicked".into()))?
        .map_err(AdminError::Counting)?;
    let bytes = inputs
        .build()
        .map_err(|e| AdminError::Internal(e.to_string()))?
        .to_bytes();
    Ok((inputs, bytes))
}

async fn inputs(State(s): State<AdminState>) -> Result<Response, AdminError> {
    let status = s.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (inputs, sha, size) = if s.cfg.off_reason.is_some() {
        (None, None, None)
    } else {
        let (inputs, bytes) = count(&s).await?;
        (
            String::from_utf8(inputs.to_json()).ok(),
            Some(sha256_hex(&bytes)),
            Some(bytes.len()),
        )
    };
    let enabled = s.cfg.off_reason.is_none();
    let last_send = status.last_attempt.map(|t| {
        json!({
            "time": rfc3339(t),
            "status": status.last_outcome.clone().unwrap_or_else(|| "unknown".to_owned()),
        })
    });
    // The shape of web-preview/README.md (the Console widget reads it), plus a few extras.
    let rest = json!({
        "sha256": sha,
        "enabled": enabled,
        "off_reason": s.cfg.off_reason,
        "uid_elements": s.cfg.uid_elements,
        "target": redact_uri(&s.cfg.target),
        "interval": format_duration(s.cfg.interval),
        "last_send": last_send,
        "next_due": if enabled { status.next_due.map(rfc3339) } else { None },
        "size": size,
        "last_success": status.last_success.map(rfc3339),
        "last_sha256": status.last_sha256,
        "consecutive_failures": status.consecutive_failures,
        "local_only": s.cfg.local_only,
        "note": s.cfg.local_only.then_some(ttn_telemetry_core::LOCAL_ONLY_NOTE),
        "last_kept": status.last_kept.map(rfc3339),
        "kept_total": status.kept_total,
    });
    // The core's own bytes of the inputs, embedded as they are (counts stay exact u64 JSON
    // numbers, keys in the core's order), and the same text as a JSON string for readers whose
    // numbers are doubles: the widget hands that string to the wasm core without parsing it.
    #[derive(serde::Serialize)]
    struct Body {
        inputs: Option<Box<RawValue>>,
        inputs_json: Option<String>,
        #[serde(flatten)]
        rest: serde_json::Value,
    }
    let body = Body {
        inputs: inputs.clone().and_then(|i| RawValue::from_string(i).ok()),
        inputs_json: inputs,
        rest,
    };
    let mut r = axum::Json(body).into_response();
    no_store(r.headers_mut());
    Ok(r)
}

async fn report(State(s): State<AdminState>) -> Result<Response, AdminError> {
    if let Some(reason) = &s.cfg.off_reason {
        return Err(AdminError::Off(reason.clone()));
    }
    let (_, bytes) = count(&s).await?;
    let digest = content_digest(&bytes);
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&digest) {
        h.insert("content-digest", v);
    }
    no_store(h);
    Ok(r)
}

async fn metrics(State(s): State<AdminState>) -> Response {
    crate::prom::response(s.status.lock().unwrap_or_else(|e| e.into_inner()).render())
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn console_index(State(s): State<AdminState>) -> Result<Response, AdminError> {
    console(&s, "")
}

async fn console_asset(
    State(s): State<AdminState>,
    Path(path): Path<String>,
) -> Result<Response, AdminError> {
    console(&s, &path)
}

fn console(s: &AdminState, path: &str) -> Result<Response, AdminError> {
    let Some(assets) = &s.console else {
        return Err(AdminError::NoAsset(
            "the Console telemetry page is not built into this agent".into(),
        ));
    };
    match assets.get(path) {
        Some(a) => {
            let bytes: Vec<u8> = a.bytes.into_owned();
            Ok((page_headers(a.content_type, CONSOLE_CSP), bytes).into_response())
        }
        None => Err(AdminError::NoAsset(
            assets
                .missing(path)
                .unwrap_or_else(|| "no such asset".to_owned()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn loopback_hosts() {
        use super::is_loopback_host as l;
        for ok in [
            "localhost",
            "localhost:1886",
            "127.0.0.1:1886",
            "127.0.0.2",
            "[::1]:1886",
            "LOCALHOST.",
            "app.localhost:80",
        ] {
            assert!(l(ok), "{ok}");
        }
        for bad in [
            "evil.example:1886",
            "localhost.evil.example",
            "10.0.0.1:1886",
            "[::2]:1886",
            "",
            "127.0.0.1.nip.io",
        ] {
            assert!(!l(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cret", "s3cre"));
        assert!(!same_secret("", "x"));
    }
}
