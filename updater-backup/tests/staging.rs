//! Staging a backup beside the application, and hard links: the staged tree
//! is what a restore leaves, hard links survive backup, `tar xzf`, incremental
//! copies, restore and staging, and a failed stage leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use support::{AppTree, SqliteData};
use updater_backup::database::SqliteDatabase;
use updater_backup::{BackupError, CompositeBackup, FileBackup};
use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::conformance::backup::ProtectedData;
use updater_core::progress::NoProgress;
use updater_core::version::Version;
use updater_testkit::tree::{describe, describe_with_links};

const EXCLUDED: [&str; 3] = ["storage/logs", "storage/app/public", ".updater"];

fn request() -> BackupRequest {
    BackupRequest {
        version: Version::new(1, 0, 0),
        purpose: BackupPurpose::Manual,
        update_id: None,
        description: None,
    }
}

/// An application tree with hard links: two names in one directory, one in
/// another, and a pair inside an excluded directory.
fn tree_with_hard_links(root: &Path) -> AppTree {
    let tree = AppTree::new(root);
    fs::hard_link(root.join("index.php"), root.join("public/index-copy.php")).unwrap();
    fs::hard_link(root.join("index.php"), root.join("vendor/index-alias.php")).unwrap();
    fs::hard_link(root.join("bin/run.sh"), root.join("bin/run")).unwrap();
    fs::hard_link(
        root.join("storage/logs/app.log"),
        root.join("storage/logs/app.log.1"),
    )
    .unwrap();
    tree
}

fn same_inode(a: &Path, b: &Path) -> bool {
    let (a, b) = (fs::metadata(a).unwrap(), fs::metadata(b).unwrap());
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[test]
fn a_staged_tree_equals_the_restored_one_with_modes_symlinks_and_hard_links() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_with_hard_links(&dir.path().join("app"));
    fs::set_permissions(&tree.root, fs::Permissions::from_mode(0o750)).unwrap();
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let backup = strategy.create(&request(), &NoProgress).unwrap();
    let original = describe_with_links(&tree.root, &EXCLUDED);

    let staged = dir.path().join("staged");
    let stats = strategy.stage_to(&backup, &staged, &NoProgress).unwrap();
    assert_eq!(stats.hard_links, 3, "{stats:?}");
    assert!(same_inode(
        &staged.join("index.php"),
        &staged.join("vendor/index-alias.php")
    ));
    assert!(same_inode(
        &staged.join("bin/run.sh"),
        &staged.join("bin/run")
    ));

    tree.mutate();
    fs::remove_file(tree.root.join("bin/run")).unwrap();
    fs::write(tree.root.join("bin/run"), "a separate file now").unwrap();
    strategy.restore(&backup, &NoProgress).unwrap();
    let restored = describe_with_links(&tree.root, &EXCLUDED);
    assert_eq!(restored, original);
    assert_eq!(describe_with_links(&staged, &[]), restored);
    // Excluded paths are not in the backup: the live ones were left alone.
    assert!(same_inode(
        &tree.root.join("storage/logs/app.log"),
        &tree.root.join("storage/logs/app.log.1")
    ));
    assert!(!staged.join("storage/logs").exists());
}

#[test]
fn the_strategy_trait_stages_files_and_refuses_an_existing_target() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let backup = strategy.create(&request(), &NoProgress).unwrap();
    let target = dir.path().join("staging");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep.txt"), "mine").unwrap();

    let error = strategy
        .stage_to(&backup, &target, &NoProgress)
        .unwrap_err();
    assert!(
        matches!(&error, BackupError::TargetExists { path } if path == &target),
        "{error}"
    );
    let error = BackupStrategy::stage_files(&strategy, &backup, &target, &NoProgress).unwrap_err();
    assert!(
        matches!(&error, updater_core::Error::Precondition { reason, .. } if reason.contains("already exists")),
        "{error}"
    );
    assert_eq!(fs::read_to_string(target.join("keep.txt")).unwrap(), "mine");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 1);

    fs::remove_dir_all(&target).unwrap();
    BackupStrategy::stage_files(&strategy, &backup, &target, &NoProgress).unwrap();
    assert_eq!(describe(&target, &[]), describe(&tree.root, &EXCLUDED));
}

