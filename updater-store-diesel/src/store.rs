//! [`DieselHistoryStore`]: the [`HistoryStore`] over a Diesel connection pool,
//! and its builder.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::RunQueryDsl;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use updater_core::history::{
    AuditRecord, BackupRecord, HistoryStore, NotificationFilter, NotificationRecord, Page,
    UpdateId, UpdateRecord, VersionCheckRecord,
};

use crate::connection::{ConnectOptions, Pools, on_connection};
use crate::error::StoreError;
use crate::rows::{
    AuditRow, BackupRow, CheckRow, IdRow, NotificationRow, Param, UpdateRow, audit_params,
    backup_params, bind_params, check_params, dedup_key, notification_params, update_params,
};
use crate::schema::{Backend, TableNames, TablePrefix};
use crate::statements::Statements;

/// The update history in a SQLite, PostgreSQL or MySQL/MariaDB database.
///
/// Cheap to clone (clones share the connection pool). Every method blocks
/// on database I/O; see the crate docs for async applications.
#[derive(Debug, Clone)]
pub struct DieselHistoryStore {
    pub(crate) pools: Pools,
    /// The URL without password, for messages.
    pub(crate) url: String,
    prefix: TablePrefix,
    pub(crate) sql: Arc<Statements>,
}

/// Configures and opens a [`DieselHistoryStore`]; made by [`DieselHistoryStore::builder`].
#[derive(Clone)]
pub struct DieselHistoryStoreBuilder {
    url: String,
    prefix: String,
    options: ConnectOptions,
}

impl std::fmt::Debug for DieselHistoryStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselHistoryStoreBuilder")
            .field("url", &updater_core::error::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("options", &self.options)
            .finish()
    }
}

impl DieselHistoryStoreBuilder {
    /// Puts the tables under `prefix` (`updater_` gives `updater_system_updates`...).
    /// Lowercase ASCII letters, digits and `_`; default empty.
    pub fn with_table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// At most this many connections at once (default 4; SQLite `:memory:` always 1).
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.options.max_connections = max;
        self
    }

    /// How long to wait for a connection (default 30 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// How long a SQLite write waits for another writer's lock (default 5 s).
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.options.busy_timeout = timeout;
        self
    }

    /// Connects, creates or upgrades the tables (under a lock, so several
    /// processes may open at once), and checks that existing tables have the
    /// store's columns.
    pub fn build(self) -> Result<DieselHistoryStore, StoreError> {
        let prefix = TablePrefix::new(self.prefix)?;
        let url = updater_core::error::redact_url(&self.url);
        let (backend, target) = crate::connection::parse_url(&self.url)?;
        let pools = crate::connection::open_pools(backend, &target, &url, &self.options)?;
        crate::connection::upgrade(&pools, &url, backend, &prefix)?;
        let store = DieselHistoryStore {
            pools,
            url,
            sql: Arc::new(Statements::new(backend, &prefix)),
            prefix,
        };
        store.check_columns()?;
        tracing::debug!(backend = %backend, url = %store.url, prefix = store.prefix.as_str(), "history store open");
        Ok(store)
    }
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn page_params(page: Page) -> Vec<Param> {
    vec![
        Param::BigInt(Some(clamp(page.limit))),
        Param::BigInt(Some(clamp(page.offset))),
    ]
}

/// The id MySQL gave the last insert on this connection.
macro_rules! last_insert_id {
    ($conn:expr) => {
        diesel::sql_query("SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS id")
            .load::<IdRow>($conn)?
            .first()
            .map(|row| row.id)
            .ok_or(DieselError::NotFound)
    };
}

