//! `demo`: the README's first command. It makes an example Identity Server database (embedded
//! SQLite, under the state directory), counts it exactly as the agent counts a real one, shows
//! the report the core builds, and explains what would be sent, where, and how to turn it off.
//! Then it starts the real collector ([`crate::collect`]) in-process on loopback, with its
//! SQLite store in the demo directory, delivers the report to it exactly as `send` does (retry
//! policy, `Content-Digest`, an RFC 9421 signature by a deployment key kept in the demo
//! directory, receipt check, audit log), and prints the audit log entry. It also
//! starts the agent's admin listener with the Console page on loopback, prints the dashboard URL
//! and the Console URL, and serves both until Ctrl-C (or SIGTERM). `--once` exits as soon as the
//! first report is stored (for scripts and tests). Nothing leaves the machine. With telemetry
//! off it delivers nothing at all; it still serves the (empty) dashboard and the Console page,
//! which says that nothing is sent, and `--once` then exits at once.
//!
//! The example is deterministic (a fixed seed), with timestamps relative to the database's own
//! clock, so every run shows the same numbers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rusqlite::{Connection, params};
use ttn_telemetry_core::{
    Identity, MICROS_PER_DAY, Rng, content_digest, cutoffs, format_duration, sha256_hex,
    uuid_v4_from_bytes,
};

use crate::audit::read_history;
use crate::collect::{self, CollectOptions};
use crate::config::{Loaded, Source};
use crate::count::{format_timestamp, sqlite};
use crate::daemon::{DaemonConfig, Shutdown, send_now, spawn_admin};
use crate::deliver::DeliverConfig;
use crate::inputs::gather;
use crate::metrics;

use super::preview::field_lines;

/// What the example database holds, so the demo can say what was (not) counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Example {
    /// Applications, including soft-deleted ones.
    pub applications: u64,
    /// Soft-deleted applications.
    pub applications_deleted: u64,
    /// End devices.
    pub end_devices: u64,
    /// Gateways, including soft-deleted ones.
    pub gateways: u64,
    /// Soft-deleted gateways.
    pub gateways_deleted: u64,
    /// Users, including soft-deleted ones.
    pub users: u64,
    /// Soft-deleted users.
    pub users_deleted: u64,
    /// Organizations, including soft-deleted ones.
    pub organizations: u64,
    /// Soft-deleted organizations.
    pub organizations_deleted: u64,
}

/// Plan lists of the example gateways, as operators write them: one plan, several, one twice,
/// stray spaces, none.
const PLANS: &[Option<&str>] = &[
    Some("EU_863_870_TTN"),
    Some("EU_863_870_TTN"),
    Some("EU_863_870_TTN"),
    Some("EU_863_870"),
    Some("US_902_928_FSB_2"),
    Some("US_902_928_FSB_2"),
    Some("AU_915_928_FSB_2"),
    Some("AS_923"),
    Some("IN_865_867"),
    Some("EU_863_870 EU_863_870_TTN"),
    Some("US_902_928_FSB_2  US_902_928_FSB_2"),
    Some(" AS_923_2 "),
    None,
];

/// A random UUID from the example's fixed sequence.
fn uuid(rng: &mut Rng) -> String {
    uuid_v4_from_bytes(rng.bytes16())
}

