//! The combination tester (in the style of ripgrep's `SearcherTester`):
//! every failpoint of every operation, in error mode and in crash mode, and
//! a crash at every failpoint of the recovery that follows, across
//!
//! - operations: update, manual rollback, backup restore;
//! - database: a snapshot strategy (migrations without down migrations), a
//!   migrator with down migrations and no snapshot, no database;
//! - files backup: on, off;
//! - user data: in preserved paths only, or also undeclared application
//!   data (a database inside the application, sessions, uploads).
//!
//! The recovery sweep follows first crashes at the deepest point before the
//! commit (`after:health_check`: the recovery undoes everything) and at
//! every point from the commit point on (`commit:point` to
//! `commit:installed`: the recovery finishes the commit).
//!
//! Each run is labelled `<operation>/<database>/<backup>/<layout> <mode> at
//! <failpoint>`. The summary (runs per mode, total, time) is printed and
//! written to `target/combinations-summary.txt`, which CI prints (cargo test
//! captures the output of a passing test). After each, the guarantees hold: the application tree is
//! byte-for-byte the state before or after the operation (after exactly
//! when the commit point was passed), the schema and rows match it, user
//! data is untouched, the journal, the maintenance flag, the disk reserve
//! and the lock are gone, the history record ended (never left running),
//! and no operator action was needed. A crash is a real process death: the
//! operation runs in a child process that aborts at the failpoint; a fresh
//! updater recovers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use updater_core::backup::{Backup, BackupStrategy};
use updater_core::failpoint::Failpoints;
use updater_core::history::{HistoryStore, Page, StepOutcome, UpdateStatus};
use updater_core::pipeline::{ApplyRequest, RestoreRequest, RollbackRequest, Updater};
use updater_core::progress::NoProgress;
use updater_store_diesel::DieselHistoryStore;
use updater_testkit::app::{Fixture, Layout, fast_temp_dir};
use updater_testkit::child;
use updater_testkit::fakes::FakeFilesBackup;
use updater_testkit::tree::{Tree, diff};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Update,
    ManualRollback,
    BackupRestore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Database {
    /// Migrations without down migrations; a snapshot restores the schema.
    Snapshot,
    /// Down migrations, no snapshot.
    Revertible,
    /// No database parts at all.
    Without,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Combination {
    op: Operation,
    database: Database,
    files_backup: bool,
    layout: Layout,
}

impl Combination {
    fn all() -> Vec<Combination> {
        let mut all = Vec::new();
        for op in [
            Operation::Update,
            Operation::ManualRollback,
            Operation::BackupRestore,
        ] {
            for database in [Database::Snapshot, Database::Revertible, Database::Without] {
                for files_backup in [true, false] {
                    for layout in [Layout::Preserved, Layout::AppData] {
                        all.push(Combination {
                            op,
                            database,
                            files_backup,
                            layout,
                        });
                    }
                }
            }
        }
        all
    }

    fn label(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            match self.op {
                Operation::Update => "update",
                Operation::ManualRollback => "rollback",
                Operation::BackupRestore => "restore",
            },
            match self.database {
                Database::Snapshot => "snapshot",
                Database::Revertible => "revertible",
                Database::Without => "no-database",
            },
            if self.files_backup {
                "backup"
            } else {
                "no-backup"
            },
            match self.layout {
                Layout::Preserved => "preserved",
                Layout::AppData => "app-data",
            }
        )
    }

    fn parse(label: &str) -> Combination {
        Combination::all()
            .into_iter()
            .find(|c| c.label() == label)
            .unwrap_or_else(|| panic!("no combination {label}"))
    }

    fn history(fx: &Fixture) -> Arc<DieselHistoryStore> {
        let url = format!("sqlite://{}", fx.root.join("history.sqlite").display());
        Arc::new(DieselHistoryStore::open(url).unwrap())
    }

    fn files_strategy(&self, fx: &Fixture) -> FakeFilesBackup {
        FakeFilesBackup {
            app: fx.app.clone(),
            store: fx.root.join("files-backups"),
            db: (self.database == Database::Snapshot).then(|| fx.db.clone()),
        }
    }

    fn updater(&self, fx: &Fixture, failpoints: Failpoints) -> Updater {
        let mut builder = fx.builder().with_history(Self::history(fx));
        builder = match self.database {
            Database::Snapshot => fx.with_migrator(builder, false, false, true),
            Database::Revertible => fx.with_migrator(builder, true, false, false),
            Database::Without => builder,
        };
        if self.files_backup {
            builder = builder.with_files_backup(Arc::new(self.files_strategy(fx)));
        }
        builder.with_failpoints(failpoints).build().unwrap()
    }

    /// The application right before the operation (and, for a restore, the backup).
    fn set_up(&self) -> (Fixture, Option<Backup>) {
        let fx = Fixture::with_layout_in(self.layout, &fast_temp_dir());
        let updater = self.updater(&fx, Failpoints::record_only());
        let backup = match self.op {
            Operation::Update => None,
            Operation::ManualRollback => {
                updater
                    .apply(&ApplyRequest::latest("set-up"), &NoProgress)
                    .unwrap();
                None
            }
            Operation::BackupRestore => {
                let backup = updater
                    .create_backup(&self.files_strategy(&fx), None, "set-up", &NoProgress)
                    .unwrap();
                updater
                    .apply(&ApplyRequest::latest("set-up"), &NoProgress)
                    .unwrap();
                Some(backup)
            }
        };
        (fx, backup)
    }

    fn run(
        &self,
        fx: &Fixture,
        backup: Option<&Backup>,
        updater: &Updater,
    ) -> updater_core::Result<()> {
        match self.op {
            Operation::Update => updater
                .apply(&ApplyRequest::latest("test"), &NoProgress)
                .map(drop),
            Operation::ManualRollback => updater
                .rollback(
                    &RollbackRequest {
                        initiated_by: "test".into(),
                        restore_database_snapshot: true,
                    },
                    &NoProgress,
                )
                .map(drop),
            Operation::BackupRestore => updater
                .restore_backup(
                    &self.files_strategy(fx) as &dyn BackupStrategy,
                    backup.unwrap(),
                    &RestoreRequest::by("test"),
                    &NoProgress,
                )
                .map(drop),
        }
    }
}

