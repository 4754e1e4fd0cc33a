//! Crash safety: under load, `kill -9` the collector, restart it, and check that every report
//! that got a 2xx is stored, byte for byte, on SQLite and on PostgreSQL; then re-send every
//! report, as agents do with those they got no answer for, and check that each is stored once.
//!
//! The collector runs in a child process: this test binary re-executes itself with
//! `TTN_COLLECT_CRASH_CHILD=<database uri>` and serves until it is killed. `harness = false` with
//! tests/harness, so that `main` decides which role it plays and the tests still report, filter
//! and fail like libtest's.

mod collect_util;
mod harness;

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collect_util::*;
use ttn_telemetry_core::sha256_hex;

const CHILD: &str = "TTN_COLLECT_CRASH_CHILD";

fn main() -> ExitCode {
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    if let Ok(uri) = std::env::var(CHILD) {
        rt().block_on(child(uri));
        return ExitCode::SUCCESS;
    }
    let tests: Vec<harness::Test> = [
        (
            "kill_9_loses_no_acknowledged_report_sqlite",
            Backend::Sqlite,
        ),
        (
            "kill_9_loses_no_acknowledged_report_postgres",
            Backend::Postgres,
        ),
    ]
    .into_iter()
    .map(|(name, backend)| -> harness::Test {
        (name, Box::new(move || rt().block_on(crash_once(backend))))
    })
    .collect();
    harness::run(tests)
}

async fn child(uri: String) {
    let c = start(&uri, unlimited(), None).await;
    println!("listening {}", c.local_addr());
    std::future::pending::<()>().await;
}

fn spawn_child(uri: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, uri)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the collector process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reading the child's address");
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("child said {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

async fn crash_once(backend: Backend) {
    let (uri, _dir) = fresh_store(backend, "crash").await;
    let (mut child, addr) = spawn_child(&uri);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let sent = Arc::new(Mutex::new(HashSet::<String>::new()));
    let bodies = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // How many reports were acknowledged so far: the moment to kill is an event, not a time.
    let (acks, mut acks_seen) = tokio::sync::watch::channel(0usize);
    let acks = Arc::new(acks);
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (acked, sent, next, stop) = (acked.clone(), sent.clone(), next.clone(), stop.clone());
        let (bodies, acks) = (bodies.clone(), acks.clone());
        workers.push(tokio::spawn(async move {
            let mut errors = 0;
            while !stop.load(Ordering::SeqCst) && errors < 3 {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let body = is_report(i, i % 7);
                let digest = sha256_hex(&body);
                sent.lock().unwrap().insert(digest.clone());
                bodies.lock().unwrap().push(body.clone());
                match request(
                    addr,
                    "POST",
                    "/collect",
                    &[("content-type", "application/json")],
                    body,
                )
                .await
                {
                    Ok(r) if r.status == 200 => {
                        assert_eq!(r.json()["sha256"], digest.as_str());
                        acked.lock().unwrap().push(digest);
                        acks.send_modify(|n| *n += 1);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status),
                    Err(_) => errors += 1,
                }
            }
        }));
    }
    // Kill the collector while requests are in flight.
    let enough = tokio::time::timeout(
        Duration::from_secs(120),
        // The guard `wait_for` returns holds the channel's lock: drop it at once.
        async { acks_seen.wait_for(|n| *n >= 500).await.map(drop) },
    )
    .await;
    if !matches!(enough, Ok(Ok(()))) {
        let _ = child.kill();
        panic!("{backend:?}: the collector acknowledged too few reports under load");
    }
    child.kill().expect("kill -9 the collector"); // SIGKILL on Unix
    child.wait().unwrap();
    // Each worker finishes the request it has in flight (an answer sent before the kill is
    // still read and counted), then stops.
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("load worker");
    }
    let acked = acked.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();

    // Read before the collector restarts: an SQLite store serves one process at a time.
    let store = ttn_lw_telemetry::collect::store::Store::open(Some(&uri))
        .await
        .unwrap();
    let stored = store.all_reports().await.unwrap();
    store.close().await;
    let (mut child, addr) = spawn_child(&uri);
    let stored_digests: HashSet<String> = stored.iter().map(|r| r.sha256.clone()).collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|d| !stored_digests.contains(*d))
        .collect();
    assert!(
        missing.is_empty(),
        "{backend:?}: {} of {} acknowledged reports lost",
        missing.len(),
        acked.len()
    );
    for r in &stored {
        assert_eq!(
            sha256_hex(&r.body),
            r.sha256,
            "stored body matches its digest"
        );
        assert!(sent.contains(&r.sha256), "stored only what was sent");
    }
    // The counters were committed with the reports: they agree after the crash.
    let s = stats(addr).await;
    assert_eq!(s["reports_stored"].as_u64().unwrap() as usize, stored.len());
    let uids: HashSet<&str> = stored.iter().map(|r| r.uid.as_str()).collect();
    assert_eq!(
        s["deployments"]["total"].as_u64().unwrap() as usize,
        uids.len()
    );
    // Agents re-send what they got no answer for (and a lost answer looks the same as no
    // answer): every report sent is re-sent. Each is answered 200; those already stored are
    // repeats, and nothing is stored twice.
    let bodies = bodies.lock().unwrap().clone();
    let mut repeats = 0;
    for body in &bodies {
        let r = post_json(addr, body.clone()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let digest = sha256_hex(body);
        assert_eq!(r.json()["sha256"], digest.as_str());
        let repeat = r.json()["repeat"].as_bool().unwrap();
        assert_eq!(repeat, stored_digests.contains(&digest), "{backend:?}");
        repeats += usize::from(repeat);
    }
    assert_eq!(repeats, stored.len());
    // And the restarted collector takes new reports.
    assert_eq!(post_json(addr, is_report(1_000_000, 0)).await.status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    let store = ttn_lw_telemetry::collect::store::Store::open(Some(&uri))
        .await
        .unwrap();
    let after = store.all_reports().await.unwrap();
    let unique: HashSet<&str> = after.iter().map(|r| r.sha256.as_str()).collect();
    assert_eq!(
        unique.len(),
        after.len(),
        "{backend:?}: a report was stored twice"
    );
    assert_eq!(after.len(), sent.len() + 1);
    eprintln!(
        "collect_crash {backend:?}: {} sent, {} acknowledged, {} stored after kill -9, {} of them answered as repeats when re-sent",
        sent.len(),
        acked.len(),
        stored.len(),
        repeats
    );
    store.close().await;
}
