//! [`HttpSettings`] and [`RetryPolicy`]: the knobs shared by both sources.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::SourceError;

/// Timeouts, transfer limits, retries, insecure hosts and caching, shared by
/// [`GitHubSource`](crate::GitHubSource) and [`ManifestSource`](crate::ManifestSource).
///
/// Every transfer (one asset download, or one metadata document: a release
/// list page, a manifest, a checksum file) is bounded three ways:
///
/// | limit | default | what it stops |
/// |---|---|---|
/// | [request timeout](Self::with_request_timeout) | 10 s | a server that stops answering: each wait for headers or for the next bytes |
/// | [minimum speed](Self::with_minimum_speed) | 1 KiB/s over 30 s | a server that trickles bytes (like curl's `--speed-limit`/`--speed-time`) |
/// | [transfer deadline](Self::with_transfer_deadline) | 1 h | everything else: the whole transfer, all retries, redirects, resumes and waits included |
///
/// Each ends the transfer with an error that says which limit, after how
/// long and how many bytes (converted to [`updater_core::Error::Unavailable`]).
///
/// ```
/// use std::time::Duration;
/// use updater_source_github::{HttpSettings, RetryPolicy};
/// let settings = HttpSettings::default()
///     .with_request_timeout(Duration::from_secs(5))
///     .with_transfer_deadline(Duration::from_secs(600))
///     .with_minimum_speed(10 * 1024, Duration::from_secs(20))
///     .with_retry(RetryPolicy::new(3, Duration::from_millis(200), Duration::from_secs(2)))
///     .with_insecure_host("updates.lan");
/// assert_eq!(settings.request_timeout(), Duration::from_secs(5));
/// assert_eq!(settings.transfer_deadline(), Duration::from_secs(600));
/// assert_eq!(settings.minimum_speed(), Some((10 * 1024, Duration::from_secs(20))));
/// ```
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) transfer_deadline: Duration,
    pub(crate) minimum_speed: u64,
    pub(crate) speed_window: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) insecure_hosts: Vec<String>,
    pub(crate) etag_cache_file: Option<PathBuf>,
    pub(crate) user_agent: String,
    pub(crate) max_metadata_bytes: u64,
}

/// Default [transfer deadline](HttpSettings::with_transfer_deadline): 1 hour.
///
/// ```
/// use updater_source_github::{DEFAULT_TRANSFER_DEADLINE, HttpSettings};
/// assert_eq!(HttpSettings::default().transfer_deadline(), DEFAULT_TRANSFER_DEADLINE);
/// ```
pub const DEFAULT_TRANSFER_DEADLINE: Duration = Duration::from_secs(3600);

/// Default [minimum speed](HttpSettings::with_minimum_speed) in bytes per
/// second (1 KiB/s), over [`DEFAULT_MINIMUM_SPEED_WINDOW`].
///
/// ```
/// use updater_source_github::{DEFAULT_MINIMUM_SPEED, DEFAULT_MINIMUM_SPEED_WINDOW, HttpSettings};
/// assert_eq!(
///     HttpSettings::default().minimum_speed(),
///     Some((DEFAULT_MINIMUM_SPEED, DEFAULT_MINIMUM_SPEED_WINDOW))
/// );
/// ```
pub const DEFAULT_MINIMUM_SPEED: u64 = 1024;

/// Default window of the [minimum speed](HttpSettings::with_minimum_speed): 30 s.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(updater_source_github::DEFAULT_MINIMUM_SPEED_WINDOW, Duration::from_secs(30));
/// ```
pub const DEFAULT_MINIMUM_SPEED_WINDOW: Duration = Duration::from_secs(30);

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            transfer_deadline: DEFAULT_TRANSFER_DEADLINE,
            minimum_speed: DEFAULT_MINIMUM_SPEED,
            speed_window: DEFAULT_MINIMUM_SPEED_WINDOW,
            retry: RetryPolicy::default(),
            insecure_hosts: Vec::new(),
            etag_cache_file: None,
            user_agent: concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION")).to_string(),
            max_metadata_bytes: 16 * 1024 * 1024,
        }
    }
}

