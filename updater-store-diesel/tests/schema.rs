//! Opening a store: URLs, prefixes, schema versions, tables that are not
//! ours, unreadable rows, and errors that never show a password.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod backends;

use std::time::Duration;

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use updater_core::conformance::history;
use updater_core::history::{HistoryStore, Page};
use updater_store_diesel::{Backend, DieselHistoryStore, SCHEMA_VERSION, StoreError};

fn sqlite_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db").display().to_string();
    (dir, path)
}

fn count(conn: &mut SqliteConnection, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).load::<Count>(conn).unwrap()[0].n
}

#[test]
fn every_sqlite_url_form_opens_the_same_file() {
    let (_dir, path) = sqlite_file();
    let id = DieselHistoryStore::open(path.clone())
        .unwrap()
        .create_update(&history::sample_update(1))
        .unwrap();
    for url in [
        format!("sqlite://{path}"),
        format!("sqlite:{path}"),
        format!("file:{path}"),
    ] {
        let store = DieselHistoryStore::open(url.clone()).unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        assert_eq!(store.update(id).unwrap().map(|u| u.id), Some(id), "{url}");
    }
}

#[test]
fn tables_live_beside_the_host_applications_own_tables() {
    let (_dir, path) = sqlite_file();
    let mut app = SqliteConnection::establish(&path).unwrap();
    diesel::sql_query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&mut app)
        .unwrap();
    diesel::sql_query("INSERT INTO users (name) VALUES ('alice')")
        .execute(&mut app)
        .unwrap();

    let store = DieselHistoryStore::builder(path)
        .with_table_prefix("updater_")
        .build()
        .unwrap();
    store.create_update(&history::sample_update(1)).unwrap();

    assert_eq!(
        count(&mut app, "SELECT COUNT(*) AS n FROM users"),
        1,
        "the app's table is untouched"
    );
    assert_eq!(
        count(&mut app, "SELECT COUNT(*) AS n FROM updater_system_updates"),
        1
    );
    let ours = count(
        &mut app,
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name LIKE 'updater\\_%' ESCAPE '\\'",
    );
    assert_eq!(
        ours, 9,
        "eight record tables and schema_version, all prefixed"
    );
    store.drop_tables().unwrap();
    assert_eq!(
        count(&mut app, "SELECT COUNT(*) AS n FROM users"),
        1,
        "drop_tables leaves the app's tables"
    );
}

#[test]
fn reopening_applies_each_schema_version_once() {
    let (_dir, path) = sqlite_file();
    for _ in 0..3 {
        DieselHistoryStore::builder(path.clone())
            .with_table_prefix("h_")
            .build()
            .unwrap();
    }
    let mut conn = SqliteConnection::establish(&path).unwrap();
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) AS n FROM h_schema_version"),
        SCHEMA_VERSION
    );
    assert_eq!(
        count(&mut conn, "SELECT MAX(version) AS n FROM h_schema_version"),
        SCHEMA_VERSION
    );
}

#[test]
fn sqlite_database_runs_in_wal_mode() {
    let (_dir, path) = sqlite_file();
    DieselHistoryStore::open(path.clone()).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mut conn = SqliteConnection::establish(&path).unwrap();
    let mode = diesel::sql_query("PRAGMA journal_mode")
        .load::<Mode>(&mut conn)
        .unwrap();
    assert_eq!(mode[0].journal_mode, "wal");
}

#[test]
fn a_newer_schema_than_the_library_knows_is_refused() {
    let (_dir, path) = sqlite_file();
    DieselHistoryStore::open(path.clone()).unwrap();
    let mut conn = SqliteConnection::establish(&path).unwrap();
    diesel::sql_query("INSERT INTO schema_version (version, applied_at) VALUES (99, '2030-01-01 00:00:00.000000')")
        .execute(&mut conn)
        .unwrap();
    match DieselHistoryStore::open(path) {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported,
            ..
        }) => assert_eq!(supported, SCHEMA_VERSION),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn a_host_table_with_the_same_name_is_reported_not_used() {
    let (_dir, path) = sqlite_file();
    let mut app = SqliteConnection::establish(&path).unwrap();
    diesel::sql_query("CREATE TABLE system_updates (id INTEGER PRIMARY KEY, title TEXT)")
        .execute(&mut app)
        .unwrap();
    match DieselHistoryStore::open(path) {
        // Caught by the column check, or earlier by the index creation.
        Err(e @ (StoreError::SchemaMismatch { .. } | StoreError::Migrate { .. })) => {
            assert!(e.to_string().contains("system_updates"), "{e}");
            assert!(
                e.to_string().contains("prefix"),
                "the message suggests a prefix: {e}"
            );
        }
        other => panic!("expected SchemaMismatch or Migrate, got {other:?}"),
    }
}

