//! `apply`, up to the maintenance window: the release lookup, plan,
//! preflight, download, stage, the application-data scan and the files
//! backup — everything that does not need the application stopped. A failure
//! here changes nothing in the application.

use std::path::Path;

use chrono::Utc;

use crate::backup::{Backup, BackupPurpose, BackupRequest, BackupStrategy};
use crate::durable;
use crate::error::{Error, Result, redact_url};
use crate::history::{
    BackupRecord, NotificationType, StepOutcome, StepRecord, UpdateRecord, UpdateStatus,
};
use crate::install::InstalledState;
use crate::package::delta::DeltaFallback;
use crate::progress::{ProgressEvent, ProgressObserver};
use crate::release::{Asset, Release};
use crate::step::Step;
use crate::tree::FileList;

use super::Updater;
use super::data_scan::DataScanState;
use super::download::Delivery;
use super::journal::{DatabaseChange, TransitionKind};
use super::progress::StepProgress;
use super::report::{ApplyOutcome, ApplyRequest, UpdateReport};
use super::transition::{Transition, Trees};
use super::updater::transition_id;

/// What the preparation hands to the window.
pub(crate) struct Prepared {
    /// The files backup taken before the window.
    pub(crate) backup: Option<Backup>,
    /// The application data scan, refreshed inside the window.
    pub(crate) scan: Option<DataScanState>,
}

impl Updater {
    /// Installs the newest release of the channel, or `request.version`.
    ///
    /// Under the update lock; an interrupted transition found on disk is
    /// recovered first. On failure before maintenance mode nothing was
    /// changed and [`Error::Step`] names the step; on failure after it the
    /// update is undone and [`Error::RolledBack`] names the step and the
    /// cause; if undoing fails too, [`Error::NeedsOperator`] says what is
    /// left. Every attempt that got past the release lookup — and every
    /// failed lookup — is in history.
    pub fn apply(
        &self,
        request: &ApplyRequest,
        observer: &dyn ProgressObserver,
    ) -> Result<ApplyOutcome> {
        let _lock = self.lock(&request.initiated_by)?;
        self.recover_if_interrupted()?;
        let installed = self.installed_state()?;
        let Some((release, lookup)) = self.look_up(request, &installed, observer)? else {
            return Ok(ApplyOutcome::UpToDate {
                current: installed.current,
            });
        };
        let mut record = UpdateRecord::new(release.version.clone(), request.initiated_by.clone());
        record.previous_version = Some(installed.current.clone());
        record.changelog = release.changelog.clone();
        record.auto_update = request.auto_update;
        record.steps.push(lookup);
        let id = transition_id(&release.version);
        let trees = Trees {
            incoming: self.state_subdir("staging", &id),
            outgoing: self
                .config
                .state_subdir("releases", &format!("{}-{id}", installed.current)),
        };
        let mut t = Transition::begin(
            &self.config.journal_path(),
            record,
            TransitionKind::Update,
            id,
            trees,
            self.history.as_ref(),
            observer,
            &self.failpoints,
        )?;
        self.notify(
            NotificationType::UpdateStarted,
            &release.version,
            format!(
                "update from {} to {} started by {}",
                installed.current, release.version, request.initiated_by
            ),
            Some(serde_json::json!({ "update_id": t.update_id() })),
        );
        let prepared = self.prepare_update(&mut t, &release, &installed, request);
        let (backup, carried, result) = match prepared {
            Ok(mut prepared) => {
                let window = self.run_window(&mut t, prepared.scan.as_mut());
                let carried = prepared
                    .scan
                    .map(|state| state.scan.carried)
                    .unwrap_or_default();
                (prepared.backup, carried, window)
            }
            Err(error) => (None, Vec::new(), Err(error)),
        };
        let finished = self.conclude(t, result)?;
        Ok(ApplyOutcome::Updated(UpdateReport {
            update_id: finished.update_id,
            from: installed.current,
            to: release.version,
            update_type: finished.record.as_ref().and_then(|r| r.update_type),
            maintenance_window: finished.window,
            backup,
            carried,
            saved_aside: finished.saved_aside,
        }))
    }

