//! The PostgreSQL store, for collectors that serve many deployments.
//!
//! Same tables and the same batching as the SQLite store. A batch is one transaction; the reply
//! (and so the HTTP 2xx) comes once its commit is on disk: the batch commits asynchronously, so
//! that the lock is free at once, and a synchronous commit on a second connection then flushes
//! the WAL past it (see `Flusher`). Each batch takes a transaction-level
//! advisory lock first, so several collectors may share one database without racing on the
//! uids' latest reports and the counters. Connections follow libpq's `sslmode` over rustls
//! ([`crate::pgconn`]); the URI may also be a `key=value` conninfo string.
//!
//! # Ingest speed
//! The writer is serial, so a batch's wall time bounds the ingest rate (about 64 reports a
//! batch at 64 connections). What it does about that, each measured with `./task bench floor`:
//! - It runs on its own thread and runtime with its connection's task, so a round trip waits
//!   for PostgreSQL only, not for a turn among the HTTP tasks (that wait was 0.4–0.5 ms per
//!   round trip under load).
//! - A batch takes 2 round trips: `BEGIN`, the lock and the reads are sent together, then the
//!   writes with `COMMIT` (see `write_batch`). Its statements are prepared once per
//!   connection, so a batch neither parses nor plans.
//! - The lock is not held while the WAL is flushed: a batch commits with
//!   `synchronous_commit = off` and is made durable, before it is answered, by a small
//!   synchronous commit on a connection of its own, while the writer goes on with the next
//!   batch (`Flusher`; 1.3x: the flush was a quarter of a batch's time).
//! - Counter updates are HOT updates: `counters` has no index but its key, and room on its
//!   pages; the spreads' entries, which need an index by value for the stats' top lists, are
//!   kept apart in `spreads` (see `COUNTERS`). With one table and that index, every update
//!   left a dead row and index entries behind (54,000 dead rows after 8 s).
//!
//! # Several collectors on one database
//! - **One writer at a time.** Every batch, retention step and migration takes the
//!   transaction-level advisory lock [`LOCK_KEY`] as its first statement, so what it reads
//!   (a uid's latest report, a counter, a bucket) is what the previous holder committed: the
//!   repeat check (same uid, body and UTC day) and the counter sums hold across collectors, and
//!   a report retried through another collector is answered `"repeat":true` and stored once.
//! - **The per-uid rate limit is shared.** Its buckets live in the table `uid_buckets`
//!   (`uid → tat`, the GCRA instant of [`super::super::ratelimit`], in Unix
//!   microseconds of the collectors' clocks), read and written in the batch's transaction: a
//!   uid gets one limit however many collectors it reaches. A report over it gets
//!   [`Outcome::RateLimited`] (HTTP 429) and nothing is written. A bucket whose instant has
//!   passed is full and carries no state; maintenance passes delete such rows. (Redis is not
//!   used for this: the lock the batch already holds makes the table exact for two statements
//!   per batch, and a collector needs no second service. Measured on loopback, 20,000 reports
//!   at concurrency 64 on a shared 2-core machine: 3,124–4,226 reports/s with the limit,
//!   3,405–3,680 without, within the noise; `collector-driver serve --no-addr-limit` against
//!   `--no-rate-limit`.)
//! - **Migrations run once.** Opening a store creates or migrates its schema in one
//!   transaction that takes the same lock first; a second collector starting at the same time
//!   waits, then finds the schema current. `collector_schema` keeps one row per migration
//!   applied (the version it reached), so an operator can see what ran.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, Statement};
use ttn_telemetry_core::{MICROS_PER_DAY, cutoffs, redact_uri};

use super::super::metrics::WriterMetrics;
use super::super::ratelimit::{self, RateLimit};
use super::super::stats::{DAYS, TOP};
use super::{
    Admin, AdminReply, DAY_FIELDS, Deltas, Forgotten, Held, Job, MICROS_PER_HOUR, Msg, NewReport,
    Newest, One, Outcome, Pin, Prev, PruneStep, Pruned, REBUILD_BELOW, Rebuild, SCHEMA_VERSION,
    SPREAD_SCOPES, SeenHours, Snapshot, StoredReport, answer, authorize, day_name, day_of, dedupe,
    enqueue, failed, forget_deltas, hour_name, hour_of, isolate, join_counter, merge_outcomes,
    pin_deltas, plan, prev_days, seen_hour_scope, split_counter, take_batch,
};

/// Whether the report `r` is its uid's latest: no report of the uid was received later (or at
/// the same time with a higher id). `reports` is the one uid-keyed structure (version 6), and
/// its index on `(uid, received_at, id)` answers this with one probe (PostgreSQL). The row
/// comparison is that index's own order, so the planner probes it even before `ANALYZE` has
/// seen the table; spelled out as `received_at >= … AND (received_at > … OR id > …)`, on a
/// freshly loaded million reports it chose a plan that took a second.
macro_rules! newest_of_its_uid {
    () => {
        "NOT EXISTS (SELECT 1 FROM reports n
             WHERE n.uid = r.uid AND (n.received_at, n.id) > (r.received_at, r.id))"
    };
}

/// Counts the deployments of kind `$1` whose latest report was received in `[$2, $3)` (the
/// partial-day windows of [`Snapshot::partial`]; SQLite counts them in its
/// [`super::uid_index`]).
const PARTIAL: &str = concat!(
    "SELECT count(*) FROM reports r WHERE r.kind = $1 AND r.received_at >= $2 AND r.received_at < $3 AND ",
    newest_of_its_uid!()
);

/// The next reports of a retention pass (received before `$1`, after `($2, $3)` in
/// `(received_at, id)` order, at most `$4`), each with whether it is still its uid's latest
/// (kept).
const PRUNE_NEXT: &str = concat!(
    "SELECT r.id, r.received_at, ",
    newest_of_its_uid!(),
    " FROM reports r WHERE r.received_at < $1 AND (r.received_at, r.id) > ($2, $3)
     ORDER BY r.received_at, r.id LIMIT $4"
);

