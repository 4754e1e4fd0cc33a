//! End to end, agent → collector (issue 6), as processes: `ttn-lw-telemetry collect` on a fresh
//! store (embedded SQLite, and PostgreSQL through `TTN_TEST_PG_URL`), then `ttn-lw-telemetry send`
//! counting a seeded SQLite Identity Server database. The delivered report must be the one
//! `preview` prints, the receipt must match, `/api/v1/stats` must total its counts, and the
//! store must hold its exact bytes.

mod collect_util;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use collect_util::{Backend, fresh_store};
use serde_json::Value;
use ttn_lw_telemetry::cmd::demo::create_example;
use ttn_lw_telemetry::collect::store::Store;
use ttn_telemetry_core::sha256_hex;

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap()
}

/// Starts `collect` on a free loopback port with `--k-anonymity 1` (one deployment reports
/// here, and its values are compared with the stats); returns the process and its base URL.
// The child is returned to the caller, which waits for it in `stop`; the failure path waits too.
#[allow(clippy::zombie_processes)]
fn start_collector(dir: &Path, uri: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "collect",
            "--listen",
            "127.0.0.1:0",
            "--database-uri",
            uri,
            "--k-anonymity",
            "1",
        ])
        .current_dir(dir)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait();
            panic!("collect ended ({status:?}) before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_owned();
            // Keep draining stderr so the collector never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
            return (child, url);
        }
    }
}

fn stop(mut child: Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "collect exits 0 on SIGTERM: {status}");
}

