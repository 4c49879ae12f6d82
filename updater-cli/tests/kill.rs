//! The `updater` binary killed with SIGKILL at moments spread over an
//! `apply`, a `rollback` and a `backup restore`, then started again: the
//! application is always exactly one release (never a mix), with every
//! byte of its data — declared (`.env`) and undeclared (uploads and a
//! database file inside the application) — and maintenance mode off, the
//! lock free and no transition left behind. This is issue 10's guarantee
//! tested from outside, through the real process and its real files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use updater_testkit::cli::Fixture;

/// Kills per operation (spread evenly over the operation's measured duration).
const KILLS: u32 = 12;

/// The data of a realistic application: `.env` is declared preserved; the
/// uploads and the SQLite file inside the app are declared nowhere.
const USER_DATA: [(&str, &[u8]); 3] = [
    (".env", b"APP_KEY=kept"),
    (
        "public/uploads/2026/cat.jpg",
        b"\xff\xd8\xff\xe0 jpeg bytes",
    ),
    ("storage/app.sqlite", b"SQLite format 3\0 rows"),
];

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    updater_testkit::tree::files_skipping(root, &[".updater"])
}

fn release(version: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = [
        ("VERSION".to_string(), version.as_bytes().to_vec()),
        (
            "public/index.html".to_string(),
            format!("<h1>release {version}</h1>").into_bytes(),
        ),
        ("health-ok".to_string(), b"ok".to_vec()),
    ]
    .into();
    for (path, bytes) in USER_DATA {
        files.insert(path.to_string(), bytes.to_vec());
    }
    files
}

fn fixture() -> Fixture {
    let f = support::fixture();
    for (path, bytes) in USER_DATA {
        let path = f.app().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // A migration that takes a moment, so kills land inside the window too.
    f.write_config("[migrations]\nup = \"sleep 0.2\"\ndown = \"sleep 0.1\"\n");
    f.server.publish("1.0.1", true);
    f
}

fn spawn(f: &Fixture, args: &[&str]) -> Child {
    f.command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How long `args` takes uninterrupted (run once, in a scratch fixture
/// prepared by `prepare`).
fn duration_of(args: &[&str], prepare: impl Fn(&Fixture)) -> Duration {
    let f = fixture();
    prepare(&f);
    let started = Instant::now();
    let status = spawn(&f, args).wait().unwrap();
    assert!(status.success(), "{args:?} failed uninterrupted");
    started.elapsed()
}

/// Recovers after a kill and checks the invariants; returns the version running.
fn recover_and_check(f: &Fixture, what: &str) -> String {
    let run = f.run(&["recover"]);
    assert!(
        run.code == 0,
        "{what}: recover failed ({}): {}{}",
        run.code,
        run.stdout,
        run.stderr
    );
    let version = f.app_version();
    assert!(
        version == "1.0.0" || version == "1.0.1",
        "{what}: VERSION is {version:?}"
    );
    assert_eq!(
        tree(&f.app()),
        release(&version),
        "{what}: the tree is not exactly release {version} with its data"
    );
    let (status, _) = f.json(&["status"]);
    assert_eq!(
        status["transition"],
        serde_json::Value::Null,
        "{what}: {status}"
    );
    assert_eq!(
        status["lock_holder"],
        serde_json::Value::Null,
        "{what}: {status}"
    );
    assert_eq!(
        status["maintenance"],
        serde_json::Value::Null,
        "{what}: {status}"
    );
    assert_eq!(status["current"], version.as_str(), "{what}: {status}");
    version
}

fn kill_at(f: &Fixture, args: &[&str], after: Duration) -> bool {
    let mut child = spawn(f, args);
    std::thread::sleep(after);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    !finished
}

fn offsets(total: Duration) -> impl Iterator<Item = Duration> {
    // Process start-up is part of the run; spread over 5 %..105 % of it.
    (0..KILLS).map(move |i| total.mul_f64(0.05 + f64::from(i) / f64::from(KILLS)))
}

#[test]
fn apply_killed_at_any_moment_leaves_one_whole_release_with_all_data() {
    let total = duration_of(&["apply", "--yes"], |_| {});
    let mut outcomes = BTreeMap::<String, u32>::new();
    let mut interrupted = 0;
    for (i, after) in offsets(total).enumerate() {
        let f = fixture();
        interrupted += u32::from(kill_at(&f, &["apply", "--yes"], after));
        let what = format!("apply killed after {after:?} (kill {i})");
        let version = recover_and_check(&f, &what);
        *outcomes.entry(version.clone()).or_default() += 1;
        if version == "1.0.0" {
            // The next attempt succeeds from wherever the kill left it.
            let run = f.run(&["apply", "--yes"]);
            assert_eq!(run.code, 0, "{what}: the retry failed: {}", run.stderr);
            assert_eq!(tree(&f.app()), release("1.0.1"), "{what}: after the retry");
        }
    }
    println!(
        "apply ({total:?}): {interrupted} of {KILLS} kills interrupted it; outcomes {outcomes:?}"
    );
    assert!(
        interrupted >= KILLS / 2,
        "most kills must land inside the run"
    );
}

#[test]
fn rollback_killed_at_any_moment_leaves_one_whole_release_with_all_data() {
    let updated = |f: &Fixture| {
        assert_eq!(f.run(&["apply", "--yes"]).code, 0);
    };
    let total = duration_of(&["rollback", "--yes"], updated);
    let mut interrupted = 0;
    for (i, after) in offsets(total).enumerate() {
        let f = fixture();
        updated(&f);
        interrupted += u32::from(kill_at(&f, &["rollback", "--yes"], after));
        recover_and_check(&f, &format!("rollback killed after {after:?} (kill {i})"));
    }
    println!("rollback ({total:?}): {interrupted} of {KILLS} kills interrupted it");
    assert!(interrupted >= KILLS / 2);
}

#[test]
fn backup_restore_killed_at_any_moment_leaves_one_whole_release_with_all_data() {
    // A backup of 1.0.0, then the update; the restore goes back to 1.0.0's files.
    let prepare = |f: &Fixture| -> String {
        let (backup, code) = f.json(&["backup", "create"]);
        assert_eq!(code, 0, "{backup}");
        assert_eq!(f.run(&["apply", "--yes", "--no-backup"]).code, 0);
        backup["backup"]["id"].as_str().unwrap().to_string()
    };
    let scratch = fixture();
    let id = prepare(&scratch);
    let started = Instant::now();
    let run = scratch.run(&["backup", "restore", &id, "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let total = started.elapsed();
    let mut interrupted = 0;
    for (i, after) in offsets(total).enumerate() {
        let f = fixture();
        let id = prepare(&f);
        interrupted += u32::from(kill_at(&f, &["backup", "restore", &id, "--yes"], after));
        recover_and_check(
            &f,
            &format!("backup restore killed after {after:?} (kill {i})"),
        );
    }
    println!("backup restore ({total:?}): {interrupted} of {KILLS} kills interrupted it");
    assert!(interrupted >= KILLS / 2);
}
