//! Regression tests for the correctness fixes of issue 11, through the
//! library's public API: `check` and `apply` share one version rule, a
//! failed lookup is recorded and notified, hooks see the event of their
//! transition, a failing rollback hook and a failed undo are in the record,
//! maintenance goes off exactly once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use updater_core::command::ShellCommand;
use updater_core::health::CommandHealthCheck;
use updater_core::history::{
    HistoryStore, NotificationFilter, NotificationType, Page, StepOutcome, UpdateStatus,
};
use updater_core::hook::{Hook, HookContext, HookEvent};
use updater_core::maintenance::{FlagFileMaintenance, MaintenanceNotice, MaintenanceSwitch};
use updater_core::notify::StoreNotifier;
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, RollbackRequest, UpdaterBuilder};
use updater_core::progress::NoProgress;
use updater_core::release::{Asset, Release};
use updater_core::source::ReleaseSource;
use updater_core::version::{Channel, UpdateType, Version};
use updater_core::{Error, Step};
use updater_testkit::app::Fixture;
use updater_testkit::tree::snapshot;

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

fn rollback_request() -> RollbackRequest {
    RollbackRequest {
        initiated_by: "test".into(),
        restore_database_snapshot: false,
    }
}

/// A health check that never passes, given up on quickly.
fn unhealthy(builder: UpdaterBuilder) -> UpdaterBuilder {
    builder
        .with_health_check(Arc::new(CommandHealthCheck::new(ShellCommand::new(
            "false",
        ))))
        .configure(|c| {
            c.health_timeout = Duration::from_millis(300);
            c.health_interval = Duration::from_millis(20);
        })
}

/// A source whose server is down.
#[derive(Debug)]
struct Unreachable;

impl ReleaseSource for Unreachable {
    fn describe(&self) -> String {
        "an unreachable server".into()
    }

    fn releases(&self, _channel: Channel) -> updater_core::Result<Vec<Release>> {
        Err(Error::Unavailable {
            service: "release server".into(),
            reason: "connection refused".into(),
            source: None,
        })
    }

    fn download(&self, _asset: &Asset, _sink: &mut dyn Write) -> updater_core::Result<u64> {
        unreachable!("nothing is downloaded when the lookup fails")
    }
}

/// A flag-file switch counting its calls; `disable` fails when `broken`.
#[derive(Debug)]
struct Counting {
    flag: FlagFileMaintenance,
    enabled: AtomicUsize,
    disabled: AtomicUsize,
    broken: bool,
}

impl Counting {
    fn new(path: PathBuf, broken: bool) -> Arc<Counting> {
        Arc::new(Counting {
            flag: FlagFileMaintenance::new(path),
            enabled: AtomicUsize::new(0),
            disabled: AtomicUsize::new(0),
            broken,
        })
    }

    fn calls(&self) -> (usize, usize) {
        (
            self.enabled.load(Ordering::SeqCst),
            self.disabled.load(Ordering::SeqCst),
        )
    }
}

impl MaintenanceSwitch for Counting {
    fn describe(&self) -> String {
        "counting flag file".into()
    }

    fn enable(&self, notice: &MaintenanceNotice) -> updater_core::Result<()> {
        self.enabled.fetch_add(1, Ordering::SeqCst);
        self.flag.enable(notice)
    }

    fn disable(&self) -> updater_core::Result<()> {
        self.disabled.fetch_add(1, Ordering::SeqCst);
        if self.broken {
            return Err(Error::precondition(
                "maintenance off",
                "the application refuses to leave maintenance",
            ));
        }
        self.flag.disable()
    }

    fn status(&self) -> updater_core::Result<Option<MaintenanceNotice>> {
        self.flag.status()
    }
}

/// A hook recording every event it sees; fails after rollbacks when `fail_after_rollback`.
#[derive(Debug, Default)]
struct Recording {
    seen: Mutex<Vec<(HookEvent, String, String)>>,
    fail_after_rollback: bool,
}

impl Hook for Recording {
    fn describe(&self) -> String {
        "recording hook".into()
    }

    fn run(&self, ctx: &HookContext) -> updater_core::Result<()> {
        self.seen
            .lock()
            .unwrap()
            .push((ctx.event, ctx.from.to_string(), ctx.to.to_string()));
        if self.fail_after_rollback && ctx.event == HookEvent::AfterRollback {
            return Err(Error::precondition("cache warm-up", "the cache is down"));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn check_and_apply_offer_and_install_the_same_downgrade_only_when_allowed() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    // 1.1.0 is withdrawn: the channel's newest release is 1.0.0 again.
    let manifest_path = fx.releases.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["releases"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["version"] != "1.1.0");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();

    let check = updater.check(true).unwrap();
    assert_eq!(check.latest.map(|r| r.version), Some(v("1.0.0")));
    assert!(!check.update_available);
    let outcome = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    assert_eq!(
        outcome,
        ApplyOutcome::UpToDate {
            current: v("1.1.0")
        }
    );

    let allowing = fx
        .builder()
        .configure(|c| c.policy.allow_downgrade = true)
        .build()
        .unwrap();
    let check = allowing.check(true).unwrap();
    assert!(check.update_available);
    assert_eq!(check.update_type, Some(UpdateType::Downgrade));
    let outcome = allowing
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    let ApplyOutcome::Updated(report) = outcome else {
        panic!("check offered 1.0.0, apply must install it: {outcome:?}")
    };
    assert_eq!((report.from, report.to), (v("1.1.0"), v("1.0.0")));
    assert_eq!(allowing.current_version().unwrap(), v("1.0.0"));
}

#[test]
fn a_failed_lookup_is_a_check_step_error_with_a_failed_record_and_a_notice() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    let updater = UpdaterBuilder::new(&fx.app)
        .with_source(Unreachable)
        .with_history(fx.history.clone())
        .with_notifier(Arc::new(
            StoreNotifier::new(fx.history.clone()).with_admins(["alice"]),
        ))
        .build()
        .unwrap();

    let err = updater
        .apply(&ApplyRequest::latest("cron"), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Step { step: Step::Check, source } if matches!(**source, Error::Unavailable { .. })),
        "{err}"
    );
    assert_eq!(snapshot(&fx.app), before);

