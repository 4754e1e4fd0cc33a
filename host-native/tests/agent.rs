//! The agent as operators run it: the real `ttn-lw-telemetry` binary's `run`, `send`, `status`
//! and `history`, against loopback collectors (`common::Sink`), a real SQLite Identity Server
//! database, the real Redis, and processes killed with SIGKILL.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::{Reply, Sink, redis_url};
use ttn_lw_telemetry::audit::{AuditEntry, read_history, read_last_body, rfc3339};
use ttn_lw_telemetry::console::{EmbeddedConsole, MISSING};
use ttn_lw_telemetry::schedule::local::read_state;
use ttn_telemetry_core::{compute_uid, parse_report};

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");

/// A unique string per test and run, for UID elements (and so Redis namespaces).
fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ttn-test-{tag}-{}-{nanos}", std::process::id())
}

/// A test's own directory with an example Identity Server database (SQLite).
struct Fixture {
    dir: tempfile::TempDir,
    db_uri: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("is.sqlite");
        ttn_lw_telemetry::cmd::demo::create_example(&db).unwrap();
        let db_uri = format!("sqlite:{}", db.display());
        Fixture { dir, db_uri }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The flags of an agent with its own state directory `state`, reporting to `target`.
    fn flags(&self, state: &str, target: &str, interval: &str, uid: &str) -> Vec<String> {
        [
            "--is.database-uri",
            &self.db_uri,
            "--telemetry.target",
            target,
            "--telemetry.state-dir",
            &self.path(state).display().to_string(),
            "--telemetry.entity-count-telemetry.interval",
            interval,
            "--telemetry.admin.listen",
            "127.0.0.1:0",
            "--telemetry.uid-elements",
            uid,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

fn command(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a command to its end.
fn output(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Output {
    command(dir, args, env).output().unwrap()
}

/// Starts `run` with its log (standard error) going to `log`.
fn spawn_run(dir: &Path, flags: &[String], env: &[(&str, &str)], log: &Path) -> Child {
    let mut args = vec!["run".to_owned()];
    args.extend_from_slice(flags);
    command(dir, &args, env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

/// Stops an agent with SIGTERM and checks that it exits 0 by itself.
fn terminate(child: &mut Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "the agent exited with {s:?} on SIGTERM");
            return;
        }
        assert!(Instant::now() < end, "the agent did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn delivered(state: &Path) -> Vec<AuditEntry> {
    read_history(state)
        .unwrap()
        .entries
        .into_iter()
        .filter(AuditEntry::delivered)
        .collect()
}

/// Waits until the audit log of `state` records `n` deliveries (the collector has the request
/// a moment before the agent has its answer written down).
fn wait_delivered(state: &Path, n: usize) -> Vec<AuditEntry> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let got = delivered(state);
        if got.len() >= n || Instant::now() > end {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sleeps until `t` (wall clock).
fn sleep_until(t: SystemTime) {
    if let Ok(d) = t.duration_since(SystemTime::now()) {
        std::thread::sleep(d);
    }
}

fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A loopback TCP server that only counts the connections it accepts (and closes them): the
/// Identity Server database of the off tests, so that any connection attempt is seen.
struct CountingListener {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    accepts: common::Accepts,
}

impl CountingListener {
    fn start() -> CountingListener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let a = accepted.clone();
        let accepts = common::Accepts::default();
        let m = accepts.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                if let Ok(s) = &s
                    && m.is_marker(s)
                {
                    continue;
                }
                a.fetch_add(1, Ordering::SeqCst);
                drop(s);
            }
        });
        CountingListener {
            addr,
            accepted,
            accepts,
        }
    }
    fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    /// The count once every connection made before now was accepted (see `common::Accepts`).
    fn settled_count(&self) -> usize {
        self.accepts.settle(self.addr);
        self.count()
    }
}

// ---- Coordination through Redis ----

fn redis_conn() -> redis::Connection {
    let url = redis_url();
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(3)))
        .unwrap_or_else(|e| {
            panic!("Redis at {url} (TTN_TEST_REDIS_URL) is needed and does not answer: {e}")
        })
}

/// `host:port` of the test Redis, as `redis.address` takes it.
fn redis_address() -> String {
    let url = redis_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap().to_owned()
}

/// Deletes the keys of a namespace when dropped.
struct Keys(String);

impl Drop for Keys {
    fn drop(&mut self) {
        let mut c = redis_conn();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut c)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut c);
        }
    }
}

