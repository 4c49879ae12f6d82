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
    let notice = MaintenanceNotice::new("conformance", Duration::from_secs(600));
    for round in 0..2 {
        switch
            .enable(&notice)
            .unwrap_or_else(|e| panic!("{describe}: enable (round {round}) must succeed: {e}"));
    }
    let status = switch
        .status()
        .unwrap_or_else(|e| panic!("{describe}: status must succeed: {e}"));
    assert!(
        status.is_some(),
        "{describe}: status must be on after enable"
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
