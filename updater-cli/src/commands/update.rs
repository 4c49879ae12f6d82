//! `check`, `apply`, `rollback`, `recover`, `status`, `history`.

use std::time::Duration;

use serde_json::json;
use updater_core::history::Page;
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, CheckReport, RollbackRequest};
use updater_core::version::Version;

use super::recovery::recovery_notice;
use crate::components::Components;
use crate::error::{CliError, Result, exit_code};
use crate::output::Outcome;
use crate::terminal::{Progress, can_ask, confirm, human_bytes, needs_yes};

/// `check --json`: the core's [`CheckView`](updater_core::pipeline::CheckView) (one serializer with the web API).
pub(crate) fn check_json(report: &CheckReport) -> serde_json::Value {
    to_json(&report.view())
}

/// Any of the core's serialisable reports and records as JSON.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
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
                    to_json(&ApplyOutcome::UpToDate {
                        current: current.clone(),
                    }),
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
    let outcome = result?;
    let value = to_json(&outcome);
    match outcome {
        ApplyOutcome::UpToDate { current } => Ok(Outcome::ok(
            value,
            format!("Up to date: {current} is the newest release of the channel"),
        )),
        ApplyOutcome::Updated(report) => {
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
        to_json(&report),
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
    let mut text = recovery_notice(&report).unwrap_or_else(|| "Nothing to recover.".to_string());
    let mut value = to_json(&report.view());
    // At boot, an update on probation is watched again at once: a release
    // that went bad while the machine was down is rolled back now.
    let progress = Progress::to_stderr();
    let probation = c.updater.probation_tick(&progress);
    progress.finish();
    match probation {
        Ok(outcome) => {
            use updater_core::pipeline::ProbationOutcome;
            match &outcome {
                ProbationOutcome::None => {}
                ProbationOutcome::Healthy { version, until } => {
                    text.push_str(&format!("\n{version} is on probation until {until}: healthy."));
                }
                ProbationOutcome::Passed { version } => {
                    text.push_str(&format!("\n{version} passed its probation and is trusted now."));
                }
                ProbationOutcome::RolledBack {
                    version,
                    running,
                    reason,
                } => text.push_str(&format!(
                    "\n{version} failed its probation and was rolled back; {running} runs again ({reason})."
                )),
            }
            value["probation"] = serde_json::to_value(&outcome).unwrap_or_default();
        }
        Err(error) => {
            text.push_str(&format!("\nThe probation watch failed: {error}"));
            value["probation"] = json!({ "error": error.to_string() });
        }
    }
    Ok(Outcome::ok(value, text))
}

pub(super) fn status(c: &Components) -> Result<Outcome> {
    let s = c.updater.status()?;
    // A check recorded before the last update says nothing about now.
    let available = s.available_update();
    let mut value = to_json(&s.view());
    value["notification_channels"] = super::notifications::health_json(c);
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
        json!({ "updates": to_json(&updates) }),
        text.trim_end().to_string(),
    ))
}
