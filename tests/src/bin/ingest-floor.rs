//! The ingest floor of the collector (issue 13): what the hardware allows for "read a POST body,
//! store it durably, answer 200", so the collector's throughput can be read as a ratio of it.
//! `scripts/bench.d/61-floor.sh` runs each floor and the real collector (`collector-driver serve
//! --no-rate-limit`, since every request of a load test comes from one address) under one load
//! generator.
//!
//! ```text
//! ingest-floor sqlite --listen ADDR --path FILE     floor on SQLite
//! ingest-floor postgres --listen ADDR --uri URI     floor on PostgreSQL
//! ingest-floor bodies --count N [--start I]         N distinct valid reports, one per line
//! ```
//! Each server prints `listening http://ADDR` once bound and serves until killed.
//!
//! A floor is an axum server with one route, `POST /collect`, that appends the body with the
//! collector's durability: SQLite in WAL with `synchronous=FULL`, PostgreSQL with its default
//! `synchronous_commit=on`; one writer commits whatever is queued (up to 4,096 bodies, the
//! collector's batch bound) in one transaction and answers each request after that commit,
//! as the collector's stores do. It neither parses nor validates: that is the collector's work
//! the ratio measures.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::sync::{mpsc, oneshot};

use ttn_telemetry_core::{EntitiesCount, Identity, Inputs, OsInfo, Payload};

/// The collector's bound on one batch (`collect::store::MAX_BATCH`).
const MAX_BATCH: usize = 4096;

type Job = (Bytes, oneshot::Sender<bool>);

fn arg(args: &[String], name: &str) -> anyhow::Result<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .with_context(|| format!("missing {name}"))
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Takes `first` and whatever else is queued, up to [`MAX_BATCH`].
fn take(first: Job, rx: &mut mpsc::UnboundedReceiver<Job>) -> Vec<Job> {
    let mut jobs = vec![first];
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
    jobs
}

fn sqlite_writer(path: String, mut rx: mpsc::UnboundedReceiver<Job>) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(&path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("SQLite refused WAL mode (got {mode})");
    }
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS reports (id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL, body BLOB NOT NULL);",
    )?;
    while let Some(first) = rx.blocking_recv() {
        let jobs = take(first, &mut rx);
        let at = now_micros();
        let ok = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut ins =
                    tx.prepare_cached("INSERT INTO reports (received_at, body) VALUES (?1, ?2)")?;
                for (body, _) in &jobs {
                    ins.execute(rusqlite::params![at, &body[..]])?;
                }
            }
            tx.commit()
        })()
        .inspect_err(|e| eprintln!("floor: sqlite commit: {e}"))
        .is_ok();
        for (_, reply) in jobs {
            let _ = reply.send(ok);
        }
    }
    Ok(())
}

async fn postgres_writer(
    client: tokio_postgres::Client,
    mut rx: mpsc::UnboundedReceiver<Job>,
) -> anyhow::Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS reports (id BIGSERIAL PRIMARY KEY, received_at BIGINT NOT NULL, body BYTEA NOT NULL)",
        )
        .await?;
    let ins = client
        .prepare(
            "INSERT INTO reports (received_at, body) SELECT $1, b FROM UNNEST($2::bytea[]) AS b",
        )
        .await?;
    let mut client = client;
    while let Some(first) = rx.recv().await {
        let jobs = take(first, &mut rx);
        let bodies: Vec<&[u8]> = jobs.iter().map(|(b, _)| &b[..]).collect();
        let res = async {
            let tx = client.transaction().await?;
            tx.execute(&ins, &[&now_micros(), &bodies]).await?;
            tx.commit().await
        }
        .await;
        let ok = res
            .inspect_err(|e| eprintln!("floor: postgres commit: {e}"))
            .is_ok();
        for (_, reply) in jobs {
            let _ = reply.send(ok);
        }
    }
    Ok(())
}

async fn ingest(State(tx): State<mpsc::UnboundedSender<Job>>, body: Bytes) -> StatusCode {
    let (reply, done) = oneshot::channel();
    if tx.send((body, reply)).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match done.await {
        Ok(true) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn serve_floor(listen: &str, tx: mpsc::UnboundedSender<Job>) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route("/collect", post(ingest))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr: SocketAddr = listener.local_addr()?;
    println!("listening http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// Report of deployment `i`: a distinct identity (so a distinct uid and body digest) and counts.
fn report(i: u64) -> Vec<u8> {
    let mut c = EntitiesCount::default();
    c.gateways.total = 1 + i % 9;
    c.end_devices.total = 10 + (i * 37) % 500;
    c.applications.total = 1 + i % 12;
    Inputs {
        identity: Identity::Elements(vec![format!("https://floor-{i}.example.net/api/v3")]),
        os: OsInfo {
            operating_system: "linux".into(),
            arch: "amd64".into(),
            binary_version: "3.34.0".into(),
            golang_version: "go1.23".into(),
        },
        payload: Payload::Entities(c),
    }
    .build()
    .expect("bench inputs are valid")
    .to_bytes()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen =
        || arg(&args, "--listen").or_else(|_| Ok::<_, anyhow::Error>("127.0.0.1:0".into()));
    match args.first().map(String::as_str) {
        Some("sqlite") => {
            let path = arg(&args, "--path")?;
            let (tx, rx) = mpsc::unbounded_channel();
            std::thread::spawn(move || {
                if let Err(e) = sqlite_writer(path, rx) {
                    eprintln!("floor: sqlite: {e:#}");
                    std::process::exit(1);
                }
            });
            serve_floor(&listen()?, tx).await
        }
        Some("postgres") => {
            let (client, conn) =
                tokio_postgres::connect(&arg(&args, "--uri")?, tokio_postgres::NoTls)
                    .await
                    .context("connecting to PostgreSQL")?;
            tokio::spawn(conn);
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                if let Err(e) = postgres_writer(client, rx).await {
                    eprintln!("floor: postgres: {e:#}");
                    std::process::exit(1);
                }
            });
            serve_floor(&listen()?, tx).await
        }
        Some("bodies") => {
            use std::io::Write as _;
            let count: u64 = arg(&args, "--count")?.parse()?;
            let start: u64 = arg(&args, "--start").map_or(Ok(0), |s| s.parse())?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for i in start..start + count {
                let body = report(i);
                if body.contains(&b'\n') {
                    bail!("a report body holds a newline");
                }
                out.write_all(&body)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(())
        }
        _ => {
            bail!("usage: ingest-floor sqlite|postgres|collector|bodies … (see the source's docs)")
        }
    }
}
