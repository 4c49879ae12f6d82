//! The notification outbox of `updater_core::outbox` in the same database
//! as the history: `<prefix>notification_events` (one row per event, unique
//! by event id) and `<prefix>notification_deliveries` (one row per event and
//! channel: pending, attempts, next attempt, last error, delivered at, and
//! the claim of the deliverer working on it).
//!
//! Claims are race-free across processes without locking tables: due rows
//! are selected, then each is taken by an `UPDATE ... WHERE` that repeats the
//! conditions (not delivered, lease free); the database applies one such
//! update per row at a time, so only one claimer sees it succeed.

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use updater_core::history::NotificationType;
use updater_core::notify::Notification;
use updater_core::outbox::{
    AttemptOutcome, ClaimRequest, Delivery, DeliveryFilter, DeliveryStatus, Enqueued,
    NotificationOutbox, OutboxEvent,
};

use crate::connection::on_connection;
use crate::error::StoreError;
use crate::rows::{Decoder, IdRow, Param, bind_params, event_key};
use crate::schema::{Backend, TableNames};
use crate::store::DieselHistoryStore;
use crate::timestamp::UtcTimestamp;

/// The outbox statements of one store.
#[derive(Debug, Clone)]
pub(crate) struct OutboxSql {
    find_event: String,
    insert_event: String,
    find_delivery: String,
    insert_delivery: String,
    /// Followed by ` AND channel IN (...)`, the order and the limit.
    due: String,
    take: String,
    finish_delivered: String,
    finish_retry: String,
    finish_give_up: String,
    exists: String,
    /// Followed by the filter's `WHERE`, [`Self::order`] and `LIMIT ?`.
    select: String,
    /// Every column of both tables, matching no row.
    pub(crate) probe: String,
    backend: Backend,
}

impl OutboxSql {
    pub(crate) fn new(backend: Backend, tables: &TableNames) -> Self {
        let events = &tables.notification_events;
        let deliveries = &tables.notification_deliveries;
        let finish = |sql: String| backend.placeholders(&sql);
        let on_conflict = |sql: String, columns: &str| match backend {
            Backend::Sqlite | Backend::Postgres => {
                format!("{sql} ON CONFLICT ({columns}) DO NOTHING")
            }
            Backend::Mysql => sql,
        };
        let insert_event = on_conflict(
            format!(
                "INSERT INTO {events} (event_key, event_id, notification_type, version, message, metadata, created_at) VALUES (?, ?, ?, ?, ?, {}, ?)",
                backend.json_param()
            ),
            "event_key",
        );
        let metadata = match backend {
            Backend::Postgres => "CAST(e.metadata AS TEXT) AS metadata",
            Backend::Sqlite | Backend::Mysql => "e.metadata AS metadata",
        };
        let select = format!(
            "SELECT d.id AS id, d.channel AS channel, d.status AS status, d.attempts AS attempts, \
             d.next_attempt_at AS next_attempt_at, d.last_error AS last_error, \
             d.delivered_at AS delivered_at, d.claimed_until AS claimed_until, \
             e.id AS event_ref, e.event_id AS event_id, e.notification_type AS notification_type, \
             e.version AS version, e.message AS message, {metadata}, e.created_at AS created_at \
             FROM {deliveries} d JOIN {events} e ON e.id = d.event_ref"
        );
        let finish_common = "attempts = attempts + 1, claim_token = NULL, claimed_until = NULL";
        let claimed_by = "WHERE id = ? AND status = ? AND claim_token = ?";
        OutboxSql {
            find_event: finish(format!("SELECT id FROM {events} WHERE event_key = ?")),
            insert_event: finish(insert_event),
            find_delivery: finish(format!(
                "SELECT id FROM {deliveries} WHERE event_ref = ? AND channel = ?"
            )),
            insert_delivery: finish(on_conflict(
                format!(
                    "INSERT INTO {deliveries} (event_ref, channel, status, attempts, next_attempt_at) VALUES (?, ?, ?, 0, ?)"
                ),
                "event_ref, channel",
            )),
            due: format!(
                "SELECT id FROM {deliveries} WHERE status = ? AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"
            ),
            take: finish(format!(
                "UPDATE {deliveries} SET claim_token = ?, claimed_until = ? WHERE id = ? AND status = ? AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"
            )),
            finish_delivered: finish(format!(
                "UPDATE {deliveries} SET {finish_common}, status = ?, delivered_at = ? {claimed_by}"
            )),
            finish_retry: finish(format!(
                "UPDATE {deliveries} SET {finish_common}, last_error = ?, next_attempt_at = ? {claimed_by}"
            )),
            finish_give_up: finish(format!(
                "UPDATE {deliveries} SET {finish_common}, status = ?, last_error = ?, next_attempt_at = ? {claimed_by}"
            )),
            exists: finish(format!("SELECT id FROM {deliveries} WHERE id = ?")),
            probe: format!("{select} WHERE 1 = 0"),
            select,
            backend,
        }
    }
}

