//! [`WebhookChannel`]: a JSON `POST` ([`webhook_payload`],
//! schema `updater.notification/1`) signed GitHub-style so the receiver can
//! check where it comes from and refuse replays.
//!
//! Headers of every request:
//!
//! | header | value |
//! |---|---|
//! | `X-Updater-Signature` | `sha256=` + hex HMAC-SHA256 with the shared secret over `<timestamp>.<body>` |
//! | `X-Updater-Timestamp` | Unix seconds when it was sent |
//! | `X-Updater-Event` | the type (`update_rolled_back`...) |
//! | `X-Updater-Event-Id`, `Idempotency-Key` | the event id: the same on every retry of one event |
//!
//! A receiver recomputes the HMAC over the timestamp, a `.` and the raw
//! body, compares in constant time ([`verify_signature`] does it), refuses
//! timestamps older than a few minutes (replays), and drops an event id it
//! already processed (at-least-once delivery).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use updater_core::notify::{Notification, Notifier};
use updater_core::secret::Secret;

use crate::channel::Channel;
use crate::error::{NotifyError, Result};
use crate::http::Poster;
use crate::message::{Context, webhook_payload};

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Updater-Signature";
/// The timestamp header's name.
pub const TIMESTAMP_HEADER: &str = "X-Updater-Timestamp";

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with `secret`.
///
/// ```
/// use updater_notify::webhook::{sign, verify_signature};
/// let signature = sign(b"s3cret", 1_750_000_000, br#"{"id":"x"}"#);
/// assert!(signature.starts_with("sha256="));
/// let now = chrono::DateTime::from_timestamp(1_750_000_030, 0).unwrap();
/// assert!(verify_signature(b"s3cret", &signature, "1750000000", br#"{"id":"x"}"#, now, 300).is_ok());
/// assert!(verify_signature(b"wrong", &signature, "1750000000", br#"{"id":"x"}"#, now, 300).is_err());
/// ```
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    }
}

#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    // `InvalidLength` is never returned for HMAC; an empty key is valid.
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default())
}

/// Why a webhook request was refused by [`verify_signature`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature header is not `sha256=<hex>`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp header is not a number.
    #[error("malformed timestamp header")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance: a replay, or a wrong clock.
    #[error("timestamp is {age} s away from now (tolerance {tolerance} s)")]
    Stale {
        /// Seconds between the timestamp and now.
        age: i64,
        /// The tolerance.
        tolerance: i64,
    },
    /// The HMAC does not match: another secret, or a changed body.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a request's signature in constant time and refuses timestamps more
/// than `tolerance_secs` away from `now`.
pub fn verify_signature(
    secret: &[u8],
    signature: &str,
    timestamp: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> std::result::Result<(), SignatureError> {
    let hex_part = signature
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let age = (now.timestamp() - ts).abs();
    if age > tolerance_secs {
        return Err(SignatureError::Stale {
            age,
            tolerance: tolerance_secs,
        });
    }
    let mut mac = mac(secret);
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Posts each notice as signed JSON to a URL.
///
/// ```no_run
/// use updater_core::secret::Secret;
/// use updater_notify::WebhookChannel;
///
/// let hook = WebhookChannel::builder("ops-hook", Secret::new("https://ops.example.com/hooks/updater"))
///     .with_signing_secret(Secret::from_env("UPDATER_WEBHOOK_SECRET").unwrap_or_else(|| Secret::new("")))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    poster: Poster,
    secret: Option<Secret>,
    context: Context,
}

/// Configures a [`WebhookChannel`]; made by [`WebhookChannel::builder`].
#[derive(Debug, Clone)]
pub struct WebhookChannelBuilder {
    name: String,
    url: Secret,
    secret: Option<Secret>,
    timeout: Duration,
    context: Context,
}

impl WebhookChannel {
    /// A webhook named `name` posting to `url` (https, or http on loopback).
    pub fn builder(name: impl Into<String>, url: Secret) -> WebhookChannelBuilder {
        WebhookChannelBuilder {
            name: name.into(),
            url,
            secret: None,
            timeout: Duration::from_secs(10),
            context: Context::default(),
        }
    }
}

impl WebhookChannelBuilder {
    /// Sign every request with this shared secret (strongly advised).
    pub fn with_signing_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret).filter(|s| !s.is_empty());
        self
    }

    /// How long one request may take (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The application name and console link in every body.
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Checks the URL.
    pub fn build(self) -> Result<WebhookChannel> {
        if self.name.trim().is_empty() {
            return Err(NotifyError::Config {
                channel: self.name,
                reason: "the channel needs a name".into(),
            });
        }
        Ok(WebhookChannel {
            poster: Poster::new(&self.name, self.url, self.timeout)?,
            secret: self.secret,
            context: self.context,
        })
    }
}

impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        &self.poster.channel
    }

    fn describe(&self) -> String {
        format!(
            "webhook at {}{}",
            self.poster.target(),
            if self.secret.is_some() {
                " (signed)"
            } else {
                " (unsigned)"
            }
        )
    }

    fn send(&self, n: &Notification) -> Result<String> {
        let body = webhook_payload(n, &self.context).to_string().into_bytes();
        let timestamp = Utc::now().timestamp();
        let mut headers = vec![
            ("x-updater-event", n.kind.as_str().to_string()),
            ("x-updater-event-id", n.event_id.clone()),
            ("idempotency-key", n.event_id.clone()),
            ("x-updater-timestamp", timestamp.to_string()),
        ];
        if let Some(secret) = &self.secret {
            headers.push((
                "x-updater-signature",
                sign(secret.expose().as_bytes(), timestamp, &body),
            ));
        }
        self.poster.post(body, &headers)
    }
}

impl Notifier for WebhookChannel {
    fn notify(&self, notification: &Notification) -> updater_core::Result<()> {
        self.send(notification).map(drop).map_err(Into::into)
    }
}
