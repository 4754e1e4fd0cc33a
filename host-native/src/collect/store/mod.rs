//! Where accepted reports are kept: embedded SQLite (the default) or PostgreSQL.
//!
//! Both stores keep the same three tables:
//!
//! - `reports`: every accepted report, with its received time (Unix microseconds), uid, kind
//!   (`is` or `cli`), SHA-256 (hex) and the raw body exactly as received. Append-only. Its index
//!   by uid is the one structure keyed by uid: a deployment's latest report, and its latest of a
//!   day, are read from it (see [`Newest`] and [`prev_days`]). PostgreSQL keeps it as the index
//!   `reports (uid, received_at, id)`; SQLite in memory ([`uid_index`]), built from the table
//!   when the store opens.
//! - `pins`: the key pinned for each signed uid (version 4, below).
//! - `counters`: `(scope, name) → hi·10^18 + value` exact sums that the aggregates read, updated
//!   in the same transaction as the reports they come from (see [`plan`]). PostgreSQL keeps the
//!   spreads' entries in a table of their own, `spreads` (see [`postgres`]).
//!
//! Writes go through one writer per store that takes every request waiting in its queue, commits
//! them in one transaction, and only then answers each request (group commit). An HTTP 2xx is
//! sent after that answer, so nothing acknowledged can be lost by a crash, and the cost of a
//! durable commit is shared by everything that arrived while the previous one was running.
//!
//! # Decisions where SPEC is silent
//! - **One report never fails another.** When a batch's transaction fails, the writer stores its
//!   reports again one per transaction, so a row the database refuses fails alone: a data or
//!   constraint error is the report's fault ([`Outcome::Unstorable`], HTTP 422, not retried);
//!   anything else is the store's (HTTP 503, retried later). The core already refuses what no
//!   store can keep (NUL in a string), so this is the safety net, not the rule.
//! - **Totals are exact.** Counters are 128-bit sums kept as two 64-bit columns (`hi` counts
//!   10^18s, `value` is the rest, `0 ≤ value < 10^18`), added in the writer, which is the only
//!   one that writes (one thread for SQLite; an advisory lock across collectors for
//!   PostgreSQL). Every count is a u64 and there are fewer than 2^63 reports, so no sum can
//!   overflow: a report of `u64::MAX` gateways counts as exactly that.
//! - **Repeats are stored once.** A report whose body has the same SHA-256 as the latest stored
//!   report of its uid, received on the same UTC day, is a repeat: it is answered with the same
//!   receipt, marked `"repeat":true`, and nothing is written. That is what an agent does after a
//!   lost answer (a timeout, or a collector killed between commit and answer). The day bound is
//!   deliberate: a deployment whose counts do not change sends the same bytes every day, and
//!   each day's report must count for that day. A body identical to an *older* report (counts
//!   went A → B → A) is new, since it changes the latest counts.
//! - **Bounded stats reads.** A stats read reads the fixed totals, the top [`stats::TOP`] + 1
//!   rows of each spread by an index (with a per-spread sum row for `other`), the seen-day rows
//!   of the last month and the daily rows of the last [`stats::DAYS`] days: its work does not
//!   grow with how many distinct names (frequency plans, versions) reporters sent.
//! - **Schema versions, migrated on open.** Version 2 rebuilt `counters` in the new
//!   layout from `latest` and `day_latest`, which the old layout could not be converted from
//!   exactly (an overflowed SQLite counter had already turned into a float). The rebuild
//!   runs once, in one transaction, when a store of version 1 (no version mark) is opened; the
//!   `reports`, `latest` and `day_latest` rows are kept as they are. A stored report that the
//!   current core refuses (an upper-case CLI uid, a NUL, accepted by older collectors) stays
//!   stored byte for byte but counts in no aggregate. SQLite keeps the version in
//!   `PRAGMA user_version`; PostgreSQL in the table `collector_schema`. Version 3 added the
//!   count of deployments per frequency-plan id (scope `plan_deployments`, for k-anonymity);
//!   a store of version 1 or 2 gets its counters rebuilt the same way. Version 4 added signed
//!   reports (issue 14 §2, `docs/signing.md`): the table `pins` (uid → the Ed25519 key id first
//!   seen signing for it, its kind and when it was pinned), the column `reports.signed_by` (the
//!   key id that signed a report, `NULL` for an unsigned one: the verified mark) and the counters
//!   `latest`/`verified_deployments` and `latest`/`verified_cli_installations` (uids with a
//!   pin). Its rebuild counts the pins too. Version 5 added the index `reports_received`
//!   (retention) and, on PostgreSQL, the table `uid_buckets` (the per-uid rate limit shared by
//!   collectors, see [`postgres`]); it rebuilds nothing, but building the index reads every
//!   stored report once, holding the writer for that time on a large store (in proportion to
//!   the reports stored), once. Version 6 made `reports` the one structure keyed by uid: the
//!   index `reports (uid, received_at)` replaced the tables `latest` and `day_latest` and the
//!   index `reports (uid)`, which the migration drops (their rows are what the index yields, so
//!   nothing is rebuilt; the rebuild of older versions reads the reports themselves). On
//!   PostgreSQL it also moved the spreads' counters to `spreads`. Version 7 added the counters
//!   `is_seen_hour` and `cli_seen_hour` (deployments by the UTC hour of their latest report,
//!   beside `…_seen_day`), filled from each uid's latest report: PostgreSQL counts a cut-off's
//!   partial day from them and an exact count over the rest of the cut-off's hour, instead of
//!   a probe of the uid index per report of that day (over a million reports the stats took
//!   545 ms with six of those, against the 200 ms target of `./task bench collect`). Migrations
//!   are steps, applied in order.
//! - **Pins are decided in the writer.** A report's signature is checked before it is queued;
//!   whether its key may speak for its uid is decided in the batch's transaction ([`authorize`]):
//!   the first signed report of a uid pins its key (trust on first use), and from then on a
//!   report of that uid that is unsigned or signed by another key is refused
//!   ([`Outcome::KeyRefused`], HTTP 401) and nothing of it is written. Since the pin is written
//!   in the same transaction as the report (under the advisory lock on PostgreSQL), two replicas
//!   cannot pin two keys for one uid.
//! - **Forget is exact.** [`Admin::Forget`] deletes a uid's reports and pin, and subtracts what
//!   its latest report and its latest report of each day added to every counter, computed by
//!   the same functions that added them: the aggregates are then those of a store that never
//!   saw the uid (within retention, see below).
//! - **Retention keeps the aggregates** ([`Store::retain`], `collector.retention`, off by
//!   default). It deletes the raw reports received before the start of the UTC day of
//!   `now − retention`, except each deployment's latest report (the next report's deltas are
//!   computed from its body). Whole days, so that each day keeps either all its reports (a
//!   later report of the same day subtracts its day's latest) or only latest ones. The counters
//!   are kept, so every aggregate, the daily series and `reports_stored` (every report ever
//!   stored, not the rows left) are unchanged. A rebuild of the counters from the rows (the
//!   migration from version 1 or 2) would no longer see the deleted reports; stores that old
//!   never ran retention. A deployment's contributions to the days before the cut-off can no
//!   longer be attributed to it once those days' reports are gone: a forget can then only take
//!   back its latest counts (and their day), its pin and the days still kept; the older daily
//!   aggregates stay as they are, anonymous sums.
//! - **What a report costs.** Each stored report writes its row, an entry at the end of the
//!   index by received time, and one entry at a random place of the index by uid, besides the
//!   batch's counter updates (on SQLite the index by uid costs no page: it is in memory).
//!   Until version 5 each report wrote three uid-keyed B-trees (`latest`, `day_latest`,
//!   `reports (uid)`), each a page at a random place, written whole to SQLite's WAL and again
//!   by its checkpoint: that was most of what kept ingest at a fifth of a bare append
//!   (`./task bench floor`, figures in `scripts/bench.d/61-floor.sh`).
//!
//! [`stats::TOP`]: super::stats::TOP
//! [`stats::DAYS`]: super::stats::DAYS

