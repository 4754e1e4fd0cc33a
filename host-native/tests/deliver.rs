//! Delivery against real loopback HTTP servers scripted to fail (SPEC §6, issue 4).
//!
//! Waits between attempts run on a virtual clock (recorded, so their bounds can be asserted);
//! network time is real.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{Reply, Sink, body, closed_port};
use ttn_lw_telemetry::audit::{self, AuditLog, read_history, read_last_body};
use ttn_lw_telemetry::deliver::{
    Backoff, Clock, DeliverConfig, Final, Observer, Outcome, Receipt, Rng, SystemClock,
    VirtualClock, WAIT_SLICE, deliver,
};
use ttn_lw_telemetry::metrics;
use ttn_telemetry_core::{content_digest, sha256_hex};

fn config(target: String) -> DeliverConfig {
    DeliverConfig {
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
        backoff: Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
        },
        ..DeliverConfig::new(target)
    }
}

/// Where virtual time starts: a whole second, so HTTP-dates (1 s resolution) are exact.
fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Every request carried the same bytes and the headers of SPEC §6.
fn assert_same_bytes(reqs: &[common::Received], body: &[u8]) {
    assert!(!reqs.is_empty());
    for r in reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/collect");
        assert_eq!(r.body, body, "the same bytes are re-sent");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("content-digest"),
            Some(content_digest(body).as_str())
        );
        assert_eq!(
            r.header("user-agent"),
            Some(format!("ttn-lw-telemetry/{}", env!("CARGO_PKG_VERSION")).as_str())
        );
    }
}

/// Full jitter: each wait within [0, ceiling(n)], raised to at least what Retry-After asked.
fn assert_backoff_bounds(sleeps: &[Duration], backoff: &Backoff, floors: &[Duration]) {
    for (i, s) in sleeps.iter().enumerate() {
        let n = i as u32 + 1;
        let floor = floors.get(i).copied().unwrap_or_default();
        let ceiling = backoff.ceiling(n).max(floor);
        assert!(
            *s >= floor && *s <= ceiling,
            "wait {n} = {s:?} outside [{floor:?}, {ceiling:?}]"
        );
    }
}

/// Records how much virtual time was slept before each attempt, so the waits between attempts
/// can be told apart (delivery sleeps in slices of at most `WAIT_SLICE`).
struct Marks<'a> {
    clock: &'a VirtualClock,
    slept: Vec<Duration>,
}

impl Observer for Marks<'_> {
    fn before_attempt(&mut self, _n: u32) -> bool {
        self.slept.push(self.clock.sleeps().iter().sum());
        true
    }
}

