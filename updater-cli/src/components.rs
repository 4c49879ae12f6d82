//! Turns a [`Config`] into the parts of the updater: the release source,
//! the history store, the files backup, the maintenance switch, the
//! migrator, hooks and health checks — and the [`Updater`] that holds them.
//! This is the one place that wires the workspace's crates together.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use updater_backup::FileBackup;
use updater_core::automation::{InMemoryScheduleStore, ScheduleStore};
use updater_core::backup::{BackupKind, BackupStrategy};
use updater_core::command::ShellCommand;
use updater_core::health::{CommandHealthCheck, HealthCheck};
use updater_core::history::{HistoryStore, InMemoryHistoryStore};
use updater_core::hook::CommandHook;
use updater_core::maintenance::{CommandMaintenance, FlagFileMaintenance, MaintenanceSwitch};
use updater_core::migrate::CommandMigrator;
use updater_core::outbox::{InMemoryOutbox, NotificationOutbox};
use updater_core::package::VerificationPolicy;
use updater_core::package::signature::PublicKeys;
use updater_core::pipeline::{Updater, UpdaterBuilder};
use updater_core::source::ReleaseSource;
use updater_core::version::UpgradePolicy;
use updater_source_github::{GitHubSource, HttpHealthCheck, HttpSettings, ManifestSource};
use updater_store_diesel::DieselHistoryStore;

use crate::config::{Config, SourceKind};
use crate::database::{DatabaseStrategies, database_strategies};
use crate::error::{CliError, Result};

/// What a command will do, which decides what building the parts may
/// require or create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads (`status`, `history`, `notifications`, `backup list`):
    /// creates nothing — without a history database yet, the history is empty.
    ReadOnly,
    /// Changes the application but never asks the release source
    /// (`rollback`, `recover`, `backup ...`): a missing token is no error.
    Local,
    /// Asks the release source (`check`, `apply`, `schedule`).
    Remote,
    /// Puts the application back in order (`recover`, `unlock`): like
    /// [`Local`](Access::Local), but an unreachable history database (a
    /// server that is down, a disk full to the last byte) is a warning,
    /// not an error — the journal on disk is what recovery needs.
    Recovery,
}

/// Everything a command needs, built from the configuration.
pub struct Components {
    /// The configuration it was built from.
    pub config: Config,
    /// The updater.
    pub updater: Updater,
    /// The history (also inside `updater`).
    pub history: Arc<dyn HistoryStore>,
    /// The files backup (also inside `updater`).
    pub files_backup: Arc<FileBackup>,
    /// The maintenance switch (also inside `updater`), when maintenance mode is on.
    pub maintenance: Option<Arc<dyn MaintenanceSwitch>>,
    /// The database snapshot and the files + database backup, when
    /// `[backup.database]` is configured.
    pub database: Option<DatabaseStrategies>,
    /// The notifier inside `updater`: routes notices to the channels of
    /// `[notifications]` through the outbox, and delivers them.
    pub notifier: updater_notify::Dispatcher,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Components")
            .field("updater", &self.updater)
            .finish_non_exhaustive()
    }
}

