//! The run loop as real processes killed with SIGKILL: two agents share a Redis schedule, the
//! one sending is killed mid-send, and the other takes the slot over once the claim lease runs
//! out.
//!
//! The real binary's `run` is tested as a process in tests/agent.rs; this needs a setting its
//! command line does not offer (a short Redis claim lease). So this test binary is also the
//! agent: with `MINI_AGENT=1` it runs this crate's daemon over fixed inputs (settings below)
//! instead of the tests. `harness = false` with tests/harness, so that `main` picks the role and
//! the tests still report, filter and fail like libtest's.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MINI_AGENT_TARGET` | collector URL | `http://127.0.0.1:9/collect` |
//! | `MINI_AGENT_STATE_DIR` | state directory | `.ttn-lw-telemetry` |
//! | `MINI_AGENT_INTERVAL_MS` | report interval | 86400000 |
//! | `MINI_AGENT_ATTEMPT_TIMEOUT_MS` | per-attempt timeout | 30000 |
//! | `MINI_AGENT_REDIS_URL` | Redis URL; unset means the state directory | |
//! | `MINI_AGENT_REDIS_NS` | Redis key namespace | the default |
//! | `MINI_AGENT_LEASE_MS` | Redis claim lease | 60000 |
//! | `MINI_AGENT_ADMIN` | admin listener address; unset means none | |
//! | `MINI_AGENT_OFF` | an off reason; set means telemetry is off | |

mod common;
mod harness;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{Reply, Sink, redis_namespace, redis_url};
use ttn_lw_telemetry::audit::read_history;
use ttn_lw_telemetry::daemon::{self, DaemonConfig, Shutdown};
use ttn_lw_telemetry::deliver::DeliverConfig;
use ttn_lw_telemetry::schedule::Coordinator;
use ttn_lw_telemetry::schedule::local::LocalSchedule;
use ttn_lw_telemetry::schedule::redis::{DEFAULT_NAMESPACE, RedisSchedule, RedisTarget};
use ttn_telemetry_core::Inputs;

fn main() -> ExitCode {
    if var("MINI_AGENT").is_some() {
        return match mini_agent() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mini agent: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    harness::run(vec![(
        "redis_process_killed_mid_send_is_taken_over_by_the_other",
        Box::new(redis_process_killed_mid_send_is_taken_over_by_the_other),
    )])
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn ms(name: &str, default: u64) -> Duration {
    Duration::from_millis(var(name).and_then(|v| v.parse().ok()).unwrap_or(default))
}

const INPUTS: &[u8] = br#"{"uid_elements":["mini-agent"],
  "os":{"operating_system":"linux","arch":"amd64","binary_version":"0.1.0","golang_version":"rustc 1.95.0"},
  "entities_count":{"gateways":{"total":2,"gateways_by_frequency_plan_id":{"EU_863_870":2}},
    "end_devices":{"total":5,"activate_end_devices":{"total":4,"last_day":1,"last_week":2,"last_month":3}},
    "applications":{"total":1},"accounts":{"users":{"standard":3,"admin":1},"organizations":{"total":0}}}}"#;

/// The child role: this crate's daemon over fixed inputs, until SIGTERM/SIGINT or SIGKILL.
fn mini_agent() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let interval = ms("MINI_AGENT_INTERVAL_MS", 86_400_000);
    let mut deliver = DeliverConfig::new(
        var("MINI_AGENT_TARGET").unwrap_or_else(|| "http://127.0.0.1:9/collect".into()),
    );
    deliver.attempt_timeout = ms("MINI_AGENT_ATTEMPT_TIMEOUT_MS", 30_000);
    let state_dir = var("MINI_AGENT_STATE_DIR").unwrap_or_else(|| ".ttn-lw-telemetry".into());
    let cfg = DaemonConfig {
        off_reason: var("MINI_AGENT_OFF"),
        local_only: false,
        deliver,
        interval,
        state_dir: state_dir.clone().into(),
        admin_listen: var("MINI_AGENT_ADMIN").map(|a| a.parse()).transpose()?,
        admin_token: None,
        uid_elements: vec!["mini-agent".into()],
        signing_key_source: None,
    };
    let inputs = Inputs::from_json(INPUTS)?;
    let provider = Arc::new(move || Ok(inputs.clone()));
    let coordinator = move || -> anyhow::Result<Box<dyn Coordinator>> {
        Ok(match var("MINI_AGENT_REDIS_URL") {
            Some(url) => Box::new(
                RedisSchedule::new(
                    RedisTarget::from_url(&url),
                    &var("MINI_AGENT_REDIS_NS").unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
                    interval,
                )?
                .with_lease(ms("MINI_AGENT_LEASE_MS", 60_000)),
            ),
            None => Box::new(LocalSchedule::open(state_dir, interval, SystemTime::now())?),
        })
    };
    let shutdown = Shutdown::new();
    daemon::shutdown_on_signals(&shutdown)?;
    daemon::run(cfg, coordinator, provider, shutdown)
}

