use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backup::BackupStrategy;
use crate::command::ShellCommand;
use crate::data::ConflictPolicy;
use crate::error::{Error, Result};
use crate::health::HealthCheck;
use crate::history::{HistoryStore, InMemoryHistoryStore};
use crate::hook::Hook;
use crate::maintenance::{FlagFileMaintenance, MaintenanceSwitch};
use crate::migrate::Migrator;
use crate::notify::{LogNotifier, Notifier};
use crate::package::delta::DeltaSettings;
use crate::package::{ExtractOptions, VerificationPolicy};
use crate::source::ReleaseSource;
use crate::version::{Channel, UpgradePolicy, Version};

use super::Updater;
use crate::failpoint::Failpoints;

/// The name of the state directory inside the application directory.
pub const STATE_DIR_NAME: &str = ".updater";

/// The preserved paths used when none are configured.
pub const DEFAULT_PRESERVED: [&str; 3] = [".env", "storage/logs", "storage/app/public"];

/// Letting requests that passed the maintenance check just before it went
/// on finish before the database snapshot (guarantee 5: no acknowledged
/// write is lost by a rollback).
///
/// An application keeps this guarantee when it checks maintenance mode at
/// the start of each request, before opening a transaction, and its
/// requests finish within [`wait`](Self::wait) — or when [`command`](Self::command)
/// returns only once no request is in flight (e.g. by polling a counter the
/// application keeps). Both cost their duration inside the maintenance window.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    /// A fixed pause.
    pub wait: Duration,
    /// A command that exits 0 once no request is in flight (run before the pause).
    pub command: Option<ShellCommand>,
}

/// Settings of an [`Updater`]. Built by [`UpdaterBuilder`].
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// The application directory (its top-level entries are swapped).
    pub app_dir: PathBuf,
    /// Journal, lock, installed state, staging, kept releases: `<app>/.updater`.
    pub state_dir: PathBuf,
    /// The channel to follow.
    pub channel: Channel,
    /// Downgrade and reinstall rules.
    pub policy: UpgradePolicy,
    /// Paths carried from release to release by rename (relative to the app).
    pub preserved_paths: Vec<PathBuf>,
    /// Which asset of a release to install: a glob where `{version}` and
    /// `{target}` stand for the release's version and this build's target
    /// ([`Release::select_asset`](crate::release::Release::select_asset)).
    pub asset_pattern: Option<String>,
    /// Checksum and signature rules.
    pub verification: VerificationPolicy,
    /// Extraction limits.
    pub extraction: ExtractOptions,
    /// The health check deadline; past it the update rolls back (`ROLLBACK_TIMEOUT`).
    pub health_timeout: Duration,
    /// Expiry written into the maintenance notice (longer than any normal update).
    pub maintenance_expiry: Duration,
    /// The `Retry-After` the maintenance notice asks clients to wait.
    pub maintenance_retry_after: Duration,
    /// A version check younger than this is answered from history.
    pub check_cache: Duration,
    /// How many previous release trees to keep for rollback.
    pub keep_releases: usize,
    /// A file inside the application holding its version, read when there
    /// is no installed state yet (default `VERSION`).
    pub version_file: PathBuf,
    /// The version to assume when there is neither installed state nor version file.
    pub initial_version: Option<Version>,
    /// What to do when application data and a new release want the same
    /// path, or a shipped file was modified in place.
    pub data_conflicts: ConflictPolicy,
    /// Application data that must not follow an update (version-specific
    /// caches such as `bootstrap/cache/*.php`), as glob patterns relative to
    /// the application: left with the old tree.
    pub discarded_paths: Vec<String>,
    /// Waiting for in-flight requests after maintenance goes on.
    pub drain: Drain,
    /// How long between two probes of a failing health check.
    pub health_interval: Duration,
    /// Space set aside before the window so an undo can write its journal
    /// on a disk that filled up meanwhile (default 16 MiB).
    pub reserve_bytes: u64,
    /// Verified backups of each kind kept after every update and by
    /// [`Updater::prune_backups`] (default 3; `None`: never delete).
    pub backup_retention: Option<usize>,
    /// How long a committed update stays on probation: its health check
    /// keeps running ([`Updater::automation_round`]) and a failure rolls it
    /// back to the kept release and its database snapshot. `None`: no probation.
    pub probation: Option<Duration>,
    /// Which updates apply without a person, and when.
    pub auto_update: crate::automation::AutoUpdatePolicy,
    /// Checks of the machine (runtime versions, extensions, tools) that must
    /// all pass before anything changes.
    pub requirements: Vec<crate::requirement::Requirement>,
    /// Delta updates: fetch only the changed files of a release built with
    /// `updater release build` ([`crate::package::delta`]).
    pub delta: DeltaSettings,
}

