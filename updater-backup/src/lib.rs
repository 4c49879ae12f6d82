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
//! then hard links, then symlinks, then directory modes and times. Modes,
//! symlinks, hard links, mtimes (nanoseconds) and, when run as root, owners
//! are reproduced.
//!
//! **Staging** ([`stage_files`](updater_core::backup::BackupStrategy::stage_files),
//! [`FileBackup::stage_to`]) is the same restore into a directory that must
//! not exist yet (an existing one is refused with
//! [`BackupError::TargetExists`]), with the same checks, so the staged tree is
//! what a restore leaves (the root takes the application directory's mode);
//! a failure removes the partial tree. The application is not touched: the
//! pipeline renames the staged tree into place, so a restore from backup is a
//! journaled transition like an update. [`CompositeBackup`] stages its files
//! part and restores its database part on its own
//! ([`restore_database`](updater_core::backup::BackupStrategy::restore_database)).
//!
//! **Hard links.** A regular file with several names inside the tree is
//! archived once, at its first name in archive order; its other names are tar
//! hard-link entries (type `1`, no data) naming it, which `tar xzf` and our
//! restore and staging recreate as links. Unchanged link entries are copied
//! by incremental backups like any other entry. The manifest format is
//! `updater-backup/files/2` (format 1 is still read).
//!
//! **Databases** ([`database`]) are dumped by their own tools or library into
//! the backup directory, checksummed, and restored atomically where the
//! engine allows (PostgreSQL: one transaction whose `COMMIT` we send only
//! after a complete script, so a failed or killed restore changes nothing).
//! The client tools run through core's one process runner
//! ([`updater_core::command::Process`]: own process group, deadline, whole
//! group killed), optionally recorded in a
//! [`ChildLedger`](updater_core::command::ChildLedger) so that none outlives
//! an updater that died. Credentials travel only in an anonymous 0600 memory
//! file opened as `/dev/fd/<n>` — never in argv, names, errors or on disk, so
//! a SIGKILL mid-dump leaves no credentials file behind.
//!
//! **"Verified" means restorable.** Verifying a database backup also
//! restores the dump into a scratch database `<db>_updater_check_<random>`
//! (always dropped) with the credentials a real restore would use
//! ([`RestoreTest`](database::RestoreTest): always for SQLite, dumps up to
//! 64 MiB for servers). MySQL dumps are written without `DEFINER=` clauses,
//! so views, triggers and routines another account defined restore under
//! the restoring user instead of needing `SUPER`. A restore test costs about
//! what the restore costs: 69 ms instead of 42 ms to verify a 10 MB SQLite
//! database, 0.94 s instead of 83 ms for 10 MB of PostgreSQL rows, 1.71 s
//! instead of 156 ms for 10 MB of MariaDB rows (release build, 2 cores).
//!
//! **Catalog** ([`Catalog`]): one directory per backup, entering the catalog
//! only when its `backup.json` is written after every part is synced; files
//! 0600, directories 0700. While a create runs, its directory holds a lock
//! file (`.in-progress`, `flock`ed by the writer until the record is
//! written), so a leftover of a killed create is told from a running one
//! without guessing from its age (see [`store`]).
//!
//! **Retention** ([`retention`]): every strategy's
//! [`prune`](updater_core::backup::BackupStrategy::prune) applies
//! [`prune_catalog`] to its backup directory. Backups are counted per class
//! — those holding files (full and files-only) and database-only snapshots —
//! and `keep` *good* (verified, parts present) backups of each class are
//! kept. Never deleted: the newest backup of a class, its newest good one
//! (so a catalog never loses its last complete verified backup holding
//! files), the running version's newest good one, and protected ids. Failed
//! backups go at once, unverified ones after a day; leftovers of killed
//! creates at once (their lock is free), record-less directories without a
//! lock file after 10 minutes without change.
//!
//! **Free space.** [`FileBackup`]'s preflight estimates the next backup (the
//! last backup of the tree, scaled by how much the tree grew since; the
//! tree's size when there is none; plus 20 %, plus the last dump for a
//! composite backup) and refuses with [`BackupError::InsufficientSpace`],
//! naming the backup directory and both numbers. A disk that fills up anyway
//! fails the create with the file being written and the OS error (`No space
//! left on device`), and the partial backup is removed.
//!
//! ## Limits
//!
//! - Hard links to files outside the tree (or inside an excluded path) are
//!   archived as separate files; devices, FIFOs and sockets are skipped with
//!   a warning; file names must be valid UTF-8.
//! - A file that changes size while it is read fails the backup
//!   ([`BackupError::ChangedDuringBackup`]): retry, or exclude live paths.
//! - A restore from a damaged backup stops at the first damaged entry, which
//!   is left untouched; entries restored before it stay restored. `verify`
//!   first when in doubt, or stage (a failed stage leaves nothing).
//! - The PostgreSQL restore drops and recreates extensions and non-`public`
//!   schemas: the role needs the rights to create them. Owners and grants
//!   are restored as dumped: an object owned by a role the restoring user
//!   cannot become makes the dump unrestorable for that user (the restore
//!   test reports it). Large objects are restored in their own `BEGIN`/`COMMIT`
//!   by `pg_restore`'s script, which ends the restore's transaction early.
//! - A restore test needs the right to create and drop the scratch databases
//!   (`CREATEDB`; on MySQL ``GRANT ALL ON `app\_updater\_check\_%`.*``); a
//!   restore test killed with the updater leaves its scratch database behind.
//! - A MySQL restore is not atomic (DDL commits): a failed one leaves the
//!   database partly restored; restore-test first.
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
//! `cargo run --release --example stage_vs_restore -- TREE WORKDIR 9` on a
//! 2,000-file, 46 MB tree of the same mix (2,155 directories, 10 hard links;
//! 2 cores shared with other builds, load 2 to 5; order rotated each round;
//! medians of 9 rounds). On tmpfs, where only the CPU counts: staging 0.20 s,
//! restoring into an empty directory 0.19 s, restoring in place over the live
//! tree 0.23 s. On ext4 (a shared virtual disk), over four runs with and
//! without fsync: staging 0.21 to 1.04 s, 0.89x to 1.35x a restore into an
//! empty directory and 0.42x to 0.95x an in-place restore (which writes each
//! file beside the old one and renames it over it). Staging costs what a
//! restore into an empty directory costs, but the application is not touched
//! while the tree is written — an in-place restore changes it from the first
//! file on — and the swap is then a rename.
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
