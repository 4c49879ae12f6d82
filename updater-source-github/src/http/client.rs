//! [`HttpClient`]: a `reqwest` blocking client with our rules around it.
//!
//! - The `reqwest::blocking::Client` is created and dropped on a short-lived
//!   plain thread ([`DetachedClient`]), never on the caller's thread. A
//!   blocking client owns a tokio runtime; creating or dropping one on a
//!   thread that is inside a tokio runtime context panics ("Cannot drop a
//!   runtime in a context where blocking is not allowed"). With this, a
//!   source can be built and dropped anywhere, including `spawn_blocking`.
//! - Redirects are followed by hand: every hop must pass the HTTPS rule, and
//!   the bearer token is attached only while the request goes to the
//!   configured origin, so a 302 to a storage host never carries it.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, ClientBuilder, Response};
use reqwest::header::{self, HeaderMap, HeaderValue};
use updater_core::error::redact_url;
use url::Url;

use super::budget::{Budget, GiveUp, SpeedMonitor, TooSlow};
use super::etag_cache::{CachedResponse, EtagCache};
use super::rate_limit::{rate_limit_reset, retry_after};
use updater_core::secret::Secret;

use super::{HttpSettings, check_url};
use crate::error::SourceError;

const MAX_REDIRECTS: usize = 10;
/// The "asset" of a metadata transfer, in errors.
const METADATA: &str = "metadata";
/// How long the excerpt of an error body may take to read.
const EXCERPT_TIME: Duration = Duration::from_secs(2);

/// A blocking client created and dropped on a plain thread, outside any
/// tokio runtime context.
pub(crate) struct DetachedClient(Option<Client>);

/// Builds `builder` on a fresh thread (see the module doc for why).
pub(crate) fn detached_client(builder: ClientBuilder) -> Result<DetachedClient, SourceError> {
    let handle = std::thread::Builder::new()
        .name("updater-http-client-build".into())
        .spawn(move || builder.build())
        .map_err(|e| SourceError::InvalidSetting {
            setting: "HTTP client",
            reason: format!("cannot start a thread to build it: {e}"),
        })?;
    match handle.join() {
        Ok(Ok(client)) => Ok(DetachedClient(Some(client))),
        Ok(Err(source)) => Err(SourceError::ClientBuild { source }),
        Err(_) => Err(SourceError::InvalidSetting {
            setting: "HTTP client",
            reason: "building it panicked".into(),
        }),
    }
}

impl DetachedClient {
    pub(crate) fn client(&self) -> Result<&Client, SourceError> {
        self.0.as_ref().ok_or_else(|| SourceError::InvalidSetting {
            setting: "HTTP client",
            reason: "used after being dropped".into(),
        })
    }
}

impl Drop for DetachedClient {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // Dropping joins reqwest's runtime thread; do it where no tokio
            // context can be entered. If no thread can be started, drop here.
            match std::thread::Builder::new()
                .name("updater-http-client-drop".into())
                .spawn(move || drop(client))
            {
                Ok(handle) => {
                    let _ = handle.join();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a thread to drop the HTTP client")
                }
            }
        }
    }
}

impl std::fmt::Debug for DetachedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DetachedClient")
    }
}

/// A metadata document (JSON page, manifest, checksum file).
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    pub(crate) body: Vec<u8>,
    /// The `Link` header (pagination), when present.
    pub(crate) link: Option<String>,
}