#[test]
fn two_agents_sharing_redis_send_one_report_per_interval_and_one_takes_over_after_kill9() {
    let _ = redis_conn();
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let uid_element = unique("redis-pair");
    let ns = format!(
        "ttn:v3:telemetry:entity-count:{}",
        compute_uid(&[&uid_element]).unwrap()
    );
    let _cleanup = Keys(ns.clone());
    let interval = Duration::from_secs(2);
    let mut agents: Vec<(Child, PathBuf)> = ["a", "b"]
        .iter()
        .map(|name| {
            let mut flags = f.flags(name, &sink.url(), "2s", &uid_element);
            flags.extend(["--redis.address".to_owned(), redis_address()]);
            let log = f.path(&format!("{name}.log"));
            (spawn_run(f.dir.path(), &flags, &[], &log), f.path(name))
        })
        .collect();

    // Three intervals with both agents.
    let got = sink.wait_for(3, Duration::from_secs(15));
    assert_eq!(got.len(), 3, "three reports in three intervals");
    // Kill one in the middle of the fourth interval (not while sending).
    std::thread::sleep(interval / 2);
    let killed_at = SystemTime::now();
    kill9(&mut agents[0].0);
    // Three more intervals with the survivor alone.
    let got = sink.wait_for(6, Duration::from_secs(15));
    assert_eq!(got.len(), 6, "the survivor kept reporting");
    std::thread::sleep(interval / 4);

    // status reads the shared schedule from Redis (read only) while the survivor runs.
    let mut args = vec!["status".to_owned()];
    args.extend(f.flags("b", &sink.url(), "2s", &uid_element));
    args.extend(["--redis.address".to_owned(), redis_address()]);
    let o = output(f.dir.path(), &args, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let status = text(&o.stdout);
    assert!(
        status.contains(&format!("keys {ns}:*")),
        "status names the shared schedule:\n{status}"
    );
    terminate(&mut agents[1].0);

    let epoch: u64 = redis::cmd("GET")
        .arg(format!("{ns}:epoch"))
        .query(&mut redis_conn())
        .expect("the agents stored the deployment's epoch");
    let requests = sink.requests();
    let a = delivered(&agents[0].1);
    let b = delivered(&agents[1].1);
    assert_eq!(
        a.len() + b.len(),
        requests.len(),
        "every request is one delivered attempt in one agent's audit log"
    );
    // Each delivery started in its slot: slots 1, 2, 3, … each exactly once.
    let mut slots: Vec<u64> = a
        .iter()
        .chain(&b)
        .map(|e| (e.unix_ms - epoch) / interval.as_millis() as u64)
        .collect();
    slots.sort_unstable();
    let want: Vec<u64> = (1..=slots.len() as u64).collect();
    assert_eq!(slots, want, "exactly one report per interval");
    assert!(slots.len() >= 6);
    let after_kill = b
        .iter()
        .filter(|e| e.unix_ms > ms_since_epoch(killed_at))
        .count();
    assert!(after_kill >= 3, "the survivor took over: {after_kill}");
    assert!(
        requests.windows(2).all(|w| w[0].body == w[1].body),
        "the same database gives the same report"
    );
    assert!(parse_report(&requests[0].body).is_ok());
    // Both agents sign with the one deployment key they share through Redis (issue 14 §2).
    let keyids: std::collections::BTreeSet<String> = requests
        .iter()
        .map(|r| {
            let digest = ttn_telemetry_core::content_digest(&r.body);
            ttn_telemetry_core::verify_request(
                ttn_telemetry_core::SIGNATURE_LABEL,
                r.header("signature-input").expect("signed"),
                r.header("signature").expect("signed"),
                &ttn_telemetry_core::Request {
                    method: "POST",
                    target_uri: &sink.url(),
                    content_digest: &digest,
                },
            )
            .expect("the signature verifies")
            .keyid
        })
        .collect();
    assert_eq!(keyids.len(), 1, "one key: {keyids:?}");
    let shared: String = redis::cmd("GET")
        .arg(format!("{ns}:signing-key"))
        .query(&mut redis_conn())
        .expect("the key is shared in Redis");
    let shared = ttn_telemetry_core::SigningKey::from_pkcs8_pem(&shared).unwrap();
    assert_eq!(keyids.first(), Some(&shared.keyid()));
}

#[test]
fn with_redis_down_run_says_so_and_sends_nothing() {
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let mut flags = f.flags("state", &sink.url(), "1s", &unique("redis-down"));
    flags.extend([
        "--redis.address".to_owned(),
        common::closed_port().to_string(),
        "--redis.password".to_owned(),
        "pw-S3cret".to_owned(),
    ]);
    let log = f.path("run.log");
    let mut agent = spawn_run(f.dir.path(), &flags, &[], &log);
    // The agent's decision is its log line; once it is there, stop it. (That it is said once
    // per outage over many retries is checked on virtual time in tests/daemon.rs.)
    wait_log(
        &log,
        "telemetry not sent: cannot coordinate",
        Duration::from_secs(10),
    );
    terminate(&mut agent);
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        log.matches("telemetry not sent: cannot coordinate").count(),
        1,
        "said once per outage:\n{log}"
    );
    assert!(!log.contains("pw-S3cret"), "{log}");
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "nothing sent without coordination"
    );
    assert!(read_history(&f.path("state")).unwrap().entries.is_empty());
}

/// Off means no connection for the commands that ask the collector too: with DO_NOT_TRACK,
/// `telemetry.enable: false` or local-only mode, `collected`, `forget` and `rotate-key` say why
/// and open no connection, though a deployment key exists. (Control: with telemetry on,
/// `collected` reaches the same listener.)
#[test]
fn off_means_collected_forget_and_rotate_key_open_no_connection() {
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let flags = f.flags("state", &sink.url(), "24h", &unique("off-deployment"));
    std::fs::create_dir_all(f.path("state")).unwrap();
    ttn_lw_telemetry::signing::local_key(&f.path("state")).unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (&[], &[("DO_NOT_TRACK", "1")], "DO_NOT_TRACK is set"),
        (
            &["--telemetry.enable=false"],
            &[],
            "telemetry.enable is false",
        ),
        (&["--telemetry.local-only"], &[], "local only"),
    ];
    for (extra, env, why) in cases {
        for command in ["collected", "forget", "rotate-key"] {
            let mut args = vec![command.to_owned()];
            args.extend(flags.iter().cloned());
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            let o = output(f.dir.path(), &args, env);
            let err = text(&o.stderr);
            assert!(!o.status.success(), "{command} {extra:?} {env:?}: {err}");
            assert!(
                err.contains(why) && err.contains("opens no connection"),
                "{command} {extra:?} {env:?}: {err}"
            );
        }
    }
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "off opens no connection"
    );
    let mut args = vec!["collected".to_owned()];
    args.extend(flags.iter().cloned());
    let control = output(f.dir.path(), &args, &[]);
    assert!(
        sink.settled_connection_count() >= 1,
        "the control run connects: {}",
        text(&control.stderr)
    );
}

