//! [`RetryPolicy`]: bounded retries with exponential backoff and jitter,
//! and an age after which a notice is given up (and reported).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// When to try a failed delivery again, and when to stop.
///
/// The n-th retry waits `first_delay * 2^(n-1)`, capped at `max_delay`,
/// then "equal jitter": a random point in its upper half, so deliverers
/// that failed together do not retry together. A delivery is given up
/// after `max_attempts` attempts or once its event is older than
/// `give_up_after`, whichever comes first.
///
/// ```
/// use std::time::Duration;
/// use chrono::Utc;
/// use updater_notify::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// let now = Utc::now();
/// let next = policy.next_attempt(1, now, now).expect("retried");
/// let wait = (next - now).to_std()?;
/// assert!(wait >= Duration::from_secs(15) && wait <= Duration::from_secs(30));
/// assert!(policy.next_attempt(policy.max_attempts, now, now).is_none()); // given up
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry (default 30 s).
    pub first_delay: Duration,
    /// The longest wait (default 1 h).
    pub max_delay: Duration,
    /// Attempts before giving up (default 20).
    pub max_attempts: u32,
    /// Age of the event after which it is given up (default 24 h).
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            max_attempts: 20,
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempts` (1-based), before jitter.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        self.first_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay)
    }

    /// When to try again after `attempts` failed attempts of an event
    /// created at `created_at`, the last at `now`; `None`: give up.
    pub fn next_attempt(
        &self,
        attempts: u32,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let age = (now - created_at).to_std().unwrap_or_default();
        if attempts >= self.max_attempts || age >= self.give_up_after {
            return None;
        }
        let base = self.backoff(attempts);
        let half = base / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if jitter_nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(rand::random::<u64>() % jitter_nanos.saturating_add(1))
        };
        let wait = chrono::Duration::from_std(base - half + jitter).ok()?;
        Some(now + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_secs(30));
        assert_eq!(p.backoff(2), Duration::from_secs(60));
        assert_eq!(p.backoff(5), Duration::from_secs(480));
        assert_eq!(p.backoff(50), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_the_backoff() {
        let p = RetryPolicy::default();
        let now = Utc::now();
        let waits: Vec<i64> = (0..200)
            .filter_map(|_| p.next_attempt(3, now, now))
            .map(|t| (t - now).num_milliseconds())
            .collect();
        assert_eq!(waits.len(), 200);
        assert!(
            waits.iter().all(|&w| (60_000..=120_000).contains(&w)),
            "{waits:?}"
        );
        assert!(waits.iter().min() != waits.iter().max(), "jittered");
    }

    #[test]
    fn an_event_older_than_the_limit_is_given_up() {
        let p = RetryPolicy::default();
        let now = Utc::now();
        assert!(
            p.next_attempt(1, now - chrono::Duration::hours(25), now)
                .is_none()
        );
    }
}
