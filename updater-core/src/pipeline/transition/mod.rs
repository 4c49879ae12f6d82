//! [`Transition`]: one update, rollback or restore in progress — its
//! journal on disk and its history record — and the only code that changes
//! either. Every change of phase is a method here, saved before the work it
//! announces begins; how it ends (and the records of attempts that never
//! became a transition) is in `end.rs`.

mod end;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::backup::Backup;
use crate::error::{Error, Result};
use crate::history::{HistoryStore, StepOutcome, StepRecord, UpdateRecord, UpdateStatus};
use crate::install::SwapPlan;
use crate::progress::{ProgressEvent, ProgressObserver};
use crate::step::Step;
use crate::version::Version;

use super::journal::{DatabaseChange, DatabaseWayBack, Failure, Journal, Phase, TransitionKind};
use super::progress::{percent_at, percent_span};
use crate::failpoint::Failpoints;

/// A transition in progress: the journal, its path, the history record.
pub(crate) struct Transition<'a> {
    journal: Journal,
    path: PathBuf,
    /// `None` when recovery could not read the record back from history.
    record: Option<UpdateRecord>,
    history: &'a dyn HistoryStore,
    observer: &'a dyn ProgressObserver,
    failpoints: &'a Failpoints,
    /// The step running (or the last one that ran): what an error is blamed on.
    current: Step,
    reported: u8,
    /// When maintenance went on in this process (the journal keeps the
    /// wall-clock time for a recovery in another).
    window_started: Option<Instant>,
    /// The window's length, once maintenance went off.
    window_closed: Option<Duration>,
}

impl std::fmt::Debug for Transition<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transition")
            .field("journal", &self.journal)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Where a new transition's trees are.
pub(crate) struct Trees {
    pub(crate) incoming: PathBuf,
    pub(crate) outgoing: PathBuf,
}

