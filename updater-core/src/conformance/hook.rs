//! Conformance suite for [`Hook`] implementations.
//!
//! The suite drives the hook through a [`HookTarget`]: the hook, and what
//! the test can observe of its runs.

use std::path::PathBuf;
use std::sync::Arc;

use crate::hook::{Hook, HookContext, HookEvent};
use crate::version::Version;

/// What a hook run left behind, as the target observes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRun {
    /// The event it ran for.
    pub event: HookEvent,
    /// The version before.
    pub from: Version,
    /// The version after.
    pub to: Version,
}

/// The hook under test, registered for every event, and its observable effects.
pub trait HookTarget {
    /// The hook under test (it must run on [`HookEvent::AfterSwap`] and
    /// [`HookEvent::AfterRollback`]).
    fn hook(&self) -> Arc<dyn Hook>;
    /// The application directory given to the hook.
    fn app_dir(&self) -> PathBuf;
    /// The runs observed so far, oldest first.
    fn runs(&self) -> Vec<ObservedRun>;
    /// Makes the hook's work fail (`true`) or succeed; returns `false` when
    /// the target cannot (those rules are skipped).
    fn set_failing(&self, failing: bool) -> bool;
}

fn context(target: &dyn HookTarget, event: HookEvent, from: &str, to: &str) -> HookContext {
    HookContext {
        event,
        app_dir: target.app_dir(),
        from: Version::parse(from).unwrap_or_else(|_| Version::new(0, 0, 1)),
        to: Version::parse(to).unwrap_or_else(|_| Version::new(0, 0, 2)),
        children: None,
    }
}

/// Runs every rule against `target`, which has observed no run yet.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(target: &dyn HookTarget) {
    let hook = target.hook();
    let describe = hook.describe();
    assert!(!describe.trim().is_empty(), "describe() must name the hook");
    assert!(
        target.runs().is_empty(),
        "{describe}: the target must start with no run"
    );

    let swap = context(target, HookEvent::AfterSwap, "1.0.0", "1.1.0");
    hook.run(&swap)
        .unwrap_or_else(|e| panic!("{describe}: run after a swap failed: {e}"));
    let rollback = context(target, HookEvent::AfterRollback, "1.1.0", "1.0.0");
    hook.run(&rollback)
        .unwrap_or_else(|e| panic!("{describe}: run after a rollback failed: {e}"));
    let expected = vec![
        ObservedRun {
            event: HookEvent::AfterSwap,
            from: swap.from.clone(),
            to: swap.to.clone(),
        },
        ObservedRun {
            event: HookEvent::AfterRollback,
            from: rollback.from.clone(),
            to: rollback.to.clone(),
        },
    ];
    assert_eq!(
        target.runs(),
        expected,
        "{describe}: each run must see its own event and versions, once"
    );

    // Recovery may run a hook again: a second run succeeds.
    hook.run(&swap).unwrap_or_else(|e| {
        panic!("{describe}: running again failed (hooks must be idempotent): {e}")
    });

    if target.set_failing(true) {
        let Err(error) = hook.run(&swap) else {
            panic!("{describe}: a hook whose work fails must return an error");
        };
        assert!(
            !error.to_string().trim().is_empty(),
            "{describe}: a failed hook must say why"
        );
        assert!(target.set_failing(false));
        hook.run(&swap)
            .unwrap_or_else(|e| panic!("{describe}: a hook that failed once must run again: {e}"));
    }
}
