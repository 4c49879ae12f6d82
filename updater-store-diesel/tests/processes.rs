//! Two real processes (the web application and a cron job) recording into
//! the same SQLite file at once: no row is lost or corrupted.
//!
//! The test binary runs itself as the second process: `child_writer` does
//! nothing unless `UPDATER_STORE_CHILD_DB` names the database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use updater_core::conformance::history;
use updater_core::history::{
    HistoryStore, NotificationFilter, NotificationType, Page, UpdateRecord, UpdateStatus,
};
use updater_core::version::Version;
use updater_store_diesel::DieselHistoryStore;

const RECORDS: u64 = 40;

fn write_records(store: &DieselHistoryStore, writer: u64) {
    for n in 0..RECORDS {
        let mut update = UpdateRecord::new(Version::new(writer, n, 0), format!("process {writer}"));
        update.id = store.create_update(&update).unwrap();
        update.status = UpdateStatus::Completed;
        update.progress_percentage = 100;
        store.save_update(&update).unwrap();
        store
            .record_check(&history::sample_check(i64::try_from(n).unwrap(), true))
            .unwrap();
        let shared =
            history::sample_notification(0, "9.0.0", NotificationType::UpdateAvailable, None);
        store.add_notification(&shared).unwrap();
    }
}

#[test]
fn child_writer() {
    let (Ok(db), Ok(writer)) = (
        std::env::var("UPDATER_STORE_CHILD_DB"),
        std::env::var("UPDATER_STORE_CHILD_WRITER"),
    ) else {
        return; // Not started as the second process.
    };
    let store = DieselHistoryStore::open(db).unwrap();
    write_records(&store, writer.parse().unwrap());
}

#[test]
fn two_processes_writing_one_sqlite_file_lose_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db").display().to_string();
    let store = DieselHistoryStore::open(db.clone()).unwrap();

    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--test-threads=1"])
        .env("UPDATER_STORE_CHILD_DB", &db)
        .env("UPDATER_STORE_CHILD_WRITER", "2")
        .spawn()
        .unwrap();
    write_records(&store, 1);
    let status = child.wait_with_output().unwrap().status;
    assert!(status.success(), "the second process failed: {status}");

    let updates = store.updates(Page::first(u64::MAX)).unwrap();
    assert_eq!(
        updates.len() as u64,
        2 * RECORDS,
        "every update of both processes is stored"
    );
    for writer in [1, 2] {
        let mine: Vec<_> = updates
            .iter()
            .filter(|u| u.initiated_by == format!("process {writer}"))
            .collect();
        assert_eq!(mine.len() as u64, RECORDS, "process {writer} lost updates");
        assert!(mine.iter().all(|u| u.status == UpdateStatus::Completed));
    }
    let notifications = store.notifications(&NotificationFilter::default()).unwrap();
    assert_eq!(
        notifications.len(),
        1,
        "the notification both processes added is stored once"
    );
}
