//! `apply --at`, `pause`, `resume`, `scheduled`, `preview`, `stats`: the
//! operator's side of unattended updates.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::json;
use updater_core::automation::{AutoDecision, PauseState, ScheduledUpdate};
use updater_core::pipeline::PreviewReport;
use updater_core::stats::{Summary, UpdateStats};
use updater_core::version::Version;

use crate::components::Components;
use crate::error::{CliError, Result};
use crate::output::Outcome;
use crate::terminal::{Progress, human_bytes};

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Parses `--at`: RFC 3339 with or without seconds (`2026-12-01T02:00+01:00`,
/// `2026-12-01T02:00:00Z`).
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    let trimmed = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%d %H:%M%:z", "%Y-%m-%dT%H:%MZ"] {
        let candidate = if format.ends_with('Z') {
            trimmed.to_string()
        } else {
            trimmed.replace('Z', "+00:00")
        };
        if let Ok(time) = DateTime::parse_from_str(&candidate, format) {
            return Ok(time.with_timezone(&Utc));
        }
    }
    Err(CliError::Usage(format!(
        "--at {text:?}: not a time with its offset; write it as RFC 3339, e.g. 2026-12-01T02:00+01:00 or 2026-12-01T01:00:00Z"
    )))
}

/// Parses `--since`: a date (`2026-11-01`) or an age (`30d`, `12h`, `90m`).
pub(crate) fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let trimmed = text.trim();
    if let Some(midnight) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
    {
        return Ok(midnight.and_utc());
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(time.with_timezone(&Utc));
    }
    let usage = || {
        CliError::Usage(format!(
            "--since {text:?}: give a date (2026-11-01) or an age such as 30d, 12h or 90m"
        ))
    };
    let split = trimmed.len().saturating_sub(1);
    let (number, unit) = (trimmed.get(..split).ok_or_else(usage)?, &trimmed[split..]);
    let amount: i64 = number.parse().map_err(|_| usage())?;
    let age = match unit {
        "d" => chrono::Duration::try_days(amount),
        "h" => chrono::Duration::try_hours(amount),
        "m" => chrono::Duration::try_minutes(amount),
        _ => None,
    }
    .ok_or_else(usage)?;
    now.checked_sub_signed(age).ok_or_else(usage)
}

fn scheduled_line(entry: &ScheduledUpdate) -> String {
    let what = entry
        .version
        .as_ref()
        .map_or_else(|| "the newest release".to_string(), |v| v.to_string());
    let mut line = format!(
        "#{} {} at {} (by {}, {})",
        entry.id,
        what,
        entry.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        entry.created_by,
        entry.status.as_str()
    );
    if let Some(message) = &entry.message {
        line.push_str(&format!(": {message}"));
    }
    line
}

fn pause_line(pause: &PauseState) -> String {
    format!(
        "paused since {} by {}: {}",
        pause.since.to_rfc3339_opts(SecondsFormat::Secs, true),
        pause.by,
        pause.reason
    )
}

/// `apply --at TIME [--version V]`.
pub(super) fn schedule_at(c: &Components, at: &str, version: Option<&str>) -> Result<Outcome> {
    let at = parse_time(at)?;
    let version = version
        .map(|v| Version::parse(v).map_err(|e| CliError::Usage(format!("--version {v:?}: {e}"))))
        .transpose()?;
    let entry = c.updater.schedule_update(at, version, &c.initiated_by())?;
    let mut text = format!("Scheduled: {}", scheduled_line(&entry));
    text.push_str(
        "\n`updater schedule` (or `updater serve`) must be running to carry it out; cancel with `updater scheduled --cancel ID`.",
    );
    Ok(Outcome::ok(json!({ "scheduled": to_json(&entry) }), text))
}

/// `pause [--reason R]`.
pub(super) fn pause(c: &Components, reason: &str) -> Result<Outcome> {
    let state = c.updater.pause(reason, &c.initiated_by())?;
    Ok(Outcome::ok(
        json!({ "paused": to_json(&state) }),
        format!(
            "Automatic and scheduled updates are {}; `updater resume` ends the pause.",
            pause_line(&state)
        ),
    ))
}

