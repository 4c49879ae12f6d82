//! Two real processes (the web application and a cron job) recording into
//! the same SQLite file at once: no row is lost or corrupted.
//!
//! The test binary runs itself as the second process (the test kit's
//! `child` runner): `child_writer` does nothing in a normal test run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use updater_core::conformance::history;
use updater_core::history::{
    HistoryStore, NotificationFilter, NotificationType, Page, UpdateRecord, UpdateStatus,
};
use updater_core::version::Version;
use updater_store_diesel::DieselHistoryStore;
use updater_testkit::child;

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
    if !child::is_child() {
        return; // Not started as the second process.
    }
    let (db, writer) = (
        child::var("UPDATER_STORE_CHILD_DB"),
        child::var("UPDATER_STORE_CHILD_WRITER"),
    );
    let store = DieselHistoryStore::open(db).unwrap();
    write_records(&store, writer.parse().unwrap());
}

#[test]
fn two_processes_writing_one_sqlite_file_lose_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db").display().to_string();
    let store = DieselHistoryStore::open(db.clone()).unwrap();

    let mut child = child::spawn(
        "child_writer",
        &[
            ("UPDATER_STORE_CHILD_DB", db.clone()),
            ("UPDATER_STORE_CHILD_WRITER", "2".to_string()),
        ],
    );
    write_records(&store, 1);
    let status = child.wait().unwrap();
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