/// The client the sources share: settings, optional bearer token bound to one
/// origin, ETag cache.
pub(crate) struct HttpClient {
    client: DetachedClient,
    pub(crate) settings: HttpSettings,
    auth: Option<(url::Origin, Secret)>,
    default_headers: HeaderMap,
    etags: EtagCache,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("settings", &self.settings)
            .field(
                "auth_origin",
                &self
                    .auth
                    .as_ref()
                    .map(|(origin, _)| origin.ascii_serialization()),
            )
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client; `auth` is `(origin URL, token)`: the token goes only to that origin.
    pub(crate) fn new(
        settings: HttpSettings,
        auth: Option<(&Url, Secret)>,
        default_headers: HeaderMap,
    ) -> Result<Self, SourceError> {
        settings.validate()?;
        let builder = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent.clone());
        Ok(HttpClient {
            client: detached_client(builder)?,
            etags: EtagCache::new(settings.etag_cache_file.clone()),
            auth: auth.map(|(url, token)| (url.origin(), token)),
            settings,
            default_headers,
        })
    }

    /// Refuses URLs that break the HTTPS rule.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), SourceError> {
        check_url(url, &self.settings.insecure_hosts)
    }

    /// One GET, following redirects by hand. Returns any non-redirect answer.
    /// No request outlives the `budget`'s deadline (each hop's timeout is
    /// cut to the time left when that is shorter than the request timeout).
    pub(crate) fn send(
        &self,
        url: &Url,
        headers: &HeaderMap,
        budget: &Budget,
    ) -> Result<Response, SourceError> {
        let client = self.client.client()?;
        let mut current = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            self.check_url(&current)?;
            let mut request = client
                .get(current.clone())
                .headers(self.default_headers.clone())
                .headers(headers.clone());
            if let Some(timeout) = budget.request_timeout(self.settings.request_timeout) {
                request = request.timeout(timeout);
            }
            if let Some((origin, token)) = &self.auth
                && *origin == current.origin()
            {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| SourceError::InvalidSetting {
                        setting: "token",
                        reason: "contains characters not allowed in an HTTP header".into(),
                    })?;
                value.set_sensitive(true);
                request = request.header(header::AUTHORIZATION, value);
            }
            let response = request.send().map_err(|e| transport_error(&current, e))?;
            let status = response.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| SourceError::MalformedResponse {
                    url: redact_url(current.as_str()),
                    reason: format!("HTTP {status} without a usable Location header"),
                })?;
            let next = current
                .join(location)
                .map_err(|e| SourceError::InvalidUrl {
                    url: redact_url(location),
                    reason: format!("redirect target from {}: {e}", redact_url(current.as_str())),
                })?;
            tracing::debug!(
                from = %redact_url(current.as_str()),
                to = %redact_url(next.as_str()),
                same_origin = next.origin() == current.origin(),
                "following redirect"
            );
            current = next;
        }
        Err(SourceError::TooManyRedirects {
            url: redact_url(url.as_str()),
        })
    }

    /// [`send`](Self::send) with retries of transient failures within the
    /// `budget`, and rate-limit detection. Returns 2xx, 304 and
    /// non-rate-limit 4xx answers.
    pub(crate) fn send_with_retry(
        &self,
        url: &Url,
        headers: &HeaderMap,
        budget: &mut Budget,
    ) -> Result<Response, SourceError> {
        loop {
            let (error, asked) = match self.send(url, headers, budget) {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let now = chrono::Utc::now();
                    if let Some(resets_at) = rate_limit_reset(status, response.headers(), now) {
                        return Err(SourceError::RateLimited {
                            url: redact_url(response.url().as_str()),
                            status,
                            resets_at,
                        });
                    }
                    if !(response.status().is_server_error() || status == 408) {
                        return Ok(response);
                    }
                    let asked = retry_after(response.headers(), now).map(|at| RetryAfter {
                        status,
                        at,
                        url: redact_url(response.url().as_str()),
                    });
                    (status_error(response), asked)
                }
                Err(e) if e.is_transient() => (e, None),
                Err(e) => return Err(e),
            };
            match budget.next_wait(asked.as_ref().map(|a| a.at)) {
                Ok(delay) => {
                    tracing::debug!(url = %redact_url(url.as_str()), error = %error, ?delay, "retrying request");
                    std::thread::sleep(delay);
                }
                Err(GiveUp::Retries(_)) => return Err(error),
                Err(GiveUp::Deadline) => {
                    return Err(SourceError::DeadlineExceeded {
                        asset: METADATA.into(),
                        url: redact_url(url.as_str()),
                        deadline: budget.limit(),
                        elapsed: budget.elapsed(),
                        received: 0,
                        last_failure: Some(error.to_string()),
                    });
                }
                Err(GiveUp::RetryAfter { at, why }) => {
                    return Err(retry_later(asked, at, why, url));
                }
            }
        }
    }

    /// GETs a metadata document with the ETag cache and parses it with
    /// `parse`: sends `If-None-Match` when a copy is cached and parses the
    /// copy on `304 Not Modified`.
    ///
    /// Only a document that `parse` accepted is cached: a body that fails
    /// to parse drops the URL's cache entry, so the next request asks for a
    /// full copy instead of being told "not modified" about a broken one. A
    /// cached copy that no longer parses (written by an earlier run) is
    /// dropped and fetched again at once.
    pub(crate) fn get_parsed<T, E>(
        &self,
        url: &Url,
        accept: &str,
        parse: impl Fn(&Metadata) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<SourceError>,
    {
        let key = url.as_str();
        let cached = self.etags.get(key);
        let revalidated = cached.is_some();
        let fetched = self.fetch_metadata(url, accept, cached)?;
        match (fetched, revalidated) {
            (Fetched::Cached(document), _) => match parse(&document) {
                Ok(value) => Ok(value),
                Err(_) => {
                    tracing::warn!(url = %redact_url(key), "the cached copy does not parse; fetching it again");
                    self.forget(key);
                    match self.fetch_metadata(url, accept, None)? {
                        Fetched::Fresh { document, etag } => {
                            self.parse_fresh(key, document, etag, parse)
                        }
                        Fetched::Cached(_) => Err(not_modified_without_copy(key).into()),
                    }
                }
            },
            (Fetched::Fresh { document, etag }, _) => self.parse_fresh(key, document, etag, parse),
        }
    }

    /// Parses a freshly fetched document; caches it only when it parsed.
    fn parse_fresh<T, E>(
        &self,
        key: &str,
        document: Metadata,
        etag: Option<String>,
        parse: impl Fn(&Metadata) -> Result<T, E>,
    ) -> Result<T, E> {
        let parsed = parse(&document);
        match (&parsed, etag, String::from_utf8(document.body)) {
            (Ok(_), Some(etag), Ok(body)) => {
                let entry = CachedResponse {
                    etag,
                    body,
                    link: document.link,
                };
                if let Err(e) = self.etags.put(key, entry) {
                    tracing::warn!(error = %e, "cannot update the ETag cache");
                }
            }
            (Ok(_), _, _) => {}
            (Err(_), _, _) => self.forget(key),
        }
        parsed
    }

    fn forget(&self, key: &str) {
        if let Err(e) = self.etags.remove(key) {
            tracing::warn!(error = %e, "cannot update the ETag cache");
        }
    }

    /// One conditional GET (when `cached` is given) of a metadata document.
    fn fetch_metadata(
        &self,
        url: &Url,
        accept: &str,
        cached: Option<CachedResponse>,
    ) -> Result<Fetched, SourceError> {
        let key = url.as_str();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(accept).unwrap_or(HeaderValue::from_static("*/*")),
        );
        if let Some(entry) = &cached
            && let Ok(value) = HeaderValue::from_str(&entry.etag)
        {
            headers.insert(header::IF_NONE_MATCH, value);
        }
        let mut budget = Budget::start(&self.settings);
        let response = self.send_with_retry(url, &headers, &mut budget)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return match cached {
                Some(entry) => {
                    tracing::debug!(url = %redact_url(key), "not modified; using the cached copy");
                    Ok(Fetched::Cached(Metadata {
                        body: entry.body.into_bytes(),
                        link: entry.link,
                    }))
                }
                None => Err(not_modified_without_copy(key)),
            };
        }
        if !status.is_success() {
            return Err(status_error(response));
        }
        let etag = header_text(response.headers(), header::ETAG);
        let link = header_text(response.headers(), header::LINK);
        let body = read_bounded(response, self.settings.max_metadata_bytes, &budget)?;
        Ok(Fetched::Fresh {
            document: Metadata { body, link },
            etag,
        })
    }
}

