//! The collector over real HTTP, on embedded SQLite and on PostgreSQL: receipts, every bad input
//! of SPEC §9, slow bodies, flooding, aggregates and restarts. Each test makes its own store.

#[macro_use]
mod collect_util;

use std::time::{Duration, Instant};

use collect_util::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use ttn_lw_telemetry::collect::ratelimit::RateLimit;
use ttn_lw_telemetry::collect::{self, CollectOptions, Limits};
use ttn_telemetry_core::{civil_to_unix_micros, content_digest, parse_report, sha256_hex};

both!(accepts_with_receipt);
async fn accepts_with_receipt(b: Backend) {
    let (uri, _dir) = fresh_store(b, "receipt").await;
    let c = start(&uri, unlimited(), None).await;
    let mut accepted = c.accepted();
    assert_eq!(*accepted.borrow(), 0);
    let body = is_report(1, 0);
    let r = request(
        c.local_addr(),
        "POST",
        "/collect",
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("content-digest", &content_digest(&body)),
        ],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        serde_json::json!({"stored": true, "sha256": sha256_hex(&body), "repeat": false})
    );
    // The response's Content-Digest covers the receipt itself (RFC 9530), and the agent's
    // receipt check accepts it as naming the body it sent.
    assert_eq!(
        r.headers.get("content-digest").unwrap().to_str().unwrap(),
        content_digest(&r.body)
    );
    assert_eq!(
        ttn_lw_telemetry::deliver::check_receipt(
            &r.body,
            r.headers
                .get("content-digest")
                .and_then(|v| v.to_str().ok()),
            &sha256_hex(&body)
        ),
        ttn_lw_telemetry::deliver::Receipt::Matched
    );
    accepted.changed().await.unwrap();
    assert_eq!(*accepted.borrow_and_update(), 1);
    // A CLI report without a Content-Digest is accepted too.
    let cli = cli_report(7);
    assert_eq!(post_json(c.local_addr(), cli.clone()).await.status, 200);

    assert_eq!(*accepted.borrow(), 2);
    let stored = c.store().all_reports().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].body, body);
    assert_eq!(stored[0].sha256, sha256_hex(&body));
    assert_eq!(stored[0].kind, "is");
    assert_eq!(stored[0].uid, parse_report(&body).unwrap().uid);
    assert_eq!(stored[1].body, cli);
    assert_eq!(stored[1].kind, "cli");
    assert!(stored[0].received_at > 1_700_000_000_000_000);
    c.shutdown().await;
}

