//! # updater-backup
//!
//! (docs being written)

#![warn(missing_docs)]

pub mod error;
pub mod exclude;
pub mod files;
pub mod store;

pub use error::{BackupError, Result};
pub use exclude::{DEFAULT_EXCLUDES, ExcludeSet};
pub use files::{CreateStats, FileBackup, FileBackupBuilder, RestoreStats};
pub use store::{BackupRecord, BackupStatus, Catalog, CatalogEntry};
