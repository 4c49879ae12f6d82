//! Real crashes: an update runs in a child process that is killed with
//! SIGKILL at many different moments; a fresh process then runs recovery.
//! The tree must be byte-for-byte the old or the new release, preserved
//! paths untouched, and the database schema must match the tree.
//!
//! The child is this same test binary, re-executed to run only
//! `child_process_runs_one_update` with `KILL_TEST_APP` set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{FakeDatabase, FakeDatabaseBackup, FakeMigrator, Fixture, snapshot};
use updater_core::failpoint::FailAt;
use updater_core::pipeline::{ApplyRequest, RecoveryAction, Updater, UpdaterBuilder};
use updater_core::progress::NoProgress;
use updater_core::source::LocalDirectorySource;

fn build(app: &Path, releases: &Path, db: &Path, store: &Path, delay: Duration) -> Updater {
    let db = FakeDatabase {
        dir: db.to_path_buf(),
    };
    UpdaterBuilder::new(app)
        .with_source(LocalDirectorySource::new(releases))
        .with_migrator(Arc::new(FakeMigrator {
            db: db.clone(),
            revertible: false,
            fail_migrate: false,
        }))
        .with_database_backup(Arc::new(FakeDatabaseBackup {
            db,
            store: store.to_path_buf(),
            restores: Mutex::new(0),
        }))
        .with_failpoints(Arc::new(FailAt::record_only().with_delay(delay)))
        .build()
        .unwrap()
}

/// Runs in the child process only (does nothing when `KILL_TEST_APP` is unset).
#[test]
fn child_process_runs_one_update() {
    let Ok(app) = std::env::var("KILL_TEST_APP") else {
        return;
    };
    let var = |name: &str| PathBuf::from(std::env::var(name).unwrap());
    let updater = build(
        Path::new(&app),
        &var("KILL_TEST_RELEASES"),
        &var("KILL_TEST_DB"),
        &var("KILL_TEST_STORE"),
        Duration::from_millis(3),
    );
    updater
        .apply(&ApplyRequest::latest("kill-test"), &NoProgress)
        .unwrap();
}

fn spawn_child(fx: &Fixture) -> std::process::Child {
    let store = fx.tmp.path().join("db-backups");
    std::fs::create_dir_all(&store).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_runs_one_update",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KILL_TEST_APP", &fx.app)
        .env("KILL_TEST_RELEASES", &fx.releases)
        .env("KILL_TEST_DB", &fx.db.dir)
        .env("KILL_TEST_STORE", &store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn an_update_killed_at_any_moment_recovers_to_exactly_one_release() {
    // Calibrate: how long does a whole update take in a child?
    let calibration = Fixture::new();
    let started = Instant::now();
    let status = spawn_child(&calibration).wait().unwrap();
    assert!(
        status.success(),
        "the child update must succeed when not killed"
    );
    let full = started.elapsed();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill test seed {seed}, full update {full:?}");
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let kills = 24;
    let (mut old_count, mut new_count) = (0, 0);
    for round in 0..kills {
        let fx = Fixture::new();
        let old = snapshot(&fx.app);
        let new = fx.expected_tree_after_update("1.1.0", &[("src/new-in-1.1.php", "new")]);
        // Spread the kills over the whole run (and a little past it).
        let at =
            full.mul_f64((round as f64 + (next() % 1000) as f64 / 1000.0) / kills as f64 * 1.1);
        let mut child = spawn_child(&fx);
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();

        let store = fx.tmp.path().join("db-backups");
        let recovering = build(&fx.app, &fx.releases, &fx.db.dir, &store, Duration::ZERO);
        let report = recovering
            .recover()
            .unwrap_or_else(|e| panic!("round {round} (kill at {at:?}): recovery failed: {e}"));
        let tree = snapshot(&fx.app);
        if tree == old {
            old_count += 1;
            assert_eq!(
                fx.db.schema(),
                "1.0.0",
                "round {round}: old tree needs the old schema ({report:?})"
            );
        } else if tree == new {
            new_count += 1;
            assert_eq!(
                fx.db.schema(),
                "1.1.0",
                "round {round}: new tree needs the new schema ({report:?})"
            );
        } else {
            panic!(
                "round {round} (kill at {at:?}): the tree is neither release after recovery ({report:?})"
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
        assert!(
            !fx.app.join(".updater/journal.json").exists(),
            "round {round}"
        );
        assert_eq!(
            recovering.recover().unwrap().action,
            RecoveryAction::Nothing,
            "round {round}: idempotent"
        );
    }
    println!("kill test: {old_count} rounds ended on the old release, {new_count} on the new one");
    assert!(
        old_count > 0 && new_count > 0,
        "kills must land both before and after the commit point"
    );
}
