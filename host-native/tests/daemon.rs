//! The run loop end to end on loopback: schedule → count → core bytes → delivery → audit,
//! with the admin listener, the start-up log line, restarts, Redis replicas, and the off path.

mod common;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{Reply, Sink};
use ttn_lw_telemetry::admin::InputsProvider;
use ttn_lw_telemetry::audit::{read_history, read_last_body};
use ttn_lw_telemetry::daemon::{self, DaemonConfig, Shutdown};
use ttn_lw_telemetry::deliver::DeliverConfig;
use ttn_lw_telemetry::schedule::Coordinator;
use ttn_lw_telemetry::schedule::local::LocalSchedule;
use ttn_lw_telemetry::schedule::redis::{RedisSchedule, RedisTarget};
use ttn_telemetry_core::{Inputs, sha256_hex};

/// Captured log output.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Counting(AtomicUsize);

impl InputsProvider for Counting {
    fn inputs(&self) -> anyhow::Result<Inputs> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(common::inputs())
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(target: String, interval: Duration, state_dir: &Path) -> DaemonConfig {
    let mut deliver = DeliverConfig::new(target);
    deliver.attempt_timeout = Duration::from_secs(5);
    DaemonConfig {
        off_reason: None,
        deliver,
        interval,
        state_dir: state_dir.to_owned(),
        admin_listen: None,
        admin_token: None,
        uid_elements: vec!["daemon-test".into()],
    }
}

/// Runs the daemon on this thread (so the captured log subscriber applies) until `stop_after`.
fn run_for(
    cfg: DaemonConfig,
    coordinator: impl FnOnce() -> anyhow::Result<Box<dyn Coordinator>>,
    provider: Arc<dyn InputsProvider>,
    stop_after: Duration,
    logs: &Logs,
) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(stop_after);
        s.trigger();
    });
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let r = tracing::subscriber::with_default(subscriber, || {
        daemon::run(cfg, coordinator, provider, shutdown)
    });
    stopper.join().unwrap();
    r
}

fn local(dir: &Path, interval: Duration) -> impl FnOnce() -> anyhow::Result<Box<dyn Coordinator>> {
    let dir = dir.to_owned();
    move || {
        Ok(
            Box::new(LocalSchedule::open(dir, interval, SystemTime::now())?)
                as Box<dyn Coordinator>,
        )
    }
}

#[test]
fn reports_once_per_interval_with_audit_metrics_and_the_startup_line() {
    let sink = Sink::start(vec![Reply::status(503)], Reply::Receipt(200));
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_millis(1000);
    let mut cfg = config(
        format!("http://agent:t0psecret@{}/collect", sink.addr),
        interval,
        dir.path(),
    );
    // One retry after a 503: keep its wait short.
    cfg.deliver.backoff.base = Duration::from_millis(100);
    let admin = free_addr();
    cfg.admin_listen = Some(admin);
    let provider = Arc::new(Counting(AtomicUsize::new(0)));
    let logs = Logs::default();
    let began = Instant::now();

    // Scrape the metrics while the daemon runs.
    let metrics = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2600));
        let mut r = ureq::get(format!("http://{admin}/metrics")).call().unwrap();
        r.body_mut().read_to_string().unwrap()
    });
    run_for(
        cfg,
        local(dir.path(), interval),
        provider.clone(),
        Duration::from_millis(2800),
        &logs,
    )
    .unwrap();

    let reqs = sink.requests();
    let body = common::body();
    // Slot 1 at 1 s (503, then a retry that succeeds), slot 2 at 2 s.
    assert_eq!(
        reqs.len(),
        3,
        "{:?}",
        reqs.iter().map(|r| r.at - began).collect::<Vec<_>>()
    );
    assert!(reqs.iter().all(|r| r.body == body));
    assert!(
        reqs[0].at - began >= Duration::from_millis(950),
        "the first report waits one interval"
    );
    assert!(reqs[2].at - reqs[1].at >= Duration::from_millis(600));
    assert_eq!(
        provider.0.load(Ordering::SeqCst),
        2,
        "counted once per report"
    );

    let h = read_history(dir.path()).unwrap();
    let outcomes: Vec<&str> = h.entries.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "sending",
            "retryable-status",
            "sending",
            "delivered",
            "sending",
            "delivered"
        ]
    );
    assert!(h.entries.iter().all(|e| e.sha256 == sha256_hex(&body)));
    assert_eq!(read_last_body(dir.path()).unwrap().unwrap(), body);

    let text = metrics.join().unwrap();
    assert!(
        text.lines()
            .any(|l| l == "ttn_lw_telemetry_consecutive_failures 0"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ttn_lw_telemetry_last_success_timestamp_seconds "))
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ttn_lw_telemetry_next_due_timestamp_seconds "))
    );

    let log = logs.text();
    assert!(log.contains("telemetry is on"), "{log}");
    assert!(log.contains("telemetry.enable=false"), "{log}");
    assert!(log.contains("DO_NOT_TRACK=1"), "{log}");
    assert!(!log.contains("t0psecret"), "no secrets in logs:\n{log}");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(!audit.contains("t0psecret"));
    assert!(audit.contains("agent:***@"));
}