impl Components {
    /// Builds every part for a command with `access`. Opens the history
    /// database (creating it, unless the access is read-only).
    pub fn build(config: Config, access: Access) -> Result<Components> {
        let Parts {
            source,
            files_backup,
            database,
            health_checks,
        } = Parts::build(&config, access)?;
        let app_dir = config.app_dir();
        let state_dir = config.state_dir();
        let HistoryParts {
            history,
            outbox,
            schedule,
        } = open_history(&config, access)?;
        let notifier = crate::notify::dispatcher(&config, history.clone(), outbox)?;
        let maintenance = build_maintenance(&config, &app_dir, &state_dir);

        let f = &config.file;
        let mut builder = UpdaterBuilder::new(&app_dir)
            .with_shared_source(source)
            .with_history(history.clone())
            .with_schedule_store(schedule)
            .with_notifier(Arc::new(notifier.clone()))
            .with_files_backup(files_backup.clone());
        builder = match &maintenance {
            Some(switch) => builder.with_maintenance(switch.clone()),
            None => builder.without_maintenance(),
        };
        if let Some(database) = &database {
            builder = builder.with_database_backup(database.snapshot.clone());
        }
        for check in health_checks {
            builder = builder.with_health_check(check);
        }
        if let Some(migrations) = &f.migrations {
            let timeout = Duration::from_secs(migrations.timeout_secs);
            let command = |line: &str, name: &str| {
                ShellCommand::new(line)
                    .with_name(name)
                    .with_timeout(timeout)
                    .with_working_dir(&app_dir)
            };
            let mut migrator = CommandMigrator::new(command(&migrations.up, "migrations.up"));
            if let Some(down) = &migrations.down {
                migrator = migrator.with_revert(command(down, "migrations.down"));
            }
            if let Some(check) = &migrations.check {
                migrator = migrator.with_check(command(check, "migrations.check"));
            }
            if let Some(status) = &migrations.status {
                migrator = migrator.with_status(command(status, "migrations.status"));
            }
            builder = builder.with_migrator(Arc::new(migrator));
        }
        let hook_timeout = Duration::from_secs(f.hooks.timeout_secs);
        for (index, line) in f.hooks.after_swap.iter().enumerate() {
            builder = builder.with_hook(Arc::new(CommandHook::after_swap(
                ShellCommand::new(line.as_str())
                    .with_name(format!("hooks.after_swap[{index}]"))
                    .with_timeout(hook_timeout),
            )));
        }
        for (index, line) in f.hooks.after_rollback.iter().enumerate() {
            builder = builder.with_hook(Arc::new(CommandHook::after_rollback(
                ShellCommand::new(line.as_str())
                    .with_name(format!("hooks.after_rollback[{index}]"))
                    .with_timeout(hook_timeout),
            )));
        }

        let public_keys = PublicKeys::parse_all(
            f.source
                .iter()
                .flat_map(|s| s.public_keys.iter().map(String::as_str)),
        )
        .map_err(|e| config.blame("source.public_keys", e))?;
        let verify_checksum = f.source.as_ref().is_none_or(|s| s.verify_checksum);
        let asset_pattern = f
            .source
            .as_ref()
            .and_then(|s| s.asset_pattern.as_ref())
            .cloned();
        let channel = f.channel;
        let app = f.app.clone();
        let package = f.package.clone();
        let requirements = config.requirements();
        let delta = f.delta.clone();
        let auto = &f.auto_update;
        let auto_update = updater_core::automation::AutoUpdatePolicy {
            level: auto.level,
            per_channel: auto.channels.iter().map(|(c, l)| (*c, *l)).collect(),
            skip: auto.skip.clone(),
            windows: auto.windows.clone(),
        };
        let probation = (auto.probation_minutes > 0)
            .then(|| Duration::from_secs(auto.probation_minutes.saturating_mul(60)));
        let health_timeout = config.health_timeout();
        let health_interval = Duration::from_secs(f.health.interval_secs.max(1));
        let retry_after = Duration::from_secs(f.maintenance.retry_after_secs);
        let retention = f.backup.retention;
        let drain = updater_core::pipeline::Drain {
            wait: Duration::from_secs_f64(f.maintenance.drain_secs.max(0.0)),
            command: f.maintenance.drain_command.as_ref().map(|line| {
                ShellCommand::new(line.as_str())
                    .with_name("maintenance.drain_command")
                    .with_timeout(Duration::from_secs(120))
                    .with_working_dir(&app_dir)
            }),
        };
        let updater = builder
            .configure(|c| {
                c.channel = channel;
                c.policy = UpgradePolicy {
                    allow_downgrade: app.allow_downgrade,
                    allow_reinstall: app.allow_reinstall,
                };
                if let Some(paths) = &app.preserved_paths {
                    c.preserved_paths = paths.clone();
                }
                c.asset_pattern = asset_pattern;
                c.verification = VerificationPolicy::default()
                    .with_require_checksum(verify_checksum)
                    .with_public_keys(public_keys);
                c.health_timeout = health_timeout;
                c.maintenance_retry_after = retry_after;
                c.keep_releases = app.keep_releases;
                if let Some(file) = &app.version_file {
                    c.version_file = file.clone();
                }
                c.initial_version = app.initial_version.clone();
                c.data_conflicts = app.data_conflicts;
                c.discarded_paths = app.discarded_paths.clone();
                c.reserve_bytes = app.reserve_mib << 20;
                c.health_interval = health_interval;
                c.drain = drain;
                c.backup_retention = Some(retention);
                c.requirements = requirements;
                c.delta.enabled = delta.enabled;
                c.delta.max_changed_percent = delta.max_changed_percent;
                c.delta.unchanged = delta.unchanged;
                c.auto_update = auto_update;
                c.probation = probation;
                c.extraction = c
                    .extraction
                    .clone()
                    .with_max_total_bytes(package.max_unpacked_mib.saturating_mul(1 << 20))
                    .with_max_entries(package.max_entries)
                    .with_max_compression_ratio(package.max_compression_ratio)
                    .with_free_space_margin(
                        package.free_space_margin_percent,
                        package.free_space_margin_mib.saturating_mul(1 << 20),
                    );
            })
            .build()
            .map_err(|e| config.blame("app", e))?;
        Ok(Components {
            config,
            updater,
            history,
            files_backup,
            maintenance,
            database,
            notifier,
        })
    }

