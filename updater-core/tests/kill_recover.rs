//! Real kills: an update runs in a child process (slowed down at every
//! failpoint so kills land all over it) that is killed with SIGKILL at
//! moments spread over the whole run; a fresh updater then recovers. The
//! tree must be byte-for-byte the old or the new release, user data —
//! preserved or undeclared — untouched, and the schema must match the tree.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::Path;
use std::time::{Duration, Instant};

use updater_core::failpoint::Failpoints;
use updater_core::pipeline::{ApplyRequest, RecoveryAction, Updater};
use updater_core::progress::NoProgress;
use updater_testkit::app::{Fixture, Layout};
use updater_testkit::child;

fn layout_of(name: &str) -> Layout {
    match name {
        "app-data" => Layout::AppData,
        _ => Layout::Preserved,
    }
}

fn updater(fx: &Fixture, failpoints: Failpoints) -> Updater {
    fx.with_database(fx.builder(), false, false)
        .with_failpoints(failpoints)
        .build()
        .unwrap()
}

/// Runs in the child process only.
#[test]
fn child_entry_slow_update() {
    if !child::is_child() {
        return;
    }
    let fx = Fixture::reopen(
        Path::new(&child::var("ROOT")),
        layout_of(&child::var("LAYOUT")),
    );
    let failpoints = Failpoints::record_only().with_delay(Duration::from_millis(3));
    updater(&fx, failpoints)
        .apply(&ApplyRequest::latest("kill-test"), &NoProgress)
        .unwrap();
}

fn spawn(fx: &Fixture, layout: &str) -> std::process::Child {
    child::command(
        "child_entry_slow_update",
        &[
            ("ROOT", fx.root.display().to_string()),
            ("LAYOUT", layout.to_string()),
        ],
    )
    .spawn()
    .unwrap()
}

fn kill_at_random_moments(layout_name: &str, kills: u32) {
    let layout = layout_of(layout_name);
    // Calibrate: how long does a whole update take in a child?
    let calibration = Fixture::with_layout(layout);
    let started = Instant::now();
    assert!(
        spawn(&calibration, layout_name).wait().unwrap().success(),
        "the child update must succeed when not killed"
    );
    let full = started.elapsed();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill test ({layout_name}): seed {seed}, full update {full:?}");
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut old_count, mut new_count) = (0, 0);
    for round in 0..kills {
        let fx = Fixture::with_layout(layout);
        let old = fx.snapshot();
        let new = fx.expected_tree_after_update("1.1.0", &[("src/new-in-1.1.php", "new")]);
        let rows = fx.db.rows();
        // Spread the kills over the whole run (and a little past it).
        let at = full
            .mul_f64((f64::from(round) + (next() % 1000) as f64 / 1000.0) / f64::from(kills) * 1.1);
        let mut running = spawn(&fx, layout_name);
        std::thread::sleep(at);
        let _ = running.kill(); // SIGKILL
        running.wait().unwrap();

        let recovering = updater(&fx, Failpoints::record_only());
        let report = recovering
            .recover()
            .unwrap_or_else(|e| panic!("round {round} (kill at {at:?}): recovery failed: {e}"));
        let tree = fx.snapshot();
        if tree == old {
            old_count += 1;
            assert_eq!(
                fx.db.schema(),
                "1.0.0",
                "round {round}: old tree, old schema ({report:?})"
            );
        } else if tree == new {
            new_count += 1;
            assert_eq!(
                fx.db.schema(),
                "1.1.0",
                "round {round}: new tree, new schema ({report:?})"
            );
        } else {
            panic!(
                "round {round} (kill at {at:?}): the tree is neither release after recovery ({report:?}):\n{}",
                updater_testkit::tree::diff(&old, &tree)
            );
        }
        assert_eq!(fx.db.rows(), rows, "round {round}: no row lost");
        for (path, content) in fx.user_data() {
            assert_eq!(
                std::fs::read_to_string(fx.app.join(path)).unwrap(),
                content,
                "round {round}: {path}"
            );
        }
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
    println!(
        "kill test ({layout_name}): {old_count} rounds ended on the old release, {new_count} on the new one"
    );
    assert!(
        old_count > 0 && new_count > 0,
        "kills must land both before and after the commit point"
    );
}

#[test]
fn an_update_killed_at_any_moment_recovers_to_exactly_one_release() {
    if child::is_child() {
        return;
    }
    kill_at_random_moments("preserved", 24);
}

#[test]
fn undeclared_application_data_survives_kills_at_any_moment() {
    if child::is_child() {
        return;
    }
    kill_at_random_moments("app-data", 24);
}
