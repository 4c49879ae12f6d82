//! The update pipeline end to end on real directories: happy path,
//! preserved paths, health-check rollback, manual rollback, version rules
//! across restarts, locking, leftover maintenance, hostile packages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::Duration;

use updater_core::Error;
use updater_core::Step;
use updater_core::command::ShellCommand;
use updater_core::failpoint::{Action, Failpoints};
use updater_core::health::CommandHealthCheck;
use updater_core::history::{HistoryStore, NotificationFilter, Page, StepOutcome, UpdateStatus};
use updater_core::maintenance::{FlagFileMaintenance, MaintenanceNotice, MaintenanceSwitch};
use updater_core::notify::StoreNotifier;
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, RecoveryAction, RollbackRequest};
use updater_core::progress::{NoProgress, ProgressEvent};
use updater_core::version::Version;
use updater_testkit::app::Fixture;
use updater_testkit::app::Layout;
use updater_testkit::child;
use updater_testkit::tree::snapshot;

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

#[test]
fn an_update_installs_the_new_tree_and_carries_preserved_paths_by_rename() {
    let fx = Fixture::new();
    let expected = fx.expected_tree_after_update("1.1.0", &[("src/new-in-1.1.php", "new")]);
    use std::os::unix::fs::MetadataExt;
    let log_inode = std::fs::metadata(fx.app.join("storage/logs/app.log"))
        .unwrap()
        .ino();
    let env_inode = std::fs::metadata(fx.app.join(".env")).unwrap().ino();
    let app_inode = std::fs::metadata(&fx.app).unwrap().ino();

    let events = std::sync::Mutex::new(Vec::<ProgressEvent>::new());
    let observer = |e: &ProgressEvent| events.lock().unwrap().push(e.clone());
    let updater = fx.builder().build().unwrap();
    let outcome = updater
        .apply(&ApplyRequest::latest("test"), &observer)
        .unwrap();

    let ApplyOutcome::Updated(report) = outcome else {
        panic!("expected an update")
    };
    assert_eq!(
        (report.from.clone(), report.to.clone()),
        (v("1.0.0"), v("1.1.0"))
    );
    assert_eq!(
        snapshot(&fx.app),
        expected,
        "the tree is exactly release 1.1.0 plus preserved paths"
    );
    assert_eq!(
        std::fs::metadata(fx.app.join("storage/logs/app.log"))
            .unwrap()
            .ino(),
        log_inode,
        "carried by rename"
    );
    assert_eq!(
        std::fs::metadata(fx.app.join(".env")).unwrap().ino(),
        env_inode,
        "never moved"
    );
    assert_eq!(
        std::fs::metadata(&fx.app).unwrap().ino(),
        app_inode,
        "the app directory keeps its identity"
    );
    assert_eq!(updater.current_version().unwrap(), v("1.1.0"));

    let record = fx.history.update(report.update_id).unwrap().unwrap();
    assert_eq!(record.status, UpdateStatus::Completed);
    assert_eq!(record.progress_percentage, 100);
    assert!(record.maintenance_window_ms.is_some());
    assert!(
        record
            .steps
            .iter()
            .any(|s| s.name == "swap" && s.outcome == StepOutcome::Succeeded)
    );
    let events = events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.step == updater_core::Step::Download && e.bytes_done > 0)
    );
    assert!(
        events.windows(2).all(|w| w[0].percent <= w[1].percent),
        "progress never goes backwards"
    );
    // Staging and download leftovers are cleaned up; the old tree is kept for rollback.
    assert_eq!(
        std::fs::read_dir(fx.app.join(".updater/staging"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(updater.status().unwrap().kept, vec![v("1.0.0")]);
}

#[test]
fn nothing_newer_means_up_to_date_and_no_history_record() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    let outcome = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    assert_eq!(
        outcome,
        ApplyOutcome::UpToDate {
            current: v("1.1.0")
        }
    );
    assert_eq!(fx.history.updates(Page::first(10)).unwrap().len(), 1);
}

#[test]
fn a_failing_health_check_rolls_back_to_the_exact_old_tree_and_schema() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    let updater = fx
        .with_database(fx.builder(), false, false)
        .with_health_check(Arc::new(CommandHealthCheck::new(ShellCommand::new(
            "grep -q 1.0.0 VERSION",
        ))))
        .configure(|c| {
            c.health_timeout = Duration::from_millis(300);
            c.health_interval = Duration::from_millis(20);
        })
        .build()
        .unwrap();
    std::fs::write(
        fx.db.dir.join("rows"),
        "row1\nrow2 written before the update\n",
    )
    .unwrap();

    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();

    assert!(
        matches!(
            err,
            Error::RolledBack {
                step: updater_core::Step::HealthCheck,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(snapshot(&fx.app), before, "byte-for-byte the old release");
    assert_eq!(fx.db.schema(), "1.0.0", "the snapshot restored the schema");
    assert!(
        fx.db.rows().contains("row2"),
        "no acknowledged write is lost"
    );
    assert_eq!(updater.current_version().unwrap(), v("1.0.0"));
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    assert_eq!(record.status, UpdateStatus::RolledBack);
    assert!(
        record
            .error_message
            .as_deref()
            .unwrap()
            .contains("health_check"),
        "{record:?}"
    );
    assert!(!fx.app.join(".updater/journal.json").exists());
    assert!(
        FlagFileMaintenance::new(fx.app.join(".updater/maintenance.json"))
            .status()
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_failing_migration_restores_the_database_snapshot() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    let updater = fx.with_database(fx.builder(), false, true).build().unwrap();
    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("2026_11_27_add_column"), "{err}");
    assert_eq!(fx.db.schema(), "1.0.0");
    assert_eq!(snapshot(&fx.app), before);
}

#[test]
fn a_migrator_without_down_migrations_needs_a_snapshot_before_anything_changes() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    let migrator = updater_testkit::fakes::FakeMigrator {
        db: fx.db.clone(),
        revertible: false,
        fail_migrate: false,
    };
    let updater = fx
        .builder()
        .with_migrator(Arc::new(migrator))
        .build()
        .unwrap();
    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("database rollback"), "{err}");
    assert_eq!(snapshot(&fx.app), before);
    assert_eq!(
        fx.history.updates(Page::first(1)).unwrap()[0].status,
        UpdateStatus::Failed
    );
}

#[test]
fn manual_rollback_returns_to_the_previous_release_and_reverts_migrations() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    let updater = fx.with_database(fx.builder(), true, false).build().unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    assert_eq!(fx.db.schema(), "1.1.0");
    std::fs::write(
        fx.app.join("storage/logs/app.log"),
        "log line 1\nlog line 2 under 1.1.0\n",
    )
    .unwrap();

    let report = updater
        .rollback(
            &RollbackRequest {
                initiated_by: "test".into(),
                restore_database_snapshot: false,
            },
            &NoProgress,
        )
        .unwrap();

    assert_eq!((report.from, report.to), (v("1.1.0"), v("1.0.0")));
    assert_eq!(fx.db.schema(), "1.0.0", "reverted by down migrations");
    assert_eq!(
        std::fs::read_to_string(fx.db.dir.join("revert_saw_code")).unwrap(),
        "1.1.0",
        "the down migrations ran with the newer code (which ships them) in place"
    );
    let mut expected = before.clone();
    expected.insert(
        "storage/logs/app.log".into(),
        updater_testkit::tree::Node::File {
            mode: 0o644,
            content: b"log line 1\nlog line 2 under 1.1.0\n".to_vec(),
        },
    );
    assert_eq!(
        snapshot(&fx.app),
        expected,
        "old tree, with the logs written meanwhile"
    );
    assert_eq!(updater.current_version().unwrap(), v("1.0.0"));
}

