//! [`ChatChannel`]: Slack, Discord and Microsoft Teams incoming webhooks.
//! The webhook URL is the credential: it is a [`Secret`], and errors name
//! only the host.

use std::time::Duration;

use updater_core::notify::{Notification, Notifier};
use updater_core::secret::Secret;

use crate::channel::Channel;
use crate::error::Result;
use crate::http::Poster;
use crate::message::{Context, discord_payload, slack_payload, teams_payload};

/// Which chat service the webhook belongs to (decides the message format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatService {
    /// Slack incoming webhook: Block Kit.
    Slack,
    /// Discord webhook: an embed.
    Discord,
    /// Microsoft Teams incoming webhook: an Adaptive Card.
    Teams,
}

impl ChatService {
    /// `slack`, `discord` or `teams`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatService::Slack => "slack",
            ChatService::Discord => "discord",
            ChatService::Teams => "teams",
        }
    }
}

/// Posts each notice to a chat webhook.
///
/// ```no_run
/// use updater_core::secret::Secret;
/// use updater_notify::ChatChannel;
///
/// let url = Secret::from_env("SLACK_WEBHOOK_URL").unwrap_or_else(|| Secret::new(""));
/// let slack = ChatChannel::slack("ops-slack", url)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChatChannel {
    service: ChatService,
    poster: Poster,
    context: Context,
}

impl ChatChannel {
    /// A channel for `service` posting to `webhook_url` (https, or http on
    /// loopback), 10 s timeout.
    pub fn new(name: &str, service: ChatService, webhook_url: Secret) -> Result<Self> {
        Ok(ChatChannel {
            service,
            poster: Poster::new(name, webhook_url, Duration::from_secs(10))?,
            context: Context::default(),
        })
    }

    /// A Slack incoming webhook.
    pub fn slack(name: &str, webhook_url: Secret) -> Result<Self> {
        Self::new(name, ChatService::Slack, webhook_url)
    }

    /// A Discord webhook.
    pub fn discord(name: &str, webhook_url: Secret) -> Result<Self> {
        Self::new(name, ChatService::Discord, webhook_url)
    }

    /// A Microsoft Teams incoming webhook.
    pub fn teams(name: &str, webhook_url: Secret) -> Result<Self> {
        Self::new(name, ChatService::Teams, webhook_url)
    }

    /// The same channel with another timeout for each request (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self> {
        self.poster = self.poster.with_timeout(timeout)?;
        Ok(self)
    }

    /// The application name and console link shown in every message.
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// The JSON posted for `n`.
    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        match self.service {
            ChatService::Slack => slack_payload(n, &self.context),
            ChatService::Discord => discord_payload(n, &self.context),
            ChatService::Teams => teams_payload(n, &self.context),
        }
    }
}

impl Channel for ChatChannel {
    fn name(&self) -> &str {
        &self.poster.channel
    }

    fn describe(&self) -> String {
        format!(
            "{} webhook at {}",
            self.service.as_str(),
            self.poster.target()
        )
    }

    fn send(&self, n: &Notification) -> Result<String> {
        let body = self.payload(n).to_string().into_bytes();
        self.poster
            .post(body, &[("x-updater-event-id", n.event_id.clone())])
    }
}

impl Notifier for ChatChannel {
    fn notify(&self, notification: &Notification) -> updater_core::Result<()> {
        self.send(notification).map(drop).map_err(Into::into)
    }
}
