//! The SQL of every store operation, built once per store for its backend
//! and table prefix. Values are always bound, never formatted into the text.

use crate::schema::{Backend, TableNames, TablePrefix};

const UPDATE_COLUMNS: [&str; 18] = [
    "version",
    "previous_version",
    "update_type",
    "status",
    "changelog",
    "download_url",
    "checksum",
    "download_size",
    "initiated_by",
    "started_at",
    "completed_at",
    "failed_at",
    "error_message",
    "backup_info",
    "auto_update",
    "progress_percentage",
    "update_steps",
    "maintenance_window_ms",
];
const UPDATE_JSON: [&str; 2] = ["backup_info", "update_steps"];

const CHECK_COLUMNS: [&str; 7] = [
    "current_version",
    "latest_version",
    "update_available",
    "check_status",
    "error_message",
    "release_info",
    "checked_at",
];
const CHECK_JSON: [&str; 1] = ["release_info"];

const BACKUP_COLUMNS: [&str; 11] = [
    "system_update_id",
    "backup_id",
    "version",
    "backup_type",
    "database_backup_path",
    "files_backup_path",
    "backup_size",
    "is_restorable",
    "created_at",
    "expires_at",
    "notes",
];

const NOTIFICATION_COLUMNS: [&str; 10] = [
    "version",
    "notification_type",
    "message",
    "metadata",
    "is_read",
    "is_dismissed",
    "user_id",
    "read_at",
    "created_at",
    "event_id",
];
const NOTIFICATION_JSON: [&str; 1] = ["metadata"];

const AUDIT_COLUMNS: [&str; 6] = ["at", "user_name", "action", "target", "success", "detail"];

/// The statements of one store.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) backend: Backend,
    pub(crate) tables: TableNames,
    pub(crate) insert_check: String,
    pub(crate) latest_check: String,
    pub(crate) insert_update: String,
    pub(crate) save_update: String,
    pub(crate) update_by_id: String,
    pub(crate) updates_page: String,
    pub(crate) insert_backup: String,
    pub(crate) backups_page: String,
    pub(crate) mark_backup_unrestorable: String,
    pub(crate) insert_notification: String,
    pub(crate) find_notification: String,
    /// Followed by the filter's `WHERE` and [`Self::notifications_order`].
    pub(crate) select_notifications: String,
    pub(crate) notifications_order: &'static str,
    pub(crate) mark_notification_read: String,
    pub(crate) dismiss_notification: String,
    /// `SELECT` of every column of each record table, matching no row: they
    /// check that an existing table has the store's columns.
    pub(crate) probe_updates: String,
    pub(crate) probe_checks: String,
    pub(crate) probe_backups: String,
    pub(crate) probe_notifications: String,
    /// The notification outbox.
    pub(crate) outbox: crate::outbox::OutboxSql,
    /// One-off scheduled updates.
    pub(crate) schedule: crate::schedule::ScheduleSql,
    pub(crate) probe_audit: String,
    pub(crate) insert_audit: String,
    pub(crate) audit_page: String,
}

fn select(backend: Backend, table: &str, columns: &[&str], json: &[&str]) -> String {
    let list: Vec<String> = std::iter::once("id".to_string())
        .chain(columns.iter().map(|c| {
            if json.contains(c) {
                backend.json_column(c)
            } else {
                (*c).to_string()
            }
        }))
        .collect();
    format!("SELECT {} FROM {table}", list.join(", "))
}

fn insert(
    backend: Backend,
    table: &str,
    columns: &[&str],
    json: &[&str],
    extra: &[&str],
) -> String {
    let names: Vec<&str> = columns.iter().chain(extra).copied().collect();
    let values: Vec<&str> = names
        .iter()
        .map(|c| {
            if json.contains(c) {
                backend.json_param()
            } else {
                "?"
            }
        })
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        values.join(", ")
    )
}

fn returning_id(backend: Backend, sql: String) -> String {
    if backend.has_returning() {
        sql + " RETURNING id"
    } else {
        sql
    }
}