impl UpdaterConfig {
    /// Defaults for an application in `app_dir`.
    pub fn new(app_dir: impl Into<PathBuf>) -> Self {
        let app_dir = app_dir.into();
        UpdaterConfig {
            state_dir: app_dir.join(STATE_DIR_NAME),
            app_dir,
            channel: Channel::Stable,
            policy: UpgradePolicy::default(),
            preserved_paths: DEFAULT_PRESERVED.iter().map(PathBuf::from).collect(),
            asset_pattern: None,
            verification: VerificationPolicy::default(),
            extraction: ExtractOptions::default(),
            health_timeout: Duration::from_secs(300),
            maintenance_expiry: Duration::from_secs(3600),
            maintenance_retry_after: Duration::from_secs(60),
            check_cache: Duration::from_secs(3600),
            keep_releases: 1,
            version_file: PathBuf::from("VERSION"),
            initial_version: None,
            data_conflicts: ConflictPolicy::Refuse,
            discarded_paths: Vec::new(),
            drain: Drain::default(),
            health_interval: Duration::from_secs(1),
            reserve_bytes: 16 << 20,
            backup_retention: Some(3),
            probation: None,
            auto_update: crate::automation::AutoUpdatePolicy::default(),
            requirements: Vec::new(),
            delta: DeltaSettings::default(),
        }
    }