    /// The release to install, or `None` when up to date. A failed lookup is
    /// recorded in history (a record failed at `check`) and announced.
    fn look_up(
        &self,
        request: &ApplyRequest,
        installed: &InstalledState,
        observer: &dyn ProgressObserver,
    ) -> Result<Option<(Release, StepRecord)>> {
        observer.on_progress(&ProgressEvent::message(
            Step::Check,
            0,
            "check: looking for releases",
        ));
        let started_at = Utc::now();
        let found = match &request.version {
            Some(version) => self.source.release(version).map(Some),
            None => self.newest_release(),
        };
        let step = |outcome, message| StepRecord {
            name: Step::Check.as_str().to_string(),
            started_at,
            finished_at: Some(Utc::now()),
            outcome,
            message,
        };
        match found {
            Ok(Some(release)) => {
                // `check` and `apply` share one rule for "latest".
                if request.version.is_none() && self.installable(installed, &release).is_none() {
                    return Ok(None);
                }
                let message = format!("found {}", release.version);
                Ok(Some((release, step(StepOutcome::Succeeded, Some(message)))))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                let wanted = request
                    .version
                    .clone()
                    .unwrap_or_else(|| installed.current.clone());
                let mut record = UpdateRecord::new(wanted.clone(), request.initiated_by.clone());
                record.previous_version = Some(installed.current.clone());
                record.auto_update = request.auto_update;
                let id = Transition::record_failed_before_begin(
                    self.history.as_ref(),
                    record,
                    step(StepOutcome::Failed, Some(error.to_string())),
                    &error,
                );
                self.notify(
                    NotificationType::UpdateFailed,
                    &wanted,
                    format!(
                        "update failed: the release lookup failed: {error}; nothing was changed"
                    ),
                    Some(serde_json::json!({ "update_id": id, "step": "check" })),
                );
                Err(Error::Step {
                    step: Step::Check,
                    source: Box::new(error),
                })
            }
        }
    }

    /// Plan, preflight, download, stage, scan, backup.
    fn prepare_update(
        &self,
        t: &mut Transition<'_>,
        release: &Release,
        installed: &InstalledState,
        request: &ApplyRequest,
    ) -> Result<Prepared> {
        let asset: Asset = t.step(Step::Plan, |t| {
            let update_type = self.config.policy.check(
                &installed.current,
                &release.version,
                Some(&installed.highest),
            )?;
            let asset = release
                .select_asset(self.config.asset_pattern.as_deref())?
                .clone();
            t.amend(|record| {
                record.update_type = Some(update_type);
                record.download_url = Some(redact_url(&asset.location));
                record.checksum = asset.sha256.map(|d| d.to_hex());
                record.download_size = Some(asset.size);
            });
            let change = match &self.migrator {
                Some(_) => DatabaseChange::Migrate,
                None => DatabaseChange::None,
            };
            t.plan_database(change)?;
            Ok(asset)
        })?;
        t.step(Step::Preflight, |_| {
            self.preflight(asset.size, self.files_backup_requested(request))
        })?;
        t.amend(|record| record.status = UpdateStatus::Downloading);
        let delivery = t.step(Step::Download, |t| {
            let id = t.journal().id.clone();
            self.download(t, release, &asset, installed, &id)
        })?;
        t.amend(|record| record.status = UpdateStatus::Installing);
        let incoming_list = t.step(Step::Stage, |t| {
            let incoming = t.journal().incoming.clone();
            let id = t.journal().id.clone();
            self.stage(t, delivery, release, &asset, &incoming, &id)
        })?;
        let scan = t.step(Step::Scan, |t| {
            let baseline = self.baseline(t, installed, release)?;
            self.scan_data(t, baseline, incoming_list)
        })?;
        let backup = t.step(Step::Backup, |t| {
            let Some(strategy) = self.files_backup.as_ref() else {
                t.skip("no files backup configured");
                return Ok(None);
            };
            if !request.backup {
                t.skip("backup not requested");
                return Ok(None);
            }
            let backup =
                self.take_backup(t, strategy.as_ref(), BackupPurpose::PreUpdate, Step::Backup)?;
            t.amend(|record| record.backup_info = serde_json::to_value(&backup).ok());
            Ok(Some(backup))
        })?;
        Ok(Prepared {
            backup,
            scan: Some(scan),
        })
    }

    fn files_backup_requested(&self, request: &ApplyRequest) -> bool {
        request.backup && self.files_backup.is_some()
    }

