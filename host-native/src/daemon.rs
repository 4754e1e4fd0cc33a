//! The run loop of `ttn-lw-telemetry run`: schedule → count → build (core) → deliver → audit,
//! with metrics and the admin listener alongside.
//!
//! The loop is synchronous on its own thread: it sleeps on its [`Clock`] until the next due
//! time (or shutdown), so an idle agent uses no CPU. Every time it reads and every wait it makes
//! go through that clock ([`run_with_clock`]); tests step a virtual one. One report is in flight at a time:
//! the loop does not claim again before the current delivery has finished. The admin listener
//! runs on a single-threaded tokio runtime in a second thread.
//!
//! # Off means off
//! When core `Config::off_reason` gives a reason, [`run`] logs one info line saying telemetry is
//! off and why, and then does nothing but wait for shutdown: the coordinator factory and the
//! inputs provider are never called, so no state is written, no database is opened, and no
//! connection is made. The admin listener, if asked for, still answers on loopback that
//! telemetry is off, so the Console can show it; it never counts.
//!
//! # Local only
//! With `telemetry.local-only` (core `Config::local_only`), the loop claims, counts and builds
//! on its schedule as always, and then keeps the report ([`audit::keep_locally`]: the last
//! body and a `kept locally` audit line) instead of delivering it: no connection to the target
//! is ever made. Off still wins: with an off reason nothing is counted. A report that cannot
//! be kept (audit log unwritable) is tried again every minute until it is superseded, as a
//! report that cannot be audited is.
//!
//! # No report without its audit line
//! When the audit trail cannot be written ([`audit::Unaudited`]), the loop does not send: it
//! logs one error line saying why for every report it holds back, tries again every minute
//! until the report is superseded, and logs when the audit log is writable again; the metric
//! `ttn_lw_telemetry_audit_failures_total` counts every such failure. If an
//! attempt was made and only its outcome line failed, that is logged at error level every time,
//! since that report may have left without its line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use ttn_telemetry_core::{format_duration, redact_uri, sha256_hex};

use crate::admin::{self, AdminConfig, AdminState, ConsoleAssets, InputsProvider};
use crate::audit::{self, AuditLog, read_history, rfc3339};
use crate::clock::{Clock, SystemClock};
use crate::deliver::{self, DeliverConfig, Final, Observer, Rng};
use crate::metrics::{self, SharedStatus};
use crate::schedule::{Claim, Coordinator, Grant};

/// Longest single sleep of the idle loop; the schedule is re-read after it, which absorbs wall
/// clock jumps (suspend, NTP steps) without polling.
const MAX_IDLE_SLEEP: Duration = Duration::from_secs(3600);
/// How long to wait before asking the coordinator again after it failed (Redis down…).
const COORDINATOR_RETRY: Duration = Duration::from_secs(30);
/// How long to wait before counting again after counting failed.
const COUNT_RETRY: Duration = Duration::from_secs(60);
/// How long to wait before trying again when the audit log cannot be written.
const AUDIT_RETRY: Duration = Duration::from_secs(60);

pub use crate::clock::Shutdown;

/// The daemon's clock for delivery: its sleeps end early on shutdown.
struct ShutdownClock<'a> {
    clock: &'a dyn Clock,
    shutdown: &'a Shutdown,
}

impl Clock for ShutdownClock<'_> {
    fn now(&self) -> SystemTime {
        self.clock.now()
    }
    fn sleep_until(&self, deadline: SystemTime, stop: &Shutdown) -> bool {
        if stop.is_set() {
            return true;
        }
        self.clock.sleep_until(deadline, self.shutdown)
    }
}

/// What the daemon needs to know.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Why telemetry is off (core `Config::off_reason`), `None` when it is on.
    pub off_reason: Option<String>,
    /// `telemetry.local-only` with telemetry on: reports are kept, never sent.
    pub local_only: bool,
    /// Target and timeouts.
    pub deliver: DeliverConfig,
    /// `telemetry.entity-count-telemetry.interval`.
    pub interval: Duration,
    /// `telemetry.state-dir` (audit log, last body, local schedule).
    pub state_dir: PathBuf,
    /// Where the admin listener listens, if at all.
    pub admin_listen: Option<SocketAddr>,
    /// `telemetry.admin.token`.
    pub admin_token: Option<String>,
    /// The UID elements in use (SPEC §3 fallback applied). The admin listener shows them even
    /// when telemetry is off, so the Console can still compute the UID: they are configuration,
    /// not counts.
    pub uid_elements: Vec<String>,
    /// Where the deployment key is loaded from before each report (`deliver.signing_key` is
    /// replaced by what it gives); `None`: `deliver.signing_key` as it is.
    pub signing_key_source: Option<crate::signing::KeySource>,
}

