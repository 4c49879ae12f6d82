//! The maintenance window: maintenance on → drain → database snapshot →
//! swap and database step (in the order the transition needs) → hooks →
//! health check → commit point → maintenance off. Only what needs the
//! application stopped happens here; its duration is measured and recorded.

use std::path::PathBuf;
use std::time::Instant;

use crate::backup::{BackupPurpose, BackupStrategy};
use crate::data;
use crate::durable;
use crate::error::{Error, Result};
use crate::health::HealthContext;
use crate::hook::{HookContext, HookEvent};
use crate::install::{SwapDirs, SwapPlan};
use crate::migrate::MigrationContext;
use crate::step::Step;

use super::Updater;
use super::data_scan::DataScanState;
use super::journal::{DatabaseChange, DatabaseWayBack, TransitionKind};
use super::progress::StepProgress;
use super::transition::Transition;

/// What the window needs besides the transition.
pub(crate) struct WindowInput<'a> {
    /// The application-data scan, refreshed right before the swap.
    pub(crate) scan: Option<&'a mut DataScanState>,
    /// Carry the preserved paths (a restore may put back the backup's copies instead).
    pub(crate) carry_preserved: bool,
    /// The strategy that restores a backup's database part (restores only).
    pub(crate) restore_with: Option<&'a dyn BackupStrategy>,
    /// Run the health check (not for a restore, nor for a failed
    /// probation's way back to the known-good release).
    pub(crate) verify_health: bool,
}

impl Updater {
    /// Runs the window of `t`; returns its duration. On error the caller
    /// ([`conclude`](Self::conclude)) undoes or finishes, from the journal.
    pub(crate) fn run_window(
        &self,
        t: &mut Transition<'_>,
        scan: Option<&mut DataScanState>,
    ) -> Result<()> {
        self.run_window_with(
            t,
            WindowInput {
                scan,
                carry_preserved: true,
                restore_with: None,
                verify_health: true,
            },
        )
    }

    pub(crate) fn run_window_with(
        &self,
        t: &mut Transition<'_>,
        mut input: WindowInput<'_>,
    ) -> Result<()> {
        // Flush what is pending on the file system (cleanups, the app's
        // writes) now, so the syncs inside the window carry only the swap;
        // and set aside the space an undo needs on a full disk.
        t.step(Step::MaintenanceOn, |t| {
            durable::sync_filesystem(&self.config.app_dir)?;
            self.reserve_space()?;
            t.enter_window();
            match &self.maintenance {
                Some(switch) => {
                    let reason = match t.kind() {
                        TransitionKind::Update => format!("Updating to {}", t.to()),
                        TransitionKind::Rollback => format!("Rolling back to {}", t.to()),
                        TransitionKind::Restore => format!("Restoring {}", t.to()),
                    };
                    switch.enable(&self.notice(reason)?)
                }
                None => {
                    t.skip("maintenance mode is off in the configuration");
                    Ok(())
                }
            }
        })?;
        t.step(Step::Drain, |t| self.drain(t))?;
        t.step(Step::DatabaseSnapshot, |t| self.snapshot(t))?;
        let swaps = t.journal().swaps_files;
        if t.journal().database_change.before_swap() {
            self.database_step(t, &input)?;
            if swaps {
                self.swap(t, &mut input)?;
            }
        } else {
            if swaps {
                self.swap(t, &mut input)?;
            }
            self.database_step(t, &input)?;
        }
        t.step(Step::Hooks, |t| {
            let event = match t.kind() {
                TransitionKind::Update => HookEvent::AfterSwap,
                TransitionKind::Rollback => HookEvent::AfterRollback,
                TransitionKind::Restore => {
                    t.skip("no hooks run for a restore");
                    return Ok(());
                }
            };
            if self.hooks.is_empty() {
                t.skip("no hooks configured");
            }
            let ctx = HookContext {
                event,
                app_dir: self.config.app_dir.clone(),
                from: t.from().clone(),
                to: t.to().clone(),
                children: Some(self.children.clone()),
            };
            self.hooks.iter().try_for_each(|hook| hook.run(&ctx))
        })?;
        t.amend(|record| record.status = crate::history::UpdateStatus::Verifying);
        let verify_health = input.verify_health;
        t.step(Step::HealthCheck, |t| {
            if !verify_health {
                t.skip(match t.kind() {
                    TransitionKind::Restore => "no health check for a restore",
                    _ => "going back to the known-good release after a failed probation",
                });
                return Ok(());
            }
            self.health_check(t)
        })?;
        // The commit point comes BEFORE maintenance goes off: once the new
        // release takes writes, undoing it (restoring the snapshot) would lose them.
        t.step(Step::Commit, |t| t.commit())?;
        t.step(Step::MaintenanceOff, |t| {
            if let Some(switch) = &self.maintenance {
                switch.disable()?;
            } else {
                t.skip("maintenance mode is off in the configuration");
            }
            Ok(())
        })?;
        t.close_window();
        Ok(())
    }

