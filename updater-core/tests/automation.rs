//! Unattended updates with a clock the test controls: the policy and its
//! windows, one-off scheduled updates, probation with automatic rollback
//! (also across a restart of the updater), preview, requirements.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use updater_core::automation::{
    AutoUpdateLevel, AutoUpdatePolicy, InMemoryScheduleStore, ScheduleStatus, ScheduleStore,
};
use updater_core::clock::ManualClock;
use updater_core::health::{HealthCheck, HealthContext};
use updater_core::history::{
    HistoryStore, NotificationFilter, NotificationType, Page, UpdateRecord, UpdateStatus,
};
use updater_core::notify::StoreNotifier;
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, ProbationOutcome, UpdaterBuilder};
use updater_core::progress::NoProgress;
use updater_core::requirement::Requirement;
use updater_core::{Error, Step, Updater};
use updater_testkit::app::Fixture;
use updater_testkit::tree::snapshot;

/// A health check the test turns bad.
#[derive(Debug, Default)]
struct Switchable {
    bad: AtomicBool,
}

impl HealthCheck for Switchable {
    fn describe(&self) -> String {
        "switchable".into()
    }
    fn check(&self, _ctx: &HealthContext) -> updater_core::Result<()> {
        if self.bad.load(Ordering::SeqCst) {
            Err(Error::other("health", "HTTP 500 on /health"))
        } else {
            Ok(())
        }
    }
}

fn builder(fx: &Fixture, clock: &Arc<ManualClock>, health: &Arc<Switchable>) -> UpdaterBuilder {
    fx.with_database(fx.builder(), false, false)
        .with_clock(clock.clone())
        .with_health_check(health.clone())
        .with_notifier(Arc::new(StoreNotifier::new(fx.history.clone())))
        .configure(|c| {
            c.probation = Some(Duration::from_secs(15 * 60));
            c.health_timeout = Duration::from_millis(200);
            c.health_interval = Duration::from_millis(50);
        })
}

fn sunday_night() -> chrono::DateTime<Utc> {
    // Sunday 2026-12-06, 02:30 in Berlin (CET, UTC+1).
    Utc.with_ymd_and_hms(2026, 12, 6, 1, 30, 0).unwrap()
}

#[test]
fn health_turning_bad_during_probation_rolls_back_to_the_kept_release_and_snapshot() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    let clock = Arc::new(ManualClock::new(sunday_night()));
    let health = Arc::new(Switchable::default());
    let updater = builder(&fx, &clock, &health).build().unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    assert_eq!(fx.db.schema(), "1.1.0");
    fx.db.write_row("written under 1.1.0 during probation");
    let probation = updater.probation().unwrap().expect("on probation");
    assert_eq!(
        probation.until,
        sunday_night() + chrono::Duration::minutes(15)
    );

    clock.advance(chrono::Duration::minutes(1));
    assert!(matches!(
        updater.probation_tick(&NoProgress).unwrap(),
        ProbationOutcome::Healthy { .. }
    ));
    // Two minutes after the commit the application starts failing.
    clock.advance(chrono::Duration::minutes(1));
    health.bad.store(true, Ordering::SeqCst);
    let outcome = updater.probation_tick(&NoProgress).unwrap();
    assert!(
        matches!(&outcome, ProbationOutcome::RolledBack { running, .. } if running.to_string() == "1.0.0"),
        "{outcome:?}"
    );
    assert_eq!(snapshot(&fx.app), before, "the kept release is back");
    assert_eq!(fx.db.schema(), "1.0.0", "and its database snapshot");
    assert!(updater.probation().unwrap().is_none());
    // Recorded and notified.
    let records = fx.history.updates(Page::first(10)).unwrap();
    let update = records
        .iter()
        .find(|r| r.version.to_string() == "1.1.0")
        .unwrap();
    assert_eq!(update.status, UpdateStatus::RolledBack);
    assert!(
        update
            .error_message
            .as_deref()
            .unwrap()
            .contains("probation")
    );
    assert!(records.iter().any(|r| r.initiated_by == "probation"));
    let notices = fx
        .history
        .notifications(&NotificationFilter::default())
        .unwrap();
    assert!(notices.iter().any(
        |n| n.notification_type == NotificationType::UpdateRolledBack
            && n.message.contains("failed its probation")
    ));
}