    /// Who the operator is, for history and the update lock: the operating
    /// system's user running the command.
    pub fn initiated_by(&self) -> String {
        updater_core::pipeline::os_user()
    }

    /// What `backup create` takes: files and database together when a
    /// database is configured, else the files.
    pub fn manual_backup(&self) -> Arc<dyn BackupStrategy> {
        match &self.database {
            Some(database) => database.full.clone(),
            None => self.files_backup.clone(),
        }
    }

    /// The strategy that restores a backup of `kind`.
    pub fn strategy_for(&self, kind: BackupKind) -> Result<Arc<dyn BackupStrategy>> {
        match (kind, &self.database) {
            (BackupKind::FilesOnly, _) => Ok(self.files_backup.clone()),
            (BackupKind::Full, Some(database)) => Ok(database.full.clone()),
            (BackupKind::DatabaseOnly, Some(database)) => Ok(database.snapshot.clone()),
            (_, None) => Err(CliError::ConfigValue {
                path: self.config.path.clone(),
                line: None,
                key: "backup.database".into(),
                message: format!(
                    "a {} backup holds a database, but no [backup.database] is configured to restore it into",
                    kind.as_str()
                ),
            }),
        }
    }
}

/// The parts whose construction changes nothing on disk, so that
/// `config check` can build them too: building them is what proves that
/// URLs, globs, tokens and passwords are usable. Their errors are
/// configuration errors naming the key (exit code 2).
struct Parts {
    source: Arc<dyn ReleaseSource>,
    files_backup: Arc<FileBackup>,
    database: Option<DatabaseStrategies>,
    health_checks: Vec<Arc<dyn HealthCheck>>,
}

impl Parts {
    fn build(config: &Config, access: Access) -> Result<Parts> {
        let app_dir = config.app_dir();
        if !app_dir.is_dir() {
            return Err(config.error_at(
                "app.dir",
                format!("{} is not a directory", app_dir.display()),
            ));
        }
        let source = build_source(config, &config.state_dir(), access == Access::Remote)
            .map_err(|e| config.blame("source", e))?;
        let files_backup = Arc::new(
            FileBackup::builder(&app_dir, config.backup_dir())
                .with_excludes(config.file.backup.exclude.iter().cloned())
                .with_compression_level(config.file.backup.compression_level)
                .build()
                .map_err(|e| config.blame("backup.exclude", e))?,
        );
        let database = database_strategies(config, &files_backup)
            .map_err(|e| config.blame("backup.database", e))?;
        let health = &config.file.health;
        let mut health_checks: Vec<Arc<dyn HealthCheck>> = Vec::new();
        if let Some(command) = &health.command {
            health_checks.push(Arc::new(CommandHealthCheck::new(
                ShellCommand::new(command.as_str())
                    .with_name("health.command")
                    .with_timeout(config.health_timeout()),
            )));
        }
        if let Some(url) = &health.url {
            let mut check =
                HttpHealthCheck::builder(url.as_str()).with_expected_status(health.expected_status);
            if let Some(text) = &health.body_contains {
                check = check.with_body_contains(text.as_str());
            }
            health_checks.push(Arc::new(
                check.build().map_err(|e| config.blame("health.url", e))?,
            ));
        }
        Ok(Parts {
            source,
            files_backup,
            database,
            health_checks,
        })
    }
}

