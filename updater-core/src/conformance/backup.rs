//! Conformance suite for [`BackupStrategy`] implementations.
//!
//! Every implementation's tests call [`run`] with the strategy and a
//! [`ProtectedData`] describing the data it protects (a directory, a SQLite
//! file, a PostgreSQL database...). The suite checks, in order:
//!
//! 1. `preflight` passes; `describe` and ids hold no secret;
//! 2. `create` returns a backup of the strategy's kind, with a safe id, a
//!    size, owner-only files (0600) and directories (0700), and reports progress;
//! 3. `verify` passes on a fresh backup;
//! 4. restore-equals-original: after the data is changed, `restore` brings
//!    back exactly the snapshot taken at backup time, and restoring twice is
//!    harmless (idempotent);
//! 5. backups are independent: a second backup of changed data restores the
//!    changed state, and the first one still restores the original;
//! 6. corrupt-backup-detected: a flipped byte in any file of the backup makes
//!    `verify` fail with [`Error::Integrity`] and
//!    `restore` fail; undoing the flip makes it verify again;
//! 7. `delete` is idempotent, and a deleted backup no longer verifies.
//!
//! Retention is specific to each crate's catalog and tested there.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;

use crate::backup::{Backup, BackupPurpose, BackupRequest, BackupStrategy};
use crate::error::Error;
use crate::progress::{Progress, ProgressSink};
use crate::version::Version;

/// The data a strategy protects, as the suite sees it.
pub trait ProtectedData {
    /// A canonical description of the current content: equal strings mean
    /// equal data (e.g. every path with its type, mode, mtime and content
    /// hash; or every table's schema and rows in a fixed order).
    fn snapshot(&self) -> String;

    /// Changes the data so that [`snapshot`](Self::snapshot) differs: modify,
    /// add and remove something. Called several times; each call must change it again.
    fn mutate(&self);
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// Strings that must never appear in descriptions, ids, paths or errors
    /// (the passwords the strategy was configured with).
    pub secrets: &'a [&'a str],
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Progress>>,
}

impl ProgressSink for Recorder {
    fn report(&self, progress: &Progress) {
        if let Ok(mut events) = self.events.lock() {
            events.push(progress.clone());
        }
    }
}

fn request(note: &str) -> BackupRequest {
    BackupRequest {
        version: Version::new(1, 4, 2),
        purpose: BackupPurpose::Manual,
        update_id: Some(42),
        description: Some(note.to_string()),
    }
}

/// The files of a backup: its paths, and everything below them when they are directories.
fn files_of(backup: &Backup) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = backup
        .files_path
        .iter()
        .chain(backup.database_path.iter())
        .cloned()
        .collect();
    while let Some(path) = stack.pop() {
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                if let Ok(read) = fs::read_dir(&path) {
                    stack.extend(read.flatten().map(|e| e.path()));
                }
            }
            Ok(meta) if meta.is_file() => out.push(path),
            _ => {}
        }
    }
    out.sort();
    out
}