#[test]
fn after_a_rollback_and_a_restart_a_version_below_the_highest_is_refused() {
    let fx = Fixture::new();
    fx.publish("1.0.5", &[]);
    let updater = fx.builder().build().unwrap();
    updater
        .apply(
            &ApplyRequest::latest("test").with_version(v("1.1.0")),
            &NoProgress,
        )
        .unwrap();
    updater
        .rollback(
            &RollbackRequest {
                initiated_by: "test".into(),
                restore_database_snapshot: false,
            },
            &NoProgress,
        )
        .unwrap();
    drop(updater);

    let restarted = fx.builder().build().unwrap();
    assert_eq!(restarted.status().unwrap().highest, v("1.1.0"));
    let err = restarted
        .apply(
            &ApplyRequest::latest("test").with_version(v("1.0.5")),
            &NoProgress,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("1.1.0 was installed before"),
        "{err}"
    );
    assert_eq!(restarted.current_version().unwrap(), v("1.0.0"));
}

#[test]
fn a_second_update_while_one_holds_the_lock_is_refused_naming_the_holder() {
    let fx = Fixture::new();
    let (entered, wait_entered) = std::sync::mpsc::channel::<()>();
    let (release, wait_release) = std::sync::mpsc::channel::<()>();
    let wait_release = std::sync::Mutex::new(wait_release);
    // The first update pauses inside its preflight, holding the lock.
    let first = fx
        .builder()
        .with_failpoints(Failpoints::record_only().with_hook(move |point| {
            if point == "before:preflight" {
                entered.send(()).unwrap();
                wait_release.lock().unwrap().recv().unwrap();
            }
            Ok(())
        }))
        .build()
        .unwrap();
    let second = fx.builder().build().unwrap();
    std::thread::scope(|scope| {
        let running =
            scope.spawn(|| first.apply(&ApplyRequest::latest("web request 42"), &NoProgress));
        wait_entered.recv().unwrap();
        let err = second
            .apply(&ApplyRequest::latest("test"), &NoProgress)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Locked { holder, .. } if holder.contains("web request 42")),
            "{err}"
        );
        assert!(matches!(
            second.recover().unwrap().action,
            RecoveryAction::UpdateInProgress(holder) if holder.owner == "web request 42"
        ));
        release.send(()).unwrap();
        assert!(matches!(
            running.join().unwrap(),
            Ok(ApplyOutcome::Updated(_))
        ));
    });
}

