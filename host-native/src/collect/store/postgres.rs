//! The PostgreSQL store, for collectors that serve many deployments.
//!
//! Same tables and the same batching as the SQLite store. A batch is one transaction; the reply
//! (and so the HTTP 2xx) comes after `COMMIT` returns, which with PostgreSQL's default
//! `synchronous_commit=on` means the WAL is flushed. Each batch takes a transaction-level
//! advisory lock first, so several collectors may share one database without racing on the
//! `latest` rows and counters. Connections follow libpq's `sslmode` over rustls
//! ([`crate::pgconn`]); the URI may also be a `key=value` conninfo string.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::Client;
use ttn_telemetry_core::{MICROS_PER_DAY, cutoffs, redact_uri};

use super::{
    Msg, NewReport, Prev, Snapshot, StoredReport, answer, day_of, enqueue, plan, take_batch,
};

/// Advisory lock key that serializes batches of collectors sharing a database ("ttnc").
const LOCK_KEY: i64 = 0x7474_6e63;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id BIGSERIAL PRIMARY KEY,
    received_at BIGINT NOT NULL,
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (
    uid TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    report_id BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS latest_kind_received ON latest (kind, received_at);
CREATE TABLE IF NOT EXISTS day_latest (
    day BIGINT NOT NULL,
    uid TEXT NOT NULL,
    report_id BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (day, uid)
);
CREATE TABLE IF NOT EXISTS counters (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);
";

/// An open PostgreSQL store. Clones share the writer and the read connection.
#[derive(Clone)]
pub struct PgStore {
    uri: String,
    tx: mpsc::UnboundedSender<Msg>,
    read: Arc<Mutex<Client>>,
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
    /// Connects, creates the schema if needed, and starts the writer task.
    pub async fn open(uri: &str) -> anyhow::Result<PgStore> {
        let write = connect(uri).await?;
        write
            .batch_execute(&format!(
                "SELECT pg_advisory_lock({LOCK_KEY}); {SCHEMA} SELECT pg_advisory_unlock({LOCK_KEY});"
            ))
            .await
            .context("creating the collector schema")?;
        let read = connect(uri).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(uri.to_owned(), write, rx));
        Ok(PgStore {
            uri: uri.to_owned(),
            tx,
            read: Arc::new(Mutex::new(read)),
        })
    }

    /// Queues `reports` for the next commit and waits for it.
    pub async fn insert(&self, reports: Vec<NewReport>) -> anyhow::Result<()> {
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
        for row in tx
            .query(
                "SELECT scope, name, value FROM counters WHERE value <> 0",
                &[],
            )
            .await?
        {
            snap.counters.push((row.get(0), row.get(1), row.get(2)));
        }
        let q = tx
            .prepare(
                "SELECT count(*) FROM latest WHERE kind = $1 AND received_at >= $2 AND received_at < $3",
            )
            .await?;
        for kind in ["is", "cli"] {
            for cut in [c.last_day, c.last_week, c.last_month] {
                let end = (day_of(cut) + 1) * MICROS_PER_DAY;
                let n: i64 = tx.query_one(&q, &[&kind, &cut, &end]).await?.get(0);
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
                "SELECT id, received_at, uid, kind, sha256, body FROM reports ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredReport {
                id: r.get(0),
                received_at: r.get(1),
                uid: r.get(2),
                kind: r.get(3),
                sha256: r.get(4),
                body: r.get(5),
            })
            .collect())
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

async fn writer(uri: String, mut client: Client, mut rx: mpsc::UnboundedReceiver<Msg>) {
    while let Some(first) = rx.recv().await {
        let (jobs, close) = take_batch(first, &mut rx);
        if !jobs.is_empty() {
            let batch: Vec<&NewReport> = jobs.iter().flat_map(|(r, _)| r.iter()).collect();
            let result = match reconnect(&uri, &mut client).await {
                Ok(()) => write_batch(&mut client, &batch).await,
                Err(e) => Err(e),
            }
            .map_err(|e| format!("{e:#}"));
            answer(jobs, result);
        }
        if let Some(reply) = close {
            let _ = reply.send(());
            return;
        }
    }
}

async fn write_batch(client: &mut Client, batch: &[&NewReport]) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({LOCK_KEY})"))
        .await?;
    let n = i32::try_from(batch.len())?;
    let mut ids: Vec<i64> = tx
        .query(
            "SELECT nextval('reports_id_seq') FROM generate_series(1, $1::int)",
            &[&n],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort_unstable();
    let received: Vec<i64> = batch.iter().map(|r| r.received_at).collect();
    let uids: Vec<&str> = batch.iter().map(|r| r.report.uid.as_str()).collect();
    let kinds: Vec<&str> = batch.iter().map(|r| r.kind()).collect();
    let digests: Vec<&str> = batch.iter().map(|r| r.sha256.as_str()).collect();
    let bodies: Vec<&[u8]> = batch.iter().map(|r| r.body.as_slice()).collect();
    tx.execute(
        "INSERT INTO reports (id, received_at, uid, kind, sha256, body)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[])",
        &[&ids, &received, &uids, &kinds, &digests, &bodies],
    )
    .await?;
    let with_ids: Vec<(i64, &NewReport)> = ids.iter().copied().zip(batch.iter().copied()).collect();

    let mut prev_latest = HashMap::new();
    for row in tx
        .query(
            "SELECT l.uid, l.report_id, l.received_at, r.body FROM latest l
             JOIN reports r ON r.id = l.report_id WHERE l.uid = ANY($1)",
            &[&uids],
        )
        .await?
    {
        let body: &[u8] = row.get(3);
        prev_latest.insert(row.get(0), Prev::from_row(row.get(1), row.get(2), body)?);
    }
    let days: Vec<i64> = batch.iter().map(|r| day_of(r.received_at)).collect();
    let mut prev_day = HashMap::new();
    for row in tx
        .query(
            "SELECT d.day, d.uid, d.report_id, d.received_at, r.body FROM day_latest d
             JOIN (SELECT DISTINCT * FROM UNNEST($1::bigint[], $2::text[]) AS k(day, uid)) k
               ON d.day = k.day AND d.uid = k.uid
             JOIN reports r ON r.id = d.report_id",
            &[&days, &uids],
        )
        .await?
    {
        let body: &[u8] = row.get(4);
        prev_day.insert(
            (row.get::<_, i64>(0), row.get::<_, String>(1)),
            Prev::from_row(row.get(2), row.get(3), body)?,
        );
    }
    let plan = plan(&with_ids, prev_latest, prev_day);

    let (mut u, mut k, mut id, mut at) = (vec![], vec![], vec![], vec![]);
    for (uid, (kind, rid, rat)) in &plan.latest {
        u.push(uid.as_str());
        k.push(*kind);
        id.push(*rid);
        at.push(*rat);
    }
    tx.execute(
        "INSERT INTO latest (uid, kind, report_id, received_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[])
         ON CONFLICT (uid) DO UPDATE SET kind = excluded.kind, report_id = excluded.report_id,
         received_at = excluded.received_at",
        &[&u, &k, &id, &at],
    )
    .await?;
    let (mut d, mut u, mut id, mut at) = (vec![], vec![], vec![], vec![]);
    for ((day, uid), (rid, rat)) in &plan.day_latest {
        d.push(*day);
        u.push(uid.as_str());
        id.push(*rid);
        at.push(*rat);
    }
    tx.execute(
        "INSERT INTO day_latest (day, uid, report_id, received_at)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])
         ON CONFLICT (day, uid) DO UPDATE SET report_id = excluded.report_id,
         received_at = excluded.received_at",
        &[&d, &u, &id, &at],
    )
    .await?;
    let (mut s, mut nm, mut v) = (vec![], vec![], vec![]);
    for ((scope, name), value) in &plan.counters {
        s.push(scope.as_str());
        nm.push(name.as_str());
        v.push(*value);
    }
    tx.execute(
        "INSERT INTO counters (scope, name, value)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
         ON CONFLICT (scope, name) DO UPDATE SET value = counters.value + excluded.value",
        &[&s, &nm, &v],
    )
    .await?;
    tx.commit().await.context("committing a batch of reports")?;
    Ok(())
}
