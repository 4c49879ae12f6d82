//! What an operator asks for besides updates: going back to the kept
//! release, restoring a backup, taking one. Rollback and restore are
//! transitions like an update — staged beside the application, swapped in
//! inside the maintenance window, journaled, finished or undone by recovery.

use crate::backup::{
    Backup, BackupKind, BackupPurpose, BackupRequest, BackupStrategy, Pruned, RetentionRules,
};
use crate::data::ConflictPolicy;
use crate::durable;
use crate::error::{Error, Result};
use crate::history::{BackupRecord, NotificationType, UpdateRecord, UpdateStatus};
use crate::progress::{ProgressObserver, ProgressSink};
use crate::step::Step;
use crate::tree::FileList;
use crate::version::UpdateType;

use super::Updater;
use super::journal::{DatabaseChange, TransitionKind};
use super::progress::StepProgress;
use super::report::{RestoreRequest, RollbackPlan, RollbackRequest, UpdateReport};
use super::transition::{Transition, Trees};
use super::updater::transition_id;
use super::window::WindowInput;

impl Updater {
    /// Goes back to the newest kept previous release on an operator's
    /// request (after a committed update), through the same journaled
    /// window: down migrations while the newer code is in place (or, with
    /// consent, the snapshot taken before that update), the swap back with
    /// the application data written since carried along, the
    /// `after_rollback` hooks, the health check.
    pub fn rollback(
        &self,
        request: &RollbackRequest,
        observer: &dyn ProgressObserver,
    ) -> Result<UpdateReport> {
        self.rollback_checked(request, observer, true)
    }

    /// [`rollback`](Self::rollback), with or without the health check of
    /// the release it goes back to (a failed probation goes back to the
    /// known-good release whatever its health says now).
    pub(crate) fn rollback_checked(
        &self,
        request: &RollbackRequest,
        observer: &dyn ProgressObserver,
        verify_health: bool,
    ) -> Result<UpdateReport> {
        let _lock = self.lock(&request.initiated_by)?;
        self.recover_if_interrupted()?;
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
        let change = match &self.migrator {
            Some(migrator) if migrator.can_revert() => DatabaseChange::RevertMigrations,
            Some(migrator) => {
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
                if self.database_backup.is_none() {
                    return Err(Error::precondition(
                        "rollback",
                        "restoring the snapshot needs the database backup strategy configured",
                    ));
                }
                DatabaseChange::RestoreSnapshot(snapshot)
            }
            None => DatabaseChange::None,
        };
        let mut record = UpdateRecord::new(kept.version.clone(), request.initiated_by.clone());
        record.previous_version = Some(installed.current.clone());
        record.update_type = Some(UpdateType::Downgrade);
        let id = transition_id(&kept.version);
        let trees = Trees {
            incoming: kept.tree.clone(),
            outgoing: self
                .config
                .state_subdir("releases", &format!("{}-{id}", installed.current)),
        };
        let mut t = Transition::begin(
            &self.config.journal_path(),
            record,
            TransitionKind::Rollback,
            id.clone(),
            trees,
            self.history.as_ref(),
            observer,
            &self.failpoints,
        )?;
        self.notify(
            NotificationType::UpdateStarted,
            &kept.version,
            format!(
                "rollback from {} to {} started by {}",
                installed.current, kept.version, request.initiated_by
            ),
            Some(serde_json::json!({ "update_id": t.update_id() })),
        );
        let prepared = (|| {
            t.step(Step::Plan, |t| t.plan_database(change))?;
            t.step(Step::Preflight, |_| self.preflight(0, false))?;
            t.step(Step::Scan, |t| {
                let incoming = match &kept.files {
                    Some(path) => FileList::load(path)?,
                    None => None,
                };
                let incoming = match incoming {
                    Some(list) => list,
                    None => {
                        let mut list = FileList::from_dir(&kept.tree)?;
                        list.stamp(&kept.tree)?;
                        list
                    }
                };
                let baseline = self.installed_files(&installed)?;
                self.scan_data(t, baseline, incoming)
            })
        })();
        let result = match prepared {
            Ok(mut scan) => self.run_window_with(
                &mut t,
                WindowInput {
                    scan: Some(&mut scan),
                    carry_preserved: true,
                    restore_with: None,
                    verify_health,
                },
            ),
            Err(error) => Err(error),
        };
        let finished = self.conclude(t, result)?;
        Ok(UpdateReport {
            update_id: finished.update_id,
            from: installed.current,
            to: kept.version,
            update_type: Some(UpdateType::Downgrade),
            maintenance_window: finished.window,
            backup: None,
            carried: Vec::new(),
            saved_aside: finished.saved_aside,
        })
    }