/// What the guarantees compare.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    tree: Tree,
    schema: String,
    rows: String,
}

fn state(fx: &Fixture) -> State {
    State {
        tree: fx.snapshot(),
        schema: fx.db.schema(),
        rows: fx.db.rows(),
    }
}

/// The states before and after a clean run, and the failpoints it passes.
struct Reference {
    before: State,
    after: State,
    points: Vec<String>,
}

impl Reference {
    fn of(combo: Combination) -> Reference {
        let (fx, backup) = combo.set_up();
        let before = state(&fx);
        let failpoints = Failpoints::record_only();
        let updater = combo.updater(&fx, failpoints);
        combo
            .run(&fx, backup.as_ref(), &updater)
            .unwrap_or_else(|e| panic!("{}: the clean run must succeed: {e}", combo.label()));
        let after = state(&fx);
        assert_ne!(
            before,
            after,
            "{}: the operation changes something",
            combo.label()
        );
        let points = updater_points(&updater);
        Reference {
            before,
            after,
            points,
        }
    }

    /// Whether the operation is committed once `point` was passed.
    fn committed_at(&self, point: &str) -> bool {
        let commit = self
            .points
            .iter()
            .position(|p| p == "commit:point")
            .unwrap();
        self.points.iter().position(|p| p == point).unwrap() >= commit
    }
}

fn updater_points(updater: &Updater) -> Vec<String> {
    let mut points = updater.failpoints_seen();
    points.dedup();
    points
}

/// The guarantees, after an operation and whatever recovery followed.
fn check(label: &str, fx: &Fixture, expected: &State, committed: bool) {
    let now = state(fx);
    let which = if committed { "after" } else { "before" };
    assert!(
        now.tree == expected.tree,
        "{label}: the tree is not exactly the state {which} the operation:\n{}",
        diff(&expected.tree, &now.tree)
    );
    assert_eq!(
        now.schema, expected.schema,
        "{label}: the schema matches the tree"
    );
    assert_eq!(now.rows, expected.rows, "{label}: no row lost or invented");
    for (path, content) in fx.user_data() {
        assert_eq!(
            std::fs::read_to_string(fx.app.join(path)).unwrap_or_default(),
            content,
            "{label}: user data {path} untouched"
        );
    }
    let state_dir = fx.app.join(".updater");
    for leftover in ["journal.json", "reserve", "maintenance.json"] {
        assert!(
            !state_dir.join(leftover).exists(),
            "{label}: {leftover} is gone"
        );
    }
    let history = Combination::history(fx);
    let record = &history.updates(Page::first(1)).unwrap()[0];
    let expected_status: &[UpdateStatus] = if committed {
        &[UpdateStatus::Completed]
    } else {
        &[UpdateStatus::RolledBack, UpdateStatus::Failed]
    };
    assert!(
        expected_status.contains(&record.status),
        "{label}: history says {:?}",
        record.status
    );
    assert!(
        record
            .steps
            .iter()
            .all(|s| s.outcome != StepOutcome::Running),
        "{label}: no step left running: {:?}",
        record.steps
    );
}

