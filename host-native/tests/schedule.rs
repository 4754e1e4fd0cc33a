//! The schedule: state directory across restarts, and Redis claims shared by replicas.
//!
//! Redis tests use `TTN_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each under its own
//! key namespace, and fail with a clear message when Redis is unreachable.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown as NetShutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ttn_lw_telemetry::audit::unix_ms;
use ttn_lw_telemetry::schedule::local::{LocalSchedule, Stored, inspect_state, read_state};
use ttn_lw_telemetry::schedule::redis::{RedisSchedule, RedisTarget};
use ttn_lw_telemetry::schedule::{Claim, Coordinator, Grant};

const HOUR: Duration = Duration::from_secs(3600);

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn granted(c: Claim) -> Grant {
    match c {
        Claim::Granted(g) => g,
        other => panic!("expected a grant, got {other:?}"),
    }
}

#[test]
fn first_report_is_due_one_interval_after_first_start_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = LocalSchedule::open(dir.path(), HOUR, t0()).unwrap();
    assert_eq!(
        s.claim(t0()).unwrap(),
        Claim::NotDue {
            next_due: t0() + HOUR
        }
    );
    drop(s);
    // Restart before the report is due: nothing is sent early, and the epoch is not reset.
    let later = t0() + Duration::from_secs(3599);
    let mut s = LocalSchedule::open(dir.path(), HOUR, later).unwrap();
    assert_eq!(
        s.claim(later).unwrap(),
        Claim::NotDue {
            next_due: t0() + HOUR
        }
    );
    let state = read_state(dir.path()).unwrap().unwrap();
    assert_eq!(state.epoch_unix_ms, unix_ms(t0()));
    assert_eq!(state.done_slot, 0);
    // At the due time the report is granted once.
    let g = granted(s.claim(t0() + HOUR).unwrap());
    assert_eq!(
        (g.slot, g.due, g.deadline),
        (1, t0() + HOUR, t0() + 2 * HOUR)
    );
    assert!(!g.resumed);
    s.complete(&g, t0() + HOUR).unwrap();
    assert_eq!(
        s.claim(t0() + HOUR + Duration::from_secs(1)).unwrap(),
        Claim::NotDue {
            next_due: t0() + 2 * HOUR
        }
    );
}

#[test]
fn a_report_due_while_down_is_sent_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    drop(LocalSchedule::open(dir.path(), HOUR, t0()).unwrap());
    // Down over three due times.
    let back = t0() + Duration::from_secs(3 * 3600 + 1800);
    let mut s = LocalSchedule::open(dir.path(), HOUR, back).unwrap();
    let g = granted(s.claim(back).unwrap());
    assert_eq!(g.slot, 3);
    assert_eq!(g.deadline, t0() + 4 * HOUR);
    s.complete(&g, back).unwrap();
    assert_eq!(
        s.claim(back).unwrap(),
        Claim::NotDue {
            next_due: t0() + 4 * HOUR
        }
    );
    assert_eq!(read_state(dir.path()).unwrap().unwrap().done_slot, 3);
}

#[test]
fn two_local_agents_do_not_both_send() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = LocalSchedule::open(dir.path(), HOUR, t0()).unwrap();
    let mut b = LocalSchedule::open(dir.path(), HOUR, t0()).unwrap();
    let due = t0() + HOUR;
    let g = granted(a.claim(due).unwrap());
    assert!(matches!(b.claim(due).unwrap(), Claim::Busy { .. }));
    a.complete(&g, due).unwrap();
    assert_eq!(
        b.claim(due).unwrap(),
        Claim::NotDue {
            next_due: t0() + 2 * HOUR
        }
    );
}

#[test]
fn a_send_killed_midway_is_resent_once_at_most() {
    let dir = tempfile::tempdir().unwrap();
    drop(LocalSchedule::open(dir.path(), HOUR, t0()).unwrap());
    let due = t0() + HOUR;
    // Killed mid-send: the grant is never completed and the process's lock goes away with it.
    let mut a = LocalSchedule::open(dir.path(), HOUR, due).unwrap();
    let g = granted(a.claim(due).unwrap());
    drop(a);
    // The restart resends that slot once…
    let mut b = LocalSchedule::open(dir.path(), HOUR, due).unwrap();
    let g2 = granted(b.claim(due + Duration::from_secs(60)).unwrap());
    assert_eq!(g2.slot, g.slot);
    assert!(g2.resumed);
    drop(b);
    // …and a second crash does not make a third send.
    let mut c = LocalSchedule::open(dir.path(), HOUR, due).unwrap();
    assert_eq!(
        c.claim(due + Duration::from_secs(120)).unwrap(),
        Claim::NotDue {
            next_due: t0() + 2 * HOUR
        }
    );
}

