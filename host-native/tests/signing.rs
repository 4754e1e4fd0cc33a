//! Signed reports, key pins, rotation, and a deployment's own data (issue 14 §2 and §3), on a
//! real collector over loopback HTTP, on both stores. The collector's clock is a [`TestClock`]:
//! the replay window is crossed by stepping it, never by sleeping.

#[macro_use]
mod collect_util;
mod common;

use std::net::SocketAddr;

use collect_util::{
    Backend, Resp, TestClock, cli_report, fresh_store, is_report, request, start, unlimited,
};
use serde_json::Value;
use ttn_lw_telemetry::collect::store::Store;
use ttn_telemetry_core::{
    MICROS_PER_DAY, ROTATION_LABEL, Request, SigningKey, content_digest, parse_report, sha256_hex,
};

/// 2026-03-10 12:00 UTC.
const T0: i64 = 20_522 * MICROS_PER_DAY + 12 * 3_600_000_000;

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

fn uid_of(body: &[u8]) -> String {
    parse_report(body).unwrap().uid
}

/// The headers of a request to `path` at `addr` signed by `key` at `created` (Unix seconds).
fn signed_headers(
    key: &SigningKey,
    method: &str,
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    created: i64,
) -> Vec<(String, String)> {
    let digest = content_digest(body);
    let target = format!("http://{addr}{path}");
    let h = key.sign_request(
        &Request {
            method,
            target_uri: &target,
            content_digest: &digest,
        },
        created,
    );
    vec![
        ("content-digest".into(), digest),
        ("signature-input".into(), h.input),
        ("signature".into(), h.signature),
    ]
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Resp {
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if method == "POST" {
        h.push(("content-type", "application/json"));
    }
    request(addr, method, path, &h, body)
        .await
        .expect("request completes")
}

/// POSTs `body` to `/collect`, signed by `key` at `created` when given.
async fn post(addr: SocketAddr, body: Vec<u8>, signer: Option<(&SigningKey, i64)>) -> Resp {
    let headers = match signer {
        Some((k, created)) => signed_headers(k, "POST", addr, "/collect", &body, created),
        None => vec![],
    };
    send(addr, "POST", "/collect", headers, body).await
}

fn path_of(uid: &str) -> String {
    let enc: String = uid
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/api/v1/deployments/{enc}")
}

fn secs(micros: i64) -> i64 {
    micros / 1_000_000
}

fn error_of(r: &Resp) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_owned()
}

