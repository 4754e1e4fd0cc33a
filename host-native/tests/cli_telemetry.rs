//! CLI telemetry (SPEC §7, issue 7), end to end: the example CLI run as a process with a
//! temporary cache dir, against a scripted loopback collector.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Reply, Sink};
use serde_json::Value;
use ttn_telemetry_core::{Payload, parse_report};

/// The example binary; `cargo test` builds examples next to the test binaries.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join("cli_telemetry");
    assert!(
        bin.exists(),
        "{} missing: run through `cargo test`",
        bin.display()
    );
    bin
}

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("cache").join("ttn-lorawan")
    }
    fn state_file(&self) -> PathBuf {
        self.state_dir().join("cli-telemetry.json")
    }
    fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.state_file()).unwrap()).unwrap()
    }
    fn run(&self, target: &str, args: &[&str]) -> Output {
        self.run_env(target, args, &[])
    }
    fn run_env(&self, target: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::new(example())
            .env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .envs(env.iter().copied())
            .args(["--telemetry.target", target])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    /// Moves the last report (or the creation) 25 hours into the past, so one is due.
    fn age_by_25h(&self) {
        let mut s = self.state();
        let back = |v: &Value| Value::from(v.as_u64().unwrap() - 25 * 3600);
        s["created_at"] = back(&s["created_at"]);
        if !s["last_sent_at"].is_null() {
            s["last_sent_at"] = back(&s["last_sent_at"]);
        }
        std::fs::write(self.state_file(), serde_json::to_vec(&s).unwrap()).unwrap();
    }
}

