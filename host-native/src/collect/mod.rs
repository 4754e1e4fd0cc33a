//! The collector (SPEC §9): `POST /collect` receives reports, `/api/v1/stats` serves the
//! aggregates, and `/` the Telemetry Dashboard that charts them.
//!
//! A report flows: per-address rate limit → transfer and content codings → `Content-Type` →
//! size → body (with a read timeout) → `Content-Digest` → the core's
//! [`parse_report`](ttn_telemetry_core::parse_report) → per-uid rate limit → the store's group
//! commit → receipt. Every refusal has its status and a JSON `{"error":"…"}` body; the statuses
//! are mapped in one place, [`Refusal`].
//!
//! The receipt of an accepted report is `200 OK` with the JSON [`Receipt`]
//! `{"stored":true,"sha256":"<hex>","repeat":false}` naming the SHA-256 of the body exactly as
//! stored, and a `Content-Digest` header of the receipt itself (RFC 9530: a response's digest
//! covers the response content). The agent checks the header against the receipt, then the
//! receipt's `sha256` against the digest it sent (`deliver::check_receipt`). A repeat of a
//! stored report (same uid and body the same UTC day, see [`store`]) gets the same receipt with
//! `"repeat":true`, and nothing is stored again.
//!
//! # Decisions where SPEC is silent: codings and charsets
//! The collector reads bodies as they are sent, and refuses what it would have to decode:
//! - a `Transfer-Encoding` other than `chunked` (`gzip, chunked`): 501, as RFC 9112 §6.1 asks of
//!   a server that does not understand a transfer coding (hyper itself refuses a
//!   `Transfer-Encoding` that does not end in `chunked` with 400);
//! - a `Content-Encoding` other than `identity`: 415 with `Accept-Encoding: identity` (RFC 9110
//!   §15.5.16);
//! - a body that starts with the gzip magic bytes (compressed but not labelled): 415, since JSON
//!   never starts with byte 0x1F;
//! - a `charset` other than `utf-8` (any case, quoted or not) on `application/json`: 415. JSON
//!   is UTF-8 (RFC 8259 §8.1); other parameters are ignored.
//!
//! Abuse: connections are capped ([`Limits::max_connections`]); request headers must arrive
//! within [`Limits::header_timeout`] and the body within [`Limits::body_timeout`] (then 408), so
//! a slow or stalled client holds a connection and a small buffer, never a worker thread. Rate
//! limits are token buckets per client address (checked before the body is read) and per uid
//! (checked after it is parsed; kept in memory for SQLite, in the database for PostgreSQL so
//! that collectors sharing it share the limit, see [`store::postgres`]). The address is the TCP peer, or, for a peer in
//! [`CollectOptions::trusted_proxies`], the client named by its forwarding headers
//! ([`client_addr`]).
//!
//! Retention: with [`CollectOptions::retention`], a maintenance pass at start and every
//! [`MAINTENANCE_EVERY`] deletes old raw reports and keeps every aggregate
//! ([`store::Store::retain`]); the default keeps everything. The same pass forgets the per-uid
//! buckets of PostgreSQL that are full again.
//!
//! Several collectors may share one PostgreSQL database: repeats, counters and the per-uid
//! limit hold across them (see [`store::postgres`]).
//!
//! Signed reports (issue 14 §2, `docs/signing.md`): a report may carry an RFC 9421 signature
//! (`Signature-Input` / `Signature`, the core's profile: `@method`, `@target-uri`,
//! `content-digest`, Ed25519, the key id being the public key). A signature that does not
//! verify, or whose `created` lies more than [`SIGNATURE_MAX_AGE`] in the past or
//! [`SIGNATURE_MAX_SKEW`] in the future by the collector's clock, is refused with 401 whether
//! or not the uid has a pin. The first verified signature of a uid pins its key (in the store's
//! transaction, see [`store`]); from then on the uid's reports must be signed by that key (401
//! otherwise). The receipt names the key id. Unsigned reports of never-pinned uids are accepted
//! as before, and stored unverified. The target URI is rebuilt from `Host` and the request's
//! path and query, and checked with the scheme `http` and with `https`: behind a proxy that
//! terminates TLS the collector cannot know for sure which scheme the agent used, and the
//! scheme does not change which collector and endpoint the signature is bound to. The likelier
//! scheme is tried first (`https` when a trusted proxy says so in `X-Forwarded-Proto` or
//! `Forwarded`), so one verification usually decides. A proxy must pass `Host` through
//! unchanged.
//!
//! `GET`, `DELETE /api/v1/deployments/{uid}` and `POST /api/v1/deployments/{uid}/key` (issue 14
//! §3) are answered only to a request signed by the uid's pinned key: its stored reports and
//! receipts, their erasure, and a key rotation. Every refusal is 401 with a JSON error and an
//! `Accept-Signature` header naming the profile (RFC 9421 §5.1).
//!
//! Metrics: with [`CollectOptions::metrics_listen`], `GET /metrics` (Prometheus text, see
//! [`metrics`]) is served on that address only; the public port answers it 404.
//!
//! Durability: a 2xx is sent only after the report's transaction committed (SQLite WAL with
//! `synchronous=FULL`, PostgreSQL with its default `synchronous_commit`); see [`store`]. A store
//! failure answers 503 with `Retry-After`, so the agent keeps the report and sends it later.
//!
//! Embedding (the `collect` command, `demo`, tests):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ttn_lw_telemetry::collect::{self, CollectOptions};
//! let c = collect::start(CollectOptions::new("127.0.0.1:0", None)).await?;
//! println!("dashboard: http://{}/", c.local_addr());
//! let mut accepted = c.accepted();
//! accepted.changed().await?; // the first report was stored (`demo --once`)
//! c.shutdown().await;
//! # Ok(()) }
//! ```

