//! Nothing the application wrote is lost — the regressions of the defects
//! found from outside: undeclared application data, a failed rollback that
//! deadlocked recovery, the maintenance flag vanishing mid-window, children
//! outliving a killed updater, a full disk inside the window, writes that
//! land just after maintenance goes on, and snapshots that cannot be restored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use updater_core::backup::{Backup, BackupKind, BackupRequest, BackupStrategy};
use updater_core::command::ShellCommand;
use updater_core::failpoint::{Action, Failpoints};
use updater_core::history::{HistoryStore, Page, UpdateStatus};
use updater_core::maintenance::FlagFileMaintenance;
use updater_core::migrate::CommandMigrator;
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, Drain, RecoveryAction, RollbackRequest};
use updater_core::progress::{NoProgress, ProgressSink};
use updater_core::tree::FileList;
use updater_core::{ConflictPolicy, Error, Step};
use updater_testkit::app::{Fixture, Layout, release_tree};
use updater_testkit::archive::pack;
use updater_testkit::child;
use updater_testkit::fakes::FakeDatabaseBackup;
use updater_testkit::tree::write_tree;

fn apply(updater: &updater_core::Updater) -> updater_core::Result<ApplyOutcome> {
    updater.apply(&ApplyRequest::latest("test"), &NoProgress)
}

/// Publishes `version` with the release files of `release_tree` plus
/// `extra`, and without the paths in `drop`.
fn publish_variant(fx: &Fixture, version: &str, extra: &[(&str, &str)], drop: &[&str]) {
    let tree = fx.root.join(format!("variant-{version}"));
    release_tree(&tree, version, extra);
    for path in drop {
        let full = tree.join(path);
        if full.is_dir() {
            std::fs::remove_dir_all(full).unwrap();
        } else {
            std::fs::remove_file(full).unwrap();
        }
    }
    let archive = fx.root.join(format!("variant-{version}.tar.gz"));
    pack(&tree, &archive);
    fx.publish_archive(version, &archive);
}

// ------------------------------------------------- 1. undeclared data

