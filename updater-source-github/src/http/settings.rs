//! [`HttpSettings`] and [`RetryPolicy`]: the knobs shared by both sources.

use std::path::PathBuf;
use std::time::Duration;

/// Timeouts, retries, insecure hosts and caching, shared by
/// [`GitHubSource`](crate::GitHubSource) and [`ManifestSource`](crate::ManifestSource).
///
/// ```
/// use std::time::Duration;
/// use updater_source_github::{HttpSettings, RetryPolicy};
/// let settings = HttpSettings::default()
///     .with_request_timeout(Duration::from_secs(5))
///     .with_download_deadline(Duration::from_secs(600))
///     .with_retry(RetryPolicy::new(3, Duration::from_millis(200), Duration::from_secs(2)))
///     .with_insecure_host("updates.lan");
/// assert_eq!(settings.request_timeout(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) download_deadline: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) insecure_hosts: Vec<String>,
    pub(crate) etag_cache_file: Option<PathBuf>,
    pub(crate) user_agent: String,
    pub(crate) max_metadata_bytes: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            download_deadline: Duration::from_secs(3600),
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
    /// the body (default 10 s). A stalled server fails after this long.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Timeout for establishing a connection (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Overall deadline of one asset download, retries included (default 1 h):
    /// a server that trickles bytes cannot hold an update forever. It is
    /// checked between reads, so it may be overshot by at most one
    /// [request timeout](Self::with_request_timeout).
    pub fn with_download_deadline(mut self, deadline: Duration) -> Self {
        self.download_deadline = deadline;
        self
    }

    /// Retries of 5xx answers and broken connections.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Allows plain `http://` to `host` (loopback is always allowed). Use only
    /// on a trusted network, and with signed releases.
    pub fn with_insecure_host(mut self, host: impl Into<String>) -> Self {
        self.insecure_hosts.push(host.into());
        self
    }

    /// Keeps the ETag cache in this file too (JSON, mode 0600), so a
    /// restarted process still sends `If-None-Match`.
    pub fn with_etag_cache_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.etag_cache_file = Some(path.into());
        self
    }

    /// Replaces the `User-Agent` (default `updater-source-github/<version>`).
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Largest metadata document (release list page, manifest, checksum
    /// file) accepted, in bytes (default 16 MiB).
    pub fn with_max_metadata_bytes(mut self, bytes: u64) -> Self {
        self.max_metadata_bytes = bytes;
        self
    }

    /// The per-wait request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The overall download deadline.
    pub fn download_deadline(&self) -> Duration {
        self.download_deadline
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
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

    /// The wait after failure number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }
}
