//! Conformance suite for [`HealthCheck`] implementations.
//!
//! A health check looks at something outside itself (a URL, a command's
//! world), so the suite drives it through a [`HealthTarget`] the test
//! provides: the check under test, and a way to make what it probes
//! healthy, unhealthy or unresponsive.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::health::{HealthCheck, HealthContext};
use crate::version::Version;

/// How long a probe may overrun its deadline (process start-up, a socket close).
const SLACK: Duration = Duration::from_secs(2);

/// What the probed application does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Answers as a healthy release does.
    Healthy,
    /// Answers, but as a broken release does (an error page, a failing command).
    Unhealthy,
    /// Does not answer at all (accepts and stalls, a command that hangs).
    Hanging,
}

/// The check under test and the application it probes.
pub trait HealthTarget {
    /// The check under test.
    fn check(&self) -> Arc<dyn HealthCheck>;
    /// The application directory given to the check.
    fn app_dir(&self) -> PathBuf;
    /// Makes the probed application behave as `state`.
    fn set(&self, state: TargetState);
}

fn context(target: &dyn HealthTarget, within: Duration) -> HealthContext {
    HealthContext {
        app_dir: target.app_dir(),
        version: Version::new(9, 9, 9),
        deadline: Instant::now() + within,
        bypass_secret: Some("conformance-bypass-secret".into()),
        children: None,
    }
}

/// Runs every rule against `target`.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(target: &dyn HealthTarget) {
    let check = target.check();
    let describe = check.describe();
    assert!(
        !describe.trim().is_empty(),
        "describe() must say what is probed"
    );

    // The verdict follows the application, probe by probe: nothing cached.
    for (round, state) in [
        TargetState::Healthy,
        TargetState::Unhealthy,
        TargetState::Healthy,
        TargetState::Unhealthy,
    ]
    .into_iter()
    .enumerate()
    {
        target.set(state);
        let verdict = check.check(&context(target, Duration::from_secs(10)));
        match (state, verdict) {
            (TargetState::Healthy, Ok(())) | (TargetState::Unhealthy, Err(_)) => {}
            (state, verdict) => {
                panic!("{describe}: probe {round} of a {state:?} application returned {verdict:?}")
            }
        }
    }

    // An unhealthy verdict says why, without the bypass secret.
    target.set(TargetState::Unhealthy);
    let Err(error) = check.check(&context(target, Duration::from_secs(10))) else {
        panic!("{describe}: an unhealthy application passed");
    };
    let message = error.to_string();
    assert!(
        !message.trim().is_empty(),
        "{describe}: an unhealthy verdict must say why"
    );
    assert!(
        !message.contains("conformance-bypass-secret")
            && !describe.contains("conformance-bypass-secret"),
        "{describe}: the maintenance bypass secret leaked into a message: {message}"
    );

    // A probe returns by its deadline, even when nothing answers.
    target.set(TargetState::Hanging);
    let within = Duration::from_secs(1);
    let started = Instant::now();
    let verdict = check.check(&context(target, within));
    let took = started.elapsed();
    assert!(
        verdict.is_err(),
        "{describe}: an application that does not answer is not healthy"
    );
    assert!(
        took <= within + SLACK,
        "{describe}: a probe with a deadline {within:?} away took {took:?}"
    );

    // A deadline already passed: the probe returns at once.
    target.set(TargetState::Healthy);
    let mut late = context(target, Duration::ZERO);
    late.deadline = Instant::now()
        .checked_sub(Duration::from_millis(10))
        .unwrap_or_else(Instant::now);
    let started = Instant::now();
    let _ = check.check(&late);
    assert!(
        started.elapsed() <= SLACK,
        "{describe}: a probe past its deadline took {:?}",
        started.elapsed()
    );

    // Probes from several threads at once (the trait is Send + Sync).
    let verdicts: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let check = Arc::clone(&check);
                let ctx = context(target, Duration::from_secs(10));
                scope.spawn(move || check.check(&ctx).is_ok())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    });
    assert!(
        verdicts.iter().all(|ok| *ok),
        "{describe}: concurrent probes of a healthy application failed: {verdicts:?}"
    );
}
