//! Where accepted reports are kept: embedded SQLite (the default) or PostgreSQL.
//!
//! Both stores keep the same four tables:
//!
//! - `reports`: every accepted report, with its received time (Unix microseconds), uid, kind
//!   (`is` or `cli`), SHA-256 (hex) and the raw body exactly as received. Append-only.
//! - `latest`: the latest report of each deployment (by uid), pointing into `reports`.
//! - `day_latest`: the latest report of each deployment per UTC day, pointing into `reports`.
//! - `counters`: `(scope, name) → value` sums that the aggregates read, updated in the same
//!   transaction as the reports they come from (see [`plan`]). A stats read therefore touches a
//!   few hundred rows whatever the number of stored reports.
//!
//! Writes go through one writer per store that takes every request waiting in its queue, commits
//! them in one transaction, and only then answers each request (group commit). An HTTP 2xx is
//! sent after that answer, so nothing acknowledged can be lost by a crash, and the cost of a
//! durable commit is shared by everything that arrived while the previous one was running.

pub mod postgres;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context as _, bail};
use ttn_telemetry_core::{MICROS_PER_DAY, Payload, Report, parse_report, sha256_hex};

use tokio::sync::{mpsc, oneshot};

use super::stats::Stats;

/// File name of the embedded store when no `--database-uri` is given (in the working directory).
pub const DEFAULT_SQLITE_FILE: &str = "ttn-lw-telemetry-collector.sqlite3";

/// Each count is clamped to this before it is added to an aggregate. A report may carry any u64
/// (the core accepts them, and the raw body is kept untouched), but sums over many deployments
/// must fit a signed 64-bit column in both databases: 10^12 per report times 10^6 deployments
/// still fits. No real deployment has a trillion gateways.
pub const AGGREGATE_CLAMP: u64 = 1_000_000_000_000;

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
}

