//! History: the [`HistoryStore`] trait that records version checks, updates
//! with their steps, backups and admin notifications, its records, and the
//! [`InMemoryHistoryStore`] used by tests and by applications that keep no
//! database. `updater-store-diesel` stores the same records in SQLite,
//! PostgreSQL or MySQL.
//!
//! The record fields follow the tables of the original design
//! (`system_updates`, `version_checks`, `update_backups`,
//! `update_notifications`).

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::BackupKind;
use crate::error::{Error, Result};
use crate::version::{UpdateType, Version};

/// The id of an update record.
pub type UpdateId = i64;

/// Where an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    /// Created; preflight and backup.
    Pending,
    /// Fetching the package.
    Downloading,
    /// Staging, swapping, migrating.
    Installing,
    /// Health check.
    Verifying,
    /// Done; the new release runs.
    Completed,
    /// Failed before anything was changed; the old release runs.
    Failed,
    /// Failed after the swap began and was rolled back; the old release runs.
    RolledBack,
    /// Failed, and undoing it failed too: recovery stopped for an operator,
    /// keeping both trees (see the error message).
    NeedsOperator,
}

impl UpdateStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Pending => "pending",
            UpdateStatus::Downloading => "downloading",
            UpdateStatus::Installing => "installing",
            UpdateStatus::Verifying => "verifying",
            UpdateStatus::Completed => "completed",
            UpdateStatus::Failed => "failed",
            UpdateStatus::RolledBack => "rolled_back",
            UpdateStatus::NeedsOperator => "needs_operator",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "pending" => UpdateStatus::Pending,
            "downloading" => UpdateStatus::Downloading,
            "installing" => UpdateStatus::Installing,
            "verifying" => UpdateStatus::Verifying,
            "completed" => UpdateStatus::Completed,
            "failed" => UpdateStatus::Failed,
            "rolled_back" => UpdateStatus::RolledBack,
            "needs_operator" => UpdateStatus::NeedsOperator,
            other => {
                return Err(Error::invalid(
                    format!("update status {other:?}"),
                    "unknown status",
                ));
            }
        })
    }

    /// Whether the update has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            UpdateStatus::Completed | UpdateStatus::Failed | UpdateStatus::RolledBack
        )
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Still running (or the process died during it).
    Running,
    /// Finished without error.
    Succeeded,
    /// Returned an error.
    Failed,
    /// Not needed for this update.
    Skipped,
    /// Its effect was undone by a rollback.
    RolledBack,
}

/// One step of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepRecord {
    /// The step's name (`backup`, `swap`, `migrate`...).
    pub name: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub outcome: StepOutcome,
    /// Error or detail.
    pub message: Option<String>,
}

/// One update attempt (`system_updates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateRecord {
    /// Assigned by the store; 0 before [`HistoryStore::create_update`].
    pub id: UpdateId,
    /// The version being installed.
    pub version: Version,
    /// The version before.
    pub previous_version: Option<Version>,
    /// Major, minor, patch...
    pub update_type: Option<UpdateType>,
    /// Where it is.
    pub status: UpdateStatus,
    /// The release notes.
    pub changelog: String,
    /// Where the package came from, credentials stripped.
    pub download_url: Option<String>,
    /// The package's SHA-256.
    pub checksum: Option<String>,
    /// The package's size.
    pub download_size: Option<u64>,
    /// Who started it (`cli:alice`, `schedule`, `web:42`).
    pub initiated_by: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// When it failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// The error, naming the step.
    pub error_message: Option<String>,
    /// The backups taken (ids, paths, sizes) as JSON (`backup` in JSON).
    #[serde(rename = "backup")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub backup_info: Option<serde_json::Value>,
    /// Whether it was started automatically.
    pub auto_update: bool,
    /// 0–100 (`progress` in JSON).
    #[serde(rename = "progress")]
    pub progress_percentage: u8,
    /// The steps so far.
    pub steps: Vec<StepRecord>,
    /// How long the application was in maintenance mode, in milliseconds.
    pub maintenance_window_ms: Option<u64>,
}

