//! Connections: which backend a URL names, the connection pool of each
//! backend, the SQLite settings (WAL, busy timeout, full sync), and the
//! schema upgrade run under a lock when a store opens.
//!
//! Each operation of the store is written once and run on whichever pool the
//! store holds by [`on_connection!`]: its body is compiled once per enabled
//! backend, against that backend's concrete connection type.

use std::time::Duration;

use diesel::RunQueryDsl;
#[cfg(feature = "sqlite")]
use diesel::connection::SimpleConnection;
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, Pool, PooledConnection, R2D2Connection,
};

use crate::error::StoreError;
use crate::schema::{Backend, SCHEMA_VERSION, TablePrefix};

/// How the pool connects.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    pub(crate) max_connections: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) busy_timeout: Duration,
}

/// The connection pool of the store's backend.
#[derive(Clone)]
pub(crate) enum Pools {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(Pool<ConnectionManager<diesel::SqliteConnection>>),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(Pool<ConnectionManager<diesel::PgConnection>>),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    Mysql(Pool<ConnectionManager<diesel::MysqlConnection>>),
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, state) = match self {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite(pool) => ("sqlite", pool.state()),
            #[cfg(feature = "postgres")]
            Pools::Postgres(pool) => ("postgres", pool.state()),
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => ("mysql", pool.state()),
        };
        f.debug_struct("Pools")
            .field("backend", &name)
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish()
    }
}

/// Runs `$body` on a pooled connection of `$store`, as `|$conn| -> QueryResult<T>`,
/// and maps a database error to [`StoreError::Query`] naming `$operation` and `$table`.
/// `write` runs SQLite bodies in `BEGIN IMMEDIATE` (the write lock is taken
/// first, waiting up to the busy timeout, so the body never fails with
/// "database is locked" halfway); `read` runs them as they are.
macro_rules! on_connection {
    ($store:expr, $mode:ident, $operation:expr, $table:expr, |$conn:ident| $body:expr) => {{
        let operation: &'static str = $operation;
        let result: ::diesel::QueryResult<_> = match &$store.pools {
            #[cfg(feature = "sqlite")]
            $crate::connection::Pools::Sqlite(pool) => {
                let mut pooled = $crate::connection::checkout(pool, &$store.url)?;
                on_connection!(@$mode sqlite pooled, ::diesel::SqliteConnection, |$conn| $body)
            }
            #[cfg(feature = "postgres")]
            $crate::connection::Pools::Postgres(pool) => {
                let mut pooled = $crate::connection::checkout(pool, &$store.url)?;
                on_connection!(@$mode other pooled, ::diesel::PgConnection, |$conn| $body)
            }
            #[cfg(feature = "mysql")]
            $crate::connection::Pools::Mysql(pool) => {
                let mut pooled = $crate::connection::checkout(pool, &$store.url)?;
                on_connection!(@$mode other pooled, ::diesel::MysqlConnection, |$conn| $body)
            }
        };
        result.map_err(|source| $crate::error::StoreError::Query {
            operation,
            table: $table.to_string(),
            source,
        })
    }};
    (@write sqlite $pooled:ident, $ty:ty, |$conn:ident| $body:expr) => {
        $pooled.immediate_transaction(|$conn: &mut $ty| -> ::diesel::QueryResult<_> { $body })
    };
    (@$mode:ident $any:ident $pooled:ident, $ty:ty, |$conn:ident| $body:expr) => {
        (|$conn: &mut $ty| -> ::diesel::QueryResult<_> { $body })(&mut $pooled)
    };
}
pub(crate) use on_connection;

/// A connection from `pool`, or [`StoreError::Connect`].
pub(crate) fn checkout<C: R2D2Connection + 'static>(
    pool: &Pool<ConnectionManager<C>>,
    url: &str,
) -> Result<PooledConnection<ConnectionManager<C>>, StoreError> {
    pool.get().map_err(|e| StoreError::Connect {
        url: url.to_string(),
        source: Box::new(e),
    })
}