impl NewReport {
    /// Parses and validates `body` with the core; the error is the core's.
    pub fn parse(received_at: i64, body: Vec<u8>) -> Result<Self, ttn_telemetry_core::ReportError> {
        let report = parse_report(&body)?;
        Ok(NewReport {
            received_at,
            sha256: sha256_hex(&body),
            body,
            report,
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
}

/// `is` for an Identity Server report, `cli` for a CLI report.
pub fn kind_of(report: &Report) -> &'static str {
    match report.payload {
        Payload::Entities(_) => "is",
        Payload::Cli(_) => "cli",
    }
}

/// The UTC day number (days since 1970-01-01) of a Unix-microsecond time.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_DAY)
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
    /// Opens (and creates the schema of) the store a `--database-uri` names: `None` is the
    /// embedded SQLite file [`DEFAULT_SQLITE_FILE`] in the working directory, `sqlite:PATH`
    /// another SQLite file, `postgres://…` or `postgresql://…` a PostgreSQL database.
    pub async fn open(uri: Option<&str>) -> anyhow::Result<Store> {
        match uri {
            None => Ok(Store::Sqlite(
                sqlite::SqliteStore::open(DEFAULT_SQLITE_FILE.as_ref()).await?,
            )),
            Some(u)
                if ttn_telemetry_core::is_postgres_uri(u)
                    || (u.contains('=') && !u.starts_with("sqlite:")) =>
            {
                Ok(Store::Postgres(postgres::PgStore::open(u).await?))
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

    /// Stores `reports` in one transaction and returns after it committed.
    pub async fn insert(&self, reports: Vec<NewReport>) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(s) => s.insert(reports).await,
            Store::Postgres(s) => s.insert(reports).await,
        }
    }

    /// The aggregates at time `now` (Unix microseconds).
    pub async fn stats(&self, now: i64) -> anyhow::Result<Stats> {
        let snapshot = match self {
            Store::Sqlite(s) => s.snapshot(now).await?,
            Store::Postgres(s) => s.snapshot(now).await?,
        };
        Stats::from_snapshot(now, snapshot)
    }

    /// Every stored report, in commit order. For tests and audits of small stores.
    pub async fn all_reports(&self) -> anyhow::Result<Vec<StoredReport>> {
        match self {
            Store::Sqlite(s) => s.all_reports().await,
            Store::Postgres(s) => s.all_reports().await,
        }
    }

    /// Stops the writer after it committed everything already queued.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// What the stats read from a store: every non-zero counter and the partial-day window counts.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `(scope, name, value)` rows of the counters table.
    pub counters: Vec<(String, String, i64)>,
    /// For each of the day, week and month cut-offs, and each kind (`is`, `cli`): how many
    /// deployments' latest report falls on the cut-off's own UTC day at or after the cut-off.
    /// Whole days after it come from the `seen_day` counters.
    pub partial: BTreeMap<(String, i64), i64>,
}

/// A previous `latest` or `day_latest` row, with its report parsed again.
#[derive(Debug, Clone)]
pub struct Prev {
    /// Row id in `reports`.
    pub id: i64,
    /// Received time of that report.
    pub received_at: i64,
    /// The report (parsed from its stored body).
    pub report: Report,
}

impl Prev {
    /// Rebuilds a previous row from what the store holds.
    pub fn from_row(id: i64, received_at: i64, body: &[u8]) -> anyhow::Result<Prev> {
        let report =
            parse_report(body).with_context(|| format!("stored report {id} no longer parses"))?;
        Ok(Prev {
            id,
            received_at,
            report,
        })
    }
}

/// The row changes one batch makes besides inserting its reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// `uid → (kind, report id, received_at)` for `latest`.
    pub latest: BTreeMap<String, (&'static str, i64, i64)>,
    /// `(day, uid) → (report id, received_at)` for `day_latest`.
    pub day_latest: BTreeMap<(i64, String), (i64, i64)>,
    /// `(scope, name) → delta` for `counters`, zeros left out.
    pub counters: BTreeMap<(String, String), i64>,
}

/// Works out what a batch changes: which reports become the latest of their deployment (overall
/// and for their day), and how the counters move. `new` holds the batch's reports with their
/// row ids; `prev_latest` / `prev_day` hold the rows the store had for the uids (and days) of the
/// batch before it. A report replaces a previous one when it was received later (ties: higher
/// id), so bulk loads in any order give the same result as live ingest.
pub fn plan(
    new: &[(i64, &NewReport)],
    mut prev_latest: HashMap<String, Prev>,
    mut prev_day: HashMap<(i64, String), Prev>,
) -> Plan {
    let mut out = Plan::default();
    let mut deltas: BTreeMap<(String, String), i64> = BTreeMap::new();
    *deltas.entry(("meta".into(), "reports".into())).or_default() += new.len() as i64;
    for &(id, r) in new {
        let uid = r.report.uid.clone();
        let newer = |p: &Prev| (r.received_at, id) > (p.received_at, p.id);
        let cur = prev_latest.get(&uid);
        if cur.is_none_or(newer) {
            if let Some(p) = cur {
                add_latest(&mut deltas, &p.report, p.received_at, -1);
            }
            add_latest(&mut deltas, &r.report, r.received_at, 1);
            out.latest
                .insert(uid.clone(), (r.kind(), id, r.received_at));
            prev_latest.insert(
                uid.clone(),
                Prev {
                    id,
                    received_at: r.received_at,
                    report: r.report.clone(),
                },
            );
        }
        let day = day_of(r.received_at);
        let key = (day, uid);
        let cur = prev_day.get(&key);
        if cur.is_none_or(newer) {
            if let Some(p) = cur {
                add_daily(&mut deltas, &p.report, day, -1);
            }
            add_daily(&mut deltas, &r.report, day, 1);
            out.day_latest.insert(key.clone(), (id, r.received_at));
            prev_day.insert(
                key,
                Prev {
                    id,
                    received_at: r.received_at,
                    report: r.report.clone(),
                },
            );
        }
    }
    deltas.retain(|_, v| *v != 0);
    out.counters = deltas;
    out
}

fn clamp(n: u64) -> i64 {
    n.min(AGGREGATE_CLAMP) as i64
}

fn bump(d: &mut BTreeMap<(String, String), i64>, scope: &str, name: &str, v: i64) {
    if v != 0 {
        *d.entry((scope.to_owned(), name.to_owned())).or_default() += v;
    }
}

/// Scope of the per-day counters of `day`: `day:` and the day number, zero-padded so that the
/// scopes of a range of days are a range of the primary key.
pub fn day_scope(day: i64) -> String {
    format!("day:{day:07}")
}

/// The counters one report adds (sign 1) or removes (sign −1) as the latest of its deployment.
fn add_latest(d: &mut BTreeMap<(String, String), i64>, r: &Report, received_at: i64, sign: i64) {
    let kind = kind_of(r);
    bump(d, &format!("{kind}_version"), &r.os.binary_version, sign);
    bump(d, &format!("{kind}_os"), &r.os.operating_system, sign);
    bump(d, &format!("{kind}_arch"), &r.os.arch, sign);
    bump(
        d,
        &format!("{kind}_seen_day"),
        &day_of(received_at).to_string(),
        sign,
    );
    match &r.payload {
        Payload::Cli(_) => bump(d, "latest", "cli_installations", sign),
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
                bump(d, "latest", name, sign * clamp(n));
            }
            for (plan, n) in &e.gateways.gateways_by_frequency_plan_id {
                bump(d, "plan", plan, sign * clamp(*n));
            }
        }
    }
}

