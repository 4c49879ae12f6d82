//! The backup directory: one sub-directory per backup, named by its id, holding
//! its parts and a `backup.json` record written last.
//!
//! ```text
//! <root>/                                  0700
//!   20261127T171600Z-1.4.2-files/          0700
//!     files.tar.gz                         0600  standard gzip'd tar (one gzip member per entry)
//!     files.manifest.jsonl                 0600  path, type, size, mode, mtime, SHA-256, offsets
//!     backup.json                          0600  the catalog record, written last (atomically)
//!   20261127T171700Z-1.4.2-database/
//!     database.sqlite | database.pgdump | database.sql.gz
//!     backup.json
//! ```
//!
//! A backup is in the catalog exactly when its `backup.json` exists, and that
//! file is written (temp + fsync + rename) only after every part is complete
//! and synced, so a failed or killed create never leaves a half backup in the
//! catalog. A failed create removes its directory; a killed one leaves a
//! directory without `backup.json` that [`Catalog::remove_incomplete`] cleans.
//!
//! **Telling a killed create from a running one.** While a create runs, its
//! directory holds [`IN_PROGRESS_FILE`] (owner pid and host, 0600) on which
//! the creating process holds an exclusive `flock` until the record is
//! written; the file is removed at commit. The kernel drops the lock when the
//! process dies, however it dies, so a directory without a record whose lock
//! can be taken is a leftover, whatever its age. A directory without a
//! record and without a lock file (a create killed between `mkdir` and the
//! lock, or one made by an older version) is removed once nothing in it
//! changed for a grace period ([`INCOMPLETE_GRACE`], 10 minutes).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use updater_core::backup::{Backup, BackupKind, BackupPurpose, BackupRequest};

use crate::error::{BackupError, Result};

/// The name of the record file inside a backup directory.
pub const RECORD_FILE: &str = "backup.json";

/// The lock file inside a backup directory being written (see the module docs).
pub const IN_PROGRESS_FILE: &str = ".in-progress";

/// How long a directory without a record and without a lock file is left
/// alone before [`Catalog::remove_incomplete`] removes it.
pub const INCOMPLETE_GRACE: Duration = Duration::from_secs(600);

/// Whether a backup has been verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    /// Created, not yet verified.
    Unverified,
    /// The last verification read every byte and found it intact.
    Verified,
    /// The last verification found damage.
    Failed,
}

/// What one file of a backup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartRole {
    /// The `.tar.gz` of the application files.
    FilesArchive,
    /// The manifest of the files archive.
    FilesManifest,
    /// The database dump.
    Database,
}

/// One file of a backup, as recorded in `backup.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// What it is.
    pub role: PartRole,
    /// Its file name inside the backup directory.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 (hex), when computed at creation (manifests and dumps; the
    /// files archive is covered entry by entry by its manifest instead).
    pub sha256: Option<String>,
}

/// The catalog record of a backup (`backup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// The backup as the trait returns it (paths are absolute at write time).
    pub backup: Backup,
    /// Why it was taken.
    pub purpose: BackupPurpose,
    /// What was backed up (`files of /srv/app`), without secrets.
    pub source: String,
    /// After this instant retention may delete it.
    pub expires_at: Option<DateTime<Utc>>,
    /// Verification state.
    pub status: BackupStatus,
    /// When it was last verified successfully.
    pub verified_at: Option<DateTime<Utc>>,
    /// Its files.
    pub parts: Vec<PartRecord>,
}

impl BackupRecord {
    /// The backup id.
    pub fn id(&self) -> &str {
        &self.backup.id
    }

    /// The part with `role`, if any.
    pub fn part(&self, role: PartRole) -> Option<&PartRecord> {
        self.parts.iter().find(|p| p.role == role)
    }
}

/// One row of [`Catalog::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The stored record.
    pub record: BackupRecord,
    /// Verified, and every part is present with its recorded size.
    pub restorable: bool,
}

impl CatalogEntry {
    /// The backup id.
    pub fn id(&self) -> &str {
        &self.record.backup.id
    }
    /// The application version it was taken from.
    pub fn version(&self) -> &updater_core::version::Version {
        &self.record.backup.version
    }
    /// Full, database only, files only.
    pub fn kind(&self) -> BackupKind {
        self.record.backup.kind
    }
    /// Total size on disk.
    pub fn size(&self) -> u64 {
        self.record.backup.size
    }
    /// When it was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.record.backup.created_at
    }
    /// When retention may delete it.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.record.expires_at
    }
    /// The operator's notes.
    pub fn notes(&self) -> Option<&str> {
        self.record.backup.description.as_deref()
    }
    /// Verification state.
    pub fn status(&self) -> BackupStatus {
        self.record.status
    }
}

