//! The [`HealthCheck`] trait — is the new release working? — and the
//! [`CommandHealthCheck`] that retries a shell command until it succeeds or
//! the deadline passes. An HTTP check lives in `updater-source-github`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::command::ShellCommand;
use crate::error::{Error, Result};
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
}

/// Decides whether the newly installed release is healthy.
///
/// # Contract
///
/// - Returns `Ok(())` only when the release is healthy; any error means
///   "roll back". It may retry internally but returns by `ctx.deadline`.
/// - No side effects on the application.
///
/// # Implementing
///
/// Required: both methods.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait HealthCheck: Send + Sync {
    /// A short description for logs.
    fn describe(&self) -> String;
    /// Gives the verdict.
    fn check(&self, ctx: &HealthContext) -> Result<()>;
}

impl<T: HealthCheck + ?Sized> HealthCheck for Arc<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn check(&self, ctx: &HealthContext) -> Result<()> {
        (**self).check(ctx)
    }
}

impl<T: HealthCheck + ?Sized> HealthCheck for Box<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn check(&self, ctx: &HealthContext) -> Result<()> {
        (**self).check(ctx)
    }
}

impl<T: HealthCheck + ?Sized> HealthCheck for &T {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn check(&self, ctx: &HealthContext) -> Result<()> {
        (**self).check(ctx)
    }
}

/// Runs a shell command in the application directory until it exits 0,
/// retrying every `interval`, until the deadline. The version is passed as
/// `UPDATER_VERSION` and the bypass secret as `UPDATER_MAINTENANCE_SECRET`.
///
/// ```
/// use std::time::{Duration, Instant};
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
/// };
/// check.check(&ctx)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CommandHealthCheck {
    command: ShellCommand,
    interval: Duration,
}

impl CommandHealthCheck {
    /// Retries `command` every second.
    pub fn new(command: ShellCommand) -> Self {
        CommandHealthCheck {
            command,
            interval: Duration::from_secs(1),
        }
    }

    /// Sets the retry interval (builder style).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

impl HealthCheck for CommandHealthCheck {
    fn describe(&self) -> String {
        format!("command `{}`", self.command.program())
    }

    fn check(&self, ctx: &HealthContext) -> Result<()> {
        let mut command = self
            .command
            .clone()
            .with_env("UPDATER_VERSION", ctx.version.to_string());
        if let Some(secret) = &ctx.bypass_secret {
            command = command.with_env("UPDATER_MAINTENANCE_SECRET", secret.clone());
        }
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match command.run_until("health check", Some(&ctx.app_dir), ctx.deadline) {
                Ok(_) => return Ok(()),
                Err(last) => {
                    let now = Instant::now();
                    if now + self.interval >= ctx.deadline {
                        return Err(match last {
                            Error::Command {
                                step,
                                command,
                                reason,
                            } => Error::Command {
                                step,
                                command,
                                reason: format!(
                                    "still failing after {attempts} attempts: {reason}"
                                ),
                            },
                            other => other,
                        });
                    }
                    std::thread::sleep(self.interval);
                }
            }
        }
    }
}