/// A metadata document from the network or, after a 304, from the cache.
enum Fetched {
    Cached(Metadata),
    Fresh {
        document: Metadata,
        etag: Option<String>,
    },
}

fn not_modified_without_copy(key: &str) -> SourceError {
    SourceError::MalformedResponse {
        url: redact_url(key),
        reason: "304 Not Modified to a request without If-None-Match".into(),
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A transport error naming the URL without credentials.
pub(crate) fn transport_error(url: &Url, error: reqwest::Error) -> SourceError {
    SourceError::Transport {
        url: redact_url(url.as_str()),
        source: error.without_url(),
    }
}

/// The text of an I/O error from reading a response body. When it wraps a
/// client error, that error's copy of the URL (query string included) is
/// removed first, so the text can go into errors and logs.
pub(crate) fn body_error_text(error: std::io::Error) -> String {
    if !error
        .get_ref()
        .is_some_and(|inner| inner.is::<reqwest::Error>())
    {
        return error.to_string();
    }
    match error
        .into_inner()
        .map(|inner| inner.downcast::<reqwest::Error>())
    {
        Some(Ok(client_error)) => client_error.without_url().to_string(),
        Some(Err(other)) => other.to_string(),
        None => "the connection broke".to_string(),
    }
}

/// Reads a metadata body of at most `limit` bytes (more is an error),
/// within the `budget`'s deadline and at the minimum speed.
pub(crate) fn read_bounded(
    mut response: Response,
    limit: u64,
    budget: &Budget,
) -> Result<Vec<u8>, SourceError> {
    let url = redact_url(response.url().as_str());
    let mut monitor = SpeedMonitor::start_from(budget);
    let mut body = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if budget.is_over() {
            return Err(SourceError::DeadlineExceeded {
                asset: METADATA.into(),
                url,
                deadline: budget.limit(),
                elapsed: budget.elapsed(),
                received: body.len() as u64,
                last_failure: None,
            });
        }
        let n = match response.read(&mut buffer) {
            Ok(0) => return Ok(body),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(SourceError::Interrupted {
                    asset: METADATA.into(),
                    url,
                    received: body.len() as u64,
                    declared: limit,
                    reason: body_error_text(e),
                });
            }
        };
        if body.len() as u64 + n as u64 > limit {
            return Err(SourceError::MalformedResponse {
                url,
                reason: format!("the response is larger than the limit of {limit} bytes"),
            });
        }
        body.extend_from_slice(&buffer[..n]);
        if let Err(slow) = monitor.record(body.len() as u64) {
            return Err(too_slow(METADATA, &url, budget, slow, body.len() as u64));
        }
    }
}

