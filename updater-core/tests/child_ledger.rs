//! Children never outlive the updater: a command run with a ledger in a
//! child process that is then SIGKILLed leaves its own children running
//! (they are in their own process group); `stop_orphans` finds them by the
//! token in their environment and kills them all.
//!
//! The "updater" is this same test binary, re-executed to run only
//! `child_process_runs_a_command_with_a_ledger` with `LEDGER_TEST_DIR` set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use updater_core::command::{CHILD_TOKEN_ENV, ChildLedger, ShellCommand};
use updater_testkit::child;

/// Runs in the child process only (does nothing in a normal test run).
#[test]
fn child_process_runs_a_command_with_a_ledger() {
    if !child::is_child() {
        return;
    }
    let dir = child::var("LEDGER_TEST_DIR");
    let _ = ShellCommand::new("sleep 1000 & sleep 1000")
        .with_ledger(ChildLedger::new(dir))
        .run("migrate", None);
}

/// Live (not zombie) processes whose environment holds `token`.
fn holders_of(token: &str) -> Vec<u32> {
    let entry = format!("{CHILD_TOKEN_ENV}={token}");
    let mut pids = Vec::new();
    for item in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = item
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
        if matches!(state, 'Z' | 'X') {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == entry.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_updater(dir: &Path) -> std::process::Child {
    child::spawn(
        "child_process_runs_a_command_with_a_ledger",
        &[("LEDGER_TEST_DIR", dir.display().to_string())],
    )
}

#[test]
fn children_of_a_killed_updater_are_stopped_and_their_record_removed() {
    let state = tempfile::tempdir().unwrap();
    let dir: PathBuf = state.path().join("children");
    let ledger = ChildLedger::new(&dir);
    let mut updater = spawn_updater(&dir);

    // Wait until the command runs: its record has the child, and both sleeps run.
    let record = wait_for("the child's record", || {
        ledger
            .records()
            .ok()?
            .into_iter()
            .find(|r| r.child.is_some())
    });
    assert_eq!(
        (record.step.as_str(), record.program.as_str()),
        ("migrate", "sleep 1000 & sleep 1000")
    );
    assert_eq!(record.owner.pid, updater.id());
    let sleepers = wait_for("both sleeps", || {
        let pids = holders_of(&record.token);
        let sleeping = pids
            .iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "sleep")
            })
            .count();
        (sleeping == 2).then_some(pids)
    });

    // While the updater lives, its record and children are left alone.
    assert!(
        ledger
            .stop_orphans(Duration::from_secs(5))
            .unwrap()
            .is_empty()
    );
    assert_eq!(holders_of(&record.token), sleepers);

    // The updater dies: its process group kill never happens.
    updater.kill().unwrap();
    updater.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        holders_of(&record.token),
        sleepers,
        "without the ledger the children outlive the updater"
    );

    let stopped = ledger.stop_orphans(Duration::from_secs(10)).unwrap();
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].record.token, record.token);
    assert_eq!(stopped[0].killed, sleepers);
    assert!(
        holders_of(&record.token).is_empty(),
        "no process with the token survives"
    );
    assert!(
        ledger.records().unwrap().is_empty(),
        "the record is removed"
    );
    assert!(
        ledger
            .stop_orphans(Duration::from_secs(1))
            .unwrap()
            .is_empty(),
        "idempotent"
    );
}
