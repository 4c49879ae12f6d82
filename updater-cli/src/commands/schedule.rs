//! `schedule`: unattended work in the foreground — the probation watch,
//! due scheduled updates and automatic updates every `schedule.round_secs`;
//! the update check, backup cleanup and backup health monitors every
//! `schedule.interval_hours`; delivery of pending notices every round.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::backup::cleanup_json;
use super::recovery::recovery_notice;
use super::update::{check_json, check_text};
use crate::components::Components;
use crate::error::{CliError, Result, exit_code};
use crate::output::{Outcome, error_json, note};
use crate::terminal::Progress;
use updater_core::pipeline::ProbationOutcome;

/// How often the stop flag is looked at while sleeping.
const STOP_POLL: Duration = Duration::from_millis(200);

/// Finishes or undoes an interrupted transition; false when that failed.
fn recover(c: &Components) -> bool {
    match c.updater.recover() {
        Ok(report) => {
            if let Some(text) = recovery_notice(&report) {
                note(&text);
            }
            true
        }
        Err(error) => {
            note(&format!("recovery failed: {error}"));
            false
        }
    }
}

/// The JSON of an automation round (`{"probation", "scheduled", "automatic", "paused"}`),
/// and whether a part of it failed. Each part is also noted on stderr.
fn automation(c: &Components) -> (serde_json::Value, bool) {
    let progress = Progress::to_stderr();
    let report = c.updater.automation_round(&progress);
    progress.finish();
    let mut failed = false;
    let probation = match &report.probation {
        Ok(outcome) => {
            match outcome {
                ProbationOutcome::None | ProbationOutcome::Healthy { .. } => {}
                ProbationOutcome::Passed { version } => {
                    note(&format!("probation passed: {version} is trusted now"));
                }
                ProbationOutcome::RolledBack {
                    version,
                    running,
                    reason,
                } => note(&format!(
                    "probation failed: {version} was rolled back, {running} runs again ({reason})"
                )),
            }
            serde_json::to_value(outcome).unwrap_or_default()
        }
        Err(error) => {
            failed = true;
            note(&format!("probation watch failed: {error}"));
            json!({ "error": error })
        }
    };
    let scheduled: Vec<serde_json::Value> = report
        .scheduled
        .iter()
        .map(|(id, message)| {
            note(&format!("scheduled update #{id}: {message}"));
            json!({ "id": id, "message": message })
        })
        .collect();
    let automatic = match &report.automatic {
        None => serde_json::Value::Null,
        Some(Ok(message)) => {
            note(&format!("automatic update: {message}"));
            json!({ "message": message })
        }
        Some(Err(error)) => {
            failed = true;
            note(&format!("automatic update failed: {error}"));
            json!({ "error": error })
        }
    };
    if let Some(pause) = &report.paused {
        tracing::debug!(reason = %pause.reason, "updates are paused");
    }
    (
        json!({
            "probation": probation,
            "scheduled": scheduled,
            "automatic": automatic,
            "paused": serde_json::to_value(&report.paused).unwrap_or_default(),
        }),
        failed,
    )
}