/// The list of backups in a backup directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    root: PathBuf,
}

impl Catalog {
    /// The catalog of the backups under `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Catalog { root: root.into() }
    }

    /// The backup directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every complete backup, oldest first. Directories without a record
    /// (creates in progress or killed) are not listed.
    pub fn list(&self) -> Result<Vec<CatalogEntry>> {
        let read = match fs::read_dir(&self.root) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(BackupError::io("list", &self.root, e)),
        };
        let mut entries = Vec::new();
        for item in read {
            let item = item.map_err(|e| BackupError::io("list", &self.root, e))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !item.path().join(RECORD_FILE).exists() {
                continue;
            }
            match self.get(name) {
                Ok(entry) => entries.push(entry),
                Err(e) => tracing::warn!(backup = name, error = %e, "unreadable backup record"),
            }
        }
        entries.sort_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
        Ok(entries)
    }

    /// The backup `id`.
    pub fn get(&self, id: &str) -> Result<CatalogEntry> {
        let record = self.read_record(id)?;
        let dir = self.dir_of(id)?;
        let parts_present = record
            .parts
            .iter()
            .all(|part| fs::metadata(dir.join(&part.file)).is_ok_and(|m| m.len() == part.size));
        let restorable = parts_present && record.status == BackupStatus::Verified;
        Ok(CatalogEntry { record, restorable })
    }

    /// Deletes the backup `id`; a backup that is already gone is not an error.
    pub fn delete(&self, id: &str) -> Result<()> {
        let dir = self.dir_of(id)?;
        // Remove the record first: from then on the backup is out of the catalog.
        match fs::remove_file(dir.join(RECORD_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io("remove", dir.join(RECORD_FILE), e)),
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackupError::io("remove directory", &dir, e)),
        }
    }

    /// Removes the directories of creates that will never complete: every
    /// backup directory without a record whose [`IN_PROGRESS_FILE`] lock is
    /// not held (its writer died), and those without a lock file in which
    /// nothing changed for `grace`. Directories being written are left alone,
    /// and so is anything whose name is not a backup id. Returns what it removed.
    pub fn remove_incomplete(&self, grace: Duration) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let read = match fs::read_dir(&self.root) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(BackupError::io("list", &self.root, e)),
        };
        for item in read {
            let item = item.map_err(|e| BackupError::io("list", &self.root, e))?;
            let path = item.path();
            let is_backup_dir = item.file_name().to_str().is_some_and(looks_like_backup_id)
                && fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
            if !is_backup_dir || path.join(RECORD_FILE).exists() {
                continue;
            }
            if abandoned(&path, grace)? {
                tracing::info!(dir = %path.display(), "removing the leftover of a backup that never completed");
                crate::files::remove_tree(&path)?;
                removed.push(path);
            }
        }
        Ok(removed)
    }

    /// Reads the record of `id`.
    pub fn read_record(&self, id: &str) -> Result<BackupRecord> {
        let path = self.dir_of(id)?.join(RECORD_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::NotFound {
                    id: id.to_string(),
                    root: self.root.clone(),
                });
            }
            Err(e) => return Err(BackupError::io("read", &path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| BackupError::Json {
            action: "read",
            path,
            source,
        })
    }

    /// Records the outcome of a verification in `id`'s record.
    pub fn set_status(&self, id: &str, status: BackupStatus) -> Result<()> {
        let mut record = self.read_record(id)?;
        record.status = status;
        if status == BackupStatus::Verified {
            record.verified_at = Some(Utc::now());
        }
        self.write_record(&record)
    }

    pub(crate) fn write_record(&self, record: &BackupRecord) -> Result<()> {
        let path = self.dir_of(record.id())?.join(RECORD_FILE);
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| BackupError::Json {
            action: "write",
            path: path.clone(),
            source,
        })?;
        updater_core::durable::write_atomic(&path, &bytes).map_err(|e| core_io(&path, e))
    }

    /// The directory of backup `id`, refusing ids that are not plain names.
    pub fn dir_of(&self, id: &str) -> Result<PathBuf> {
        let plain = !id.is_empty()
            && !id.starts_with('.')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'));
        if !plain {
            return Err(BackupError::invalid(
                format!("backup id {id:?}"),
                "ids are plain file names",
            ));
        }
        Ok(self.root.join(id))
    }
}