impl UpdateRecord {
    /// A pending record for an update to `version`.
    pub fn new(version: Version, initiated_by: impl Into<String>) -> Self {
        UpdateRecord {
            id: 0,
            version,
            previous_version: None,
            update_type: None,
            status: UpdateStatus::Pending,
            changelog: String::new(),
            download_url: None,
            checksum: None,
            download_size: None,
            initiated_by: initiated_by.into(),
            started_at: Utc::now(),
            completed_at: None,
            failed_at: None,
            error_message: None,
            backup_info: None,
            auto_update: false,
            progress_percentage: 0,
            steps: Vec::new(),
            maintenance_window_ms: None,
        }
    }
}

/// How a version check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The source answered.
    Success,
    /// The source could not be asked (the error is recorded).
    Failed,
}

impl CheckStatus {
    /// `success` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Success => "success",
            CheckStatus::Failed => "failed",
        }
    }
}

/// One version check (`version_checks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionCheckRecord {
    /// Assigned by the store.
    pub id: i64,
    /// The installed version.
    pub current_version: Version,
    /// The newest version found, if the check succeeded and found one.
    pub latest_version: Option<Version>,
    /// Whether `latest_version` is an allowed update.
    pub update_available: bool,
    /// How the check ended.
    pub check_status: CheckStatus,
    /// Why it failed.
    pub error_message: Option<String>,
    /// The release found (version, channel, changelog, asset), as JSON.
    pub release_info: Option<serde_json::Value>,
    /// When.
    pub checked_at: DateTime<Utc>,
}

/// One backup (`update_backups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Assigned by the store.
    pub id: i64,
    /// The update it belongs to.
    pub system_update_id: Option<UpdateId>,
    /// The backup's own id (file-name safe).
    pub backup_id: String,
    /// The version backed up.
    pub version: Version,
    /// What it holds.
    pub backup_type: BackupKind,
    /// The database dump.
    pub database_backup_path: Option<String>,
    /// The files archive.
    pub files_backup_path: Option<String>,
    /// Bytes on disk.
    pub backup_size: u64,
    /// Whether it can still be restored (false once deleted or found damaged).
    pub is_restorable: bool,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// When retention may delete it.
    pub expires_at: Option<DateTime<Utc>>,
    /// Operator notes.
    pub notes: Option<String>,
}

impl BackupRecord {
    /// The history record of a backup that was just taken (restorable, no expiry yet).
    pub fn of(backup: &crate::backup::Backup) -> Self {
        BackupRecord {
            id: 0,
            system_update_id: backup.update_id,
            backup_id: backup.id.clone(),
            version: backup.version.clone(),
            backup_type: backup.kind,
            database_backup_path: backup
                .database_path
                .as_ref()
                .map(|p| p.display().to_string()),
            files_backup_path: backup.files_path.as_ref().map(|p| p.display().to_string()),
            backup_size: backup.size,
            is_restorable: true,
            created_at: backup.created_at,
            expires_at: None,
            notes: backup.description.clone(),
        }
    }

    /// The [`Backup`](crate::backup::Backup) this record describes, to hand
    /// to the [`BackupStrategy`](crate::backup::BackupStrategy) that made it
    /// (verify, restore, delete).
    pub fn to_backup(&self) -> crate::backup::Backup {
        crate::backup::Backup {
            id: self.backup_id.clone(),
            kind: self.backup_type,
            version: self.version.clone(),
            created_at: self.created_at,
            files_path: self.files_backup_path.as_ref().map(Into::into),
            database_path: self.database_backup_path.as_ref().map(Into::into),
            size: self.backup_size,
            update_id: self.system_update_id,
            description: self.notes.clone(),
        }
    }