both!(refuses_bad_input);
async fn refuses_bad_input(b: Backend) {
    let (uri, _dir) = fresh_store(b, "bad").await;
    let c = start(&uri, unlimited(), None).await;
    let addr = c.local_addr();
    let good = is_report(2, 0);
    let good_str = String::from_utf8(good.clone()).unwrap();
    const JSON: &str = "application/json";

    // Bodies the core refuses: 400 with the core's own message.
    let deep = format!("{{\"uid\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let mut many_keys = String::from(
        r#"{"uid":"x","os":{"operating_system":"linux","arch":"amd64","binary_version":"1","golang_version":"g"},"cli":null,"entities_count":{"gateways":{"total":1,"gateways_by_frequency_plan_id":{"#,
    );
    for i in 0..5_000 {
        many_keys.push_str(&format!("\"k{i}\":1,"));
    }
    many_keys.push_str("\"z\":1}}}}");
    assert!(many_keys.len() < 64 * 1024);
    let beyond_u64 = good_str.replacen("\"admin\":1", "\"admin\":18446744073709551616", 1);
    assert_ne!(beyond_u64, good_str);
    let mut bad_utf8 = good_str
        .replacen("rustc 1.95.0", "rustc\u{1}1.95.0", 1)
        .into_bytes();
    let at = bad_utf8.iter().position(|&b| b == 1).unwrap();
    bad_utf8[at] = 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"{\"uid\":".to_vec()),
        ("not an object", b"[1,2,3]".to_vec()),
        ("empty", vec![]),
        ("deep nesting", deep.into_bytes()),
        ("5,000 map keys", many_keys.into_bytes()),
        ("beyond u64", beyond_u64.into_bytes()),
        ("invalid utf-8", bad_utf8),
        (
            "negative count",
            good_str
                .replacen("\"admin\":1", "\"admin\":-1", 1)
                .into_bytes(),
        ),
        (
            "unknown key",
            good_str
                .replacen("{\"uid\"", "{\"x\":1,\"uid\"", 1)
                .into_bytes(),
        ),
        (
            "bad uid",
            good_str
                .replacen(&parse_report(&good).unwrap().uid, "abc", 1)
                .into_bytes(),
        ),
        ("trailing data", [good.clone(), b"{}".to_vec()].concat()),
    ];
    for (what, body) in cases {
        let expected = parse_report(&body).expect_err(what).to_string();
        let r = post_json(addr, body).await;
        assert_eq!(
            r.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json(), serde_json::json!({ "error": expected }), "{what}");
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "application/json",
            "{what}"
        );
    }
    // The numbers-beyond-u64 case names the limit.
    let r = post_json(
        addr,
        good_str
            .replacen("\"admin\":1", "\"admin\":18446744073709551616", 1)
            .into_bytes(),
    )
    .await;
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("exceeds 18446744073709551615")
    );

    // Too large: 413, whether declared or not.
    let huge = vec![b' '; 64 * 1024 + 1];
    let r = post_json(addr, huge).await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("65536"));
    // 100,000 map keys cannot fit in 64 KiB: refused by size before anything is parsed.
    let mut keys = String::from("{\"m\":{");
    for i in 0..100_000 {
        keys.push_str(&format!("\"{i}\":1,"));
    }
    keys.push_str("\"x\":1}}");
    assert_eq!(post_json(addr, keys.into_bytes()).await.status, 413);

    // A chunked body with no declared length is cut off at the limit too.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /collect HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = [b' '; 8192];
    for _ in 0..9 {
        let _ = s
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = s.write_all(&chunk).await;
        let _ = s.write_all(b"\r\n").await;
    }
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "chunked: {resp:?}");

    // Wrong or missing type: 415.
    for headers in [
        vec![("content-type", "text/plain")],
        vec![("content-type", "application/jsonx")],
        vec![("content-type", "multipart/form-data; boundary=x")],
        vec![],
    ] {
        let r = request(addr, "POST", "/collect", &headers, good.clone())
            .await
            .unwrap();
        assert_eq!(r.status, 415, "{headers:?}");
        assert_eq!(r.json()["error"], "content type must be application/json");
    }

    // Wrong or malformed Content-Digest: 400.
    for digest in [
        content_digest(b"something else"),
        "sha-256=:not base64:".to_owned(),
        "md5=:AAAA:".to_owned(),
    ] {
        let r = request(
            addr,
            "POST",
            "/collect",
            &[("content-type", JSON), ("content-digest", &digest)],
            good.clone(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 400, "{digest}");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("Content-Digest"),
            "{digest}"
        );
    }

    // Read-only everywhere else.
    for (m, p) in [
        ("GET", "/collect"),
        ("POST", "/api/v1/stats"),
        ("DELETE", "/api/v1/stats"),
        ("POST", "/"),
        ("PUT", "/"),
    ] {
        let r = request(addr, m, p, &[("content-type", JSON)], vec![])
            .await
            .unwrap();
        assert_eq!(r.status, 405, "{m} {p}");
        assert!(r.json()["error"].as_str().unwrap().contains("read-only"));
    }
    assert_eq!(
        request(addr, "GET", "/nope", &[], vec![])
            .await
            .unwrap()
            .status,
        404
    );

    // Nothing refused was stored; the good report still goes in.
    assert!(c.store().all_reports().await.unwrap().is_empty());
    assert_eq!(stats(addr).await["reports_stored"], 0);
    assert_eq!(post_json(addr, good).await.status, 200);
    assert_eq!(c.store().all_reports().await.unwrap().len(), 1);
    c.shutdown().await;
}

/// Reads an HTTP/1.1 response head and body from a raw stream until it closes or `limit` passes.
async fn read_response(s: &mut TcpStream, limit: Duration) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

