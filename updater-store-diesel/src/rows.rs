//! Records as rows: the parameters bound when writing a record, the row
//! structs read back (`QueryableByName`, the same for every backend), and the
//! conversions between them and `updater_core::history` records.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Nullable, SmallInt, Text};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use updater_core::history::{
    AuditRecord, BackupRecord, CheckStatus, NotificationRecord, NotificationType, UpdateRecord,
    UpdateStatus, VersionCheckRecord,
};
use updater_core::version::Version;

use crate::error::StoreError;
use crate::timestamp::UtcTimestamp;

/// One bound value.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    BigInt(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    SmallInt(i16),
    Timestamp(Option<DateTime<Utc>>),
}

impl Param {
    fn text(value: impl Into<String>) -> Self {
        Param::Text(Some(value.into()))
    }

    fn json(value: Option<&serde_json::Value>) -> Self {
        Param::Text(value.map(serde_json::Value::to_string))
    }
}

/// `sql` with `params` bound in order, for any backend.
pub(crate) fn bind_params<'f, DB>(sql: &str, params: Vec<Param>) -> BoxedSqlQuery<'f, DB, SqlQuery>
where
    DB: diesel::backend::Backend
        + HasSqlType<BigInt>
        + HasSqlType<Text>
        + HasSqlType<Bool>
        + HasSqlType<SmallInt>
        + HasSqlType<UtcTimestamp>,
    i64: ToSql<BigInt, DB>,
    String: ToSql<Text, DB>,
    bool: ToSql<Bool, DB>,
    i16: ToSql<SmallInt, DB>,
    DateTime<Utc>: ToSql<UtcTimestamp, DB>,
{
    let mut query = diesel::sql_query(sql).into_boxed::<DB>();
    for param in params {
        query = match param {
            Param::BigInt(v) => query.bind::<Nullable<BigInt>, _>(v),
            Param::Text(v) => query.bind::<Nullable<Text>, _>(v),
            Param::Bool(v) => query.bind::<Bool, _>(v),
            Param::SmallInt(v) => query.bind::<SmallInt, _>(v),
            Param::Timestamp(v) => query.bind::<Nullable<UtcTimestamp>, _>(v),
        };
    }
    query
}

/// A `u64` as `BIGINT`.
fn big(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        field,
        value,
        max: i64::MAX,
    })
}

/// The parameters of [`UPDATE_COLUMNS`](crate::statements), in order.
pub(crate) fn update_params(update: &UpdateRecord) -> Result<Vec<Param>, StoreError> {
    let steps = serde_json::to_string(&update.steps).map_err(|e| StoreError::Corrupt {
        table: "system_updates".into(),
        id: update.id,
        column: "update_steps",
        reason: e.to_string(),
    })?;
    Ok(vec![
        Param::text(update.version.to_string()),
        Param::Text(update.previous_version.as_ref().map(Version::to_string)),
        Param::Text(update.update_type.map(|t| t.as_str().to_string())),
        Param::text(update.status.as_str()),
        Param::text(update.changelog.clone()),
        Param::Text(update.download_url.clone()),
        Param::Text(update.checksum.clone()),
        Param::BigInt(
            update
                .download_size
                .map(|s| big("download_size", s))
                .transpose()?,
        ),
        Param::text(update.initiated_by.clone()),
        Param::Timestamp(Some(update.started_at)),
        Param::Timestamp(update.completed_at),
        Param::Timestamp(update.failed_at),
        Param::Text(update.error_message.clone()),
        Param::json(update.backup_info.as_ref()),
        Param::Bool(update.auto_update),
        Param::SmallInt(i16::from(update.progress_percentage)),
        Param::text(steps),
        Param::BigInt(
            update
                .maintenance_window_ms
                .map(|ms| big("maintenance_window_ms", ms))
                .transpose()?,
        ),
    ])
}

pub(crate) fn check_params(check: &VersionCheckRecord) -> Vec<Param> {
    vec![
        Param::text(check.current_version.to_string()),
        Param::Text(check.latest_version.as_ref().map(Version::to_string)),
        Param::Bool(check.update_available),
        Param::text(check.check_status.as_str()),
        Param::Text(check.error_message.clone()),
        Param::json(check.release_info.as_ref()),
        Param::Timestamp(Some(check.checked_at)),
    ]
}