pub mod postgres;
pub mod sqlite;
pub mod uid_index;

use std::collections::{BTreeMap, HashMap};

use anyhow::bail;
use ttn_telemetry_core::{MICROS_PER_DAY, Payload, Report, parse_report, sha256_hex};

use tokio::sync::{mpsc, oneshot};

use super::metrics::WriterMetrics;
use super::ratelimit::RateLimit;
use super::stats::Stats;

/// File name of the embedded store when `collector.database-uri` is empty (in the working
/// directory).
pub const DEFAULT_SQLITE_FILE: &str = "ttn-lw-telemetry-collector.sqlite3";

/// The schema version this collector writes (see the module docs).
pub const SCHEMA_VERSION: i64 = 7;

/// Stores below this version get their counters rebuilt when migrated (see the module docs).
const REBUILD_BELOW: i64 = 3;

/// Whether a store at schema `version` needs migrating to [`SCHEMA_VERSION`]; a store newer
/// than this collector is an error, never touched.
fn needs_migration(version: i64) -> anyhow::Result<bool> {
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "the store has schema version {version}, newer than this collector's ({SCHEMA_VERSION}): \
             run a newer ttn-lw-telemetry"
        );
    }
    Ok(version < SCHEMA_VERSION)
}

/// A counter is stored as `hi · COUNTER_BASE + value` with `0 ≤ value < COUNTER_BASE`.
pub const COUNTER_BASE: i128 = 1_000_000_000_000_000_000;

/// Splits an exact counter into its `(hi, value)` columns; their order is the counter's order.
pub fn split_counter(v: i128) -> (i64, i64) {
    // |v| < 2^127 / 10^18 · … : every real sum is far below; saturate rather than wrap if not.
    let hi = v.div_euclid(COUNTER_BASE);
    let lo = v.rem_euclid(COUNTER_BASE);
    (
        i64::try_from(hi).unwrap_or(if hi < 0 { i64::MIN } else { i64::MAX }),
        lo as i64,
    )
}

/// Joins the `(hi, value)` columns of a counter.
pub fn join_counter(hi: i64, value: i64) -> i128 {
    i128::from(hi) * COUNTER_BASE + i128::from(value)
}

/// The scopes whose names come from reports (and so can be many): the stats read their top
/// entries only, and the scope `sum` holds each one's total under the scope's name.
pub const SPREAD_SCOPES: [&str; 7] = [
    "plan",
    "is_version",
    "is_os",
    "is_arch",
    "cli_version",
    "cli_os",
    "cli_arch",
];

/// Reads the deployment count (scope `plan_deployments`) of each of the top [`stats::TOP`] + 1
/// frequency plans by gateways, for k-anonymity: one query (SQLite; PostgreSQL reads the plans
/// from its table `spreads`)
/// (`$1` is the limit).
///
/// [`stats::TOP`]: super::stats::TOP
pub const PLAN_DEPLOYMENTS_OF_TOP: &str = "SELECT scope, name, hi, value FROM counters
     WHERE scope = 'plan_deployments' AND name IN (
         SELECT name FROM counters WHERE scope = 'plan' AND (hi > 0 OR value > 0)
         ORDER BY hi DESC, value DESC, name LIMIT $1)";

/// The names of each day's counters (scope [`day_scope`]); a day has at most this many rows.
pub const DAY_FIELDS: [&str; 10] = [
    "deployments",
    "cli_installations",
    "gateways",
    "end_devices",
    "active_last_day",
    "active_last_week",
    "active_last_month",
    "applications",
    "users",
    "organizations",
];

/// What became of one report handed to [`Store::insert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now.
    Stored,
    /// The same bytes from the same uid were already stored that UTC day: nothing was written.
    Repeat,
    /// The database refused this report's data (the report's fault: sending it again cannot
    /// help). The message is the database's, for the log.
    Unstorable(String),
    /// Its uid is over the per-uid rate limit the store keeps across collectors (PostgreSQL):
    /// nothing was written; retry after this long.
    RateLimited(std::time::Duration),
    /// The uid has a pinned key, and this report is unsigned or signed by another key: nothing
    /// was written (HTTP 401). The message says which.
    KeyRefused(&'static str),
}

/// A report that passed validation, with the time it was received.
#[derive(Debug, Clone)]
pub struct NewReport {
    /// Received time, Unix microseconds (UTC).
    pub received_at: i64,
    /// The body exactly as received.
    pub body: Vec<u8>,
    /// The body, parsed by the core.
    pub report: Report,
    /// SHA-256 of the body, hex: stored with it and returned in the receipt.
    pub sha256: String,
    /// The key id whose signature of this delivery checked out, or `None` when unsigned.
    pub signed_by: Option<String>,
}

impl NewReport {
    /// This report, signed by `keyid` (its signature already checked).
    pub fn signed_by(mut self, keyid: impl Into<String>) -> Self {
        self.signed_by = Some(keyid.into());
        self
    }

    /// Parses and validates `body` with the core; the error is the core's.
    pub fn parse(received_at: i64, body: Vec<u8>) -> Result<Self, ttn_telemetry_core::ReportError> {
        let report = parse_report(&body)?;
        Ok(NewReport {
            received_at,
            sha256: sha256_hex(&body),
            body,
            report,
            signed_by: None,
        })
    }

    fn kind(&self) -> &'static str {
        kind_of(&self.report)
    }
}

/// One stored report, as read back (tests, audits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// Row id, in commit order.
    pub id: i64,
    /// Received time, Unix microseconds.
    pub received_at: i64,
    /// The report's uid.
    pub uid: String,
    /// `is` or `cli`.
    pub kind: String,
    /// SHA-256 of `body`, hex.
    pub sha256: String,
    /// The body exactly as received.
    pub body: Vec<u8>,
    /// The key id that signed it, `None` when it came unsigned (see [`NewReport::signed_by`]).
    pub signed_by: Option<String>,
}

/// `is` for an Identity Server report, `cli` for a CLI report.
pub fn kind_of(report: &Report) -> &'static str {
    match report.payload {
        Payload::Entities(_) => "is",
        Payload::Cli(_) | Payload::CliWithoutUsage => "cli",
    }
}

