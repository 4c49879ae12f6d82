//! How a transition ends: finished forward past the commit point, or undone
//! before it. `apply`, `rollback`, `restore_backup` and `recover` all end
//! through here, so a crash changes nothing about *how* a transition ends,
//! only *when*.
//!
//! Undoing follows the order the preconditions need: maintenance back on
//! (when something changed), down migrations while the newer code is still
//! in place, the swap reversed, then the database restored from the window's
//! snapshot into the old tree's paths (or migrated up again when undoing a
//! rollback), the rollback hooks, maintenance off.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;

use crate::data::link_tree;
use crate::error::{Error, Result};
use crate::history::{NotificationType, UpdateRecord};
use crate::hook::{HookContext, HookEvent};
use crate::install::KeptRelease;
use crate::migrate::MigrationContext;
use crate::progress::NoProgress;

use super::Updater;
use super::journal::{DatabaseWayBack, Failure, Phase, TransitionKind};
use super::transition::Transition;

/// A transition that ended forward.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) update_id: i64,
    pub(crate) record: Option<UpdateRecord>,
    pub(crate) window: Duration,
    pub(crate) saved_aside: Vec<String>,
}

impl Updater {
    /// Ends a transition after its window (or its preparation) returned.
    pub(crate) fn conclude(&self, t: Transition<'_>, result: Result<()>) -> Result<Finished> {
        match result {
            Ok(()) => self.finish_commit(t, false),
            Err(error) => match t.phase() {
                Phase::Committing => {
                    // Past the commit point: whatever failed after it, finish
                    // now; if that fails too, the journal stays for recovery.
                    tracing::warn!(%error, "an error after the commit point; finishing the commit");
                    self.finish_commit(t, true)
                }
                Phase::Preparing => Err(self.end_unchanged(t, error)),
                Phase::InWindow | Phase::RollingBack | Phase::NeedsOperator => {
                    Err(self.undo_after_failure(t, error))
                }
            },
        }
    }

    /// Failed before maintenance mode: nothing in the application changed.
    fn end_unchanged(&self, t: Transition<'_>, error: Error) -> Error {
        self.release_space();
        let (id, to, step) = (t.journal().id.clone(), t.to().clone(), t.current_step());
        let staging = t.journal().incoming.clone();
        let files = t.journal().incoming_files.clone();
        let kind = t.kind();
        let update_id = t.update_id();
        let message = format!(
            "{} to {to} failed at {step}: {error}; nothing was changed",
            kind.as_str()
        );
        let error = t.end_unchanged(error);
        let mut leftovers: Vec<PathBuf> = files.into_iter().collect();
        if kind != TransitionKind::Rollback {
            leftovers.push(staging);
        }
        self.clean_up(&id, &leftovers);
        self.notify(
            NotificationType::UpdateFailed,
            &to,
            message,
            Some(serde_json::json!({ "update_id": update_id, "step": step.as_str() })),
        );
        error
    }

    /// Failed inside the window: undo, record, tell.
    fn undo_after_failure(&self, mut t: Transition<'_>, error: Error) -> Error {
        // First free the reserve: on a full disk the journal write needs it.
        self.release_space();
        let step = t.current_step();
        let failure = Failure {
            step,
            message: error.to_string(),
        };
        if let Err(save_error) = t.start_undo(failure) {
            return Error::NeedsOperator {
                reason: format!(
                    "{} to {} failed at {step} ({error}) and recording the rollback failed too ({save_error}); run `updater recover` once the cause is fixed",
                    t.kind().as_str(),
                    t.to()
                ),
            };
        }
        match self.undo(&mut t) {
            Ok(warnings) => match self.end_undone(t, &warnings) {
                Ok(version) => Error::RolledBack {
                    version: version.to_string(),
                    step,
                    cause: Box::new(error),
                },
                Err(end_error) => end_error,
            },
            Err(undo_error) => {
                t.record_recovery_error(&undo_error);
                let reason = format!(
                    "{} to {} failed at {step} ({error}) and the rollback failed too ({undo_error}); fix the cause and run `updater recover` (`updater status` shows the journal in {})",
                    t.kind().as_str(),
                    t.to(),
                    self.config.state_dir.display()
                );
                t.amend(|record| {
                    record.status = crate::history::UpdateStatus::NeedsOperator;
                    record.error_message = Some(reason.clone());
                });
                t.flush_record();
                Error::NeedsOperator { reason }
            }
        }
    }

