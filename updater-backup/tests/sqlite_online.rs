//! SQLite snapshots are consistent while the application keeps writing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use updater_backup::DatabaseBackup;
use updater_backup::database::SqliteDatabase;
use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::progress::NoProgress;
use updater_core::version::Version;

#[test]
fn a_snapshot_taken_during_writes_holds_only_whole_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let setup = rusqlite::Connection::open(&path).unwrap();
    setup
        .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);")
        .unwrap();
    drop(setup);
    let strategy = DatabaseBackup::new(
        SqliteDatabase::new(&path).with_busy_timeout(Duration::from_secs(10)),
        dir.path().join("backups"),
    );
    let request = BackupRequest {
        version: Version::new(1, 0, 0),
        purpose: BackupPurpose::RollbackSnapshot,
        update_id: None,
        description: None,
    };
    let stop = AtomicBool::new(false);
    let backups = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let connection = rusqlite::Connection::open(&path).unwrap();
            connection.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut transactions = 0u64;
            while !stop.load(Ordering::Relaxed) || transactions < 50 {
                // Every transaction moves money: +7 and -7, so the sum stays 0.
                connection
                    .execute_batch("BEGIN; INSERT INTO ledger (amount) VALUES (7); INSERT INTO ledger (amount) VALUES (-7); COMMIT;")
                    .unwrap();
                transactions += 1;
            }
            transactions
        });
        let backups: Vec<_> = (0..5)
            .map(|_| strategy.create(&request, &NoProgress).unwrap())
            .collect();
        stop.store(true, Ordering::Relaxed);
        assert!(writer.join().unwrap() >= 50);
        backups
    });
    for backup in backups {
        strategy.verify(&backup).unwrap();
        let snapshot = rusqlite::Connection::open(backup.database_path.as_ref().unwrap()).unwrap();
        let (rows, sum): (i64, i64) = snapshot
            .query_row(
                "SELECT count(*), coalesce(sum(amount), 0) FROM ledger",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (rows % 2, sum),
            (0, 0),
            "a snapshot holds half a transaction"
        );
    }
}