/// The periodic part: check (when `schedule.auto_check`), clean up backups.
/// Failures are reported in the result, not returned, so the loop goes on.
fn housekeeping(c: &Components) -> (serde_json::Value, bool) {
    let mut failed = false;
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
/// newest verified backup of the catalogue (every byte read back and found
/// intact, its files all there) must be younger than `max_age_hours`, and
/// the catalogued backups together under `max_total_mib`. A backup that was
/// never verified, or whose last verification failed, does not count as
/// fresh. Each problem is a `backup_unhealthy` notice (at most one per
/// problem per day).
fn backup_health(c: &Components) -> serde_json::Value {
    use updater_core::history::NotificationType;
    use updater_core::notify::{Notification, Notifier};
    let limits = &c.config.file.notifications.backup_health;
    if limits.max_age_hours.is_none() && limits.max_total_mib.is_none() {
        return serde_json::Value::Null;
    }
    let backups = match c.files_backup.catalog().list() {
        Ok(list) => list,
        Err(error) => return json!({ "error": error.to_string() }),
    };
    // `restorable`: verified, and every part present with its recorded size.
    let verified: Vec<_> = backups.iter().filter(|b| b.restorable).collect();
    let now = chrono::Utc::now();
    let newest = verified.iter().map(|b| b.created_at()).max();
    let total: u64 = backups.iter().map(|b| b.size()).sum();
    let mut problems = Vec::new();
    if let Some(hours) = limits.max_age_hours {
        let too_old = newest.is_none_or(|t| now - t > chrono::Duration::hours(hours as i64));
        if too_old {
            let unverified = backups.len() - verified.len();
            let unverified_note = if unverified > 0 {
                format!("; {unverified} newer or other backup(s) are not verified")
            } else {
                String::new()
            };
            problems.push((
                "age",
                match newest {
                    Some(t) => format!(
                        "the newest verified backup is from {} ({} h old; the limit is {hours} h){unverified_note}",
                        t.format("%Y-%m-%d %H:%M UTC"),
                        (now - t).num_hours()
                    ),
                    None => format!(
                        "there is no verified backup (the newest must be under {hours} h old){unverified_note}"
                    ),
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
                "backups use {} MiB, more than the {mib} MiB allowed",
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
        .with_metadata(
            json!({ "monitor": what, "newest_verified_backup": newest, "total_bytes": total }),
        );
        if let Err(error) = c.notifier.notify(&notice) {
            note(&format!("backup health: cannot record the notice: {error}"));
        }
    }
    json!({
        "healthy": problems.is_empty(),
        "problems": problems.iter().map(|(_, m)| m).collect::<Vec<_>>(),
        "newest_verified_backup": newest,
        "newest_backup": backups.iter().map(|b| b.created_at()).max(),
        "total_bytes": total,
    })
}

pub(super) fn run(c: &Components, once: bool) -> Result<Outcome> {
    if once {
        let recovered = recover(c);
        let (mut value, housekeeping_failed) = housekeeping(c);
        let (automation, automation_failed) = automation(c);
        value["automation"] = automation;
        let mut outcome = Outcome::ok(value, "schedule: one round done");
        if !recovered || housekeeping_failed || automation_failed {
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
    let idle = Duration::from_secs(c.config.file.schedule.round_secs);
    note(&format!(
        "schedule: a round every {} s, checking every {} h; stop with SIGTERM or Ctrl-C",
        c.config.file.schedule.round_secs, c.config.file.schedule.interval_hours
    ));
    let mut rounds = 0u64;
    let mut next_housekeeping = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        recover(c);
        if Instant::now() >= next_housekeeping {
            let _ = housekeeping(c);
            next_housekeeping = Instant::now() + interval;
        }
        let _ = automation(c);
        rounds += 1;
        let next = Instant::now() + c.updater.next_round_in(idle);
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

/// `schedule --print-systemd`: a unit running `updater schedule` for this
/// configuration, and the cron line doing the same with `--once`.
pub(super) fn print_systemd(c: &Components, timer: bool) -> Result<Outcome> {
    let binary = std::env::current_exe()
        .map_err(|e| CliError::io("find the path of", "the updater binary", e))?;
    let config = std::path::absolute(&c.config.path)
        .map_err(|e| CliError::io("resolve", c.config.path.display().to_string(), e))?;
    let units = SystemdUnits::new(
        &binary,
        &config,
        &c.initiated_by(),
        &unit_prefix(&c.config.app_dir()),
    );
    let human = if timer {
        format!(
            "{}\n{}\n# Or, from cron (crontab -e as {}):\n# {}",
            units.timer_service, units.timer, units.user, units.cron
        )
    } else {
        format!(
            "{}\n# Or a oneshot service and a timer: updater schedule --print-systemd --timer\n# Or, from cron (crontab -e as {}):\n# {}",
            units.service, units.user, units.cron
        )
    };
    Ok(Outcome::ok(
        json!({
            "systemd_service": units.service,
            "timer_service": units.timer_service,
            "timer": units.timer,
            "cron": units.cron,
        }),
        human,
    ))
}

/// The unit name prefix for an application directory: its last component,
/// with anything but ASCII letters, digits, `-` and `_` replaced by `-`.
fn unit_prefix(app_dir: &std::path::Path) -> String {
    app_dir
        .file_name()
        .map(|name| {
            name.to_string_lossy()
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                        ch
                    } else {
                        '-'
                    }
                })
                .collect()
        })
        .filter(|name: &String| !name.is_empty())
        .unwrap_or_else(|| "app".to_string())
}

/// The ways of running `updater schedule` under systemd or cron.
struct SystemdUnits {
    user: String,
    /// A long-running `updater schedule` (rounds every `schedule.round_secs`).
    service: String,
    /// A oneshot `updater schedule --once`, started by [`timer`](Self::timer).
    timer_service: String,
    /// Starts the oneshot service every 5 minutes (and after a boot that
    /// missed a start).
    timer: String,
    /// The cron equivalent of the timer.
    cron: String,
}

impl SystemdUnits {
    fn new(
        binary: &std::path::Path,
        config: &std::path::Path,
        user: &str,
        app: &str,
    ) -> SystemdUnits {
        let binary = binary.display();
        let config = config.display();
        let service = format!(
            "# /etc/systemd/system/{app}-updater.service
# Install: sudo systemctl daemon-reload && sudo systemctl enable --now {app}-updater
[Unit]
Description=Updates of {app} (probation watch, scheduled and automatic updates)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
ExecStart={binary} --config {config} schedule
# SIGTERM stops the loop between rounds; an update in progress finishes first.
# KillMode=mixed sends it to the updater only, not to a migration it runs.
KillMode=mixed
TimeoutStopSec=1h
Restart=on-failure
RestartSec=30

[Install]
WantedBy=multi-user.target
"
        );
        let timer_service = format!(
            "# /etc/systemd/system/{app}-updater-round.service
# Started by {app}-updater-round.timer; one round, then it exits.
[Unit]
Description=One round of updates of {app} (probation watch, scheduled and automatic updates)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
User={user}
ExecStart={binary} --config {config} schedule --once
# KillMode=mixed sends SIGTERM to the updater only, not to a migration it runs.
KillMode=mixed
TimeoutStartSec=1h
"
        );
        let timer = format!(
            "# /etc/systemd/system/{app}-updater-round.timer
# Install: sudo systemctl daemon-reload && sudo systemctl enable --now {app}-updater-round.timer
[Unit]
Description=Rounds of updates of {app}, every 5 minutes

[Timer]
OnCalendar=*:0/5
# A round missed while the machine was off runs at boot.
Persistent=true
AccuracySec=30s

[Install]
WantedBy=timers.target
"
        );
        let cron = format!(
            "*/5 * * * * {binary} --config {config} schedule --once >>/var/log/{app}-updater.log 2>&1"
        );
        SystemdUnits {
            user: user.to_string(),
            service,
            timer_service,
            timer,
            cron,
        }
    }
}