#[test]
fn a_probation_survives_a_restart_of_the_updater_and_ends_as_trusted() {
    let fx = Fixture::new();
    let clock = Arc::new(ManualClock::new(sunday_night()));
    let health = Arc::new(Switchable::default());
    builder(&fx, &clock, &health)
        .build()
        .unwrap()
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    // The updater process is gone; a new one (same app) takes over the watch.
    let restarted = builder(&fx, &clock, &health).build().unwrap();
    assert!(restarted.probation().unwrap().is_some());
    assert_eq!(
        restarted
            .status()
            .unwrap()
            .probation
            .unwrap()
            .version
            .to_string(),
        "1.1.0"
    );
    // The kept release and its snapshot are not collected during the probation.
    clock.advance(chrono::Duration::minutes(5));
    restarted.prune_backups(Some(1), "test").unwrap();
    assert_eq!(restarted.status().unwrap().kept[0].to_string(), "1.0.0");
    assert_eq!(
        std::fs::read_dir(fx.root.join("db-backups"))
            .unwrap()
            .count(),
        1,
        "the snapshot 1.0.0 would be restored from"
    );
    clock.advance(chrono::Duration::minutes(20));
    let outcome = restarted.probation_tick(&NoProgress).unwrap();
    assert!(
        matches!(outcome, ProbationOutcome::Passed { .. }),
        "{outcome:?}"
    );
    assert!(restarted.probation().unwrap().is_none());
}

fn automatic(fx: &Fixture, clock: &Arc<ManualClock>, store: Arc<InMemoryScheduleStore>) -> Updater {
    fx.builder()
        .with_clock(clock.clone())
        .with_schedule_store(store)
        .configure(|c| {
            c.auto_update = AutoUpdatePolicy {
                level: AutoUpdateLevel::Minor,
                per_channel: Vec::new(),
                skip: Vec::new(),
                windows: vec!["Sun 02:00-04:00 Europe/Berlin".parse().unwrap()],
            };
        })
        .build()
        .unwrap()
}

#[test]
fn an_automatic_update_waits_for_its_window_and_then_applies() {
    let fx = Fixture::new();
    let monday = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(monday));
    let updater = automatic(&fx, &clock, Arc::new(InMemoryScheduleStore::new()));
    let report = updater.automation_round(&NoProgress);
    let said = report.automatic.unwrap().unwrap();
    assert!(
        said.contains("outside the maintenance windows") && said.contains("2026-12-13T01:00:00"),
        "{said}"
    );
    assert_eq!(updater.current_version().unwrap().to_string(), "1.0.0");

    clock.set(Utc.with_ymd_and_hms(2026, 12, 13, 1, 5, 0).unwrap()); // Sunday 02:05 CET
    let said = updater
        .automation_round(&NoProgress)
        .automatic
        .unwrap()
        .unwrap();
    assert!(
        said.contains("updated 1.0.0 -> 1.1.0 automatically"),
        "{said}"
    );
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    assert!(record.auto_update && record.initiated_by == "auto-update");
}

#[test]
fn nothing_applies_automatically_while_paused() {
    let fx = Fixture::new();
    let clock = Arc::new(ManualClock::new(sunday_night()));
    let updater = automatic(&fx, &clock, Arc::new(InMemoryScheduleStore::new()));
    updater
        .pause("waiting for the marketing launch", "alice")
        .unwrap();
    let report = updater.automation_round(&NoProgress);
    assert_eq!(
        report.paused.unwrap().reason,
        "waiting for the marketing launch"
    );
    assert!(report.automatic.is_none());
    assert_eq!(updater.status().unwrap().paused.unwrap().by, "alice");
    updater.resume().unwrap();
    assert!(
        updater
            .automation_round(&NoProgress)
            .automatic
            .unwrap()
            .unwrap()
            .contains("updated")
    );
}

