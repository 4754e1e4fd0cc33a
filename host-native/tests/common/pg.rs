//! Test helpers: a throwaway PostgreSQL database per test, and the counting fixtures shared by
//! the PostgreSQL and SQLite tests.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::{Client, GenericClient, NoTls};
use ttn_lw_telemetry::count::format_timestamp;
use ttn_telemetry_core::{Cutoffs, EntitiesCount, MICROS_PER_DAY};

/// The admin URL of the test server (`TTN_TEST_PG_URL`, default the local one).
pub fn admin_url() -> String {
    std::env::var("TTN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn admin_client() -> Client {
    let url = admin_url();
    Client::connect(&url, NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} is needed for this test and does not answer ({e}); run ./task test, which starts it, or set TTN_TEST_PG_URL",
            ttn_telemetry_core::redact_uri(&url)
        )
    })
}

/// `url` with its database name replaced.
pub fn with_dbname(url: &str, db: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(scheme_end);
    let path_start = rest.find('/').unwrap_or(rest.len());
    let query = rest.find('?').map_or("", |q| &rest[q..]);
    format!("{head}{}/{db}{query}", &rest[..path_start])
}

/// `url` with `password` in its userinfo (user `postgres` when it names none).
pub fn with_password(url: &str, password: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{head}{user}:{password}{}", &rest[at..])
        }
        None => format!("{head}postgres:{password}@{rest}"),
    }
}

/// A database created for one test and dropped when the value is dropped.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub fn create(tag: &str) -> TestDb {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("ttn_t3_{tag}_{}_{nanos}", std::process::id());
        admin_client()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = with_dbname(&admin_url(), &name);
        TestDb { name, url }
    }

    /// A connection to it.
    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap()
    }

    /// Creates the IS tables.
    pub fn load_schema(&self) {
        self.client()
            .batch_execute(include_str!("../../sql/is-schema.postgres.sql"))
            .unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin_client().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// One fixture row.
#[derive(Debug, Clone)]
pub enum Row {
    /// An application.
    Application { deleted: bool },
    /// An organization.
    Organization { deleted: bool },
    /// A user.
    User { admin: bool, deleted: bool },
    /// A gateway and its `frequency_plan_id`.
    Gateway {
        plans: Option<&'static str>,
        deleted: bool,
    },
    /// An end device; times are Unix microseconds.
    Device {
        activated: Option<i64>,
        seen: Option<i64>,
    },
}

const MINUTE: i64 = 60_000_000;

/// The fixtures of SPEC §4, with device times placed one minute on either side of each cut-off
/// of `cut` (computed from the database's clock just before loading).
pub fn fixture(cut: &Cutoffs) -> Vec<Row> {
    use Row::*;
    let t = cut.now;
    vec![
        Application { deleted: false },
        Application { deleted: false },
        Application { deleted: false },
        Application { deleted: true },
        Application { deleted: true },
        Organization { deleted: false },
        Organization { deleted: false },
        Organization { deleted: true },
        User {
            admin: true,
            deleted: false,
        },
        User {
            admin: true,
            deleted: false,
        },
        User {
            admin: true,
            deleted: true,
        },
        User {
            admin: false,
            deleted: false,
        },
        User {
            admin: false,
            deleted: false,
        },
        User {
            admin: false,
            deleted: false,
        },
        User {
            admin: false,
            deleted: false,
        },
        User {
            admin: false,
            deleted: true,
        },
        User {
            admin: false,
            deleted: true,
        },
        // No plan, an empty plan, only spaces: counted in the total only.
        Gateway {
            plans: None,
            deleted: false,
        },
        Gateway {
            plans: Some(""),
            deleted: false,
        },
        Gateway {
            plans: Some("   "),
            deleted: false,
        },
        Gateway {
            plans: Some("EU_863_870"),
            deleted: false,
        },
        // Several plans; one plan listed twice; extra spaces around and between.
        Gateway {
            plans: Some("EU_863_870 US_902_928_FSB_2"),
            deleted: false,
        },
        Gateway {
            plans: Some("US_902_928_FSB_2 US_902_928_FSB_2"),
            deleted: false,
        },
        Gateway {
            plans: Some("  AS_923   EU_863_870  "),
            deleted: false,
        },
        // Soft-deleted: not counted, and their plans make no key.
        Gateway {
            plans: Some("EU_863_870"),
            deleted: true,
        },
        Gateway {
            plans: Some("KR_920_923"),
            deleted: true,
        },
        // Never seen; never seen but recently activated (not active).
        Device {
            activated: None,
            seen: None,
        },
        Device {
            activated: Some(t - 60 * MINUTE),
            seen: None,
        },
        Device {
            activated: Some(t - 10 * MINUTE),
            seen: None,
        },
        // One minute on either side of each cut-off.
        Device {
            activated: Some(t - 40 * MICROS_PER_DAY),
            seen: Some(cut.last_day + MINUTE),
        },
        Device {
            activated: Some(t - 40 * MICROS_PER_DAY),
            seen: Some(cut.last_day - MINUTE),
        },
        Device {
            activated: Some(t - 40 * MICROS_PER_DAY),
            seen: Some(cut.last_week + MINUTE),
        },
        Device {
            activated: Some(t - 40 * MICROS_PER_DAY),
            seen: Some(cut.last_week - MINUTE),
        },
        Device {
            activated: Some(t - 40 * MICROS_PER_DAY),
            seen: Some(cut.last_month + MINUTE),
        },
        Device {
            activated: Some(t - 40 * MICROS_PER_DAY),
            seen: Some(cut.last_month - MINUTE),
        },
        // Long ago; just now.
        Device {
            activated: Some(t - 400 * MICROS_PER_DAY),
            seen: Some(t - 365 * MICROS_PER_DAY),
        },
        Device {
            activated: Some(t - 400 * MICROS_PER_DAY),
            seen: Some(t - 5 * MINUTE),
        },
    ]
}

/// What [`fixture`] must count to, written out by hand.
pub fn expected() -> EntitiesCount {
    let mut e = EntitiesCount::default();
    e.gateways.total = 7;
    for (plan, n) in [("AS_923", 1), ("EU_863_870", 3), ("US_902_928_FSB_2", 2)] {
        e.gateways
            .gateways_by_frequency_plan_id
            .insert(plan.to_owned(), n);
    }
    e.end_devices.total = 11;
    let a = &mut e.end_devices.activate_end_devices;
    a.total = 8;
    a.last_day = 2;
    a.last_week = 4;
    a.last_month = 6;
    e.applications.total = 3;
    e.accounts.users.standard = 4;
    e.accounts.users.admin = 2;
    e.accounts.organizations.total = 2;
    e
}

fn system_time(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap())
}

