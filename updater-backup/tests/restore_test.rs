//! "Verified" means restorable: verification restores the dump into a
//! scratch database with the credentials a real restore would use.
//!
//! - MariaDB: a view, trigger and function whose definer is another account
//!   back up and restore as a restricted user (no SUPER, no SET USER).
//! - PostgreSQL: a dump holding an object owned by a role the restoring user
//!   cannot become fails verification with an exact error, and the backup
//!   is marked failed, not verified.
//! - `restore_test_cost` (ignored; run with `--ignored --nocapture`)
//!   measures what a restore test costs for a 10 MB database on each engine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::time::{Duration, Instant};

use support::{MysqlData, PostgresData, server_available, unique};
use updater_backup::database::{MysqlDatabase, PostgresDatabase, RestoreTest, SqliteDatabase};
use updater_backup::{BackupStatus, DatabaseBackup, Secret};
use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::conformance::backup::ProtectedData;
use updater_core::progress::NoProgress;
use updater_core::version::Version;

fn request() -> BackupRequest {
    BackupRequest {
        version: Version::new(1, 0, 0),
        purpose: BackupPurpose::RollbackSnapshot,
        update_id: None,
        description: None,
    }
}

/// Runs `sql` as MariaDB's root, returning the error text when it fails.
fn mariadb_as(user: &str, password: &str, sql: &str) -> Result<String, String> {
    let output = std::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", user, "-N", "-B"])
        .arg(format!("--password={password}"))
        .arg("-e")
        .arg(sql)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// Drops the restricted MariaDB user at the end, also when the test fails.
struct MariadbUser(String);

impl Drop for MariadbUser {
    fn drop(&mut self) {
        let _ = mariadb_as("root", "", &format!("DROP USER IF EXISTS '{}'@'%'", self.0));
    }
}

#[test]
fn objects_defined_by_another_account_restore_as_a_restricted_user() {
    if !server_available("MariaDB", 3306) {
        return;
    }
    let data = MysqlData::new();
    let db = &data.name;
    MysqlData::mysql(&format!(
        "CREATE USER IF NOT EXISTS 'updater_other'@'%' IDENTIFIED BY 'not-used-Xy7';
         GRANT ALL ON `{db}`.* TO 'updater_other'@'%';
         CREATE DEFINER='updater_other'@'%' SQL SECURITY DEFINER VIEW {db}.other_view AS SELECT name FROM {db}.users;
         CREATE DEFINER='updater_other'@'%' TRIGGER {db}.users_trim BEFORE INSERT ON {db}.users
           FOR EACH ROW SET NEW.name = trim(NEW.name);
         CREATE DEFINER='updater_other'@'%' FUNCTION {db}.twice(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x;"
    ));
    let app = MariadbUser(unique("upd_app").chars().take(32).collect());
    let password = "app-pass-Kq2";
    let pattern = |name: &str| name.replace('_', "\\_");
    MysqlData::mysql(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}';
         GRANT ALL ON `{exact}`.* TO '{user}'@'%';
         GRANT ALL ON `{exact}\\_updater\\_check\\_%`.* TO '{user}'@'%';
         GRANT SELECT ON mysql.proc TO '{user}'@'%';",
        user = app.0,
        exact = pattern(db),
    ));
    // (SELECT on mysql.proc lets it dump routines other accounts defined.)
    // The restricted user cannot create objects for another definer, which
    // is what replaying an unfiltered dump would ask of it.
    let refused = mariadb_as(
        &app.0,
        password,
        &format!("CREATE DEFINER='updater_other'@'%' VIEW {db}.probe AS SELECT 1"),
    )
    .unwrap_err();
    assert!(
        refused.contains("SUPER") || refused.contains("SET USER"),
        "{refused}"
    );

    let dir = tempfile::tempdir().unwrap();
    let strategy = DatabaseBackup::new(
        MysqlDatabase::new(db)
            .with_user(&app.0)
            .with_password(Secret::new(password)),
        dir.path().join("backups"),
    );
    assert_eq!(strategy.restore_test(), RestoreTest::UpTo(64 << 20));
    let before = data.snapshot();
    let backup = strategy.create(&request(), &NoProgress).unwrap();
    strategy.verify(&backup).unwrap();
    assert_eq!(
        strategy.catalog().get(&backup.id).unwrap().status(),
        BackupStatus::Verified
    );
    let leftovers = mariadb_as(
        "root",
        "",
        &format!(
            "SHOW DATABASES LIKE '{}\\_updater\\_check\\_%'",
            pattern(db)
        ),
    )
    .unwrap();
    assert_eq!(leftovers, "", "the scratch database is dropped");

    data.mutate();
    strategy.restore(&backup, &NoProgress).unwrap();
    assert_eq!(data.snapshot(), before);
    let definers = MysqlData::mysql(&format!(
        "SELECT definer FROM information_schema.views WHERE table_schema = '{db}' AND table_name = 'other_view';
         SELECT definer FROM information_schema.triggers WHERE trigger_schema = '{db}';
         SELECT definer FROM information_schema.routines WHERE routine_schema = '{db}' AND routine_name = 'twice';
         SELECT {db}.twice(21);"
    ));
    let expected = format!("{0}@%\n{0}@%\n{0}@%\n42\n", app.0);
    assert_eq!(
        definers, expected,
        "recreated with the restoring user as definer"
    );
    MysqlData::mysql(&format!("REVOKE ALL ON `{db}`.* FROM 'updater_other'@'%'"));
}

