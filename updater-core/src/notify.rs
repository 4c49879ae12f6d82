//! Telling admins what happened: the [`Notifier`] trait, the [`LogNotifier`]
//! (a `tracing` event per notification) and the [`StoreNotifier`] (one row per
//! admin in any [`HistoryStore`], deduplicated per event, so a daily check
//! does not announce the same version every day while a second failed
//! update of the same version is news).
//!
//! Every [`Notification`] names its event ([`Notification::event_id`]): the
//! pipeline uses `update-<update id>:<type>` for the events of an update and
//! `<type>:<version>` for "a new version is available". That id is the
//! idempotency key of every channel: e-mail, Slack and webhook channels
//! (crate `updater-notify`) deliver from an outbox ([`crate::outbox`]) at
//! least once, and a receiver drops a repeat by its id.

use std::sync::Arc;

use chrono::Utc;

use crate::error::Result;
use crate::history::{HistoryStore, NotificationRecord, NotificationType};
use crate::version::Version;

/// Something admins should hear about.
///
/// ```
/// use updater_core::history::NotificationType;
/// use updater_core::notify::Notification;
/// use updater_core::version::Version;
///
/// let n = Notification::new(NotificationType::UpdateFailed, Version::new(1, 2, 0), "update to 1.2.0 failed")
///     .with_event_id("update-7:update_failed")
///     .with_metadata(serde_json::json!({ "update_id": 7 }));
/// assert_eq!(n.event_id, "update-7:update_failed");
/// let available = Notification::new(NotificationType::UpdateAvailable, Version::new(1, 3, 0), "1.3.0 is out");
/// assert_eq!(available.event_id, "update_available:1.3.0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    /// What kind of event.
    pub kind: NotificationType,
    /// The version it concerns.
    pub version: Version,
    /// A one-line message for humans.
    pub message: String,
    /// Extra data (update id, step, error).
    pub metadata: Option<serde_json::Value>,
    /// The event it tells of, unique per event: one notice per event (and
    /// admin, and channel) is delivered, and every channel sends it as the
    /// idempotency key. Default: [`default_event_id`](Self::default_event_id).
    pub event_id: String,
}

impl Notification {
    /// A notification of `kind` about `version`, without metadata, for the
    /// event [`default_event_id`](Self::default_event_id)`(kind, version)`.
    pub fn new(kind: NotificationType, version: Version, message: impl Into<String>) -> Self {
        Notification {
            event_id: Self::default_event_id(kind, &version),
            kind,
            version,
            message: message.into(),
            metadata: None,
        }
    }

    /// The same notification for the event `event_id` (builder style).
    pub fn with_event_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = event_id.into();
        self
    }

    /// The same notification with `metadata` (builder style).
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// `<type>:<version>`: one event per type and version (a new version is
    /// announced once, however often it is found).
    pub fn default_event_id(kind: NotificationType, version: &Version) -> String {
        format!("{}:{version}", kind.as_str())
    }
}

/// Delivers notifications to admins.
///
/// # Contract
///
/// - A notifier failure never fails an update: the pipeline logs it and goes on.
/// - [`notify`](Self::notify) returns within a bounded time (a channel that
///   is down gives an error, it does not hang).
/// - The same [`Notification::event_id`] delivered twice is the same event:
///   a notifier may drop the repeat, and otherwise passes the id on so the
///   receiver can (at-least-once delivery). Different event ids are
///   different events, even for the same version and kind.
/// - Errors never contain secrets (passwords, tokens, webhook URLs).
/// - `Send + Sync`: called from several threads at once.
///
/// # Implementing
///
/// Required: [`notify`](Self::notify). Run
/// `updater_core::conformance::notifier::run` (feature `conformance`)
/// against the implementation.
pub trait Notifier: Send + Sync {
    /// Delivers `notification`.
    fn notify(&self, notification: &Notification) -> Result<()>;
}

crate::forward_trait!(Notifier:
    fn notify(&self, notification: &Notification) -> Result<()>;
);

/// Writes each notification as a `tracing` event (warn for failures).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, n: &Notification) -> Result<()> {
        match n.kind {
            NotificationType::UpdateFailed
            | NotificationType::UpdateRolledBack
            | NotificationType::NeedsOperator
            | NotificationType::Warning
            | NotificationType::BackupUnhealthy => {
                tracing::warn!(kind = n.kind.as_str(), version = %n.version, event = %n.event_id, "{}", n.message);
            }
            _ => {
                tracing::info!(kind = n.kind.as_str(), version = %n.version, event = %n.event_id, "{}", n.message);
            }
        }
        Ok(())
    }
}

/// Stores notifications in a [`HistoryStore`], one row per admin, each
/// carrying the event id (so a repeated delivery of the same event adds
/// nothing).
///
/// ```
/// use std::sync::Arc;
/// use updater_core::history::{HistoryStore, InMemoryHistoryStore, NotificationFilter, NotificationType};
/// use updater_core::notify::{Notification, Notifier, StoreNotifier};
/// use updater_core::version::Version;
///
/// let store = Arc::new(InMemoryHistoryStore::new());
/// let notifier = StoreNotifier::new(store.clone()).with_admins(["alice", "bob"]);
/// let n = Notification::new(NotificationType::UpdateAvailable, Version::new(1, 1, 0), "1.1.0 is available");
/// notifier.notify(&n)?;
/// notifier.notify(&n)?; // the same event: deduplicated
/// assert_eq!(store.notifications(&NotificationFilter::default())?.len(), 2);
/// let failed = |update: i64| {
///     Notification::new(NotificationType::UpdateFailed, Version::new(1, 1, 0), "update failed")
///         .with_event_id(format!("update-{update}:update_failed"))
/// };
/// notifier.notify(&failed(1))?;
/// notifier.notify(&failed(2))?; // a second failure of 1.1.0 is a new event
/// assert_eq!(store.notifications(&NotificationFilter::default())?.len(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StoreNotifier {
    store: Arc<dyn HistoryStore>,
    admins: Vec<Option<String>>,
}

impl std::fmt::Debug for StoreNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreNotifier")
            .field("admins", &self.admins)
            .finish_non_exhaustive()
    }
}

impl StoreNotifier {
    /// One notification for every admin (`user_id` empty).
    pub fn new(store: Arc<dyn HistoryStore>) -> Self {
        StoreNotifier {
            store,
            admins: vec![None],
        }
    }

    /// One notification per named admin instead (builder style).
    pub fn with_admins<I, S>(mut self, admins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.admins = admins.into_iter().map(|a| Some(a.into())).collect();
        if self.admins.is_empty() {
            self.admins.push(None);
        }
        self
    }
}

impl Notifier for StoreNotifier {
    fn notify(&self, n: &Notification) -> Result<()> {
        for admin in &self.admins {
            self.store.add_notification(&NotificationRecord {
                id: 0,
                version: n.version.clone(),
                notification_type: n.kind,
                message: n.message.clone(),
                metadata: n.metadata.clone(),
                is_read: false,
                is_dismissed: false,
                user_id: admin.clone(),
                read_at: None,
                created_at: Utc::now(),
                event_id: Some(n.event_id.clone()),
            })?;
        }
        Ok(())
    }
}
