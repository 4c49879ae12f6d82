//! `backup create | list | restore | cleanup`, and the retention rule that
//! `cleanup` and `schedule` share.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use updater_backup::{BackupStatus, Catalog, CatalogEntry, RetentionPolicy};
use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::history::{BackupRecord, HistoryStore};
use updater_core::lock::UpdateLock;
use updater_core::version::Version;

use super::{Outcome, lock_path};
use crate::components::Components;
use crate::error::{CliError, Result};
use crate::terminal::{Progress, can_ask, confirm, human_bytes, needs_yes};

fn status_str(status: BackupStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status:?}").to_lowercase())
}

fn entry_json(entry: &CatalogEntry) -> serde_json::Value {
    json!({
        "id": entry.id(),
        "version": entry.version().to_string(),
        "kind": entry.kind().as_str(),
        "size": entry.size(),
        "created_at": entry.created_at(),
        "description": entry.notes(),
        "restorable": entry.restorable,
        "status": status_str(entry.status()),
    })
}

fn entry_line(entry: &CatalogEntry) -> String {
    format!(
        "{}  {}  {:<8} {:>10}  {}{}{}",
        entry.id(),
        entry.created_at().format("%Y-%m-%d %H:%M:%S"),
        entry.version().to_string(),
        human_bytes(entry.size()),
        status_str(entry.status()),
        if entry.restorable {
            ""
        } else {
            " (not restorable)"
        },
        entry.notes().map(|n| format!("  {n}")).unwrap_or_default(),
    )
}

pub(super) fn create(c: &Components, description: Option<String>) -> Result<Outcome> {
    let _lock = UpdateLock::acquire(&lock_path(&c.config), "cli backup create")?;
    let version = c.updater.current_version()?;
    let request = BackupRequest {
        version,
        purpose: BackupPurpose::Manual,
        update_id: None,
        description,
    };
    let strategy = c.manual_backup();
    let progress = Progress::to_stderr();
    let created = strategy
        .create(&request, &progress)
        .and_then(|backup| strategy.verify(&backup).map(|()| backup));
    progress.finish();
    let backup = created?;
    let record = BackupRecord::of(&backup);
    if let Err(error) = c.history.record_backup(&record) {
        tracing::error!(%error, backup = %backup.id, "the backup was made but could not be recorded in history");
    }
    let entry = c.files_backup.catalog().get(&backup.id)?;
    Ok(Outcome::ok(
        json!({ "backup": entry_json(&entry) }),
        format!(
            "Created and verified backup {}\n{}",
            backup.id,
            entry_line(&entry)
        ),
    ))
}

pub(super) fn list(c: &Components) -> Result<Outcome> {
    let entries = c.files_backup.catalog().list()?;
    let text = if entries.is_empty() {
        format!(
            "No backups in {}.",
            c.files_backup.catalog().root().display()
        )
    } else {
        entries
            .iter()
            .map(entry_line)
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::ok(
        json!({ "backups": entries.iter().map(entry_json).collect::<Vec<_>>() }),
        text,
    ))
}

pub(super) fn restore(c: &Components, id: &str, yes: bool) -> Result<Outcome> {
    if !yes && !can_ask() {
        return Err(needs_yes("restoring a backup"));
    }
    let entry = c.files_backup.catalog().get(id)?;
    if !entry.restorable {
        return Err(CliError::Update(updater_core::Error::precondition(
            "restore",
            format!(
                "backup {id} is not restorable (status {}, or files missing)",
                status_str(entry.status())
            ),
        )));
    }
    confirm(
        &format!(
            "Restore backup {id} (version {}) over {}?",
            entry.version(),
            c.config.app_dir().display()
        ),
        yes,
    )?;
    let backup = entry.record.backup.clone();
    let strategy = c.strategy_for(backup.kind)?;
    let progress = Progress::to_stderr();
    let restored =
        c.updater
            .restore_backup(strategy.as_ref(), &backup, "cli backup restore", &progress);
    progress.finish();
    restored?;
    Ok(Outcome::ok(
        json!({ "restored": id, "version": backup.version.to_string() }),
        format!(
            "Restored backup {id}; the application files are version {}",
            backup.version
        ),
    ))
}

/// What a cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Deleted backup ids.
    pub deleted: Vec<String>,
    /// Kept backup ids, oldest first.
    pub kept: Vec<String>,
}

/// Applies `updater-backup`'s [`RetentionPolicy`] to `catalog`: keep the
/// newest `keep` verified backups, never the newest backup, the newest
/// restorable one, nor the newest verified backup of `running` (the
/// last known-good release); failed ones go, unverified ones after a day.
/// Deleted backups are marked unrestorable in history, and directories of
/// killed creates older than a day are removed.
pub fn apply_retention(
    catalog: &Catalog,
    history: &dyn HistoryStore,
    keep: usize,
    running: &Version,
) -> Result<CleanupReport> {
    let entries = catalog.list()?;
    let mut policy = RetentionPolicy::new().keep_last(keep);
    if let Some(of_running) = entries
        .iter()
        .rev()
        .find(|e| e.restorable && e.status() == BackupStatus::Verified && e.version() == running)
    {
        policy = policy.protect_backup(of_running.id());
    }
    let plan = policy.apply(catalog, Utc::now())?;
    let mut deleted: Vec<String> = Vec::new();
    for (id, reason) in &plan.remove {
        if deleted.contains(id) {
            continue;
        }
        tracing::info!(backup = %id, ?reason, "deleted by retention");
        if let Err(error) = history.mark_backup_unrestorable(id, "deleted by retention") {
            tracing::debug!(%error, backup = %id, "no history record to mark");
        }
        deleted.push(id.clone());
    }
    for path in catalog.remove_incomplete(Duration::from_secs(24 * 3600))? {
        tracing::info!(path = %path.display(), "removed an incomplete backup");
    }
    let kept = entries
        .iter()
        .map(|e| e.id().to_string())
        .filter(|id| !deleted.contains(id))
        .collect();
    Ok(CleanupReport { deleted, kept })
}

pub(crate) fn cleanup_json(report: &CleanupReport) -> serde_json::Value {
    json!({ "deleted": report.deleted, "kept": report.kept })
}

pub(super) fn cleanup(c: &Components, keep: Option<usize>) -> Result<Outcome> {
    let keep = keep.unwrap_or(c.config.file.backup.retention);
    if keep == 0 {
        return Err(CliError::Usage("--keep must be at least 1".into()));
    }
    let _lock = UpdateLock::acquire(&lock_path(&c.config), "cli backup cleanup")?;
    let running = c.updater.current_version()?;
    let report = apply_retention(c.files_backup.catalog(), c.history.as_ref(), keep, &running)?;
    let text = format!(
        "Deleted {} backup(s){}; kept {}.",
        report.deleted.len(),
        if report.deleted.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.deleted.join(", "))
        },
        report.kept.len()
    );
    Ok(Outcome::ok(cleanup_json(&report), text))
}
