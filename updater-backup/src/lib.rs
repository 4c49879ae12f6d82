//! # updater-backup
//!
//! The [`BackupStrategy`](updater_core::backup::BackupStrategy)
//! implementations of the updater: the application tree as a standard
//! `.tar.gz`, database snapshots (SQLite, PostgreSQL, MySQL/MariaDB), both
//! together as one composite backup, a catalog and retention. A backup that
//! cannot be restored is worse than none, so every backup has a manifest or a
//! checksum that [`verify`](updater_core::backup::BackupStrategy::verify)
//! checks byte for byte, and restores check what they write.
//!
//! ```
//! use updater_backup::FileBackup;
//! use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
//! use updater_core::progress::NoProgress;
//! use updater_core::version::Version;
//!
//! let app = tempfile::tempdir()?;
//! std::fs::write(app.path().join("index.php"), "<?php echo 'hi';")?;
//! let backups = tempfile::tempdir()?;
//! let strategy = FileBackup::builder(app.path(), backups.path()).exclude_node_modules().build()?;
//! let request = BackupRequest {
//!     version: Version::new(1, 4, 2),
//!     purpose: BackupPurpose::Manual,
//!     update_id: None,
//!     description: Some("before the 1.5 update".into()),
//! };
//! let backup = strategy.create(&request, &NoProgress)?;
//! strategy.verify(&backup)?;
//! std::fs::write(app.path().join("index.php"), "broken")?;
//! strategy.restore(&backup, &NoProgress)?;
//! assert_eq!(std::fs::read_to_string(app.path().join("index.php"))?, "<?php echo 'hi';");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Why it is shaped this way
//!
//! **One gzip member per entry.** A gzip file may be several gzip members
//! back to back, and `gzip -d`/`tar xzf` read them as one stream. We compress
//! each entry's tar header, data and padding as its own member (files above
//! 8 MiB as several 4 MiB members), so entries are compressed in parallel on
//! every core (a rayon pool) and written in order by a writer thread, while
//! the result stays an ordinary `.tar.gz`. Compressible data is deflated at
//! level 1 (zlib-rs); data whose first 4 KiB has an order-0 entropy above 7.2
//! bits per byte (images, archives, random) is *stored* (deflate level 0),
//! which costs almost nothing and grows it by a few bytes per 64 KiB. Memory
//! stays flat: a batch holds at most 32 MiB of input; only the entry list
//! (a few hundred bytes per entry) grows with the tree.
//!
//! **Incremental by copying members.** The manifest records, for every entry,
//! the byte range of its members in the archive, and its size, mode, owner,
//! mtime, ctime and inode. The next backup of the same tree takes the newest
//! *verified* backup as its base: an entry whose metadata is unchanged is not
//! read, hashed or compressed — its compressed bytes are copied from the base
//! archive with `copy_file_range` (in-kernel, adjacent ranges merged into one
//! call; a reflink on file systems that share extents). Each backup is thus a
//! complete, self-contained `.tar.gz` that restores on its own and that
//! `tar xzf` reads, unlike a content-addressed object store whose objects are
//! shared between backups (smaller on disk, but no backup is a plain archive,
//! and damage to one object breaks every backup that uses it). Unverified
//! bases are never used, so damage cannot propagate unseen.
//!
//! **Verify reads every byte.** Each member has a fixed 10-byte gzip header
//! (compared), deflate data (decoded), CRC-32 and length (checked); each tar
//! header is rebuilt from the manifest and compared; each file's SHA-256 is
//! compared; entries must tile the archive exactly. The manifest's own size
//! and SHA-256 are in the backup's record.
//!
//! **Restore** removes what the backup does not have (excluded paths are left
//! alone), recreates directories, extracts files in parallel — each written to
//! a temporary name, checked against its SHA-256 and renamed into place —
//! then symlinks, then directory modes and times. Modes, symlinks, mtimes
//! (nanoseconds) and, when run as root, owners are reproduced.
//!
//! **Databases** ([`database`]) are dumped by their own tools or library into
//! the backup directory (credentials only in 0600 files, never in argv, names
//! or errors), checksummed, and restored atomically where the engine allows.
//!
//! **Catalog** ([`Catalog`]): one directory per backup, entering the catalog
//! only when its `backup.json` is written after every part is synced; files
//! 0600, directories 0700. [`RetentionPolicy`] decides what to delete.
//!
//! ## Limits
//!
//! - Hard links are archived as separate files; devices, FIFOs and sockets
//!   are skipped with a warning; file names must be valid UTF-8.
//! - A file that changes size while it is read fails the backup
//!   ([`BackupError::ChangedDuringBackup`]): retry, or exclude live paths.
//! - A restore from a damaged backup stops at the first damaged entry, which
//!   is left untouched; entries restored before it stay restored. `verify`
//!   first when in doubt.
//! - The PostgreSQL restore drops and recreates extensions and non-`public`
//!   schemas: the role needs the rights to create them.
//!
//! ## Measured
//!
//! `cargo run --release --example compare_tar -- TREE WORKDIR 3` on the
//! synthetic tree (20,003 files, 477 MB, 2 shared cores, interleaved runs,
//! medians of per-round ratios, fsync on): full backup 0.075x the wall time of
//! `tar czf`, archive 1.10x its size; second backup of the unchanged tree
//! 0.023x; restore (SHA-256 checked, synced) 0.75x `tar xzf`; peak RSS about
//! 110 MB for both a 2,000-file and the 20,000-file tree.
//!
//! The API is blocking: backups are long file and process I/O. Async
//! applications call it from `spawn_blocking`.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | [`SqliteDatabase`](database::SqliteDatabase): `VACUUM INTO` snapshots through a bundled SQLite (rusqlite) |
//! | `postgres` | yes | [`PostgresDatabase`](database::PostgresDatabase): `pg_dump`/`pg_restore`/`psql` |
//! | `mysql` | yes | [`MysqlDatabase`](database::MysqlDatabase): `mysqldump`/`mysql` (or `mariadb-dump`/`mariadb`) |

#![warn(missing_docs)]

pub mod composite;
pub mod database;
pub mod error;
pub mod exclude;
pub mod files;
pub mod retention;
pub mod store;

pub use composite::CompositeBackup;
pub use database::{DatabaseBackup, DatabaseEngine, Secret};
pub use error::{BackupError, Result};
pub use exclude::{DEFAULT_EXCLUDES, ExcludeSet};
pub use files::{CreateStats, FileBackup, FileBackupBuilder, RestoreStats};
pub use retention::{BackupClass, RemovalReason, RetentionPlan, RetentionPolicy, prune_catalog};
pub use store::{BackupRecord, BackupStatus, Catalog, CatalogEntry, INCOMPLETE_GRACE};
