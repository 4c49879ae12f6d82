//! `schedule`: the periodic check and backup cleanup, in the foreground.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::backup::cleanup_json;
use super::update::{check_json, check_text};
use super::{Outcome, recovery_notice};
use crate::components::Components;
use crate::error::{CliError, Result, exit_code};
use crate::output::{error_json, note};

/// How often the stop flag is looked at while sleeping.
const STOP_POLL: Duration = Duration::from_millis(200);

/// One round: recover, check (when `schedule.auto_check`), clean up backups.
/// Failures are reported in the result, not returned, so the loop goes on.
fn round(c: &Components) -> (serde_json::Value, bool) {
    let mut failed = false;
    match c.updater.recover() {
        Ok(report) => {
            if let Some(text) = recovery_notice(&report) {
                note(&text);
            }
        }
        Err(error) => {
            failed = true;
            note(&format!("recovery failed: {error}"));
        }
    }
    let check = if c.config.file.schedule.auto_check {
        match c.updater.check(true) {
            Ok(report) => {
                note(&check_text(&report));
                check_json(&report)
            }
            Err(error) => {
                failed = true;
                let error = CliError::from(error);
                note(&format!("check failed: {error}"));
                error_json(&error)
            }
        }
    } else {
        serde_json::Value::Null
    };
    let cleanup = c
        .updater
        .prune_backups(Some(c.config.file.backup.retention), "schedule")
        .map_err(CliError::from);
    let cleanup = match cleanup {
        Ok(pruned) => {
            let deleted: Vec<String> = pruned.iter().flat_map(|p| p.deleted.clone()).collect();
            if !deleted.is_empty() {
                note(&format!("deleted old backups: {}", deleted.join(", ")));
            }
            cleanup_json(&pruned)
        }
        Err(error) => {
            failed = true;
            note(&format!("backup cleanup failed: {error}"));
            error_json(&error)
        }
    };
    (json!({ "check": check, "cleanup": cleanup }), failed)
}

pub(super) fn run(c: &Components, once: bool) -> Result<Outcome> {
    if once {
        let (value, failed) = round(c);
        let mut outcome = Outcome::ok(value, "schedule: one round done");
        if failed {
            outcome.exit_code = exit_code::FAILURE;
        }
        return Ok(outcome);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| CliError::io("install a signal handler for", "the schedule", e))?;
    }
    let interval = c.config.check_interval();
    note(&format!(
        "schedule: checking every {} h; stop with SIGTERM or Ctrl-C",
        c.config.file.schedule.interval_hours
    ));
    let mut rounds = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let _ = round(c);
        rounds += 1;
        let next = Instant::now() + interval;
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            std::thread::sleep(STOP_POLL.min(next.saturating_duration_since(Instant::now())));
        }
    }
    tracing::info!(rounds, "schedule stopped by a signal");
    Ok(Outcome::ok(
        json!({ "stopped": true, "rounds": rounds }),
        format!("schedule: stopped after {rounds} round(s)"),
    ))
}
