//! The one error type of this crate, [`SourceError`], and its conversion into
//! [`updater_core::Error`].
//!
//! Every variant names the URL it is about, always passed through
//! [`updater_core::error::redact_url`] first: no password, query string or
//! fragment ever appears in an error message (pre-signed download URLs
//! carry their credentials in the query), and tokens travel only in
//! headers, which no variant carries. Errors of the HTTP client are kept as
//! sources only after their own copy of the URL is removed.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::http::human;

/// What went wrong while talking to a release server or an application's health endpoint.
///
/// Sources return [`updater_core::Error`] (as the trait requires), keeping
/// this error as its source: a caller who needs the detail downcasts.
///
/// ```no_run
/// use updater_core::source::ReleaseSource;
/// use updater_source_github::{ManifestSource, SourceError};
///
/// let source = ManifestSource::builder("https://updates.example.com/manifest.json").build()?;
/// # let asset = updater_core::release::Asset::new("a.tar.gz", 1, "https://updates.example.com/a.tar.gz");
/// if let Err(error) = source.download(&asset, &mut Vec::new()) {
///     match std::error::Error::source(&error).and_then(|e| e.downcast_ref::<SourceError>()) {
///         Some(SourceError::TooSlow { received_in_window, over, .. }) => {
///             eprintln!("only {received_in_window} bytes in {over:?}: try another mirror")
///         }
///         Some(SourceError::RetryLater { retry_at, .. }) => eprintln!("come back at {retry_at}"),
///         _ => eprintln!("{error}"),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A URL that is not `https://`, nor plain HTTP to loopback or to a host
    /// explicitly allowed with [`HttpSettings::with_insecure_host`](crate::HttpSettings::with_insecure_host).
    #[error("refusing insecure URL {url}: {reason}")]
    InsecureUrl {
        /// The URL (without credentials, query or fragment).
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// A URL that cannot be parsed or used (configuration, a `Link` or
    /// `Location` header, a manifest entry).
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The text (without credentials, query or fragment).
        url: String,
        /// Why it is invalid.
        reason: String,
    },

    /// A configuration value is invalid (builder input).
    #[error("invalid setting {setting}: {reason}")]
    InvalidSetting {
        /// The setting, e.g. `owner`.
        setting: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client: {source}")]
    ClientBuild {
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The request could not be sent or its response not read (connection
    /// refused or reset, DNS, TLS, timeout).
    #[error("request to {url} failed: {source}")]
    Transport {
        /// The URL (without credentials, query or fragment).
        url: String,
        /// The client's error (its own copy of the URL removed).
        #[source]
        source: reqwest::Error,
    },

    /// The server answered with an unexpected HTTP status.
    #[error("{url} answered HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The URL (without credentials, query or fragment).
        url: String,
        /// The status code.
        status: u16,
        /// The server's `message` field or a short excerpt of its body.
        message: Option<String>,
    },

    /// The server is rate limiting us. Never means "no update".
    #[error("{url} is rate limited (HTTP {status}){}", describe_reset(*resets_at))]
    RateLimited {
        /// The URL (without credentials, query or fragment).
        url: String,
        /// 403 or 429.
        status: u16,
        /// When the limit resets, from `Retry-After` or `x-ratelimit-reset`.
        resets_at: Option<DateTime<Utc>>,
    },

    /// The response body is not what the protocol promises (malformed JSON,
    /// a missing field, a hostile asset name, a bad checksum file).
    #[error("malformed response from {url}: {reason}")]
    MalformedResponse {
        /// The URL (without credentials, query or fragment).
        url: String,
        /// What is wrong.
        reason: String,
    },

    /// Too many redirects in a row.
    #[error("too many redirects starting at {url}")]
    TooManyRedirects {
        /// The first URL (without credentials, query or fragment).
        url: String,
    },

    /// The server sends, or announces, a size other than the asset's declared size.
    #[error("asset {asset} from {url}: {reason} (declared size {declared} bytes)")]
    SizeMismatch {
        /// The asset name.
        asset: String,
        /// The URL (without credentials, query or fragment).
        url: String,
        /// The size the release declares.
        declared: u64,
        /// What the server did.
        reason: String,
    },

    /// The transfer broke and could not be resumed or retried successfully.
    #[error(
        "download of {asset} from {url} stopped after {received} of {declared} bytes: {reason}"
    )]
    Interrupted {
        /// The asset name.
        asset: String,
        /// The URL (without credentials, query or fragment).
        url: String,
        /// Bytes written to the caller's sink.
        received: u64,
        /// The declared size.
        declared: u64,
        /// Why it could not continue.
        reason: String,
    },

    /// The transfer did not finish within its overall deadline
    /// ([`HttpSettings::with_transfer_deadline`](crate::HttpSettings::with_transfer_deadline)),
    /// all retries, redirects, resumes and waits counted inside it.
    #[error(
        "download of {asset} from {url} did not finish within its transfer deadline of {}: {received} bytes received in {}{}",
        human(*deadline),
        human(*elapsed),
        last_failure.as_deref().map(|f| format!("; last failure: {f}")).unwrap_or_default()
    )]
    DeadlineExceeded {
        /// The asset name (`metadata` for a metadata document).
        asset: String,
        /// The URL (without credentials, query or fragment).
        url: String,
        /// The configured deadline.
        deadline: Duration,
        /// How long the transfer ran.
        elapsed: Duration,
        /// Bytes received before it stopped.
        received: u64,
        /// The failure that ended the last try, when a retry no longer fitted.
        last_failure: Option<String>,
    },

    /// Fewer bytes per second than the configured minimum arrived over the
    /// last window ([`HttpSettings::with_minimum_speed`](crate::HttpSettings::with_minimum_speed)):
    /// a server that trickles bytes. Not retried.
    #[error(
        "download of {asset} from {url} is too slow: {received_in_window} bytes in the last {} ({} bytes/s), below the minimum of {minimum_bytes_per_sec} bytes/s over {}; stopped after {received} bytes",
        human(*over),
        rate(*received_in_window, *over),
        human(*window)
    )]
    TooSlow {
        /// The asset name (`metadata` for a metadata document).
        asset: String,
        /// The URL (without credentials, query or fragment).
        url: String,
        /// The configured minimum, in bytes per second.
        minimum_bytes_per_sec: u64,
        /// The configured window.
        window: Duration,
        /// Bytes that arrived over `over`.
        received_in_window: u64,
        /// The span measured (the window, or slightly more).
        over: Duration,
        /// Bytes received in all, before it stopped.
        received: u64,
    },

    /// The server answered 5xx with a `Retry-After` later than this
    /// transfer may wait: past its deadline, or longer than the retry
    /// policy's [longest wait](crate::RetryPolicy::max_delay). Fails at once.
    #[error(
        "{url} answered HTTP {status} and asks to retry at {} (in {} s), {why}; retry later",
        retry_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (*retry_at - Utc::now()).num_seconds().max(0)
    )]
    RetryLater {
        /// The URL that answered (without credentials, query or fragment).
        url: String,
        /// The status, e.g. 503.
        status: u16,
        /// When the server asks to be asked again.
        retry_at: DateTime<Utc>,
        /// Why it is not waited for.
        why: String,
    },

    /// The server answered a `Range` request with the whole file (`200`):
    /// it does not serve byte ranges, so no delta update from it.
    #[error("{url} ignores byte ranges (it answered 200 with the whole of {asset})")]
    RangesIgnored {
        /// The asset name.
        asset: String,
        /// The URL that answered (without credentials, query or fragment).
        url: String,
    },

    /// The server answered a `Range` request with other bytes than asked: a
    /// wrong `Content-Range`, a length that disagrees, more bytes than the
    /// range holds.
    #[error("byte range of {asset} from {url}: {reason}")]
    RangeMismatch {
        /// The asset name.
        asset: String,
        /// The URL (without credentials, query or fragment).
        url: String,
        /// What the server did.
        reason: String,
    },

    /// Writing to the caller's sink failed.
    #[error("cannot write the download of {asset}: {source}")]
    Sink {
        /// The asset name.
        asset: String,
        /// The writer's error.
        #[source]
        source: std::io::Error,
    },

    /// The ETag cache file could not be read or written.
    #[error("ETag cache file {path}: {reason}")]
    CacheFile {
        /// The cache file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// An HTTP health check did not see the expected answer before its deadline.
    #[error("health check GET {url} failed after {attempts} attempt(s): {last}")]
    Unhealthy {
        /// The URL (without credentials, query or fragment).
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

fn rate(bytes: u64, over: Duration) -> u64 {
    let millis = over.as_millis().max(1);
    u64::try_from(u128::from(bytes) * 1000 / millis).unwrap_or(u64::MAX)
}

fn describe_reset(resets_at: Option<DateTime<Utc>>) -> String {
    match resets_at {
        Some(at) => {
            let wait = (at - Utc::now()).num_seconds().max(0);
            format!(
                "; the limit resets at {} (in {wait} s)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        }
        None => "; retry later".to_string(),
    }
}

impl SourceError {
    /// Whether retrying the same request soon may succeed (5xx, connection
    /// errors, timeouts). Rate limits are not retried: they say when to come back.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            SourceError::Transport { .. } => true,
            SourceError::Status { status, .. } => {
                matches!(status, 408 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    /// A short name of the service, for [`updater_core::Error::Unavailable`].
    fn service(url: &str) -> String {
        url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_else(|| url.to_string())
    }
}

impl From<SourceError> for updater_core::Error {
    fn from(error: SourceError) -> Self {
        use updater_core::Error;
        let message = error.to_string();
        match &error {
            SourceError::InsecureUrl { url, .. } | SourceError::InvalidUrl { url, .. } => {
                Error::invalid(format!("URL {url}"), message)
            }
            SourceError::InvalidSetting { setting, .. } => {
                Error::invalid(format!("setting {setting}"), message)
            }
            SourceError::MalformedResponse { url, .. } | SourceError::TooManyRedirects { url } => {
                Error::invalid(format!("response from {url}"), message)
            }
            SourceError::Status {
                url,
                status: 404 | 410,
                ..
            } => Error::not_found(url.clone()),
            SourceError::SizeMismatch { asset, .. } | SourceError::RangeMismatch { asset, .. } => {
                Error::integrity(format!("asset {asset}"), message)
            }
            SourceError::RangesIgnored { asset, url } => {
                Error::unsupported(format!("byte ranges of {asset} from {url}"), message)
            }
            SourceError::Transport { url, .. }
            | SourceError::RateLimited { url, .. }
            | SourceError::Interrupted { url, .. }
            | SourceError::DeadlineExceeded { url, .. }
            | SourceError::TooSlow { url, .. }
            | SourceError::RetryLater { url, .. } => Error::Unavailable {
                service: SourceError::service(url),
                reason: message,
                source: Some(Box::new(error)),
            },
            SourceError::Status { url, .. } if error.is_transient() => Error::Unavailable {
                service: SourceError::service(url),
                reason: message,
                source: Some(Box::new(error)),
            },
            SourceError::CacheFile { path, .. } => Error::other(
                format!("ETag cache file {}", path.display()),
                Box::new(error),
            ),
            SourceError::Unhealthy { .. } => Error::other("HTTP health check", Box::new(error)),
            _ => Error::other("HTTP release source", Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_become_unavailable_with_the_reset_time() {
        let at = Utc::now() + chrono::Duration::seconds(120);
        let error: updater_core::Error = SourceError::RateLimited {
            url: "https://api.github.com/repos/a/b/releases".into(),
            status: 403,
            resets_at: Some(at),
        }
        .into();
        let text = error.to_string();
        assert!(
            matches!(error, updater_core::Error::Unavailable { .. }),
            "{text}"
        );
        assert!(text.contains("api.github.com unavailable"), "{text}");
        assert!(
            text.contains(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "{text}"
        );
    }

    #[test]
    fn statuses_map_to_what_a_caller_can_do() {
        let status = |status| SourceError::Status {
            url: "https://h/x".into(),
            status,
            message: None,
        };
        assert!(matches!(
            updater_core::Error::from(status(404)),
            updater_core::Error::NotFound { .. }
        ));
        assert!(matches!(
            updater_core::Error::from(status(503)),
            updater_core::Error::Unavailable { .. }
        ));
        assert!(matches!(
            updater_core::Error::from(status(401)),
            updater_core::Error::Other { .. }
        ));
    }
}
