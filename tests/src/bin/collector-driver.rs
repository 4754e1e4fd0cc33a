//! Runs, seeds and loads a collector: test and benchmark scaffolding for the dashboard test
//! (`scripts/test.d/60-dashboard.sh`) and the collector benchmark (`scripts/bench.d/60-collect.sh`).
//!
//! ```text
//! collector-driver serve --listen 127.0.0.1:0 [--database-uri URI] [--no-rate-limit | --no-addr-limit]
//!     prints `listening http://ADDR` once bound, serves until killed or Ctrl-C
//! collector-driver seed --database-uri URI --deployments N --days D [--cli M] [--batch B] [--hostile H]
//!     stores N deployments × D daily reports (plus M CLI installations) straight into the store,
//!     back-dated over the last D days, and prints the rate; `--hostile H` adds H reports of
//!     H deployments received today, each with 1,024 frequency plan ids no other report has
//!     (the hostile mix of issue 11: H = 900 gives 921,600 distinct plans)
//! collector-driver post --addr ADDR --count N [--start I] [--plan ID]
//!     POSTs N reports of deployments I.. (with one extra frequency plan ID) over HTTP
//! collector-driver load --addr ADDR --requests N --concurrency C [--signed]
//!     bounded load: C keep-alive connections send N fresh reports; prints reports/s, p50, p99;
//!     `--signed`: each deployment signs its report with its own key (RFC 9421, issue 14 §2),
//!     signed before the clock starts, so the collector verifies and pins every one
//! collector-driver stats-time --addr ADDR --runs R
//!     times GET /api/v1/stats R times; prints p50 and max
//! ```
//!
//! Every report is built by the core from plain inputs; nothing here writes report JSON.

/// The allocator of `ttn-lw-telemetry` itself (see the workspace manifest).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use ttn_lw_telemetry::collect::{self, CollectOptions, Limits, store::NewReport, store::Store};
use ttn_telemetry_core::{
    CliUsage, CommandUsage, EntitiesCount, Identity, Inputs, MICROS_PER_DAY, OsInfo, Payload,
    uuid_v4_from_bytes,
};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    arg(args, name).map_or(Ok(default), |v| {
        v.parse().with_context(|| format!("{name} {v}"))
    })
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Report of deployment `i` on `day` (day-dependent counts so that the daily chart moves).
fn is_report(i: u64, day: u64, extra_plan: Option<&str>) -> Vec<u8> {
    is_report_plans(i, day, extra_plan.into_iter().map(str::to_owned).collect())
}

/// Report of deployment `i` on `day` with `extra` frequency plans (one gateway each).
fn is_report_plans(i: u64, day: u64, extra: Vec<String>) -> Vec<u8> {
    let mut c = EntitiesCount::default();
    let growth = day / 3;
    c.gateways.total = 2 + i % 9 + growth;
    let plans = [
        "EU_863_870_TTN",
        "US_902_928_FSB_2",
        "AU_915_928_FSB_2",
        "AS_923",
        "IN_865_867",
    ];
    c.gateways
        .gateways_by_frequency_plan_id
        .insert(plans[(i % 5) as usize].into(), 1 + i % 2);
    c.gateways
        .gateways_by_frequency_plan_id
        .insert(plans[((i / 5) % 5) as usize].into(), 1);
    if extra.len() > 1 {
        // A hostile report: only its own plan ids (1,024 fill the map).
        c.gateways.gateways_by_frequency_plan_id.clear();
    }
    for p in extra {
        c.gateways.gateways_by_frequency_plan_id.insert(p, 1);
    }
    c.end_devices.total = 40 + (i * 37) % 500 + 5 * growth;
    let a = &mut c.end_devices.activate_end_devices;
    a.total = c.end_devices.total - 10;
    a.last_month = a.total / 2 + day % 4;
    a.last_week = a.last_month / 2;
    a.last_day = a.last_week / 2;
    c.applications.total = 1 + i % 12;
    c.accounts.users.standard = 3 + i % 20;
    c.accounts.users.admin = 1 + i % 2;
    c.accounts.organizations.total = i % 4;
    let versions = ["3.34.0", "3.34.0", "3.33.2", "3.32.1", "3.31.0"];
    Inputs {
        identity: Identity::Elements(vec![format!("https://tts-{i}.example.net/api/v3")]),
        os: OsInfo {
            operating_system: ["linux", "linux", "linux", "darwin", "windows"][(i % 5) as usize]
                .into(),
            arch: ["amd64", "amd64", "arm64"][(i % 3) as usize].into(),
            binary_version: versions[((i + day / 10) % 5) as usize].into(),
            golang_version: "rustc 1.95.0".into(),
        },
        payload: Payload::Entities(c),
    }
    .build()
    .expect("seed inputs are valid")
    .to_bytes()
}

