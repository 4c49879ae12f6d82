//! The one error type of this crate, [`StoreError`], and its conversion into
//! [`updater_core::Error`].

use updater_core::error::BoxError;

/// Everything that can go wrong while opening or using a [`DieselHistoryStore`](crate::DieselHistoryStore).
///
/// URLs in messages have their password removed. Database errors are kept as
/// the `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The table prefix is not a plain SQL identifier fragment.
    #[error("invalid table prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The prefix that was given.
        prefix: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// The URL names a database this build cannot open.
    #[error("cannot open {url}: {reason}")]
    UnsupportedUrl {
        /// The URL, password removed.
        url: String,
        /// Why (unknown scheme, or the backend's cargo feature is off).
        reason: String,
    },

    /// No connection could be made (or taken from the pool in time).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// The pool's error, which carries the driver's last message.
        #[source]
        source: BoxError,
    },

    /// Creating or upgrading the tables failed.
    #[error(
        "cannot create the history tables (prefix {prefix:?}) at {step}: {source}; if a table of that name belongs to the application, choose another table prefix"
    )]
    Migrate {
        /// The table prefix.
        prefix: String,
        /// The schema version being applied, or `lock`/`read version`.
        step: String,
        /// The database's error.
        #[source]
        source: diesel::result::Error,
    },

    /// The database holds a newer schema than this library knows.
    #[error(
        "history tables (prefix {prefix:?}) have schema version {found}, newer than the {supported} this library supports; upgrade updater-store-diesel"
    )]
    SchemaTooNew {
        /// The table prefix.
        prefix: String,
        /// The version recorded in the database.
        found: i64,
        /// The newest version this library knows.
        supported: i64,
    },

    /// A table with the store's name exists but lacks the store's columns
    /// (for example a table of the host application with the same name).
    #[error(
        "table {table} does not have the columns of the update history: {source}; choose another table prefix"
    )]
    SchemaMismatch {
        /// The table.
        table: String,
        /// The database's error.
        #[source]
        source: diesel::result::Error,
    },

    /// A query failed.
    #[error("{operation} on {table} failed: {source}")]
    Query {
        /// What was being done (`record check`, `save update`...).
        operation: &'static str,
        /// The table.
        table: String,
        /// The database's error.
        #[source]
        source: diesel::result::Error,
    },

    /// A stored value cannot be read back into a record.
    #[error("{table} row {id}, column {column}: {reason}")]
    Corrupt {
        /// The table.
        table: String,
        /// The row's id.
        id: i64,
        /// The column.
        column: &'static str,
        /// What is wrong with the value.
        reason: String,
    },

    /// A record holds a value the database column cannot hold.
    #[error("{field} = {value} does not fit the database column (at most {max})")]
    OutOfRange {
        /// The record field.
        field: &'static str,
        /// The value.
        value: u64,
        /// The largest storable value.
        max: i64,
    },

    /// The record to change does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `update 42`.
        what: String,
    },

    /// The row exists but is not in a state that allows the operation
    /// (e.g. cancelling a scheduled update that already ran).
    #[error("cannot {operation}: {reason}")]
    Refused {
        /// What was asked.
        operation: &'static str,
        /// Why not.
        reason: String,
    },
}

impl From<StoreError> for updater_core::Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what } => updater_core::Error::not_found(what),
            StoreError::Refused { operation, reason } => {
                updater_core::Error::precondition(operation, reason)
            }
            StoreError::InvalidPrefix { .. }
            | StoreError::UnsupportedUrl { .. }
            | StoreError::OutOfRange { .. } => {
                updater_core::Error::invalid("history store input", error.to_string())
            }
            StoreError::Connect { ref url, .. } => updater_core::Error::Unavailable {
                service: format!("history database {url}"),
                reason: "cannot connect".to_string(),
                source: Some(Box::new(error)),
            },
            other => updater_core::Error::other("update history database", other),
        }
    }
}
