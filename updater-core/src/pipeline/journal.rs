//! The journal: a small JSON file (`<state>/journal.json`) that records each
//! phase of a transition *before* it happens, written with temp + fsync +
//! rename + fsync of the directory.
//!
//! Only [`Transition`](super::transition::Transition) changes it. After a
//! crash, recovery reads it: before the commit point it undoes the
//! transition (the database way back chosen when the transition began, the
//! swap — whose position is derived from the file system — the rollback
//! hooks, maintenance off); past the commit point it finishes the commit.

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
pub(crate) const FORMAT: u32 = 2;

/// What a transition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// Installing a new release.
    Update,
    /// Going back to a kept previous release on an operator's request.
    Rollback,
    /// Putting a backup back on an operator's request.
    Restore,
}

impl TransitionKind {
    /// `update`, `rollback` or `restore`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Update => "update",
            TransitionKind::Rollback => "rollback",
            TransitionKind::Restore => "restore",
        }
    }
}

/// Where a transition is. The commit point is [`Phase::Committing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before maintenance mode: nothing in the application has changed.
    Preparing,
    /// Inside the maintenance window, before the commit point.
    InWindow,
    /// Past the commit point: finishing forward.
    Committing,
    /// Undoing the transition.
    RollingBack,
    /// Recovery gave up; an operator must look.
    NeedsOperator,
}

impl Phase {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::InWindow => "in_window",
            Phase::Committing => "committing",
            Phase::RollingBack => "rolling_back",
            Phase::NeedsOperator => "needs_operator",
        }
    }
}

/// The failure that started an undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// The step that failed.
    pub(crate) step: Step,
    /// Its error message.
    pub(crate) message: String,
}

/// What the database step of a transition does, going forward. Chosen when
/// the transition begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DatabaseChange {
    /// Nothing (no migrator, or a files-only restore).
    None,
    /// Run the migrations of the new release (after the swap).
    Migrate,
    /// Run the down migrations, with the newer code still in place (before the swap).
    RevertMigrations,
    /// Restore this snapshot (after the swap): a manual rollback with consent.
    RestoreSnapshot(Backup),
    /// Restore the database part of this backup (after the swap).
    RestoreBackup(Backup),
}

impl DatabaseChange {
    /// Whether it runs before the swap (it needs the outgoing code in place).
    pub(crate) fn before_swap(&self) -> bool {
        matches!(self, DatabaseChange::RevertMigrations)
    }
}

/// How the database goes back if the transition is undone. Chosen once,
/// when the snapshot step has run, and journaled with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DatabaseWayBack {
    /// Nothing to undo in the database.
    None,
    /// Restore the snapshot taken in the window, once the swap is undone
    /// (the database file is back where the snapshot was taken).
    RestoreSnapshot,
    /// Run the down migrations before undoing the swap (they ship with the new code).
    RevertMigrations,
    /// Migrate up again once the swap is undone (undoing a rollback that reverted).
    MigrateUp,
}

/// The durable record of one transition in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub(crate) format: u32,
    /// A file-name-safe id of the transition.
    pub(crate) id: String,
    pub(crate) kind: TransitionKind,
    /// The history record.
    pub(crate) update_id: Option<i64>,
    /// The release running before.
    pub(crate) from: Version,
    /// The release being installed.
    pub(crate) to: Version,
    pub(crate) phase: Phase,
    /// The complete incoming tree (absent for a database-only restore).
    pub(crate) incoming: PathBuf,
    /// Where the outgoing tree goes.
    pub(crate) outgoing: PathBuf,
    /// The file list of the incoming tree: the installed list once committed.
    #[serde(default)]
    pub(crate) incoming_files: Option<PathBuf>,
    /// Whether the transition swaps files at all.
    #[serde(default = "yes")]
    pub(crate) swaps_files: bool,
    /// The swap, once planned (written before the first rename).
    pub(crate) plan: Option<SwapPlan>,
    /// Maintenance mode was (possibly) turned on.
    pub(crate) maintenance_on: bool,
    /// The database snapshot taken inside the window, if any.
    pub(crate) snapshot: Option<Backup>,
    /// What the database step does.
    pub(crate) database_change: DatabaseChange,
    /// How the database goes back.
    pub(crate) way_back: DatabaseWayBack,
    /// The database step began.
    pub(crate) database_started: bool,
    /// The database way back completed (never run twice: down migrations are not idempotent).
    pub(crate) database_undone: bool,
    /// Live paths replaced by the release that are saved aside at commit
    /// (`take-release` conflicts), relative to the application.
    #[serde(default)]
    pub(crate) save_aside: Vec<String>,
    /// When the maintenance window began.
    pub(crate) window_started_at: Option<DateTime<Utc>>,
    /// What failed, once undoing.
    pub(crate) failure: Option<Failure>,
    /// Recovery attempts so far.
    pub(crate) recovery_attempts: u32,
    /// The last recovery error.
    pub(crate) last_recovery_error: Option<String>,
    /// When the transition began.
    pub(crate) started_at: DateTime<Utc>,
}

fn yes() -> bool {
    true
}

impl Journal {
    /// After this many failed recovery attempts, recovery stops for an operator.
    pub(crate) const MAX_RECOVERY_ATTEMPTS: u32 = 3;

    /// A new transition in [`Phase::Preparing`] (not yet saved).
    pub(crate) fn begin(
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
            incoming_files: None,
            swaps_files: true,
            plan: None,
            maintenance_on: false,
            snapshot: None,
            database_change: DatabaseChange::None,
            way_back: DatabaseWayBack::None,
            database_started: false,
            database_undone: false,
            save_aside: Vec::new(),
            window_started_at: None,
            failure: None,
            recovery_attempts: 0,
            last_recovery_error: None,
            started_at: Utc::now(),
        }
    }

    /// Reads the journal at `path`; `None` when there is none.
    pub(crate) fn load(path: &Path) -> Result<Option<Journal>> {
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
                            "the journal {} has format {} but this updater reads {FORMAT}; finish the transition with the updater version that started it",
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
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| Error::other("serialise journal", e))?;
        durable::write_atomic(path, &bytes)
    }

    /// Removes the journal durably: the transition is over.
    pub(crate) fn remove(path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => durable::sync_dir(durable::parent_of(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove journal", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_round_trips_and_another_format_needs_an_operator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        let journal = Journal::begin(
            "t1".into(),
            TransitionKind::Update,
            7,
            (Version::new(1, 0, 0), Version::new(1, 1, 0)),
            dir.path().join("in"),
            dir.path().join("out"),
        );
        journal.save(&path).unwrap();
        assert_eq!(Journal::load(&path).unwrap(), Some(journal.clone()));
        let mut other = serde_json::to_value(&journal).unwrap();
        other["format"] = 1.into();
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(matches!(
            Journal::load(&path),
            Err(Error::NeedsOperator { reason }) if reason.contains("format 1")
        ));
        Journal::remove(&path).unwrap();
        assert_eq!(Journal::load(&path).unwrap(), None);
    }
}