#[test]
fn a_restart_keeps_the_schedule() {
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_millis(1500);
    let provider: Arc<dyn InputsProvider> = Arc::new(Counting(AtomicUsize::new(0)));
    let logs = Logs::default();
    let began = Instant::now();
    // Stopped before the first report is due: nothing is sent.
    run_for(
        config(sink.url(), interval, dir.path()),
        local(dir.path(), interval),
        provider.clone(),
        Duration::from_millis(600),
        &logs,
    )
    .unwrap();
    assert_eq!(sink.connection_count(), 0);
    // Restarted: the report comes one interval after the *first* start, not the restart.
    run_for(
        config(sink.url(), interval, dir.path()),
        local(dir.path(), interval),
        provider,
        Duration::from_millis(1400),
        &logs,
    )
    .unwrap();
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 1);
    let at = reqs[0].at - began;
    assert!(
        at >= Duration::from_millis(1450) && at < Duration::from_millis(1900),
        "sent at {at:?}"
    );
}

#[test]
fn off_means_no_counting_no_connection_nothing_written() {
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut cfg = config(sink.url(), Duration::from_millis(100), &state);
    cfg.off_reason = Some("DO_NOT_TRACK is set".into());
    let provider = Arc::new(Counting(AtomicUsize::new(0)));
    let factory_called = Arc::new(AtomicUsize::new(0));
    let f = factory_called.clone();
    let logs = Logs::default();
    run_for(
        cfg,
        move || {
            f.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("the coordinator must not be made when telemetry is off")
        },
        provider.clone(),
        Duration::from_millis(700),
        &logs,
    )
    .unwrap();
    assert_eq!(sink.connection_count(), 0, "no HTTP connection");
    assert_eq!(provider.0.load(Ordering::SeqCst), 0, "no counting");
    assert_eq!(factory_called.load(Ordering::SeqCst), 0);
    assert!(!state.exists(), "nothing written");
    let log = logs.text();
    assert!(
        log.contains("telemetry is off (DO_NOT_TRACK is set)"),
        "{log}"
    );
    assert!(!log.contains("telemetry is on"));
}