/// Creates (or re-creates) the example database at `path` and fills it. Timestamps are relative
/// to SQLite's own clock, the `T` the counter will read.
pub fn create_example(path: &Path) -> anyhow::Result<Example> {
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("removing the old example {}", path.display()))?;
    }
    let mut conn = Connection::open(path)
        .with_context(|| format!("creating the example database {}", path.display()))?;
    conn.execute_batch(sqlite::SCHEMA)
        .context("creating the example tables")?;
    let now: i64 = conn.query_row(sqlite::SQL_NOW, [], |r| r.get(0))?;
    let ts = |micros_ago: i64| format_timestamp(now - micros_ago);
    const HOUR: i64 = 3_600_000_000;
    // A fixed seed, so that the example is the same every run.
    let mut rng = Rng::seeded(0x7474_6e2d_6c77_2d74);
    let mut ex = Example::default();
    let tx = conn.transaction()?;

    let mut apps = Vec::new();
    for i in 0..14u64 {
        let deleted = i % 7 == 6;
        let created = ts(HOUR * (24 * 400 - 24 * 20 * i as i64));
        let app_id = format!("app-{i:02}");
        tx.execute(
            "INSERT INTO applications (id, created_at, updated_at, deleted_at, application_id, name) VALUES (?1, ?2, ?2, ?3, ?4, ?5)",
            params![uuid(&mut rng), created, deleted.then(|| ts(HOUR * 24 * 3)), app_id, format!("Application {i}")],
        )?;
        ex.applications += 1;
        if deleted {
            ex.applications_deleted += 1;
        } else {
            apps.push(app_id);
        }
    }

    // Devices: a realistic spread of activity. Some were never seen (some of those activated
    // recently: still not active), the rest last seen hours, days, weeks or months ago.
    for i in 0..640u64 {
        let app = &apps[(i % apps.len() as u64) as usize];
        let (activated, seen): (Option<i64>, Option<i64>) = match i % 20 {
            0 | 1 => (None, None),
            2 => (Some(HOUR * (1 + rng.below(20) as i64)), None),
            3..=7 => {
                let seen = HOUR + rng.below(22 * HOUR as u64) as i64;
                (Some(seen + 30 * MICROS_PER_DAY), Some(seen))
            }
            8..=11 => (
                Some(100 * MICROS_PER_DAY),
                Some(2 * MICROS_PER_DAY + rng.below(4 * MICROS_PER_DAY as u64) as i64),
            ),
            12..=15 => (
                Some(100 * MICROS_PER_DAY),
                Some(8 * MICROS_PER_DAY + rng.below(19 * MICROS_PER_DAY as u64) as i64),
            ),
            _ => (
                Some(400 * MICROS_PER_DAY),
                Some(40 * MICROS_PER_DAY + rng.below(260 * MICROS_PER_DAY as u64) as i64),
            ),
        };
        tx.execute(
            "INSERT INTO end_devices (id, created_at, updated_at, application_id, device_id, join_eui, dev_eui, activated_at, last_seen_at) \
             VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                uuid(&mut rng),
                ts(500 * MICROS_PER_DAY),
                app,
                format!("dev-{i:04}"),
                "70B3D57ED0000000",
                format!("{:016X}", 0x0004_A30B_0000_0000u64 + i),
                activated.map(ts),
                seen.map(ts),
            ],
        )?;
        ex.end_devices += 1;
    }

    for i in 0..48u64 {
        let deleted = i % 16 == 15;
        let plan = PLANS[(i % PLANS.len() as u64) as usize];
        tx.execute(
            "INSERT INTO gateways (id, created_at, updated_at, deleted_at, gateway_eui, gateway_id, name, frequency_plan_id) \
             VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                uuid(&mut rng),
                ts(300 * MICROS_PER_DAY),
                deleted.then(|| ts(10 * MICROS_PER_DAY)),
                format!("{:016X}", 0xB827_EBFF_FE00_0000u64 + i),
                format!("gw-{i:03}"),
                format!("Gateway {i}"),
                plan,
            ],
        )?;
        ex.gateways += 1;
        ex.gateways_deleted += u64::from(deleted);
    }

    for i in 0..37u64 {
        let deleted = i % 12 == 11;
        let admin = i % 10 == 0;
        tx.execute(
            "INSERT INTO users (id, created_at, updated_at, deleted_at, name, primary_email_address, admin) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6)",
            params![
                uuid(&mut rng),
                ts(200 * MICROS_PER_DAY),
                deleted.then(|| ts(MICROS_PER_DAY)),
                format!("User {i}"),
                format!("user{i}@example.com"),
                admin,
            ],
        )?;
        ex.users += 1;
        ex.users_deleted += u64::from(deleted);
    }

    for i in 0..6u64 {
        let deleted = i == 5;
        tx.execute(
            "INSERT INTO organizations (id, created_at, updated_at, deleted_at, name) VALUES (?1, ?2, ?2, ?3, ?4)",
            params![
                uuid(&mut rng),
                ts(150 * MICROS_PER_DAY),
                deleted.then(|| ts(2 * MICROS_PER_DAY)),
                format!("Organization {i}"),
            ],
        )?;
        ex.organizations += 1;
        ex.organizations_deleted += u64::from(deleted);
    }
    tx.commit()?;
    Ok(ex)
}

