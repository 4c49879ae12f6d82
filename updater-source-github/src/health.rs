//! [`HttpHealthCheck`]: `GET` a URL of the freshly installed application;
//! healthy when it answers as expected. One probe per call: the pipeline
//! probes again every `health_interval` until the deadline.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use updater_core::error::redact_url;
use updater_core::health::{HealthCheck, HealthContext};
use url::Url;

use crate::error::SourceError;
use crate::http::{body_error_text, check_url, detached_client, human, parse_url};

/// The header carrying the maintenance bypass secret.
pub const BYPASS_HEADER: &str = "x-maintenance-bypass";
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Healthy when `GET url` answers the expected status (default 200) and,
/// optionally, a body containing a given text. One request per
/// [`check`](HealthCheck::check), bounded by the request timeout and
/// [`HealthContext::deadline`] (the pipeline retries); sends the maintenance bypass secret as
/// `X-Maintenance-Bypass` when there is one. Redirects are not followed (a
/// 302 to a login page is not healthy). Same HTTPS rule as the sources:
/// plain HTTP to loopback or to [allowed hosts](HttpHealthCheckBuilder::with_insecure_host).
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use updater_core::health::{HealthCheck, HealthContext};
/// use updater_source_github::HttpHealthCheck;
///
/// let check = HttpHealthCheck::builder("http://127.0.0.1:8080/health")
///     .with_body_contains("\"status\":\"ok\"")
///     .build()?;
/// check.check(&HealthContext {
///     app_dir: "/srv/app".into(),
///     version: "1.2.0".parse()?,
///     deadline: Instant::now() + Duration::from_secs(30),
///     bypass_secret: None,
///     children: None,
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct HttpHealthCheck {
    url: Url,
    expected_status: u16,
    body_contains: Option<String>,
    request_timeout: Duration,
    client: crate::http::DetachedClient,
}

/// Configures an [`HttpHealthCheck`]; from [`HttpHealthCheck::builder`].
#[derive(Debug, Clone)]
pub struct HttpHealthCheckBuilder {
    url: String,
    expected_status: u16,
    body_contains: Option<String>,
    request_timeout: Duration,
    insecure_hosts: Vec<String>,
}

impl HttpHealthCheck {
    /// Starts configuring a check of `url`.
    pub fn builder(url: impl Into<String>) -> HttpHealthCheckBuilder {
        HttpHealthCheckBuilder {
            url: url.into(),
            expected_status: 200,
            body_contains: None,
            request_timeout: Duration::from_secs(10),
            insecure_hosts: Vec::new(),
        }
    }

    /// One request; `Ok` when healthy, otherwise why not.
    fn probe(&self, ctx: &HealthContext, timeout: Duration) -> Result<(), Failure> {
        let client = self
            .client
            .client()
            .map_err(|e| Failure::Answer(e.to_string()))?;
        let mut request = client.get(self.url.clone()).timeout(timeout);
        if let Some(secret) = &ctx.bypass_secret {
            let mut value = HeaderValue::from_str(secret).map_err(|_| {
                Failure::Answer("the bypass secret is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            request = request.header(BYPASS_HEADER, value);
        }
        let response = request.send().map_err(|e| {
            if e.is_timeout() {
                Failure::TimedOut(format!("no answer within {}", human(timeout)))
            } else {
                Failure::Answer(e.without_url().to_string())
            }
        })?;
        let status = response.status().as_u16();
        if status != self.expected_status {
            return Err(Failure::Answer(format!(
                "HTTP {status} (expected {})",
                self.expected_status
            )));
        }
        if let Some(needle) = &self.body_contains {
            let mut body = Vec::new();
            response
                .take(MAX_BODY_BYTES)
                .read_to_end(&mut body)
                .map_err(|e| {
                    Failure::Answer(format!("cannot read the body: {}", body_error_text(e)))
                })?;
            if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
                return Err(Failure::Answer(format!(
                    "HTTP {status} but the body does not contain {needle:?}"
                )));
            }
        }
        Ok(())
    }
}

/// Why one probe was not healthy.
enum Failure {
    /// No answer within the probe's timeout.
    TimedOut(String),
    /// Any other answer or error.
    Answer(String),
}

impl Failure {
    fn text(&self) -> &str {
        match self {
            Failure::TimedOut(text) | Failure::Answer(text) => text,
        }
    }
}

impl HealthCheck for HttpHealthCheck {
    fn describe(&self) -> String {
        format!("HTTP GET {}", redact_url(self.url.as_str()))
    }

    fn check(&self, ctx: &HealthContext) -> updater_core::Result<()> {
        let remaining = ctx.deadline.saturating_duration_since(Instant::now());
        let last = if remaining.is_zero() {
            "the deadline passed before the request".to_string()
        } else {
            match self.probe(ctx, remaining.min(self.request_timeout)) {
                Ok(()) => {
                    tracing::info!(url = %redact_url(self.url.as_str()), "health check passed");
                    return Ok(());
                }
                Err(failure) => {
                    tracing::debug!(url = %redact_url(self.url.as_str()), reason = %failure.text(), "health check not passing");
                    failure.text().to_string()
                }
            }
        };
        Err(SourceError::Unhealthy {
            url: redact_url(self.url.as_str()),
            attempts: 1,
            last,
        }
        .into())
    }
}

impl HttpHealthCheckBuilder {
    /// The status that means healthy (default 200).
    pub fn with_expected_status(mut self, status: u16) -> Self {
        self.expected_status = status;
        self
    }

    /// Also require the body to contain `text`.
    pub fn with_body_contains(mut self, text: impl Into<String>) -> Self {
        self.body_contains = Some(text.into());
        self
    }

    /// Timeout of one request (default 10 s; never beyond the deadline).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Allows plain `http://` to `host` (loopback is always allowed).
    pub fn with_insecure_host(mut self, host: impl Into<String>) -> Self {
        self.insecure_hosts.push(host.into());
        self
    }

    /// Validates the URL and creates the HTTP client.
    pub fn build(self) -> Result<HttpHealthCheck, SourceError> {
        let url = parse_url(&self.url)?;
        check_url(&url, &self.insecure_hosts)?;
        if !(100..=599).contains(&self.expected_status) {
            return Err(SourceError::InvalidSetting {
                setting: "expected_status",
                reason: format!("{} is not an HTTP status", self.expected_status),
            });
        }
        let client = detached_client(
            reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!(
                    env!("CARGO_PKG_NAME"),
                    "/",
                    env!("CARGO_PKG_VERSION")
                ))
                .timeout(self.request_timeout),
        )?;
        Ok(HttpHealthCheck {
            url,
            expected_status: self.expected_status,
            body_contains: self.body_contains,
            request_timeout: self.request_timeout,
            client,
        })
    }
}
