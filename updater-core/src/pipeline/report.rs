//! What callers ask the [`Updater`](super::Updater) for, and what it answers
//! when it changed (or would change) the application: apply, rollback,
//! restore and recovery. Check and status answers are in `status.rs`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::backup::Backup;
use crate::lock::LockRecord;
use crate::maintenance::MaintenanceNotice;
use crate::version::{UpdateType, Version};

pub use super::journal::{Phase, TransitionKind};

/// The user the operating system says runs this process — the name of its
/// uid in `/etc/passwd`, else `$USER`, else `uid <n>` — the default for
/// `initiated_by` in history and in the update lock.
pub fn os_user() -> String {
    let uid = rustix::process::getuid().as_raw();
    let from_passwd = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?.parse::<u32>().ok()?;
                (id == uid && !name.is_empty()).then(|| name.to_string())
            })
        });
    from_passwd
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// What [`Updater::apply`](super::Updater::apply) should install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRequest {
    /// A specific version; the newest of the channel when `None`.
    pub version: Option<Version>,
    /// Take the files backup (when one is configured).
    pub backup: bool,
    /// Who asked (`alice`, `schedule`, `web:alice`), stored in history.
    pub initiated_by: String,
    /// Whether this is an automatic update.
    pub auto_update: bool,
}

impl ApplyRequest {
    /// The newest release of the channel, with backup, by `initiated_by`.
    pub fn latest(initiated_by: impl Into<String>) -> Self {
        ApplyRequest {
            version: None,
            backup: true,
            initiated_by: initiated_by.into(),
            auto_update: false,
        }
    }

    /// A specific version (builder style): what an operator confirmed.
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = Some(version);
        self
    }
}

/// What [`Updater::rollback`](super::Updater::rollback) should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest {
    /// Who asked.
    pub initiated_by: String,
    /// Restore the database snapshot taken before the update being undone
    /// when migrations cannot be reverted. Loses every write made since that
    /// update: only with explicit consent.
    pub restore_database_snapshot: bool,
}

/// What [`Updater::restore_backup`](super::Updater::restore_backup) should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    /// Who asked.
    pub initiated_by: String,
    /// Also put back the backup's copies of preserved paths (`.env`...);
    /// by default the live ones are kept.
    pub include_preserved: bool,
}

impl RestoreRequest {
    /// A restore by `initiated_by` that keeps the live preserved paths.
    pub fn by(initiated_by: impl Into<String>) -> Self {
        RestoreRequest {
            initiated_by: initiated_by.into(),
            include_preserved: false,
        }
    }
}

/// Serialises a duration as whole milliseconds.
fn millis<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Serialises a backup as its id.
fn backup_id<S: Serializer>(backup: &Option<Backup>, s: S) -> Result<S::Ok, S::Error> {
    match backup {
        Some(backup) => s.serialize_some(&backup.id),
        None => s.serialize_none(),
    }
}

/// The result of [`Updater::apply`](super::Updater::apply).
///
/// Serialised (the CLI's `--json`, the web API) as the [`UpdateReport`]
/// with `"outcome": "updated"`, or `{"outcome": "up_to_date", "current"}`.
// Returned once per update: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// Nothing to install on the channel.
    UpToDate {
        /// The running version.
        current: Version,
    },
    /// The new release is installed and healthy.
    Updated(UpdateReport),
}

/// A completed update, rollback or restore.
///
/// Serialised as `from`, `to`, `update_id`, `update_type`,
/// `maintenance_window_ms`, `backup_id`, `carried`, `saved_aside`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateReport {
    /// Its history record.
    pub update_id: i64,
    /// The version before.
    pub from: Version,
    /// The version now running.
    pub to: Version,
    /// Major, minor, patch...
    pub update_type: Option<UpdateType>,
    /// How long the application was in maintenance mode (`maintenance_window_ms`).
    #[serde(rename = "maintenance_window_ms", serialize_with = "millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub maintenance_window: Duration,
    /// The files backup taken before the update (`backup_id`: its id).
    #[serde(rename = "backup_id", serialize_with = "backup_id")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub backup: Option<Backup>,
    /// Paths of application data carried into the new tree.
    pub carried: Vec<String>,
    /// Local versions replaced by the release, saved under `.updater/local-changes/`.
    pub saved_aside: Vec<String>,
}

