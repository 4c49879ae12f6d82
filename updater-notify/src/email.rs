//! [`EmailChannel`]: notices as e-mail over SMTP (lettre, rustls), with a
//! plain-text and an HTML part.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use sha2::Digest;
use updater_core::notify::{Notification, Notifier};
use updater_core::secret::Secret;

use crate::channel::Channel;
use crate::error::{NotifyError, Result};
use crate::message::{Context, render};

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// Plain connection upgraded with `STARTTLS`, which is required (port 587).
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption: only for a relay on the same host (port 25).
    None,
}

impl Security {
    /// The usual port.
    pub fn default_port(self) -> u16 {
        match self {
            Security::StartTls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }

    /// `starttls`, `tls` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::StartTls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }
}

/// Sends each notice as an e-mail (text and HTML) to its recipients.
///
/// The `Message-ID` is derived from the event id, and the event id is in
/// the `X-Updater-Event-Id` header, so a notice delivered twice (after a
/// crash between sending and recording) can be recognised.
///
/// ```no_run
/// use updater_core::notify::{Notification, Notifier};
/// use updater_core::history::NotificationType;
/// use updater_core::secret::Secret;
/// use updater_core::version::Version;
/// use updater_notify::{EmailChannel, Security};
///
/// let email = EmailChannel::builder("ops-mail", "smtp.example.com")
///     .with_security(Security::StartTls)
///     .with_credentials("updater@example.com", Secret::from_env("SMTP_PASSWORD").unwrap_or_else(|| Secret::new("")))
///     .with_from("Updater <updater@example.com>")
///     .with_to(["ops@example.com"])
///     .build()?;
/// email.notify(&Notification::new(NotificationType::Test, Version::new(1, 0, 0), "hello"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EmailChannel {
    name: String,
    host: String,
    port: u16,
    security: Security,
    user: Option<String>,
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    context: Context,
    timeout: Duration,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("name", &self.name)
            .field("server", &format!("{}:{}", self.host, self.port))
            .field("security", &self.security)
            .field("user", &self.user)
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

/// Configures an [`EmailChannel`]; made by [`EmailChannel::builder`].
#[derive(Debug, Clone)]
pub struct EmailChannelBuilder {
    name: String,
    host: String,
    port: Option<u16>,
    security: Security,
    credentials: Option<(String, Secret)>,
    from: Option<String>,
    to: Vec<String>,
    root_certificate: Option<PathBuf>,
    timeout: Duration,
    context: Context,
}

impl EmailChannel {
    /// A channel named `name` sending through the SMTP server at `host`.
    pub fn builder(name: impl Into<String>, host: impl Into<String>) -> EmailChannelBuilder {
        EmailChannelBuilder {
            name: name.into(),
            host: host.into(),
            port: None,
            security: Security::default(),
            credentials: None,
            from: None,
            to: Vec::new(),
            root_certificate: None,
            timeout: Duration::from_secs(15),
            context: Context::default(),
        }
    }

    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The e-mail `n` becomes (also what the quickstart prints).
    pub fn message(&self, n: &Notification) -> Result<Message> {
        let rendered = render(n, &self.context);
        let message_error = |reason: String| NotifyError::Message {
            channel: self.name.clone(),
            reason,
        };
        let domain = self.from.email.domain().to_string();
        let digest = hex::encode(sha2::Sha256::digest(n.event_id.as_bytes()));
        let readable: String = n
            .event_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                    c
                } else {
                    '-'
                }
            })
            .take(60)
            .collect();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(rendered.subject.clone())
            .message_id(Some(format!("<{readable}.{}@{domain}>", &digest[..16])))
            .user_agent(format!("updater-notify/{}", env!("CARGO_PKG_VERSION")))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Updater-Event-Id"),
                n.event_id.clone(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Updater-Event-Type"),
                n.kind.as_str().to_string(),
            ));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text(),
                rendered.html(),
            ))
            .map_err(|e| message_error(e.to_string()))
    }

    fn classify(&self, error: lettre::transport::smtp::Error) -> NotifyError {
        let channel = self.name.clone();
        let target = self.target();
        let code = error.status().map(|c| {
            let text = c.to_string();
            text.parse::<u16>().unwrap_or(0)
        });
        let reason = error.to_string();
        if error.is_timeout() {
            return NotifyError::Timeout {
                channel,
                target,
                seconds: self.timeout.as_secs(),
            };
        }
        if error.is_tls() {
            return NotifyError::Tls {
                channel,
                target,
                reason,
            };
        }
        match code {
            Some(530 | 534 | 535) => NotifyError::Auth {
                channel,
                target,
                user: self.user.clone().unwrap_or_default(),
                reason,
            },
            Some(code) if code > 0 => NotifyError::Rejected {
                channel,
                target,
                status: code,
                transient: error.is_transient(),
                reason,
            },
            _ => NotifyError::Connect {
                channel,
                target,
                reason,
                source: Some(Box::new(error)),
            },
        }
    }
}