    /// What the CLI's `--json` and the web API show of a backup.
    pub fn view(&self) -> BackupView {
        BackupView {
            id: self.backup_id.clone(),
            version: self.version.clone(),
            kind: self.backup_type,
            size: self.backup_size,
            created_at: self.created_at,
            description: self.notes.clone(),
            restorable: self.is_restorable,
            update_id: self.system_update_id,
            expires_at: self.expires_at,
        }
    }
}

/// A backup as the CLI's `--json` and the web API show it (no paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupView {
    /// The backup's id (file-name safe, never a secret).
    pub id: String,
    /// The version backed up.
    pub version: Version,
    /// What it holds.
    pub kind: BackupKind,
    /// Bytes on disk.
    pub size: u64,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Operator notes.
    pub description: Option<String>,
    /// Whether it can still be restored.
    pub restorable: bool,
    /// The update it belongs to.
    pub update_id: Option<UpdateId>,
    /// When retention may delete it.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationType {
    /// A newer version is available.
    UpdateAvailable,
    /// An update started.
    UpdateStarted,
    /// An update completed.
    UpdateCompleted,
    /// An update failed before changing anything.
    UpdateFailed,
    /// An update failed and was rolled back.
    UpdateRolledBack,
    /// Recovery gave up; an operator must act.
    NeedsOperator,
    /// A leftover maintenance flag or stale lock was found and cleared, or a
    /// notification channel gave up.
    Warning,
    /// A backup health monitor found a problem (the newest verified backup
    /// is too old, or backups use more space than allowed).
    BackupUnhealthy,
    /// A test message (`updater notifications test`).
    Test,
}

impl NotificationType {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::UpdateAvailable => "update_available",
            NotificationType::UpdateStarted => "update_started",
            NotificationType::UpdateCompleted => "update_completed",
            NotificationType::UpdateFailed => "update_failed",
            NotificationType::UpdateRolledBack => "update_rolled_back",
            NotificationType::NeedsOperator => "needs_operator",
            NotificationType::Warning => "warning",
            NotificationType::BackupUnhealthy => "backup_unhealthy",
            NotificationType::Test => "test",
        }
    }

    /// Every type, in declaration order.
    pub const ALL: [NotificationType; 9] = [
        NotificationType::UpdateAvailable,
        NotificationType::UpdateStarted,
        NotificationType::UpdateCompleted,
        NotificationType::UpdateFailed,
        NotificationType::UpdateRolledBack,
        NotificationType::NeedsOperator,
        NotificationType::Warning,
        NotificationType::BackupUnhealthy,
        NotificationType::Test,
    ];

    /// Whether it tells of something that went wrong (failed, rolled back,
    /// needs an operator, warning, unhealthy backups).
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            NotificationType::UpdateFailed
                | NotificationType::UpdateRolledBack
                | NotificationType::NeedsOperator
                | NotificationType::Warning
                | NotificationType::BackupUnhealthy
        )
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "update_available" => NotificationType::UpdateAvailable,
            "update_started" => NotificationType::UpdateStarted,
            "update_completed" => NotificationType::UpdateCompleted,
            "update_failed" => NotificationType::UpdateFailed,
            "update_rolled_back" => NotificationType::UpdateRolledBack,
            "needs_operator" => NotificationType::NeedsOperator,
            "warning" => NotificationType::Warning,
            "backup_unhealthy" => NotificationType::BackupUnhealthy,
            "test" => NotificationType::Test,
            other => {
                return Err(Error::invalid(
                    format!("notification type {other:?}"),
                    "unknown type",
                ));
            }
        })
    }
}

/// One admin notification (`update_notifications`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// Assigned by the store.
    pub id: i64,
    /// The version it is about.
    pub version: Version,
    /// What it is about.
    pub notification_type: NotificationType,
    /// The text shown to the admin.
    pub message: String,
    /// Extra data as JSON.
    pub metadata: Option<serde_json::Value>,
    /// Read by the admin.
    pub is_read: bool,
    /// Dismissed by the admin.
    pub is_dismissed: bool,
    /// The admin it is for (`None`: every admin).
    pub user_id: Option<String>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The event it tells of ([`Notification::event_id`](crate::notify::Notification::event_id)):
    /// `None` for records written before events had ids, which count as the
    /// event [`default_event_id`](crate::notify::Notification::default_event_id)
    /// of their type and version.
    pub event_id: Option<String>,
}

