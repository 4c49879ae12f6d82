//! Database backups: an engine ([`DatabaseEngine`]) knows how to snapshot and
//! restore one database; [`DatabaseBackup`] stores its dumps in the backup
//! directory and implements [`BackupStrategy`] for them.
//!
//! **Tools.** The PostgreSQL and MySQL engines drive the servers' own client
//! tools through core's one process runner
//! ([`updater_core::command::Process`]): each runs in its own process group
//! with a deadline (the whole group is killed when it passes), output is
//! streamed into our compressor or into the backup file, and errors carry
//! the tail of the tool's error output with the password removed. Give an
//! engine a [`ChildLedger`](updater_core::command::ChildLedger)
//! (`with_child_ledger`) and a dump or restore left running by an updater
//! that died is stopped by the next recovery.
//!
//! **Credentials** travel in an anonymous 0600 memory file
//! (`memfd_create`) that the tool opens as `/dev/fd/<n>` (`PGPASSFILE`,
//! `--defaults-extra-file`): never in argv, the environment, a name, an
//! error — or on disk, so a SIGKILL in the middle of a dump leaves nothing
//! behind (a 0600 file in the temp directory used to stay there forever).
//!
//! **"Verified" means restorable.** A checksum proves a dump is the one
//! written, not that it can be replayed. [`verify`](BackupStrategy::verify) of a
//! [`DatabaseBackup`] checks
//! size, SHA-256 and structure, and then, as [`RestoreTest`] says (default
//! [`Always`](RestoreTest::Always) for SQLite, [`UpTo(64 MiB)`](RestoreTest::SERVER_DEFAULT)
//! of dump for servers), restores the dump into a scratch database
//! `<db>_updater_check_<random>` — same credentials, same procedure as a
//! real restore — and drops it again, also when the restore fails. A dump
//! that does not restore fails with [`BackupError::NotRestorable`] and the
//! backup is marked failed. The role needs the right to create those
//! databases (`CREATEDB` on PostgreSQL; on MySQL e.g.
//! ``GRANT ALL ON `app\_updater\_check\_%`.* TO app``); without it verification
//! fails with an error saying so (use [`RestoreTest::Never`] to opt out).
//! MySQL dumps have their `DEFINER=` clauses removed as they are written,
//! so objects another account defined restore under the restoring user (see
//! the MySQL engine for the trade-off); PostgreSQL restores owners and
//! grants as dumped, so an object owned by a role the restoring user cannot
//! become makes the dump unrestorable for it — and the restore test says so.
//!
//! Measured cost of a restore test (release build, 2 shared cores, local
//! servers, medians of 3), for about 10 MB of table data:
//!
//! | engine | dump | verify without / with restore test |
//! |---|---|---|
//! | SQLite (10.3 MB file) | 10.3 MB | 42 ms / 69 ms |
//! | PostgreSQL 15 (10.2 MB of rows) | 5.9 MB custom format | 83 ms / 0.94 s |
//! | MariaDB 10.11 (10.2 MB of rows) | 5.7 MB `.sql.gz` | 156 ms / 1.71 s |
//!
//! (`cargo test --release -p updater-backup --test restore_test restore_test_cost -- --ignored --nocapture`.)
//! A restore test costs about as much as the restore itself. The pipeline
//! verifies the rollback snapshot inside the maintenance window, so for a
//! large server database choose the limit with that in mind.

#[cfg(any(feature = "postgres", feature = "mysql"))]
mod credentials;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod restore_test;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod server;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod tools;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use updater_core::backup::{Backup, BackupKind, BackupRequest, BackupStrategy};
use updater_core::progress::ProgressSink;

#[cfg(feature = "mysql")]
pub use mysql::MysqlDatabase;
#[cfg(feature = "postgres")]
pub use postgres::PostgresDatabase;
pub use restore_test::RestoreTest;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteDatabase;
/// Database passwords: core's one credential type, whose `Debug` and
/// `Display` never show the value.
pub use updater_core::secret::Secret;

use crate::error::{BackupError, Result};
use crate::store::{BackupRecord, Catalog, PartRecord, PartRole, PendingBackup};