/// Drops the PostgreSQL role at the end, after the database it owns objects in.
struct PostgresRole(String);

impl Drop for PostgresRole {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-c",
            ])
            .arg(format!("DROP ROLE IF EXISTS {}", self.0))
            .output();
    }
}

#[test]
fn a_dump_that_cannot_be_restored_fails_verification_with_the_exact_error() {
    if !server_available("PostgreSQL", 5432) {
        return;
    }
    let app = PostgresRole(unique("upd_app"));
    let data = PostgresData::new();
    let db = data.name.clone();
    PostgresData::psql(
        "test",
        &format!(
            "CREATE ROLE {app} LOGIN CREATEDB;
             DO $$ BEGIN CREATE ROLE updater_other_pg NOLOGIN;
             EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
            app = app.0
        ),
    );
    // The application's role owns its objects: a restore test as that role
    // (no superuser, CREATEDB for the scratch database) passes.
    PostgresData::psql(
        &db,
        &format!(
            "ALTER TABLE users OWNER TO {app}; ALTER VIEW user_names OWNER TO {app};
             ALTER FUNCTION shout(text) OWNER TO {app};",
            app = app.0
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let as_app = DatabaseBackup::new(PostgresDatabase::new(&db).with_user(&app.0), &backups);
    let good = as_app.create(&request(), &NoProgress).unwrap();
    as_app.verify(&good).unwrap();
    assert_eq!(
        as_app.catalog().get(&good.id).unwrap().status(),
        BackupStatus::Verified
    );

    // An object owned by a role the application's role cannot become: the
    // dump (taken by the superuser) cannot be replayed by the application.
    PostgresData::psql(
        &db,
        "CREATE TABLE owned_elsewhere (x int); ALTER TABLE owned_elsewhere OWNER TO updater_other_pg;",
    );
    let as_admin = DatabaseBackup::new(PostgresDatabase::new(&db), &backups);
    let bad = as_admin.create(&request(), &NoProgress).unwrap();
    let err = as_app.verify(&bad).unwrap_err();
    let dump = bad.database_path.clone().unwrap().display().to_string();
    assert!(
        matches!(&err, updater_core::Error::Integrity { subject, reason }
            if *subject == dump
                && reason.starts_with("not restorable: `psql` failed during restore test: exit status: 3; output: ")
                && reason.contains("must be member of role \"updater_other_pg\"")),
        "{err}"
    );
    assert_eq!(
        as_app.catalog().get(&bad.id).unwrap().status(),
        BackupStatus::Failed
    );
    let leftovers = PostgresData::psql(
        "test",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname LIKE '{db}\\_updater\\_check\\_%'"
        ),
    );
    assert_eq!(
        leftovers.trim(),
        "0",
        "the scratch database is dropped on failure too"
    );
    // Without a restore test the same dump checks out: that is what
    // "verified" used to mean.
    DatabaseBackup::new(PostgresDatabase::new(&db).with_user(&app.0), &backups)
        .with_restore_test(RestoreTest::Never)
        .verify(&bad)
        .unwrap();
    drop(data);
}

/// About 10 MB of rows: 20,000 rows of 500 bytes of hex.
const ROWS: u32 = 20_000;

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

/// Creates, verifies without and with a restore test, and prints the times.
fn measure(label: &str, strategy: &DatabaseBackup) {
    let mut backup = None;
    let create = timed(|| backup = Some(strategy.create(&request(), &NoProgress).unwrap()));
    let backup = backup.unwrap();
    let plain = strategy.clone().with_restore_test(RestoreTest::Never);
    let tested = strategy.clone().with_restore_test(RestoreTest::Always);
    let mut without = Vec::new();
    let mut with = Vec::new();
    for _ in 0..3 {
        without.push(timed(|| plain.verify(&backup).unwrap()));
        with.push(timed(|| tested.verify(&backup).unwrap()));
    }
    without.sort();
    with.sort();
    println!(
        "{label}: dump {} bytes, create {create:.2?}, verify {:.2?}, verify with restore test {:.2?} (medians of 3)",
        backup.size, without[1], with[1]
    );
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn restore_test_cost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(&format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             INSERT INTO t (payload) SELECT hex(randomblob(250)) FROM n;"
        ))
        .unwrap();
    drop(connection);
    println!(
        "SQLite file: {} bytes",
        std::fs::metadata(&path).unwrap().len()
    );
    measure(
        "SQLite",
        &DatabaseBackup::new(
            SqliteDatabase::new(&path),
            dir.path().join("sqlite-backups"),
        ),
    );

    if server_available("PostgreSQL", 5432) {
        let data = PostgresData::new();
        PostgresData::psql(
            &data.name,
            &format!(
                "CREATE TABLE big (id serial PRIMARY KEY, payload text);
                 INSERT INTO big (payload) SELECT string_agg(md5(i::text || '-' || j::text), '')
                 FROM generate_series(1, {ROWS}) i, generate_series(1, 16) j GROUP BY i;"
            ),
        );
        println!(
            "PostgreSQL table data: {} bytes",
            PostgresData::psql(&data.name, "SELECT sum(length(payload)) FROM big").trim()
        );
        measure(
            "PostgreSQL",
            &DatabaseBackup::new(
                PostgresDatabase::new(&data.name),
                dir.path().join("pg-backups"),
            ),
        );
    }

    if server_available("MariaDB", 3306) {
        let data = MysqlData::new();
        let db = &data.name;
        MysqlData::mysql(&format!(
            "CREATE TABLE {db}.big (id INT AUTO_INCREMENT PRIMARY KEY, payload TEXT);
             SET max_recursive_iterations = {ROWS};
             INSERT INTO {db}.big (payload)
               WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
               SELECT concat(sha2(i, 512), sha2(i + {ROWS}, 512), sha2(i + 2 * {ROWS}, 512),
                             sha2(i + 3 * {ROWS}, 512)) FROM n;"
        ));
        println!(
            "MariaDB table data: {} bytes",
            MysqlData::mysql(&format!("SELECT sum(length(payload)) FROM {db}.big")).trim()
        );
        measure(
            "MariaDB",
            &DatabaseBackup::new(MysqlDatabase::new(db), dir.path().join("my-backups")),
        );
    }
}
