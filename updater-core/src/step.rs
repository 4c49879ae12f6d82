//! The steps of the pipeline ([`Step`]): the vocabulary shared by history,
//! progress events, the journal and errors. A bottom module: it depends on
//! nothing else in the crate.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A step of the update pipeline, in the order they run.
///
/// Steps before [`Step::MaintenanceOn`] do not need the application stopped;
/// the maintenance window holds [`Step::Drain`] through [`Step::Commit`].
/// (A manual rollback runs [`Step::Migrate`] before [`Step::Swap`], while
/// the newer code with its down migrations is in place.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Ask the source for releases.
    Check,
    /// Pick the release and asset; apply version rules.
    Plan,
    /// Disk space, permissions, tools, database reachable.
    Preflight,
    /// Stream the package to disk, verifying size, SHA-256 and signature.
    Download,
    /// Extract into the staging directory, validating every entry.
    Stage,
    /// Compare the live tree with the installed release's file list: find
    /// the application data to carry and refuse conflicts.
    Scan,
    /// Back up files (outside the maintenance window, once the package is staged).
    Backup,
    /// Turn maintenance mode on.
    MaintenanceOn,
    /// Let requests that passed the maintenance check before it went on finish.
    Drain,
    /// Snapshot the database while writes are stopped.
    DatabaseSnapshot,
    /// Move the new tree into place (renames).
    Swap,
    /// Run database migrations (or revert them, for a rollback).
    Migrate,
    /// Restore the database part of a backup.
    RestoreDatabase,
    /// Run post-update hooks.
    Hooks,
    /// Check the new release is healthy.
    HealthCheck,
    /// The point of no return: the journal records the commit before
    /// maintenance goes off (writes to the new release must never be rolled back).
    Commit,
    /// Turn maintenance mode off; then the installed state and history are updated.
    MaintenanceOff,
    /// Undo a failed update.
    Rollback,
    /// Finish an interrupted update after a crash.
    Recover,
}

impl Step {
    /// Every step of an update, in order.
    pub const UPDATE: [Step; 16] = [
        Step::Check,
        Step::Plan,
        Step::Preflight,
        Step::Download,
        Step::Stage,
        Step::Scan,
        Step::Backup,
        Step::MaintenanceOn,
        Step::Drain,
        Step::DatabaseSnapshot,
        Step::Swap,
        Step::Migrate,
        Step::Hooks,
        Step::HealthCheck,
        Step::Commit,
        Step::MaintenanceOff,
    ];

    /// The snake_case name used in history and failpoints.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Check => "check",
            Step::Plan => "plan",
            Step::Preflight => "preflight",
            Step::Backup => "backup",
            Step::Download => "download",
            Step::Stage => "stage",
            Step::Scan => "scan",
            Step::Drain => "drain",
            Step::RestoreDatabase => "restore_database",
            Step::MaintenanceOn => "maintenance_on",
            Step::DatabaseSnapshot => "database_snapshot",
            Step::Swap => "swap",
            Step::Migrate => "migrate",
            Step::Hooks => "hooks",
            Step::HealthCheck => "health_check",
            Step::MaintenanceOff => "maintenance_off",
            Step::Commit => "commit",
            Step::Rollback => "rollback",
            Step::Recover => "recover",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