/// The UTC day number (days since 1970-01-01) of a Unix-microsecond time.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_DAY)
}

/// Microseconds in an hour.
pub const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// The hour number (hours since 1970-01-01 00:00 UTC) of a Unix-microsecond time.
pub fn hour_of(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_HOUR)
}

/// The counter name of an hour (zero-padded, so that names sort as hours do).
pub fn hour_name(hour: i64) -> String {
    format!("{hour:09}")
}

/// The `…_seen_hour` counters of version 7 (see the module docs), summed from the uids' latest
/// reports as a migration reads them. Like every aggregate, a body the core refuses (stored by
/// an older collector) counts nowhere: [`plan`] would never take it away again.
#[derive(Debug, Default)]
pub struct SeenHours(Acc);

impl SeenHours {
    /// Counts a uid's latest report, received at `received_at`.
    pub fn add(&mut self, received_at: i64, body: &[u8]) {
        if let Ok(r) = parse_report(body) {
            let scope = seen_hour_scope(kind_of(&r));
            bump(&mut self.0, &scope, &hour_name(hour_of(received_at)), 1);
        }
    }

    /// The counters, as deltas to add.
    pub fn into_deltas(self) -> Deltas {
        self.0.into_deltas()
    }
}

/// `is_seen_hour` or `cli_seen_hour`.
pub fn seen_hour_scope(kind: &str) -> String {
    format!("{kind}_seen_hour")
}

/// An open store.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite file.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL database.
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (and creates the schema of) the store a `collector.database-uri` names: `None` is the
    /// embedded SQLite file [`DEFAULT_SQLITE_FILE`] in the working directory, `sqlite:PATH`
    /// another SQLite file, `postgres://…` or `postgresql://…` a PostgreSQL database.
    pub async fn open(uri: Option<&str>) -> anyhow::Result<Store> {
        Store::open_with(uri, None).await
    }

    /// [`Store::open`] with a per-uid rate limit that the store keeps itself, across every
    /// collector that shares it: PostgreSQL does (in the table `uid_buckets`, see
    /// [`postgres`]); SQLite serves one process and ignores it (the collector keeps the limit in
    /// memory, see [`Store::shares_uid_limit`]).
    pub async fn open_with(uri: Option<&str>, per_uid: Option<RateLimit>) -> anyhow::Result<Store> {
        match uri {
            None => Ok(Store::Sqlite(
                sqlite::SqliteStore::open(DEFAULT_SQLITE_FILE.as_ref()).await?,
            )),
            Some(u)
                if ttn_telemetry_core::is_postgres_uri(u)
                    || (u.contains('=') && !u.starts_with("sqlite:")) =>
            {
                Ok(Store::Postgres(postgres::PgStore::open(u, per_uid).await?))
            }
            Some(u) if u.starts_with("sqlite:") => {
                let path = u["sqlite:".len()..].trim_start_matches("//");
                if path.is_empty() {
                    bail!("database URI `sqlite:` names no file");
                }
                Ok(Store::Sqlite(
                    sqlite::SqliteStore::open(path.as_ref()).await?,
                ))
            }
            Some(u) => bail!(
                "unsupported database URI `{}`: use sqlite:PATH, postgres://… or postgresql://…",
                ttn_telemetry_core::redact_uri(u)
            ),
        }
    }

    /// Stores `reports` (in one transaction when it can) and returns after the commit, with what
    /// became of each report, in order. An error means the store failed: nothing of it may be
    /// assumed stored, and sending again later is right.
    pub async fn insert(&self, reports: Vec<NewReport>) -> anyhow::Result<Vec<Outcome>> {
        match self {
            Store::Sqlite(s) => s.insert(reports).await,
            Store::Postgres(s) => s.insert(reports).await,
        }
    }

    /// The aggregates at time `now` (Unix microseconds), every value seen from fewer than `k`
    /// uids folded into `other` (see [`Stats`]).
    pub async fn stats(&self, now: i64, k: u64) -> anyhow::Result<Stats> {
        Stats::from_snapshot(now, self.snapshot(now).await?, k)
    }

    /// What the aggregates at `now` are computed from: a bounded read (see the module docs).
    pub async fn snapshot(&self, now: i64) -> anyhow::Result<Snapshot> {
        match self {
            Store::Sqlite(s) => s.snapshot(now).await,
            Store::Postgres(s) => s.snapshot(now).await,
        }
    }

    /// Every stored report, in commit order. For tests and audits of small stores.
    pub async fn all_reports(&self) -> anyhow::Result<Vec<StoredReport>> {
        match self {
            Store::Sqlite(s) => s.all_reports().await,
            Store::Postgres(s) => s.all_reports().await,
        }
    }

    /// Every stored report of `uid` and its pin, if `keyid` is the key pinned for it (issue 14
    /// §3, `GET /api/v1/deployments/{uid}`); the check and the read are one read transaction.
    pub async fn deployment(&self, uid: &str, keyid: &str) -> anyhow::Result<Held> {
        match self {
            Store::Sqlite(s) => s.deployment(uid, keyid).await,
            Store::Postgres(s) => s.deployment(uid, keyid).await,
        }
    }

    /// Runs `op` in the writer, in its own transaction between two batches, if `keyid` is the
    /// key pinned for the uid.
    pub async fn admin(&self, op: Admin) -> anyhow::Result<AdminReply> {
        let (reply, wait) = oneshot::channel();
        let tx = match self {
            Store::Sqlite(s) => &s.tx,
            Store::Postgres(s) => &s.tx,
        };
        let stopped = || anyhow::anyhow!("the store's writer has stopped");
        tx.send(Msg::Admin(op, reply)).map_err(|_| stopped())?;
        wait.await
            .map_err(|_| stopped())?
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// What its writer records about group commits (batch sizes, commit time, failures).
    pub fn writer_metrics(&self) -> &WriterMetrics {
        match self {
            Store::Sqlite(s) => &s.metrics,
            Store::Postgres(s) => &s.metrics,
        }
    }

    /// Whether the store applies the per-uid rate limit it was opened with itself, the same for
    /// every collector sharing it (PostgreSQL); else the collector keeps it in memory.
    pub fn shares_uid_limit(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Retention at time `now`: deletes the raw reports received before [`retention_cutoff`]
    /// except those still the latest of their deployment; the counters stay, so every aggregate
    /// is unchanged. Also forgets the per-uid
    /// buckets that are full again (PostgreSQL). Runs as bounded steps of at most
    /// [`PRUNE_BATCH`] rows, each its own short transaction through the writer, so ingest waits
    /// for one step at most. `None`: keep every report (only the buckets are pruned).
    pub async fn retain(
        &self,
        now: i64,
        retention: Option<std::time::Duration>,
    ) -> anyhow::Result<Pruned> {
        let tx = match self {
            Store::Sqlite(s) => &s.tx,
            Store::Postgres(s) => &s.tx,
        };
        let mut step = PruneStep {
            now,
            before: retention.map(|r| retention_cutoff(now, r)),
            after: (i64::MIN, i64::MIN),
            limit: PRUNE_BATCH,
        };
        let mut total = Pruned::default();
        loop {
            let (reply, wait) = oneshot::channel();
            let stopped = || anyhow::anyhow!("the store writer has stopped");
            tx.send(Msg::Prune(step, reply)).map_err(|_| stopped())?;
            let done = wait
                .await
                .map_err(|_| stopped())?
                .map_err(|e| anyhow::anyhow!("retention: {e}"))?;
            total.reports += done.reports;
            total.buckets += done.buckets;
            self.writer_metrics().pruned(&done);
            match done.next {
                Some(after) => step.after = after,
                None => break,
            }
        }
        Ok(total)
    }

    /// Stops the writer after it committed everything already queued.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// Most rows one retention step deletes from each table (see [`Store::retain`]).
pub const PRUNE_BATCH: usize = 1000;

/// Where retention cuts at `now`: the start of the UTC day of `now − retention`. Whole days
/// only, so that each day keeps all its reports or only the deployments' latest ones (see the
/// module docs).
pub fn retention_cutoff(now: i64, retention: std::time::Duration) -> i64 {
    let r = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
    day_of(now.saturating_sub(r)) * MICROS_PER_DAY
}

/// One bounded step of retention, as the writer runs it.
#[derive(Debug, Clone, Copy)]
pub struct PruneStep {
    /// The time of the pass (Unix microseconds): per-uid buckets full by then are forgotten.
    pub now: i64,
    /// Delete reports received before this ([`retention_cutoff`]); `None`: keep them all.
    pub before: Option<i64>,
    /// Resume after this `(received_at, id)` of `reports` (what earlier steps looked at).
    pub after: (i64, i64),
    /// Most rows to look at and delete per table.
    pub limit: usize,
}

/// What retention deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Rows of `reports`.
    pub reports: u64,
    /// Rows of `uid_buckets` (PostgreSQL: buckets that are full again carry no state).
    pub buckets: u64,
    /// Where the next step resumes; `None` when this step finished the pass.
    pub next: Option<(i64, i64)>,
}

/// What the stats read from a store: the counters they need (see the module docs: the totals,
/// the top rows of each spread with their sums, recent seen days and recent daily rows) and the
/// partial-day window counts.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `(scope, name, value)` rows of the counters table, zeros left out.
    pub counters: Vec<(String, String, i128)>,
    /// For each of the day, week and month cut-offs, and each kind (`is`, `cli`): how many
    /// deployments' latest report falls on the cut-off's own UTC day at or after the cut-off.
    /// Whole days after it come from the `seen_day` counters.
    pub partial: BTreeMap<(String, i64), i64>,
}

