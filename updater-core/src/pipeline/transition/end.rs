//! How a [`Transition`] ends — unchanged, committed or rolled back — and
//! the two update records written outside a running transition: an attempt
//! that failed before one began (the release lookup), and a committed update
//! undone later by another transition (a failed probation).

use chrono::Utc;

use crate::error::{Error, Result};
use crate::history::{HistoryStore, StepOutcome, StepRecord, UpdateRecord, UpdateStatus};
use crate::step::Step;

use super::Transition;
use crate::pipeline::journal::{Journal, Phase};

impl Transition<'_> {
    /// Failed before anything in the application changed: the record says
    /// so, the journal goes. Returns the error to report, naming the step.
    pub(crate) fn end_unchanged(mut self, error: Error) -> Error {
        let step = self.current;
        let message = format!("{step}: {error}");
        self.amend(|record| {
            record.status = UpdateStatus::Failed;
            record.failed_at = Some(Utc::now());
            record.error_message = Some(message);
        });
        self.save_record();
        if let Err(e) = Journal::remove(&self.path) {
            tracing::error!(error = %e, "could not remove the journal; recovery will clean up");
        }
        Error::Step {
            step,
            source: Box::new(error),
        }
    }

    /// Finished forward (past the commit point): the record is completed and
    /// the journal goes.
    pub(crate) fn end_committed(mut self) -> Result<Option<UpdateRecord>> {
        let window = self.window_ms();
        self.amend(|record| {
            if record.status != UpdateStatus::Completed {
                record.status = UpdateStatus::Completed;
                record.completed_at = Some(Utc::now());
                record.progress_percentage = 100;
            }
            record.maintenance_window_ms = record.maintenance_window_ms.or(window);
        });
        self.save_record();
        Journal::remove(&self.path)?;
        Ok(self.record)
    }

    /// Undone: the old release runs again. `warnings` are problems that did
    /// not stop the undo (a failing rollback hook); they go into the record.
    pub(crate) fn end_rolled_back(mut self, warnings: &[String]) -> Result<()> {
        let message = match &self.journal.failure {
            Some(f) => format!("failed at {}: {}", f.step, f.message),
            None => "interrupted".to_string(),
        };
        let window = self.window_ms();
        let running = self.journal.from.clone();
        let mut detail = format!("{running} is running again");
        if !warnings.is_empty() {
            detail.push_str(&format!("; warnings: {}", warnings.join("; ")));
        }
        let status = if self.journal.phase == Phase::Preparing {
            UpdateStatus::Failed
        } else {
            UpdateStatus::RolledBack
        };
        self.amend(|record| {
            record.status = status;
            record.failed_at.get_or_insert_with(Utc::now);
            let mut text = message;
            if !warnings.is_empty() {
                text.push_str(&format!(" (undo warnings: {})", warnings.join("; ")));
            }
            record.error_message = Some(text);
            record.maintenance_window_ms = record.maintenance_window_ms.or(window);
            record.steps.push(StepRecord {
                name: Step::Rollback.as_str().to_string(),
                started_at: Utc::now(),
                finished_at: Some(Utc::now()),
                outcome: StepOutcome::Succeeded,
                message: Some(detail),
            });
        });
        self.save_record();
        Journal::remove(&self.path)
    }

    // ---------------------------------------- records outside a transition

    /// An update that failed at `step` before any transition began (the
    /// release lookup): no journal, nothing changed, only a failed record.
    /// Returns its id, `None` if history could not store it (logged).
    pub(crate) fn record_failed_before_begin(
        history: &dyn HistoryStore,
        mut record: UpdateRecord,
        step: StepRecord,
        error: &Error,
    ) -> Option<i64> {
        record.status = UpdateStatus::Failed;
        record.failed_at = Some(Utc::now());
        record.error_message = Some(format!("{}: {error}", step.name));
        record.steps.push(step);
        history
            .create_update(&record)
            .inspect_err(|e| tracing::error!(error = %e, "could not record the failed update"))
            .ok()
    }

    /// A committed update (record `update_id`) undone afterwards by another
    /// transition, as when it fails its probation: its record says it was
    /// rolled back, and `why`. A missing record is left alone; failures are logged.
    pub(crate) fn record_undone_later(history: &dyn HistoryStore, update_id: i64, why: String) {
        let mut record = match history.update(update_id) {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(update = update_id, %error, "could not read the update undone later");
                return;
            }
        };
        record.status = UpdateStatus::RolledBack;
        record.failed_at = Some(Utc::now());
        record.error_message = Some(why);
        if let Err(error) = history.save_update(&record) {
            tracing::error!(update = update_id, %error, "could not record that the update was undone");
        }
    }
}
