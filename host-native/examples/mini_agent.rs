//! A minimal agent over fixed inputs: the daemon loop, delivery, audit, schedule and admin
//! listener of this crate, without configuration loading or database counting.
//!
//! The real agent is `ttn-lw-telemetry run` (tested as a process in tests/agent.rs, measured by
//! `scripts/bench.d/20-daemon.sh`). This example remains for the process-level test that needs a
//! setting the command line does not offer: a short Redis claim lease, so that a replica killed
//! mid-send is taken over within seconds. Settings come from the environment:
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

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ttn_lw_telemetry::daemon::{self, DaemonConfig, Shutdown};
use ttn_lw_telemetry::deliver::DeliverConfig;
use ttn_lw_telemetry::schedule::Coordinator;
use ttn_lw_telemetry::schedule::local::LocalSchedule;
use ttn_lw_telemetry::schedule::redis::{DEFAULT_NAMESPACE, RedisSchedule, RedisTarget};
use ttn_telemetry_core::Inputs;

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

fn main() -> anyhow::Result<()> {
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
    // Runs until SIGTERM/SIGINT (or SIGKILL, which the process-level tests use).
    let shutdown = Shutdown::new();
    daemon::shutdown_on_signals(&shutdown)?;
    daemon::run(cfg, coordinator, provider, shutdown)
}