/// Checks everything `config check` can check without changing anything:
/// the application directory exists, and the source, backups, database
/// credentials and health checks can be built.
pub fn validate(config: &Config) -> Result<()> {
    Parts::build(config, Access::Remote)?;
    crate::notify::channels(config).map(drop)?;
    check_paths_survive_the_swap(config)
}

/// Refuses, naming the key and the path, a database file, a maintenance
/// flag or a backup directory that an update would replace or lose: the
/// application directory itself (or its parent) as backup directory, or a
/// path the installed release ships (application data is carried across
/// updates; a release's own file is replaced by the next release's).
fn check_paths_survive_the_swap(config: &Config) -> Result<()> {
    let app = config.app_dir();
    let core = updater_core::pipeline::UpdaterConfig::new(&app);
    let shipped = core.installed_file_list().ok().flatten();
    let inside = |path: &std::path::Path| -> Option<String> {
        path.strip_prefix(&app)
            .ok()
            .map(|rel| rel.to_string_lossy().into_owned())
    };
    let check = |key: &str, path: PathBuf| -> Result<()> {
        let Some(relative) = inside(&path) else {
            return Ok(());
        };
        if relative.is_empty() {
            return Err(config.error_at(
                key,
                format!("{} is the application directory itself", path.display()),
            ));
        }
        if relative.starts_with(updater_core::pipeline::STATE_DIR_NAME) {
            return Ok(());
        }
        if let Some(list) = &shipped
            && list.contains(&relative)
        {
            return Err(config.error_at(
                key,
                format!(
                    "{} is a file the installed release ships: the next update would replace it; keep it outside the release's files (e.g. in a preserved path)",
                    path.display()
                ),
            ));
        }
        Ok(())
    };
    if let Some(db) = &config.file.backup.database
        && let Some(path) = &db.path
    {
        let path = if path.is_absolute() {
            path.clone()
        } else {
            app.join(path)
        };
        check("backup.database.path", path)?;
    }
    if let Some(flag) = &config.file.maintenance.flag_file {
        let path = if flag.is_absolute() {
            flag.clone()
        } else {
            app.join(flag)
        };
        check("maintenance.flag_file", path)?;
    }
    let backups = config.backup_dir();
    if app.starts_with(&backups) {
        return Err(config.error_at(
            "backup.dir",
            format!(
                "{} contains the application directory: backups would back up themselves",
                backups.display()
            ),
        ));
    }
    check("backup.dir", backups)
}

/// The history store and the notification outbox (the same database). A
/// read-only command on an application that has no history database yet
/// gets an empty in-memory history instead of a new file. For read-only
/// and recovery commands an unreachable database is a warning: they go on
/// with the state on disk.
/// The stores kept in the history database.
struct HistoryParts {
    history: Arc<dyn HistoryStore>,
    outbox: Arc<dyn NotificationOutbox>,
    schedule: Arc<dyn ScheduleStore>,
}

impl HistoryParts {
    /// Empty stores in memory: nothing is kept.
    fn in_memory() -> Self {
        HistoryParts {
            history: Arc::new(InMemoryHistoryStore::new()),
            outbox: Arc::new(InMemoryOutbox::new()),
            schedule: Arc::new(InMemoryScheduleStore::new()),
        }
    }
}

fn open_history(config: &Config, access: Access) -> Result<HistoryParts> {
    match open_history_store(config, access) {
        Err(CliError::Update(error)) if matches!(access, Access::ReadOnly | Access::Recovery) => {
            crate::output::note(&format!(
                "warning: the history is unavailable ({error}); going on with the state on disk, nothing will be recorded in history"
            ));
            Ok(HistoryParts::in_memory())
        }
        other => other,
    }
}

