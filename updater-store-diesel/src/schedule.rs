//! One-off scheduled updates (`updater apply --at`) in
//! `<prefix>scheduled_updates`: [`updater_core::automation::ScheduleStore`]
//! for [`DieselHistoryStore`], so the intent survives restarts and every
//! process on the same history (the CLI, `schedule`, the web console) sees
//! the same list.
//!
//! Cancelling is one `UPDATE ... WHERE status = 'pending'`: a cancel racing
//! with the scheduler starting the update either wins (the update never
//! starts) or finds it no longer pending and says so.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};
use updater_core::automation::{ScheduleStatus, ScheduleStore, ScheduledUpdate};

use crate::connection::on_connection;
use crate::error::StoreError;
use crate::rows::{Decoder, Param, bind_params};
use crate::schema::{Backend, TableNames};
use crate::store::DieselHistoryStore;
use crate::timestamp::UtcTimestamp;

const COLUMNS: &str =
    "id, run_at, version, created_by, created_at, status, attempts, update_id, message";

/// The schedule statements of one store.
#[derive(Debug, Clone)]
pub(crate) struct ScheduleSql {
    insert: String,
    pending: String,
    all: String,
    by_id: String,
    save: String,
    cancel: String,
    /// Every column, matching no row.
    pub(crate) probe: String,
}

impl ScheduleSql {
    pub(crate) fn new(backend: Backend, tables: &TableNames) -> Self {
        let table = &tables.scheduled_updates;
        let finish = |sql: String| backend.placeholders(&sql);
        let mut insert = format!(
            "INSERT INTO {table} (run_at, version, created_by, created_at, status, attempts, update_id, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        if backend.has_returning() {
            insert.push_str(" RETURNING id");
        }
        let select = format!("SELECT {COLUMNS} FROM {table}");
        ScheduleSql {
            insert: finish(insert),
            pending: finish(format!("{select} WHERE status = ? ORDER BY run_at, id")),
            all: format!("{select} ORDER BY run_at, id"),
            by_id: finish(format!("{select} WHERE id = ?")),
            save: finish(format!(
                "UPDATE {table} SET run_at = ?, version = ?, created_by = ?, created_at = ?, status = ?, attempts = ?, update_id = ?, message = ? WHERE id = ?"
            )),
            cancel: finish(format!(
                "UPDATE {table} SET status = ? WHERE id = ? AND status = ?"
            )),
            probe: format!("{select} WHERE 1 = 0"),
        }
    }
}

/// One row of `scheduled_updates`.
#[derive(Debug, QueryableByName)]
pub(crate) struct ScheduleRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = UtcTimestamp)]
    run_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    version: Option<String>,
    #[diesel(sql_type = Text)]
    created_by: String,
    #[diesel(sql_type = UtcTimestamp)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    update_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    message: Option<String>,
}

impl ScheduleRow {
    fn into_entry(self, table: &str) -> Result<ScheduledUpdate, StoreError> {
        let d = Decoder { table, id: self.id };
        Ok(ScheduledUpdate {
            id: self.id,
            at: self.run_at,
            version: d.opt_version("version", self.version.as_deref())?,
            created_by: self.created_by,
            created_at: self.created_at,
            status: ScheduleStatus::parse(&self.status).map_err(|e| d.corrupt("status", e))?,
            attempts: u32::try_from(self.attempts)
                .map_err(|_| d.corrupt("attempts", format!("bad count {}", self.attempts)))?,
            update_id: self.update_id,
            message: self.message,
        })
    }
}

fn entry_params(entry: &ScheduledUpdate) -> Vec<Param> {
    vec![
        Param::Timestamp(Some(entry.at)),
        Param::Text(entry.version.as_ref().map(ToString::to_string)),
        Param::Text(Some(entry.created_by.clone())),
        Param::Timestamp(Some(entry.created_at)),
        Param::Text(Some(entry.status.as_str().to_string())),
        Param::BigInt(Some(i64::from(entry.attempts))),
        Param::BigInt(entry.update_id),
        Param::Text(entry.message.clone()),
    ]
}

impl DieselHistoryStore {
    fn schedule_rows(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<ScheduledUpdate>, StoreError> {
        let table = &self.sql.tables.scheduled_updates;
        let rows = on_connection!(self, read, "list scheduled updates", table, |conn| {
            bind_params(sql, params.clone()).load::<ScheduleRow>(conn)
        })?;
        rows.into_iter().map(|row| row.into_entry(table)).collect()
    }

    fn add_scheduled(&self, entry: &ScheduledUpdate) -> Result<i64, StoreError> {
        let table = self.sql.tables.scheduled_updates.clone();
        self.insert(
            "schedule update",
            &table,
            &self.sql.schedule.insert,
            entry_params(entry),
        )
    }

    fn list_scheduled(&self, include_finished: bool) -> Result<Vec<ScheduledUpdate>, StoreError> {
        let sql = &self.sql.schedule;
        if include_finished {
            self.schedule_rows(&sql.all, Vec::new())
        } else {
            self.schedule_rows(
                &sql.pending,
                vec![Param::Text(Some(
                    ScheduleStatus::Pending.as_str().to_string(),
                ))],
            )
        }
    }

    fn save_scheduled(&self, entry: &ScheduledUpdate) -> Result<(), StoreError> {
        let mut params = entry_params(entry);
        params.push(Param::BigInt(Some(entry.id)));
        let table = self.sql.tables.scheduled_updates.clone();
        self.change(
            "save scheduled update",
            &table,
            &self.sql.schedule.save,
            params,
            || format!("scheduled update {}", entry.id),
        )
    }

    fn cancel_scheduled(&self, id: i64) -> Result<ScheduledUpdate, StoreError> {
        let sql = &self.sql.schedule;
        let table = &self.sql.tables.scheduled_updates;
        let pending = ScheduleStatus::Pending.as_str().to_string();
        let changed = on_connection!(self, write, "cancel scheduled update", table, |conn| {
            bind_params(
                &sql.cancel,
                vec![
                    Param::Text(Some(ScheduleStatus::Cancelled.as_str().to_string())),
                    Param::BigInt(Some(id)),
                    Param::Text(Some(pending.clone())),
                ],
            )
            .execute(conn)
        })?;
        let entry = self
            .schedule_rows(&sql.by_id, vec![Param::BigInt(Some(id))])?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound {
                what: format!("scheduled update {id}"),
            })?;
        if changed == 0 {
            return Err(StoreError::Refused {
                operation: "cancel",
                reason: format!("scheduled update {id} is {} already", entry.status.as_str()),
            });
        }
        Ok(entry)
    }
}

impl ScheduleStore for DieselHistoryStore {
    fn add(&self, entry: &ScheduledUpdate) -> updater_core::Result<i64> {
        Ok(self.add_scheduled(entry)?)
    }

    fn list(&self, include_finished: bool) -> updater_core::Result<Vec<ScheduledUpdate>> {
        Ok(self.list_scheduled(include_finished)?)
    }

    fn save(&self, entry: &ScheduledUpdate) -> updater_core::Result<()> {
        Ok(self.save_scheduled(entry)?)
    }

    fn cancel(&self, id: i64) -> updater_core::Result<ScheduledUpdate> {
        Ok(self.cancel_scheduled(id)?)
    }
}
