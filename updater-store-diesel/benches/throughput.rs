//! Records per second per backend: an update created then saved once, a
//! version check, a notification (each a distinct row). SQLite is a file in a
//! temporary directory (WAL, synchronous=FULL); PostgreSQL and MariaDB/MySQL
//! are the servers of `UPDATER_TEST_POSTGRES_URL` / `UPDATER_TEST_MYSQL_URL`
//! (defaults: the local test servers), skipped when unreachable.
//!
//! `cargo bench -p updater-store-diesel --all-features --bench throughput`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use updater_core::history::{
    CheckStatus, HistoryStore, NotificationRecord, NotificationType, UpdateRecord, UpdateStatus,
    VersionCheckRecord,
};
use updater_core::version::Version;
use updater_store_diesel::DieselHistoryStore;

fn targets(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut targets = vec![("sqlite", dir.join("bench.db").display().to_string())];
    let servers = [
        (
            "postgres",
            "UPDATER_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        ),
        (
            "mysql",
            "UPDATER_TEST_MYSQL_URL",
            "mysql://root@127.0.0.1:3306/test",
        ),
    ];
    for (name, var, default) in servers {
        let url = std::env::var(var).unwrap_or_else(|_| default.to_string());
        targets.push((name, url));
    }
    targets
}

fn throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for (name, url) in targets(dir.path()) {
        let prefix = format!("bench{}_", std::process::id());
        let store = match DieselHistoryStore::builder(url)
            .with_table_prefix(prefix)
            .with_connect_timeout(Duration::from_secs(2))
            .build()
        {
            Ok(store) => store,
            Err(e) => {
                println!("skipped: {name}: {e}");
                continue;
            }
        };
        let mut group = c.benchmark_group(format!("history/{name}"));
        group
            .throughput(Throughput::Elements(1))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));

        let mut n = 0_u64;
        group.bench_function("create_update+save_update", |b| {
            b.iter(|| {
                n += 1;
                let mut update = UpdateRecord::new(Version::new(1, n, 0), "bench");
                update.id = store.create_update(&update).unwrap();
                update.status = UpdateStatus::Completed;
                update.progress_percentage = 100;
                store.save_update(&update).unwrap();
            });
        });
        group.bench_function("record_check", |b| {
            b.iter(|| {
                store
                    .record_check(&VersionCheckRecord {
                        id: 0,
                        current_version: Version::new(1, 0, 0),
                        latest_version: Some(Version::new(1, 1, 0)),
                        update_available: true,
                        check_status: CheckStatus::Success,
                        error_message: None,
                        release_info: Some(serde_json::json!({"channel": "stable"})),
                        checked_at: Utc::now(),
                    })
                    .unwrap();
            });
        });
        let mut m = 0_u64;
        group.bench_function("add_notification", |b| {
            b.iter(|| {
                m += 1;
                store
                    .add_notification(&NotificationRecord {
                        id: 0,
                        version: Version::new(2, m, 0),
                        notification_type: NotificationType::UpdateAvailable,
                        message: "available".into(),
                        metadata: None,
                        is_read: false,
                        is_dismissed: false,
                        user_id: Some("admin".into()),
                        read_at: None,
                        created_at: Utc::now(),
                        event_id: None,
                    })
                    .unwrap();
            });
        });
        group.bench_function("latest_check", |b| {
            b.iter(|| store.latest_check().unwrap());
        });
        group.finish();
        store.drop_tables().unwrap();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
