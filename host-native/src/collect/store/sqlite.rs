//! The embedded store: one SQLite file in WAL mode.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so every commit fsyncs the WAL before
//! it returns, and a report is acknowledged only after its commit. That holds across `kill -9`
//! and across power loss. (`NORMAL` would survive a process crash but not a power cut; with
//! group commit the fsync is shared by a whole batch, so FULL costs little.)
//!
//! One writer thread owns the write connection and commits batches (see the parent module). A
//! separate read connection serves stats; WAL lets it read while the writer writes.
//!
//! Reports by uid are found through [`UidIndex`], kept in memory (see there why): the writer
//! reads a uid's latest report by its row id, and changes the index after each commit, before
//! it answers; the stats count the latest reports' times in it (as of the read, which may be
//! one batch ahead of the counters read beside it); a deployment's reports are read by the row
//! ids it lists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};
use ttn_telemetry_core::{MICROS_PER_DAY, cutoffs};

use super::super::metrics::WriterMetrics;
use super::super::stats::{DAYS, TOP};
use super::uid_index::{At, UidIndex};
use super::{
    Admin, AdminReply, DAY_FIELDS, Deltas, Forgotten, Held, Msg, NewReport, Newest, Outcome,
    PLAN_DEPLOYMENTS_OF_TOP, Pin, Prev, PruneStep, Pruned, REBUILD_BELOW, Rebuild, SCHEMA_VERSION,
    SPREAD_SCOPES, SeenHours, Snapshot, StoredReport, answer, authorize, day_name, day_of, dedupe,
    enqueue, failed, forget_deltas, isolate, join_counter, merge_outcomes, pin_deltas, plan,
    prev_days, split_counter, take_batch,
};

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body BLOB NOT NULL
);
";

/// Schema version 6 (see the parent module): `reports` is the one structure keyed by uid, and
/// on SQLite its index by uid is kept in memory ([`UidIndex`]). The index by received time
/// (retention) also holds the uid, so the memory index is built from it alone; the tables and
/// the index it replaces go.
const BY_UID: &str = "
DROP INDEX IF EXISTS reports_received;
CREATE INDEX IF NOT EXISTS reports_received_uid ON reports (received_at, id, uid, kind);
DROP INDEX IF EXISTS reports_uid_received;
DROP INDEX IF EXISTS reports_uid;
DROP TABLE IF EXISTS latest;
DROP TABLE IF EXISTS day_latest;
";