#[test]
fn an_unreadable_row_is_an_error_naming_table_row_and_column() {
    let (_dir, path) = sqlite_file();
    let store = DieselHistoryStore::open(path.clone()).unwrap();
    let id = store.create_update(&history::sample_update(1)).unwrap();
    let mut conn = SqliteConnection::establish(&path).unwrap();
    diesel::sql_query("UPDATE system_updates SET status = 'exploded'")
        .execute(&mut conn)
        .unwrap();
    let error = store.update(id).unwrap_err().to_string();
    assert!(
        error.contains("system_updates")
            && error.contains("status")
            && error.contains(&id.to_string()),
        "{error}"
    );
    assert!(store.updates(Page::first(5)).is_err());
}

#[test]
fn sizes_beyond_the_bigint_column_are_refused_as_invalid_input() {
    let store = DieselHistoryStore::open(":memory:").unwrap();
    let mut update = history::sample_update(1);
    update.download_size = Some(u64::MAX);
    assert!(matches!(
        store.create_update(&update),
        Err(updater_core::Error::InvalidInput { .. })
    ));
    assert!(
        store.updates(Page::first(5)).unwrap().is_empty(),
        "nothing was stored"
    );
}

#[test]
fn invalid_prefixes_are_refused_before_connecting() {
    for prefix in ["App_", "x; DROP TABLE users; --", "1x_", "a-b"] {
        let result = DieselHistoryStore::builder(":memory:")
            .with_table_prefix(prefix)
            .build();
        assert!(
            matches!(result, Err(StoreError::InvalidPrefix { .. })),
            "{prefix:?}: {result:?}"
        );
    }
}

#[test]
fn unknown_schemes_are_refused_without_showing_the_password() {
    let error =
        DieselHistoryStore::open("oracle://scott:tiger-secret@db.example/orcl").unwrap_err();
    assert!(
        matches!(error, StoreError::UnsupportedUrl { .. }),
        "{error:?}"
    );
    let text = format!("{error} {error:?}");
    assert!(text.contains("oracle"), "{text}");
    assert!(!text.contains("tiger-secret"), "password leaked: {text}");
}

#[test]
fn builder_debug_does_not_show_the_password() {
    let builder = DieselHistoryStore::builder("postgres://app:hunter2-secret@127.0.0.1/app");
    let text = format!("{builder:?}");
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}

#[cfg(feature = "postgres")]
#[test]
fn an_unreachable_server_is_a_connect_error_without_the_password() {
    let error = DieselHistoryStore::builder("postgres://app:hunter2-secret@127.0.0.1:1/app")
        .with_connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap_err();
    assert!(matches!(error, StoreError::Connect { .. }), "{error:?}");
    let text = format!("{error} {error:?}");
    let text = format!("{text} {}", updater_core::Error::from(error));
    assert!(!text.contains("hunter2-secret"), "password leaked: {text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
}

#[cfg(not(feature = "sqlite"))]
#[test]
fn sqlite_urls_need_the_sqlite_feature() {
    assert!(matches!(
        DieselHistoryStore::open(":memory:"),
        Err(StoreError::UnsupportedUrl { .. })
    ));
}

#[test]
fn a_writer_waits_for_another_processes_lock_instead_of_failing() {
    let (_dir, path) = sqlite_file();
    let store = DieselHistoryStore::builder(path.clone())
        .with_busy_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Another connection (as another process would) holds the write lock for a while.
    let mut other = SqliteConnection::establish(&path).unwrap();
    diesel::sql_query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .unwrap();
    let writer = std::thread::spawn(move || store.record_check(&history::sample_check(1, true)));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!writer.is_finished(), "the write must wait for the lock");
    diesel::sql_query("COMMIT").execute(&mut other).unwrap();
    writer
        .join()
        .unwrap()
        .expect("the write succeeds once the lock is free");
}

#[test]
fn a_writer_gives_up_after_the_busy_timeout_with_an_error() {
    let (_dir, path) = sqlite_file();
    let store = DieselHistoryStore::builder(path.clone())
        .with_busy_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut other = SqliteConnection::establish(&path).unwrap();
    diesel::sql_query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .unwrap();
    let error = store
        .record_check(&history::sample_check(1, true))
        .unwrap_err();
    assert!(error.to_string().contains("locked"), "{error}");
    diesel::sql_query("ROLLBACK").execute(&mut other).unwrap();
    assert_eq!(store.latest_check().unwrap(), None, "nothing half-written");
}