impl HttpSettings {
    /// Timeout of each network wait: response headers, then every read of
    /// the body (default 10 s). A stalled server fails after this long (and
    /// is retried, within the [transfer deadline](Self::with_transfer_deadline)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use updater_source_github::HttpSettings;
    /// let settings = HttpSettings::default().with_request_timeout(Duration::from_secs(5));
    /// assert_eq!(settings.request_timeout(), Duration::from_secs(5));
    /// ```
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Timeout for establishing a connection (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use updater_source_github::HttpSettings;
    /// let settings = HttpSettings::default().with_connect_timeout(Duration::from_secs(3));
    /// # let _ = settings;
    /// ```
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Overall deadline of one transfer (default 1 h): an asset download,
    /// or one metadata document, with all its retries, redirects, resumes
    /// and the waits between them counted inside it. When it passes, the
    /// transfer stops with [`SourceError::DeadlineExceeded`](crate::SourceError::DeadlineExceeded)
    /// saying how long it ran and how many bytes arrived; a retry that
    /// could not start before it is not attempted, and a `Retry-After`
    /// beyond it fails at once. Must be positive.
    ///
    /// ```
    /// use std::time::Duration;
    /// use updater_source_github::HttpSettings;
    /// // A 200 MB package over a link of at least 1 MB/s, with room for retries.
    /// let settings = HttpSettings::default().with_transfer_deadline(Duration::from_secs(600));
    /// assert_eq!(settings.transfer_deadline(), Duration::from_secs(600));
    /// ```
    pub fn with_transfer_deadline(mut self, deadline: Duration) -> Self {
        self.transfer_deadline = deadline;
        self
    }

    /// Aborts a transfer when fewer than `bytes_per_sec` bytes per second
    /// arrived over the last `window` (default 1024 bytes/s over 30 s), like
    /// curl's `--speed-limit`/`--speed-time`. The window starts when the
    /// response headers arrive, so a transfer is never judged on less than
    /// `window` of data; it is measured whenever bytes arrive (a server that
    /// sends nothing at all is cut by the [request timeout](Self::with_request_timeout)).
    /// A slow transfer stops with [`SourceError::TooSlow`](crate::SourceError::TooSlow)
    /// and is not retried. `bytes_per_sec = 0` turns the check off; a zero
    /// `window` with a positive speed is refused when a source is built.
    ///
    /// ```
    /// use std::time::Duration;
    /// use updater_source_github::HttpSettings;
    /// let settings = HttpSettings::default().with_minimum_speed(64 * 1024, Duration::from_secs(15));
    /// assert_eq!(settings.minimum_speed(), Some((64 * 1024, Duration::from_secs(15))));
    /// let off = HttpSettings::default().with_minimum_speed(0, Duration::ZERO);
    /// assert_eq!(off.minimum_speed(), None);
    /// ```
    pub fn with_minimum_speed(mut self, bytes_per_sec: u64, window: Duration) -> Self {
        self.minimum_speed = bytes_per_sec;
        self.speed_window = window;
        self
    }

    /// Retries of 5xx answers and broken connections.
    ///
    /// ```
    /// use updater_source_github::{HttpSettings, RetryPolicy};
    /// let settings = HttpSettings::default().with_retry(RetryPolicy::none());
    /// assert_eq!(settings.retry().max_retries(), 0);
    /// ```
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Allows plain `http://` to `host` (loopback is always allowed). Use only
    /// on a trusted network, and with signed releases.
    ///
    /// ```
    /// use updater_source_github::{HttpSettings, ManifestSource};
    /// let source = ManifestSource::builder("http://updates.lan/manifest.json")
    ///     .with_http(HttpSettings::default().with_insecure_host("updates.lan"))
    ///     .build();
    /// assert!(source.is_ok());
    /// ```
    pub fn with_insecure_host(mut self, host: impl Into<String>) -> Self {
        self.insecure_hosts.push(host.into());
        self
    }

    /// Keeps the ETag cache in this file too (JSON, mode 0600), so a
    /// restarted process still sends `If-None-Match`.
    ///
    /// ```
    /// use updater_source_github::HttpSettings;
    /// let settings = HttpSettings::default().with_etag_cache_file("/var/lib/app/.updater/etags.json");
    /// # let _ = settings;
    /// ```
    pub fn with_etag_cache_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.etag_cache_file = Some(path.into());
        self
    }