#[test]
fn a_scheduled_update_runs_at_its_time_once_and_survives_a_restart() {
    let fx = Fixture::new();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
    ));
    let store = Arc::new(InMemoryScheduleStore::new());
    let first = fx
        .builder()
        .with_clock(clock.clone())
        .with_schedule_store(store.clone())
        .build()
        .unwrap();
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
    let entry = first
        .schedule_update(at, Some("1.1.0".parse().unwrap()), "alice")
        .unwrap();
    assert_eq!(first.status().unwrap().scheduled.len(), 1);
    assert!(matches!(
        first.schedule_update(at - chrono::Duration::days(2), None, "alice"),
        Err(Error::InvalidInput { .. })
    ));
    assert!(
        first.automation_round(&NoProgress).scheduled.is_empty(),
        "not yet"
    );
    drop(first);
    // A new updater (the `schedule` process restarted) finds it.
    let second = fx
        .builder()
        .with_clock(clock.clone())
        .with_schedule_store(store.clone())
        .build()
        .unwrap();
    clock.set(at + chrono::Duration::minutes(1));
    let report = second.automation_round(&NoProgress);
    assert_eq!(report.scheduled.len(), 1, "{report:?}");
    assert_eq!(second.current_version().unwrap().to_string(), "1.1.0");
    let done = store
        .list(true)
        .unwrap()
        .into_iter()
        .find(|e| e.id == entry.id)
        .unwrap();
    assert_eq!(done.status, ScheduleStatus::Done);
    assert!(done.update_id.is_some());
    assert!(
        second.automation_round(&NoProgress).scheduled.is_empty(),
        "once"
    );
    assert!(matches!(
        second.cancel_scheduled_update(entry.id),
        Err(Error::Precondition { .. })
    ));
}

#[test]
fn the_preview_lists_exactly_what_the_update_then_changes() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap(); // 1.1.0 with its list
    fx.publish(
        "1.2.0",
        &[
            ("src/new-in-1.2.php", "brand new"),
            ("src/new-in-1.1.php", "changed in 1.2"),
        ],
    );
    write_mode(&fx.app.join("public/app.js"), 0o644);
    let preview = updater.preview(None, &NoProgress).unwrap();
    assert_eq!(preview.target.to_string(), "1.2.0");
    assert!(
        preview.added.contains(&"src/new-in-1.2.php".to_string()),
        "{preview:?}"
    );
    assert!(preview.changed.contains(&"src/new-in-1.1.php".to_string()));
    assert!(preview.changed.contains(&"VERSION".to_string()));
    assert_eq!(preview.changelog.len(), 1);
    assert!(preview.preserved_shipped.contains(&".env".to_string()));
    assert!(preview.disk_needed > preview.download_size);
    let before = snapshot(&fx.app);
    let ApplyOutcome::Updated(_) = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap()
    else {
        panic!("updated")
    };
    let after = snapshot(&fx.app);
    // Every path the preview named as added or changed is new or different now.
    for path in preview.added.iter().chain(&preview.changed) {
        let path = std::path::Path::new(path);
        assert_ne!(before.get(path), after.get(path), "{}", path.display());
    }
    // And nothing else of the release's files changed.
    for (path, node) in &after {
        let name = path.to_string_lossy();
        if before.get(path) != Some(node) && !path.is_dir() {
            assert!(
                preview
                    .added
                    .iter()
                    .chain(&preview.changed)
                    .any(|p| *p == name)
                    || !before.contains_key(path)
                        && preview.added.iter().any(|p| name.starts_with(p.as_str())),
                "{name} changed but the preview did not say so"
            );
        }
    }
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    let download = record.steps.iter().find(|s| s.name == "download").unwrap();
    assert!(
        download
            .message
            .as_deref()
            .is_some_and(|m| m.contains("verified by `preview`")),
        "apply downloaded again: {download:?}"
    );
}

#[test]
fn a_cached_package_that_no_longer_matches_is_downloaded_again() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    let preview = updater.preview(None, &NoProgress).unwrap();
    // Damaged on disk after the preview.
    std::fs::write(&preview.package, b"not the package").unwrap();
    let ApplyOutcome::Updated(report) = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap()
    else {
        panic!("updated")
    };
    assert_eq!(report.to.to_string(), "1.1.0");
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    let download = record.steps.iter().find(|s| s.name == "download").unwrap();
    assert!(
        download
            .message
            .as_deref()
            .is_some_and(|m| m.contains("full package")),
        "{download:?}"
    );
}

fn write_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn every_unmet_requirement_is_listed_before_anything_changes() {
    let fx = Fixture::new();
    let before = snapshot(&fx.app);
    let updater = fx
        .builder()
        .configure(|c| {
            c.requirements = vec![
                Requirement::Version {
                    name: "php".into(),
                    command: "echo 'PHP 8.1.2 (cli)'".into(),
                    requirement: ">=8.2".parse().unwrap(),
                },
                Requirement::Contains {
                    name: "intl".into(),
                    command: "printf 'Core\\njson\\n'".into(),
                    text: "intl".into(),
                },
            ];
        })
        .build()
        .unwrap();
    let err = updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap_err();
    let Error::Step {
        step: Step::Preflight,
        source,
    } = &err
    else {
        panic!("{err}")
    };
    let text = source.to_string();
    assert!(
        text.contains("php: 8.1.2 does not satisfy >=8.2") && text.contains("intl:"),
        "{text}"
    );
    assert_eq!(snapshot(&fx.app), before);
}

