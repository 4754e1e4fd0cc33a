//! `send [--deadline DUR]`: counts, builds and delivers one report now.
//!
//! Delivery uses the retry policy of SPEC §6 (network errors, timeouts, 408, 429 and 5xx are
//! retried with backoff, honouring `Retry-After`), bounded by `--deadline`. Every attempt goes
//! to the audit log of `telemetry.state-dir`, like the daemon's. `send` is outside the
//! schedule: it neither claims nor completes a slot, so the daemon's next report is still due
//! when it was.
//!
//! The deadline bounds the whole delivery: an attempt still waiting for the collector when it
//! comes is cut there (see [`crate::deliver`]).
//!
//! The audit line is part of the promise, so `send` refuses to send what it cannot record: when
//! the audit log or the last body cannot be written in `telemetry.state-dir` (a directory in
//! the way, an immutable file, a read-only state directory), it sends nothing and exits 1 with
//! one line saying why. If the report was sent and only its outcome line could not be written,
//! it exits 1 too, and the line says that the report was delivered (see
//! [`crate::audit::Unaudited`]). Warnings and errors of the run are logged to standard error.
//!
//! Exit codes: 0 only after a 2xx whose audit line was written; 1 when the collector refuses the
//! report (a 4xx other than 408/429, a redirect) or does not take it before the deadline, when
//! the audit trail cannot be written, or when counting fails.
//!
//! With `telemetry.local-only` (and telemetry on) it counts and builds the report as always,
//! keeps it (the last body and a `kept locally` audit line, as the agent does), prints one
//! line starting with "local only: reports are kept here and never sent" with the size and
//! digest, and exits 0 without connecting to the target. Decision where the issue is silent:
//! exit 0, because keeping the report is what the operator asked for; a report that cannot be
//! kept (audit log unwritable) exits 1, like a report that cannot be audited.
//!
//! With telemetry off it prints the one line that says why, and exits 0 without counting,
//! writing or connecting anywhere.

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;
use ttn_telemetry_core::{redact_uri, sha256_hex};

use crate::clock::Clock as _;
use crate::config::Loaded;
use crate::daemon;
use crate::deliver::DeliverConfig;
use crate::inputs::gather;

/// Runs `send`. The outcome goes to standard output; notes to standard error.
pub fn run(loaded: &Loaded, deadline: Duration, out: &mut dyn Write) -> anyhow::Result<()> {
    super::init_logging_at(tracing::Level::WARN);
    let c = &loaded.config;
    if let Some(reason) = c.off_reason() {
        crate::redact::note(&daemon::off_line(reason));
        return Ok(());
    }
    let gathered = gather(c)?;
    let bytes = gathered
        .inputs
        .build()
        .context("building the report from the counted inputs")?
        .to_bytes();
    if c.local_only() {
        let dir = std::path::Path::new(&c.state_dir);
        let log = crate::audit::AuditLog::open(dir)?;
        crate::audit::keep_locally(&log, &bytes, crate::clock::SystemClock.now(), None)
            .context("keeping the report (telemetry.local-only)")?;
        writeln!(
            out,
            "{}: kept {} bytes (sha256 {}) in {}, sent nowhere",
            ttn_telemetry_core::LOCAL_ONLY_NOTE,
            bytes.len(),
            sha256_hex(&bytes),
            dir.join(crate::audit::LAST_BODY_FILE).display()
        )
        .context("writing to standard output")?;
        return Ok(());
    }
    let mut cfg = DeliverConfig::new(c.target.clone());
    cfg.signing_key = crate::signing::for_delivery(c)?;
    // One clock for the deadline and the delivery's waits.
    let clock = crate::clock::SystemClock;
    let d = daemon::send_now_with_clock(
        &cfg,
        std::path::Path::new(&c.state_dir),
        &bytes,
        clock.now() + deadline,
        &clock,
    )?;
    let target = redact_uri(&c.target);
    if d.result.delivered() {
        writeln!(
            out,
            "sent {} bytes (sha256 {}) to {target} in {} attempt{}: {}",
            bytes.len(),
            sha256_hex(&bytes),
            d.attempts,
            if d.attempts == 1 { "" } else { "s" },
            d.result
        )
        .context("writing to standard output")?;
        Ok(())
    } else {
        anyhow::bail!(
            "telemetry report to {target} {} after {} attempt{} (see `ttn-lw-telemetry history`)",
            d.result,
            d.attempts,
            if d.attempts == 1 { "" } else { "s" },
        )
    }
}