/// Inserts one user as TTS's IS does: the `users` row (every NOT NULL column of TTS's schema
/// set) and its `accounts` row, both soft-deleted when `deleted`.
pub fn insert_user(c: &mut impl GenericClient, uid: &str, email: &str, admin: bool, deleted: bool) {
    c.execute(
        "WITH u AS (INSERT INTO users (created_at, updated_at, deleted_at, primary_email_address, \
         password, password_updated_at, require_password_update, state, admin) \
         VALUES (now(), now(), $1, $2, '', now(), false, 1, $3) RETURNING id, deleted_at) \
         INSERT INTO accounts (created_at, updated_at, deleted_at, uid, account_id, account_type) \
         SELECT now(), now(), deleted_at, $4, id, 'user' FROM u",
        &[&deleted.then(SystemTime::now), &email, &admin, &uid],
    )
    .unwrap();
}

/// Inserts one organization and its `accounts` row, as TTS's IS does.
pub fn insert_organization(c: &mut impl GenericClient, uid: &str, deleted: bool) {
    c.execute(
        "WITH o AS (INSERT INTO organizations (created_at, updated_at, deleted_at, name, fanout_notifications) \
         VALUES (now(), now(), $1, $2, true) RETURNING id, deleted_at) \
         INSERT INTO accounts (created_at, updated_at, deleted_at, uid, account_id, account_type) \
         SELECT now(), now(), deleted_at, $2, id, 'organization' FROM o",
        &[&deleted.then(SystemTime::now), &uid],
    )
    .unwrap();
}

/// Inserts one gateway with every NOT NULL column of TTS's schema set.
pub fn insert_gateway(
    c: &mut impl GenericClient,
    gateway_id: &str,
    eui: &str,
    plans: Option<&str>,
    deleted: bool,
) {
    c.execute(
        "INSERT INTO gateways (created_at, updated_at, deleted_at, gateway_id, gateway_eui, frequency_plan_id, \
         auto_update, status_public, location_public, schedule_downlink_late, enforce_duty_cycle) \
         VALUES (now(), now(), $1, $2, $3, $4, false, false, false, false, true)",
        &[&deleted.then(SystemTime::now), &gateway_id, &eui, &plans],
    )
    .unwrap();
}