/// The counters one report adds or removes as the latest of its deployment on `day`.
fn add_daily(d: &mut BTreeMap<(String, String), i64>, r: &Report, day: i64, sign: i64) {
    let scope = day_scope(day);
    match &r.payload {
        Payload::Cli(_) => bump(d, &scope, "cli_installations", sign),
        Payload::Entities(e) => {
            bump(d, &scope, "deployments", sign);
            let a = &e.end_devices.activate_end_devices;
            let users = clamp(e.accounts.users.standard) + clamp(e.accounts.users.admin);
            for (name, n) in [
                ("gateways", clamp(e.gateways.total)),
                ("end_devices", clamp(e.end_devices.total)),
                ("active_last_day", clamp(a.last_day)),
                ("active_last_week", clamp(a.last_week)),
                ("active_last_month", clamp(a.last_month)),
                ("applications", clamp(e.applications.total)),
                ("users", users),
                ("organizations", clamp(e.accounts.organizations.total)),
            ] {
                bump(d, &scope, name, sign * n);
            }
        }
    }
}

/// A request to a store's single writer (group commit: it takes every queued insert, commits
/// them in one transaction, then answers each).
enum Msg {
    Insert(Vec<NewReport>, oneshot::Sender<Result<(), String>>),
    Close(oneshot::Sender<()>),
}

/// Most queued inserts one commit takes.
const MAX_BATCH: usize = 4096;

/// Queued reports and where to answer once their commit is done.
type Job = (Vec<NewReport>, oneshot::Sender<Result<(), String>>);

/// Takes `first` and whatever else is already queued (up to [`MAX_BATCH`] inserts, stopping at
/// a close request), so that one commit serves them all.
fn take_batch(
    first: Msg,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
) -> (Vec<Job>, Option<oneshot::Sender<()>>) {
    let mut jobs = Vec::new();
    let mut next = Some(first);
    while let Some(msg) = next.take() {
        match msg {
            Msg::Insert(r, reply) => jobs.push((r, reply)),
            Msg::Close(reply) => return (jobs, Some(reply)),
        }
        if jobs.len() < MAX_BATCH {
            next = rx.try_recv().ok();
        }
    }
    (jobs, None)
}

/// Answers every job of a batch with the result of its one commit.
fn answer(jobs: Vec<Job>, result: Result<(), String>) {
    for (_, reply) in jobs {
        // A client that hung up no longer needs the answer; the reports are stored regardless.
        let _ = reply.send(result.clone());
    }
}

/// Queues `reports` for the writer's next commit and waits until it is committed.
async fn enqueue(
    tx: &mpsc::UnboundedSender<Msg>,
    reports: Vec<NewReport>,
    store: &str,
) -> anyhow::Result<()> {
    let (reply, wait) = oneshot::channel();
    let stopped = || anyhow::anyhow!("the {store} writer has stopped");
    tx.send(Msg::Insert(reports, reply))
        .map_err(|_| stopped())?;
    wait.await
        .map_err(|_| stopped())?
        .map_err(|e| anyhow::anyhow!("storing reports in {store}: {e}"))
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

    fn counter(p: &Plan, scope: &str, name: &str) -> i64 {
        p.counters
            .get(&(scope.to_owned(), name.to_owned()))
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
        assert_eq!(p.latest[&a1.report.uid], ("is", 2, 10 * d + 2));
        assert_eq!(p.day_latest.len(), 2);

        // A report older than what the store holds changes neither `latest` nor the totals,
        // but still counts as stored and as that day's report.
        let prev = HashMap::from([(
            a1.report.uid.clone(),
            Prev {
                id: 2,
                received_at: 10 * d + 2,
                report: a2.report.clone(),
            },
        )]);
        let old = report("a", 1, "0.9", 3 * d);
        let p = plan(&[(4, &old)], prev, HashMap::new());
        assert!(p.latest.is_empty());
        assert_eq!(counter(&p, "latest", "gateways"), 0);
        assert_eq!(counter(&p, &day_scope(3), "gateways"), 1);

        // A newer one moves the totals by the difference only.
        let prev = HashMap::from([(
            a1.report.uid.clone(),
            Prev {
                id: 2,
                received_at: 10 * d + 2,
                report: a2.report.clone(),
            },
        )]);
        let a3 = report("a", 9, "1.1", 12 * d);
        let p = plan(&[(5, &a3)], prev, HashMap::new());
        assert_eq!(counter(&p, "latest", "gateways"), 2);
        assert_eq!(counter(&p, "latest", "deployments"), 0);
        assert_eq!(counter(&p, "is_seen_day", "10"), -1);
        assert_eq!(counter(&p, "is_seen_day", "12"), 1);
        assert!(
            !p.counters
                .contains_key(&("is_version".into(), "1.1".into()))
        );
    }

    #[test]
    fn counts_are_clamped_in_aggregates() {
        let r = report("big", u64::MAX, "1", 0);
        let p = plan(&[(1, &r)], HashMap::new(), HashMap::new());
        assert_eq!(counter(&p, "latest", "gateways"), AGGREGATE_CLAMP as i64);
    }
}