    /// Lets requests that passed the maintenance check before it went on
    /// finish: the drain command (until it exits 0), then the drain time.
    fn drain(&self, t: &mut Transition<'_>) -> Result<()> {
        let drain = &self.config.drain;
        if drain.command.is_none() && drain.wait.is_zero() {
            t.skip("no drain configured");
            return Ok(());
        }
        if let Some(command) = &drain.command {
            command.run("drain", Some(&self.config.app_dir))?;
        }
        std::thread::sleep(drain.wait);
        Ok(())
    }

    /// Takes the database snapshot (while writes are stopped) and decides,
    /// once, how the database would go back.
    fn snapshot(&self, t: &mut Transition<'_>) -> Result<()> {
        let snapshot = match &self.database_backup {
            Some(strategy) => Some(self.take_backup(
                t,
                strategy.as_ref(),
                BackupPurpose::RollbackSnapshot,
                Step::DatabaseSnapshot,
            )?),
            None => {
                t.skip("no database backup configured");
                None
            }
        };
        let change = t.journal().database_change.clone();
        let way_back = match (&snapshot, t.kind(), change) {
            (Some(_), _, _) => DatabaseWayBack::RestoreSnapshot,
            (None, _, DatabaseChange::None) => DatabaseWayBack::None,
            (None, TransitionKind::Update, DatabaseChange::Migrate)
                if self.migrator.as_ref().is_some_and(|m| m.can_revert()) =>
            {
                DatabaseWayBack::RevertMigrations
            }
            (None, TransitionKind::Rollback, DatabaseChange::RevertMigrations) => {
                DatabaseWayBack::MigrateUp
            }
            (None, _, change) => {
                return Err(Error::precondition(
                    "database rollback",
                    format!(
                        "the database step ({change:?}) could not be undone: no database snapshot is configured and the migrations cannot be reverted"
                    ),
                ));
            }
        };
        t.record_snapshot(snapshot, way_back)
    }

    /// Plans and performs the swap; the plan is journaled before the first
    /// rename. Application data created since the scan is found first.
    fn swap(&self, t: &mut Transition<'_>, input: &mut WindowInput<'_>) -> Result<()> {
        t.step(Step::Swap, |t| {
            let mut carried: Vec<PathBuf> = if input.carry_preserved {
                self.config.preserved_paths.clone()
            } else {
                Vec::new()
            };
            let mut save_aside = Vec::new();
            if let Some(DataScanState {
                scan,
                baseline,
                incoming,
                rules,
                policy,
            }) = input.scan.as_deref_mut()
            {
                let known = match baseline {
                    Some(list) => data::Baseline::Known(list),
                    None => data::Baseline::Unknown,
                };
                let found = scan.refresh(&self.config.app_dir, known, incoming, rules)?;
                let resolution = data::resolve(&found, *policy)?;
                scan.carried.extend(resolution.carry);
                save_aside = resolution.save_aside;
                carried.extend(scan.carried.iter().map(PathBuf::from));
            }
            let journal = t.journal();
            let reserved = self.config.reserved_names();
            let plan = SwapPlan::prepare(&SwapDirs {
                app_dir: &self.config.app_dir,
                incoming: &journal.incoming,
                outgoing: &journal.outgoing,
                displaced: &self.state_subdir("displaced", &journal.id),
                debris: &self.state_subdir("debris", &journal.id),
                reserved: &reserved,
                carried: &carried,
                mirrored: &self.mirrored_files(),
            })?;
            t.record_swap_plan(plan.clone(), save_aside)?;
            plan.apply(t.failpoints())
        })
    }

