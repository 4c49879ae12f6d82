//! Failpoints: named places in the pipeline where a test injects a failure
//! or a real crash, to prove that every step is undone or finished.
//!
//! Compiled in only with the cargo feature `failpoints` (tests); without it
//! [`Failpoints`] is an empty type whose `hit` does nothing and inlines away.
//!
//! The pipeline passes `before:<step>` and `after:<step>` around every step,
//! `swap:move:<i>` / `swap:undo:<i>` after each rename of the swap,
//! `commit:point` and `commit:installed` while committing, and
//! `undo:<stage>` / `recover:attempt` while undoing. A *crash* is a real
//! process death (`std::process::abort()`), so tests run the operation in a
//! child process and recover in a fresh one; an *error* is an ordinary error
//! the pipeline handles like any other.
//!
//! ```
//! # #[cfg(feature = "failpoints")] {
//! use updater_core::failpoint::Failpoints;
//! let failpoints = Failpoints::error_at("after:swap");
//! assert!(failpoints.hit("before:swap").is_ok());
//! assert!(failpoints.hit("after:swap").is_err());
//! assert_eq!(failpoints.seen(), ["before:swap", "after:swap"]);
//! # }
//! ```

#[cfg(not(feature = "failpoints"))]
use crate::error::Result;

#[cfg(feature = "failpoints")]
pub use enabled::{Action, Failpoints, Hook};

#[cfg(feature = "failpoints")]
mod enabled {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::error::{Error, Result};

    /// What happens at the chosen failpoint.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Action {
        /// An ordinary error; the pipeline handles it.
        Error,
        /// An I/O error "No space left on device" (ENOSPC).
        DiskFull,
        /// The process aborts on the spot, as if killed.
        Crash,
    }

    /// A test's own code run at every point (to act on the world at a
    /// precise moment); an error it returns is returned from the point.
    pub type Hook = Arc<dyn Fn(&str) -> Result<()> + Send + Sync>;

    /// Fails at one named failpoint (the first time it is reached),
    /// records every point passed, and can sleep at each one (to spread an
    /// operation over time for kill tests).
    #[derive(Default)]
    pub struct Failpoints {
        at: Option<(String, Action)>,
        delay: Duration,
        hook: Option<Hook>,
        seen: Mutex<Vec<String>>,
    }

    impl std::fmt::Debug for Failpoints {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Failpoints")
                .field("at", &self.at)
                .field("delay", &self.delay)
                .finish_non_exhaustive()
        }
    }

    impl Failpoints {
        /// Never fails; only records.
        pub fn record_only() -> Self {
            Failpoints::default()
        }

        /// Fails with an ordinary error at `point`.
        pub fn error_at(point: impl Into<String>) -> Self {
            Self::at(point, Action::Error)
        }

        /// Aborts the process at `point`.
        pub fn crash_at(point: impl Into<String>) -> Self {
            Self::at(point, Action::Crash)
        }

        /// Does `action` at `point`.
        pub fn at(point: impl Into<String>, action: Action) -> Self {
            Failpoints {
                at: Some((point.into(), action)),
                ..Failpoints::default()
            }
        }

        /// Runs `hook` at every point, before the failure (builder style).
        pub fn with_hook(
            mut self,
            hook: impl Fn(&str) -> Result<()> + Send + Sync + 'static,
        ) -> Self {
            self.hook = Some(Arc::new(hook));
            self
        }

        /// Sleeps `delay` at every point (builder style).
        pub fn with_delay(mut self, delay: Duration) -> Self {
            self.delay = delay;
            self
        }

        /// From the environment: `UPDATER_FAILPOINT=<point>=<error|disk_full|crash>`
        /// and `UPDATER_FAILPOINT_DELAY_MS=<ms>` (for child processes of tests).
        pub fn from_env() -> Self {
            let mut failpoints = match std::env::var("UPDATER_FAILPOINT") {
                Ok(spec) => match spec.rsplit_once('=') {
                    Some((point, "crash")) => Self::crash_at(point),
                    Some((point, "disk_full")) => Self::at(point, Action::DiskFull),
                    Some((point, _)) => Self::error_at(point),
                    None => Self::error_at(spec),
                },
                Err(_) => Self::record_only(),
            };
            if let Some(ms) = std::env::var("UPDATER_FAILPOINT_DELAY_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                failpoints.delay = Duration::from_millis(ms);
            }
            failpoints
        }

        /// Every point passed so far, in order.
        pub fn seen(&self) -> Vec<String> {
            self.seen.lock().map(|s| s.clone()).unwrap_or_default()
        }

        /// Called at the failpoint `point`.
        pub fn hit(&self, point: &str) -> Result<()> {
            if !self.delay.is_zero() {
                std::thread::sleep(self.delay);
            }
            if let Some(hook) = &self.hook {
                hook(point)?;
            }
            let first_time = match self.seen.lock() {
                Ok(mut seen) => {
                    let first = !seen.iter().any(|p| p == point);
                    seen.push(point.to_string());
                    first
                }
                Err(_) => true,
            };
            match &self.at {
                Some((at, action)) if first_time && at == point => match action {
                    Action::Error => Err(Error::other(
                        format!("injected failure at failpoint `{point}`"),
                        "failpoint",
                    )),
                    Action::DiskFull => Err(Error::io(
                        "write (injected)",
                        point,
                        std::io::Error::from_raw_os_error(28),
                    )),
                    Action::Crash => std::process::abort(),
                },
                _ => Ok(()),
            }
        }
    }
}

/// Without the `failpoints` feature: nothing, at no cost.
#[cfg(not(feature = "failpoints"))]
#[derive(Debug, Default)]
pub(crate) struct Failpoints {
    _nothing: (),
}

#[cfg(not(feature = "failpoints"))]
impl Failpoints {
    /// Does nothing.
    #[inline(always)]
    pub(crate) fn hit(&self, _point: &str) -> Result<()> {
        Ok(())
    }
}

/// Failpoints that never fire, for unit tests of the machinery.
#[cfg(test)]
pub(crate) fn none() -> &'static Failpoints {
    static NONE: std::sync::OnceLock<Failpoints> = std::sync::OnceLock::new();
    NONE.get_or_init(Failpoints::default)
}