/// Runs in a child process only: one operation, or one recovery, that
/// aborts at its failpoint.
#[test]
fn child_entry_combination() {
    if !child::is_child() {
        return;
    }
    let combo = Combination::parse(&child::var("COMBO"));
    let fx = Fixture::reopen(Path::new(&child::var("ROOT")), combo.layout);
    let failpoints = Failpoints::crash_at(child::var("CRASH_AT"));
    let updater = combo.updater(&fx, failpoints);
    if child::var("WHAT") == "recover" {
        let _ = updater.recover();
    } else {
        let backup: Option<Backup> = serde_json::from_str(&child::var("BACKUP")).unwrap();
        let _ = combo.run(&fx, backup.as_ref(), &updater);
    }
    // Reaching this means the failpoint was not passed: a broken test.
    std::process::exit(3);
}

fn crash_in_child(
    combo: Combination,
    fx: &Fixture,
    backup: Option<&Backup>,
    what: &str,
    point: &str,
) {
    let status = child::run(
        "child_entry_combination",
        &[
            ("COMBO", combo.label()),
            ("ROOT", fx.root.display().to_string()),
            ("CRASH_AT", point.to_string()),
            ("WHAT", what.to_string()),
            ("BACKUP", serde_json::to_string(&backup).unwrap()),
        ],
    );
    assert!(
        status.code() != Some(3) && !status.success(),
        "{}: the child must die at {point} ({status})",
        combo.label()
    );
}

/// A fresh updater recovers; no operator is needed.
fn recover(label: &str, combo: Combination, fx: &Fixture) {
    let updater = combo.updater(fx, Failpoints::record_only());
    updater
        .recover()
        .unwrap_or_else(|e| panic!("{label}: recovery needed an operator: {e}"));
    let again = updater.recover().unwrap();
    assert_eq!(
        again.action,
        updater_core::RecoveryAction::Nothing,
        "{label}: recovery is idempotent"
    );
}

/// One labelled run.
#[derive(Debug, Clone)]
enum Run {
    Error(Combination, String),
    Crash(Combination, String),
    /// Crash at `.1` (in the window, or past the commit point), then crash
    /// at `.2` in the recovery.
    CrashInRecovery(Combination, String, String),
}

fn execute(run: &Run, reference: &Reference) -> String {
    match run {
        Run::Error(combo, point) => {
            let label = format!("{} error at {point}", combo.label());
            let (fx, backup) = combo.set_up();
            let updater = combo.updater(&fx, Failpoints::error_at(point.clone()));
            let result = combo.run(&fx, backup.as_ref(), &updater);
            let committed = reference.committed_at(point);
            if !committed {
                assert!(result.is_err(), "{label}: the injected error is reported");
            }
            recover(&label, *combo, &fx);
            let expected = if committed {
                &reference.after
            } else {
                &reference.before
            };
            check(&label, &fx, expected, committed);
            label
        }
        Run::Crash(combo, point) => {
            let label = format!("{} crash at {point}", combo.label());
            let (fx, backup) = combo.set_up();
            crash_in_child(*combo, &fx, backup.as_ref(), "op", point);
            recover(&label, *combo, &fx);
            let committed = reference.committed_at(point);
            let expected = if committed {
                &reference.after
            } else {
                &reference.before
            };
            check(&label, &fx, expected, committed);
            label
        }
        Run::CrashInRecovery(combo, first, second) => {
            let label = format!(
                "{} crash at {first}, then in recovery at {second}",
                combo.label()
            );
            let (fx, backup) = combo.set_up();
            crash_in_child(*combo, &fx, backup.as_ref(), "op", first);
            crash_in_child(*combo, &fx, None, "recover", second);
            recover(&label, *combo, &fx);
            // Before the commit point the recovery undoes; past it, it
            // finishes the commit, however often it is interrupted.
            let committed = reference.committed_at(first);
            let expected = if committed {
                &reference.after
            } else {
                &reference.before
            };
            check(&label, &fx, expected, committed);
            label
        }
    }
}