    /// The database step of the transition (journaled before it begins).
    fn database_step(&self, t: &mut Transition<'_>, input: &WindowInput<'_>) -> Result<()> {
        let change = t.journal().database_change.clone();
        let step = match change {
            DatabaseChange::RestoreBackup(_) => Step::RestoreDatabase,
            _ => Step::Migrate,
        };
        t.step(step, |t| {
            let ctx = MigrationContext {
                app_dir: self.config.app_dir.clone(),
                from: t.from().clone(),
                to: t.to().clone(),
                children: Some(self.children.clone()),
            };
            let progress = StepProgress {
                observer: t.observer(),
                step,
            };
            match change {
                DatabaseChange::None => {
                    t.skip(if t.kind() == TransitionKind::Restore {
                        "the backup holds no database"
                    } else {
                        "no migrator configured"
                    });
                    Ok(())
                }
                DatabaseChange::Migrate => {
                    let migrator = self.migrator()?;
                    t.start_database_step()?;
                    migrator.migrate(&ctx)
                }
                DatabaseChange::RevertMigrations => {
                    let migrator = self.migrator()?;
                    t.start_database_step()?;
                    // The update being undone went from `to` to `from`.
                    migrator.revert(&MigrationContext {
                        from: ctx.to.clone(),
                        to: ctx.from.clone(),
                        ..ctx
                    })
                }
                DatabaseChange::RestoreSnapshot(snapshot) => {
                    let strategy = self.database_strategy()?;
                    t.start_database_step()?;
                    strategy.restore_database(&snapshot, &progress)
                }
                DatabaseChange::RestoreBackup(backup) => {
                    let strategy = input.restore_with.ok_or_else(|| {
                        Error::precondition("restore database", "no backup strategy given")
                    })?;
                    t.start_database_step()?;
                    strategy.restore_database(&backup, &progress)
                }
            }
        })
    }

    pub(crate) fn migrator(&self) -> Result<&dyn crate::migrate::Migrator> {
        self.migrator.as_deref().ok_or_else(|| Error::NeedsOperator {
            reason: "the transition needs the migrator it ran with, but none is configured; configure it as before and recover again".into(),
        })
    }

    pub(crate) fn database_strategy(&self) -> Result<&dyn BackupStrategy> {
        self.database_backup
            .as_deref()
            .ok_or_else(|| Error::NeedsOperator {
                reason: "the transition needs the database backup it ran with, but none is configured; configure it as before and recover again".into(),
            })
    }

    /// Every health check must pass; each is probed until it does or the
    /// deadline passes (core owns the retry loop; a check is one probe).
    fn health_check(&self, t: &mut Transition<'_>) -> Result<()> {
        if self.health_checks.is_empty() {
            t.skip("no health check configured");
            return Ok(());
        }
        let deadline = Instant::now() + self.config.health_timeout;
        let bypass_secret = match &self.maintenance {
            Some(switch) => switch.status()?.and_then(|notice| notice.bypass_secret),
            None => None,
        };
        let ctx = HealthContext {
            app_dir: self.config.app_dir.clone(),
            version: t.to().clone(),
            deadline,
            bypass_secret,
            children: Some(self.children.clone()),
        };
        let probes = crate::health::probe_until_healthy(
            &self.health_checks,
            &ctx,
            self.config.health_interval,
        )?;
        tracing::debug!(probes, "healthy");
        Ok(())
    }

    /// Sets aside `reserve_bytes` in the state directory before the window,
    /// so that undoing on a disk filled meanwhile (journal writes, history)
    /// has room: [`release_space`](Self::release_space) frees it first.
    pub(crate) fn reserve_space(&self) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.config.reserve_path();
        if self.config.reserve_bytes == 0 || durable::try_exists(&path)? {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let allocated = rustix::fs::fallocate(
            &file,
            rustix::fs::FallocateFlags::empty(),
            0,
            self.config.reserve_bytes,
        );
        let result = match allocated {
            Ok(()) => Ok(()),
            // File systems without fallocate: write the bytes.
            Err(rustix::io::Errno::OPNOTSUPP) => {
                use std::io::Write;
                let chunk = vec![0u8; 1 << 20];
                let mut left = self.config.reserve_bytes;
                let mut writer = &file;
                let mut outcome = Ok(());
                while left > 0 {
                    let n = usize::try_from(left.min(1 << 20)).unwrap_or(1 << 20);
                    if let Err(e) = writer.write_all(&chunk[..n]) {
                        outcome = Err(Error::io("write", &path, e));
                        break;
                    }
                    left -= n as u64;
                }
                outcome
            }
            Err(e) => Err(Error::io("reserve space in", &path, e.into())),
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        result
    }

    /// Frees the reserve (first thing when undoing or finishing).
    pub(crate) fn release_space(&self) {
        if let Err(e) = durable::remove_all(&self.config.reserve_path()) {
            tracing::warn!(error = %e, "could not remove the disk reserve");
        }
    }
}
