//! The update pipeline: [`Updater`] checks for releases, applies them,
//! rolls them back, restores backups and recovers from crashes.
//!
//! ```text
//! check ──> plan ──> preflight ──> download+verify ──> stage ──> scan app data ──> backup
//!       ──> maintenance on ──> drain ──> [db snapshot] ──> swap ──> migrate ──> hooks
//!       ──> health check ──> commit ──> maintenance off
//! any failure after maintenance went on: undo = down migrations (with the new
//!       code in place), the swap reversed, the snapshot restored into the old
//!       tree, rollback hooks, maintenance off
//! ```
//!
//! Everything that does not need the application stopped happens before
//! maintenance mode; the window holds only the drain, the snapshot, the
//! swap (a few renames), the database step, hooks and the health check. Its
//! duration is measured and stored on the update record.
//!
//! Each operation that changes the application is a *transition*
//! (update, rollback, restore) with a journal written before each phase, so
//! [`Updater::recover`] finishes or undoes one interrupted at any instant.
//! The journal and the history record are changed in one place only
//! (`transition/`); how a transition ends lives in `undo.rs`, shared by
//! every operation and by recovery. A file lock allows one transition at a time.
//!
//! The API is blocking: every step is file, process or database I/O. Async
//! applications call it from `tokio::task::spawn_blocking`.

mod automation;
mod check;
mod config;
mod data_scan;
mod download;
mod journal;
mod operator;
mod prepare;
mod preview;
mod progress;
mod recovery;
mod report;
mod status;
mod transition;
mod undo;
mod updater;
mod window;

pub use automation::{AutomationReport, ProbationOutcome};
pub use config::{DEFAULT_PRESERVED, Drain, STATE_DIR_NAME, UpdaterBuilder, UpdaterConfig};
pub use preview::{ModeChange, PreviewReport};
pub use report::{
    ApplyOutcome, ApplyRequest, LeftoverMaintenanceView, Phase, RecoveryAction, RecoveryReport,
    RecoveryView, RestoreRequest, RollbackPlan, RollbackRequest, TransitionKind, UpdateReport,
    os_user,
};
pub use status::{
    CheckReport, CheckView, FailureView, LatestCheckView, MaintenanceView, StatusReport,
    StatusView, TransitionStatus,
};
pub use updater::Updater;