both!(slow_bodies_do_not_pin_workers);
async fn slow_bodies_do_not_pin_workers(b: Backend) {
    let (uri, _dir) = fresh_store(b, "slow").await;
    let limits = Limits {
        body_timeout: Duration::from_secs(3),
        header_timeout: Duration::from_secs(1),
        ..unlimited()
    };
    let c = start(&uri, limits, None).await;
    let addr = c.local_addr();
    let body = is_report(3, 0);

    // Many clients trickle a body one byte at a time (far more than the runtime's 2 workers).
    let mut tricklers = Vec::new();
    // Each is connected with its request head sent before the normal report below is.
    for _ in 0..64 {
        let body = body.clone();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /collect HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        tricklers.push(tokio::spawn(async move {
            let start = Instant::now();
            for byte in body.iter().take(50) {
                if s.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                if start.elapsed() > Duration::from_secs(6) {
                    break;
                }
            }
            let resp = read_response(&mut s, Duration::from_secs(8)).await;
            (start.elapsed(), resp)
        }));
    }
    // A client that sends half of its headers and stops.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /collect HTTP/1.1\r\nhost: x\r\ncontent-")
        .await
        .unwrap();

    // Meanwhile a normal report is served long before the slow ones time out (a pinned
    // worker would make it wait for them).
    let t = Instant::now();
    let r = post_json(addr, body.clone()).await;
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a normal request waited {:?} behind slow ones",
        t.elapsed()
    );

    for t in tricklers {
        let (elapsed, resp) = t.await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 408"), "got {resp:?}");
        assert!(resp.contains("did not arrive in time"), "{resp}");
        assert!(
            elapsed > Duration::from_millis(2500) && elapsed < Duration::from_secs(6),
            "cut off after {elapsed:?}, expected at the 3 s body timeout"
        );
    }
    // The stalled header is dropped by the header timeout.
    let resp = read_response(&mut stalled, Duration::from_secs(4)).await;
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 408"),
        "stalled headers got {resp:?}"
    );
    let mut probe = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(1), stalled.read(&mut probe))
        .await
        .expect("the stalled connection is closed by the server");
    assert!(matches!(n, Ok(0) | Err(_)));

    assert_eq!(c.store().all_reports().await.unwrap().len(), 1);
    c.shutdown().await;
}

both!(flooding_is_rate_limited);
async fn flooding_is_rate_limited(b: Backend) {
    let (uri, _dir) = fresh_store(b, "flood").await;
    // Per address.
    let limits = Limits {
        per_addr: Some(RateLimit {
            burst: 5,
            per_second: 0.01,
        }),
        per_uid: None,
        ..Limits::default()
    };
    let c = start(&uri, limits, None).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(post_json(c.local_addr(), is_report(100 + i, 0)).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status).collect();
    assert_eq!(codes, [200, 200, 200, 200, 200, 429, 429, 429]);
    let last = statuses.last().unwrap();
    assert_eq!(last.json()["error"], "too many requests");
    let retry: u64 = last.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // Even bad requests are counted before their body is read.
    let r = request(c.local_addr(), "POST", "/collect", &[], vec![])
        .await
        .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(c.store().all_reports().await.unwrap().len(), 5);
    c.shutdown().await;

    // Per uid: the same deployment cannot flood, others are unaffected.
    let limits = Limits {
        per_addr: None,
        per_uid: Some(RateLimit {
            burst: 2,
            per_second: 0.001,
        }),
        ..Limits::default()
    };
    let c = start(&uri, limits, None).await;
    let same = is_report(200, 0);
    let codes = [
        post_json(c.local_addr(), same.clone()).await.status,
        post_json(c.local_addr(), same.clone()).await.status,
        post_json(c.local_addr(), same.clone()).await.status,
        post_json(c.local_addr(), is_report(201, 0)).await.status,
        post_json(c.local_addr(), same).await.status,
    ];
    assert_eq!(codes, [200, 200, 429, 200, 429]);
    // The second copy of `same` was a repeat: answered, not stored again.
    assert_eq!(c.store().all_reports().await.unwrap().len(), 7);
    c.shutdown().await;
}

const DAY: i64 = 86_400_000_000;