/// `resume`.
pub(super) fn resume(c: &Components) -> Result<Outcome> {
    let previous = c.updater.resume()?;
    let text = match &previous {
        Some(pause) => format!("Resumed (was {}).", pause_line(pause)),
        None => "Nothing to resume: updates were not paused.".to_string(),
    };
    Ok(Outcome::ok(
        json!({ "resumed": previous.is_some(), "paused": to_json(&previous) }),
        text,
    ))
}

/// `scheduled [--all] [--cancel ID]`.
pub(super) fn scheduled(c: &Components, all: bool, cancel: Option<i64>) -> Result<Outcome> {
    if let Some(id) = cancel {
        let entry = c.updater.cancel_scheduled_update(id)?;
        return Ok(Outcome::ok(
            json!({ "cancelled": to_json(&entry) }),
            format!("Cancelled: {}", scheduled_line(&entry)),
        ));
    }
    let list = c.updater.scheduled_updates(all)?;
    let text = if list.is_empty() {
        if all {
            "No scheduled updates.".to_string()
        } else {
            "No pending scheduled updates (`--all` shows past ones).".to_string()
        }
    } else {
        list.iter()
            .map(scheduled_line)
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::ok(json!({ "scheduled": to_json(&list) }), text))
}

fn list_section(text: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    text.push_str(&format!("\n{title} ({}):", items.len()));
    for item in items.iter().take(20) {
        text.push_str(&format!("\n  {item}"));
    }
    if items.len() > 20 {
        text.push_str(&format!(
            "\n  ... and {} more (--json lists all)",
            items.len() - 20
        ));
    }
}

fn preview_text(report: &PreviewReport) -> String {
    let mut text = format!(
        "Update {} -> {}{}",
        report.current,
        report.target,
        report
            .update_type
            .map(|kind| format!(" ({kind})"))
            .unwrap_or_default()
    );
    if let Some(refused) = &report.refused {
        text.push_str(&format!("\nRefused by the version rules: {refused}"));
    }
    text.push_str(&format!(
        "\nDownload {} (verified, kept for `apply`); disk needed {}, free {}{}",
        human_bytes(report.download_size),
        human_bytes(report.disk_needed),
        human_bytes(report.disk_free),
        if report.disk_needed > report.disk_free {
            " — NOT ENOUGH SPACE"
        } else {
            ""
        }
    ));
    if !report.baseline_known {
        text.push_str(
            "\n(the running release's file list is unknown: files are compared with the live tree)",
        );
    }
    list_section(&mut text, "Added", &report.added);
    list_section(&mut text, "Changed", &report.changed);
    list_section(&mut text, "Removed", &report.removed);
    let modes: Vec<String> = report
        .mode_changes
        .iter()
        .map(|m| format!("{} {:o} -> {:o}", m.path, m.from, m.to))
        .collect();
    list_section(&mut text, "Permissions", &modes);
    list_section(
        &mut text,
        "Preserved paths the package also ships (the live ones are kept)",
        &report.preserved_shipped,
    );
    list_section(
        &mut text,
        "Application data carried into the new release",
        &report.carried,
    );
    let conflicts: Vec<String> = report.conflicts.iter().map(|c| c.to_string()).collect();
    list_section(&mut text, "Data conflicts", &conflicts);
    match &report.pending_migrations {
        Some(list) if list.is_empty() => text.push_str("\nMigrations: none pending"),
        Some(list) => list_section(&mut text, "Migrations", list),
        None => text.push_str("\nMigrations: unknown (set migrations.status to list them)"),
    }
    match (report.expected_window_ms, report.expected_duration_ms) {
        (Some(window), Some(duration)) => text.push_str(&format!(
            "\nExpected: maintenance window ~{window} ms, whole update ~{:.1} s (median of past updates)",
            duration as f64 / 1000.0
        )),
        _ => text.push_str("\nExpected window: no completed update in history yet"),
    }
    if let Some(decision) = &report.automatic {
        text.push_str(&format!(
            "\nAutomatic update: {}",
            match decision {
                AutoDecision::Apply => "would apply now".to_string(),
                AutoDecision::NotAllowed { reason } =>
                    format!("not applied automatically ({reason})"),
                AutoDecision::Wait { until, reason } => format!(
                    "waits ({reason}){}",
                    until
                        .map(|u| format!(", from {}", u.to_rfc3339_opts(SecondsFormat::Secs, true)))
                        .unwrap_or_default()
                ),
            }
        ));
    }
    for (version, notes) in &report.changelog {
        if !notes.trim().is_empty() {
            text.push_str(&format!("\n\n== {version} ==\n{}", notes.trim()));
        }
    }
    text
}