impl DaemonConfig {
    /// The daemon settings of an effective core configuration. The admin address is resolved
    /// now (`localhost:1886` works too), so a bad one fails start-up.
    pub fn from_core(config: &ttn_telemetry_core::Config) -> anyhow::Result<Self> {
        use std::net::ToSocketAddrs as _;
        let admin_listen = if config.admin_listen.is_empty() {
            None
        } else {
            let addr = config
                .admin_listen
                .to_socket_addrs()
                .with_context(|| {
                    format!(
                        "telemetry.admin.listen {:?} does not resolve",
                        config.admin_listen
                    )
                })?
                .next()
                .with_context(|| {
                    format!(
                        "telemetry.admin.listen {:?} has no address",
                        config.admin_listen
                    )
                })?;
            Some(addr)
        };
        Ok(DaemonConfig {
            off_reason: config.off_reason().map(str::to_owned),
            local_only: config.local_only(),
            deliver: DeliverConfig::new(config.target.clone()),
            interval: config.interval,
            state_dir: PathBuf::from(&config.state_dir),
            admin_listen,
            admin_token: Some(config.admin_token.clone()).filter(|t| !t.is_empty()),
            uid_elements: config.uid_elements(),
            signing_key_source: None,
        })
    }
}

/// The Redis key namespace of a deployment: [`redis::DEFAULT_NAMESPACE`](crate::schedule::redis::DEFAULT_NAMESPACE)
/// followed by `:` and the deployment's UID (core `compute_uid` of `Config::uid_elements`).
///
/// The schedule is "one report per interval per deployment" and the UID is what identifies a
/// deployment, so replicas of one deployment share a schedule and two deployments that share
/// one Redis (and database number) do not silence each other. Changing the UID elements starts
/// a new schedule: its first report is due one interval later. No secret is in the key.
pub fn redis_namespace(config: &ttn_telemetry_core::Config) -> anyhow::Result<String> {
    let uid = ttn_telemetry_core::compute_uid(&config.uid_elements())
        .map_err(|e| anyhow::anyhow!("computing the deployment UID: {e}"))?;
    Ok(format!(
        "{}:{uid}",
        crate::schedule::redis::DEFAULT_NAMESPACE
    ))
}

/// The coordinator a core configuration asks for: Redis when core `Config::redis` resolves one
/// (`cache.redis.*`, falling back to `redis.*` as ttn-lw-stack's telemetry task queue does;
/// namespace [`redis_namespace`]), else the state directory. Call it only when telemetry is on
/// (it writes the state directory).
pub fn coordinator_from_core(
    config: &ttn_telemetry_core::Config,
    now: SystemTime,
) -> anyhow::Result<Box<dyn Coordinator>> {
    use crate::schedule::{local::LocalSchedule, redis};
    match config.redis() {
        None => Ok(Box::new(LocalSchedule::open(
            &config.state_dir,
            config.interval,
            now,
        )?)),
        Some(r) => {
            let target = redis::RedisTarget::from_config(&r.address, &r.password, r.database);
            Ok(Box::new(redis::RedisSchedule::new(
                target,
                &redis_namespace(config)?,
                config.interval,
            )?))
        }
    }
}

/// What `send` does after counting: delivers `body` now with the retry policy until
/// `deadline`, writing the audit log and the last body in `state_dir`. Outside the schedule:
/// it neither claims nor completes a slot. `send` exits 0 only when the result is delivered.
///
/// An audit trail that cannot be written is an error ([`audit::Unaudited`]): nothing is sent
/// when the first line cannot be written, and a report delivered without its outcome line is
/// an error too, saying that it was delivered.
pub fn send_now(
    cfg: &DeliverConfig,
    state_dir: &std::path::Path,
    body: &[u8],
    deadline: SystemTime,
) -> anyhow::Result<deliver::Delivery> {
    send_now_with_clock(cfg, state_dir, body, deadline, &SystemClock)
}