impl NotificationRecord {
    /// What deduplication compares: the event (or, for a record without
    /// one, its type and version) and the admin. Two records with the same
    /// key are the same notice.
    ///
    /// ```
    /// use updater_core::history::{NotificationRecord, NotificationType};
    /// use updater_core::version::Version;
    /// let mut first = NotificationRecord {
    ///     id: 0, version: Version::new(1, 2, 0), notification_type: NotificationType::UpdateFailed,
    ///     message: "failed".into(), metadata: None, is_read: false, is_dismissed: false,
    ///     user_id: None, read_at: None, created_at: chrono::Utc::now(),
    ///     event_id: Some("update-7:update_failed".into()),
    /// };
    /// let mut second = first.clone();
    /// second.event_id = Some("update-8:update_failed".into());
    /// assert_ne!(first.dedup_key(), second.dedup_key()); // a second failure is news
    /// first.event_id = None;
    /// second.event_id = Some("update_failed:1.2.0".into());
    /// assert_eq!(first.dedup_key(), second.dedup_key()); // old rows keep their meaning
    /// ```
    pub fn dedup_key(&self) -> (String, Option<String>) {
        let event = self.event_id.clone().unwrap_or_else(|| {
            crate::notify::Notification::default_event_id(self.notification_type, &self.version)
        });
        (event, self.user_id.clone())
    }
}

impl NotificationRecord {
    /// What the CLI's `notifications --json` and the web API show.
    pub fn view(&self) -> NotificationView {
        NotificationView {
            id: self.id,
            kind: self.notification_type,
            version: self.version.clone(),
            message: self.message.clone(),
            user: self.user_id.clone(),
            read: self.is_read,
            dismissed: self.is_dismissed,
            read_at: self.read_at,
            metadata: self.metadata.clone(),
            created_at: self.created_at,
        }
    }
}

/// A notification as the CLI's `--json` and the web API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationView {
    /// Its id.
    pub id: i64,
    /// What it is about (`type`).
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// The version it is about.
    pub version: Version,
    /// The text.
    pub message: String,
    /// The admin it is for (`null`: every admin).
    pub user: Option<String>,
    /// Read.
    pub read: bool,
    /// Dismissed.
    pub dismissed: bool,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// Extra data.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One action of an admin (`update_audit`): who did what to which object,
/// and how it ended. Updates, rollbacks and restores are also in their
/// update records (`initiated_by`); the audit log holds every action,
/// including those that leave no other trace (a login, a notification
/// marked read, a backup deleted, a refused request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Assigned by the store.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`web:alice`, `cli:root`).
    pub user: String,
    /// What (`login`, `apply`, `backup.delete`, `notification.read`...).
    pub action: String,
    /// On what (a version, a backup id, a notification id), if anything.
    pub target: Option<String>,
    /// Whether it succeeded (or, for a long operation, was started).
    pub success: bool,
    /// The error, or a detail (an operation id); never a secret.
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A record of `action` by `user` now (its `id` is assigned by the store).
    pub fn new(user: impl Into<String>, action: impl Into<String>) -> Self {
        AuditRecord {
            id: 0,
            at: Utc::now(),
            user: user.into(),
            action: action.into(),
            target: None,
            success: true,
            detail: None,
        }
    }

    /// Sets the object acted on (builder style).
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the outcome and its detail (builder style).
    pub fn with_outcome(mut self, success: bool, detail: Option<String>) -> Self {
        self.success = success;
        self.detail = detail;
        self
    }
}

/// A page of a newest-first listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Records to skip.
    pub offset: u64,
    /// Records to return at most.
    pub limit: u64,
}

impl Page {
    /// The first `limit` records.
    pub fn first(limit: u64) -> Self {
        Page { offset: 0, limit }
    }
}