fn count(state: &Value, path: &str) -> u64 {
    state["commands"][path]["execution_count"]
        .as_u64()
        .unwrap_or(0)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn first_run_creates_private_state_and_sends_nothing() {
    let sink = Sink::start(vec![], Reply::Receipt(202));
    let home = Home::new();
    let out = home.run(&sink.url(), &["end-devices", "list"]);
    assert!(
        stderr(&out)
            .contains("To turn this off, use --telemetry.enable=false or set DO_NOT_TRACK=1")
    );
    let mode = std::fs::metadata(home.state_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let s = home.state();
    assert!(ttn_telemetry_core::is_valid_uuid(
        s["uid"].as_str().unwrap()
    ));
    assert_eq!(count(&s, "end-devices list"), 1);
    // Second run within 24 h: counted, nothing sent, no second notice.
    let out = home.run(&sink.url(), &["dev", "list"]);
    assert!(!stderr(&out).contains("Telemetry:"), "{}", stderr(&out));
    let s2 = home.state();
    assert_eq!(s2["uid"], s["uid"], "the UUID is made once");
    assert_eq!(count(&s2, "end-devices list"), 2);
    assert_eq!(s2["aliases"]["end-devices"]["dev"], 1);
    // The CLI has exited: every connection it made is in the sink's queue by now.
    assert_eq!(sink.settled_connection_count(), 0);
}

#[test]
fn a_run_after_24h_sends_one_report_with_usage_and_aliases() {
    let sink = Sink::start(vec![], Reply::Receipt(202));
    let home = Home::new();
    home.run(&sink.url(), &["gateways", "list"]);
    home.run(&sink.url(), &["gtw", "list"]);
    home.run(&sink.url(), &["gtw", "create"]);
    home.age_by_25h();
    let uid = home.state()["uid"].as_str().unwrap().to_owned();
    home.run(&sink.url(), &["dev", "list"]);
    let got = sink.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    let report = parse_report(&got[0].body).expect("the collector's validator accepts it");
    assert_eq!(report.uid, uid);
    let Payload::Cli(cli) = report.payload else {
        panic!("not a CLI report")
    };
    let counts: Vec<(&str, u64)> = cli
        .commands
        .iter()
        .map(|c| (c.command_path.as_str(), c.execution_count))
        .collect();
    assert_eq!(
        counts,
        [
            ("end-devices list", 1),
            ("gateways create", 1),
            ("gateways list", 2)
        ]
    );
    let aliases: Vec<(&str, &str, u64)> = cli
        .aliases
        .iter()
        .map(|a| (a.command_name.as_str(), a.alias.as_str(), a.usage_count))
        .collect();
    assert_eq!(aliases, [("end-devices", "dev", 1), ("gateways", "gtw", 2)]);
    assert!(got[0].body.ends_with(br#","entities_count":null}"#));
    // After the 2xx the counters are reset and the next report is a day away.
    let s = home.state();
    assert_eq!(s["commands"], serde_json::json!({}));
    assert_eq!(s["aliases"], serde_json::json!({}));
    assert!(s["sending_since"].is_null());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - s["last_sent_at"].as_u64().unwrap() < 60);
    home.run(&sink.url(), &["users", "list"]);
    assert_eq!(
        sink.settled_connection_count(),
        1,
        "at most one report per 24 h"
    );
}

#[test]
fn a_failing_collector_leaves_counters_intact() {
    let sink = Sink::start(vec![], Reply::status(500));
    let home = Home::new();
    home.run(&sink.url(), &["applications", "list"]);
    home.age_by_25h();
    let before = home.state();
    home.run(&sink.url(), &["app", "list"]);
    assert!(sink.connection_count() >= 1, "a report was attempted");
    let s = home.state();
    assert_eq!(count(&s, "applications list"), 2);
    assert_eq!(s["aliases"]["applications"]["app"], 1);
    assert_eq!(s["last_sent_at"], before["last_sent_at"]);
    assert!(s["sending_since"].is_null(), "the claim is released");
}

#[test]
fn a_corrupt_or_truncated_state_is_replaced_with_a_warning() {
    let sink = Sink::start(vec![], Reply::Receipt(202));
    let home = Home::new();
    home.run(&sink.url(), &["users", "list"]);
    let full = std::fs::read(home.state_file()).unwrap();
    for broken in [
        &full[..full.len() / 2],
        b"\x00\xffgarbage",
        b"",
        br#"{"uid":"nope"}"#,
    ] {
        std::fs::write(home.state_file(), broken).unwrap();
        let out = home.run(&sink.url(), &["users", "list"]);
        assert!(
            stderr(&out).contains("is corrupt; starting a new one"),
            "{}",
            stderr(&out)
        );
        assert_eq!(count(&home.state(), "users list"), 1);
    }
}

#[test]
fn concurrent_invocations_keep_exact_counts() {
    let sink = Sink::start(vec![], Reply::Receipt(202));
    let home = Home::new();
    home.run(&sink.url(), &["orgs", "list"]);
    let url = sink.url();
    std::thread::scope(|s| {
        for i in 0..20 {
            let (home, url) = (&home, &url);
            s.spawn(move || {
                let words: &[&str] = if i % 2 == 0 {
                    &["org", "list"]
                } else {
                    &["organizations", "list"]
                };
                home.run(url, words);
            });
        }
    });
    let s = home.state();
    assert_eq!(count(&s, "organizations list"), 21);
    assert_eq!(s["aliases"]["organizations"]["org"], 10);
    assert_eq!(s["aliases"]["organizations"]["orgs"], 1);
}

/// Flags and environment that must turn CLI telemetry off.
type OffCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

#[test]
fn off_means_nothing_written_nothing_sent() {
    let sink = Sink::start(vec![], Reply::Receipt(202));
    let cases: &[OffCase] = &[
        (&["--telemetry.enable=false"], &[]),
        (&["--telemetry.enable", "false"], &[]),
        (&[], &[("TTN_LW_TELEMETRY_ENABLE", "false")]),
        (&[], &[("DO_NOT_TRACK", "1")]),
        (&["--telemetry.enable=true"], &[("DO_NOT_TRACK", "1")]),
    ];
    for (flags, env) in cases {
        let home = Home::new();
        let mut args = flags.to_vec();
        args.extend(["end-devices", "list"]);
        let out = home.run_env(&sink.url(), &args, env);
        assert!(stderr(&out).is_empty(), "{}", stderr(&out));
        assert!(
            !home.dir.path().join("cache").exists(),
            "{flags:?} {env:?}: nothing written"
        );
    }
    // Even when a report would be due.
    let home = Home::new();
    home.run(&sink.url(), &["users", "list"]);
    home.age_by_25h();
    let before = std::fs::read(home.state_file()).unwrap();
    home.run_env(&sink.url(), &["users", "list"], &[("DO_NOT_TRACK", "1")]);
    assert_eq!(std::fs::read(home.state_file()).unwrap(), before);
    // The CLI has exited: every connection it made is in the sink's queue by now.
    assert_eq!(sink.settled_connection_count(), 0);
}

#[test]
fn a_hanging_collector_costs_at_most_the_timeout() {
    let sink = Sink::start(vec![], Reply::Hang(Duration::from_secs(30)));
    let home = Home::new();
    home.run(&sink.url(), &["gateways", "list"]);
    home.age_by_25h();
    let start = Instant::now();
    home.run(
        &sink.url(),
        &["gateways", "list", "--telemetry.timeout", "500ms"],
    );
    let took = start.elapsed();
    assert_eq!(sink.connection_count(), 1, "the report was attempted");
    // 500 ms of telemetry plus process start-up; far below the collector's 30 s hang.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The command's usage was not lost.
    assert_eq!(count(&home.state(), "gateways list"), 2);
}

/// SPEC §7: with no state of its own, the library keeps the installation id that ttn-lw-cli
/// wrote in `<user cache dir>/ttn-lw-cli/telemetry.yml` (its format: `uid`, and `last_sent`
/// as Go's `time.RFC3339Nano`), and its `last_sent` as the last report.
#[test]
fn adopts_the_installation_id_of_the_reference_cli_state() {
    let sink = Sink::start(vec![], Reply::Receipt(202));
    let reference_uid = "0b6c9a3e-4f1d-4b8e-9a2f-5c7d1e3f8a90";
    let write_reference = |home: &Home, last_sent: &str| {
        let dir = home.dir.path().join("cache").join("ttn-lw-cli");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("telemetry.yml"),
            format!("uid: {reference_uid}\nlast_sent: {last_sent}\n"),
        )
        .unwrap();
    };

    // ttn-lw-cli reported 25 h ago: the id is kept and, as the day has passed, the first
    // report already goes out, under that id.
    let home = Home::new();
    let sent = SystemTime::now() - Duration::from_secs(25 * 3600);
    write_reference(&home, &rfc3339(sent));
    let out = home.run(&sink.url(), &["end-devices", "list"]);
    assert!(
        stderr(&out).contains("keeping the installation id of"),
        "{}",
        stderr(&out)
    );
    assert_eq!(home.state()["uid"], reference_uid);
    let got = sink.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(parse_report(&got[0].body).unwrap().uid, reference_uid);
    // The reference file is only read.
    let reference = home.dir.path().join("cache/ttn-lw-cli/telemetry.yml");
    assert!(
        std::fs::read_to_string(&reference)
            .unwrap()
            .contains(reference_uid)
    );

    // ttn-lw-cli reported an hour ago: same id, and nothing is due for a day.
    let home = Home::new();
    write_reference(
        &home,
        &rfc3339(SystemTime::now() - Duration::from_secs(3600)),
    );
    home.run(&sink.url(), &["gateways", "list"]);
    let s = home.state();
    assert_eq!(s["uid"], reference_uid);
    let last = s["last_sent_at"].as_u64().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((3590..3700).contains(&(now - last)), "{}", now - last);

    // Our own state wins over the reference's, and a reference file without a valid UUID is
    // ignored.
    let home = Home::new();
    home.run(&sink.url(), &["users", "list"]);
    let own = home.state()["uid"].clone();
    write_reference(&home, "2024-10-24T15:28:12.123456789+02:00");
    home.run(&sink.url(), &["users", "list"]);
    assert_eq!(home.state()["uid"], own);
    let home = Home::new();
    let dir = home.dir.path().join("cache").join("ttn-lw-cli");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("telemetry.yml"), "uid: not-a-uuid\n").unwrap();
    let out = home.run(&sink.url(), &["users", "list"]);
    assert!(!stderr(&out).contains("keeping the installation id"));
    assert_ne!(home.state()["uid"], "not-a-uuid");
    assert_eq!(
        sink.settled_connection_count(),
        1,
        "only the first case was due"
    );
}

/// Go's `time.RFC3339Nano` for a UTC time, as ttn-lw-cli's state holds it.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    let micros = i64::try_from(d.as_micros()).unwrap();
    // The core writes `…ss.ffffffZ`, which is also valid RFC3339Nano.
    ttn_telemetry_core::format_rfc3339_micros(micros)
}

