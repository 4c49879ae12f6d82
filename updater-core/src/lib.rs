//! # updater-core
//!
//! The heart of a crash-safe self-updater for server applications: find a
//! newer release, verify it, back up, install it with a maintenance window of
//! a few renames, migrate, check health, and roll back automatically — also
//! after a crash or power loss midway — keeping a full history.
//!
//! This crate knows no network and no database. Every outside effect goes
//! through a trait, so integrators plug in their own pieces and the
//! implementation crates (`updater-source-github`, `updater-backup`,
//! `updater-store-diesel`) use the same public traits:
//!
//! | trait | does | shipped here |
//! |---|---|---|
//! | [`ReleaseSource`] | lists releases, streams assets | [`LocalDirectorySource`](source::LocalDirectorySource) |
//! | [`BackupStrategy`] | create, verify, restore, delete backups | — (see `updater-backup`) |
//! | [`Migrator`] | apply / revert schema migrations | [`CommandMigrator`](migrate::CommandMigrator) |
//! | [`MaintenanceSwitch`] | maintenance mode on / off | [`FlagFileMaintenance`](maintenance::FlagFileMaintenance), [`CommandMaintenance`](maintenance::CommandMaintenance) |
//! | [`HealthCheck`] | is the new release healthy? | [`CommandHealthCheck`](health::CommandHealthCheck) |
//! | [`Hook`] | after swap / after rollback | [`CommandHook`](hook::CommandHook) |
//! | [`HistoryStore`] | checks, updates, backups, notifications | [`InMemoryHistoryStore`](history::InMemoryHistoryStore) |
//! | [`Notifier`] | tell admins | [`LogNotifier`](notify::LogNotifier), [`StoreNotifier`](notify::StoreNotifier) |
//! | [`NotificationOutbox`] | keep notices and their per-channel delivery state until delivered | [`InMemoryOutbox`](outbox::InMemoryOutbox) |
//! | [`ScheduleStore`] | one-off scheduled updates (`apply --at`) | [`InMemoryScheduleStore`](automation::InMemoryScheduleStore) |
//!
//! ## Publishing releases
//!
//! [`package::build_release`] (behind `updater release build`) turns a build
//! directory into a reproducible package whose every entry is its own gzip
//! member, plus a file index; [`package::delta`] then lets an update fetch
//! only the changed files with byte ranges
//! ([`ReleaseSource::download_ranges`]),
//! falling back to the whole package with the reason in history.
//!
//! ## How an update runs
//!
//! [`Updater::apply`] does the slow work first, while the application keeps
//! serving: preflight (disk space, permissions, `[[preflight]]`
//! [`requirement`]s, a trial restore of the database backup), files backup,
//! download with SHA-256 (and signature) checked while streaming,
//! extraction into a staging directory on the same file system with every
//! archive entry validated ([`package`]), and a scan of the application's
//! **data** ([`data`]): every file the running release did not ship —
//! uploads, a SQLite file, sessions — is found without being declared and
//! carried into the new release. Only then does maintenance mode go on,
//! for: a database snapshot, the swap (a few renames of top-level entries,
//! O(1) in the number of files), migrations, hooks and the health check.
//! Any failure in the window rolls back: down migrations or the snapshot,
//! renames undone, data written meanwhile kept, maintenance off, history
//! and admins told.
//!
//! Each phase is recorded in a journal before it runs. After a crash,
//! [`Updater::recover`] reads it and leaves the application on exactly the
//! old or the new release with all its data (the position within the swap
//! is derived from the file system; processes a dead updater started are
//! stopped first). Call `recover()` when your application starts; the
//! `updater` CLI runs it before every command.
//!
//! Unattended operation lives in [`automation`] and
//! [`Updater::automation_round`]: automatic updates by policy and
//! maintenance window, one-off scheduled updates, a pause switch, and
//! probation after commit (a release that turns unhealthy is rolled back).
//! [`Updater::preview`] says what an update would change; [`stats`]
//! summarises history.
//!
//! ## Example: embedding the updater
//!
//! The traits, [`Updater`], [`UpdaterBuilder`] and the outcome types are at
//! the crate root.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use updater_core::command::ShellCommand;
//! use updater_core::health::CommandHealthCheck;
//! use updater_core::source::LocalDirectorySource;
//! use updater_core::version::{Channel, Version};
//! use updater_core::{ApplyOutcome, ApplyRequest, ProgressEvent, UpdaterBuilder};
//!
//! # let work = tempfile::tempdir()?;
//! # let app_dir = work.path().join("app");
//! # std::fs::create_dir_all(app_dir.join("public"))?;
//! # std::fs::write(app_dir.join("VERSION"), "1.0.0")?;
//! # std::fs::write(app_dir.join(".env"), "APP_KEY=kept-across-updates")?;
//! # std::fs::create_dir_all(app_dir.join("storage"))?;
//! # std::fs::write(app_dir.join("storage/app.sqlite"), "rows")?;
//! # let build = work.path().join("build");
//! # std::fs::create_dir_all(build.join("public"))?;
//! # std::fs::write(build.join("VERSION"), "1.1.0")?;
//! # std::fs::write(build.join("public/index.html"), "new")?;
//! # let archive = work.path().join("app-1.1.0.tar.gz");
//! # {
//! #     let gz = flate2::write::GzEncoder::new(std::fs::File::create(&archive)?, flate2::Compression::fast());
//! #     let mut tar = tar::Builder::new(gz);
//! #     tar.append_dir_all(".", &build)?;
//! #     tar.into_inner()?.finish()?;
//! # }
//! // Releases come from a directory here; `updater-source-github` has GitHub and HTTP sources.
//! let releases = LocalDirectorySource::new(work.path().join("releases"));
//! releases.publish(&Version::new(1, 1, 0), &archive, "New front page", None)?;
//!
//! let updater = UpdaterBuilder::new(&app_dir)
//!     .with_source(releases)
//!     .with_health_check(Arc::new(CommandHealthCheck::new(ShellCommand::new("test -f public/index.html"))))
//!     .configure(|c| {
//!         c.channel = Channel::Stable;
//!         c.health_timeout = Duration::from_secs(30);
//!     })
//!     .build()?;
//!
//! updater.recover()?; // at every start: finish or undo an interrupted update
//!
//! let check = updater.check(false)?;
//! assert!(check.update_available);
//!
//! let progress = |event: &ProgressEvent| tracing::info!(percent = event.percent, "{}", event.message);
//! match updater.apply(&ApplyRequest::latest("docs"), &progress)? {
//!     ApplyOutcome::Updated(report) => {
//!         assert_eq!(report.to, Version::new(1, 1, 0));
//!         assert!(report.maintenance_window < Duration::from_secs(5));
//!         // Data nobody declared came along.
//!         assert!(report.carried.iter().any(|path| path.starts_with("storage")));
//!     }
//!     ApplyOutcome::UpToDate { .. } => unreachable!("1.1.0 was published"),
//! }
//! assert_eq!(std::fs::read_to_string(app_dir.join(".env"))?, "APP_KEY=kept-across-updates");
//! assert_eq!(std::fs::read_to_string(app_dir.join("storage/app.sqlite"))?, "rows");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The API is blocking: every step is file, process or database I/O and an
//! update is one long operation. From async code, call it inside
//! `tokio::task::spawn_blocking`.
//!
//! ## Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `conformance` | no | [`conformance`]: the shared test suites every trait implementation runs (destructive, semver-exempt) |
//! | `signing` | no | [`package::signature::sign_metadata`] and [`package::build::sign_release`], to sign release metadata from Rust (what `updater release build --key` does) |
//! | `failpoints` | no | `failpoint`: inject errors, crashes and a full disk at named points of the pipeline (the combination tester; tests only) |