fn cli_report(i: u64) -> Vec<u8> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(i + 1).to_be_bytes());
    Inputs {
        identity: Identity::Uid(uuid_v4_from_bytes(b)),
        os: OsInfo {
            operating_system: ["linux", "darwin"][(i % 2) as usize].into(),
            arch: "arm64".into(),
            binary_version: "3.34.0".into(),
            golang_version: "rustc 1.95.0".into(),
        },
        payload: Payload::Cli(CliUsage {
            commands: vec![CommandUsage {
                command_path: "gateways list".into(),
                execution_count: 1 + i,
                last_used_at: 1_763_700_000,
            }],
            aliases: vec![],
        }),
    }
    .build()
    .expect("seed inputs are valid")
    .to_bytes()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args).await,
        Some("seed") => seed(&args).await,
        Some("post") => post(&args).await,
        Some("load") => load(&args).await,
        Some("stats-time") => stats_time(&args).await,
        _ => bail!("usage: collector serve|seed|post|load|stats-time … (see the source's docs)"),
    }
}

async fn serve(args: &[String]) -> anyhow::Result<()> {
    let listen = arg(args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let mut opts = CollectOptions::new(listen, arg(args, "--database-uri"));
    if args.iter().any(|a| a == "--no-rate-limit") {
        opts.limits = Limits {
            per_addr: None,
            per_uid: None,
            ..Limits::default()
        };
    }
    // The per-uid limit alone (on PostgreSQL it is kept in the database: its cost per batch).
    if args.iter().any(|a| a == "--no-addr-limit") {
        opts.limits.per_addr = None;
    }
    let c = collect::start(opts).await?;
    println!("listening http://{}", c.local_addr());
    collect::stop_signal().await?;
    c.shutdown().await;
    Ok(())
}

async fn seed(args: &[String]) -> anyhow::Result<()> {
    let uri = arg(args, "--database-uri").context("--database-uri")?;
    let deployments = num(args, "--deployments", 100)?;
    let days = num(args, "--days", 30)?;
    let cli = num(args, "--cli", 0)?;
    let batch = num(args, "--batch", 5000)? as usize;
    let store = Store::open(Some(&uri)).await?;
    let now = now_micros();
    let today = now.div_euclid(MICROS_PER_DAY);
    let start = Instant::now();
    let mut pending: Vec<NewReport> = Vec::with_capacity(batch);
    let mut total = 0u64;
    // Writes are pipelined: a few batches are queued while one commits.
    let mut inflight = tokio::task::JoinSet::new();
    for d in 0..days {
        let day_start = (today - (days - d) as i64) * MICROS_PER_DAY;
        for i in 0..deployments {
            // Deployments spread over the day; some skip days (they are offline).
            if (i + d) % 11 == 10 {
                continue;
            }
            let at = day_start + ((i * 7919) % 86_400) as i64 * 1_000_000;
            pending.push(NewReport::parse(at, is_report(i, d, None))?);
            if pending.len() == batch {
                let rows = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                total += rows.len() as u64;
                let s = store.clone();
                inflight.spawn(async move { s.insert(rows).await });
                while inflight.len() >= 4 {
                    inflight.join_next().await.expect("a task")??;
                }
            }
        }
    }
    for i in 0..cli {
        let at = now - ((i % days.max(1)) as i64) * MICROS_PER_DAY - 3_600_000_000;
        pending.push(NewReport::parse(at, cli_report(i))?);
    }
    for h in 0..num(args, "--hostile", 0)? {
        let plans = (0..1024).map(|p| format!("HOSTILE_{h}_{p:04}")).collect();
        let at = now - 60_000_000 - h as i64;
        pending.push(NewReport::parse(
            at,
            is_report_plans(10_000_000 + h, days, plans),
        )?);
        if pending.len() >= 100 {
            total += pending.len() as u64;
            store.insert(std::mem::take(&mut pending)).await?;
        }
    }
    total += pending.len() as u64;
    if !pending.is_empty() {
        store.insert(pending).await?;
    }
    while let Some(r) = inflight.join_next().await {
        r??;
    }
    store.close().await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "seeded {total} reports in {secs:.1} s ({:.0} reports/s)",
        total as f64 / secs
    );
    Ok(())
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    addr: SocketAddr,
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { addr, send })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        self.request_with(method, path, &[], body).await
    }

    async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        self.send.ready().await?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }
}