/// Which notifications to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    /// Only unread ones.
    pub unread_only: bool,
    /// Include dismissed ones.
    pub include_dismissed: bool,
    /// Only those for this admin (plus those for every admin).
    pub user_id: Option<String>,
}

/// Keeps the history of checks, updates, backups and notifications.
///
/// # Contract
///
/// - Every write is durable when the method returns, and visible to other
///   processes using the same store (a progress page reads a running update).
/// - Ids are assigned by the store, positive and increasing.
/// - Listings are newest first (by creation time, then id).
/// - [`add_notification`](Self::add_notification) deduplicates: a
///   notification with the same [`dedup_key`](NotificationRecord::dedup_key)
///   (event and user; records without an event id count as the event of
///   their type and version) as an existing one is not stored again, and
///   `Ok(None)` is returned. A second failure of the same version is a new
///   event and is stored.
/// - Unknown ids give [`Error::NotFound`].
/// - Safe to use from several threads and processes at once.
///
/// # Implementing
///
/// Every method is required except the two audit methods
/// ([`record_audit`](Self::record_audit) says it keeps none, and callers
/// log instead). Each of the others stores or reads back one kind of
/// record that the pipeline, the check cache, the notification dedup or the
/// web console relies on reading back; a default would silently lose
/// history, so none is given. Run `updater_core::conformance::history::run`
/// (feature `conformance`) against the implementation.
pub trait HistoryStore: Send + Sync {
    /// Stores a version check; returns its id.
    fn record_check(&self, check: &VersionCheckRecord) -> Result<i64>;
    /// The most recent check.
    fn latest_check(&self) -> Result<Option<VersionCheckRecord>>;

    /// Stores a new update (its `id` is ignored); returns its id.
    fn create_update(&self, update: &UpdateRecord) -> Result<UpdateId>;
    /// Overwrites the stored update with `update.id`.
    fn save_update(&self, update: &UpdateRecord) -> Result<()>;
    /// The update with `id`, if any.
    fn update(&self, id: UpdateId) -> Result<Option<UpdateRecord>>;
    /// Updates, newest first.
    fn updates(&self, page: Page) -> Result<Vec<UpdateRecord>>;

    /// Stores a backup record; returns its id.
    fn record_backup(&self, backup: &BackupRecord) -> Result<i64>;
    /// Backup records, newest first.
    fn backups(&self, page: Page) -> Result<Vec<BackupRecord>>;
    /// Marks a backup as no longer restorable (deleted by retention, or damaged).
    fn mark_backup_unrestorable(&self, backup_id: &str, note: &str) -> Result<()>;

    /// Stores a notification unless one with the same [`dedup_key`](NotificationRecord::dedup_key) exists.
    fn add_notification(&self, notification: &NotificationRecord) -> Result<Option<i64>>;
    /// Notifications matching `filter`, newest first.
    fn notifications(&self, filter: &NotificationFilter) -> Result<Vec<NotificationRecord>>;
    /// Marks a notification read.
    fn mark_notification_read(&self, id: i64) -> Result<()>;
    /// Dismisses a notification.
    fn dismiss_notification(&self, id: i64) -> Result<()>;

    /// Stores an audit record; returns its id. The default keeps none and
    /// says so ([`Error::Precondition`]): callers then log the action instead.
    fn record_audit(&self, entry: &AuditRecord) -> Result<i64> {
        Err(Error::precondition(
            "audit log",
            format!(
                "this history store keeps no audit log (action {} by {})",
                entry.action, entry.user
            ),
        ))
    }

    /// Audit records, newest first. The default: none.
    fn audit_log(&self, _page: Page) -> Result<Vec<AuditRecord>> {
        Ok(Vec::new())
    }
}

/// Whether a new version check is due: none was made, or the last one is
/// older than `interval`.
pub fn needs_check(
    store: &dyn HistoryStore,
    interval: Duration,
    now: DateTime<Utc>,
) -> Result<bool> {
    Ok(match store.latest_check()? {
        None => true,
        Some(last) => now - last.checked_at >= interval,
    })
}

