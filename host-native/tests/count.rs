//! Counting real databases: PostgreSQL (a fresh database per test) and SQLite (a temp file),
//! loaded with the same fixtures, asserting every number.

mod common;

use common::{
    TestDb, admin_url, expected, fixture, insert_gateway, insert_organization, insert_user,
    load_postgres, load_sqlite, with_dbname, with_password,
};
use postgres::NoTls;
use ttn_lw_telemetry::count::{self, Counted, postgres as pg, sqlite};
use ttn_telemetry_core::{EntitiesCount, cutoffs};

/// `T` moves forward between loading and counting; the ±1 minute margins hold while it moves
/// less than a minute.
fn assert_counted(counted: &Counted, t0: i64, want: &EntitiesCount) {
    let drift = counted.at - t0;
    assert!(
        (0..60_000_000).contains(&drift),
        "T moved {drift} µs between loading and counting"
    );
    assert_eq!(&counted.counts, want);
    let a = &counted.counts.end_devices.activate_end_devices;
    assert!(a.total <= counted.counts.end_devices.total);
    assert!(
        !counted
            .counts
            .gateways
            .gateways_by_frequency_plan_id
            .contains_key("")
    );
}

fn pg_now(db: &TestDb) -> i64 {
    let mut client = db.client();
    let mut tx = client.transaction().unwrap();
    let now: i64 = tx.query_one(pg::SQL_NOW, &[]).unwrap().get(0);
    tx.commit().unwrap();
    now
}

#[test]
fn postgres_counts_every_fixture_number() {
    let db = TestDb::create("fixture");
    db.load_schema();
    let t0 = pg_now(&db);
    load_postgres(&mut db.client(), &fixture(&cutoffs(t0).unwrap()));
    let counted = count::count(&db.url).unwrap();
    assert_counted(&counted, t0, &expected());
}

/// The schema is TTS's after its last migration: users and organizations live behind the
/// `user_accounts` / `organization_accounts` views that TTS's store (and so the reference
/// telemetry) reads, soft-deleted rows reuse e-mail addresses and EUIs as TTS's partial unique
/// indexes allow, and the reference's own queries on the views give the numbers we count from
/// the tables.
#[test]
fn postgres_counts_match_the_reference_queries_on_the_tts_schema() {
    let db = TestDb::create("tts_schema");
    db.load_schema();
    let t0 = pg_now(&db);
    load_postgres(&mut db.client(), &fixture(&cutoffs(t0).unwrap()));
    let counted = count::count(&db.url).unwrap();
    assert_counted(&counted, t0, &expected());

    let mut c = db.client();
    let n = |c: &mut postgres::Client, sql: &str| -> u64 {
        let v: i64 = c.query_one(sql, &[]).unwrap().get(0);
        u64::try_from(v).unwrap()
    };
    let users = &counted.counts.accounts.users;
    let reference = [
        (
            "SELECT count(*) FROM user_accounts AS usr WHERE admin IS TRUE AND usr.deleted_at IS NULL",
            users.admin,
        ),
        (
            "SELECT count(*) FROM user_accounts AS usr WHERE admin IS FALSE AND usr.deleted_at IS NULL",
            users.standard,
        ),
        (
            "SELECT count(*) FROM organization_accounts AS org WHERE org.deleted_at IS NULL",
            counted.counts.accounts.organizations.total,
        ),
        (
            "SELECT count(*) FROM gateways AS gtw WHERE gtw.deleted_at IS NULL",
            counted.counts.gateways.total,
        ),
        (
            "SELECT count(*) FROM applications AS app WHERE app.deleted_at IS NULL",
            counted.counts.applications.total,
        ),
    ];
    for (sql, ours) in reference {
        assert_eq!(n(&mut c, sql), ours, "{sql}");
    }
    // The fixture does exercise the partial indexes: a deleted user and a deleted gateway share
    // a key with a live one.
    assert_eq!(
        n(
            &mut c,
            "SELECT count(*) FROM (SELECT lower(primary_email_address) FROM users \
             GROUP BY 1 HAVING count(*) > 1) d"
        ),
        1
    );
    assert_eq!(
        n(
            &mut c,
            "SELECT count(*) FROM (SELECT gateway_eui FROM gateways GROUP BY 1 HAVING count(*) > 1) d"
        ),
        1
    );
    // A second live user with a deleted user's address is refused by TTS's index, whatever the case.
    let dup = c.execute(
        "INSERT INTO users (created_at, updated_at, primary_email_address, password, \
         password_updated_at, require_password_update, state, admin) \
         SELECT now(), now(), upper(primary_email_address), '', now(), false, 1, false \
         FROM users WHERE deleted_at IS NULL LIMIT 1",
        &[],
    );
    assert!(dup.is_err());
}

#[test]
fn postgres_empty_database_counts_zero_with_an_empty_plan_map() {
    let db = TestDb::create("empty");
    db.load_schema();
    let counted = count::count(&db.url).unwrap();
    assert_eq!(counted.counts, EntitiesCount::default());
    assert!(
        counted
            .counts
            .gateways
            .gateways_by_frequency_plan_id
            .is_empty()
    );
}

