//! The collector's Prometheus metrics, served at `GET /metrics` on their own listener
//! (`collector.metrics-listen`), never on the public port (issue 13, "Metrics").
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `ttn_lw_telemetry_collector_reports_accepted_total{repeat}` | counter | `POST /collect` answered 200: `repeat="false"` stored, `"true"` a repeat of a stored report |
//! | `ttn_lw_telemetry_collector_reports_refused_total{status,reason}` | counter | `POST /collect` refused, by status and [`Refusal`](super::Refusal) kind |
//! | `ttn_lw_telemetry_collector_batch_size` | histogram | reports per group commit |
//! | `ttn_lw_telemetry_collector_commit_seconds` | histogram | time to write and commit one batch |
//! | `ttn_lw_telemetry_collector_store_errors_total` | counter | reports the store failed to write (each answered 503) |
//! | `ttn_lw_telemetry_collector_retention_deleted_total{table}` | counter | rows retention deleted: `reports`, `uid_buckets` (see [`Store::retain`](super::store::Store::retain)) |
//! | `ttn_lw_telemetry_collector_deployment_requests_total{method,status,reason}` | counter | signed requests to `/api/v1/deployments/{uid}` (read, forget, key rotation), by method, status and [`Refusal`](super::Refusal) kind (`ok` when answered 200) |
//!
//! # Decisions where the issue and SPEC are silent
//! - Only requests that reach `POST /collect` are counted; requests hyper itself refuses
//!   (malformed HTTP, a header timeout) and other routes are not reports.
//! - Refusal reasons are a fixed set of names (one per refusal kind), never the error text, so
//!   the label set stays small and no client-controlled string reaches a label.
//! - The metrics listener has no token: it is meant for a private address (loopback or an
//!   internal network), as the default of off suggests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::prom::{self, Histogram};

const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
const SECONDS_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// What a store's writer records about its group commits.
#[derive(Debug)]
pub struct WriterMetrics {
    batch_size: Histogram,
    commit_seconds: Histogram,
    store_errors: AtomicU64,
    /// Rows deleted by retention: reports, uid_buckets.
    deleted: [AtomicU64; 2],
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            batch_size: Histogram::new(BATCH_BOUNDS),
            commit_seconds: Histogram::new(SECONDS_BOUNDS),
            store_errors: AtomicU64::new(0),
            deleted: Default::default(),
        }
    }
}

impl WriterMetrics {
    /// Records one batch of `size` reports, written in `took`, of which `failed` could not be
    /// stored because the store failed.
    pub fn record(&self, size: usize, took: Duration, failed: usize) {
        self.batch_size.observe(size as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        self.store_errors
            .fetch_add(failed as u64, Ordering::Relaxed);
    }
}

impl WriterMetrics {
    /// Records what one retention step deleted.
    pub fn pruned(&self, p: &super::store::Pruned) {
        for (n, v) in self.deleted.iter().zip([p.reports, p.buckets]) {
            n.fetch_add(v, Ordering::Relaxed);
        }
    }
}

/// The collector's request counters.
#[derive(Debug, Default)]
pub struct Metrics {
    stored: AtomicU64,
    repeats: AtomicU64,
    refused: Mutex<BTreeMap<(u16, &'static str), u64>>,
    deployment: Mutex<BTreeMap<(&'static str, u16, &'static str), u64>>,
}

impl Metrics {
    /// Counts a report answered 200 (`repeat`: it was already stored).
    pub fn accepted(&self, repeat: bool) {
        let n = if repeat { &self.repeats } else { &self.stored };
        n.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal.
    pub fn refused(&self, status: u16, reason: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((status, reason))
            .or_default() += 1;
    }

    /// Counts a request to `/api/v1/deployments/{uid}` (`reason`: `ok`, or the refusal's).
    pub fn deployment_request(&self, method: &'static str, status: u16, reason: &'static str) {
        *self
            .deployment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((method, status, reason))
            .or_default() += 1;
    }

    /// The text exposition, with the store writer's figures.
    pub fn render(&self, writer: &WriterMetrics) -> String {
        let mut out = String::new();
        let name = "ttn_lw_telemetry_collector_reports_accepted_total";
        prom::family(
            &mut out,
            name,
            "Reports answered 200 since start-up; repeat=\"true\": already stored, not stored again.",
            "counter",
        );
        for (repeat, n) in [("false", &self.stored), ("true", &self.repeats)] {
            let _ = writeln!(
                out,
                "{name}{{repeat=\"{repeat}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let name = "ttn_lw_telemetry_collector_reports_refused_total";
        prom::family(
            &mut out,
            name,
            "Reports refused since start-up, by HTTP status and reason.",
            "counter",
        );
        for ((status, reason), n) in self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "{name}{{status=\"{status}\",reason=\"{reason}\"}} {n}");
        }
        let name = "ttn_lw_telemetry_collector_deployment_requests_total";
        prom::family(
            &mut out,
            name,
            "Signed requests about one deployment since start-up, by method, HTTP status and reason.",
            "counter",
        );
        for ((method, status, reason), n) in self
            .deployment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "{name}{{method=\"{method}\",status=\"{status}\",reason=\"{reason}\"}} {n}"
            );
        }
        writer.batch_size.render(
            &mut out,
            "ttn_lw_telemetry_collector_batch_size",
            "Reports per group commit of the store.",
        );
        writer.commit_seconds.render(
            &mut out,
            "ttn_lw_telemetry_collector_commit_seconds",
            "Time to write and commit one batch, in seconds.",
        );
        prom::counter(
            &mut out,
            "ttn_lw_telemetry_collector_store_errors_total",
            "Reports the store failed to write since start-up (each answered 503).",
            writer.store_errors.load(Ordering::Relaxed),
        );
        let name = "ttn_lw_telemetry_collector_retention_deleted_total";
        prom::family(
            &mut out,
            name,
            "Rows deleted by retention since start-up, by table (the aggregates are kept).",
            "counter",
        );
        for (table, n) in ["reports", "uid_buckets"].iter().zip(&writer.deleted) {
            let _ = writeln!(
                out,
                "{name}{{table=\"{table}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out
    }
}
