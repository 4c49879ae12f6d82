use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::backup::{Backup, BackupPurpose, BackupRequest, BackupStrategy};
use crate::durable;
use crate::error::{Error, Result, redact_url};
use crate::failpoint::Failpoints;
use crate::health::{HealthCheck, HealthContext};
use crate::history::NotificationType;
use crate::history::{
    BackupRecord, CheckStatus, HistoryStore, StepOutcome, StepRecord, UpdateRecord, UpdateStatus,
    VersionCheckRecord,
};
use crate::hook::{Hook, HookContext, HookEvent};
use crate::install::{InstalledState, KeptRelease, SwapDirs, SwapPlan};
use crate::journal::{Failure, Journal, Phase, TransitionKind};
use crate::lock::{LockAcquired, LockRecord, UpdateLock};
use crate::maintenance::{MaintenanceGuard, MaintenanceNotice, MaintenanceSwitch};
use crate::migrate::{MigrationContext, Migrator};
use crate::notify::{Notification, Notifier};
use crate::progress::{ProgressEvent, ProgressObserver};
use crate::release::{Asset, Release};
use crate::source::ReleaseSource;
use crate::version::{UpdateType, Version};

use super::config::UpdaterConfig;
use super::run::{Run, ScaledObserver, percent_span};
use crate::step::Step;

/// The updater: check, apply, rollback, recover, status. Build it with
/// [`UpdaterBuilder`](super::UpdaterBuilder).
pub struct Updater {
    pub(crate) config: UpdaterConfig,
    pub(crate) source: Arc<dyn ReleaseSource>,
    pub(crate) history: Arc<dyn HistoryStore>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) maintenance: Arc<dyn MaintenanceSwitch>,
    pub(crate) migrator: Option<Arc<dyn Migrator>>,
    pub(crate) health_checks: Vec<Arc<dyn HealthCheck>>,
    pub(crate) hooks: Vec<Arc<dyn Hook>>,
    pub(crate) files_backup: Option<Arc<dyn BackupStrategy>>,
    pub(crate) database_backup: Option<Arc<dyn BackupStrategy>>,
    pub(crate) failpoints: Arc<dyn Failpoints>,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("config", &self.config)
            .field("source", &self.source.describe())
            .field("maintenance", &self.maintenance.describe())
            .field("migrator", &self.migrator.as_ref().map(|m| m.describe()))
            .finish_non_exhaustive()
    }
}

/// What [`Updater::apply`] should install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRequest {
    /// A specific version; the newest of the channel when `None`.
    pub version: Option<Version>,
    /// Take the files backup (when one is configured).
    pub backup: bool,
    /// Who asked (`cli`, `schedule`, `web:alice`), stored in history.
    pub initiated_by: String,
    /// Whether this is an automatic update.
    pub auto_update: bool,
}

impl ApplyRequest {
    /// The newest release of the channel, with backup, by `initiated_by`.
    pub fn latest(initiated_by: impl Into<String>) -> Self {
        ApplyRequest {
            version: None,
            backup: true,
            initiated_by: initiated_by.into(),
            auto_update: false,
        }
    }

    /// A specific version (builder style).
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = Some(version);
        self
    }
}

/// What [`Updater::rollback`] should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest {
    /// Who asked.
    pub initiated_by: String,
    /// Restore the database snapshot taken before the update being undone
    /// when migrations cannot be reverted. Loses every write made since that
    /// update: only with explicit consent.
    pub restore_database_snapshot: bool,
}

/// The result of [`Updater::apply`].
// Returned once per update: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Nothing newer on the channel.
    UpToDate {
        /// The running version.
        current: Version,
    },
    /// The new release is installed and healthy.
    Updated(UpdateReport),
}

/// A completed update or rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReport {
    /// Its history record.
    pub update_id: i64,
    /// The version before.
    pub from: Version,
    /// The version now running.
    pub to: Version,
    /// Major, minor, patch...
    pub update_type: Option<UpdateType>,
    /// How long the application was in maintenance mode.
    pub maintenance_window: Duration,
    /// The files backup taken before the update.
    pub backup: Option<Backup>,
}

/// The result of [`Updater::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The running version.
    pub current: Version,
    /// The newest release of the channel.
    pub latest: Option<Release>,
    /// Whether `latest` may be installed.
    pub update_available: bool,
    /// Its kind, when available.
    pub update_type: Option<UpdateType>,
    /// Answered from the history cache, not the source.
    pub from_cache: bool,
}

/// What recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryAction {
    /// Nothing was interrupted.
    Nothing,
    /// Another process holds the lock: an update is running now.
    UpdateInProgress(LockRecord),
    /// An update interrupted before maintenance was cleaned up; nothing had changed.
    CleanedUp {
        /// The version that was being prepared.
        version: Version,
    },
    /// An interrupted transition was rolled back.
    RolledBack {
        /// The version running again.
        running: Version,
        /// The version that was abandoned.
        abandoned: Version,
    },
    /// An interrupted transition had passed its commit point and was finished.
    Committed {
        /// The version now running.
        running: Version,
    },
}

/// The result of [`Updater::recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// What was done.
    pub action: RecoveryAction,
    /// A maintenance flag left behind by a crashed run, now cleared.
    pub leftover_maintenance: Option<MaintenanceNotice>,
    /// A lock record left behind by a dead process.
    pub stale_lock: Option<LockRecord>,
}

/// The result of [`Updater::status`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The running version.
    pub current: Version,
    /// The highest version ever installed.
    pub highest: Version,
    /// Previous releases kept for rollback, newest first.
    pub kept: Vec<Version>,
    /// An interrupted or running transition: (phase, from, to).
    pub transition: Option<(Phase, Version, Version)>,
    /// Who holds the update lock now.
    pub lock_holder: Option<LockRecord>,
    /// Maintenance mode, if on.
    pub maintenance: Option<MaintenanceNotice>,
    /// The latest version check.
    pub latest_check: Option<VersionCheckRecord>,
}

fn transition_id(version: &Version) -> String {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let safe: String = version
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stamp}-{safe}")
}

impl Updater {
    /// The settings.
    pub fn config(&self) -> &UpdaterConfig {
        &self.config
    }

    /// The history store.
    pub fn history(&self) -> &Arc<dyn HistoryStore> {
        &self.history
    }