/// One database that can be snapshotted and restored.
///
/// # Contract
///
/// - [`dump`](Self::dump) writes a consistent snapshot to a new file (0600),
///   streaming (never the whole dump in memory), and fails on a tool error,
///   a timeout or an empty dump.
/// - [`restore`](Self::restore) makes the database equal to the dump, or fails.
/// - [`restore_test`](Self::restore_test) restores the dump somewhere
///   harmless (a scratch database, a copy) with the same credentials and the
///   same procedure as [`restore`](Self::restore), never touching the
///   database itself, and cleans up after itself also when it fails.
/// - Nothing an engine logs, names or returns contains its credentials.
///
/// # Implementing
///
/// Every method is required except [`restore_test`](Self::restore_test)
/// and [`default_restore_test`](Self::default_restore_test): an engine
/// without a restore test is verified by checksum and structure only. The
/// engines of this crate are [`SqliteDatabase`], [`PostgresDatabase`] and
/// [`MysqlDatabase`].
pub trait DatabaseEngine: Send + Sync + std::fmt::Debug {
    /// A short description without secrets (`PostgreSQL database app on 127.0.0.1:5432`).
    fn describe(&self) -> String;

    /// The dump's file name inside a backup directory (`database.pgdump`).
    fn dump_file_name(&self) -> &'static str;

    /// Checks that the tools exist and the database can be reached.
    fn preflight(&self) -> Result<()>;

    /// Writes a consistent snapshot to `dest`.
    fn dump(&self, dest: &Path, progress: &dyn ProgressSink) -> Result<()>;

    /// Checks the dump's structure (its SHA-256 is checked by the caller).
    fn check_dump(&self, dump: &Path) -> Result<()>;

    /// Replaces the database's content with the dump.
    fn restore(&self, dump: &Path, progress: &dyn ProgressSink) -> Result<()>;

    /// Restores the dump into a scratch database (or a scratch copy) that
    /// is always removed; `Ok` means a restore with these credentials works.
    ///
    /// # Errors
    ///
    /// [`BackupError::NotRestorable`] when the dump does not restore;
    /// [`BackupError::ToolFailed`] when the scratch database cannot be
    /// created or dropped (missing rights, server down). The default
    /// refuses: this engine has no restore test.
    fn restore_test(&self, dump: &Path) -> Result<()> {
        let _ = dump;
        Err(BackupError::invalid(
            format!("restore test of {}", self.describe()),
            "this engine has no restore test",
        ))
    }

    /// When [`DatabaseBackup`] runs [`restore_test`](Self::restore_test)
    /// unless told otherwise; [`RestoreTest::Never`] by default.
    fn default_restore_test(&self) -> RestoreTest {
        RestoreTest::Never
    }
}

/// Backs up one database into a backup directory.
#[derive(Debug, Clone)]
pub struct DatabaseBackup {
    engine: Arc<dyn DatabaseEngine>,
    catalog: Catalog,
    retain_for: Option<Duration>,
    restore_test: Option<RestoreTest>,
    rehearsal: Option<RestoreTest>,
}

impl DatabaseBackup {
    /// Backups of `engine`'s database under `backup_root`.
    pub fn new(
        engine: impl DatabaseEngine + 'static,
        backup_root: impl Into<std::path::PathBuf>,
    ) -> Self {
        DatabaseBackup {
            engine: Arc::new(engine),
            catalog: Catalog::new(backup_root),
            retain_for: None,
            restore_test: None,
            rehearsal: None,
        }
    }

    /// Backups expire this long after creation.
    pub fn with_retention(mut self, retain_for: Duration) -> Self {
        self.retain_for = Some(retain_for);
        self
    }

