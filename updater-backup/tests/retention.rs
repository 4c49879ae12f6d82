//! Retention on real catalogs through `BackupStrategy::prune`: backups are
//! counted per class, the newest files backup always survives, and the
//! leftovers of killed creates are removed while running creates are not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use support::{AppTree, SqliteData};
use updater_backup::database::SqliteDatabase;
use updater_backup::store::IN_PROGRESS_FILE;
use updater_backup::{DatabaseBackup, FileBackup, prune_catalog};
use updater_core::backup::{
    Backup, BackupKind, BackupPurpose, BackupRequest, BackupStrategy, RetentionRules,
};
use updater_core::progress::{NoProgress, Progress};
use updater_core::version::Version;
use updater_testkit::child;

fn request(patch: u64, purpose: BackupPurpose) -> BackupRequest {
    BackupRequest {
        version: Version::new(1, 0, patch),
        purpose,
        update_id: Some(patch as i64),
        description: None,
    }
}

fn rules(keep: usize, running: u64, protected: &[&Backup]) -> RetentionRules {
    RetentionRules {
        keep,
        running: Version::new(1, 0, running),
        protected: protected.iter().map(|b| b.id.clone()).collect(),
    }
}

/// What each update leaves: a verified files backup before the window and a
/// verified database snapshot inside it, in one backup directory.
fn updates(files: &FileBackup, database: &DatabaseBackup, count: u64) -> Vec<(Backup, Backup)> {
    (0..count)
        .map(|patch| {
            let before = files
                .create(&request(patch, BackupPurpose::PreUpdate), &NoProgress)
                .unwrap();
            files.verify(&before).unwrap();
            let snapshot = database
                .create(
                    &request(patch, BackupPurpose::RollbackSnapshot),
                    &NoProgress,
                )
                .unwrap();
            database.verify(&snapshot).unwrap();
            (before, snapshot)
        })
        .collect()
}

fn listed(files: &FileBackup, kind: BackupKind) -> Vec<String> {
    files
        .catalog()
        .list()
        .unwrap()
        .into_iter()
        .filter(|e| e.kind() == kind)
        .map(|e| e.id().to_string())
        .collect()
}

fn ids(backups: &[&Backup]) -> Vec<String> {
    backups.iter().map(|b| b.id.clone()).collect()
}

#[test]
fn fifteen_updates_with_retention_three_keep_three_backups_of_each_kind() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let data = SqliteData::new(&dir.path().join("app.db"));
    let root = dir.path().join("backups");
    let files = FileBackup::builder(&tree.root, &root).build().unwrap();
    let database = DatabaseBackup::new(SqliteDatabase::new(&data.path), &root);
    let made = updates(&files, &database, 15);
    assert_eq!(fs::read_dir(&root).unwrap().count(), 30);

    // A kept release still needs the snapshot of update 5 for its rollback.
    let protected = &made[5].1;
    let pruned = files.prune(&rules(3, 14, &[protected])).unwrap();
    assert_eq!(pruned.deleted.len(), 30 - 3 - 3 - 1, "{pruned:?}");
    assert!(pruned.removed_incomplete.is_empty());
    assert_eq!(
        listed(&files, BackupKind::FilesOnly),
        ids(&[&made[12].0, &made[13].0, &made[14].0])
    );
    assert_eq!(
        listed(&files, BackupKind::DatabaseOnly),
        ids(&[protected, &made[12].1, &made[13].1, &made[14].1])
    );
    assert_eq!(pruned.kept.len(), 7);
    assert_eq!(fs::read_dir(&root).unwrap().count(), 7);

    // Strategies sharing the directory agree: a second prune deletes nothing.
    let again = prune_catalog(database.catalog(), &rules(3, 14, &[protected])).unwrap();
    assert!(again.deleted.is_empty(), "{again:?}");
}

#[test]
fn keeping_one_backup_keeps_the_newest_files_backup_and_not_only_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let data = SqliteData::new(&dir.path().join("app.db"));
    let root = dir.path().join("backups");
    let files = FileBackup::builder(&tree.root, &root).build().unwrap();
    let database = DatabaseBackup::new(SqliteDatabase::new(&data.path), &root);
    let made = updates(&files, &database, 3);
    // A newer files backup that failed verification does not count.
    let failed = files
        .create(&request(3, BackupPurpose::Manual), &NoProgress)
        .unwrap();
    let archive = failed.files_path.clone().unwrap();
    let mut bytes = fs::read(&archive).unwrap();
    bytes[40] ^= 1;
    fs::write(&archive, &bytes).unwrap();
    assert!(files.verify(&failed).is_err());

    // Running 1.0.0: its newest good backup of each kind stays too.
    let pruned = files.prune(&rules(1, 0, &[])).unwrap();
    assert_eq!(
        listed(&files, BackupKind::FilesOnly),
        ids(&[&made[0].0, &made[2].0, &failed]),
        "{pruned:?}"
    );
    assert_eq!(
        listed(&files, BackupKind::DatabaseOnly),
        ids(&[&made[0].1, &made[2].1])
    );
    let good = files.catalog().get(&made[2].0.id).unwrap();
    assert!(good.restorable);
}

