//! The collector under hostile and unlucky input (issue 11, items 1–6, and the reference CLI's
//! form of issue 10), on embedded SQLite and on PostgreSQL: one bad report never fails another,
//! exact totals past i64, repeats stored once, codings refused with the right status, one
//! spelling per CLI uid, bounded stats reads, and stores of the previous schema migrated on open.

#[macro_use]
mod collect_util;

use std::time::Duration;

use collect_util::*;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use ttn_lw_telemetry::collect::store::{NewReport, Outcome, Store};
use ttn_telemetry_core::{
    EntitiesCount, Identity, Inputs, MICROS_PER_DAY, OsInfo, Payload, civil_to_unix_micros,
    parse_report, sha256_hex,
};

const REFERENCE_CLI: &str = r#"{"uid":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","os":{"operating_system":"linux","arch":"amd64","binary_version":"3.34.0","golang_version":"go1.23.4"},"cli":{},"entities_count":null}"#;

fn os() -> OsInfo {
    OsInfo {
        operating_system: "linux".into(),
        arch: "amd64".into(),
        binary_version: "3.34.0".into(),
        golang_version: "rustc 1.95.0".into(),
    }
}

/// An IS report of deployment `name` with every count `n`, on `plans` frequency plans.
fn report_with(name: &str, n: u64, plans: &[String]) -> Vec<u8> {
    let mut c = EntitiesCount::default();
    c.gateways.total = n;
    for p in plans {
        c.gateways
            .gateways_by_frequency_plan_id
            .insert(p.clone(), n);
    }
    c.end_devices.total = n;
    let a = &mut c.end_devices.activate_end_devices;
    (a.total, a.last_month, a.last_week, a.last_day) = (n, n, n, n);
    c.applications.total = n;
    c.accounts.users.standard = n;
    c.accounts.users.admin = n;
    c.accounts.organizations.total = n;
    Inputs {
        identity: Identity::Elements(vec![name.into()]),
        os: os(),
        payload: Payload::Entities(c),
    }
    .build()
    .expect("test inputs are valid")
    .to_bytes()
}