impl<'a> Transition<'a> {
    /// Records the attempt in history and writes its journal
    /// ([`Phase::Preparing`]): from here on a crash is cleaned up or undone
    /// by recovery.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn begin(
        journal_path: &Path,
        mut record: UpdateRecord,
        kind: TransitionKind,
        id: String,
        trees: Trees,
        history: &'a dyn HistoryStore,
        observer: &'a dyn ProgressObserver,
        failpoints: &'a Failpoints,
    ) -> Result<Self> {
        let from = record
            .previous_version
            .clone()
            .unwrap_or_else(|| record.version.clone());
        record.id = history.create_update(&record)?;
        let journal = Journal::begin(
            id,
            kind,
            record.id,
            (from, record.version.clone()),
            trees.incoming,
            trees.outgoing,
        );
        journal.save(journal_path)?;
        Ok(Transition {
            journal,
            path: journal_path.to_path_buf(),
            record: Some(record),
            history,
            observer,
            failpoints,
            current: Step::Plan,
            reported: 0,
            window_started: None,
            window_closed: None,
        })
    }

    /// Takes over a journal found on disk after a crash. The history record
    /// is read back; steps it shows as running were cut short and are
    /// closed as failed.
    pub(crate) fn resume(
        journal_path: &Path,
        journal: Journal,
        history: &'a dyn HistoryStore,
        observer: &'a dyn ProgressObserver,
        failpoints: &'a Failpoints,
    ) -> Self {
        let record = match journal.update_id.map(|id| history.update(id)) {
            Some(Ok(Some(mut record))) => {
                for step in &mut record.steps {
                    if step.outcome == StepOutcome::Running {
                        step.outcome = StepOutcome::Failed;
                        step.finished_at = Some(Utc::now());
                        step.message = Some(
                            "interrupted: the updater process stopped during this step".into(),
                        );
                    }
                }
                Some(record)
            }
            Some(Ok(None)) | None => None,
            Some(Err(error)) => {
                tracing::error!(%error, "cannot read the history record of the interrupted transition");
                None
            }
        };
        let current = journal
            .failure
            .as_ref()
            .map_or(Step::Recover, |failure| failure.step);
        Transition {
            journal,
            path: journal_path.to_path_buf(),
            record,
            history,
            observer,
            failpoints,
            current,
            reported: 0,
            window_started: None,
            window_closed: None,
        }
    }

    // ------------------------------------------------------------ reading

    pub(crate) fn journal(&self) -> &Journal {
        &self.journal
    }
    pub(crate) fn kind(&self) -> TransitionKind {
        self.journal.kind
    }
    pub(crate) fn from(&self) -> &Version {
        &self.journal.from
    }
    pub(crate) fn to(&self) -> &Version {
        &self.journal.to
    }
    pub(crate) fn update_id(&self) -> Option<i64> {
        self.journal.update_id
    }
    pub(crate) fn phase(&self) -> Phase {
        self.journal.phase
    }
    /// The step an error now would be blamed on.
    pub(crate) fn current_step(&self) -> Step {
        self.current
    }
    pub(crate) fn observer(&self) -> &'a dyn ProgressObserver {
        self.observer
    }
    pub(crate) fn failpoints(&self) -> &'a Failpoints {
        self.failpoints
    }
    /// The maintenance window, if it began: its length once it closed,
    /// else the time since it began (on the monotonic clock in the process
    /// that opened it, from the journal's start time after a crash). The
    /// one place a window is measured.
    pub(crate) fn window(&self) -> Option<Duration> {
        self.window_closed.or_else(|| match self.window_started {
            Some(started) => Some(started.elapsed()),
            None => self
                .journal
                .window_started_at
                .map(|s| (Utc::now() - s).to_std().unwrap_or_default()),
        })
    }
    fn window_ms(&self) -> Option<u64> {
        self.window()
            .map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX))
    }

    // ------------------------------------------------------------ steps

    /// Reports progress of the current step.
    pub(crate) fn report(&mut self, step: Step, percent: u8, message: impl Into<String>) {
        self.reported = self.reported.max(percent);
        self.observer
            .on_progress(&ProgressEvent::message(step, self.reported, message));
    }

    /// Runs one step: failpoint `before:<step>`, a running step record saved
    /// to history, the work, its outcome, failpoint `after:<step>`. An
    /// error from anywhere in here is blamed on `step`.
    pub(crate) fn step<T>(
        &mut self,
        step: Step,
        work: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        self.current = step;
        self.failpoints.hit(&format!("before:{step}"))?;
        let percent = percent_at(step);
        if let Some(record) = &mut self.record {
            record.progress_percentage = record.progress_percentage.max(percent);
            record.steps.push(StepRecord {
                name: step.as_str().to_string(),
                started_at: Utc::now(),
                finished_at: None,
                outcome: StepOutcome::Running,
                message: None,
            });
        }
        self.save_record();
        self.report(step, percent, format!("{step}: started"));
        let result = work(self);
        if let Some(last) = self.record.as_mut().and_then(|r| r.steps.last_mut()) {
            last.finished_at = Some(Utc::now());
            match &result {
                Ok(_) if last.outcome == StepOutcome::Running => {
                    last.outcome = StepOutcome::Succeeded;
                }
                Ok(_) => {}
                Err(e) => {
                    last.outcome = StepOutcome::Failed;
                    last.message = Some(e.to_string());
                }
            }
        }
        self.save_record();
        let value = result?;
        self.report(step, percent_span(step).1, format!("{step}: done"));
        self.failpoints.hit(&format!("after:{step}"))?;
        Ok(value)
    }

    /// Marks the running step as skipped, with a reason.
    pub(crate) fn skip(&mut self, reason: &str) {
        if let Some(last) = self.record.as_mut().and_then(|r| r.steps.last_mut()) {
            last.outcome = StepOutcome::Skipped;
            last.message = Some(reason.to_string());
        }
    }

    /// Adds a note to the running step.
    pub(crate) fn note(&mut self, message: impl Into<String>) {
        if let Some(last) = self.record.as_mut().and_then(|r| r.steps.last_mut()) {
            last.message = Some(message.into());
        }
    }

    /// Changes the record (status, plan details, backup info): the only
    /// way the pipeline touches it. Saved with the next step boundary.
    pub(crate) fn amend(&mut self, change: impl FnOnce(&mut UpdateRecord)) {
        if let Some(record) = &mut self.record {
            change(record);
        }
    }

    /// Saves the record now (it is otherwise saved at step boundaries).
    pub(crate) fn flush_record(&self) {
        self.save_record();
    }

    fn save_record(&self) {
        if let Some(record) = &self.record
            && let Err(error) = self.history.save_update(record)
        {
            tracing::error!(update = record.id, %error, "could not record progress in history");
        }
    }

    fn save(&self) -> Result<()> {
        self.failpoints
            .hit(&format!("journal:{}", self.journal.phase.as_str()))?;
        self.journal.save(&self.path)
    }

    // ------------------------------------------------------------ phases

    /// Sets what the database step does (chosen when the transition begins).
    pub(crate) fn plan_database(&mut self, change: DatabaseChange) -> Result<()> {
        self.journal.database_change = change;
        self.save()
    }

    /// Records the incoming tree's file list (installed at commit) and the
    /// local versions to save aside; saved before the window.
    pub(crate) fn record_staged(
        &mut self,
        incoming_files: Option<PathBuf>,
        save_aside: Vec<String>,
    ) -> Result<()> {
        self.journal.incoming_files = incoming_files;
        self.journal.save_aside = save_aside;
        self.save()
    }

    /// A transition that swaps no files (a database-only restore).
    pub(crate) fn without_files(&mut self) -> Result<()> {
        self.journal.swaps_files = false;
        self.save()
    }

    /// Maintenance is about to go on. Saved with the next journal write
    /// (snapshot or swap plan): a crash before it leaves a `Preparing`
    /// journal, whose recovery turns maintenance off. One fsync less in the window.
    pub(crate) fn enter_window(&mut self) {
        self.journal.phase = Phase::InWindow;
        self.journal.maintenance_on = true;
        self.journal.window_started_at = Some(Utc::now());
        self.window_started = Some(Instant::now());
    }

    /// The snapshot taken in the window and the way back it makes possible
    /// (decided here, once).
    pub(crate) fn record_snapshot(
        &mut self,
        snapshot: Option<Backup>,
        way_back: DatabaseWayBack,
    ) -> Result<()> {
        self.journal.snapshot = snapshot;
        self.journal.way_back = way_back;
        self.save()
    }

    /// The swap plan, before its first rename, with the local versions
    /// found inside the window that the release replaces (saved aside at commit).
    pub(crate) fn record_swap_plan(
        &mut self,
        plan: SwapPlan,
        save_aside: Vec<String>,
    ) -> Result<()> {
        self.journal.plan = Some(plan);
        self.journal.save_aside.extend(save_aside);
        self.save()
    }

    /// The database step is about to change the database.
    pub(crate) fn start_database_step(&mut self) -> Result<()> {
        self.journal.database_started = true;
        self.save()
    }

    /// The point of no return, before maintenance goes off: once the new
    /// release takes writes, undoing it would lose them.
    pub(crate) fn commit(&mut self) -> Result<()> {
        let mut committing = self.journal.clone();
        committing.phase = Phase::Committing;
        self.failpoints.hit("journal:committing")?;
        committing.save(&self.path)?;
        // Only what is on disk counts: take it over after the save succeeded.
        self.journal = committing;
        self.failpoints.hit("commit:point")?;
        let window = self.window_ms();
        self.amend(|record| {
            record.status = UpdateStatus::Completed;
            record.progress_percentage = 100;
            record.completed_at = Some(Utc::now());
            record.maintenance_window_ms = record.maintenance_window_ms.or(window);
        });
        Ok(())
    }

    /// Maintenance is off: the window's length is fixed and recorded.
    pub(crate) fn close_window(&mut self) -> Duration {
        let window = self.window().unwrap_or_default();
        self.window_closed = Some(window);
        let window_ms = self.window_ms();
        self.amend(|record| record.maintenance_window_ms = window_ms);
        window
    }

    /// Starts undoing: the failure is journaled first, so a crash during the
    /// undo resumes the undo.
    pub(crate) fn start_undo(&mut self, failure: Failure) -> Result<()> {
        let message = format!("{}: {}", failure.step, failure.message);
        if self.journal.failure.is_none() {
            self.journal.failure = Some(failure);
        }
        self.journal.phase = Phase::RollingBack;
        self.amend(|record| {
            record.error_message.get_or_insert(message);
            record.failed_at.get_or_insert_with(Utc::now);
        });
        self.save_record();
        self.save()
    }

    /// The database way back has run: never again (down migrations are not idempotent).
    pub(crate) fn record_database_undone(&mut self) -> Result<()> {
        self.journal.database_undone = true;
        self.save()
    }

    /// Counts a recovery attempt before it starts; `false` when the budget
    /// is spent and recovery must stop for an operator.
    pub(crate) fn count_recovery_attempt(&mut self) -> Result<bool> {
        self.journal.recovery_attempts += 1;
        if self.journal.recovery_attempts > Journal::MAX_RECOVERY_ATTEMPTS {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    /// An undo or recovery attempt failed.
    pub(crate) fn record_recovery_error(&mut self, error: &Error) {
        self.journal.last_recovery_error = Some(error.to_string());
        if let Err(e) = self.save() {
            tracing::error!(error = %e, "could not record the recovery error in the journal");
        }
    }

    /// Recovery stops: both trees and the snapshot are kept for an operator;
    /// the record says so, with the reason.
    pub(crate) fn give_up(&mut self, reason: &str) -> Result<()> {
        self.journal.phase = Phase::NeedsOperator;
        let reason = reason.to_string();
        self.amend(|record| {
            record.status = UpdateStatus::NeedsOperator;
            record.error_message = Some(reason);
            record.failed_at.get_or_insert_with(Utc::now);
        });
        self.save_record();
        self.save()
    }

    /// An operator fixed the cause: undo again from the start of the budget.
    pub(crate) fn retry(&mut self) -> Result<()> {
        self.journal.phase = Phase::RollingBack;
        self.journal.recovery_attempts = 0;
        self.save()
    }
}
