//! `run`: the agent. It reports once per interval (coordinated through Redis when one is
//! configured: `cache.redis.*`, falling back to `redis.*`, as ttn-lw-stack's telemetry task
//! queue resolves them; else through `telemetry.state-dir`), keeps the audit log, and serves
//! the admin listener at `telemetry.admin.listen`, until SIGTERM or SIGINT (Ctrl-C).
//!
//! With telemetry off it logs the one line that says why and counts, writes and sends nothing;
//! the admin listener still answers that telemetry is off.

use std::sync::Arc;

use crate::admin::ConsoleAssets;
use crate::clock::{Clock, SystemClock};
use crate::config::Loaded;
use crate::daemon::{self, DaemonConfig, Shutdown};
use crate::inputs::gather;

/// The Console page's assets served by the admin listener, if this build has them.
///
/// The page and its scripts are always compiled in; the widget's wasm (`web-preview/pkg/`) is
/// embedded when it was built before this binary (see [`crate::console`]).
pub fn console_assets() -> Option<Arc<dyn ConsoleAssets>> {
    Some(Arc::new(crate::console::EmbeddedConsole))
}

/// Runs the agent until a signal stops it.
pub fn run(loaded: Loaded) -> anyhow::Result<()> {
    super::init_logging();
    let core = loaded.config;
    let mut cfg = DaemonConfig::from_core(&core)?;
    cfg.deliver.signing_key = crate::signing::for_delivery(&core)?;
    cfg.signing_key_source = Some(crate::signing::KeySource::of_config(core.clone()));
    if let Some(k) = &cfg.deliver.signing_key {
        tracing::info!(keyid = %k.keyid(), "reports are signed with the deployment key");
    }
    let shutdown = Shutdown::new();
    daemon::shutdown_on_signals(&shutdown)?;
    let for_coordinator = core.clone();
    // Counting may block (it opens the database): the daemon and the admin listener call it
    // on threads of their own.
    let provider = Arc::new(move || Ok(gather(&core)?.inputs));
    // One clock for the schedule's start and the loop.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let c = clock.clone();
    daemon::run_with_clock(
        cfg,
        console_assets(),
        clock,
        move || daemon::coordinator_from_core(&for_coordinator, c.now()),
        provider,
        shutdown,
    )
}
