//! Conformance suite for [`MaintenanceSwitch`] implementations.

use std::time::Duration;

use crate::maintenance::{MaintenanceNotice, MaintenanceSwitch};

/// Runs every check against `switch`, which must start with maintenance off.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(switch: &dyn MaintenanceSwitch) {
    let describe = switch.describe();
    assert!(
        matches!(switch.status(), Ok(None)),
        "{describe}: maintenance must start off"
    );
    switch
        .disable()
        .unwrap_or_else(|e| panic!("{describe}: disable when off must succeed: {e}"));
    let mut notice = MaintenanceNotice::new("Updating to 9.9.9", Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{describe}: no random source for the notice: {e}"));
    notice.retry_after_secs = 42;
    for round in 0..2 {
        switch
            .enable(&notice)
            .unwrap_or_else(|e| panic!("{describe}: enable (round {round}) must succeed: {e}"));
    }
    let status = switch
        .status()
        .unwrap_or_else(|e| panic!("{describe}: status must succeed: {e}"));
    let Some(status) = status else {
        panic!("{describe}: status must be on after enable");
    };
    assert_eq!(
        status.reason, notice.reason,
        "{describe}: the notice's reason must round-trip"
    );
    assert_eq!(
        status.retry_after_secs, notice.retry_after_secs,
        "{describe}: the notice's Retry-After must round-trip"
    );
    assert_eq!(
        status.bypass_secret, notice.bypass_secret,
        "{describe}: the bypass secret must round-trip (the health check needs it)"
    );
    assert!(
        status.set_by_updater,
        "{describe}: a notice the updater set must say so (recovery lifts only those)"
    );
    for round in 0..2 {
        switch
            .disable()
            .unwrap_or_else(|e| panic!("{describe}: disable (round {round}) must succeed: {e}"));
    }
    assert!(
        matches!(switch.status(), Ok(None)),
        "{describe}: status must be off after disable"
    );
}
