//! The update pipeline: [`Updater`] checks for releases, applies them,
//! rolls them back and recovers from crashes.
//!
//! ```text
//! check ──> plan ──> preflight ──> backup ──> download+verify ──> stage
//!       ──> maintenance on ──> [db snapshot] ──> swap ──> migrate ──> hooks
//!       ──> health check ──> maintenance off ──> commit
//! any failure after maintenance went on: rollback = restore the db snapshot
//!       (or revert migrations), undo the swap, rollback hooks, maintenance off
//! ```
//!
//! Everything that does not need the application stopped happens before
//! maintenance mode; the window holds only the snapshot, the swap (a few
//! renames), migrations, hooks and the health check. Its duration is measured
//! and stored on the update record. Each phase is written to the
//! [journal](crate::journal) before it runs, so [`Updater::recover`] can finish
//! or undo an update interrupted at any instant. A file lock allows one
//! update at a time.
//!
//! The API is blocking: every step is file, process or database I/O. Async
//! applications call it from `tokio::task::spawn_blocking`.

mod config;
mod run;

mod updater;

pub use crate::step::Step;
pub use config::{DEFAULT_PRESERVED, STATE_DIR_NAME, UpdaterBuilder, UpdaterConfig};
pub use updater::{
    ApplyOutcome, ApplyRequest, CheckReport, RecoveryAction, RecoveryReport, RollbackRequest,
    StatusReport, UpdateReport, Updater,
};
