//! The embedded store: one SQLite file in WAL mode.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so every commit fsyncs the WAL before
//! it returns, and a report is acknowledged only after its commit. That holds across `kill -9`
//! and across power loss. (`NORMAL` would survive a process crash but not a power cut; with
//! group commit the fsync is shared by a whole batch, so FULL costs little.)
//!
//! One writer thread owns the write connection and commits batches (see the parent module). A
//! separate read connection serves stats; WAL lets it read while the writer writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};
use ttn_telemetry_core::{MICROS_PER_DAY, cutoffs};

use super::{
    Msg, NewReport, Prev, Snapshot, StoredReport, answer, day_of, enqueue, plan, take_batch,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (
    uid TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    report_id INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS latest_kind_received ON latest (kind, received_at);
CREATE TABLE IF NOT EXISTS day_latest (
    day INTEGER NOT NULL,
    uid TEXT NOT NULL,
    report_id INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (day, uid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;
";

/// An open SQLite store. Clones share the writer and the read connection.
#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    tx: mpsc::UnboundedSender<Msg>,
    read: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_conn(path: &Path) -> anyhow::Result<Connection> {
    let conn =
        Connection::open(path).with_context(|| format!("opening SQLite {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // A larger page cache and memory-mapped reads keep the `latest` and `day_latest` lookups
    // of each batch off the read syscalls.
    conn.execute_batch(
        "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=268435456;",
    )?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens or creates the file at `path` and starts its writer thread.
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let path = path.to_path_buf();
        let p = path.clone();
        let (write, read) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let write = open_conn(&p)?;
            let mode: String = write.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                anyhow::bail!("SQLite {} refused WAL mode (got {mode})", p.display());
            }
            write.execute_batch("PRAGMA synchronous=FULL;")?;
            write
                .execute_batch(SCHEMA)
                .context("creating the collector schema")?;
            let read = open_conn(&p)?;
            read.execute_batch("PRAGMA query_only=ON;")?;
            Ok((write, read))
        })
        .await??;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("collect-sqlite-writer".into())
            .spawn(move || writer(write, rx))
            .context("starting the SQLite writer")?;
        Ok(SqliteStore {
            path,
            tx,
            read: Arc::new(Mutex::new(read)),
        })
    }

    /// Queues `reports` for the next commit and waits for it.
    pub async fn insert(&self, reports: Vec<NewReport>) -> anyhow::Result<()> {
        enqueue(&self.tx, reports, "SQLite").await
    }

    /// Reads the counters and the partial-day window counts in one read transaction.
    pub async fn snapshot(&self, now: i64) -> anyhow::Result<Snapshot> {
        let read = self.read.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = read.lock().map_err(|_| anyhow!("SQLite reader poisoned"))?;
            let tx = conn.transaction()?;
            let mut snap = Snapshot::default();
            {
                let mut q =
                    tx.prepare_cached("SELECT scope, name, value FROM counters WHERE value <> 0")?;
                let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                for row in rows {
                    snap.counters.push(row?);
                }
                let c = cutoffs(now)?;
                let mut q = tx.prepare_cached(
                    "SELECT count(*) FROM latest WHERE kind = ?1 AND received_at >= ?2 AND received_at < ?3",
                )?;
                for kind in ["is", "cli"] {
                    for cut in [c.last_day, c.last_week, c.last_month] {
                        let end = (day_of(cut) + 1) * MICROS_PER_DAY;
                        let n: i64 = q.query_row(params![kind, cut, end], |r| r.get(0))?;
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
                "SELECT id, received_at, uid, kind, sha256, body FROM reports ORDER BY id",
            )?;
            let rows = q.query_map([], |r| {
                Ok(StoredReport {
                    id: r.get(0)?,
                    received_at: r.get(1)?,
                    uid: r.get(2)?,
                    kind: r.get(3)?,
                    sha256: r.get(4)?,
                    body: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
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

fn writer(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Msg>) {
    while let Some(first) = rx.blocking_recv() {
        let (jobs, close) = take_batch(first, &mut rx);
        if !jobs.is_empty() {
            let batch: Vec<&NewReport> = jobs.iter().flat_map(|(r, _)| r.iter()).collect();
            let result = write_batch(&mut conn, &batch).map_err(|e| format!("{e:#}"));
            answer(jobs, result);
        }
        if let Some(reply) = close {
            let _ = reply.send(());
            return;
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[&NewReport]) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut with_ids = Vec::with_capacity(batch.len());
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO reports (received_at, uid, kind, sha256, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for r in batch {
            ins.execute(params![
                r.received_at,
                r.report.uid,
                r.kind(),
                r.sha256,
                r.body
            ])?;
            with_ids.push((tx.last_insert_rowid(), *r));
        }
        let mut prev_latest = HashMap::new();
        let mut q = tx.prepare_cached(
            "SELECT l.report_id, l.received_at, r.body FROM latest l JOIN reports r ON r.id = l.report_id WHERE l.uid = ?1",
        )?;
        for (_, r) in &with_ids {
            let uid = &r.report.uid;
            if prev_latest.contains_key(uid) {
                continue;
            }
            let row: Option<(i64, i64, Vec<u8>)> = q
                .query_row([uid], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()?;
            if let Some((id, at, body)) = row {
                prev_latest.insert(uid.clone(), Prev::from_row(id, at, &body)?);
            }
        }
        let mut prev_day = HashMap::new();
        let mut q = tx.prepare_cached(
            "SELECT d.report_id, d.received_at, r.body FROM day_latest d JOIN reports r ON r.id = d.report_id WHERE d.day = ?1 AND d.uid = ?2",
        )?;
        for (_, r) in &with_ids {
            let key = (day_of(r.received_at), r.report.uid.clone());
            if prev_day.contains_key(&key) {
                continue;
            }
            let row: Option<(i64, i64, Vec<u8>)> = q
                .query_row(params![key.0, key.1], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            if let Some((id, at, body)) = row {
                prev_day.insert(key, Prev::from_row(id, at, &body)?);
            }
        }
        let plan = plan(&with_ids, prev_latest, prev_day);
        let mut q = tx.prepare_cached(
            "INSERT INTO latest (uid, kind, report_id, received_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (uid) DO UPDATE SET kind = excluded.kind, report_id = excluded.report_id,
             received_at = excluded.received_at",
        )?;
        for (uid, (kind, id, at)) in &plan.latest {
            q.execute(params![uid, kind, id, at])?;
        }
        let mut q = tx.prepare_cached(
            "INSERT INTO day_latest (day, uid, report_id, received_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (day, uid) DO UPDATE SET report_id = excluded.report_id,
             received_at = excluded.received_at",
        )?;
        for ((day, uid), (id, at)) in &plan.day_latest {
            q.execute(params![day, uid, id, at])?;
        }
        let mut q = tx.prepare_cached(
            "INSERT INTO counters (scope, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (scope, name) DO UPDATE SET value = value + excluded.value",
        )?;
        for ((scope, name), v) in &plan.counters {
            q.execute(params![scope, name, v])?;
        }
    }
    tx.commit().context("committing a batch of reports")?;
    Ok(())
}