/// Inserts `rows` into a PostgreSQL database that has the IS schema, as TTS's IS writes them:
/// users and organizations with their `accounts` rows. A soft-deleted user or gateway reuses
/// the e-mail address (in other letter case) or EUI of the first live one, which TTS's partial
/// unique indexes allow.
pub fn load_postgres(client: &mut Client, rows: &[Row]) {
    let mut tx = client.transaction().unwrap();
    let deleted_at = |d: bool| d.then(SystemTime::now);
    let (mut live_email, mut live_eui) = (None::<String>, None::<String>);
    for (i, row) in rows.iter().enumerate() {
        match row {
            Row::Application { deleted } => {
                tx.execute(
                    "INSERT INTO applications (created_at, updated_at, application_id, deleted_at) VALUES (now(), now(), $1, $2)",
                    &[&format!("app-{i}"), &deleted_at(*deleted)],
                )
                .unwrap();
            }
            Row::Organization { deleted } => {
                insert_organization(&mut tx, &format!("org-{i}"), *deleted)
            }
            Row::User { admin, deleted } => {
                let email = match (&live_email, deleted) {
                    (Some(e), true) => e.to_uppercase(),
                    _ => format!("u{i}@example.com"),
                };
                if !deleted && live_email.is_none() {
                    live_email = Some(email.clone());
                }
                insert_user(&mut tx, &format!("user-{i}"), &email, *admin, *deleted);
            }
            Row::Gateway { plans, deleted } => {
                let eui = match (&live_eui, deleted) {
                    (Some(e), true) => e.clone(),
                    _ => format!("{i:016X}"),
                };
                if !deleted && live_eui.is_none() {
                    live_eui = Some(eui.clone());
                }
                insert_gateway(&mut tx, &format!("gw-{i}"), &eui, *plans, *deleted);
            }
            Row::Device { activated, seen } => {
                tx.execute(
                    "INSERT INTO end_devices (created_at, updated_at, application_id, device_id, dev_eui, join_eui, activated_at, last_seen_at) VALUES (now(), now(), 'app-0', $1, $2, '70B3D57ED0000000', $3, $4)",
                    &[
                        &format!("dev-{i}"),
                        &format!("{i:016X}"),
                        &activated.map(system_time),
                        &seen.map(system_time),
                    ],
                )
                .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// Inserts `rows` into a SQLite database that has the IS schema.
pub fn load_sqlite(conn: &mut rusqlite::Connection, rows: &[Row]) {
    let tx = conn.transaction().unwrap();
    let now = format_timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64,
    );
    let deleted_at = |d: bool| d.then(|| now.clone());
    // Soft-deleted rows reuse live keys, as in the PostgreSQL loader.
    let (mut live_email, mut live_eui) = (None::<String>, None::<String>);
    for (i, row) in rows.iter().enumerate() {
        let id = format!("00000000-0000-4000-8000-{i:012}");
        match row {
            Row::Application { deleted } => tx.execute(
                "INSERT INTO applications (id, created_at, updated_at, application_id, deleted_at) VALUES (?1, ?2, ?2, ?3, ?4)",
                rusqlite::params![id, now, format!("app-{i}"), deleted_at(*deleted)],
            ),
            Row::Organization { deleted } => tx.execute(
                "INSERT INTO organizations (id, created_at, updated_at, name, deleted_at) VALUES (?1, ?2, ?2, ?3, ?4)",
                rusqlite::params![id, now, format!("org-{i}"), deleted_at(*deleted)],
            ),
            Row::User { admin, deleted } => {
                let email = match (&live_email, deleted) {
                    (Some(e), true) => e.to_uppercase(),
                    _ => format!("u{i}@example.com"),
                };
                if !deleted && live_email.is_none() {
                    live_email = Some(email.clone());
                }
                tx.execute(
                    "INSERT INTO users (id, created_at, updated_at, primary_email_address, admin, deleted_at) VALUES (?1, ?2, ?2, ?3, ?4, ?5)",
                    rusqlite::params![id, now, email, admin, deleted_at(*deleted)],
                )
            }
            Row::Gateway { plans, deleted } => {
                let eui = match (&live_eui, deleted) {
                    (Some(e), true) => e.clone(),
                    _ => format!("{i:016X}"),
                };
                if !deleted && live_eui.is_none() {
                    live_eui = Some(eui.clone());
                }
                tx.execute(
                    "INSERT INTO gateways (id, created_at, updated_at, gateway_id, gateway_eui, frequency_plan_id, deleted_at) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![id, now, format!("gw-{i}"), eui, plans, deleted_at(*deleted)],
                )
            }
            Row::Device { activated, seen } => tx.execute(
                "INSERT INTO end_devices (id, created_at, updated_at, application_id, device_id, dev_eui, join_eui, activated_at, last_seen_at) VALUES (?1, ?2, ?2, 'app-0', ?3, ?4, '70B3D57ED0000000', ?5, ?6)",
                rusqlite::params![
                    id,
                    now,
                    format!("dev-{i}"),
                    format!("{i:016X}"),
                    activated.map(format_timestamp),
                    seen.map(format_timestamp)
                ],
            ),
        }
        .unwrap();
    }
    tx.commit().unwrap();
}