/// Advisory lock key that serializes batches, retention steps and migrations of collectors
/// sharing a database ("ttnc").
pub const LOCK_KEY: i64 = 0x7474_6e63;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id BIGSERIAL PRIMARY KEY,
    received_at BIGINT NOT NULL,
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS collector_schema (version BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS reports_received ON reports (received_at, id);
CREATE TABLE IF NOT EXISTS uid_buckets (
    uid TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
";

/// The counters of schema version 2 (see the parent module). Names compare by bytes
/// (`COLLATE \"C\"`), as in SQLite and in the stats' own ordering, whatever the database's
/// locale. Since version 6 the spreads' entries ([`SPREAD_SCOPES`]) are kept apart, in
/// `spreads`, with the index that yields a spread's largest entries first; `counters` has its
/// primary key only and room on its pages, so that the updates of every batch (the totals,
/// sums and days) are HOT updates: no index entry and no dead row left per update (measured:
/// ingest 1.2 times faster than one table with the top index).
const COUNTERS: &str = "
DROP TABLE IF EXISTS counters;
CREATE TABLE counters (
    scope TEXT COLLATE \"C\" NOT NULL,
    name TEXT COLLATE \"C\" NOT NULL,
    hi BIGINT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
) WITH (fillfactor = 50);
DROP TABLE IF EXISTS spreads;
";

/// The spreads' table (see [`COUNTERS`]); run after it.
const SPREADS: &str = "
CREATE TABLE IF NOT EXISTS spreads (
    scope TEXT COLLATE \"C\" NOT NULL,
    name TEXT COLLATE \"C\" NOT NULL,
    hi BIGINT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE INDEX IF NOT EXISTS spreads_top ON spreads (scope, hi DESC, value DESC, name);
";

/// Version 6's move of the spreads' entries out of `counters` (see [`COUNTERS`]).
fn move_spreads() -> String {
    let spreads: Vec<String> = SPREAD_SCOPES.iter().map(|s| format!("'{s}'")).collect();
    let list = spreads.join(", ");
    format!(
        "{SPREADS}
         INSERT INTO spreads SELECT scope, name, hi, value FROM counters WHERE scope IN ({list});
         DELETE FROM counters WHERE scope IN ({list});
         DROP INDEX IF EXISTS counters_top;
         ALTER TABLE counters SET (fillfactor = 50);"
    )
}

/// How many deployments reported each of the top [`TOP`] + 1 frequency plans by gateways (the
/// store-neutral [`super::PLAN_DEPLOYMENTS_OF_TOP`], with the plans read from `spreads`).
const PLAN_DEPLOYMENTS_OF_TOP: &str = "SELECT scope, name, hi, value FROM counters
     WHERE scope = 'plan_deployments' AND name IN (
         SELECT name FROM spreads WHERE scope = 'plan' AND (hi > 0 OR value > 0)
         ORDER BY hi DESC, value DESC, name LIMIT $1)";

/// Schema version 4 (signed reports, see the parent module): the pins and the verified mark of
/// each report.
const PINS: &str = "
CREATE TABLE IF NOT EXISTS pins (
    uid TEXT PRIMARY KEY,
    keyid TEXT NOT NULL,
    kind TEXT NOT NULL,
    pinned_at BIGINT NOT NULL
);
ALTER TABLE reports ADD COLUMN IF NOT EXISTS signed_by TEXT;
";

/// Schema version 6 (see the parent module): `reports` is the one structure keyed by uid, its
/// index yields a uid's reports newest last; the tables it replaces go.
const BY_UID: &str = "
CREATE INDEX IF NOT EXISTS reports_uid_received ON reports (uid, received_at, id);
DROP INDEX IF EXISTS reports_uid;
DROP TABLE IF EXISTS latest;
DROP TABLE IF EXISTS day_latest;
";

/// An open PostgreSQL store. Clones share the writer and the read connection.
#[derive(Clone)]
pub struct PgStore {
    uri: String,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    read: Arc<Mutex<Client>>,
    pub(super) metrics: Arc<WriterMetrics>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("uri", &redact_uri(&self.uri))
            .finish_non_exhaustive()
    }
}

async fn connect(uri: &str) -> anyhow::Result<Client> {
    let target = crate::pgconn::PgTarget::parse(uri)
        .with_context(|| format!("reading the PostgreSQL uri {}", redact_uri(uri)))?;
    let (client, conn) = target
        .connect()
        .await
        .with_context(|| format!("connecting to PostgreSQL {}", redact_uri(uri)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("collect: PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

impl PgStore {
    /// Connects, creates or migrates the schema (once, however many collectors start
    /// together), and starts the writer task, which applies `per_uid` to every report (see the
    /// module docs).
    pub async fn open(uri: &str, per_uid: Option<RateLimit>) -> anyhow::Result<PgStore> {
        let mut schema = connect(uri).await?;
        migrate(&mut schema)
            .await
            .context("creating or migrating the collector schema")?;
        drop(schema);
        let read = connect(uri).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(WriterMetrics::default());
        // The writer runs on its own thread and runtime, with its connection's task: each of a
        // batch's round trips then waits for PostgreSQL only, not for a turn among the HTTP
        // tasks (measured: 0.5 ms per round trip under load, most of a batch's time).
        let (ready, started) = oneshot::channel();
        let (u, m) = (uri.to_owned(), metrics.clone());
        std::thread::Builder::new()
            .name("collect-pg-writer".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    match tokio::try_join!(connect(&u), Flusher::connect(&u)) {
                        Ok((client, flusher)) => {
                            let _ = ready.send(Ok(()));
                            writer(u, client, flusher, rx, m, per_uid).await;
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                });
            })
            .context("starting the PostgreSQL writer")?;
        started
            .await
            .context("the PostgreSQL writer stopped while starting")??;
        Ok(PgStore {
            uri: uri.to_owned(),
            tx,
            read: Arc::new(Mutex::new(read)),
            metrics,
        })
    }

    /// Queues `reports` for the next commit and waits for it.
    pub async fn insert(&self, reports: Vec<NewReport>) -> anyhow::Result<Vec<Outcome>> {
        enqueue(&self.tx, reports, "PostgreSQL").await
    }

    /// Reads the counters and the partial-day window counts in one snapshot.
    pub async fn snapshot(&self, now: i64) -> anyhow::Result<Snapshot> {
        let c = cutoffs(now)?;
        let mut client = self.read.lock().await;
        reconnect(&self.uri, &mut client).await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let mut snap = Snapshot::default();
        let mut push = |rows: Vec<tokio_postgres::Row>| {
            for r in rows {
                let v = join_counter(r.get(2), r.get(3));
                if v != 0 {
                    snap.counters.push((r.get(0), r.get(1), v));
                }
            }
        };
        // The fixed totals and each spread's sum.
        push(
            tx.query(
                "SELECT scope, name, hi, value FROM counters WHERE scope IN ('meta', 'latest', 'sum')",
                &[],
            )
            .await?,
        );
        // The largest entries of each spread, by the index.
        let q = tx
            .prepare(
                "SELECT scope, name, hi, value FROM spreads
                 WHERE scope = $1 AND (hi > 0 OR value > 0)
                 ORDER BY hi DESC, value DESC, name LIMIT $2",
            )
            .await?;
        for scope in SPREAD_SCOPES {
            push(tx.query(&q, &[&scope, &(TOP as i64 + 1)]).await?);
        }
        // How many deployments reported each of the top plans (k-anonymity).
        push(
            tx.query(PLAN_DEPLOYMENTS_OF_TOP, &[&(TOP as i64 + 1)])
                .await?,
        );
        // Seen days from the month cut-off's day on.
        let q = tx
            .prepare("SELECT scope, name, hi, value FROM counters WHERE scope = $1 AND name >= $2")
            .await?;
        for kind in ["is", "cli"] {
            let scope = format!("{kind}_seen_day");
            let from = day_name(day_of(c.last_month));
            push(tx.query(&q, &[&scope, &from]).await?);
        }
        // The daily rows of the latest DAYS days.
        push(
            tx.query(
                "SELECT scope, name, hi, value FROM counters
                 WHERE scope > 'day:' AND scope < 'day;' AND (hi <> 0 OR value <> 0)
                 ORDER BY scope DESC LIMIT $1",
                &[&((DAYS * DAY_FIELDS.len()) as i64)],
            )
            .await?,
        );
        // A cut-off's partial day: the latest reports in the rest of its hour, counted, then
        // the day's later hours from the `…_seen_hour` counters (see the module docs: a probe
        // per report of the whole day took 100 ms a window over a million reports).
        let exact = tx.prepare(PARTIAL).await?;
        let hours = tx
            .prepare("SELECT hi, value FROM counters WHERE scope = $1 AND name >= $2 AND name < $3")
            .await?;
        for kind in ["is", "cli"] {
            let scope = seen_hour_scope(kind);
            for cut in [c.last_day, c.last_week, c.last_month] {
                let hour_end = (hour_of(cut) + 1) * MICROS_PER_HOUR;
                let day_end = (day_of(cut) + 1) * MICROS_PER_DAY;
                let (first, last) = (hour_name(hour_of(hour_end)), hour_name(hour_of(day_end)));
                let exact_args: &[&(dyn ToSql + Sync)] = &[&kind, &cut, &hour_end];
                let hours_args: &[&(dyn ToSql + Sync)] = &[&scope, &first, &last];
                let (counted, later) = tokio::join!(
                    tx.query_one(&exact, exact_args),
                    tx.query(&hours, hours_args),
                );
                let later: i128 = later?
                    .iter()
                    .map(|r| join_counter(r.get(0), r.get(1)))
                    .sum();
                let n = i128::from(counted?.get::<_, i64>(0)) + later;
                let n = i64::try_from(n).context("a partial-day count out of range")?;
                snap.partial.insert((kind.to_owned(), cut), n);
            }
        }
        tx.commit().await?;
        Ok(snap)
    }

    /// Every stored report in commit order.
    pub async fn all_reports(&self) -> anyhow::Result<Vec<StoredReport>> {
        let mut client = self.read.lock().await;
        reconnect(&self.uri, &mut client).await?;
        let rows = client
            .query(
                "SELECT id, received_at, uid, kind, sha256, body, signed_by FROM reports ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(stored_report).collect())
    }

    /// A uid's pin and stored reports, if `keyid` is its pinned key (one read snapshot).
    pub async fn deployment(&self, uid: &str, keyid: &str) -> anyhow::Result<Held> {
        let mut client = self.read.lock().await;
        reconnect(&self.uri, &mut client).await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let Some(pin) = read_pin(&tx, uid).await? else {
            return Ok(Held::NotPinned);
        };
        if pin.keyid != keyid {
            return Ok(Held::WrongKey);
        }
        let rows = tx
            .query(
                "SELECT id, received_at, uid, kind, sha256, body, signed_by FROM reports
                 WHERE uid = $1 ORDER BY id",
                &[&uid],
            )
            .await?;
        tx.commit().await?;
        Ok(Held::Found(pin, rows.iter().map(stored_report).collect()))
    }

    /// Lets the writer commit what is queued, then stops it.
    pub async fn close(&self) {
        let (reply, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(reply)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// Gives back a live connection: `client` itself, or a new one when the server closed it
/// (a PostgreSQL restart must not leave the collector answering 503 for ever).
async fn reconnect(uri: &str, client: &mut Client) -> anyhow::Result<()> {
    if client.is_closed() {
        *client = connect(uri).await?;
    }
    Ok(())
}

fn stored_report(r: &tokio_postgres::Row) -> StoredReport {
    StoredReport {
        id: r.get(0),
        received_at: r.get(1),
        uid: r.get(2),
        kind: r.get(3),
        sha256: r.get(4),
        body: r.get(5),
        signed_by: r.get(6),
    }
}

async fn read_pin(tx: &tokio_postgres::Transaction<'_>, uid: &str) -> anyhow::Result<Option<Pin>> {
    Ok(tx
        .query_opt(
            "SELECT keyid, kind, pinned_at FROM pins WHERE uid = $1",
            &[&uid],
        )
        .await?
        .map(|r| Pin {
            keyid: r.get(0),
            kind: r.get(1),
            pinned_at: r.get(2),
        }))
}

/// Runs an [`Admin`] request in its own transaction, under the advisory lock.
async fn admin(client: &mut Client, op: &Admin) -> anyhow::Result<AdminReply> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({LOCK_KEY})"))
        .await?;
    let (uid, keyid) = op.who();
    let Some(pin) = read_pin(&tx, uid).await? else {
        return Ok(AdminReply::NotPinned);
    };
    if pin.keyid != keyid {
        return Ok(AdminReply::WrongKey);
    }
    let reply = match op {
        Admin::Rotate { new, at, .. } => {
            tx.execute(
                "UPDATE pins SET keyid = $2, pinned_at = $3 WHERE uid = $1",
                &[&uid, new, at],
            )
            .await?;
            AdminReply::Rotated
        }
        Admin::Forget { .. } => {
            let rows = tx
                .query(
                    "SELECT id, received_at, sha256, body FROM reports WHERE uid = $1 ORDER BY id",
                    &[&uid],
                )
                .await?;
            let mut newest = Newest::default();
            for r in &rows {
                newest.add(r.get(1), r.get(0), r.get(3));
            }
            let sha256: Vec<String> = rows.iter().map(|r| r.get(2)).collect();
            let deltas = forget_deltas(&newest, sha256.len() as u64, Some(&pin.kind));
            add_counters(&tx, &deltas).await?;
            for table in ["reports", "pins"] {
                tx.execute(&format!("DELETE FROM {table} WHERE uid = $1"), &[&uid])
                    .await?;
            }
            AdminReply::Forgotten(Forgotten {
                uid: uid.to_owned(),
                reports: sha256.len() as u64,
                sha256,
                latest: newest.latest.is_some(),
                days: newest.days.len() as u64,
                pin: pin.keyid,
            })
        }
    };
    tx.commit()
        .await
        .context("committing a request of a pinned key")?;
    Ok(reply)
}

/// Makes batches durable after their asynchronous commits, on a connection of its own, and
/// answers them then.
///
/// A batch commits with `synchronous_commit = off`, so its transaction (and the advisory lock
/// every batch of every collector takes) ends without waiting for the WAL to reach the disk,
/// and the writer goes on to the next batch while it is written. Before the batch's reports
/// are answered, a transaction with `synchronous_commit` on commits here: its commit record
/// follows the batch's in the WAL, which is written in order, so once it is on disk so is the
/// batch. A report is answered 2xx only once durable, as before. What PostgreSQL loses in a
/// crash is a tail of the WAL: never a batch without the ones before it, so the counters stay
/// consistent with the reports (a later batch that read an earlier one's rows is lost with it).
/// The flushes of consecutive batches go out in order on the one connection.
struct Flusher {
    uri: String,
    client: Arc<Client>,
    /// The batches being made durable, each answering its own jobs.
    pending: tokio::task::JoinSet<()>,
}

impl Flusher {
    async fn connect(uri: &str) -> anyhow::Result<Flusher> {
        Ok(Flusher {
            uri: uri.to_owned(),
            client: Arc::new(connect(uri).await?),
            pending: tokio::task::JoinSet::new(),
        })
    }

    /// Answers `jobs` with `results` once every commit sent before this call is durable; a
    /// batch whose durability cannot be confirmed is answered with that failure (its senders
    /// retry; a repeat of a stored report is then recognised).
    async fn answer(
        &mut self,
        jobs: Vec<Job>,
        results: Vec<One>,
        metrics: Arc<WriterMetrics>,
        started: Instant,
    ) {
        while self.pending.try_join_next().is_some() {}
        if self.client.is_closed() {
            match connect(&self.uri).await {
                Ok(c) => self.client = Arc::new(c),
                Err(e) => return fail_all(jobs, results, &metrics, started, &e),
            }
        }
        // The batch's `COMMIT` has returned: its commit record is in the WAL already, before
        // this transaction's.
        let client = self.client.clone();
        self.pending.spawn(async move {
            match client
                .batch_execute("BEGIN; SELECT txid_current(); COMMIT")
                .await
            {
                Ok(()) => {
                    metrics.record(jobs_len(&jobs), started.elapsed(), failed(&results));
                    answer(jobs, results);
                }
                Err(e) => fail_all(jobs, results, &metrics, started, &e.into()),
            }
        });
    }

    /// Waits until every batch handed over is answered.
    async fn drain(&mut self) {
        while self.pending.join_next().await.is_some() {}
    }
}

fn jobs_len(jobs: &[Job]) -> usize {
    jobs.iter().map(|(r, _)| r.len()).sum()
}

/// Answers every job of a batch whose durability could not be confirmed with that failure.
fn fail_all(
    jobs: Vec<Job>,
    results: Vec<One>,
    metrics: &WriterMetrics,
    started: Instant,
    e: &anyhow::Error,
) {
    let why = format!("confirming that the batch reached the disk: {e:#}");
    let results: Vec<One> = results.into_iter().map(|_| Err(why.clone())).collect();
    metrics.record(jobs_len(&jobs), started.elapsed(), results.len());
    answer(jobs, results);
}

async fn writer(
    uri: String,
    mut client: Client,
    mut flusher: Flusher,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    metrics: Arc<WriterMetrics>,
    per_uid: Option<RateLimit>,
) {
    let mut prepared = None;
    while let Some(first) = rx.recv().await {
        let (jobs, then) = take_batch(first, &mut rx);
        if !jobs.is_empty() {
            let batch: Vec<&NewReport> = jobs.iter().flat_map(|(r, _)| r.iter()).collect();
            let started = Instant::now();
            if client.is_closed() {
                // Statements belong to their connection.
                prepared = None;
            }
            let whole = match reconnect(&uri, &mut client).await {
                Ok(()) => write_batch(&mut client, &mut prepared, &batch, per_uid).await,
                Err(e) => Err(e),
            };
            // One report at a time when the batch failed, so that one that cannot be stored
            // fails alone (the closure form of `isolate` cannot await).
            let results = if whole.is_err() && batch.len() > 1 {
                let mut one = Vec::with_capacity(batch.len());
                for r in &batch {
                    one.push(
                        write_batch(&mut client, &mut prepared, &[r], per_uid)
                            .await
                            .map(|mut o| o.remove(0))
                            .or_else(|e| unstorable(&e).ok_or_else(|| format!("{e:#}"))),
                    );
                }
                one
            } else {
                isolate(&batch, whole, |_| {
                    unreachable!("a batch of one is not retried")
                })
            };
            drop(batch);
            flusher
                .answer(jobs, results, metrics.clone(), started)
                .await;
        }
        match then {
            Some(Msg::Close(reply)) => {
                flusher.drain().await;
                let _ = reply.send(());
                return;
            }
            Some(Msg::Prune(step, reply)) => {
                let done = match reconnect(&uri, &mut client).await {
                    Ok(()) => prune(&mut client, step).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(done.map_err(|e| format!("{e:#}")));
            }
            Some(Msg::Admin(op, reply)) => {
                let done = match reconnect(&uri, &mut client).await {
                    Ok(()) => admin(&mut client, &op).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(done.map_err(|e| format!("{e:#}")));
            }
            Some(Msg::Insert(..)) | None => {}
        }
    }
    flusher.drain().await;
}

/// One bounded step of retention (see [`super::Store::retain`]), in one transaction under the
/// lock, so that no batch of any collector sees half of it.
async fn prune(client: &mut Client, step: PruneStep) -> anyhow::Result<Pruned> {
    let mut out = Pruned::default();
    let limit = i64::try_from(step.limit)?;
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({LOCK_KEY})"))
        .await?;
    if step.after == (i64::MIN, i64::MIN) {
        // Once per pass: buckets that are full again.
        out.buckets = tx
            .execute("DELETE FROM uid_buckets WHERE tat <= $1", &[&step.now])
            .await?;
    }
    if let Some(before) = step.before {
        let rows = tx
            .query(PRUNE_NEXT, &[&before, &step.after.0, &step.after.1, &limit])
            .await?;
        let gone: Vec<i64> = rows
            .iter()
            .filter(|r| !r.get::<_, bool>(2))
            .map(|r| r.get(0))
            .collect();
        out.reports = tx
            .execute("DELETE FROM reports WHERE id = ANY($1)", &[&gone])
            .await?;
        if rows.len() == step.limit {
            out.next = Some(
                rows.last()
                    .map_or(step.after, |r| (r.get::<_, i64>(1), r.get::<_, i64>(0))),
            );
        }
    }
    tx.commit().await.context("committing a retention step")?;
    Ok(out)
}

/// A database error that is the report's fault (data exception or integrity violation, SQLSTATE
/// classes 22 and 23), as an outcome.
fn unstorable(e: &anyhow::Error) -> Option<Outcome> {
    let db = e.downcast_ref::<tokio_postgres::Error>()?.as_db_error()?;
    let class = db.code().code().get(..2)?;
    matches!(class, "22" | "23").then(|| Outcome::Unstorable(db.message().to_owned()))
}

/// Creates the schema of a new store, or brings an older one to [`SCHEMA_VERSION`], in one
/// transaction that holds the advisory lock: collectors that start together migrate it once.
async fn migrate(client: &mut Client) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({LOCK_KEY})"))
        .await?;
    tx.batch_execute(TABLES).await?;
    tx.batch_execute(PINS).await?;
    let version: Option<i64> = tx
        .query_one("SELECT max(version) FROM collector_schema", &[])
        .await?
        .get(0);
    let version = version.unwrap_or(1);
    if !super::needs_migration(version)? {
        return Ok(tx.commit().await?);
    }
    // Version 6: the uid index that replaces `latest` and `day_latest`, made before the
    // rebuild reads reports in uid order.
    tx.batch_execute(BY_UID).await?;
    if version < REBUILD_BELOW {
        rebuild_counters(&tx).await?;
    }
    tx.batch_execute(&move_spreads()).await?;
    // Version 7: the latest reports by hour (a rebuild counted them already).
    if (REBUILD_BELOW..7).contains(&version) {
        let mut hours = SeenHours::default();
        for_each_row(
            &tx,
            "SELECT DISTINCT ON (uid) received_at, body FROM reports
             ORDER BY uid, received_at DESC, id DESC",
            |r| hours.add(r.get(0), r.get(1)),
        )
        .await?;
        add_counters(&tx, &hours.into_deltas()).await?;
    }
    tx.execute(
        "INSERT INTO collector_schema (version) VALUES ($1)",
        &[&SCHEMA_VERSION],
    )
    .await?;
    tx.commit()
        .await
        .context("committing the schema migration")?;
    Ok(())
}

/// Creates the counters of schema version 3 and fills them from the stored rows.
async fn rebuild_counters(tx: &tokio_postgres::Transaction<'_>) -> anyhow::Result<()> {
    tx.batch_execute(COUNTERS).await?;
    tx.batch_execute(SPREADS).await?;
    let reports: i64 = tx
        .query_one("SELECT count(*) FROM reports", &[])
        .await?
        .get(0);
    let mut rebuild = Rebuild::new(reports);
    for r in tx.query("SELECT kind FROM pins", &[]).await? {
        rebuild.pin(r.get(0));
    }
    for_each_row(
        tx,
        "SELECT uid, received_at, id, body FROM reports ORDER BY uid, received_at, id",
        |r| rebuild.report(r.get(0), r.get(1), r.get(2), r.get(3)),
    )
    .await?;
    // Added to the new, empty table: the sums are the values.
    let mut deltas = rebuild.finish();
    while !deltas.is_empty() {
        let rest = match deltas.keys().nth(10_000).cloned() {
            Some(k) => deltas.split_off(&k),
            None => Deltas::new(),
        };
        add_counters(tx, &deltas).await?;
        deltas = rest;
    }
    Ok(())
}

/// Runs `f` on every row of `query`, read in pages of 5,000 through a portal: a large store
/// does not fit in memory at once.
async fn for_each_row(
    tx: &tokio_postgres::Transaction<'_>,
    query: &str,
    mut f: impl FnMut(&tokio_postgres::Row),
) -> anyhow::Result<()> {
    const PAGE: i32 = 5000;
    let portal = tx.bind(query, &[]).await?;
    loop {
        let rows = tx.query_portal(&portal, PAGE).await?;
        rows.iter().for_each(&mut f);
        if rows.len() < PAGE as usize {
            return Ok(());
        }
    }
}

/// Takes one token per report from the shared per-uid buckets (see the module docs): the
/// reports allowed, and for each report of `batch` the wait when it is over the limit.
async fn take_tokens<'a>(
    tx: &impl GenericClient,
    batch: &[&'a NewReport],
    limit: RateLimit,
) -> anyhow::Result<(Vec<&'a NewReport>, Vec<Option<std::time::Duration>>)> {
    let uids: Vec<&str> = batch.iter().map(|r| r.report.uid.as_str()).collect();
    let mut tat: HashMap<String, i64> = HashMap::new();
    for row in tx
        .query_typed(
            "SELECT uid, tat FROM uid_buckets WHERE uid = ANY($1)",
            &[(&uids, Type::TEXT_ARRAY)],
        )
        .await?
    {
        tat.insert(row.get(0), row.get(1));
    }
    let mut allowed = Vec::with_capacity(batch.len());
    let mut waits = Vec::with_capacity(batch.len());
    let mut changed: HashMap<&str, i64> = HashMap::new();
    for r in batch {
        let now = r.received_at;
        let uid = r.report.uid.as_str();
        let ahead = tat
            .get(uid)
            .map_or(0, |t| t.saturating_sub(now).max(0))
            .unsigned_abs();
        match ratelimit::step(limit, std::time::Duration::from_micros(ahead)) {
            Ok(next) => {
                let next = now.saturating_add(i64::try_from(next.as_micros()).unwrap_or(i64::MAX));
                tat.insert(uid.to_owned(), next);
                changed.insert(uid, next);
                allowed.push(*r);
                waits.push(None);
            }
            Err(wait) => waits.push(Some(wait)),
        }
    }
    let (u, t): (Vec<&str>, Vec<i64>) = changed.into_iter().unzip();
    tx.execute_typed(
        "INSERT INTO uid_buckets (uid, tat) SELECT * FROM UNNEST($1::text[], $2::bigint[])
         ON CONFLICT (uid) DO UPDATE SET tat = excluded.tat",
        &[(&u, Type::TEXT_ARRAY), (&t, Type::INT8_ARRAY)],
    )
    .await?;
    Ok((allowed, waits))
}

/// Adds `deltas` to the counters, exactly, in one statement (no read first): a delta is split
/// like a counter (`hi · 10^18 + value`, `0 ≤ value < 10^18`), so the two `value`s sum below
/// 2·10^18, which a BIGINT holds, and their carry goes to `hi`. The advisory lock makes this
/// transaction the only writer.
async fn add_counters(
    tx: &impl GenericClient,
    deltas: &Deltas,
) -> Result<(), tokio_postgres::Error> {
    add_counters_with(tx, None, deltas).await
}

/// [`add_counters`], with [`ADD_COUNTERS`] and [`ADD_SPREADS`] prepared on `tx`'s connection
/// when given. The two statements are sent together.
async fn add_counters_with(
    tx: &impl GenericClient,
    prepared: Option<(&Statement, &Statement)>,
    deltas: &Deltas,
) -> Result<(), tokio_postgres::Error> {
    let (spreads, counters): (Vec<_>, Vec<_>) = deltas
        .iter()
        .partition(|((scope, _), _)| SPREAD_SCOPES.contains(&scope.as_str()));
    let (to_counters, to_spreads) = match prepared {
        Some((c, s)) => (Some(c), Some(s)),
        None => (None, None),
    };
    let (c, s) = tokio::join!(
        add_rows(tx, to_counters, ADD_COUNTERS, &counters),
        add_rows(tx, to_spreads, ADD_SPREADS, &spreads),
    );
    c.and(s)
}

/// Adds `rows` with `sql` (one of [`ADD_COUNTERS`], [`ADD_SPREADS`]), or with its prepared
/// `statement`.
async fn add_rows(
    tx: &impl GenericClient,
    statement: Option<&Statement>,
    sql: &str,
    rows: &[(&(String, String), &i128)],
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (mut s, mut n, mut h, mut v) = (vec![], vec![], vec![], vec![]);
    for ((scope, name), delta) in rows {
        let (hi, lo) = split_counter(**delta);
        s.push(scope.as_str());
        n.push(name.as_str());
        h.push(hi);
        v.push(lo);
    }
    match statement {
        Some(st) => tx.execute(st, &[&s, &n, &h, &v]).await?,
        None => {
            tx.execute_typed(
                sql,
                &[
                    (&s, Type::TEXT_ARRAY),
                    (&n, Type::TEXT_ARRAY),
                    (&h, Type::INT8_ARRAY),
                    (&v, Type::INT8_ARRAY),
                ],
            )
            .await?
        }
    };
    Ok(())
}

/// Adds the `(scope, name, hi, value)` rows of `$1`..`$4` to a table of counters (see
/// [`add_counters`]).
macro_rules! add_to {
    ($table:literal) => {
        concat!(
            "INSERT INTO ",
            $table,
            " (scope, name, hi, value)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[])
             ON CONFLICT (scope, name) DO UPDATE SET
               hi = ",
            $table,
            ".hi + excluded.hi + (",
            $table,
            ".value + excluded.value) / 1000000000000000000,
               value = (",
            $table,
            ".value + excluded.value) % 1000000000000000000"
        )
    };
}

/// [`add_to`] `counters`.
const ADD_COUNTERS: &str = add_to!("counters");

/// [`add_to`] `spreads`.
const ADD_SPREADS: &str = add_to!("spreads");

/// Inserts the reports of a batch (`$1`..`$7`: ids, received times, uids, kinds, digests,
/// bodies, signers).
const INSERT_REPORTS: &str =
    "INSERT INTO reports (id, received_at, uid, kind, sha256, body, signed_by)
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                          $6::bytea[], $7::text[])";

/// A batch's statements, prepared once per connection: a batch then only binds and runs them
/// (no parsing or planning per batch).
struct Statements {
    pins: Statement,
    latest: Statement,
    ids: Statement,
    insert: Statement,
    counters: Statement,
    spreads: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        let counter_types = [
            Type::TEXT_ARRAY,
            Type::TEXT_ARRAY,
            Type::INT8_ARRAY,
            Type::INT8_ARRAY,
        ];
        let (pins, latest, ids, insert, counters, spreads) = tokio::join!(
            client.prepare_typed(
                "SELECT uid, keyid FROM pins WHERE uid = ANY($1)",
                &[Type::TEXT_ARRAY]
            ),
            client.prepare_typed(PREV_LATEST, &[Type::TEXT_ARRAY]),
            client.prepare_typed(
                "SELECT nextval('reports_id_seq') FROM generate_series(1, $1::int)",
                &[Type::INT4]
            ),
            client.prepare_typed(
                INSERT_REPORTS,
                &[
                    Type::INT8_ARRAY,
                    Type::INT8_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::BYTEA_ARRAY,
                    Type::TEXT_ARRAY
                ]
            ),
            client.prepare_typed(ADD_COUNTERS, &counter_types),
            client.prepare_typed(ADD_SPREADS, &counter_types),
        );
        Ok(Statements {
            pins: pins?,
            latest: latest?,
            ids: ids?,
            insert: insert?,
            counters: counters?,
            spreads: spreads?,
        })
    }
}

/// Reads the latest report of each of the uids `$1` for [`dedupe`] and [`plan`]: one probe of
/// the index on `(uid, received_at, id)` per uid.
const PREV_LATEST: &str = "SELECT l.uid, l.id, l.received_at, l.sha256, l.body
     FROM (SELECT DISTINCT u FROM UNNEST($1::text[]) AS u) k
     CROSS JOIN LATERAL (SELECT uid, id, received_at, sha256, body FROM reports r
         WHERE r.uid = k.u ORDER BY received_at DESC, id DESC LIMIT 1) l";

/// Reads, for each `(uid, from, to)` of `$1`, `$2`, `$3`, the uid's latest report received in
/// `[from, to)`: the previous report of a day that [`prev_days`] could not derive.
const PREV_OF_DAYS: &str = "SELECT k.day_from, l.uid, l.id, l.received_at, l.sha256, l.body
     FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS k(uid, day_from, day_to)
     CROSS JOIN LATERAL (SELECT uid, id, received_at, sha256, body FROM reports r
         WHERE r.uid = k.uid AND r.received_at >= k.day_from AND r.received_at < k.day_to
         ORDER BY received_at DESC, id DESC LIMIT 1) l";

/// One batch in one transaction. Statements that do not need each other's answers are sent
/// together (tokio-postgres pipelines them on the one connection, and the server runs them in
/// order): `BEGIN`, the lock and the reads; then the writes and `COMMIT`. A batch takes 2
/// round trips without the shared per-uid limit (the floor's bare insert takes 3): the writer
/// is serial, and its round trips bound the ingest rate (`./task bench floor`). When any
/// statement fails, the transaction is rolled back (a `COMMIT` sent after a failed statement
/// only ends the aborted transaction) and the batch fails.
async fn write_batch(
    client: &mut Client,
    prepared: &mut Option<Statements>,
    all: &[&NewReport],
    per_uid: Option<RateLimit>,
) -> anyhow::Result<Vec<Outcome>> {
    let st = match prepared {
        Some(st) => st,
        None => prepared.insert(
            Statements::prepare(client)
                .await
                .context("preparing the batch statements")?,
        ),
    };
    let done = batch_in_transaction(client, st, all, per_uid).await;
    if done.is_err()
        && !client.is_closed()
        // Ends the transaction if it is still open; outside one, PostgreSQL only warns.
        && let Err(e) = client.batch_execute("ROLLBACK").await
    {
        eprintln!("collect: rolling back a failed batch failed too: {e}");
    }
    done
}

async fn batch_in_transaction(
    tx: &Client,
    st: &Statements,
    all: &[&NewReport],
    per_uid: Option<RateLimit>,
) -> anyhow::Result<Vec<Outcome>> {
    // The commit does not wait for its WAL to reach the disk: the lock is released at once, and
    // the writer makes the batch durable on its flush connection before it answers (see
    // [`Flusher`]).
    let begin = format!(
        "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock({LOCK_KEY})"
    );
    let uids: Vec<&str> = all.iter().map(|r| r.report.uid.as_str()).collect();
    // Row ids for every report of the batch (sequences allow gaps: those not stored are
    // skipped), and the pins and latest rows of every uid: the lock comes first in the
    // pipeline, so all of it is read under the lock.
    let n = i32::try_from(all.len())?;
    let by_uid: &[&(dyn ToSql + Sync)] = &[&uids];
    let count: &[&(dyn ToSql + Sync)] = &[&n];
    let (locked, pin_rows, latest_rows, id_rows) = tokio::join!(
        tx.batch_execute(&begin),
        tx.query(&st.pins, by_uid),
        tx.query(&st.latest, by_uid),
        tx.query(&st.ids, count),
    );
    // Errors in the order the queries were sent: a query after a failed one fails only
    // because the transaction is aborted (25P02), which would hide the cause.
    locked?;
    let (pin_rows, latest_rows, id_rows) = (pin_rows?, latest_rows?, id_rows?);
    // Which reports their uid's pin admits, and the pins this batch makes. Before the rate
    // limit, so that a spoofed report never spends the tokens of the uid it names.
    let pins: HashMap<String, String> = pin_rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let (verdicts, new_pins) = authorize(all, &pins);
    if !new_pins.is_empty() {
        let (mut u, mut k, mut kd, mut at) = (vec![], vec![], vec![], vec![]);
        for (uid, keyid, kind, pinned_at) in &new_pins {
            u.push(uid.as_str());
            k.push(keyid.as_str());
            kd.push(*kind);
            at.push(*pinned_at);
        }
        tx.execute_typed(
            "INSERT INTO pins (uid, keyid, kind, pinned_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])",
            &[
                (&u, Type::TEXT_ARRAY),
                (&k, Type::TEXT_ARRAY),
                (&kd, Type::TEXT_ARRAY),
                (&at, Type::INT8_ARRAY),
            ],
        )
        .await?;
    }
    let admitted: Vec<&NewReport> = all
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.is_none())
        .map(|(r, _)| *r)
        .collect();
    let (allowed, waits) = match per_uid {
        Some(limit) => take_tokens(tx, &admitted, limit).await?,
        None => (admitted.clone(), vec![None; admitted.len()]),
    };
    let prev_latest: HashMap<String, Prev> = latest_rows
        .iter()
        .map(|row| {
            let body: &[u8] = row.get(4);
            (
                row.get(0),
                Prev::from_row(row.get(1), row.get(2), row.get(3), body),
            )
        })
        .collect();
    let mut ids: Vec<i64> = id_rows.iter().map(|r| r.get(0)).collect();
    ids.sort_unstable();
    // The pins' counters are added with the batch's other counters (one write of counters
    // per batch).
    let mut stored = store_and_commit(tx, st, &allowed, prev_latest, &ids, pin_deltas(&new_pins))
        .await?
        .into_iter();
    let limited = waits
        .into_iter()
        .map(|w| match w {
            Some(wait) => Outcome::RateLimited(wait),
            None => stored.next().unwrap_or(Outcome::Stored),
        })
        .collect();
    Ok(merge_outcomes(verdicts, limited))
}

/// Stores the reports of a batch that are not repeats, in the caller's transaction (which
/// holds the lock), adds their counters and `pinned` (the counters of the batch's new pins),
/// commits, and returns each one's outcome. `prev_latest` holds the latest reports of (at
/// least) the batch's uids, `ids` (ascending) at least one free row id per report.
async fn store_and_commit(
    tx: &Client,
    st: &Statements,
    batch: &[&NewReport],
    prev_latest: HashMap<String, Prev>,
    ids: &[i64],
    pinned: Deltas,
) -> anyhow::Result<Vec<Outcome>> {
    let (outcomes, fresh) = dedupe(batch, &prev_latest);
    let fresh: Vec<&NewReport> = fresh.into_iter().map(|i| batch[i]).collect();
    if fresh.is_empty() {
        let (added, committed) = tokio::join!(
            add_counters_with(tx, Some((&st.counters, &st.spreads)), &pinned),
            tx.batch_execute("COMMIT")
        );
        added?;
        committed.context("committing a batch of reports")?;
        return Ok(outcomes);
    }
    // Read before the batch's own rows are inserted; needed only for reports received out of
    // order across midnight, so usually no round trip.
    let (mut prev_day, missing) = prev_days(&fresh, &prev_latest);
    if !missing.is_empty() {
        let uids: Vec<&str> = missing.iter().map(|(_, u)| u.as_str()).collect();
        let from: Vec<i64> = missing.iter().map(|(d, _)| d * MICROS_PER_DAY).collect();
        let to: Vec<i64> = from.iter().map(|f| f + MICROS_PER_DAY).collect();
        let keys: &[(&(dyn ToSql + Sync), Type)] = &[
            (&uids, Type::TEXT_ARRAY),
            (&from, Type::INT8_ARRAY),
            (&to, Type::INT8_ARRAY),
        ];
        for row in tx.query_typed(PREV_OF_DAYS, keys).await? {
            let body: &[u8] = row.get(5);
            prev_day.insert(
                (day_of(row.get(0)), row.get(1)),
                Prev::from_row(row.get(2), row.get(3), row.get(4), body),
            );
        }
    }
    let ids = &ids[..fresh.len()];
    let with_ids: Vec<(i64, &NewReport)> = ids.iter().copied().zip(fresh.iter().copied()).collect();
    let mut counters = plan(&with_ids, prev_latest, prev_day);
    for (k, v) in pinned {
        *counters.entry(k).or_default() += v;
    }
    let received: Vec<i64> = fresh.iter().map(|r| r.received_at).collect();
    let uids: Vec<&str> = fresh.iter().map(|r| r.report.uid.as_str()).collect();
    let kinds: Vec<&str> = fresh.iter().map(|r| r.kind()).collect();
    let digests: Vec<&str> = fresh.iter().map(|r| r.sha256.as_str()).collect();
    let bodies: Vec<&[u8]> = fresh.iter().map(|r| r.body.as_slice()).collect();
    let signers: Vec<Option<&str>> = fresh.iter().map(|r| r.signed_by.as_deref()).collect();
    let rows: &[&(dyn ToSql + Sync)] =
        &[&ids, &received, &uids, &kinds, &digests, &bodies, &signers];
    let (inserted, added, committed) = tokio::join!(
        tx.execute(&st.insert, rows),
        add_counters_with(tx, Some((&st.counters, &st.spreads)), &counters),
        tx.batch_execute("COMMIT"),
    );
    // Errors in the order the statements were sent (see `batch_in_transaction`).
    inserted?;
    added?;
    committed.context("committing a batch of reports")?;
    Ok(outcomes)
}