#[test]
fn a_leftover_maintenance_flag_is_reported_and_cleared_at_the_next_start() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    let flag = FlagFileMaintenance::new(fx.app.join(".updater/maintenance.json"));
    flag.enable(&MaintenanceNotice::new("Updating to 1.1.0", Duration::from_secs(600)).unwrap())
        .unwrap();
    let report = updater.recover().unwrap();
    assert_eq!(
        report.leftover_maintenance.map(|n| n.reason),
        Some("Updating to 1.1.0".to_string())
    );
    assert!(flag.status().unwrap().is_none());
}

#[test]
fn a_corrupt_package_is_refused_and_changes_nothing() {
    let fx = Fixture::new();
    let garbage = fx.root.join("garbage.tar.gz");
    std::fs::write(&garbage, b"\x1f\x8b\x08\x00this is not a real gzip stream").unwrap();
    fx.publish_archive("1.2.0", &garbage);
    let before = snapshot(&fx.app);
    let updater = fx.builder().build().unwrap();
    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Step {
                step: updater_core::Step::Stage,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(snapshot(&fx.app), before);
    assert!(
        std::fs::read_dir(fx.app.join(".updater/staging"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn a_tampered_package_fails_its_checksum_before_extraction() {
    let fx = Fixture::new();
    // Publish 1.2.0, then change the archive on the "server" after its checksum was published.
    fx.publish("1.2.0", &[]);
    let asset = fx.releases.join("app-1.2.0.tar.gz");
    let mut bytes = std::fs::read(&asset).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&asset, bytes).unwrap();
    let before = snapshot(&fx.app);
    let err = fx
        .builder()
        .build()
        .unwrap()
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    assert!(
        err.to_string().contains("SHA-256") || err.to_string().contains("sha256"),
        "{err}"
    );
    assert_eq!(snapshot(&fx.app), before);
}

#[test]
fn admins_hear_about_new_versions_once_and_checks_are_cached() {
    let fx = Fixture::new();
    let updater = fx
        .builder()
        .with_notifier(Arc::new(
            StoreNotifier::new(fx.history.clone()).with_admins(["alice"]),
        ))
        .build()
        .unwrap();
    let first = updater.check(false).unwrap();
    assert!(first.update_available && !first.from_cache);
    assert_eq!(
        first.latest.as_ref().map(|r| r.version.clone()),
        Some(v("1.1.0"))
    );
    let second = updater.check(false).unwrap();
    assert!(second.from_cache && second.update_available);
    let forced = updater.check(true).unwrap();
    assert!(!forced.from_cache);
    let notes = fx
        .history
        .notifications(&NotificationFilter::default())
        .unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].user_id.as_deref(), Some("alice"));
}

#[test]
fn a_downgrade_is_refused_unless_allowed() {
    let fx = Fixture::new();
    fx.publish("0.9.0", &[]);
    let refused = fx.builder().build().unwrap().apply(
        &ApplyRequest::latest("t").with_version(v("0.9.0")),
        &NoProgress,
    );
    assert!(matches!(refused, Err(Error::Step { .. })), "{refused:?}");
    let allowed = fx
        .builder()
        .configure(|c| c.policy.allow_downgrade = true)
        .build()
        .unwrap()
        .apply(
            &ApplyRequest::latest("t").with_version(v("0.9.0")),
            &NoProgress,
        )
        .unwrap();
    assert!(matches!(allowed, ApplyOutcome::Updated(_)));
}

#[test]
fn the_health_check_gets_the_maintenance_bypass_secret_and_maintenance_is_on_during_it() {
    let fx = Fixture::new();
    // Passes only while the flag is on and the check was given the flag's secret.
    let check = ShellCommand::new(
        "test -n \"$UPDATER_MAINTENANCE_SECRET\" && grep -q \"$UPDATER_MAINTENANCE_SECRET\" .updater/maintenance.json",
    );
    let updater = fx
        .builder()
        .with_health_check(Arc::new(CommandHealthCheck::new(check)))
        .configure(|c| {
            c.health_timeout = Duration::from_millis(500);
            c.health_interval = Duration::from_millis(20);
        })
        .build()
        .unwrap();
    let outcome = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    assert!(matches!(outcome, ApplyOutcome::Updated(_)));
    assert!(
        !fx.app.join(".updater/maintenance.json").exists(),
        "maintenance is off afterwards"
    );
}

#[test]
fn a_write_acknowledged_after_maintenance_went_off_is_never_rolled_back() {
    let fx = Fixture::new();
    let db = fx.db.clone();
    let flag = fx.app.join(".updater/maintenance.json");
    // At the point after maintenance went off, the app takes a write; then that point fails.
    let failpoints = Failpoints::error_at("after:maintenance_off").with_hook(move |point| {
        if point == "after:maintenance_off" {
            assert!(!flag.exists(), "the app is live again at {point}");
            db.write_row("row acknowledged by 1.1.0");
        }
        Ok(())
    });
    let updater = fx
        .with_database(fx.builder(), false, false)
        .with_failpoints(failpoints)
        .build()
        .unwrap();
    // The failure comes after the commit point: the update stands.
    let outcome = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    assert!(matches!(outcome, ApplyOutcome::Updated(_)));
    assert!(
        fx.db.rows().contains("row acknowledged by 1.1.0"),
        "the write survives"
    );
    assert_eq!(fx.db.schema(), "1.1.0");
    assert_eq!(updater.current_version().unwrap(), v("1.1.0"));
    assert!(updater.recover().unwrap().action == RecoveryAction::Nothing);
}

#[test]
fn a_commit_point_that_cannot_be_written_keeps_maintenance_on_and_recovery_rolls_back() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    // The journal write of the commit point fails (disk full): not committed on disk.
    let updater = fx
        .with_database(fx.builder(), false, false)
        .with_failpoints(Failpoints::at("journal:committing", Action::DiskFull))
        .build()
        .unwrap();
    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(&err, Error::RolledBack { step: Step::Commit, cause, .. } if cause.to_string().contains("No space left on device")),
        "{err}"
    );
    assert_eq!(snapshot(&fx.app), before);
    assert_eq!(fx.db.schema(), "1.0.0");
    assert!(!fx.app.join(".updater/maintenance.json").exists());
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    assert_eq!(record.status, UpdateStatus::RolledBack);
    assert!(
        record
            .error_message
            .as_deref()
            .unwrap()
            .contains("No space left on device"),
        "{record:?}"
    );
}

