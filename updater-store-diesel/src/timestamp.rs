//! The SQL type of every timestamp column, [`UtcTimestamp`], read and
//! written as `chrono::DateTime<Utc>`.
//!
//! Each backend stores it in its natural type, so the host application can
//! query the columns with its own tools:
//!
//! | backend | column type | value |
//! |---|---|---|
//! | PostgreSQL | `TIMESTAMPTZ` | the instant (microseconds) |
//! | MySQL/MariaDB | `DATETIME(6)` | the UTC wall time (microseconds) |
//! | SQLite | `TEXT` | `YYYY-MM-DD HH:MM:SS.ffffff` in UTC: fixed width, so text order is time order |
//!
//! Precision is one microsecond on every backend; finer digits are dropped.

use chrono::{DateTime, Utc};
#[allow(unused_imports)]
use diesel::deserialize::{self, FromSql};
#[allow(unused_imports)]
use diesel::serialize::{self, IsNull, Output, ToSql};

/// A point in time, stored in UTC with microsecond precision.
#[derive(
    Debug, Clone, Copy, Default, diesel::query_builder::QueryId, diesel::sql_types::SqlType,
)]
#[cfg_attr(
    feature = "postgres",
    diesel(postgres_type(oid = 1184, array_oid = 1185))
)]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Text")))]
#[cfg_attr(feature = "mysql", diesel(mysql_type(name = "DateTime")))]
pub(crate) struct UtcTimestamp;

/// The SQLite text form: fixed width so that `ORDER BY` on the text is time order.
#[cfg(feature = "sqlite")]
const SQLITE_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

#[cfg(feature = "sqlite")]
impl ToSql<UtcTimestamp, diesel::sqlite::Sqlite> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::sqlite::Sqlite>) -> serialize::Result {
        out.set_value(self.format(SQLITE_FORMAT).to_string());
        Ok(IsNull::No)
    }
}

#[cfg(feature = "sqlite")]
impl FromSql<UtcTimestamp, diesel::sqlite::Sqlite> for DateTime<Utc> {
    fn from_sql(value: diesel::sqlite::SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        // Diesel's parser accepts our format and the other common text forms
        // (with or without offset), so rows written by other tools read too.
        <DateTime<Utc> as FromSql<diesel::sql_types::TimestamptzSqlite, _>>::from_sql(value)
    }
}

#[cfg(feature = "postgres")]
impl ToSql<UtcTimestamp, diesel::pg::Pg> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<diesel::sql_types::Timestamptz, diesel::pg::Pg>>::to_sql(self, out)
    }
}

#[cfg(feature = "postgres")]
impl FromSql<UtcTimestamp, diesel::pg::Pg> for DateTime<Utc> {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, diesel::pg::Pg>>::from_sql(value)
    }
}

#[cfg(feature = "mysql")]
impl ToSql<UtcTimestamp, diesel::mysql::Mysql> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::mysql::Mysql>) -> serialize::Result {
        let wall_time = self.naive_utc();
        <chrono::NaiveDateTime as ToSql<diesel::sql_types::Datetime, diesel::mysql::Mysql>>::to_sql(
            &wall_time,
            &mut out.reborrow(),
        )
    }
}

#[cfg(feature = "mysql")]
impl FromSql<UtcTimestamp, diesel::mysql::Mysql> for DateTime<Utc> {
    fn from_sql(value: diesel::mysql::MysqlValue<'_>) -> deserialize::Result<Self> {
        let wall_time = <chrono::NaiveDateTime as FromSql<
            diesel::sql_types::Datetime,
            diesel::mysql::Mysql,
        >>::from_sql(value)?;
        Ok(wall_time.and_utc())
    }
}