// ---- The state directory without Redis ----

#[test]
fn without_redis_the_state_dir_keeps_the_schedule_across_restarts() {
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let uid_element = unique("local-restart");
    let interval = Duration::from_secs(3);
    let flags = f.flags("state", &sink.url(), "3s", &uid_element);
    let state = f.path("state");

    // First start: the epoch is recorded; kill it before the first report is due.
    let mut a = spawn_run(f.dir.path(), &flags, &[], &f.path("a.log"));
    let end = Instant::now() + Duration::from_secs(5);
    let epoch = loop {
        if let Some(s) = read_state(&state).unwrap() {
            break s.epoch();
        }
        assert!(Instant::now() < end, "no schedule written");
        std::thread::sleep(Duration::from_millis(20));
    };
    sleep_until(epoch + interval / 3);
    kill9(&mut a);

    // A restart before the report is due keeps the epoch and sends nothing early: the agent
    // announces its decision (the next due time) on its admin listener.
    let mut b = spawn_run(f.dir.path(), &flags, &[], &f.path("b.log"));
    assert_due(announced_next_due(&f.path("b.log")), epoch + interval);
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "nothing sent before it is due"
    );
    let got = sink.wait_for(1, Duration::from_secs(6));
    assert_eq!(got.len(), 1, "the report is sent when due");
    assert_eq!(read_state(&state).unwrap().unwrap().epoch(), epoch);
    let first = wait_delivered(&state, 1);
    assert_eq!(first.len(), 1);
    assert!(
        first[0].unix_ms >= ms_since_epoch(epoch + interval),
        "not before one interval after the first start: {} vs epoch {}",
        first[0].time,
        rfc3339(epoch)
    );
    kill9(&mut b);

    // Down over two due times (slots 2 and 3): one report after the restart, not two.
    sleep_until(epoch + interval * 3 + interval / 3);
    assert_eq!(sink.connection_count(), 1);
    let mut c = spawn_run(f.dir.path(), &flags, &[], &f.path("c.log"));
    let got = sink.wait_for(2, Duration::from_secs(2));
    assert_eq!(
        got.len(),
        2,
        "the report missed while down is sent after the restart"
    );
    // Once it has logged the delivery, its next report is the next slot's, not another missed one.
    wait_log(
        &f.path("c.log"),
        "telemetry report delivered",
        Duration::from_secs(5),
    );
    assert_due(announced_next_due(&f.path("c.log")), epoch + interval * 4);
    terminate(&mut c);
    assert_eq!(
        sink.settled_connection_count(),
        2,
        "once, not once per missed interval"
    );
    let log = std::fs::read_to_string(f.path("c.log")).unwrap();
    assert!(log.contains("telemetry is on"), "{log}");
    let admin = log
        .split("admin listener at http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the admin listener's address is logged");
    assert!(
        log.contains(&format!("http://{admin}/api/v1/telemetry/report")) && !admin.ends_with(":0"),
        "the start-up line names the bound admin address: {log}"
    );
    assert!(log.contains("stopping"), "SIGTERM is logged:\n{log}");
}

#[test]
fn kill9_during_a_send_then_restart_sends_once_more_and_audits_both_attempts() {
    let f = Fixture::new();
    let sink = Sink::start(
        vec![Reply::Hang(Duration::from_secs(30))],
        Reply::Receipt(200),
    );
    let flags = f.flags("state", &sink.url(), "3s", &unique("kill-send"));
    let state = f.path("state");
    let mut a = spawn_run(f.dir.path(), &flags, &[], &f.path("a.log"));
    // The first report is due 3 s after the first start; the collector never answers it.
    let got = sink.wait_for(1, Duration::from_secs(8));
    assert_eq!(got.len(), 1, "the first agent sends its report");
    // Its `sending` line was written before the request: kill it while it waits for the answer.
    kill9(&mut a);

    let mut b = spawn_run(f.dir.path(), &flags, &[], &f.path("b.log"));
    let got = sink.wait_for(2, Duration::from_secs(4));
    assert_eq!(got.len(), 2, "the restart resends the interrupted report");
    // Once the agent has logged the delivery, stop it: nothing more left before that. (That
    // the slot is not sent again later is the schedule's promise, tested in tests/schedule.rs
    // `a_send_killed_midway_is_resent_once_at_most`.)
    wait_log(
        &f.path("b.log"),
        "telemetry report delivered",
        Duration::from_secs(5),
    );
    terminate(&mut b);
    assert_eq!(sink.settled_connection_count(), 2, "sent once more at most");
    assert_eq!(got[0].body, got[1].body, "the same report");
    let h = read_history(&state).unwrap();
    let lines: Vec<(u32, &str)> = h
        .entries
        .iter()
        .map(|e| (e.attempt, e.outcome.as_str()))
        .collect();
    assert_eq!(
        lines,
        [(1, "sending"), (1, "sending"), (1, "delivered")],
        "both attempts are in the audit log"
    );
    let log = std::fs::read_to_string(f.path("b.log")).unwrap();
    assert!(log.contains("resending"), "{log}");
}

// ---- Off means off ----