/// `preview [VERSION]`.
pub(super) fn preview(c: &Components, version: Option<&str>) -> Result<Outcome> {
    let version = version
        .map(|v| Version::parse(v).map_err(|e| CliError::Usage(format!("version {v:?}: {e}"))))
        .transpose()?;
    let progress = Progress::to_stderr();
    let result = c.updater.preview(version.as_ref(), &progress);
    progress.finish();
    let report = result?;
    Ok(Outcome::ok(to_json(&report), preview_text(&report)))
}

fn summary_text(summary: &Summary) -> String {
    match (summary.median, summary.p95, summary.max) {
        (Some(median), Some(p95), Some(max)) => {
            format!(
                "median {median} ms, p95 {p95} ms, max {max} ms (n={})",
                summary.count
            )
        }
        _ => "no data".to_string(),
    }
}

fn stats_text(stats: &UpdateStats) -> String {
    let mut text = format!(
        "{} attempt(s){}: {} completed, {} failed before the window, {} rolled back, {} unfinished",
        stats.attempts,
        stats
            .since
            .map(|s| format!(" since {}", s.to_rfc3339_opts(SecondsFormat::Secs, true)))
            .unwrap_or_default(),
        stats.completed,
        stats.failed,
        stats.rolled_back,
        stats.unfinished
    );
    if let Some(rate) = stats.success_rate {
        text.push_str(&format!("\nSuccess rate: {:.1}%", rate * 100.0));
    }
    text.push_str(&format!(
        "\nMaintenance window: {}\nWhole update: {}",
        summary_text(&stats.maintenance_window_ms),
        summary_text(&stats.duration_ms)
    ));
    if !stats.rollbacks_by_step.is_empty() {
        let parts: Vec<String> = stats
            .rollbacks_by_step
            .iter()
            .map(|(step, n)| format!("{step} {n}"))
            .collect();
        text.push_str(&format!("\nRollbacks by step: {}", parts.join(", ")));
    }
    if !stats.failures_by_step.is_empty() {
        let parts: Vec<String> = stats
            .failures_by_step
            .iter()
            .map(|(step, n)| format!("{step} {n}"))
            .collect();
        text.push_str(&format!("\nFailures by step: {}", parts.join(", ")));
    }
    if !stats.step_ms.is_empty() {
        text.push_str("\nTime per step:");
        for (step, summary) in &stats.step_ms {
            text.push_str(&format!("\n  {step:<12} {}", summary_text(summary)));
        }
    }
    if !stats.per_version.is_empty() {
        text.push_str("\nPer version:");
        for (version, o) in &stats.per_version {
            text.push_str(&format!(
                "\n  {version:<12} {} attempt(s), {} completed, {} failed, {} rolled back",
                o.attempts, o.completed, o.failed, o.rolled_back
            ));
        }
    }
    text
}

/// `stats [--since WHEN]`.
pub(super) fn stats(c: &Components, since: Option<&str>) -> Result<Outcome> {
    let since = since.map(|s| parse_since(s, Utc::now())).transpose()?;
    let stats = c.updater.stats(since)?;
    Ok(Outcome::ok(to_json(&stats), stats_text(&stats)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_with_or_without_seconds() {
        let expected = "2026-12-01T01:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for text in [
            "2026-12-01T02:00+01:00",
            "2026-12-01T02:00:00+01:00",
            "2026-12-01T01:00:00Z",
            "2026-12-01T01:00Z",
        ] {
            assert_eq!(parse_time(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn a_time_without_offset_is_a_usage_error() {
        assert!(
            matches!(parse_time("2026-12-01 02:00"), Err(CliError::Usage(m)) if m.contains("RFC 3339"))
        );
    }

    #[test]
    fn since_takes_a_date_or_an_age() {
        let now = "2026-12-06T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            parse_since("2026-11-01", now).unwrap(),
            "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_since("30d", now).unwrap(),
            "2026-11-06T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_since("12h", now).unwrap(),
            "2026-12-06T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        for bad in ["", "d", "3w", "-", "yesterday"] {
            assert!(
                matches!(parse_since(bad, now), Err(CliError::Usage(_))),
                "{bad}"
            );
        }
    }
}