impl Marks<'_> {
    fn waits(&self) -> Vec<Duration> {
        self.slept.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[test]
fn connection_refused_is_retried_until_the_deadline() {
    let addr = closed_port();
    let cfg = config(format!("http://{addr}/collect"));
    let t0 = start();
    let clock = VirtualClock::new(t0);
    let mut rng = Rng::seeded(1);
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let body = body();
    let deadline = t0 + Duration::from_secs(60);
    let mut marks = Marks {
        clock: &clock,
        slept: Vec::new(),
    };
    let d = audit::deliver_audited(
        &cfg, &body, deadline, &clock, &mut rng, &log, None, &mut marks,
    )
    .expect("every attempt is audited");
    // Capped exponential backoff with full jitter: wait n within [0, min(8 s, 2^(n-1) s)].
    let waits = marks.waits();
    assert_eq!(waits.len() + 1, d.attempts as usize);
    assert_backoff_bounds(&waits, &cfg.backoff, &[]);
    assert!(
        waits.iter().skip(4).any(|w| *w > Duration::from_secs(4)),
        "the cap is reached: {waits:?}"
    );
    let Final::DeadlinePassed { last } = &d.result else {
        panic!("expected the deadline to end delivery, got {:?}", d.result)
    };
    assert!(
        matches!(last, Outcome::Network(m) if m.contains("refused")),
        "{last:?}"
    );
    // 60 s of waits of at most 1, 2, 4, 8, 8, … s: at least 9 attempts, and never past the deadline.
    assert!(d.attempts >= 9, "attempts: {}", d.attempts);
    assert!(clock.now() <= deadline);
    let h = read_history(dir.path()).unwrap();
    assert_eq!(h.entries.len(), 2 * d.attempts as usize);
    for (i, pair) in h.entries.chunks(2).enumerate() {
        assert_eq!(pair[0].outcome, "sending");
        assert_eq!(pair[1].outcome, "network");
        assert_eq!(pair[0].attempt, i as u32 + 1);
        assert_eq!(pair[1].attempt, i as u32 + 1);
        assert_eq!(pair[1].sha256, sha256_hex(&body));
        assert_eq!(pair[1].size, body.len() as u64);
        assert!(pair[1].status.is_none());
    }
}

#[test]
fn retry_after_503_is_honoured_and_bytes_are_resent() {
    let body = body();
    // The second attempt starts 7 s (virtual) after t0; its Retry-After date is 5 s later.
    let date = httpdate::fmt_http_date(start() + Duration::from_secs(7 + 5));
    let sink = Sink::start(
        vec![
            Reply::with_header(503, "Retry-After", "7"),
            Reply::with_header(503, "Retry-After", date),
        ],
        Reply::Receipt(202),
    );
    let cfg = config(sink.url());
    let t0 = start();
    let clock = VirtualClock::new(t0);
    let mut rng = Rng::seeded(2);
    let mut marks = Marks {
        clock: &clock,
        slept: Vec::new(),
    };
    let d = deliver(
        &cfg,
        &body,
        t0 + Duration::from_secs(300),
        &clock,
        &mut rng,
        &mut marks,
    );
    assert_eq!(
        d.result,
        Final::Delivered {
            status: 202,
            receipt: Receipt::Matched
        }
    );
    assert_eq!(d.attempts, 3);
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 3);
    assert_same_bytes(&reqs, &body);
    assert!(clock.sleeps().iter().all(|s| *s <= WAIT_SLICE));
    // Wait 1 = 7 s (Retry-After: 7); wait 2 = 5 s (an HTTP-date 5 s ahead by the clock).
    // Jitter stays below the ceiling (1 s, 2 s), so each wait is what the server asked.
    let waits = marks.waits();
    assert_eq!(
        waits,
        [Duration::from_secs(7), Duration::from_secs(5)],
        "{waits:?}"
    );
}

#[test]
fn retry_after_beyond_the_deadline_ends_delivery() {
    let sink = Sink::start(vec![], Reply::with_header(429, "Retry-After", "3600"));
    let cfg = config(sink.url());
    let t0 = start();
    let clock = VirtualClock::new(t0);
    let d = deliver(
        &cfg,
        &body(),
        t0 + Duration::from_secs(60),
        &clock,
        &mut Rng::seeded(3),
        &mut (),
    );
    assert!(matches!(
        d.result,
        Final::DeadlinePassed {
            last: Outcome::RetryableStatus {
                status: 429,
                retry_after: Some(_)
            }
        }
    ));
    assert_eq!(d.attempts, 1);
    assert!(clock.sleeps().is_empty());
}

#[test]
fn server_error_then_success_with_audit_lines() {
    let body = body();
    let sink = Sink::start(
        vec![Reply::status(500), Reply::status(408)],
        Reply::Receipt(200),
    );
    let cfg = config(sink.url());
    let t0 = start();
    let clock = VirtualClock::new(t0);
    let mut rng = Rng::seeded(4);
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let status = metrics::shared(true);
    let mut marks = Marks {
        clock: &clock,
        slept: Vec::new(),
    };
    let d = audit::deliver_audited(
        &cfg,
        &body,
        t0 + Duration::from_secs(300),
        &clock,
        &mut rng,
        &log,
        Some(&status),
        &mut marks,
    )
    .expect("every attempt is audited");
    assert!(d.result.delivered(), "{:?}", d.result);
    assert_eq!(d.attempts, 3);
    assert_same_bytes(&sink.requests(), &body);
    // No Retry-After: each wait is full jitter below its ceiling (1 s, then 2 s).
    let waits = marks.waits();
    assert_eq!(waits.len(), 2);
    assert_backoff_bounds(&waits, &cfg.backoff, &[]);
    assert!(clock.sleeps().iter().all(|s| *s <= WAIT_SLICE));

    let h = read_history(dir.path()).unwrap();
    let got: Vec<(u32, &str, Option<u16>)> = h
        .entries
        .iter()
        .map(|e| (e.attempt, e.outcome.as_str(), e.status))
        .collect();
    assert_eq!(
        got,
        [
            (1, "sending", None),
            (1, "retryable-status", Some(500)),
            (2, "sending", None),
            (2, "retryable-status", Some(408)),
            (3, "sending", None),
            (3, "delivered", Some(200)),
        ]
    );
    let last = h.last_success().unwrap();
    assert_eq!(last.receipt.as_deref(), Some("matched"));
    assert_eq!(last.sha256, sha256_hex(&body));
    assert_eq!(last.target, cfg.target);
    assert_eq!(read_last_body(dir.path()).unwrap().unwrap(), body);
    let s = status.lock().unwrap().clone();
    assert_eq!(s.consecutive_failures, 0);
    assert_eq!(s.attempts_total, 3);
    assert!(s.last_success.is_some());
}