/// A uid's previous latest report (overall or of one day), with its body parsed again.
#[derive(Debug, Clone)]
pub struct Prev {
    /// Row id in `reports`.
    pub id: i64,
    /// Received time of that report.
    pub received_at: i64,
    /// SHA-256 of its body, hex.
    pub sha256: String,
    /// The report, parsed from its stored body; `None` when the current core refuses it (stored
    /// by an older collector): such a report counts in no aggregate. Shared, since a batch
    /// holds it as the latest of its uid and of its day.
    pub report: Option<std::sync::Arc<Report>>,
}

impl Prev {
    /// Rebuilds a previous row from what the store holds.
    pub fn from_row(id: i64, received_at: i64, sha256: String, body: &[u8]) -> Prev {
        Prev {
            id,
            received_at,
            sha256,
            report: parse_report(body).ok().map(std::sync::Arc::new),
        }
    }
}

/// Splits a batch into repeats and reports to store. `latest` holds the store's latest row of
/// each uid of the batch; it is updated as the batch goes, so a repeat within one batch is
/// found too. Returns each report's outcome (in order) and the indices to insert.
pub fn dedupe(batch: &[&NewReport], latest: &HashMap<String, Prev>) -> (Vec<Outcome>, Vec<usize>) {
    let mut cur: HashMap<&str, (&str, i64)> = latest
        .iter()
        .map(|(uid, p)| (uid.as_str(), (p.sha256.as_str(), p.received_at)))
        .collect();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut fresh = Vec::with_capacity(batch.len());
    for (i, r) in batch.iter().enumerate() {
        let uid = r.report.uid.as_str();
        match cur.get(uid) {
            Some(&(sha, at)) if sha == r.sha256 && day_of(at) == day_of(r.received_at) => {
                outcomes.push(Outcome::Repeat);
            }
            c => {
                if c.is_none_or(|&(_, at)| r.received_at >= at) {
                    cur.insert(uid, (r.sha256.as_str(), r.received_at));
                }
                outcomes.push(Outcome::Stored);
                fresh.push(i);
            }
        }
    }
    (outcomes, fresh)
}

/// A UTC day number and a uid.
pub type DayUid = (i64, String);

/// The previous latest report of each `(UTC day, uid)` of `fresh` that [`plan`] needs, derived
/// from `prev_latest` (each uid's latest stored report): when that was received on the
/// report's day, it is the day's latest too; when on an earlier day, the uid has no report
/// that day. Only a report older than its uid's latest and of an earlier day (received out of
/// order across midnight) needs the store: those keys are returned second, to be read with the
/// store's query for one uid's latest report of one day.
pub fn prev_days(
    fresh: &[&NewReport],
    prev_latest: &HashMap<String, Prev>,
) -> (HashMap<DayUid, Prev>, Vec<DayUid>) {
    let mut known = HashMap::new();
    let mut missing = std::collections::BTreeSet::new();
    for r in fresh {
        let uid = &r.report.uid;
        let Some(p) = prev_latest.get(uid) else {
            continue;
        };
        let (day, latest_day) = (day_of(r.received_at), day_of(p.received_at));
        if latest_day == day {
            known.entry((day, uid.clone())).or_insert_with(|| p.clone());
        } else if latest_day > day {
            missing.insert((day, uid.clone()));
        }
    }
    (known, missing.into_iter().collect())
}

/// Works out how a batch moves the counters: which reports become the latest of their
/// deployment (overall and for their day), and what that adds and takes away. `new` holds the
/// batch's reports with their row ids; `prev_latest` / `prev_day` hold the latest reports the
/// store had for the uids (and days, see [`prev_days`]) of the batch before it. A report
/// replaces a previous one when it was received later (ties: higher id), so bulk loads in any
/// order give the same result as live ingest. Returns `(scope, name) → delta`, zeros left out.
pub fn plan(
    new: &[(i64, &NewReport)],
    mut prev_latest: HashMap<String, Prev>,
    mut prev_day: HashMap<(i64, String), Prev>,
) -> Deltas {
    let mut deltas = Acc::default();
    bump(&mut deltas, "meta", "reports", new.len() as i128);
    for &(id, r) in new {
        let uid = r.report.uid.clone();
        let this = Prev::of(id, r);
        let newer = |p: &Prev| (r.received_at, id) > (p.received_at, p.id);
        let cur = prev_latest.get(&uid);
        if cur.is_none_or(newer) {
            if let Some(Prev {
                report: Some(p),
                received_at,
                ..
            }) = cur
            {
                add_latest(&mut deltas, p, *received_at, -1);
            }
            add_latest(&mut deltas, &r.report, r.received_at, 1);
            prev_latest.insert(uid.clone(), this.clone());
        }
        let day = day_of(r.received_at);
        let key = (day, uid);
        let cur = prev_day.get(&key);
        if cur.is_none_or(newer) {
            if let Some(Prev {
                report: Some(p), ..
            }) = cur
            {
                add_daily(&mut deltas, p, day, -1);
            }
            add_daily(&mut deltas, &r.report, day, 1);
            prev_day.insert(key, this);
        }
    }
    deltas.into_deltas()
}