    /// Records a completed undo and removes what it left. Returns the
    /// version abandoned.
    pub(crate) fn end_undone(
        &self,
        t: Transition<'_>,
        warnings: &[String],
    ) -> Result<crate::version::Version> {
        let journal = t.journal().clone();
        t.end_rolled_back(warnings)?;
        let message = match &journal.failure {
            Some(f) => format!("failed at {}: {}", f.step, f.message),
            None => "was interrupted".to_string(),
        };
        self.notify(
            NotificationType::UpdateRolledBack,
            &journal.to,
            format!(
                "{} from {} to {} {message}; undone, {} is running",
                journal.kind.as_str(),
                journal.from,
                journal.to,
                journal.from
            ),
            Some(serde_json::json!({ "update_id": journal.update_id, "warnings": warnings })),
        );
        let mut leftovers = vec![journal.outgoing.clone()];
        if journal.kind != TransitionKind::Rollback {
            // The staging tree (the kept tree of a rollback is back in its place).
            leftovers.push(journal.incoming.clone());
        }
        leftovers.extend(
            journal
                .incoming_files
                .clone()
                .filter(|_| journal.kind != TransitionKind::Rollback),
        );
        self.clean_up(&journal.id, &leftovers);
        Ok(journal.to)
    }

    /// Undoes a transition from any point before its commit, idempotently.
    /// Returns warnings (rollback hooks that failed).
    pub(crate) fn undo(&self, t: &mut Transition<'_>) -> Result<Vec<String>> {
        let journal = t.journal().clone();
        let fail = t.failpoints();
        fail.hit("undo:start")?;
        let database_pending = journal.database_started
            && !journal.database_undone
            && journal.way_back != DatabaseWayBack::None;
        let app_changed = journal.plan.is_some() || database_pending;
        if journal.maintenance_on
            && app_changed
            && let Some(switch) = &self.maintenance
        {
            // No write may land while the old release and its data come back.
            switch.enable(&self.notice(format!(
                "Rolling back {} to {}",
                journal.kind.as_str(),
                journal.from
            ))?)?;
        }
        let ctx = MigrationContext {
            app_dir: self.config.app_dir.clone(),
            from: journal.from.clone(),
            to: journal.to.clone(),
            children: Some(self.children.clone()),
        };
        if database_pending && journal.way_back == DatabaseWayBack::RevertMigrations {
            // Down migrations ship with the new code: while it is in place.
            self.migrator()?.revert(&ctx)?;
            t.record_database_undone()?;
        }
        fail.hit("undo:database_before_swap")?;
        let mut warnings = Vec::new();
        if let Some(plan) = &journal.plan {
            let moved = plan.position()? > 0;
            plan.undo(fail)?;
            if moved {
                let hook_ctx = HookContext {
                    event: HookEvent::AfterRollback,
                    app_dir: self.config.app_dir.clone(),
                    from: journal.to.clone(),
                    to: journal.from.clone(),
                    children: Some(self.children.clone()),
                };
                for hook in &self.hooks {
                    if let Err(e) = hook.run(&hook_ctx) {
                        tracing::warn!(hook = %hook.describe(), error = %e, "rollback hook failed; the rollback goes on");
                        warnings.push(format!("rollback hook {} failed: {e}", hook.describe()));
                    }
                }
            }
        }
        fail.hit("undo:swap")?;
        if database_pending {
            match journal.way_back {
                DatabaseWayBack::RestoreSnapshot => {
                    let snapshot =
                        journal
                            .snapshot
                            .as_ref()
                            .ok_or_else(|| Error::NeedsOperator {
                                reason:
                                    "the journal names a snapshot restore but holds no snapshot"
                                        .into(),
                            })?;
                    self.database_strategy()?
                        .restore_database(snapshot, &NoProgress)?;
                    t.record_database_undone()?;
                }
                DatabaseWayBack::MigrateUp => {
                    // Undoing a rollback: the newer code is back; migrate up again.
                    self.migrator()?.migrate(&MigrationContext {
                        from: ctx.to.clone(),
                        to: ctx.from.clone(),
                        ..ctx
                    })?;
                    t.record_database_undone()?;
                }
                DatabaseWayBack::RevertMigrations | DatabaseWayBack::None => {}
            }
        }
        fail.hit("undo:database")?;
        if journal.maintenance_on
            && let Some(switch) = &self.maintenance
        {
            switch.disable()?;
        }
        fail.hit("undo:maintenance")?;
        Ok(warnings)
    }

