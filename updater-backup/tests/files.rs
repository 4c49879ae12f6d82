//! File backups: tar compatibility, incremental copying, excludes, catalog,
//! damage detection and failure atomicity.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use proptest::prelude::*;
use support::{AppTree, SqliteData};
use updater_backup::database::SqliteDatabase;
use updater_backup::{BackupStatus, CompositeBackup, FileBackup, RetentionPolicy};
use updater_core::backup::{BackupKind, BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::conformance::backup::ProtectedData;
use updater_core::progress::{NoProgress, Progress};
use updater_core::version::Version;
use updater_testkit::tree::describe;

fn request(version: Version) -> BackupRequest {
    BackupRequest {
        version,
        purpose: BackupPurpose::PreUpdate,
        update_id: None,
        description: Some("test notes".into()),
    }
}

const EXCLUDED: [&str; 3] = ["storage/logs", "storage/app/public", ".updater"];

#[test]
fn tar_xzf_reads_the_archive_and_gets_the_same_tree_as_restore() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let backup = strategy
        .create(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    let by_tar = dir.path().join("by-tar");
    fs::create_dir(&by_tar).unwrap();
    let status = Command::new("tar")
        .arg("xzf")
        .arg(backup.files_path.as_ref().unwrap())
        .arg("-C")
        .arg(&by_tar)
        .status()
        .unwrap();
    assert!(status.success());
    let ours = dir.path().join("ours");
    strategy.restore_to(&backup, &ours, &NoProgress).unwrap();
    // tar keeps whole seconds only; compare everything but sub-second times.
    let strip = |text: String| -> String {
        text.lines()
            .map(|l| l.rsplit_once('.').map_or(l, |(head, _)| head).to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(describe(&by_tar, &[])), strip(describe(&ours, &[])));
    assert_eq!(describe(&ours, &[]), describe(&tree.root, &EXCLUDED));
    assert!(
        !by_tar.join("storage/logs").exists(),
        "excluded paths must not be archived"
    );
    assert!(
        by_tar
            .join(format!("deep/{}/long-name.txt", "x".repeat(120)))
            .exists()
    );
}

#[test]
fn a_second_backup_copies_unchanged_entries_and_reads_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let (first, stats) = strategy
        .create_with_stats(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    assert_eq!((stats.copied, stats.base.clone()), (0, None));
    strategy.verify(&first).unwrap();

    let (second, stats) = strategy
        .create_with_stats(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    assert_eq!(stats.encoded, 0, "{stats:?}");
    assert_eq!(stats.copied, stats.entries);
    assert_eq!(stats.bytes_read, 0);
    assert_eq!(stats.base.as_deref(), Some(first.id.as_str()));
    strategy.verify(&second).unwrap();

    fs::write(
        tree.root.join("vendor/pkg/src/B.php"),
        "class B { changed }\n",
    )
    .unwrap();
    let (third, stats) = strategy
        .create_with_stats(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    assert_eq!(stats.encoded, 1, "{stats:?}");
    assert_eq!(stats.bytes_read, 20);
    strategy.verify(&third).unwrap();

    // Each backup stands alone: delete the others and restore the third.
    strategy.delete(&first).unwrap();
    strategy.delete(&second).unwrap();
    let expected = describe(&tree.root, &EXCLUDED);
    tree.mutate();
    strategy.restore(&third, &NoProgress).unwrap();
    assert_eq!(describe(&tree.root, &EXCLUDED), expected);
}

#[test]
fn an_unverified_backup_is_never_used_as_a_base() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    strategy
        .create(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    let (_, stats) = strategy
        .create_with_stats(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    assert_eq!((stats.copied, stats.base), (0, None));
}

#[test]
fn restore_leaves_excluded_paths_alone_and_removes_what_the_backup_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    fs::create_dir_all(tree.root.join("node_modules/x")).unwrap();
    fs::write(tree.root.join("node_modules/x/index.js"), "1").unwrap();
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .exclude_node_modules()
        .exclude("*.cache")
        .build()
        .unwrap();
    fs::write(tree.root.join("top.cache"), "c").unwrap();
    let backup = strategy
        .create(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    let paths: Vec<String> = strategy
        .manifest(&backup)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(!paths.iter().any(|p| p.starts_with("node_modules")
        || p.starts_with("storage/logs")
        || p == "top.cache"));

    fs::write(tree.root.join("storage/logs/app.log"), "new log").unwrap();
    fs::write(tree.root.join("node_modules/x/index.js"), "2").unwrap();
    fs::write(tree.root.join("stray.txt"), "not in the backup").unwrap();
    fs::create_dir_all(tree.root.join("stray-dir/a")).unwrap();
    strategy.restore(&backup, &NoProgress).unwrap();
    assert_eq!(
        fs::read_to_string(tree.root.join("storage/logs/app.log")).unwrap(),
        "new log"
    );
    assert_eq!(
        fs::read_to_string(tree.root.join("node_modules/x/index.js")).unwrap(),
        "2"
    );
    assert!(tree.root.join("top.cache").exists());
    assert!(!tree.root.join("stray.txt").exists());
    assert!(!tree.root.join("stray-dir").exists());
}

#[test]
fn a_damaged_manifest_or_truncated_archive_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let backup = strategy
        .create(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    let manifest = backup
        .files_path
        .as_ref()
        .unwrap()
        .with_file_name("files.manifest.jsonl");
    let original = fs::read(&manifest).unwrap();
    let mut damaged = original.clone();
    let at = damaged.len() / 3;
    damaged[at] ^= 1;
    fs::write(&manifest, &damaged).unwrap();
    assert!(matches!(
        strategy.verify(&backup),
        Err(updater_core::Error::Integrity { .. })
    ));
    fs::write(&manifest, &original).unwrap();
    strategy.verify(&backup).unwrap();

    let archive = backup.files_path.clone().unwrap();
    let bytes = fs::read(&archive).unwrap();
    fs::write(&archive, &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(
        strategy.verify(&backup),
        Err(updater_core::Error::Integrity { .. })
    ));
    let listed = strategy.catalog().get(&backup.id).unwrap();
    assert_eq!(listed.status(), BackupStatus::Failed);
    assert!(!listed.restorable);
}

#[test]
fn large_files_are_split_into_members_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    fs::create_dir(&app).unwrap();
    let mut data = Vec::with_capacity(9 << 20);
    let mut state = 7u64;
    while data.len() < (9 << 20) + 123 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.extend_from_slice(&b"text tail ".repeat(100_000));
    fs::write(app.join("big.bin"), &data).unwrap();
    let strategy = FileBackup::builder(&app, dir.path().join("backups"))
        .build()
        .unwrap();
    let backup = strategy
        .create(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    strategy.verify(&backup).unwrap();
    fs::write(app.join("big.bin"), "x").unwrap();
    strategy.restore(&backup, &NoProgress).unwrap();
    assert!(fs::read(app.join("big.bin")).unwrap() == data);
}

#[test]
fn the_catalog_lists_backups_with_their_attributes_and_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let root = dir.path().join("backups");
    let strategy = FileBackup::builder(&tree.root, &root)
        .with_retention(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let events = Mutex::new(Vec::<Progress>::new());
    let observer = |e: &Progress| events.lock().unwrap().push(e.clone());
    let backup = strategy
        .create(&request(Version::new(2, 1, 0)), &observer)
        .unwrap();
    let last = events.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (last.percent, last.bytes_total),
        (100, Some(last.bytes_done))
    );
    let regular_files = describe(&tree.root, &EXCLUDED)
        .lines()
        .filter(|l| l.contains(" file "))
        .count() as u64;
    assert_eq!(last.files_done, regular_files, "{last:?}");

    let listed = strategy.catalog().list().unwrap();
    assert_eq!(listed.len(), 1);
    let entry = &listed[0];
    assert_eq!(entry.id(), backup.id);
    assert_eq!(entry.version(), &Version::new(2, 1, 0));
    assert_eq!(entry.kind(), BackupKind::FilesOnly);
    assert_eq!(entry.notes(), Some("test notes"));
    assert_eq!(
        entry.expires_at(),
        Some(entry.created_at() + chrono::Duration::hours(1))
    );
    assert!(entry.size() > 0 && !entry.restorable);
    strategy.verify(&backup).unwrap();
    assert!(strategy.catalog().get(&backup.id).unwrap().restorable);

    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    let backup_dir = root.join(&backup.id);
    assert_eq!(mode(&backup_dir), 0o700);
    for file in fs::read_dir(&backup_dir).unwrap() {
        assert_eq!(mode(&file.unwrap().path()), 0o600);
    }
}

#[test]
fn a_failed_create_leaves_nothing_in_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let root = dir.path().join("backups");
    // A composite whose database part fails after the files part succeeded.
    let files = FileBackup::builder(&tree.root, &root).build().unwrap();
    let composite = CompositeBackup::new(files, SqliteDatabase::new(dir.path().join("missing.db")));
    assert!(
        composite
            .create(&request(Version::new(1, 0, 0)), &NoProgress)
            .is_err()
    );
    assert!(composite.catalog().list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(&root).unwrap().count(),
        0,
        "no half backup directory"
    );

    // A files backup whose tree has an unreadable file (as non-root) or a missing source.
    let missing = FileBackup::builder(dir.path().join("no-such-app"), &root)
        .build()
        .unwrap();
    assert!(missing.preflight().is_err());
    assert!(
        missing
            .create(&request(Version::new(1, 0, 0)), &NoProgress)
            .is_err()
    );
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn retention_applies_to_a_real_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for patch in 0..5 {
        let mut req = request(Version::new(1, 0, patch));
        req.update_id = Some(patch as i64);
        let backup = strategy.create(&req, &NoProgress).unwrap();
        if patch != 3 {
            strategy.verify(&backup).unwrap();
        }
        ids.push(backup.id);
    }
    let pruned = RetentionPolicy::new()
        .keep_last(2)
        .protect_update(0)
        .apply(strategy.catalog(), chrono::Utc::now())
        .unwrap();
    let removed: Vec<&str> = pruned.deleted.iter().map(String::as_str).collect();
    assert_eq!(removed, vec![ids[1].as_str()]);
    let left: Vec<String> = strategy
        .catalog()
        .list()
        .unwrap()
        .iter()
        .map(|e| e.id().to_string())
        .collect();
    assert_eq!(
        left,
        vec![
            ids[0].clone(),
            ids[2].clone(),
            ids[3].clone(),
            ids[4].clone()
        ]
    );
}

#[test]
fn composite_backups_have_one_id_and_one_catalog_entry() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let database = SqliteData::new(&dir.path().join("app.db"));
    let files = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let composite = CompositeBackup::new(files, SqliteDatabase::new(&database.path));
    let backup = composite
        .create(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    assert_eq!(backup.kind, BackupKind::Full);
    assert_eq!(
        backup.files_path.as_ref().unwrap().parent(),
        backup.database_path.as_ref().unwrap().parent()
    );
    let listed = composite.catalog().list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind(), BackupKind::Full);
}

fn arb_tree() -> impl Strategy<Value = Vec<(String, Vec<u8>, u32)>> {
    proptest::collection::vec(
        (
            "[a-z]{1,6}(/[a-zA-Z0-9 ._-]{1,12}){0,3}",
            proptest::collection::vec(any::<u8>(), 0..2000),
            prop_oneof![Just(0o644u32), Just(0o600), Just(0o755), Just(0o400)],
        ),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn any_tree_round_trips_through_backup_and_restore(files in arb_tree()) {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        fs::create_dir(&app).unwrap();
        for (path, content, mode) in &files {
            let full = app.join(path);
            if fs::create_dir_all(full.parent().unwrap()).is_err() || full.is_dir() {
                continue;
            }
            if fs::write(&full, content).is_ok() {
                fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).unwrap();
            }
        }
        let strategy = FileBackup::builder(&app, dir.path().join("backups")).without_default_excludes().build().unwrap();
        let backup = strategy.create(&request(Version::new(1, 0, 0)), &NoProgress).unwrap();
        strategy.verify(&backup).unwrap();
        let restored = dir.path().join("restored");
        strategy.restore_to(&backup, &restored, &NoProgress).unwrap();
        prop_assert_eq!(describe(&restored, &[]), describe(&app, &[]));
    }
}

#[test]
fn a_backup_directory_inside_the_tree_is_never_backed_up_nor_touched_by_restore() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, tree.root.join("backups [here]"))
        .build()
        .unwrap();
    let first = strategy
        .create(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    let second = strategy
        .create(&request(Version::new(1, 0, 0)), &NoProgress)
        .unwrap();
    let paths: Vec<String> = strategy
        .manifest(&second)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(!paths.iter().any(|p| p.starts_with("backups")), "{paths:?}");
    strategy.restore(&first, &NoProgress).unwrap();
    strategy.verify(&second).unwrap();
    assert!(FileBackup::builder(&tree.root, &tree.root).build().is_err());
}