    fn lock(&self, owner: &str) -> Result<LockAcquired> {
        let acquired = UpdateLock::acquire(&self.config.lock_path(), owner)?;
        if let Some(stale) = &acquired.stale {
            self.notify(
                NotificationType::Warning,
                &self
                    .current_version()
                    .unwrap_or_else(|_| Version::new(0, 0, 0)),
                format!(
                    "took over the update lock left by {stale}, which died without releasing it"
                ),
                None,
            );
        }
        Ok(acquired)
    }

    fn notify(
        &self,
        kind: NotificationType,
        version: &Version,
        message: String,
        metadata: Option<serde_json::Value>,
    ) {
        let notification = Notification {
            kind,
            version: version.clone(),
            message,
            metadata,
        };
        if let Err(e) = self.notifier.notify(&notification) {
            tracing::warn!(error = %e, "notifier failed; the update goes on");
        }
    }

    fn amend_history(&self, id: Option<i64>, change: impl FnOnce(&mut UpdateRecord)) {
        let Some(id) = id else { return };
        let result = self.history.update(id).and_then(|record| match record {
            Some(mut record) => {
                change(&mut record);
                self.history.save_update(&record)
            }
            None => Err(Error::not_found(format!("update {id}"))),
        });
        if let Err(e) = result {
            tracing::error!(update = id, error = %e, "could not record the outcome in history");
        }
    }

