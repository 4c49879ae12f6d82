//! The limits of one transfer in time: its overall deadline, the waits
//! between tries (backoff or the server's `Retry-After`), and the minimum
//! speed of each try.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{HttpSettings, RetryPolicy};

/// The clock and retry count of one transfer, all tries included.
#[derive(Debug)]
pub(crate) struct Budget {
    started: Instant,
    deadline: Instant,
    limit: Duration,
    retry: RetryPolicy,
    failures: u32,
    minimum_speed: u64,
    speed_window: Duration,
}

/// Why a failed transfer is not tried again.
#[derive(Debug, PartialEq)]
pub(crate) enum GiveUp {
    /// The retry policy's retries are used up.
    Retries(u32),
    /// The next try could not start before the deadline.
    Deadline,
    /// The server asks to come back later than this transfer may wait.
    RetryAfter { at: DateTime<Utc>, why: String },
}

impl Budget {
    /// A budget starting now.
    pub(crate) fn start(settings: &HttpSettings) -> Self {
        Self::start_at(settings, Instant::now())
    }

    fn start_at(settings: &HttpSettings, now: Instant) -> Self {
        Budget {
            started: now,
            deadline: now + settings.transfer_deadline,
            limit: settings.transfer_deadline,
            retry: settings.retry,
            failures: 0,
            minimum_speed: settings.minimum_speed,
            speed_window: settings.speed_window,
        }
    }

    /// The configured deadline (a duration).
    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// How long the transfer has been running.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The minimum speed as `(bytes per second, window)`; 0 bytes/s when off.
    pub(crate) fn minimum_speed(&self) -> (u64, Duration) {
        (self.minimum_speed, self.speed_window)
    }

    /// Whether the deadline has passed.
    pub(crate) fn is_over(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// The timeout to give the next request: the time left when it is
    /// shorter than `request_timeout` (at least 1 ms), so that a request
    /// cannot outlive the deadline; `None` otherwise (the client's own
    /// per-wait timeout applies). A request timeout set this way bounds the
    /// whole response, body included.
    pub(crate) fn request_timeout(&self, request_timeout: Duration) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        (left < request_timeout).then(|| left.max(Duration::from_millis(1)))
    }

    /// After a failure: how long to wait before the next try, or why not to
    /// try again. `retry_after` is the server's `Retry-After`, if any: it is
    /// waited for when it fits both the longest retry wait and the time
    /// left, and fails at once otherwise.
    pub(crate) fn next_wait(
        &mut self,
        retry_after: Option<DateTime<Utc>>,
    ) -> Result<Duration, GiveUp> {
        self.next_wait_at(Instant::now(), Utc::now(), retry_after)
    }

    fn next_wait_at(
        &mut self,
        now: Instant,
        now_utc: DateTime<Utc>,
        retry_after: Option<DateTime<Utc>>,
    ) -> Result<Duration, GiveUp> {
        let left = self.deadline.saturating_duration_since(now);
        let asked = match retry_after {
            Some(at) => {
                let wait = (at - now_utc).to_std().unwrap_or(Duration::ZERO);
                if wait >= left {
                    return Err(GiveUp::RetryAfter {
                        at,
                        why: format!(
                            "after the transfer deadline of {} ({} left)",
                            human(self.limit),
                            human(left)
                        ),
                    });
                }
                if wait > self.retry.max_delay() {
                    return Err(GiveUp::RetryAfter {
                        at,
                        why: format!(
                            "longer than the longest retry wait of {}",
                            human(self.retry.max_delay())
                        ),
                    });
                }
                wait
            }
            None => Duration::ZERO,
        };
        if self.failures >= self.retry.max_retries() {
            return Err(GiveUp::Retries(self.retry.max_retries()));
        }
        let delay = self.retry.delay(self.failures).max(asked);
        self.failures += 1;
        if delay >= left {
            return Err(GiveUp::Deadline);
        }
        Ok(delay)
    }
}

/// Watches the bytes of one try arrive and tells when fewer than the
/// minimum speed arrived over the last window.
///
/// Memory is bounded: a sample is kept at most every 1/16 of the window,
/// so a window holds about 17 samples whatever the transfer speed.
#[derive(Debug)]
pub(crate) struct SpeedMonitor {
    minimum: u64,
    window: Duration,
    /// `(when, bytes received by then)`, oldest first; the first one is the
    /// newest sample at least one window old, once there is one.
    samples: VecDeque<(Instant, u64)>,
}

/// Too few bytes arrived over the last window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooSlow {
    /// Bytes that arrived over `over`.
    pub(crate) received: u64,
    /// The span measured (at least the window).
    pub(crate) over: Duration,
}

impl SpeedMonitor {
    /// A monitor of the `budget`'s transfer whose window starts now (when
    /// the response headers arrived).
    pub(crate) fn start_from(budget: &Budget) -> Self {
        let (minimum, window) = budget.minimum_speed();
        Self::start_at(minimum, window, Instant::now())
    }

    fn start_at(minimum: u64, window: Duration, now: Instant) -> Self {
        SpeedMonitor {
            minimum,
            window,
            samples: VecDeque::from([(now, 0)]),
        }
    }

    /// Records that `total` bytes of this try have arrived by now.
    pub(crate) fn record(&mut self, total: u64) -> Result<(), TooSlow> {
        self.record_at(Instant::now(), total)
    }