    /// Past the commit point: the rest of the swap (after a crash),
    /// maintenance off, the installed state, saved local versions, history,
    /// cleanup. Idempotent; used by every operation and by recovery.
    pub(crate) fn finish_commit(
        &self,
        mut t: Transition<'_>,
        maintenance_still_on: bool,
    ) -> Result<Finished> {
        self.release_space();
        let journal = t.journal().clone();
        if let Some(plan) = &journal.plan
            && !plan.is_complete()?
        {
            plan.apply(t.failpoints())?;
        }
        if maintenance_still_on
            && journal.maintenance_on
            && let Some(switch) = &self.maintenance
        {
            switch.disable()?;
        }
        // The state as it was before this transition: without a state file
        // yet (first update of an app installed by hand) the version file
        // already shows the new release, so start from the journal's `from`.
        let mut installed =
            match crate::install::InstalledState::load(&self.config.installed_path())? {
                Some(state) => state,
                None => crate::install::InstalledState::new(journal.from.clone()),
            };
        let mut remove = Vec::new();
        if journal.swaps_files {
            match journal.kind {
                TransitionKind::Update | TransitionKind::Restore => {
                    if !installed.kept.iter().any(|k| k.tree == journal.outgoing) {
                        installed.kept.insert(
                            0,
                            KeptRelease {
                                version: journal.from.clone(),
                                tree: journal.outgoing.clone(),
                                replaced_by_update: journal.update_id,
                                database_snapshot: journal.snapshot.clone(),
                                replaced_at: Utc::now(),
                                files: installed.files.clone(),
                            },
                        );
                    }
                    let already = installed.current == journal.to;
                    installed.install(&journal.to);
                    installed.files = match journal.kind {
                        TransitionKind::Update => journal.incoming_files.clone(),
                        // A backup holds application data too, so its tree
                        // is no release's file list: use the one recorded
                        // when that version was installed, if any (else the
                        // next update learns it from the release package).
                        _ => installed
                            .kept
                            .iter()
                            .find(|k| k.version == journal.to && k.tree != journal.outgoing)
                            .and_then(|k| k.files.clone()),
                    };
                    // An update is trusted only once it kept running: probation.
                    installed.probation = match (journal.kind, self.config.probation) {
                        (TransitionKind::Update, Some(period)) if !already => {
                            let now = self.clock.now();
                            Some(crate::automation::Probation {
                                update_id: journal.update_id,
                                version: journal.to.clone(),
                                previous: journal.from.clone(),
                                started_at: now,
                                until: now
                                    + chrono::Duration::from_std(period)
                                        .unwrap_or(chrono::Duration::hours(1)),
                            })
                        }
                        (TransitionKind::Update, Some(_)) => installed.probation.clone(),
                        _ => None,
                    };
                }
                TransitionKind::Rollback => {
                    installed.probation = None;
                    installed.current = journal.to.clone();
                    installed.updated_at = Utc::now();
                    installed.files = journal.incoming_files.clone();
                    installed.kept.retain(|k| k.tree != journal.incoming);
                    remove.push(journal.outgoing.clone());
                }
            }
            remove.push(journal.incoming.clone());
        }
        if installed.kept.len() > self.config.keep_releases {
            // The release an update on probation would go back to stays
            // until the probation ends, whatever the retention says.
            let on_probation = installed.probation.as_ref().map(|p| p.update_id);
            for old in installed.kept.split_off(self.config.keep_releases) {
                if on_probation.is_some() && old.replaced_by_update == on_probation.flatten() {
                    installed.kept.push(old);
                    continue;
                }
                remove.push(old.tree);
                // Its file list may describe the running release again (after a restore).
                remove.extend(old.files.filter(|f| installed.files.as_ref() != Some(f)));
            }
        }
        installed.save(&self.config.installed_path())?;
        let saved_aside = self.save_aside(&journal)?;
        if let Some(plan) = &journal.plan {
            for flag in &plan.mirrored {
                // The old tree's flag: a later rollback must not bring it back.
                let stale = journal.outgoing.join(flag);
                if let Err(e) = crate::durable::remove_all(&stale) {
                    tracing::warn!(path = %stale.display(), error = %e, "could not remove a stale maintenance flag");
                }
            }
        }
        t.failpoints().hit("commit:installed")?;
        let update_id = journal.update_id.unwrap_or_default();
        let window = t.window().unwrap_or_default();
        t.report(
            crate::step::Step::MaintenanceOff,
            100,
            format!("{} to {} completed", journal.kind.as_str(), journal.to),
        );
        let record = t.end_committed()?;
        self.notify(
            NotificationType::UpdateCompleted,
            &journal.to,
            format!(
                "{} from {} to {} completed",
                journal.kind.as_str(),
                journal.from,
                journal.to
            ),
            Some(serde_json::json!({ "update_id": journal.update_id })),
        );
        self.clean_up(&journal.id, &remove);
        if let Err(error) = self.prune_locked(self.config.backup_retention) {
            tracing::warn!(%error, "retention after the update failed; the update stands");
        }
        Ok(Finished {
            update_id,
            record,
            window,
            saved_aside,
        })
    }

    /// Hard-links the live versions the release replaced (`take-release`)
    /// from the kept old tree to `<state>/local-changes/<transition>/`.
    fn save_aside(&self, journal: &super::journal::Journal) -> Result<Vec<String>> {
        let target = self.config.state_subdir("local-changes", &journal.id);
        let mut saved = Vec::new();
        for path in &journal.save_aside {
            let from = journal.outgoing.join(path);
            let to = target.join(path);
            if crate::durable::try_exists(&to)? || !crate::durable::try_exists(&from)? {
                continue;
            }
            link_tree(&from, &to)?;
            saved.push(path.clone());
        }
        if !saved.is_empty() {
            tracing::warn!(count = saved.len(), dir = %target.display(), "local versions replaced by the release were saved aside");
        }
        Ok(saved)
    }
}