impl EmailChannelBuilder {
    /// The port (default: 587 for STARTTLS, 465 for TLS, 25 for none).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How the connection is protected (default STARTTLS, required).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Log in as `user` with `password` (AUTH PLAIN or LOGIN).
    pub fn with_credentials(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.credentials = Some((user.into(), password));
        self
    }

    /// The sender (`Name <address>` or an address).
    pub fn with_from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }

    /// The recipients.
    pub fn with_to<I, S>(mut self, to: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.to.extend(to.into_iter().map(Into::into));
        self
    }

    /// Trust this PEM certificate (a private CA) besides the public roots.
    pub fn with_root_certificate(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.root_certificate = Some(pem_file.into());
        self
    }

    /// How long connecting and each SMTP command may take (default 15 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The application name and console link shown in every message.
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Checks the addresses and TLS settings.
    pub fn build(self) -> Result<EmailChannel> {
        let config = |reason: String| NotifyError::Config {
            channel: self.name.clone(),
            reason,
        };
        if self.host.trim().is_empty() {
            return Err(config("the SMTP host is empty".into()));
        }
        let from_text = self
            .from
            .clone()
            .ok_or_else(|| config("a sender (from) is required".into()))?;
        let from: Mailbox = from_text
            .parse()
            .map_err(|e| config(format!("sender {from_text:?}: {e}")))?;
        if self.to.is_empty() {
            return Err(config("at least one recipient (to) is required".into()));
        }
        let to = self
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| config(format!("recipient {t:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let port = self.port.unwrap_or(self.security.default_port());
        let tls_parameters = || -> Result<TlsParameters> {
            let mut tls = TlsParameters::builder(self.host.clone());
            if let Some(file) = &self.root_certificate {
                let pem = std::fs::read(file)
                    .map_err(|e| config(format!("root certificate {}: {e}", file.display())))?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| config(format!("root certificate {}: {e}", file.display())))?;
                tls = tls.add_root_certificate(certificate);
            }
            tls.build()
                .map_err(|e| config(format!("TLS settings: {e}")))
        };
        let tls = match self.security {
            Security::StartTls => Tls::Required(tls_parameters()?),
            Security::Tls => Tls::Wrapper(tls_parameters()?),
            Security::None => Tls::None,
        };
        let mut transport = SmtpTransport::builder_dangerous(self.host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some((user, password)) = &self.credentials {
            transport = transport.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(EmailChannel {
            name: self.name,
            user: self.credentials.map(|(user, _)| user),
            host: self.host,
            port,
            security: self.security,
            transport: transport.build(),
            from,
            to,
            context: self.context,
            timeout: self.timeout,
        })
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!(
            "e-mail via {} ({}) to {} recipient(s)",
            self.target(),
            self.security.as_str(),
            self.to.len()
        )
    }

    fn send(&self, n: &Notification) -> Result<String> {
        let message = self.message(n)?;
        let response = self
            .transport
            .send(&message)
            .map_err(|e| self.classify(e))?;
        Ok(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        ))
    }
}

impl Notifier for EmailChannel {
    fn notify(&self, notification: &Notification) -> updater_core::Result<()> {
        self.send(notification).map(drop).map_err(Into::into)
    }
}
