//! Conformance suite for [`Migrator`] implementations.
//!
//! The suite drives the migrator through a [`MigrationTarget`]: the
//! migrator, a context whose `to` has migrations to apply, an observable
//! picture of the schema, and (optionally) a way to take the database away.

use std::sync::Arc;

use crate::error::Error;
use crate::migrate::{MigrationContext, Migrator};

/// The migrator under test and the database it migrates.
pub trait MigrationTarget {
    /// The migrator under test.
    fn migrator(&self) -> Arc<dyn Migrator>;
    /// A migration from `from` to `to`, where `to` has at least one
    /// migration the database does not have yet.
    fn context(&self) -> MigrationContext;
    /// The schema as the test can observe it (tables, applied migrations...):
    /// equal strings mean equal schemas.
    fn schema(&self) -> String;
    /// Makes the database unreachable (`false`) or reachable again; returns
    /// `false` when the target cannot do that (those rules are skipped).
    fn set_reachable(&self, reachable: bool) -> bool;
}

/// Runs every rule against `target`, whose database starts at `ctx.from`'s schema.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(target: &dyn MigrationTarget) {
    let migrator = target.migrator();
    let describe = migrator.describe();
    assert!(
        !describe.trim().is_empty(),
        "describe() must name the migrator"
    );
    let ctx = target.context();
    let before = target.schema();

    migrator
        .check(&ctx.app_dir)
        .unwrap_or_else(|e| panic!("{describe}: check() failed with the database up: {e}"));

    if target.set_reachable(false) {
        assert!(
            migrator.check(&ctx.app_dir).is_err(),
            "{describe}: check() must fail when the database is unreachable (the update stops before maintenance mode)"
        );
        assert!(
            migrator.migrate(&ctx).is_err(),
            "{describe}: migrate() succeeded without a database"
        );
        assert_eq!(
            target.schema(),
            before,
            "{describe}: a failed migrate() changed the schema"
        );
        assert!(target.set_reachable(true));
    }

    let pending_before = migrator
        .pending(&ctx)
        .unwrap_or_else(|e| panic!("{describe}: pending() failed: {e}"));
    if let Some(list) = &pending_before {
        assert!(
            !list.is_empty(),
            "{describe}: pending() lists nothing, but the target has migrations to apply"
        );
    }

    migrator
        .migrate(&ctx)
        .unwrap_or_else(|e| panic!("{describe}: migrate() failed: {e}"));
    let migrated = target.schema();
    assert_ne!(migrated, before, "{describe}: migrate() changed nothing");
    migrator
        .migrate(&ctx)
        .unwrap_or_else(|e| panic!("{describe}: a second migrate() failed (not idempotent): {e}"));
    assert_eq!(
        target.schema(),
        migrated,
        "{describe}: a second migrate() changed the schema again (not idempotent)"
    );
    if pending_before.is_some() {
        let after = migrator
            .pending(&ctx)
            .unwrap_or_else(|e| panic!("{describe}: pending() after migrate() failed: {e}"));
        assert_eq!(
            after,
            Some(Vec::new()),
            "{describe}: pending() after migrate() must list nothing"
        );
    }

    if migrator.can_revert() {
        migrator
            .revert(&ctx)
            .unwrap_or_else(|e| panic!("{describe}: revert() failed: {e}"));
        assert_eq!(
            target.schema(),
            before,
            "{describe}: revert() must bring the schema back to ctx.from's"
        );
        // Recovery may run a revert again after a crash in the middle of it.
        migrator.revert(&ctx).unwrap_or_else(|e| {
            panic!("{describe}: a second revert() failed (not idempotent): {e}")
        });
        assert_eq!(
            target.schema(),
            before,
            "{describe}: a second revert() changed the schema"
        );
        migrator
            .migrate(&ctx)
            .unwrap_or_else(|e| panic!("{describe}: migrate() after revert() failed: {e}"));
        assert_eq!(
            target.schema(),
            migrated,
            "{describe}: migrate() after revert() must give the same schema as the first time"
        );
    } else {
        let Err(error) = migrator.revert(&ctx) else {
            panic!("{describe}: revert() without down migrations must fail");
        };
        assert!(
            matches!(error, Error::Precondition { .. }),
            "{describe}: revert() without down migrations must fail as a precondition, not {error:?}"
        );
        assert_eq!(
            target.schema(),
            migrated,
            "{describe}: a refused revert() changed the schema"
        );
    }
}