    /// What [`rollback`](Self::rollback) would do now — the release it goes
    /// back to and what happens to the database — for a confirmation that
    /// names them; `None` when no previous release is kept. Writes nothing.
    pub fn rollback_plan(&self) -> Result<Option<RollbackPlan>> {
        let installed = self.installed_state()?;
        let Some(kept) = installed.kept.first() else {
            return Ok(None);
        };
        let snapshot_id = kept.database_snapshot.as_ref().map(|b| b.id.clone());
        let (database, blocker) = match &self.migrator {
            None => ("none", None),
            Some(migrator) if migrator.can_revert() => ("revert_migrations", None),
            Some(migrator) => (
                "restore_snapshot",
                if snapshot_id.is_none() {
                    Some(format!(
                        "{} cannot revert migrations and no database snapshot was kept for that update",
                        migrator.describe()
                    ))
                } else if self.database_backup.is_none() {
                    Some(
                        "restoring the snapshot needs the database backup strategy configured"
                            .to_string(),
                    )
                } else {
                    None
                },
            ),
        };
        let blocker = blocker.or_else(|| {
            (!kept.tree.is_dir()).then(|| {
                format!(
                    "the kept tree of {} is missing: {}",
                    kept.version,
                    kept.tree.display()
                )
            })
        });
        Ok(Some(RollbackPlan {
            from: installed.current.clone(),
            to: kept.version.clone(),
            database,
            snapshot_id,
            possible: blocker.is_none(),
            blocker,
        }))
    }

    /// Restores `backup` (made by `strategy`) on an operator's request, as
    /// atomically as an update: verified first, its files staged beside the
    /// application, swapped in inside the maintenance window (preserved paths
    /// and application data the backup does not hold are kept, unless the
    /// request includes preserved paths), its database part restored after
    /// a snapshot of the current database; any failure — or a crash, via
    /// [`recover`](Self::recover) — puts the application and database back as
    /// they were. The backup's version becomes the running one. In history.
    pub fn restore_backup(
        &self,
        strategy: &dyn BackupStrategy,
        backup: &Backup,
        request: &RestoreRequest,
        observer: &dyn ProgressObserver,
    ) -> Result<UpdateReport> {
        let _lock = self.lock(&request.initiated_by)?;
        self.recover_if_interrupted()?;
        let installed = self.installed_state()?;
        let has_files = backup.kind != BackupKind::DatabaseOnly;
        let has_database = backup.kind != BackupKind::FilesOnly;
        if has_database && self.database_backup.is_none() {
            return Err(Error::precondition(
                "restore",
                format!(
                    "backup {} holds a database: restoring it needs the database snapshot configured, so that a failed restore can be undone",
                    backup.id
                ),
            ));
        }
        let mut record = UpdateRecord::new(backup.version.clone(), request.initiated_by.clone());
        record.previous_version = Some(installed.current.clone());
        record.backup_info = serde_json::to_value(backup).ok();
        record.changelog = format!("restore of backup {} ({})", backup.id, backup.kind.as_str());
        let id = transition_id(&backup.version);
        let trees = Trees {
            incoming: self.state_subdir("staging", &id),
            outgoing: self
                .config
                .state_subdir("releases", &format!("{}-{id}", installed.current)),
        };
        let mut t = Transition::begin(
            &self.config.journal_path(),
            record,
            TransitionKind::Restore,
            id,
            trees,
            self.history.as_ref(),
            observer,
            &self.failpoints,
        )?;
        let prepared = (|| {
            t.step(Step::Plan, |t| {
                if !has_files {
                    t.without_files()?;
                }
                t.plan_database(if has_database {
                    DatabaseChange::RestoreBackup(backup.clone())
                } else {
                    DatabaseChange::None
                })
            })?;
            t.step(Step::Preflight, |_| {
                strategy.verify(backup)?;
                self.preflight(backup.size, false)
            })?;
            if !has_files {
                return Ok(None);
            }
            t.amend(|record| record.status = UpdateStatus::Installing);
            let incoming = t.step(Step::Stage, |t| {
                let target = t.journal().incoming.clone();
                durable::create_dir_all(durable::parent_of(&target))?;
                let progress = StepProgress {
                    observer: t.observer(),
                    step: Step::Stage,
                };
                strategy.stage_files(backup, &target, &progress as &dyn ProgressSink)?;
                let mut list = FileList::from_dir(&target)?;
                list.stamp(&target)?;
                durable::sync_filesystem(&target)?;
                t.note(format!(
                    "{} entries staged from backup {}",
                    list.len(),
                    backup.id
                ));
                Ok(list)
            })?;
            t.step(Step::Scan, |t| {
                let baseline = self.installed_files(&installed)?;
                // The backup wins where both have a path; the live versions
                // stay in the kept tree and are saved aside.
                self.scan_data_with(
                    t,
                    baseline,
                    incoming,
                    ConflictPolicy::TakeRelease,
                    !request.include_preserved,
                )
                .map(Some)
            })
        })();
        let result = match prepared {
            Ok(mut scan) => self.run_window_with(
                &mut t,
                WindowInput {
                    scan: scan.as_mut(),
                    carry_preserved: !request.include_preserved,
                    restore_with: Some(strategy),
                    verify_health: false,
                },
            ),
            Err(error) => Err(error),
        };
        let finished = self.conclude(t, result)?;
        Ok(UpdateReport {
            update_id: finished.update_id,
            from: installed.current,
            to: backup.version.clone(),
            update_type: None,
            maintenance_window: finished.window,
            backup: Some(backup.clone()),
            carried: Vec::new(),
            saved_aside: finished.saved_aside,
        })
    }