pub mod client_addr;
pub mod metrics;
pub mod ratelimit;
pub mod stats;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tokio::net::TcpListener;
use tokio::sync::watch;
use ttn_telemetry_core::{
    ROTATION_LABEL, ReportError, Request as SignedRequest, SIGNATURE_LABEL, SignatureError,
    Verified, content_digest, format_rfc3339_micros, limits::MAX_REPORT_BYTES,
    parse_content_digest, sha256, verify_request,
};

use crate::server::{ConnLimits, error_json, json_headers};
use ratelimit::{Buckets, RateLimit};
use store::{Admin, AdminReply, Held, NewReport, Outcome, Store};

pub use crate::receipt::Receipt;

/// A clock giving Unix microseconds; injected so tests and demos can choose the time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in Unix microseconds.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    })
}

/// How to run a collector.
#[derive(Clone)]
pub struct CollectOptions {
    /// `HOST:PORT` to listen on (a name such as `localhost` is resolved); port 0 picks a free
    /// one (see [`Collector::local_addr`]).
    pub listen: String,
    /// `None`: embedded SQLite in the working directory; else `sqlite:PATH` or `postgres://…`.
    pub database_uri: Option<String>,
    /// Abuse limits.
    pub limits: Limits,
    /// Source of received times.
    pub clock: Clock,
    /// k-anonymity threshold of everything public (see [`stats`]).
    pub k_anonymity: u64,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` name the client (default none).
    pub trusted_proxies: client_addr::TrustedProxies,
    /// `HOST:PORT` of the metrics listener (`GET /metrics`); `None` (the default): no metrics.
    pub metrics_listen: Option<String>,
    /// How long raw reports are kept (see [`store::Store::retain`]); `None` (the default):
    /// for ever. The aggregates are kept either way.
    pub retention: Option<Duration>,
}

/// How old a signature's `created` may be (the replay window): 5 minutes.
pub const SIGNATURE_MAX_AGE: Duration = Duration::from_secs(300);

/// How far in the future a signature's `created` may be (clock skew): 1 minute.
pub const SIGNATURE_MAX_SKEW: Duration = Duration::from_secs(60);

/// The default k-anonymity threshold (`collector.k-anonymity`).
pub const DEFAULT_K_ANONYMITY: u64 = 5;

impl std::fmt::Debug for CollectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectOptions")
            .field("listen", &self.listen)
            .field(
                "database_uri",
                &self
                    .database_uri
                    .as_deref()
                    .map(ttn_telemetry_core::redact_uri),
            )
            .field("limits", &self.limits)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("metrics_listen", &self.metrics_listen)
            .field("k_anonymity", &self.k_anonymity)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl CollectOptions {
    /// Options with default limits and the system clock.
    pub fn new(listen: impl Into<String>, database_uri: Option<String>) -> Self {
        CollectOptions {
            listen: listen.into(),
            database_uri,
            limits: Limits::default(),
            clock: system_clock(),
            k_anonymity: DEFAULT_K_ANONYMITY,
            trusted_proxies: client_addr::TrustedProxies::default(),
            metrics_listen: None,
            retention: None,
        }
    }
}

/// How often a collector runs its maintenance pass (retention, and forgetting full per-uid
/// buckets); it also runs one at start.
pub const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);

/// Abuse limits of a collector.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Per uid. An agent reports once a day and retries a failed send a few times, so the
    /// default allows a burst of 10 and one more every 10 minutes.
    pub per_uid: Option<RateLimit>,
    /// Per client address (before the body is read). Default: a burst of 1,000, then 50/s,
    /// which leaves room for many deployments behind one NAT. `None` disables it (load tests).
    pub per_addr: Option<RateLimit>,
    /// Most keys each rate limiter tracks (bounds its memory).
    pub max_tracked: usize,
    /// Time allowed for a request's headers (also the keep-alive idle limit).
    pub header_timeout: Duration,
    /// Time allowed for a request's whole body; after it, 408.
    pub body_timeout: Duration,
    /// Most open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_uid: Some(RateLimit {
                burst: 10,
                per_second: 1.0 / 600.0,
            }),
            per_addr: Some(RateLimit {
                burst: 1000,
                per_second: 50.0,
            }),
            max_tracked: 100_000,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

struct App {
    store: Store,
    accepted: watch::Sender<u64>,
    clock: Clock,
    limits: Limits,
    k: u64,
    by_addr: Buckets<std::net::IpAddr>,
    trusted_proxies: client_addr::TrustedProxies,
    metrics: metrics::Metrics,
    by_uid: Buckets<String>,
}

/// A running collector.
#[derive(Debug)]
pub struct Collector {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    store: Store,
    accepted: watch::Receiver<u64>,
    maintained: watch::Receiver<u64>,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Collector {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of its metrics listener, if it has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Its store (for tests and tools that seed or inspect it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How many reports this collector has stored since it started; changes after each commit.
    /// `demo --once` waits on it for the first report.
    pub fn accepted(&self) -> watch::Receiver<u64> {
        self.accepted.clone()
    }

    /// How many maintenance passes (see [`MAINTENANCE_EVERY`]) have finished; changes after
    /// each, the first one just after start.
    pub fn maintained(&self) -> watch::Receiver<u64> {
        self.maintained.clone()
    }

    /// Stops accepting connections, lets the store commit what is queued, and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for task in &mut self.tasks {
            let _ = task.await;
        }
        self.store.close().await;
    }
}

/// Opens the store, binds `opts.listen` and serves in the background.
pub async fn start(opts: CollectOptions) -> anyhow::Result<Collector> {
    let store = Store::open_with(opts.database_uri.as_deref(), opts.limits.per_uid).await?;
    let listener = TcpListener::bind(opts.listen.as_str())
        .await
        .with_context(|| format!("listening on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match &opts.metrics_listen {
        Some(m) => Some(
            TcpListener::bind(m.as_str())
                .await
                .with_context(|| format!("listening for metrics on {m}"))?,
        ),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let app = Arc::new(App {
        store: store.clone(),
        accepted: watch::Sender::new(0),
        clock: opts.clock,
        k: opts.k_anonymity,
        by_addr: Buckets::new(opts.limits.per_addr, opts.limits.max_tracked),
        // A store that shares the per-uid limit across collectors applies it itself.
        by_uid: Buckets::new(
            opts.limits.per_uid.filter(|_| !store.shares_uid_limit()),
            opts.limits.max_tracked,
        ),
        limits: opts.limits,
        trusted_proxies: opts.trusted_proxies,
        metrics: metrics::Metrics::default(),
    });
    let accepted = app.accepted.subscribe();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(accept_loop(
        listener,
        router(app.clone()),
        app.limits.clone(),
        "collect",
        stopped.clone(),
    ))];
    let (maintained_tx, maintained) = watch::channel(0);
    tasks.push(tokio::spawn(maintenance(
        store.clone(),
        app.clock.clone(),
        opts.retention,
        maintained_tx,
        stopped.clone(),
    )));
    if let Some(l) = metrics_listener {
        let limits = app.limits.clone();
        tasks.push(tokio::spawn(accept_loop(
            l,
            metrics_router(app),
            limits,
            "collect-metrics",
            stopped,
        )));
    }
    Ok(Collector {
        addr,
        metrics_addr,
        store,
        accepted,
        maintained,
        stop: Some(stop),
        tasks,
    })
}

/// Runs a maintenance pass at start and every [`MAINTENANCE_EVERY`] until stopped: retention
/// at the clock's time, when configured, and the per-uid buckets that are full again. A failed
/// pass is logged and tried again at the next one (nothing is lost: rows stay longer).
async fn maintenance(
    store: Store,
    clock: Clock,
    retention: Option<Duration>,
    passes: watch::Sender<u64>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(MAINTENANCE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        match store.retain(clock(), retention).await {
            Ok(p) if p.reports > 0 => {
                eprintln!("collect: retention deleted {} reports", p.reports)
            }
            Ok(_) => {}
            Err(e) => eprintln!("collect: retention failed (tried again later): {e:#}"),
        }
        passes.send_modify(|n| *n += 1);
    }
}

/// Runs a collector until Ctrl-C or SIGTERM, then shuts it down cleanly.
pub async fn serve(opts: CollectOptions) -> anyhow::Result<()> {
    let collector = start(opts).await?;
    eprintln!(
        "collect: listening on http://{} (dashboard at /, reports at POST /collect)",
        collector.local_addr()
    );
    if let Some(m) = collector.metrics_addr() {
        eprintln!("collect: metrics at http://{m}/metrics");
    }
    stop_signal().await?;
    collector.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
pub async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}

/// The routes, for embedding the collector in another server.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/collect", post(collect_counted))
        .route("/api/v1/stats", get(api_stats))
        .route("/api/v1/daily.json", get(api_daily_json))
        .route("/api/v1/daily.csv", get(api_daily_csv))
        .route(
            "/api/v1/deployments/{uid}",
            get(deployment_get).delete(deployment_delete),
        )
        .route("/api/v1/deployments/{uid}/key", post(deployment_rotate))
        .route("/", get(dashboard::index))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route("/favicon.svg", get(dashboard::icon))
        .fallback(|| async { plain_error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            plain_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: the collector takes POST /collect, signed requests at \
                 /api/v1/deployments/{uid}, and is read-only otherwise",
            )
        })
        .with_state(app)
}

/// The metrics listener's routes: `GET /metrics` only.
fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .fallback(|| async { plain_error(StatusCode::NOT_FOUND, "not found") })
        .with_state(app)
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    crate::prom::response(app.metrics.render(app.store.writer_metrics()))
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    name: &'static str,
    mut stopped: watch::Receiver<bool>,
) {
    let limits = ConnLimits {
        header_timeout: limits.header_timeout,
        max_connections: limits.max_connections,
    };
    let stop = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    crate::server::serve(listener, router, limits, name, stop).await;
}

/// Why a request was refused; the one place that maps refusals to statuses.
#[derive(Debug)]
pub enum Refusal {
    /// 429, with the seconds after which to retry.
    RateLimited(Duration),
    /// 415.
    WrongType,
    /// 415: a `charset` other than UTF-8.
    Charset,
    /// 415: a content coding the collector does not decode (or a compressed body).
    Encoding(&'static str),
    /// 501: a transfer coding other than `chunked`.
    TransferCoding,
    /// 413.
    TooLarge,
    /// 408: the body did not arrive in time.
    BodyTimeout,
    /// 400: the body could not be read.
    BadBody(String),
    /// 400: `Content-Digest` does not match or is malformed.
    Digest(&'static str),
    /// 400: the core refused the report.
    Invalid(ReportError),
    /// 422: the store refused this report's data (it is valid, but can never be stored here).
    Unstorable,
    /// 503: the store failed; the report was not stored and may be sent again.
    Storage(anyhow::Error),
    /// 401: the signature is malformed or does not verify.
    Signature(String),
    /// 401: the signature's `created` is outside the window.
    SignatureExpired,
    /// 401: a request about a deployment without a signature.
    Unsigned,
    /// 401: the uid's pinned key did not sign this (message says how).
    KeyRefused(&'static str),
    /// 401: the uid has no pinned key, so no key may ask about it.
    NotPinned,
    /// 400: a key rotation's body is not `{"keyid":"…"}` of a valid key.
    BadRotation(String),
}

impl Refusal {
    /// A short fixed name of the refusal's kind (the metrics' `reason` label).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::RateLimited(_) => "rate_limited",
            Refusal::WrongType => "content_type",
            Refusal::Charset => "charset",
            Refusal::Encoding(_) => "content_encoding",
            Refusal::TransferCoding => "transfer_coding",
            Refusal::TooLarge => "too_large",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::BadBody(_) => "bad_body",
            Refusal::Digest(_) => "digest",
            Refusal::Invalid(_) => "invalid",
            Refusal::Unstorable => "unstorable",
            Refusal::Storage(_) => "store_failed",
            Refusal::Signature(_) => "signature",
            Refusal::SignatureExpired => "signature_expired",
            Refusal::Unsigned => "unsigned",
            Refusal::KeyRefused(_) => "wrong_key",
            Refusal::NotPinned => "not_pinned",
            Refusal::BadRotation(_) => "bad_rotation",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, msg) = match &self {
            Refusal::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "too many requests".into()),
            Refusal::WrongType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content type must be application/json".into(),
            ),
            Refusal::Charset => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/json must be utf-8: give no charset or charset=utf-8".into(),
            ),
            Refusal::Encoding(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, (*m).to_owned()),
            Refusal::TransferCoding => (
                StatusCode::NOT_IMPLEMENTED,
                "only the chunked transfer coding is supported".into(),
            ),
            Refusal::Unstorable => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "the report is valid but this collector cannot store it; sending it again will not help"
                    .into(),
            ),
            Refusal::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("report is larger than {MAX_REPORT_BYTES} bytes"),
            ),
            Refusal::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time".into(),
            ),
            Refusal::BadBody(e) => (StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
            Refusal::Digest(m) => (StatusCode::BAD_REQUEST, (*m).to_owned()),
            Refusal::Invalid(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            Refusal::Storage(e) => {
                eprintln!("collect: storing a report failed: {e:#}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the report could not be stored; try again later".into(),
                )
            }
            Refusal::Signature(m) => (StatusCode::UNAUTHORIZED, format!("signature refused: {m}")),
            Refusal::SignatureExpired => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "signature refused: `created` must be within the last {} s and at most {} s \
                     ahead of the collector's clock (a replay, or a clock that is off)",
                    SIGNATURE_MAX_AGE.as_secs(),
                    SIGNATURE_MAX_SKEW.as_secs()
                ),
            ),
            Refusal::Unsigned => (
                StatusCode::UNAUTHORIZED,
                "this request must be signed by the deployment's pinned key".into(),
            ),
            Refusal::KeyRefused(m) => (StatusCode::UNAUTHORIZED, (*m).to_owned()),
            Refusal::NotPinned => (
                StatusCode::UNAUTHORIZED,
                "no key is pinned for this uid: only a deployment that signed its reports can \
                 read, erase or re-key them"
                    .into(),
            ),
            Refusal::BadRotation(m) => (StatusCode::BAD_REQUEST, m.clone()),
        };
        let mut resp = (status, json_headers(), error_json(&msg)).into_response();
        match self {
            Refusal::RateLimited(after) => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(after.as_secs().max(1)),
                );
            }
            Refusal::Storage(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            Refusal::Encoding(_) => {
                resp.headers_mut().insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
            }
            Refusal::Signature(_)
            | Refusal::SignatureExpired
            | Refusal::Unsigned
            | Refusal::KeyRefused(_)
            | Refusal::NotPinned => {
                resp.headers_mut().insert(
                    "accept-signature",
                    HeaderValue::from_static(
                        "ttn=(\"@method\" \"@target-uri\" \"content-digest\");alg=\"ed25519\"",
                    ),
                );
            }
            Refusal::BodyTimeout | Refusal::TooLarge | Refusal::TransferCoding => {
                // The rest of the body is not read: the connection cannot be reused.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

fn plain_error(status: StatusCode, msg: &str) -> Response {
    crate::server::json_error(status, msg)
}

/// Checks the `Content-Type`: `application/json`, with no charset or UTF-8.
fn check_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::WrongType)?;
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default();
    if !media.trim().eq_ignore_ascii_case("application/json") {
        return Err(Refusal::WrongType);
    }
    for param in parts {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("charset")
            && !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(Refusal::Charset);
        }
    }
    Ok(())
}

/// Checks the transfer and content codings (see the module docs).
fn check_codings(headers: &HeaderMap) -> Result<(), Refusal> {
    let codings = |name| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
    };
    if codings(header::TRANSFER_ENCODING)
        .iter()
        .any(|c| c != "chunked")
    {
        return Err(Refusal::TransferCoding);
    }
    if codings(header::CONTENT_ENCODING)
        .iter()
        .any(|c| c != "identity")
    {
        return Err(Refusal::Encoding(
            "content encodings are not supported: send the report uncompressed, without Content-Encoding",
        ));
    }
    Ok(())
}

/// `POST /collect`, counted in the metrics.
async fn collect_counted(
    State(app): State<Arc<App>>,
    peer: ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match collect(State(app.clone()), peer, uri, headers, body).await {
        Ok((resp, repeat)) => {
            app.metrics.accepted(repeat);
            resp
        }
        Err(refusal) => {
            let reason = refusal.reason();
            let resp = refusal.into_response();
            app.metrics.refused(resp.status().as_u16(), reason);
            resp
        }
    }
}

async fn collect(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<(Response, bool), Refusal> {
    let client = client_addr::client_ip(peer.ip(), &headers, &app.trusted_proxies);
    app.by_addr
        .take(ratelimit::addr_key(client), Instant::now())
        .map_err(Refusal::RateLimited)?;
    check_codings(&headers)?;
    check_type(&headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REPORT_BYTES as u64) {
        return Err(Refusal::TooLarge);
    }
    let read = Limited::new(body, MAX_REPORT_BYTES).collect();
    let bytes = match tokio::time::timeout(app.limits.body_timeout, read).await {
        Err(_) => return Err(Refusal::BodyTimeout),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(Refusal::TooLarge);
        }
        Ok(Err(e)) => return Err(Refusal::BadBody(e.to_string())),
        Ok(Ok(c)) => c.to_bytes(),
    };
    if let Some(v) = headers.get("content-digest") {
        let want = v
            .to_str()
            .ok()
            .and_then(parse_content_digest)
            .ok_or(Refusal::Digest(
                "`Content-Digest` has no well-formed sha-256 member",
            ))?;
        if want != sha256(&bytes) {
            return Err(Refusal::Digest(
                "`Content-Digest` does not match the body received",
            ));
        }
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(Refusal::Encoding(
            "the body is gzip-compressed: send the report uncompressed",
        ));
    }
    let signer = check_signature(&app, peer, "POST", &uri, &headers, &bytes)?;
    let mut report = NewReport::parse((app.clock)(), bytes.to_vec()).map_err(Refusal::Invalid)?;
    if let Some(v) = signer {
        report = report.signed_by(v.keyid);
    }
    let keyid = report.signed_by.clone();
    let uid = report.report.uid.clone();
    app.by_uid
        .take(uid.clone(), Instant::now())
        .map_err(Refusal::RateLimited)?;
    let sha256 = report.sha256.clone();
    let outcome = app
        .store
        .insert(vec![report])
        .await
        .map_err(Refusal::Storage)?
        .pop();
    let repeat = match outcome {
        Some(Outcome::Stored) => {
            app.accepted.send_modify(|n| *n += 1);
            false
        }
        Some(Outcome::Repeat) => true,
        Some(Outcome::RateLimited(wait)) => return Err(Refusal::RateLimited(wait)),
        Some(Outcome::Unstorable(why)) => {
            eprintln!("collect: the store refused a report's data: {why}");
            return Err(Refusal::Unstorable);
        }
        Some(Outcome::KeyRefused(why)) => {
            // Not the uid's own report: its tokens stay the uid's (PostgreSQL's shared limit
            // checks the pin before it takes one).
            app.by_uid.give_back(&uid);
            return Err(Refusal::KeyRefused(why));
        }
        None => {
            return Err(Refusal::Storage(anyhow::anyhow!(
                "the store gave no outcome"
            )));
        }
    };
    let receipt = serde_json::to_string(&Receipt {
        stored: true,
        sha256,
        repeat,
        keyid,
    })
    .unwrap_or_default();
    Ok((digested_json(receipt), repeat))
}

/// A 200 JSON response with its RFC 9530 `Content-Digest` (a response's digest covers its own
/// content, which the agent checks before trusting a receipt).
fn digested_json(body: String) -> Response {
    let digest = content_digest(body.as_bytes());
    let mut resp = (StatusCode::OK, json_headers(), body).into_response();
    if let Ok(v) = HeaderValue::from_str(&digest) {
        resp.headers_mut().insert("content-digest", v);
    }
    resp
}

/// The target URIs a signed request may have named: `Host` and the path and query received,
/// with `http` and with `https` (see the module docs), the likelier first so that one
/// verification usually decides: `https` when a trusted proxy says the client used it
/// (`X-Forwarded-Proto`, or `proto=` in `Forwarded`), else `http`, which this collector serves.
fn target_uris(
    uri: &Uri,
    headers: &HeaderMap,
    via_tls_proxy: bool,
) -> Result<[String; 2], Refusal> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Refusal::Signature("a signed request needs a Host header".into()))?;
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let (http, https) = (format!("http://{host}{pq}"), format!("https://{host}{pq}"));
    Ok(if via_tls_proxy {
        [https, http]
    } else {
        [http, https]
    })
}

/// Whether a trusted proxy says that the client spoke TLS to it.
fn via_tls_proxy(app: &App, peer: SocketAddr, headers: &HeaderMap) -> bool {
    if !app.trusted_proxies.contains(peer.ip()) {
        return false;
    }
    let says = |name: &str, f: fn(&str) -> bool| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(f)
    };
    says("x-forwarded-proto", |v| {
        v.split(',').any(|p| p.trim().eq_ignore_ascii_case("https"))
    }) || says("forwarded", |v| {
        v.split([';', ','])
            .any(|p| p.trim().eq_ignore_ascii_case("proto=https"))
    })
}

/// Checks the signature labelled `label`: `None` when the request carries no signature headers
/// at all, else the verified signer, or a refusal (a bad signature, or `created` outside the
/// window). `body` is the content the `Content-Digest` must match.
fn check_labelled(
    app: &App,
    peer: SocketAddr,
    label: &str,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<Verified>, Refusal> {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| Refusal::Signature(format!("{name} is not text")))
            })
            .transpose()
    };
    let (input, signature) = match (text("signature-input")?, text("signature")?) {
        (None, None) => return Ok(None),
        (Some(i), Some(s)) => (i, s),
        _ => {
            return Err(Refusal::Signature(
                "Signature-Input and Signature must be sent together".into(),
            ));
        }
    };
    let digest = text("content-digest")?.ok_or_else(|| {
        Refusal::Signature("a signed request must carry Content-Digest (covered)".into())
    })?;
    if parse_content_digest(digest) != Some(sha256(body)) {
        return Err(Refusal::Digest(
            "`Content-Digest` does not match the body received",
        ));
    }
    let mut verified = Err(SignatureError::Invalid);
    for target in target_uris(uri, headers, via_tls_proxy(app, peer, headers))? {
        let request = SignedRequest {
            method,
            target_uri: &target,
            content_digest: digest,
        };
        verified = verify_request(label, input, signature, &request);
        if !matches!(verified, Err(SignatureError::Invalid)) {
            break;
        }
    }
    let v = verified.map_err(|e| Refusal::Signature(format!("{label}: {e}")))?;
    let now = (app.clock)().div_euclid(1_000_000);
    let age = now.saturating_sub(v.created);
    if age > SIGNATURE_MAX_AGE.as_secs() as i64 || -age > SIGNATURE_MAX_SKEW.as_secs() as i64 {
        return Err(Refusal::SignatureExpired);
    }
    Ok(Some(v))
}

/// [`check_labelled`] for the agent's label.
fn check_signature(
    app: &App,
    peer: SocketAddr,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<Verified>, Refusal> {
    check_labelled(app, peer, SIGNATURE_LABEL, method, uri, headers, body)
}

/// Counts and answers a request about one deployment.
fn counted(app: &App, method: &'static str, result: Result<Response, Refusal>) -> Response {
    match result {
        Ok(resp) => {
            app.metrics.deployment_request(method, 200, "ok");
            resp
        }
        Err(refusal) => {
            let reason = refusal.reason();
            let resp = refusal.into_response();
            app.metrics
                .deployment_request(method, resp.status().as_u16(), reason);
            resp
        }
    }
}

/// The per-address limit and a required signature of the agent's label, for the deployment
/// endpoints.
fn signed_by(
    app: &App,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, Refusal> {
    let client = client_addr::client_ip(peer.ip(), headers, &app.trusted_proxies);
    app.by_addr
        .take(ratelimit::addr_key(client), Instant::now())
        .map_err(Refusal::RateLimited)?;
    check_signature(app, peer, method.as_str(), uri, headers, body)?.ok_or(Refusal::Unsigned)
}

/// One stored report as `GET /api/v1/deployments/{uid}` shows it.
#[derive(serde::Serialize)]
struct HeldReport {
    received_at: String,
    sha256: String,
    verified: bool,
    signed_by: Option<String>,
    /// The body exactly as stored (a JSON text).
    body: String,
    receipt: Receipt,
}

/// `GET /api/v1/deployments/{uid}`: every stored report of the uid and its receipt.
async fn deployment_get(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(uid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let v = signed_by(&app, peer, &Method::GET, &uri, &headers, b"")?;
        match app
            .store
            .deployment(&uid, &v.keyid)
            .await
            .map_err(Refusal::Storage)?
        {
            Held::NotPinned => Err(Refusal::NotPinned),
            Held::WrongKey => Err(Refusal::KeyRefused(
                "this request is not signed by the key pinned for this uid",
            )),
            Held::Found(pin, reports) => {
                let reports: Vec<HeldReport> = reports
                    .into_iter()
                    .map(|r| HeldReport {
                        received_at: format_rfc3339_micros(r.received_at),
                        verified: r.signed_by.is_some(),
                        receipt: Receipt {
                            stored: true,
                            sha256: r.sha256.clone(),
                            repeat: false,
                            keyid: r.signed_by.clone(),
                        },
                        sha256: r.sha256,
                        signed_by: r.signed_by,
                        body: String::from_utf8_lossy(&r.body).into_owned(),
                    })
                    .collect();
                let body = serde_json::json!({
                    "uid": uid,
                    "pin": {
                        "keyid": pin.keyid,
                        "kind": pin.kind,
                        "pinned_at": format_rfc3339_micros(pin.pinned_at),
                    },
                    "reports": reports,
                });
                Ok(digested_json(body.to_string()))
            }
        }
    }
    .await;
    counted(&app, "GET", result)
}

/// `DELETE /api/v1/deployments/{uid}`: forget the uid; the answer is the receipt of what was
/// deleted.
async fn deployment_delete(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(uid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let v = signed_by(&app, peer, &Method::DELETE, &uri, &headers, b"")?;
        let op = Admin::Forget {
            uid,
            keyid: v.keyid,
        };
        match app.store.admin(op).await.map_err(Refusal::Storage)? {
            AdminReply::Forgotten(f) => {
                let mut body = serde_json::to_value(&f).unwrap_or_default();
                body["forgotten"] = true.into();
                Ok(digested_json(body.to_string()))
            }
            other => Err(admin_refusal(other)),
        }
    }
    .await;
    counted(&app, "DELETE", result)
}

fn admin_refusal(reply: AdminReply) -> Refusal {
    match reply {
        AdminReply::NotPinned => Refusal::NotPinned,
        _ => Refusal::KeyRefused("this request is not signed by the key pinned for this uid"),
    }
}

/// Most bytes of a key rotation's body.
const MAX_ROTATION_BYTES: usize = 1024;

/// `POST /api/v1/deployments/{uid}/key` with `{"keyid":"<new>"}`: signed by the pinned key
/// (label `ttn`) and by the new key (label `ttn-new`, proof that the sender holds it).
async fn deployment_rotate(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(uid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let read = Limited::new(body, MAX_ROTATION_BYTES).collect();
        let bytes = match tokio::time::timeout(app.limits.body_timeout, read).await {
            Err(_) => return Err(Refusal::BodyTimeout),
            Ok(Err(e)) => return Err(Refusal::BadBody(e.to_string())),
            Ok(Ok(c)) => c.to_bytes(),
        };
        let old = signed_by(&app, peer, &Method::POST, &uri, &headers, &bytes)?;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Rotation {
            keyid: String,
        }
        let rotation: Rotation = serde_json::from_slice(&bytes).map_err(|e| {
            Refusal::BadRotation(format!(
                "the body must be {{\"keyid\":\"<new key id>\"}}: {e}"
            ))
        })?;
        ttn_telemetry_core::PublicKey::from_keyid(&rotation.keyid)
            .map_err(|e| Refusal::BadRotation(e.to_string()))?;
        let new = check_labelled(&app, peer, ROTATION_LABEL, "POST", &uri, &headers, &bytes)?
            .ok_or(Refusal::Unsigned)?;
        if new.keyid != rotation.keyid {
            return Err(Refusal::Signature(format!(
                "{ROTATION_LABEL} must be signed by the new key the body names"
            )));
        }
        let op = Admin::Rotate {
            uid: uid.clone(),
            keyid: old.keyid.clone(),
            new: rotation.keyid.clone(),
            at: (app.clock)(),
        };
        match app.store.admin(op).await.map_err(Refusal::Storage)? {
            AdminReply::Rotated => Ok(digested_json(
                serde_json::json!({
                    "rotated": true,
                    "uid": uid,
                    "old": old.keyid,
                    "keyid": rotation.keyid,
                })
                .to_string(),
            )),
            other => Err(admin_refusal(other)),
        }
    }
    .await;
    counted(&app, "POST", result)
}

/// Open data: the daily totals, under the same threshold, as JSON (see README).
async fn api_daily_json(State(app): State<Arc<App>>) -> Response {
    match app.store.stats((app.clock)(), app.k).await {
        Ok(s) => (StatusCode::OK, json_headers(), s.daily_json()).into_response(),
        Err(e) => Refusal::Storage(e).into_response(),
    }
}

/// Open data: the daily totals as CSV (see README).
async fn api_daily_csv(State(app): State<Arc<App>>) -> Response {
    match app.store.stats((app.clock)(), app.k).await {
        Ok(s) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    "text/csv; charset=utf-8; header=present",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            s.daily_csv(),
        )
            .into_response(),
        Err(e) => Refusal::Storage(e).into_response(),
    }
}

async fn api_stats(State(app): State<Arc<App>>) -> Response {
    match app.store.stats((app.clock)(), app.k).await {
        Ok(s) => (
            StatusCode::OK,
            json_headers(),
            serde_json::to_string(&s).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => Refusal::Storage(e).into_response(),
    }
}

mod dashboard {
    //! The dashboard's static files, embedded in the binary. The page draws its charts from
    //! `/api/v1/stats` in the browser, inserting every reported string as text (never as
    //! markup), under a CSP that allows only this origin's script and style.

    use axum::response::{IntoResponse, Response};

    const INDEX: &str = include_str!("../../assets/dashboard/index.html");
    const SCRIPT: &str = include_str!("../../assets/dashboard/dashboard.js");
    const STYLE: &str = include_str!("../../assets/dashboard/dashboard.css");
    const ICON: &str = include_str!("../../assets/dashboard/favicon.svg");

    fn asset(body: &'static str, content_type: &'static str) -> Response {
        (
            crate::server::page_headers(content_type, crate::server::DASHBOARD_CSP),
            body,
        )
            .into_response()
    }

    pub(super) async fn index() -> Response {
        asset(INDEX, "text/html; charset=utf-8")
    }

    pub(super) async fn script() -> Response {
        asset(SCRIPT, "text/javascript; charset=utf-8")
    }

    pub(super) async fn style() -> Response {
        asset(STYLE, "text/css; charset=utf-8")
    }

    pub(super) async fn icon() -> Response {
        asset(ICON, "image/svg+xml")
    }
}