#[test]
fn an_interrupted_send_superseded_by_the_next_slot_is_not_resent() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = LocalSchedule::open(dir.path(), HOUR, t0()).unwrap();
    let g = granted(a.claim(t0() + HOUR).unwrap());
    assert_eq!(g.slot, 1);
    drop(a);
    let mut b = LocalSchedule::open(dir.path(), HOUR, t0()).unwrap();
    let g2 = granted(b.claim(t0() + 2 * HOUR).unwrap());
    assert_eq!((g2.slot, g2.resumed), (2, false));
}

#[test]
fn a_new_interval_counts_from_the_last_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = LocalSchedule::open(dir.path(), HOUR, t0()).unwrap();
    let g = granted(a.claim(t0() + HOUR).unwrap());
    a.complete(&g, t0() + HOUR).unwrap();
    drop(a);
    let now = t0() + HOUR + Duration::from_secs(600);
    let mut b = LocalSchedule::open(dir.path(), 2 * HOUR, now).unwrap();
    assert_eq!(
        b.claim(now).unwrap(),
        Claim::NotDue {
            next_due: t0() + 3 * HOUR
        }
    );
}

/// The files of `dir` set aside as damaged schedules, with their bytes.
fn set_aside(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("schedule.json.corrupt-")
                .then(|| (name, std::fs::read(e.path()).unwrap()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_damaged_state_file_is_set_aside_and_a_new_schedule_starts() {
    let now = t0();
    let state = |epoch: u64, done: u64, pending: Option<u64>| {
        serde_json::json!({
            "version": 1,
            "epoch_unix_ms": epoch,
            "interval_ms": 3_600_000u64,
            "done_slot": done,
            "pending": pending.map(|p| serde_json::json!({"slot": p, "resumed": false})),
        })
        .to_string()
        .into_bytes()
    };
    let five_hours_ago = unix_ms(now - 5 * HOUR);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{\"version\":1,\"epoch_unix_ms\":".to_vec()),
        ("empty", Vec::new()),
        ("epoch u64::MAX", state(u64::MAX, 0, None)),
        (
            "epoch in the future",
            state(unix_ms(now + 10 * HOUR), 0, None),
        ),
        (
            "pending.slot u64::MAX",
            state(five_hours_ago, 4, Some(u64::MAX)),
        ),
        ("done_slot u64::MAX", state(five_hours_ago, u64::MAX, None)),
        ("done_slot far ahead", state(five_hours_ago, 1_000, None)),
        (
            "unknown version",
            br#"{"version":7,"epoch_unix_ms":1,"interval_ms":1,"done_slot":0}"#.to_vec(),
        ),
        (
            "zero interval",
            br#"{"version":1,"epoch_unix_ms":1,"interval_ms":0,"done_slot":0}"#.to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schedule.json"), &bytes).unwrap();
        // What `status` sees: damaged, and nothing is renamed by looking.
        match inspect_state(dir.path(), now).unwrap() {
            Stored::Damaged(why) => assert!(!why.is_empty(), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(set_aside(dir.path()).is_empty(), "{name}");

        // What `run` does: set aside, not deleted, and a new schedule from now.
        let mut s =
            LocalSchedule::open(dir.path(), HOUR, now).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let aside = set_aside(dir.path());
        assert_eq!(aside.len(), 1, "{name}: {aside:?}");
        assert_eq!(
            aside[0].1, bytes,
            "{name}: the damaged file is kept as it was"
        );
        assert_eq!(
            s.claim(now).unwrap(),
            Claim::NotDue {
                next_due: now + HOUR
            },
            "{name}"
        );
        assert!(
            matches!(inspect_state(dir.path(), now).unwrap(), Stored::Valid(_)),
            "{name}"
        );
        let g = granted(s.claim(now + HOUR).unwrap());
        assert_eq!((g.slot, g.due), (1, now + HOUR), "{name}");
        s.complete(&g, now + HOUR).unwrap();
    }
}

#[test]
fn a_valid_state_is_kept_even_after_a_small_clock_step_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = LocalSchedule::open(dir.path(), HOUR, t0()).unwrap();
    let g = granted(s.claim(t0() + HOUR).unwrap());
    s.complete(&g, t0() + HOUR).unwrap();
    drop(s);
    // The clock steps back by a minute: slot 1 is finished "in the future", which is tolerated.
    let back = t0() + HOUR - Duration::from_secs(60);
    let mut s = LocalSchedule::open(dir.path(), HOUR, back).unwrap();
    assert_eq!(
        s.claim(back).unwrap(),
        Claim::NotDue {
            next_due: t0() + 2 * HOUR
        }
    );
    assert!(set_aside(dir.path()).is_empty());
}

// ---- Redis ----

fn redis_url() -> String {
    std::env::var("TTN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A connection for test set-up; fails the test with a clear message if Redis is down.
fn redis_conn() -> redis::Connection {
    let url = redis_url();
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(3)))
        .unwrap_or_else(|e| {
            panic!("Redis at {url} (TTN_TEST_REDIS_URL) is unreachable: {e}; start it (./task test does)")
        })
}

/// A namespace of its own, removed when the test ends.
struct Ns(String);

impl Ns {
    fn new(name: &str) -> Ns {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Ns(format!("ttn-test:{}:{nanos}:{name}", std::process::id()))
    }
    fn schedule(&self, interval: Duration, owner: &str) -> RedisSchedule {
        RedisSchedule::new(RedisTarget::from_url(&redis_url()), &self.0, interval)
            .unwrap()
            .with_owner(owner)
    }
    /// Backdates the epoch so that the current slot is `slot` and `into` of it has passed.
    fn set_epoch(&self, interval: Duration, slot: u32, into: Duration) {
        let epoch = SystemTime::now() - interval * slot - into;
        let _: () = redis::cmd("SET")
            .arg(format!("{}:epoch", self.0))
            .arg(unix_ms(epoch))
            .query(&mut redis_conn())
            .unwrap();
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let mut c = redis_conn();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut c)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut c);
        }
    }
}

#[test]
fn redis_two_claimers_send_exactly_one_report_per_slot() {
    let ns = Ns::new("two-claimers");
    // Virtual time: both claimers ask at the same instants, every tenth of an interval, for
    // three and a half intervals; Redis decides who wins each race.
    let interval = HOUR;
    let t0 = SystemTime::now();
    let ticks = 35u32;
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let grants = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|owner| {
            let mut s = ns
                .schedule(interval, owner)
                .with_lease(Duration::from_secs(5));
            let (grants, barrier) = (grants.clone(), barrier.clone());
            std::thread::spawn(move || {
                for tick in 0..=ticks {
                    let now = t0 + interval * tick / 10;
                    barrier.wait();
                    if let Claim::Granted(g) = s.claim(now).expect("claim") {
                        grants.lock().unwrap().push((g.slot, owner.to_string()));
                        s.complete(&g, now).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut slots: Vec<u64> = grants.lock().unwrap().iter().map(|(s, _)| *s).collect();
    slots.sort();
    assert_eq!(
        slots,
        [1, 2, 3],
        "one grant per slot: {:?}",
        grants.lock().unwrap()
    );
}

#[test]
fn redis_first_report_waits_one_interval() {
    let ns = Ns::new("first");
    let mut s = ns.schedule(HOUR, "a");
    assert_eq!(
        s.next_due(SystemTime::now()).unwrap(),
        None,
        "status writes nothing"
    );
    let now = SystemTime::now();
    let Claim::NotDue { next_due } = s.claim(now).unwrap() else {
        panic!("nothing is due at the first start")
    };
    let wait = next_due.duration_since(now).unwrap();
    assert!(
        wait > HOUR - Duration::from_secs(1) && wait <= HOUR,
        "{wait:?}"
    );
    // A second replica starting later shares the epoch.
    let mut t = ns.schedule(HOUR, "b");
    assert_eq!(
        t.claim(now + Duration::from_secs(60)).unwrap(),
        Claim::NotDue { next_due }
    );
}

/// Returns once Redis has expired the claim of `slot` (its holder stopped renewing): it waits
/// as long as Redis says the lease has left (PTTL), and returns when the key is gone.
fn wait_for_expiry(ns: &Ns, slot: u32) {
    let key = format!("{}:claim:{slot}", ns.0);
    let mut c = redis_conn();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut c).unwrap();
        if pttl == -2 {
            return;
        }
        assert!(pttl >= 0, "the claim {key} has no lease (PTTL {pttl})");
        assert!(
            std::time::Instant::now() < deadline,
            "the claim {key} never expired"
        );
        std::thread::sleep(Duration::from_millis(pttl.unsigned_abs() + 1));
    }
}

#[test]
fn redis_a_dead_holder_is_taken_over_after_its_lease() {
    let ns = Ns::new("takeover");
    ns.set_epoch(HOUR, 1, Duration::from_secs(10));
    let lease = Duration::from_millis(300);
    let mut a = ns.schedule(HOUR, "a").with_lease(lease);
    let mut b = ns.schedule(HOUR, "b").with_lease(lease);
    let g = granted(a.claim(SystemTime::now()).unwrap());
    assert_eq!(g.slot, 1);
    // While a's lease runs, b is told to come back when it may have run out.
    let now = SystemTime::now();
    match b.claim(now).unwrap() {
        Claim::Busy { retry_at } => assert!(retry_at <= now + lease),
        other => panic!("{other:?}"),
    }
    // a is killed: it neither renews nor completes.
    drop(a);
    wait_for_expiry(&ns, 1);
    let g2 = granted(b.claim(SystemTime::now()).unwrap());
    assert_eq!(g2.slot, 1);
    assert_eq!(b.next_due(SystemTime::now()).unwrap(), Some(g2.due));
    b.complete(&g2, SystemTime::now()).unwrap();
    assert_eq!(b.next_due(SystemTime::now()).unwrap(), Some(g2.deadline));
    let mut c = ns.schedule(HOUR, "c");
    assert!(matches!(
        c.claim(SystemTime::now()).unwrap(),
        Claim::NotDue { .. }
    ));
}

#[test]
fn redis_renewal_keeps_the_claim_and_a_lost_claim_is_not_overwritten() {
    let ns = Ns::new("renew");
    ns.set_epoch(HOUR, 2, Duration::from_secs(1));
    let lease = Duration::from_millis(300);
    let mut a = ns.schedule(HOUR, "a").with_lease(lease);
    let mut b = ns.schedule(HOUR, "b").with_lease(lease);
    let g = granted(a.claim(SystemTime::now()).unwrap());
    assert_eq!(g.slot, 2);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(100));
        assert!(a.renew(&g, SystemTime::now()).unwrap());
        assert!(matches!(
            b.claim(SystemTime::now()).unwrap(),
            Claim::Busy { .. }
        ));
    }
    // a stalls past its lease; b takes over; a learns it lost the claim.
    wait_for_expiry(&ns, 2);
    let gb = granted(b.claim(SystemTime::now()).unwrap());
    assert!(!a.renew(&g, SystemTime::now()).unwrap());
    a.complete(&g, SystemTime::now()).unwrap();
    let holder: String = redis::cmd("GET")
        .arg(format!("{}:claim:2", ns.0))
        .query(&mut redis_conn())
        .unwrap();
    assert_eq!(
        holder, "b|claimed",
        "a's late completion must not overwrite b's claim"
    );
    b.complete(&gb, SystemTime::now()).unwrap();
}

#[test]
fn redis_unreachable_is_an_error_and_names_no_secret() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let mut s = RedisSchedule::new(
        RedisTarget::from_config(&addr.to_string(), "hunter2", 0),
        "ttn-test:unreachable",
        HOUR,
    )
    .unwrap();
    let err = s.claim(SystemTime::now()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("Redis unreachable"), "{msg}");
    assert!(msg.contains(&addr.to_string()), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!format!("{s:?}").contains("hunter2"));
}

/// A TCP proxy to Redis that can be cut, to play a Redis outage for one replica.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: std::net::SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (u, cs) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(client) = s else { continue };
                if !u.load(Ordering::SeqCst) {
                    let _ = client.shutdown(NetShutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                cs.lock().unwrap().push(client.try_clone().unwrap());
                cs.lock().unwrap().push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(NetShutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, up, conns }
    }
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(NetShutdown::Both);
        }
    }
    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn redis_outage_means_no_send_and_no_duplicate_after() {
    let url = redis_url();
    let upstream = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    let upstream: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&upstream)
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(upstream);
    let ns = Ns::new("outage");
    ns.set_epoch(HOUR, 1, Duration::from_secs(5));
    let mut b = RedisSchedule::new(
        RedisTarget::from_url(&format!("redis://{}", proxy.addr)),
        &ns.0,
        HOUR,
    )
    .unwrap()
    .with_owner("b");
    // b works through the proxy, then Redis "goes down" for b.
    assert!(matches!(
        b.claim(SystemTime::now() - Duration::from_secs(60))
            .unwrap(),
        Claim::NotDue { .. }
    ));
    proxy.cut();
    let err = b.claim(SystemTime::now()).unwrap_err();
    assert!(format!("{err:#}").contains("Redis unreachable"), "{err:#}");
    // Meanwhile a replica that still reaches Redis sends the report.
    let mut a = ns.schedule(HOUR, "a");
    let g = granted(a.claim(SystemTime::now()).unwrap());
    a.complete(&g, SystemTime::now()).unwrap();
    // Redis comes back for b: the slot is done, b does not send it again.
    proxy.restore();
    assert!(matches!(
        b.claim(SystemTime::now()).unwrap(),
        Claim::NotDue { .. }
    ));
}