/// [`send_now`] on `clock`.
pub fn send_now_with_clock(
    cfg: &DeliverConfig,
    state_dir: &std::path::Path,
    body: &[u8],
    deadline: SystemTime,
    clock: &dyn Clock,
) -> anyhow::Result<deliver::Delivery> {
    let log = AuditLog::open(state_dir)?;
    Ok(audit::deliver_audited(
        cfg,
        body,
        deadline,
        clock,
        &mut deliver::entropy_rng(),
        &log,
        None,
        &mut (),
    )?)
}

/// Triggers `shutdown` on SIGINT or SIGTERM (Ctrl-C elsewhere), from a small thread of its own.
pub fn shutdown_on_signals(shutdown: &Shutdown) -> anyhow::Result<()> {
    let shutdown = shutdown.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut term), Ok(mut int)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) else {
                        return;
                    };
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                }
            });
            tracing::info!("stopping");
            shutdown.trigger();
        })?;
    Ok(())
}

/// The info line logged at start-up when telemetry is on (SPEC §6).
pub fn startup_line(cfg: &DaemonConfig) -> String {
    let preview = match cfg.admin_listen {
        Some(a) => format!("; see the exact report at http://{a}/api/v1/telemetry/report"),
        None => String::new(),
    };
    if cfg.local_only {
        return format!(
            "telemetry is on, {}: every {} this agent counts an anonymous deployment id, its version, OS and architecture, and the number of users, organizations, applications, gateways (per frequency plan) and end devices, and keeps the report in {} (see `ttn-lw-telemetry history`){preview}; \
             nothing is sent to {}; turn counting off with telemetry.enable=false or DO_NOT_TRACK=1",
            ttn_telemetry_core::LOCAL_ONLY_NOTE,
            format_duration(cfg.interval),
            cfg.state_dir.display(),
            redact_uri(&cfg.deliver.target),
        );
    }
    format!(
        "telemetry is on: every {} this agent sends to {}: an anonymous deployment id, its version, OS and architecture, and the number of users, organizations, applications, gateways (per frequency plan) and end devices (active in the last day, week and month){preview}; \
         turn it off with telemetry.enable=false (env TTN_LW_TELEMETRY_ENABLE=false) or DO_NOT_TRACK=1",
        format_duration(cfg.interval),
        redact_uri(&cfg.deliver.target),
    )
}

/// The info line logged when telemetry is off.
pub fn off_line(reason: &str) -> String {
    format!("telemetry is off ({reason}): nothing is counted, stored or sent")
}

/// Runs the agent until `shutdown`: the admin listener (if configured) and, when telemetry is
/// on, the report loop. `coordinator` is called only when telemetry is on.
pub fn run(
    cfg: DaemonConfig,
    coordinator: impl FnOnce() -> anyhow::Result<Box<dyn Coordinator>>,
    provider: Arc<dyn InputsProvider>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    run_with_console(cfg, None, coordinator, provider, shutdown)
}

/// [`run`], with the Console page's assets served by the admin listener when `console` is
/// given (see [`AdminState::with_console`]).
pub fn run_with_console(
    cfg: DaemonConfig,
    console: Option<Arc<dyn ConsoleAssets>>,
    coordinator: impl FnOnce() -> anyhow::Result<Box<dyn Coordinator>>,
    provider: Arc<dyn InputsProvider>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    run_with_clock(
        cfg,
        console,
        Arc::new(SystemClock),
        coordinator,
        provider,
        shutdown,
    )
}

/// [`run_with_console`] on `clock`: every time the loop reads and every wait it makes (the
/// schedule, retries, backoff) go through it, so a test can step a [`VirtualClock`](crate::clock::VirtualClock).
pub fn run_with_clock(
    cfg: DaemonConfig,
    console: Option<Arc<dyn ConsoleAssets>>,
    clock: Arc<dyn Clock>,
    coordinator: impl FnOnce() -> anyhow::Result<Box<dyn Coordinator>>,
    provider: Arc<dyn InputsProvider>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut cfg = cfg;
    let status = metrics::shared(cfg.off_reason.is_none());
    status.lock().unwrap_or_else(|e| e.into_inner()).local_only = cfg.local_only;
    let admin = match cfg.admin_listen {
        Some(addr) => {
            let (handle, bound) = spawn_admin(
                &cfg,
                addr,
                provider.clone(),
                console,
                status.clone(),
                &shutdown,
            )?;
            // The start-up line then names the port actually bound (`:0` picks one).
            cfg.admin_listen = Some(bound);
            Some(handle)
        }
        None => None,
    };
    let result = match &cfg.off_reason {
        Some(reason) => {
            tracing::info!("{}", off_line(reason));
            while !shutdown.wait(MAX_IDLE_SLEEP) {}
            Ok(())
        }
        None => {
            tracing::info!("{}", startup_line(&cfg));
            let coordinator = coordinator()?;
            tracing::info!(
                "telemetry schedule coordinated through {}",
                coordinator.describe()
            );
            let mut d = Daemon::new(cfg, coordinator, provider, status)?.with_clock(clock);
            d.run(&shutdown);
            Ok(())
        }
    };
    shutdown.trigger();
    if let Some(h) = admin {
        let _ = h.join();
    }
    result
}