/// The backend a URL names and the string Diesel connects with.
///
/// `postgres://` and `postgresql://` are PostgreSQL; `mysql://` and
/// `mariadb://` are MySQL; `sqlite://PATH`, `sqlite:PATH`, `file:` URIs,
/// `:memory:` and plain paths are SQLite.
pub(crate) fn parse_url(url: &str) -> Result<(Backend, String), StoreError> {
    let redacted = updater_core::error::redact_url(url);
    let unsupported = |reason: String| StoreError::UnsupportedUrl {
        url: redacted.clone(),
        reason,
    };
    let (backend, target) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Backend::Postgres, url.to_string())
    } else if url.starts_with("mysql://") {
        (Backend::Mysql, url.to_string())
    } else if let Some(rest) = url.strip_prefix("mariadb://") {
        (Backend::Mysql, format!("mysql://{rest}"))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        (Backend::Sqlite, path.to_string())
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        (Backend::Sqlite, path.to_string())
    } else if let Some((scheme, _)) = url.split_once("://") {
        return Err(unsupported(format!(
            "unknown scheme `{scheme}` (expected postgres, mysql, mariadb or sqlite)"
        )));
    } else {
        (Backend::Sqlite, url.to_string())
    };
    if target.is_empty() {
        return Err(unsupported("no database path or address".into()));
    }
    let enabled = match backend {
        Backend::Sqlite => cfg!(feature = "sqlite"),
        Backend::Postgres => cfg!(feature = "postgres"),
        Backend::Mysql => cfg!(feature = "mysql"),
    };
    if !enabled {
        return Err(unsupported(format!(
            "this build of updater-store-diesel lacks the `{backend}` feature"
        )));
    }
    Ok((backend, target))
}

/// Settings applied to every new SQLite connection.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
struct SqliteSettings {
    busy_timeout: Duration,
}

#[cfg(feature = "sqlite")]
impl CustomizeConnection<diesel::SqliteConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut diesel::SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // busy_timeout first: switching to WAL needs a lock another process may hold.
        // synchronous=FULL: a returned write survives power loss (the store's contract).
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
            self.busy_timeout.as_millis()
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

fn build_pool<C: R2D2Connection + 'static>(
    target: &str,
    options: &ConnectOptions,
    single_connection: bool,
    customizer: Option<Box<dyn CustomizeConnection<C, diesel::r2d2::Error>>>,
) -> Result<Pool<ConnectionManager<C>>, diesel::r2d2::PoolError> {
    let mut builder = Pool::builder()
        .max_size(if single_connection {
            1
        } else {
            options.max_connections.max(1)
        })
        .min_idle(Some(if single_connection { 1 } else { 0 }))
        .connection_timeout(options.connect_timeout)
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler));
    if single_connection {
        // An in-memory database lives as long as its only connection.
        builder = builder
            .idle_timeout(None)
            .max_lifetime(None)
            .test_on_check_out(false);
    }
    if let Some(customizer) = customizer {
        builder = builder.connection_customizer(customizer);
    }
    builder.build(ConnectionManager::<C>::new(target))
}

/// Opens the pool for `target` on `backend`.
pub(crate) fn open_pools(
    backend: Backend,
    target: &str,
    redacted_url: &str,
    options: &ConnectOptions,
) -> Result<Pools, StoreError> {
    let connect_error = |e: diesel::r2d2::PoolError| StoreError::Connect {
        url: redacted_url.to_string(),
        source: Box::new(e),
    };
    match backend {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let in_memory = target.contains(":memory:") || target.contains("mode=memory");
            let settings = SqliteSettings {
                busy_timeout: options.busy_timeout,
            };
            if !in_memory {
                // The pool retries a failing connection until `connect_timeout`
                // (30 s by default), which suits a server coming up, not a
                // file: a full disk, a read-only directory or a file that is
                // not a database fails the same way every time. One direct
                // connection first gives its cause at once.
                use diesel::Connection;
                let fail = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Connect {
                    url: redacted_url.to_string(),
                    source,
                };
                let mut probe =
                    diesel::SqliteConnection::establish(target).map_err(|e| fail(Box::new(e)))?;
                settings
                    .on_acquire(&mut probe)
                    .map_err(|e| fail(Box::new(e)))?;
            }
            build_pool(target, options, in_memory, Some(Box::new(settings)))
                .map(Pools::Sqlite)
                .map_err(connect_error)
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => build_pool(target, options, false, None)
            .map(Pools::Postgres)
            .map_err(connect_error),
        #[cfg(feature = "mysql")]
        Backend::Mysql => build_pool(target, options, false, None)
            .map(Pools::Mysql)
            .map_err(connect_error),
        #[allow(unreachable_patterns)]
        other => Err(StoreError::UnsupportedUrl {
            url: redacted_url.to_string(),
            reason: format!("this build lacks the `{other}` feature"),
        }),
    }
}