impl DieselHistoryStore {
    /// Opens the store at `url` with the default settings and no table prefix.
    ///
    /// `postgres://` or `postgresql://`: PostgreSQL; `mysql://` or
    /// `mariadb://`: MySQL/MariaDB; `sqlite://PATH`, `sqlite:PATH`, a plain
    /// path or `:memory:`: SQLite.
    pub fn open(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).build()
    }

    /// A builder for the store at `url` (see [`open`](Self::open) for the URL forms).
    pub fn builder(url: impl Into<String>) -> DieselHistoryStoreBuilder {
        DieselHistoryStoreBuilder {
            url: url.into(),
            prefix: String::new(),
            options: ConnectOptions {
                max_connections: 4,
                connect_timeout: Duration::from_secs(30),
                busy_timeout: Duration::from_secs(5),
            },
        }
    }

    /// The database engine.
    pub fn backend(&self) -> Backend {
        self.sql.backend
    }

    /// The table prefix.
    pub fn table_prefix(&self) -> &str {
        self.prefix.as_str()
    }

    /// The names of the store's tables.
    pub fn table_names(&self) -> &TableNames {
        &self.sql.tables
    }

    /// Drops the store's tables and every record in them (tests, uninstall).
    /// Tables of other prefixes and of the host application are untouched.
    pub fn drop_tables(&self) -> Result<(), StoreError> {
        let tables = self.sql.tables.clone();
        for table in tables.all() {
            on_connection!(self, read, "drop table", table, |conn| {
                diesel::sql_query(format!("DROP TABLE IF EXISTS {table}")).execute(conn)
            })?;
        }
        Ok(())
    }

    fn check_columns(&self) -> Result<(), StoreError> {
        let t = &self.sql.tables;
        let mismatch = |table: &str| {
            let table = table.to_string();
            move |e: StoreError| match e {
                StoreError::Query { source, .. } => StoreError::SchemaMismatch { table, source },
                other => other,
            }
        };
        on_connection!(self, read, "check columns", t.system_updates, |conn| {
            diesel::sql_query(&self.sql.probe_updates).load::<UpdateRow>(conn)
        })
        .map_err(mismatch(&t.system_updates))?;
        on_connection!(self, read, "check columns", t.version_checks, |conn| {
            diesel::sql_query(&self.sql.probe_checks).load::<CheckRow>(conn)
        })
        .map_err(mismatch(&t.version_checks))?;
        on_connection!(self, read, "check columns", t.update_backups, |conn| {
            diesel::sql_query(&self.sql.probe_backups).load::<BackupRow>(conn)
        })
        .map_err(mismatch(&t.update_backups))?;
        on_connection!(
            self,
            read,
            "check columns",
            t.update_notifications,
            |conn| {
                diesel::sql_query(&self.sql.probe_notifications).load::<NotificationRow>(conn)
            }
        )
        .map_err(mismatch(&t.update_notifications))?;
        on_connection!(
            self,
            read,
            "check columns",
            t.notification_deliveries,
            |conn| {
                diesel::sql_query(&self.sql.outbox.probe).load::<crate::outbox::DeliveryRow>(conn)
            }
        )
        .map_err(mismatch(&t.notification_deliveries))?;
        on_connection!(self, read, "check columns", t.scheduled_updates, |conn| {
            diesel::sql_query(&self.sql.schedule.probe).load::<crate::schedule::ScheduleRow>(conn)
        })
        .map_err(mismatch(&t.scheduled_updates))?;
        on_connection!(self, read, "check columns", t.update_audit, |conn| {
            diesel::sql_query(&self.sql.probe_audit).load::<AuditRow>(conn)
        })
        .map_err(mismatch(&t.update_audit))?;
        Ok(())
    }

    /// Runs an insert and returns the new row's id.
    pub(crate) fn insert(
        &self,
        operation: &'static str,
        table: &str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<i64, StoreError> {
        let returning = self.sql.backend.has_returning();
        on_connection!(self, write, operation, table, |conn| {
            if returning {
                bind_params(sql, params)
                    .load::<IdRow>(conn)?
                    .first()
                    .map(|row| row.id)
                    .ok_or(DieselError::NotFound)
            } else {
                bind_params(sql, params).execute(conn)?;
                last_insert_id!(conn)
            }
        })
    }

    /// Runs an `UPDATE`; [`StoreError::NotFound`] naming `what` when no row matched.
    pub(crate) fn change(
        &self,
        operation: &'static str,
        table: &str,
        sql: &str,
        params: Vec<Param>,
        what: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        let matched = on_connection!(self, write, operation, table, |conn| {
            bind_params(sql, params).execute(conn)
        })?;
        if matched == 0 {
            return Err(StoreError::NotFound { what: what() });
        }
        Ok(())
    }

    fn record_check(&self, check: &VersionCheckRecord) -> Result<i64, StoreError> {
        let table = &self.sql.tables.version_checks;
        self.insert(
            "record check",
            table,
            &self.sql.insert_check,
            check_params(check),
        )
    }

    fn latest_check(&self) -> Result<Option<VersionCheckRecord>, StoreError> {
        let table = &self.sql.tables.version_checks;
        let rows = on_connection!(self, read, "read latest check", table, |conn| {
            diesel::sql_query(&self.sql.latest_check).load::<CheckRow>(conn)
        })?;
        rows.into_iter()
            .next()
            .map(|row| row.into_record(table))
            .transpose()
    }

    fn create_update(&self, update: &UpdateRecord) -> Result<UpdateId, StoreError> {
        let table = &self.sql.tables.system_updates;
        self.insert(
            "create update",
            table,
            &self.sql.insert_update,
            update_params(update)?,
        )
    }

    fn save_update(&self, update: &UpdateRecord) -> Result<(), StoreError> {
        let mut params = update_params(update)?;
        params.push(Param::BigInt(Some(update.id)));
        self.change(
            "save update",
            &self.sql.tables.system_updates,
            &self.sql.save_update,
            params,
            || format!("update {}", update.id),
        )
    }

    fn update(&self, id: UpdateId) -> Result<Option<UpdateRecord>, StoreError> {
        let table = &self.sql.tables.system_updates;
        let rows = on_connection!(self, read, "read update", table, |conn| {
            bind_params(&self.sql.update_by_id, vec![Param::BigInt(Some(id))])
                .load::<UpdateRow>(conn)
        })?;
        rows.into_iter()
            .next()
            .map(|row| row.into_record(table))
            .transpose()
    }

    fn updates(&self, page: Page) -> Result<Vec<UpdateRecord>, StoreError> {
        let table = &self.sql.tables.system_updates;
        let rows = on_connection!(self, read, "list updates", table, |conn| {
            bind_params(&self.sql.updates_page, page_params(page)).load::<UpdateRow>(conn)
        })?;
        rows.into_iter().map(|row| row.into_record(table)).collect()
    }

    fn record_backup(&self, backup: &BackupRecord) -> Result<i64, StoreError> {
        let table = &self.sql.tables.update_backups;
        self.insert(
            "record backup",
            table,
            &self.sql.insert_backup,
            backup_params(backup)?,
        )
    }

    fn backups(&self, page: Page) -> Result<Vec<BackupRecord>, StoreError> {
        let table = &self.sql.tables.update_backups;
        let rows = on_connection!(self, read, "list backups", table, |conn| {
            bind_params(&self.sql.backups_page, page_params(page)).load::<BackupRow>(conn)
        })?;
        rows.into_iter().map(|row| row.into_record(table)).collect()
    }

    fn mark_backup_unrestorable(&self, backup_id: &str, note: &str) -> Result<(), StoreError> {
        let params = vec![
            Param::Bool(false),
            Param::Text(Some(note.to_string())),
            Param::Text(Some(format!("\n{note}"))),
            Param::Text(Some(backup_id.to_string())),
        ];
        self.change(
            "mark backup unrestorable",
            &self.sql.tables.update_backups,
            &self.sql.mark_backup_unrestorable,
            params,
            || format!("backup {backup_id}"),
        )
    }

    fn add_notification(
        &self,
        notification: &NotificationRecord,
    ) -> Result<Option<i64>, StoreError> {
        let table = &self.sql.tables.update_notifications;
        let sql = &self.sql.insert_notification;
        let find = &self.sql.find_notification;
        let key = dedup_key(notification);
        let params = notification_params(notification);
        let returning = self.sql.backend.has_returning();
        on_connection!(self, write, "add notification", table, |conn| {
            // Looked up first so that a duplicate spends no id (sequences and
            // AUTOINCREMENT advance even when the insert is then refused). In
            // SQLite the write lock is already held; elsewhere the unique index
            // settles a race with another process.
            let existing = bind_params(find, vec![Param::Text(Some(key))]).load::<IdRow>(conn)?;
            if !existing.is_empty() {
                return Ok(None);
            }
            if returning {
                // `ON CONFLICT DO NOTHING RETURNING id`: no row for a duplicate.
                Ok(bind_params(sql, params)
                    .load::<IdRow>(conn)?
                    .first()
                    .map(|row| row.id))
            } else {
                match bind_params(sql, params).execute(conn) {
                    Ok(_) => last_insert_id!(conn).map(Some),
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                        Ok(None)
                    }
                    Err(other) => Err(other),
                }
            }
        })
    }

    fn notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let table = &self.sql.tables.update_notifications;
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if filter.unread_only {
            conditions.push("is_read = ?");
            params.push(Param::Bool(false));
        }
        if !filter.include_dismissed {
            conditions.push("is_dismissed = ?");
            params.push(Param::Bool(false));
        }
        if let Some(user) = &filter.user_id {
            conditions.push("(user_id IS NULL OR user_id = ?)");
            params.push(Param::Text(Some(user.clone())));
        }
        let mut sql = self.sql.select_notifications.clone();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(self.sql.notifications_order);
        let sql = self.sql.backend.placeholders(&sql);
        let rows = on_connection!(self, read, "list notifications", table, |conn| {
            bind_params(&sql, params).load::<NotificationRow>(conn)
        })?;
        rows.into_iter().map(|row| row.into_record(table)).collect()
    }

    fn mark_notification_read(&self, id: i64) -> Result<(), StoreError> {
        let params = vec![
            Param::Timestamp(Some(Utc::now())),
            Param::Bool(true),
            Param::BigInt(Some(id)),
        ];
        self.change(
            "mark notification read",
            &self.sql.tables.update_notifications,
            &self.sql.mark_notification_read,
            params,
            || format!("notification {id}"),
        )
    }

    fn dismiss_notification(&self, id: i64) -> Result<(), StoreError> {
        let params = vec![Param::Bool(true), Param::BigInt(Some(id))];
        self.change(
            "dismiss notification",
            &self.sql.tables.update_notifications,
            &self.sql.dismiss_notification,
            params,
            || format!("notification {id}"),
        )
    }

    fn record_audit(&self, entry: &AuditRecord) -> Result<i64, StoreError> {
        let table = &self.sql.tables.update_audit;
        self.insert(
            "record audit",
            table,
            &self.sql.insert_audit,
            audit_params(entry),
        )
    }

    fn audit_log(&self, page: Page) -> Result<Vec<AuditRecord>, StoreError> {
        let table = &self.sql.tables.update_audit;
        let rows = on_connection!(self, read, "list audit", table, |conn| {
            bind_params(&self.sql.audit_page, page_params(page)).load::<AuditRow>(conn)
        })?;
        Ok(rows.into_iter().map(AuditRow::into_record).collect())
    }
}