pub(crate) fn backup_params(backup: &BackupRecord) -> Result<Vec<Param>, StoreError> {
    Ok(vec![
        Param::BigInt(backup.system_update_id),
        Param::text(backup.backup_id.clone()),
        Param::text(backup.version.to_string()),
        Param::text(backup.backup_type.as_str()),
        Param::Text(backup.database_backup_path.clone()),
        Param::Text(backup.files_backup_path.clone()),
        Param::BigInt(Some(big("backup_size", backup.backup_size)?)),
        Param::Bool(backup.is_restorable),
        Param::Timestamp(Some(backup.created_at)),
        Param::Timestamp(backup.expires_at),
        Param::Text(backup.notes.clone()),
    ])
}

pub(crate) fn notification_params(n: &NotificationRecord) -> Vec<Param> {
    vec![
        Param::text(n.version.to_string()),
        Param::text(n.notification_type.as_str()),
        Param::text(n.message.clone()),
        Param::json(n.metadata.as_ref()),
        Param::Bool(n.is_read),
        Param::Bool(n.is_dismissed),
        Param::Text(n.user_id.clone()),
        Param::Timestamp(n.read_at),
        Param::Timestamp(Some(n.created_at)),
        Param::Text(n.event_id.clone()),
        Param::text(dedup_key(n)),
    ]
}

/// The key of the unique index that deduplicates notifications
/// ([`NotificationRecord::dedup_key`]), hashed with SHA-256 so its length is
/// fixed. A record of the default event `<type>:<version>` (or without an
/// event id, as rows written before schema 2) hashes type, version and user
/// exactly as schema 1 did, so old rows still deduplicate new ones; other
/// events hash the event id and user. `None` (every admin) stays distinct
/// from every user name.
pub(crate) fn dedup_key(n: &NotificationRecord) -> String {
    let user = match &n.user_id {
        Some(user) => format!("user:{user}"),
        None => "every admin".to_string(),
    };
    let default_event =
        updater_core::notify::Notification::default_event_id(n.notification_type, &n.version);
    let mut hash = Sha256::new();
    match n.event_id.as_deref() {
        Some(event) if event != default_event => {
            hash.update(b"event\n");
            hash.update(event);
        }
        _ => {
            hash.update(n.notification_type.as_str());
            hash.update(b"\n");
            hash.update(n.version.to_string());
        }
    }
    hash.update(b"\n");
    hash.update(user);
    hex::encode(hash.finalize())
}

/// The unique key of an outbox event: SHA-256 of its id (any length fits the index).
pub(crate) fn event_key(event_id: &str) -> String {
    hex::encode(Sha256::digest(event_id.as_bytes()))
}

/// `id` of an insert.
#[derive(Debug, QueryableByName)]
pub(crate) struct IdRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
}

/// The version number of the schema table.
#[derive(Debug, QueryableByName)]
pub(crate) struct VersionRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) version: i64,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct UpdateRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Nullable<Text>)]
    previous_version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    update_type: Option<String>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    changelog: String,
    #[diesel(sql_type = Nullable<Text>)]
    download_url: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    checksum: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    download_size: Option<i64>,
    #[diesel(sql_type = Text)]
    initiated_by: String,
    #[diesel(sql_type = UtcTimestamp)]
    started_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<UtcTimestamp>)]
    completed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<UtcTimestamp>)]
    failed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    error_message: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    backup_info: Option<String>,
    #[diesel(sql_type = Bool)]
    auto_update: bool,
    #[diesel(sql_type = SmallInt)]
    progress_percentage: i16,
    #[diesel(sql_type = Text)]
    update_steps: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    maintenance_window_ms: Option<i64>,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct CheckRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    current_version: String,
    #[diesel(sql_type = Nullable<Text>)]
    latest_version: Option<String>,
    #[diesel(sql_type = Bool)]
    update_available: bool,
    #[diesel(sql_type = Text)]
    check_status: String,
    #[diesel(sql_type = Nullable<Text>)]
    error_message: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    release_info: Option<String>,
    #[diesel(sql_type = UtcTimestamp)]
    checked_at: DateTime<Utc>,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct BackupRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    system_update_id: Option<i64>,
    #[diesel(sql_type = Text)]
    backup_id: String,
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Text)]
    backup_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    database_backup_path: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    files_backup_path: Option<String>,
    #[diesel(sql_type = BigInt)]
    backup_size: i64,
    #[diesel(sql_type = Bool)]
    is_restorable: bool,
    #[diesel(sql_type = UtcTimestamp)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<UtcTimestamp>)]
    expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    notes: Option<String>,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct NotificationRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Text)]
    notification_type: String,
    #[diesel(sql_type = Text)]
    message: String,
    #[diesel(sql_type = Nullable<Text>)]
    metadata: Option<String>,
    #[diesel(sql_type = Bool)]
    is_read: bool,
    #[diesel(sql_type = Bool)]
    is_dismissed: bool,
    #[diesel(sql_type = Nullable<Text>)]
    user_id: Option<String>,
    #[diesel(sql_type = Nullable<UtcTimestamp>)]
    read_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = UtcTimestamp)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    event_id: Option<String>,
}