#[test]
fn staging_a_damaged_backup_fails_and_leaves_no_partial_tree() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let backup = strategy.create(&request(), &NoProgress).unwrap();
    let before = describe(&tree.root, &[]);
    // Damage the data of the last file entry, so that earlier entries are
    // written before the damage is found.
    let manifest = strategy.manifest(&backup).unwrap();
    let last_file = manifest
        .entries
        .iter()
        .rev()
        .find(|e| e.kind == updater_backup::files::EntryType::File && e.size > 0)
        .unwrap();
    let archive = backup.files_path.clone().unwrap();
    let mut bytes = fs::read(&archive).unwrap();
    let at = (last_file.offset + last_file.length / 2) as usize;
    bytes[at] ^= 0x20;
    fs::write(&archive, &bytes).unwrap();

    let target = dir.path().join("staging");
    let error = strategy
        .stage_to(&backup, &target, &NoProgress)
        .unwrap_err();
    assert!(
        matches!(&error, BackupError::Integrity { subject, .. } if subject.contains(&last_file.path)),
        "{error}"
    );
    assert!(!target.exists(), "a partial staged tree was left behind");
    assert_eq!(
        describe(&tree.root, &[]),
        before,
        "staging touched the application"
    );
}

#[test]
fn tar_xzf_extracts_hard_links_as_links() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_with_hard_links(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let backup = strategy.create(&request(), &NoProgress).unwrap();
    strategy.verify(&backup).unwrap();
    let by_tar = dir.path().join("by-tar");
    fs::create_dir(&by_tar).unwrap();
    let output = Command::new("tar")
        .arg("xzf")
        .arg(backup.files_path.as_ref().unwrap())
        .arg("-C")
        .arg(&by_tar)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(same_inode(
        &by_tar.join("index.php"),
        &by_tar.join("public/index-copy.php")
    ));
    assert!(same_inode(
        &by_tar.join("index.php"),
        &by_tar.join("vendor/index-alias.php")
    ));
    assert!(same_inode(
        &by_tar.join("bin/run.sh"),
        &by_tar.join("bin/run")
    ));
    assert_eq!(
        fs::read(by_tar.join("vendor/index-alias.php")).unwrap(),
        fs::read(tree.root.join("index.php")).unwrap()
    );
    // GNU tar lists them as links to the first name.
    let listing = Command::new("tar")
        .arg("tvzf")
        .arg(backup.files_path.as_ref().unwrap())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("bin/run.sh link to bin/run\n"),
        "{listing}"
    );
}

#[test]
fn an_incremental_backup_copies_unchanged_hard_links_and_restores_them_as_links() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_with_hard_links(&dir.path().join("app"));
    let strategy = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let (first, stats) = strategy.create_with_stats(&request(), &NoProgress).unwrap();
    assert_eq!(stats.hard_links, 3, "{stats:?}");
    strategy.verify(&first).unwrap();
    let (second, stats) = strategy.create_with_stats(&request(), &NoProgress).unwrap();
    assert_eq!(
        (stats.encoded, stats.copied),
        (0, stats.entries),
        "{stats:?}"
    );
    strategy.verify(&second).unwrap();

    let expected = describe_with_links(&tree.root, &EXCLUDED);
    // Break the links in the live tree; the restore relinks them.
    for name in ["public/index-copy.php", "vendor/index-alias.php", "bin/run"] {
        let path = tree.root.join(name);
        let content = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, content).unwrap();
    }
    strategy.delete(&first).unwrap();
    let stats = strategy.restore_with_stats(&second, &NoProgress).unwrap();
    assert_eq!(stats.hard_links, 3);
    assert_eq!(describe_with_links(&tree.root, &EXCLUDED), expected);
}