/// Runs in a child process only: an update that aborts at `CHILD_CRASH_AT`.
#[test]
fn child_entry_update_that_crashes() {
    if !child::is_child() {
        return;
    }
    let fx = Fixture::reopen(
        std::path::Path::new(&child::var("CHILD_ROOT")),
        Layout::Preserved,
    );
    let _ = fx
        .with_database(fx.builder(), false, false)
        .with_failpoints(Failpoints::crash_at(child::var("CHILD_CRASH_AT")))
        .build()
        .unwrap()
        .apply(&ApplyRequest::latest("test"), &NoProgress);
    panic!("the child should have crashed");
}

#[test]
fn recovery_without_the_database_parts_stops_instead_of_claiming_success() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    let status = child::run(
        "child_entry_update_that_crashes",
        &[
            ("CHILD_ROOT", fx.root.display().to_string()),
            ("CHILD_CRASH_AT", "after:migrate".into()),
        ],
    );
    assert!(!status.success(), "aborted");
    assert_eq!(fx.db.schema(), "1.1.0");
    // An application that recovers with a bare updater (no snapshot strategy, no migrator)...
    let err = fx.builder().build().unwrap().recover().unwrap_err();
    assert!(matches!(err, Error::NeedsOperator { .. }), "{err}");
    assert!(
        fx.app.join(".updater/journal.json").exists(),
        "the journal is kept"
    );
    // ... and then with the configuration of the update.
    let report = fx
        .with_database(fx.builder(), false, false)
        .build()
        .unwrap()
        .recover()
        .unwrap();
    assert!(
        matches!(report.action, RecoveryAction::RolledBack { .. }),
        "{report:?}"
    );
    assert_eq!(snapshot(&fx.app), before);
    assert_eq!(fx.db.schema(), "1.0.0");
}