#![warn(missing_docs)]

pub mod automation;
pub mod backup;
pub mod clock;
pub mod command;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod data;
pub mod durable;
pub mod error;
#[cfg(feature = "failpoints")]
pub mod failpoint;
#[cfg(not(feature = "failpoints"))]
pub(crate) mod failpoint;
pub mod health;
pub mod history;
pub mod hook;
mod install;
mod lock;
pub mod maintenance;
pub mod manifest;
pub mod migrate;
pub mod notify;
pub mod outbox;
pub mod package;
pub mod pipeline;
pub mod progress;
pub mod release;
pub mod requirement;
pub mod secret;
pub mod source;
pub mod stats;
pub mod step;
pub mod tree;
pub mod version;

pub use automation::ScheduleStore;
pub use backup::BackupStrategy;
pub use data::ConflictPolicy;
pub use error::{Error, Result};
pub use health::HealthCheck;
pub use history::HistoryStore;
pub use hook::Hook;
pub use lock::LockRecord;
pub use maintenance::MaintenanceSwitch;
pub use migrate::Migrator;
pub use notify::Notifier;
pub use outbox::NotificationOutbox;
pub use pipeline::{
    ApplyOutcome, ApplyRequest, CheckReport, RecoveryAction, RecoveryReport, RestoreRequest,
    RollbackRequest, StatusReport, UpdateReport, Updater, UpdaterBuilder, UpdaterConfig,
};
pub use progress::{ProgressEvent, ProgressObserver};
pub use source::ReleaseSource;
pub use step::Step;

/// Implements a trait for `&T`, `Box<T>` and `Arc<T>` by forwarding every
/// method, so trait objects and shared handles work wherever an
/// implementation is expected. `#[deny(clippy::missing_trait_methods)]`
/// makes a method added to the trait without a forward a compile error
/// (default methods would otherwise silently skip the inner implementation).
#[macro_export]
#[doc(hidden)]
macro_rules! forward_trait {
    ($trait:ident : $(fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty;)*) => {
        $crate::forward_trait!(@impl $trait [&T] $(fn $name(&self $(, $arg: $ty)*) -> $ret;)*);
        $crate::forward_trait!(@impl $trait [::std::boxed::Box<T>] $(fn $name(&self $(, $arg: $ty)*) -> $ret;)*);
        $crate::forward_trait!(@impl $trait [::std::sync::Arc<T>] $(fn $name(&self $(, $arg: $ty)*) -> $ret;)*);
    };
    (@impl $trait:ident [$($wrapper:tt)*] $(fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty;)*) => {
        #[deny(clippy::missing_trait_methods)]
        impl<T: $trait + ?Sized> $trait for $($wrapper)* {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret { (**self).$name($($arg),*) })*
        }
    };
}