/// What recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryAction {
    /// Nothing was interrupted.
    Nothing,
    /// Another process holds the lock: an update is running now.
    UpdateInProgress(LockRecord),
    /// A transition interrupted before maintenance mode was cleaned up; nothing had changed.
    CleanedUp {
        /// The version that was being prepared.
        version: Version,
    },
    /// An interrupted transition was undone.
    RolledBack {
        /// The version running again.
        running: Version,
        /// The version that was abandoned.
        abandoned: Version,
    },
    /// An interrupted transition had passed its commit point and was finished.
    Committed {
        /// The version now running.
        running: Version,
    },
}

/// The result of [`Updater::recover`](super::Updater::recover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// What was done.
    pub action: RecoveryAction,
    /// A maintenance flag left behind by a crashed run, now cleared.
    pub leftover_maintenance: Option<MaintenanceNotice>,
    /// A lock record left behind by a dead process.
    pub stale_lock: Option<LockRecord>,
    /// Processes a dead updater had started (migrations, hooks) that were
    /// still running and were stopped before anything was undone.
    pub stopped_children: Vec<String>,
}

impl RecoveryReport {
    /// What the CLI's `recover --json` shows.
    pub fn view(&self) -> RecoveryView {
        let mut view = RecoveryView {
            action: "nothing",
            running: None,
            abandoned: None,
            version: None,
            lock_holder: None,
            leftover_maintenance: self.leftover_maintenance.as_ref().map(|n| {
                LeftoverMaintenanceView {
                    reason: n.reason.clone(),
                    started_at: n.started_at,
                }
            }),
            stale_lock: self.stale_lock.clone(),
            stopped_children: self.stopped_children.clone(),
        };
        match &self.action {
            RecoveryAction::Nothing => {}
            RecoveryAction::UpdateInProgress(holder) => {
                view.action = "update_in_progress";
                view.lock_holder = Some(holder.clone());
            }
            RecoveryAction::CleanedUp { version } => {
                view.action = "cleaned_up";
                view.version = Some(version.clone());
            }
            RecoveryAction::RolledBack { running, abandoned } => {
                view.action = "rolled_back";
                view.running = Some(running.clone());
                view.abandoned = Some(abandoned.clone());
            }
            RecoveryAction::Committed { running } => {
                view.action = "committed";
                view.running = Some(running.clone());
            }
        }
        view
    }

    pub(crate) fn of(action: RecoveryAction) -> Self {
        RecoveryReport {
            action,
            leftover_maintenance: None,
            stale_lock: None,
            stopped_children: Vec::new(),
        }
    }
}

/// A [`RecoveryReport`] as the CLI's `recover --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryView {
    /// `nothing`, `update_in_progress`, `cleaned_up`, `rolled_back` or `committed`.
    pub action: &'static str,
    /// The version running after recovery (rolled back, committed).
    pub running: Option<Version>,
    /// The version abandoned (rolled back).
    pub abandoned: Option<Version>,
    /// The version whose preparation was cleaned up.
    pub version: Option<Version>,
    /// Who runs an update now (update in progress).
    pub lock_holder: Option<LockRecord>,
    /// A maintenance flag left by a crashed run, now cleared.
    pub leftover_maintenance: Option<LeftoverMaintenanceView>,
    /// A lock record left by a dead process.
    pub stale_lock: Option<LockRecord>,
    /// Children of a dead updater that were stopped.
    pub stopped_children: Vec<String>,
}

/// A leftover maintenance flag, in [`RecoveryView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeftoverMaintenanceView {
    /// Why it was set.
    pub reason: String,
    /// Since when.
    pub started_at: DateTime<Utc>,
}

/// What [`Updater::rollback`](super::Updater::rollback) would do now, for
/// an operator to confirm ([`Updater::rollback_plan`](super::Updater::rollback_plan)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RollbackPlan {
    /// The running version.
    pub from: Version,
    /// The kept release it goes back to.
    pub to: Version,
    /// What happens to the database: `none` (no migrator), `revert_migrations`
    /// (down migrations), or `restore_snapshot` (the snapshot taken before
    /// the update is restored: every write since is lost, so it needs consent).
    pub database: &'static str,
    /// The snapshot that would be restored, when there is one.
    pub snapshot_id: Option<String>,
    /// Whether the rollback can run as planned (`false`: why in `blocker`).
    pub possible: bool,
    /// What prevents it.
    pub blocker: Option<String>,
}
