//! Telling admins what happened: the [`Notifier`] trait, the [`LogNotifier`]
//! (a `tracing` event per notification) and the [`StoreNotifier`] (one row per
//! admin in any [`HistoryStore`], deduplicated per version and type, so a
//! daily check does not announce the same version every day).

use std::sync::Arc;

use chrono::Utc;

use crate::error::Result;
use crate::history::{HistoryStore, NotificationRecord, NotificationType};
use crate::version::Version;

/// Something admins should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What kind of event.
    pub kind: NotificationType,
    /// The version it concerns.
    pub version: Version,
    /// A one-line message for humans.
    pub message: String,
    /// Extra data (update id, step, error).
    pub metadata: Option<serde_json::Value>,
}

/// Delivers notifications to admins.
///
/// # Contract
///
/// - A notifier failure never fails an update: the pipeline logs it and goes on.
/// - Delivery of the same (version, kind) twice may be deduplicated.
///
/// # Implementing
///
/// Required: [`notify`](Self::notify).
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
            | NotificationType::Warning => {
                tracing::warn!(kind = n.kind.as_str(), version = %n.version, "{}", n.message);
            }
            _ => tracing::info!(kind = n.kind.as_str(), version = %n.version, "{}", n.message),
        }
        Ok(())
    }
}

/// Stores notifications in a [`HistoryStore`], one row per admin.
///
/// ```
/// use std::sync::Arc;
/// use updater_core::history::{HistoryStore, InMemoryHistoryStore, NotificationFilter, NotificationType};
/// use updater_core::notify::{Notification, Notifier, StoreNotifier};
/// use updater_core::version::Version;
///
/// let store = Arc::new(InMemoryHistoryStore::new());
/// let notifier = StoreNotifier::new(store.clone()).with_admins(["alice", "bob"]);
/// let n = Notification {
///     kind: NotificationType::UpdateAvailable,
///     version: Version::new(1, 1, 0),
///     message: "1.1.0 is available".into(),
///     metadata: None,
/// };
/// notifier.notify(&n)?;
/// notifier.notify(&n)?; // deduplicated
/// assert_eq!(store.notifications(&NotificationFilter::default())?.len(), 2);
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
            })?;
        }
        Ok(())
    }
}