/// Runs the demo with the loaded configuration (its database is replaced by the example's).
/// With `once` it returns after the first report is stored; else it serves until a signal.
pub fn run(mut loaded: Loaded, once: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = PathBuf::from(&loaded.config.state_dir).join("demo");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the demo directory {}", dir.display()))?;
    let path = dir.join("is.sqlite");
    let ex = create_example(&path)?;
    let uri = format!("sqlite:{}", path.display());
    loaded.set_by_program("is.database-uri", &uri, "demo (its example database)")?;

    let gathered = gather(&loaded.config)?;
    let report = gathered
        .inputs
        .build()
        .context("building the report from the counted inputs")?;
    let view = report.field_view();
    let bytes = view.bytes.as_slice();
    let cut = cutoffs(gathered.counted_at).context("computing cut-offs")?;
    let c = &loaded.config;

    let mut w = String::new();
    let mut line = |s: String| {
        w.push_str(&s);
        w.push('\n');
    };
    line("ttn-lw-telemetry demo: what a The Things Stack deployment would report".into());
    line(String::new());
    line(format!(
        "1. An example Identity Server database (SQLite): {}",
        path.display()
    ));
    line(format!(
        "   {} end devices, {} gateways ({} soft-deleted), {} applications ({} soft-deleted),",
        ex.end_devices, ex.gateways, ex.gateways_deleted, ex.applications, ex.applications_deleted
    ));
    line(format!(
        "   {} users ({} soft-deleted), {} organizations ({} soft-deleted). Soft-deleted rows are not counted.",
        ex.users, ex.users_deleted, ex.organizations, ex.organizations_deleted
    ));
    line(String::new());
    line(format!(
        "2. Counted in one snapshot at the database's time T = {}.",
        format_timestamp(gathered.counted_at)
    ));
    line(format!(
        "   Active means last seen after T-1 day ({}), T-7 days ({}), T-1 month ({}).",
        format_timestamp(cut.last_day),
        format_timestamp(cut.last_week),
        format_timestamp(cut.last_month)
    ));
    line(String::new());
    line(format!(
        "3. The report, byte for byte as it would be sent ({} bytes, SHA-256 {}):",
        bytes.len(),
        sha256_hex(bytes)
    ));
    line(String::from_utf8_lossy(bytes).into_owned());
    line(String::new());
    line("   Field by field:".into());
    field_lines(&view, "   ")
        .lines()
        .for_each(|l| line(l.into()));
    line(String::new());
    let elements = match &gathered.inputs.identity {
        Identity::Elements(e) => e.clone(),
        Identity::Uid(_) => Vec::new(),
    };
    let from = if c.uid_elements.is_empty() {
        "the five Console API base URLs (console.ui.{is,gs,ns,as,js}.base-url)"
    } else {
        "telemetry.uid-elements"
    };
    let shown = match elements.first() {
        Some(first) if elements.iter().all(|e| e == first) => {
            format!("{} × {first}", elements.len())
        }
        _ => elements.join(" "),
    };
    line(format!("4. The uid is a SHA-512 hash of {from}:"));
    line(format!("   {shown}"));
    line("   It tells reports of one deployment apart without saying whose it is.".into());
    line(String::new());
    line(format!(
        "5. Where it would go: POST {} every {}, Content-Type: application/json,",
        c.target,
        format_duration(c.interval)
    ));
    line(format!("   Content-Digest: {}", content_digest(bytes)));
    line(format!(
        "   target from {}, interval from {}.",
        source(&loaded, "telemetry.target"),
        source(&loaded, "telemetry.entity-count-telemetry.interval")
    ));
    match c.off_reason() {
        Some(reason) => line(format!(
            "   Telemetry is OFF here ({reason}): a deployment with this configuration sends nothing."
        )),
        None => line(
            "   Telemetry is ON with this configuration (the default): a deployment would send this once per interval."
                .into(),
        ),
    }
    line(String::new());
    line("6. How to turn it off (any one of these):".into());
    line("   config file:  telemetry: { enable: false }".into());
    line("   environment:  TTN_LW_TELEMETRY_ENABLE=false   or   DO_NOT_TRACK=1".into());
    line("   flag:         --telemetry.enable=false".into());
    line("   Or send it to your own collector: --telemetry.target https://collector.example.com/collect".into());
    line(String::new());
    line(format!(
        "7. Try: ttn-lw-telemetry preview --pretty --is.database-uri {uri}"
    ));
    line(String::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the demo's runtime")?;
    let store = dir.join("collector.sqlite3");
    let collector = rt
        .block_on(collect::start(CollectOptions::new(
            "127.0.0.1:0",
            Some(format!("sqlite:{}", store.display())),
        )))
        .context("starting the demo's collector")?;
    let collector_url = format!("http://{}", collector.local_addr());
    let target = format!("{collector_url}/collect");
    let status = metrics::shared(c.off_reason().is_none());
    let mut delivered = None;
    match c.off_reason() {
        Some(reason) => {
            line(format!(
                "8. Delivery: none. Telemetry is off ({reason}), so the demo delivers nothing, not even on loopback."
            ));
        }
        None => {
            let mut seen = collector.accepted();
            // Signed as the agent signs (docs/signing.md), with a deployment key of the demo's
            // own, so the collector pins it and the dashboard counts a verified deployment.
            let key = crate::signing::local_key(&dir).context("the demo's deployment key")?;
            let keyid = key.keyid();
            let mut deliver = DeliverConfig::new(target.clone());
            deliver.signing_key = Some(key);
            let attempt = SystemTime::now();
            let d = send_now(&deliver, &dir, bytes, attempt + Duration::from_secs(30))?;
            {
                let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                st.last_attempt = Some(attempt);
                st.last_outcome = Some(d.result.to_string());
                st.last_sha256 = Some(sha256_hex(bytes));
                if d.result.delivered() {
                    st.last_success = Some(attempt);
                }
            }
            line(format!(
                "8. Delivered, as the agent delivers, to the collector the demo runs on loopback ({target}),"
            ));
            line(format!(
                "   not to {}: {} ({} attempt(s)), signed by the deployment key {keyid}",
                c.target, d.result, d.attempts,
            ));
            line(format!(
                "   ({}, mode 0600), which the collector pinned. Its audit log entry ({}):",
                dir.join(crate::signing::KEY_FILE).display(),
                dir.join(crate::audit::AUDIT_FILE).display()
            ));
            let history = read_history(&dir)?;
            match history.entries.last() {
                Some(e) => line(format!("   {e}")),
                None => line("   (no entry: the audit log is empty)".into()),
            }
            line(format!(
                "   See every attempt: ttn-lw-telemetry history --telemetry.state-dir {}",
                dir.display()
            ));
            if !d.result.delivered() {
                out.write_all(w.as_bytes())
                    .context("writing to standard output")?;
                anyhow::bail!("the demo's loopback delivery failed: {}", d.result);
            }
            // The collector answers after it committed; wait for its own count to say so.
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), seen.wait_for(|n| *n >= 1)).await
            })
            .map_err(|_| anyhow::anyhow!("the demo's collector did not store the report"))?
            .map_err(|_| anyhow::anyhow!("the demo's collector stopped"))?;
            delivered = Some(());
        }
    }

    // The agent's admin listener with the Console page, counting the example database, and
    // showing the loopback collector as its target.
    let mut cfg = DaemonConfig::from_core(c)?;
    cfg.deliver.target = target.clone();
    let shutdown = Shutdown::new();
    let core = c.clone();
    let provider = Arc::new(move || Ok(gather(&core)?.inputs));
    let (admin, admin_addr) = spawn_admin(
        &cfg,
        "127.0.0.1:0".parse()?,
        provider,
        super::run::console_assets(),
        status,
        &shutdown,
    )?;
    line(String::new());
    line(format!(
        "9. The Telemetry Dashboard (the collector, store {}): {collector_url}/",
        store.display()
    ));
    line(format!(
        "   The same aggregates as JSON: {collector_url}/api/v1/stats"
    ));
    line(format!(
        "   The Console telemetry page (the agent's admin listener): http://{admin_addr}/console/telemetry"
    ));
    if delivered.is_some() {
        line("   Nothing left this machine.".into());
    }
    if !once {
        line("   Serving both until Ctrl-C.".into());
    }
    out.write_all(w.as_bytes())
        .context("writing to standard output")?;
    out.flush().context("writing to standard output")?;
    let served = if once {
        Ok(())
    } else {
        rt.block_on(collect::stop_signal())
    };
    shutdown.trigger();
    let _ = admin.join();
    rt.block_on(collector.shutdown());
    served
}

fn source(loaded: &Loaded, key: &str) -> String {
    loaded
        .sources
        .get(key)
        .map_or_else(|| Source::Default.to_string(), ToString::to_string)
}