impl Prev {
    fn of(id: i64, r: &NewReport) -> Prev {
        Prev {
            id,
            received_at: r.received_at,
            sha256: r.sha256.clone(),
            report: Some(std::sync::Arc::new(r.report.clone())),
        }
    }
}

/// Counter deltas by `(scope, name)`.
pub type Deltas = BTreeMap<(String, String), i128>;

/// Counter deltas being summed, by scope and then name: looked up by `&str`, so a key is
/// allocated once, when first seen (a batch bumps a few dozen keys thousands of times).
#[derive(Debug, Default)]
struct Acc(HashMap<String, HashMap<String, i128>>);

impl Acc {
    /// The sums, zeros left out.
    fn into_deltas(self) -> Deltas {
        let mut d = Deltas::new();
        for (scope, names) in self.0 {
            for (name, v) in names {
                if v != 0 {
                    d.insert((scope.clone(), name), v);
                }
            }
        }
        d
    }
}

fn bump(d: &mut Acc, scope: &str, name: &str, v: i128) {
    if v == 0 {
        return;
    }
    let names = match d.0.get_mut(scope) {
        Some(names) => names,
        None => d.0.entry(scope.to_owned()).or_default(),
    };
    match names.get_mut(name) {
        Some(sum) => *sum += v,
        None => {
            names.insert(name.to_owned(), v);
        }
    }
}

/// Bumps a spread's entry and its sum (scope `sum`, named after the spread).
fn bump_spread(d: &mut Acc, scope: &str, name: &str, v: i128) {
    bump(d, scope, name, v);
    bump(d, "sum", scope, v);
}

/// Scope of the per-day counters of `day`: `day:` and the day number, zero-padded so that the
/// scopes of a range of days are a range of the primary key.
pub fn day_scope(day: i64) -> String {
    format!("day:{}", day_name(day))
}

/// A day number as a counter name: zero-padded, so that a range of days is a range of names.
pub fn day_name(day: i64) -> String {
    format!("{day:07}")
}

/// The counters one report adds (sign 1) or removes (sign −1) as the latest of its deployment.
fn add_latest(d: &mut Acc, r: &Report, received_at: i64, sign: i128) {
    let [version, os, arch, seen_day, seen_hour] = match kind_of(r) {
        "is" => [
            "is_version",
            "is_os",
            "is_arch",
            "is_seen_day",
            "is_seen_hour",
        ],
        _ => [
            "cli_version",
            "cli_os",
            "cli_arch",
            "cli_seen_day",
            "cli_seen_hour",
        ],
    };
    bump_spread(d, version, &r.os.binary_version, sign);
    bump_spread(d, os, &r.os.operating_system, sign);
    bump_spread(d, arch, &r.os.arch, sign);
    bump(d, seen_day, &day_name(day_of(received_at)), sign);
    bump(d, seen_hour, &hour_name(hour_of(received_at)), sign);
    match &r.payload {
        Payload::Cli(_) => bump(d, "latest", "cli_installations", sign),
        Payload::CliWithoutUsage => {
            bump(d, "latest", "cli_installations", sign);
            bump(d, "latest", "cli_without_usage", sign);
        }
        Payload::Entities(e) => {
            bump(d, "latest", "deployments", sign);
            let a = &e.end_devices.activate_end_devices;
            for (name, n) in [
                ("gateways", e.gateways.total),
                ("end_devices", e.end_devices.total),
                ("active_total", a.total),
                ("active_last_day", a.last_day),
                ("active_last_week", a.last_week),
                ("active_last_month", a.last_month),
                ("applications", e.applications.total),
                ("users_standard", e.accounts.users.standard),
                ("users_admin", e.accounts.users.admin),
                ("organizations", e.accounts.organizations.total),
            ] {
                bump(d, "latest", name, sign * i128::from(n));
            }
            for (plan, n) in &e.gateways.gateways_by_frequency_plan_id {
                bump_spread(d, "plan", plan, sign * i128::from(*n));
                bump(d, "plan_deployments", plan, sign);
            }
        }
    }
}

/// The counters one report adds or removes as the latest of its deployment on `day`.
fn add_daily(d: &mut Acc, r: &Report, day: i64, sign: i128) {
    let scope = day_scope(day);
    match &r.payload {
        Payload::Cli(_) | Payload::CliWithoutUsage => bump(d, &scope, "cli_installations", sign),
        Payload::Entities(e) => {
            bump(d, &scope, "deployments", sign);
            let a = &e.end_devices.activate_end_devices;
            let n = i128::from;
            let users = n(e.accounts.users.standard) + n(e.accounts.users.admin);
            for (name, n) in [
                ("gateways", n(e.gateways.total)),
                ("end_devices", n(e.end_devices.total)),
                ("active_last_day", n(a.last_day)),
                ("active_last_week", n(a.last_week)),
                ("active_last_month", n(a.last_month)),
                ("applications", n(e.applications.total)),
                ("users", users),
                ("organizations", n(e.accounts.organizations.total)),
            ] {
                bump(d, &scope, name, sign * n);
            }
        }
    }
}

/// What a store's writer answers for one queued insert: each report's outcome, or the store's
/// failure.
type Reply = Result<Vec<Outcome>, String>;

/// A request to a store's single writer (group commit: it takes every queued insert, commits
/// them in one transaction, then answers each).
enum Msg {
    Insert(Vec<NewReport>, oneshot::Sender<Reply>),
    /// One bounded step of retention (see [`Store::retain`]).
    Prune(PruneStep, oneshot::Sender<Result<Pruned, String>>),
    Admin(Admin, oneshot::Sender<Result<AdminReply, String>>),
    Close(oneshot::Sender<()>),
}

/// Most queued inserts one commit takes.
const MAX_BATCH: usize = 4096;

/// Queued reports and where to answer once their commit is done.
pub(super) type Job = (Vec<NewReport>, oneshot::Sender<Reply>);

