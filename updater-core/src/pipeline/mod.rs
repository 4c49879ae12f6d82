//! The update pipeline: [`Updater`] orchestrates check, apply, rollback and recovery.

mod step;

pub use step::Step;