    /// The journal of the transition in progress: `<state>/journal.json`.
    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join("journal.json")
    }
    /// The update lock: `<state>/lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.state_dir.join("lock")
    }
    /// The installed state (current and highest version, kept trees): `<state>/installed.json`.
    pub fn installed_path(&self) -> PathBuf {
        self.state_dir.join("installed.json")
    }
    /// What the running release shipped, when the updater installed it
    /// (read from the installed state; `None` for an application installed by hand).
    pub fn installed_file_list(&self) -> Result<Option<crate::tree::FileList>> {
        match crate::install::InstalledState::load(&self.installed_path())? {
            Some(state) => match state.files {
                Some(path) => crate::tree::FileList::load(&path),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The operator's pause of automatic updates: `<state>/paused.json`.
    pub fn pause_path(&self) -> PathBuf {
        self.state_dir.join("paused.json")
    }

    /// The space set aside for an undo on a full disk: `<state>/reserve`.
    pub fn reserve_path(&self) -> PathBuf {
        self.state_dir.join("reserve")
    }
    pub(crate) fn state_subdir(&self, name: &str, id: &str) -> PathBuf {
        self.state_dir.join(name).join(id)
    }

    /// The name of the state directory if it lies directly inside the app
    /// directory (it must then never be swapped).
    pub(crate) fn reserved_names(&self) -> Vec<String> {
        match self.state_dir.strip_prefix(&self.app_dir) {
            Ok(rel) => rel
                .components()
                .next()
                .map(|c| vec![c.as_os_str().to_string_lossy().into_owned()])
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}

/// Builds an [`Updater`] from trait objects and settings (consuming builder).
///
/// Only the application directory and the release source are required.
/// Defaults: in-memory history, log notifier, a flag-file maintenance switch
/// at `<app>/.updater/maintenance.json` (or none, with
/// [`without_maintenance`](Self::without_maintenance)), no migrator, no
/// health check, no backups.
pub struct UpdaterBuilder {
    pub(crate) config: UpdaterConfig,
    pub(crate) source: Option<Arc<dyn ReleaseSource>>,
    pub(crate) history: Arc<dyn HistoryStore>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) maintenance: Option<Option<Arc<dyn MaintenanceSwitch>>>,
    pub(crate) migrator: Option<Arc<dyn Migrator>>,
    pub(crate) health_checks: Vec<Arc<dyn HealthCheck>>,
    pub(crate) hooks: Vec<Arc<dyn Hook>>,
    pub(crate) files_backup: Option<Arc<dyn BackupStrategy>>,
    pub(crate) database_backup: Option<Arc<dyn BackupStrategy>>,
    pub(crate) failpoints: Failpoints,
    pub(crate) schedule: Arc<dyn crate::automation::ScheduleStore>,
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
}

impl std::fmt::Debug for UpdaterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdaterBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl UpdaterBuilder {
    /// A builder for the application in `app_dir`.
    pub fn new(app_dir: impl Into<PathBuf>) -> Self {
        Self::from_config(UpdaterConfig::new(app_dir))
    }

    /// A builder starting from `config`.
    pub fn from_config(config: UpdaterConfig) -> Self {
        UpdaterBuilder {
            config,
            source: None,
            history: Arc::new(InMemoryHistoryStore::new()),
            notifier: Arc::new(LogNotifier),
            maintenance: None,
            migrator: None,
            health_checks: Vec::new(),
            hooks: Vec::new(),
            files_backup: None,
            database_backup: None,
            failpoints: Failpoints::default(),
            schedule: Arc::new(crate::automation::InMemoryScheduleStore::new()),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }

    /// Changes the settings in place (builder style).
    pub fn configure(mut self, change: impl FnOnce(&mut UpdaterConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Where releases come from (required).
    pub fn with_source(mut self, source: impl ReleaseSource + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Where releases come from, shared.
    pub fn with_shared_source(mut self, source: Arc<dyn ReleaseSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Where history goes.
    pub fn with_history(mut self, history: Arc<dyn HistoryStore>) -> Self {
        self.history = history;
        self
    }

    /// Who hears about updates.
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// How maintenance mode is turned on and off.
    pub fn with_maintenance(mut self, switch: Arc<dyn MaintenanceSwitch>) -> Self {
        self.maintenance = Some(Some(switch));
        self
    }

    /// No maintenance mode: the application keeps serving during the swap
    /// (`MAINTENANCE_MODE_DURING_UPDATE=false`). The steps are recorded as skipped.
    pub fn without_maintenance(mut self) -> Self {
        self.maintenance = Some(None);
        self
    }

    /// Database migrations.
    pub fn with_migrator(mut self, migrator: Arc<dyn Migrator>) -> Self {
        self.migrator = Some(migrator);
        self
    }

    /// Adds a health check (all must pass).
    pub fn with_health_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.health_checks.push(check);
        self
    }

    /// Adds a hook.
    pub fn with_hook(mut self, hook: Arc<dyn Hook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// A files backup taken before maintenance mode.
    pub fn with_files_backup(mut self, backup: Arc<dyn BackupStrategy>) -> Self {
        self.files_backup = Some(backup);
        self
    }

    /// A database snapshot taken inside the window and restored on rollback.
    pub fn with_database_backup(mut self, backup: Arc<dyn BackupStrategy>) -> Self {
        self.database_backup = Some(backup);
        self
    }

    /// Where one-off scheduled updates are kept (default: in memory; the
    /// CLI keeps them in the history database).
    pub fn with_schedule_store(mut self, store: Arc<dyn crate::automation::ScheduleStore>) -> Self {
        self.schedule = store;
        self
    }

    /// The clock for windows, schedules and probation (tests move a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Failpoints for fault-injection tests (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    pub fn with_failpoints(mut self, failpoints: Failpoints) -> Self {
        self.failpoints = failpoints;
        self
    }

    /// Validates the settings and builds the updater. Writes nothing: the
    /// state directory is created by the first operation that changes something.
    pub fn build(self) -> Result<Updater> {
        let source = self.source.ok_or_else(|| {
            Error::invalid("updater configuration", "a release source is required")
        })?;
        let config = self.config;
        check_dir(&config.app_dir, "application directory")?;
        if config.keep_releases == 0 {
            return Err(Error::invalid(
                "updater configuration",
                "keep_releases must be at least 1 (rollback needs the previous tree)",
            ));
        }
        if config.health_timeout.is_zero() {
            return Err(Error::invalid(
                "updater configuration",
                "health_timeout must be positive",
            ));
        }
        let same_fs = {
            use std::os::unix::fs::MetadataExt;
            let app = std::fs::metadata(&config.app_dir)
                .map_err(|e| Error::io("inspect", &config.app_dir, e))?;
            // The state directory, or its nearest existing ancestor.
            let mut probe = config.state_dir.as_path();
            let state = loop {
                match std::fs::metadata(probe) {
                    Ok(meta) => break meta,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        probe = probe
                            .parent()
                            .ok_or_else(|| Error::io("inspect", &config.state_dir, e))?;
                    }
                    Err(e) => return Err(Error::io("inspect", &config.state_dir, e)),
                }
            };
            app.dev() == state.dev()
        };
        if !same_fs {
            return Err(Error::invalid(
                format!("state directory {}", config.state_dir.display()),
                format!(
                    "must be on the same file system as {} so the swap is a rename",
                    config.app_dir.display()
                ),
            ));
        }
        let mut extraction = config.extraction.clone();
        for name in config.reserved_names() {
            if !extraction.reserved_names.contains(&name) {
                extraction.reserved_names.push(name);
            }
        }
        let config = UpdaterConfig {
            extraction,
            ..config
        };
        if config.backup_retention == Some(0) {
            return Err(Error::invalid(
                "updater configuration",
                "backup_retention must be at least 1 (or none, to keep every backup)",
            ));
        }
        if config.health_interval.is_zero() {
            return Err(Error::invalid(
                "updater configuration",
                "health_interval must be positive",
            ));
        }
        if let Some(pattern) = &config.asset_pattern {
            crate::release::asset_glob(pattern)?;
        }
        let discarded = if config.discarded_paths.is_empty() {
            None
        } else {
            let mut set = globset::GlobSetBuilder::new();
            for pattern in &config.discarded_paths {
                set.add(globset::Glob::new(pattern).map_err(|e| {
                    Error::invalid(format!("discarded path pattern {pattern:?}"), e.to_string())
                })?);
            }
            Some(
                set.build()
                    .map_err(|e| Error::invalid("discarded path patterns", e.to_string()))?,
            )
        };
        let maintenance = self.maintenance.unwrap_or_else(|| {
            Some(Arc::new(FlagFileMaintenance::new(
                config.state_dir.join("maintenance.json"),
            )))
        });
        if config.probation.is_some_and(|p| p.is_zero()) {
            return Err(Error::invalid(
                "updater configuration",
                "probation must be positive (or none)",
            ));
        }
        Ok(Updater {
            schedule: self.schedule,
            clock: self.clock,
            children: crate::command::ChildLedger::new(config.state_dir.join("children")),
            discarded,
            config,
            source,
            history: self.history,
            notifier: self.notifier,
            maintenance,
            migrator: self.migrator,
            health_checks: self.health_checks,
            hooks: self.hooks,
            files_backup: self.files_backup,
            database_backup: self.database_backup,
            failpoints: self.failpoints,
        })
    }
}

fn check_dir(path: &Path, what: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::invalid(
            format!("{what} {}", path.display()),
            "is not a directory",
        )),
        Err(e) => Err(Error::io("open", path, e)),
    }
}