/// Binds the admin listener now (so a bad or busy address fails start-up) and serves it on a
/// single-threaded runtime in its own thread until shutdown. Returns the thread and the address
/// bound.
pub fn spawn_admin(
    cfg: &DaemonConfig,
    addr: SocketAddr,
    provider: Arc<dyn InputsProvider>,
    console: Option<Arc<dyn ConsoleAssets>>,
    status: SharedStatus,
    shutdown: &Shutdown,
) -> anyhow::Result<(std::thread::JoinHandle<()>, SocketAddr)> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("admin listener cannot listen at {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let state = AdminState::new(
        AdminConfig {
            token: cfg.admin_token.clone(),
            off_reason: cfg.off_reason.clone(),
            local_only: cfg.local_only,
            target: cfg.deliver.target.clone(),
            interval: cfg.interval,
            loopback_hosts_only: addr.ip().is_loopback(),
            uid_elements: cfg.uid_elements.clone(),
        },
        provider,
        status,
    );
    let state = match console {
        Some(c) => state.with_console(c),
        None => state,
    };
    tracing::info!("admin listener at http://{bound}");
    let shutdown = shutdown.clone();
    let handle = std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(2)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("admin listener: cannot start its runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("admin listener: {e}");
                        return;
                    }
                };
                // Bridge the blocking shutdown signal into the runtime.
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                std::thread::spawn(move || {
                    while !shutdown.wait(MAX_IDLE_SLEEP) {}
                    let _ = tx.send(());
                });
                if let Err(e) = admin::serve(listener, state, async {
                    let _ = rx.await;
                })
                .await
                {
                    tracing::error!("admin listener stopped: {e}");
                }
            });
        })?;
    Ok((handle, bound))
}

/// The report loop.
pub struct Daemon {
    cfg: DaemonConfig,
    coordinator: Box<dyn Coordinator>,
    provider: Arc<dyn InputsProvider>,
    status: SharedStatus,
    audit: AuditLog,
    rng: Rng,
    clock: Arc<dyn Clock>,
    coordinator_failing: bool,
    /// The audit log could not be written at the last try.
    audit_failing: bool,
    /// A finished slot whose completion could not be recorded yet (coordinator down): recorded
    /// before anything else is claimed, so other replicas do not send it again.
    uncompleted: Option<Grant>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("coordinator", &self.coordinator.describe())
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// A loop over `coordinator`, seeding its status from the audit log.
    pub fn new(
        cfg: DaemonConfig,
        coordinator: Box<dyn Coordinator>,
        provider: Arc<dyn InputsProvider>,
        status: SharedStatus,
    ) -> anyhow::Result<Self> {
        let audit = AuditLog::open(&cfg.state_dir)?;
        let history = read_history(&cfg.state_dir)?;
        {
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            s.last_attempt = history
                .last_attempt()
                .map(|e| crate::audit::from_unix_ms(e.unix_ms));
            s.last_success = history
                .last_success()
                .map(|e| crate::audit::from_unix_ms(e.unix_ms));
            s.last_sha256 = history
                .entries
                .iter()
                .rev()
                .find(|e| e.outcome != "sending")
                .map(|e| e.sha256.clone());
            s.last_kept = history
                .last_kept()
                .map(|e| crate::audit::from_unix_ms(e.unix_ms));
        }
        Ok(Daemon {
            cfg,
            coordinator,
            provider,
            status,
            audit,
            rng: deliver::entropy_rng(),
            clock: Arc::new(SystemClock),
            coordinator_failing: false,
            audit_failing: false,
            uncompleted: None,
        })
    }

