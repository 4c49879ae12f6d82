//! The [`HealthCheck`] trait — is the new release working? — and the
//! [`CommandHealthCheck`] that runs a shell command. A check is one probe;
//! the pipeline probes every `health_interval` until it passes or the
//! deadline does. An HTTP check lives in `updater-source-github`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::command::{ChildLedger, ShellCommand};
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
#[cfg_attr(test, mockall::automock)]
pub trait HealthCheck: Send + Sync {
    /// A short description for logs.
    fn describe(&self) -> String;
    /// Gives the verdict.
    fn check(&self, ctx: &HealthContext) -> Result<()>;
}

crate::forward_trait!(HealthCheck: fn describe(&self) -> String; fn check(&self, ctx: &HealthContext) -> Result<()>;);

/// Probes every check in turn until it passes, every `interval`, until
/// `ctx.deadline`: the one retry loop of the pipeline (the health step and
/// the probation watch). Returns the number of probes; the error of a check
/// still failing at the deadline says how many attempts it had.
pub(crate) fn probe_until_healthy(
    checks: &[Arc<dyn HealthCheck>],
    ctx: &HealthContext,
    interval: Duration,
) -> Result<u32> {
    let mut probes = 0;
    for check in checks {
        let mut attempts = 0u32;
        let started = Instant::now();
        loop {
            attempts += 1;
            probes += 1;
            let error = match check.check(ctx) {
                Ok(()) => break,
                Err(error) => error,
            };
            if Instant::now() + interval < ctx.deadline {
                std::thread::sleep(interval);
                continue;
            }
            let tried = format!(
                "still failing after {attempts} attempt(s) over {:.0?}",
                started.elapsed()
            );
            return Err(match error {
                Error::Command {
                    step,
                    command,
                    reason,
                } => Error::Command {
                    step,
                    command,
                    reason: format!("{tried}; last: {reason}"),
                },
                other => Error::Other {
                    context: format!("health check {} {tried}", check.describe()),
                    source: Box::new(other),
                },
            });
        }
    }
    Ok(probes)
}

/// Runs a shell command in the application directory: healthy when it
/// exits 0. The version is passed as `UPDATER_VERSION` and the maintenance
/// bypass secret as `UPDATER_MAINTENANCE_SECRET`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(deadline_in: Duration) -> HealthContext {
        HealthContext {
            app_dir: std::env::temp_dir(),
            version: Version::new(1, 1, 0),
            deadline: Instant::now() + deadline_in,
            bypass_secret: None,
            children: None,
        }
    }

    fn failing() -> Error {
        Error::Command {
            step: "health check".into(),
            command: "curl".into(),
            reason: "exit status 7".into(),
        }
    }

    #[test]
    fn a_check_failing_twice_then_passing_is_probed_three_times() {
        let mut check = MockHealthCheck::new();
        let mut calls = 0;
        check.expect_check().times(3).returning(move |_| {
            calls += 1;
            if calls < 3 { Err(failing()) } else { Ok(()) }
        });
        let checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(check)];
        let probes = probe_until_healthy(
            &checks,
            &ctx(Duration::from_secs(5)),
            Duration::from_millis(5),
        )
        .unwrap();
        assert_eq!(probes, 3);
    }

    #[test]
    fn a_check_still_failing_at_the_deadline_fails_with_its_attempts_and_last_reason() {
        let mut check = MockHealthCheck::new();
        check.expect_check().returning(|_| Err(failing()));
        check.expect_describe().return_const("mock".to_string());
        let checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(check)];
        let started = Instant::now();
        let error = probe_until_healthy(
            &checks,
            &ctx(Duration::from_millis(200)),
            Duration::from_millis(20),
        )
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "overran the deadline"
        );
        assert!(
            matches!(&error, Error::Command { reason, .. }
                if reason.contains("still failing after") && reason.ends_with("last: exit status 7")),
            "{error}"
        );
    }

    #[test]
    fn every_check_must_pass_and_a_later_one_is_not_probed_after_a_failure() {
        let mut first = MockHealthCheck::new();
        first
            .expect_check()
            .returning(|_| Err(Error::invalid("response", "HTTP 500")));
        first.expect_describe().return_const("first".to_string());
        let mut second = MockHealthCheck::new();
        second.expect_check().never();
        let checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(first), Arc::new(second)];
        let error = probe_until_healthy(
            &checks,
            &ctx(Duration::from_millis(50)),
            Duration::from_millis(20),
        )
        .unwrap_err();
        assert!(
            matches!(&error, Error::Other { context, .. } if context.starts_with("health check first still failing")),
            "{error}"
        );
    }

    #[test]
    fn the_context_given_to_every_probe_is_the_callers() {
        let mut check = MockHealthCheck::new();
        check
            .expect_check()
            .withf(|ctx| ctx.version == Version::new(1, 1, 0))
            .times(1)
            .returning(|_| Ok(()));
        let checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(check)];
        assert_eq!(
            probe_until_healthy(
                &checks,
                &ctx(Duration::from_secs(1)),
                Duration::from_millis(5)
            )
            .unwrap(),
            1
        );
    }
}