    /// The installed state, created from the version file or the configured
    /// initial version on first use.
    fn installed_state(&self) -> Result<InstalledState> {
        if let Some(state) = InstalledState::load(&self.config.installed_path())? {
            return Ok(state);
        }
        let version_file = self.config.app_dir.join(&self.config.version_file);
        let version = match std::fs::read_to_string(&version_file) {
            Ok(text) => Version::parse(text.trim()).map_err(|e| {
                Error::invalid(format!("version file {}", version_file.display()), e.to_string())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.config.initial_version.clone().ok_or_else(|| {
                    Error::precondition(
                        "current version",
                        format!(
                            "neither {} nor {} exists; set the initial version in the configuration",
                            self.config.installed_path().display(),
                            version_file.display()
                        ),
                    )
                })?
            }
            Err(e) => return Err(Error::io("read", &version_file, e)),
        };
        let state = InstalledState::new(version);
        state.save(&self.config.installed_path())?;
        Ok(state)
    }

    /// The running version.
    pub fn current_version(&self) -> Result<Version> {
        Ok(self.installed_state()?.current)
    }

    // ------------------------------------------------------------------ check

    /// Asks the source for the newest release of the channel and records the
    /// check. A successful check younger than the cache window is answered
    /// from history unless `force`. Announces a new version to admins (once
    /// per version).
    pub fn check(&self, force: bool) -> Result<CheckReport> {
        let current = self.current_version()?;
        if !force
            && let Some(last) = self.history.latest_check()?
            && last.check_status == CheckStatus::Success
            && last.current_version == current
            && Utc::now() - last.checked_at
                < chrono::Duration::from_std(self.config.check_cache)
                    .unwrap_or(chrono::Duration::zero())
        {
            let latest: Option<Release> = last
                .release_info
                .as_ref()
                .and_then(|info| serde_json::from_value(info.clone()).ok());
            let update_type = latest
                .as_ref()
                .and_then(|r| self.allowed_update(&current, &r.version).ok());
            return Ok(CheckReport {
                current,
                update_available: update_type.is_some(),
                update_type,
                latest,
                from_cache: true,
            });
        }
        let highest = self.installed_state()?.highest;
        // With keys configured, the newest release's signed metadata is
        // checked at every check too: a frozen or replaying mirror (expired
        // metadata) is an error, never a quiet "no update".
        let latest = self.source.latest(self.config.channel).and_then(|latest| {
            if let Some(release) = &latest
                && !self.config.verification.public_keys.is_empty()
            {
                let asset = release.select_asset(self.config.asset_pattern.as_deref())?;
                crate::package::signature::verify_asset_signature(
                    &self.config.verification.public_keys,
                    release,
                    asset,
                    Utc::now(),
                )?;
            }
            Ok(latest)
        });
        match latest {
            Ok(latest) => {
                let update_type = latest.as_ref().and_then(|r| {
                    self.config
                        .policy
                        .check(&current, &r.version, Some(&highest))
                        .ok()
                });
                let record = VersionCheckRecord {
                    id: 0,
                    current_version: current.clone(),
                    latest_version: latest.as_ref().map(|r| r.version.clone()),
                    update_available: update_type.is_some(),
                    check_status: CheckStatus::Success,
                    error_message: None,
                    release_info: latest.as_ref().and_then(|r| serde_json::to_value(r).ok()),
                    checked_at: Utc::now(),
                };
                self.history.record_check(&record)?;
                if let (Some(release), Some(kind)) = (&latest, update_type) {
                    self.notify(
                        NotificationType::UpdateAvailable,
                        &release.version,
                        format!(
                            "version {} is available ({kind} update from {current})",
                            release.version
                        ),
                        None,
                    );
                }
                Ok(CheckReport {
                    current,
                    update_available: update_type.is_some(),
                    update_type,
                    latest,
                    from_cache: false,
                })
            }
            Err(error) => {
                let record = VersionCheckRecord {
                    id: 0,
                    current_version: current,
                    latest_version: None,
                    update_available: false,
                    check_status: CheckStatus::Failed,
                    error_message: Some(error.to_string()),
                    release_info: None,
                    checked_at: Utc::now(),
                };
                if let Err(e) = self.history.record_check(&record) {
                    tracing::error!(error = %e, "could not record the failed check");
                }
                Err(error)
            }
        }
    }

    fn allowed_update(&self, current: &Version, candidate: &Version) -> Result<UpdateType> {
        let highest = self.installed_state()?.highest;
        self.config.policy.check(current, candidate, Some(&highest))
    }

    // ------------------------------------------------------------------ status

    /// What is installed, what is running, who holds the lock.
    pub fn status(&self) -> Result<StatusReport> {
        let installed = self.installed_state()?;
        let transition =
            Journal::load(&self.config.journal_path())?.map(|j| (j.phase, j.from, j.to));
        Ok(StatusReport {
            current: installed.current,
            highest: installed.highest,
            kept: installed.kept.into_iter().map(|k| k.version).collect(),
            transition,
            lock_holder: UpdateLock::holder(&self.config.lock_path())?,
            maintenance: self.maintenance.status()?,
            latest_check: self.history.latest_check()?,
        })
    }

    // ------------------------------------------------------------------ apply

    /// Installs the newest release of the channel, or `request.version`.
    ///
    /// Runs [`recover`](Self::recover) first. On failure before maintenance
    /// mode nothing was changed and the error names the step; on failure
    /// after it the update is rolled back and [`Error::RolledBack`] names the
    /// step and the cause. Either way the attempt is in history.
    pub fn apply(
        &self,
        request: &ApplyRequest,
        observer: &dyn ProgressObserver,
    ) -> Result<ApplyOutcome> {
        let _lock = self.lock(&request.initiated_by)?;
        self.recover_locked()?;
        let installed = self.installed_state()?;
        let current = installed.current.clone();
        observer.on_progress(&ProgressEvent::message(
            Step::Check,
            0,
            "looking for releases",
        ));
        let release = match &request.version {
            Some(version) => self.source.release(version)?,
            None => match self.source.latest(self.config.channel)? {
                Some(release) if release.version > current => release,
                _ => return Ok(ApplyOutcome::UpToDate { current }),
            },
        };
        let mut record = UpdateRecord::new(release.version.clone(), request.initiated_by.clone());
        record.previous_version = Some(current.clone());
        record.changelog = release.changelog.clone();
        record.auto_update = request.auto_update;
        let (mut run, mut journal) = self.start_transition(
            record,
            TransitionKind::Update,
            (current.clone(), release.version.clone()),
            |id| self.config.state_subdir("staging", id),
            observer,
        )?;
        self.notify(
            NotificationType::UpdateStarted,
            &release.version,
            format!(
                "update from {current} to {} started by {}",
                release.version, request.initiated_by
            ),
            Some(serde_json::json!({ "update_id": run.record.id })),
        );
        let result =
            self.prepare_and_install(&mut run, &mut journal, &release, &installed, request);
        self.conclude(run, journal, result)
    }

    /// Plan, preflight, backup, download, stage — then the window.
    fn prepare_and_install(
        &self,
        run: &mut Run<'_>,
        journal: &mut Journal,
        release: &Release,
        installed: &InstalledState,
        request: &ApplyRequest,
    ) -> Result<UpdateReport> {
        let current = installed.current.clone();
        let asset: Asset = run.step(Step::Plan, |run| {
            let update_type =
                self.config
                    .policy
                    .check(&current, &release.version, Some(&installed.highest))?;
            let asset = release
                .select_asset(self.config.asset_pattern.as_deref())?
                .clone();
            run.record.update_type = Some(update_type);
            run.record.download_url = Some(redact_url(&asset.location));
            run.record.checksum = asset.sha256.map(|d| d.to_hex());
            run.record.download_size = Some(asset.size);
            Ok(asset)
        })?;
        run.step(Step::Preflight, |_| self.preflight(&asset, request))?;
        let backup = run.step(Step::Backup, |run| {
            let Some(strategy) = self.files_backup.as_ref().filter(|_| request.backup) else {
                run.skip(if request.backup {
                    "no files backup configured"
                } else {
                    "backup not requested"
                });
                return Ok(None);
            };
            let backup =
                self.take_backup(strategy.as_ref(), &current, BackupPurpose::PreUpdate, run)?;
            run.record.backup_info = serde_json::to_value(&backup).ok();
            Ok(Some(backup))
        })?;
        run.set_status(UpdateStatus::Downloading);
        let package = run.step(Step::Download, |run| {
            let dir = self.config.state_subdir("downloads", &journal.id);
            durable::create_dir_all(&dir)?;
            let destination = dir.join("package.tar.gz");
            let (start, end) = percent_span(Step::Download);
            let observer = run.observer;
            let total = asset.size;
            let mut progress = |done: u64| {
                let span = u64::from(end - start);
                let percent = start
                    + u8::try_from(span * done / total.max(1))
                        .unwrap_or(0)
                        .min(end - start);
                observer.on_progress(&ProgressEvent {
                    step: Step::Download,
                    percent,
                    bytes_done: done,
                    bytes_total: Some(total),
                    files_done: 0,
                    message: format!("downloading {}", asset.name),
                });
            };
            crate::package::download_verified(
                self.source.as_ref(),
                release,
                &asset,
                &destination,
                &self.config.verification,
                &mut progress,
            )
        })?;
        run.set_status(UpdateStatus::Installing);
        run.step(Step::Stage, |run| {
            durable::create_dir_all(durable::parent_of(&journal.incoming))?;
            let report = crate::package::extract_tar_gz(
                &package.path,
                &journal.incoming,
                &self.config.extraction,
            )?;
            run.note(format!("{} files, {} bytes", report.files, report.bytes));
            // The new tree must be on disk before the swap makes it live:
            // one syncfs, outside the maintenance window.
            durable::sync_filesystem(&journal.incoming)?;
            Ok(())
        })?;
        let window = self.run_window(run, journal, self.migrator.as_ref())?;
        Ok(UpdateReport {
            update_id: run.record.id,
            from: current,
            to: release.version.clone(),
            update_type: run.record.update_type,
            maintenance_window: window,
            backup,
        })
    }

    fn take_backup(
        &self,
        strategy: &dyn BackupStrategy,
        version: &Version,
        purpose: BackupPurpose,
        run: &mut Run<'_>,
    ) -> Result<Backup> {
        let request = BackupRequest {
            version: version.clone(),
            purpose,
            update_id: Some(run.record.id),
            description: Some(format!("before update to {}", run.record.version)),
        };
        let step = match purpose {
            BackupPurpose::RollbackSnapshot => Step::DatabaseSnapshot,
            _ => Step::Backup,
        };
        let scaled = ScaledObserver {
            inner: run.observer,
            step,
        };
        let backup = strategy.create(&request, &scaled)?;
        strategy.verify(&backup)?;
        let record = BackupRecord {
            system_update_id: Some(run.record.id),
            ..BackupRecord::of(&backup)
        };
        self.history.record_backup(&record)?;
        Ok(backup)
    }

    /// Checks everything that can be checked before anything changes.
    fn preflight(&self, asset: &Asset, request: &ApplyRequest) -> Result<()> {
        for dir in [&self.config.app_dir, &self.config.state_dir] {
            let probe = dir.join(format!(".updater-write-test-{}", std::process::id()));
            std::fs::write(&probe, b"")
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| {
                    Error::precondition(
                        "write permission",
                        format!("cannot write in {}: {e}", dir.display()),
                    )
                })?;
        }
        let staging_estimate = asset
            .size
            .saturating_mul(4)
            .min(self.config.extraction.max_total_bytes);
        let backup_estimate = match (&self.files_backup, request.backup) {
            (Some(_), true) => tree_size(&self.config.app_dir, &self.config.state_dir),
            _ => 0,
        };
        let needed = asset.size + staging_estimate + backup_estimate;
        let stats = rustix::fs::statvfs(&self.config.state_dir)
            .map_err(|e| Error::io("measure free space", &self.config.state_dir, e.into()))?;
        let available = stats.f_bavail.saturating_mul(stats.f_frsize);
        if available < needed {
            return Err(Error::precondition(
                "disk space",
                format!(
                    "{} has {} MiB free but the package, staging and backup need about {} MiB",
                    self.config.state_dir.display(),
                    available >> 20,
                    needed >> 20
                ),
            ));
        }
        if let Some(migrator) = &self.migrator {
            migrator.check(&self.config.app_dir)?;
            if self.database_backup.is_none() && !migrator.can_revert() {
                return Err(Error::precondition(
                    "database rollback",
                    format!(
                        "{} cannot revert migrations and no database snapshot is configured: a failed update could not restore the schema",
                        migrator.describe()
                    ),
                ));
            }
        }
        if request.backup
            && let Some(backup) = &self.files_backup
        {
            backup.preflight()?;
        }
        if let Some(backup) = &self.database_backup {
            backup.preflight()?;
        }
        self.maintenance.status().map(drop)
    }