/// The parameters of an audit record, in `AUDIT_COLUMNS` order.
pub(crate) fn audit_params(a: &AuditRecord) -> Vec<Param> {
    vec![
        Param::Timestamp(Some(a.at)),
        Param::text(a.user.clone()),
        Param::text(a.action.clone()),
        Param::Text(a.target.clone()),
        Param::Bool(a.success),
        Param::Text(a.detail.clone()),
    ]
}

#[derive(Debug, QueryableByName)]
pub(crate) struct AuditRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = UtcTimestamp)]
    at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    user_name: String,
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = Nullable<Text>)]
    target: Option<String>,
    #[diesel(sql_type = Bool)]
    success: bool,
    #[diesel(sql_type = Nullable<Text>)]
    detail: Option<String>,
}

impl AuditRow {
    pub(crate) fn into_record(self) -> AuditRecord {
        AuditRecord {
            id: self.id,
            at: self.at,
            user: self.user_name,
            action: self.action,
            target: self.target,
            success: self.success,
            detail: self.detail,
        }
    }
}

/// Reads the columns of one row of `table`, naming the column that is bad.
pub(crate) struct Decoder<'a> {
    pub(crate) table: &'a str,
    pub(crate) id: i64,
}

impl Decoder<'_> {
    pub(crate) fn corrupt(&self, column: &'static str, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            table: self.table.to_string(),
            id: self.id,
            column,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn version(&self, column: &'static str, text: &str) -> Result<Version, StoreError> {
        Version::parse(text).map_err(|e| self.corrupt(column, e))
    }

    pub(crate) fn opt_version(
        &self,
        column: &'static str,
        text: Option<&str>,
    ) -> Result<Option<Version>, StoreError> {
        text.map(|t| self.version(column, t)).transpose()
    }

    pub(crate) fn unsigned(&self, column: &'static str, value: i64) -> Result<u64, StoreError> {
        u64::try_from(value).map_err(|_| self.corrupt(column, format!("negative value {value}")))
    }

    pub(crate) fn json(
        &self,
        column: &'static str,
        text: Option<&str>,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        text.map(|t| serde_json::from_str(t).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }

    /// A `snake_case` name of a core enum that has no `parse` of its own.
    pub(crate) fn name<T: DeserializeOwned>(
        &self,
        column: &'static str,
        text: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_value(serde_json::Value::String(text.to_string()))
            .map_err(|_| self.corrupt(column, format!("unknown value {text:?}")))
    }
}

impl UpdateRow {
    pub(crate) fn into_record(self, table: &str) -> Result<UpdateRecord, StoreError> {
        let d = Decoder { table, id: self.id };
        Ok(UpdateRecord {
            id: self.id,
            version: d.version("version", &self.version)?,
            previous_version: d
                .opt_version("previous_version", self.previous_version.as_deref())?,
            update_type: self
                .update_type
                .map(|t| d.name("update_type", &t))
                .transpose()?,
            status: UpdateStatus::parse(&self.status).map_err(|e| d.corrupt("status", e))?,
            changelog: self.changelog,
            download_url: self.download_url,
            checksum: self.checksum,
            download_size: self
                .download_size
                .map(|s| d.unsigned("download_size", s))
                .transpose()?,
            initiated_by: self.initiated_by,
            started_at: self.started_at,
            completed_at: self.completed_at,
            failed_at: self.failed_at,
            error_message: self.error_message,
            backup_info: d.json("backup_info", self.backup_info.as_deref())?,
            auto_update: self.auto_update,
            progress_percentage: u8::try_from(self.progress_percentage)
                .map_err(|_| d.corrupt("progress_percentage", self.progress_percentage))?,
            steps: serde_json::from_str(&self.update_steps)
                .map_err(|e| d.corrupt("update_steps", e))?,
            maintenance_window_ms: self
                .maintenance_window_ms
                .map(|ms| d.unsigned("maintenance_window_ms", ms))
                .transpose()?,
        })
    }
}

impl CheckRow {
    pub(crate) fn into_record(self, table: &str) -> Result<VersionCheckRecord, StoreError> {
        let d = Decoder { table, id: self.id };
        Ok(VersionCheckRecord {
            id: self.id,
            current_version: d.version("current_version", &self.current_version)?,
            latest_version: d.opt_version("latest_version", self.latest_version.as_deref())?,
            update_available: self.update_available,
            check_status: d.name::<CheckStatus>("check_status", &self.check_status)?,
            error_message: self.error_message,
            release_info: d.json("release_info", self.release_info.as_deref())?,
            checked_at: self.checked_at,
        })
    }
}

impl BackupRow {
    pub(crate) fn into_record(self, table: &str) -> Result<BackupRecord, StoreError> {
        let d = Decoder { table, id: self.id };
        Ok(BackupRecord {
            id: self.id,
            system_update_id: self.system_update_id,
            backup_id: self.backup_id,
            version: d.version("version", &self.version)?,
            backup_type: d.name("backup_type", &self.backup_type)?,
            database_backup_path: self.database_backup_path,
            files_backup_path: self.files_backup_path,
            backup_size: d.unsigned("backup_size", self.backup_size)?,
            is_restorable: self.is_restorable,
            created_at: self.created_at,
            expires_at: self.expires_at,
            notes: self.notes,
        })
    }
}

impl NotificationRow {
    pub(crate) fn into_record(self, table: &str) -> Result<NotificationRecord, StoreError> {
        let d = Decoder { table, id: self.id };
        Ok(NotificationRecord {
            id: self.id,
            version: d.version("version", &self.version)?,
            notification_type: NotificationType::parse(&self.notification_type)
                .map_err(|e| d.corrupt("notification_type", e))?,
            message: self.message,
            metadata: d.json("metadata", self.metadata.as_deref())?,
            is_read: self.is_read,
            is_dismissed: self.is_dismissed,
            user_id: self.user_id,
            read_at: self.read_at,
            created_at: self.created_at,
            event_id: self.event_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(user: Option<&str>) -> NotificationRecord {
        NotificationRecord {
            id: 0,
            version: Version::new(1, 2, 3),
            notification_type: NotificationType::UpdateAvailable,
            message: "m".into(),
            metadata: None,
            is_read: false,
            is_dismissed: false,
            user_id: user.map(str::to_string),
            read_at: None,
            created_at: Utc::now(),
            event_id: None,
        }
    }

    #[test]
    fn the_default_event_keys_like_a_row_without_event_id() {
        let old = notification(Some("alice"));
        let new = NotificationRecord {
            event_id: Some("update_available:1.2.3".into()),
            ..old.clone()
        };
        assert_eq!(dedup_key(&old), dedup_key(&new));
        let other = NotificationRecord {
            event_id: Some("update-4:update_available".into()),
            ..old.clone()
        };
        assert_ne!(dedup_key(&old), dedup_key(&other));
    }

    #[test]
    fn dedup_key_separates_every_admin_from_any_user_name() {
        let keys: Vec<String> = [None, Some(""), Some("every admin"), Some("alice")]
            .into_iter()
            .map(|u| dedup_key(&notification(u)))
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn dedup_key_ignores_message_and_flags() {
        let a = notification(Some("alice"));
        let b = NotificationRecord {
            message: "other".into(),
            is_read: true,
            ..a.clone()
        };
        assert_eq!(dedup_key(&a), dedup_key(&b));
    }

    #[test]
    fn sizes_beyond_bigint_are_refused_not_wrapped() {
        let mut update = UpdateRecord::new(Version::new(1, 0, 0), "t");
        update.download_size = Some(u64::MAX);
        assert!(matches!(
            update_params(&update),
            Err(StoreError::OutOfRange {
                field: "download_size",
                ..
            })
        ));
    }
}