#[test]
fn data_the_release_never_shipped_is_carried_into_the_new_release_and_back() {
    let fx = Fixture::with_layout(Layout::AppData);
    let updater = fx.with_database(fx.builder(), true, false).build().unwrap();
    let ApplyOutcome::Updated(report) = apply(&updater).unwrap() else {
        panic!("updated")
    };
    assert!(
        report.carried.contains(&"database/app.db".to_string())
            && report
                .carried
                .contains(&"storage/framework/sessions".to_string())
            && report.carried.contains(&"uploads".to_string()),
        "{:?}",
        report.carried
    );
    assert_eq!(
        fx.db.schema(),
        "1.1.0",
        "migrated in place, the database came along"
    );
    assert_eq!(fx.db.rows(), "row1\n", "not an empty new database");
    for (path, content) in fx.user_data() {
        assert_eq!(
            std::fs::read_to_string(fx.app.join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    // A session written under 1.1.0 comes back with a manual rollback too.
    write_tree(
        &fx.app,
        &[("storage/framework/sessions/s2", "written under 1.1.0")],
    );
    updater
        .rollback(
            &RollbackRequest {
                initiated_by: "test".into(),
                restore_database_snapshot: false,
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(updater.current_version().unwrap().to_string(), "1.0.0");
    assert_eq!(
        std::fs::read_to_string(fx.app.join("storage/framework/sessions/s2")).unwrap(),
        "written under 1.1.0"
    );
    assert_eq!(fx.db.schema(), "1.0.0");
}

#[test]
fn the_file_list_of_every_installed_release_is_recorded() {
    let fx = Fixture::new();
    let updater = fx.builder().build().unwrap();
    assert!(!updater.status().unwrap().files_known, "installed by hand");
    apply(&updater).unwrap();
    assert!(updater.status().unwrap().files_known);
    let installed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.app.join(".updater/installed.json")).unwrap())
            .unwrap();
    let list = FileList::load(Path::new(installed["files"].as_str().unwrap()))
        .unwrap()
        .unwrap();
    let entry = list.get("src/new-in-1.1.php").unwrap();
    assert_eq!(entry.size, 3);
    assert!(entry.sha256.is_some() && entry.stamp.is_some());
    assert!(
        list.get(".env").is_some(),
        "the release's own copy is listed"
    );
    assert!(
        list.get("storage/logs/app.log").is_none(),
        "user data is never part of a release's list"
    );
}

#[test]
fn application_data_where_the_release_ships_a_file_refuses_the_update_listing_every_path() {
    let fx = Fixture::with_layout(Layout::AppData);
    // 1.2.0 ships files where the application keeps data.
    publish_variant(
        &fx,
        "1.2.0",
        &[
            ("uploads/cat.png", "release default"),
            ("uploads/dog.png", "new"),
        ],
        &[],
    );
    let before = fx.snapshot();
    let updater = fx.builder().build().unwrap();
    let err = updater
        .apply(
            &ApplyRequest::latest("test").with_version("1.2.0".parse().unwrap()),
            &NoProgress,
        )
        .unwrap_err();
    let Error::Step {
        step: Step::Scan,
        source,
    } = &err
    else {
        panic!("refused at the scan: {err}")
    };
    assert!(
        matches!(&**source, Error::ApplicationData { conflicts } if conflicts.len() == 1 && conflicts[0].starts_with("uploads/cat.png")),
        "{source}"
    );
    assert_eq!(fx.snapshot(), before, "nothing changed");
    assert_eq!(
        fx.history.updates(Page::first(1)).unwrap()[0].status,
        UpdateStatus::Failed
    );
}

#[test]
fn a_shipped_file_modified_in_place_is_refused_kept_or_saved_aside_by_policy() {
    for policy in [
        ConflictPolicy::Refuse,
        ConflictPolicy::KeepLocal,
        ConflictPolicy::TakeRelease,
    ] {
        let fx = Fixture::new();
        let updater = fx
            .builder()
            .configure(|c| c.data_conflicts = policy)
            .build()
            .unwrap();
        apply(&updater).unwrap(); // 1.1.0, with its file list
        std::fs::write(fx.app.join("public/app.js"), "hot-fixed by the admin").unwrap();
        fx.publish("1.2.0", &[]);
        let outcome = apply(&updater);
        let live = std::fs::read_to_string(fx.app.join("public/app.js")).unwrap();
        match policy {
            ConflictPolicy::Refuse => {
                assert!(
                    matches!(&outcome, Err(Error::Step { step: Step::Scan, source }) if matches!(**source, Error::ApplicationData { .. })),
                    "{outcome:?}"
                );
                assert_eq!(live, "hot-fixed by the admin");
            }
            ConflictPolicy::KeepLocal => {
                assert!(outcome.is_ok(), "{outcome:?}");
                assert_eq!(live, "hot-fixed by the admin", "the local version is kept");
            }
            ConflictPolicy::TakeRelease => {
                let Ok(ApplyOutcome::Updated(report)) = outcome else {
                    panic!("{outcome:?}")
                };
                assert_eq!(live, "console.log('1.2.0')");
                assert_eq!(report.saved_aside, ["public/app.js"]);
                let saved = std::fs::read_dir(fx.app.join(".updater/local-changes"))
                    .unwrap()
                    .next()
                    .unwrap()
                    .unwrap()
                    .path()
                    .join("public/app.js");
                assert_eq!(
                    std::fs::read_to_string(saved).unwrap(),
                    "hot-fixed by the admin",
                    "never lost: saved aside"
                );
            }
        }
    }
}

#[test]
fn a_hand_installed_app_learns_what_it_shipped_from_its_release_package() {
    // The source still has 1.0.0 (the fixture publishes it): its package is
    // the baseline, so a file the admin changed is noticed on the first update.
    let fx = Fixture::new();
    std::fs::write(fx.app.join("public/app.js"), "changed by hand").unwrap();
    let err = apply(&fx.builder().build().unwrap()).unwrap_err();
    assert!(
        matches!(&err, Error::Step { step: Step::Scan, source } if source.to_string().contains("public/app.js")),
        "{err}"
    );
}

#[test]
fn without_its_package_a_hand_installed_app_keeps_everything_the_new_release_does_not_ship() {
    let fx = Fixture::with_layout(Layout::AppData);
    // The source no longer has 1.0.0: only 1.1.0.
    std::fs::remove_dir_all(&fx.releases).unwrap();
    fx.publish("1.1.0", &[("src/new-in-1.1.php", "new")]);
    std::fs::write(fx.app.join("index.php"), "<?php // patched by hand").unwrap();
    let ApplyOutcome::Updated(report) = apply(&fx.builder().build().unwrap()).unwrap() else {
        panic!("updated")
    };
    // Conservative: whatever 1.1.0 does not ship is carried (data, and the
    // file 1.1.0 removed), and replaced files that differ are saved aside.
    assert!(
        report.carried.contains(&"src/old-only.php".to_string()),
        "{report:?}"
    );
    assert!(
        report.saved_aside.contains(&"index.php".to_string()),
        "{report:?}"
    );
    for (path, content) in fx.user_data() {
        assert_eq!(
            std::fs::read_to_string(fx.app.join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    assert_eq!(fx.db.rows(), "row1\n");
}

// ------------------------------------------------- 2. undo order

#[test]
fn a_failing_migration_with_the_database_where_the_new_release_ships_nothing_rolls_back() {
    // The database lives in `database/`, which 1.2.0 no longer ships.
    let fx = Fixture::with_layout(Layout::AppData);
    publish_variant(&fx, "1.2.0", &[], &["database"]);
    let before = fx.snapshot();
    let updater = fx.with_database(fx.builder(), false, true).build().unwrap();
    let err = updater
        .apply(
            &ApplyRequest::latest("test").with_version("1.2.0".parse().unwrap()),
            &NoProgress,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RolledBack {
                step: Step::Migrate,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fx.snapshot(), before);
    assert_eq!(
        (fx.db.schema().as_str(), fx.db.rows().as_str()),
        ("1.0.0", "row1\n")
    );
    assert!(!fx.app.join(".updater/journal.json").exists());
}

// ------------------------------------------------- 3. maintenance flag

#[test]
fn a_flag_file_inside_a_swapped_directory_stays_visible_for_the_whole_window() {
    let fx = Fixture::with_layout(Layout::AppData);
    let flag = fx.app.join("storage/framework/maintenance.json");
    let seen_off = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let failpoints = {
        let (flag, seen_off) = (flag.clone(), seen_off.clone());
        let in_window = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Failpoints::record_only().with_hook(move |point| {
            use std::sync::atomic::Ordering;
            if point == "after:maintenance_on" {
                in_window.store(true, Ordering::SeqCst);
            }
            if point == "before:maintenance_off" {
                in_window.store(false, Ordering::SeqCst);
            }
            if in_window.load(Ordering::SeqCst) && !flag.exists() {
                seen_off.lock().unwrap().push(point.to_string());
            }
            Ok(())
        })
    };
    let updater = fx
        .with_database(fx.builder(), false, false)
        .with_maintenance(Arc::new(FlagFileMaintenance::new(&flag)))
        .with_failpoints(failpoints)
        .build()
        .unwrap();
    apply(&updater).unwrap();
    assert!(
        seen_off.lock().unwrap().is_empty(),
        "maintenance was off at {:?}",
        seen_off.lock().unwrap()
    );
    assert!(!flag.exists(), "off afterwards");
    let stale = std::fs::read_dir(fx.app.join(".updater/releases"))
        .unwrap()
        .map(|e| e.unwrap().path().join("storage/framework/maintenance.json"))
        .filter(|p| p.exists())
        .count();
    assert_eq!(stale, 0, "the kept release holds no stale flag");
}

// ------------------------------------------------- 5. children

/// Runs in a child process only: an update whose migration sleeps (and is
/// killed with the updater).
#[test]
fn child_entry_update_with_a_slow_migration() {
    if !child::is_child() {
        return;
    }
    let fx = Fixture::reopen(Path::new(&child::var("ROOT")), Layout::Preserved);
    let marker = child::var("MARKER");
    let migration = format!(
        "echo started > {marker}.started; sleep 3; echo \"$UPDATER_TO_VERSION\" > {}/schema; echo done > {marker}",
        fx.db.dir.display()
    );
    fx.builder()
        .with_migrator(Arc::new(CommandMigrator::new(ShellCommand::new(migration))))
        .with_database_backup(Arc::new(fx.database_backup()))
        .build()
        .unwrap()
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
}

#[test]
fn a_migration_never_outlives_a_killed_updater() {
    if child::is_child() {
        return;
    }
    let fx = Fixture::new();
    let before = fx.snapshot();
    let marker = fx.root.join("migration-finished");
    let mut running = child::command(
        "child_entry_update_with_a_slow_migration",
        &[
            ("ROOT", fx.root.display().to_string()),
            ("MARKER", marker.display().to_string()),
        ],
    )
    .spawn()
    .unwrap();
    let started = marker.with_extension("started");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the migration never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.kill().unwrap(); // SIGKILL the updater; its migration is still sleeping
    running.wait().unwrap();
    let report = fx
        .builder()
        .with_database_backup(Arc::new(fx.database_backup()))
        .with_migrator(Arc::new(CommandMigrator::new(ShellCommand::new("true"))))
        .build()
        .unwrap()
        .recover()
        .unwrap();
    assert!(
        matches!(report.action, RecoveryAction::RolledBack { .. }),
        "{report:?}"
    );
    assert_eq!(report.stopped_children.len(), 1, "{report:?}");
    // Had the migration survived, it would finish now, under the old code.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !marker.exists(),
        "the orphaned migration was stopped before the undo"
    );
    assert_eq!(fx.db.schema(), "1.0.0");
    assert_eq!(fx.snapshot(), before);
}

// ------------------------------------------------- 6. disk full

#[test]
fn a_full_disk_inside_the_window_is_rolled_back_and_recorded_as_such() {
    for point in ["journal:in_window", "before:migrate", "before:hooks"] {
        let fx = Fixture::new();
        let before = fx.snapshot();
        let updater = fx
            .with_database(fx.builder(), false, false)
            .with_failpoints(Failpoints::at(point, Action::DiskFull))
            .build()
            .unwrap();
        let err = apply(&updater).unwrap_err();
        assert!(matches!(err, Error::RolledBack { .. }), "{point}: {err}");
        assert_eq!(fx.snapshot(), before, "{point}");
        assert_eq!(fx.db.schema(), "1.0.0", "{point}");
        let record = &fx.history.updates(Page::first(1)).unwrap()[0];
        assert_eq!(record.status, UpdateStatus::RolledBack, "{point}");
        assert!(
            record
                .error_message
                .as_deref()
                .unwrap()
                .contains("No space left on device"),
            "{point}: {record:?}"
        );
        assert!(
            !fx.app.join(".updater/reserve").exists(),
            "{point}: reserve released"
        );
        assert!(
            !fx.app.join(".updater/maintenance.json").exists(),
            "{point}"
        );
    }
}

// ------------------------------------------------- 7. drain

/// A request that passed the maintenance check just before it went on:
/// it is in flight (a marker file says so) and commits 100 ms later.
fn in_flight_request(fx: &Fixture) -> Failpoints {
    let db = fx.db.clone();
    let marker = fx.root.join("request-in-flight");
    Failpoints::error_at("before:hooks").with_hook(move |point| {
        if point == "after:maintenance_on" {
            std::fs::write(&marker, "").unwrap();
            let (db, marker) = (db.clone(), marker.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                db.write_row("order 42 (acknowledged)");
                std::fs::remove_file(marker).unwrap();
            });
        }
        Ok(())
    })
}

#[test]
fn with_a_drain_a_write_acknowledged_just_after_maintenance_went_on_survives_a_rollback() {
    let fx = Fixture::new();
    // The application's drain command: wait until no request is in flight.
    let drain = ShellCommand::new(format!(
        "while [ -e {} ]; do sleep 0.01; done",
        fx.root.join("request-in-flight").display()
    ));
    let updater = fx
        .with_database(fx.builder(), false, false)
        .with_failpoints(in_flight_request(&fx))
        .configure(|c| {
            c.drain = Drain {
                wait: Duration::ZERO,
                command: Some(drain),
            }
        })
        .build()
        .unwrap();
    let err = apply(&updater).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RolledBack {
                step: Step::Hooks,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        fx.db.rows().contains("order 42 (acknowledged)"),
        "the write was in the snapshot the rollback restored"
    );
    let record = &fx.history.updates(Page::first(1)).unwrap()[0];
    let drain = record.steps.iter().find(|s| s.name == "drain").unwrap();
    let took = drain.finished_at.unwrap() - drain.started_at;
    println!("drain took {took} (window cost)");
    assert!(took >= chrono::Duration::milliseconds(50), "{took}");
}

#[test]
fn without_a_drain_a_commit_landing_after_the_snapshot_is_lost_which_is_why_the_drain_exists() {
    let fx = Fixture::new();
    let db = fx.db.clone();
    let late_commit = Failpoints::error_at("before:hooks").with_hook(move |point| {
        if point == "after:database_snapshot" {
            db.write_row("order 42 (acknowledged)");
        }
        Ok(())
    });
    let updater = fx
        .with_database(fx.builder(), false, false)
        .with_failpoints(late_commit)
        .build()
        .unwrap();
    let err = apply(&updater).unwrap_err();
    assert!(matches!(err, Error::RolledBack { .. }), "{err}");
    assert!(!fx.db.rows().contains("order 42"), "{}", fx.db.rows());
}

// ------------------------------------------------- 8. rehearsal

/// A snapshot strategy whose snapshots cannot be restored (like a MariaDB
/// dump with another account's definer).
#[derive(Debug)]
struct UnrestorableSnapshots(FakeDatabaseBackup);

impl BackupStrategy for UnrestorableSnapshots {
    fn describe(&self) -> String {
        "snapshots that do not restore".into()
    }
    fn kind(&self) -> BackupKind {
        BackupKind::DatabaseOnly
    }
    fn rehearse(&self) -> updater_core::Result<()> {
        Err(Error::integrity(
            "trial snapshot",
            "not restorable: DEFINER=`root`@`%` needs SUPER",
        ))
    }
    fn create(&self, r: &BackupRequest, p: &dyn ProgressSink) -> updater_core::Result<Backup> {
        self.0.create(r, p)
    }
    fn verify(&self, b: &Backup) -> updater_core::Result<()> {
        self.0.verify(b)
    }
    fn restore(&self, b: &Backup, p: &dyn ProgressSink) -> updater_core::Result<()> {
        self.0.restore(b, p)
    }
    fn delete(&self, b: &Backup) -> updater_core::Result<()> {
        self.0.delete(b)
    }
    fn size(&self, b: &Backup) -> updater_core::Result<u64> {
        self.0.size(b)
    }
}

#[test]
fn a_snapshot_that_could_not_be_restored_stops_the_update_before_anything_changes() {
    let fx = Fixture::new();
    let before = fx.snapshot();
    let updater = fx
        .with_migrator(fx.builder(), false, false, false)
        .with_database_backup(Arc::new(UnrestorableSnapshots(fx.database_backup())))
        .build()
        .unwrap();
    let err = apply(&updater).unwrap_err();
    assert!(
        matches!(&err, Error::Step { step: Step::Preflight, source } if matches!(**source, Error::Integrity { .. })),
        "{err}"
    );
    assert_eq!(fx.snapshot(), before);
    assert_eq!(fx.db.schema(), "1.0.0");
}