/// Takes `first` and whatever else is already queued (up to [`MAX_BATCH`] inserts, stopping at
/// a request that is not an insert (close, retention step, admin request), which is returned
/// for the writer to do after the batch), so that one commit serves them all.
fn take_batch(first: Msg, rx: &mut mpsc::UnboundedReceiver<Msg>) -> (Vec<Job>, Option<Msg>) {
    let mut jobs = Vec::new();
    let mut next = Some(first);
    while let Some(msg) = next.take() {
        match msg {
            Msg::Insert(r, reply) => jobs.push((r, reply)),
            other => return (jobs, Some(other)),
        }
        if jobs.len() < MAX_BATCH {
            next = rx.try_recv().ok();
        }
    }
    (jobs, None)
}

/// The result of storing one report: its outcome, or the store's failure.
pub(super) type One = Result<Outcome, String>;

/// How many reports of a batch the store failed to write (for the metrics).
fn failed(results: &[One]) -> usize {
    results.iter().filter(|r| r.is_err()).count()
}

/// Answers every job of a batch from the per-report results, in batch order. A job whose
/// reports include a store failure gets that failure (and is retried whole by its sender).
fn answer(jobs: Vec<Job>, results: Vec<One>) {
    let mut results = results.into_iter();
    for (reports, reply) in jobs {
        let mine: Vec<One> = results.by_ref().take(reports.len()).collect();
        let reply_value = mine.into_iter().collect::<Result<Vec<_>, _>>();
        // A client that hung up no longer needs the answer; the reports are stored regardless.
        let _ = reply.send(reply_value);
    }
}

/// Queues `reports` for the writer's next commit and waits until it is committed.
async fn enqueue(
    tx: &mpsc::UnboundedSender<Msg>,
    reports: Vec<NewReport>,
    store: &str,
) -> anyhow::Result<Vec<Outcome>> {
    let (reply, wait) = oneshot::channel();
    let stopped = || anyhow::anyhow!("the {store} writer has stopped");
    tx.send(Msg::Insert(reports, reply))
        .map_err(|_| stopped())?;
    wait.await
        .map_err(|_| stopped())?
        .map_err(|e| anyhow::anyhow!("storing reports in {store}: {e}"))
}

/// The result of a batch for each report: `Ok` outcomes of the one transaction, or, when it
/// failed, `retry_alone` for each report so that one that cannot be stored fails alone.
fn isolate(
    batch: &[&NewReport],
    whole: anyhow::Result<Vec<Outcome>>,
    mut retry_alone: impl FnMut(&NewReport) -> One,
) -> Vec<One> {
    match whole {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) if batch.len() == 1 => vec![Err(format!("{e:#}"))],
        Err(_) => batch.iter().map(|r| retry_alone(r)).collect(),
    }
}

/// The pin of a uid: the key id first seen signing for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    /// The key id (see `ttn_telemetry_core::PublicKey::keyid`).
    pub keyid: String,
    /// `is` or `cli`: the kind of the report that pinned it.
    pub kind: String,
    /// When it was pinned (or last rotated), Unix microseconds.
    pub pinned_at: i64,
}

/// The counter of uids with a pin, by kind.
fn verified_name(kind: &str) -> &'static str {
    if kind == "cli" {
        "verified_cli_installations"
    } else {
        "verified_deployments"
    }
}

/// A pin a batch makes: `(uid, key id, kind, pinned_at)`.
pub type NewPin = (String, String, &'static str, i64);

/// Decides, for each report of a batch, whether its signer may speak for its uid, given the
/// `pins` the store holds for the batch's uids (uid → key id). Returns each report's refusal
/// (`None`: admitted) and the pins to add, `(uid, key id, kind, pinned_at)`. The first signed
/// report of an unpinned uid pins its key, and later reports of the same batch are held to it.
pub fn authorize(
    batch: &[&NewReport],
    pins: &HashMap<String, String>,
) -> (Vec<Option<Outcome>>, Vec<NewPin>) {
    let mut known: HashMap<&str, &str> =
        pins.iter().map(|(u, k)| (u.as_str(), k.as_str())).collect();
    let mut new_pins = Vec::new();
    let verdicts = batch
        .iter()
        .map(|r| {
            let uid = r.report.uid.as_str();
            match (known.get(uid), r.signed_by.as_deref()) {
                (None, None) => None,
                (None, Some(k)) => {
                    known.insert(uid, k);
                    new_pins.push((uid.to_owned(), k.to_owned(), r.kind(), r.received_at));
                    None
                }
                (Some(pin), Some(k)) if *pin == k => None,
                (Some(_), Some(_)) => Some(Outcome::KeyRefused(
                    "this uid's reports must be signed by its pinned key, and this one is signed by another",
                )),
                (Some(_), None) => Some(Outcome::KeyRefused(
                    "this uid's reports are signed since its key was pinned, and this one is unsigned",
                )),
            }
        })
        .collect();
    (verdicts, new_pins)
}

/// Puts the outcomes of the admitted reports (in order) into the places [`authorize`] left
/// `None`.
pub fn merge_outcomes(verdicts: Vec<Option<Outcome>>, admitted: Vec<Outcome>) -> Vec<Outcome> {
    let mut admitted = admitted.into_iter();
    verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| admitted.next().unwrap_or(Outcome::Stored)))
        .collect()
}

/// The counter deltas of new pins.
pub fn pin_deltas(new_pins: &[NewPin]) -> Deltas {
    let mut d = Acc::default();
    for (_, _, kind, _) in new_pins {
        bump(&mut d, "latest", verified_name(kind), 1);
    }
    d.into_deltas()
}

/// An operation on one uid that only its pinned key may ask for (issue 14 §2 and §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// Erase every stored report of `uid`, its pin, and its part of every aggregate.
    Forget {
        /// The deployment.
        uid: String,
        /// The key id that signed the request.
        keyid: String,
    },
    /// Pin `new` instead of `keyid` for `uid`.
    Rotate {
        /// The deployment.
        uid: String,
        /// The key id that signed the request (must be the pinned one).
        keyid: String,
        /// The key id to pin from now on.
        new: String,
        /// When, Unix microseconds.
        at: i64,
    },
}

impl Admin {
    /// The uid and the key id that asked.
    pub fn who(&self) -> (&str, &str) {
        match self {
            Admin::Forget { uid, keyid } | Admin::Rotate { uid, keyid, .. } => (uid, keyid),
        }
    }
}

/// What became of an [`Admin`] request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminReply {
    /// The uid has no pin: no key may ask for it.
    NotPinned,
    /// The uid's pin is another key.
    WrongKey,
    /// Forgotten.
    Forgotten(Forgotten),
    /// The new key is pinned.
    Rotated,
}

/// What [`Admin::Forget`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Forgotten {
    /// The deployment.
    pub uid: String,
    /// How many stored reports were deleted.
    pub reports: u64,
    /// The SHA-256 (hex) of each deleted report, in commit order.
    pub sha256: Vec<String>,
    /// Whether it had a latest report in the aggregates.
    pub latest: bool,
    /// How many days' aggregates it was taken out of (the days of its stored reports).
    pub days: u64,
    /// The key id whose pin was deleted.
    pub pin: String,
}

/// What the store holds about one uid (`GET /api/v1/deployments/{uid}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The uid has no pin.
    NotPinned,
    /// The uid's pin is another key.
    WrongKey,
    /// Its pin and every stored report, in commit order.
    Found(Pin, Vec<StoredReport>),
}