/// The counters of schema version 2 (see the parent module): exact sums as `hi · 10^18 + value`,
/// and an index that yields a spread's largest entries first.
const COUNTERS: &str = "
DROP TABLE IF EXISTS counters;
CREATE TABLE counters (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    hi INTEGER NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;
CREATE INDEX counters_top ON counters (scope, hi DESC, value DESC, name);
";

/// Schema version 4 (signed reports, see the parent module): the pins and the verified mark
/// of each report. Run after [`TABLES`]; the column is added by [`migrate`] when missing.
const PINS: &str = "
CREATE TABLE IF NOT EXISTS pins (
    uid TEXT PRIMARY KEY,
    keyid TEXT NOT NULL,
    kind TEXT NOT NULL,
    pinned_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// An open SQLite store. Clones share the writer and the read connection.
#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    read: Arc<Mutex<Connection>>,
    /// The reports by uid (see [`UidIndex`]): the writer changes it after each commit, the
    /// stats read the latest reports' times from it.
    index: Arc<Mutex<UidIndex>>,
    pub(super) metrics: Arc<WriterMetrics>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Takes the lock that makes this process the store's only writer, held by the writer thread
/// until it stops. The uid index lives in this process's memory ([`UidIndex`]), so a second
/// process writing the same file would leave it stale: it is refused instead. The lock is an
/// OS lock on a file beside the database (`…-collector.lock`), released when the process ends,
/// however it ends; never on the database file itself, whose POSIX locks a second descriptor
/// would disturb.
fn own(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push("-collector.lock");
    let lock = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .with_context(|| format!("opening the lock file {}", lock.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the SQLite store {} is in use by another collector (it holds {}); an SQLite store \
             serves one collector: for several, use PostgreSQL (collector.database-uri)",
            path.display(),
            lock.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", lock.display()))
        }
    }
}

fn open_conn(path: &Path) -> anyhow::Result<Connection> {
    let conn =
        Connection::open(path).with_context(|| format!("opening SQLite {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Memory-mapped reads keep the lookups of each batch (a uid's latest report) off the read
    // syscalls. The page cache keeps SQLite's default size: a commit walks all of it (to drop
    // pages past the end of the file), which with a 64 MiB cache took 5% of ingest's CPU.
    conn.execute_batch("PRAGMA temp_store=MEMORY; PRAGMA mmap_size=268435456;")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens or creates the file at `path` and starts its writer thread.
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let path = path.to_path_buf();
        let p = path.clone();
        let (write, read, index, owner) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let owner = own(&p)?;
                let mut write = open_conn(&p)?;
                let mode: String = write.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    anyhow::bail!("SQLite {} refused WAL mode (got {mode})", p.display());
                }
                write.execute_batch("PRAGMA synchronous=FULL;")?;
                let migrated =
                    migrate(&mut write).context("creating or migrating the collector schema")?;
                let index = match migrated {
                    Some(index) => index,
                    None => load_index(&write).context("reading the reports' uids")?,
                };
                let read = open_conn(&p)?;
                read.execute_batch("PRAGMA query_only=ON;")?;
                Ok((write, read, index, owner))
            })
            .await??;
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(WriterMetrics::default());
        let index = Arc::new(Mutex::new(index));
        std::thread::Builder::new()
            .name("collect-sqlite-writer".into())
            .spawn({
                let (metrics, index) = (metrics.clone(), index.clone());
                move || writer(write, rx, &metrics, &index, owner)
            })
            .context("starting the SQLite writer")?;
        Ok(SqliteStore {
            path,
            tx,
            read: Arc::new(Mutex::new(read)),
            index,
            metrics,
        })
    }

    /// Queues `reports` for the next commit and waits for it.
    pub async fn insert(&self, reports: Vec<NewReport>) -> anyhow::Result<Vec<Outcome>> {
        enqueue(&self.tx, reports, "SQLite").await
    }

    /// Reads the counters and the partial-day window counts in one read transaction.
    pub async fn snapshot(&self, now: i64) -> anyhow::Result<Snapshot> {
        let read = self.read.clone();
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = read.lock().map_err(|_| anyhow!("SQLite reader poisoned"))?;
            let tx = conn.transaction()?;
            let mut snap = Snapshot::default();
            {
                let c = cutoffs(now)?;
                let mut push = |rows: &mut rusqlite::Rows<'_>| -> anyhow::Result<()> {
                    while let Some(r) = rows.next()? {
                        let v = join_counter(r.get(2)?, r.get(3)?);
                        if v != 0 {
                            snap.counters.push((r.get(0)?, r.get(1)?, v));
                        }
                    }
                    Ok(())
                };
                // The fixed totals and each spread's sum.
                let mut q = tx.prepare_cached(
                    "SELECT scope, name, hi, value FROM counters WHERE scope IN ('meta', 'latest', 'sum')",
                )?;
                push(&mut q.query([])?)?;
                // The largest entries of each spread, by the index.
                let mut q = tx.prepare_cached(
                    "SELECT scope, name, hi, value FROM counters
                     WHERE scope = ?1 AND (hi > 0 OR value > 0)
                     ORDER BY hi DESC, value DESC, name LIMIT ?2",
                )?;
                for scope in SPREAD_SCOPES {
                    push(&mut q.query(params![scope, TOP as i64 + 1])?)?;
                }
                // How many deployments reported each of the top plans (k-anonymity).
                let mut q = tx.prepare_cached(PLAN_DEPLOYMENTS_OF_TOP)?;
                push(&mut q.query(params![TOP as i64 + 1])?)?;
                // Seen days from the month cut-off's day on.
                let mut q = tx.prepare_cached(
                    "SELECT scope, name, hi, value FROM counters WHERE scope = ?1 AND name >= ?2",
                )?;
                for kind in ["is", "cli"] {
                    let scope = format!("{kind}_seen_day");
                    push(&mut q.query(params![scope, day_name(day_of(c.last_month))])?)?;
                }
                // The daily rows of the latest DAYS days.
                let mut q = tx.prepare_cached(
                    "SELECT scope, name, hi, value FROM counters
                     WHERE scope > 'day:' AND scope < 'day;' AND (hi <> 0 OR value <> 0)
                     ORDER BY scope DESC LIMIT ?1",
                )?;
                push(&mut q.query(params![(DAYS * DAY_FIELDS.len()) as i64])?)?;
                let index = lock(&index)?;
                for kind in ["is", "cli"] {
                    for cut in [c.last_day, c.last_week, c.last_month] {
                        let end = (day_of(cut) + 1) * MICROS_PER_DAY;
                        let n = index.latest_between(kind, cut, end);
                        snap.partial.insert((kind.to_owned(), cut), n);
                    }
                }
            }
            tx.commit()?;
            Ok(snap)
        })
        .await?
    }

    /// Every stored report in commit order.
    pub async fn all_reports(&self) -> anyhow::Result<Vec<StoredReport>> {
        let read = self.read.clone();
        tokio::task::spawn_blocking(move || {
            let conn = read.lock().map_err(|_| anyhow!("SQLite reader poisoned"))?;
            let mut q = conn.prepare(
                "SELECT id, received_at, uid, kind, sha256, body, signed_by FROM reports ORDER BY id",
            )?;
            let rows = q.query_map([], stored_report)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?
    }

    /// A uid's pin and stored reports, if `keyid` is its pinned key (one read transaction).
    pub async fn deployment(&self, uid: &str, keyid: &str) -> anyhow::Result<Held> {
        let read = self.read.clone();
        let index = self.index.clone();
        let (uid, keyid) = (uid.to_owned(), keyid.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut conn = read.lock().map_err(|_| anyhow!("SQLite reader poisoned"))?;
            let tx = conn.transaction()?;
            let Some(pin) = read_pin(&tx, &uid)? else {
                return Ok(Held::NotPinned);
            };
            if pin.keyid != keyid {
                return Ok(Held::WrongKey);
            }
            let ids = lock(&index)?.ids(&uid);
            let mut reports = Vec::with_capacity(ids.len());
            {
                // By row id, from the index; a report committed after this read began is not
                // seen, like any other.
                let mut q = tx.prepare_cached(
                    "SELECT id, received_at, uid, kind, sha256, body, signed_by FROM reports
                     WHERE id = ?1 AND uid = ?2",
                )?;
                for id in ids {
                    if let Some(r) = q.query_row(params![id, uid], stored_report).optional()? {
                        reports.push(r);
                    }
                }
            }
            tx.commit()?;
            Ok(Held::Found(pin, reports))
        })
        .await?
    }

    /// Lets the writer commit what is queued, then stops it.
    pub async fn close(&self) {
        let (reply, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(reply)).is_ok() {
            let _ = wait.await;
        }
    }
}

