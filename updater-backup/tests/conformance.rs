//! Every strategy of this crate passes the shared conformance suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use support::{AppTree, Both, MysqlData, PostgresData, SqliteData, server_available};
use updater_backup::database::{MysqlDatabase, PostgresDatabase, SqliteDatabase};
use updater_backup::{CompositeBackup, DatabaseBackup, FileBackup, Secret};
use updater_core::conformance::backup::{Options, run};

#[test]
fn file_backup_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    run(&strategy, &tree, &Options::default());
}

#[test]
fn single_threaded_non_incremental_file_backup_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .with_threads(1)
        .with_incremental(false)
        .with_compression_level(6)
        .build()
        .unwrap();
    run(&strategy, &tree, &Options::default());
}

#[test]
fn sqlite_backup_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let data = SqliteData::new(&dir.path().join("app.db"));
    let strategy = DatabaseBackup::new(SqliteDatabase::new(&data.path), dir.path().join("backups"));
    run(&strategy, &data, &Options::default());
}

#[test]
fn postgres_backup_passes_the_conformance_suite() {
    if !server_available("PostgreSQL", 5432) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = PostgresData::new();
    // Trust authentication ignores the password; it must still never leak.
    let secret = "pg-Secret-7f3a";
    let engine = PostgresDatabase::new(&data.name).with_password(Secret::new(secret));
    let strategy = DatabaseBackup::new(engine, dir.path().join("backups"));
    run(&strategy, &data, &Options { secrets: &[secret] });
}

#[test]
fn mysql_backup_passes_the_conformance_suite() {
    if !server_available("MariaDB", 3306) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = MysqlData::new();
    let strategy = DatabaseBackup::new(MysqlDatabase::new(&data.name), dir.path().join("backups"));
    run(&strategy, &data, &Options::default());
}

#[test]
fn composite_backup_of_files_and_sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let database = SqliteData::new(&dir.path().join("app.db"));
    let files = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let strategy = CompositeBackup::new(files, SqliteDatabase::new(&database.path));
    let both = Both {
        files: &tree,
        database: &database,
    };
    run(&strategy, &both, &Options::default());
}

#[test]
fn composite_backup_of_files_and_postgres_passes_the_conformance_suite() {
    if !server_available("PostgreSQL", 5432) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let database = PostgresData::new();
    let files = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let strategy = CompositeBackup::new(files, PostgresDatabase::new(&database.name));
    let both = Both {
        files: &tree,
        database: &database,
    };
    run(&strategy, &both, &Options::default());
}