/// A uid's stored reports reduced to what the aggregates count: its latest report (by received
/// time, then row id: the order [`plan`] uses) and its latest report of each UTC day. Since
/// schema version 6 these are read from `reports` itself (see the module docs); feed it the
/// uid's rows in any order.
#[derive(Debug, Default)]
pub struct Newest {
    /// `(received_at, id, body)` of the latest report.
    pub latest: Option<(i64, i64, Vec<u8>)>,
    /// UTC day → `(received_at, id, body)` of that day's latest report.
    pub days: BTreeMap<i64, (i64, i64, Vec<u8>)>,
}

impl Newest {
    /// Takes one stored report of the uid into account.
    pub fn add(&mut self, received_at: i64, id: i64, body: &[u8]) {
        let newer = |cur: &Option<&(i64, i64, Vec<u8>)>| {
            cur.is_none_or(|(at, i, _)| (received_at, id) > (*at, *i))
        };
        if newer(&self.latest.as_ref()) {
            self.latest = Some((received_at, id, body.to_vec()));
        }
        let day = day_of(received_at);
        if newer(&self.days.get(&day)) {
            self.days.insert(day, (received_at, id, body.to_vec()));
        }
    }

    /// Adds (`sign` 1) or removes (−1) what these reports count for in the aggregates. A report
    /// the core now refuses (stored by an older collector) counts in nothing.
    fn count(&self, d: &mut Acc, sign: i128) {
        if let Some((at, _, body)) = &self.latest
            && let Ok(r) = parse_report(body)
        {
            add_latest(d, &r, *at, sign);
        }
        for (day, (_, _, body)) in &self.days {
            if let Ok(r) = parse_report(body) {
                add_daily(d, &r, *day, sign);
            }
        }
    }
}

/// The counter deltas that remove a uid from every aggregate: `newest` holds its stored
/// reports, `reports` is how many it had, and `pin_kind` the kind of its pin. Applied to the
/// counters, they give what the counters would be had the uid never reported.
pub fn forget_deltas(newest: &Newest, reports: u64, pin_kind: Option<&str>) -> Deltas {
    let mut d = Acc::default();
    bump(&mut d, "meta", "reports", -i128::from(reports));
    newest.count(&mut d, -1);
    if let Some(kind) = pin_kind {
        bump(&mut d, "latest", verified_name(kind), -1);
    }
    d.into_deltas()
}

/// Rebuilds every counter from the store's rows (a schema migration): feed it every stored
/// report with [`Rebuild::report`], in uid order, and every pin with [`Rebuild::pin`], then
/// write [`Rebuild::finish`]. Reports the core now refuses count in nothing.
#[derive(Debug)]
pub struct Rebuild {
    deltas: Acc,
    /// The uid being read, and its reports so far.
    cur: Option<(String, Newest)>,
}

impl Rebuild {
    /// Starts from the number of stored reports.
    pub fn new(reports: i64) -> Rebuild {
        let mut deltas = Acc::default();
        bump(&mut deltas, "meta", "reports", i128::from(reports));
        Rebuild { deltas, cur: None }
    }

    /// Adds one stored report; the reports of a uid must come one after another.
    pub fn report(&mut self, uid: &str, received_at: i64, id: i64, body: &[u8]) {
        if self.cur.as_ref().is_none_or(|(u, _)| u != uid) {
            self.flush();
            self.cur = Some((uid.to_owned(), Newest::default()));
        }
        if let Some((_, n)) = &mut self.cur {
            n.add(received_at, id, body);
        }
    }

    fn flush(&mut self) {
        if let Some((_, n)) = self.cur.take() {
            n.count(&mut self.deltas, 1);
        }
    }

    /// Adds a pin of `kind`.
    pub fn pin(&mut self, kind: &str) {
        bump(&mut self.deltas, "latest", verified_name(kind), 1);
    }