fn get_json(url: &str) -> Value {
    let text = ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn agent_to_collector(backend: Backend) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (uri, _guard) = rt.block_on(fresh_store(backend, "e2e"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("is.sqlite");
    create_example(&db).unwrap();
    let is = format!("sqlite:{}", db.display());
    let state = d.join("state");
    let state = state.to_str().unwrap();

    let (collector, base) = start_collector(d, &uri);
    let target = format!("{base}/collect");

    let preview = run(d, &["--is.database-uri", &is, "preview"]);
    assert!(
        preview.status.success(),
        "{}",
        String::from_utf8_lossy(&preview.stderr)
    );
    let bytes = preview.stdout.strip_suffix(b"\n").unwrap().to_vec();
    let sha = sha256_hex(&bytes);

    let flags = [
        "--is.database-uri",
        &is,
        "--telemetry.target",
        &target,
        "--telemetry.state-dir",
        state,
    ];
    let send = run(d, &[&flags[..], &["send", "--deadline", "30s"]].concat());
    let out = String::from_utf8_lossy(&send.stdout);
    assert!(
        send.status.success(),
        "send: {out}{}",
        String::from_utf8_lossy(&send.stderr)
    );
    assert!(out.contains(&sha), "send names the preview's digest: {out}");
    assert!(out.contains("receipt matched"), "{out}");

    let history = run(d, &[&flags[..], &["history"]].concat());
    let history = String::from_utf8_lossy(&history.stdout);
    let last = history
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap();
    assert!(
        last.contains("delivered HTTP 200") && last.contains("receipt matched"),
        "{history}"
    );
    assert!(last.contains(&sha), "{history}");

    // The dashboard's aggregates are the counts of the report preview printed.
    let report: Value = serde_json::from_slice(&bytes).unwrap();
    let e = &report["entities_count"];
    let stats = get_json(&format!("{base}/api/v1/stats"));
    assert_eq!(stats["reports_stored"], 1, "{stats}");
    assert_eq!(
        stats["k_anonymity"], 1,
        "the option reaches the stats: {stats}"
    );
    let totals = &stats["entities"];
    assert_eq!(totals["gateways"], e["gateways"]["total"], "{stats}");
    assert_eq!(totals["end_devices"], e["end_devices"]["total"]);
    assert_eq!(totals["applications"], e["applications"]["total"]);
    assert_eq!(
        totals["organizations"],
        e["accounts"]["organizations"]["total"]
    );
    assert_eq!(totals["users_admin"], e["accounts"]["users"]["admin"]);
    assert_eq!(totals["users_standard"], e["accounts"]["users"]["standard"]);
    assert_eq!(
        stats["active_end_devices"],
        e["end_devices"]["activate_end_devices"]
    );
    let plans: serde_json::Map<String, Value> = stats["gateways_by_frequency_plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["count"].clone()))
        .collect();
    assert_eq!(
        Value::Object(plans),
        e["gateways"]["gateways_by_frequency_plan_id"]
    );
    assert!(e["end_devices"]["total"].as_u64().unwrap() > 0);

    stop(collector);
    // The store holds the exact bytes, across the collector's restart-free shutdown.
    let stored = rt.block_on(async {
        let store = Store::open(Some(&uri)).await.unwrap();
        let all = store.all_reports().await.unwrap();
        store.close().await;
        all
    });
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].sha256, sha);
    assert_eq!(
        stored[0].body, bytes,
        "the stored body is the preview bytes"
    );
}

#[test]
fn agent_to_collector_with_embedded_sqlite() {
    agent_to_collector(Backend::Sqlite);
}

#[test]
fn agent_to_collector_with_postgres() {
    agent_to_collector(Backend::Postgres);
}

/// Issue 14 §2 and §3 through the real binary: `send` signs with the key it makes in the state
/// directory (mode 0600), the collector pins it, a spoofed unsigned report is refused,
/// `collected` prints the stored report and receipt, `forget` erases it, and the aggregates are
/// then those of a collector that never saw the deployment.
fn signed_deployment_collected_and_forgotten(backend: Backend) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (uri, _guard) = rt.block_on(fresh_store(backend, "e2e_sig"));
    let (control_uri, _guard2) = rt.block_on(fresh_store(backend, "e2e_sig_control"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("is.sqlite");
    create_example(&db).unwrap();
    let is = format!("sqlite:{}", db.display());
    let state = d.join("state");
    let (collector, base) = start_collector(d, &uri);
    let (control, control_base) = start_collector(d, &control_uri);
    let target = format!("{base}/collect");
    let flags = [
        "--is.database-uri",
        &is,
        "--telemetry.target",
        &target,
        "--telemetry.state-dir",
        state.to_str().unwrap(),
    ];
    let cmd = |args: &[&str]| run(d, &[&flags[..], args].concat());

    let send = cmd(&["send", "--deadline", "30s"]);
    let out = String::from_utf8_lossy(&send.stdout);
    assert!(
        send.status.success(),
        "send: {out}{}",
        String::from_utf8_lossy(&send.stderr)
    );
    assert!(out.contains("receipt matched"), "{out}");
    let key_file = state.join(ttn_lw_telemetry::signing::KEY_FILE);
    let key = ttn_lw_telemetry::signing::read_key_file(&key_file).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let uid = String::from_utf8(cmd(&["uid"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    let preview = cmd(&["preview"]);
    let bytes = preview.stdout.strip_suffix(b"\n").unwrap().to_vec();

    // Anyone can send a report in this uid's name without the key: refused, not stored.
    let spoof = ureq::post(&target)
        .config()
        .http_status_as_error(false)
        .build()
        .header("Content-Type", "application/json")
        .send(&bytes[..])
        .unwrap();
    assert_eq!(spoof.status().as_u16(), 401);
    // Another deployment (unsigned, as the reference agent sends) reports to both collectors.
    let other = collect_util::is_report(3, 0);
    for b in [&base, &control_base] {
        let r = ureq::post(&format!("{b}/collect"))
            .header("Content-Type", "application/json")
            .send(&other[..])
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let stats = get_json(&format!("{base}/api/v1/stats"));
    assert_eq!(stats["verified"]["deployments"], 1, "{stats}");
    assert_eq!(stats["deployments"]["total"], 2, "{stats}");

    let collected = cmd(&["collected"]);
    assert!(
        collected.status.success(),
        "{}",
        String::from_utf8_lossy(&collected.stderr)
    );
    let held: Value = serde_json::from_slice(&collected.stdout).unwrap();
    assert_eq!(held["uid"], uid);
    assert_eq!(held["pin"]["keyid"], key.keyid());
    let reports = held["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{held}");
    assert_eq!(
        reports[0]["body"],
        String::from_utf8(bytes.clone()).unwrap()
    );
    assert_eq!(reports[0]["verified"], true);
    assert_eq!(reports[0]["receipt"]["sha256"], sha256_hex(&bytes));

    let forget = cmd(&["forget"]);
    assert!(
        forget.status.success(),
        "{}",
        String::from_utf8_lossy(&forget.stderr)
    );
    let receipt: Value = serde_json::from_slice(&forget.stdout).unwrap();
    assert_eq!(receipt["forgotten"], true, "{receipt}");
    assert_eq!(receipt["reports"], 1);
    assert_eq!(receipt["sha256"][0], sha256_hex(&bytes));

    for path in ["/api/v1/stats", "/api/v1/daily.json"] {
        let mut mine = get_json(&format!("{base}{path}"));
        let mut theirs = get_json(&format!("{control_base}{path}"));
        for v in [&mut mine, &mut theirs] {
            if let Some(o) = v.as_object_mut() {
                o.remove("generated_at");
            }
        }
        assert_eq!(mine, theirs, "{path}");
    }
    // Nothing is left to read: the pin went with the reports.
    let again = cmd(&["collected"]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("401") && err.contains("no key is pinned"),
        "{err}"
    );
    stop(collector);
    stop(control);
}

#[test]
fn signed_deployment_collected_and_forgotten_with_embedded_sqlite() {
    signed_deployment_collected_and_forgotten(Backend::Sqlite);
}

#[test]
fn signed_deployment_collected_and_forgotten_with_postgres() {
    signed_deployment_collected_and_forgotten(Backend::Postgres);
}

/// Two replicas of one deployment (separate state directories) on one Redis sign with one key:
/// the second one's report is accepted by the collector that pinned the first one's key. Then
/// `rotate-key` pins a new key, which the next report is signed with.
#[test]
fn replicas_on_one_redis_sign_with_one_key_and_rotate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (uri, _guard) = rt.block_on(fresh_store(Backend::Sqlite, "e2e_redis"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("is.sqlite");
    create_example(&db).unwrap();
    let is = format!("sqlite:{}", db.display());
    let (collector, base) = start_collector(d, &uri);
    let target = format!("{base}/collect");
    let redis =
        std::env::var("TTN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let address = redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    // The Redis namespace is the deployment's uid: a uid of this test alone.
    let element = format!(
        "https://e2e-redis-{}-{}.example",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let replica = |n: u32, args: &[&str]| {
        let state = d.join(format!("replica-{n}"));
        let flags = [
            "--is.database-uri",
            &is,
            "--telemetry.target",
            &target,
            "--telemetry.uid-elements",
            &element,
            "--redis.address",
            &address,
            "--telemetry.state-dir",
            state.to_str().unwrap(),
        ];
        let out = run(d, &[&flags[..], args].concat());
        assert!(
            out.status.success(),
            "replica {n} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The second replica's report is a repeat of the first one's bytes: it is answered as
    // such only when its signature is by the pinned key (else 401, before any repeat check).
    let one = replica(1, &["send", "--deadline", "30s"]);
    assert!(one.contains("receipt matched"), "{one}");
    let two = replica(2, &["send", "--deadline", "30s"]);
    assert!(two.contains("receipt matched"), "{two}");
    let k1 = ttn_lw_telemetry::signing::read_key_file(
        &d.join("replica-1")
            .join(ttn_lw_telemetry::signing::KEY_FILE),
    )
    .unwrap();
    let k2 = ttn_lw_telemetry::signing::read_key_file(
        &d.join("replica-2")
            .join(ttn_lw_telemetry::signing::KEY_FILE),
    )
    .unwrap();
    assert_eq!(k1.keyid(), k2.keyid());

    let rotated: Value = serde_json::from_str(&replica(2, &["rotate-key"])).unwrap();
    assert_eq!(rotated["old"], k1.keyid());
    let new = rotated["keyid"].as_str().unwrap().to_owned();
    assert_ne!(new, k1.keyid());
    // The rotating replica keeps the new key in place of the old one, and nothing else.
    let kept = ttn_lw_telemetry::signing::read_key_file(
        &d.join("replica-2")
            .join(ttn_lw_telemetry::signing::KEY_FILE),
    )
    .unwrap();
    assert_eq!(kept.keyid(), new);
    assert!(!d.join("replica-2").join("signing-key.pem.pending").exists());
    // Replica 1 reads the new key from Redis when it next starts.
    let one = replica(1, &["send", "--deadline", "30s"]);
    assert!(one.contains("receipt matched"), "{one}");
    let held: Value = serde_json::from_str(&replica(1, &["collected"])).unwrap();
    assert_eq!(held["pin"]["keyid"], new);
    assert_eq!(held["reports"][0]["signed_by"], k1.keyid(), "{held}");
    let forget: Value = serde_json::from_str(&replica(1, &["forget"])).unwrap();
    assert_eq!(forget["forgotten"], true);
    stop(collector);
    // The test's Redis key goes with it.
    let uid =
        String::from_utf8(run(d, &["--telemetry.uid-elements", &element, "uid"]).stdout).unwrap();
    let target = ttn_lw_telemetry::schedule::redis::RedisTarget::from_url(&redis);
    let mut conn = target.connect().unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!(
            "{}:{}{}",
            ttn_lw_telemetry::schedule::redis::DEFAULT_NAMESPACE,
            uid.trim(),
            ttn_lw_telemetry::signing::REDIS_KEY_SUFFIX
        ))
        .query(&mut conn)
        .unwrap();
}