#[test]
fn postgres_counting_needs_only_select_rights() {
    // A role that may only read, as an operator would grant telemetry: counting must not need
    // more (it runs in a read-only transaction and writes nothing).
    let db = TestDb::create("readonly");
    db.load_schema();
    let t0 = pg_now(&db);
    load_postgres(&mut db.client(), &fixture(&cutoffs(t0).unwrap()));
    let role = format!("{}_reader", db.name);
    db.client()
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .unwrap();
    let mut config: postgres::Config = db.url.parse().unwrap();
    config.user(&role);
    let mut client = config.connect(NoTls).unwrap();
    let counted = pg::count_client(&mut client, &db.url);
    db.client()
        .batch_execute(&format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}; DROP OWNED BY {role};"
        ))
        .unwrap();
    drop(client);
    db.client()
        .batch_execute(&format!("DROP ROLE {role}"))
        .unwrap();
    assert_counted(&counted.unwrap(), t0, &expected());
}

#[test]
fn postgres_missing_table_names_the_database_and_the_step() {
    let db = TestDb::create("notable");
    // The test server trusts loopback, so the password is ignored by it; it must not show.
    let url = with_password(&db.url, "hunter2");
    let err = count::count(&url).unwrap_err();
    let shown = err.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.starts_with("IS database postgres"), "{shown}");
    assert!(shown.contains(&db.name), "{shown}");
    assert!(shown.contains("counting end_devices failed"), "{shown}");
    assert!(
        shown.contains("relation \"end_devices\" does not exist"),
        "{shown}"
    );
}

#[test]
fn postgres_unreachable_and_unknown_database_are_clear_errors() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let url = "postgresql://root:s3cret@127.0.0.1:1/ttn_lorawan?connect_timeout=2";
    let shown = count::count(url).unwrap_err().to_string();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.starts_with("IS database postgresql://root:***@127.0.0.1:1/ttn_lorawan"),
        "{shown}"
    );
    assert!(shown.contains("connecting failed"), "{shown}");

    let url = with_dbname(&admin_url(), "ttn_t3_no_such_database");
    let shown = count::count(&url).unwrap_err().to_string();
    assert!(shown.contains("connecting failed"), "{shown}");
    assert!(shown.contains("ttn_t3_no_such_database"), "{shown}");
    assert!(shown.contains("does not exist"), "{shown}");
}

fn sqlite_db(dir: &tempfile::TempDir) -> (std::path::PathBuf, rusqlite::Connection) {
    let path = dir.path().join("is.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(sqlite::SCHEMA).unwrap();
    (path, conn)
}

#[test]
fn sqlite_counts_every_fixture_number() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut conn) = sqlite_db(&dir);
    let t0: i64 = conn.query_row(sqlite::SQL_NOW, [], |r| r.get(0)).unwrap();
    load_sqlite(&mut conn, &fixture(&cutoffs(t0).unwrap()));
    drop(conn);
    let counted = count::count(&format!("sqlite:{}", path.display())).unwrap();
    assert_counted(&counted, t0, &expected());
}

#[test]
fn sqlite_missing_file_and_missing_table_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.sqlite");
    let uri = format!("sqlite:{}", missing.display());
    let shown = count::count(&uri).unwrap_err().to_string();
    assert!(
        shown.starts_with(&format!("IS database {uri}: opening failed")),
        "{shown}"
    );

    let empty = dir.path().join("empty.sqlite");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x)")
        .unwrap();
    let uri = format!("sqlite:{}", empty.display());
    let shown = count::count(&uri).unwrap_err().to_string();
    assert!(
        shown.starts_with(&format!("IS database {uri}: counting end_devices failed")),
        "{shown}"
    );
    assert!(shown.contains("no such table: end_devices"), "{shown}");
}

#[test]
fn unknown_scheme_is_refused_without_the_password() {
    let shown = count::count("mysql://root:pw123@db/is")
        .unwrap_err()
        .to_string();
    assert!(!shown.contains("pw123"), "{shown}");
    assert!(
        shown.contains("choosing a database driver failed"),
        "{shown}"
    );
}

/// Every number comes from one snapshot: rows committed while a count is under way are not
/// counted, even in tables the count reaches after the commit. Deterministic: another session
/// holds a lock on `gateways`, so the count stops there after it has taken its snapshot; that
/// session then adds users and gateways and commits, and the count goes on.
#[test]
fn postgres_counts_one_snapshot() {
    let db = TestDb::create("snapshot");
    db.load_schema();
    let t0 = pg_now(&db);
    load_postgres(&mut db.client(), &fixture(&cutoffs(t0).unwrap()));

    let mut locker = db.client();
    let mut tx = locker.transaction().unwrap();
    tx.batch_execute("LOCK TABLE gateways IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let url = db.url.clone();
    let counting = std::thread::spawn(move || count::count(&url));

    // Wait until the count is blocked on the lock, that is, past its snapshot.
    let mut watcher = db.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name = 'ttn-lw-telemetry' AND wait_event_type = 'Lock'",
                &[&db.name],
            )
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the count never reached the locked table"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    insert_user(&mut tx, "late1", "late1@example.com", false, false);
    insert_user(&mut tx, "late2", "late2@example.com", true, false);
    insert_gateway(
        &mut tx,
        "late-gw",
        "FFFFFFFFFFFFFFFF",
        Some("EU_863_870"),
        false,
    );
    insert_organization(&mut tx, "late-org", false);
    tx.commit().unwrap();

    let counted = counting.join().unwrap().unwrap();
    assert_counted(&counted, t0, &expected());

    // The rows were there to be seen: the next count sees them.
    let mut after = expected();
    after.accounts.users.standard += 1;
    after.accounts.users.admin += 1;
    after.accounts.organizations.total += 1;
    after.gateways.total += 1;
    *after
        .gateways
        .gateways_by_frequency_plan_id
        .get_mut("EU_863_870")
        .unwrap() += 1;
    assert_eq!(count::count(&db.url).unwrap().counts, after);
}
