//! `schedule`: the periodic check, backup cleanup, backup health monitors
//! and delivery of pending notices, in the foreground.

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
    let backup_health = backup_health(c);
    let delivery = match c.notifier.deliver_due(Duration::from_secs(60)) {
        Ok(report) => json!({
            "delivered": report.delivered,
            "retried": report.retried,
            "gave_up": report.gave_up,
        }),
        // Never fails the round: the notices wait in the outbox.
        Err(error) => json!({ "error": error.to_string() }),
    };
    (
        json!({ "check": check, "cleanup": cleanup, "backup_health": backup_health, "notifications": delivery }),
        failed,
    )
}

/// The backup health monitors of `[notifications.backup_health]`: the
/// newest restorable backup must be younger than `max_age_hours`, and
/// restorable backups together under `max_total_mib`. Each problem is a
/// `backup_unhealthy` notice (at most one per problem per day).
fn backup_health(c: &Components) -> serde_json::Value {
    use updater_core::history::{NotificationType, Page};
    use updater_core::notify::{Notification, Notifier};
    let limits = &c.config.file.notifications.backup_health;
    if limits.max_age_hours.is_none() && limits.max_total_mib.is_none() {
        return serde_json::Value::Null;
    }
    let backups = match c.history.backups(Page::first(10_000)) {
        Ok(list) => list,
        Err(error) => return json!({ "error": error.to_string() }),
    };
    let restorable: Vec<_> = backups.iter().filter(|b| b.is_restorable).collect();
    let now = chrono::Utc::now();
    let newest = restorable.iter().map(|b| b.created_at).max();
    let total: u64 = restorable.iter().map(|b| b.backup_size).sum();
    let mut problems = Vec::new();
    if let Some(hours) = limits.max_age_hours {
        let too_old = newest.is_none_or(|t| now - t > chrono::Duration::hours(hours as i64));
        if too_old {
            problems.push((
                "age",
                match newest {
                    Some(t) => format!(
                        "the newest restorable backup is from {} ({} h old; the limit is {hours} h)",
                        t.format("%Y-%m-%d %H:%M UTC"),
                        (now - t).num_hours()
                    ),
                    None => format!("there is no restorable backup (the newest must be under {hours} h old)"),
                },
            ));
        }
    }
    if let Some(mib) = limits.max_total_mib
        && total > mib.saturating_mul(1 << 20)
    {
        problems.push((
            "size",
            format!(
                "restorable backups use {} MiB, more than the {mib} MiB allowed",
                total >> 20
            ),
        ));
    }
    let version = c
        .updater
        .current_version()
        .unwrap_or_else(|_| updater_core::version::Version::new(0, 0, 0));
    for (what, message) in &problems {
        note(&format!("backup health: {message}"));
        let notice = Notification::new(
            NotificationType::BackupUnhealthy,
            version.clone(),
            message.clone(),
        )
        .with_event_id(format!("backup-health:{what}:{}", now.format("%Y-%m-%d")))
        .with_metadata(json!({ "monitor": what, "newest_backup": newest, "total_bytes": total }));
        if let Err(error) = c.notifier.notify(&notice) {
            note(&format!("backup health: cannot record the notice: {error}"));
        }
    }
    json!({
        "healthy": problems.is_empty(),
        "problems": problems.iter().map(|(_, m)| m).collect::<Vec<_>>(),
        "newest_backup": newest,
        "total_bytes": total,
    })
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