/// `send` and `run` with telemetry off one way: no database connection, no HTTP connection,
/// nothing written, and the one line says why.
fn off_means_off(extra_flags: &[&str], env: &[(&str, &str)], reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = CountingListener::start();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let state = dir.path().join("state");
    let mut flags: Vec<String> = [
        "--is.database-uri".to_owned(),
        format!("postgresql://ttn:db-S3cret@{}/ttn_lorawan", db.addr),
        "--telemetry.target".to_owned(),
        sink.url(),
        "--telemetry.state-dir".to_owned(),
        state.display().to_string(),
        "--telemetry.entity-count-telemetry.interval".to_owned(),
        "1s".to_owned(),
        "--telemetry.admin.listen".to_owned(),
        "127.0.0.1:0".to_owned(),
    ]
    .to_vec();
    flags.extend(extra_flags.iter().map(|s| s.to_string()));
    let want = format!("telemetry is off ({reason})");

    let mut args = vec!["send".to_owned()];
    args.extend(flags.iter().cloned());
    let o = output(dir.path(), &args, env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.matches(&want).count(), 1, "send says why, once:\n{err}");

    let log = dir.path().join("run.log");
    let mut agent = spawn_run(dir.path(), &flags, env, &log);
    // The agent's decision is its log line; it stops right after it, and the listeners then
    // prove by a marker connection that nothing reached them.
    wait_log(&log, "telemetry is off", Duration::from_secs(10));
    terminate(&mut agent);
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.matches(&want).count(), 1, "run says why, once:\n{log}");
    assert!(!log.contains("telemetry is on"), "{log}");
    assert!(!log.contains("db-S3cret"), "{log}");

    assert_eq!(db.settled_count(), 0, "no database connection");
    assert_eq!(sink.settled_connection_count(), 0, "no HTTP connection");
    assert!(!state.exists(), "nothing written");

    // The control: with telemetry on, the same flags reach both servers' listeners, so the
    // zeros above are meaningful.
    let mut args = vec!["send".to_owned(), "--deadline".to_owned(), "1s".to_owned()];
    args.extend(flags.iter().cloned());
    args.extend(["--telemetry.enable=true".to_owned()]);
    let o = output(dir.path(), &args, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        db.count() >= 1,
        "with telemetry on, send connects to the database"
    );
    assert!(
        !text(&o.stderr).contains("db-S3cret"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn off_by_telemetry_enable_false() {
    off_means_off(
        &["--telemetry.enable=false"],
        &[],
        "telemetry.enable is false",
    );
}

#[test]
fn off_by_entity_count_telemetry_enable_false() {
    off_means_off(
        &[],
        &[("TTN_LW_TELEMETRY_ENTITY_COUNT_TELEMETRY_ENABLE", "false")],
        "telemetry.entity-count-telemetry.enable is false",
    );
}

#[test]
fn off_by_do_not_track() {
    off_means_off(&[], &[("DO_NOT_TRACK", "1")], "DO_NOT_TRACK is set");
}

// ---- send ----

fn send(f: &Fixture, target: &str, deadline: &str) -> (Output, PathBuf) {
    let mut args = vec![
        "send".to_owned(),
        "--deadline".to_owned(),
        deadline.to_owned(),
    ];
    args.extend(f.flags("state", target, "24h", &unique("send")));
    (output(f.dir.path(), &args, &[]), f.path("state"))
}

#[test]
fn send_exits_0_after_a_2xx_and_audits_it() {
    let f = Fixture::new();
    let sink = Sink::start(vec![Reply::status(503)], Reply::Receipt(200));
    let (o, state) = send(&f, &sink.url(), "1m");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 2, "a 503 is retried");
    assert_eq!(reqs[0].body, reqs[1].body, "with the same bytes");
    assert!(parse_report(&reqs[1].body).is_ok());
    let out = text(&o.stdout);
    assert!(
        out.contains("delivered: HTTP 200, receipt matched"),
        "{out}"
    );
    assert!(out.contains("in 2 attempts"), "{out}");
    assert_eq!(read_last_body(&state).unwrap().unwrap(), reqs[1].body);
    assert_eq!(delivered(&state).len(), 1);
    // send is outside the schedule: it does not start one.
    assert!(read_state(&state).unwrap().is_none());
}

#[test]
fn send_exits_1_when_the_collector_refuses() {
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::status(400));
    let (o, state) = send(&f, &sink.url(), "1m");
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("ttn-lw-telemetry: telemetry report to http://127.0.0.1:"),
        "{err}"
    );
    assert!(
        err.contains("not delivered") && err.contains("400"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line:\n{err}");
    assert_eq!(sink.requests().len(), 1, "a 400 is not retried");
    let h = read_history(&state).unwrap();
    assert_eq!(h.last_attempt().unwrap().status, Some(400));
    assert!(h.last_success().is_none());
}

#[test]
fn send_exits_1_when_the_collector_is_down_past_the_deadline() {
    let f = Fixture::new();
    let down = common::closed_port();
    let target = format!("http://{down}/collect");
    let started = Instant::now();
    let (o, state) = send(&f, &target, "3s");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the deadline bounds send"
    );
    let err = text(&o.stderr);
    assert!(err.contains("not delivered before the deadline"), "{err}");
    let attempts = read_history(&state)
        .unwrap()
        .entries
        .iter()
        .filter(|e| e.outcome != "sending")
        .count();
    assert!(attempts >= 2, "retried until the deadline: {attempts}");
}

// ---- status and history ----