/// A [`SourceError::TooSlow`].
pub(crate) fn too_slow(
    asset: &str,
    url: &str,
    budget: &Budget,
    slow: TooSlow,
    received: u64,
) -> SourceError {
    let (minimum_bytes_per_sec, window) = budget.minimum_speed();
    SourceError::TooSlow {
        asset: asset.to_string(),
        url: url.to_string(),
        minimum_bytes_per_sec,
        window,
        received_in_window: slow.received,
        over: slow.over,
        received,
    }
}

/// What a `Retry-After` asked for, and who asked.
#[derive(Debug)]
pub(crate) struct RetryAfter {
    pub(crate) status: u16,
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    /// The URL that answered (redacted).
    pub(crate) url: String,
}

/// A [`SourceError::RetryLater`] for the answer that asked.
pub(crate) fn retry_later(
    asked: Option<RetryAfter>,
    at: chrono::DateTime<chrono::Utc>,
    why: String,
    url: &Url,
) -> SourceError {
    let (status, url) = match asked {
        Some(asked) => (asked.status, asked.url),
        None => (503, redact_url(url.as_str())),
    };
    SourceError::RetryLater {
        url,
        status,
        retry_at: at,
        why,
    }
}

/// At most `limit` bytes of a body, for a message; reading stops after
/// `time` (plus one read) so that an error body that trickles cannot hold
/// the transfer.
fn read_excerpt(mut response: Response, limit: usize, time: Duration) -> Vec<u8> {
    let started = Instant::now();
    let mut excerpt = Vec::new();
    let mut buffer = [0u8; 1024];
    while excerpt.len() < limit && started.elapsed() < time {
        match response.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => excerpt.extend_from_slice(&buffer[..n.min(limit - excerpt.len())]),
        }
    }
    excerpt
}

/// A [`SourceError::Status`] with the server's `message` (GitHub's error
/// bodies are `{"message": ..., "documentation_url": ...}`) or a short excerpt.
pub(crate) fn status_error(response: Response) -> SourceError {
    let url = redact_url(response.url().as_str());
    let status = response.status().as_u16();
    let excerpt = read_excerpt(response, 4096, EXCERPT_TIME);
    let message = serde_json::from_slice::<serde_json::Value>(&excerpt)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .or_else(|| {
            let text = String::from_utf8_lossy(&excerpt);
            let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
            (!text.trim().is_empty()).then(|| text.trim().to_string())
        });
    SourceError::Status {
        url,
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_lose_the_client_errors_copy_of_the_url() {
        let client = Client::builder().build().unwrap();
        let error = client
            .get("http://127.0.0.1:1/a.tar.gz?X-Amz-Signature=s3cret")
            .send()
            .unwrap_err();
        assert!(error.to_string().contains("X-Amz"), "the premise: {error}");
        let text = body_error_text(std::io::Error::other(error));
        assert!(!text.contains("X-Amz") && !text.is_empty(), "{text}");
        let plain = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cut short");
        assert_eq!(body_error_text(plain), "cut short");
    }
}