#[cfg(feature = "mysql")]
#[derive(Debug, diesel::QueryableByName)]
struct LockRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    acquired: Option<i64>,
}

/// Why a schema upgrade stopped.
enum UpgradeStop {
    Database {
        step: String,
        source: diesel::result::Error,
    },
    TooNew(i64),
}

impl UpgradeStop {
    fn into_error(self, prefix: &TablePrefix) -> StoreError {
        match self {
            UpgradeStop::Database { step, source } => StoreError::Migrate {
                prefix: prefix.as_str().to_string(),
                step,
                source,
            },
            UpgradeStop::TooNew(found) => StoreError::SchemaTooNew {
                prefix: prefix.as_str().to_string(),
                found,
                supported: SCHEMA_VERSION,
            },
        }
    }
}

/// Creates or upgrades the tables on `$conn` (the caller holds the lock);
/// evaluates to `Result<(), UpgradeStop>`. Every statement is idempotent,
/// so an upgrade interrupted where DDL is not transactional (MySQL) is
/// simply run again.
macro_rules! upgrade_schema {
    ($conn:expr, $backend:expr, $prefix:expr) => {{
        let conn = $conn;
        let backend: Backend = $backend;
        let prefix: &TablePrefix = $prefix;
        let tables = prefix.table_names();
        let at = |step: &str| {
            let step = step.to_string();
            move |source| UpgradeStop::Database { step, source }
        };
        (|| -> Result<(), UpgradeStop> {
            diesel::sql_query(crate::schema::create_version_table(backend, prefix))
                .execute(conn)
                .map_err(at("create schema_version"))?;
            let found = diesel::sql_query(format!(
                "SELECT COALESCE(MAX(version), 0) AS version FROM {}",
                tables.schema_version
            ))
            .load::<crate::rows::VersionRow>(conn)
            .map_err(at("read schema version"))?
            .first()
            .map_or(0, |row| row.version);
            if found > SCHEMA_VERSION {
                return Err(UpgradeStop::TooNew(found));
            }
            for version in found + 1..=SCHEMA_VERSION {
                let step = format!("version {version}");
                for statement in crate::schema::migration(backend, prefix, version) {
                    if let Some((table, column)) = &statement.unless_column {
                        // Fails (harmlessly: SQLite and MySQL only) when the column is missing.
                        let exists = diesel::sql_query(format!("SELECT {column} FROM {table} WHERE 1 = 0"))
                            .execute(conn)
                            .is_ok();
                        if exists {
                            continue;
                        }
                    }
                    // Name the statement: a failure is often a table of the
                    // host application with the same name.
                    let head = statement.sql.lines().next().unwrap_or_default().trim_end_matches(" (");
                    diesel::sql_query(&statement.sql)
                        .execute(conn)
                        .map_err(at(&format!("{step}, `{head}`")))?;
                }
                crate::rows::bind_params(
                    &backend.placeholders(&format!(
                        "INSERT INTO {} (version, applied_at) VALUES (?, ?)",
                        tables.schema_version
                    )),
                    vec![
                        crate::rows::Param::BigInt(Some(version)),
                        crate::rows::Param::Timestamp(Some(chrono::Utc::now())),
                    ],
                )
                .execute(conn)
                .map_err(at(&step))?;
                tracing::info!(backend = %backend, prefix = prefix.as_str(), version, "history schema upgraded");
            }
            Ok(())
        })()
    }};
}