both!(aggregates_follow_latest_reports);
async fn aggregates_follow_latest_reports(b: Backend) {
    let (uri, _dir) = fresh_store(b, "agg").await;
    let t0 = civil_to_unix_micros(2026, 10, 1, 12 * 3_600_000_000);
    let clock = TestClock::at(t0);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    let addr = c.local_addr();

    // Day 0: deployments 0, 1, 2. Day 10: deployment 0 again (newer counts), deployment 3.
    // Day 35: deployment 1 again, twice on the same day (the later one wins), and a CLI.
    for i in 0..3 {
        assert_eq!(post_json(addr, is_report(i, 0)).await.status, 200);
    }
    clock.set(t0 + 10 * DAY);
    assert_eq!(post_json(addr, is_report(0, 5)).await.status, 200);
    assert_eq!(post_json(addr, is_report(3, 0)).await.status, 200);
    clock.set(t0 + 35 * DAY);
    assert_eq!(post_json(addr, is_report(1, 1)).await.status, 200);
    clock.set(t0 + 35 * DAY + 1000);
    assert_eq!(post_json(addr, is_report(1, 2)).await.status, 200);
    assert_eq!(post_json(addr, cli_report(9)).await.status, 200);
    clock.set(t0 + 35 * DAY + 2 * 3_600_000_000);

    let s = stats(addr).await;
    assert_eq!(s["reports_stored"], 8);
    // Latest reports: 0@gen5 (day 10), 1@gen2 (day 35), 2@gen0 (day 0), 3@gen0 (day 10).
    let latest = [(0, 5), (1, 2), (2, 0), (3, 0)].map(|(i, g)| {
        let r = parse_report(&is_report(i, g)).unwrap();
        match r.payload {
            ttn_telemetry_core::Payload::Entities(e) => (e, r.os),
            _ => unreachable!(),
        }
    });
    let sum = |f: &dyn Fn(&ttn_telemetry_core::EntitiesCount) -> u64| -> u64 {
        latest.iter().map(|(e, _)| f(e)).sum()
    };
    assert_eq!(
        s["deployments"],
        serde_json::json!({"total": 4, "last_day": 1, "last_week": 1, "last_month": 3})
    );
    assert_eq!(
        s["cli_installations"],
        serde_json::json!({"total": 1, "last_day": 1, "last_week": 1, "last_month": 1})
    );
    assert_eq!(s["entities"]["gateways"], sum(&|e| e.gateways.total));
    assert_eq!(s["entities"]["end_devices"], sum(&|e| e.end_devices.total));
    assert_eq!(
        s["entities"]["applications"],
        sum(&|e| e.applications.total)
    );
    assert_eq!(
        s["entities"]["users_standard"],
        sum(&|e| e.accounts.users.standard)
    );
    assert_eq!(s["entities"]["users_admin"], 4);
    assert_eq!(
        s["entities"]["organizations"],
        sum(&|e| e.accounts.organizations.total)
    );
    assert_eq!(
        s["active_end_devices"]["last_day"],
        sum(&|e| e.end_devices.activate_end_devices.last_day)
    );
    assert_eq!(
        s["active_end_devices"]["last_month"],
        sum(&|e| e.end_devices.activate_end_devices.last_month)
    );
    let mut plans = std::collections::BTreeMap::<String, u64>::new();
    for (e, _) in &latest {
        for (p, n) in &e.gateways.gateways_by_frequency_plan_id {
            *plans.entry(p.clone()).or_default() += n;
        }
    }
    let got: std::collections::BTreeMap<String, u64> = s["gateways_by_frequency_plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, plans);
    let os_count = |name: &str| {
        latest
            .iter()
            .filter(|(_, o)| o.operating_system == name)
            .count()
    };
    for e in s["operating_systems"].as_array().unwrap() {
        assert_eq!(
            e["count"].as_u64().unwrap() as usize,
            os_count(e["name"].as_str().unwrap())
        );
    }
    let versions: u64 = s["binary_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(versions, 4);
    assert_eq!(s["cli"]["operating_systems"][0]["name"], "linux");

    // Daily: day 0 has 3 deployments, day 10 two, day 35 one (its later report) and a CLI.
    let daily = s["daily"].as_array().unwrap();
    let days: Vec<(&str, u64, u64)> = daily
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap(),
                d["deployments"].as_u64().unwrap(),
                d["gateways"].as_u64().unwrap(),
            )
        })
        .collect();
    let gw = |i, g| match parse_report(&is_report(i, g)).unwrap().payload {
        ttn_telemetry_core::Payload::Entities(e) => e.gateways.total,
        _ => unreachable!(),
    };
    assert_eq!(
        days,
        [
            ("2026-10-01", 3, gw(0, 0) + gw(1, 0) + gw(2, 0)),
            ("2026-10-11", 2, gw(0, 5) + gw(3, 0)),
            ("2026-11-05", 1, gw(1, 2)),
        ]
    );
    assert_eq!(daily[2]["cli_installations"], 1);

    // Stats survive a restart, and a restart does not change them.
    c.shutdown().await;
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    assert_eq!(stats(c.local_addr()).await, s);
    c.shutdown().await;
}

