//! The one error type of `updater-notify`. Every variant names the channel
//! and where it was sending (host and port, never a webhook URL: for Slack,
//! Discord and Teams the URL is the credential), and never holds a secret.

use updater_core::error::BoxError;

/// Everything that can go wrong while configuring or using a channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A channel's settings are unusable (an address that does not parse,
    /// a webhook URL that is not `https://`, a missing secret).
    #[error("notification channel {channel}: {reason}")]
    Config {
        /// The channel's name.
        channel: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The server could not be reached (refused, DNS, reset).
    #[error("notification channel {channel}: cannot reach {target}: {reason}")]
    Connect {
        /// The channel's name.
        channel: String,
        /// `host:port` (no path, no credentials).
        target: String,
        /// What happened.
        reason: String,
        /// The client's error (URL removed).
        #[source]
        source: Option<BoxError>,
    },

    /// The server did not answer in time.
    #[error("notification channel {channel}: {target} did not answer within {seconds} s")]
    Timeout {
        /// The channel's name.
        channel: String,
        /// `host:port`.
        target: String,
        /// The timeout.
        seconds: u64,
    },

    /// The TLS handshake failed (certificate, protocol).
    #[error("notification channel {channel}: TLS with {target} failed: {reason}")]
    Tls {
        /// The channel's name.
        channel: String,
        /// `host:port`.
        target: String,
        /// What the TLS library said.
        reason: String,
    },

    /// The server refused the login (wrong user name or password).
    #[error(
        "notification channel {channel}: {target} refused the login of {user}: {reason}; check the password (its environment variable or file)"
    )]
    Auth {
        /// The channel's name.
        channel: String,
        /// `host:port`.
        target: String,
        /// The user name (not secret).
        user: String,
        /// The server's answer.
        reason: String,
    },

    /// The server answered, but refused the notice (HTTP 4xx/5xx, an SMTP
    /// error code).
    #[error("notification channel {channel}: {target} refused the notice: {status} {reason}")]
    Rejected {
        /// The channel's name.
        channel: String,
        /// `host:port`.
        target: String,
        /// The HTTP status or SMTP code.
        status: u16,
        /// The start of the server's answer.
        reason: String,
        /// Whether trying again later may work (HTTP 429 and 5xx, SMTP 4xx).
        transient: bool,
    },

    /// The notice could not be written as a message (an address lettre
    /// refuses...).
    #[error("notification channel {channel}: cannot build the message: {reason}")]
    Message {
        /// The channel's name.
        channel: String,
        /// Why.
        reason: String,
    },

    /// No channel of that name is configured.
    #[error("no notification channel named {0:?}")]
    UnknownChannel(String),

    /// The outbox (the history database) failed.
    #[error("notification outbox: {0}")]
    Outbox(#[source] Box<updater_core::Error>),
}

impl NotifyError {
    /// Whether trying again later may work: the server was unreachable,
    /// slow, or said "later". Every failure is retried until the retry
    /// policy gives up; this only tells operators what kind it was.
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Connect { .. } | NotifyError::Timeout { .. } => true,
            NotifyError::Rejected { transient, .. } => *transient,
            NotifyError::Outbox(_) => true,
            _ => false,
        }
    }

    /// The channel it is about, when it is about one.
    pub fn channel(&self) -> Option<&str> {
        match self {
            NotifyError::Config { channel, .. }
            | NotifyError::Connect { channel, .. }
            | NotifyError::Timeout { channel, .. }
            | NotifyError::Tls { channel, .. }
            | NotifyError::Auth { channel, .. }
            | NotifyError::Rejected { channel, .. }
            | NotifyError::Message { channel, .. } => Some(channel),
            NotifyError::UnknownChannel(name) => Some(name),
            NotifyError::Outbox(_) => None,
        }
    }
}

impl From<NotifyError> for updater_core::Error {
    /// Unreachable, slow, refused or failing servers are
    /// [`Unavailable`](updater_core::Error::Unavailable) (the outbox retries
    /// them); bad settings are [`InvalidInput`](updater_core::Error::InvalidInput).
    fn from(error: NotifyError) -> Self {
        match error {
            NotifyError::Config { .. }
            | NotifyError::Message { .. }
            | NotifyError::UnknownChannel(_) => {
                updater_core::Error::invalid("notification channel", error.to_string())
            }
            NotifyError::Outbox(inner) => *inner,
            other => updater_core::Error::Unavailable {
                service: other.channel().map_or_else(
                    || "notification channel".into(),
                    |c| format!("notification channel {c}"),
                ),
                reason: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}

/// Shorthand for results whose error is [`NotifyError`].
pub type Result<T, E = NotifyError> = std::result::Result<T, E>;
