//! `check`, `apply`, `rollback`, `recover`, `status`, `history`.

use std::time::Duration;

use serde_json::json;
use updater_core::history::{Page, StepOutcome, UpdateRecord};
use updater_core::pipeline::{
    ApplyOutcome, ApplyRequest, CheckReport, RecoveryAction, RollbackRequest, UpdateReport,
};
use updater_core::version::Version;

use super::{Outcome, lock_json, recovery_notice};
use crate::components::Components;
use crate::error::{CliError, Result, exit_code};
use crate::terminal::{Progress, can_ask, confirm, human_bytes, needs_yes};

pub(crate) fn check_json(report: &CheckReport) -> serde_json::Value {
    json!({
        "current": report.current.to_string(),
        "latest": report.latest.as_ref().map(|r| r.version.to_string()),
        "update_available": report.update_available,
        "update_type": report.update_type.map(|t| t.as_str()),
        "from_cache": report.from_cache,
        "changelog": report.latest.as_ref().map(|r| r.changelog.clone()),
        "published_at": report.latest.as_ref().and_then(|r| r.published_at),
        "download_size": report.latest.as_ref().and_then(|r| r.assets.first()).map(|a| a.size),
    })
}

pub(crate) fn check_text(report: &CheckReport) -> String {
    match (&report.latest, report.update_available) {
        (Some(latest), true) => {
            let mut text = format!(
                "Update available: {} -> {}{}",
                report.current,
                latest.version,
                report
                    .update_type
                    .map(|t| format!(" ({} update)", t.as_str()))
                    .unwrap_or_default()
            );
            if !latest.changelog.trim().is_empty() {
                text.push_str("\n\n");
                text.push_str(latest.changelog.trim());
            }
            if let Some(asset) = latest.assets.first() {
                text.push_str(&format!("\n\nDownload: {}", human_bytes(asset.size)));
            }
            text.push_str("\n\nInstall it with: updater apply");
            if report.from_cache {
                text.push_str(&cache_note());
            }
            text
        }
        (Some(latest), false) if latest.version > report.current => format!(
            "{} is running; {} is published but may not be installed (version rules)",
            report.current, latest.version
        ),
        _ => {
            let mut text = format!(
                "Up to date: {} is the newest release of the channel",
                report.current
            );
            if report.from_cache {
                text.push_str(&cache_note());
            }
            text
        }
    }
}

fn cache_note() -> String {
    "\n(answered from the last check, younger than the cache window; `updater check --force` asks the source)".to_string()
}

pub(super) fn check(c: &Components, force: bool) -> Result<Outcome> {
    let report = c.updater.check(force)?;
    let mut outcome = Outcome::ok(check_json(&report), check_text(&report));
    if report.update_available {
        outcome.exit_code = exit_code::UPDATE_AVAILABLE;
    }
    Ok(outcome)
}