fn spawn_agent(envs: &[(&str, String)], log: &Path) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.env_clear()
        .env("MINI_AGENT", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// How many reports the agent with state directory `state` has recorded as delivered.
fn delivered(state: &std::path::Path) -> usize {
    read_history(state)
        .unwrap()
        .entries
        .iter()
        .filter(|e| e.delivered())
        .count()
}

fn kill9(child: &mut std::process::Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

fn redis_process_killed_mid_send_is_taken_over_by_the_other() {
    let url = redis_url();
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("Redis at {url} (TTN_TEST_REDIS_URL) is unreachable: {e}"));
    let ns = redis_namespace("process-takeover");
    // Slot 1 is answered; slot 2's first request hangs (its sender will be killed).
    let sink = Sink::start(
        vec![Reply::Receipt(200), Reply::Hang(Duration::from_secs(30))],
        Reply::Receipt(200),
    );
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let mut agents: Vec<(std::process::Child, std::path::PathBuf)> = ["a", "b"]
        .iter()
        .map(|name| {
            let state = dir.path().join(name);
            let envs = [
                ("MINI_AGENT_TARGET", sink.url()),
                ("MINI_AGENT_STATE_DIR", state.display().to_string()),
                ("MINI_AGENT_INTERVAL_MS", "3000".into()),
                ("MINI_AGENT_ATTEMPT_TIMEOUT_MS", "1000".into()),
                ("MINI_AGENT_REDIS_URL", url.clone()),
                ("MINI_AGENT_REDIS_NS", ns.clone()),
                ("MINI_AGENT_LEASE_MS", "1500".into()),
            ];
            let log = dir.path().join(format!("{name}.log"));
            (spawn_agent(&envs, &log), state)
        })
        .collect();
    // Slot 2 is due at 6 s; its sender hangs; kill that one with SIGKILL.
    let got = sink.wait_for(2, Duration::from_secs(9));
    assert_eq!(got.len(), 2);
    // The sender's `sending` line is written before its request, so it is there now.
    let holder = agents
        .iter()
        .position(|(_, state)| {
            read_history(state)
                .unwrap()
                .entries
                .last()
                .is_some_and(|e| e.outcome == "sending")
        })
        .expect("one agent is in the middle of sending slot 2");
    kill9(&mut agents[holder].0);
    // The survivor takes slot 2 over when the lease (1.5 s) runs out, then sends slot 3 at 9 s.
    sink.wait_for(4, Duration::from_secs(15));
    let survivor = 1 - holder;
    // Its history records slot 3 once the answer is in, just after the sink saw the request:
    // wait for that line (or the deadline) before killing it.
    let end = Instant::now() + Duration::from_secs(15);
    while delivered(&agents[survivor].1) < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(&mut agents[survivor].0);
    let reqs = sink.requests();
    assert_eq!(
        reqs.len(),
        4,
        "slot 1, slot 2 (hung), slot 2 taken over, slot 3: {:?}",
        reqs.iter().map(|r| r.at - began).collect::<Vec<_>>()
    );
    assert!(reqs.windows(2).all(|w| w[0].body == w[1].body));
    let took_over = reqs[2].at - reqs[1].at;
    assert!(
        took_over >= Duration::from_millis(1000) && took_over < Duration::from_millis(3000),
        "taken over after the lease: {took_over:?}"
    );
    assert!(
        delivered(&agents[survivor].1) >= 2,
        "the survivor sent slots 2 and 3"
    );
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
