//! What callers ask the [`Updater`](super::Updater) for, and what it answers.

use std::time::Duration;

use serde::Serialize;

use crate::backup::Backup;
use crate::history::VersionCheckRecord;
use crate::lock::LockRecord;
use crate::maintenance::MaintenanceNotice;
use crate::release::Release;
use crate::step::Step;
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

/// The result of [`Updater::apply`](super::Updater::apply).
// Returned once per update: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReport {
    /// Its history record.
    pub update_id: i64,
    /// The version before.
    pub from: Version,
    /// The version now running.
    pub to: Version,
    /// Major, minor, patch...
    pub update_type: Option<UpdateType>,
    /// How long the application was in maintenance mode.
    pub maintenance_window: Duration,
    /// The files backup taken before the update.
    pub backup: Option<Backup>,
    /// Paths of application data carried into the new tree.
    pub carried: Vec<String>,
    /// Local versions replaced by the release, saved under `.updater/local-changes/`.
    pub saved_aside: Vec<String>,
}

/// The result of [`Updater::check`](super::Updater::check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The running version.
    pub current: Version,
    /// The newest release of the channel.
    pub latest: Option<Release>,
    /// Whether `latest` may be installed ([`Updater::apply`](super::Updater::apply) installs it).
    pub update_available: bool,
    /// Its kind, when available.
    pub update_type: Option<UpdateType>,
    /// Answered from the history cache, not the source (force a check to ask it).
    pub from_cache: bool,
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
    pub(crate) fn of(action: RecoveryAction) -> Self {
        RecoveryReport {
            action,
            leftover_maintenance: None,
            stale_lock: None,
            stopped_children: Vec::new(),
        }
    }
}

/// A transition in progress or interrupted, as [`StatusReport`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionStatus {
    /// Update, rollback or restore.
    pub kind: TransitionKind,
    /// Where it is.
    pub phase: Phase,
    /// The version before.
    pub from: Version,
    /// The version being installed.
    pub to: Version,
    /// Its history record.
    pub update_id: Option<i64>,
    /// The step that failed and why, once undoing.
    pub failure: Option<(Step, String)>,
    /// Failed recovery attempts so far.
    pub recovery_attempts: u32,
    /// The last recovery error.
    pub last_recovery_error: Option<String>,
}

/// The result of [`Updater::status`](super::Updater::status).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The running version.
    pub current: Version,
    /// The highest version ever installed.
    pub highest: Version,
    /// Previous releases kept for rollback, newest first.
    pub kept: Vec<Version>,
    /// Whether the installed release's file list is known (recorded at
    /// install time); without it the first update is conservative.
    pub files_known: bool,
    /// An interrupted or running transition.
    pub transition: Option<TransitionStatus>,
    /// Who holds the update lock now.
    pub lock_holder: Option<LockRecord>,
    /// Maintenance mode, if on.
    pub maintenance: Option<MaintenanceNotice>,
    /// The latest version check.
    pub latest_check: Option<VersionCheckRecord>,
    /// Automatic updates paused by an operator.
    pub paused: Option<crate::automation::PauseState>,
    /// The update on probation, if any.
    pub probation: Option<crate::automation::Probation>,
    /// One-off updates scheduled and not yet carried out.
    pub scheduled: Vec<crate::automation::ScheduledUpdate>,
    /// Which updates apply automatically.
    pub auto_update: crate::automation::AutoUpdateLevel,
}
