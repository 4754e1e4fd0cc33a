//! `status`: whether telemetry is on, the last and the next report, and every effective
//! setting with the source that decided it (default, which file, env var, flag,
//! `DO_NOT_TRACK`).
//!
//! It reads the state directory (schedule, audit log, last body). With a Redis configured
//! (`cache.redis.*`, falling back to `redis.*`, core `Config::redis`) and telemetry on, it asks
//! Redis when the next report is due (read only: it claims nothing); when Redis does not answer
//! it says so and shows the rest. With telemetry off it connects nowhere. Secrets
//! (`*.password`, `telemetry.admin.token`, passwords in URIs) are shown only as
//! `(set)`/`(empty)` or redacted.
//!
//! With `telemetry.local-only` its first line says "local only: reports are kept here and never
//! sent", and it shows how many reports the audit log holds as kept, and the last one.
//!
//! It also lists the configuration files that were read (default locations included), highest
//! precedence first, and which Redis block the schedule uses.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;
use ttn_telemetry_core::{KEYS, format_duration, redact_uri, sha256_hex};

use crate::audit::{read_history, read_last_body, rfc3339};
use crate::config::{Loaded, Source};
use crate::console::{EmbeddedConsole, MISSING};
use crate::daemon;
use crate::schedule::local::{STATE_FILE, Stored, inspect_state};
use crate::schedule::redis::{RedisSchedule, RedisTarget};

/// Runs `status`.
pub fn run(loaded: &Loaded, out: &mut dyn Write) -> anyhow::Result<()> {
    let c = &loaded.config;
    let dir = Path::new(&c.state_dir);
    let now = SystemTime::now();
    let mut w = String::new();
    let mut line = |s: String| {
        w.push_str(&s);
        w.push('\n');
    };

    match c.off_reason() {
        Some(reason) => line(format!(
            "telemetry: off ({reason}): nothing is counted, stored or sent"
        )),
        None if c.local_only() => line(format!(
            "telemetry: on, {}: counted every {}, kept in {}; nothing goes to {}",
            ttn_telemetry_core::LOCAL_ONLY_NOTE,
            format_duration(c.interval),
            dir.display(),
            redact_uri(&c.target)
        )),
        None => line(format!(
            "telemetry: on, every {} to {}",
            format_duration(c.interval),
            redact_uri(&c.target)
        )),
    }
    line(format!("state directory: {}", dir.display()));
    if loaded.files.is_empty() {
        line("config files: none".to_owned());
    } else {
        let files: Vec<String> = loaded
            .files
            .iter()
            .map(|(path, origin)| format!("{} ({origin})", path.display()))
            .collect();
        line(format!(
            "config files (the first listed takes precedence): {}",
            files.join(", ")
        ));
    }
    let redis = c.redis();
    line(match &redis {
        Some(r) => format!(
            "schedule coordination: redis {} database {} (from {}.*)",
            r.address, r.database, r.block
        ),
        None => "schedule coordination: state directory (neither cache.redis.address nor redis.address is set)".to_owned(),
    });

    // The deployment key's id (never the key): what the collector pins (docs/signing.md).
    line(match crate::signing::existing_key(c) {
        Ok(k) => format!("signing key: {}", k.keyid()),
        Err(e) => format!("signing key: none ({e:#})"),
    });

    let next = if c.off_reason().is_some() {
        "none (telemetry is off)".to_owned()
    } else if let Some(r) = &redis {
        let target = RedisTarget::from_config(&r.address, &r.password, r.database);
        let shown = format!("redis {} database {}", r.address, r.database);
        let asked = daemon::redis_namespace(c).and_then(|ns| {
            RedisSchedule::new(target, &ns, c.interval)?
                .next_due(now)
                .map(|due| (due, ns))
        });
        match asked {
            Ok((Some(due), ns)) => format!("{} ({shown}, keys {ns}:*)", rfc3339(due)),
            Ok((None, ns)) => format!(
                "one interval after the first agent starts (nothing scheduled in {shown}, keys {ns}:*)"
            ),
            Err(e) => format!("unknown: {e:#}"),
        }
    } else {
        match inspect_state(dir, now)? {
            Stored::Valid(s) => format!(
                "{} (schedule in {}, first start {})",
                rfc3339(s.next_due()),
                dir.display(),
                rfc3339(s.epoch())
            ),
            Stored::Missing => format!(
                "one interval after the agent's first start (no schedule in {} yet)",
                dir.display()
            ),
            Stored::Damaged(why) => format!(
                "unknown: the schedule {} is damaged ({why}); `run` sets it aside and starts a new one",
                dir.join(STATE_FILE).display()
            ),
        }
    };
    line(format!("next report due: {next}"));

    let h = read_history(dir)?;
    let show = |e: Option<&crate::audit::AuditEntry>| {
        e.map_or_else(|| "none".to_owned(), |e| e.to_string())
    };
    line(format!("last attempt: {}", show(h.last_attempt())));
    line(format!("last success: {}", show(h.last_success())));
    if c.local_only() || h.kept() > 0 {
        line(format!(
            "reports kept locally: {}; last: {}",
            h.kept(),
            show(h.last_kept())
        ));
    }
    if h.torn_tail {
        line("note: the audit log's last line was cut short (a crash while writing)".into());
    }
    let body_label = if c.local_only() {
        "last body kept"
    } else {
        "last body sent"
    };
    match read_last_body(dir)? {
        Some(b) => line(format!(
            "{body_label}: {} bytes, sha256 {} ({})",
            b.len(),
            sha256_hex(&b),
            dir.join(crate::audit::LAST_BODY_FILE).display()
        )),
        None => line(format!("{body_label}: none")),
    }
    // The widget is build output embedded by build.rs: say plainly when this binary lacks it.
    if EmbeddedConsole.has_pkg() {
        line(
            "console widget: embedded (the admin listener serves it at /console/telemetry/)".into(),
        );
    } else {
        line(format!("console widget: missing. {MISSING}"));
    }

    line(String::new());
    line("settings (effective value, and the source that decided it):".into());
    let width = KEYS.iter().map(|k| k.key.len()).max().unwrap_or(0);
    for spec in KEYS {
        let value = if spec.key == "telemetry.enable" && c.do_not_track {
            format!("false (DO_NOT_TRACK overrides {})", c.enable)
        } else {
            c.display(spec.key)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "(empty)".to_owned())
        };
        let source = loaded.sources.get(spec.key).unwrap_or(&Source::Default);
        line(format!(
            "  {:width$}  {value}  [{source}]",
            spec.key,
            width = width
        ));
    }
    out.write_all(w.as_bytes())
        .context("writing to standard output")?;
    Ok(())
}
