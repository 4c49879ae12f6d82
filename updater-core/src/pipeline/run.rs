//! One running update or rollback: its history record, step by step, and the progress it reports.

use chrono::Utc;

use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::history::{HistoryStore, StepOutcome, StepRecord, UpdateRecord, UpdateStatus};
use crate::progress::{Progress, ProgressEvent, ProgressObserver, ProgressSink};

use crate::step::Step;

/// Overall progress when `step` starts.
pub(crate) fn percent_at(step: Step) -> u8 {
    match step {
        Step::Check => 0,
        Step::Plan => 2,
        Step::Preflight => 5,
        Step::Backup => 8,
        Step::Download => 30,
        Step::Stage => 60,
        Step::MaintenanceOn => 70,
        Step::DatabaseSnapshot => 72,
        Step::Swap => 76,
        Step::Migrate => 80,
        Step::Hooks => 85,
        Step::HealthCheck => 88,
        Step::Commit => 96,
        Step::MaintenanceOff => 98,
        Step::Rollback | Step::Recover => 0,
    }
}

/// The span of overall progress a step covers, for byte-level progress inside it.
pub(crate) fn percent_span(step: Step) -> (u8, u8) {
    let start = percent_at(step);
    let end = Step::UPDATE
        .iter()
        .skip_while(|s| **s != step)
        .nth(1)
        .map_or(100, |next| percent_at(*next));
    (start, end)
}

pub(crate) struct Run<'a> {
    pub(crate) record: UpdateRecord,
    /// The highest percentage reported so far: progress never goes backwards.
    reported: std::sync::atomic::AtomicU8,
    history: &'a dyn HistoryStore,
    failpoints: &'a dyn Failpoints,
    pub(crate) observer: &'a dyn ProgressObserver,
}

impl<'a> Run<'a> {
    pub(crate) fn start(
        mut record: UpdateRecord,
        history: &'a dyn HistoryStore,
        failpoints: &'a dyn Failpoints,
        observer: &'a dyn ProgressObserver,
    ) -> Result<Self> {
        record.id = history.create_update(&record)?;
        Ok(Run {
            record,
            reported: std::sync::atomic::AtomicU8::new(0),
            history,
            failpoints,
            observer,
        })
    }

    pub(crate) fn set_status(&mut self, status: UpdateStatus) {
        self.record.status = status;
    }

    pub(crate) fn save(&self) -> Result<()> {
        self.history.save_update(&self.record)
    }

    pub(crate) fn report(&self, step: Step, percent: u8, message: impl Into<String>) {
        let percent = self
            .reported
            .fetch_max(percent, std::sync::atomic::Ordering::Relaxed)
            .max(percent);
        self.observer
            .on_progress(&ProgressEvent::message(step, percent, message));
    }

    /// Runs one step: failpoint `before:<step>`, a running step record, the
    /// work, the outcome, failpoint `after:<step>`. Errors are wrapped in
    /// [`Error::Step`] naming the step.
    pub(crate) fn step<T>(
        &mut self,
        step: Step,
        work: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let wrap = |source: Error| match source {
            Error::Step { .. } => source,
            other => Error::Step {
                step,
                source: Box::new(other),
            },
        };
        self.failpoints
            .hit(&format!("before:{step}"))
            .map_err(wrap)?;
        let percent = percent_at(step);
        self.record.progress_percentage = self.record.progress_percentage.max(percent);
        self.record.steps.push(StepRecord {
            name: step.as_str().to_string(),
            started_at: Utc::now(),
            finished_at: None,
            outcome: StepOutcome::Running,
            message: None,
        });
        self.save().map_err(wrap)?;
        self.report(step, percent, format!("{step}: started"));
        let result = work(self);
        if let Err(e) = &result
            && e.is_simulated_crash()
        {
            return result.map_err(wrap);
        }
        if let Some(last) = self.record.steps.last_mut() {
            last.finished_at = Some(Utc::now());
            match &result {
                Ok(_) => {
                    if last.outcome == StepOutcome::Running {
                        last.outcome = StepOutcome::Succeeded;
                    }
                }
                Err(e) => {
                    last.outcome = StepOutcome::Failed;
                    last.message = Some(e.to_string());
                }
            }
        }
        let value = result.map_err(wrap)?;
        self.save().map_err(wrap)?;
        self.report(step, percent_span(step).1, format!("{step}: done"));
        self.failpoints
            .hit(&format!("after:{step}"))
            .map_err(wrap)?;
        Ok(value)
    }

    /// Marks the current step as skipped, with a reason.
    pub(crate) fn skip(&mut self, reason: &str) {
        if let Some(last) = self.record.steps.last_mut() {
            last.outcome = StepOutcome::Skipped;
            last.message = Some(reason.to_string());
        }
    }

    /// Adds a note to the current step.
    pub(crate) fn note(&mut self, message: String) {
        if let Some(last) = self.record.steps.last_mut() {
            last.message = Some(message);
        }
    }
}

/// Passes an implementation's own progress (0–100 % of its work) on to the
/// caller's observer as events of `step`, rescaled into the step's span of
/// the overall percentage.
pub(crate) struct ScaledObserver<'a> {
    pub(crate) inner: &'a dyn ProgressObserver,
    pub(crate) step: Step,
}

impl ProgressSink for ScaledObserver<'_> {
    fn report(&self, progress: &Progress) {
        let (start, end) = percent_span(self.step);
        let inner = u16::from(progress.percent.min(100));
        let scaled = u16::from(start) + inner * u16::from(end - start) / 100;
        self.inner.on_progress(&ProgressEvent {
            step: self.step,
            percent: u8::try_from(scaled).unwrap_or(end),
            bytes_done: progress.bytes_done,
            bytes_total: progress.bytes_total,
            files_done: progress.files_done,
            message: progress.message.clone(),
        });
    }
}
