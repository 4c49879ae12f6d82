//! A fake database (a directory holding `schema` — the version whose
//! migrations ran — and `rows` — the application's writes), migrations that
//! change it, and snapshots of it: enough to check that the schema always
//! matches the tree and that no acknowledged write is lost.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use updater_core::backup::{Backup, BackupKind, BackupRequest, BackupStrategy};
use updater_core::migrate::{MigrationContext, Migrator};
use updater_core::progress::ProgressSink;
use updater_core::{Error, Result};

/// The fake database: `<dir>/schema` and `<dir>/rows`.
#[derive(Debug, Clone)]
pub struct FakeDatabase {
    /// Its directory.
    pub dir: PathBuf,
}

impl FakeDatabase {
    /// A database at schema 1.0.0 holding one row.
    pub fn create(dir: PathBuf) -> Self {
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("schema"), "1.0.0").unwrap();
        fs::write(dir.join("rows"), "row1\n").unwrap();
        FakeDatabase { dir }
    }

    /// The database at `dir`, as it is.
    pub fn at(dir: &Path) -> Self {
        FakeDatabase {
            dir: dir.to_path_buf(),
        }
    }

    /// The version whose migrations ran.
    pub fn schema(&self) -> String {
        fs::read_to_string(self.dir.join("schema")).unwrap()
    }

    /// Every row written.
    pub fn rows(&self) -> String {
        fs::read_to_string(self.dir.join("rows")).unwrap()
    }

    /// Writes a row, as the application would.
    pub fn write_row(&self, row: &str) {
        let mut rows = self.rows();
        rows.push_str(row);
        rows.push('\n');
        fs::write(self.dir.join("rows"), rows).unwrap();
    }
}

/// Migrations that set the schema to the target version (half-applied
/// first, as a real failing migration leaves it).
#[derive(Debug)]
pub struct FakeMigrator {
    /// The database it migrates.
    pub db: FakeDatabase,
    /// Whether it has down migrations.
    pub revertible: bool,
    /// Whether `migrate` fails halfway.
    pub fail_migrate: bool,
}

impl Migrator for FakeMigrator {
    fn describe(&self) -> String {
        "fake migrator".into()
    }
    fn migrate(&self, ctx: &MigrationContext) -> Result<()> {
        fs::write(self.db.dir.join("schema"), format!("{}-partial", ctx.to))
            .map_err(|e| Error::io("write", &self.db.dir, e))?;
        if self.fail_migrate {
            return Err(Error::other(
                "migrate",
                "migration 2026_11_27_add_column failed",
            ));
        }
        fs::write(self.db.dir.join("schema"), ctx.to.to_string())
            .map_err(|e| Error::io("write", &self.db.dir, e))
    }
    fn can_revert(&self) -> bool {
        self.revertible
    }
    fn revert(&self, ctx: &MigrationContext) -> Result<()> {
        // Which code was in place: down migrations ship with the newer release.
        let code = fs::read_to_string(ctx.app_dir.join("VERSION")).unwrap_or_default();
        fs::write(self.db.dir.join("revert_saw_code"), code)
            .map_err(|e| Error::io("write", &self.db.dir, e))?;
        fs::write(self.db.dir.join("schema"), ctx.from.to_string())
            .map_err(|e| Error::io("write", &self.db.dir, e))
    }
}

/// Snapshots of the fake database (copies of its files) in `store`.
#[derive(Debug)]
pub struct FakeDatabaseBackup {
    /// The database.
    pub db: FakeDatabase,
    /// Where snapshots go.
    pub store: PathBuf,
    /// How many restores ran.
    pub restores: Mutex<u32>,
}

impl FakeDatabaseBackup {
    /// Snapshots of `db` kept in `store`.
    pub fn new(db: FakeDatabase, store: PathBuf) -> Self {
        fs::create_dir_all(&store).unwrap();
        FakeDatabaseBackup {
            db,
            store,
            restores: Mutex::new(0),
        }
    }
}

impl BackupStrategy for FakeDatabaseBackup {
    fn describe(&self) -> String {
        "fake database backup".into()
    }
    fn kind(&self) -> BackupKind {
        BackupKind::DatabaseOnly
    }
    fn create(&self, request: &BackupRequest, _p: &dyn ProgressSink) -> Result<Backup> {
        let id = format!(
            "db-{}-{}",
            request.version,
            fs::read_dir(&self.store).map(|d| d.count()).unwrap_or(0)
        );
        let dir = self.store.join(&id);
        fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        for name in ["schema", "rows"] {
            fs::copy(self.db.dir.join(name), dir.join(name))
                .map_err(|e| Error::io("copy", self.db.dir.join(name), e))?;
        }
        Ok(Backup {
            id,
            kind: BackupKind::DatabaseOnly,
            version: request.version.clone(),
            created_at: chrono::Utc::now(),
            files_path: None,
            database_path: Some(dir),
            size: 0,
            update_id: request.update_id,
            description: None,
        })
    }
    fn verify(&self, backup: &Backup) -> Result<()> {
        if backup
            .database_path
            .as_ref()
            .is_some_and(|p| p.join("schema").exists())
        {
            Ok(())
        } else {
            Err(Error::integrity("fake backup", "missing"))
        }
    }
    fn restore(&self, backup: &Backup, _p: &dyn ProgressSink) -> Result<()> {
        let dir = backup
            .database_path
            .clone()
            .ok_or_else(|| Error::integrity("fake backup", "no database part"))?;
        for name in ["schema", "rows"] {
            // Like a real restore: written beside the live file, renamed into place.
            let temp = self.db.dir.join(format!(".{name}.restore"));
            fs::copy(dir.join(name), &temp).map_err(|e| Error::io("copy into", &temp, e))?;
            fs::rename(&temp, self.db.dir.join(name)).map_err(|e| Error::io("rename", &temp, e))?;
        }
        *self.restores.lock().unwrap() += 1;
        Ok(())
    }
    fn delete(&self, backup: &Backup) -> Result<()> {
        if let Some(dir) = &backup.database_path {
            let _ = fs::remove_dir_all(dir);
        }
        Ok(())
    }
    fn size(&self, _backup: &Backup) -> Result<u64> {
        Ok(0)
    }
}

