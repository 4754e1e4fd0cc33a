//! Several collectors on one PostgreSQL database (issue 13): a report retried through another
//! replica is stored once, the per-uid rate limit is one limit across replicas, concurrent
//! start-ups migrate the schema once, and two `collect` processes under load, one killed with
//! `kill -9`, store every acknowledged report exactly once and serve the same stats.

#[macro_use]
mod collect_util;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collect_util::*;
use ttn_lw_telemetry::collect::Limits;
use ttn_lw_telemetry::collect::ratelimit::RateLimit;
use ttn_lw_telemetry::collect::store::postgres::LOCK_KEY;
use ttn_lw_telemetry::collect::store::{SCHEMA_VERSION, Store};
use ttn_telemetry_core::{MICROS_PER_DAY, sha256_hex};

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");

async fn pg(uri: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test database");
    tokio::spawn(conn);
    c
}

/// How many rows of `reports` each SHA-256 has.
async fn rows_per_sha(uri: &str) -> HashMap<String, i64> {
    pg(uri)
        .await
        .query("SELECT sha256, count(*) FROM reports GROUP BY sha256", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_through_the_other_replica_is_a_repeat() {
    let (uri, _db) = fresh_store(Backend::Postgres, "repeat").await;
    let clock = TestClock::at(20_000 * MICROS_PER_DAY + 3_600_000_000);
    let a = start(&uri, unlimited(), Some(clock.clock())).await;
    let b = start(&uri, unlimited(), Some(clock.clock())).await;
    let body = is_report(1, 0);
    let first = post_json(a.local_addr(), body.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["repeat"], false);
    let again = post_json(b.local_addr(), body.clone()).await;
    assert_eq!(
        again.status,
        200,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert_eq!(again.json()["repeat"], true);
    assert_eq!(again.json()["sha256"], first.json()["sha256"]);
    // And back through the first one, after both saw it.
    assert_eq!(
        post_json(a.local_addr(), body.clone()).await.json()["repeat"],
        true
    );
    assert_eq!(
        rows_per_sha(&uri).await,
        HashMap::from([(sha256_hex(&body), 1)])
    );
    // The next day the same bytes are that day's report, whichever replica takes them.
    clock.set(20_001 * MICROS_PER_DAY);
    assert_eq!(
        post_json(b.local_addr(), body.clone()).await.json()["repeat"],
        false
    );
    assert_eq!(stats(a.local_addr()).await["reports_stored"], 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_uid_limit_holds_across_replicas() {
    let (uri, _db) = fresh_store(Backend::Postgres, "uidlimit").await;
    let clock = TestClock::at(20_000 * MICROS_PER_DAY);
    let limits = Limits {
        per_uid: Some(RateLimit {
            burst: 3,
            per_second: 1.0 / 600.0,
        }),
        per_addr: None,
        ..Limits::default()
    };
    let a = start(&uri, limits.clone(), Some(clock.clock())).await;
    let b = start(&uri, limits, Some(clock.clock())).await;
    let replicas = [a.local_addr(), b.local_addr()];
    // Four different reports of one deployment, alternating replicas: a burst of 3 in all.
    for generation in 0..3 {
        let r = post_json(replicas[generation % 2], is_report(7, generation as u64)).await;
        assert_eq!(r.status, 200, "report {generation}");
    }
    let over = post_json(replicas[1], is_report(7, 3)).await;
    assert_eq!(over.status, 429, "{}", String::from_utf8_lossy(&over.body));
    assert_eq!(over.headers["retry-after"], "600");
    let over = post_json(replicas[0], is_report(7, 4)).await;
    assert_eq!(over.status, 429, "the other replica refuses it too");
    // Another deployment has its own bucket.
    assert_eq!(post_json(replicas[1], is_report(8, 0)).await.status, 200);
    // One token comes back after 10 minutes of the collectors' clock, for one report.
    clock.set(20_000 * MICROS_PER_DAY + 600_000_000);
    assert_eq!(post_json(replicas[1], is_report(7, 5)).await.status, 200);
    assert_eq!(post_json(replicas[0], is_report(7, 6)).await.status, 429);
    // Refused reports were not stored.
    assert_eq!(stats(replicas[0]).await["reports_stored"], 5);
    // Once both buckets are full again they carry no state, and a maintenance pass forgets
    // them (the next one finds none); the limit starts over with a whole burst.
    let later = 20_001 * MICROS_PER_DAY;
    assert_eq!(a.store().retain(later, None).await.unwrap().buckets, 2);
    assert_eq!(b.store().retain(later, None).await.unwrap().buckets, 0);
    clock.set(later);
    for generation in 10..13 {
        assert_eq!(
            post_json(replicas[0], is_report(7, generation))
                .await
                .status,
            200
        );
    }
    assert_eq!(post_json(replicas[1], is_report(7, 13)).await.status, 429);
    a.shutdown().await;
    b.shutdown().await;
}

/// Fills a store of this collector's schema with a few reports.
async fn seed(uri: &str) {
    let clock = TestClock::at(20_000 * MICROS_PER_DAY);
    let c = start(uri, unlimited(), Some(clock.clock())).await;
    for i in 0..4 {
        assert_eq!(post_json(c.local_addr(), is_report(i, 0)).await.status, 200);
    }
    c.shutdown().await;
}

async fn schema_rows(uri: &str) -> Vec<i64> {
    pg(uri)
        .await
        .query("SELECT version FROM collector_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    for (start_version, want_rows) in [
        (0, vec![SCHEMA_VERSION]),
        (1, vec![SCHEMA_VERSION]),
        (2, vec![2, SCHEMA_VERSION]),
    ] {
        let (uri, _db) = fresh_store(Backend::Postgres, "migrate").await;
        let mut want_stats = None;
        if start_version > 0 {
            seed(&uri).await;
            let s = Store::open(Some(&uri)).await.unwrap();
            want_stats = Some(s.stats(20_000 * MICROS_PER_DAY, 1).await.unwrap());
            s.close().await;
            reset_to(&uri, start_version).await;
        }
        // Hold the lock while eight collectors open the store, see all eight wait for it, then
        // let them race.
        let holder = pg(&uri).await;
        holder
            .batch_execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))
            .await
            .unwrap();
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let uri = uri.clone();
                tokio::spawn(async move { Store::open(Some(&uri)).await })
            })
            .collect();
        let waiting = async {
            loop {
                let n: i64 = holder
                    .query_one(
                        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                         WHERE d.datname = current_database() AND l.locktype = 'advisory'
                           AND NOT l.granted",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if n == 8 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("every opening collector waits for the lock before touching the schema");
        holder
            .batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
            .await
            .unwrap();
        let mut stores = Vec::new();
        for o in opens {
            stores.push(
                o.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("from version {start_version}: {e:#}")),
            );
        }
        assert_eq!(
            schema_rows(&uri).await,
            want_rows,
            "from version {start_version}: one migration ran"
        );
        if let Some(want) = want_stats {
            let got = stores[0].stats(20_000 * MICROS_PER_DAY, 1).await.unwrap();
            assert_eq!(
                serde_json::to_value(&got).unwrap(),
                serde_json::to_value(&want).unwrap(),
                "from version {start_version}: counters rebuilt exactly"
            );
        }
        for s in stores {
            s.close().await;
        }
    }
}

/// Turns a store of [`SCHEMA_VERSION`] into one of version 1 (before versions were kept, with
/// counters in the old layout) or 2.
async fn reset_to(uri: &str, version: i64) {
    let db = pg(uri).await;
    let sql = match version {
        1 => {
            "DROP TABLE uid_buckets; DROP INDEX reports_received; DROP TABLE collector_schema;
             DROP TABLE counters;
             CREATE TABLE counters (scope TEXT, name TEXT, value BIGINT, PRIMARY KEY (scope, name));
             INSERT INTO counters VALUES ('latest', 'deployments', 4)"
        }
        _ => {
            "DROP TABLE uid_buckets; DROP INDEX reports_received;
             DELETE FROM collector_schema; INSERT INTO collector_schema VALUES (2);
             DELETE FROM counters WHERE scope = 'plan_deployments'"
        }
    };
    db.batch_execute(sql).await.unwrap();
}

/// A `collect` process of the real binary, and the address it said it listens on.
struct Replica {
    child: Child,
    addr: SocketAddr,
}

impl Replica {
    fn start(uri: &str, dir: &std::path::Path) -> Replica {
        let mut child = Command::new(BIN)
            .args([
                "collect",
                "--collector.listen=127.0.0.1:0",
                "--collector.k-anonymity=1",
            ])
            .current_dir(dir)
            .env_clear()
            // The environment as an operator would set it: the database and no per-address
            // limit (all the load comes from one address).
            .env("TTN_LW_COLLECTOR_DATABASE_URI", uri)
            .env("TTN_LW_COLLECTOR_LIMITS_PER_ADDR_BURST", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting `collect`");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line)
            .expect("reading the collector's first line");
        let addr = line
            .strip_prefix("collect: listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("the collector said {line:?}"))
            .parse()
            .unwrap();
        // Keep reading what it logs, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            if !rest.is_empty() {
                eprintln!("collect {addr}: {rest}");
            }
        });
        Replica { child, addr }
    }

    fn kill(&mut self) {
        self.child.kill().expect("kill -9"); // SIGKILL on Unix
        self.child.wait().unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one report's sends came to.
#[derive(Debug, Default)]
struct Sent {
    /// Receipts with `"repeat":false`.
    stored: usize,
    /// Receipts with `"repeat":true`.
    repeats: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_one_killed_store_each_acknowledged_report_once() {
    let (uri, _db) = fresh_store(Backend::Postgres, "replicas").await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = Replica::start(&uri, dir.path());
    let b = Replica::start(&uri, dir.path());
    let replicas = [a.addr, b.addr];

    let sent: Arc<Mutex<HashMap<String, Sent>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    // Receipts so far: the test waits on it, never on a timer.
    let acked = Arc::new(tokio::sync::watch::Sender::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (sent, next, acked, stop) = (sent.clone(), next.clone(), acked.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst) as u64;
                let body = is_report(i, 0);
                let digest = sha256_hex(&body);
                // First through one replica, then the same bytes through the other (as an
                // agent does after a lost answer); a send that fails goes to the other one.
                let first = (i as usize + w) % 2;
                for attempt in 0..4 {
                    let to = replicas[(first + attempt) % 2];
                    let r = request(
                        to,
                        "POST",
                        "/collect",
                        &[("content-type", "application/json")],
                        body.clone(),
                    )
                    .await;
                    let Ok(r) = r else { continue };
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    assert_eq!(r.json()["sha256"], digest.as_str());
                    let mut sent = sent.lock().unwrap();
                    let s = sent.entry(digest.clone()).or_default();
                    if r.json()["repeat"] == true {
                        s.repeats += 1;
                    } else {
                        s.stored += 1;
                    }
                    drop(sent);
                    acked.send_modify(|n| *n += 1);
                    if attempt >= 1 {
                        break;
                    }
                }
            }
        }));
    }
    // Kill one replica mid-load, once both have answered a good share.
    let enough = |n: usize| {
        let mut r = acked.subscribe();
        async move {
            tokio::time::timeout(Duration::from_secs(120), r.wait_for(|k| *k >= n))
                .await
                .expect("the replicas acknowledged too few reports")
                .map(|_| ())
                .expect("load workers");
        }
    };
    enough(400).await;
    a.kill();
    let at_kill = *acked.borrow();
    // The load goes on through the survivor.
    enough(at_kill + 200).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("load worker");
    }

    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let rows = rows_per_sha(&uri).await;
    for (digest, s) in sent.iter() {
        assert_eq!(
            rows.get(digest),
            Some(&1),
            "a report answered 2xx is stored exactly once ({s:?})"
        );
        assert!(s.stored <= 1, "stored answered once at most: {s:?}");
    }
    let twice: Vec<_> = rows.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let repeats: usize = sent.values().map(|s| s.repeats).sum();
    assert!(
        repeats > 0,
        "retries through the other replica were answered as repeats"
    );

    // The survivor and a restarted replica serve the same stats.
    let restarted = Replica::start(&uri, dir.path());
    let mut from_b = stats(b.addr).await;
    let mut from_restarted = stats(restarted.addr).await;
    from_b["generated_at"] = serde_json::Value::Null;
    from_restarted["generated_at"] = serde_json::Value::Null;
    assert_eq!(from_b, from_restarted);
    assert_eq!(
        from_b["reports_stored"].as_u64().unwrap() as usize,
        rows.len()
    );
    assert_eq!(
        from_b["deployments"]["total"].as_u64().unwrap() as usize,
        rows.len(),
        "one report per deployment"
    );
    eprintln!(
        "two replicas: {} reports acknowledged ({} receipts, {} repeats), {} rows, replica A killed after {at_kill} receipts",
        sent.len(),
        *acked.borrow(),
        repeats,
        rows.len()
    );
}
