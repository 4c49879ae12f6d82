//! Fault injection: a failure, then a simulated crash, at every failpoint of
//! the pipeline in turn (before and after every step, after every rename of
//! the swap, at the commit point), and a crash at every failpoint of the
//! recovery that follows. After each, the application tree is byte-for-byte
//! the old or the new release, preserved paths are untouched, the database
//! schema matches the tree, and the history shows how the attempt ended.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;

use updater_core::failpoint::{FailAt, FailureMode};
use updater_core::history::{HistoryStore, Page, UpdateStatus};
use updater_core::maintenance::{FlagFileMaintenance, MaintenanceSwitch};
use updater_core::pipeline::{ApplyRequest, RecoveryAction, Updater};
use updater_core::progress::NoProgress;
use updater_testkit::app::Fixture;
use updater_testkit::tree::snapshot;

const NEW_FILES: &[(&str, &str)] = &[("src/new-in-1.1.php", "new")];

fn updater(fx: &Fixture, failpoints: Arc<FailAt>) -> Updater {
    fx.with_database(fx.builder(), false, false)
        .with_failpoints(failpoints)
        .build()
        .unwrap()
}

/// Every failpoint an update passes, in order, from a clean run.
fn update_failpoints() -> Vec<String> {
    let fx = Fixture::new();
    let recorder = Arc::new(FailAt::record_only());
    updater(&fx, recorder.clone())
        .apply(&ApplyRequest::latest("probe"), &NoProgress)
        .unwrap();
    let points = recorder.seen();
    println!("failpoints: {points:?}");
    assert!(points.len() > 30, "{points:?}");
    points
}

/// Whether the update is committed once this failpoint has been passed.
fn committed_after(point: &str, points: &[String]) -> bool {
    let commit = points.iter().position(|p| p == "commit:point").unwrap();
    points.iter().position(|p| p == point).unwrap() >= commit
}

fn assert_release(
    fx: &Fixture,
    point: &str,
    old: &updater_testkit::tree::Tree,
    new: &updater_testkit::tree::Tree,
    expect_new: bool,
) {
    let tree = snapshot(&fx.app);
    if expect_new {
        assert_eq!(
            &tree, new,
            "after {point}: the tree must be exactly the new release"
        );
        assert_eq!(
            fx.db.schema(),
            "1.1.0",
            "after {point}: schema of the new release"
        );
    } else {
        assert_eq!(
            &tree, old,
            "after {point}: the tree must be exactly the old release"
        );
        assert_eq!(
            fx.db.schema(),
            "1.0.0",
            "after {point}: schema of the old release"
        );
    }
    assert_eq!(
        std::fs::read_to_string(fx.app.join(".env")).unwrap(),
        "APP_KEY=secret-user-key"
    );
    assert_eq!(
        std::fs::read_to_string(fx.app.join("storage/logs/app.log")).unwrap(),
        "log line 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(fx.app.join("storage/app/public/avatar.png")).unwrap(),
        "PNG user upload"
    );
    assert!(
        !fx.app.join(".updater/journal.json").exists(),
        "after {point}: the journal is gone"
    );
    let flag = FlagFileMaintenance::new(fx.app.join(".updater/maintenance.json"));
    assert!(
        flag.status().unwrap().is_none(),
        "after {point}: maintenance is off"
    );
}

fn final_status(fx: &Fixture) -> UpdateStatus {
    fx.history.updates(Page::first(1)).unwrap()[0].status
}

#[test]
fn an_error_at_any_failpoint_leaves_the_old_release_or_completes_the_new_one() {
    let points = update_failpoints();
    for point in &points {
        let fx = Fixture::new();
        let old = snapshot(&fx.app);
        let new = fx.expected_tree_after_update("1.1.0", NEW_FILES);
        let result = updater(
            &fx,
            Arc::new(FailAt::new(point.clone(), FailureMode::Error)),
        )
        .apply(&ApplyRequest::latest("test"), &NoProgress);
        let committed = committed_after(point, &points);
        if committed {
            // An error past the commit point is finished by recovery.
            let report = updater(&fx, Arc::new(FailAt::record_only()))
                .recover()
                .unwrap();
            if result.is_err() {
                assert!(
                    matches!(
                        report.action,
                        RecoveryAction::Committed { .. } | RecoveryAction::Nothing
                    ),
                    "{point}: {report:?}"
                );
            }
        } else {
            let err = result.expect_err(point);
            assert!(
                err.to_string().contains("injected failure"),
                "{point}: {err}"
            );
            let record = &fx.history.updates(Page::first(1)).unwrap()[0];
            assert!(
                matches!(
                    record.status,
                    UpdateStatus::Failed | UpdateStatus::RolledBack
                ),
                "{point}: {:?}",
                record.status
            );
            assert!(
                record
                    .error_message
                    .as_deref()
                    .unwrap_or("")
                    .contains("injected failure"),
                "{point}: {record:?}"
            );
        }
        assert_release(&fx, point, &old, &new, committed);
        if committed {
            assert_eq!(final_status(&fx), UpdateStatus::Completed, "{point}");
        }
    }
}