#[test]
fn a_server_that_never_answers_times_out_each_attempt() {
    let sink = Sink::start(vec![], Reply::Hang(Duration::from_secs(20)));
    let mut cfg = config(sink.url());
    cfg.attempt_timeout = Duration::from_millis(500);
    cfg.backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(200),
    };
    let body = body();
    let began = Instant::now();
    let d = deliver(
        &cfg,
        &body,
        SystemTime::now() + Duration::from_millis(2500),
        &SystemClock,
        &mut Rng::seeded(5),
        &mut (),
    );
    let elapsed = began.elapsed();
    let Final::DeadlinePassed { last } = &d.result else {
        panic!("{:?}", d.result)
    };
    assert!(matches!(last, Outcome::Timeout(_)), "{last:?}");
    // Each attempt is cut at 0.5 s: 2.5 s hold 3 or 4 attempts, and delivery ends by the deadline.
    assert!((3..=5).contains(&d.attempts), "attempts: {}", d.attempts);
    assert!(elapsed < Duration::from_millis(3500), "took {elapsed:?}");
    let reqs = sink.wait_for(d.attempts as usize, Duration::from_secs(2));
    assert_eq!(reqs.len(), d.attempts as usize);
    assert_same_bytes(&reqs, &body);
}

#[test]
fn the_deadline_cuts_the_attempt_in_flight() {
    // The collector reads the report and never answers; the attempt timeout (30 s) is far
    // longer than the deadline.
    let sink = Sink::start(vec![], Reply::Hang(Duration::from_secs(20)));
    let cfg = DeliverConfig::new(sink.url());
    assert_eq!(cfg.attempt_timeout, Duration::from_secs(30));
    let deadline = Duration::from_millis(800);
    let began = Instant::now();
    let d = deliver(
        &cfg,
        &body(),
        SystemTime::now() + deadline,
        &SystemClock,
        &mut Rng::seeded(9),
        &mut (),
    );
    let elapsed = began.elapsed();
    let Final::DeadlinePassed { last } = &d.result else {
        panic!("{:?}", d.result)
    };
    assert!(matches!(last, Outcome::Timeout(_)), "{last:?}");
    assert_eq!(d.attempts, 1);
    assert_eq!(sink.wait_for(1, Duration::from_secs(2)).len(), 1);
    assert!(
        elapsed < deadline + Duration::from_millis(1500),
        "delivery ended at the deadline, not after the attempt timeout: {elapsed:?}"
    );
}

