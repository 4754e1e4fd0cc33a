//! Retention (issue 13): raw reports older than `collector.retention` are deleted, each
//! deployment's latest report and every aggregate are kept. On seeded time, on both stores.

#[macro_use]
mod collect_util;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use collect_util::*;
use ttn_lw_telemetry::collect::store::{Store, StoredReport, retention_cutoff};
use ttn_lw_telemetry::collect::{self, CollectOptions, Collector};
use ttn_telemetry_core::MICROS_PER_DAY;

const HOUR: i64 = 3_600_000_000;
const FIRST_DAY: i64 = 20_000;

/// What the public endpoints serve, at the clock's time.
async fn public(addr: std::net::SocketAddr) -> (serde_json::Value, Vec<u8>) {
    let daily = request(addr, "GET", "/api/v1/daily.json", &[], vec![])
        .await
        .unwrap();
    assert_eq!(daily.status, 200);
    (stats(addr).await, daily.body)
}

/// Sends day `day`'s reports to every collector: deployments report on most days (some with the
/// same counts as the day before, some twice a day), CLI installations now and then.
async fn send_day(collectors: &[&Collector], clock: &TestClock, day: i64) {
    for (hour, i) in (0..8u64).enumerate() {
        if (i + day as u64).is_multiple_of(4) {
            continue; // not every deployment reports every day
        }
        clock.set(day * MICROS_PER_DAY + (hour as i64 + 1) * HOUR);
        let generation = if i.is_multiple_of(3) {
            0
        } else {
            day as u64 % 5
        };
        let mut bodies = vec![is_report(i, generation)];
        if i == 5 {
            bodies.push(is_report(i, generation + 1)); // a second report that day
        }
        if day % 2 == 0 {
            bodies.push(cli_report(i));
        }
        for body in bodies {
            for c in collectors {
                let r = post_json(c.local_addr(), body.clone()).await;
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            }
        }
    }
}

fn key(r: &StoredReport) -> (String, String, i64) {
    (r.uid.clone(), r.sha256.clone(), r.received_at)
}

/// What retention at `now` must keep of `all`: reports received on or after the cut-off day,
/// and each uid's latest.
/// The key of every report `store` holds.
async fn stored_keys(store: &Store) -> BTreeSet<(String, String, i64)> {
    store.all_reports().await.unwrap().iter().map(key).collect()
}

fn expected_kept(all: &[StoredReport], cutoff: i64) -> BTreeSet<(String, String, i64)> {
    let mut latest: HashMap<&str, &StoredReport> = HashMap::new();
    for r in all {
        let e = latest.entry(r.uid.as_str()).or_insert(r);
        if (r.received_at, r.id) > (e.received_at, e.id) {
            *e = r;
        }
    }
    all.iter()
        .filter(|r| r.received_at >= cutoff || latest[r.uid.as_str()].id == r.id)
        .map(key)
        .collect()
}

async fn retention_keeps_every_aggregate(b: Backend) {
    let (kept_uri, _k) = fresh_store(b, "keep").await;
    let (pruned_uri, _p) = fresh_store(b, "prune").await;
    let clock = TestClock::at(FIRST_DAY * MICROS_PER_DAY);
    let kept = start(&kept_uri, unlimited(), Some(clock.clock())).await;
    let pruned = start(&pruned_uri, unlimited(), Some(clock.clock())).await;
    for day in FIRST_DAY..FIRST_DAY + 10 {
        send_day(&[&kept, &pruned], &clock, day).await;
    }
    let now = (FIRST_DAY + 10) * MICROS_PER_DAY + 5 * HOUR;
    clock.set(now);
    let before = public(pruned.local_addr()).await;
    assert_eq!(before, public(kept.local_addr()).await);

    let all = pruned.store().all_reports().await.unwrap();
    let retention = Duration::from_secs(3 * 86_400);
    let cutoff = retention_cutoff(now, retention);
    assert_eq!(cutoff, (FIRST_DAY + 7) * MICROS_PER_DAY, "whole days");
    let want = expected_kept(&all, cutoff);
    let done = pruned.store().retain(now, Some(retention)).await.unwrap();
    assert_eq!(done.reports as usize, all.len() - want.len());
    assert!(done.reports > 0 && want.iter().any(|k| k.2 < cutoff));
    let left = stored_keys(pruned.store()).await;
    assert_eq!(
        left, want,
        "deleted exactly the old reports that are not a latest"
    );
    // The aggregates are the counters, which retention keeps: every public byte is the same.
    assert_eq!(public(pruned.local_addr()).await, before);
    // A second pass finds nothing more.
    let again = pruned.store().retain(now, Some(retention)).await.unwrap();
    assert_eq!(again.reports, 0);

    // Later reports move the aggregates from what was kept exactly as from the whole history,
    // including deployments whose latest report is older than the cut-off.
    for day in FIRST_DAY + 10..FIRST_DAY + 13 {
        send_day(&[&kept, &pruned], &clock, day).await;
    }
    assert_eq!(
        public(pruned.local_addr()).await,
        public(kept.local_addr()).await
    );
    kept.shutdown().await;
    pruned.shutdown().await;
}
both!(retention_keeps_every_aggregate);

/// A collector with `collector.retention` runs it at start (and hourly), and counts what it
/// deleted in its metrics.
async fn a_collector_applies_its_retention_at_start(b: Backend) {
    let (uri, _g) = fresh_store(b, "start").await;
    let clock = TestClock::at(FIRST_DAY * MICROS_PER_DAY);
    let c = start(&uri, unlimited(), Some(clock.clock())).await;
    for day in FIRST_DAY..FIRST_DAY + 6 {
        send_day(&[&c], &clock, day).await;
    }
    let now = (FIRST_DAY + 40) * MICROS_PER_DAY;
    clock.set(now);
    let before = public(c.local_addr()).await;
    let all = c.store().all_reports().await.unwrap();
    c.shutdown().await;

    let retention = Duration::from_secs(30 * 86_400);
    let mut opts = CollectOptions::new("127.0.0.1:0", Some(uri.clone()));
    opts.limits = unlimited();
    opts.k_anonymity = 1;
    opts.clock = clock.clock();
    opts.retention = Some(retention);
    opts.metrics_listen = Some("127.0.0.1:0".into());
    let c = collect::start(opts).await.unwrap();
    let mut passes = c.maintained();
    tokio::time::timeout(Duration::from_secs(60), passes.wait_for(|n| *n >= 1))
        .await
        .expect("a maintenance pass at start")
        .unwrap();
    let want = expected_kept(&all, retention_cutoff(now, retention));
    let left = stored_keys(c.store()).await;
    assert_eq!(left, want);
    assert_eq!(
        left.len(),
        16,
        "the latest report of each of 8 deployments and 8 CLIs"
    );
    let metrics = request(c.metrics_addr().unwrap(), "GET", "/metrics", &[], vec![])
        .await
        .unwrap();
    let text = String::from_utf8(metrics.body).unwrap();
    let line = format!(
        "ttn_lw_telemetry_collector_retention_deleted_total{{table=\"reports\"}} {}",
        all.len() - want.len()
    );
    assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    assert_eq!(public(c.local_addr()).await, before);
    c.shutdown().await;

    // Without retention nothing is deleted.
    let s = Store::open(Some(&uri)).await.unwrap();
    let done = s.retain(now + 400 * MICROS_PER_DAY, None).await.unwrap();
    assert_eq!(done.reports, 0);
    s.close().await;
}
both!(a_collector_applies_its_retention_at_start);