both!(escapes_and_exact_counts);
async fn escapes_and_exact_counts(b: Backend) {
    let (uri, _dir) = fresh_store(b, "esc").await;
    let c = start(&uri, unlimited(), None).await;
    let addr = c.local_addr();
    let body = is_report_with_plan(1, "<script>alert(1)</script>");
    // The wire form escapes `<` as Go does; the collector stores it byte for byte.
    assert!(String::from_utf8_lossy(&body).contains("\\u003cscript\\u003e"));
    assert_eq!(post_json(addr, body).await.status, 200);
    // A count at u64::MAX is accepted and stored, and summed exactly in the aggregates.
    let good = String::from_utf8(is_report(5, 0)).unwrap();
    let big = good.replacen("\"admin\":1", "\"admin\":18446744073709551615", 1);
    assert_eq!(post_json(addr, big.into_bytes()).await.status, 200);
    let s = stats(addr).await;
    assert_eq!(
        s["gateways_by_frequency_plan"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "<script>alert(1)</script>")
            .unwrap()["count"],
        1
    );
    assert_eq!(s["entities"]["users_admin"], u64::MAX);
    // The page itself carries no report data: it is static and fetched by a script under a CSP.
    let page = request(addr, "GET", "/", &[], vec![]).await.unwrap();
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert!(!String::from_utf8_lossy(&page.body).contains("<script>alert"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_uris() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["mysql://x/y", "sqlite:", "redis://127.0.0.1"] {
        let err = ttn_lw_telemetry::collect::store::Store::open(Some(bad))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("sqlite"), "{bad}: {err}");
    }
    let err =
        ttn_lw_telemetry::collect::store::Store::open(Some("postgresql://u:secret@127.0.0.1:1/x"))
            .await
            .unwrap_err();
    assert!(!format!("{err:#}").contains("secret"), "{err:#}");
    let path = dir.path().join("x.db");
    let s = ttn_lw_telemetry::collect::store::Store::open(Some(&format!(
        "sqlite://{}",
        path.display()
    )))
    .await
    .unwrap();
    s.close().await;
    assert!(path.exists());
}

/// PostgreSQL restarts or drops the collector's connections: the collector answers 503 (the
/// agent retries later) at most briefly, then reconnects; nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_come_back() {
    let (c, _db, killed) = with_backends_terminated("reconnect", "TRUE").await;
    assert_eq!(
        killed, 3,
        "the writer's, its flusher's and the reader's connections"
    );
    // The agent sends the same report again until it is acknowledged (a 503 may come after
    // the batch was written, before it was known to be durable: the retry is then a repeat).
    let statuses = post_until_200(c.local_addr(), is_report(10, 0)).await;
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    let s = stats(c.local_addr()).await;
    assert_eq!(s["reports_stored"], 2);
    c.shutdown().await;
}

/// A batch commits without waiting for the disk and is answered once a commit on the writer's
/// second connection (its flusher) has flushed the WAL past it. When that connection drops, the
/// flusher connects again (a batch whose flush fails on the way is answered 503, never 200),
/// and the report is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_flusher_connection_comes_back() {
    // The flusher's backend is the one whose last statement was the flush.
    let (c, _db, killed) =
        with_backends_terminated("flusher", "query LIKE '%txid_current()%'").await;
    assert_eq!(killed, 1, "the flusher's connection");
    let statuses = post_until_200(c.local_addr(), is_report(2, 0)).await;
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    // Sent once more after its 200: a repeat, not a second row.
    let again = post_json(c.local_addr(), is_report(2, 0)).await;
    assert_eq!(again.status, 200);
    let s = stats(c.local_addr()).await;
    assert_eq!(s["reports_stored"], 2, "{statuses:?}");
    c.shutdown().await;
}

/// Starts a collector on a fresh PostgreSQL database and stores a report; then terminates the
/// collector's backends that `which` (a condition on `pg_stat_activity`) selects, and waits
/// until the server no longer lists them. Returns the collector, the database's guard and how
/// many backends were terminated.
async fn with_backends_terminated(tag: &str, which: &str) -> (collect::Collector, StoreGuard, u64) {
    let (uri, db_guard) = fresh_store(Backend::Postgres, tag).await;
    let c = start(&uri, unlimited(), None).await;
    assert_eq!(post_json(c.local_addr(), is_report(1, 0)).await.status, 200);
    let (admin, conn) = tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let db = uri.rsplit('/').next().unwrap();
    let killed = admin
        .execute(
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND ({which})"
            ),
            &[&db],
        )
        .await
        .unwrap();
    // The backends are gone once the server no longer lists them (each check is a round trip).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = admin
            .query_one(
                &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND ({which})"),
                &[&db],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} backends outlived pg_terminate_backend"
        );
    }
    (c, db_guard, killed)
}

/// Posts `body` up to 5 times while the answer is 503 (with a Retry-After); the statuses.
async fn post_until_200(addr: std::net::SocketAddr, body: Vec<u8>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = post_json(addr, body.clone()).await;
        statuses.push(r.status);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.headers.contains_key("retry-after"));
    }
    statuses
}