    /// The loop on `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Runs until `shutdown`.
    pub fn run(&mut self, shutdown: &Shutdown) {
        while !shutdown.is_set() {
            let wake = self.step(shutdown);
            if self.wait_until(wake, shutdown) {
                break;
            }
        }
    }

    /// Sleeps until `t` by the clock, at most [`MAX_IDLE_SLEEP`] at a time; `true` on shutdown.
    fn wait_until(&self, t: SystemTime, shutdown: &Shutdown) -> bool {
        let cap = self.clock.now() + MAX_IDLE_SLEEP;
        self.clock.sleep_until(t.min(cap), shutdown)
    }

    /// One turn: claims, and sends if granted. Returns when to take the next turn.
    pub fn step(&mut self, shutdown: &Shutdown) -> SystemTime {
        let now = self.clock.now();
        // Past its deadline the slot is superseded and the record no longer matters.
        if let Some(g) = self.uncompleted.take()
            && now < g.deadline
        {
            self.complete(&g);
            if self.uncompleted.is_some() {
                return now + COORDINATOR_RETRY.min(self.cfg.interval);
            }
        }
        let claim = self.coordinator.claim(now);
        if claim.is_ok() && self.coordinator_failing {
            tracing::info!(
                "telemetry schedule reachable again ({})",
                self.coordinator.describe()
            );
            self.coordinator_failing = false;
        }
        match claim {
            Ok(Claim::Granted(g)) => {
                self.set_next_due(Some(g.deadline));
                self.send(&g, shutdown);
                self.clock.now()
            }
            Ok(Claim::NotDue { next_due }) => {
                self.set_next_due(Some(next_due));
                tracing::debug!("next telemetry report due at {}", rfc3339(next_due));
                next_due
            }
            Ok(Claim::Busy { retry_at }) => retry_at,
            Err(e) => {
                if !self.coordinator_failing {
                    tracing::warn!(
                        "telemetry not sent: cannot coordinate with the other replicas: {e:#}; retrying every {} without sending",
                        format_duration(COORDINATOR_RETRY)
                    );
                    self.coordinator_failing = true;
                }
                now + COORDINATOR_RETRY.min(self.cfg.interval)
            }
        }
    }

    fn set_next_due(&self, t: Option<SystemTime>) {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_due = t;
    }

    fn send(&mut self, grant: &Grant, shutdown: &Shutdown) {
        if grant.resumed {
            tracing::info!(
                slot = grant.slot,
                "resending the telemetry report interrupted by the previous run"
            );
        }
        // Count; if counting fails (database down), try again until the report is superseded.
        let bytes = loop {
            let counted = self
                .provider
                .inputs()
                .and_then(|i| Ok(i.build().map_err(|e| anyhow::anyhow!("{e}"))?.to_bytes()));
            match counted {
                Ok(b) => break b,
                Err(e) => {
                    tracing::warn!("telemetry counting failed: {e:#}");
                    let retry = self.clock.now() + COUNT_RETRY;
                    if retry >= grant.deadline || self.wait_until(retry, shutdown) {
                        if !shutdown.is_set() {
                            self.complete(grant);
                        }
                        return;
                    }
                }
            }
        };
        if self.cfg.local_only {
            self.keep(grant, &bytes, shutdown);
            return;
        }
        if let Some(source) = &self.cfg.signing_key_source {
            match source.load() {
                Ok(key) => self.cfg.deliver.signing_key = key,
                Err(e) => tracing::warn!(
                    "loading the deployment key failed: {e:#}; signing with the key loaded before"
                ),
            }
        }
        let clock = ShutdownClock {
            clock: &*self.clock,
            shutdown,
        };
        // Whether this report's refusal was logged (once per report, not per retry).
        let mut said = false;
        let delivery = loop {
            let mut guard = Guard {
                coordinator: &mut *self.coordinator,
                grant,
                shutdown,
                clock: &*self.clock,
                last_renew: self.clock.now(),
            };
            let audited = audit::deliver_audited(
                &self.cfg.deliver,
                &bytes,
                grant.deadline,
                &clock,
                &mut self.rng,
                &self.audit,
                Some(&self.status),
                &mut guard,
            );
            let u = match audited {
                Ok(d) => {
                    if self.audit_failing {
                        tracing::info!("telemetry audit log writable again");
                        self.audit_failing = false;
                    }
                    break d;
                }
                Err(u) => u,
            };
            self.status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .audit_failures_total += 1;
            if u.left_unrecorded() {
                tracing::error!("{u}");
            }
            if shutdown.is_set() || u.delivery.result.delivered() {
                break u.delivery;
            }
            if let Final::Failed(_) = u.delivery.result {
                break u.delivery;
            }
            self.audit_failing = true;
            if !said {
                said = true;
                let retry = format_duration(AUDIT_RETRY);
                if u.left_unrecorded() {
                    tracing::error!(
                        "telemetry audit log unwritable: trying again every {retry} without sending"
                    );
                } else {
                    tracing::error!("{u}; trying again every {retry} without sending");
                }
            }
            let retry = self.clock.now() + AUDIT_RETRY;
            if retry >= grant.deadline || self.wait_until(retry, shutdown) {
                if !shutdown.is_set() {
                    self.complete(grant);
                }
                return;
            }
        };
        match &delivery.result {
            Final::Delivered { .. } => tracing::info!(
                sha256 = %sha256_hex(&bytes),
                attempts = delivery.attempts,
                "telemetry report {}",
                delivery.result
            ),
            Final::Stopped => {
                tracing::info!("telemetry delivery interrupted; it resumes after restart");
                return;
            }
            other => tracing::warn!(attempts = delivery.attempts, "telemetry report {other}"),
        }
        self.complete(grant);
    }