    /// When [`verify`](BackupStrategy::verify) also restores the dump into
    /// a scratch database (default: the engine's
    /// [`default_restore_test`](DatabaseEngine::default_restore_test) —
    /// always for SQLite, dumps up to 64 MiB for PostgreSQL and MySQL).
    ///
    /// ```
    /// use updater_backup::DatabaseBackup;
    /// use updater_backup::database::{RestoreTest, SqliteDatabase};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let backups = DatabaseBackup::new(SqliteDatabase::new(dir.path().join("app.db")), dir.path().join("backups"))
    ///     .with_restore_test(RestoreTest::UpTo(256 << 20));
    /// assert_eq!(backups.restore_test(), RestoreTest::UpTo(256 << 20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_restore_test(mut self, policy: RestoreTest) -> Self {
        self.restore_test = Some(policy);
        self
    }

    /// Whether [`rehearse`](BackupStrategy::rehearse) — run by the pipeline
    /// before an update's maintenance window — takes a trial dump and
    /// restores it into a scratch database, so that the snapshot taken
    /// inside the window (verified by checksum only, to keep the window
    /// short) is known to be restorable with these credentials. Default:
    /// the restore-test policy.
    pub fn with_rehearsal(mut self, policy: RestoreTest) -> Self {
        self.rehearsal = Some(policy);
        self
    }

    /// The restore-test policy in force.
    pub fn restore_test(&self) -> RestoreTest {
        self.restore_test
            .unwrap_or_else(|| self.engine.default_restore_test())
    }

    /// The catalog of the backup directory.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// Dumps `engine` into `dir` and describes the part.
pub(crate) fn dump_part(
    engine: &dyn DatabaseEngine,
    dir: &Path,
    progress: &dyn ProgressSink,
) -> Result<PartRecord> {
    let file = engine.dump_file_name();
    let path = dir.join(file);
    engine.dump(&path, progress)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| BackupError::io("set mode of", &path, e))?;
    let (size, sha) = hash_file(&path)?;
    if size == 0 {
        return Err(BackupError::ToolFailed {
            tool: engine.describe(),
            step: "dump",
            reason: "the dump is empty".into(),
        });
    }
    Ok(PartRecord {
        role: PartRole::Database,
        file: file.to_string(),
        size,
        sha256: Some(sha),
    })
}

/// Checks the database part of `record` in `dir`: size, SHA-256, structure.
pub(crate) fn verify_part(
    engine: &dyn DatabaseEngine,
    dir: &Path,
    record: &BackupRecord,
) -> Result<std::path::PathBuf> {
    let part = record
        .part(PartRole::Database)
        .ok_or_else(|| BackupError::integrity(record.id(), "no database dump recorded"))?;
    let path = dir.join(&part.file);
    crate::files::check_part(&path, part)?;
    engine.check_dump(&path)?;
    Ok(path)
}

/// [`verify_part`], then — when `policy` applies to the dump's size — a
/// restore of it into a scratch database: a verified dump is a restorable one.
pub(crate) fn verify_restorable(
    engine: &dyn DatabaseEngine,
    dir: &Path,
    record: &BackupRecord,
    policy: RestoreTest,
) -> Result<std::path::PathBuf> {
    let path = verify_part(engine, dir, record)?;
    let size = record.part(PartRole::Database).map_or(0, |part| part.size);
    if policy.applies_to(size) {
        let started = std::time::Instant::now();
        engine.restore_test(&path)?;
        tracing::info!(backup = record.id(), size, elapsed = ?started.elapsed(), "restore test passed");
    }
    Ok(path)
}

/// The size and hex SHA-256 of `path` (core's one file hasher).
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String)> {
    match updater_core::package::sha256_file(path) {
        Ok((digest, size)) => Ok((size, digest.to_hex())),
        Err(updater_core::Error::Io { source, .. }) => Err(BackupError::io("read", path, source)),
        Err(other) => Err(BackupError::io(
            "read",
            path,
            std::io::Error::other(other.to_string()),
        )),
    }
}