    // ------------------------------------------------------------ the window

    /// Maintenance on → snapshot → swap → database → hooks → health →
    /// commit point → maintenance off. A rollback transition reverts the
    /// database *before* its swap, while the newer code (which ships the down
    /// migrations) is still in place. Returns the maintenance window's duration.
    fn run_window(
        &self,
        run: &mut Run<'_>,
        journal: &mut Journal,
        migrator: Option<&Arc<dyn Migrator>>,
    ) -> Result<Duration> {
        let (kind, from, to) = (journal.kind, journal.from.clone(), journal.to.clone());
        // Flush whatever is pending on the file system (cleanups, the app's
        // writes) now, so the syncs inside the window only carry the swap.
        durable::sync_filesystem(&self.config.app_dir).map_err(|e| Error::Step {
            step: Step::MaintenanceOn,
            source: Box::new(e),
        })?;
        let journal_path = self.config.journal_path();
        let mut guard: Option<MaintenanceGuard<'_>> = None;
        let mut window_started: Option<Instant> = None;
        let mut bypass_secret: Option<String> = None;
        let mut result = (|| -> Result<Duration> {
            run.step(Step::MaintenanceOn, |_| {
                // Saved with the next journal write (snapshot or swap plan): a
                // crash before it leaves a `Preparing` journal, whose recovery
                // turns maintenance off. One fsync less in the window.
                journal.phase = Phase::InWindow;
                journal.maintenance_on = true;
                journal.window_started_at = Some(Utc::now());
                window_started = Some(Instant::now());
                let notice = self.notice(format!("Updating to {}", to));
                bypass_secret = notice.bypass_secret.clone();
                guard = Some(MaintenanceGuard::enable(
                    self.maintenance.as_ref(),
                    &notice,
                )?);
                Ok(())
            })?;
            run.step(Step::DatabaseSnapshot, |run| {
                let Some(strategy) = &self.database_backup else {
                    run.skip("no database backup configured");
                    return Ok(());
                };
                let snapshot = self.take_backup(
                    strategy.as_ref(),
                    &from,
                    BackupPurpose::RollbackSnapshot,
                    run,
                )?;
                journal.database_snapshot = Some(snapshot);
                journal.save(&journal_path)
            })?;
            match kind {
                TransitionKind::Update => {
                    self.swap_step(run, journal)?;
                    self.database_step(run, journal, migrator)?;
                }
                TransitionKind::Rollback => {
                    self.database_step(run, journal, migrator)?;
                    self.swap_step(run, journal)?;
                }
            }
            run.step(Step::Hooks, |run| {
                if self.hooks.is_empty() {
                    run.skip("no hooks configured");
                }
                let ctx = HookContext {
                    event: HookEvent::AfterSwap,
                    app_dir: self.config.app_dir.clone(),
                    from: from.clone(),
                    to: to.clone(),
                };
                self.hooks.iter().try_for_each(|hook| hook.run(&ctx))
            })?;
            run.set_status(UpdateStatus::Verifying);
            run.step(Step::HealthCheck, |run| {
                if self.health_checks.is_empty() {
                    run.skip("no health check configured");
                }
                let ctx = HealthContext {
                    app_dir: self.config.app_dir.clone(),
                    version: to.clone(),
                    deadline: Instant::now() + self.config.health_timeout,
                    // Lets an HTTP check through the maintenance page.
                    bypass_secret: bypass_secret.clone(),
                };
                self.health_checks
                    .iter()
                    .try_for_each(|check| check.check(&ctx))
            })?;
            // The commit point comes BEFORE maintenance goes off: once the
            // new release takes writes, a rollback (which restores the
            // snapshot) would lose them.
            run.step(Step::Commit, |run| {
                let mut committing = journal.clone();
                committing.phase = Phase::Committing;
                committing.save(&journal_path)?;
                // Only what is on disk counts: assign after the save succeeded.
                *journal = committing;
                self.failpoints.hit("commit:point")?;
                run.record.status = UpdateStatus::Completed;
                run.record.progress_percentage = 100;
                run.record.completed_at = Some(Utc::now());
                Ok(())
            })?;
            let window = run.step(Step::MaintenanceOff, |_| {
                if let Some(guard) = guard.take() {
                    guard.release()?;
                }
                Ok(window_started.map(|s| s.elapsed()).unwrap_or_default())
            })?;
            run.record.maintenance_window_ms =
                Some(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
            Ok(window)
        })();
        if let Err(error) = &result
            && error.is_simulated_crash()
        {
            if let Some(guard) = guard.take() {
                guard.disarm();
            }
            return result;
        }
        if let Some(guard) = guard.take() {
            // Before the commit point the rollback turns maintenance off
            // itself, after undoing the swap; after it, finish_commit does.
            guard.disarm();
        }
        if journal.is_committing() {
            // Committed: whatever failed after the commit point, finish now
            // (maintenance off, installed state, history); if that fails too,
            // the journal stays and recovery finishes it.
            if result.is_ok() {
                run.save()?;
            }
            match self.finish_commit(journal) {
                Ok(()) => {
                    if result.is_err() {
                        let window = window_started.map(|s| s.elapsed()).unwrap_or_default();
                        run.record.maintenance_window_ms =
                            Some(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
                        result = Ok(window);
                    }
                }
                Err(e) => result = Err(e),
            }
        }
        result
    }

    /// Plans and performs the swap (the plan is journaled before the first rename).
    fn swap_step(&self, run: &mut Run<'_>, journal: &mut Journal) -> Result<()> {
        let journal_path = self.config.journal_path();
        run.step(Step::Swap, |_| {
            let reserved = self.config.reserved_names();
            let dirs = SwapDirs {
                app_dir: &self.config.app_dir,
                incoming: &journal.incoming,
                outgoing: &journal.outgoing,
                displaced: &self.config.state_subdir("displaced", &journal.id),
                debris: &self.config.state_subdir("debris", &journal.id),
                reserved: &reserved,
                preserved: &self.config.preserved_paths,
            };
            let plan = SwapPlan::prepare(&dirs)?;
            journal.plan = Some(plan.clone());
            journal.save(&journal_path)?;
            plan.apply(self.failpoints.as_ref())
        })
    }

    /// Migrates up (update) or reverts (rollback), journaled first.
    fn database_step(
        &self,
        run: &mut Run<'_>,
        journal: &mut Journal,
        migrator: Option<&Arc<dyn Migrator>>,
    ) -> Result<()> {
        let journal_path = self.config.journal_path();
        run.step(Step::Migrate, |run| {
            let Some(migrator) = migrator else {
                run.skip("no migrator configured");
                return Ok(());
            };
            journal.database_changed = true;
            journal.save(&journal_path)?;
            let ctx = MigrationContext {
                app_dir: self.config.app_dir.clone(),
                from: journal.from.clone(),
                to: journal.to.clone(),
            };
            match journal.kind {
                TransitionKind::Update => migrator.migrate(&ctx),
                // The context of the update being undone: revert goes back to its `from`.
                TransitionKind::Rollback => migrator.revert(&MigrationContext {
                    from: journal.to.clone(),
                    to: journal.from.clone(),
                    ..ctx
                }),
            }
        })
    }

    /// Past the commit point: maintenance off, installed state, history,
    /// cleanup. Idempotent; used by apply, rollback and recovery.
    fn finish_commit(&self, journal: &mut Journal) -> Result<()> {
        if let Some(plan) = &journal.plan
            && !plan.is_complete()?
        {
            plan.apply(self.failpoints.as_ref())?;
        }
        if journal.maintenance_on {
            self.maintenance.disable()?;
        }
        let mut installed = self.installed_state()?;
        let mut changed = false;
        let mut trees_to_remove = Vec::new();
        match journal.kind {
            TransitionKind::Update => {
                if !installed.kept.iter().any(|k| k.tree == journal.outgoing) {
                    installed.kept.insert(
                        0,
                        KeptRelease {
                            version: journal.from.clone(),
                            tree: journal.outgoing.clone(),
                            replaced_by_update: journal.update_id,
                            database_snapshot: journal.database_snapshot.clone(),
                            replaced_at: Utc::now(),
                        },
                    );
                    changed = true;
                }
                if installed.current != journal.to {
                    installed.install(&journal.to);
                    changed = true;
                }
            }
            TransitionKind::Rollback => {
                if installed.current != journal.to
                    || installed.kept.iter().any(|k| k.tree == journal.incoming)
                {
                    installed.current = journal.to.clone();
                    installed.updated_at = Utc::now();
                    installed.kept.retain(|k| k.tree != journal.incoming);
                    changed = true;
                }
                trees_to_remove.push(journal.outgoing.clone());
            }
        }
        if installed.kept.len() > self.config.keep_releases {
            let excess = installed.kept.split_off(self.config.keep_releases);
            trees_to_remove.extend(excess.into_iter().map(|k| k.tree));
            changed = true;
        }
        if changed {
            installed.save(&self.config.installed_path())?;
        }
        self.failpoints.hit("commit:installed")?;
        let window_ms = journal
            .window_started_at
            .map(|s| u64::try_from((Utc::now() - s).num_milliseconds()).unwrap_or(0));
        self.amend_history(journal.update_id, |record| {
            if record.status != UpdateStatus::Completed {
                record.status = UpdateStatus::Completed;
                record.completed_at = Some(Utc::now());
                record.progress_percentage = 100;
                if record.maintenance_window_ms.is_none() {
                    record.maintenance_window_ms = window_ms;
                }
            }
        });
        Journal::remove(&self.config.journal_path())?;
        let kind = match journal.kind {
            TransitionKind::Update => "update",
            TransitionKind::Rollback => "rollback",
        };
        self.notify(
            NotificationType::UpdateCompleted,
            &journal.to,
            format!("{kind} from {} to {} completed", journal.from, journal.to),
            Some(serde_json::json!({ "update_id": journal.update_id })),
        );
        self.clean_up(journal, &trees_to_remove);
        Ok(())
    }

    /// Removes what a finished transition leaves (best effort, outside the
    /// window), and any release tree no longer kept (e.g. left by a crash
    /// between saving the installed state and removing it).
    fn clean_up(&self, journal: &Journal, extra: &[PathBuf]) {
        let mut paths = vec![
            self.config.state_subdir("downloads", &journal.id),
            self.config.state_subdir("displaced", &journal.id),
        ];
        if journal.kind == TransitionKind::Update {
            paths.push(journal.incoming.clone());
        }
        paths.extend(extra.iter().cloned());
        if let Ok(installed) = self.installed_state()
            && let Ok(entries) = std::fs::read_dir(self.config.state_dir.join("releases"))
        {
            for entry in entries.flatten() {
                let path = entry.path();
                if !installed.kept.iter().any(|k| k.tree == path) {
                    paths.push(path);
                }
            }
        }
        for path in paths {
            if let Err(e) = durable::remove_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not clean up");
            }
        }
    }

    /// Ends an apply or rollback: on error, roll back (or clean up) and record.
    fn conclude(
        &self,
        run: Run<'_>,
        mut journal: Journal,
        result: Result<UpdateReport>,
    ) -> Result<ApplyOutcome> {
        let error = match result {
            Ok(report) => return Ok(ApplyOutcome::Updated(report)),
            Err(error) if error.is_simulated_crash() => return Err(error),
            Err(error) => error,
        };
        let (step, error) = match error {
            Error::Step { step, source } => (step, *source),
            other => (Step::Commit, other),
        };
        let failure = Failure {
            step,
            message: error.to_string(),
        };
        let mut record = run.record;
        // Decide from what is on disk, never from memory: that is what
        // recovery will see.
        let persisted = Journal::load(&self.config.journal_path())?.map(|j| j.phase);
        if persisted == Some(Phase::Committing) {
            // Past the commit point: finishing failed; recovery will finish it.
            return Err(Error::Step {
                step,
                source: Box::new(error),
            });
        }
        if journal.phase == Phase::Preparing {
            // Nothing in the application changed.
            record.status = UpdateStatus::Failed;
            record.failed_at = Some(Utc::now());
            record.error_message = Some(failure.message.clone());
            if let Err(e) = self.history.save_update(&record) {
                tracing::error!(error = %e, "could not record the failure in history");
            }
            self.clean_up(&journal, &[]);
            Journal::remove(&self.config.journal_path())?;
            self.notify(
                NotificationType::UpdateFailed,
                &journal.to,
                format!(
                    "update to {} failed at {step}: {error}; nothing was changed",
                    journal.to
                ),
                Some(serde_json::json!({ "update_id": record.id, "step": step.as_str() })),
            );
            return Err(Error::Step {
                step,
                source: Box::new(error),
            });
        }
        if let Err(e) = self.history.save_update(&record) {
            tracing::error!(error = %e, "could not record the failure in history");
        }
        journal.phase = Phase::RollingBack;
        journal.failure = Some(failure);
        journal.save(&self.config.journal_path())?;
        match self.roll_back(&mut journal) {
            Ok(()) => Err(Error::RolledBack {
                version: journal.to.to_string(),
                step,
                cause: Box::new(error),
            }),
            Err(rollback_error) if rollback_error.is_simulated_crash() => Err(rollback_error),
            Err(rollback_error) => {
                journal.last_recovery_error = Some(rollback_error.to_string());
                journal.save(&self.config.journal_path())?;
                Err(Error::NeedsOperator {
                    reason: format!(
                        "update to {} failed at {step} ({error}) and the rollback failed too ({rollback_error}); run recovery again (`updater status` shows the journal), or inspect {}",
                        journal.to,
                        self.config.state_dir.display()
                    ),
                })
            }
        }
    }

    /// Undoes a transition from any point before its commit, idempotently.
    /// Maintenance goes (back) on first: no write may land while the
    /// database is restored. An update restores the database first (its down
    /// migrations ship with the new code, still in place), then undoes the
    /// swap; a rollback transition undoes its swap first, then migrates back
    /// up with the newer code in place again.
    fn roll_back(&self, journal: &mut Journal) -> Result<()> {
        let fail = self.failpoints.as_ref();
        fail.hit("rollback:start")?;
        if journal.maintenance_on {
            self.maintenance
                .enable(&self.notice(format!("Rolling back the update to {}", journal.to)))?;
        }
        match journal.kind {
            TransitionKind::Update => {
                if journal.database_changed {
                    self.restore_database(journal)?;
                }
                fail.hit("rollback:database")?;
                self.undo_swap(journal)?;
            }
            TransitionKind::Rollback => {
                self.undo_swap(journal)?;
                if journal.database_changed {
                    self.restore_database(journal)?;
                }
                fail.hit("rollback:database")?;
            }
        }
        fail.hit("rollback:swap")?;
        if journal.maintenance_on {
            self.maintenance.disable()?;
        }
        fail.hit("rollback:maintenance")?;
        let failure = journal.failure.clone();
        let message = failure
            .as_ref()
            .map(|f| format!("failed at {}: {}", f.step, f.message))
            .unwrap_or_else(|| "interrupted".to_string());
        let window_ms = journal
            .window_started_at
            .map(|s| u64::try_from((Utc::now() - s).num_milliseconds()).unwrap_or(0));
        self.amend_history(journal.update_id, |record| {
            record.status = UpdateStatus::RolledBack;
            record.failed_at = Some(Utc::now());
            record.error_message = Some(message.clone());
            if record.maintenance_window_ms.is_none() {
                record.maintenance_window_ms = window_ms;
            }
            record.steps.push(StepRecord {
                name: Step::Rollback.as_str().to_string(),
                started_at: Utc::now(),
                finished_at: Some(Utc::now()),
                outcome: StepOutcome::Succeeded,
                message: Some(format!("{} is running again", journal.from)),
            });
        });
        self.notify(
            NotificationType::UpdateRolledBack,
            &journal.to,
            format!(
                "update from {} to {} {message}; rolled back",
                journal.from, journal.to
            ),
            Some(serde_json::json!({ "update_id": journal.update_id })),
        );
        Journal::remove(&self.config.journal_path())?;
        let mut leftovers = vec![journal.outgoing.clone()];
        if journal.kind == TransitionKind::Update {
            leftovers.push(journal.incoming.clone());
        }
        self.clean_up(journal, &leftovers);
        Ok(())
    }

    /// Undoes the swap (if planned) and runs the rollback hooks.
    fn undo_swap(&self, journal: &Journal) -> Result<()> {
        let Some(plan) = &journal.plan else {
            return Ok(());
        };
        plan.undo(self.failpoints.as_ref())?;
        let ctx = HookContext {
            event: HookEvent::AfterRollback,
            app_dir: self.config.app_dir.clone(),
            from: journal.to.clone(),
            to: journal.from.clone(),
        };
        for hook in &self.hooks {
            if let Err(e) = hook.run(&ctx) {
                tracing::warn!(hook = %hook.describe(), error = %e, "rollback hook failed; the rollback goes on");
            }
        }
        Ok(())
    }

    /// Brings the database back to the schema of `journal.from`. Never
    /// reports success without having done so: with no means configured in
    /// this updater (no snapshot strategy, no migrator), it stops for an operator.
    fn restore_database(&self, journal: &Journal) -> Result<()> {
        if let Some(snapshot) = &journal.database_snapshot {
            let strategy = self.database_backup.as_ref().ok_or_else(|| Error::NeedsOperator {
                reason: format!(
                    "the database must be restored from snapshot {} but this updater has no database backup configured; configure it as during the update and recover again",
                    snapshot.id
                ),
            })?;
            return strategy.restore(snapshot, &crate::progress::NoProgress);
        }
        let migrator = self.migrator.as_ref().ok_or_else(|| Error::NeedsOperator {
            reason: format!(
                "migrations between {} and {} ran, but this updater has no migrator and no database snapshot to undo them; configure them as during the update and recover again",
                journal.from, journal.to
            ),
        })?;
        // `ctx` is the update as it ran: `revert` takes the schema back to `ctx.from`.
        let ctx = MigrationContext {
            app_dir: self.config.app_dir.clone(),
            from: journal.from.clone(),
            to: journal.to.clone(),
        };
        match journal.kind {
            TransitionKind::Update if migrator.can_revert() => migrator.revert(&ctx),
            TransitionKind::Update => Err(Error::NeedsOperator {
                reason: format!(
                    "migrations to {} ran but there is no database snapshot and {} cannot revert them",
                    journal.to,
                    migrator.describe()
                ),
            }),
            // A rollback ran `revert` from `journal.from` down to `journal.to`; migrate back up.
            TransitionKind::Rollback => migrator.migrate(&MigrationContext {
                from: journal.to.clone(),
                to: journal.from.clone(),
                ..ctx
            }),
        }
    }

    // ---------------------------------------------------------------- rollback

    /// Goes back to the newest kept previous release on an operator's
    /// request (after a committed update), through the same journaled
    /// window: swap back, revert migrations (or, with consent, restore the
    /// snapshot taken before that update), hooks, health check.
    pub fn rollback(
        &self,
        request: &RollbackRequest,
        observer: &dyn ProgressObserver,
    ) -> Result<UpdateReport> {
        let _lock = self.lock(&request.initiated_by)?;
        self.recover_locked()?;
        let installed = self.installed_state()?;
        let kept = installed.kept.first().cloned().ok_or_else(|| {
            Error::precondition(
                "rollback",
                "no previous release is kept (nothing to roll back to)",
            )
        })?;
        if !kept.tree.is_dir() {
            return Err(Error::precondition(
                "rollback",
                format!(
                    "the kept tree of {} is missing: {}",
                    kept.version,
                    kept.tree.display()
                ),
            ));
        }
        // Without down migrations (and with consent), the database step
        // restores the snapshot taken before the update being undone.
        let migrator: Option<Arc<dyn Migrator>> = match &self.migrator {
            Some(migrator) if !migrator.can_revert() => {
                if !request.restore_database_snapshot {
                    return Err(Error::precondition(
                        "rollback",
                        format!(
                            "{} cannot revert migrations; allow restoring the database snapshot taken before the update (every write since is lost) or restore a backup",
                            migrator.describe()
                        ),
                    ));
                }
                let snapshot = kept.database_snapshot.clone().ok_or_else(|| {
                    Error::precondition("rollback", "no database snapshot was kept for that update")
                })?;
                let strategy = self.database_backup.clone().ok_or_else(|| {
                    Error::precondition(
                        "rollback",
                        "restoring the snapshot needs the database backup strategy configured",
                    )
                })?;
                Some(Arc::new(SnapshotRestore { strategy, snapshot }))
            }
            other => other.clone(),
        };
        let mut record = UpdateRecord::new(kept.version.clone(), request.initiated_by.clone());
        record.previous_version = Some(installed.current.clone());
        record.update_type = Some(UpdateType::Downgrade);
        let (mut run, mut journal) = self.start_transition(
            record,
            TransitionKind::Rollback,
            (installed.current.clone(), kept.version.clone()),
            |_| kept.tree.clone(),
            observer,
        )?;
        let (from, to) = (journal.from.clone(), journal.to.clone());
        let result = self
            .run_window(&mut run, &mut journal, migrator.as_ref())
            .map(|window| UpdateReport {
                update_id: run.record.id,
                from,
                to,
                update_type: Some(UpdateType::Downgrade),
                maintenance_window: window,
                backup: None,
            });
        match self.conclude(run, journal, result)? {
            ApplyOutcome::Updated(report) => Ok(report),
            ApplyOutcome::UpToDate { current } => Err(Error::precondition(
                "rollback",
                format!("{current} is already running"),
            )),
        }
    }

    /// Records the attempt in history and writes its journal (`Preparing`):
    /// from here on, a crash is cleaned up or undone by recovery.
    fn start_transition<'a>(
        &'a self,
        record: UpdateRecord,
        kind: TransitionKind,
        (from, to): (Version, Version),
        incoming: impl FnOnce(&str) -> PathBuf,
        observer: &'a dyn ProgressObserver,
    ) -> Result<(Run<'a>, Journal)> {
        let run = Run::start(
            record,
            self.history.as_ref(),
            self.failpoints.as_ref(),
            observer,
        )?;
        let id = transition_id(&to);
        let outgoing = self
            .config
            .state_subdir("releases", &format!("{from}-{id}"));
        let journal = Journal::begin(
            id.clone(),
            kind,
            run.record.id,
            (from, to),
            incoming(&id),
            outgoing,
        );
        journal.save(&self.config.journal_path())?;
        Ok((run, journal))
    }