#[test]
fn bad_request_is_not_retried() {
    let sink = Sink::start(
        vec![],
        Reply::Status(
            400,
            vec![("Content-Type", "application/json".into())],
            br#"{"error":"uid: not 64 bytes of base64"}"#.to_vec(),
        ),
    );
    let cfg = config(sink.url());
    let t0 = start();
    let clock = VirtualClock::new(t0);
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let d = audit::deliver_audited(
        &cfg,
        &body(),
        t0 + Duration::from_secs(300),
        &clock,
        &mut Rng::seeded(6),
        &log,
        None,
        &mut (),
    )
    .expect("every attempt is audited");
    match &d.result {
        Final::Failed(Outcome::Rejected { status, message }) => {
            assert_eq!(*status, 400);
            assert!(message.contains("not 64 bytes"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.attempts, 1);
    assert_eq!(sink.requests().len(), 1);
    assert!(clock.sleeps().is_empty());
    let h = read_history(dir.path()).unwrap();
    assert_eq!(h.entries.len(), 2);
    assert_eq!(h.entries[1].outcome, "rejected");
    assert!(h.entries[1].detail.as_deref().unwrap().contains("400"));
}

#[test]
fn redirects_are_not_followed_nor_retried() {
    let elsewhere = Sink::start(vec![], Reply::Receipt(200));
    let sink = Sink::start(vec![], Reply::with_header(308, "Location", elsewhere.url()));
    let cfg = config(sink.url());
    let t0 = start();
    let clock = VirtualClock::new(t0);
    let d = deliver(
        &cfg,
        &body(),
        t0 + Duration::from_secs(300),
        &clock,
        &mut Rng::seeded(7),
        &mut (),
    );
    match &d.result {
        Final::Failed(o @ Outcome::Redirected { status, location }) => {
            assert_eq!(*status, 308);
            assert_eq!(location, &elsewhere.url());
            assert!(o.to_string().contains("telemetry.target"), "{o}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.attempts, 1);
    assert_eq!(sink.requests().len(), 1);
    // Delivery is synchronous and has returned: a followed redirect would be a request that the
    // sink records before it answers, so it would be there by now.
    assert!(elsewhere.requests().is_empty());
    assert_eq!(
        elsewhere.connection_count(),
        0,
        "the redirect target was never contacted"
    );
}

#[test]
fn receipt_mismatch_is_reported() {
    let wrong = format!(
        r#"{{"stored":true,"sha256":"{}"}}"#,
        sha256_hex(b"something else")
    );
    let sink = Sink::start(vec![], Reply::Status(201, vec![], wrong.into_bytes()));
    let cfg = config(sink.url());
    let d = deliver(
        &cfg,
        &body(),
        SystemTime::now() + Duration::from_secs(10),
        &SystemClock,
        &mut Rng::seeded(8),
        &mut (),
    );
    assert_eq!(
        d.result,
        Final::Delivered {
            status: 201,
            receipt: Receipt::Mismatch(sha256_hex(b"something else"))
        }
    );
}

#[test]
fn a_bad_target_is_not_retried() {
    let cfg = config("http://[::1:bad/collect".into());
    let d = deliver(
        &cfg,
        &body(),
        SystemTime::now() + Duration::from_secs(10),
        &SystemClock,
        &mut Rng::seeded(9),
        &mut (),
    );
    assert!(
        matches!(d.result, Final::Failed(Outcome::Unsendable(_))),
        "{:?}",
        d.result
    );
    assert_eq!(d.attempts, 1);
}

/// Issue 14 §2: with a deployment key, every attempt is signed anew at the attempt's time on the
/// injected clock, over `@method`, `@target-uri` and `content-digest`; the body is unchanged.
#[test]
fn each_attempt_is_signed_at_its_own_time() {
    use ttn_telemetry_core::{Request, SIGNATURE_LABEL, SigningKey, verify_request};
    let body = body();
    let sink = Sink::start(
        vec![Reply::with_header(503, "Retry-After", "7")],
        Reply::Receipt(200),
    );
    let key = SigningKey::from_seed(&[5; 32]);
    let cfg = DeliverConfig {
        signing_key: Some(key.clone()),
        ..config(sink.url())
    };
    let t0 = start();
    let clock = VirtualClock::new(t0);
    let d = deliver(
        &cfg,
        &body,
        t0 + Duration::from_secs(300),
        &clock,
        &mut Rng::seeded(3),
        &mut (),
    );
    assert!(d.result.delivered(), "{}", d.result);
    let reqs = sink.requests();
    assert_same_bytes(&reqs, &body);
    let created: Vec<i64> = reqs
        .iter()
        .map(|r| {
            let digest = content_digest(&body);
            let v = verify_request(
                SIGNATURE_LABEL,
                r.header("signature-input").expect("signed"),
                r.header("signature").expect("signed"),
                &Request {
                    method: "POST",
                    target_uri: &sink.url(),
                    content_digest: &digest,
                },
            )
            .unwrap();
            assert_eq!(v.keyid, key.keyid());
            v.created
        })
        .collect();
    assert_eq!(created, [1_700_000_000, 1_700_000_007]);
}