both!(signed_report_is_accepted_and_pinned);
async fn signed_report_is_accepted_and_pinned(b: Backend) {
    let (uri, _g) = fresh_store(b, "sig_pin").await;
    let clock = TestClock::at(T0);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    let addr = c.local_addr();
    let a = key(1);
    let body = is_report(1, 0);
    let r = post(addr, body.clone(), Some((&a, secs(T0)))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let receipt = r.json();
    assert_eq!(
        receipt["keyid"],
        a.keyid(),
        "the receipt names the pinned key"
    );
    assert_eq!(receipt["sha256"], sha256_hex(&body));
    let stats = collect_util::stats(addr).await;
    assert_eq!(stats["verified"]["deployments"], 1, "{stats}");
    assert_eq!(stats["deployments"]["total"], 1);
    // The same key signs the next report of the uid: accepted.
    let r = post(addr, is_report(1, 1), Some((&a, secs(T0)))).await;
    assert_eq!(r.status, 200);
    // Sent through a proxy that terminates TLS, the agent signed an `https` target URI.
    let body = is_report(1, 2);
    let digest = content_digest(&body);
    let h = a.sign_request(
        &Request {
            method: "POST",
            target_uri: &format!("https://{addr}/collect"),
            content_digest: &digest,
        },
        secs(T0),
    );
    let headers = vec![
        ("content-digest".into(), digest),
        ("signature-input".into(), h.input),
        ("signature".into(), h.signature),
    ];
    let r = send(addr, "POST", "/collect", headers, body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let stored = c.store().all_reports().await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(
        stored
            .iter()
            .all(|s| s.signed_by.as_deref() == Some(a.keyid().as_str()))
    );
    c.shutdown().await;
}

both!(spoofed_report_for_a_pinned_uid_is_refused);
async fn spoofed_report_for_a_pinned_uid_is_refused(b: Backend) {
    let (uri, _g) = fresh_store(b, "sig_spoof").await;
    let clock = TestClock::at(T0);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    let addr = c.local_addr();
    let owner = key(1);
    assert_eq!(
        post(addr, is_report(1, 0), Some((&owner, secs(T0))))
            .await
            .status,
        200
    );
    let before = collect_util::stats(addr).await;
    // Anyone can compute the uid and build a report in its name: unsigned, refused.
    let r = post(addr, is_report(1, 5), None).await;
    assert_eq!(r.status, 401);
    assert!(error_of(&r).contains("unsigned"), "{}", error_of(&r));
    assert!(r.headers.get("accept-signature").is_some());
    // Signed by the spoofer's own key: refused too.
    let r = post(addr, is_report(1, 6), Some((&key(2), secs(T0)))).await;
    assert_eq!(r.status, 401);
    assert!(error_of(&r).contains("another"), "{}", error_of(&r));
    // A signature that does not verify (body changed after signing) is refused for any uid.
    let mut headers = signed_headers(
        &key(3),
        "POST",
        addr,
        "/collect",
        &is_report(9, 0),
        secs(T0),
    );
    headers[0].1 = content_digest(&is_report(9, 1));
    let r = send(addr, "POST", "/collect", headers, is_report(9, 1)).await;
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    // Nothing of them was stored.
    assert_eq!(c.store().all_reports().await.unwrap().len(), 1);
    let mut after = collect_util::stats(addr).await;
    after["generated_at"] = before["generated_at"].clone();
    assert_eq!(after, before);
    c.shutdown().await;
}

both!(spoofed_reports_do_not_spend_the_uid_rate_limit);
async fn spoofed_reports_do_not_spend_the_uid_rate_limit(b: Backend) {
    let (uri, _g) = fresh_store(b, "sig_spoof_limit").await;
    let clock = TestClock::at(T0);
    // Two reports per uid, then one more every 10 minutes (which the test never reaches).
    let mut limits = unlimited();
    limits.per_uid = Some(ttn_lw_telemetry::collect::ratelimit::RateLimit {
        burst: 2,
        per_second: 1.0 / 600.0,
    });
    let c = start(&uri, limits, Some(clock.clock())).await;
    let addr = c.local_addr();
    let owner = key(1);
    let r = post(addr, is_report(1, 0), Some((&owner, secs(T0)))).await;
    assert_eq!(r.status, 200);
    // Spoofs of the pinned uid are refused for what they are, and spend none of its tokens.
    for n in 1..=4 {
        let r = post(addr, is_report(1, n), None).await;
        assert_eq!(r.status, 401, "spoof {n}: {}", error_of(&r));
    }
    let r = post(addr, is_report(1, 7), Some((&owner, secs(T0)))).await;
    assert_eq!(r.status, 200, "{}", error_of(&r));
    // The owner's own limit still holds.
    let r = post(addr, is_report(1, 8), Some((&owner, secs(T0)))).await;
    assert_eq!(r.status, 429, "{}", error_of(&r));
    c.shutdown().await;
}

both!(a_replayed_signature_is_refused);
async fn a_replayed_signature_is_refused(b: Backend) {
    let (uri, _g) = fresh_store(b, "sig_replay").await;
    let clock = TestClock::at(T0);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    let addr = c.local_addr();
    let a = key(1);
    let body = is_report(1, 0);
    let headers = signed_headers(&a, "POST", addr, "/collect", &body, secs(T0));
    let r = send(addr, "POST", "/collect", headers.clone(), body.clone()).await;
    assert_eq!(r.status, 200);
    // Within the window the same request is a repeat, stored once.
    clock.set(T0 + 299 * 1_000_000);
    let r = send(addr, "POST", "/collect", headers.clone(), body.clone()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["repeat"], true);
    // Past the window, the captured request is refused.
    clock.set(T0 + 301 * 1_000_000);
    let r = send(addr, "POST", "/collect", headers.clone(), body.clone()).await;
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert!(error_of(&r).contains("created"), "{}", error_of(&r));
    // So is one created too far ahead of the collector's clock.
    let ahead = signed_headers(
        &a,
        "POST",
        addr,
        "/collect",
        &is_report(1, 1),
        secs(T0) + 301 + 61,
    );
    let r = send(addr, "POST", "/collect", ahead, is_report(1, 1)).await;
    assert_eq!(r.status, 401);
    // A signature for another collector's URL is refused.
    let digest = content_digest(&body);
    let h = a.sign_request(
        &Request {
            method: "POST",
            target_uri: "https://elsewhere.example/collect",
            content_digest: &digest,
        },
        secs(T0) + 301,
    );
    let r = send(
        addr,
        "POST",
        "/collect",
        vec![
            ("content-digest".into(), digest),
            ("signature-input".into(), h.input),
            ("signature".into(), h.signature),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(c.store().all_reports().await.unwrap().len(), 1);
    c.shutdown().await;
}

/// The rotation request for `uid` from `old` to `new`; `with_new`: also signed by the new key.
fn rotation(
    addr: SocketAddr,
    uid: &str,
    old: &SigningKey,
    new: &SigningKey,
    created: i64,
    with_new: bool,
) -> (Vec<(String, String)>, Vec<u8>) {
    let path = format!("{}/key", path_of(uid));
    let body = serde_json::json!({ "keyid": new.keyid() })
        .to_string()
        .into_bytes();
    let mut h = signed_headers(old, "POST", addr, &path, &body, created);
    if with_new {
        let digest = content_digest(&body);
        let target = format!("http://{addr}{path}");
        let n = new.sign_request_as(
            ROTATION_LABEL,
            &Request {
                method: "POST",
                target_uri: &target,
                content_digest: &digest,
            },
            created,
        );
        h[1].1 = format!("{}, {}", h[1].1, n.input);
        h[2].1 = format!("{}, {}", h[2].1, n.signature);
    }
    (h, body)
}

both!(a_key_is_rotated_by_a_request_signed_with_the_old_one);
async fn a_key_is_rotated_by_a_request_signed_with_the_old_one(b: Backend) {
    let (uri, _g) = fresh_store(b, "sig_rotate").await;
    let clock = TestClock::at(T0);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    let addr = c.local_addr();
    let (old, new) = (key(1), key(2));
    let body = is_report(1, 0);
    let uid = uid_of(&body);
    assert_eq!(post(addr, body, Some((&old, secs(T0)))).await.status, 200);
    let path = format!("{}/key", path_of(&uid));
    // Without the new key's signature (no proof of possession): refused.
    let (h, body) = rotation(addr, &uid, &old, &new, secs(T0), false);
    let r = send(addr, "POST", &path, h, body).await;
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    // Signed by a key that is not the pinned one: refused.
    let (h, body) = rotation(addr, &uid, &key(3), &new, secs(T0), true);
    let r = send(addr, "POST", &path, h, body).await;
    assert_eq!(r.status, 401);
    // Signed by the pinned key and the new one: the new key is pinned.
    let (h, body) = rotation(addr, &uid, &old, &new, secs(T0), true);
    let r = send(addr, "POST", &path, h, body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["keyid"], new.keyid());
    // From now on the old key is refused and the new one accepted.
    let r = post(addr, is_report(1, 1), Some((&old, secs(T0)))).await;
    assert_eq!(r.status, 401);
    let r = post(addr, is_report(1, 2), Some((&new, secs(T0)))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["keyid"], new.keyid());
    // The rotation did not count the deployment twice.
    assert_eq!(
        collect_util::stats(addr).await["verified"]["deployments"],
        1
    );
    c.shutdown().await;
}

both!(the_reference_shaped_unsigned_report_is_still_accepted);
async fn the_reference_shaped_unsigned_report_is_still_accepted(b: Backend) {
    let (uri, _g) = fresh_store(b, "sig_unsigned").await;
    let c = start(&uri, unlimited(), Some(TestClock::at(T0).clock())).await;
    let addr = c.local_addr();
    let body = is_report(4, 0);
    let r = post(addr, body.clone(), None).await;
    assert_eq!(r.status, 200);
    // The receipt of an unsigned report is what it always was: no key.
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        format!(
            "{{\"stored\":true,\"sha256\":\"{}\",\"repeat\":false}}",
            sha256_hex(&body)
        )
    );
    assert_eq!(post(addr, cli_report(4), None).await.status, 200);
    let stats = collect_util::stats(addr).await;
    assert_eq!(stats["deployments"]["total"], 1);
    assert_eq!(stats["verified"]["deployments"], 0, "unverified: {stats}");
    let stored = c.store().all_reports().await.unwrap();
    assert!(stored.iter().all(|s| s.signed_by.is_none()));
    // Nobody can read or erase an unpinned uid.
    let uid = uid_of(&body);
    let h = signed_headers(&key(1), "GET", addr, &path_of(&uid), b"", secs(T0));
    let r = send(addr, "GET", &path_of(&uid), h, vec![]).await;
    assert_eq!(r.status, 401);
    assert!(
        error_of(&r).contains("no key is pinned"),
        "{}",
        error_of(&r)
    );
    c.shutdown().await;
}

/// Reports of other deployments, fed to both the collector under test and the control.
async fn feed_others(addr: SocketAddr, clock: &TestClock) {
    for day in 0..3 {
        clock.set(T0 + day * MICROS_PER_DAY);
        for i in 10..14 {
            let r = post(addr, is_report(i, day as u64), None).await;
            assert_eq!(r.status, 200);
        }
        assert_eq!(post(addr, cli_report(day as u64), None).await.status, 200);
    }
}

async fn get_text(addr: SocketAddr, path: &str) -> Value {
    let r = request(addr, "GET", path, &[], vec![]).await.unwrap();
    assert_eq!(r.status, 200);
    r.json()
}

both!(collected_and_forget_need_the_pinned_key_and_forget_is_exact);
async fn collected_and_forget_need_the_pinned_key_and_forget_is_exact(b: Backend) {
    let (uri, _g) = fresh_store(b, "sig_forget").await;
    let (control_uri, _g2) = fresh_store(b, "sig_control").await;
    let clock = TestClock::at(T0);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    let control = start(&control_uri, unlimited(), Some(clock.clock())).await;
    let addr = c.local_addr();
    let me = key(7);
    let uid = uid_of(&is_report(1, 0));
    // The deployment reports on three days (interleaved with the others), with one spread
    // value (its version) that nobody else sends, and a report the store keeps but that is
    // not the latest of its day.
    for day in 0..3 {
        clock.set(T0 + day * MICROS_PER_DAY);
        for i in 10..14 {
            assert_eq!(post(addr, is_report(i, day as u64), None).await.status, 200);
        }
        assert_eq!(post(addr, cli_report(day as u64), None).await.status, 200);
        let at = secs(T0 + day * MICROS_PER_DAY);
        let r = post(addr, is_report(1, 10 + day as u64), Some((&me, at))).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        clock.set(T0 + day * MICROS_PER_DAY + 1_000_000);
        let r = post(addr, is_report(1, 20 + day as u64), Some((&me, at + 1))).await;
        assert_eq!(r.status, 200);
    }
    feed_others(control.local_addr(), &clock).await;
    let now = secs(T0 + 2 * MICROS_PER_DAY + 1_000_000);
    let path = path_of(&uid);

    // `collected`: unsigned or signed by another key, refused; by the pinned key, every report.
    let r = send(addr, "GET", &path, vec![], vec![]).await;
    assert_eq!(r.status, 401);
    let h = signed_headers(&key(8), "GET", addr, &path, b"", now);
    assert_eq!(send(addr, "GET", &path, h, vec![]).await.status, 401);
    let h = signed_headers(&me, "GET", addr, &path, b"", now);
    let r = send(addr, "GET", &path, h, vec![]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let held = r.json();
    assert_eq!(held["uid"], uid);
    assert_eq!(held["pin"]["keyid"], me.keyid());
    let reports = held["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 6);
    for (n, r) in reports.iter().enumerate() {
        let day = n as u64 / 2;
        let body = is_report(1, if n % 2 == 0 { 10 } else { 20 } + day);
        assert_eq!(r["body"], String::from_utf8(body.clone()).unwrap());
        assert_eq!(r["sha256"], sha256_hex(&body));
        assert_eq!(r["receipt"]["sha256"], sha256_hex(&body));
        assert_eq!(r["verified"], true);
    }

    // `forget`: refused without the pinned key; then everything of the uid is gone.
    let r = send(addr, "DELETE", &path, vec![], vec![]).await;
    assert_eq!(r.status, 401);
    let h = signed_headers(&key(8), "DELETE", addr, &path, b"", now);
    assert_eq!(send(addr, "DELETE", &path, h, vec![]).await.status, 401);
    let h = signed_headers(&me, "DELETE", addr, &path, b"", now);
    let r = send(addr, "DELETE", &path, h, vec![]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let receipt = r.json();
    assert_eq!(receipt["forgotten"], true);
    assert_eq!(receipt["reports"], 6);
    assert_eq!(receipt["days"], 3);
    assert_eq!(receipt["latest"], true);
    assert_eq!(receipt["pin"], me.keyid());
    assert_eq!(
        receipt["sha256"],
        Value::from(
            reports
                .iter()
                .map(|r| r["sha256"].clone())
                .collect::<Vec<_>>()
        )
    );

    // The aggregates are exactly those of a store that never saw the deployment.
    for p in ["/api/v1/stats", "/api/v1/daily.json"] {
        assert_eq!(
            get_text(addr, p).await,
            get_text(control.local_addr(), p).await,
            "{p}"
        );
    }
    let left: Vec<String> = c
        .store()
        .all_reports()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uid)
        .collect();
    assert!(!left.contains(&uid));
    assert_eq!(left.len(), 15);
    // The pin is gone: the uid can no longer be read, and may report unsigned again.
    let h = signed_headers(&me, "GET", addr, &path, b"", now);
    let r = send(addr, "GET", &path, h, vec![]).await;
    assert_eq!(r.status, 401);
    assert!(error_of(&r).contains("no key is pinned"));
    c.shutdown().await;
    control.shutdown().await;
    // The same holds after a restart (the counters are the store's, not the process's).
    let store = Store::open(Some(&uri)).await.unwrap();
    let control = Store::open(Some(&control_uri)).await.unwrap();
    let now = T0 + 2 * MICROS_PER_DAY + 1_000_000;
    assert_eq!(
        store.stats(now, 1).await.unwrap(),
        control.stats(now, 1).await.unwrap()
    );
    store.close().await;
    control.close().await;
}

/// Replicas share a PostgreSQL store only: an SQLite store serves one collector
/// (`collect_hardening::an_sqlite_store_serves_one_collector`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_reports_pin_one_key() {
    let b = Backend::Postgres;
    let (uri, _g) = fresh_store(b, "sig_race").await;
    let clock = TestClock::at(T0);
    // Two collectors on one store (replicas): each gets a first report of the same uid, signed
    // by different keys, at the same time. Exactly one key is pinned.
    let c1 = start(&uri, unlimited(), Some(clock.clock())).await;
    let c2 = start(&uri, unlimited(), Some(clock.clock())).await;
    let (a, bk) = (key(1), key(2));
    let (r1, r2) = tokio::join!(
        post(c1.local_addr(), is_report(1, 1), Some((&a, secs(T0)))),
        post(c2.local_addr(), is_report(1, 2), Some((&bk, secs(T0)))),
    );
    let mut statuses = [r1.status, r2.status];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{r1:?} {r2:?}");
    let winner = if r1.status == 200 { &a } else { &bk };
    let stored = c1.store().all_reports().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].signed_by.as_deref(),
        Some(winner.keyid().as_str())
    );
    assert_eq!(
        collect_util::stats(c1.local_addr()).await["verified"]["deployments"],
        1
    );
    c1.shutdown().await;
    c2.shutdown().await;
}

#[test]
fn two_replicas_on_one_redis_share_one_key() {
    use ttn_lw_telemetry::schedule::redis::RedisTarget;
    use ttn_lw_telemetry::signing::{KEY_FILE, shared_key};
    let target = RedisTarget::from_url(&common::redis_url());
    let ns = format!("{}:signing-key", common::redis_namespace("sig_share"));
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let k1 = shared_key(&target, &ns, d1.path())
        .unwrap_or_else(|e| panic!("Redis at {} must be reachable: {e:#}", common::redis_url()));
    let k2 = shared_key(&target, &ns, d2.path()).unwrap();
    assert_eq!(
        k1.keyid(),
        k2.keyid(),
        "the second replica uses the first one's key"
    );
    // Each keeps a copy of the shared key; a Redis that lost it gets it back from a replica.
    for d in [&d1, &d2] {
        let copy = ttn_lw_telemetry::signing::read_key_file(&d.path().join(KEY_FILE)).unwrap();
        assert_eq!(copy.keyid(), k1.keyid());
    }
    let mut conn = target.connect().unwrap();
    let _: () = redis::cmd("DEL").arg(&ns).query(&mut conn).unwrap();
    let d3 = tempfile::tempdir().unwrap();
    assert_eq!(
        shared_key(&target, &ns, d2.path()).unwrap().keyid(),
        k1.keyid()
    );
    assert_eq!(
        shared_key(&target, &ns, d3.path()).unwrap().keyid(),
        k1.keyid()
    );
    let _: () = redis::cmd("DEL").arg(&ns).query(&mut conn).unwrap();
}

both!(version_3_stores_gain_pins_on_open);
/// Schema version 4 adds the pins, the verified mark and the verified counters. A store that a
/// version-3 collector left behind (none of them) is migrated on open: its reports stay, as
/// unverified, and the first signed report pins its key.
async fn version_3_stores_gain_pins_on_open(b: Backend) {
    use ttn_lw_telemetry::collect::store::NewReport;
    let (uri, _g) = fresh_store(b, "sig_v3to4").await;
    let store = Store::open(Some(&uri)).await.unwrap();
    let batch = (0..3)
        .map(|i| NewReport::parse(T0, is_report(i, 0)).unwrap())
        .collect();
    store.insert(batch).await.unwrap();
    let before = store.stats(T0 + 1, 1).await.unwrap();
    store.close().await;
    // The uid index of version 6 goes too (on SQLite the one by received time, which holds
    // the uid): the migration makes it again.
    let index = match b {
        Backend::Sqlite => "reports_received_uid",
        Backend::Postgres => "reports_uid_received",
    };
    let downgrade = format!(
        "DROP TABLE pins; DROP INDEX {index}; ALTER TABLE reports DROP COLUMN signed_by; \
         DELETE FROM counters WHERE name LIKE 'verified%'"
    );
    collect_util::downgrade(b, &uri, &downgrade, 3).await;
    let store = Store::open(Some(&uri)).await.unwrap();
    assert_eq!(store.stats(T0 + 1, 1).await.unwrap(), before);
    let signed = NewReport::parse(T0 + 2, is_report(0, 1))
        .unwrap()
        .signed_by(key(1).keyid());
    store.insert(vec![signed]).await.unwrap();
    let all = store.all_reports().await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all[..3].iter().all(|r| r.signed_by.is_none()));
    assert_eq!(all[3].signed_by.as_deref(), Some(key(1).keyid().as_str()));
    assert_eq!(
        store.stats(T0 + 3, 1).await.unwrap().verified.deployments,
        1
    );
    store.close().await;
}