#[test]
fn maintenance_an_operator_turned_on_is_reported_but_never_lifted() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    let flag = FlagFileMaintenance::new(fx.app.join(".updater/maintenance.json"));
    let mut notice =
        MaintenanceNotice::new("planned database work", Duration::from_secs(600)).unwrap();
    notice.set_by_updater = false;
    flag.enable(&notice).unwrap();
    let report = updater.recover().unwrap();
    assert!(report.leftover_maintenance.is_none());
    assert!(flag.status().unwrap().is_some(), "still on");
}

/// Publishes release `version` of the fixture signed with `keys`, the
/// metadata claiming `signed_version` and expiring at `expires`.
fn publish_signed(
    fx: &Fixture,
    keys: &minisign::KeyPair,
    version: &str,
    signed_version: &str,
    expires: chrono::DateTime<chrono::Utc>,
) {
    let tree = fx.root.join(format!("signed-build-{version}"));
    updater_testkit::app::release_tree(&tree, version, &[]);
    let archive = fx.root.join(format!("signed-{version}.tar.gz"));
    updater_testkit::archive::pack(&tree, &archive);
    let (sha256, size) = updater_core::package::sha256_file(&archive).unwrap();
    let signature = updater_core::package::signature::sign_metadata(
        &keys.sk,
        &v(signed_version),
        &format!("app-{version}.tar.gz"),
        size,
        &sha256,
        expires,
    )
    .unwrap();
    fx.source()
        .publish(&v(version), &archive, "signed", Some(signature))
        .unwrap();
}

fn signed_updater(fx: &Fixture, keys: &minisign::KeyPair) -> updater_core::pipeline::Updater {
    let public = updater_core::package::signature::PublicKeys::parse(
        &keys.pk.to_box().unwrap().into_string(),
    )
    .unwrap();
    fx.builder()
        .configure(|c| c.verification = c.verification.clone().with_public_keys(public))
        .build()
        .unwrap()
}

fn whole_seconds(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(0)
}

#[test]
fn signed_metadata_is_required_checked_and_installed() {
    let fx = Fixture::new();
    let keys = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    publish_signed(
        &fx,
        &keys,
        "1.2.0",
        "1.2.0",
        whole_seconds(chrono::Utc::now() + chrono::Duration::days(7)),
    );
    let updater = signed_updater(&fx, &keys);
    assert!(updater.check(true).unwrap().update_available);
    let outcome = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    assert!(
        matches!(outcome, ApplyOutcome::Updated(ref r) if r.to == v("1.2.0")),
        "{outcome:?}"
    );
}

#[test]
fn expired_signed_metadata_is_an_error_at_check_time_not_a_quiet_no_update() {
    let fx = Fixture::new();
    let keys = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    // A frozen mirror keeps serving metadata whose signed expiry has passed.
    publish_signed(
        &fx,
        &keys,
        "1.2.0",
        "1.2.0",
        whole_seconds(chrono::Utc::now() - chrono::Duration::days(1)),
    );
    let before = snapshot(&fx.app);
    let updater = signed_updater(&fx, &keys);
    let err = updater.check(true).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    let recorded = fx.history.latest_check().unwrap().unwrap();
    assert_eq!(
        recorded.check_status,
        updater_core::history::CheckStatus::Failed
    );
    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(snapshot(&fx.app), before);
}

#[test]
fn an_old_signature_replayed_for_a_new_version_is_refused_before_download() {
    let fx = Fixture::new();
    let keys = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    // The attacker relabels a signature made for 1.0.5 as release 1.2.0.
    publish_signed(
        &fx,
        &keys,
        "1.2.0",
        "1.0.5",
        whole_seconds(chrono::Utc::now() + chrono::Duration::days(7)),
    );
    let before = snapshot(&fx.app);
    let err = signed_updater(&fx, &keys)
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    // Refused at the lookup (signed metadata is checked there, as `check` does),
    // and the refusal is in history.
    assert!(
        matches!(&err, Error::Step { step: Step::Check, source } if matches!(**source, Error::Integrity { .. })),
        "{err}"
    );
    assert_eq!(snapshot(&fx.app), before);
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    assert_eq!(record.status, UpdateStatus::Failed);
    assert_eq!(record.steps[0].name, "check");
}
