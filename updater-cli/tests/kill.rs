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
    support::assert_settled(f, what);
    assert_eq!(f.json(&["status"]).0["current"], version.as_str(), "{what}");
    version
}

fn kill_at(f: &Fixture, args: &[&str], after: Duration) -> bool {
    support::kill_after(f, args, after)
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

// ------------------------------------------------- the Laravel-like sweep

/// The layout of issue 10: a SQLite database inside the application
/// (`database/app.sqlite`, declared nowhere but in `[backup.database]`),
/// sessions under `storage/framework`, the maintenance flag there too, and a
/// migration that changes the schema slowly (so kills land inside it). After
/// every kill and `recover`: the tree is one release, the schema is that
/// release's, every row the application wrote is there, the flag is gone.
const LARAVEL_CONFIG: &str = r#"
[maintenance]
flag_file = "storage/framework/maintenance.json"

[backup.database]
kind = "sqlite"
path = "database/app.sqlite"

[migrations]
up = "python3 migrate.py"
"#;

/// Adds `schema(version)` row `$UPDATER_TO_VERSION`, committing in three
/// steps with pauses (a migration tool that is not one transaction).
const MIGRATE_PY: &str = r#"import os, sqlite3, time
db = sqlite3.connect("database/app.sqlite")
db.execute("CREATE TABLE IF NOT EXISTS schema (version TEXT)")
db.commit()
time.sleep(0.15)
db.execute("ALTER TABLE items ADD COLUMN note_" + os.environ["UPDATER_TO_VERSION"].replace(".", "_") + " TEXT")
db.commit()
time.sleep(0.15)
db.execute("DELETE FROM schema")
db.execute("INSERT INTO schema VALUES (?)", (os.environ["UPDATER_TO_VERSION"],))
db.commit()
"#;

fn sqlite(db: &Path, query: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); rows = db.execute(sys.argv[2]).fetchall(); db.commit(); print('|'.join(str(r) for r in rows))",
        )
        .arg(db)
        .arg(query)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn laravel_fixture() -> Option<Fixture> {
    if !updater_testkit::services::has_program("python3") {
        updater_testkit::services::unavailable("python3", "is not installed");
        return None;
    }
    let f = support::fixture();
    let app = f.app();
    for (path, bytes) in USER_DATA {
        let path = app.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::create_dir_all(app.join("database")).unwrap();
    std::fs::create_dir_all(app.join("storage/framework/sessions")).unwrap();
    std::fs::write(app.join("storage/framework/sessions/s1"), "session").unwrap();
    let db = app.join("database/app.sqlite");
    sqlite(
        &db,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
    );
    sqlite(&db, "INSERT INTO items (name) VALUES ('one'), ('two')");
    let release = |version: &str| -> Vec<(String, Vec<u8>)> {
        vec![
            ("VERSION".to_string(), version.as_bytes().to_vec()),
            (
                "public/index.html".to_string(),
                format!("<h1>release {version}</h1>").into_bytes(),
            ),
            ("health-ok".to_string(), b"ok".to_vec()),
            ("migrate.py".to_string(), MIGRATE_PY.as_bytes().to_vec()),
            // The release ships a `database/` directory of its own.
            ("database/.gitignore".to_string(), b"*.sqlite\n".to_vec()),
        ]
    };
    // The fixture's 1.0.0 was installed by hand; this app runs 1.0.1 (its
    // package is published, so the updater knows what it shipped).
    std::fs::remove_file(app.join("VERSION")).unwrap();
    for (path, bytes) in release("1.0.1") {
        std::fs::write(app.join(&path), bytes).unwrap();
    }
    f.server.publish_files("1.0.1", &release("1.0.1"));
    f.server.publish_files("1.0.2", &release("1.0.2"));
    f.write_config(LARAVEL_CONFIG);
    Some(f)
}

/// Checks one killed-then-recovered application; returns the version.
fn check_laravel(f: &Fixture, what: &str) -> String {
    let run = f.run(&["recover"]);
    assert_eq!(run.code, 0, "{what}: recover failed: {}", run.stderr);
    let app = f.app();
    let version = f.app_version();
    let db = app.join("database/app.sqlite");
    assert_eq!(
        sqlite(&db, "SELECT name FROM items ORDER BY id"),
        "('one',)|('two',)",
        "{what}: rows the application wrote were lost"
    );
    let schema_rows = sqlite(
        &db,
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema'",
    );
    let columns = sqlite(&db, "SELECT name FROM pragma_table_info('items')");
    match version.as_str() {
        "1.0.1" => {
            assert_eq!(
                schema_rows, "(0,)",
                "{what}: 1.0.1 runs on a migrated schema"
            );
            assert_eq!(
                columns, "('id',)|('name',)",
                "{what}: 1.0.1 runs on a migrated schema"
            );
        }
        "1.0.2" => {
            assert_eq!(
                sqlite(&db, "SELECT version FROM schema"),
                "('1.0.2',)",
                "{what}"
            );
            assert!(columns.contains("note_1_0_2"), "{what}: {columns}");
        }
        other => panic!("{what}: VERSION is {other:?}"),
    }
    for (path, bytes) in USER_DATA {
        assert_eq!(
            std::fs::read(app.join(path)).unwrap(),
            bytes,
            "{what}: {path}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(app.join("storage/framework/sessions/s1")).unwrap(),
        "session",
        "{what}: sessions lost"
    );
    assert!(
        !app.join("storage/framework/maintenance.json").exists(),
        "{what}: maintenance flag left on"
    );
    assert_eq!(
        std::fs::read_to_string(app.join("public/index.html")).unwrap(),
        format!("<h1>release {version}</h1>"),
        "{what}: a mixed tree"
    );
    support::assert_settled(f, what);
    version
}

/// `kills` SIGKILLs of `apply` spread over its duration; returns
/// (interrupted, outcomes per version).
fn laravel_sweep(kills: u32) -> Option<(u32, BTreeMap<String, u32>)> {
    let timing = laravel_fixture()?;
    let started = Instant::now();
    let run = timing.run(&["apply", "--yes"]);
    assert_eq!(run.code, 0, "uninterrupted apply failed: {}", run.stderr);
    let total = started.elapsed();
    check_laravel(&timing, "uninterrupted");
    assert_eq!(timing.app_version(), "1.0.2");

    let mut outcomes = BTreeMap::new();
    let mut interrupted = 0;
    for i in 0..kills {
        let f = laravel_fixture()?;
        // Deterministic, spread over 0..110 % of the run with a stride that
        // does not repeat the same offsets.
        let fraction = f64::from((i * 37) % kills) / f64::from(kills) * 1.1;
        let after = total.mul_f64(fraction);
        interrupted += u32::from(kill_at(&f, &["apply", "--yes"], after));
        let version = check_laravel(&f, &format!("kill {i} after {after:?}"));
        *outcomes.entry(version).or_insert(0) += 1;
    }
    println!(
        "laravel layout, apply {total:?}: {interrupted} of {kills} kills interrupted it; outcomes {outcomes:?}; 0 inconsistent"
    );
    Some((interrupted, outcomes))
}

#[test]
fn apply_killed_in_the_laravel_layout_never_mixes_code_schema_or_loses_rows() {
    let Some((interrupted, outcomes)) = laravel_sweep(16) else {
        return;
    };
    assert!(interrupted >= 8, "too few kills landed inside the run");
    assert!(
        outcomes.len() == 2,
        "kills must end on both sides: {outcomes:?}"
    );
}

/// The sweep of issue 10's note (500 kills, several minutes):
/// `cargo test -p updater-cli --test kill -- --ignored --nocapture`.
#[test]
#[ignore = "a long sweep, run by hand for the numbers"]
fn apply_killed_500_times_in_the_laravel_layout() {
    laravel_sweep(500);
}
