//! Free space: preflight refuses a backup directory too small for the next
//! backup, and a disk that fills up during a backup gives an error naming the
//! file and the OS error, and leaves nothing behind. Needs root (tmpfs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::fs;
use std::path::Path;

use support::AppTree;
use updater_backup::{BackupError, FileBackup};
use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::progress::NoProgress;
use updater_core::version::Version;
use updater_testkit::disk::Tmpfs;

fn random_file(path: &Path, size: usize, seed: u64) {
    let mut state = seed | 1;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    fs::write(path, data).unwrap();
}

fn request() -> BackupRequest {
    BackupRequest {
        version: Version::new(1, 0, 0),
        purpose: BackupPurpose::PreUpdate,
        update_id: None,
        description: None,
    }
}

#[test]
fn a_backup_directory_without_room_is_refused_by_preflight_and_a_full_disk_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mounted) = Tmpfs::mount(&dir.path().join("small-disk"), "4m") else {
        return;
    };
    let tree = AppTree::new(&dir.path().join("app"));
    // 10 MiB that does not compress, in 10,000 files: more batches than the
    // writer's queue holds, so the encoder is still sending when the disk fills.
    let media = tree.root.join("public/media");
    fs::create_dir_all(&media).unwrap();
    for n in 0..10_000 {
        random_file(&media.join(format!("{n:05}.bin")), 1024, n + 7);
    }
    let root = dir.path().join("small-disk/backups");
    let strategy = FileBackup::builder(&tree.root, &root).build().unwrap();

    let error = strategy.preflight().unwrap_err();
    let shown = error.to_string();
    assert!(
        matches!(&error, updater_core::Error::Precondition { check, reason }
            if check == "backup disk space"
                && reason.contains(&root.display().to_string())
                && reason.contains("bytes available")
                && reason.contains("bytes needed")),
        "{shown}"
    );

    // Past preflight, the disk fills up during the backup.
    let error = strategy
        .create_with_stats(&request(), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(&error, BackupError::Io { path, source, .. }
            if path.starts_with(&root)
                && path.ends_with("files.tar.gz")
                && source.raw_os_error() == Some(28)),
        "{error}"
    );
    let through_trait = strategy
        .create(&request(), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        through_trait.contains("No space left on device") && through_trait.contains("files.tar.gz"),
        "{through_trait}"
    );
    assert!(
        through_trait.contains(&root.display().to_string()),
        "{through_trait}"
    );
    assert_eq!(
        fs::read_dir(&root).unwrap().count(),
        0,
        "a failed backup left files behind"
    );

    // With room again, preflight passes and the backup is made.
    fs::remove_dir_all(&media).unwrap();
    strategy.preflight().unwrap();
    let backup = strategy.create(&request(), &NoProgress).unwrap();
    strategy.verify(&backup).unwrap();
}

#[test]
fn preflight_estimates_from_the_last_backup_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mounted) = Tmpfs::mount(&dir.path().join("small-disk"), "4m") else {
        return;
    };
    let tree = AppTree::new(&dir.path().join("app"));
    // 6 MiB of text that compresses to a few KiB: the tree alone would not
    // fit, the backups do.
    fs::write(
        tree.root.join("vendor/big.txt"),
        "function autoload() { return true; }\n".repeat(170_000),
    )
    .unwrap();
    let root = dir.path().join("small-disk/backups");
    let first = FileBackup::builder(&tree.root, &root).build().unwrap();
    let error = first.preflight().unwrap_err();
    assert!(
        matches!(&error, updater_core::Error::Precondition { reason, .. } if reason.contains("no earlier backup")),
        "{error}"
    );
    let backup = first.create(&request(), &NoProgress).unwrap();
    first.verify(&backup).unwrap();
    first.preflight().unwrap();
}