    fn record_at(&mut self, now: Instant, total: u64) -> Result<(), TooSlow> {
        if self.minimum == 0 || self.window.is_zero() {
            return Ok(());
        }
        if let Some(horizon) = now.checked_sub(self.window) {
            while self.samples.len() > 1 && self.samples[1].0 <= horizon {
                self.samples.pop_front();
            }
        }
        let Some(&(since, base)) = self.samples.front() else {
            self.samples.push_back((now, total));
            return Ok(());
        };
        let over = now.saturating_duration_since(since);
        if over >= self.window {
            let received = total.saturating_sub(base);
            let needed = u128::from(self.minimum) * over.as_nanos();
            if u128::from(received) * 1_000_000_000 < needed {
                return Err(TooSlow { received, over });
            }
        }
        let step = self.window / 16;
        if self
            .samples
            .back()
            .is_none_or(|&(last, _)| now.saturating_duration_since(last) >= step)
        {
            self.samples.push_back((now, total));
        }
        Ok(())
    }
}

/// `0.3 s`, `12.5 s`, `30 s`, `3600 s`: durations as people read them.
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 10.0 && duration.subsec_millis() != 0 {
        format!("{secs:.1} s")
    } else {
        format!("{} s", duration.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings() -> HttpSettings {
        HttpSettings::default()
            .with_transfer_deadline(Duration::from_secs(60))
            .with_retry(RetryPolicy::new(
                3,
                Duration::from_millis(100),
                Duration::from_secs(10),
            ))
    }

    #[test]
    fn speed_is_judged_only_after_a_full_window() {
        let t0 = Instant::now();
        let mut monitor = SpeedMonitor::start_at(100, Duration::from_secs(10), t0);
        // 1 byte per second: far too slow, but not judged before 10 s.
        for second in 1..10 {
            assert_eq!(
                monitor.record_at(t0 + 1000 * MS * second, u64::from(second)),
                Ok(())
            );
        }
        let error = monitor.record_at(t0 + 10_000 * MS, 10).unwrap_err();
        assert_eq!(
            error,
            TooSlow {
                received: 10,
                over: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn a_burst_long_ago_does_not_hide_a_stall_now() {
        let t0 = Instant::now();
        let mut monitor = SpeedMonitor::start_at(100, Duration::from_secs(10), t0);
        // 1 MB in the first second, then 1 byte per second.
        assert_eq!(monitor.record_at(t0 + 1000 * MS, 1_000_000), Ok(()));
        let mut total = 1_000_000;
        let mut outcome = Ok(());
        let mut second = 1;
        while outcome.is_ok() && second < 60 {
            second += 1;
            total += 1;
            outcome = monitor.record_at(t0 + 1000 * MS * second, total);
        }
        let slow = outcome.unwrap_err();
        assert!((11..=12).contains(&second), "judged at {second} s");
        assert!(
            slow.received <= 11 && slow.over >= Duration::from_secs(10),
            "{slow:?}"
        );
        assert!(
            monitor.samples.len() <= 18,
            "{} samples",
            monitor.samples.len()
        );
    }

    #[test]
    fn a_steady_transfer_at_the_minimum_passes_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut monitor = SpeedMonitor::start_at(1000, Duration::from_secs(2), t0);
        for ms in 1..=20_000u32 {
            let total = u64::from(ms) + 5; // 1000 bytes/s, and a little ahead
            assert_eq!(monitor.record_at(t0 + MS * ms, total), Ok(()), "at {ms} ms");
        }
        assert!(
            monitor.samples.len() <= 18,
            "{} samples",
            monitor.samples.len()
        );
        let mut off = SpeedMonitor::start_at(0, Duration::ZERO, t0);
        assert_eq!(off.record_at(t0 + 1000 * MS * 1000, 0), Ok(()));
    }

    #[test]
    fn retries_wait_within_the_deadline_and_never_past_it() {
        let t0 = Instant::now();
        let now = Utc::now();
        let mut budget = Budget::start_at(&settings(), t0);
        assert_eq!(budget.next_wait_at(t0, now, None), Ok(100 * MS));
        assert_eq!(budget.next_wait_at(t0, now, None), Ok(200 * MS));
        // 59.7 s into a 60 s deadline, a 400 ms backoff does not fit.
        assert_eq!(
            budget.next_wait_at(t0 + 59_700 * MS, now, None),
            Err(GiveUp::Deadline)
        );
        assert_eq!(budget.next_wait_at(t0, now, None), Err(GiveUp::Retries(3)));
    }

    #[test]
    fn retry_after_is_honoured_only_when_it_fits() {
        let t0 = Instant::now();
        let now = Utc::now();
        let mut budget = Budget::start_at(&settings(), t0);
        let in_secs = |s| Some(now + chrono::Duration::seconds(s));
        assert_eq!(budget.next_wait_at(t0, now, in_secs(3)), Ok(3000 * MS));
        let Err(GiveUp::RetryAfter { at, why }) = budget.next_wait_at(t0, now, in_secs(20)) else {
            panic!("a Retry-After over the longest wait is refused");
        };
        assert_eq!(
            (at, why.contains("longest retry wait of 10 s")),
            (now + chrono::Duration::seconds(20), true)
        );
        let Err(GiveUp::RetryAfter { why, .. }) =
            budget.next_wait_at(t0 + 55_000 * MS, now, in_secs(8))
        else {
            panic!("a Retry-After past the deadline is refused");
        };
        assert!(
            why.contains("after the transfer deadline of 60 s (5 s left)"),
            "{why}"
        );
        // A date in the past means "now": the backoff applies.
        assert_eq!(budget.next_wait_at(t0, now, in_secs(-5)), Ok(200 * MS));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(300)), "0.3 s");
        assert_eq!(human(Duration::from_millis(12_500)), "12 s");
        assert_eq!(human(Duration::from_secs(30)), "30 s");
        assert_eq!(human(Duration::from_secs(3600)), "3600 s");
    }
}
