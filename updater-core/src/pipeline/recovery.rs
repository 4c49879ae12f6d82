//! Recovery: finishing or undoing a transition that a crash, a kill or a
//! power cut interrupted, from its journal. Idempotent and bounded: each
//! attempt is counted first; after a few failures it stops in "needs
//! operator", keeping both trees, until [`Updater::retry_recovery`].

use chrono::Utc;

use crate::error::{Error, Result};
use crate::history::NotificationType;
use crate::lock::{LockRecord, UpdateLock};
use crate::progress::NoProgress;
use crate::step::Step;

use super::Updater;
use super::journal::{Failure, Journal, Phase};
use super::report::{RecoveryAction, RecoveryReport};
use super::transition::Transition;

/// How long recovery waits for the children of a dead updater to die.
const ORPHAN_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Updater {
    /// Finishes or undoes a transition interrupted by a crash, clears a
    /// maintenance flag the updater left on, and reports a stale lock. Call
    /// it when your application starts (the CLI calls it once before every
    /// command). Returns [`RecoveryAction::UpdateInProgress`] when another
    /// process holds the lock.
    pub fn recover(&self) -> Result<RecoveryReport> {
        if !crate::durable::try_exists(&self.config.state_dir)? {
            // Never used: nothing to recover, and nothing to create.
            return Ok(RecoveryReport::of(RecoveryAction::Nothing));
        }
        let acquired = match self.lock("recover") {
            Ok(acquired) => acquired,
            Err(Error::Locked { .. }) => {
                let holder = UpdateLock::holder(&self.config.lock_path())?.unwrap_or(LockRecord {
                    owner: "unknown".into(),
                    pid: 0,
                    host: crate::lock::host_name(),
                    since: Utc::now(),
                });
                return Ok(RecoveryReport::of(RecoveryAction::UpdateInProgress(holder)));
            }
            Err(e) => return Err(e),
        };
        let mut report = self.recover_locked()?;
        report.stale_lock = acquired.stale.clone();
        Ok(report)
    }

    /// Under the lock: recovers only when a transition was interrupted (so an
    /// operation started right after `recover` does not recover twice).
    pub(crate) fn recover_if_interrupted(&self) -> Result<()> {
        if crate::durable::try_exists(&self.config.journal_path())?
            || !self.children.records()?.is_empty()
        {
            self.recover_locked()?;
        }
        Ok(())
    }

    fn recover_locked(&self) -> Result<RecoveryReport> {
        // Before anything is undone: a migration or hook a dead updater
        // started must not finish underneath the rollback.
        let stopped = self.children.stop_orphans(ORPHAN_STOP_TIMEOUT)?;
        for child in &stopped {
            tracing::info!(step = %child.record.step, program = %child.record.program, killed = ?child.killed, "stopped a process left running by a dead updater");
        }
        let stopped: Vec<String> = stopped
            .iter()
            .filter(|c| !c.killed.is_empty())
            .map(|c| {
                format!(
                    "{} ({}, pids {:?})",
                    c.record.program, c.record.step, c.killed
                )
            })
            .collect();
        let mut report = self.recover_journal()?;
        report.stopped_children = stopped;
        Ok(report)
    }

    fn recover_journal(&self) -> Result<RecoveryReport> {
        let path = self.config.journal_path();
        let Some(journal) = Journal::load(&path)? else {
            self.release_space();
            return self.clear_leftover_maintenance();
        };
        let mut t = Transition::resume(
            &path,
            journal,
            self.history.as_ref(),
            &NoProgress,
            &self.failpoints,
        );
        match t.phase() {
            Phase::NeedsOperator => Err(self.needs_operator(&t)),
            Phase::Committing => {
                let running = t.to().clone();
                self.finish_commit(t, true)?;
                Ok(RecoveryReport::of(RecoveryAction::Committed { running }))
            }
            Phase::Preparing => {
                // Maintenance may have gone on just before the crash.
                if let Some(switch) = &self.maintenance
                    && let Err(e) = switch.disable()
                {
                    tracing::warn!(error = %e, "could not turn maintenance mode off");
                }
                let version = t.to().clone();
                let interrupted = Error::other(
                    "recovery",
                    "the updater was interrupted before maintenance mode; nothing was changed",
                );
                let _reported = self.end_unchanged_after_crash(t, interrupted);
                Ok(RecoveryReport::of(RecoveryAction::CleanedUp { version }))
            }
            Phase::InWindow | Phase::RollingBack => {
                // On a full disk the journal write needs the reserve.
                self.release_space();
                if !t.count_recovery_attempt()? {
                    let attempts = t.journal().recovery_attempts - 1;
                    let reason = format!(
                        "recovery of the {} from {} to {} failed {attempts} times; an operator must act",
                        t.kind().as_str(),
                        t.from(),
                        t.to()
                    );
                    t.give_up(&reason)?;
                    self.notify(
                        NotificationType::NeedsOperator,
                        t.to(),
                        reason,
                        Some(serde_json::json!({ "update_id": t.update_id() })),
                    );
                    return Err(self.needs_operator(&t));
                }
                let failure = t.journal().failure.clone().unwrap_or(Failure {
                    step: Step::Recover,
                    message: "the updater was interrupted (crash or kill)".into(),
                });
                t.start_undo(failure)?;
                t.failpoints().hit("recover:attempt")?;
                match self.undo(&mut t) {
                    Ok(warnings) => {
                        let (running, abandoned) = (t.from().clone(), t.to().clone());
                        self.end_undone(t, &warnings)?;
                        Ok(RecoveryReport::of(RecoveryAction::RolledBack {
                            running,
                            abandoned,
                        }))
                    }
                    Err(e) => {
                        t.record_recovery_error(&e);
                        Err(e)
                    }
                }
            }
        }
    }

    /// The error for a transition waiting for an operator, naming what is kept where.
    fn needs_operator(&self, t: &Transition<'_>) -> Error {
        let journal = t.journal();
        Error::NeedsOperator {
            reason: format!(
                "recovery of the {} from {} to {} failed {} times (last error: {}). Both trees are kept: the application directory {}, the outgoing tree {} and the incoming tree {}. Fix the cause, then run `updater recover --retry` (Updater::retry_recovery)",
                journal.kind.as_str(),
                journal.from,
                journal.to,
                journal.recovery_attempts.saturating_sub(1),
                journal.last_recovery_error.as_deref().unwrap_or("unknown"),
                self.config.app_dir.display(),
                journal.outgoing.display(),
                journal.incoming.display()
            ),
        }
    }

    fn end_unchanged_after_crash(&self, t: Transition<'_>, error: Error) -> Error {
        self.release_space();
        let id = t.journal().id.clone();
        let mut leftovers: Vec<std::path::PathBuf> =
            t.journal().incoming_files.clone().into_iter().collect();
        if t.kind() != super::journal::TransitionKind::Rollback {
            leftovers.push(t.journal().incoming.clone());
        }
        let error = t.end_unchanged(error);
        self.clean_up(&id, &leftovers);
        error
    }

    /// No transition: a maintenance flag the updater set is a leftover of a
    /// crashed run (turned off, reported); one an operator set stays.
    fn clear_leftover_maintenance(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::of(RecoveryAction::Nothing);
        let Some(switch) = &self.maintenance else {
            return Ok(report);
        };
        let leftover = match switch.status() {
            Ok(notice) => notice,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the maintenance state");
                None
            }
        };
        if let Some(notice) = leftover {
            if notice.set_by_updater {
                tracing::info!(since = %notice.started_at, reason = %notice.reason, "maintenance mode was left on by an earlier run; turning it off");
                switch.disable()?;
                self.notify(
                    NotificationType::Warning,
                    &self.current_version()?,
                    format!(
                        "maintenance mode left on since {} ({}) was turned off",
                        notice.started_at, notice.reason
                    ),
                    None,
                );
                report.leftover_maintenance = Some(notice);
            } else {
                tracing::info!(since = %notice.started_at, "maintenance mode is on (not set by the updater); leaving it on");
            }
        }
        Ok(report)
    }

    /// After an operator fixed the cause, resets the attempt counter of a
    /// transition that stopped in "needs operator" and recovers again.
    pub fn retry_recovery(&self) -> Result<RecoveryReport> {
        let _lock = self.lock("recover --retry")?;
        let path = self.config.journal_path();
        if let Some(journal) = Journal::load(&path)?
            && journal.phase == Phase::NeedsOperator
        {
            let mut t = Transition::resume(
                &path,
                journal,
                self.history.as_ref(),
                &NoProgress,
                &self.failpoints,
            );
            t.retry()?;
        }
        self.recover_locked()
    }
}