#[test]
fn redis_a_damaged_epoch_is_set_aside_and_a_new_schedule_starts() {
    let now = SystemTime::now();
    for (name, raw) in [
        ("not a number", "soon".to_owned()),
        ("u64::MAX", u64::MAX.to_string()),
        ("in the future", unix_ms(now + 10 * HOUR).to_string()),
    ] {
        let ns = Ns::new("damaged-epoch");
        let key = format!("{}:epoch", ns.0);
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&raw)
            .query(&mut redis_conn())
            .unwrap();
        let mut s = ns.schedule(HOUR, "a");
        // `status` reads: it says so and changes nothing.
        let e = s.next_due(now).unwrap_err();
        assert!(format!("{e:#}").contains("damaged"), "{name}: {e:#}");
        let kept: String = redis::cmd("GET")
            .arg(&key)
            .query(&mut redis_conn())
            .unwrap();
        assert_eq!(kept, raw, "{name}");
        // `run` sets it aside and starts a new schedule from now.
        assert_eq!(
            s.claim(now).unwrap_or_else(|e| panic!("{name}: {e:#}")),
            Claim::NotDue {
                next_due: ttn_lw_telemetry::audit::from_unix_ms(unix_ms(now)) + HOUR
            },
            "{name}"
        );
        let aside: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{key}.corrupt-*"))
            .query(&mut redis_conn())
            .unwrap();
        assert_eq!(aside.len(), 1, "{name}: {aside:?}");
        let old: String = redis::cmd("GET")
            .arg(&aside[0])
            .query(&mut redis_conn())
            .unwrap();
        assert_eq!(old, raw, "{name}: set aside, not deleted");
        assert!(s.next_due(now).unwrap().is_some(), "{name}");
    }
}

#[test]
fn redis_a_damaged_claim_is_set_aside_instead_of_holding_its_slot() {
    for (name, raw) in [
        ("a claim without a lease", "someone|claimed"),
        ("not a claim", "garbage"),
    ] {
        let ns = Ns::new("damaged-claim");
        ns.set_epoch(HOUR, 1, Duration::from_secs(10));
        let key = format!("{}:claim:1", ns.0);
        // Written without PX: no lease, so it would never expire.
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(raw)
            .query(&mut redis_conn())
            .unwrap();
        let mut s = ns.schedule(HOUR, "a");
        let g = granted(s.claim(SystemTime::now()).unwrap());
        assert_eq!(g.slot, 1, "{name}");
        let aside: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{key}.corrupt-*"))
            .query(&mut redis_conn())
            .unwrap();
        assert_eq!(aside.len(), 1, "{name}: {aside:?}");
        let old: String = redis::cmd("GET")
            .arg(&aside[0])
            .query(&mut redis_conn())
            .unwrap();
        assert_eq!(old, raw, "{name}: set aside, not deleted");
        s.complete(&g, SystemTime::now()).unwrap();
    }
}
