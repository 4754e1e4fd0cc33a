//! The run loop end to end on loopback: schedule → count → core bytes → delivery → audit,
//! with the admin listener, the start-up log line, restarts, Redis replicas, and the off path.

mod common;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{Reply, Sink, redis_namespace, redis_url};
use ttn_lw_telemetry::admin::InputsProvider;
use ttn_lw_telemetry::audit::{read_history, read_last_body};
use ttn_lw_telemetry::clock::{Clock as _, VirtualClock};
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
    /// Waits (real time, at most `timeout`) until a line says `needle`.
    fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while !self.text().contains(needle) {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
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
        local_only: false,
        deliver,
        interval,
        state_dir: state_dir.to_owned(),
        admin_listen: None,
        admin_token: None,
        uid_elements: vec!["daemon-test".into()],
        signing_key_source: None,
    }
}

/// Where virtual time starts: any fixed instant works.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Bound on the real time the daemon may take to finish a step (loopback HTTP, files).
const STEP: Duration = Duration::from_secs(20);

/// Runs the daemon on this thread (so the captured log subscriber applies) on `clock`, while
/// `drive` steps the clock on another thread; shutdown follows `drive`.
fn run_driven<R: Send + 'static>(
    cfg: DaemonConfig,
    clock: &Arc<VirtualClock>,
    coordinator: impl FnOnce() -> anyhow::Result<Box<dyn Coordinator>>,
    provider: Arc<dyn InputsProvider>,
    logs: &Logs,
    drive: impl FnOnce(&VirtualClock) -> R + Send + 'static,
) -> R {
    let shutdown = Shutdown::new();
    let (s, c) = (shutdown.clone(), clock.clone());
    let driver = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(&c)));
        s.trigger();
        r
    });
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let r = tracing::subscriber::with_default(subscriber, || {
        daemon::run_with_clock(cfg, None, clock.clone(), coordinator, provider, shutdown)
    });
    let driven = driver.join().unwrap();
    r.unwrap();
    driven.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Steps `clock` timer by timer up to `t`, letting `sleepers` loops finish each step; returns
/// with every loop asleep (idle) and the clock at `t`.
fn step_to(clock: &VirtualClock, sleepers: usize, t: SystemTime) {
    loop {
        assert!(
            clock.wait_for_sleepers(sleepers, STEP),
            "the daemon did not go idle"
        );
        match clock.next_timer() {
            Some(next) if next <= t => {
                clock.advance_to_next_timer();
            }
            _ => break,
        }
    }
    if let Ok(d) = t.duration_since(clock.now()) {
        clock.advance(d);
    }
    assert!(
        clock.wait_for_sleepers(sleepers, STEP),
        "the daemon did not go idle"
    );
}

