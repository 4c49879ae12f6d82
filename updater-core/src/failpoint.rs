//! Failpoints: named places in the pipeline where a test can inject a failure
//! or a simulated crash, to prove that every step rolls back or recovers.
//!
//! The pipeline calls [`Failpoints::hit`] with `before:<step>` and
//! `after:<step>` around every [`Step`](crate::step::Step), with
//! `swap:move:<i>` / `swap:undo:<i>` after each rename of the swap, and with
//! `recover:<phase>` inside recovery. Production code uses [`NoFailpoints`].
//!
//! ```
//! use updater_core::failpoint::{FailAt, Failpoints, FailureMode};
//! let failpoints = FailAt::new("after:swap", FailureMode::Crash);
//! assert!(failpoints.hit("before:swap").is_ok());
//! assert!(failpoints.hit("after:swap").unwrap_err().is_simulated_crash());
//! ```

use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, Result};

/// Receives every failpoint the pipeline passes.
pub trait Failpoints: Send + Sync {
    /// Called at the failpoint `point`; an error is returned from the step.
    fn hit(&self, point: &str) -> Result<()>;
}

/// No failures (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFailpoints;

impl Failpoints for NoFailpoints {
    fn hit(&self, _point: &str) -> Result<()> {
        Ok(())
    }
}

/// What happens at the chosen failpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// An ordinary error: the pipeline handles it (rolls back).
    Error,
    /// A simulated crash: the pipeline stops at once and cleans nothing up,
    /// as if the process had been killed; `recover()` must finish the job.
    Crash,
}

/// Fails at one named failpoint (the first time it is reached), records
/// every point passed, and can sleep at each point (to spread an update over
/// time for kill tests).
#[derive(Debug)]
pub struct FailAt {
    point: Option<String>,
    mode: FailureMode,
    delay: Duration,
    seen: Mutex<Vec<String>>,
}

impl FailAt {
    /// Fails at `point` with `mode`.
    pub fn new(point: impl Into<String>, mode: FailureMode) -> Self {
        FailAt {
            point: Some(point.into()),
            mode,
            delay: Duration::ZERO,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Never fails; only records (and optionally sleeps).
    pub fn record_only() -> Self {
        FailAt {
            point: None,
            mode: FailureMode::Error,
            delay: Duration::ZERO,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Sleeps `delay` at every point (builder style).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Every point passed so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Failpoints for FailAt {
    fn hit(&self, point: &str) -> Result<()> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let first_time = match self.seen.lock() {
            Ok(mut seen) => {
                let first = !seen.iter().any(|p| p == point);
                seen.push(point.to_string());
                first
            }
            Err(_) => true,
        };
        if first_time && self.point.as_deref() == Some(point) {
            return Err(match self.mode {
                FailureMode::Error => Error::other(
                    format!("injected failure at failpoint `{point}`"),
                    "failpoint",
                ),
                FailureMode::Crash => Error::SimulatedCrash {
                    point: point.to_string(),
                },
            });
        }
        Ok(())
    }
}