#[test]
fn status_and_history_show_the_last_and_next_report_and_sources_without_secrets() {
    let f = Fixture::new();
    let sink = Sink::start(vec![Reply::status(500)], Reply::Receipt(200));
    let uid_element = unique("status");
    let state = f.path("state");
    let flags = f.flags("state", &sink.url(), "4s", &uid_element);
    let mut agent = spawn_run(f.dir.path(), &flags, &[], &f.path("run.log"));
    // Slot 1 is due 4 s after the first start; its retry comes within 2 s, before slot 2.
    let got = sink.wait_for(2, Duration::from_secs(12));
    assert_eq!(got.len(), 2, "a 500, then a 200");
    wait_log(
        &f.path("run.log"),
        "telemetry report delivered",
        Duration::from_secs(5),
    );
    terminate(&mut agent);

    // Settings from each source, secrets among them.
    let file = f.path("config.yml");
    std::fs::write(
        &file,
        "telemetry:\n  admin:\n    token: tok-S3cret\nconsole:\n  ui:\n    ns:\n      base-url: https://ns.example.com/api/v3\n",
    )
    .unwrap();
    let mut args = vec![
        "status".to_owned(),
        "-c".to_owned(),
        file.display().to_string(),
    ];
    args.extend(flags.iter().cloned());
    args.extend([
        "--is.database-uri".to_owned(),
        "postgresql://ttn:db-S3cret@127.0.0.1:1/ttn".to_owned(),
    ]);
    let env = [
        ("TTN_LW_REDIS_PASSWORD", "pw-S3cret"),
        (
            "TTN_LW_CONSOLE_UI_GS_BASE_URL",
            "https://gs.example.com/api/v3",
        ),
    ];
    let o = output(f.dir.path(), &args, &env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let schedule = read_state(&state).unwrap().unwrap();
    let last = read_history(&state).unwrap();
    for want in [
        "telemetry: on, every 4s to http://127.0.0.1:".to_owned(),
        format!("next report due: {}", rfc3339(schedule.next_due())),
        format!("last attempt: {}", last.last_attempt().unwrap()),
        format!("last success: {}", last.last_success().unwrap()),
        "last body sent: ".to_owned(),
        // The binary was built from this crate, so it has the widget exactly when the test has.
        if EmbeddedConsole.has_pkg() {
            "console widget: embedded".to_owned()
        } else {
            format!("console widget: missing. {MISSING}")
        },
    ] {
        assert!(out.contains(&want), "status lacks {want:?}:\n{out}");
    }
    let setting = |key: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("status lacks {key}:\n{out}"))
            .to_owned()
    };
    let file_source = format!("[file {}]", file.display());
    for (key, value, source) in [
        ("telemetry.enable", "true", "[default]"),
        (
            "telemetry.entity-count-telemetry.interval",
            "4s",
            "[command line]",
        ),
        (
            "console.ui.ns.base-url",
            "https://ns.example.com/api/v3",
            file_source.as_str(),
        ),
        ("telemetry.admin.token", "(set)", file_source.as_str()),
        ("redis.password", "(set)", "[env TTN_LW_REDIS_PASSWORD]"),
        (
            "console.ui.gs.base-url",
            "https://gs.example.com/api/v3",
            "[env TTN_LW_CONSOLE_UI_GS_BASE_URL]",
        ),
        ("is.database-uri", "postgresql://ttn:***@", "[command line]"),
        ("redis.address", "(empty)", "[default]"),
    ] {
        let l = setting(key);
        assert!(
            l.contains(value) && l.ends_with(source),
            "{key}: want {value} {source}, got {l}"
        );
    }

    // DO_NOT_TRACK is named as what decided telemetry.enable.
    let mut env_off = env.to_vec();
    env_off.push(("DO_NOT_TRACK", "1"));
    let o = output(f.dir.path(), &args, &env_off);
    assert!(o.status.success());
    let off = text(&o.stdout);
    assert!(
        off.contains("telemetry: off (DO_NOT_TRACK is set)"),
        "{off}"
    );
    assert!(
        off.contains("next report due: none (telemetry is off)"),
        "{off}"
    );
    assert!(
        off.lines().any(|l| l.starts_with("  telemetry.enable ")
            && l.contains(" false (DO_NOT_TRACK overrides true) ")
            && l.ends_with("[env DO_NOT_TRACK]")),
        "{off}"
    );

    // history: every attempt, in order.
    let mut hargs = vec!["history".to_owned()];
    hargs.extend(flags.iter().cloned());
    let o = output(f.dir.path(), &hargs, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let hist = text(&o.stdout);
    let lines: Vec<&str> = hist.lines().collect();
    assert_eq!(lines.len(), 4, "{hist}");
    assert!(
        lines[1].contains("attempt 1 ") && lines[1].contains("HTTP 500"),
        "{hist}"
    );
    assert!(
        lines[3].contains("attempt 2 delivered HTTP 200 receipt matched"),
        "{hist}"
    );

    // With Redis set, status asks it; an unreachable one (or a refused password) is said, and
    // the password is not.
    let mut rargs = args.clone();
    rargs.extend([
        "--redis.address".to_owned(),
        common::closed_port().to_string(),
    ]);
    let o = output(f.dir.path(), &rargs, &env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = text(&o.stdout);
    assert!(r.contains("next report due: unknown"), "{r}");

    for o in [out, off, hist, r] {
        for secret in ["tok-S3cret", "pw-S3cret", "db-S3cret"] {
            assert!(!o.contains(secret), "{secret} shown:\n{o}");
        }
    }

    // A fresh state directory: no history yet, and status says when the first report comes.
    let mut args = vec!["history".to_owned()];
    args.extend(f.flags("fresh", &sink.url(), "2s", &uid_element));
    let o = output(f.dir.path(), &args, &[]);
    assert!(o.status.success());
    assert!(text(&o.stdout).starts_with("no delivery attempts recorded in"));
    args[0] = "status".to_owned();
    let o = output(f.dir.path(), &args, &[]);
    assert!(
        text(&o.stdout).contains("next report due: one interval after the agent's first start")
    );
    assert!(
        !f.path("fresh").exists(),
        "status and history write nothing"
    );
}

// ---- Hardening (issue 11) ----

/// Waits until `log` holds `needle` (the agent has logged a decision), up to `timeout`; returns
/// the log.
fn wait_log(log: &Path, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) || Instant::now() > end {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next due time an agent announces on its admin listener (`/metrics`), once it has one:
/// its decision about the schedule, observed without waiting for the time to pass.
fn announced_next_due(log: &Path) -> SystemTime {
    let admin = admin_address(log);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut r) = ureq::get(format!("http://{admin}/metrics")).call() {
            let text = r.body_mut().read_to_string().unwrap_or_default();
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("ttn_lw_telemetry_next_due_timestamp_seconds "))
            {
                let secs: f64 = v.trim().parse().unwrap();
                return SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs);
            }
        }
        assert!(Instant::now() < end, "no next due time announced");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `announced` is `want` at the metric's resolution (whole seconds).
