//! The error type of this crate and its conversion into [`updater_core::Error`].

use std::path::{Path, PathBuf};

/// Shorthand for results whose error is [`BackupError`].
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

/// Everything that can go wrong while creating, verifying, restoring or
/// pruning backups. Messages name the file, tool or backup concerned and never
/// contain credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file-system operation failed on `path`.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `rename`, `fsync`...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// An exclude pattern is not a valid glob.
    #[error("invalid exclude pattern {pattern:?}: {source}")]
    ExcludePattern {
        /// The pattern as given.
        pattern: String,
        /// Why globset refused it.
        #[source]
        source: globset::Error,
    },

    /// A path cannot be stored in a manifest (not UTF-8).
    #[error("cannot back up {path}: file names must be valid UTF-8")]
    NonUtf8Path {
        /// The path, lossily converted.
        path: String,
    },

    /// A file changed size while it was being read.
    #[error("{path} changed while it was being backed up ({reason}); retry the backup")]
    ChangedDuringBackup {
        /// The file.
        path: PathBuf,
        /// What changed.
        reason: String,
    },

    /// Part of a backup is missing, damaged or does not match its manifest.
    #[error("backup {subject} is damaged: {reason}")]
    Integrity {
        /// The archive, dump or manifest (and entry) that failed.
        subject: String,
        /// What did not match.
        reason: String,
    },

    /// No backup with this id exists in the backup directory.
    #[error("backup {id} not found in {root}")]
    NotFound {
        /// The backup id.
        id: String,
        /// The backup directory.
        root: PathBuf,
    },

    /// A backup id or a configuration value is unusable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was refused.
        what: String,
        /// Why.
        reason: String,
    },

    /// A database tool (`pg_dump`, `mysqldump`...) is not installed or does not run.
    #[error("database tool `{tool}` is not usable: {reason}")]
    ToolMissing {
        /// The program name.
        tool: String,
        /// What happened when it was looked for or asked for `--version`.
        reason: String,
    },

    /// A database tool ran but failed, timed out or produced nothing.
    #[error("`{tool}` failed during {step}: {reason}")]
    ToolFailed {
        /// The program name (never its arguments).
        tool: String,
        /// What it was doing (`dump`, `restore`, `check`).
        step: &'static str,
        /// Exit status or timeout and the tail of its error output (credentials removed).
        reason: String,
    },

    /// A restore test ([`RestoreTest`](crate::database::RestoreTest)) could
    /// not restore the dump into a scratch database: the backup is not
    /// restorable with these credentials.
    #[error("backup {subject} cannot be restored: {reason}")]
    NotRestorable {
        /// The dump that was tested.
        subject: String,
        /// What the restore said (credentials removed).
        reason: String,
    },

    /// The SQLite library reported an error.
    #[cfg(feature = "sqlite")]
    #[error("SQLite {action} of {path}: {source}")]
    Sqlite {
        /// What was being done.
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// The library's error.
        #[source]
        source: rusqlite::Error,
    },

    /// Staging refused a target directory that already exists (staging
    /// only ever writes a new tree).
    #[error("cannot stage backup files into {path}: it already exists")]
    TargetExists {
        /// The target directory.
        path: PathBuf,
    },

    /// The backup directory's file system has less free space than the next
    /// backup is estimated to need.
    #[error(
        "not enough free space in {dir} for a backup: {available} bytes available, about {required} bytes needed ({basis}); free space or move the backup directory"
    )]
    InsufficientSpace {
        /// The backup directory.
        dir: PathBuf,
        /// Bytes available to this user on its file system.
        available: u64,
        /// Bytes the backup is estimated to need, margin included.
        required: u64,
        /// What the estimate is based on (`the last backup, 12 MiB`...).
        basis: String,
    },

    /// A manifest or metadata file could not be encoded or decoded.
    #[error("cannot {action} {path}: {source}")]
    Json {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl BackupError {
    /// A [`BackupError::Io`] for `action` on `path`.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        BackupError::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A [`BackupError::Integrity`].
    pub fn integrity(subject: impl Into<String>, reason: impl Into<String>) -> Self {
        BackupError::Integrity {
            subject: subject.into(),
            reason: reason.into(),
        }
    }

    /// A [`BackupError::Invalid`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        BackupError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Whether this error says the backup is damaged or cannot be restored.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            BackupError::Integrity { .. } | BackupError::NotRestorable { .. }
        )
    }
}

impl From<BackupError> for updater_core::Error {
    fn from(error: BackupError) -> Self {
        match error {
            BackupError::Integrity { subject, reason } => {
                updater_core::Error::integrity(subject, reason)
            }
            BackupError::NotRestorable { subject, reason } => {
                updater_core::Error::integrity(subject, format!("not restorable: {reason}"))
            }
            BackupError::NotFound { id, .. } => {
                updater_core::Error::not_found(format!("backup {id}"))
            }
            BackupError::ToolMissing { tool, reason } => updater_core::Error::precondition(
                format!("database tool {tool}"),
                format!("{reason}; install it or put it on PATH"),
            ),
            BackupError::ToolFailed { tool, step, reason } => updater_core::Error::Command {
                step: format!("backup {step}"),
                command: tool,
                reason,
            },
            BackupError::Invalid { what, reason } => updater_core::Error::invalid(what, reason),
            BackupError::Io {
                action,
                path,
                source,
            } => updater_core::Error::Io {
                action,
                path,
                source,
            },
            error @ BackupError::TargetExists { .. } => {
                updater_core::Error::precondition("stage backup files", error.to_string())
            }
            error @ BackupError::InsufficientSpace { .. } => {
                updater_core::Error::precondition("backup disk space", error.to_string())
            }
            other => updater_core::Error::other("backup", other),
        }
    }
}
