//! The HTTP side shared by Slack, Discord, Teams and the generic webhook:
//! one blocking client with a timeout, a `POST` of JSON, and errors that
//! name `host:port` only (a webhook URL is a credential).

use std::time::Duration;

use updater_core::secret::Secret;

use crate::error::{NotifyError, Result};

/// A JSON `POST` to a secret URL.
#[derive(Clone)]
pub(crate) struct Poster {
    pub(crate) channel: String,
    url: Secret,
    target: String,
    client: reqwest::blocking::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("channel", &self.channel)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// `scheme://host:port` of `url`, or an error naming neither.
fn target_of(channel: &str, url: &Secret, allow_http: bool) -> Result<String> {
    let config = |reason: &str| NotifyError::Config {
        channel: channel.to_string(),
        reason: reason.to_string(),
    };
    let parsed =
        url::Url::parse(url.expose()).map_err(|_| config("the webhook URL does not parse"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| config("the webhook URL has no host"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(config(
                "the webhook URL must be https:// (http:// is allowed for loopback hosts only)",
            ));
        }
        _ => return Err(config("the webhook URL must be https://")),
    }
    Ok(format!(
        "{}://{host}:{}",
        parsed.scheme(),
        parsed.port_or_known_default().unwrap_or(0)
    ))
}

fn is_loopback(url: &Secret) -> bool {
    url::Url::parse(url.expose()).is_ok_and(|u| match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    })
}

impl Poster {
    pub(crate) fn new(channel: &str, url: Secret, timeout: Duration) -> Result<Poster> {
        let target = target_of(channel, &url, is_loopback(&url))?;
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("updater-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Config {
                channel: channel.to_string(),
                reason: format!("HTTP client: {}", e.without_url()),
            })?;
        Ok(Poster {
            channel: channel.to_string(),
            url,
            target,
            client,
            timeout,
        })
    }

    /// The same poster with another timeout.
    pub(crate) fn with_timeout(&self, timeout: Duration) -> Result<Poster> {
        Poster::new(&self.channel, self.url.clone(), timeout)
    }

    /// `scheme://host:port`.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// POSTs `body` (JSON) with `headers`; the answer for a 2xx status.
    pub(crate) fn post(&self, body: Vec<u8>, headers: &[(&str, String)]) -> Result<String> {
        let mut request = self
            .client
            .post(self.url.expose())
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        let excerpt: String = text.chars().take(200).collect();
        if status.is_success() {
            return Ok(format!("HTTP {} {}", status.as_u16(), excerpt.trim()));
        }
        Err(NotifyError::Rejected {
            channel: self.channel.clone(),
            target: self.target.clone(),
            status: status.as_u16(),
            reason: excerpt.trim().to_string(),
            transient: status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408,
        })
    }

    fn transport_error(&self, error: reqwest::Error) -> NotifyError {
        let error = error.without_url();
        if error.is_timeout() {
            return NotifyError::Timeout {
                channel: self.channel.clone(),
                target: self.target.clone(),
                seconds: self.timeout.as_secs().max(1),
            };
        }
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            reason.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        NotifyError::Connect {
            channel: self.channel.clone(),
            target: self.target.clone(),
            reason,
            source: None,
        }
    }
}
