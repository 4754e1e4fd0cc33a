//! The admin listener over real loopback HTTP: preview API, metrics, token, refusals, off.

mod common;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use ttn_lw_telemetry::admin::{
    self, AdminConfig, AdminState, Asset, ConsoleAssets, InputsProvider,
};
use ttn_lw_telemetry::metrics::{self, SharedStatus};
use ttn_telemetry_core::{Inputs, content_digest, parse_content_digest, sha256, sha256_hex};

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn serve(state: AdminState) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            admin::serve(l, state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    Server {
        addr: rx.recv().unwrap(),
        stop: Some(stop),
        thread: Some(thread),
    }
}

struct Counting {
    calls: AtomicUsize,
}

impl InputsProvider for Counting {
    fn inputs(&self) -> anyhow::Result<Inputs> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(common::inputs())
    }
}

fn state(token: Option<&str>, off: Option<&str>) -> (AdminState, Arc<Counting>, SharedStatus) {
    let provider = Arc::new(Counting {
        calls: AtomicUsize::new(0),
    });
    let status = metrics::shared(off.is_none());
    let s = AdminState::new(
        AdminConfig {
            token: token.map(str::to_owned),
            off_reason: off.map(str::to_owned),
            local_only: false,
            target: "https://user:pa55@collector.example/collect".into(),
            interval: Duration::from_secs(86400),
            loopback_hosts_only: true,
            uid_elements: vec!["admin-test".into()],
        },
        provider.clone(),
        status.clone(),
    );
    (s, provider, status)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

struct Got {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Got {
    let mut req = agent().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut r = req.call().unwrap();
    Got {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.body_mut().read_to_vec().unwrap(),
    }
}

fn json(g: &Got) -> serde_json::Value {
    serde_json::from_slice(&g.body).unwrap()
}

#[test]
fn inputs_and_report_agree_with_the_core() {
    let (st, provider, status) = state(None, None);
    let due = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    status.lock().unwrap().next_due = Some(due);
    let srv = serve(st);
    let expected = common::body();

    let g = get(srv.addr, "/api/v1/telemetry/inputs", None);
    assert_eq!(g.status, 200);
    assert_eq!(g.headers["cache-control"], "no-store");
    let v = json(&g);
    let inputs = Inputs::from_json(v["inputs"].to_string().as_bytes()).unwrap();
    assert_eq!(inputs, common::inputs());
    assert_eq!(v["sha256"], sha256_hex(&expected));
    assert_eq!(v["size"], expected.len());
    assert_eq!(v["enabled"], true);
    assert_eq!(v["off_reason"], serde_json::Value::Null);
    assert_eq!(v["target"], "https://user:***@collector.example/collect");
    assert_eq!(v["interval"], "24h0m0s");
    assert_eq!(v["next_due"], "2030-03-17T17:46:40.000Z");
    assert_eq!(v["last_success"], serde_json::Value::Null);
    assert_eq!(v["last_send"], serde_json::Value::Null);

    let r = get(srv.addr, "/api/v1/telemetry/report", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, expected, "the exact bytes the core builds");
    assert_eq!(r.headers["content-type"], "application/json");
    let digest = r.headers["content-digest"].to_str().unwrap();
    assert_eq!(digest, content_digest(&expected));
    assert_eq!(parse_content_digest(digest), Some(sha256(&r.body)));
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn metrics_are_prometheus_text() {
    let (st, _, status) = state(None, None);
    {
        let mut s = status.lock().unwrap();
        let t = |x| SystemTime::UNIX_EPOCH + Duration::from_secs(x);
        s.record_attempt(t(100), false, "HTTP 503".into());
        s.record_attempt(t(200), false, "timeout".into());
        s.next_due = Some(t(86_600));
    }
    let srv = serve(st);
    let g = get(srv.addr, "/metrics", None);
    assert_eq!(g.status, 200);
    assert!(
        g.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(g.body).unwrap();
    for line in [
        "ttn_lw_telemetry_enabled 1",
        "ttn_lw_telemetry_last_attempt_timestamp_seconds 200",
        "ttn_lw_telemetry_consecutive_failures 2",
        "ttn_lw_telemetry_next_due_timestamp_seconds 86600",
        "ttn_lw_telemetry_attempts_total 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("ttn_lw_telemetry_last_success_timestamp_seconds"))
    );
}

#[test]
fn everything_else_is_refused() {
    let (st, provider, _) = state(None, None);
    let srv = serve(st);
    assert_eq!(get(srv.addr, "/", None).status, 404);
    assert_eq!(get(srv.addr, "/api/v1/telemetry", None).status, 404);
    assert_eq!(
        get(srv.addr, "/api/v1/telemetry/inputs/x", None).status,
        404
    );
    assert_eq!(get(srv.addr, "/console/telemetry/", None).status, 404);
    for path in [
        "/api/v1/telemetry/report",
        "/api/v1/telemetry/inputs",
        "/metrics",
    ] {
        let r = agent()
            .post(format!("http://{}{path}", srv.addr))
            .send_empty()
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "POST {path}");
        let r = agent()
            .delete(format!("http://{}{path}", srv.addr))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "DELETE {path}");
    }
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_token_is_required_when_set() {
    let (st, provider, _) = state(Some("s3cret-token"), None);
    let srv = serve(st);
    for path in [
        "/api/v1/telemetry/inputs",
        "/api/v1/telemetry/report",
        "/metrics",
    ] {
        let none = get(srv.addr, path, None);
        assert_eq!(none.status, 401, "{path}");
        assert!(
            none.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(get(srv.addr, path, Some("s3cret-tokeN")).status, 401);
        assert_eq!(get(srv.addr, path, Some("s3cret")).status, 401);
        assert_eq!(get(srv.addr, path, Some("s3cret-token")).status, 200);
    }
    // Only the two authorized API calls counted.
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
}

struct Page;

impl ConsoleAssets for Page {
    fn get(&self, path: &str) -> Option<Asset> {
        match path {
            "" => Some(Asset {
                content_type: "text/html; charset=utf-8",
                bytes: Cow::Borrowed(b"<!doctype html><telemetry-preview></telemetry-preview>"),
            }),
            "app.js" => Some(Asset {
                content_type: "text/javascript",
                bytes: Cow::Borrowed(b"export {}"),
            }),
            _ => None,
        }
    }
}

#[test]
fn the_console_hook_serves_assets_without_the_token() {
    let (st, _, _) = state(Some("t"), None);
    let srv = serve(st.with_console(Arc::new(Page)));
    let page = get(srv.addr, "/console/telemetry", None);
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.body.starts_with(b"<!doctype html>"));
    let js = get(srv.addr, "/console/telemetry/app.js", None);
    assert_eq!(
        (js.status, js.body.as_slice()),
        (200, b"export {}".as_slice())
    );
    assert_eq!(
        get(srv.addr, "/console/telemetry/nope.js", None).status,
        404
    );
}

#[test]
fn off_means_nothing_is_counted() {
    let (st, provider, _) = state(None, Some("DO_NOT_TRACK is set"));
    let srv = serve(st);
    let g = get(srv.addr, "/api/v1/telemetry/inputs", None);
    assert_eq!(g.status, 200);
    let v = json(&g);
    assert_eq!(v["enabled"], false);
    assert_eq!(v["off_reason"], "DO_NOT_TRACK is set");
    assert_eq!(v["inputs"], serde_json::Value::Null);
    assert_eq!(v["inputs_json"], serde_json::Value::Null);
    assert_eq!(v["uid_elements"], serde_json::json!(["admin-test"]));
    assert_eq!(v["sha256"], serde_json::Value::Null);
    assert_eq!(v["next_due"], serde_json::Value::Null);
    let r = get(srv.addr, "/api/v1/telemetry/report", None);
    assert_eq!(r.status, 409);
    assert!(String::from_utf8_lossy(&r.body).contains("telemetry is off"));
    let m = String::from_utf8(get(srv.addr, "/metrics", None).body).unwrap();
    assert!(m.lines().any(|l| l == "ttn_lw_telemetry_enabled 0"));
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        0,
        "no counting when off"
    );
}

#[test]
fn a_counting_failure_is_a_clear_503() {
    let status = metrics::shared(true);
    let failing = Arc::new(|| -> anyhow::Result<Inputs> {
        anyhow::bail!("connecting to postgresql://root:***@db/is: connection refused")
    });
    let st = AdminState::new(
        AdminConfig {
            token: None,
            off_reason: None,
            local_only: false,
            target: "https://collector.example/collect".into(),
            interval: Duration::from_secs(3600),
            loopback_hosts_only: true,
            uid_elements: vec!["admin-test".into()],
        },
        failing,
        status,
    );
    let srv = serve(st);
    for path in ["/api/v1/telemetry/inputs", "/api/v1/telemetry/report"] {
        let g = get(srv.addr, path, None);
        assert_eq!(g.status, 503, "{path}");
        let v = json(&g);
        assert!(
            v["error"].as_str().unwrap().contains("counting failed"),
            "{v}"
        );
    }
}

#[test]
fn foreign_host_names_are_refused_on_loopback() {
    let (st, provider, _) = state(None, None);
    let srv = serve(st);
    for path in ["/api/v1/telemetry/inputs", "/metrics", "/nope"] {
        let r = agent()
            .get(format!("http://{}{path}", srv.addr))
            .header("Host", "rebound.evil.example:1886")
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 421, "{path}");
    }
    let ok = agent()
        .get(format!("http://{}/metrics", srv.addr))
        .header("Host", format!("localhost:{}", srv.addr.port()))
        .call()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn the_last_send_is_time_and_status() {
    let (st, _, status) = state(None, None);
    {
        let mut s = status.lock().unwrap();
        s.last_attempt = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000));
        s.last_outcome = Some("202 Accepted".to_owned());
    }
    let srv = serve(st);
    let v = json(&get(srv.addr, "/api/v1/telemetry/inputs", None));
    assert_eq!(
        v["last_send"],
        serde_json::json!({"time": "2030-03-17T17:46:40.000Z", "status": "202 Accepted"})
    );
}

