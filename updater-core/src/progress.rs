//! Progress reporting: the pipeline and long-running implementations send
//! [`ProgressEvent`]s to a [`ProgressObserver`] the caller passes in (the CLI
//! draws progress bars; a web application forwards them as events).

use crate::pipeline::Step;

/// One progress report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    /// The pipeline step this belongs to.
    pub step: Step,
    /// Overall progress of the whole operation, 0–100.
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

/// Receives progress events. Must be cheap: it is called from the hot loop of
/// downloads and backups (at most a few times per MiB).
///
/// Implemented for closures:
///
/// ```
/// use updater_core::progress::{ProgressEvent, ProgressObserver};
/// let observer = |event: &ProgressEvent| tracing::info!(percent = event.percent, "{}", event.message);
/// observer.on_progress(&ProgressEvent::message(updater_core::pipeline::Step::Check, 0, "hello"));
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

/// An observer that ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressObserver for NoProgress {
    fn on_progress(&self, _event: &ProgressEvent) {}
}
