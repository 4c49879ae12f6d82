//! The [`BackupStrategy`] trait: create, verify, restore and delete backups.
//!
//! The pipeline uses two optional strategies: a *files* backup taken before
//! maintenance mode (for disaster recovery; the swap itself rolls files back
//! by rename) and a *database snapshot* taken inside the maintenance window,
//! while writes are stopped, and restored if the update rolls back.
//! Implementations (files as tar.gz, SQLite, PostgreSQL, MySQL, composite)
//! live in `updater-backup`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::progress::ProgressSink;
use crate::version::Version;

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// Files and database together.
    Full,
    /// Only the database.
    DatabaseOnly,
    /// Only the application files.
    FilesOnly,
}

impl BackupKind {
    /// The name stored in history: `full`, `database_only`, `files_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::DatabaseOnly => "database_only",
            BackupKind::FilesOnly => "files_only",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> crate::error::Result<Self> {
        match text {
            "full" => Ok(BackupKind::Full),
            "database_only" => Ok(BackupKind::DatabaseOnly),
            "files_only" => Ok(BackupKind::FilesOnly),
            other => Err(crate::error::Error::invalid(
                format!("backup kind {other:?}"),
                "unknown kind",
            )),
        }
    }
}

/// Why a backup is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupPurpose {
    /// Before an update, outside the maintenance window.
    PreUpdate,
    /// The database snapshot inside the maintenance window, used for rollback.
    RollbackSnapshot,
    /// Asked for by an operator.
    Manual,
}

/// What to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRequest {
    /// The version of the application being backed up.
    pub version: Version,
    /// Why.
    pub purpose: BackupPurpose,
    /// The history id of the update this backup belongs to, if any.
    pub update_id: Option<i64>,
    /// Free text from the operator.
    pub description: Option<String>,
}

/// A backup that exists. Strategies fill the paths they use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Unique id, safe as a file name (`20261127T171600Z-1.4.2-files`). Never contains secrets.
    pub id: String,
    /// What it holds.
    pub kind: BackupKind,
    /// The application version it was taken from.
    pub version: Version,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where the files part lives.
    pub files_path: Option<PathBuf>,
    /// Where the database part lives.
    pub database_path: Option<PathBuf>,
    /// Total size on disk in bytes.
    pub size: u64,
    /// The update it belongs to.
    pub update_id: Option<i64>,
    /// Operator notes.
    pub description: Option<String>,
}

/// What retention must respect when it deletes old backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRules {
    /// Verified backups of each kind to keep (at least 1).
    pub keep: usize,
    /// The version running now: its newest verified backup is never deleted.
    pub running: Version,
    /// Backups never deleted (the snapshots kept releases need for rollback).
    pub protected: Vec<String>,
}

/// What retention did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Deleted backups (ids).
    pub deleted: Vec<String>,
    /// Remaining backups (ids), oldest first.
    pub kept: Vec<String>,
    /// Leftovers of backups that never completed (killed runs), removed.
    pub removed_incomplete: Vec<PathBuf>,
}

/// Creates, verifies, restores and deletes backups of one kind of data.
///
/// # Contract
///
/// - [`create`](Self::create) either returns a complete backup or leaves
///   nothing behind (no half-written archive that looks valid). Backup files
///   are readable by the owner only (0600, directories 0700). Names and
///   errors never contain secrets.
/// - [`verify`](Self::verify) reads the whole backup and fails with
///   [`Error::Integrity`] when any byte is damaged.
/// - [`restore`](Self::restore) makes the protected data equal to the backup,
///   in place, or fails without reporting success; it is idempotent.
/// - [`stage_files`](Self::stage_files) writes the files of a backup into a
///   new directory instead of over the application, byte-for-byte as
///   [`restore`](Self::restore) would leave them; the pipeline then swaps
///   them in atomically ([`Updater::restore_backup`](crate::pipeline::Updater::restore_backup)).
/// - [`restore_database`](Self::restore_database) restores only the database
///   part of a backup; idempotent.
/// - [`prune`](Self::prune) deletes old backups by the rules: never the
///   newest backup, nor the newest verified one of the running version, nor
///   a protected one, and never the last complete backup holding files;
///   failed and incomplete ones go separately and do not count.
/// - [`delete`](Self::delete) of a backup that is already gone succeeds.
/// - Long operations report progress to the observer.
///
/// # Implementing
///
/// Required: everything but [`preflight`](Self::preflight) and
/// [`rehearse`](Self::rehearse) (which default to
/// "nothing to check"), [`stage_files`](Self::stage_files) (defaults to
/// "this strategy holds no files") and [`restore_database`](Self::restore_database)
/// (defaults to [`restore`](Self::restore) for database-only backups) and
/// [`prune`](Self::prune) (defaults to keeping everything). Run `updater_core::conformance::backup::run` (feature
/// `conformance`) in a test.
pub trait BackupStrategy: Send + Sync {
    /// A short description for logs (`files of /srv/app`, `PostgreSQL db app`), no secrets.
    fn describe(&self) -> String;