    /// Replaces the `User-Agent` (default `updater-source-github/<version>`).
    ///
    /// ```
    /// use updater_source_github::HttpSettings;
    /// let settings = HttpSettings::default().with_user_agent("billing-app-updater/2.1");
    /// # let _ = settings;
    /// ```
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Largest metadata document (release list page, manifest, checksum
    /// file) accepted, in bytes (default 16 MiB).
    ///
    /// ```
    /// use updater_source_github::HttpSettings;
    /// let settings = HttpSettings::default().with_max_metadata_bytes(1024 * 1024);
    /// # let _ = settings;
    /// ```
    pub fn with_max_metadata_bytes(mut self, bytes: u64) -> Self {
        self.max_metadata_bytes = bytes;
        self
    }

    /// The per-wait request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The overall deadline of one transfer.
    pub fn transfer_deadline(&self) -> Duration {
        self.transfer_deadline
    }

    /// The minimum speed as `(bytes per second, window)`; `None` when off.
    pub fn minimum_speed(&self) -> Option<(u64, Duration)> {
        (self.minimum_speed > 0).then_some((self.minimum_speed, self.speed_window))
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Refuses settings no transfer could work with.
    pub(crate) fn validate(&self) -> Result<(), SourceError> {
        let refuse = |setting, reason: &str| {
            Err(SourceError::InvalidSetting {
                setting,
                reason: reason.to_string(),
            })
        };
        if self.transfer_deadline.is_zero() {
            return refuse("transfer_deadline", "must be positive");
        }
        if self.request_timeout.is_zero() {
            return refuse("request_timeout", "must be positive");
        }
        if self.minimum_speed > 0 && self.speed_window.is_zero() {
            return refuse(
                "minimum_speed",
                "the window must be positive (or the speed 0 to turn the check off)",
            );
        }
        Ok(())
    }
}

/// Bounded exponential backoff: after failure `n` (0-based) wait
/// `min(initial * 2^n, max)`, at most `max_retries` times.
///
/// ```
/// use std::time::Duration;
/// use updater_source_github::RetryPolicy;
/// let policy = RetryPolicy::new(4, Duration::from_millis(100), Duration::from_millis(300));
/// assert_eq!(policy.delay(0), Duration::from_millis(100));
/// assert_eq!(policy.delay(1), Duration::from_millis(200));
/// assert_eq!(policy.delay(5), Duration::from_millis(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial: Duration,
    max: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries, 500 ms doubling up to 8 s (at most 15.5 s of waiting).
    fn default() -> Self {
        RetryPolicy::new(4, Duration::from_millis(500), Duration::from_secs(8))
    }
}

impl RetryPolicy {
    /// A policy of `max_retries` retries starting at `initial`, capped at `max`.
    pub fn new(max_retries: u32, initial: Duration, max: Duration) -> Self {
        RetryPolicy {
            max_retries,
            initial,
            max,
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy::new(0, Duration::ZERO, Duration::ZERO)
    }

    /// How many times a failed request is retried.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The longest wait between two tries. A `Retry-After` asking for
    /// longer is not waited for: the transfer fails at once, saying when to
    /// come back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use updater_source_github::RetryPolicy;
    /// assert_eq!(RetryPolicy::default().max_delay(), Duration::from_secs(8));
    /// ```
    pub fn max_delay(&self) -> Duration {
        self.max
    }

    /// The wait after failure number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bound_every_transfer() {
        let settings = HttpSettings::default();
        assert_eq!(settings.transfer_deadline(), Duration::from_secs(3600));
        assert_eq!(
            settings.minimum_speed(),
            Some((1024, Duration::from_secs(30)))
        );
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn settings_no_transfer_could_meet_are_refused() {
        for (settings, name) in [
            (
                HttpSettings::default().with_transfer_deadline(Duration::ZERO),
                "transfer_deadline",
            ),
            (
                HttpSettings::default().with_minimum_speed(1, Duration::ZERO),
                "minimum_speed",
            ),
            (
                HttpSettings::default().with_request_timeout(Duration::ZERO),
                "request_timeout",
            ),
        ] {
            let error = settings.validate().unwrap_err();
            assert!(
                matches!(error, SourceError::InvalidSetting { setting, .. } if setting == name),
                "{error}"
            );
        }
        assert!(
            HttpSettings::default()
                .with_minimum_speed(0, Duration::ZERO)
                .validate()
                .is_ok()
        );
    }
}