both!(stats_json_matches_golden);
/// The exact `/api/v1/stats` JSON for a fixed set of reports and times, the same on both
/// stores. Regenerate with `TTN_UPDATE_GOLDEN=1` after an intended change, and review the diff.
async fn stats_json_matches_golden(b: Backend) {
    let (uri, _dir) = fresh_store(b, "golden").await;
    let t0 = civil_to_unix_micros(2026, 1, 30, 8 * 3_600_000_000);
    let clock = TestClock::at(t0);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    for step in 0..12u64 {
        clock.set(t0 + step as i64 * DAY / 2);
        for i in 0..4 {
            if (i + step) % 3 != 0 {
                let r = post_json(c.local_addr(), is_report(i, step)).await;
                assert_eq!(r.status, 200);
            }
        }
        if step % 4 == 0 {
            assert_eq!(
                post_json(c.local_addr(), cli_report(step)).await.status,
                200
            );
        }
    }
    assert_eq!(
        post_json(c.local_addr(), is_report_with_plan(9, "<b>&\u{2028}"))
            .await
            .status,
        200
    );
    clock.set(t0 + 6 * DAY + 3_600_000_000);
    let got = serde_json::to_string_pretty(&stats(c.local_addr()).await).unwrap() + "\n";
    c.shutdown().await;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/collect_stats.golden.json");
    if std::env::var_os("TTN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (TTN_UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        got,
        want,
        "{b:?}: /api/v1/stats differs from {}",
        path.display()
    );
}

/// Idle keep-alive connections are closed too, so they cannot hold the connection slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let (uri, _dir) = fresh_store(Backend::Sqlite, "idle").await;
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        ..unlimited()
    };
    let c = start(&uri, limits, None).await;
    let mut s = TcpStream::connect(c.local_addr()).await.unwrap();
    s.write_all(b"GET /api/v1/stats HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let t = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the idle connection is closed by the server");
    assert!(matches!(rest, Ok(0) | Err(_)), "{rest:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    c.shutdown().await;
}

/// Connections beyond the cap wait in the backlog, and a slot frees when a stalled client is
/// dropped by the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped() {
    let (uri, _dir) = fresh_store(Backend::Sqlite, "cap").await;
    let limits = Limits {
        header_timeout: Duration::from_secs(2),
        max_connections: 1,
        ..unlimited()
    };
    let c = start(&uri, limits, None).await;
    // The hog is served once (so it is known to hold the one connection), then stays open
    // and idle until the header timeout closes it.
    let mut hog = TcpStream::connect(c.local_addr()).await.unwrap();
    hog.write_all(b"GET /favicon.svg HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    hog.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let t = Instant::now();
    let r = post_json(c.local_addr(), is_report(1, 0)).await;
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "served after {:?}: the cap of one connection was not applied",
        t.elapsed()
    );
    drop(hog);
    c.shutdown().await;
}

