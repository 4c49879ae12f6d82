//! The shared history conformance suite, the two-handle and concurrency
//! checks, and table-prefix isolation, on every backend: SQLite always,
//! PostgreSQL and MariaDB/MySQL when their servers are reachable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod backends;

use updater_core::conformance::{history, outbox};
use updater_core::history::{HistoryStore, NotificationFilter, NotificationType, Page};

macro_rules! backend_tests {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[test]
            fn store_passes_the_history_suite() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                history::run(&*db.open());
            }

            #[test]
            fn store_passes_the_outbox_suite() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                outbox::run(&*db.open());
            }

            #[test]
            fn two_outbox_handles_share_events_and_claims() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let writer = db.open();
                let reader = db.open_with_prefix(writer.table_prefix());
                outbox::run_shared(&*writer, &reader);
            }

            #[test]
            fn concurrent_claimers_through_two_stores_never_share_a_delivery() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let first = db.open();
                let second = db.open_with_prefix(first.table_prefix());
                outbox::concurrent_claims(&[&*first, &second], 4, 12);
            }

            #[test]
            fn store_passes_the_schedule_suite() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                updater_core::conformance::schedule::run(&*db.open());
            }

            #[test]
            fn listings_and_latest_check_order_by_creation_time() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                history::listings_order_by_creation_time(&*db.open());
            }

            #[test]
            fn second_store_on_the_same_tables_sees_every_write_at_once() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let writer = db.open();
                let reader = db.open_with_prefix(writer.table_prefix());
                history::run_shared(&*writer, &reader);
            }

            #[test]
            fn concurrent_writers_through_two_stores_lose_no_row() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let first = db.open();
                let second = db.open_with_prefix(first.table_prefix());
                history::concurrent_writers(&[&*first, &second], 3, 8);
            }

            #[test]
            fn two_prefixes_in_one_database_do_not_see_each_other() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let a = db.open();
                let b = db.open();
                let mut check = history::sample_check(1, true);
                a.record_check(&check).unwrap();
                a.create_update(&history::sample_update(1)).unwrap();
                a.record_backup(&history::sample_backup(1, None)).unwrap();
                let note = history::sample_notification(
                    1,
                    "2.0.0",
                    NotificationType::UpdateAvailable,
                    None,
                );
                assert!(a.add_notification(&note).unwrap().is_some());

                assert_eq!(
                    b.latest_check().unwrap(),
                    None,
                    "checks leak across prefixes"
                );
                assert!(
                    b.updates(Page::first(10)).unwrap().is_empty(),
                    "updates leak across prefixes"
                );
                assert!(
                    b.backups(Page::first(10)).unwrap().is_empty(),
                    "backups leak across prefixes"
                );
                assert!(
                    b.notifications(&NotificationFilter::default())
                        .unwrap()
                        .is_empty(),
                    "notifications leak across prefixes"
                );
                assert!(
                    b.add_notification(&note).unwrap().is_some(),
                    "deduplication is per prefix"
                );
                assert!(
                    matches!(
                        b.mark_backup_unrestorable("backup-1", "x"),
                        Err(updater_core::Error::NotFound { .. })
                    ),
                    "a backup of another prefix is not found"
                );
                check.checked_at += chrono::Duration::hours(1);
                b.record_check(&check).unwrap();
                assert_eq!(
                    a.latest_check().unwrap().unwrap().checked_at,
                    history::sample_check(1, true).checked_at
                );
            }

            #[test]
            fn an_application_table_with_the_stores_name_is_reported_not_used() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let prefix = backends::unique_prefix();
                let table = format!("{prefix}system_updates");
                db.execute(&format!(
                    "CREATE TABLE {table} (id BIGINT PRIMARY KEY, title VARCHAR(20))"
                ));
                let result = updater_store_diesel::DieselHistoryStore::builder(db.url.clone())
                    .with_table_prefix(prefix.clone())
                    .build();
                // Clean up whatever was created before asserting.
                for name in [
                    "system_updates",
                    "version_checks",
                    "update_backups",
                    "update_notifications",
                    "notification_events",
                    "notification_deliveries",
                    "scheduled_updates",
                    "update_audit",
                    "schema_version",
                ] {
                    db.execute(&format!("DROP TABLE IF EXISTS {prefix}{name}"));
                }
                match result {
                    Err(
                        e @ (updater_store_diesel::StoreError::SchemaMismatch { .. }
                        | updater_store_diesel::StoreError::Migrate { .. }),
                    ) => {
                        assert!(
                            e.to_string().contains(&table),
                            "the message names the table: {e}"
                        );
                    }
                    other => panic!("expected SchemaMismatch or Migrate, got {other:?}"),
                }
            }

            #[test]
            fn upgrading_a_schema_1_database_keeps_its_notifications_and_their_deduplication() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let store = db.open();
                let p = store.table_prefix().to_string();
                let old = history::sample_notification(
                    1,
                    "2.0.0",
                    NotificationType::UpdateAvailable,
                    Some("alice"),
                );
                let id = store.add_notification(&old).unwrap().unwrap();
                // Back to schema 1, as a database written by an earlier release.
                db.execute(&format!("DROP TABLE {p}update_audit"));
                db.execute(&format!("DROP TABLE {p}scheduled_updates"));
                db.execute(&format!("DROP TABLE {p}notification_deliveries"));
                db.execute(&format!("DROP TABLE {p}notification_events"));
                db.execute(&format!(
                    "ALTER TABLE {p}update_notifications DROP COLUMN event_id"
                ));
                db.execute(&format!("DELETE FROM {p}schema_version WHERE version >= 2"));

                let upgraded = db.open_with_prefix(&p);
                let kept = upgraded
                    .notifications(&NotificationFilter::default())
                    .unwrap();
                assert_eq!(kept.len(), 1, "the schema-1 row is kept");
                assert_eq!(kept[0].id, id);
                assert_eq!(kept[0].event_id, None, "old rows have no event id");
                let same_event = updater_core::history::NotificationRecord {
                    event_id: Some("update_available:2.0.0".into()),
                    ..old.clone()
                };
                assert_eq!(
                    upgraded.add_notification(&same_event).unwrap(),
                    None,
                    "an old row still deduplicates the same event"
                );
                let second_failure = updater_core::history::NotificationRecord {
                    event_id: Some("update-9:update_available".into()),
                    ..old
                };
                assert!(
                    upgraded
                        .add_notification(&second_failure)
                        .unwrap()
                        .is_some()
                );
                outbox::run(&upgraded);
                updater_core::conformance::schedule::run(&upgraded);
            }

            #[test]
            fn reopening_keeps_records_and_applies_the_schema_once() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let first = db.open();
                let id = first.create_update(&history::sample_update(1)).unwrap();
                let reopened = db.open_with_prefix(first.table_prefix());
                assert_eq!(reopened.update(id).unwrap().map(|u| u.id), Some(id));
            }

            #[test]
            fn stores_opening_at_once_on_fresh_tables_all_succeed() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let prefix = backends::unique_prefix();
                let stores: Vec<_> = std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..4)
                        .map(|_| scope.spawn(|| db.open_with_prefix(&prefix)))
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                stores[0].create_update(&history::sample_update(1)).unwrap();
                for store in &stores {
                    assert_eq!(store.updates(Page::first(5)).unwrap().len(), 1);
                }
                stores[0].drop_tables().unwrap();
            }
        }
    };
}

backend_tests!(sqlite);
backend_tests!(postgres);
backend_tests!(mysql);

#[test]
fn sqlite_in_memory_store_passes_the_history_suite() {
    let store = updater_store_diesel::DieselHistoryStore::open(":memory:").unwrap();
    history::run(&store);
}