    fn notice(&self, reason: String) -> MaintenanceNotice {
        let mut notice = MaintenanceNotice::new(reason, self.config.maintenance_expiry);
        notice.retry_after_secs = self.config.maintenance_retry_after.as_secs();
        notice
    }

    // ---------------------------------------------------------- backup restore

    /// Restores a backup on an operator's request: under the update lock
    /// (after recovery), verified first (a damaged backup is refused before
    /// anything changes), inside maintenance mode, and — for backups holding
    /// files — records the backup's version as the running one, so the next
    /// update starts from the right version.
    pub fn restore_backup(
        &self,
        strategy: &dyn BackupStrategy,
        backup: &Backup,
        initiated_by: &str,
        observer: &dyn ProgressObserver,
    ) -> Result<()> {
        let _lock = self.lock(initiated_by)?;
        self.recover_locked()?;
        strategy.verify(backup)?;
        let guard = MaintenanceGuard::enable(
            self.maintenance.as_ref(),
            &self.notice(format!("Restoring backup {}", backup.id)),
        )?;
        strategy.restore(
            backup,
            &ScaledObserver {
                inner: observer,
                step: Step::Backup,
            },
        )?;
        if backup.kind != crate::backup::BackupKind::DatabaseOnly {
            let mut installed = self.installed_state()?;
            if installed.current != backup.version {
                tracing::warn!(from = %installed.current, to = %backup.version, "the restored backup holds another version");
                installed.current = backup.version.clone();
                installed.updated_at = Utc::now();
                installed.save(&self.config.installed_path())?;
            }
        }
        guard.release()?;
        self.notify(
            NotificationType::Warning,
            &backup.version,
            format!(
                "backup {} ({}) was restored by {initiated_by}",
                backup.id,
                backup.kind.as_str()
            ),
            None,
        );
        Ok(())
    }

