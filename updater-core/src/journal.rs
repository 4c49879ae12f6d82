//! The journal: a small JSON file (`<state>/journal.json`) that records
//! each phase of a transition *before* it happens, written with
//! temp + fsync + rename + fsync of the directory.
//!
//! `recover()` reads it after a crash: before the commit point it rolls the
//! transition back (restore the database snapshot or revert migrations, undo
//! the swap — whose position is derived from the file system — run the
//! rollback hooks, turn maintenance off); past the commit point it finishes
//! the commit. Every recovery attempt is counted in the journal first; after
//! [`Journal::MAX_RECOVERY_ATTEMPTS`] failures it stops in
//! [`Phase::NeedsOperator`], keeping both trees and the snapshot.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::Backup;
use crate::durable;
use crate::error::{Error, Result};
use crate::install::SwapPlan;
use crate::step::Step;
use crate::version::Version;

/// The journal file format version.
pub const FORMAT: u32 = 1;

/// What a transition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// Installing a new release.
    Update,
    /// Going back to a kept previous release on an operator's request.
    Rollback,
}

/// Where a transition is. The commit point is [`Phase::Committing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before maintenance mode: plan, preflight, backup, download, stage.
    /// Nothing in the application has changed.
    Preparing,
    /// Inside the maintenance window, before or during the swap, migrations, hooks, health check.
    InWindow,
    /// Past the commit point: finishing forward.
    Committing,
    /// Undoing the transition.
    RollingBack,
    /// Recovery gave up; an operator must look.
    NeedsOperator,
}

/// The failure that started a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The step that failed.
    pub step: Step,
    /// Its error message.
    pub message: String,
}

/// The durable record of one transition in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// [`FORMAT`].
    pub format: u32,
    /// A file-name-safe id of the transition.
    pub id: String,
    /// Update or rollback.
    pub kind: TransitionKind,
    /// The history record.
    pub update_id: Option<i64>,
    /// The release running before.
    pub from: Version,
    /// The release being installed.
    pub to: Version,
    /// Where it is.
    pub phase: Phase,
    /// The complete incoming tree.
    pub incoming: PathBuf,
    /// Where the outgoing tree goes.
    pub outgoing: PathBuf,
    /// The swap, once planned (written before the first rename).
    pub plan: Option<SwapPlan>,
    /// Maintenance mode was (possibly) turned on.
    pub maintenance_on: bool,
    /// The database snapshot taken inside the window, if any.
    pub database_snapshot: Option<Backup>,
    /// The database step (migrate, or revert for a rollback) began.
    pub database_changed: bool,
    /// When the maintenance window began.
    pub window_started_at: Option<DateTime<Utc>>,
    /// What failed, once rolling back.
    pub failure: Option<Failure>,
    /// Recovery attempts so far.
    pub recovery_attempts: u32,
    /// The last recovery error.
    pub last_recovery_error: Option<String>,
    /// When the transition began.
    pub started_at: DateTime<Utc>,
}

impl Journal {
    /// After this many failed recovery attempts, recovery stops for an operator.
    pub const MAX_RECOVERY_ATTEMPTS: u32 = 3;

    /// A new transition in [`Phase::Preparing`] (not yet saved).
    pub fn begin(
        id: String,
        kind: TransitionKind,
        update_id: i64,
        (from, to): (Version, Version),
        incoming: PathBuf,
        outgoing: PathBuf,
    ) -> Journal {
        Journal {
            format: FORMAT,
            id,
            kind,
            update_id: Some(update_id),
            from,
            to,
            phase: Phase::Preparing,
            incoming,
            outgoing,
            plan: None,
            maintenance_on: false,
            database_snapshot: None,
            database_changed: false,
            window_started_at: None,
            failure: None,
            recovery_attempts: 0,
            last_recovery_error: None,
            started_at: Utc::now(),
        }
    }

    /// Reads the journal at `path`; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Journal>> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::NeedsOperator {
                        reason: format!(
                            "the journal {} is unreadable ({e}); nothing was changed by recovery. Inspect it, the application directory and {}/releases, then remove the journal",
                            path.display(),
                            durable::parent_of(path).display()
                        ),
                    }
                })?;
                if journal.format != FORMAT {
                    return Err(Error::NeedsOperator {
                        reason: format!(
                            "the journal {} has format {} but this updater reads {FORMAT}; finish the update with the updater version that started it",
                            path.display(),
                            journal.format
                        ),
                    });
                }
                Ok(Some(journal))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read journal", path, e)),
        }
    }

    /// Writes the journal durably (temp + fsync + rename + fsync directory).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| Error::other("serialise journal", e))?;
        durable::write_atomic(path, &bytes)
    }

    /// Removes the journal durably: the transition is over.
    pub fn remove(path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => durable::sync_dir(durable::parent_of(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove journal", path, e)),
        }
    }

    /// Whether the commit point was passed.
    pub fn is_committing(&self) -> bool {
        self.phase == Phase::Committing
    }
}