    /// The counters, zeros left out.
    pub fn finish(mut self) -> Deltas {
        self.flush();
        self.deltas.into_deltas()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttn_telemetry_core::{Identity, Inputs, OsInfo};

    fn report(deployment: &str, gateways: u64, version: &str, at: i64) -> NewReport {
        let mut c = ttn_telemetry_core::EntitiesCount::default();
        c.gateways.total = gateways;
        c.gateways
            .gateways_by_frequency_plan_id
            .insert("EU_863_870".into(), gateways);
        let body = Inputs {
            identity: Identity::Elements(vec![deployment.into()]),
            os: OsInfo {
                operating_system: "linux".into(),
                arch: "amd64".into(),
                binary_version: version.into(),
                golang_version: "rustc 1.95.0".into(),
            },
            payload: Payload::Entities(c),
        }
        .build()
        .unwrap()
        .to_bytes();
        NewReport::parse(at, body).unwrap()
    }

    fn counter(p: &Deltas, scope: &str, name: &str) -> i128 {
        p.get(&(scope.to_owned(), name.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    #[test]
    fn later_reports_replace_earlier_ones() {
        let d = MICROS_PER_DAY;
        let a1 = report("a", 5, "1.0", 10 * d + 1);
        let a2 = report("a", 7, "1.1", 10 * d + 2);
        let b = report("b", 3, "1.0", 11 * d);
        let p = plan(
            &[(1, &a1), (2, &a2), (3, &b)],
            HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(counter(&p, "meta", "reports"), 3);
        assert_eq!(counter(&p, "latest", "deployments"), 2);
        assert_eq!(counter(&p, "latest", "gateways"), 10);
        assert_eq!(counter(&p, "plan", "EU_863_870"), 10);
        assert_eq!(counter(&p, "is_version", "1.0"), 1);
        assert_eq!(counter(&p, "is_version", "1.1"), 1);
        assert_eq!(counter(&p, &day_scope(10), "deployments"), 1);
        assert_eq!(counter(&p, &day_scope(10), "gateways"), 7);
        assert_eq!(counter(&p, &day_scope(11), "gateways"), 3);
        assert_eq!(counter(&p, "is_seen_day", &day_name(10)), 1);
        assert_eq!(counter(&p, "is_seen_day", &day_name(11)), 1);

        // A report older than what the store holds changes neither `latest` nor the totals,
        // but still counts as stored and as that day's report.
        let prev = HashMap::from([(a1.report.uid.clone(), Prev::of(2, &a2))]);
        let old = report("a", 1, "0.9", 3 * d);
        let p = plan(&[(4, &old)], prev, HashMap::new());
        assert_eq!(counter(&p, "latest", "gateways"), 0);
        assert_eq!(counter(&p, "is_seen_day", &day_name(3)), 0);
        assert_eq!(counter(&p, &day_scope(3), "gateways"), 1);

        // A newer one moves the totals by the difference only.
        let prev = HashMap::from([(a1.report.uid.clone(), Prev::of(2, &a2))]);
        let a3 = report("a", 9, "1.1", 12 * d);
        let p = plan(&[(5, &a3)], prev, HashMap::new());
        assert_eq!(counter(&p, "latest", "gateways"), 2);
        assert_eq!(counter(&p, "latest", "deployments"), 0);
        assert_eq!(counter(&p, "is_seen_day", "0000010"), -1);
        assert_eq!(counter(&p, "is_seen_day", "0000012"), 1);
        let hour = |r: &NewReport| hour_name(hour_of(r.received_at));
        assert_eq!(counter(&p, "is_seen_hour", &hour(&a2)), -1);
        assert_eq!(counter(&p, "is_seen_hour", &hour(&a3)), 1);
        // The migration to version 7 counts the same from the latest reports alone.
        let mut h = SeenHours::default();
        h.add(a3.received_at, &a3.body);
        h.add(a3.received_at + 1, &a2.body);
        h.add(0, b"{}");
        let h = h.into_deltas();
        assert_eq!(h.get(&(seen_hour_scope("is"), hour(&a3))), Some(&2));
        assert_eq!(h.len(), 1, "a body the core refuses counts nowhere");
        assert!(!p.contains_key(&("is_version".into(), "1.1".into())));
    }

    #[test]
    fn the_first_signed_report_of_a_batch_pins_and_binds_the_rest() {
        let d = MICROS_PER_DAY;
        let a = report("a", 1, "1", d).signed_by("KEY_A");
        let b = report("a", 2, "1", d + 1).signed_by("KEY_B");
        let unsigned = report("a", 3, "1", d + 2);
        let other = report("b", 1, "1", d + 3);
        let (v, pins) = authorize(&[&unsigned, &a, &b, &unsigned, &other], &HashMap::new());
        // Before the pin, unsigned is admitted; after it, neither another key nor unsigned.
        assert_eq!(v[0], None);
        assert_eq!(v[1], None);
        assert!(matches!(v[2], Some(Outcome::KeyRefused(_))));
        assert!(matches!(v[3], Some(Outcome::KeyRefused(_))));
        assert_eq!(v[4], None);
        assert_eq!(pins.len(), 1);
        assert_eq!((pins[0].1.as_str(), pins[0].2), ("KEY_A", "is"));
        assert_eq!(
            pin_deltas(&pins),
            Deltas::from([(("latest".into(), "verified_deployments".into()), 1)])
        );
        // A pin the store already holds binds the batch the same way.
        let held = HashMap::from([(a.report.uid.clone(), "KEY_B".to_owned())]);
        let (v, pins) = authorize(&[&a, &b], &held);
        assert!(matches!(v[0], Some(Outcome::KeyRefused(_))));
        assert_eq!(v[1], None);
        assert!(pins.is_empty());
        let merged = merge_outcomes(v, vec![Outcome::Repeat]);
        assert!(matches!(merged[0], Outcome::KeyRefused(_)));
        assert_eq!(merged[1], Outcome::Repeat);
    }

    #[test]
    fn forgetting_undoes_what_the_reports_added() {
        let d = MICROS_PER_DAY;
        let a1 = report("a", 5, "1.0", 10 * d + 1);
        let a2 = report("a", 7, "1.1", 11 * d + 2);
        let mut all = plan(&[(1, &a1), (2, &a2)], HashMap::new(), HashMap::new());
        for (k, v) in pin_deltas(&[("a".into(), "K".into(), "is", 0)]) {
            *all.entry(k).or_default() += v;
        }
        let mut newest = Newest::default();
        newest.add(a2.received_at, 2, &a2.body);
        newest.add(a1.received_at, 1, &a1.body);
        let undo = forget_deltas(&newest, 2, Some("is"));
        for (k, v) in undo {
            *all.entry(k).or_default() += v;
        }
        all.retain(|_, v| *v != 0);
        assert!(all.is_empty(), "left over: {all:?}");
    }

    #[test]
    fn the_previous_day_report_comes_from_the_latest_unless_received_out_of_order() {
        let d = MICROS_PER_DAY;
        let latest = report("a", 5, "1.0", 10 * d + 5);
        let prev = HashMap::from([(latest.report.uid.clone(), Prev::of(7, &latest))]);
        let same_day = report("a", 6, "1.0", 10 * d + 9);
        let next_day = report("a", 6, "1.0", 11 * d);
        let day_before = report("a", 6, "1.0", 9 * d);
        let stranger = report("b", 1, "1.0", 10 * d);
        let (known, missing) = prev_days(&[&same_day, &next_day, &day_before, &stranger], &prev);
        // The latest is its own day's latest; the next day has none yet; the day before can
        // only be read from the store; a uid without a latest has no report at all.
        assert_eq!(known.len(), 1);
        assert_eq!(known[&(10, latest.report.uid.clone())].id, 7);
        assert_eq!(missing, vec![(9, latest.report.uid.clone())]);
    }

    #[test]
    fn counts_are_exact_in_aggregates() {
        let r = report("big", u64::MAX, "1", 0);
        let p = plan(&[(1, &r)], HashMap::new(), HashMap::new());
        assert_eq!(counter(&p, "latest", "gateways"), i128::from(u64::MAX));
        assert_eq!(counter(&p, "sum", "plan"), i128::from(u64::MAX));
    }

    #[test]
    fn counters_split_in_order() {
        let vals = [
            0i128,
            1,
            COUNTER_BASE - 1,
            COUNTER_BASE,
            i128::from(u64::MAX) * 3,
            i128::from(i64::MAX) + 1,
            -1,
        ];
        for v in vals {
            let (hi, lo) = split_counter(v);
            assert!((0..1_000_000_000_000_000_000).contains(&lo));
            assert_eq!(join_counter(hi, lo), v);
        }
        let mut sorted = vals;
        sorted.sort();
        let mut by_cols = vals.map(split_counter);
        by_cols.sort();
        assert_eq!(by_cols.map(|(h, l)| join_counter(h, l)), sorted);
    }

    #[test]
    fn repeats_are_found_within_a_day_and_a_batch() {
        let d = MICROS_PER_DAY;
        let a = report("a", 5, "1.0", 10 * d + 1);
        let mut again = a.clone();
        again.received_at = 10 * d + 500;
        let mut tomorrow = a.clone();
        tomorrow.received_at = 11 * d;
        let b = report("a", 6, "1.0", 10 * d + 2);
        // In one batch: the second copy is a repeat; another body is not.
        let (o, fresh) = dedupe(&[&a, &again, &b], &HashMap::new());
        assert_eq!(o, [Outcome::Stored, Outcome::Repeat, Outcome::Stored]);
        assert_eq!(fresh, [0, 2]);
        // Against the store's latest: same day repeats, the next day is a new daily report,
        // and A after B (counts went back) is new.
        let latest = HashMap::from([(a.report.uid.clone(), Prev::of(1, &a))]);
        let (o, _) = dedupe(&[&again, &tomorrow], &latest);
        assert_eq!(o, [Outcome::Repeat, Outcome::Stored]);
        let latest = HashMap::from([(a.report.uid.clone(), Prev::of(2, &b))]);
        let (o, _) = dedupe(&[&again], &latest);
        assert_eq!(o, [Outcome::Stored]);
    }
}