    // ---------------------------------------------------------------- recover

    /// Finishes or undoes a transition interrupted by a crash, clears a
    /// leftover maintenance flag, and reports a stale lock. Call it at
    /// application start (the CLI calls it before every command). Returns
    /// [`RecoveryAction::UpdateInProgress`] when another process is updating.
    pub fn recover(&self) -> Result<RecoveryReport> {
        let acquired = match UpdateLock::acquire(&self.config.lock_path(), "recover") {
            Ok(acquired) => acquired,
            Err(Error::Locked { .. }) => {
                let holder = UpdateLock::holder(&self.config.lock_path())?.unwrap_or(LockRecord {
                    owner: "unknown".into(),
                    pid: 0,
                    host: crate::lock::host_name(),
                    since: Utc::now(),
                });
                return Ok(RecoveryReport {
                    action: RecoveryAction::UpdateInProgress(holder),
                    leftover_maintenance: None,
                    stale_lock: None,
                });
            }
            Err(e) => return Err(e),
        };
        let mut report = self.recover_locked()?;
        report.stale_lock = acquired.stale.clone();
        Ok(report)
    }

    fn recover_locked(&self) -> Result<RecoveryReport> {
        let journal_path = self.config.journal_path();
        let Some(mut journal) = Journal::load(&journal_path)? else {
            let leftover = match self.maintenance.status() {
                Ok(notice) => notice,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the maintenance state");
                    None
                }
            };
            if let Some(notice) = &leftover {
                if notice.set_by_updater {
                    tracing::warn!(since = %notice.started_at, reason = %notice.reason, "maintenance mode was left on by an earlier run; turning it off");
                    self.maintenance.disable()?;
                    self.notify(
                        NotificationType::Warning,
                        &self.current_version()?,
                        format!(
                            "maintenance mode left on since {} ({}) was turned off",
                            notice.started_at, notice.reason
                        ),
                        None,
                    );
                } else {
                    // An operator's own maintenance: report it, never lift it.
                    tracing::info!(since = %notice.started_at, "maintenance mode is on (not set by the updater); leaving it on");
                }
            }
            return Ok(RecoveryReport {
                action: RecoveryAction::Nothing,
                leftover_maintenance: leftover.filter(|n| n.set_by_updater),
                stale_lock: None,
            });
        };
        let done = |action| RecoveryReport {
            action,
            leftover_maintenance: None,
            stale_lock: None,
        };
        match journal.phase {
            Phase::NeedsOperator => Err(Error::NeedsOperator {
                reason: format!(
                    "recovery of the transition from {} to {} failed {} times (last error: {}). Both trees are kept: the application directory {}, the outgoing tree {} and the incoming tree {}. Fix the cause, then run `updater recover --retry` (Updater::retry_recovery)",
                    journal.from,
                    journal.to,
                    journal.recovery_attempts,
                    journal.last_recovery_error.as_deref().unwrap_or("unknown"),
                    self.config.app_dir.display(),
                    journal.outgoing.display(),
                    journal.incoming.display()
                ),
            }),
            Phase::Committing => {
                self.finish_commit(&mut journal)?;
                Ok(done(RecoveryAction::Committed {
                    running: journal.to,
                }))
            }
            Phase::Preparing => {
                // Maintenance may have gone on just before the crash.
                if let Err(e) = self.maintenance.disable() {
                    tracing::warn!(error = %e, "could not turn maintenance mode off");
                }
                self.amend_history(journal.update_id, |record| {
                    record.status = UpdateStatus::Failed;
                    record.failed_at = Some(Utc::now());
                    record.error_message =
                        Some("interrupted before maintenance mode; nothing was changed".into());
                });
                self.clean_up(&journal, &[]);
                Journal::remove(&journal_path)?;
                Ok(done(RecoveryAction::CleanedUp {
                    version: journal.to,
                }))
            }
            Phase::InWindow | Phase::RollingBack => {
                journal.recovery_attempts += 1;
                if journal.recovery_attempts > Journal::MAX_RECOVERY_ATTEMPTS {
                    journal.phase = Phase::NeedsOperator;
                    journal.save(&journal_path)?;
                    self.notify(
                        NotificationType::NeedsOperator,
                        &journal.to,
                        format!("recovery from the failed update to {} gave up after {} attempts; an operator must act", journal.to, journal.recovery_attempts - 1),
                        Some(serde_json::json!({ "update_id": journal.update_id })),
                    );
                    return self.recover_locked();
                }
                if journal.failure.is_none() {
                    journal.failure = Some(Failure {
                        step: Step::Recover,
                        message: "the updater was interrupted (crash or kill)".into(),
                    });
                }
                journal.phase = Phase::RollingBack;
                journal.save(&journal_path)?;
                self.failpoints.hit("recover:attempt")?;
                match self.roll_back(&mut journal) {
                    Ok(()) => Ok(done(RecoveryAction::RolledBack {
                        running: journal.from,
                        abandoned: journal.to,
                    })),
                    Err(e) if e.is_simulated_crash() => Err(e),
                    Err(e) => {
                        journal.last_recovery_error = Some(e.to_string());
                        journal.save(&journal_path)?;
                        Err(e)
                    }
                }
            }
        }
    }

    /// After an operator fixed the cause, resets the attempt counter of a
    /// transition that stopped in "needs operator" and recovers again.
    pub fn retry_recovery(&self) -> Result<RecoveryReport> {
        let _lock = self.lock("recover --retry")?;
        let path = self.config.journal_path();
        if let Some(mut journal) = Journal::load(&path)?
            && journal.phase == Phase::NeedsOperator
        {
            journal.phase = Phase::RollingBack;
            journal.recovery_attempts = 0;
            journal.save(&path)?;
        }
        self.recover_locked()
    }
}

/// A "migrator" whose revert restores a database snapshot (manual rollback with consent).
struct SnapshotRestore {
    strategy: Arc<dyn BackupStrategy>,
    snapshot: Backup,
}

impl Migrator for SnapshotRestore {
    fn describe(&self) -> String {
        format!("restore of {}", self.snapshot.id)
    }
    fn migrate(&self, _ctx: &MigrationContext) -> Result<()> {
        Ok(())
    }
    fn can_revert(&self) -> bool {
        true
    }
    fn revert(&self, _ctx: &MigrationContext) -> Result<()> {
        self.strategy
            .restore(&self.snapshot, &crate::progress::NoProgress)
    }
}

/// Bytes of regular files under `dir`, skipping `skip` (the state directory).
fn tree_size(dir: &Path, skip: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path == skip {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(path),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
