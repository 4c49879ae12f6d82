//! What an operator's console needs from the core: the plan of a rollback
//! (to name the release and the database step before asking), deleting a
//! backup under the lock, and the serialised reports — the one shape the
//! CLI's `--json` and the web API share.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::json;
use updater_core::Error;
use updater_core::backup::BackupStrategy;
use updater_core::history::{BackupRecord, HistoryStore, Page};
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, RollbackRequest};
use updater_core::progress::NoProgress;
use updater_testkit::app::Fixture;

#[test]
fn the_rollback_plan_names_the_kept_release_and_whether_the_snapshot_is_restored() {
    let fx = Fixture::new();
    let updater = fx
        .with_database(fx.builder(), false, false)
        .build()
        .unwrap();
    assert_eq!(updater.rollback_plan().unwrap(), None, "nothing kept yet");
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();

    let plan = updater.rollback_plan().unwrap().unwrap();
    assert_eq!(plan.from.to_string(), "1.1.0");
    assert_eq!(plan.to.to_string(), "1.0.0");
    assert_eq!(plan.database, "restore_snapshot");
    assert!(plan.snapshot_id.is_some());
    assert!(plan.possible, "{:?}", plan.blocker);

    let refused = updater
        .rollback(
            &RollbackRequest {
                initiated_by: "test".into(),
                restore_database_snapshot: false,
            },
            &NoProgress,
        )
        .unwrap_err();
    assert!(matches!(refused, Error::Precondition { .. }), "{refused}");
}

#[test]
fn with_down_migrations_the_plan_reverts_them() {
    let fx = Fixture::new();
    let updater = fx.with_database(fx.builder(), true, false).build().unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    let plan = updater.rollback_plan().unwrap().unwrap();
    assert_eq!(plan.database, "revert_migrations");
}

#[test]
fn deleting_a_backup_marks_its_record_and_the_snapshot_a_rollback_needs_is_kept() {
    let fx = Fixture::new();
    let snapshots = Arc::new(fx.database_backup());
    let updater = fx
        .with_database(fx.builder(), false, false)
        .build()
        .unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    let snapshot_id = updater
        .rollback_plan()
        .unwrap()
        .unwrap()
        .snapshot_id
        .unwrap();
    let snapshot = fx
        .history
        .backups(Page::first(10))
        .unwrap()
        .into_iter()
        .find(|b| b.backup_id == snapshot_id)
        .map(|record| record.to_backup())
        .unwrap_or_else(|| {
            // Snapshots are recorded by the pipeline; build the Backup by hand otherwise.
            panic!("the snapshot {snapshot_id} is not in history")
        });
    let refused = updater
        .delete_backup(snapshots.as_ref(), &snapshot, "web:alice")
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!(
            "preflight check `delete backup` failed: backup {snapshot_id} is the database snapshot that rolling back to 1.0.0 needs"
        )
    );

    let manual = updater
        .create_backup(
            snapshots.as_ref(),
            Some("by hand".into()),
            "web:alice",
            &NoProgress,
        )
        .unwrap();
    updater
        .delete_backup(snapshots.as_ref(), &manual, "web:alice")
        .unwrap();
    let record = fx
        .history
        .backups(Page::first(10))
        .unwrap()
        .into_iter()
        .find(|b| b.backup_id == manual.id)
        .unwrap();
    assert!(!record.is_restorable);
    assert!(record.notes.unwrap().ends_with("deleted by web:alice"));
    assert!(snapshots.verify(&manual).is_err(), "its files are gone");
}

#[test]
fn a_backup_record_gives_back_its_backup() {
    let fx = Fixture::new();
    let snapshots = fx.database_backup();
    let backup = snapshots
        .create(
            &updater_core::backup::BackupRequest {
                version: updater_core::version::Version::new(1, 0, 0),
                purpose: updater_core::backup::BackupPurpose::Manual,
                update_id: Some(3),
                description: Some("note".into()),
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(BackupRecord::of(&backup).to_backup(), backup);
}

#[test]
fn reports_serialise_as_the_cli_documents() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    let check = updater.check(true).unwrap();
    let view = serde_json::to_value(check.view()).unwrap();
    assert_eq!(view["current"], "1.0.0");
    assert_eq!(view["latest"], "1.1.0");
    assert_eq!(view["update_available"], true);
    assert_eq!(view["update_type"], "minor");
    assert_eq!(view["changelog"], "Release 1.1.0");

    let outcome = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    let value = serde_json::to_value(&outcome).unwrap();
    let mut keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "backup_id",
            "carried",
            "from",
            "maintenance_window_ms",
            "outcome",
            "saved_aside",
            "to",
            "update_id",
            "update_type"
        ]
    );
    assert_eq!(value["outcome"], "updated");
    assert!(value["maintenance_window_ms"].is_u64());
    let up_to_date = serde_json::to_value(ApplyOutcome::UpToDate {
        current: updater.current_version().unwrap(),
    })
    .unwrap();
    assert_eq!(
        up_to_date,
        json!({ "outcome": "up_to_date", "current": "1.1.0" })
    );

    let status = serde_json::to_value(updater.status().unwrap().view()).unwrap();
    assert_eq!(status["current"], "1.1.0");
    assert_eq!(status["kept"], json!(["1.0.0"]));
    assert_eq!(
        status["latest_check"]["update_available"], false,
        "a check made before the update says nothing about now"
    );
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    let record = serde_json::to_value(record).unwrap();
    assert_eq!(record["progress"], 100);
    assert!(record.get("progress_percentage").is_none());
    assert!(record.get("backup").is_some());
}

#[test]
fn the_status_view_never_shows_the_maintenance_bypass_secret() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    let switch = updater.maintenance().unwrap().clone();
    let mut notice = updater_core::maintenance::MaintenanceNotice::new(
        "by hand",
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    notice.bypass_secret = Some("let-the-health-check-in".into());
    switch.enable(&notice).unwrap();
    let text = serde_json::to_string(&updater.status().unwrap().view()).unwrap();
    assert!(text.contains("by hand"), "{text}");
    assert!(!text.contains("let-the-health-check-in"), "{text}");
    switch.disable().unwrap();
}