fn local(
    dir: &Path,
    interval: Duration,
    now: SystemTime,
) -> impl FnOnce() -> anyhow::Result<Box<dyn Coordinator>> {
    let dir = dir.to_owned();
    move || Ok(Box::new(LocalSchedule::open(dir, interval, now)?) as Box<dyn Coordinator>)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn reports_once_per_interval_with_audit_metrics_and_the_startup_line() {
    let sink = Sink::start(vec![Reply::status(503)], Reply::Receipt(200));
    let dir = tempfile::tempdir().unwrap();
    // A real interval: virtual time makes a day cost nothing.
    let interval = Duration::from_secs(24 * 3600);
    let mut cfg = config(
        format!("http://agent:t0psecret@{}/collect", sink.addr),
        interval,
        dir.path(),
    );
    let admin = free_addr();
    cfg.admin_listen = Some(admin);
    let provider = Arc::new(Counting(AtomicUsize::new(0)));
    let logs = Logs::default();
    let clock = Arc::new(VirtualClock::stepped(t0()));
    let s = sink.clone();
    let (per_interval, metrics) = run_driven(
        cfg,
        &clock,
        local(dir.path(), interval, t0()),
        provider.clone(),
        &logs,
        move |clock| {
            let mut per_interval = vec![];
            let mut seen = 0;
            let mut metrics = String::new();
            // One minute into each interval: past the retry's backoff (at most 2 s).
            for n in 0..=3u32 {
                step_to(clock, 1, t0() + interval * n + Duration::from_secs(60));
                let now = s.requests().len();
                per_interval.push(now - seen);
                seen = now;
                if n == 2 {
                    let mut r = ureq::get(format!("http://{admin}/metrics")).call().unwrap();
                    metrics = r.body_mut().read_to_string().unwrap();
                }
            }
            (per_interval, metrics)
        },
    );

    // Nothing in the first interval; slot 1 (503, then a retry that succeeds), slots 2 and 3.
    assert_eq!(per_interval, [0, 2, 1, 1]);
    let reqs = sink.requests();
    let body = common::body();
    assert!(reqs.iter().all(|r| r.body == body));
    assert_eq!(
        provider.0.load(Ordering::SeqCst),
        3,
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
            "delivered",
            "sending",
            "delivered"
        ]
    );
    // Each report leaves exactly when its slot is due (the retry within the backoff cap).
    let sending: Vec<u64> = h
        .entries
        .iter()
        .filter(|e| e.outcome == "sending")
        .map(|e| e.unix_ms)
        .collect();
    assert_eq!(sending[0], unix_ms(t0() + interval));
    assert!(sending[1] - sending[0] <= 2000, "{sending:?}");
    assert_eq!(sending[2], unix_ms(t0() + interval * 2));
    assert_eq!(sending[3], unix_ms(t0() + interval * 3));
    assert!(h.entries.iter().all(|e| e.sha256 == sha256_hex(&body)));
    assert_eq!(read_last_body(dir.path()).unwrap().unwrap(), body);

    assert!(
        metrics
            .lines()
            .any(|l| l == "ttn_lw_telemetry_consecutive_failures 0"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ttn_lw_telemetry_last_success_timestamp_seconds "))
    );
    let next_due = format!(
        "ttn_lw_telemetry_next_due_timestamp_seconds {}",
        unix_ms(t0() + interval * 3) / 1000
    );
    assert!(
        metrics.lines().any(|l| l.starts_with(&next_due)),
        "{metrics}"
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
    let interval = Duration::from_secs(3600);
    let provider: Arc<dyn InputsProvider> = Arc::new(Counting(AtomicUsize::new(0)));
    let logs = Logs::default();
    let clock = Arc::new(VirtualClock::stepped(t0()));
    // Stopped before the first report is due: nothing is sent.
    let due = run_driven(
        config(sink.url(), interval, dir.path()),
        &clock,
        local(dir.path(), interval, t0()),
        provider.clone(),
        &logs,
        move |clock| {
            step_to(clock, 1, t0() + interval * 2 / 5);
            clock.next_timer()
        },
    );
    assert_eq!(due, Some(t0() + interval), "idle until the first slot");
    assert_eq!(sink.connection_count(), 0);
    // Restarted: the report comes one interval after the *first* start, not the restart.
    let restarted = clock.now();
    let (due, sent) = run_driven(
        config(sink.url(), interval, dir.path()),
        &clock,
        local(dir.path(), interval, restarted),
        provider,
        &logs,
        {
            let s = sink.clone();
            move |clock| {
                assert!(clock.wait_for_sleepers(1, STEP));
                let due = clock.next_timer();
                step_to(clock, 1, t0() + interval);
                (due, s.requests().len())
            }
        },
    );
    assert_eq!(due, Some(t0() + interval));
    assert_eq!(sent, 1);
    let h = read_history(dir.path()).unwrap();
    assert_eq!(h.entries[0].unix_ms, unix_ms(t0() + interval));
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
    let clock = Arc::new(VirtualClock::stepped(t0()));
    let l = logs.clone();
    run_driven(
        cfg,
        &clock,
        move || {
            f.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("the coordinator must not be made when telemetry is off")
        },
        provider.clone(),
        &logs,
        // The agent's decision is its log line; stop right after it.
        move |_| assert!(l.wait_for("telemetry is off", STEP), "{}", l.text()),
    );
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

/// `telemetry.local-only` on a virtual clock: one report counted and kept per interval, each
/// exactly when its slot is due, and no connection to the target (the sink's settled count,
/// read once the daemon is idle after its last kept report).
#[test]
fn local_only_keeps_one_report_per_interval_and_connects_nowhere() {
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_secs(24 * 3600);
    let mut cfg = config(sink.url(), interval, dir.path());
    cfg.local_only = true;
    let provider = Arc::new(Counting(AtomicUsize::new(0)));
    let logs = Logs::default();
    let clock = Arc::new(VirtualClock::stepped(t0()));
    run_driven(
        cfg,
        &clock,
        local(dir.path(), interval, t0()),
        provider.clone(),
        &logs,
        move |clock| step_to(clock, 1, t0() + interval * 3 + Duration::from_secs(60)),
    );
    assert_eq!(
        provider.0.load(Ordering::SeqCst),
        3,
        "counted once per slot"
    );
    let h = read_history(dir.path()).unwrap();
    let kept: Vec<u64> = h.entries.iter().map(|e| e.unix_ms).collect();
    assert_eq!(
        kept,
        [1, 2, 3].map(|n| unix_ms(t0() + interval * n)),
        "one kept report per slot, when due"
    );
    assert!(h.entries.iter().all(|e| e.kept_locally()));
    assert_eq!(read_last_body(dir.path()).unwrap().unwrap(), common::body());
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "no connection to the target"
    );
    let log = logs.text();
    assert!(
        log.contains("telemetry is on, local only: reports are kept here and never sent"),
        "{log}"
    );
    assert_eq!(
        log.matches("telemetry report kept locally").count(),
        3,
        "{log}"
    );
}

#[test]
fn two_replicas_with_redis_send_one_report_per_interval() {
    // Fail clearly, not silently, if Redis is missing.
    let url = redis_url();
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("Redis at {url} (TTN_TEST_REDIS_URL) is unreachable: {e}"));
    let ns = redis_namespace("daemon-replicas");
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let interval = Duration::from_secs(3600);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // Both replicas on one virtual clock, like two hosts with synchronised clocks.
    let clock = Arc::new(VirtualClock::stepped(t0()));
    let shutdown = Shutdown::new();
    let replicas: Vec<_> = dirs
        .iter()
        .map(|d| {
            let cfg = config(sink.url(), interval, d.path());
            let (ns, url) = (ns.clone(), url.clone());
            let (clock, shutdown) = (clock.clone(), shutdown.clone());
            std::thread::spawn(move || {
                daemon::run_with_clock(
                    cfg,
                    None,
                    clock,
                    move || {
                        Ok(Box::new(RedisSchedule::new(
                            RedisTarget::from_url(&url),
                            &ns,
                            interval,
                        )?) as Box<dyn Coordinator>)
                    },
                    Arc::new(Counting(AtomicUsize::new(0))),
                    shutdown,
                )
            })
        })
        .collect();
    let mut per_interval = vec![];
    for n in 0..=3u32 {
        step_to(&clock, 2, t0() + interval * n);
        per_interval.push(sink.requests().len());
    }
    shutdown.trigger();
    for r in replicas {
        r.join().unwrap().unwrap();
    }
    assert_eq!(
        per_interval,
        [0, 1, 2, 3],
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
    assert!(!d.local_only);
    c.set("telemetry.local-only", &RawValue::Scalar("true".into()))
        .unwrap();
    assert!(
        !DaemonConfig::from_core(&c).unwrap().local_only,
        "off wins over local-only"
    );
    let mut on = Config::default();
    on.set("telemetry.local-only", &RawValue::Scalar("true".into()))
        .unwrap();
    assert!(DaemonConfig::from_core(&on).unwrap().local_only);
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
    let clock = Arc::new(VirtualClock::stepped(t0()));
    // Six intervals of retrying; each step ends with the loop idle again, after its decision.
    run_driven(
        config(sink.url(), interval, dir.path()),
        &clock,
        move || {
            Ok(Box::new(RedisSchedule::new(
                RedisTarget::from_config(&closed.to_string(), "pw-s3cret", 0),
                "ttn-test:down",
                interval,
            )?) as Box<dyn Coordinator>)
        },
        Arc::new(Counting(AtomicUsize::new(0))),
        &logs,
        move |clock| step_to(clock, 1, t0() + interval * 6),
    );
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

/// Issue 14 §2: the daemon loads the deployment key again before each report, so a key rotated
/// elsewhere (another replica's `rotate-key`) signs the next report without a restart.
#[test]
fn each_report_is_signed_with_the_key_loaded_for_it() {
    use ttn_lw_telemetry::signing::KeySource;
    use ttn_telemetry_core::{
        Request, SIGNATURE_LABEL, SigningKey, content_digest, verify_request,
    };
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_secs(24 * 3600);
    let mut cfg = config(sink.url(), interval, dir.path());
    // The first report with key 1, every later one with key 2 (as after a rotation).
    let loads = Arc::new(AtomicUsize::new(0));
    let l = loads.clone();
    cfg.signing_key_source = Some(KeySource::new(move || {
        let n = l.fetch_add(1, Ordering::SeqCst);
        Ok(Some(SigningKey::from_seed(
            &[if n == 0 { 1 } else { 2 }; 32],
        )))
    }));
    let clock = Arc::new(VirtualClock::stepped(t0()));
    run_driven(
        cfg,
        &clock,
        local(dir.path(), interval, t0()),
        Arc::new(Counting(AtomicUsize::new(0))),
        &Logs::default(),
        move |clock| {
            for n in 1..=2u32 {
                step_to(clock, 1, t0() + interval * n + Duration::from_secs(60));
            }
        },
    );
    let keyids: Vec<String> = sink
        .requests()
        .iter()
        .map(|r| {
            let digest = content_digest(&r.body);
            verify_request(
                SIGNATURE_LABEL,
                r.header("signature-input").expect("signed"),
                r.header("signature").expect("signed"),
                &Request {
                    method: "POST",
                    target_uri: &sink.url(),
                    content_digest: &digest,
                },
            )
            .unwrap()
            .keyid
        })
        .collect();
    let (k1, k2) = (
        SigningKey::from_seed(&[1; 32]).keyid(),
        SigningKey::from_seed(&[2; 32]).keyid(),
    );
    assert_eq!(
        keyids,
        [k1, k2.clone()],
        "one report per interval, each with its key"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}
