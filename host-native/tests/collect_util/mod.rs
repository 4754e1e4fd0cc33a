//! Helpers shared by the collector tests: report builders, a fresh store per test, an HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::http::HeaderMap;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use ttn_lw_telemetry::collect::{self, CollectOptions, Collector, Limits};
use ttn_telemetry_core::{
    CliUsage, CommandUsage, EntitiesCount, Identity, Inputs, OsInfo, Payload, uuid_v4_from_bytes,
};

/// An Identity Server report of deployment `i` with counts derived from `i` and `gen`.
pub fn is_report(i: u64, generation: u64) -> Vec<u8> {
    let mut c = EntitiesCount::default();
    c.gateways.total = 3 + i % 5 + generation;
    c.gateways
        .gateways_by_frequency_plan_id
        .insert("EU_863_870_TTN".into(), 1 + i % 3);
    c.gateways
        .gateways_by_frequency_plan_id
        .insert(format!("US_902_928_FSB_{}", 1 + i % 2), 2);
    c.end_devices.total = 100 + i + generation;
    let a = &mut c.end_devices.activate_end_devices;
    a.total = 90 + i;
    a.last_month = 50 + i % 7;
    a.last_week = 20 + i % 5;
    a.last_day = 10 + i % 3;
    c.applications.total = 4 + i % 4;
    c.accounts.users.standard = 7 + i % 3;
    c.accounts.users.admin = 1;
    c.accounts.organizations.total = 2 + i % 2;
    Inputs {
        identity: Identity::Elements(vec![format!("https://tts-{i}.example/api/v3")]),
        os: os(["linux", "linux", "darwin", "windows"][(i % 4) as usize], i),
        payload: Payload::Entities(c),
    }
    .build()
    .expect("test inputs are valid")
    .to_bytes()
}

/// A report with gateways on one custom frequency plan id.
pub fn is_report_with_plan(i: u64, plan: &str) -> Vec<u8> {
    let mut c = EntitiesCount::default();
    c.gateways.total = 1;
    c.gateways
        .gateways_by_frequency_plan_id
        .insert(plan.into(), 1);
    Inputs {
        identity: Identity::Elements(vec![format!("plan-{i}")]),
        os: os("linux", i),
        payload: Payload::Entities(c),
    }
    .build()
    .expect("test inputs are valid")
    .to_bytes()
}

/// A CLI report of installation `i`.
pub fn cli_report(i: u64) -> Vec<u8> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&i.to_be_bytes());
    Inputs {
        identity: Identity::Uid(uuid_v4_from_bytes(bytes)),
        os: os("linux", i),
        payload: Payload::Cli(CliUsage {
            commands: vec![CommandUsage {
                command_path: "end-devices list".into(),
                execution_count: 3,
                last_used_at: 1_700_000_000,
            }],
            aliases: vec![],
        }),
    }
    .build()
    .expect("test inputs are valid")
    .to_bytes()
}

fn os(name: &str, i: u64) -> OsInfo {
    OsInfo {
        operating_system: name.into(),
        arch: ["amd64", "arm64"][(i % 2) as usize].into(),
        binary_version: ["3.34.0", "3.33.1", "3.32.0"][(i % 3) as usize].into(),
        golang_version: "rustc 1.95.0".into(),
    }
}

/// Admin URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("TTN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates a fresh PostgreSQL database and returns its URI. Fails loudly when PostgreSQL is
/// unreachable: these tests never skip.
pub async fn fresh_pg_database(tag: &str) -> String {
    let admin = pg_admin_url();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is unreachable at {admin} ({e}): start it or set TTN_TEST_PG_URL \
                 (./task test does both)"
            )
        });
    tokio::spawn(conn);
    let nonce: u64 = {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        h.finish()
    };
    let name = format!("ttn_collect_{tag}_{nonce:016x}");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creating a test database");
    let (base, _) = admin
        .rsplit_once('/')
        .expect("TTN_TEST_PG_URL ends in /DBNAME");
    format!("{base}/{name}")
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Removes a test's store when the test ends (passed or not).
#[derive(Debug)]
pub enum StoreGuard {
    /// The SQLite file's directory.
    Dir(tempfile::TempDir),
    /// The PostgreSQL database's name.
    Database(String),
}

