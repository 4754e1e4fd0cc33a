//! Counting an embedded SQLite Identity Server database (demos and tests that need no server).
//!
//! The tables are those of the PostgreSQL schema (`sql/is-schema.sqlite.sql`), with these
//! SQLite-specific decisions:
//! - Timestamps are TEXT in one fixed form, RFC 3339 UTC with six fraction digits
//!   (`2026-03-31T12:00:00.000000Z`, see [`super::format_timestamp`]), so that comparing text
//!   compares time exactly to the microsecond. Writers must use this form.
//! - `T` comes from SQLite's clock (`julianday('now')`, millisecond precision), read inside the
//!   same read transaction as the counts, which SQLite keeps on one snapshot.
//! - Gateways are counted as on PostgreSQL: grouped by their raw plan text in SQL, each distinct
//!   text split once in Rust ([`super::plan_ids`]).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};
use ttn_telemetry_core::{EntitiesCount, cutoffs};

use super::{CountError, Counted, add_plans, format_timestamp, to_u64};

/// The schema of the SQLite form of the IS tables that telemetry reads.
pub const SCHEMA: &str = include_str!("../../sql/is-schema.sqlite.sql");

/// `T` as Unix microseconds (SQLite's clock has millisecond precision).
pub const SQL_NOW: &str =
    "SELECT CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000";

/// Parameters: ?1 = T − 1 day, ?2 = T − 7 days, ?3 = T − 1 month, as [`format_timestamp`] text.
pub const SQL_END_DEVICES: &str = "SELECT count(*), count(last_seen_at), \
     count(*) FILTER (WHERE last_seen_at > ?1), \
     count(*) FILTER (WHERE last_seen_at > ?2), \
     count(*) FILTER (WHERE last_seen_at > ?3) \
     FROM end_devices";

/// Rows of (raw `frequency_plan_id` or NULL, live gateways with exactly that text).
pub const SQL_GATEWAYS: &str = "SELECT frequency_plan_id, count(*) FROM gateways \
     WHERE deleted_at IS NULL GROUP BY frequency_plan_id";

/// Live standard and admin users.
pub const SQL_USERS: &str = "SELECT count(*) FILTER (WHERE NOT admin), count(*) FILTER (WHERE admin) \
     FROM users WHERE deleted_at IS NULL";

/// Live applications.
pub const SQL_APPLICATIONS: &str = "SELECT count(*) FROM applications WHERE deleted_at IS NULL";

/// Live organizations.
pub const SQL_ORGANIZATIONS: &str = "SELECT count(*) FROM organizations WHERE deleted_at IS NULL";

/// Opens the database file read-only and counts; `uri` names it in errors.
pub fn count_path(path: &Path, uri: &str) -> Result<Counted, CountError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| CountError::new(uri, "opening", e))?;
    count_conn(&mut conn, uri)
}

/// Counts through an open connection, in one read transaction.
pub fn count_conn(conn: &mut Connection, uri: &str) -> Result<Counted, CountError> {
    let err = |step: &'static str| move |e: rusqlite::Error| CountError::new(uri, step, e);
    let tx = conn
        .transaction()
        .map_err(err("starting a read transaction"))?;
    let now: i64 = tx
        .query_row(SQL_NOW, [], |r| r.get(0))
        .map_err(err("reading the database clock"))?;
    let cut = cutoffs(now).map_err(|e| CountError::new(uri, "computing cut-offs", e))?;

    let mut counts = EntitiesCount::default();
    let (total, seen, day, week, month): (i64, i64, i64, i64, i64) = tx
        .query_row(
            SQL_END_DEVICES,
            params![
                format_timestamp(cut.last_day),
                format_timestamp(cut.last_week),
                format_timestamp(cut.last_month)
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .map_err(err("counting end_devices"))?;
    counts.end_devices.total = to_u64(total);
    let active = &mut counts.end_devices.activate_end_devices;
    active.total = to_u64(seen);
    active.last_day = to_u64(day);
    active.last_week = to_u64(week);
    active.last_month = to_u64(month);

    {
        let mut stmt = tx.prepare(SQL_GATEWAYS).map_err(err("counting gateways"))?;
        let mut rows = stmt.query([]).map_err(err("counting gateways"))?;
        let mut per_plan = BTreeMap::new();
        let mut live = 0u64;
        while let Some(row) = rows.next().map_err(err("counting gateways"))? {
            let plans: Option<String> = row.get(0).map_err(err("counting gateways"))?;
            let n = to_u64(row.get(1).map_err(err("counting gateways"))?);
            live += n;
            add_plans(&mut per_plan, plans.as_deref().unwrap_or(""), n);
        }
        counts.gateways.total = live;
        counts.gateways.gateways_by_frequency_plan_id = per_plan;
    }

    let (standard, admin): (i64, i64) = tx
        .query_row(SQL_USERS, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(err("counting users"))?;
    counts.accounts.users.standard = to_u64(standard);
    counts.accounts.users.admin = to_u64(admin);
    counts.applications.total = to_u64(
        tx.query_row(SQL_APPLICATIONS, [], |r| r.get(0))
            .map_err(err("counting applications"))?,
    );
    counts.accounts.organizations.total = to_u64(
        tx.query_row(SQL_ORGANIZATIONS, [], |r| r.get(0))
            .map_err(err("counting organizations"))?,
    );
    tx.commit().map_err(err("ending the transaction"))?;
    Ok(Counted { at: now, counts })
}