both!(k_anonymity_folds_rare_values_into_other);
/// Issue 14 §4: with k = 5, a plan id, version or arch seen from 4 deployments appears nowhere
/// public (stats, open data), one seen from 5 does, and every total stays exact (`other` carries
/// what was folded). A fifth deployment makes the rare plan public.
async fn k_anonymity_folds_rare_values_into_other(b: Backend) {
    let (uri, _dir) = fresh_store(b, "kanon").await;
    let c = start_k(&uri, unlimited(), None, 5).await;
    let addr = c.local_addr();
    // uids plan-0..4: plan PLAN_K (5 deployments); plan-10..13: PLAN_RARE (4 deployments).
    for i in (0..5).chain(10..14) {
        let plan = if i < 10 { "PLAN_K" } else { "PLAN_RARE" };
        assert_eq!(
            post_json(addr, is_report_with_plan(i, plan)).await.status,
            200
        );
    }
    let public = |addr| async move {
        let mut all = String::new();
        for path in ["/api/v1/stats", "/api/v1/daily.json", "/api/v1/daily.csv"] {
            let r = request(addr, "GET", path, &[], vec![]).await.unwrap();
            assert_eq!(r.status, 200, "{path}");
            all.push_str(&String::from_utf8(r.body).unwrap());
        }
        all
    };
    let s = stats(addr).await;
    assert_eq!(s["k_anonymity"], 5);
    let entries = |v: &serde_json::Value| -> Vec<(String, i64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["count"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let e = |n: &str, c: i64| (n.to_owned(), c);
    assert_eq!(
        entries(&s["gateways_by_frequency_plan"]),
        [e("PLAN_K", 5), e("other", 4)]
    );
    // Versions cycle by i % 3: 3, 4 and 2 deployments, all below k.
    assert_eq!(entries(&s["binary_versions"]), [e("other", 9)]);
    // Arch cycles by i % 2: amd64 from 5, arm64 from 4.
    assert_eq!(entries(&s["architectures"]), [e("amd64", 5), e("other", 4)]);
    assert_eq!(entries(&s["operating_systems"]), [e("linux", 9)]);
    assert_eq!(s["deployments"]["total"], 9);
    assert_eq!(s["entities"]["gateways"], 9);
    let text = public(addr).await;
    for hidden in ["PLAN_RARE", "arm64", "3.33.1", "3.34.0", "3.32.0"] {
        assert!(!text.contains(hidden), "{hidden} is public: {text}");
    }
    // The open data: the documented columns, exact daily totals, the threshold.
    let daily = request(addr, "GET", "/api/v1/daily.json", &[], vec![])
        .await
        .unwrap()
        .json();
    assert_eq!(daily["k_anonymity"], 5);
    assert_eq!(daily["days"].as_array().unwrap().len(), 1);
    assert_eq!(daily["days"][0]["deployments"], 9);
    assert_eq!(daily["days"][0]["gateways"], 9);
    let csv = request(addr, "GET", "/api/v1/daily.csv", &[], vec![])
        .await
        .unwrap();
    let ct = csv.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(ct.starts_with("text/csv"), "{ct}");
    let csv = String::from_utf8(csv.body).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "date,deployments,cli_installations,gateways,end_devices,active_last_day,\
         active_last_week,active_last_month,applications,users,organizations"
    );
    assert_eq!(lines.len(), 2);
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!((row[1], row[3]), ("9", "9"), "{csv}");

    // A fifth deployment of the rare plan: now it is seen from k and is public.
    assert_eq!(
        post_json(addr, is_report_with_plan(14, "PLAN_RARE"))
            .await
            .status,
        200
    );
    let s = stats(addr).await;
    assert_eq!(
        entries(&s["gateways_by_frequency_plan"]),
        [e("PLAN_K", 5), e("PLAN_RARE", 5)]
    );
    assert!(public(addr).await.contains("PLAN_RARE"));
    c.shutdown().await;
}

both!(trusted_proxy_separates_clients);
/// Behind a trusted proxy (the test's loopback peer), clients named by `X-Forwarded-For` or
/// `Forwarded` get their own buckets; an untrusted peer sending the same headers keeps its own.
async fn trusted_proxy_separates_clients(b: Backend) {
    let (uri, _dir) = fresh_store(b, "proxy").await;
    let limits = Limits {
        per_addr: Some(RateLimit {
            burst: 2,
            per_second: 0.001,
        }),
        per_uid: None,
        ..Limits::default()
    };
    let post_as = |addr, header: &'static str, client: &'static str, i: u64| async move {
        request(
            addr,
            "POST",
            "/collect",
            &[("content-type", "application/json"), (header, client)],
            is_report(i, 0),
        )
        .await
        .expect("request completes")
        .status
    };

    let mut opts = CollectOptions::new("127.0.0.1:0", Some(uri.clone()));
    opts.limits = limits.clone();
    opts.trusted_proxies = "127.0.0.0/8,::1".parse().unwrap();
    let c = collect::start(opts).await.unwrap();
    let a = c.local_addr();
    let mut codes = Vec::new();
    for i in 0..3 {
        codes.push(post_as(a, "x-forwarded-for", "6.6.6.6, 198.51.100.1", 300 + i).await);
        codes.push(post_as(a, "forwarded", r#"for="[2001:db8::1]:4711""#, 310 + i).await);
    }
    // Each client: two allowed, then its own bucket is empty; the other is unaffected.
    assert_eq!(codes, [200, 200, 200, 200, 429, 429]);
    c.shutdown().await;

    // Loopback is not trusted here: the headers are ignored and the peer's one bucket counts.
    let mut opts = CollectOptions::new("127.0.0.1:0", Some(uri));
    opts.limits = limits;
    opts.trusted_proxies = "10.0.0.0/8".parse().unwrap();
    let c = collect::start(opts).await.unwrap();
    let a = c.local_addr();
    let codes = [
        post_as(a, "x-forwarded-for", "198.51.100.1", 320).await,
        post_as(a, "x-forwarded-for", "198.51.100.2", 321).await,
        post_as(a, "forwarded", "for=198.51.100.3", 322).await,
    ];
    assert_eq!(codes, [200, 200, 429]);
    c.shutdown().await;
}

both!(metrics_count_reports_apart_from_the_public_port);
/// `/metrics` on the metrics address counts accepted and refused reports, batches and commit
/// times; the public port does not serve it.
async fn metrics_count_reports_apart_from_the_public_port(b: Backend) {
    let (uri, _dir) = fresh_store(b, "metrics").await;
    let mut opts = CollectOptions::new("127.0.0.1:0", Some(uri));
    opts.limits = Limits {
        per_uid: Some(RateLimit {
            burst: 1,
            per_second: 0.001,
        }),
        per_addr: None,
        ..Limits::default()
    };
    opts.metrics_listen = Some("127.0.0.1:0".into());
    let c = collect::start(opts).await.unwrap();
    let (a, m) = (c.local_addr(), c.metrics_addr().expect("a metrics address"));
    assert_ne!(a, m);
    let mut codes = Vec::new();
    for i in 0..3 {
        codes.push(post_json(a, is_report(400 + i, 0)).await.status);
    }
    codes.push(post_json(a, is_report(400, 0)).await.status); // same uid again: 429
    codes.push(post_json(a, b"{}".to_vec()).await.status);
    codes.push(post_json(a, b"{not json".to_vec()).await.status);
    codes.push(
        request(
            a,
            "POST",
            "/collect",
            &[("content-type", "text/plain")],
            b"x".to_vec(),
        )
        .await
        .unwrap()
        .status,
    );
    codes.push(post_json(a, vec![b' '; 64 * 1024 + 1]).await.status);
    assert_eq!(codes, [200, 200, 200, 429, 400, 400, 415, 413]);

    let r = request(m, "GET", "/metrics", &[], vec![]).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(r.body).unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .parse()
            .unwrap()
    };
    let p = "ttn_lw_telemetry_collector_";
    assert_eq!(
        value(&format!("{p}reports_accepted_total{{repeat=\"false\"}}")),
        3.0
    );
    assert_eq!(
        value(&format!("{p}reports_accepted_total{{repeat=\"true\"}}")),
        0.0
    );
    for (labels, n) in [
        ("status=\"429\",reason=\"rate_limited\"", 1.0),
        ("status=\"400\",reason=\"invalid\"", 2.0),
        ("status=\"415\",reason=\"content_type\"", 1.0),
        ("status=\"413\",reason=\"too_large\"", 1.0),
    ] {
        assert_eq!(
            value(&format!("{p}reports_refused_total{{{labels}}}")),
            n,
            "{labels}"
        );
    }
    // Three reports in one to three group commits; each commit took some time. PostgreSQL
    // keeps the per-uid limit in the database (shared by collectors), so the refused report
    // went through a commit too (the one that read its bucket).
    let through_store = match b {
        Backend::Sqlite => 3.0,
        Backend::Postgres => 4.0,
    };
    assert_eq!(value(&format!("{p}batch_size_sum")), through_store);
    let batches = value(&format!("{p}batch_size_count"));
    assert!((1.0..=through_store).contains(&batches), "{batches}");
    assert_eq!(value(&format!("{p}commit_seconds_count")), batches);
    assert_eq!(
        value(&format!("{p}commit_seconds_bucket{{le=\"+Inf\"}}")),
        batches
    );
    assert!(value(&format!("{p}commit_seconds_sum")) > 0.0);
    assert_eq!(value(&format!("{p}store_errors_total")), 0.0);
    assert!(text.contains(&format!("# TYPE {p}batch_size histogram\n")));

    // The public port has no /metrics, and the metrics port nothing else.
    assert_eq!(
        request(a, "GET", "/metrics", &[], vec![])
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        request(m, "GET", "/", &[], vec![]).await.unwrap().status,
        404
    );
    assert_eq!(
        request(m, "POST", "/collect", &[], vec![])
            .await
            .unwrap()
            .status,
        404
    );
    c.shutdown().await;
}

/// A store failure (here a trigger that raises) is answered 503 and counted as a store error
/// and as a refusal; once the store works again, reports are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_store_errors() {
    let (uri, _db) = fresh_store(Backend::Postgres, "metrics_err").await;
    let mut opts = CollectOptions::new("127.0.0.1:0", Some(uri.clone()));
    opts.limits = unlimited();
    opts.metrics_listen = Some("127.0.0.1:0".into());
    let c = collect::start(opts).await.unwrap();
    let (db, conn) = tokio_postgres::connect(&uri, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.batch_execute(
        "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN RAISE EXCEPTION 'the disk is on fire'; END$$; \
         CREATE TRIGGER fail BEFORE INSERT ON reports FOR EACH ROW EXECUTE FUNCTION fail();",
    )
    .await
    .unwrap();
    let r = post_json(c.local_addr(), is_report(500, 0)).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    db.batch_execute("DROP TRIGGER fail ON reports")
        .await
        .unwrap();
    assert_eq!(
        post_json(c.local_addr(), is_report(500, 0)).await.status,
        200
    );

    let m = c.metrics_addr().unwrap();
    let text = String::from_utf8(
        request(m, "GET", "/metrics", &[], vec![])
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    for line in [
        "ttn_lw_telemetry_collector_store_errors_total 1\n",
        "ttn_lw_telemetry_collector_reports_refused_total{status=\"503\",reason=\"store_failed\"} 1\n",
        "ttn_lw_telemetry_collector_reports_accepted_total{repeat=\"false\"} 1\n",
        "ttn_lw_telemetry_collector_batch_size_count 2\n",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    c.shutdown().await;
}