fn flip_byte(path: &Path) -> (u64, u8) {
    let mut bytes =
        fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(!bytes.is_empty(), "backup file {} is empty", path.display());
    let at = bytes.len() / 2;
    let original = bytes[at];
    bytes[at] ^= 0x5a;
    fs::write(path, &bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    (at as u64, original)
}

fn unflip(path: &Path, at: u64, original: u8) {
    let mut bytes =
        fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    bytes[at as usize] = original;
    fs::write(path, &bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn check_no_secret(describe: &str, what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !text.contains(secret),
            "{describe}: {what} contains a secret: {text}"
        );
    }
}

/// Runs every check against `strategy`, which protects `data`.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(strategy: &dyn BackupStrategy, data: &dyn ProtectedData, options: &Options<'_>) {
    let describe = strategy.describe();
    let secrets = options.secrets;
    check_no_secret(&describe, "describe()", &describe, secrets);
    strategy
        .preflight()
        .unwrap_or_else(|e| panic!("{describe}: preflight must pass: {e}"));

    // 2. create
    let original = data.snapshot();
    let recorder = Recorder::default();
    let first = strategy
        .create(&request("first"), &recorder)
        .unwrap_or_else(|e| panic!("{describe}: create must succeed: {e}"));
    assert_eq!(
        first.kind,
        strategy.kind(),
        "{describe}: backup kind must be the strategy's kind"
    );
    assert!(
        !first.id.is_empty()
            && first
                .id
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\'),
        "{describe}: id {:?} must be a plain file name",
        first.id
    );
    check_no_secret(&describe, "backup id", &first.id, secrets);
    check_no_secret(&describe, "backup", &format!("{first:?}"), secrets);
    assert_eq!(
        first.version,
        Version::new(1, 4, 2),
        "{describe}: backup must carry the request's version"
    );
    assert_eq!(
        first.update_id,
        Some(42),
        "{describe}: backup must carry the request's update id"
    );
    assert!(
        !recorder.events.lock().map(|e| e.is_empty()).unwrap_or(true),
        "{describe}: create must report progress"
    );
    let size = strategy
        .size(&first)
        .unwrap_or_else(|e| panic!("{describe}: size must succeed: {e}"));
    assert!(size > 0, "{describe}: a backup has a size");
    let files = files_of(&first);
    assert!(
        !files.is_empty(),
        "{describe}: a backup names the files it wrote (files_path/database_path)"
    );
    for file in &files {
        let mode = fs::metadata(file)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(
            mode & 0o077,
            0,
            "{describe}: {} must be readable by the owner only (mode {mode:o})",
            file.display()
        );
        if let Some(parent) = file.parent() {
            let mode = fs::metadata(parent)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(
                mode & 0o077,
                0,
                "{describe}: directory {} must be private (mode {mode:o})",
                parent.display()
            );
        }
    }
    assert_eq!(
        data.snapshot(),
        original,
        "{describe}: create must not change the data"
    );

    // 3. verify
    strategy
        .verify(&first)
        .unwrap_or_else(|e| panic!("{describe}: verify of a fresh backup must pass: {e}"));

    // 4. restore equals original, idempotently
    data.mutate();
    let changed = data.snapshot();
    assert_ne!(
        changed, original,
        "ProtectedData::mutate must change the snapshot"
    );
    for round in 0..2 {
        strategy
            .restore(&first, &crate::progress::NoProgress)
            .unwrap_or_else(|e| panic!("{describe}: restore (round {round}) must succeed: {e}"));
        assert_eq!(
            data.snapshot(),
            original,
            "{describe}: restore (round {round}) must bring back the original data"
        );
    }

    // 5. independent backups
    data.mutate();
    let second_state = data.snapshot();
    let second = strategy
        .create(&request("second"), &crate::progress::NoProgress)
        .unwrap_or_else(|e| panic!("{describe}: second create must succeed: {e}"));
    assert_ne!(
        second.id, first.id,
        "{describe}: two backups must have different ids"
    );
    strategy
        .verify(&second)
        .unwrap_or_else(|e| panic!("{describe}: verify of the second backup must pass: {e}"));
    strategy
        .restore(&first, &crate::progress::NoProgress)
        .unwrap_or_else(|e| panic!("{describe}: restore of the first backup must succeed: {e}"));
    assert_eq!(
        data.snapshot(),
        original,
        "{describe}: the first backup must still restore the original"
    );
    strategy
        .restore(&second, &crate::progress::NoProgress)
        .unwrap_or_else(|e| panic!("{describe}: restore of the second backup must succeed: {e}"));
    assert_eq!(
        data.snapshot(),
        second_state,
        "{describe}: the second backup must restore the changed data"
    );

    // 6. corruption is detected, in every file of the backup
    for file in files_of(&first) {
        let (at, original_byte) = flip_byte(&file);
        match strategy.verify(&first) {
            Err(Error::Integrity { subject, reason }) => {
                check_no_secret(
                    &describe,
                    "integrity error",
                    &format!("{subject} {reason}"),
                    secrets,
                );
            }
            Err(other) => panic!(
                "{describe}: damage in {} must be an integrity error, got: {other}",
                file.display()
            ),
            Ok(()) => panic!(
                "{describe}: verify missed a flipped byte at {at} of {}",
                file.display()
            ),
        }
        data.mutate();
        assert!(
            strategy
                .restore(&first, &crate::progress::NoProgress)
                .is_err(),
            "{describe}: restore of a damaged backup must fail (byte {at} of {})",
            file.display()
        );
        unflip(&file, at, original_byte);
        strategy.verify(&first).unwrap_or_else(|e| {
            panic!("{describe}: verify must pass again once the damage is undone: {e}")
        });
    }
    strategy
        .restore(&first, &crate::progress::NoProgress)
        .unwrap_or_else(|e| panic!("{describe}: restore after repair must succeed: {e}"));
    assert_eq!(
        data.snapshot(),
        original,
        "{describe}: restore after repair must bring back the original"
    );

    // 7. delete
    for round in 0..2 {
        strategy
            .delete(&first)
            .unwrap_or_else(|e| panic!("{describe}: delete (round {round}) must succeed: {e}"));
    }
    assert!(
        strategy.verify(&first).is_err(),
        "{describe}: a deleted backup must not verify"
    );
    let left = files_of(&first);
    assert!(left.is_empty(), "{describe}: delete left {left:?} behind");
    strategy
        .delete(&second)
        .unwrap_or_else(|e| panic!("{describe}: delete of the second backup must succeed: {e}"));
    if let Err(e) = strategy.restore(&first, &crate::progress::NoProgress) {
        check_no_secret(&describe, "error", &e.to_string(), secrets);
    } else {
        panic!("{describe}: restore of a deleted backup must fail");
    }
}