impl Drop for StoreGuard {
    fn drop(&mut self) {
        if let StoreGuard::Database(name) = self {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let (c, conn) = tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls)
                        .await
                        .ok()?;
                    tokio::spawn(conn);
                    c.batch_execute(&sql).await.ok()
                })
            })
            .join();
        }
    }
}

/// Runs `sql` (several statements) on the store at `uri`, behind any collector's back.
pub async fn run_sql(backend: Backend, uri: &str, sql: &str) {
    match backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(uri.strip_prefix("sqlite:").unwrap()).unwrap();
            conn.execute_batch(sql).unwrap();
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
        }
    }
}

/// Takes the (closed) store at `uri` back to schema `version`: runs `sql` (what that version
/// did not have), then sets the version mark, as an older collector would have left it.
pub async fn downgrade(backend: Backend, uri: &str, sql: &str, version: i64) {
    let mark = match backend {
        Backend::Sqlite => format!("PRAGMA user_version = {version}"),
        Backend::Postgres => {
            format!("DELETE FROM collector_schema; INSERT INTO collector_schema VALUES ({version})")
        }
    };
    // What later versions added that a store of `version` never held.
    let later = if version < 7 {
        "DELETE FROM counters WHERE scope IN ('is_seen_hour', 'cli_seen_hour'); "
    } else {
        ""
    };
    run_sql(backend, uri, &format!("{sql}; {later}{mark}")).await;
}

/// A database URI for a fresh store of `backend`, and the guard that removes it.
pub async fn fresh_store(backend: Backend, tag: &str) -> (String, StoreGuard) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let uri = format!("sqlite:{}", dir.path().join("collector.sqlite3").display());
            (uri, StoreGuard::Dir(dir))
        }
        Backend::Postgres => {
            let uri = fresh_pg_database(tag).await;
            let name = uri.rsplit('/').next().unwrap_or_default().to_owned();
            (uri, StoreGuard::Database(name))
        }
    }
}

/// A clock tests can set (Unix microseconds).
#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn at(micros: i64) -> Self {
        TestClock(Arc::new(AtomicI64::new(micros)))
    }
    pub fn set(&self, micros: i64) {
        self.0.store(micros, Ordering::SeqCst);
    }
    pub fn clock(&self) -> collect::Clock {
        let a = self.0.clone();
        Arc::new(move || a.load(Ordering::SeqCst))
    }
}

/// Starts a collector on an ephemeral loopback port, with k-anonymity 1 (every value shown:
/// tests about other things post from few deployments; see [`start_k`]).
pub async fn start(uri: &str, limits: Limits, clock: Option<collect::Clock>) -> Collector {
    start_k(uri, limits, clock, 1).await
}

/// [`start`] with k-anonymity `k`.
pub async fn start_k(
    uri: &str,
    limits: Limits,
    clock: Option<collect::Clock>,
    k: u64,
) -> Collector {
    let mut opts = CollectOptions::new("127.0.0.1:0", Some(uri.to_owned()));
    opts.limits = limits;
    opts.k_anonymity = k;
    if let Some(c) = clock {
        opts.clock = c;
    }
    collect::start(opts).await.expect("collector starts")
}

/// Limits without rate limiting, for tests about other things.
pub fn unlimited() -> Limits {
    Limits {
        per_uid: None,
        per_addr: None,
        ..Limits::default()
    }
}

/// A response as the tests see it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends one request on a new connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<Resp> {
    let stream = TcpStream::connect(addr).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    Ok(Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// POSTs a report body as JSON.
pub async fn post_json(addr: SocketAddr, body: Vec<u8>) -> Resp {
    request(
        addr,
        "POST",
        "/collect",
        &[("content-type", "application/json")],
        body,
    )
    .await
    .expect("request completes")
}

/// GETs `/api/v1/stats`.
pub async fn stats(addr: SocketAddr) -> serde_json::Value {
    let r = request(addr, "GET", "/api/v1/stats", &[], vec![])
        .await
        .expect("stats request");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Runs a test body once on SQLite and once on PostgreSQL: `both!(name)` makes `name::sqlite`
/// and `name::postgres` from `async fn name(b: Backend)`.
#[allow(unused_macros)]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }
        }
    };
}