    /// Builds the staging tree: extraction of the package, or the delta's
    /// assembly (falling back to downloading and extracting the whole
    /// package when it fails verification). Records the tree's file list
    /// (with the stamps its files have now, which the swap's renames keep)
    /// and makes it durable: one `syncfs`, outside the window.
    fn stage(
        &self,
        t: &mut Transition<'_>,
        delivery: Delivery,
        release: &Release,
        asset: &Asset,
        incoming: &Path,
        id: &str,
    ) -> Result<FileList> {
        durable::create_dir_all(durable::parent_of(incoming))?;
        let list = match delivery {
            Delivery::Full(package) => {
                let list = self.extract(t, &package.path, incoming)?;
                t.note(format!(
                    "extracted the full package: {} entries",
                    list.len()
                ));
                list
            }
            Delivery::Delta { plan, spool } => {
                let staged = crate::package::delta::stage(
                    &plan,
                    &spool,
                    &self.config.app_dir,
                    incoming,
                    self.config.delta.unchanged,
                );
                match staged {
                    Ok(staged) => {
                        t.note(format!(
                            "delta: {} files from the package ({} bytes), unchanged files {} reflinked, {} copied, {} hard-linked; the tree equals the signed index",
                            staged.fetched,
                            staged.fetched_bytes,
                            staged.reflinked,
                            staged.copied,
                            staged.hardlinked
                        ));
                        staged.list
                    }
                    Err(error) => {
                        let reason = DeltaFallback::Staging(error.to_string());
                        tracing::warn!(%reason, "falling back to the whole package");
                        if incoming.exists() {
                            std::fs::remove_dir_all(incoming)
                                .map_err(|e| Error::io("remove", incoming, e))?;
                        }
                        let package = self.download_package(t, release, asset, id)?;
                        let list = self.extract(t, &package.path, incoming)?;
                        t.note(format!(
                            "full package, {} bytes, extracted: {} entries; {reason}",
                            package.size,
                            list.len()
                        ));
                        list
                    }
                }
            }
        };
        let mut list = list;
        list.stamp(incoming)?;
        durable::sync_filesystem(incoming)?;
        Ok(list)
    }

    /// Extracts the package into the staging directory; returns its file
    /// list (hashed while extracting).
    fn extract(&self, t: &mut Transition<'_>, package: &Path, incoming: &Path) -> Result<FileList> {
        let report = crate::package::extract_tar_gz(package, incoming, &self.config.extraction)?;
        t.note(format!("{} files, {} bytes", report.files, report.bytes));
        Ok(report.list)
    }

    /// Takes a backup with `strategy`, verifies it, records it in history.
    pub(crate) fn take_backup(
        &self,
        t: &mut Transition<'_>,
        strategy: &dyn BackupStrategy,
        purpose: BackupPurpose,
        step: Step,
    ) -> Result<Backup> {
        let request = BackupRequest {
            version: t.from().clone(),
            purpose,
            update_id: t.update_id(),
            description: Some(format!("before {} to {}", t.kind().as_str(), t.to())),
        };
        let progress = StepProgress {
            observer: t.observer(),
            step,
        };
        let backup = strategy.create(&request, &progress)?;
        strategy.verify(&backup)?;
        let record = BackupRecord {
            system_update_id: t.update_id(),
            ..BackupRecord::of(&backup)
        };
        self.history.record_backup(&record)?;
        Ok(backup)
    }

    /// Checks everything that can be checked before anything changes:
    /// write permission, free space (package, staging, backup, reserve), the
    /// migrator and backup tools, a way back for the database, maintenance.
    pub(crate) fn preflight(&self, package_size: u64, files_backup: bool) -> Result<()> {
        for dir in [&self.config.app_dir, &self.config.state_dir] {
            let probe = tempfile::Builder::new()
                .prefix(".updater-write-test-")
                .tempfile_in(dir);
            if let Err(e) = probe {
                return Err(Error::precondition(
                    "write permission",
                    format!("cannot write in {}: {e}", dir.display()),
                ));
            }
        }
        let staging_estimate = package_size
            .saturating_mul(4)
            .min(self.config.extraction.max_total_bytes);
        let backup_estimate = if files_backup {
            tree_size(&self.config.app_dir, &self.config.state_dir)
        } else {
            0
        };
        let needed = package_size + staging_estimate + backup_estimate + self.config.reserve_bytes;
        let stats = rustix::fs::statvfs(&self.config.state_dir)
            .map_err(|e| Error::io("measure free space", &self.config.state_dir, e.into()))?;
        let available = stats.f_bavail.saturating_mul(stats.f_frsize);
        if available < needed {
            return Err(Error::precondition(
                "disk space",
                format!(
                    "{} has {} MiB free but the package, staging, backup and undo reserve need about {} MiB",
                    self.config.state_dir.display(),
                    available >> 20,
                    needed >> 20
                ),
            ));
        }
        crate::requirement::check_all(&self.config.requirements, &self.config.app_dir)
            .map_err(|failures| Error::precondition("requirements", failures))?;
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
        if files_backup && let Some(backup) = &self.files_backup {
            backup.preflight()?;
        }
        if let Some(backup) = &self.database_backup {
            backup.preflight()?;
            // Before anything changes: prove the snapshot we would take can
            // be restored with these credentials (definers, owners...).
            backup.rehearse()?;
        }
        match &self.maintenance {
            Some(switch) => switch.status().map(drop),
            None => Ok(()),
        }
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