#[test]
fn a_create_in_progress_is_left_alone_by_prune() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let root = dir.path().join("backups");
    let files = FileBackup::builder(&tree.root, &root).build().unwrap();
    let started = AtomicBool::new(false);
    let release = AtomicBool::new(false);
    let sink = |_: &Progress| {
        started.store(true, Ordering::SeqCst);
        while !release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    std::thread::scope(|scope| {
        let creating = scope.spawn(|| files.create(&request(0, BackupPurpose::Manual), &sink));
        while !started.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let in_progress: Vec<_> = fs::read_dir(&root).unwrap().flatten().collect();
        assert_eq!(in_progress.len(), 1);
        assert!(in_progress[0].path().join(IN_PROGRESS_FILE).exists());

        let pruned = files.prune(&rules(1, 0, &[])).unwrap();
        release.store(true, Ordering::SeqCst);
        assert!(pruned.removed_incomplete.is_empty(), "{pruned:?}");
        let backup = creating.join().unwrap().unwrap();
        files.verify(&backup).unwrap();
        assert!(!root.join(&backup.id).join(IN_PROGRESS_FILE).exists());
    });
}

/// The child process of [`a_killed_create_is_removed_by_the_next_prune_at_once`]:
/// starts a backup and hangs in the middle of it until it is killed. Does
/// nothing unless started by that test.
#[test]
fn child_process_that_hangs_while_it_writes_a_backup() {
    if !child::is_child() {
        return;
    }
    let (app, root, marker) = (
        child::var("KILLED_CREATE_APP"),
        child::var("KILLED_CREATE_ROOT"),
        child::var("KILLED_CREATE_MARKER"),
    );
    let files = FileBackup::builder(&app, &root).build().unwrap();
    let sink = |_: &Progress| {
        let _ = fs::write(&marker, "writing");
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    let _ = files.create(&request(0, BackupPurpose::Manual), &sink);
}

#[test]
fn a_killed_create_is_removed_by_the_next_prune_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let root = dir.path().join("backups");
    let marker = dir.path().join("marker");
    let display = |path: &Path| path.display().to_string();
    let mut child = child::spawn(
        "child_process_that_hangs_while_it_writes_a_backup",
        &[
            ("KILLED_CREATE_APP", display(&tree.root)),
            ("KILLED_CREATE_ROOT", display(&root)),
            ("KILLED_CREATE_MARKER", display(&marker)),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let leftovers: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(leftovers.len(), 1);
    assert!(leftovers[0].join(IN_PROGRESS_FILE).exists());

    // Seconds old, and removed: its lock died with its writer.
    let files = FileBackup::builder(&tree.root, &root).build().unwrap();
    let pruned = files.prune(&rules(3, 0, &[])).unwrap();
    assert_eq!(pruned.removed_incomplete, leftovers);
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

fn age(path: &Path, by: Duration) {
    let when = SystemTime::now() - by;
    fs::File::open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
}

#[test]
fn a_leftover_without_lock_file_goes_after_the_grace_period_and_foreign_directories_stay() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let root = dir.path().join("backups");
    let files = FileBackup::builder(&tree.root, &root).build().unwrap();
    // Left by a create killed before it locked, or by an older version.
    let leftover = root.join("20260101T000000Z-1.0.0-files");
    fs::create_dir_all(&leftover).unwrap();
    fs::write(leftover.join("files.tar.gz"), "partial").unwrap();
    let foreign = root.join("lost+found");
    fs::create_dir(&foreign).unwrap();

    let pruned = files.prune(&rules(3, 0, &[])).unwrap();
    assert!(pruned.removed_incomplete.is_empty(), "fresh: {pruned:?}");
    assert!(leftover.exists());

    // Nine minutes without change: still within the grace period.
    age(&leftover.join("files.tar.gz"), Duration::from_secs(540));
    age(&leftover, Duration::from_secs(540));
    assert!(
        files
            .prune(&rules(3, 0, &[]))
            .unwrap()
            .removed_incomplete
            .is_empty()
    );

    age(&leftover.join("files.tar.gz"), Duration::from_secs(660));
    age(&leftover, Duration::from_secs(660));
    age(&foreign, Duration::from_secs(100 * 24 * 3600));
    let pruned = files.prune(&rules(3, 0, &[])).unwrap();
    assert_eq!(pruned.removed_incomplete, vec![leftover.clone()]);
    assert!(!leftover.exists());
    assert!(
        foreign.exists(),
        "a directory that is no backup was removed"
    );
}