fn redis_url() -> String {
    std::env::var("TTN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[test]
fn two_replicas_with_redis_send_one_report_per_interval() {
    // Fail clearly, not silently, if Redis is missing.
    let url = redis_url();
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("Redis at {url} (TTN_TEST_REDIS_URL) is unreachable: {e}"));
    let ns = format!(
        "ttn-test:{}:{}:daemon-replicas",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let interval = Duration::from_millis(800);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let replicas: Vec<_> = dirs
        .iter()
        .map(|d| {
            let cfg = config(sink.url(), interval, d.path());
            let (ns, url) = (ns.clone(), url.clone());
            std::thread::spawn(move || {
                run_for(
                    cfg,
                    move || {
                        Ok(Box::new(RedisSchedule::new(
                            RedisTarget::from_url(&url),
                            &ns,
                            interval,
                        )?) as Box<dyn Coordinator>)
                    },
                    Arc::new(Counting(AtomicUsize::new(0))),
                    Duration::from_millis(3 * 800 + 400),
                    &Logs::default(),
                )
            })
        })
        .collect();
    for r in replicas {
        r.join().unwrap().unwrap();
    }
    let reqs = sink.requests();
    assert_eq!(
        reqs.len(),
        3,
        "one report per interval across both replicas"
    );
    let audited: usize = dirs
        .iter()
        .map(|d| {
            read_history(d.path())
                .unwrap()
                .entries
                .iter()
                .filter(|e| e.delivered())
                .count()
        })
        .sum();
    assert_eq!(audited, 3);
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}:*"))
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("DEL").arg(keys).query(&mut c).unwrap();
}

#[test]
fn from_core_maps_the_effective_configuration() {
    use ttn_telemetry_core::{Config, RawValue};
    let mut c = Config::default();
    let d = DaemonConfig::from_core(&c).unwrap();
    assert_eq!(d.off_reason, None);
    assert_eq!(d.interval, Duration::from_secs(86400));
    assert_eq!(
        d.deliver.target,
        "https://telemetry.thethingsstack.io/collect"
    );
    assert_eq!(d.admin_listen, Some("127.0.0.1:1886".parse().unwrap()));
    assert_eq!(d.admin_token, None);
    assert_eq!(d.state_dir, Path::new(".ttn-lw-telemetry"));
    c.set("telemetry.admin.token", &RawValue::Scalar("tok".into()))
        .unwrap();
    c.set(
        "telemetry.entity-count-telemetry.enable",
        &RawValue::Scalar("false".into()),
    )
    .unwrap();
    let d = DaemonConfig::from_core(&c).unwrap();
    assert_eq!(d.admin_token.as_deref(), Some("tok"));
    assert_eq!(
        d.off_reason.as_deref(),
        Some("telemetry.entity-count-telemetry.enable is false")
    );
    // The start-up line names the target and how to turn telemetry off.
    let line = daemon::startup_line(&DaemonConfig::from_core(&Config::default()).unwrap());
    assert!(line.contains("every 24h0m0s"), "{line}");
    assert!(
        line.contains("https://telemetry.thethingsstack.io/collect"),
        "{line}"
    );
    assert!(
        line.contains("http://127.0.0.1:1886/api/v1/telemetry/report"),
        "{line}"
    );
}

#[test]
fn send_now_delivers_once_and_audits() {
    let sink = Sink::start(vec![Reply::status(502)], Reply::Receipt(200));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DeliverConfig::new(sink.url());
    cfg.backoff.base = Duration::from_millis(50);
    let body = common::body();
    let d = daemon::send_now(
        &cfg,
        dir.path(),
        &body,
        SystemTime::now() + Duration::from_secs(10),
    )
    .unwrap();
    assert!(d.result.delivered(), "{:?}", d.result);
    assert_eq!(d.attempts, 2);
    let h = read_history(dir.path()).unwrap();
    assert_eq!(h.entries.len(), 4);
    assert_eq!(
        h.last_success().unwrap().receipt.as_deref(),
        Some("matched")
    );
    assert_eq!(read_last_body(dir.path()).unwrap().unwrap(), body);
    assert_eq!(sink.requests().len(), 2);
}

#[test]
fn redis_down_means_the_agent_says_so_and_sends_nothing() {
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_millis(200);
    let closed = free_addr();
    let logs = Logs::default();
    run_for(
        config(sink.url(), interval, dir.path()),
        move || {
            Ok(Box::new(RedisSchedule::new(
                RedisTarget::from_config(&closed.to_string(), "pw-s3cret", 0),
                "ttn-test:down",
                interval,
            )?) as Box<dyn Coordinator>)
        },
        Arc::new(Counting(AtomicUsize::new(0))),
        Duration::from_millis(1200),
        &logs,
    )
    .unwrap();
    assert_eq!(
        sink.connection_count(),
        0,
        "nothing sent without coordination"
    );
    let log = logs.text();
    assert_eq!(
        log.matches("telemetry not sent: cannot coordinate").count(),
        1,
        "said once per outage, not on every retry:\n{log}"
    );
    assert!(log.contains("Redis unreachable"), "{log}");
    assert!(!log.contains("pw-s3cret"), "{log}");
    assert!(read_history(dir.path()).unwrap().entries.is_empty());
}