crate::forward_trait!(HistoryStore:
    fn record_check(&self, check: &VersionCheckRecord) -> Result<i64>;
    fn latest_check(&self) -> Result<Option<VersionCheckRecord>>;
    fn create_update(&self, update: &UpdateRecord) -> Result<UpdateId>;
    fn save_update(&self, update: &UpdateRecord) -> Result<()>;
    fn update(&self, id: UpdateId) -> Result<Option<UpdateRecord>>;
    fn updates(&self, page: Page) -> Result<Vec<UpdateRecord>>;
    fn record_backup(&self, backup: &BackupRecord) -> Result<i64>;
    fn backups(&self, page: Page) -> Result<Vec<BackupRecord>>;
    fn mark_backup_unrestorable(&self, backup_id: &str, note: &str) -> Result<()>;
    fn add_notification(&self, notification: &NotificationRecord) -> Result<Option<i64>>;
    fn notifications(&self, filter: &NotificationFilter) -> Result<Vec<NotificationRecord>>;
    fn mark_notification_read(&self, id: i64) -> Result<()>;
    fn dismiss_notification(&self, id: i64) -> Result<()>;
    fn record_audit(&self, entry: &AuditRecord) -> Result<i64>;
    fn audit_log(&self, page: Page) -> Result<Vec<AuditRecord>>;
);

/// A [`HistoryStore`] in memory: for tests, and for applications that keep
/// no database (history is lost when the process exits).
///
/// ```
/// use updater_core::history::{HistoryStore, InMemoryHistoryStore, Page, UpdateRecord};
/// use updater_core::version::Version;
///
/// let store = InMemoryHistoryStore::new();
/// let id = store.create_update(&UpdateRecord::new(Version::new(1, 1, 0), "cli"))?;
/// assert_eq!(store.updates(Page::first(10))?[0].id, id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct InMemoryHistoryStore {
    inner: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    checks: Vec<VersionCheckRecord>,
    updates: Vec<UpdateRecord>,
    backups: Vec<BackupRecord>,
    notifications: Vec<NotificationRecord>,
    audit: Vec<AuditRecord>,
}

fn next_id<T>(rows: &[T], id: impl Fn(&T) -> i64) -> i64 {
    rows.iter().map(id).max().unwrap_or(0) + 1
}

/// Newest first by (creation time, id), as the contract says.
fn newest_first<T: Clone>(
    rows: &[T],
    key: impl Fn(&T) -> (DateTime<Utc>, i64),
    page: Page,
) -> Vec<T> {
    let mut sorted: Vec<&T> = rows.iter().collect();
    sorted.sort_by_key(|row| std::cmp::Reverse(key(row)));
    sorted
        .into_iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

impl InMemoryHistoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> Result<MutexGuard<'_, Tables>> {
        self.inner
            .lock()
            .map_err(|_| Error::unavailable("in-memory history", "a thread panicked while writing"))
    }

    fn notification_mut(tables: &mut Tables, id: i64) -> Result<&mut NotificationRecord> {
        tables
            .notifications
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| Error::not_found(format!("notification {id}")))
    }
}

impl HistoryStore for InMemoryHistoryStore {
    fn record_check(&self, check: &VersionCheckRecord) -> Result<i64> {
        let mut t = self.tables()?;
        let id = next_id(&t.checks, |c| c.id);
        t.checks.push(VersionCheckRecord {
            id,
            ..check.clone()
        });
        Ok(id)
    }

    fn latest_check(&self) -> Result<Option<VersionCheckRecord>> {
        Ok(self
            .tables()?
            .checks
            .iter()
            .max_by_key(|c| (c.checked_at, c.id))
            .cloned())
    }

