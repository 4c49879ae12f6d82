//! Guarantee 5 from outside: no write the application acknowledged is lost
//! when a failed update restores the database snapshot — as long as the
//! application lets the updater drain its requests.
//!
//! The application is a real process writing to a SQLite database inside the
//! app directory, as a web application would: for each request it marks
//! itself busy, checks the maintenance flag (refusing when on), works 30 ms
//! (1.5 s in the comparison without a drain), inserts and commits a row,
//! and only then acknowledges it (appends its name to a log). The update to
//! 1.0.2 migrates, then fails its health check, so the snapshot taken in the
//! window is restored. With `maintenance.drain_command`
//! waiting for the busy marker to go, every acknowledged row survives.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use updater_testkit::cli::Fixture;

const APP_PY: &str = r#"import os, sqlite3, sys, time
app, ack_path, stop, work = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
flag = os.path.join(app, "storage/framework/maintenance.json")
busy = os.path.join(app, "storage/framework/busy")
ack = open(ack_path, "a")
n = 0
while not os.path.exists(stop):
    # Busy first, then the maintenance check: the drain never misses a request.
    open(busy, "w").close()
    if os.path.exists(flag):
        os.remove(busy)
        time.sleep(0.002)
        continue
    try:
        time.sleep(work)  # the request's work before it writes
        db = sqlite3.connect(os.path.join(app, "database/app.sqlite"), timeout=10)
        db.execute("INSERT INTO items (name) VALUES (?)", ("req%d" % n,))
        db.commit()
        db.close()
    except Exception as error:
        os.remove(busy)
        time.sleep(0.01)
        continue
    os.remove(busy)
    ack.write("req%d\n" % n)
    ack.flush()
    n += 1
"#;

const CONFIG: &str = r#"
[maintenance]
flag_file = "storage/framework/maintenance.json"
DRAIN

[backup.database]
kind = "sqlite"
path = "database/app.sqlite"

[migrations]
up = "python3 -c \"import sqlite3; db = sqlite3.connect('database/app.sqlite'); db.execute('CREATE TABLE IF NOT EXISTS t_$(echo $UPDATER_TO_VERSION | tr . _) (x)'); db.commit()\""
"#;

fn python(args: &[&str]) -> String {
    let out = Command::new("python3").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rows(db: &Path) -> Vec<String> {
    python(&[
        "-c",
        "import sqlite3, sys; print('\\n'.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute('SELECT name FROM items')))",
        db.to_str().unwrap(),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

fn fixture(drain: bool) -> Option<Fixture> {
    if !updater_testkit::services::has_program("python3") {
        updater_testkit::services::unavailable("python3", "is not installed");
        return None;
    }
    let f = support::fixture();
    let app = f.app();
    std::fs::create_dir_all(app.join("database")).unwrap();
    std::fs::create_dir_all(app.join("storage/framework")).unwrap();
    python(&[
        "-c",
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)'); db.commit()",
        app.join("database/app.sqlite").to_str().unwrap(),
    ]);
    std::fs::write(f.dir.path().join("app.py"), APP_PY).unwrap();
    let drain = if drain {
        "drain_command = \"while [ -e storage/framework/busy ]; do sleep 0.002; done\""
    } else {
        ""
    };
    f.write_config(&CONFIG.replace("DRAIN", drain));
    // 1.0.1 is healthy, 1.0.2 fails its health check: its rollback restores the snapshot.
    f.server.publish("1.0.1", true);
    Some(f)
}

fn start_app(f: &Fixture, work: Duration) -> Child {
    Command::new("python3")
        .arg(f.dir.path().join("app.py"))
        .arg(f.app())
        .arg(f.dir.path().join("acks.log"))
        .arg(f.dir.path().join("stop"))
        .arg(work.as_secs_f64().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn acknowledged(f: &Fixture) -> Vec<String> {
    std::fs::read_to_string(f.dir.path().join("acks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// One failed update under load, each request working `work`:
/// (acknowledged rows lost, drain step in ms).
fn failed_update_under_load(drain: bool, work: Duration) -> Option<(Vec<String>, u64)> {
    let f = fixture(drain)?;
    let run = f.run(&["apply", "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    f.server.publish("1.0.2", false);
    let mut app = start_app(&f, work);
    while acknowledged(&f).len() < 5 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (failed, code) = f.json(&["apply", "--yes"]);
    std::fs::write(f.dir.path().join("stop"), "").unwrap();
    app.wait().unwrap();
    assert_ne!(code, 0, "the update of 1.0.2 must fail: {failed}");
    assert_eq!(f.app_version(), "1.0.1");
    let stored = rows(&f.app().join("database/app.sqlite"));
    let lost: Vec<String> = acknowledged(&f)
        .into_iter()
        .filter(|name| !stored.contains(name))
        .collect();
    let (history, _) = f.json(&["history"]);
    let drain_ms = history["updates"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "drain")
        .and_then(|s| {
            let started = chrono::DateTime::parse_from_rfc3339(s["started_at"].as_str()?).ok()?;
            let finished = chrono::DateTime::parse_from_rfc3339(s["finished_at"].as_str()?).ok()?;
            u64::try_from((finished - started).num_milliseconds()).ok()
        })
        .unwrap_or(0);
    Some((lost, drain_ms))
}

#[test]
fn with_a_drain_no_acknowledged_write_is_lost_when_a_failed_update_restores_the_snapshot() {
    let mut drains = Vec::new();
    for round in 0..5 {
        let Some((lost, drain_ms)) = failed_update_under_load(true, Duration::from_millis(30))
        else {
            return;
        };
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged rows lost despite the drain: {lost:?}"
        );
        drains.push(drain_ms);
    }
    drains.sort_unstable();
    println!(
        "drain step (window cost) over 5 failed updates under load: {drains:?} ms, median {} ms",
        drains[2]
    );
}

/// The comparison for the issue note: how many acknowledged rows a rollback
/// loses without the drain (timing-dependent, so not asserted).
#[test]
#[ignore = "a measurement, run by hand: cargo test -p updater-cli --test drain -- --ignored --nocapture"]
fn without_a_drain_acknowledged_writes_can_be_lost() {
    let mut lost_total = 0;
    for _ in 0..10 {
        let Some((lost, _)) = failed_update_under_load(false, Duration::from_millis(1500)) else {
            return;
        };
        lost_total += lost.len();
    }
    println!("without a drain: {lost_total} acknowledged rows lost over 10 failed updates");
}
