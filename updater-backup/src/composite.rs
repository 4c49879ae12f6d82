//! Composite backups: the application files and its database under one id,
//! one catalog entry, one verify and one restore.

use std::path::Path;
use std::sync::Arc;

use updater_core::backup::{
    Backup, BackupKind, BackupRequest, BackupStrategy, Pruned, RetentionRules,
};
use updater_core::progress::ProgressSink;

use crate::database::{DatabaseEngine, dump_part, verify_part};
use crate::files::{FileBackup, RestoreStats};
use crate::store::{Catalog, PartRole, PendingBackup};

/// Files plus database as one backup ([`BackupKind::Full`]). Both parts are
/// written into one backup directory, which enters the catalog only when both
/// are complete: a failure of either leaves nothing behind.
#[derive(Debug, Clone)]
pub struct CompositeBackup {
    files: FileBackup,
    database: Arc<dyn DatabaseEngine>,
}

impl CompositeBackup {
    /// Files from `files` (and its backup directory) plus `database`.
    pub fn new(files: FileBackup, database: impl DatabaseEngine + 'static) -> Self {
        CompositeBackup {
            files,
            database: Arc::new(database),
        }
    }

    /// The catalog of the backup directory.
    pub fn catalog(&self) -> &Catalog {
        self.files.catalog()
    }

    /// Writes the files part of `backup` into `target`, a directory that must
    /// not exist yet, as [`FileBackup::stage_to`] does; the database is not
    /// touched. Says what it did.
    pub fn stage_to(
        &self,
        backup: &Backup,
        target: &Path,
        progress: &dyn ProgressSink,
    ) -> crate::Result<RestoreStats> {
        let catalog = self.catalog();
        let record = catalog.read_record(&backup.id)?;
        let dir = catalog.dir_of(&backup.id)?;
        self.files.stage_in(&dir, &record, target, progress)
    }

    /// The size of the newest database dump in the catalog (0 when none):
    /// what the next one is expected to take.
    fn last_dump_size(&self) -> crate::Result<u64> {
        Ok(self
            .catalog()
            .list()?
            .iter()
            .rev()
            .find_map(|e| e.record.part(PartRole::Database).map(|p| p.size))
            .unwrap_or(0))
    }
}

impl BackupStrategy for CompositeBackup {
    fn describe(&self) -> String {
        format!("{} and {}", self.files.describe(), self.database.describe())
    }

    fn kind(&self) -> BackupKind {
        BackupKind::Full
    }

    fn preflight(&self) -> updater_core::Result<()> {
        self.files.preflight_with(self.last_dump_size()?)?;
        Ok(self.database.preflight()?)
    }

    fn create(
        &self,
        request: &BackupRequest,
        progress: &dyn ProgressSink,
    ) -> updater_core::Result<Backup> {
        let pending = PendingBackup::begin(self.catalog(), request, "full")?;
        let (mut parts, stats) =
            self.files
                .create_into(&pending.dir, pending.created_at, progress)?;
        parts.push(dump_part(&*self.database, &pending.dir, progress)?);
        let record = crate::store::new_record(
            &pending,
            request,
            BackupKind::Full,
            self.describe(),
            parts,
            self.files.retain_for(),
        );
        pending.commit(&record, self.files.sync())?;
        tracing::info!(id = %record.backup.id, entries = stats.entries, "full backup created");
        Ok(record.backup)
    }

    fn verify(&self, backup: &Backup) -> updater_core::Result<()> {
        let catalog = self.catalog();
        let record = catalog.read_record(&backup.id)?;
        let dir = catalog.dir_of(&backup.id)?;
        let outcome = self
            .files
            .verify_in(&dir, &record)
            .and_then(|()| verify_part(&*self.database, &dir, &record).map(|_| ()));
        crate::store::record_verification(catalog, &backup.id, &outcome);
        Ok(outcome?)
    }

    fn restore(&self, backup: &Backup, progress: &dyn ProgressSink) -> updater_core::Result<()> {
        let catalog = self.catalog();
        let record = catalog.read_record(&backup.id)?;
        let dir = catalog.dir_of(&backup.id)?;
        // Check the dump before touching anything; the files restore checks
        // every entry as it goes.
        let dump = verify_part(&*self.database, &dir, &record)?;
        self.files
            .restore_in(&dir, &record, self.files.source(), progress)?;
        self.database.restore(&dump, progress)?;
        Ok(())
    }

    fn stage_files(
        &self,
        backup: &Backup,
        target: &Path,
        progress: &dyn ProgressSink,
    ) -> updater_core::Result<()> {
        self.stage_to(backup, target, progress)?;
        Ok(())
    }

    /// Restores the database part of a full backup (or of a database-only
    /// one in the same directory) with the database engine, after checking
    /// the dump's size, SHA-256 and structure; the files are not touched.
    fn restore_database(
        &self,
        backup: &Backup,
        progress: &dyn ProgressSink,
    ) -> updater_core::Result<()> {
        let catalog = self.catalog();
        let record = catalog.read_record(&backup.id)?;
        if record.part(PartRole::Database).is_none() {
            return Err(updater_core::Error::precondition(
                "restore database",
                format!(
                    "the {} backup {} holds no database",
                    record.backup.kind.as_str(),
                    backup.id
                ),
            ));
        }
        let dir = catalog.dir_of(&backup.id)?;
        let dump = verify_part(&*self.database, &dir, &record)?;
        self.database.restore(&dump, progress)?;
        Ok(())
    }

    fn delete(&self, backup: &Backup) -> updater_core::Result<()> {
        Ok(self.catalog().delete(&backup.id)?)
    }

    fn prune(&self, rules: &RetentionRules) -> updater_core::Result<Pruned> {
        Ok(crate::retention::prune_catalog(self.catalog(), rules)?)
    }

    fn size(&self, backup: &Backup) -> updater_core::Result<u64> {
        Ok(crate::store::size_on_disk(self.catalog(), &backup.id)?)
    }
}