/// Whether `name` has the shape of the ids [`PendingBackup::begin`] makes
/// (`20261127T171600Z-...`).
fn looks_like_backup_id(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 17
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'T'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && bytes[15] == b'Z'
        && bytes[16] == b'-'
}

/// Whether the record-less backup directory `dir` belongs to a create that
/// is no longer running (see the module docs).
fn abandoned(dir: &Path, grace: Duration) -> Result<bool> {
    let lock_path = dir.join(IN_PROGRESS_FILE);
    match fs::File::open(&lock_path) {
        Ok(lock) => {
            match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                // The writer is gone. It may have committed between our look
                // at the record and the lock: look again, under the lock.
                Ok(()) => Ok(!dir.join(RECORD_FILE).exists()),
                Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
                Err(e) => Err(BackupError::io("lock", &lock_path, e.into())),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No lock: judge by the newest change in the directory.
            let mut newest = fs::symlink_metadata(dir)
                .and_then(|m| m.modified())
                .map_err(|e| BackupError::io("inspect", dir, e))?;
            if let Ok(read) = fs::read_dir(dir) {
                for item in read.flatten() {
                    if let Ok(modified) = item.metadata().and_then(|m| m.modified()) {
                        newest = newest.max(modified);
                    }
                }
            }
            Ok(newest.elapsed().is_ok_and(|age| age >= grace))
        }
        Err(e) => Err(BackupError::io("open", &lock_path, e)),
    }
}

fn core_io(path: &Path, error: updater_core::Error) -> BackupError {
    match error {
        updater_core::Error::Io {
            action,
            path,
            source,
        } => BackupError::Io {
            action,
            path,
            source,
        },
        other => BackupError::io("write", path, std::io::Error::other(other.to_string())),
    }
}

/// A backup being created: its directory exists (0700) but has no record
/// yet, and this process holds the lock on its [`IN_PROGRESS_FILE`].
/// Dropping it without [`commit`](Self::commit) removes the directory.
#[derive(Debug)]
pub(crate) struct PendingBackup {
    catalog: Catalog,
    pub(crate) id: String,
    pub(crate) dir: PathBuf,
    pub(crate) created_at: DateTime<Utc>,
    committed: bool,
    _lock: fs::File,
}

/// Creates and locks the lock file of a backup directory being written.
fn lock_in_progress(dir: &Path) -> Result<fs::File> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(IN_PROGRESS_FILE);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| BackupError::io("create", &path, e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| BackupError::io("lock", &path, e.into()))?;
    let host = rustix::system::uname();
    writeln!(
        file,
        "pid {} host {}",
        std::process::id(),
        host.nodename().to_string_lossy()
    )
    .map_err(|e| BackupError::io("write", &path, e))?;
    Ok(file)
}

/// Creates `path` and its parents with mode 0700.
pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| BackupError::io("create directory", path, e))
}

impl PendingBackup {
    /// Claims a fresh id under `catalog`'s root: `<UTC time>-<version>-<label>`,
    /// with `-2`, `-3`... when two backups start in the same second.
    pub(crate) fn begin(catalog: &Catalog, request: &BackupRequest, label: &str) -> Result<Self> {
        let root = catalog.root();
        create_private_dir(root)?;
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o700));
        let created_at = Utc::now();
        let base = format!(
            "{}-{}-{}",
            created_at.format("%Y%m%dT%H%M%SZ"),
            sanitize(&request.version.to_string()),
            label
        );
        for attempt in 1..1000u32 {
            let id = if attempt == 1 {
                base.clone()
            } else {
                format!("{base}-{attempt}")
            };
            let dir = root.join(&id);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let lock = match lock_in_progress(&dir) {
                        Ok(lock) => lock,
                        Err(e) => {
                            let _ = fs::remove_dir_all(&dir);
                            return Err(e);
                        }
                    };
                    return Ok(PendingBackup {
                        catalog: catalog.clone(),
                        id,
                        dir,
                        created_at,
                        committed: false,
                        _lock: lock,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(BackupError::io("create directory", &dir, e)),
            }
        }
        Err(BackupError::invalid(
            format!("backup id {base}"),
            "too many backups started in the same second",
        ))
    }

    /// Writes the record (after syncing the parts): the backup enters the catalog.
    pub(crate) fn commit(mut self, record: &BackupRecord, sync: bool) -> Result<()> {
        for part in &record.parts {
            let path = self.dir.join(&part.file);
            let file = fs::File::open(&path).map_err(|e| BackupError::io("open", &path, e))?;
            if sync {
                file.sync_all()
                    .map_err(|e| BackupError::io("fsync", &path, e))?;
            }
        }
        self.catalog.write_record(record)?;
        updater_core::durable::sync_dir(self.catalog.root())
            .map_err(|e| core_io(self.catalog.root(), e))?;
        self.committed = true;
        // Complete now; the lock file has done its job (the lock itself is
        // released when `self` drops).
        let lock_path = self.dir.join(IN_PROGRESS_FILE);
        if let Err(e) = fs::remove_file(&lock_path) {
            tracing::warn!(path = %lock_path.display(), error = %e, "cannot remove the lock file of a completed backup");
        }
        Ok(())
    }
}

