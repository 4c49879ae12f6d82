//! The [`Migrator`] trait (database schema changes of a release) and the
//! [`CommandMigrator`] that runs the application's own migration commands.
//!
//! The pipeline runs [`Migrator::migrate`] inside the maintenance window,
//! after the swap. On rollback it restores the database snapshot when one was
//! taken (the primary way back: most migration tools have no down
//! migrations), and otherwise calls [`Migrator::revert`] when
//! [`Migrator::can_revert`] says the migrator has down migrations. The
//! update lock is held around both, since most migration tools take none.

use std::path::{Path, PathBuf};

use crate::command::{ChildLedger, ShellCommand};
use crate::error::{Error, Result};
use crate::version::Version;

/// Where and between which versions a migration runs. `migrate` moves the
/// schema from `from` to `to`; `revert` with the same context moves it back to `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationContext {
    /// The application directory (already holding the release being migrated to).
    pub app_dir: PathBuf,
    /// The version before the update.
    pub from: Version,
    /// The version after the update.
    pub to: Version,
    /// Where commands record their children, so that none outlives a dead
    /// updater (recovery stops them before undoing anything).
    pub children: Option<ChildLedger>,
}

/// Applies and reverts the database migrations of a release.
///
/// # Contract
///
/// - [`migrate`](Self::migrate) brings the schema to what `ctx.to` expects,
///   and is idempotent (already-applied migrations are skipped).
/// - [`revert`](Self::revert) brings the schema back to what `ctx.from`
///   expects; only called when [`can_revert`](Self::can_revert) is true.
/// - [`check`](Self::check) fails when the database cannot be reached, so the
///   update stops before maintenance mode.
///
/// # Implementing
///
/// Required: [`describe`](Self::describe) and [`migrate`](Self::migrate).
pub trait Migrator: Send + Sync {
    /// A short description for logs.
    fn describe(&self) -> String;

    /// Fails when migrations could not run now (database unreachable, tool missing).
    fn check(&self, _app_dir: &Path) -> Result<()> {
        Ok(())
    }

    /// Applies the migrations of `ctx.to`.
    fn migrate(&self, ctx: &MigrationContext) -> Result<()>;

    /// The migrations `ctx` would apply, by name, when the migrator can tell
    /// (for `updater preview`); `None` when it cannot.
    fn pending(&self, _ctx: &MigrationContext) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    /// Whether [`revert`](Self::revert) is supported.
    fn can_revert(&self) -> bool {
        false
    }

    /// Undoes [`migrate`](Self::migrate) of the same `ctx`: takes the schema
    /// back from what `ctx.to` expects to what `ctx.from` expects.
    fn revert(&self, ctx: &MigrationContext) -> Result<()> {
        Err(Error::precondition(
            "revert migrations",
            format!("{} has no down migrations", ctx.to),
        ))
    }
}

crate::forward_trait!(Migrator:
    fn describe(&self) -> String;
    fn check(&self, app_dir: &Path) -> Result<()>;
    fn migrate(&self, ctx: &MigrationContext) -> Result<()>;
    fn pending(&self, ctx: &MigrationContext) -> Result<Option<Vec<String>>>;
    fn can_revert(&self) -> bool;
    fn revert(&self, ctx: &MigrationContext) -> Result<()>;
);

/// Runs shell commands in the application directory: one to migrate up, an
/// optional one to revert, an optional one to check the database is reachable.
/// The versions of the update are passed as `UPDATER_FROM_VERSION` and
/// `UPDATER_TO_VERSION` (also to the revert command, whose target is the
/// `FROM` version).
///
/// ```
/// use updater_core::command::ShellCommand;
/// use updater_core::migrate::{CommandMigrator, Migrator};
///
/// let migrator = CommandMigrator::new(ShellCommand::new("php artisan migrate --force"))
///     .with_revert(ShellCommand::new("php artisan migrate:rollback --force"))
///     .with_check(ShellCommand::new("php artisan migrate:status"));
/// assert!(migrator.can_revert());
/// ```
#[derive(Debug, Clone)]
pub struct CommandMigrator {
    up: ShellCommand,
    down: Option<ShellCommand>,
    check: Option<ShellCommand>,
    status: Option<ShellCommand>,
}

impl CommandMigrator {
    /// A migrator running `up` to migrate.
    pub fn new(up: ShellCommand) -> Self {
        CommandMigrator {
            up,
            down: None,
            check: None,
            status: None,
        }
    }

    /// Adds the command that reverts (builder style).
    pub fn with_revert(mut self, down: ShellCommand) -> Self {
        self.down = Some(down);
        self
    }

    /// Adds the command that checks the database is reachable (builder style).
    pub fn with_check(mut self, check: ShellCommand) -> Self {
        self.check = Some(check);
        self
    }

    /// Adds the command that lists pending migrations, one per line of its
    /// output (builder style), for `updater preview`.
    pub fn with_status(mut self, status: ShellCommand) -> Self {
        self.status = Some(status);
        self
    }

    fn with_versions(command: &ShellCommand, ctx: &MigrationContext) -> ShellCommand {
        let command = command
            .clone()
            .with_env("UPDATER_FROM_VERSION", ctx.from.to_string())
            .with_env("UPDATER_TO_VERSION", ctx.to.to_string());
        match &ctx.children {
            Some(ledger) => command.with_ledger(ledger.clone()),
            None => command,
        }
    }
}

impl Migrator for CommandMigrator {
    fn describe(&self) -> String {
        format!("command `{}`", self.up.describe())
    }

    fn check(&self, app_dir: &Path) -> Result<()> {
        match &self.check {
            Some(check) => check.run("migration preflight", Some(app_dir)).map(drop),
            None => Ok(()),
        }
    }

    fn migrate(&self, ctx: &MigrationContext) -> Result<()> {
        Self::with_versions(&self.up, ctx)
            .run("migrate", Some(&ctx.app_dir))
            .map(drop)
    }

    fn pending(&self, ctx: &MigrationContext) -> Result<Option<Vec<String>>> {
        let Some(status) = &self.status else {
            return Ok(None);
        };
        let output =
            Self::with_versions(status, ctx).run("migration status", Some(&ctx.app_dir))?;
        Ok(Some(
            output
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        ))
    }

    fn can_revert(&self) -> bool {
        self.down.is_some()
    }

    fn revert(&self, ctx: &MigrationContext) -> Result<()> {
        match &self.down {
            Some(down) => Self::with_versions(down, ctx)
                .run("revert migrations", Some(&ctx.app_dir))
                .map(drop),
            None => Err(Error::precondition(
                "revert migrations",
                "no revert command is configured",
            )),
        }
    }
}