impl Statements {
    pub(crate) fn new(backend: Backend, prefix: &TablePrefix) -> Self {
        let tables = prefix.table_names();
        let finish = |sql: String| backend.placeholders(&sql);

        let select_updates = select(
            backend,
            &tables.system_updates,
            &UPDATE_COLUMNS,
            &UPDATE_JSON,
        );
        let select_checks = select(backend, &tables.version_checks, &CHECK_COLUMNS, &CHECK_JSON);
        let select_backups = select(backend, &tables.update_backups, &BACKUP_COLUMNS, &[]);
        let select_notifications = select(
            backend,
            &tables.update_notifications,
            &NOTIFICATION_COLUMNS,
            &NOTIFICATION_JSON,
        );

        let assignments: Vec<String> = UPDATE_COLUMNS
            .iter()
            .map(|c| {
                let param = if UPDATE_JSON.contains(c) {
                    backend.json_param()
                } else {
                    "?"
                };
                format!("{c} = {param}")
            })
            .collect();

        let insert_notification = insert(
            backend,
            &tables.update_notifications,
            &NOTIFICATION_COLUMNS,
            &NOTIFICATION_JSON,
            &["dedup_key"],
        );
        let insert_notification = match backend {
            // The store looks for the duplicate first (so no id is spent on it);
            // a duplicate inserted meanwhile by another process returns no row.
            Backend::Sqlite | Backend::Postgres => {
                insert_notification + " ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
            }
            // A duplicate inserted meanwhile: the unique index refuses it and the
            // store maps that error to `None`.
            Backend::Mysql => insert_notification,
        };

        let probe_updates = format!("{select_updates} WHERE 1 = 0");
        let probe_checks = format!("{select_checks} WHERE 1 = 0");
        let probe_backups = format!("{select_backups} WHERE 1 = 0");
        let probe_notifications = format!("{select_notifications} WHERE 1 = 0");
        let select_audit = select(backend, &tables.update_audit, &AUDIT_COLUMNS, &[]);
        let probe_audit = format!("{select_audit} WHERE 1 = 0");

        Statements {
            backend,
            insert_check: finish(returning_id(
                backend,
                insert(
                    backend,
                    &tables.version_checks,
                    &CHECK_COLUMNS,
                    &CHECK_JSON,
                    &[],
                ),
            )),
            latest_check: format!("{select_checks} ORDER BY checked_at DESC, id DESC LIMIT 1"),
            insert_update: finish(returning_id(
                backend,
                insert(
                    backend,
                    &tables.system_updates,
                    &UPDATE_COLUMNS,
                    &UPDATE_JSON,
                    &[],
                ),
            )),
            save_update: finish(format!(
                "UPDATE {} SET {} WHERE id = ?",
                tables.system_updates,
                assignments.join(", ")
            )),
            update_by_id: finish(format!("{select_updates} WHERE id = ?")),
            updates_page: finish(format!(
                "{select_updates} ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"
            )),
            insert_backup: finish(returning_id(
                backend,
                insert(backend, &tables.update_backups, &BACKUP_COLUMNS, &[], &[]),
            )),
            backups_page: finish(format!(
                "{select_backups} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
            )),
            mark_backup_unrestorable: finish(format!(
                "UPDATE {} SET is_restorable = ?, notes = CASE WHEN notes IS NULL OR notes = '' THEN ? ELSE {} END WHERE backup_id = ?",
                tables.update_backups,
                backend.concat("notes", "?"),
            )),
            insert_notification: finish(insert_notification),
            find_notification: finish(format!(
                "SELECT id FROM {} WHERE dedup_key = ?",
                tables.update_notifications
            )),
            select_notifications,
            notifications_order: " ORDER BY created_at DESC, id DESC",
            // MySQL assigns left to right with updated values: `read_at` first.
            mark_notification_read: finish(format!(
                "UPDATE {} SET read_at = CASE WHEN is_read THEN read_at ELSE ? END, is_read = ? WHERE id = ?",
                tables.update_notifications
            )),
            dismiss_notification: finish(format!(
                "UPDATE {} SET is_dismissed = ? WHERE id = ?",
                tables.update_notifications
            )),
            probe_updates,
            probe_checks,
            probe_backups,
            probe_notifications,
            outbox: crate::outbox::OutboxSql::new(backend, &tables),
            schedule: crate::schedule::ScheduleSql::new(backend, &tables),
            probe_audit,
            insert_audit: finish(returning_id(
                backend,
                insert(backend, &tables.update_audit, &AUDIT_COLUMNS, &[], &[]),
            )),
            audit_page: finish(format!(
                "{select_audit} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?"
            )),
            tables,
        }
    }
}
