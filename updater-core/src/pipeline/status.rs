//! What [`Updater::check`](super::Updater::check) and
//! [`Updater::status`](super::Updater::status) answer, and the flat views of
//! them that the CLI's `--json` and the web API show.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::history::{CheckStatus, VersionCheckRecord};
use crate::lock::LockRecord;
use crate::maintenance::MaintenanceNotice;
use crate::release::Release;
use crate::step::Step;
use crate::version::{UpdateType, Version};

use super::journal::{Phase, TransitionKind};

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

impl CheckReport {
    /// What the CLI's `check --json` and the web API show.
    pub fn view(&self) -> CheckView {
        CheckView {
            current: self.current.clone(),
            latest: self.latest.as_ref().map(|r| r.version.clone()),
            update_available: self.update_available,
            update_type: self.update_type,
            from_cache: self.from_cache,
            changelog: self.latest.as_ref().map(|r| r.changelog.clone()),
            published_at: self.latest.as_ref().and_then(|r| r.published_at),
            download_size: self
                .latest
                .as_ref()
                .and_then(|r| r.assets.first())
                .map(|a| a.size),
        }
    }
}

/// A [`CheckReport`] as the CLI's `check --json` and the web API show it:
/// flat, the newest release reduced to its version, changelog, date and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckView {
    /// The running version.
    pub current: Version,
    /// The newest version of the channel.
    pub latest: Option<Version>,
    /// Whether `latest` may be installed.
    pub update_available: bool,
    /// Its kind, when available.
    pub update_type: Option<UpdateType>,
    /// Answered from the history cache.
    pub from_cache: bool,
    /// The newest release's notes (Markdown or plain text).
    pub changelog: Option<String>,
    /// When it was published, when the source says.
    pub published_at: Option<DateTime<Utc>>,
    /// The size of its package in bytes.
    pub download_size: Option<u64>,
}

/// Serialises a transition's failure as `{"step", "message"}`.
fn failure<S: Serializer>(failure: &Option<(Step, String)>, s: S) -> Result<S::Ok, S::Error> {
    match failure {
        Some((step, message)) => s.serialize_some(&FailureView {
            step: *step,
            message: message.clone(),
        }),
        None => s.serialize_none(),
    }
}

/// The step that failed and why, in [`TransitionStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureView {
    /// The step.
    pub step: Step,
    /// The error.
    pub message: String,
}

/// A transition in progress or interrupted, as [`StatusReport`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The step that failed and why, once undoing (`{"step", "message"}`).
    #[serde(serialize_with = "failure")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<FailureView>))]
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

impl StatusReport {
    /// What the CLI's `status --json` and the web API show. The last check
    /// says an update is available only when it was made for the running
    /// version and found a newer one (a check recorded before the last
    /// update says nothing about now).
    pub fn view(&self) -> StatusView {
        StatusView {
            current: self.current.clone(),
            highest: self.highest.clone(),
            kept: self.kept.clone(),
            files_known: self.files_known,
            transition: self.transition.clone(),
            lock_holder: self.lock_holder.clone(),
            maintenance: self.maintenance.as_ref().map(|n| MaintenanceView {
                reason: n.reason.clone(),
                started_at: n.started_at,
                retry_after_secs: n.retry_after_secs,
                expires_at: n.expires_at,
                set_by_updater: n.set_by_updater,
            }),
            latest_check: self.latest_check.as_ref().map(|k| LatestCheckView {
                checked_at: k.checked_at,
                latest_version: k.latest_version.clone(),
                update_available: self.available_update().is_some(),
                status: k.check_status,
                error: k.error_message.clone(),
            }),
            paused: self.paused.clone(),
            probation: self.probation.clone(),
            scheduled: self.scheduled.clone(),
            auto_update: self.auto_update,
        }
    }

    /// The version the latest check found installable, when that check was
    /// made for the running version and found a newer one.
    pub fn available_update(&self) -> Option<&Version> {
        self.latest_check.as_ref().and_then(|k| {
            k.latest_version.as_ref().filter(|v| {
                k.update_available && **v > self.current && k.current_version == self.current
            })
        })
    }
}

/// A [`StatusReport`] as the CLI's `status --json` and the web API show it
/// (the maintenance notice without its bypass secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusView {
    /// The running version.
    pub current: Version,
    /// The highest version ever installed.
    pub highest: Version,
    /// Previous releases kept for rollback, newest first.
    pub kept: Vec<Version>,
    /// Whether the installed release's file list is known.
    pub files_known: bool,
    /// An interrupted or running transition.
    pub transition: Option<TransitionStatus>,
    /// Who holds the update lock now.
    pub lock_holder: Option<LockRecord>,
    /// Maintenance mode, if on.
    pub maintenance: Option<MaintenanceView>,
    /// The latest version check.
    pub latest_check: Option<LatestCheckView>,
    /// Automatic and scheduled updates are paused.
    pub paused: Option<crate::automation::PauseState>,
    /// The update on probation.
    pub probation: Option<crate::automation::Probation>,
    /// Pending one-off scheduled updates.
    pub scheduled: Vec<crate::automation::ScheduledUpdate>,
    /// The automatic-update level of the running version's channel.
    pub auto_update: crate::automation::AutoUpdateLevel,
}

/// Maintenance mode as [`StatusView`] shows it: never the bypass secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaintenanceView {
    /// Why.
    pub reason: String,
    /// Since when.
    pub started_at: DateTime<Utc>,
    /// The `Retry-After` clients are told.
    pub retry_after_secs: u64,
    /// When the flag expires.
    pub expires_at: DateTime<Utc>,
    /// Whether the updater set it.
    pub set_by_updater: bool,
}

/// The latest version check as [`StatusView`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatestCheckView {
    /// When.
    pub checked_at: DateTime<Utc>,
    /// The newest version found.
    pub latest_version: Option<Version>,
    /// Whether it may be installed over the running version now.
    pub update_available: bool,
    /// `success` or `failed`.
    pub status: CheckStatus,
    /// Why it failed.
    pub error: Option<String>,
}