fn open_history_store(config: &Config, access: Access) -> Result<HistoryParts> {
    let url = config.history_url()?;
    let is_default_file = config.file.history.database_url.is_none()
        && config.file.history.database_url_env.is_none();
    if access == Access::ReadOnly && is_default_file && !std::path::Path::new(&url).exists() {
        return Ok(HistoryParts::in_memory());
    }
    if is_default_file {
        // Inside the state directory: created (0700) with it.
        let state_dir = config.state_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&state_dir)
            .map_err(|e| CliError::io("create directory", &state_dir, e))?;
    }
    let mut history = DieselHistoryStore::builder(url);
    if let Some(prefix) = &config.file.history.table_prefix {
        history = history.with_table_prefix(prefix.clone());
    }
    let history = history.build().map_err(|e| match e {
        e @ (updater_store_diesel::StoreError::InvalidPrefix { .. }
        | updater_store_diesel::StoreError::UnsupportedUrl { .. }) => {
            config.blame("history.database_url", e)
        }
        // A server that is down or a full disk is not a configuration mistake.
        other => CliError::from(other),
    })?;
    let history = Arc::new(history);
    Ok(HistoryParts {
        history: history.clone(),
        outbox: history.clone(),
        schedule: history,
    })
}

fn build_source(
    config: &Config,
    state_dir: &std::path::Path,
    needs_token: bool,
) -> Result<Arc<dyn ReleaseSource>> {
    let Some(section) = &config.file.source else {
        return Err(config.error_at(
            "source",
            "a [source] section is required (or set UPDATE_CHECK_URL)",
        ));
    };
    let settings = HttpSettings::default()
        .with_request_timeout(Duration::from_secs(section.request_timeout_secs))
        .with_transfer_deadline(Duration::from_secs(section.transfer_deadline_secs))
        .with_minimum_speed(
            section.minimum_speed_bytes,
            Duration::from_secs(section.minimum_speed_window_secs),
        )
        .with_etag_cache_file(state_dir.join("http-etag-cache.json"));
    let token = match config.source_token() {
        Ok(token) => token,
        // A command that never asks the source needs no token.
        Err(_) if !needs_token => None,
        Err(e) => return Err(e),
    };
    Ok(match section.kind {
        SourceKind::Github => {
            let mut builder = GitHubSource::builder(
                section.owner.clone().unwrap_or_default(),
                section.repo.clone().unwrap_or_default(),
            )
            .with_http(settings);
            if let Some(base) = &section.api_base {
                builder = builder.with_api_base(base.as_str());
            }
            if let Some(token) = token {
                builder = builder.with_token(token);
            }
            if let Some(key) = section.public_keys.first() {
                builder = builder.with_minisign_public_key(key.as_str());
            }
            Arc::new(builder.build()?)
        }
        SourceKind::Manifest => {
            let mut builder = ManifestSource::builder(section.url.clone().unwrap_or_default())
                .with_http(settings);
            if let Some(token) = token {
                builder = builder.with_token(token);
            }
            Arc::new(builder.build()?)
        }
    })
}

/// The maintenance switch the configuration asks for; `None` when
/// maintenance mode is turned off (`MAINTENANCE_MODE_DURING_UPDATE=false`):
/// the application keeps serving during the swap.
fn build_maintenance(
    config: &Config,
    app_dir: &std::path::Path,
    state_dir: &std::path::Path,
) -> Option<Arc<dyn MaintenanceSwitch>> {
    let m = &config.file.maintenance;
    if !m.enabled {
        return None;
    }
    Some(
        if let (Some(enable), Some(disable)) = (&m.enable, &m.disable) {
            let ledger = updater_core::command::ChildLedger::new(state_dir.join("children"));
            let command = |line: &str, name: &str| {
                ShellCommand::new(line)
                    .with_name(name)
                    .with_ledger(ledger.clone())
            };
            let mut switch = CommandMaintenance::new(
                command(enable, "maintenance.enable"),
                command(disable, "maintenance.disable"),
            )
            .in_dir(app_dir);
            if let Some(status) = &m.status {
                switch = switch.with_status(command(status, "maintenance.status"));
            }
            for file in &m.flag_files {
                switch = switch.with_flag_file(file.clone());
            }
            Arc::new(switch)
        } else {
            let path: PathBuf = match &m.flag_file {
                Some(file) if file.is_absolute() => file.clone(),
                Some(file) => app_dir.join(file),
                None => state_dir.join("maintenance.json"),
            };
            Arc::new(FlagFileMaintenance::new(path))
        },
    )
}