fn assert_due(announced: SystemTime, want: SystemTime) {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    assert!(
        (secs(announced) - secs(want)).abs() < 1.0,
        "next due {} announced, {} expected",
        rfc3339(announced),
        rfc3339(want)
    );
}

/// The admin listener's address, from the agent's log.
fn admin_address(log: &Path) -> SocketAddr {
    let text = wait_log(log, "admin listener at http://", Duration::from_secs(10));
    text.split("admin listener at http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin address logged:\n{text}"))
        .parse()
        .unwrap()
}

/// `prlimit` of util-linux, which runs a command under lowered resource limits.
fn prlimit() -> &'static str {
    ["/usr/bin/prlimit", "/bin/prlimit"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("prlimit (util-linux) is needed to run the agent under a low file-descriptor limit")
}

#[test]
fn an_admin_flood_under_a_low_fd_limit_neither_stops_reports_nor_stays_open() {
    use std::io::Read as _;
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let flags = f.flags("state", &sink.url(), "2s", &unique("flood"));
    let log = f.path("run.log");
    const LIMIT: usize = 160;
    let mut agent = Command::new(prlimit())
        .arg(format!("--nofile={LIMIT}:{LIMIT}"))
        .arg(BIN)
        .arg("run")
        .args(&flags)
        .current_dir(f.dir.path())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let admin = admin_address(&log);

    // More idle connections than the agent has file descriptors, opened as the first report
    // comes due (2 s after start); stop when the listen backlog stays full.
    let mut idle = Vec::new();
    let mut refused = 0;
    while idle.len() < 2 * LIMIT && refused < 3 {
        match std::net::TcpStream::connect_timeout(&admin, Duration::from_millis(300)) {
            Ok(s) => {
                idle.push(s);
                refused = 0;
            }
            Err(_) => refused += 1,
        }
    }
    let flooded = Instant::now();
    assert!(
        idle.len() > LIMIT,
        "the flood outnumbers the agent's descriptors: {}",
        idle.len()
    );

    // Reports go on: two arrive after the flood began.
    let end = Instant::now() + Duration::from_secs(15);
    while sink.requests().iter().filter(|r| r.at > flooded).count() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = sink.requests().iter().filter(|r| r.at > flooded).count();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(after >= 2, "reports stopped under the flood:\n{text}");
    assert!(!text.contains("Too many open files"), "{text}");

    // The agent closes an idle connection by itself (header/idle timeout).
    let first = &mut idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    let closed = match first.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(
        closed,
        "an idle admin connection was not closed by the agent"
    );

    // Once the flood is gone, /metrics answers again and shows the reports.
    drop(idle);
    let metrics = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
        .get(format!("http://{admin}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ttn_lw_telemetry_last_success_timestamp_seconds ")),
        "{metrics}"
    );
    terminate(&mut agent);
}

/// A `schedule.json` with these values (interval 1 s).
fn schedule_json(epoch_unix_ms: u64, done_slot: u64, pending: Option<u64>) -> String {
    serde_json::json!({
        "version": 1,
        "epoch_unix_ms": epoch_unix_ms,
        "interval_ms": 1000,
        "done_slot": done_slot,
        "pending": pending.map(|slot| serde_json::json!({"slot": slot, "resumed": false})),
    })
    .to_string()
}

fn corrupt_files(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("schedule.json.corrupt-")
        })
        .collect()
}

#[test]
fn status_reports_a_damaged_schedule_in_one_line_without_panicking() {
    let f = Fixture::new();
    let ten_s_ago = ms_since_epoch(SystemTime::now() - Duration::from_secs(10));
    for (name, json) in [
        ("epoch_unix_ms", schedule_json(u64::MAX, 0, None)),
        ("pending.slot", schedule_json(ten_s_ago, 0, Some(u64::MAX))),
        ("done_slot", schedule_json(ten_s_ago, u64::MAX, None)),
    ] {
        let state = f.path(&format!("status-{name}"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("schedule.json"), &json).unwrap();
        let mut args = vec!["status".to_owned()];
        args.extend(f.flags(&format!("status-{name}"), "http://127.0.0.1:1/", "1s", "x"));
        let o = output(f.dir.path(), &args, &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        let line = out
            .lines()
            .find(|l| l.starts_with("next report due: "))
            .unwrap_or_else(|| panic!("{name}:\n{out}"));
        assert!(
            line.contains("unknown") && line.contains("damaged") && line.contains(name),
            "{name}: {line}"
        );
        assert_eq!(
            std::fs::read_to_string(state.join("schedule.json")).unwrap(),
            json,
            "{name}: status changes nothing"
        );
        assert!(corrupt_files(&state).is_empty(), "{name}");
    }
}

#[test]
fn run_sets_a_damaged_schedule_aside_and_reports_again() {
    let f = Fixture::new();
    let ten_s_ago = ms_since_epoch(SystemTime::now() - Duration::from_secs(10));
    for (name, bytes) in [
        (
            "done_slot u64::MAX",
            schedule_json(ten_s_ago, u64::MAX, None),
        ),
        ("not JSON", "{\"version\":1,\"epo".to_owned()),
    ] {
        let sink = Sink::start(vec![], Reply::Receipt(200));
        let dir_name = format!("run-{}", unique("damaged"));
        let state = f.path(&dir_name);
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("schedule.json"), &bytes).unwrap();
        let flags = f.flags(&dir_name, &sink.url(), "1s", &unique("damaged"));
        let log = f.path(&format!("{dir_name}.log"));
        let mut agent = spawn_run(f.dir.path(), &flags, &[], &log);
        let got = sink.wait_for(1, Duration::from_secs(10));
        terminate(&mut agent);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            got.len(),
            1,
            "{name}: no report after a damaged schedule:\n{text}"
        );
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(" is damaged")).collect();
        assert_eq!(lines.len(), 1, "{name}: said in one line:\n{text}");
        assert!(lines[0].contains("set aside as"), "{name}: {}", lines[0]);
        let aside = corrupt_files(&state);
        assert_eq!(aside.len(), 1, "{name}");
        assert_eq!(
            std::fs::read_to_string(&aside[0]).unwrap(),
            bytes,
            "{name}: set aside, not deleted"
        );
        assert!(read_state(&state).unwrap().is_some(), "{name}: rebuilt");
    }
}