    let records = fx.history.updates(Page::first(10)).unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.status, UpdateStatus::Failed);
    assert_eq!(record.initiated_by, "cron");
    assert_eq!(record.previous_version, Some(v("1.0.0")));
    assert_eq!(
        record.error_message.as_deref(),
        Some("check: release server unavailable: connection refused")
    );
    assert!(record.failed_at.is_some());
    assert_eq!(record.steps.len(), 1);
    assert_eq!(record.steps[0].name, "check");
    assert_eq!(record.steps[0].outcome, StepOutcome::Failed);

    let notes = fx
        .history
        .notifications(&NotificationFilter::default())
        .unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].notification_type, NotificationType::UpdateFailed);
    assert_eq!(notes[0].user_id.as_deref(), Some("alice"));
    assert_eq!(
        notes[0].message,
        "update failed: the release lookup failed: release server unavailable: connection refused; nothing was changed"
    );
    let metadata = notes[0].metadata.clone().unwrap();
    assert_eq!(metadata["step"], "check");
    assert_eq!(metadata["update_id"], record.id);
}

#[test]
fn apply_runs_after_swap_hooks_and_rollback_runs_after_rollback_hooks() {
    let fx = Fixture::new();
    let hook = Arc::new(Recording::default());
    let updater = fx.builder().with_hook(hook.clone()).build().unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    updater.rollback(&rollback_request(), &NoProgress).unwrap();
    assert_eq!(
        *hook.seen.lock().unwrap(),
        [
            (
                HookEvent::AfterSwap,
                "1.0.0".to_string(),
                "1.1.0".to_string()
            ),
            (
                HookEvent::AfterRollback,
                "1.1.0".to_string(),
                "1.0.0".to_string()
            ),
        ]
    );
}

#[test]
fn maintenance_goes_off_exactly_once_per_successful_update_and_rollback() {
    let fx = Fixture::new();
    let switch = Counting::new(fx.root.join("maintenance.json"), false);
    let updater = fx
        .builder()
        .with_maintenance(switch.clone())
        .build()
        .unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    assert_eq!(switch.calls(), (1, 1), "(enable, disable) after the update");
    updater.rollback(&rollback_request(), &NoProgress).unwrap();
    assert_eq!(
        switch.calls(),
        (2, 2),
        "(enable, disable) after the rollback"
    );
    assert_eq!(switch.status().unwrap(), None);
}

#[test]
fn a_failing_rollback_hook_is_a_warning_in_the_rolled_back_record() {
    let fx = Fixture::new();
    let hook = Arc::new(Recording {
        fail_after_rollback: true,
        ..Recording::default()
    });
    let updater = unhealthy(fx.builder().with_hook(hook.clone()))
        .build()
        .unwrap();
    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RolledBack {
                step: Step::HealthCheck,
                ..
            }
        ),
        "the undo goes on despite the hook: {err}"
    );
    assert_eq!(updater.current_version().unwrap(), v("1.0.0"));
    assert_eq!(
        hook.seen.lock().unwrap().last().map(|s| s.0),
        Some(HookEvent::AfterRollback)
    );

    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    assert_eq!(record.status, UpdateStatus::RolledBack);
    let warning = "rollback hook recording hook failed: preflight check `cache warm-up` failed: the cache is down";
    let error = record.error_message.as_deref().unwrap();
    assert!(error.starts_with("failed at health_check: "), "{error}");
    assert!(
        error.ends_with(&format!(" (undo warnings: {warning})")),
        "{error}"
    );
    let step = record.steps.iter().find(|s| s.name == "rollback").unwrap();
    assert_eq!(step.outcome, StepOutcome::Succeeded);
    assert_eq!(
        step.message.as_deref(),
        Some(format!("1.0.0 is running again; warnings: {warning}").as_str())
    );
}

#[test]
fn an_undo_that_fails_leaves_a_needs_operator_record_with_the_reason() {
    let fx = Fixture::new();
    let switch = Counting::new(fx.root.join("maintenance.json"), true);
    let updater = unhealthy(fx.builder().with_maintenance(switch))
        .build()
        .unwrap();
    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    let Error::NeedsOperator { reason } = &err else {
        panic!("expected NeedsOperator, got {err}")
    };
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    assert_eq!(record.version, v("1.1.0"));
    assert_eq!(record.status, UpdateStatus::NeedsOperator);
    assert_eq!(record.error_message.as_deref(), Some(reason.as_str()));
    assert!(
        reason.contains("failed at health_check")
            && reason.contains("the rollback failed too")
            && reason.contains("updater recover"),
        "{reason}"
    );
}