/// Backups of the application's files as plain copies (the state directory
/// and the preserved log and upload directories left out, as the real files
/// backup does), optionally with the fake database: [`BackupKind::Full`].
/// Enough to drive backups and atomic restores through the pipeline.
#[derive(Debug)]
pub struct FakeFilesBackup {
    /// The application directory.
    pub app: PathBuf,
    /// Where backups go.
    pub store: PathBuf,
    /// The database backed up with the files, if any.
    pub db: Option<FakeDatabase>,
}

/// What [`FakeFilesBackup`] leaves out (relative to the application).
pub const FILES_BACKUP_EXCLUDES: [&str; 3] = [".updater", "storage/logs", "storage/app/public"];

fn copy_tree_excluding(from: &Path, to: &Path, relative: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(to)?;
    fs::set_permissions(
        to,
        fs::Permissions::from_mode(fs::metadata(from)?.permissions().mode()),
    )?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let rel = relative.join(entry.file_name());
        if FILES_BACKUP_EXCLUDES.iter().any(|x| rel == Path::new(x)) {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            copy_tree_excluding(&entry.path(), &target, &rel)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

impl BackupStrategy for FakeFilesBackup {
    fn describe(&self) -> String {
        "fake files backup".into()
    }
    fn kind(&self) -> BackupKind {
        if self.db.is_some() {
            BackupKind::Full
        } else {
            BackupKind::FilesOnly
        }
    }
    fn create(&self, request: &BackupRequest, _p: &dyn ProgressSink) -> Result<Backup> {
        fs::create_dir_all(&self.store).map_err(|e| Error::io("create", &self.store, e))?;
        let id = format!(
            "files-{}-{}",
            request.version,
            fs::read_dir(&self.store).map(|d| d.count()).unwrap_or(0)
        );
        let dir = self.store.join(&id);
        copy_tree_excluding(&self.app, &dir.join("files"), Path::new(""))
            .map_err(|e| Error::io("copy into", &dir, e))?;
        let database_path = match &self.db {
            Some(db) => {
                let target = dir.join("database");
                fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
                for name in ["schema", "rows"] {
                    fs::copy(db.dir.join(name), target.join(name))
                        .map_err(|e| Error::io("copy", db.dir.join(name), e))?;
                }
                Some(target)
            }
            None => None,
        };
        Ok(Backup {
            id,
            kind: self.kind(),
            version: request.version.clone(),
            created_at: chrono::Utc::now(),
            files_path: Some(dir.join("files")),
            database_path,
            size: 0,
            update_id: request.update_id,
            description: request.description.clone(),
        })
    }
    fn verify(&self, backup: &Backup) -> Result<()> {
        match &backup.files_path {
            Some(path) if path.is_dir() => Ok(()),
            _ => Err(Error::integrity("fake files backup", "missing")),
        }
    }
    fn restore(&self, _backup: &Backup, _p: &dyn ProgressSink) -> Result<()> {
        Err(Error::precondition(
            "restore",
            "the fake files backup restores only through the pipeline (stage_files)",
        ))
    }
    fn stage_files(&self, backup: &Backup, target: &Path, _p: &dyn ProgressSink) -> Result<()> {
        let files = backup
            .files_path
            .as_ref()
            .ok_or_else(|| Error::integrity("fake files backup", "no files part"))?;
        copy_tree_excluding(files, target, Path::new(""))
            .map_err(|e| Error::io("copy into", target, e))
    }
    fn restore_database(&self, backup: &Backup, _p: &dyn ProgressSink) -> Result<()> {
        let (Some(db), Some(dir)) = (&self.db, &backup.database_path) else {
            return Err(Error::integrity("fake files backup", "no database part"));
        };
        for name in ["schema", "rows"] {
            let temp = db.dir.join(format!(".{name}.restore"));
            fs::copy(dir.join(name), &temp).map_err(|e| Error::io("copy into", &temp, e))?;
            fs::rename(&temp, db.dir.join(name)).map_err(|e| Error::io("rename", &temp, e))?;
        }
        Ok(())
    }
    fn delete(&self, backup: &Backup) -> Result<()> {
        if let Some(dir) = backup.files_path.as_ref().and_then(|p| p.parent()) {
            let _ = fs::remove_dir_all(dir);
        }
        Ok(())
    }
    fn size(&self, _backup: &Backup) -> Result<u64> {
        Ok(0)
    }
}