#[test]
fn a_crash_at_any_failpoint_is_recovered_to_exactly_one_release() {
    let points = update_failpoints();
    for point in &points {
        let fx = Fixture::new();
        let old = snapshot(&fx.app);
        let new = fx.expected_tree_after_update("1.1.0", NEW_FILES);
        let err = updater(
            &fx,
            Arc::new(FailAt::new(point.clone(), FailureMode::Crash)),
        )
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
        assert!(err.is_simulated_crash(), "{point}: {err}");

        // The process "restarts": a fresh updater recovers.
        let restarted = updater(&fx, Arc::new(FailAt::record_only()));
        let report = restarted
            .recover()
            .unwrap_or_else(|e| panic!("{point}: recovery failed: {e}"));
        let committed = committed_after(point, &points);
        assert_release(&fx, point, &old, &new, committed);
        let status = final_status(&fx);
        if committed {
            assert_eq!(status, UpdateStatus::Completed, "{point}: {report:?}");
        } else {
            assert!(
                matches!(status, UpdateStatus::Failed | UpdateStatus::RolledBack),
                "{point}: {status:?}"
            );
        }
        // Recovery is idempotent.
        assert_eq!(
            restarted.recover().unwrap().action,
            RecoveryAction::Nothing,
            "{point}"
        );
        assert_release(&fx, point, &old, &new, committed);
    }
}

#[test]
fn a_crash_during_recovery_is_recovered_by_the_next_recovery() {
    // Crash the update in the middle of the swap, then crash the recovery at
    // each of its own failpoints, then recover cleanly.
    let points = update_failpoints();
    let mid_swap = points
        .iter()
        .find(|p| p.starts_with("swap:move:3"))
        .unwrap()
        .clone();
    let recovery_points = {
        let fx = Fixture::new();
        let _ = updater(
            &fx,
            Arc::new(FailAt::new(mid_swap.clone(), FailureMode::Crash)),
        )
        .apply(&ApplyRequest::latest("test"), &NoProgress);
        let recorder = Arc::new(FailAt::record_only());
        updater(&fx, recorder.clone()).recover().unwrap();
        recorder.seen()
    };
    assert!(
        recovery_points.iter().any(|p| p.starts_with("swap:undo:")),
        "{recovery_points:?}"
    );
    for recovery_point in &recovery_points {
        let fx = Fixture::new();
        let old = snapshot(&fx.app);
        let new = fx.expected_tree_after_update("1.1.0", NEW_FILES);
        let _ = updater(
            &fx,
            Arc::new(FailAt::new(mid_swap.clone(), FailureMode::Crash)),
        )
        .apply(&ApplyRequest::latest("test"), &NoProgress);
        let crashed = updater(
            &fx,
            Arc::new(FailAt::new(recovery_point.clone(), FailureMode::Crash)),
        )
        .recover();
        assert!(
            crashed.unwrap_err().is_simulated_crash(),
            "{recovery_point}"
        );
        updater(&fx, Arc::new(FailAt::record_only()))
            .recover()
            .unwrap();
        assert_release(&fx, recovery_point, &old, &new, false);
    }
}

#[test]
fn recovery_that_keeps_failing_stops_for_an_operator_and_keeps_both_trees() {
    let fx = Fixture::new();
    let old = snapshot(&fx.app);
    let points = update_failpoints();
    let mid_swap = points
        .iter()
        .find(|p| p.starts_with("swap:move:2"))
        .unwrap()
        .clone();
    let _ = updater(&fx, Arc::new(FailAt::new(mid_swap, FailureMode::Crash)))
        .apply(&ApplyRequest::latest("test"), &NoProgress);
    // A recovery that fails every time (e.g. a permission problem) ...
    let mut last = None;
    for _ in 0..5 {
        last = Some(
            updater(
                &fx,
                Arc::new(FailAt::new("rollback:start", FailureMode::Error)),
            )
            .recover(),
        );
    }
    let err = last.unwrap().unwrap_err();
    assert!(
        matches!(err, updater_core::Error::NeedsOperator { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("recover --retry"), "{err}");
    assert!(
        fx.app.join(".updater/journal.json").exists(),
        "the journal is kept for the operator"
    );
    // ... until the operator fixes it and retries.
    let report = updater(&fx, Arc::new(FailAt::record_only()))
        .retry_recovery()
        .unwrap();
    assert!(
        matches!(report.action, RecoveryAction::RolledBack { .. }),
        "{report:?}"
    );
    assert_eq!(
        snapshot(&fx.app),
        old,
        "the half-swapped tree is the old release again"
    );
    assert_eq!(fx.db.schema(), "1.0.0");
    assert!(!fx.app.join(".updater/journal.json").exists());
}
