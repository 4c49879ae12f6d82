//! The update history of [`updater_core`] — version checks, updates with
//! their steps and progress, backups, and admin notifications — kept in a real
//! database with [Diesel]: SQLite by default (compiled in, no system library),
//! PostgreSQL and MySQL/MariaDB by feature.
//!
//! [`DieselHistoryStore`] implements [`updater_core::history::HistoryStore`],
//! the notification outbox [`updater_core::outbox::NotificationOutbox`] and
//! the one-off update schedule [`updater_core::automation::ScheduleStore`].
//! Give it the URL of the database your application already uses and a table
//! prefix, and its tables (`system_updates`, `version_checks`,
//! `update_backups`, `update_notifications`, the outbox's
//! `notification_events` and `notification_deliveries`, the schedule's
//! `scheduled_updates`, the admins' actions in `update_audit`, plus
//! `schema_version`) live beside your own. Admin notifications are written
//! by core's [`StoreNotifier`] over this store (one row per admin,
//! deduplicated per event, so a daily check does not announce the same
//! version every day while a second failed update of it is news); e-mail,
//! Slack and webhook notices wait in the outbox, with their per-channel
//! delivery state, until `updater-notify` delivers them. Schema 2 added the
//! outbox and the notifications' `event_id` column, schema 3 the scheduled
//! updates, schema 4 the audit log; opening an older database upgrades it
//! in place and keeps every row. The version-check cache is core's pipeline reading
//! [`latest_check`](updater_core::history::HistoryStore::latest_check), which is
//! one indexed row here.
//!
//! # Why it is shaped this way
//!
//! - **Prefixed tables, created by the store.** Diesel's embedded migrations
//!   are fixed SQL and cannot take a table prefix, so the store creates its
//!   tables itself on open: versioned, idempotent statements in each backend's
//!   dialect, applied under a lock (SQLite `BEGIN IMMEDIATE`, a PostgreSQL
//!   advisory lock, a MySQL `GET_LOCK`) and recorded in
//!   `<prefix>schema_version`. Queries are `diesel::sql_query` with every
//!   value bound (never formatted into SQL) and rows read by `QueryableByName`;
//!   the prefix is validated to `[a-z_][a-z0-9_]*`.
//! - **Concurrent processes.** The web application and a cron job may record
//!   at once. SQLite runs in WAL mode (readers never block the writer; a
//!   progress page sees a running update's row as soon as it is saved) with
//!   a busy timeout (default 5 s) and `synchronous = FULL` (a returned write
//!   survives power loss); every SQLite write takes the lock first
//!   (`BEGIN IMMEDIATE`). Notification deduplication is a unique index, so two
//!   processes adding the same notification store it once.
//! - **Native column types**: timestamps are `TIMESTAMPTZ` (PostgreSQL),
//!   `DATETIME(6)` in UTC (MySQL) or fixed-width UTC text (SQLite), with
//!   microsecond precision; JSON columns are `JSONB`, JSON-checked `LONGTEXT`
//!   or `TEXT`. Listings are newest first by creation time, then id.
//!
//! # Blocking API
//!
//! Every method blocks on database I/O (Diesel is synchronous, and so is the
//! update pipeline). Async applications call the store from
//! `tokio::task::spawn_blocking` or an equivalent.
//!
//! # Example
//!
//! Open the store in the application's existing database, with the tables
//! under a prefix, and record a check:
//!
//! ```
//! use chrono::Utc;
//! use updater_core::history::{CheckStatus, HistoryStore, VersionCheckRecord};
//! use updater_core::version::Version;
//! use updater_store_diesel::DieselHistoryStore;
//!
//! # let dir = tempfile::tempdir()?;
//! # let database_url = dir.path().join("app.db").display().to_string();
//! // e.g. "postgres://app@db.internal/app" or "mysql://app@db.internal/app"
//! // with the `postgres` or `mysql` feature; here the app's SQLite file.
//! let store = DieselHistoryStore::builder(database_url)
//!     .with_table_prefix("updater_")
//!     .build()?;
//! assert_eq!(store.table_names().system_updates, "updater_system_updates");
//!
//! store.record_check(&VersionCheckRecord {
//!     id: 0,
//!     current_version: Version::new(1, 0, 0),
//!     latest_version: Some(Version::new(1, 1, 0)),
//!     update_available: true,
//!     check_status: CheckStatus::Success,
//!     error_message: None,
//!     release_info: None,
//!     checked_at: Utc::now(),
//! })?;
//! assert!(store.latest_check()?.is_some_and(|c| c.update_available));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Notify every admin through the same store (deduplicated):
//!
//! ```
//! use std::sync::Arc;
//! use updater_core::history::{HistoryStore, NotificationFilter, NotificationType};
//! use updater_core::notify::{Notification, Notifier};
//! use updater_core::version::Version;
//! use updater_store_diesel::{DieselHistoryStore, StoreNotifier};
//!
//! let store = Arc::new(DieselHistoryStore::open(":memory:")?);
//! let notifier = StoreNotifier::new(store.clone()).with_admins(["alice", "bob"]);
//! let available = Notification::new(NotificationType::UpdateAvailable, Version::new(1, 1, 0), "1.1.0 is available");
//! notifier.notify(&available)?;
//! notifier.notify(&available)?; // the next day's check: nothing new
//! assert_eq!(store.notifications(&NotificationFilter::default())?.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! | feature | default | enables | needs |
//! |---|---|---|---|
//! | `sqlite` | yes | `sqlite://PATH`, plain paths, `:memory:` | nothing: SQLite is compiled in (`libsqlite3-sys/bundled`) |
//! | `postgres` | no | `postgres://`, `postgresql://` | libpq (`libpq-dev`) |
//! | `mysql` | no | `mysql://`, `mariadb://` | libmysqlclient or libmariadb (`default-libmysqlclient-dev`) |
//!
//! At least one backend feature must be on. A URL whose backend is not
//! compiled in gives [`StoreError::UnsupportedUrl`].
//!
//! [Diesel]: https://diesel.rs

#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!(
    "updater-store-diesel needs at least one of the features `sqlite`, `postgres`, `mysql`"
);

mod connection;
mod error;
mod outbox;
mod rows;
mod schedule;
mod schema;
mod statements;
mod store;
mod timestamp;

pub use error::StoreError;
pub use schema::{Backend, SCHEMA_VERSION, TableNames, TablePrefix};
pub use store::{DieselHistoryStore, DieselHistoryStoreBuilder};
/// Core's notifier that writes one notification row per admin into any
/// [`HistoryStore`](updater_core::history::HistoryStore), this one included.
pub use updater_core::notify::StoreNotifier;