#[test]
fn send_refuses_to_send_when_the_audit_log_cannot_be_written() {
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let state = f.path("state");
    std::fs::create_dir_all(state.join("audit.jsonl")).unwrap();
    let (o, _) = send(&f, &sink.url(), "10s");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not sent") && err.contains("audit.jsonl"),
        "{err}"
    );
    // The process has exited: the marker connection settles the count.
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "nothing left without its audit line"
    );
}

#[test]
fn send_says_so_when_a_delivered_report_lost_its_audit_line() {
    let f = Fixture::new();
    let state = f.path("state");
    // A collector that, once it has the report, makes the audit log unwritable, then answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let audit = state.join("audit.jsonl");
    let server = std::thread::spawn(move || {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let (stream, _) = listener.accept().unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.trim_end().is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        std::fs::remove_file(&audit).unwrap();
        std::fs::create_dir(&audit).unwrap();
        let mut s = stream;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
    });
    let (o, _) = send(&f, &format!("http://{addr}/collect"), "10s");
    server.join().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("was made (delivered: HTTP 200")
            && err.contains("audit line could not be written"),
        "{err}"
    );
}

#[test]
fn run_refuses_to_send_without_its_audit_trail_and_says_so() {
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let state = f.path("state");
    // The last body cannot be kept: a directory stands where it goes.
    std::fs::create_dir_all(state.join("last-body.json")).unwrap();
    let flags = f.flags("state", &sink.url(), "1s", &unique("audit"));
    let log = f.path("run.log");
    let mut agent = spawn_run(f.dir.path(), &flags, &[], &log);
    let text = wait_log(
        &log,
        "telemetry report not sent: the audit trail cannot be written",
        Duration::from_secs(10),
    );
    // The agent has logged its decision; the report was due and nothing reached the collector.
    assert_eq!(sink.settled_connection_count(), 0, "{text}");
    // The metrics say so too, for an alert.
    let admin = admin_address(&log);
    let metrics = ureq::get(format!("http://{admin}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.lines().any(|l| l
            .strip_prefix("ttn_lw_telemetry_audit_failures_total ")
            .is_some_and(|n| n.parse::<u64>().unwrap() >= 1)),
        "{metrics}"
    );
    terminate(&mut agent);
    let text = std::fs::read_to_string(&log).unwrap();
    // One line per report held back (one interval passes at most while the test stops it).
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("not sent")).collect();
    assert!((1..=3).contains(&lines.len()), "{text}");
    for l in lines {
        assert!(l.contains("ERROR") && l.contains("last-body.json"), "{l}");
    }
}

#[test]
fn send_deadline_cuts_the_attempt_in_flight() {
    let f = Fixture::new();
    // The collector reads the report and never answers.
    let sink = Sink::start(vec![], Reply::Hang(Duration::from_secs(60)));
    let started = Instant::now();
    let (o, state) = send(&f, &sink.url(), "2s");
    let elapsed = started.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        elapsed < Duration::from_millis(4500),
        "send --deadline 2s returned after {elapsed:?}"
    );
    assert!(
        text(&o.stderr).contains("not delivered before the deadline"),
        "{}",
        text(&o.stderr)
    );
    let last = read_history(&state).unwrap();
    assert_eq!(last.last_attempt().unwrap().outcome, "timeout");
}

// ---- Local-only mode (issue 14 §1) ----

const LOCAL_ONLY_NOTE: &str = "local only: reports are kept here and never sent";

