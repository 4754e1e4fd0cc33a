//! What the two HTTP listeners share, the agent's admin listener ([`crate::admin`]) and the
//! collector ([`crate::collect`]): the accept loop with its connection cap and header/idle
//! timeout, the security headers of their pages, and the JSON error body.
//!
//! # Bounded cost per connection
//! [`serve`] holds at most [`ConnLimits::max_connections`] connections at once. Past the cap it
//! stops accepting, so further clients wait in the kernel's listen backlog, which costs this
//! process no file descriptor. Each connection must deliver a request's headers within
//! [`ConnLimits::header_timeout`], counted from the connection's start and again from the end of
//! each response. So the same limit closes idle keep-alive connections and slowloris clients.
//! An accept that fails (out of file descriptors, for example) is reported once per streak and
//! retried after a short pause, never in a busy loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How long to pause after a failed accept before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Per-connection limits of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Time allowed for a request's headers, from the connection's start or the end of the
    /// previous response. It is also the keep-alive idle limit: a connection that sends nothing
    /// for this long is closed.
    pub header_timeout: Duration,
    /// Most connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

/// Serves `router` on `listener` under `limits` until `stop` resolves. Each request carries the
/// peer address as `ConnectInfo<SocketAddr>`. `name` labels the report of a failed accept.
///
/// On `stop` it returns at once. Connections still open are dropped with their runtime.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    name: &'static str,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut failing = false;
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    if !failing {
                        report(name, &format!("accept failed: {e}; retrying"));
                        failing = true;
                    }
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        if failing {
            report(name, "accepting connections again");
            failing = false;
        }
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                router.clone().oneshot(req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = conn.await;
            drop(permit);
        });
    }
}

/// Reports a listener event where the operator sees it: the log when the process has one (the
/// agent), else standard error (the collector prints its own lines there).
fn report(name: &str, message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{name}: {message}");
    } else {
        eprintln!("{name}: {message}");
    }
}

/// The Content-Security-Policy of a page of this project, from its `script-src` and
/// `style-src` sources. Everything else is this origin only, and no page may be framed.
macro_rules! csp {
    ($script:literal, $style:literal) => {
        concat!(
            "default-src 'none'; script-src ",
            $script,
            "; style-src ",
            $style,
            "; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        )
    };
}

/// The collector's dashboard: its own scripts and style sheets only.
pub const DASHBOARD_CSP: &str = csp!("'self'", "'self'");

/// The Console telemetry page. Beyond the dashboard's policy, its scripts may compile
/// WebAssembly (`'wasm-unsafe-eval'`, for the core's wasm) and its styles may be inline: the
/// page and the widget's shadow root carry their style sheets inline. Scripts stay this
/// origin's files only, and the widget inserts every reported string as text.
pub const CONSOLE_CSP: &str = csp!("'self' 'wasm-unsafe-eval'", "'self' 'unsafe-inline'");

/// The headers of a page or static asset served by a listener: its type, `csp`,
/// `X-Content-Type-Options: nosniff` and `Cache-Control: no-cache`.
pub fn page_headers(content_type: &str, csp: &'static str) -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// The headers of a JSON answer: its type, `nosniff` and `Cache-Control: no-store`.
pub fn json_headers() -> [(HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// The JSON body of a refusal: `{"error":"…"}`.
pub fn error_json(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

/// A refusal with `status` and the JSON body saying `msg`.
pub fn json_error(status: StatusCode, msg: &str) -> Response {
    (status, json_headers(), error_json(msg)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_differ_only_where_documented() {
        assert_eq!(
            DASHBOARD_CSP,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        assert_eq!(
            CONSOLE_CSP
                .replace(" 'wasm-unsafe-eval'", "")
                .replace(" 'unsafe-inline'", ""),
            DASHBOARD_CSP
        );
    }
}
