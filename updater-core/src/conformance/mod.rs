//! Shared conformance suites: one per trait, run by every implementation's
//! tests (the way `object_store`'s integration module is run by each backend).
//!
//! Enabled by the `conformance` feature. The suites are **destructive** (they
//! write, overwrite and delete through the implementation under test), panic
//! with a message naming the broken rule, and are exempt from semver: new
//! checks may be added in any release.

// The suites report a broken contract by panicking, like any test assertion.
#![allow(clippy::panic)]

pub mod backup;
pub mod health;
pub mod history;
pub mod hook;
pub mod maintenance;
pub mod migrate;
pub mod notifier;
pub mod outbox;
pub mod schedule;
pub mod source;