    /// Local-only mode: keeps the report instead of sending it, retrying while the audit log
    /// cannot be written, until the report is superseded.
    fn keep(&mut self, grant: &Grant, bytes: &[u8], shutdown: &Shutdown) {
        let mut said = false;
        loop {
            match audit::keep_locally(&self.audit, bytes, self.clock.now(), Some(&self.status)) {
                Ok(()) => {
                    if self.audit_failing {
                        tracing::info!("telemetry audit log writable again");
                        self.audit_failing = false;
                    }
                    tracing::info!(
                        sha256 = %sha256_hex(bytes),
                        size = bytes.len(),
                        "telemetry report kept locally ({})",
                        ttn_telemetry_core::LOCAL_ONLY_NOTE
                    );
                    break;
                }
                Err(e) => {
                    self.status
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .audit_failures_total += 1;
                    self.audit_failing = true;
                    if !said {
                        said = true;
                        tracing::error!(
                            "telemetry report not kept: {e:#}; trying again every {}",
                            format_duration(AUDIT_RETRY)
                        );
                    }
                    let retry = self.clock.now() + AUDIT_RETRY;
                    if retry >= grant.deadline || self.wait_until(retry, shutdown) {
                        break;
                    }
                }
            }
        }
        if !shutdown.is_set() {
            self.complete(grant);
        }
    }

    fn complete(&mut self, grant: &Grant) {
        if let Err(e) = self.coordinator.complete(grant, self.clock.now()) {
            tracing::warn!("telemetry schedule: cannot record the finished report yet: {e:#}");
            self.uncompleted = Some(grant.clone());
        }
    }
}

/// Stops delivery on shutdown or when the claim is lost, and keeps the claim alive.
struct Guard<'a> {
    coordinator: &'a mut dyn Coordinator,
    grant: &'a Grant,
    shutdown: &'a Shutdown,
    clock: &'a dyn Clock,
    last_renew: SystemTime,
}

impl Guard<'_> {
    /// Renews the claim as often as the coordinator asks; `false` if it was lost to another
    /// agent.
    fn renew(&mut self) -> bool {
        let now = self.clock.now();
        if now.duration_since(self.last_renew).unwrap_or_default() < self.coordinator.renew_every()
        {
            return true;
        }
        self.last_renew = now;
        match self.coordinator.renew(self.grant, now) {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!("telemetry claim lost to another replica; stopping this delivery");
                false
            }
            // Nobody else can claim while the coordinator is unreachable either.
            Err(e) => {
                tracing::warn!("telemetry claim not renewed: {e:#}");
                true
            }
        }
    }
}

impl Observer for Guard<'_> {
    fn before_attempt(&mut self, _number: u32) -> bool {
        !self.shutdown.is_set() && self.renew()
    }

    fn keep_waiting(&mut self) -> bool {
        !self.shutdown.is_set() && self.renew()
    }
}