both!(reference_cli_form_is_stored_and_counted);
/// Issue 10: the real ttn-lw-cli's `"cli":{}` is stored and counted as a CLI installation
/// without usage data.
async fn reference_cli_form_is_stored_and_counted(b: Backend) {
    let (uri, _guard) = fresh_store(b, "refcli").await;
    let c = start(&uri, unlimited(), None).await;
    let r = post_json(c.local_addr(), REFERENCE_CLI.as_bytes().to_vec()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["sha256"], sha256_hex(REFERENCE_CLI.as_bytes()));
    assert_eq!(post_json(c.local_addr(), cli_report(1)).await.status, 200);
    let stored = c.store().all_reports().await.unwrap();
    assert_eq!(stored[0].body, REFERENCE_CLI.as_bytes());
    assert_eq!(stored[0].kind, "cli");
    let s = stats(c.local_addr()).await;
    assert_eq!(s["cli_installations"]["total"], 2);
    assert_eq!(s["cli_installations"]["last_day"], 2);
    assert_eq!(s["cli"]["without_usage"], 1);
    assert_eq!(s["deployments"]["total"], 0);
    assert_eq!(s["daily"][0]["cli_installations"], 2);
    // When that installation later reports usage, it is no longer counted as without.
    let with_usage = REFERENCE_CLI.replace(r#""cli":{}"#, r#""cli":{"commands":[],"aliases":[]}"#);
    assert_eq!(
        post_json(c.local_addr(), with_usage.into_bytes())
            .await
            .status,
        200
    );
    let s = stats(c.local_addr()).await;
    assert_eq!(s["cli_installations"]["total"], 2);
    assert_eq!(s["cli"]["without_usage"], 0);
    c.shutdown().await;
}

both!(nul_is_refused_alone);
/// Issue 11 item 1: a JSON-escaped NUL is refused by the core with 400 naming the field, and
/// the honest reports that share its group commit are all stored.
async fn nul_is_refused_alone(b: Backend) {
    let (uri, _guard) = fresh_store(b, "nul").await;
    let c = start(&uri, unlimited(), None).await;
    let addr = c.local_addr();
    let poisoned = String::from_utf8(is_report(9_999, 0))
        .unwrap()
        .replacen(
            "\"binary_version\":\"3.",
            "\"binary_version\":\"a\\u0000b3.",
            1,
        )
        .into_bytes();
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let body = if i == 100 {
            poisoned.clone()
        } else {
            is_report(i, 0)
        };
        tasks.push(tokio::spawn(
            async move { (i, post_json(addr, body).await) },
        ));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i == 100 {
            assert_eq!(r.status, 400);
            assert_eq!(
                r.json()["error"],
                "`os.binary_version`: must not contain U+0000 (NUL)"
            );
        } else {
            assert_eq!(r.status, 200, "{i}: {}", String::from_utf8_lossy(&r.body));
        }
    }
    assert_eq!(c.store().all_reports().await.unwrap().len(), 199);
    // Every other control character is stored, and reads back the same from either store.
    let ctl = "v\u{1}\u{1f}\u{7f}\u{85}\n";
    let body = Inputs {
        identity: Identity::Elements(vec!["ctl".into()]),
        os: OsInfo {
            binary_version: ctl.into(),
            ..os()
        },
        payload: Payload::Entities(EntitiesCount::default()),
    }
    .build()
    .unwrap()
    .to_bytes();
    assert_eq!(post_json(addr, body).await.status, 200);
    let s = stats(addr).await;
    assert!(
        s["binary_versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == ctl && e["count"] == 1),
        "{}",
        s["binary_versions"]
    );
    c.shutdown().await;
}

/// Makes the store refuse reports of `uid` with a constraint error (as a database refuses data
/// it cannot keep), behind the collector's back.
async fn poison_uid(b: Backend, uri: &str, uid: &str) {
    let sql = match b {
        Backend::Sqlite => format!(
            "CREATE TRIGGER poison BEFORE INSERT ON reports WHEN NEW.uid = '{uid}'
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;"
        ),
        Backend::Postgres => format!(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.uid = '{uid}' THEN
                 RAISE EXCEPTION 'poisoned row' USING ERRCODE = 'check_violation';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER poison BEFORE INSERT ON reports
               FOR EACH ROW EXECUTE FUNCTION poison();"
        ),
    };
    collect_util::run_sql(b, uri, &sql).await;
}

both!(an_unstorable_row_fails_alone);
/// Issue 11 item 1: a row the database refuses fails alone, with a 4xx; the rest of its batch
/// commits. (The core refuses NUL before any store sees it; this is the net behind it.)
async fn an_unstorable_row_fails_alone(b: Backend) {
    let (uri, _guard) = fresh_store(b, "unstorable").await;
    let c = start(&uri, unlimited(), None).await;
    let bad = is_report(666, 0);
    poison_uid(b, &uri, &parse_report(&bad).unwrap().uid).await;

    // One batch of three: the middle one cannot be stored.
    let now = civil_to_unix_micros(2026, 3, 1, 0);
    let batch = [is_report(1, 0), bad.clone(), is_report(2, 0)]
        .map(|body| NewReport::parse(now, body).unwrap());
    let outcomes = c.store().insert(batch.to_vec()).await.unwrap();
    assert_eq!(outcomes[0], Outcome::Stored);
    assert!(
        matches!(&outcomes[1], Outcome::Unstorable(m) if m.contains("poisoned row")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Outcome::Stored);
    assert_eq!(c.store().all_reports().await.unwrap().len(), 2);

    // Over HTTP, concurrently with honest reports: 422 for it, 200 for every other.
    let addr = c.local_addr();
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let body = if i == 50 {
            bad.clone()
        } else {
            is_report(10 + i, 0)
        };
        tasks.push(tokio::spawn(
            async move { (i, post_json(addr, body).await) },
        ));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        let want = if i == 50 { 422 } else { 200 };
        assert_eq!(r.status, want, "{i}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(c.store().all_reports().await.unwrap().len(), 101);
    let s = stats(addr).await;
    assert_eq!(s["reports_stored"], 101);
    assert_eq!(s["deployments"]["total"], 101);
    c.shutdown().await;
}

both!(totals_past_i64_are_exact);
/// Issue 11 item 3: totals past i64 are exact on both stores, stats keep answering, and a
/// newer report moves them by the exact difference.
async fn totals_past_i64_are_exact(b: Backend) {
    let (uri, _guard) = fresh_store(b, "overflow").await;
    let c = start(&uri, unlimited(), None).await;
    let addr = c.local_addr();
    let plan = vec!["EU_863_870".to_owned()];
    let max = u64::MAX;
    for name in ["a", "b", "c"] {
        let r = post_json(addr, report_with(name, max, &plan)).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let three = 3 * u128::from(max);
    let s = exact_stats(addr).await;
    let e = &s.entities;
    for (field, v) in [
        ("gateways", e.gateways),
        ("end_devices", e.end_devices),
        ("applications", e.applications),
        ("users_standard", e.users_standard),
        ("users_admin", e.users_admin),
        ("organizations", e.organizations),
    ] {
        assert_eq!(v, three, "{field}");
    }
    assert_eq!(s.active_end_devices.last_day, three);
    assert_eq!(s.gateways_by_frequency_plan[0].count, three);
    assert_eq!(s.daily[0].users, 2 * three);
    // Deployment `b` shrinks: the totals fall by the exact difference.
    assert_eq!(
        post_json(addr, report_with("b", 7, &plan)).await.status,
        200
    );
    let want = 2 * u128::from(max) + 7;
    assert_eq!(exact_stats(addr).await.entities.gateways, want);
    // And read back the same after a restart.
    c.shutdown().await;
    let c = start(&uri, unlimited(), None).await;
    assert_eq!(exact_stats(c.local_addr()).await.entities.gateways, want);
    c.shutdown().await;
}

/// The parts of `/api/v1/stats` the overflow test reads, with integers beyond u64 read exactly
/// (serde_json parses a number straight into a `u128` field).
#[derive(serde::Deserialize)]
struct ExactStats {
    entities: ExactEntities,
    active_end_devices: ExactActive,
    gateways_by_frequency_plan: Vec<ExactEntry>,
    daily: Vec<ExactDay>,
}
#[derive(serde::Deserialize)]
struct ExactEntities {
    gateways: u128,
    end_devices: u128,
    applications: u128,
    users_standard: u128,
    users_admin: u128,
    organizations: u128,
}
#[derive(serde::Deserialize)]
struct ExactActive {
    last_day: u128,
}
#[derive(serde::Deserialize)]
struct ExactEntry {
    count: u128,
}
#[derive(serde::Deserialize)]
struct ExactDay {
    users: u128,
}

async fn exact_stats(addr: std::net::SocketAddr) -> ExactStats {
    let r = request(addr, "GET", "/api/v1/stats", &[], vec![])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

both!(repeats_are_stored_once);
/// Issue 11 item 4: the same bytes POSTed again the same day get the same receipt, marked as a
/// repeat, and store nothing; the next day they are that day's report; A → B → A is new.
async fn repeats_are_stored_once(b: Backend) {
    let (uri, _guard) = fresh_store(b, "repeat").await;
    let t0 = civil_to_unix_micros(2026, 5, 4, 3_600_000_000);
    let clock = TestClock::at(t0);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    let addr = c.local_addr();
    let a = is_report(1, 0);
    let mut receipts = Vec::new();
    for k in 0..3 {
        clock.set(t0 + k * 3_600_000_000);
        let r = post_json(addr, a.clone()).await;
        assert_eq!(r.status, 200);
        receipts.push(r.json());
    }
    let sha = sha256_hex(&a);
    assert_eq!(
        receipts[0],
        serde_json::json!({"stored": true, "sha256": sha, "repeat": false})
    );
    for r in &receipts[1..] {
        assert_eq!(
            *r,
            serde_json::json!({"stored": true, "sha256": sha, "repeat": true})
        );
    }
    assert_eq!(c.store().all_reports().await.unwrap().len(), 1);
    let s = stats(addr).await;
    assert_eq!(s["reports_stored"], 1);
    // The agent's receipt check takes a repeat's receipt as naming what it sent.
    let r = post_json(addr, a.clone()).await;
    assert_eq!(
        ttn_lw_telemetry::deliver::check_receipt(
            &r.body,
            r.headers
                .get("content-digest")
                .and_then(|v| v.to_str().ok()),
            &sha
        ),
        ttn_lw_telemetry::deliver::Receipt::Matched
    );

    // The next UTC day, the same bytes are that day's report of an unchanged deployment.
    clock.set(t0 + MICROS_PER_DAY);
    assert_eq!(post_json(addr, a.clone()).await.json()["repeat"], false);
    // A → B → A on one day: the second A changes the latest counts back, so it is stored.
    let b2 = is_report(1, 1);
    assert_eq!(post_json(addr, b2).await.json()["repeat"], false);
    assert_eq!(post_json(addr, a.clone()).await.json()["repeat"], false);
    assert_eq!(c.store().all_reports().await.unwrap().len(), 4);
    let s = stats(addr).await;
    assert_eq!(s["reports_stored"], 4);
    assert_eq!(s["daily"].as_array().unwrap().len(), 2);
    c.shutdown().await;

    // A restart changes nothing: the repeat is found in the store, not in memory.
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    assert_eq!(post_json(c.local_addr(), a).await.json()["repeat"], true);
    assert_eq!(c.store().all_reports().await.unwrap().len(), 4);
    c.shutdown().await;
}

/// Reads a raw HTTP/1.1 response until the server closes or 5 s pass.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Issue 11 item 5: what the collector does not decode is refused with the right status, and
/// nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codings_it_does_not_decode_are_refused() {
    let (uri, _guard) = fresh_store(Backend::Sqlite, "coding").await;
    let c = start(&uri, unlimited(), None).await;
    let addr = c.local_addr();
    let body = is_report(1, 0);

    // Transfer-Encoding: gzip, chunked → 501 (RFC 9112 §6.1), and the connection is closed.
    let mut req = b"POST /collect HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: gzip, chunked\r\n\r\n".to_vec();
    req.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    req.extend_from_slice(&body);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    let resp = raw(addr, &req).await;
    assert!(resp.starts_with("HTTP/1.1 501"), "{resp}");
    assert!(resp.contains("only the chunked transfer coding"), "{resp}");
    // A Transfer-Encoding that does not end in chunked never reaches the handler: hyper refuses
    // it (RFC 9112 §6.3: the length cannot be determined).
    let gzip_only = String::from_utf8(req.clone())
        .unwrap()
        .replace("gzip, chunked", "gzip");
    let resp = raw(addr, gzip_only.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    // Plain chunked is fine.
    let ok = String::from_utf8(req.clone())
        .unwrap()
        .replace("gzip, chunked", "chunked");
    let resp = raw(addr, ok.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // Content-Encoding other than identity → 415 with Accept-Encoding: identity.
    for ce in ["br", "gzip", "identity, gzip", "x-unknown"] {
        let r = request(
            addr,
            "POST",
            "/collect",
            &[
                ("content-type", "application/json"),
                ("content-encoding", ce),
            ],
            is_report(2, 0),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 415, "{ce}");
        assert_eq!(r.headers["accept-encoding"], "identity", "{ce}");
        assert!(r.json()["error"].as_str().unwrap().contains("uncompressed"));
    }
    // A gzip body without a Content-Encoding → 415, not 400.
    let gz = [
        &[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03][..],
        b"\xab\x56\x2a\xcd",
    ]
    .concat();
    let r = post_json(addr, gz).await;
    assert_eq!(r.status, 415, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["error"].as_str().unwrap().contains("gzip"));
    // Content-Encoding: identity is the absence of a coding.
    let r = request(
        addr,
        "POST",
        "/collect",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
        ],
        is_report(3, 0),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);

    // Charsets: only UTF-8 (or none).
    for (ct, want) in [
        ("application/json;charset=latin-1", 415),
        ("application/json; charset=iso-8859-1", 415),
        ("application/json; charset=utf-16", 415),
        ("application/json; charset=\"UTF-8\"", 200),
        ("Application/JSON;charset=utf-8", 200),
        ("application/json; foo=bar", 200),
    ] {
        let r = request(
            addr,
            "POST",
            "/collect",
            &[("content-type", ct)],
            is_report(10 + want as u64 + ct.len() as u64, 0),
        )
        .await
        .unwrap();
        assert_eq!(r.status, want, "{ct}: {}", String::from_utf8_lossy(&r.body));
        if want == 415 {
            assert!(
                r.json()["error"].as_str().unwrap().contains("utf-8"),
                "{ct}"
            );
        }
    }
    // Stored: the plain chunked report, the identity one, and three charset cases.
    assert_eq!(c.store().all_reports().await.unwrap().len(), 5);
    c.shutdown().await;
}

/// Issue 11 item 6: a CLI uid has one spelling; upper case and non-v4 UUIDs are refused with
/// 400, so one installation cannot count twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_uids_have_one_spelling() {
    let (uri, _guard) = fresh_store(Backend::Sqlite, "uuid").await;
    let c = start(&uri, unlimited(), None).await;
    let uid = "6ba7b810-9dad-41d1-80b4-00c04fd430c8";
    assert_eq!(
        post_json(c.local_addr(), REFERENCE_CLI.as_bytes().to_vec())
            .await
            .status,
        200
    );
    for other in [
        uid.to_uppercase(),
        uid.replace("-41d1-", "-11d1-"),
        uid.replace("-80b4-", "-c0b4-"),
    ] {
        let r = post_json(
            c.local_addr(),
            REFERENCE_CLI.replace(uid, &other).into_bytes(),
        )
        .await;
        assert_eq!(r.status, 400, "{other}");
        assert_eq!(
            r.json()["error"],
            "`uid`: expected a lower-case uuid v4 (8-4-4-4-12 hex)"
        );
    }
    assert_eq!(stats(c.local_addr()).await["cli_installations"]["total"], 1);
    c.shutdown().await;
}

both!(stats_reads_are_bounded);
/// Issue 11 item 2: what a stats read loads is bounded whatever reporters sent: here 60
/// reports of 1,024 distinct frequency plans each (61,440 plan counters) and 300 distinct
/// versions. The response keeps the top entries and sums the rest as `other`, exactly.
async fn stats_reads_are_bounded(b: Backend) {
    use ttn_lw_telemetry::collect::stats::{DAYS, TOP};
    let (uri, _guard) = fresh_store(b, "bound").await;
    let store = Store::open(Some(&uri)).await.unwrap();
    let now = civil_to_unix_micros(2026, 6, 1, 0);
    let mut batch = Vec::new();
    for i in 0..60u64 {
        let plans: Vec<String> = (0..1024).map(|p| format!("HOSTILE_{i}_{p:04}")).collect();
        batch.push(NewReport::parse(now, report_with(&format!("h{i}"), 1 + i, &plans)).unwrap());
    }
    for i in 0..300u64 {
        let body = Inputs {
            identity: Identity::Elements(vec![format!("v{i}")]),
            os: OsInfo {
                binary_version: format!("9.{i}"),
                ..os()
            },
            payload: Payload::Entities(EntitiesCount::default()),
        }
        .build()
        .unwrap()
        .to_bytes();
        batch.push(NewReport::parse(now, body).unwrap());
    }
    store.insert(batch).await.unwrap();
    let snap = store.snapshot(now + 1).await.unwrap();
    // Fixed totals and sums (< 40), 8 reads of TOP + 1 (7 spreads, plan deployments), 2 × 32 seen days, DAYS × 10 rows.
    let bound = 40 + 8 * (TOP + 1) + 2 * 32 + DAYS * 10;
    assert!(
        snap.counters.len() <= bound,
        "{} counter rows read",
        snap.counters.len()
    );
    assert!(snap.counters.len() < 500, "{}", snap.counters.len());
    let s = store.stats(now + 1, 1).await.unwrap();
    let plans = &s.gateways_by_frequency_plan;
    assert_eq!(plans.len(), TOP + 1);
    assert_eq!(plans[0].name, "HOSTILE_59_0000");
    assert_eq!(plans[0].count, 60);
    assert_eq!(plans[TOP].name, "other");
    let all: i128 = (1..=60).map(|n| 1024 * n).sum();
    assert_eq!(plans.iter().map(|e| e.count).sum::<i128>(), all);
    let versions = &s.binary_versions;
    assert_eq!(versions.len(), TOP + 1);
    assert_eq!(
        versions[0],
        ttn_lw_telemetry::collect::stats::Entry {
            name: "3.34.0".into(),
            count: 60
        }
    );
    assert_eq!(versions.iter().map(|e| e.count).sum::<i128>(), 360);
    store.close().await;
}

/// The schema of stores written before version 2 (one `value` column per counter, no version).
const V1_TABLES: &str = "
CREATE TABLE reports (id BIGINT PRIMARY KEY, received_at BIGINT NOT NULL, uid TEXT NOT NULL,
    kind TEXT NOT NULL, sha256 TEXT NOT NULL, body BYTEA NOT NULL);
CREATE TABLE latest (uid TEXT PRIMARY KEY, kind TEXT NOT NULL, report_id BIGINT NOT NULL,
    received_at BIGINT NOT NULL);
CREATE INDEX latest_kind_received ON latest (kind, received_at);
CREATE TABLE day_latest (day BIGINT NOT NULL, uid TEXT NOT NULL, report_id BIGINT NOT NULL,
    received_at BIGINT NOT NULL, PRIMARY KEY (day, uid));
CREATE TABLE counters (scope TEXT NOT NULL, name TEXT NOT NULL, value BIGINT NOT NULL,
    PRIMARY KEY (scope, name));
";

both!(old_stores_are_migrated_on_open);
/// Schema changes: a store written by the previous collector (version 1), with a counter that
/// had overflowed, opens, is migrated once, and gives the same stats as a new store fed the
/// same reports; it then takes new reports. A stored report the core now refuses (an
/// upper-case CLI uid) stays stored but counts in nothing.
async fn old_stores_are_migrated_on_open(b: Backend) {
    let t0 = civil_to_unix_micros(2026, 7, 1, 3_600_000_000);
    let day = t0.div_euclid(MICROS_PER_DAY);
    let bodies = [is_report(1, 0), is_report(2, 0), cli_report(3)];
    let uid4 = "6ba7b810-9dad-41d1-80b4-00c04fd430c8";
    let upper = REFERENCE_CLI.replace(uid4, &uid4.to_uppercase());
    assert!(parse_report(upper.as_bytes()).is_err());
    let mut rows: Vec<(i64, String, &str, Vec<u8>)> = bodies
        .iter()
        .map(|b| {
            let r = parse_report(b).unwrap();
            let kind = if r.uid.len() == 36 { "cli" } else { "is" };
            (0, r.uid, kind, b.clone())
        })
        .collect();
    rows.push((0, uid4.to_uppercase(), "cli", upper.into_bytes()));
    for (i, r) in rows.iter_mut().enumerate() {
        r.0 = i as i64 + 1;
    }
    let (uri, _guard) = fresh_store(b, "migrate").await;
    match b {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(uri.strip_prefix("sqlite:").unwrap()).unwrap();
            // As SQLite stores were made: the row id is the report id.
            let v1 = V1_TABLES
                .replace("BYTEA", "BLOB")
                .replace("id BIGINT PRIMARY KEY", "id INTEGER PRIMARY KEY");
            conn.execute_batch(&v1).unwrap();
            for (id, uid, kind, body) in &rows {
                conn.execute(
                    "INSERT INTO reports VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![id, t0, uid, kind, sha256_hex(body), body],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO latest VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![uid, kind, id, t0],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO day_latest VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![day, uid, id, t0],
                )
                .unwrap();
            }
            // What 9.2M clamped reports left behind: a counter that SQLite turned into a REAL.
            conn.execute_batch(
                "INSERT INTO counters VALUES ('latest', 'gateways', 9223372036854775807);
                 UPDATE counters SET value = value + 1;
                 INSERT INTO counters VALUES ('meta', 'reports', 17);",
            )
            .unwrap();
            let t: String = conn
                .query_row(
                    "SELECT typeof(value) FROM counters WHERE scope = 'latest'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(t, "real");
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&uri, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(V1_TABLES).await.unwrap();
            client
                .batch_execute("CREATE SEQUENCE reports_id_seq START 100")
                .await
                .unwrap();
            for (id, uid, kind, body) in &rows {
                let kind = kind.to_string();
                client
                    .execute(
                        "INSERT INTO reports VALUES ($1, $2, $3, $4, $5, $6)",
                        &[id, &t0, uid, &kind, &sha256_hex(body), body],
                    )
                    .await
                    .unwrap();
                client
                    .execute(
                        "INSERT INTO latest VALUES ($1, $2, $3, $4)",
                        &[uid, &kind, id, &t0],
                    )
                    .await
                    .unwrap();
                client
                    .execute(
                        "INSERT INTO day_latest VALUES ($1, $2, $3, $4)",
                        &[&day, uid, id, &t0],
                    )
                    .await
                    .unwrap();
            }
            client
                .batch_execute(
                    "INSERT INTO counters VALUES ('latest', 'gateways', 9223372036854775807)",
                )
                .await
                .unwrap();
        }
    }
    let clock = TestClock::at(t0 + 3_600_000_000);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    let got = stats(c.local_addr()).await;

    // The same reports, sent to a new store.
    let (fresh_uri, _g2) = fresh_store(b, "migrate_ref").await;
    let fresh_clock = TestClock::at(t0);
    let f = start(&fresh_uri, unlimited(), Some(fresh_clock.clock())).await;
    for body in &bodies {
        assert_eq!(post_json(f.local_addr(), body.clone()).await.status, 200);
    }
    fresh_clock.set(t0 + 3_600_000_000);
    let mut want = stats(f.local_addr()).await;
    f.shutdown().await;
    // The old store also holds the report the core now refuses: stored, not counted.
    want["reports_stored"] = 4.into();
    assert_eq!(got, want);
    assert_eq!(c.store().all_reports().await.unwrap().len(), 4);

    // It takes new reports, and is not migrated again on the next open.
    assert_eq!(post_json(c.local_addr(), is_report(5, 0)).await.status, 200);
    let s = stats(c.local_addr()).await;
    c.shutdown().await;
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    assert_eq!(stats(c.local_addr()).await, s);
    assert_eq!(s["deployments"]["total"], 3);
    c.shutdown().await;
}

both!(version_2_stores_gain_plan_deployment_counts);
/// Schema version 3 (issue 14 §4) counts deployments per frequency-plan id. A version-2 store
/// (no such counters) has its counters rebuilt on open, so a plan reported by k deployments is
/// public at once; without the rebuild it would be folded into `other`.
async fn version_2_stores_gain_plan_deployment_counts(b: Backend) {
    let now = civil_to_unix_micros(2026, 7, 1, 0);
    let (uri, _guard) = fresh_store(b, "v2to3").await;
    let store = Store::open(Some(&uri)).await.unwrap();
    let plans = ["PLAN_FIVE".to_owned()];
    let batch = (0..5u64)
        .map(|i| NewReport::parse(now, report_with(&format!("d{i}"), 2, &plans)).unwrap())
        .collect();
    store.insert(batch).await.unwrap();
    let name = |s: &ttn_lw_telemetry::collect::stats::Stats| {
        s.gateways_by_frequency_plan
            .iter()
            .map(|e| (e.name.clone(), e.count))
            .collect::<Vec<_>>()
    };
    let want = vec![("PLAN_FIVE".to_owned(), 10)];
    assert_eq!(name(&store.stats(now + 1, 5).await.unwrap()), want);
    store.close().await;
    // What a version-2 collector left behind: no plan deployment counts.
    let downgrade = "DELETE FROM counters WHERE scope = 'plan_deployments'";
    collect_util::downgrade(b, &uri, downgrade, 2).await;
    let store = Store::open(Some(&uri)).await.unwrap();
    let s = store.stats(now + 1, 5).await.unwrap();
    assert_eq!(name(&s), want);
    assert_eq!(s.entities.gateways, 10);
    store.close().await;
}

both!(version_5_stores_keep_one_uid_structure);
/// Schema version 6 reads each deployment's latest report, and its latest of each day, from
/// `reports` itself (one index by uid), and PostgreSQL keeps the spreads' counters apart. A
/// store a version-5 collector left behind (the tables `latest` and `day_latest`, the index
/// `reports (uid)`, and on PostgreSQL the spreads in `counters` with their index) opens with
/// the same stats, without the old structures, and the next reports move the aggregates as
/// in a store that was never migrated.
async fn version_5_stores_keep_one_uid_structure(b: Backend) {
    let day = civil_to_unix_micros(2026, 7, 1, 0);
    let (uri, _guard) = fresh_store(b, "v5to6").await;
    let (control_uri, _g2) = fresh_store(b, "v5to6_ref").await;
    let store = Store::open(Some(&uri)).await.unwrap();
    let control = Store::open(Some(&control_uri)).await.unwrap();
    let first: Vec<(i64, Vec<u8>)> = (0..4)
        .map(|i| (day + i as i64, is_report(i, 0)))
        .chain([(day + 10, is_report(0, 1))])
        .collect();
    for s in [&store, &control] {
        let batch = first
            .iter()
            .map(|(at, body)| NewReport::parse(*at, body.clone()).unwrap())
            .collect();
        s.insert(batch).await.unwrap();
    }
    let before = store.stats(day + 20, 1).await.unwrap();
    store.close().await;
    let v5 = match b {
        Backend::Sqlite => {
            "CREATE TABLE latest (uid TEXT PRIMARY KEY, kind TEXT NOT NULL,
                 report_id INTEGER NOT NULL, received_at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE day_latest (day INTEGER NOT NULL, uid TEXT NOT NULL,
                 report_id INTEGER NOT NULL, received_at INTEGER NOT NULL,
                 PRIMARY KEY (day, uid)) WITHOUT ROWID;
             DROP INDEX reports_received_uid;
             CREATE INDEX reports_received ON reports (received_at);
             CREATE INDEX reports_uid ON reports (uid)"
        }
        Backend::Postgres => {
            "CREATE TABLE latest (uid TEXT PRIMARY KEY, kind TEXT NOT NULL,
                 report_id BIGINT NOT NULL, received_at BIGINT NOT NULL);
             CREATE TABLE day_latest (day BIGINT NOT NULL, uid TEXT NOT NULL,
                 report_id BIGINT NOT NULL, received_at BIGINT NOT NULL, PRIMARY KEY (day, uid));
             DROP INDEX reports_uid_received;
             CREATE INDEX reports_uid ON reports (uid);
             INSERT INTO counters SELECT * FROM spreads;
             DROP TABLE spreads;
             CREATE INDEX counters_top ON counters (scope, hi DESC, value DESC, name)"
        }
    };
    collect_util::downgrade(b, &uri, v5, 5).await;
    let store = Store::open(Some(&uri)).await.unwrap();
    assert_eq!(store.stats(day + 20, 1).await.unwrap(), before);
    let gone = match b {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(uri.strip_prefix("sqlite:").unwrap()).unwrap();
            conn.query_row(
                "SELECT count(*) FROM sqlite_master
                 WHERE name IN ('latest', 'day_latest', 'reports_uid', 'reports_received')",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&uri, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let row = client
                .query_one(
                    "SELECT (to_regclass('latest') IS NOT NULL)::int + (to_regclass('day_latest') IS NOT NULL)::int
                          + (to_regclass('reports_uid') IS NOT NULL)::int + (to_regclass('counters_top') IS NOT NULL)::int
                          + (SELECT count(*) FROM counters WHERE scope = 'is_version')::int",
                    &[],
                )
                .await
                .unwrap();
            i64::from(row.get::<_, i32>(0))
        }
    };
    assert_eq!(gone, 0, "the version-5 structures are gone");
    // The same later reports (a repeat, a newer one the same day, one the next day and one
    // received out of order on the first day) move both stores alike.
    let later = [
        (day + 30, is_report(0, 1)),
        (day + 40, is_report(1, 2)),
        (day + MICROS_PER_DAY + 5, is_report(2, 3)),
        (day + 50, is_report(2, 4)),
    ];
    for s in [&store, &control] {
        for (at, body) in &later {
            s.insert(vec![NewReport::parse(*at, body.clone()).unwrap()])
                .await
                .unwrap();
        }
    }
    let now = day + MICROS_PER_DAY + 10;
    assert_eq!(
        store.stats(now, 1).await.unwrap(),
        control.stats(now, 1).await.unwrap()
    );
    store.close().await;
    control.close().await;
}

both!(version_6_stores_gain_seen_hours);
/// Schema version 7 counts deployments by the hour of their latest report, and PostgreSQL
/// counts a cut-off's partial day from those counters. A store a version-6 collector left
/// behind (no such counters) gains them on open from each uid's latest report: the same
/// counters as a store that counted them all along, and the same stats, with windows that
/// start mid-day.
async fn version_6_stores_gain_seen_hours(b: Backend) {
    const HOUR: i64 = 3_600_000_000;
    let day = civil_to_unix_micros(2026, 7, 1, 0);
    let (uri, _guard) = fresh_store(b, "v6to7").await;
    let (control_uri, _g2) = fresh_store(b, "v6to7_ref").await;
    let store = Store::open(Some(&uri)).await.unwrap();
    let control = Store::open(Some(&control_uri)).await.unwrap();
    // Deployments whose latest report falls before, in and after the cut-off's hour (3:00 +
    // 30 min), one replaced later the same day, one a week earlier, and a report the core now
    // refuses cannot be among them (every body here is valid).
    let reports: Vec<(i64, Vec<u8>)> = vec![
        (day + HOUR, is_report(0, 0)),
        (day + 3 * HOUR + 10, is_report(1, 0)),
        (day + 3 * HOUR + HOUR / 2 + 5, is_report(2, 0)),
        (day + 5 * HOUR, is_report(3, 0)),
        (day + 9 * HOUR, is_report(4, 0)),
        (day + 20 * HOUR, is_report(4, 1)),
        (day - 7 * MICROS_PER_DAY + 7 * HOUR, is_report(5, 0)),
    ];
    for s in [&store, &control] {
        let batch = reports
            .iter()
            .map(|(at, body)| NewReport::parse(*at, body.clone()).unwrap())
            .collect();
        s.insert(batch).await.unwrap();
    }
    store.close().await;
    collect_util::downgrade(b, &uri, "SELECT 1", 6).await;
    assert!(seen_hours(b, &uri).await.is_empty(), "downgraded");
    let store = Store::open(Some(&uri)).await.unwrap();
    let want = seen_hours(b, &control_uri).await;
    // By hour: 1:00, 3:00 (two), 5:00, 20:00 (uid 4's replaced 9:00 is not), and a week back.
    let hour = |at: i64| format!("{:09}", at / HOUR);
    let at = |t: i64, n: i64| ("is_seen_hour".to_owned(), hour(t), n);
    let mut expected = vec![
        at(day + HOUR, 1),
        at(day + 3 * HOUR, 2),
        at(day + 5 * HOUR, 1),
        at(day + 20 * HOUR, 1),
        at(day - 7 * MICROS_PER_DAY + 7 * HOUR, 1),
    ];
    expected.sort();
    assert_eq!(want, expected);
    assert_eq!(seen_hours(b, &uri).await, want);
    // The last day from 3:30 on the first day: uids 2, 3 and 4.
    let now = day + MICROS_PER_DAY + 3 * HOUR + HOUR / 2;
    let got = store.stats(now, 1).await.unwrap();
    assert_eq!(got, control.stats(now, 1).await.unwrap());
    assert_eq!(got.deployments.last_day, 3);
    assert_eq!(got.deployments.total, 6);
    store.close().await;
    control.close().await;
}

/// The `…_seen_hour` counters of a store: `(scope, name, value)`, ordered.
async fn seen_hours(b: Backend, uri: &str) -> Vec<(String, String, i64)> {
    let sql = "SELECT scope, name, value FROM counters
               WHERE scope IN ('is_seen_hour', 'cli_seen_hour') AND (hi <> 0 OR value <> 0)
               ORDER BY scope, name";
    match b {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(uri.strip_prefix("sqlite:").unwrap()).unwrap();
            let mut q = conn.prepare(sql).unwrap();
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let rows = client.query(sql, &[]).await.unwrap();
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        }
    }
}

/// The SQLite store keeps its index by uid in the memory of the collector that opened it, so a
/// second collector on the same file is refused with a message that says what to do; once the
/// first one has closed it, it opens again.
#[tokio::test]
async fn an_sqlite_store_serves_one_collector() {
    let (uri, _guard) = fresh_store(Backend::Sqlite, "one_writer").await;
    let first = Store::open(Some(&uri)).await.unwrap();
    let err = Store::open(Some(&uri)).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("in use by another collector") && msg.contains("PostgreSQL"),
        "{msg}"
    );
    first
        .insert(vec![NewReport::parse(1, is_report(1, 0)).unwrap()])
        .await
        .unwrap();
    first.close().await;
    let again = Store::open(Some(&uri)).await.unwrap();
    assert_eq!(again.all_reports().await.unwrap().len(), 1);
    again.close().await;
}