#[test]
fn statistics_count_attempts_outcomes_and_windows() {
    let fx = Fixture::new();
    let updater = fx
        .with_database(fx.builder(), false, false)
        .build()
        .unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    fx.publish("1.2.0", &[]);
    let broken = fx.with_database(fx.builder(), false, true).build().unwrap();
    assert!(
        broken
            .apply(&ApplyRequest::latest("test"), &NoProgress)
            .is_err()
    );
    let stats = updater.stats(None).unwrap();
    assert_eq!(
        (stats.attempts, stats.completed, stats.rolled_back),
        (2, 1, 1)
    );
    assert_eq!(stats.success_rate, Some(0.5));
    assert_eq!(stats.rollbacks_by_step.get("migrate"), Some(&1));
    assert_eq!(stats.maintenance_window_ms.count, 1);
    assert!(stats.step_ms.contains_key("swap"));
    assert_eq!(stats.per_version["1.2.0"].rolled_back, 1);
}

#[test]
fn the_in_memory_schedule_store_conforms() {
    updater_core::conformance::schedule::run(&InMemoryScheduleStore::new());
}

#[test]
fn an_update_that_history_says_takes_longer_than_the_window_has_left_waits_for_the_next_one() {
    let fx = Fixture::new();
    // Three earlier updates here took 80, 90 and 100 minutes: the median
    // (90) is the estimate.
    for minutes in [80, 90, 100] {
        let mut record = UpdateRecord::new("0.9.0".parse().unwrap(), "cli:alice");
        record.status = UpdateStatus::Completed;
        record.started_at = Utc.with_ymd_and_hms(2026, 11, 1, 1, 0, 0).unwrap();
        record.completed_at = Some(record.started_at + chrono::Duration::minutes(minutes));
        fx.history.create_update(&record).unwrap();
    }
    // Sunday 02:45 in Berlin: the 02:00-04:00 window has 75 minutes left.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 6, 1, 45, 0).unwrap(),
    ));
    let updater = automatic(&fx, &clock, Arc::new(InMemoryScheduleStore::new()));
    assert_eq!(
        updater.expected_update_duration().unwrap(),
        chrono::Duration::minutes(90)
    );
    let said = updater
        .automation_round(&NoProgress)
        .automatic
        .unwrap()
        .unwrap();
    assert!(
        said.contains("takes about 90 min, longer than the window has left")
            && said.contains("2026-12-13T01:00:00"),
        "{said}"
    );
    assert_eq!(updater.current_version().unwrap().to_string(), "1.0.0");

    // At the opening of the next window, 120 minutes are left: it applies.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 13, 1, 0, 0).unwrap());
    let said = updater
        .automation_round(&NoProgress)
        .automatic
        .unwrap()
        .unwrap();
    assert!(
        said.contains("updated 1.0.0 -> 1.1.0 automatically"),
        "{said}"
    );
}

#[test]
fn a_release_rolled_back_here_is_never_installed_again_automatically() {
    let fx = Fixture::new();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 6, 1, 5, 0).unwrap(), // Sunday 02:05 CET
    ));
    let updater = automatic(&fx, &clock, Arc::new(InMemoryScheduleStore::new()));
    let said = updater
        .automation_round(&NoProgress)
        .automatic
        .unwrap()
        .unwrap();
    assert!(said.contains("-> 1.1.0 automatically"), "{said}");

    // A person rolls back from it: the next rounds leave it alone.
    updater
        .rollback(
            &updater_core::pipeline::RollbackRequest {
                initiated_by: "cli:alice".into(),
                restore_database_snapshot: false,
            },
            &NoProgress,
        )
        .unwrap();
    for _ in 0..2 {
        let said = updater
            .automation_round(&NoProgress)
            .automatic
            .unwrap()
            .unwrap();
        assert!(
            said.contains("1.1.0 is available but not applied automatically again")
                && said.contains("cli:alice rolled back from it to 1.0.0"),
            "{said}"
        );
        assert_eq!(updater.current_version().unwrap().to_string(), "1.0.0");
    }
}
