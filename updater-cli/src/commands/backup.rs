//! `backup create | list | restore | cleanup`. Creating, deleting and
//! pruning backups (the retention rule `cleanup` and `schedule` share) are
//! core's `Updater::create_backup` and `Updater::prune_backups`, under the
//! update lock; these commands call them and print the result.

use serde_json::json;
use updater_backup::{BackupStatus, CatalogEntry};
use updater_core::backup::Pruned;
use updater_core::history::BackupRecord;
use updater_core::pipeline::RestoreRequest;

use crate::components::Components;
use crate::error::{CliError, Result};
use crate::output::Outcome;
use crate::terminal::{Progress, can_ask, confirm, human_bytes, needs_yes};

fn status_str(status: BackupStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status:?}").to_lowercase())
}

/// A catalogue entry as the core's [`BackupView`](updater_core::history::BackupView)
/// (one serializer with the web API), with what only the catalogue knows:
/// its status and whether its files are all there.
fn entry_json(entry: &CatalogEntry) -> serde_json::Value {
    let mut view = BackupRecord::of(&entry.record.backup).view();
    view.size = entry.size();
    view.description = entry.notes().map(str::to_string);
    view.restorable = entry.restorable;
    let mut value = serde_json::to_value(view).unwrap_or(serde_json::Value::Null);
    value["status"] = json!(status_str(entry.status()));
    value
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
    let strategy = c.manual_backup();
    let progress = Progress::to_stderr();
    let created =
        c.updater
            .create_backup(strategy.as_ref(), description, &c.initiated_by(), &progress);
    progress.finish();
    let backup = created?;
    let entry = c.files_backup.catalog().get(&backup.id)?;
    Ok(Outcome::ok(
        json!({ "backup": entry_json(&entry) }),
        format!(
            "Created and verified backup {}\n{}\n{}",
            backup.id,
            LIST_HEADER,
            entry_line(&entry)
        ),
    ))
}

/// The header of `backup list`, aligned with [`entry_line`].
const LIST_HEADER: &str =
    "ID                                         CREATED (UTC)        VERSION        SIZE  STATUS";

pub(super) fn list(c: &Components) -> Result<Outcome> {
    let entries = c.files_backup.catalog().list()?;
    let text = if entries.is_empty() {
        format!(
            "No backups in {}.",
            c.files_backup.catalog().root().display()
        )
    } else {
        std::iter::once(LIST_HEADER.to_string())
            .chain(entries.iter().map(entry_line))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::ok(
        json!({ "backups": entries.iter().map(entry_json).collect::<Vec<_>>() }),
        text,
    ))
}

pub(super) fn restore(
    c: &Components,
    id: &str,
    include_preserved: bool,
    yes: bool,
) -> Result<Outcome> {
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
    let backup = entry.record.backup.clone();
    let current = c.updater.current_version()?;
    let preserved = c
        .updater
        .config()
        .preserved_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut what = format!(
        "Restore backup {id} ({}, version {}, {}) over {} (running {current})?",
        backup.kind.as_str(),
        entry.version(),
        human_bytes(entry.size()),
        c.config.app_dir().display(),
    );
    if backup.kind != updater_core::backup::BackupKind::DatabaseOnly {
        what.push_str(&format!(
            "\n  The application files become the backup's; the replaced ones stay in the kept release (updater rollback).\n  {}",
            if include_preserved {
                format!("Preserved paths ({preserved}) are put back from the backup too.")
            } else {
                format!("Preserved paths ({preserved}) and application data the backup does not hold are kept.")
            }
        ));
    }
    if backup.kind != updater_core::backup::BackupKind::FilesOnly {
        what.push_str("\n  The database is restored from the backup: every write since it was taken is lost (a snapshot of the current database is taken first).");
    }
    confirm(&what, yes)?;
    let strategy = c.strategy_for(backup.kind)?;
    let request = RestoreRequest {
        initiated_by: c.initiated_by(),
        include_preserved,
    };
    let progress = Progress::to_stderr();
    let restored = c
        .updater
        .restore_backup(strategy.as_ref(), &backup, &request, &progress);
    progress.finish();
    let report = restored?;
    let window_ms = u64::try_from(report.maintenance_window.as_millis()).unwrap_or(u64::MAX);
    let mut value = super::update::to_json(&report);
    value["restored"] = json!(id);
    value["version"] = json!(backup.version);
    Ok(Outcome::ok(
        value,
        format!(
            "Restored backup {id}: version {} runs (record #{}, maintenance window {window_ms} ms){}",
            backup.version,
            report.update_id,
            if report.saved_aside.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} replaced local versions saved under {}",
                    report.saved_aside.len(),
                    c.config.state_dir().join("local-changes").display()
                )
            }
        ),
    ))
}

pub(crate) fn cleanup_json(pruned: &[Pruned]) -> serde_json::Value {
    json!({
        "deleted": pruned.iter().flat_map(|p| p.deleted.clone()).collect::<Vec<_>>(),
        "kept": pruned.iter().flat_map(|p| p.kept.clone()).collect::<Vec<_>>(),
        "removed_incomplete": pruned
            .iter()
            .flat_map(|p| p.removed_incomplete.iter().map(|path| path.display().to_string()))
            .collect::<Vec<_>>(),
    })
}

pub(super) fn cleanup(c: &Components, keep: Option<usize>) -> Result<Outcome> {
    let keep = keep.unwrap_or(c.config.file.backup.retention);
    if keep == 0 {
        return Err(CliError::Usage("--keep must be at least 1".into()));
    }
    let pruned = c.updater.prune_backups(Some(keep), &c.initiated_by())?;
    let deleted: Vec<String> = pruned.iter().flat_map(|p| p.deleted.clone()).collect();
    let kept = pruned.iter().map(|p| p.kept.len()).sum::<usize>();
    let incomplete = pruned
        .iter()
        .map(|p| p.removed_incomplete.len())
        .sum::<usize>();
    let text = format!(
        "Deleted {} backup(s){}; kept {kept}{}.",
        deleted.len(),
        if deleted.is_empty() {
            String::new()
        } else {
            format!(" ({})", deleted.join(", "))
        },
        if incomplete > 0 {
            format!("; removed {incomplete} incomplete backup(s) of interrupted runs")
        } else {
            String::new()
        }
    );
    Ok(Outcome::ok(cleanup_json(&pruned), text))
}