    fn create_update(&self, update: &UpdateRecord) -> Result<UpdateId> {
        let mut t = self.tables()?;
        let id = next_id(&t.updates, |u| u.id);
        t.updates.push(UpdateRecord {
            id,
            ..update.clone()
        });
        Ok(id)
    }

    fn save_update(&self, update: &UpdateRecord) -> Result<()> {
        let mut t = self.tables()?;
        let slot = t
            .updates
            .iter_mut()
            .find(|u| u.id == update.id)
            .ok_or_else(|| Error::not_found(format!("update {}", update.id)))?;
        *slot = update.clone();
        Ok(())
    }

    fn update(&self, id: UpdateId) -> Result<Option<UpdateRecord>> {
        Ok(self.tables()?.updates.iter().find(|u| u.id == id).cloned())
    }

    fn updates(&self, page: Page) -> Result<Vec<UpdateRecord>> {
        Ok(newest_first(
            &self.tables()?.updates,
            |u| (u.started_at, u.id),
            page,
        ))
    }

    fn record_backup(&self, backup: &BackupRecord) -> Result<i64> {
        let mut t = self.tables()?;
        let id = next_id(&t.backups, |b| b.id);
        t.backups.push(BackupRecord {
            id,
            ..backup.clone()
        });
        Ok(id)
    }

    fn backups(&self, page: Page) -> Result<Vec<BackupRecord>> {
        Ok(newest_first(
            &self.tables()?.backups,
            |b| (b.created_at, b.id),
            page,
        ))
    }

    fn mark_backup_unrestorable(&self, backup_id: &str, note: &str) -> Result<()> {
        let mut t = self.tables()?;
        let record = t
            .backups
            .iter_mut()
            .find(|b| b.backup_id == backup_id)
            .ok_or_else(|| Error::not_found(format!("backup {backup_id}")))?;
        record.is_restorable = false;
        record.notes = Some(match record.notes.take() {
            Some(old) if !old.is_empty() => format!("{old}\n{note}"),
            _ => note.to_string(),
        });
        Ok(())
    }

    fn add_notification(&self, notification: &NotificationRecord) -> Result<Option<i64>> {
        let mut t = self.tables()?;
        let key = notification.dedup_key();
        let duplicate = t.notifications.iter().any(|n| n.dedup_key() == key);
        if duplicate {
            return Ok(None);
        }
        let id = next_id(&t.notifications, |n| n.id);
        t.notifications.push(NotificationRecord {
            id,
            ..notification.clone()
        });
        Ok(Some(id))
    }

    fn notifications(&self, filter: &NotificationFilter) -> Result<Vec<NotificationRecord>> {
        let t = self.tables()?;
        Ok(newest_first(
            &t.notifications,
            |n| (n.created_at, n.id),
            Page::first(u64::MAX),
        )
        .into_iter()
        .filter(|n| !filter.unread_only || !n.is_read)
        .filter(|n| filter.include_dismissed || !n.is_dismissed)
        .filter(|n| match &filter.user_id {
            Some(user) => n.user_id.as_ref().is_none_or(|u| u == user),
            None => true,
        })
        .collect())
    }

    fn mark_notification_read(&self, id: i64) -> Result<()> {
        let mut t = self.tables()?;
        let n = Self::notification_mut(&mut t, id)?;
        if !n.is_read {
            n.is_read = true;
            n.read_at = Some(Utc::now());
        }
        Ok(())
    }

    fn dismiss_notification(&self, id: i64) -> Result<()> {
        let mut t = self.tables()?;
        Self::notification_mut(&mut t, id)?.is_dismissed = true;
        Ok(())
    }

    fn record_audit(&self, entry: &AuditRecord) -> Result<i64> {
        let mut t = self.tables()?;
        let id = next_id(&t.audit, |a| a.id);
        t.audit.push(AuditRecord {
            id,
            ..entry.clone()
        });
        Ok(id)
    }

    fn audit_log(&self, page: Page) -> Result<Vec<AuditRecord>> {
        Ok(newest_first(&self.tables()?.audit, |a| (a.at, a.id), page))
    }
}