impl HistoryStore for DieselHistoryStore {
    fn record_check(&self, check: &VersionCheckRecord) -> updater_core::Result<i64> {
        Ok(DieselHistoryStore::record_check(self, check)?)
    }

    fn latest_check(&self) -> updater_core::Result<Option<VersionCheckRecord>> {
        Ok(DieselHistoryStore::latest_check(self)?)
    }

    fn create_update(&self, update: &UpdateRecord) -> updater_core::Result<UpdateId> {
        Ok(DieselHistoryStore::create_update(self, update)?)
    }

    fn save_update(&self, update: &UpdateRecord) -> updater_core::Result<()> {
        Ok(DieselHistoryStore::save_update(self, update)?)
    }

    fn update(&self, id: UpdateId) -> updater_core::Result<Option<UpdateRecord>> {
        Ok(DieselHistoryStore::update(self, id)?)
    }

    fn updates(&self, page: Page) -> updater_core::Result<Vec<UpdateRecord>> {
        Ok(DieselHistoryStore::updates(self, page)?)
    }

    fn record_backup(&self, backup: &BackupRecord) -> updater_core::Result<i64> {
        Ok(DieselHistoryStore::record_backup(self, backup)?)
    }

    fn backups(&self, page: Page) -> updater_core::Result<Vec<BackupRecord>> {
        Ok(DieselHistoryStore::backups(self, page)?)
    }