/// One delivery joined with its event.
#[derive(Debug, QueryableByName)]
pub(crate) struct DeliveryRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = UtcTimestamp)]
    next_attempt_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<UtcTimestamp>)]
    delivered_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<UtcTimestamp>)]
    claimed_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    event_ref: i64,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    notification_type: String,
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Text)]
    message: String,
    #[diesel(sql_type = Nullable<Text>)]
    metadata: Option<String>,
    #[diesel(sql_type = UtcTimestamp)]
    created_at: DateTime<Utc>,
}

impl DeliveryRow {
    fn into_delivery(self, table: &str) -> Result<Delivery, StoreError> {
        let d = Decoder { table, id: self.id };
        Ok(Delivery {
            id: self.id,
            event: OutboxEvent {
                id: self.event_ref,
                notification: Notification {
                    kind: NotificationType::parse(&self.notification_type)
                        .map_err(|e| d.corrupt("notification_type", e))?,
                    version: d.version("version", &self.version)?,
                    message: self.message,
                    metadata: d.json("metadata", self.metadata.as_deref())?,
                    event_id: self.event_id,
                },
                created_at: self.created_at,
            },
            channel: self.channel,
            status: DeliveryStatus::parse(&self.status).map_err(|e| d.corrupt("status", e))?,
            attempts: u32::try_from(self.attempts)
                .map_err(|_| d.corrupt("attempts", format!("bad count {}", self.attempts)))?,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            delivered_at: self.delivered_at,
            claimed_until: self.claimed_until,
        })
    }
}

fn id_of(result: Vec<IdRow>) -> Option<i64> {
    result.first().map(|row| row.id)
}

/// A unique violation (MySQL has no `ON CONFLICT`): the row exists.
fn exists_already<T>(result: diesel::QueryResult<T>) -> diesel::QueryResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
        Err(other) => Err(other),
    }
}

impl DieselHistoryStore {
    fn outbox_sql(&self) -> &OutboxSql {
        &self.sql.outbox
    }