    /// What [`create`](Self::create) produces.
    fn kind(&self) -> BackupKind;

    /// Checks that a backup can be taken now (tools installed, server reachable,
    /// target writable), before the update starts.
    fn preflight(&self) -> Result<()> {
        Ok(())
    }

    /// Takes a backup.
    fn create(&self, request: &BackupRequest, progress: &dyn ProgressSink) -> Result<Backup>;

    /// Checks the backup is complete and undamaged.
    fn verify(&self, backup: &Backup) -> Result<()>;

    /// Restores the backup in place.
    fn restore(&self, backup: &Backup, progress: &dyn ProgressSink) -> Result<()>;

    /// Writes the files of `backup` into `target` — a directory that does
    /// not exist yet, on the application's file system — exactly as
    /// [`restore`](Self::restore) would leave the application directory,
    /// without touching the application.
    fn stage_files(
        &self,
        backup: &Backup,
        target: &Path,
        _progress: &dyn ProgressSink,
    ) -> Result<()> {
        Err(Error::precondition(
            "stage backup files",
            format!(
                "{} cannot stage the files of backup {} into {}",
                self.describe(),
                backup.id,
                target.display()
            ),
        ))
    }

    /// Restores only the database part of `backup`.
    fn restore_database(&self, backup: &Backup, progress: &dyn ProgressSink) -> Result<()> {
        match backup.kind {
            BackupKind::DatabaseOnly => self.restore(backup, progress),
            kind => Err(Error::precondition(
                "restore database",
                format!(
                    "{} cannot restore the database part of the {} backup {}",
                    self.describe(),
                    kind.as_str(),
                    backup.id
                ),
            )),
        }
    }

    /// Deletes the backup.
    fn delete(&self, backup: &Backup) -> Result<()>;

    /// Proves, before an update's maintenance window, that a backup taken
    /// now can be restored (the seed's "test rollback before applying"): a
    /// trial backup restored into a scratch place and deleted. Default: nothing.
    fn rehearse(&self) -> Result<()> {
        Ok(())
    }

    /// Applies retention to the backups this strategy made.
    fn prune(&self, _rules: &RetentionRules) -> Result<Pruned> {
        Ok(Pruned::default())
    }

    /// The backup's size on disk in bytes.
    fn size(&self, backup: &Backup) -> Result<u64>;
}

crate::forward_trait!(BackupStrategy:
    fn describe(&self) -> String;
    fn kind(&self) -> BackupKind;
    fn preflight(&self) -> Result<()>;
    fn create(&self, request: &BackupRequest, progress: &dyn ProgressSink) -> Result<Backup>;
    fn verify(&self, backup: &Backup) -> Result<()>;
    fn restore(&self, backup: &Backup, progress: &dyn ProgressSink) -> Result<()>;
    fn stage_files(&self, backup: &Backup, target: &Path, progress: &dyn ProgressSink) -> Result<()>;
    fn restore_database(&self, backup: &Backup, progress: &dyn ProgressSink) -> Result<()>;
    fn delete(&self, backup: &Backup) -> Result<()>;
    fn rehearse(&self) -> Result<()>;
    fn prune(&self, rules: &RetentionRules) -> Result<Pruned>;
    fn size(&self, backup: &Backup) -> Result<u64>;
);