fn addr_arg(args: &[String]) -> anyhow::Result<SocketAddr> {
    let a = arg(args, "--addr").context("--addr")?;
    Ok(a.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?)
}

async fn post(args: &[String]) -> anyhow::Result<()> {
    let addr = addr_arg(args)?;
    let count = num(args, "--count", 1)?;
    let first = num(args, "--start", 0)?;
    let plan = arg(args, "--plan");
    let mut conn = Conn::open(addr).await?;
    for i in first..first + count {
        let (status, body) = conn
            .request("POST", "/collect", is_report(i, 40, plan.as_deref()))
            .await?;
        if status != 200 {
            bail!("POST /collect: {status} {}", String::from_utf8_lossy(&body));
        }
    }
    let (status, _) = conn
        .request("POST", "/collect", cli_report(first + 1_000_000))
        .await?;
    if status != 200 {
        bail!("POST /collect (cli): {status}");
    }
    println!("posted {} reports", count + 1);
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn load(args: &[String]) -> anyhow::Result<()> {
    let addr = addr_arg(args)?;
    let requests = num(args, "--requests", 20_000)?;
    let concurrency = num(args, "--concurrency", 64)?.max(1);
    let offset = num(args, "--start", now_micros() as u64 % 1_000_000_000)?;
    let signed = args.iter().any(|a| a == "--signed");
    let created = now_micros() / 1_000_000;
    let target = format!("http://{addr}/collect");
    // Bodies (and signatures) are made before the clock starts: the benchmark measures the
    // collector.
    type Req = (Vec<u8>, Vec<(&'static str, String)>);
    let mut per_worker: Vec<Vec<Req>> = vec![Vec::new(); concurrency as usize];
    for i in 0..requests {
        let body = is_report(offset + i, 0, None);
        let mut headers = Vec::new();
        if signed {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(offset + i).to_le_bytes());
            let key = ttn_telemetry_core::SigningKey::from_seed(&seed);
            let digest = ttn_telemetry_core::content_digest(&body);
            let h = key.sign_request(
                &ttn_telemetry_core::Request {
                    method: "POST",
                    target_uri: &target,
                    content_digest: &digest,
                },
                created,
            );
            headers = vec![
                ("content-digest", digest),
                ("signature-input", h.input),
                ("signature", h.signature),
            ];
        }
        per_worker[(i % concurrency) as usize].push((body, headers));
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for bodies in per_worker {
        tasks.spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut lat = Vec::with_capacity(bodies.len());
            let mut refused = 0u64;
            for (body, headers) in bodies {
                let t = Instant::now();
                let (status, _) = conn
                    .request_with("POST", "/collect", &headers, body)
                    .await?;
                lat.push(t.elapsed());
                if status != 200 {
                    refused += 1;
                }
            }
            anyhow::Ok((lat, refused))
        });
    }
    let mut lat = Vec::new();
    let mut refused = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, f) = r??;
        lat.extend(l);
        refused += f;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "load: {requests} {}reports, concurrency {concurrency}: {:.0} reports/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, non-2xx {refused}",
        if signed { "signed " } else { "" },
        requests as f64 / secs,
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    if refused > 0 {
        bail!("{refused} reports were refused");
    }
    Ok(())
}

async fn stats_time(args: &[String]) -> anyhow::Result<()> {
    let addr = addr_arg(args)?;
    let runs = num(args, "--runs", 20)?.max(1);
    let mut conn = Conn::open(addr).await?;
    let mut lat = Vec::new();
    let mut body = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let (status, b) = conn.request("GET", "/api/v1/stats", vec![]).await?;
        lat.push(t.elapsed());
        if status != 200 {
            bail!("GET /api/v1/stats: {status}");
        }
        body = b;
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    lat.sort();
    println!(
        "stats: {} reports stored, {} deployments, {} days: p50 {:.2} ms, max {:.2} ms over {runs} runs",
        v["reports_stored"],
        v["deployments"]["total"],
        v["daily"].as_array().map_or(0, Vec::len),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}