    fn enqueue(
        &self,
        n: &Notification,
        channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<Enqueued, StoreError> {
        let sql = self.outbox_sql();
        let table = &self.sql.tables.notification_events;
        let key = event_key(&n.event_id);
        let event_params = vec![
            Param::Text(Some(key.clone())),
            Param::Text(Some(n.event_id.clone())),
            Param::Text(Some(n.kind.as_str().to_string())),
            Param::Text(Some(n.version.to_string())),
            Param::Text(Some(n.message.clone())),
            Param::Text(n.metadata.as_ref().map(serde_json::Value::to_string)),
            Param::Timestamp(Some(now)),
        ];
        let pending = DeliveryStatus::Pending.as_str();
        on_connection!(self, write, "enqueue notification", table, |conn| {
            conn.transaction(|conn| {
                let find = |conn: &mut _| {
                    bind_params(&sql.find_event, vec![Param::Text(Some(key.clone()))])
                        .load::<IdRow>(conn)
                        .map(id_of)
                };
                let (event, new_event) = match find(conn)? {
                    Some(id) => (id, false),
                    None => {
                        // Another process may insert it meanwhile: then ours is ignored.
                        let inserted = exists_already(
                            bind_params(&sql.insert_event, event_params.clone()).execute(conn),
                        )?
                        .unwrap_or(0);
                        let id = find(conn)?.ok_or(DieselError::NotFound)?;
                        (id, inserted > 0)
                    }
                };
                let mut new_channels = Vec::new();
                for channel in channels {
                    if new_channels.contains(channel) {
                        continue;
                    }
                    let known = bind_params(
                        &sql.find_delivery,
                        vec![
                            Param::BigInt(Some(event)),
                            Param::Text(Some(channel.clone())),
                        ],
                    )
                    .load::<IdRow>(conn)?;
                    if !known.is_empty() {
                        continue;
                    }
                    let inserted = exists_already(
                        bind_params(
                            &sql.insert_delivery,
                            vec![
                                Param::BigInt(Some(event)),
                                Param::Text(Some(channel.clone())),
                                Param::Text(Some(pending.to_string())),
                                Param::Timestamp(Some(now)),
                            ],
                        )
                        .execute(conn),
                    )?
                    .unwrap_or(0);
                    if inserted > 0 {
                        new_channels.push(channel.clone());
                    }
                }
                Ok(Enqueued {
                    event,
                    new_event,
                    new_channels,
                })
            })
        })
    }

    fn claim(&self, request: &ClaimRequest) -> Result<Vec<Delivery>, StoreError> {
        let sql = self.outbox_sql();
        let table = &self.sql.tables.notification_deliveries;
        let pending = DeliveryStatus::Pending.as_str().to_string();
        let mut due = sql.due.clone();
        let mut due_params = vec![
            Param::Text(Some(pending.clone())),
            Param::Timestamp(Some(request.now)),
            Param::Timestamp(Some(request.now)),
        ];
        if let Some(channels) = &request.channels {
            if channels.is_empty() {
                return Ok(Vec::new());
            }
            due.push_str(&format!(
                " AND channel IN ({})",
                vec!["?"; channels.len()].join(", ")
            ));
            due_params.extend(channels.iter().map(|c| Param::Text(Some(c.clone()))));
        }
        due.push_str(" ORDER BY next_attempt_at, id LIMIT ?");
        due_params.push(Param::BigInt(Some(
            i64::try_from(request.limit).unwrap_or(i64::MAX),
        )));
        let due = sql.backend.placeholders(&due);
        let until = request.now + request.lease;
        let select = sql
            .backend
            .placeholders(&format!("{} WHERE d.id = ?", sql.select));
        let rows = on_connection!(self, write, "claim deliveries", table, |conn| {
            let candidates = bind_params(&due, due_params.clone()).load::<IdRow>(conn)?;
            let mut rows = Vec::new();
            for candidate in candidates {
                let taken = bind_params(
                    &sql.take,
                    vec![
                        Param::Text(Some(request.token.clone())),
                        Param::Timestamp(Some(until)),
                        Param::BigInt(Some(candidate.id)),
                        Param::Text(Some(pending.clone())),
                        Param::Timestamp(Some(request.now)),
                        Param::Timestamp(Some(request.now)),
                    ],
                )
                .execute(conn)?;
                if taken == 1 {
                    rows.extend(
                        bind_params(&select, vec![Param::BigInt(Some(candidate.id))])
                            .load::<DeliveryRow>(conn)?,
                    );
                }
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|row| row.into_delivery(table))
            .collect()
    }

    fn finish(
        &self,
        id: i64,
        token: &str,
        at: DateTime<Utc>,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let sql = self.outbox_sql();
        let table = &self.sql.tables.notification_deliveries;
        let text = |s: &str| Param::Text(Some(s.to_string()));
        let (statement, mut params) = match outcome {
            AttemptOutcome::Delivered => (
                &sql.finish_delivered,
                vec![
                    text(DeliveryStatus::Delivered.as_str()),
                    Param::Timestamp(Some(at)),
                ],
            ),
            AttemptOutcome::Retry {
                error,
                next_attempt_at,
            } => (
                &sql.finish_retry,
                vec![text(error), Param::Timestamp(Some(*next_attempt_at))],
            ),
            AttemptOutcome::GiveUp { error } => (
                &sql.finish_give_up,
                vec![
                    text(DeliveryStatus::GaveUp.as_str()),
                    text(error),
                    Param::Timestamp(Some(at)),
                ],
            ),
        };
        params.extend([
            Param::BigInt(Some(id)),
            text(DeliveryStatus::Pending.as_str()),
            text(token),
        ]);
        let (changed, exists) = on_connection!(self, write, "finish delivery", table, |conn| {
            let changed = bind_params(statement, params.clone()).execute(conn)?;
            let exists = changed == 1
                || !bind_params(&sql.exists, vec![Param::BigInt(Some(id))])
                    .load::<IdRow>(conn)?
                    .is_empty();
            Ok((changed, exists))
        })?;
        if !exists {
            return Err(StoreError::NotFound {
                what: format!("delivery {id}"),
            });
        }
        Ok(changed == 1)
    }

    fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let sql = self.outbox_sql();
        let table = &self.sql.tables.notification_deliveries;
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(status) = filter.status {
            conditions.push("d.status = ?");
            params.push(Param::Text(Some(status.as_str().to_string())));
        }
        if let Some(channel) = &filter.channel {
            conditions.push("d.channel = ?");
            params.push(Param::Text(Some(channel.clone())));
        }
        if let Some(event) = &filter.event_id {
            conditions.push("e.event_key = ?");
            params.push(Param::Text(Some(event_key(event))));
        }
        let mut text = sql.select.clone();
        if !conditions.is_empty() {
            text.push_str(" WHERE ");
            text.push_str(&conditions.join(" AND "));
        }
        text.push_str(" ORDER BY d.id DESC LIMIT ?");
        params.push(Param::BigInt(Some(
            i64::try_from(filter.limit).unwrap_or(i64::MAX),
        )));
        let text = sql.backend.placeholders(&text);
        let rows = on_connection!(self, read, "list deliveries", table, |conn| {
            bind_params(&text, params).load::<DeliveryRow>(conn)
        })?;
        rows.into_iter()
            .map(|row| row.into_delivery(table))
            .collect()
    }
}

/// The outbox lives beside the history, in the same database and under the
/// same table prefix.
impl NotificationOutbox for DieselHistoryStore {
    fn enqueue(
        &self,
        notification: &Notification,
        channels: &[String],
        now: DateTime<Utc>,
    ) -> updater_core::Result<Enqueued> {
        Ok(DieselHistoryStore::enqueue(
            self,
            notification,
            channels,
            now,
        )?)
    }

    fn claim(&self, request: &ClaimRequest) -> updater_core::Result<Vec<Delivery>> {
        Ok(DieselHistoryStore::claim(self, request)?)
    }

    fn finish(
        &self,
        id: i64,
        token: &str,
        at: DateTime<Utc>,
        outcome: &AttemptOutcome,
    ) -> updater_core::Result<bool> {
        Ok(DieselHistoryStore::finish(self, id, token, at, outcome)?)
    }

    fn deliveries(&self, filter: &DeliveryFilter) -> updater_core::Result<Vec<Delivery>> {
        Ok(DieselHistoryStore::deliveries(self, filter)?)
    }
}