#[test]
fn a_composite_backup_stages_its_files_and_restores_only_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let tree = AppTree::new(&dir.path().join("app"));
    let database = SqliteData::new(&dir.path().join("app.db"));
    let files = FileBackup::builder(&tree.root, dir.path().join("backups"))
        .build()
        .unwrap();
    let composite = CompositeBackup::new(files.clone(), SqliteDatabase::new(&database.path));
    let backup = composite.create(&request(), &NoProgress).unwrap();
    let files_then = describe(&tree.root, &EXCLUDED);
    let database_then = database.snapshot();

    tree.mutate();
    database.mutate();
    let files_now = describe(&tree.root, &[]);

    let staged = dir.path().join("staged");
    composite
        .stage_files(&backup, &staged, &NoProgress)
        .unwrap();
    assert_eq!(describe(&staged, &[]), files_then);

    composite.restore_database(&backup, &NoProgress).unwrap();
    assert_eq!(database.snapshot(), database_then);
    assert_eq!(
        describe(&tree.root, &[]),
        files_now,
        "restore_database touched the files"
    );

    // A files-only strategy has no database to restore.
    let error = files.restore_database(&backup, &NoProgress).unwrap_err();
    assert!(
        matches!(&error, updater_core::Error::Precondition { check, .. } if check == "restore database"),
        "{error}"
    );
}

/// One path of a generated tree.
#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>, u32),
    Dir(u32),
    Symlink(String),
    /// A hard link to the n-th file created so far (modulo their count).
    HardLink(usize),
}

fn arb_nodes() -> impl Strategy<Value = Vec<(String, Node)>> {
    let node = prop_oneof![
        4 => (
            proptest::collection::vec(any::<u8>(), 0..3000),
            prop_oneof![Just(0o644u32), Just(0o600), Just(0o755), Just(0o400), Just(0o4755)]
        )
            .prop_map(|(data, mode)| Node::File(data, mode)),
        1 => prop_oneof![Just(0o755u32), Just(0o700), Just(0o555), Just(0o2775)].prop_map(Node::Dir),
        1 => "[a-z./]{1,12}".prop_map(Node::Symlink),
        2 => (0usize..8).prop_map(Node::HardLink),
    ];
    proptest::collection::vec(("[a-c]{1,2}(/[a-c]{1,2}){0,2}", node), 1..24)
}

/// Builds the generated tree under `root` (paths that collide are skipped);
/// directory modes are applied last so read-only ones can still be filled.
fn build(root: &Path, nodes: &[(String, Node)]) {
    fs::create_dir(root).unwrap();
    let mut files = Vec::new();
    let mut dir_modes = Vec::new();
    for (path, node) in nodes {
        let full = root.join(path);
        let parent = full.parent().unwrap();
        if fs::create_dir_all(parent).is_err() || fs::symlink_metadata(&full).is_ok() {
            continue;
        }
        match node {
            Node::File(data, mode) => {
                fs::write(&full, data).unwrap();
                fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).unwrap();
                files.push(full);
            }
            Node::Dir(mode) => {
                fs::create_dir(&full).unwrap();
                dir_modes.push((full, *mode));
            }
            Node::Symlink(target) => std::os::unix::fs::symlink(target, &full).unwrap(),
            Node::HardLink(n) if !files.is_empty() => {
                fs::hard_link(&files[n % files.len()], &full).unwrap();
            }
            Node::HardLink(_) => {}
        }
    }
    for (dir, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn staging_and_restoring_any_tree_give_the_same_tree(nodes in arb_nodes()) {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        build(&app, &nodes);
        let strategy = FileBackup::builder(&app, dir.path().join("backups"))
            .without_default_excludes()
            .build()
            .unwrap();
        let backup = strategy.create(&request(), &NoProgress).unwrap();
        strategy.verify(&backup).unwrap();
        let original = describe_with_links(&app, &[]);

        let staged = dir.path().join("staged");
        strategy.stage_to(&backup, &staged, &NoProgress).unwrap();
        let fresh = dir.path().join("fresh");
        strategy.restore_to(&backup, &fresh, &NoProgress).unwrap();
        // In place, over a changed tree.
        fs::set_permissions(&app, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(app.join("stray"), "not in the backup").unwrap();
        strategy.restore(&backup, &NoProgress).unwrap();

        prop_assert_eq!(describe_with_links(&app, &[]), original.clone());
        prop_assert_eq!(describe_with_links(&staged, &[]), original);
        let body = |text: String| text.split_once('\n').map(|(_, rest)| rest.to_string()).unwrap();
        prop_assert_eq!(body(describe_with_links(&fresh, &[])), body(describe_with_links(&staged, &[])));
    }
}