/// The failpoints a recovery passes after a crash at `first`.
fn recovery_points(combo: Combination, first: &str) -> Vec<String> {
    let (fx, backup) = combo.set_up();
    crash_in_child(combo, &fx, backup.as_ref(), "op", first);
    let updater = combo.updater(&fx, Failpoints::record_only());
    updater.recover().unwrap();
    let mut points = updater.failpoints_seen();
    points.dedup();
    points
}

fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

#[test]
fn every_failpoint_of_every_combination_keeps_the_guarantees() {
    if child::is_child() {
        return;
    }
    // `COMBINATIONS=<text>` narrows the sweep to labels containing it (debugging).
    let only = std::env::var("COMBINATIONS").unwrap_or_default();
    let combos: Vec<Combination> = Combination::all()
        .into_iter()
        .filter(|c| c.label().contains(&only))
        .collect();
    let started = Instant::now();
    let mut runs = Vec::new();
    let mut references = std::collections::HashMap::new();
    for combo in &combos {
        let reference = Reference::of(*combo);
        for point in &reference.points {
            runs.push(Run::Error(*combo, point.clone()));
            runs.push(Run::Crash(*combo, point.clone()));
        }
        // The deepest point before the commit (everything must be undone),
        // and every point past it (the recovery must finish the commit).
        assert!(
            reference.points.iter().any(|p| p == BEFORE_COMMIT),
            "{}: the clean run passes {BEFORE_COMMIT}",
            combo.label()
        );
        let past_commit = reference
            .points
            .iter()
            .filter(|p| reference.committed_at(p));
        for first in std::iter::once(BEFORE_COMMIT).chain(past_commit.map(String::as_str)) {
            for second in recovery_points(*combo, first) {
                runs.push(Run::CrashInRecovery(*combo, first.to_string(), second));
            }
        }
        references.insert(combo.label(), reference);
    }
    let next = AtomicUsize::new(0);
    let passed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers() {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(run) = runs.get(index) else { break };
                    let combo = match run {
                        Run::Error(c, _) | Run::Crash(c, _) | Run::CrashInRecovery(c, _, _) => c,
                    };
                    let label = execute(run, &references[&combo.label()]);
                    passed.lock().unwrap().push(label);
                }
            });
        }
    });
    let passed = passed.into_inner().unwrap();
    let count = |mode: &dyn Fn(&Run) -> bool| runs.iter().filter(|r| mode(r)).count();
    let in_recovery = |committed: bool| {
        count(&|r| {
            matches!(r, Run::CrashInRecovery(c, first, _)
                if references[&c.label()].committed_at(first) == committed)
        })
    };
    let modes = [
        (
            "error at a failpoint".to_string(),
            count(&|r| matches!(r, Run::Error(..))),
        ),
        (
            "crash at a failpoint".to_string(),
            count(&|r| matches!(r, Run::Crash(..))),
        ),
        (
            format!("crash in the recovery after a crash at {BEFORE_COMMIT}"),
            in_recovery(false),
        ),
        (
            "crash in the recovery after a crash past the commit point".to_string(),
            in_recovery(true),
        ),
    ];
    let mut summary = format!(
        "combination tester: {} labelled runs passed over {} combinations in {:.0} s\n",
        passed.len(),
        combos.len(),
        started.elapsed().as_secs_f64(),
    );
    for (mode, runs) in modes {
        writeln!(summary, "  {mode:<60} {runs:>5}").unwrap();
    }
    print!("{summary}");
    if only.is_empty() {
        let path = summary_path();
        if let Err(e) = std::fs::write(&path, &summary) {
            println!("cannot write {}: {e}", path.display());
        }
    }
    assert_eq!(passed.len(), runs.len());
}

/// The first crash of the recovery sweep before the commit point: the
/// deepest point of the window. (Past the commit point, every point is one.)
const BEFORE_COMMIT: &str = "after:health_check";

/// `combinations-summary.txt` in cargo's target directory: `CARGO_TARGET_DIR`
/// when it is set and absolute, else the nearest ancestor of this test binary
/// (`<target>/debug/deps/combinations-<hash>`) that cargo marked with
/// `CACHEDIR.TAG`, else three levels up.
fn summary_path() -> PathBuf {
    const NAME: &str = "combinations-summary.txt";
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir.join(NAME);
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .or_else(|| exe.ancestors().nth(3))
        .unwrap();
    target.join(NAME)
}