fn report_json(report: &UpdateReport) -> serde_json::Value {
    json!({
        "from": report.from.to_string(),
        "to": report.to.to_string(),
        "update_id": report.update_id,
        "update_type": report.update_type.map(|t| t.as_str()),
        "maintenance_window_ms": millis(report.maintenance_window),
        "backup_id": report.backup.as_ref().map(|b| b.id.clone()),
        "carried": report.carried,
        "saved_aside": report.saved_aside,
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn apply(
    c: &Components,
    version: Option<&str>,
    no_backup: bool,
    yes: bool,
) -> Result<Outcome> {
    let mut version = version
        .map(|v| Version::parse(v).map_err(|e| CliError::Usage(format!("--version {v:?}: {e}"))))
        .transpose()?;
    if !yes {
        if !can_ask() {
            return Err(needs_yes("applying an update"));
        }
        let current = c.updater.current_version()?;
        let report = c.updater.check(true)?;
        let target = match (&version, report.latest.filter(|_| report.update_available)) {
            (Some(wanted), latest) => latest.filter(|l| &l.version == wanted).map_or_else(
                || (wanted.clone(), String::new(), None),
                |l| (l.version, l.changelog, l.assets.first().map(|a| a.size)),
            ),
            (None, Some(latest)) => (
                latest.version,
                latest.changelog,
                latest.assets.first().map(|a| a.size),
            ),
            (None, None) => {
                return Ok(Outcome::ok(
                    json!({ "outcome": "up_to_date", "current": current.to_string() }),
                    format!("Up to date: {current}"),
                ));
            }
        };
        let (target, changelog, size) = target;
        let mut question = format!("Update the application from {current} to {target}");
        if let Some(size) = size {
            question.push_str(&format!(" ({} download)", human_bytes(size)));
        }
        question.push('?');
        if !changelog.trim().is_empty() {
            question = format!("{}\n\n{question}", changelog.trim());
        }
        confirm(&question, false)?;
        // Install exactly what was confirmed, not whatever is newest by then.
        version = Some(target);
    }
    let request = ApplyRequest {
        version,
        backup: c.config.file.backup.before_update && !no_backup,
        initiated_by: c.initiated_by(),
        auto_update: false,
    };
    let progress = Progress::to_stderr();
    let result = c.updater.apply(&request, &progress);
    progress.finish();
    match result? {
        ApplyOutcome::UpToDate { current } => Ok(Outcome::ok(
            json!({ "outcome": "up_to_date", "current": current.to_string() }),
            format!("Up to date: {current} is the newest release of the channel"),
        )),
        ApplyOutcome::Updated(report) => {
            let mut value = report_json(&report);
            value["outcome"] = json!("updated");
            let mut text = format!(
                "Updated {} -> {} (update #{}, maintenance window {} ms{})",
                report.from,
                report.to,
                report.update_id,
                millis(report.maintenance_window),
                report
                    .backup
                    .as_ref()
                    .map(|b| format!(", backup {}", b.id))
                    .unwrap_or_default()
            );
            if !report.carried.is_empty() {
                text.push_str(&format!(
                    "\nApplication data carried into the new release: {}",
                    report.carried.join(", ")
                ));
            }
            if !report.saved_aside.is_empty() {
                text.push_str(&format!(
                    "\nLocal versions replaced by the release, saved under {}: {}",
                    c.config.state_dir().join("local-changes").display(),
                    report.saved_aside.join(", ")
                ));
            }
            Ok(Outcome::ok(value, text))
        }
    }
}

pub(super) fn rollback(
    c: &Components,
    yes: bool,
    restore_database_snapshot: bool,
) -> Result<Outcome> {
    if !yes {
        if !can_ask() {
            return Err(needs_yes("rolling back"));
        }
        let status = c.updater.status()?;
        let target = status
            .kept
            .first()
            .map_or_else(|| "the previous release".to_string(), ToString::to_string);
        confirm(
            &format!("Roll back from {} to {target}?", status.current),
            false,
        )?;
    }
    let request = RollbackRequest {
        initiated_by: c.initiated_by(),
        restore_database_snapshot,
    };
    let progress = Progress::to_stderr();
    let result = c.updater.rollback(&request, &progress);
    progress.finish();
    let report = result?;
    Ok(Outcome::ok(
        report_json(&report),
        format!(
            "Rolled back {} -> {} (record #{}, maintenance window {} ms)",
            report.from,
            report.to,
            report.update_id,
            millis(report.maintenance_window)
        ),
    ))
}

pub(super) fn recover(c: &Components, retry: bool) -> Result<Outcome> {
    let report = if retry {
        c.updater.retry_recovery()?
    } else {
        c.updater.recover()?
    };
    let (action, running, abandoned, version, holder) = match &report.action {
        RecoveryAction::Nothing => ("nothing", None, None, None, None),
        RecoveryAction::UpdateInProgress(holder) => (
            "update_in_progress",
            None,
            None,
            None,
            Some(lock_json(holder)),
        ),
        RecoveryAction::CleanedUp { version } => ("cleaned_up", None, None, Some(version), None),
        RecoveryAction::RolledBack { running, abandoned } => {
            ("rolled_back", Some(running), Some(abandoned), None, None)
        }
        RecoveryAction::Committed { running } => ("committed", Some(running), None, None, None),
    };
    let text = recovery_notice(&report).unwrap_or_else(|| "Nothing to recover.".to_string());
    Ok(Outcome::ok(
        json!({
            "action": action,
            "running": running.map(ToString::to_string),
            "abandoned": abandoned.map(ToString::to_string),
            "version": version.map(ToString::to_string),
            "lock_holder": holder,
            "leftover_maintenance": report.leftover_maintenance.as_ref().map(|n| json!({
                "reason": n.reason,
                "started_at": n.started_at,
            })),
            "stale_lock": report.stale_lock.as_ref().map(lock_json),
        }),
        text,
    ))
}

pub(super) fn status(c: &Components) -> Result<Outcome> {
    let s = c.updater.status()?;
    let transition = s.transition.as_ref().map(|t| {
        json!({
            "kind": t.kind.as_str(),
            "phase": t.phase.as_str(),
            "from": t.from.to_string(),
            "to": t.to.to_string(),
            "update_id": t.update_id,
            "failure": t.failure.as_ref().map(|(step, message)| json!({ "step": step.as_str(), "message": message })),
            "recovery_attempts": t.recovery_attempts,
            "last_recovery_error": t.last_recovery_error,
        })
    });
    // A check recorded before the last update says nothing about now.
    let available = s.latest_check.as_ref().and_then(|k| {
        k.latest_version
            .as_ref()
            .filter(|v| k.update_available && **v > s.current && k.current_version == s.current)
    });
    let check = s.latest_check.as_ref().map(|k| {
        json!({
            "checked_at": k.checked_at,
            "latest_version": k.latest_version.as_ref().map(ToString::to_string),
            "update_available": available.is_some(),
            "status": k.check_status.as_str(),
            "error": k.error_message,
        })
    });
    let value = json!({
        "current": s.current.to_string(),
        "highest": s.highest.to_string(),
        "kept": s.kept.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "files_known": s.files_known,
        "transition": transition,
        "lock_holder": s.lock_holder.as_ref().map(lock_json),
        "maintenance": s.maintenance.as_ref().map(|n| json!({
            "reason": n.reason,
            "started_at": n.started_at,
            "retry_after_secs": n.retry_after_secs,
            "expires_at": n.expires_at,
            "set_by_updater": n.set_by_updater,
        })),
        "latest_check": check,
        "paused": serde_json::to_value(&s.paused).unwrap_or_default(),
        "probation": serde_json::to_value(&s.probation).unwrap_or_default(),
        "scheduled": serde_json::to_value(&s.scheduled).unwrap_or_default(),
        "auto_update": serde_json::to_value(s.auto_update).unwrap_or_default(),
        "notification_channels": super::notifications::health_json(c),
    });
    let mut text = format!("Running:      {}\nHighest ever: {}\n", s.current, s.highest);
    text.push_str(&format!(
        "Kept for rollback: {}\n",
        if s.kept.is_empty() {
            "none".to_string()
        } else {
            s.kept
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    if !s.files_known {
        text.push_str("File list:    not recorded yet (installed by hand); the first update compares with the release package\n");
    }
    if let Some(t) = &s.transition {
        text.push_str(&format!(
            "Transition:   {} {} -> {} ({}{})\n",
            t.kind.as_str(),
            t.from,
            t.to,
            t.phase.as_str(),
            t.last_recovery_error
                .as_ref()
                .map(|e| format!("; last recovery error: {e}"))
                .unwrap_or_default()
        ));
    }
    text.push_str(&format!(
        "Update lock:  {}\n",
        s.lock_holder
            .as_ref()
            .map_or_else(|| "free".to_string(), ToString::to_string)
    ));
    text.push_str(&format!(
        "Maintenance:  {}\n",
        s.maintenance.as_ref().map_or_else(
            || "off".to_string(),
            |n| format!("ON since {} ({})", n.started_at, n.reason)
        )
    ));
    text.push_str(&match &s.latest_check {
        Some(k) => format!(
            "Last check:   {} ({}{})",
            k.checked_at.format("%Y-%m-%d %H:%M:%S UTC"),
            k.check_status.as_str(),
            match (&k.latest_version, available) {
                (_, Some(v)) => format!(", {v} available"),
                (Some(v), None) => format!(", latest {v}"),
                (None, None) => k
                    .error_message
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
            }
        ),
        None => "Last check:   never".to_string(),
    });
    let when = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    text.push_str(&format!(
        "\nAutomatic:    {}",
        match &s.paused {
            Some(p) => format!(
                "PAUSED since {} by {}: {} (`updater resume`)",
                when(&p.since),
                p.by,
                p.reason
            ),
            None if s.auto_update == updater_core::automation::AutoUpdateLevel::None => {
                "off ([auto_update] level = \"none\")".to_string()
            }
            None => format!("{} updates apply unattended", s.auto_update.as_str()),
        }
    ));
    if let Some(p) = &s.probation {
        text.push_str(&format!(
            "\nProbation:    {} until {} (a failing health check rolls back to {})",
            p.version,
            when(&p.until),
            p.previous
        ));
    }
    for entry in &s.scheduled {
        text.push_str(&format!(
            "\nScheduled:    #{} {} at {} (by {})",
            entry.id,
            entry
                .version
                .as_ref()
                .map_or_else(|| "the newest release".to_string(), ToString::to_string),
            when(&entry.at),
            entry.created_by
        ));
    }
    for line in super::notifications::health_lines(c) {
        text.push('\n');
        text.push_str(&line);
    }
    Ok(Outcome::ok(value, text))
}

pub(crate) fn update_json(u: &UpdateRecord) -> serde_json::Value {
    json!({
        "id": u.id,
        "version": u.version.to_string(),
        "previous_version": u.previous_version.as_ref().map(ToString::to_string),
        "status": u.status.as_str(),
        "update_type": u.update_type.map(|t| t.as_str()),
        "initiated_by": u.initiated_by,
        "auto_update": u.auto_update,
        "started_at": u.started_at,
        "completed_at": u.completed_at,
        "failed_at": u.failed_at,
        "error_message": u.error_message,
        "maintenance_window_ms": u.maintenance_window_ms,
        "progress": u.progress_percentage,
        "changelog": u.changelog,
        "download_url": u.download_url,
        "checksum": u.checksum,
        "download_size": u.download_size,
        "backup": u.backup_info,
        "steps": u.steps.iter().map(|s| json!({
            "name": s.name,
            "outcome": step_outcome(s.outcome),
            "started_at": s.started_at,
            "finished_at": s.finished_at,
            "message": s.message,
        })).collect::<Vec<_>>(),
    })
}

fn step_outcome(outcome: StepOutcome) -> String {
    serde_json::to_value(outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{outcome:?}").to_lowercase())
}

pub(super) fn history(c: &Components, limit: u64, offset: u64) -> Result<Outcome> {
    let updates = c.updater.history().updates(Page { offset, limit })?;
    let mut text = String::new();
    if updates.is_empty() {
        text.push_str("No updates recorded.");
    }
    for u in &updates {
        text.push_str(&format!(
            "#{:<4} {}  {} -> {}  {:<11} by {}{}{}\n",
            u.id,
            u.started_at.format("%Y-%m-%d %H:%M:%S"),
            u.previous_version
                .as_ref()
                .map_or_else(|| "?".to_string(), ToString::to_string),
            u.version,
            u.status.as_str(),
            u.initiated_by,
            u.maintenance_window_ms
                .map(|ms| format!(", window {ms} ms"))
                .unwrap_or_default(),
            u.error_message
                .as_ref()
                .map(|e| format!("\n       {e}"))
                .unwrap_or_default(),
        ));
    }
    Ok(Outcome::ok(
        json!({ "updates": updates.iter().map(update_json).collect::<Vec<_>>() }),
        text.trim_end().to_string(),
    ))
}