fn stored_report(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredReport> {
    Ok(StoredReport {
        id: r.get(0)?,
        received_at: r.get(1)?,
        uid: r.get(2)?,
        kind: r.get(3)?,
        sha256: r.get(4)?,
        body: r.get(5)?,
        signed_by: r.get(6)?,
    })
}

fn read_pin(tx: &rusqlite::Transaction<'_>, uid: &str) -> anyhow::Result<Option<Pin>> {
    let mut q = tx.prepare_cached("SELECT keyid, kind, pinned_at FROM pins WHERE uid = ?1")?;
    Ok(q.query_row([uid], |r| {
        Ok(Pin {
            keyid: r.get(0)?,
            kind: r.get(1)?,
            pinned_at: r.get(2)?,
        })
    })
    .optional()?)
}

/// Runs an [`Admin`] request in its own transaction.
fn admin(conn: &mut Connection, index: &Mutex<UidIndex>, op: &Admin) -> anyhow::Result<AdminReply> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (uid, keyid) = op.who();
    let Some(pin) = read_pin(&tx, uid)? else {
        return Ok(AdminReply::NotPinned);
    };
    if pin.keyid != keyid {
        return Ok(AdminReply::WrongKey);
    }
    let mut forgotten = Vec::new();
    let reply = match op {
        Admin::Rotate { new, at, .. } => {
            tx.execute(
                "UPDATE pins SET keyid = ?2, pinned_at = ?3 WHERE uid = ?1",
                params![uid, new, at],
            )?;
            AdminReply::Rotated
        }
        Admin::Forget { .. } => {
            let ids = lock(index)?.ids(uid);
            let mut sha256 = Vec::new();
            let mut newest = Newest::default();
            {
                let mut q = tx.prepare_cached(
                    "SELECT received_at, sha256, body FROM reports WHERE id = ?1",
                )?;
                let mut del = tx.prepare_cached("DELETE FROM reports WHERE id = ?1")?;
                for &id in &ids {
                    let (at, sha, body): (i64, String, Vec<u8>) =
                        q.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    newest.add(at, id, &body);
                    sha256.push(sha);
                    del.execute([id])?;
                }
            }
            let deltas = forget_deltas(&newest, sha256.len() as u64, Some(&pin.kind));
            add_counters(&tx, &deltas)?;
            tx.execute("DELETE FROM pins WHERE uid = ?1", [uid])?;
            forgotten = ids;
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
        .context("committing a request of a pinned key")?;
    lock(index)?.remove(uid, &forgotten);
    Ok(reply)
}

/// Adds `deltas` to the counters, exactly (read, add in 128 bits, write back: the writer is
/// the only one that writes).
fn add_counters(tx: &rusqlite::Transaction<'_>, deltas: &Deltas) -> anyhow::Result<()> {
    let mut get =
        tx.prepare_cached("SELECT hi, value FROM counters WHERE scope = ?1 AND name = ?2")?;
    let mut put = tx.prepare_cached(
        "INSERT INTO counters (scope, name, hi, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (scope, name) DO UPDATE SET hi = excluded.hi, value = excluded.value",
    )?;
    for ((scope, name), delta) in deltas {
        let old: Option<(i64, i64)> = get
            .query_row(params![scope, name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (hi, lo) = old.unwrap_or_default();
        let (hi, lo) = split_counter(join_counter(hi, lo) + delta);
        put.execute(params![scope, name, hi, lo])?;
    }
    Ok(())
}

fn writer(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    metrics: &WriterMetrics,
    index: &Mutex<UidIndex>,
    owner: std::fs::File,
) {
    while let Some(first) = rx.blocking_recv() {
        let (jobs, then) = take_batch(first, &mut rx);
        if !jobs.is_empty() {
            let batch: Vec<&NewReport> = jobs.iter().flat_map(|(r, _)| r.iter()).collect();
            let started = Instant::now();
            let whole = write_batch(&mut conn, index, &batch);
            let results = isolate(&batch, whole, |r| {
                write_batch(&mut conn, index, &[r])
                    .map(|mut o| o.remove(0))
                    .or_else(|e| unstorable(&e).ok_or_else(|| format!("{e:#}")))
            });
            metrics.record(batch.len(), started.elapsed(), failed(&results));
            answer(jobs, results);
        }
        match then {
            Some(Msg::Close(reply)) => {
                // Released first: the store may be opened again as soon as this answers.
                drop(owner);
                let _ = reply.send(());
                return;
            }
            Some(Msg::Prune(step, reply)) => {
                let _ = reply.send(prune(&mut conn, index, step).map_err(|e| format!("{e:#}")));
            }
            Some(Msg::Admin(op, reply)) => {
                let _ = reply.send(admin(&mut conn, index, &op).map_err(|e| format!("{e:#}")));
            }
            Some(Msg::Insert(..)) | None => {}
        }
    }
}

/// One bounded step of retention (see [`super::Store::retain`]), in one transaction.
fn prune(
    conn: &mut Connection,
    index: &Mutex<UidIndex>,
    step: PruneStep,
) -> anyhow::Result<Pruned> {
    let mut out = Pruned::default();
    let Some(before) = step.before else {
        return Ok(out);
    };
    let limit = i64::try_from(step.limit)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut gone: HashMap<String, Vec<i64>> = HashMap::new();
    {
        // The next reports by received time; each deployment's latest is kept.
        let mut q = tx.prepare_cached(
            "SELECT id, received_at, uid FROM reports
             WHERE received_at < ?1 AND (received_at, id) > (?2, ?3)
             ORDER BY received_at, id LIMIT ?4",
        )?;
        let rows: Vec<(i64, i64, String)> = q
            .query_map(params![before, step.after.0, step.after.1, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut del = tx.prepare_cached("DELETE FROM reports WHERE id = ?1")?;
        {
            let index = lock(index)?;
            for (id, at, uid) in &rows {
                if index.latest(uid) != Some((*at, *id)) {
                    out.reports += del.execute([id])? as u64;
                    gone.entry(uid.clone()).or_default().push(*id);
                }
            }
        }
        if rows.len() == step.limit {
            out.next = Some(rows.last().map_or(step.after, |(id, at, _)| (*at, *id)));
        }
    }
    tx.commit().context("committing a retention step")?;
    let mut index = lock(index)?;
    for (uid, ids) in gone {
        index.remove(&uid, &ids);
    }
    Ok(out)
}

/// A database error that is the report's fault (its data was refused), as an outcome.
fn unstorable(e: &anyhow::Error) -> Option<Outcome> {
    use rusqlite::ErrorCode::*;
    match e.downcast_ref::<rusqlite::Error>()? {
        rusqlite::Error::SqliteFailure(f, msg)
            if matches!(f.code, ConstraintViolation | TypeMismatch | TooBig) =>
        {
            Some(Outcome::Unstorable(
                msg.clone().unwrap_or_else(|| f.to_string()),
            ))
        }
        _ => None,
    }
}

/// Creates the schema of a new store, or brings an older one to [`SCHEMA_VERSION`].
/// Returns the uid index when the migration built it (to be used, not read again).
fn migrate(conn: &mut Connection) -> anyhow::Result<Option<UidIndex>> {
    // The version is read under the write lock, so that two processes opening one file (which
    // a collector does not do, but a tool may) migrate it once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if !super::needs_migration(version)? {
        tx.commit()?;
        return Ok(None);
    }
    let mut index = None;
    tx.execute_batch(TABLES)?;
    // Version 4: pins and the verified mark.
    tx.execute_batch(PINS)?;
    let signed_by: i64 = tx.query_row(
        "SELECT count(*) FROM pragma_table_info('reports') WHERE name = 'signed_by'",
        [],
        |r| r.get(0),
    )?;
    if signed_by == 0 {
        tx.execute_batch("ALTER TABLE reports ADD COLUMN signed_by TEXT")?;
    }
    // Version 6: the uid index that replaces `latest` and `day_latest`, made before the
    // rebuild reads reports in uid order.
    tx.execute_batch(BY_UID)?;
    if version < REBUILD_BELOW {
        rebuild_counters(&tx)?;
    } else if version < 7 {
        // Version 7: the latest reports by hour, found through the uid index.
        let built = load_index(&tx)?;
        let mut body = tx.prepare("SELECT body FROM reports WHERE id = ?1")?;
        let mut hours = SeenHours::default();
        for (received_at, id) in built.latest_reports() {
            let b: Vec<u8> = body.query_row([id], |r| r.get(0))?;
            hours.add(received_at, &b);
        }
        drop(body);
        add_counters(&tx, &hours.into_deltas())?;
        index = Some(built);
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit().context("committing the schema migration")?;
    Ok(index)
}

/// Creates the counters of schema version 3 and fills them from the stored rows (pins
/// included, see version 4).
fn rebuild_counters(tx: &rusqlite::Transaction<'_>) -> anyhow::Result<()> {
    tx.execute_batch(COUNTERS)?;
    let deltas = {
        let reports: i64 = tx.query_row("SELECT count(*) FROM reports", [], |r| r.get(0))?;
        let mut rebuild = Rebuild::new(reports);
        let mut q = tx.prepare("SELECT kind FROM pins")?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            rebuild.pin(r.get_ref(0)?.as_str()?);
        }
        let mut q =
            tx.prepare("SELECT uid, received_at, id, body FROM reports ORDER BY uid, received_at")?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            rebuild.report(
                r.get_ref(0)?.as_str()?,
                r.get(1)?,
                r.get(2)?,
                r.get_ref(3)?.as_blob()?,
            );
        }
        rebuild.finish()
    };
    {
        let mut ins =
            tx.prepare("INSERT INTO counters (scope, name, hi, value) VALUES (?1, ?2, ?3, ?4)")?;
        for ((scope, name), v) in &deltas {
            let (hi, lo) = split_counter(*v);
            ins.execute(params![scope, name, hi, lo])?;
        }
    }
    Ok(())
}

/// Builds the uid index from the stored reports (a scan of the index by received time, which
/// holds the uid and kind).
fn load_index(conn: &Connection) -> anyhow::Result<UidIndex> {
    let mut index = UidIndex::default();
    let mut q = conn.prepare("SELECT uid, kind, received_at, id FROM reports")?;
    let mut rows = q.query([])?;
    while let Some(r) = rows.next()? {
        index.add(
            r.get_ref(0)?.as_str()?,
            r.get_ref(1)?.as_str()?,
            (r.get(2)?, r.get(3)?),
        );
    }
    Ok(index)
}

/// A uid's previous latest report, from `SELECT id, received_at, sha256, body`.
fn prev_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Prev> {
    Ok(Prev::from_row(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get_ref(3)?.as_blob()?,
    ))
}

/// Locks the uid index. Its changes cannot panic half-way, so a panic elsewhere while it was
/// held left it whole: it is used on (failing here instead could report a committed batch as
/// failed, and its retry would store it twice).
fn lock(index: &Mutex<UidIndex>) -> anyhow::Result<std::sync::MutexGuard<'_, UidIndex>> {
    Ok(index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// A report by row id, as [`prev_row`] reads it.
const REPORT_BY_ID: &str = "SELECT id, received_at, sha256, body FROM reports WHERE id = ?1";

fn write_batch(
    conn: &mut Connection,
    index: &Mutex<UidIndex>,
    all: &[&NewReport],
) -> anyhow::Result<Vec<Outcome>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcomes;
    let added: Vec<(&str, &str, At)>;
    {
        // Which reports their uid's pin admits, and the pins this batch makes.
        let mut pins = HashMap::new();
        let mut q = tx.prepare_cached("SELECT keyid FROM pins WHERE uid = ?1")?;
        for r in all {
            let uid = &r.report.uid;
            if !pins.contains_key(uid)
                && let Some(k) = q
                    .query_row([uid], |row| row.get::<_, String>(0))
                    .optional()?
            {
                pins.insert(uid.clone(), k);
            }
        }
        let (verdicts, new_pins) = authorize(all, &pins);
        let mut q = tx.prepare_cached(
            "INSERT INTO pins (uid, keyid, kind, pinned_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (uid, keyid, kind, at) in &new_pins {
            q.execute(params![uid, keyid, kind, at])?;
        }
        // Added with the batch's other counters.
        let pinned = pin_deltas(&new_pins);
        let batch: Vec<&NewReport> = all
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| v.is_none())
            .map(|(r, _)| *r)
            .collect();
        let batch = batch.as_slice();
        // Each uid's latest stored report, found in the uid index.
        let latest: HashMap<&str, i64> = {
            let index = lock(index)?;
            batch
                .iter()
                .filter_map(|r| {
                    let uid = r.report.uid.as_str();
                    index.latest(uid).map(|(_, id)| (uid, id))
                })
                .collect()
        };
        let mut prev_latest = HashMap::new();
        let mut q = tx.prepare_cached(REPORT_BY_ID)?;
        for (uid, id) in latest {
            if let Some(p) = q.query_row([id], prev_row).optional()? {
                prev_latest.insert(uid.to_owned(), p);
            }
        }
        let (o, fresh) = dedupe(batch, &prev_latest);
        outcomes = merge_outcomes(verdicts, o);
        let fresh: Vec<&NewReport> = fresh.into_iter().map(|i| batch[i]).collect();
        // Read before the batch's own rows are inserted.
        let (mut prev_day, missing) = prev_days(&fresh, &prev_latest);
        let found: Vec<((i64, String), i64)> = {
            let index = lock(index)?;
            missing
                .into_iter()
                .filter_map(|(day, uid)| {
                    let (from, to) = (day * MICROS_PER_DAY, (day + 1) * MICROS_PER_DAY);
                    let (_, id) = index.latest_in(&uid, from, to)?;
                    Some(((day, uid), id))
                })
                .collect()
        };
        for (key, id) in found {
            if let Some(p) = q.query_row([id], prev_row).optional()? {
                prev_day.insert(key, p);
            }
        }
        let mut with_ids = Vec::with_capacity(fresh.len());
        let mut ins = tx.prepare_cached(
            "INSERT INTO reports (received_at, uid, kind, sha256, body, signed_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for r in fresh {
            ins.execute(params![
                r.received_at,
                r.report.uid,
                r.kind(),
                r.sha256,
                r.body,
                r.signed_by
            ])?;
            with_ids.push((tx.last_insert_rowid(), r));
        }
        let mut counters = plan(&with_ids, prev_latest, prev_day);
        for (k, v) in pinned {
            *counters.entry(k).or_default() += v;
        }
        add_counters(&tx, &counters)?;
        added = with_ids
            .iter()
            .map(|&(id, r)| (r.report.uid.as_str(), r.kind(), (r.received_at, id)))
            .collect();
    }
    tx.commit().context("committing a batch of reports")?;
    // Before anyone is answered, so that a reader after a 2xx finds the report.
    let mut index = lock(index)?;
    for (uid, kind, at) in added {
        index.add(uid, kind, at);
    }
    Ok(outcomes)
}