    /// Takes a backup of the running version with `strategy` on an operator's
    /// request, under the update lock (never during an update), verifies it
    /// and records it in history.
    pub fn create_backup(
        &self,
        strategy: &dyn BackupStrategy,
        description: Option<String>,
        initiated_by: &str,
        progress: &dyn ProgressSink,
    ) -> Result<Backup> {
        let _lock = self.lock(initiated_by)?;
        self.recover_if_interrupted()?;
        let request = BackupRequest {
            version: self.current_version()?,
            purpose: BackupPurpose::Manual,
            update_id: None,
            description,
        };
        let backup = strategy.create(&request, progress)?;
        strategy.verify(&backup)?;
        if let Err(error) = self.history.record_backup(&BackupRecord::of(&backup)) {
            tracing::error!(%error, backup = %backup.id, "the backup was made but could not be recorded in history");
        }
        Ok(backup)
    }

    /// Deletes `backup` (made by `strategy`) on an operator's request, under
    /// the update lock (never during an update), and marks its history
    /// record unrestorable with who deleted it. Refuses a database snapshot
    /// a kept release needs for rollback.
    pub fn delete_backup(
        &self,
        strategy: &dyn BackupStrategy,
        backup: &Backup,
        initiated_by: &str,
    ) -> Result<()> {
        let _lock = self.lock(initiated_by)?;
        let installed = self.installed_state()?;
        if let Some(kept) = installed.kept.iter().find(|k| {
            k.database_snapshot
                .as_ref()
                .is_some_and(|b| b.id == backup.id)
        }) {
            return Err(Error::precondition(
                "delete backup",
                format!(
                    "backup {} is the database snapshot that rolling back to {} needs",
                    backup.id, kept.version
                ),
            ));
        }
        strategy.delete(backup)?;
        if let Err(error) = self
            .history
            .mark_backup_unrestorable(&backup.id, &format!("deleted by {initiated_by}"))
        {
            tracing::debug!(%error, backup = %backup.id, "no history record to mark");
        }
        Ok(())
    }

    /// Applies retention to the files backups and the database snapshots,
    /// under the update lock: `keep` verified backups of each kind (the
    /// configured retention when `None`), never the newest one of the running
    /// version nor the snapshots kept releases need for rollback.
    pub fn prune_backups(&self, keep: Option<usize>, initiated_by: &str) -> Result<Vec<Pruned>> {
        let _lock = self.lock(initiated_by)?;
        self.recover_if_interrupted()?;
        self.prune_locked(keep.or(self.config.backup_retention))
    }

    /// Retention, the lock held (also run after every committed update).
    pub(crate) fn prune_locked(&self, keep: Option<usize>) -> Result<Vec<Pruned>> {
        let Some(keep) = keep else {
            return Ok(Vec::new());
        };
        if keep == 0 {
            return Err(Error::invalid("retention", "keep at least 1 backup"));
        }
        let installed = self.installed_state()?;
        let rules = RetentionRules {
            keep,
            running: installed.current.clone(),
            protected: installed
                .kept
                .iter()
                .filter_map(|k| k.database_snapshot.as_ref().map(|b| b.id.clone()))
                .collect(),
        };
        let mut pruned = Vec::new();
        for strategy in self.files_backup.iter().chain(&self.database_backup) {
            let result = strategy.prune(&rules)?;
            for id in &result.deleted {
                if let Err(error) = self
                    .history
                    .mark_backup_unrestorable(id, "deleted by retention")
                {
                    tracing::debug!(%error, backup = %id, "no history record to mark");
                }
            }
            pruned.push(result);
        }
        Ok(pruned)
    }

    /// Clears the record of a dead update lock for an operator (`updater
    /// unlock --force`); refuses while a live process holds it, naming it.
    pub fn force_unlock(&self) -> Result<Option<crate::lock::LockRecord>> {
        crate::lock::UpdateLock::force_clear(&self.config.lock_path())
    }
}
