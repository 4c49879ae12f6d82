//! Progress reporting, at two levels.
//!
//! - A piece of work — a download, a backup, a restore — reports how far
//!   *it* got as a [`Progress`] to a [`ProgressSink`]. Implementations of the
//!   traits (`BackupStrategy`...) know nothing of the pipeline around them.
//! - The pipeline turns that into [`ProgressEvent`]s for the caller's
//!   [`ProgressObserver`]: which [`Step`] runs and how far the whole
//!   operation is (the CLI draws progress bars; the web console forwards them
//!   as server-sent events).
//!
//! Both traits are implemented for closures.

use crate::step::Step;

/// How far one piece of work got, as the code doing it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Progress of this work alone, 0–100.
    pub percent: u8,
    /// Bytes done, when the work moves bytes.
    pub bytes_done: u64,
    /// Bytes expected, when known.
    pub bytes_total: Option<u64>,
    /// Files done, when the work handles files.
    pub files_done: u64,
    /// A short human-readable message.
    pub message: String,
}

impl Progress {
    /// Progress with only a percentage and a message.
    pub fn message(percent: u8, message: impl Into<String>) -> Self {
        Progress {
            percent,
            message: message.into(),
            ..Progress::default()
        }
    }

    /// Progress through `total` bytes (the percentage is computed), with a message.
    pub fn bytes(done: u64, total: u64, message: impl Into<String>) -> Self {
        let percent = done
            .min(total)
            .saturating_mul(100)
            .checked_div(total)
            .map_or(100, |percent| u8::try_from(percent).unwrap_or(100));
        Progress {
            percent,
            bytes_done: done,
            bytes_total: Some(total),
            files_done: 0,
            message: message.into(),
        }
    }
}

/// Receives the progress of one piece of work. Must be cheap: it is called
/// from hot loops (at most a few times per MiB).
///
/// ```
/// use updater_core::progress::{Progress, ProgressSink};
/// let sink = |p: &Progress| tracing::info!(percent = p.percent, "{}", p.message);
/// sink.report(&Progress::bytes(512, 1024, "copying"));
/// ```
pub trait ProgressSink: Send + Sync {
    /// Called for each report.
    fn report(&self, progress: &Progress);
}

impl<F: Fn(&Progress) + Send + Sync> ProgressSink for F {
    fn report(&self, progress: &Progress) {
        self(progress)
    }
}

/// One progress event of a pipeline operation (update, rollback, restore).
/// Serialised with the same field names (the web console's server-sent events).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProgressEvent {
    /// The step running.
    pub step: Step,
    /// Overall progress of the whole operation, 0–100; never goes backwards.
    pub percent: u8,
    /// Bytes done within the step, when it moves bytes.
    pub bytes_done: u64,
    /// Bytes expected within the step, when known.
    pub bytes_total: Option<u64>,
    /// Files done within the step, when it handles files.
    pub files_done: u64,
    /// A short human-readable message.
    pub message: String,
}

impl ProgressEvent {
    /// An event with only a step, percentage and message.
    pub fn message(step: Step, percent: u8, message: impl Into<String>) -> Self {
        ProgressEvent {
            step,
            percent,
            bytes_done: 0,
            bytes_total: None,
            files_done: 0,
            message: message.into(),
        }
    }
}

/// Receives the progress events of a pipeline operation. Must be cheap.
///
/// Implemented for closures:
///
/// ```
/// use updater_core::progress::{ProgressEvent, ProgressObserver};
/// use updater_core::Step;
/// let observer = |event: &ProgressEvent| tracing::info!(percent = event.percent, "{}", event.message);
/// observer.on_progress(&ProgressEvent::message(Step::Check, 0, "hello"));
/// ```
pub trait ProgressObserver: Send + Sync {
    /// Called for each event.
    fn on_progress(&self, event: &ProgressEvent);
}

impl<F: Fn(&ProgressEvent) + Send + Sync> ProgressObserver for F {
    fn on_progress(&self, event: &ProgressEvent) {
        self(event)
    }
}

/// Ignores every report and every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressObserver for NoProgress {
    fn on_progress(&self, _event: &ProgressEvent) {}
}

impl ProgressSink for NoProgress {
    fn report(&self, _progress: &Progress) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_progress_computes_its_percentage_and_caps_it() {
        assert_eq!(Progress::bytes(0, 200, "x").percent, 0);
        assert_eq!(Progress::bytes(100, 200, "x").percent, 50);
        assert_eq!(Progress::bytes(300, 200, "x").percent, 100);
        assert_eq!(Progress::bytes(0, 0, "empty").percent, 100);
    }
}
