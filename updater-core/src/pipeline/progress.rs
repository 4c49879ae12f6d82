//! Overall progress of an operation: where each step starts in the 0–100 %
//! of the whole, and [`StepProgress`], which rescales an implementation's
//! own progress (a backup, a download) into its step's span.

use crate::progress::{Progress, ProgressEvent, ProgressObserver, ProgressSink};
use crate::step::Step;

/// Overall progress when `step` starts.
pub(crate) fn percent_at(step: Step) -> u8 {
    match step {
        Step::Check => 0,
        Step::Plan => 2,
        Step::Preflight => 4,
        Step::Download => 6,
        Step::Stage => 40,
        Step::Scan => 52,
        Step::Backup => 55,
        Step::MaintenanceOn => 75,
        Step::Drain => 76,
        Step::DatabaseSnapshot => 77,
        Step::Swap => 80,
        Step::Migrate | Step::RestoreDatabase => 84,
        Step::Hooks => 88,
        Step::HealthCheck => 90,
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
    (start, end.max(start))
}

/// Passes an implementation's own progress (0–100 % of its work) on to the
/// caller's observer as events of `step`, rescaled into the step's span.
pub(crate) struct StepProgress<'a> {
    pub(crate) observer: &'a dyn ProgressObserver,
    pub(crate) step: Step,
}

impl ProgressSink for StepProgress<'_> {
    fn report(&self, progress: &Progress) {
        let (start, end) = percent_span(self.step);
        let inner = u16::from(progress.percent.min(100));
        let scaled = u16::from(start) + inner * u16::from(end - start) / 100;
        self.observer.on_progress(&ProgressEvent {
            step: self.step,
            percent: u8::try_from(scaled).unwrap_or(end),
            bytes_done: progress.bytes_done,
            bytes_total: progress.bytes_total,
            files_done: progress.files_done,
            message: progress.message.clone(),
        });
    }
}
