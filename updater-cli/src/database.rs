//! `[backup.database]` → a database engine of `updater-backup`, with the
//! password read from an environment variable or a 0600 file (never from
//! the configuration file, never printed).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use updater_backup::database::{MysqlDatabase, PostgresDatabase, RestoreTest, SqliteDatabase};
use updater_backup::{CompositeBackup, DatabaseBackup, DatabaseEngine, FileBackup, Secret};
use updater_core::backup::BackupStrategy;
use updater_core::command::ChildLedger;

use crate::config::{Config, DatabaseKind, DatabaseSection, RestoreTestSetting};
use crate::error::{CliError, Result};

/// The two strategies a configured database gives: the snapshot taken
/// inside the maintenance window, and files + database as one backup.
pub struct DatabaseStrategies {
    /// Database only (rollback snapshot).
    pub snapshot: Arc<dyn BackupStrategy>,
    /// Files and database together (`backup create`).
    pub full: Arc<dyn BackupStrategy>,
}

impl std::fmt::Debug for DatabaseStrategies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseStrategies")
            .field("snapshot", &self.snapshot.describe())
            .finish_non_exhaustive()
    }
}

/// The snapshot taken inside the maintenance window is verified by
/// checksum only (a restore test there would lengthen the window); the
/// restore test runs before the window instead, on a trial dump
/// (`rehearse`), and on manual backups.
fn strategies<E: DatabaseEngine + Clone + 'static>(
    engine: E,
    files: &FileBackup,
    backup_dir: &Path,
    restore_test: RestoreTestSetting,
) -> DatabaseStrategies {
    let mut snapshot =
        DatabaseBackup::new(engine.clone(), backup_dir).with_restore_test(RestoreTest::Never);
    snapshot = match restore_test {
        RestoreTestSetting::Auto => snapshot.with_rehearsal(engine.default_restore_test()),
        RestoreTestSetting::Always => snapshot.with_rehearsal(RestoreTest::Always),
        RestoreTestSetting::Never => snapshot.with_rehearsal(RestoreTest::Never),
    };
    DatabaseStrategies {
        snapshot: Arc::new(snapshot),
        full: Arc::new(CompositeBackup::new(files.clone(), engine)),
    }
}

fn value_error(config: &Config, key: &str, message: impl Into<String>) -> CliError {
    config.error_at(key, message)
}

/// The connection fields, from `url` or the separate keys.
struct Target {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    database: Option<String>,
    path: Option<PathBuf>,
}

fn target(config: &Config, db: &DatabaseSection) -> Result<Target> {
    let Some(text) = &db.url else {
        return Ok(Target {
            host: db.host.clone(),
            port: db.port,
            user: db.user.clone(),
            database: db.database.clone(),
            path: db.path.clone(),
        });
    };
    if db.kind == DatabaseKind::Sqlite {
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .unwrap_or(text);
        return Ok(Target {
            host: None,
            port: None,
            user: None,
            database: None,
            path: Some(PathBuf::from(path)),
        });
    }
    let url = url::Url::parse(text)
        .map_err(|e| value_error(config, "backup.database.url", format!("not a URL: {e}")))?;
    let expected: &[&str] = match db.kind {
        DatabaseKind::Postgres => &["postgres", "postgresql"],
        _ => &["mysql", "mariadb"],
    };
    if !expected.contains(&url.scheme()) {
        return Err(value_error(
            config,
            "backup.database.url",
            format!(
                "scheme {:?} does not match kind (expected {})",
                url.scheme(),
                expected.join(" or ")
            ),
        ));
    }
    let database = url.path().trim_start_matches('/').to_string();
    Ok(Target {
        host: url.host_str().map(str::to_string),
        port: url.port(),
        user: (!url.username().is_empty()).then(|| url.username().to_string()),
        database: (!database.is_empty()).then_some(database),
        path: None,
    })
}

fn password(config: &Config, db: &DatabaseSection) -> Result<Option<Secret>> {
    if let Some(name) = &db.password_env {
        return match std::env::var(name) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(_) => Err(value_error(
                config,
                "backup.database.password_env",
                format!("environment variable {name} is not set"),
            )),
        };
    }
    let Some(file) = &db.password_file else {
        return Ok(None);
    };
    let key = "backup.database.password_file";
    let meta = std::fs::metadata(file)
        .map_err(|e| value_error(config, key, format!("{}: {e}", file.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(value_error(
            config,
            key,
            format!(
                "{} is readable by group or others; chmod 600 it",
                file.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| value_error(config, key, format!("{}: {e}", file.display())))?;
    Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n']))))
}

/// Applies host, port, user and password to a server engine (PostgreSQL
/// and MySQL share these builder methods but no trait).
macro_rules! with_connection {
    ($engine:expr, $target:expr, $password:expr) => {{
        let mut engine = $engine;
        if let Some(host) = $target.host {
            engine = engine.with_host(host);
        }
        if let Some(port) = $target.port {
            engine = engine.with_port(port);
        }
        if let Some(user) = $target.user {
            engine = engine.with_user(user);
        }
        if let Some(secret) = $password {
            engine = engine.with_password(secret);
        }
        engine
    }};
}

/// The strategies of `[backup.database]`, or `None` when it is absent.
pub fn database_strategies(
    config: &Config,
    files: &FileBackup,
) -> Result<Option<DatabaseStrategies>> {
    let Some(db) = &config.file.backup.database else {
        return Ok(None);
    };
    let t = target(config, db)?;
    let backup_dir = config.backup_dir();
    // The pipeline's ledger (`<state>/children`): recovery stops a dump a dead updater left running.
    let ledger = ChildLedger::new(config.state_dir().join("children"));
    let required = |value: Option<String>, key: &str| {
        value.ok_or_else(|| value_error(config, key, "is required"))
    };
    Ok(Some(match db.kind {
        DatabaseKind::Sqlite => {
            let path = t
                .path
                .ok_or_else(|| value_error(config, "backup.database.path", "is required"))?;
            let path = if path.is_absolute() {
                path
            } else {
                config.app_dir().join(path)
            };
            strategies(
                SqliteDatabase::new(path),
                files,
                &backup_dir,
                db.restore_test,
            )
        }
        DatabaseKind::Postgres => {
            let engine =
                PostgresDatabase::new(required(t.database.clone(), "backup.database.database")?)
                    .with_child_ledger(ledger);
            strategies(
                with_connection!(engine, t, password(config, db)?),
                files,
                &backup_dir,
                db.restore_test,
            )
        }
        DatabaseKind::Mysql => {
            let engine =
                MysqlDatabase::new(required(t.database.clone(), "backup.database.database")?)
                    .with_child_ledger(ledger);
            strategies(
                with_connection!(engine, t, password(config, db)?),
                files,
                &backup_dir,
                db.restore_test,
            )
        }
    }))
}