/// The outcome of a schema upgrade run inside a transaction: the upgrade's
/// own stop when it aborted the transaction, else the transaction's error.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn upgrade_outcome(
    result: Result<(), diesel::result::Error>,
    stop: Option<UpgradeStop>,
) -> Result<(), UpgradeStop> {
    match (result, stop) {
        (_, Some(stop)) => Err(stop),
        (Err(source), None) => Err(UpgradeStop::Database {
            step: "lock".into(),
            source,
        }),
        (Ok(()), None) => Ok(()),
    }
}

/// The name of the server-wide lock taken while the tables of `prefix` are upgraded.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn schema_lock_name(prefix: &TablePrefix) -> String {
    format!("updater-store:{}", prefix.as_str())
}

/// Brings the tables to [`SCHEMA_VERSION`] under a lock that serialises
/// stores opening at the same time (several processes included).
pub(crate) fn upgrade(
    pools: &Pools,
    url: &str,
    backend: Backend,
    prefix: &TablePrefix,
) -> Result<(), StoreError> {
    let outcome: Result<(), UpgradeStop> = match pools {
        #[cfg(feature = "sqlite")]
        Pools::Sqlite(pool) => {
            let mut conn = checkout(pool, url)?;
            // BEGIN IMMEDIATE holds the database's write lock; SQLite DDL is transactional.
            let mut stop = None;
            let result = conn.immediate_transaction(|conn| {
                upgrade_schema!(conn, backend, prefix).map_err(|s| {
                    stop = Some(s);
                    diesel::result::Error::RollbackTransaction
                })
            });
            upgrade_outcome(result, stop)
        }
        #[cfg(feature = "postgres")]
        Pools::Postgres(pool) => {
            use diesel::Connection;
            let mut conn = checkout(pool, url)?;
            let lock_name = schema_lock_name(prefix);
            // A transaction-scoped advisory lock; PostgreSQL DDL is transactional.
            let mut stop = None;
            let result = conn.transaction(|conn| {
                diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind::<diesel::sql_types::Text, _>(&lock_name)
                    .execute(conn)?;
                upgrade_schema!(conn, backend, prefix).map_err(|s| {
                    stop = Some(s);
                    diesel::result::Error::RollbackTransaction
                })
            });
            upgrade_outcome(result, stop)
        }
        #[cfg(feature = "mysql")]
        Pools::Mysql(pool) => {
            let mut conn = checkout(pool, url)?;
            let lock_name = schema_lock_name(prefix);
            // MySQL DDL commits implicitly, so a named server lock held by this
            // connection serialises the upgrade instead of a transaction.
            let acquired = diesel::sql_query("SELECT CAST(GET_LOCK(?, 60) AS SIGNED) AS acquired")
                .bind::<diesel::sql_types::Text, _>(&lock_name)
                .load::<LockRow>(&mut *conn);
            match acquired {
                Err(source) => Err(UpgradeStop::Database {
                    step: "lock".into(),
                    source,
                }),
                Ok(rows) if matches!(rows.as_slice(), [LockRow { acquired: Some(1) }]) => {
                    let outcome = upgrade_schema!(&mut *conn, backend, prefix);
                    let released = diesel::sql_query("SELECT RELEASE_LOCK(?)")
                        .bind::<diesel::sql_types::Text, _>(&lock_name)
                        .execute(&mut *conn);
                    if let Err(e) = released {
                        tracing::warn!(error = %e, "cannot release the schema lock; it ends with the connection");
                    }
                    outcome
                }
                Ok(_) => Err(UpgradeStop::Database {
                    step: "lock".into(),
                    source: diesel::result::Error::QueryBuilderError(
                        format!("GET_LOCK({lock_name:?}) timed out after 60 s").into(),
                    ),
                }),
            }
        }
    };
    outcome.map_err(|stop| stop.into_error(prefix))
}