/// The 24 h rule on virtual time, in process: the first report is due exactly 24 h after the
/// state is made, and the next one 24 h after it was sent; days take no real time.
#[test]
fn reports_are_a_day_apart_by_the_clock() {
    use std::sync::Arc;
    use ttn_lw_telemetry::cli_telemetry::{Options, Usage, record_on};
    use ttn_lw_telemetry::clock::{Clock as _, VirtualClock};
    use ttn_telemetry_core::OsInfo;

    let sink = Sink::start(vec![], Reply::Receipt(202));
    let home = Home::new();
    let opts = Options {
        enable: true,
        target: sink.url(),
        state_dir: home.state_dir(),
        timeout: Duration::from_secs(5),
        os: OsInfo {
            operating_system: "linux".into(),
            arch: "amd64".into(),
            binary_version: "3.0.0".into(),
            golang_version: "rustc".into(),
        },
        how_to_disable: "--telemetry.enable=false".into(),
    };
    let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let clock = Arc::new(VirtualClock::new(t0));
    let day = Duration::from_secs(24 * 3600);
    let run = |path: &str| {
        let usage = Usage {
            command_path: path,
            alias: None,
        };
        record_on(&opts, usage, clock.clone()).unwrap().finish()
    };
    assert_eq!(run("users list"), None, "nothing is due at the first run");
    clock.advance(day - Duration::from_secs(1));
    assert_eq!(
        run("users list"),
        None,
        "not due a second before the day is over"
    );
    assert_eq!(sink.settled_connection_count(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(run("gateways list"), Some(true), "due when the day is over");
    let sent = clock.now();
    clock.advance(day - Duration::from_secs(1));
    assert_eq!(run("users list"), None);
    clock.advance(Duration::from_secs(1));
    assert_eq!(run("users list"), Some(true));
    let got = sink.requests();
    assert_eq!(got.len(), 2);
    let Payload::Cli(first) = parse_report(&got[0].body).unwrap().payload else {
        panic!("not a CLI report")
    };
    assert_eq!(first.commands.len(), 2, "{:?}", first.commands);
    assert_eq!(
        home.state()["last_sent_at"].as_u64(),
        Some((sent + day).duration_since(UNIX_EPOCH).unwrap().as_secs())
    );
}
