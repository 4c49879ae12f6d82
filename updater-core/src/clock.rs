//! [`Clock`]: where the updater reads the time for decisions that depend on
//! it — maintenance windows, one-off schedules, probation deadlines — so
//! tests can move time instead of sleeping ([`ManualClock`]).
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use updater_core::clock::{Clock, ManualClock};
//! let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap());
//! clock.advance(Duration::hours(2));
//! assert_eq!(clock.now(), Utc.with_ymd_and_hms(2026, 3, 29, 2, 30, 0).unwrap());
//! ```

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Tells the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock a test sets and moves.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        if let Ok(mut current) = self.now.lock() {
            *current = now;
        }
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut current) = self.now.lock() {
            *current += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.now
            .lock()
            .map(|now| *now)
            .unwrap_or_else(|_| Utc::now())
    }
}
