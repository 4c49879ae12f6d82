//! The [`HealthCheck`] trait — is the new release working? — and the
//! [`CommandHealthCheck`] that runs a shell command. A check is one probe;
//! the pipeline probes every `health_interval` until it passes or the
//! deadline does. An HTTP check lives in `updater-source-github`.

use std::path::PathBuf;
use std::time::Instant;

use crate::command::{ChildLedger, ShellCommand};
use crate::error::Result;
use crate::version::Version;

/// What a health check is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthContext {
    /// The application directory.
    pub app_dir: PathBuf,
    /// The version that should now be running.
    pub version: Version,
    /// The check must give its verdict before this instant.
    pub deadline: Instant,
    /// The maintenance bypass secret, so a check can reach the app while
    /// maintenance mode is on (send it as the `X-Maintenance-Bypass` header).
    pub bypass_secret: Option<String>,
    /// Where commands record their children (see [`MigrationContext::children`](crate::migrate::MigrationContext::children)).
    pub children: Option<ChildLedger>,
}

/// Decides whether the newly installed release is healthy.
///
/// # Contract
///
/// - [`check`](Self::check) is one probe: `Ok(())` when the release is
///   healthy now, an error (saying why) when not. The pipeline probes again
///   every `health_interval` until a probe passes or `ctx.deadline` does;
///   only then does it roll back. A probe returns by `ctx.deadline`.
/// - No side effects on the application.
///
/// # Implementing
///
/// Required: both methods. Run `updater_core::conformance::health::run`
/// (feature `conformance`).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait HealthCheck: Send + Sync {
    /// A short description for logs.
    fn describe(&self) -> String;
    /// Gives the verdict.
    fn check(&self, ctx: &HealthContext) -> Result<()>;
}

crate::forward_trait!(HealthCheck: fn describe(&self) -> String; fn check(&self, ctx: &HealthContext) -> Result<()>;);

/// Runs a shell command in the application directory: healthy when it
/// exits 0. The version is passed as `UPDATER_VERSION` and the maintenance
/// bypass secret as `UPDATER_MAINTENANCE_SECRET`.
///
/// ```
/// use std::time::Instant;
/// use updater_core::command::ShellCommand;
/// use updater_core::health::{CommandHealthCheck, HealthCheck, HealthContext};
/// use updater_core::version::Version;
///
/// let check = CommandHealthCheck::new(ShellCommand::new("test \"$UPDATER_VERSION\" = 1.1.0"));
/// let ctx = HealthContext {
///     app_dir: std::env::temp_dir(),
///     version: Version::new(1, 1, 0),
///     deadline: Instant::now() + Duration::from_secs(5),
///     bypass_secret: None,
///     children: None,
/// };
/// check.check(&ctx)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CommandHealthCheck {
    command: ShellCommand,
}

impl CommandHealthCheck {
    /// A check running `command` (bounded by its own timeout and the deadline).
    pub fn new(command: ShellCommand) -> Self {
        CommandHealthCheck { command }
    }
}

impl HealthCheck for CommandHealthCheck {
    fn describe(&self) -> String {
        format!("command `{}`", self.command.describe())
    }

    fn check(&self, ctx: &HealthContext) -> Result<()> {
        let mut command = self
            .command
            .clone()
            .with_env("UPDATER_VERSION", ctx.version.to_string());
        if let Some(secret) = &ctx.bypass_secret {
            command = command.with_env("UPDATER_MAINTENANCE_SECRET", secret.clone());
        }
        if let Some(ledger) = &ctx.children {
            command = command.with_ledger(ledger.clone());
        }
        command
            .run_until("health check", Some(&ctx.app_dir), ctx.deadline)
            .map(drop)
    }
}