/// Waits until `log` holds `needle` `n` times (the agent has logged that many decisions).
fn wait_log_count(log: &Path, needle: &str, n: usize, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= n || Instant::now() > end {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http_get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// `run` with `telemetry.local-only`: it counts on its schedule and keeps every report (audit
/// line "kept locally", last body), shows them in `status`, `history`, the inputs JSON and
/// `/metrics`, and never opens a connection to the target, proven by the target's listener
/// after the agent has logged its decisions. The control: `send` without local-only reaches
/// that listener.
#[test]
fn local_only_run_keeps_every_report_and_never_connects_to_the_target() {
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let uid_element = unique("local-only");
    let state = f.path("state");
    let mut flags = f.flags("state", &sink.url(), "1s", &uid_element);
    flags.push("--telemetry.local-only".to_owned());
    let log = f.path("run.log");
    let mut agent = spawn_run(f.dir.path(), &flags, &[], &log);
    let text_log = wait_log_count(
        &log,
        "telemetry report kept locally",
        2,
        Duration::from_secs(15),
    );
    assert_eq!(
        text_log.matches("telemetry report kept locally").count(),
        2,
        "two reports kept on a 1 s schedule:\n{text_log}"
    );
    assert!(
        text_log.contains(&format!("telemetry is on, {LOCAL_ONLY_NOTE}")),
        "{text_log}"
    );

    // The admin listener shows the kept reports, while the agent runs.
    let admin = admin_address(&log);
    let inputs: serde_json::Value = serde_json::from_str(&http_get(&format!(
        "http://{admin}/api/v1/telemetry/inputs"
    )))
    .unwrap();
    assert_eq!(inputs["local_only"], true, "{inputs}");
    assert_eq!(inputs["enabled"], true, "{inputs}");
    assert_eq!(inputs["note"], LOCAL_ONLY_NOTE, "{inputs}");
    assert!(inputs["kept_total"].as_u64().unwrap() >= 2, "{inputs}");
    assert!(inputs["last_kept"].is_string(), "{inputs}");
    assert!(inputs["last_send"].is_null(), "nothing was sent: {inputs}");
    let metrics = http_get(&format!("http://{admin}/metrics"));
    assert!(
        metrics.contains("\nttn_lw_telemetry_local_only 1\n"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ttn_lw_telemetry_last_kept_timestamp_seconds ")),
        "{metrics}"
    );
    let kept_metric: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ttn_lw_telemetry_reports_kept_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(kept_metric >= 2, "{metrics}");
    assert!(
        metrics.contains("\nttn_lw_telemetry_attempts_total 0\n"),
        "{metrics}"
    );
    terminate(&mut agent);

    // No connection reached the target, ever.
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "no connection to the target"
    );

    // Every report is in the audit log as kept, none as sent; the last body is a valid report
    // of this deployment.
    let h = read_history(&state).unwrap();
    assert!(h.entries.len() >= 2, "{:?}", h.entries);
    assert!(
        h.entries.iter().all(AuditEntry::kept_locally),
        "only kept lines: {:?}",
        h.entries
    );
    let body = read_last_body(&state).unwrap().unwrap();
    let report = parse_report(&body).unwrap();
    assert_eq!(
        report.uid,
        compute_uid(std::slice::from_ref(&uid_element)).unwrap()
    );
    assert_eq!(
        h.entries.last().unwrap().sha256,
        ttn_telemetry_core::sha256_hex(&body)
    );

    // history lists each kept report; status says local only and counts them.
    let mut args = vec!["history".to_owned()];
    args.extend(flags.iter().cloned());
    let o = output(f.dir.path(), &args, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), h.entries.len(), "{out}");
    assert!(
        out.lines()
            .all(|l| l.contains(" kept locally sha256 ") && l.ends_with("(local only: never sent)")),
        "{out}"
    );
    let mut args = vec!["status".to_owned()];
    args.extend(flags.iter().cloned());
    let o = output(f.dir.path(), &args, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.lines().next().unwrap().contains(LOCAL_ONLY_NOTE),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "reports kept locally: {}; last: ",
            h.entries.len()
        )),
        "{out}"
    );
    assert!(out.contains("last attempt: none"), "{out}");
    assert!(out.contains("last body kept: "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("telemetry.local-only")
                && l.contains("true  [command line]")),
        "{out}"
    );
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "status connects nowhere"
    );

    // The control: the same flags without local-only reach the target.
    let mut args = vec!["send".to_owned()];
    args.extend(f.flags("state", &sink.url(), "1s", &uid_element));
    let o = output(f.dir.path(), &args, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(sink.requests().len(), 1);
}

/// `send` with `telemetry.local-only` builds and keeps the report, says so, exits 0 and
/// connects nowhere.
#[test]
fn local_only_send_keeps_the_report_says_so_and_sends_nothing() {
    let f = Fixture::new();
    let sink = Sink::start(vec![], Reply::Receipt(200));
    let mut args = vec!["send".to_owned()];
    args.extend(f.flags("state", &sink.url(), "24h", &unique("local-send")));
    args.push("--telemetry.local-only=true".to_owned());
    let o = output(f.dir.path(), &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with(LOCAL_ONLY_NOTE), "{out}");
    assert!(out.contains("sent nowhere"), "{out}");
    let state = f.path("state");
    let body = read_last_body(&state).unwrap().unwrap();
    assert!(parse_report(&body).is_ok());
    assert!(
        out.contains(&ttn_telemetry_core::sha256_hex(&body)),
        "{out}"
    );
    let h = read_history(&state).unwrap();
    assert_eq!(h.entries.len(), 1);
    assert!(h.entries[0].kept_locally());
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "no connection to the target"
    );
    // send is outside the schedule, in local-only mode too.
    assert!(read_state(&state).unwrap().is_none());

    // preview prints the same bytes and says that the agent keeps them.
    let mut args = vec!["preview".to_owned()];
    args.extend(f.flags("state", &sink.url(), "24h", "x"));
    args.push("--telemetry.local-only".to_owned());
    let o = output(f.dir.path(), &args, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(LOCAL_ONLY_NOTE),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        sink.settled_connection_count(),
        0,
        "no connection to the target"
    );
}

/// Off wins over local-only: nothing counted, written or connected.
#[test]
fn off_by_telemetry_enable_false_wins_over_local_only() {
    off_means_off(
        &["--telemetry.enable=false", "--telemetry.local-only"],
        &[],
        "telemetry.enable is false",
    );
}

#[test]
fn off_by_do_not_track_wins_over_local_only() {
    off_means_off(
        &[],
        &[
            ("DO_NOT_TRACK", "1"),
            ("TTN_LW_TELEMETRY_LOCAL_ONLY", "true"),
        ],
        "DO_NOT_TRACK is set",
    );
}
