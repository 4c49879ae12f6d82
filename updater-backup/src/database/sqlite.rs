//! SQLite: an online snapshot with `VACUUM INTO` (a consistent read
//! transaction, safe while the application writes), restored by copying the
//! snapshot beside the database and renaming it over the file.
//!
//! The restore test does what a restore does short of the rename: it copies
//! the snapshot (into the backup's directory, under a hidden name), opens
//! the copy read-write as the application would, runs `PRAGMA
//! integrity_check`, reads `sqlite_master` and counts the rows of every
//! table, and removes the copy.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use updater_core::progress::ProgressSink;

use super::{DatabaseEngine, RestoreTest, report_done};
use crate::error::{BackupError, Result};

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    path: PathBuf,
    busy_timeout: Duration,
}

impl SqliteDatabase {
    /// The database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteDatabase {
            path: path.into(),
            busy_timeout: Duration::from_secs(30),
        }
    }

    /// How long to wait for a lock held by the application (default 30 s).
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    fn sqlite_error(
        &self,
        action: &'static str,
        path: &Path,
    ) -> impl Fn(rusqlite::Error) -> BackupError {
        let path = path.to_path_buf();
        move |source| BackupError::Sqlite {
            action,
            path: path.clone(),
            source,
        }
    }

    fn open(&self, path: &Path, flags: OpenFlags) -> Result<Connection> {
        let connection =
            Connection::open_with_flags(path, flags).map_err(self.sqlite_error("open", path))?;
        connection
            .busy_timeout(self.busy_timeout)
            .map_err(self.sqlite_error("configure", path))?;
        Ok(connection)
    }
}

fn sidecars(path: &Path) -> [PathBuf; 3] {
    let name = path.as_os_str().to_owned();
    let with = |suffix: &str| {
        let mut n = name.clone();
        n.push(suffix);
        PathBuf::from(n)
    };
    [with("-wal"), with("-shm"), with("-journal")]
}

impl DatabaseEngine for SqliteDatabase {
    fn describe(&self) -> String {
        format!("SQLite database {}", self.path.display())
    }

    fn dump_file_name(&self) -> &'static str {
        "database.sqlite"
    }

    fn preflight(&self) -> Result<()> {
        let connection = self.open(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        connection
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| {
                row.get::<_, i64>(0)
            })
            .map_err(self.sqlite_error("read", &self.path))?;
        Ok(())
    }

    fn dump(&self, dest: &Path, progress: &dyn ProgressSink) -> Result<()> {
        let connection = self.open(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let target = dest.to_str().ok_or_else(|| BackupError::NonUtf8Path {
            path: dest.to_string_lossy().into_owned(),
        })?;
        connection
            .execute("VACUUM INTO ?1", [target])
            .map_err(self.sqlite_error("snapshot (VACUUM INTO)", &self.path))?;
        let size = fs::metadata(dest)
            .map_err(|e| BackupError::io("inspect", dest, e))?
            .len();
        report_done(progress, size, self.describe());
        Ok(())
    }

    fn check_dump(&self, dump: &Path) -> Result<()> {
        let connection = self
            .open(dump, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| BackupError::integrity(dump.display().to_string(), e.to_string()))?;
        let verdict: String = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .map_err(|e| BackupError::integrity(dump.display().to_string(), e.to_string()))?;
        if verdict != "ok" {
            return Err(BackupError::integrity(dump.display().to_string(), verdict));
        }
        Ok(())
    }

    fn restore(&self, dump: &Path, progress: &dyn ProgressSink) -> Result<()> {
        let dir = updater_core::durable::parent_of(&self.path);
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A random name created with O_EXCL (never follows or reuses a file);
        // removed on any error before it is renamed into place.
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{name}.restore-"))
            .tempfile_in(dir)
            .map_err(|e| BackupError::io("create a temporary file in", dir, e))?;
        let temp_path = temp.path().to_path_buf();
        let mut source = fs::File::open(dump).map_err(|e| BackupError::io("open", dump, e))?;
        let size = std::io::copy(&mut source, temp.as_file_mut())
            .map_err(|e| BackupError::io("copy", &temp_path, e))?;
        // The database keeps its mode; a new one takes the dump's.
        let mode = fs::metadata(&self.path)
            .or_else(|_| source.metadata())
            .map_err(|e| BackupError::io("inspect", dump, e))?
            .permissions();
        temp.as_file()
            .set_permissions(mode)
            .map_err(|e| BackupError::io("set mode of", &temp_path, e))?;
        temp.as_file()
            .sync_all()
            .map_err(|e| BackupError::io("fsync", &temp_path, e))?;
        // A write-ahead log of the old database must not be replayed onto the new one.
        for sidecar in sidecars(&self.path) {
            match fs::remove_file(&sidecar) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BackupError::io("remove", &sidecar, e)),
            }
        }
        temp.persist(&self.path)
            .map_err(|e| BackupError::io("rename into place", &self.path, e.error))?;
        updater_core::durable::sync_dir(dir)
            .map_err(|e| BackupError::io("fsync", dir, std::io::Error::other(e.to_string())))?;
        report_done(progress, size, format!("restored {}", self.describe()));
        Ok(())
    }

    fn restore_test(&self, dump: &Path) -> Result<()> {
        let subject = dump.display().to_string();
        let not_restorable = |reason: String| BackupError::NotRestorable {
            subject: subject.clone(),
            reason,
        };
        let dir = updater_core::durable::parent_of(dump);
        let copy = tempfile::Builder::new()
            .prefix(".restore-test-")
            .suffix(".sqlite")
            .tempfile_in(dir)
            .map_err(|e| BackupError::io("create a scratch copy in", dir, e))?;
        fs::copy(dump, copy.path()).map_err(|e| BackupError::io("copy", copy.path(), e))?;
        let connection = self
            .open(copy.path(), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| not_restorable(e.to_string()))?;
        let verdict: String = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .map_err(|e| not_restorable(e.to_string()))?;
        if verdict != "ok" {
            return Err(not_restorable(verdict));
        }
        let tables: Vec<String> = connection
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .map_err(|e| not_restorable(format!("cannot read sqlite_master: {e}")))?;
        for table in &tables {
            connection
                .query_row(
                    &format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")),
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .map_err(|e| not_restorable(format!("cannot read table {table}: {e}")))?;
        }
        Ok(())
    }

    fn default_restore_test(&self) -> RestoreTest {
        RestoreTest::Always
    }
}