    fn mark_backup_unrestorable(&self, backup_id: &str, note: &str) -> updater_core::Result<()> {
        Ok(DieselHistoryStore::mark_backup_unrestorable(
            self, backup_id, note,
        )?)
    }

    fn add_notification(
        &self,
        notification: &NotificationRecord,
    ) -> updater_core::Result<Option<i64>> {
        Ok(DieselHistoryStore::add_notification(self, notification)?)
    }

    fn notifications(
        &self,
        filter: &NotificationFilter,
    ) -> updater_core::Result<Vec<NotificationRecord>> {
        Ok(DieselHistoryStore::notifications(self, filter)?)
    }

    fn mark_notification_read(&self, id: i64) -> updater_core::Result<()> {
        Ok(DieselHistoryStore::mark_notification_read(self, id)?)
    }

    fn dismiss_notification(&self, id: i64) -> updater_core::Result<()> {
        Ok(DieselHistoryStore::dismiss_notification(self, id)?)
    }

    fn record_audit(&self, entry: &AuditRecord) -> updater_core::Result<i64> {
        Ok(DieselHistoryStore::record_audit(self, entry)?)
    }

    fn audit_log(&self, page: Page) -> updater_core::Result<Vec<AuditRecord>> {
        Ok(DieselHistoryStore::audit_log(self, page)?)
    }
}