impl Drop for PendingBackup {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove a failed backup");
            }
        }
    }
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The record of a backup whose parts were written into `pending`'s directory.
pub(crate) fn new_record(
    pending: &PendingBackup,
    request: &BackupRequest,
    kind: BackupKind,
    source: String,
    parts: Vec<PartRecord>,
    retain_for: Option<Duration>,
) -> BackupRecord {
    let path_of = |role: PartRole| {
        parts
            .iter()
            .find(|p| p.role == role)
            .map(|p| pending.dir.join(&p.file))
    };
    let backup = Backup {
        id: pending.id.clone(),
        kind,
        version: request.version.clone(),
        created_at: pending.created_at,
        files_path: path_of(PartRole::FilesArchive),
        database_path: path_of(PartRole::Database),
        size: parts.iter().map(|p| p.size).sum(),
        update_id: request.update_id,
        description: request.description.clone(),
    };
    let expires_at = retain_for
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| pending.created_at + d);
    BackupRecord {
        backup,
        purpose: request.purpose,
        source,
        expires_at,
        status: BackupStatus::Unverified,
        verified_at: None,
        parts,
    }
}

/// Records a verification outcome (best effort: a damaged or deleted record
/// cannot take a status, and the verification error is what matters).
pub(crate) fn record_verification(catalog: &Catalog, id: &str, outcome: &Result<()>) {
    let status = match outcome {
        Ok(()) => BackupStatus::Verified,
        Err(e) if e.is_integrity() => BackupStatus::Failed,
        Err(_) => return,
    };
    if let Err(e) = catalog.set_status(id, status) {
        tracing::warn!(backup = id, error = %e, "cannot record the verification outcome");
    }
}

/// The size on disk of every file of backup `id`.
pub(crate) fn size_on_disk(catalog: &Catalog, id: &str) -> Result<u64> {
    let record = catalog.read_record(id)?;
    let dir = catalog.dir_of(id)?;
    let mut total = fs::metadata(dir.join(RECORD_FILE)).map_or(0, |m| m.len());
    for part in &record.parts {
        let path = dir.join(&part.file);
        total += fs::metadata(&path)
            .map_err(|e| BackupError::io("inspect", &path, e))?
            .len();
    }
    Ok(total)
}

/// Checks that backups can be written under `root` (creating it, 0700).
pub(crate) fn check_writable(root: &Path) -> Result<()> {
    create_private_dir(root)?;
    let probe = tempfile::Builder::new()
        .prefix(".preflight-")
        .tempfile_in(root)
        .map_err(|e| BackupError::io("write a file in", root, e))?;
    drop(probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use updater_core::version::Version;

    fn request() -> BackupRequest {
        BackupRequest {
            version: Version::new(1, 2, 3),
            purpose: BackupPurpose::Manual,
            update_id: None,
            description: None,
        }
    }

    #[test]
    fn ids_are_unique_within_a_second_and_a_dropped_pending_backup_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(root.path().join("backups"));
        let first = PendingBackup::begin(&catalog, &request(), "files").unwrap();
        let second = PendingBackup::begin(&catalog, &request(), "files").unwrap();
        assert_ne!(first.id, second.id);
        let mode = fs::metadata(&first.dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let dir = first.dir.clone();
        drop(first);
        assert!(!dir.exists());
        assert!(catalog.list().unwrap().is_empty());
    }

    #[test]
    fn ids_with_path_separators_are_refused() {
        let catalog = Catalog::new("/tmp/x");
        for id in ["../etc", "a/b", "", ".hidden"] {
            assert!(catalog.dir_of(id).is_err(), "{id}");
        }
        assert!(catalog.delete("../../etc").is_err());
    }
}
