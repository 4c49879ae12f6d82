//! # updater-notify
//!
//! Tells admins what the updater did — a new version, an update started,
//! completed, failed, rolled back, one that needs an operator, unhealthy
//! backups — by **e-mail** (SMTP with STARTTLS or TLS and AUTH, a text and
//! an HTML part), **Slack** (Block Kit), **Discord**, **Microsoft Teams**
//! and a **signed generic webhook** (JSON, HMAC-SHA256 over timestamp and
//! body, an idempotency key per event), besides the database rows of
//! `updater-core`'s `StoreNotifier`.
//!
//! ## Why it is shaped this way
//!
//! - **No notice is lost, no update waits.** The pipeline calls
//!   [`Notifier::notify`](updater_core::Notifier::notify) on a
//!   [`Dispatcher`], which only writes the notice to the outbox
//!   ([`updater_core::outbox`], stored in the history database by
//!   `updater-store-diesel`) with one pending delivery per routed channel.
//!   Delivery happens outside the update: a background [`Worker`], or
//!   [`Dispatcher::deliver_due`] at the start of the next command. A crash
//!   or `SIGKILL` after the write loses nothing; the next run delivers.
//! - **At least once, deduplicated.** Each delivery is claimed for a lease,
//!   sent, then recorded; a crash between sending and recording sends again
//!   with the same event id (`Idempotency-Key`, `X-Updater-Event-Id`,
//!   `Message-ID`), so receivers drop the repeat. In the normal case each
//!   receiver gets each event once. Events are unique: one notice per event
//!   per channel; a second failed update of the same version is a new event.
//! - **Bounded retries, then loudly given up.** Failed attempts are retried
//!   with exponential backoff and jitter ([`RetryPolicy`]); after the
//!   configured attempts or age the delivery is given up, recorded with its
//!   last error, logged, announced to the other channels, and shown by
//!   [`Dispatcher::health`] (`updater status`).
//! - **Secrets stay secret.** SMTP passwords, signing secrets and webhook
//!   URLs (for Slack, Discord and Teams the URL *is* the credential) are
//!   [`Secret`](updater_core::secret::Secret)s; errors name the channel and
//!   `host:port` only.
//! - **Blocking**, like the rest of the workspace: SMTP and HTTP calls block
//!   with a timeout; call from `spawn_blocking` in async code.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use updater_core::history::{InMemoryHistoryStore, NotificationType};
//! use updater_core::notify::{Notification, Notifier, StoreNotifier};
//! use updater_core::outbox::InMemoryOutbox;
//! use updater_core::secret::Secret;
//! use updater_core::version::Version;
//! use updater_notify::{Dispatcher, EventSet, NotifierChannel, WebhookChannel};
//!
//! let history = Arc::new(InMemoryHistoryStore::new());
//! let outbox = Arc::new(InMemoryOutbox::new()); // `DieselHistoryStore` in production
//! let webhook = WebhookChannel::builder("ops-hook", Secret::new("http://127.0.0.1:9/hook"))
//!     .with_signing_secret(Secret::new("shared-secret"))
//!     .with_timeout(Duration::from_millis(500))
//!     .build()?;
//! let dispatcher = Dispatcher::builder(outbox)
//!     .with_channel(Arc::new(NotifierChannel::new("database", "history", Arc::new(StoreNotifier::new(history.clone())))), EventSet::all())
//!     .with_channel(Arc::new(webhook), EventSet::problems())
//!     .with_history(history)
//!     .build();
//!
//! // What the pipeline does: cheap, whatever the channels' state.
//! let failed = Notification::new(NotificationType::UpdateFailed, Version::new(1, 2, 0), "update to 1.2.0 failed")
//!     .with_event_id("update-7:update_failed");
//! dispatcher.notify(&failed)?;
//!
//! // Later, outside the update: the database row is written; nothing
//! // listens on port 9, so the webhook delivery waits for a retry.
//! let report = dispatcher.deliver_due(Duration::from_secs(5))?;
//! assert_eq!((report.delivered, report.retried), (1, 1));
//! assert!(dispatcher.health()?.iter().any(|h| h.channel == "ops-hook" && h.is_failing()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Channels
//!
//! | type | service | payload |
//! |---|---|---|
//! | [`EmailChannel`] | any SMTP server (STARTTLS, TLS or plain; AUTH) | text + HTML, subject naming what happened |
//! | [`ChatChannel::slack`] | Slack incoming webhook | Block Kit: version, changelog excerpt, status, duration, link |
//! | [`ChatChannel::discord`] | Discord webhook | one embed |
//! | [`ChatChannel::teams`] | Microsoft Teams incoming webhook | Adaptive Card |
//! | [`WebhookChannel`] | your endpoint | JSON schema `updater.notification/1` ([`message::webhook_payload`]), signed ([`webhook`]) |
//! | [`NotifierChannel`] | any [`Notifier`](updater_core::Notifier) | e.g. core's `StoreNotifier` (database rows) |
//!
//! ## Features
//!
//! None: every channel is always compiled (lettre with rustls; reqwest
//! with rustls).

#![warn(missing_docs)]

mod channel;
mod chat;
mod dispatcher;
mod email;
mod error;
mod http;
pub mod message;
mod retry;
pub mod webhook;

pub use channel::{Channel, NotifierChannel};
pub use chat::{ChatChannel, ChatService};
pub use dispatcher::{
    DeliveryReport, Dispatcher, DispatcherBuilder, EventSet, TestOutcome, Worker,
};
pub use email::{EmailChannel, EmailChannelBuilder, Security};
pub use error::{NotifyError, Result};
pub use retry::RetryPolicy;
pub use webhook::{WebhookChannel, WebhookChannelBuilder};
