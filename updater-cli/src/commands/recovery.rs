//! What recovery did, in words for the operator.

use updater_core::pipeline::{RecoveryAction, RecoveryReport};

/// A line for the operator when recovery did something, `None` otherwise.
pub fn recovery_notice(report: &RecoveryReport) -> Option<String> {
    let mut lines = Vec::new();
    match &report.action {
        RecoveryAction::Nothing => {}
        RecoveryAction::UpdateInProgress(holder) => {
            lines.push(format!("an update is running now: {holder}"));
        }
        RecoveryAction::CleanedUp { version } => {
            lines.push(format!(
                "recovery: cleaned up an interrupted preparation of {version}"
            ));
        }
        RecoveryAction::RolledBack { running, abandoned } => lines.push(format!(
            "recovery: an interrupted update to {abandoned} was rolled back; {running} is running"
        )),
        RecoveryAction::Committed { running } => {
            lines.push(format!(
                "recovery: an interrupted update was finished; {running} is running"
            ));
        }
    }
    for child in &report.stopped_children {
        lines.push(format!(
            "recovery: stopped {child}, left running by an updater that died"
        ));
    }
    if let Some(notice) = &report.leftover_maintenance {
        lines.push(format!(
            "recovery: cleared a maintenance flag left behind (\"{}\", since {})",
            notice.reason, notice.started_at
        ));
    }
    if let Some(stale) = &report.stale_lock {
        lines.push(format!(
            "recovery: the update lock was left by a dead process: {stale}"
        ));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}