#[test]
fn the_inputs_are_the_cores_json_numbers() {
    let (st, _, _) = state(None, None);
    let srv = serve(st);
    let g = get(srv.addr, "/api/v1/telemetry/inputs", None);
    let v = json(&g);
    let want: serde_json::Value = serde_json::from_slice(&common::inputs().to_json()).unwrap();
    assert_eq!(v["inputs"], want);
    assert!(v["inputs"]["entities_count"]["gateways"]["total"].is_u64());
    // The core's bytes as they are (its key order, `gateways` before `accounts`, and its
    // escapes), not a re-serialisation; and the same text as a string for the widget.
    let core = String::from_utf8(common::inputs().to_json()).unwrap();
    let body = String::from_utf8(g.body.clone()).unwrap();
    assert!(body.contains(&format!(r#""inputs":{core},"#)), "{body}");
    assert_eq!(v["inputs_json"], core.as_str());
}

#[test]
fn the_embedded_console_page_is_served() {
    use ttn_lw_telemetry::console::{EmbeddedConsole, MISSING};
    let (st, _, _) = state(Some("t"), None);
    let srv = serve(st.with_console(Arc::new(EmbeddedConsole)));
    let page = get(srv.addr, "/console/telemetry", None);
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("<ttn-telemetry-preview>") || html.contains(MISSING));
    // Issue 14 §3: the operator's own data, as commands to run.
    for command in ["ttn-lw-telemetry collected", "ttn-lw-telemetry forget"] {
        assert!(
            html.contains(&format!("<code>{command}</code>")),
            "{command}"
        );
    }
    let js = get(
        srv.addr,
        "/console/telemetry/src/ttn-telemetry-preview.js",
        None,
    );
    assert_eq!(js.status, 200);
    assert_eq!(js.headers["content-type"], "text/javascript; charset=utf-8");
    let wasm = get(
        srv.addr,
        "/console/telemetry/pkg/ttn_telemetry_wasm_bg.wasm",
        None,
    );
    if EmbeddedConsole.has_pkg() {
        assert_eq!(wasm.status, 200);
        assert_eq!(wasm.headers["content-type"], "application/wasm");
        assert_eq!(&wasm.body[..4], b"\0asm");
    } else {
        assert_eq!(wasm.status, 404);
        assert!(html.contains(MISSING));
        let body = String::from_utf8(wasm.body).unwrap();
        assert!(body.contains("scripts/wasm-build.sh"), "{body}");
    }
}

// ---- Bounded cost per connection (issue 11 item 7) ----

/// Reads until the server closes the connection: `true` when it did (EOF or reset) within
/// `within`, `false` when the read timed out with the connection still open.
fn closed_by_server(s: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read as _;
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn idle_and_slow_connections_are_closed_and_connections_are_capped() {
    use std::io::Write as _;
    use std::net::TcpStream;
    use ttn_lw_telemetry::server::ConnLimits;

    let (st, _, _) = state(None, None);
    let header_timeout = Duration::from_millis(300);
    let srv = serve(st.with_limits(ConnLimits {
        header_timeout,
        max_connections: 2,
    }));
    let began = std::time::Instant::now();
    // Two connections fill the cap: one sends nothing, one sends half a request line.
    let mut idle = TcpStream::connect(srv.addr).unwrap();
    let mut slow = TcpStream::connect(srv.addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: local")
        .unwrap();
    // A third client waits for a free slot, then is answered.
    let addr = srv.addr;
    let third = std::thread::spawn(move || {
        let g = get(addr, "/metrics", None);
        (g.status, began.elapsed())
    });
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(5)),
        "an idle connection is closed by the server"
    );
    assert!(
        closed_by_server(&mut slow, Duration::from_secs(5)),
        "a connection whose headers never end is closed by the server"
    );
    let (status, answered_after) = third.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        answered_after >= header_timeout,
        "the third connection waited for a slot (answered after {answered_after:?})"
    );
    // A keep-alive connection left idle after a response is closed too.
    let mut kept = TcpStream::connect(srv.addr).unwrap();
    kept.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(closed_by_server(&mut kept, Duration::from_secs(5)));
}

// ---- One mapping of errors to statuses (issue 12 §4) ----

#[test]
fn every_refusal_is_a_json_error_with_nosniff() {
    let (st, _, _) = state(Some("t"), Some("DO_NOT_TRACK is set"));
    let srv = serve(st);
    let post = agent()
        .post(format!("http://{}/metrics", srv.addr))
        .send_empty()
        .unwrap();
    let mut refusals = vec![(
        405,
        post.headers().clone(),
        post.into_body().read_to_vec().unwrap(),
    )];
    for (path, token, want) in [
        ("/nope", None, 404),
        ("/metrics", None, 401),
        ("/api/v1/telemetry/report", Some("t"), 409),
        ("/console/telemetry/", None, 404),
    ] {
        let g = get(srv.addr, path, token);
        assert_eq!(g.status, want, "{path}");
        refusals.push((g.status, g.headers, g.body));
    }
    for (status, headers, body) in refusals {
        assert_eq!(headers["content-type"], "application/json", "{status}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{status}");
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body:?}"));
        assert!(
            v["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{status}: {v}"
        );
    }
}

// ---- The Console page's security headers (issue 11 item 12) ----

/// The directives of a Content-Security-Policy, by name.
fn directives(csp: &str) -> std::collections::BTreeMap<String, String> {
    csp.split(';')
        .filter_map(|d| {
            let d = d.trim();
            let (name, value) = d.split_once(' ').unwrap_or((d, ""));
            (!name.is_empty()).then(|| (name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[test]
fn the_console_page_has_the_dashboards_security_headers() {
    use ttn_lw_telemetry::collect::{self, CollectOptions};
    use ttn_lw_telemetry::console::EmbeddedConsole;

    // The collector's dashboard, as served.
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("c.sqlite3").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt
        .block_on(collect::start(CollectOptions::new("127.0.0.1:0", Some(db))))
        .unwrap();
    let dashboard = get(c.local_addr(), "/", None);
    assert_eq!(dashboard.status, 200);
    let dash = directives(
        dashboard.headers["content-security-policy"]
            .to_str()
            .unwrap(),
    );

    let (st, _, _) = state(Some("t"), None);
    let srv = serve(st.with_console(Arc::new(EmbeddedConsole)));
    for path in [
        "/console/telemetry/",
        "/console/telemetry/src/ttn-telemetry-preview.js",
    ] {
        let g = get(srv.addr, path, None);
        assert_eq!(g.status, 200, "{path}");
        assert_eq!(g.headers["x-content-type-options"], "nosniff", "{path}");
        let page = directives(g.headers["content-security-policy"].to_str().unwrap());
        assert_eq!(
            page["frame-ancestors"], "'none'",
            "{path}: cannot be framed"
        );
        assert_eq!(page["default-src"], "'none'");
        // Scripts: this origin's files only, plus compiling the core's wasm.
        assert_eq!(page["script-src"], "'self' 'wasm-unsafe-eval'");
        // Every other directive is the dashboard's.
        let strip = |m: &std::collections::BTreeMap<String, String>| {
            let mut m = m.clone();
            m.remove("script-src");
            m.remove("style-src");
            m
        };
        assert_eq!(strip(&page), strip(&dash), "{path}");
        assert_eq!(
            g.headers.get("cache-control").map(|v| v.to_str().unwrap()),
            dashboard
                .headers
                .get("cache-control")
                .map(|v| v.to_str().unwrap())
        );
    }
    rt.block_on(c.shutdown());
}

/// `telemetry.local-only`: the inputs JSON says so in the exact words the Console shows, and
/// carries the kept reports; `/metrics` shows them; the preview still counts (the report is
/// built, only never sent). Without local-only, the same fields say nothing is kept.
#[test]
fn local_only_is_shown_in_the_inputs_and_the_metrics() {
    let provider = Arc::new(Counting {
        calls: AtomicUsize::new(0),
    });
    let status = metrics::shared(true);
    let t = |x| SystemTime::UNIX_EPOCH + Duration::from_secs(x);
    {
        let mut s = status.lock().unwrap();
        s.local_only = true;
        s.record_kept(t(1_900_000_000), "ab".repeat(32));
        s.record_kept(t(1_900_000_060), "cd".repeat(32));
        s.next_due = Some(t(1_900_000_120));
    }
    let st = AdminState::new(
        AdminConfig {
            token: None,
            off_reason: None,
            local_only: true,
            target: "https://collector.example/collect".into(),
            interval: Duration::from_secs(60),
            loopback_hosts_only: true,
            uid_elements: vec!["admin-test".into()],
        },
        provider.clone(),
        status,
    );
    let srv = serve(st);
    let v = json(&get(srv.addr, "/api/v1/telemetry/inputs", None));
    assert_eq!(v["enabled"], true);
    assert_eq!(v["local_only"], true);
    assert_eq!(
        v["note"],
        "local only: reports are kept here and never sent"
    );
    assert_eq!(v["note"], ttn_telemetry_core::LOCAL_ONLY_NOTE);
    assert_eq!(v["kept_total"], 2);
    assert_eq!(v["last_kept"], "2030-03-17T17:47:40.000Z");
    assert_eq!(v["last_sha256"], "cd".repeat(32));
    assert_eq!(v["last_send"], serde_json::Value::Null, "nothing was sent");
    assert_eq!(v["sha256"], sha256_hex(&common::body()));
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);

    let text = String::from_utf8(get(srv.addr, "/metrics", None).body).unwrap();
    for line in [
        "ttn_lw_telemetry_enabled 1",
        "ttn_lw_telemetry_local_only 1",
        "ttn_lw_telemetry_last_kept_timestamp_seconds 1900000060",
        "ttn_lw_telemetry_reports_kept_total 2",
        "ttn_lw_telemetry_attempts_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }

    // Not local-only: the same fields say so.
    let (st, _, _) = state(None, None);
    let srv = serve(st);
    let v = json(&get(srv.addr, "/api/v1/telemetry/inputs", None));
    assert_eq!(v["local_only"], false);
    assert_eq!(v["note"], serde_json::Value::Null);
    assert_eq!(v["kept_total"], 0);
    let text = String::from_utf8(get(srv.addr, "/metrics", None).body).unwrap();
    assert!(text.lines().any(|l| l == "ttn_lw_telemetry_local_only 0"));
    assert!(
        text.lines()
            .any(|l| l == "ttn_lw_telemetry_reports_kept_total 0")
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("ttn_lw_telemetry_last_kept_timestamp_seconds "))
    );
}
