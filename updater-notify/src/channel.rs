//! [`Channel`]: a named place notices go, which can say what it is and what
//! the server answered. Every built-in channel is also a
//! [`Notifier`](updater_core::Notifier), so it passes core's conformance
//! suite; [`NotifierChannel`] makes any notifier (core's `StoreNotifier`,
//! `LogNotifier`, your own) a channel.

use std::sync::Arc;

use updater_core::notify::{Notification, Notifier};

use crate::error::{NotifyError, Result};

/// A named destination of notices, used by the [`Dispatcher`](crate::Dispatcher).
///
/// # Contract
///
/// - [`send`](Self::send) delivers one notice or fails within a bounded
///   time (each channel has a timeout), and returns the server's answer.
/// - It passes [`Notification::event_id`] on (an idempotency key, a
///   `Message-ID`...), so a receiver can drop a repeat.
/// - Errors name the channel and never contain a secret.
///
/// # Implementing
///
/// Required: [`name`](Self::name), [`describe`](Self::describe), [`send`](Self::send).
pub trait Channel: Send + Sync {
    /// The configured name (`email`, `ops-slack`...), the key of its deliveries.
    fn name(&self) -> &str;
    /// What it is, without secrets (`e-mail via smtp.example.com:587 ...`).
    fn describe(&self) -> String;
    /// Delivers `notification`; returns the server's answer (`250 queued`, `HTTP 200`).
    fn send(&self, notification: &Notification) -> Result<String>;
}

/// Any [`Notifier`] as a [`Channel`]: the database (`StoreNotifier`), the
/// log, or an integrator's own.
///
/// ```
/// use std::sync::Arc;
/// use updater_core::history::InMemoryHistoryStore;
/// use updater_core::notify::StoreNotifier;
/// use updater_notify::{Channel, NotifierChannel};
///
/// let store = Arc::new(InMemoryHistoryStore::new());
/// let database = NotifierChannel::new("database", "history database", Arc::new(StoreNotifier::new(store)));
/// assert_eq!(database.name(), "database");
/// ```
#[derive(Clone)]
pub struct NotifierChannel {
    name: String,
    description: String,
    notifier: Arc<dyn Notifier>,
}

impl std::fmt::Debug for NotifierChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifierChannel")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl NotifierChannel {
    /// `notifier` under `name`, described as `description`.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        notifier: Arc<dyn Notifier>,
    ) -> Self {
        NotifierChannel {
            name: name.into(),
            description: description.into(),
            notifier,
        }
    }
}

impl Channel for NotifierChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn send(&self, notification: &Notification) -> Result<String> {
        self.notifier
            .notify(notification)
            .map(|()| "accepted".to_string())
            .map_err(|e| NotifyError::Outbox(Box::new(e)))
    }
}