/// A writer that counts bytes and reports progress every few MiB.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) struct CountingWriter<'a, W> {
    pub(crate) inner: W,
    pub(crate) written: u64,
    reported: u64,
    progress: &'a dyn ProgressSink,
    label: &'static str,
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
impl<'a, W> CountingWriter<'a, W> {
    pub(crate) fn new(inner: W, progress: &'a dyn ProgressSink, label: &'static str) -> Self {
        CountingWriter {
            inner,
            written: 0,
            reported: 0,
            progress,
            label,
        }
    }
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.reported >= 4 << 20 {
            self.reported = self.written;
            self.progress.report(&updater_core::progress::Progress {
                percent: 0,
                bytes_done: self.written,
                bytes_total: None,
                files_done: 0,
                message: format!("{}: {} MiB", self.label, self.written >> 20),
            });
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn report_done(progress: &dyn ProgressSink, bytes: u64, message: String) {
    progress.report(&updater_core::progress::Progress {
        percent: 100,
        bytes_done: bytes,
        bytes_total: Some(bytes),
        files_done: 1,
        message,
    });
}

impl BackupStrategy for DatabaseBackup {
    fn describe(&self) -> String {
        self.engine.describe()
    }

    fn kind(&self) -> BackupKind {
        BackupKind::DatabaseOnly
    }

    fn preflight(&self) -> updater_core::Result<()> {
        crate::store::check_writable(self.catalog.root())?;
        Ok(self.engine.preflight()?)
    }

    fn create(
        &self,
        request: &BackupRequest,
        progress: &dyn ProgressSink,
    ) -> updater_core::Result<Backup> {
        let pending = PendingBackup::begin(&self.catalog, request, "database")?;
        let part = dump_part(&*self.engine, &pending.dir, progress)?;
        let record = crate::store::new_record(
            &pending,
            request,
            BackupKind::DatabaseOnly,
            self.engine.describe(),
            vec![part],
            self.retain_for,
        );
        pending.commit(&record, true)?;
        report_done(
            progress,
            record.backup.size,
            format!("backed up {}", self.engine.describe()),
        );
        Ok(record.backup)
    }

    fn verify(&self, backup: &Backup) -> updater_core::Result<()> {
        let record = self.catalog.read_record(&backup.id)?;
        let dir = self.catalog.dir_of(&backup.id)?;
        let outcome =
            verify_restorable(&*self.engine, &dir, &record, self.restore_test()).map(|_| ());
        crate::store::record_verification(&self.catalog, &backup.id, &outcome);
        Ok(outcome?)
    }

    fn restore(&self, backup: &Backup, progress: &dyn ProgressSink) -> updater_core::Result<()> {
        let record = self.catalog.read_record(&backup.id)?;
        let dir = self.catalog.dir_of(&backup.id)?;
        let dump = verify_part(&*self.engine, &dir, &record)?;
        self.engine.restore(&dump, progress)?;
        Ok(())
    }

    fn delete(&self, backup: &Backup) -> updater_core::Result<()> {
        Ok(self.catalog.delete(&backup.id)?)
    }

    fn rehearse(&self) -> updater_core::Result<()> {
        let policy = self.rehearsal.unwrap_or_else(|| self.restore_test());
        if policy == RestoreTest::Never {
            return Ok(());
        }
        crate::store::check_writable(self.catalog.root())?;
        let scratch = tempfile::Builder::new()
            .prefix(".rehearsal-")
            .tempdir_in(self.catalog.root())
            .map_err(|e| BackupError::io("create a directory in", self.catalog.root(), e))?;
        let dump = scratch.path().join(self.engine.dump_file_name());
        self.engine
            .dump(&dump, &updater_core::progress::NoProgress)?;
        let size = std::fs::metadata(&dump)
            .map_err(|e| BackupError::io("inspect", &dump, e))?
            .len();
        if policy.applies_to(size) {
            let started = std::time::Instant::now();
            self.engine.restore_test(&dump)?;
            tracing::info!(size, elapsed = ?started.elapsed(), "restore rehearsal passed");
        } else {
            tracing::info!(
                size,
                "restore rehearsal skipped: the dump is larger than the policy allows"
            );
        }
        Ok(())
    }

    fn size(&self, backup: &Backup) -> updater_core::Result<u64> {
        Ok(crate::store::size_on_disk(&self.catalog, &backup.id)?)
    }

    fn prune(
        &self,
        rules: &updater_core::backup::RetentionRules,
    ) -> updater_core::Result<updater_core::backup::Pruned> {
        Ok(crate::retention::prune_catalog(&self.catalog, rules)?)
    }
}
