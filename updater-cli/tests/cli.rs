//! The `updater` binary, run as a process against a demo application and a
//! release server on 127.0.0.1: every command, its `--json` shape, exit
//! codes, configuration errors, an end-to-end update and a failed one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::Run;

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| (*s).to_string()).collect();
    names.sort();
    names
}

// ------------------------------------------------------------------ help

#[test]
fn help_documents_the_exit_codes_and_every_subcommand_has_help() {
    let f = support::fixture();
    let help = f.run(&["--help"]);
    assert_eq!(help.code, 0);
    for text in [
        "Exit codes:",
        "3  `updater check` found an update",
        "UPDATE_CHECK_URL",
    ] {
        assert!(
            help.stdout.contains(text),
            "{text} missing from:\n{}",
            help.stdout
        );
    }
    for sub in [
        vec!["check"],
        vec!["apply"],
        vec!["rollback"],
        vec!["recover"],
        vec!["status"],
        vec!["history"],
        vec!["backup", "create"],
        vec!["backup", "list"],
        vec!["backup", "restore"],
        vec!["backup", "cleanup"],
        vec!["notifications"],
        vec!["unlock"],
        vec!["schedule"],
        vec!["config", "check"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let run = f.run(&args);
        assert_eq!(run.code, 0, "{sub:?}: {}", run.stderr);
        assert!(run.stdout.contains("--json"), "{sub:?} help lacks --json");
        assert!(run.stdout.lines().count() > 5, "{sub:?} help is too short");
    }
}

#[test]
fn bad_usage_exits_2() {
    let f = support::fixture();
    assert_eq!(f.run(&["frobnicate"]).code, 2);
    assert_eq!(f.run(&["unlock"]).code, 2, "unlock needs --force");
    assert_eq!(
        f.run(&["notifications", "--mark-read", "1", "--dismiss", "2"])
            .code,
        2
    );
    assert_eq!(f.run(&["history", "--limit", "many"]).code, 2);
}

// ---------------------------------------------------------------- config

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let f = support::fixture();
    f.write_config("");
    let run = Run::from(
        f.command()
            .args(["--json", "config", "check"])
            .env("UPDATE_SERVER_TOKEN", "tok-very-secret")
            .env("BACKUP_RETENTION", "5")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("tok-very-secret"));
    let json = run.json();
    assert_eq!(
        keys(&json),
        sorted(&["file", "valid", "overridden_by", "config"])
    );
    assert_eq!(json["valid"], true);
    assert_eq!(json["config"]["source"]["token"], "***");
    assert_eq!(json["config"]["backup"]["retention"], 5);
    assert_eq!(
        json["overridden_by"],
        serde_json::json!(["UPDATE_SERVER_TOKEN", "BACKUP_RETENTION"])
    );

    let text = f.run(&["config", "check"]);
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("is valid"), "{}", text.stdout);
    assert!(text.stdout.contains("[health]"), "{}", text.stdout);
}

#[test]
fn an_unknown_key_is_an_error_naming_the_file_line_and_key() {
    let f = support::fixture();
    f.write_config("[history]\ndatabase_url = \"x.sqlite\"\ntable_prefx = \"u_\"\n");
    let line = std::fs::read_to_string(f.config_path())
        .unwrap()
        .lines()
        .position(|l| l.starts_with("table_prefx"))
        .unwrap()
        + 1;
    let run = f.run(&["config", "check"]);
    assert_eq!(run.code, 2);
    let expected =
        format!("updater.toml:{line}:1: key `history.table_prefx`: unknown field `table_prefx`");
    assert!(
        run.stderr.contains(&expected),
        "{expected}\nnot in\n{}",
        run.stderr
    );

    let (json, code) = f.json(&["status"]);
    assert_eq!(code, 2);
    assert_eq!(json["error"]["kind"], "config_syntax");
    assert_eq!(json["error"]["exit_code"], 2);
}

#[test]
fn a_bad_value_is_an_error_naming_the_key() {
    let f = support::fixture();
    f.write_config("[schedule]\ninterval_hours = \"daily\"\n");
    let run = f.run(&["config", "check"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("key `schedule.interval_hours`"),
        "{}",
        run.stderr
    );

    f.write_config("[maintenance]\nenable = \"php artisan down\"\n");
    let run = f.run(&["config", "check"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("key `maintenance.enable`: enable and disable commands go together"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_environment_variable_is_an_error_naming_it() {
    let f = support::fixture();
    for (name, value) in [
        ("UPDATE_CHECK_INTERVAL", "soon"),
        ("ALLOW_DOWNGRADE", "perhaps"),
        ("UPDATE_CHANNEL", "nightly"),
        ("ROLLBACK_TIMEOUT", "-1"),
    ] {
        let run = Run::from(
            f.command()
                .args(["check"])
                .env(name, value)
                .output()
                .unwrap(),
        );
        assert_eq!(run.code, 2, "{name}");
        assert!(
            run.stderr
                .contains(&format!("environment variable {name}:")),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_missing_config_file_exits_2() {
    let f = support::fixture();
    let run = Run::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_updater"))
            .args(["--config", "nowhere.toml", "status"])
            .current_dir(f.dir.path())
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("nowhere.toml"), "{}", run.stderr);
}

#[test]
fn the_config_path_comes_from_updater_config_or_the_current_directory() {
    let f = support::fixture();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_updater"));
    command
        .args(["config", "check"])
        .current_dir(f.dir.path())
        .env_remove("UPDATER_CONFIG");
    assert_eq!(
        Run::from(command.output().unwrap()).code,
        0,
        "./updater.toml"
    );
    let other = f.dir.path().join("elsewhere.toml");
    std::fs::rename(f.config_path(), &other).unwrap();
    assert_eq!(Run::from(command.output().unwrap()).code, 2);
    command.env("UPDATER_CONFIG", &other);
    assert_eq!(
        Run::from(command.output().unwrap()).code,
        0,
        "UPDATER_CONFIG"
    );
}

// ----------------------------------------------------------------- check

#[test]
fn check_exits_3_when_an_update_is_available_and_0_when_up_to_date() {
    let f = support::fixture();
    let (json, code) = f.json(&["check"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        keys(&json),
        sorted(&[
            "current",
            "latest",
            "update_available",
            "update_type",
            "from_cache",
            "changelog",
            "download_size",
            "published_at"
        ])
    );
    assert_eq!(json["update_available"], false);
    assert_eq!(json["latest"], "1.0.0", "the running release is the newest");
    assert_eq!(json["update_available"], false);

    f.server.publish("1.1.0", true);
    let (json, code) = f.json(&["check", "--force"]);
    assert_eq!(code, 3);
    assert_eq!(json["current"], "1.0.0");
    assert_eq!(json["latest"], "1.1.0");
    assert_eq!(json["update_type"], "minor");
    assert_eq!(json["from_cache"], false);

    let cached = f.run(&["check"]);
    assert_eq!(cached.code, 3);
    assert!(
        cached.stdout.contains("Update available: 1.0.0 -> 1.1.0"),
        "{}",
        cached.stdout
    );
}

#[test]
fn check_fails_with_exit_1_when_the_server_is_unreachable() {
    let f = support::fixture();
    let run = Run::from(
        f.command()
            .args(["--json", "check", "--force"])
            .env("UPDATE_CHECK_URL", "http://127.0.0.1:9/manifest.json")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        keys(&run.json()["error"]),
        sorted(&["kind", "message", "exit_code"])
    );
}

// ---------------------------------------------------------- end to end

#[test]
fn apply_installs_the_update_and_history_shows_it() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);

    let refused = f.run(&["apply"]);
    assert_eq!(refused.code, 2, "no terminal and no --yes");
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(f.app_version(), "1.0.0");

    let (json, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        keys(&json),
        sorted(&[
            "outcome",
            "from",
            "to",
            "update_id",
            "update_type",
            "maintenance_window_ms",
            "backup_id",
            "carried",
            "saved_aside"
        ])
    );
    assert_eq!(json["outcome"], "updated");
    assert_eq!(json["carried"], serde_json::json!([]), "nothing to carry");
    assert_eq!(json["saved_aside"], serde_json::json!([]));
    assert_eq!(json["from"], "1.0.0");
    assert_eq!(json["to"], "1.1.0");
    assert!(
        json["backup_id"].is_string(),
        "a backup is taken before the update"
    );
    assert_eq!(f.app_version(), "1.1.0");
    assert_eq!(
        std::fs::read_to_string(f.app().join("public/index.html")).unwrap(),
        "<h1>release 1.1.0</h1>"
    );
    assert_eq!(
        std::fs::read_to_string(f.app().join(".env")).unwrap(),
        "APP_KEY=kept"
    );
    assert!(f.app().join(".updater/history.sqlite").exists());

    let (again, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 0);
    assert_eq!(again["outcome"], "up_to_date");

    let (history, code) = f.json(&["history"]);
    assert_eq!(code, 0);
    let updates = history["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["status"], "completed");
    assert_eq!(updates[0]["version"], "1.1.0");
    assert_eq!(updates[0]["previous_version"], "1.0.0");
    assert_eq!(
        updates[0]["initiated_by"],
        updater_core::pipeline::os_user(),
        "the operating system's user who ran it"
    );
    assert!(updates[0]["steps"].as_array().unwrap().len() > 3);
    let text = f.run(&["history"]);
    assert!(
        text.stdout.contains("1.0.0 -> 1.1.0  completed"),
        "{}",
        text.stdout
    );

    let (status, code) = f.json(&["status"]);
    assert_eq!(code, 0);
    assert_eq!(
        keys(&status),
        sorted(&[
            "auto_update",
            "current",
            "files_known",
            "highest",
            "kept",
            "transition",
            "lock_holder",
            "notification_channels",
            "maintenance",
            "paused",
            "probation",
            "scheduled",
            "latest_check"
        ])
    );
    assert_eq!(status["current"], "1.1.0");
    assert_eq!(status["kept"], serde_json::json!(["1.0.0"]));
    assert_eq!(status["maintenance"], Value::Null);

    let (rollback, code) = f.json(&["rollback", "--yes"]);
    assert_eq!(code, 0, "{rollback}");
    assert_eq!(rollback["from"], "1.1.0");
    assert_eq!(rollback["to"], "1.0.0");
    assert_eq!(f.app_version(), "1.0.0");
    assert_eq!(
        std::fs::read_to_string(f.app().join(".env")).unwrap(),
        "APP_KEY=kept"
    );

    let (history, _) = f.json(&["history", "--limit", "1"]);
    assert_eq!(history["updates"].as_array().unwrap().len(), 1);
    assert_eq!(
        history["updates"][0]["version"], "1.0.0",
        "newest first: the rollback"
    );
    let (history, _) = f.json(&["history", "--limit", "5", "--offset", "1"]);
    assert_eq!(history["updates"][0]["version"], "1.1.0");
}

#[test]
fn a_failing_health_check_rolls_the_update_back_and_history_records_it() {
    let f = support::fixture();
    f.server.publish("1.1.0", false);
    let (json, code) = f.json(&["apply", "--yes", "--no-backup"]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["error"]["kind"], "rolled_back");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("health"), "{message}");
    assert_eq!(f.app_version(), "1.0.0");
    assert_eq!(
        std::fs::read_to_string(f.app().join("public/index.html")).unwrap(),
        "<h1>release 1.0.0</h1>"
    );
    assert_eq!(
        std::fs::read_to_string(f.app().join(".env")).unwrap(),
        "APP_KEY=kept"
    );

    let (history, _) = f.json(&["history"]);
    let update = &history["updates"][0];
    assert_eq!(update["version"], "1.1.0");
    assert_eq!(update["status"], "rolled_back");
    assert!(update["error_message"].as_str().unwrap().contains("health"));
    let (status, _) = f.json(&["status"]);
    assert_eq!(status["current"], "1.0.0");
    assert_eq!(
        status["maintenance"],
        Value::Null,
        "maintenance is off again"
    );

    let (notifications, code) = f.json(&["notifications"]);
    assert_eq!(code, 0);
    let types: Vec<&str> = notifications["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(
        types
            .iter()
            .any(|t| t.contains("roll") || t.contains("fail")),
        "{types:?}"
    );
}

// --------------------------------------------------------------- backups

#[test]
fn backups_are_created_listed_restored_and_cleaned_up() {
    let f = support::fixture();
    let (created, code) = f.json(&["backup", "create", "--description", "first"]);
    assert_eq!(code, 0, "{created}");
    let backup = &created["backup"];
    assert_eq!(
        keys(backup),
        sorted(&[
            "id",
            "version",
            "kind",
            "size",
            "created_at",
            "description",
            "restorable",
            "update_id",
            "expires_at",
            "status"
        ])
    );
    assert_eq!(backup["description"], "first");
    assert_eq!(backup["restorable"], true);
    let first = backup["id"].as_str().unwrap().to_string();

    std::fs::write(f.app().join("public/index.html"), "broken by hand").unwrap();
    let refused = f.run(&["backup", "restore", &first]);
    assert_eq!(refused.code, 2, "no terminal and no --yes");
    let (restored, code) = f.json(&["backup", "restore", &first, "--yes"]);
    assert_eq!(code, 0, "{restored}");
    assert_eq!(restored["restored"], first.as_str());
    assert_eq!(
        std::fs::read_to_string(f.app().join("public/index.html")).unwrap(),
        "<h1>release 1.0.0</h1>"
    );
    let missing = f.json(&["backup", "restore", "no-such-backup", "--yes"]);
    assert_eq!(missing.1, 1);

    for n in 2..=4 {
        std::thread::sleep(Duration::from_millis(20));
        let (_, code) = f.json(&["backup", "create", "--description", &format!("number {n}")]);
        assert_eq!(code, 0);
    }
    let (list, code) = f.json(&["backup", "list"]);
    assert_eq!(code, 0);
    let ids: Vec<String> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], first, "oldest first");

    let (cleanup, code) = f.json(&["backup", "cleanup", "--keep", "1"]);
    assert_eq!(code, 0, "{cleanup}");
    assert_eq!(
        keys(&cleanup),
        sorted(&["deleted", "kept", "removed_incomplete"])
    );
    assert_eq!(
        cleanup["kept"],
        serde_json::json!([ids[3]]),
        "the newest is kept"
    );
    assert_eq!(cleanup["deleted"].as_array().unwrap().len(), 3);
    let (list, _) = f.json(&["backup", "list"]);
    assert_eq!(list["backups"].as_array().unwrap().len(), 1);
}

// --------------------------------------------------------- notifications

#[test]
fn notifications_are_listed_per_admin_marked_read_and_dismissed() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    assert_eq!(f.run(&["check", "--force"]).code, 3);
    let (list, code) = f.json(&["notifications"]);
    assert_eq!(code, 0);
    let all = list["notifications"].as_array().unwrap();
    assert_eq!(all.len(), 2, "one per admin: {list}");
    assert_eq!(
        keys(&all[0]),
        sorted(&[
            "id",
            "type",
            "version",
            "message",
            "user",
            "read",
            "dismissed",
            "read_at",
            "metadata",
            "created_at"
        ])
    );
    assert_eq!(all[0]["version"], "1.1.0");
    let (alice, _) = f.json(&["notifications", "--user", "alice"]);
    assert_eq!(alice["notifications"].as_array().unwrap().len(), 1);

    let first = all[0]["id"].as_i64().unwrap().to_string();
    let second = all[1]["id"].as_i64().unwrap().to_string();
    let (changed, code) = f.json(&["notifications", "--mark-read", &first]);
    assert_eq!(code, 0);
    assert_eq!(changed["changed"][0].to_string(), first);
    let (unread, _) = f.json(&["notifications"]);
    assert_eq!(unread["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(f.json(&["notifications", "--dismiss", &second]).1, 0);
    let (unread, _) = f.json(&["notifications"]);
    assert!(unread["notifications"].as_array().unwrap().is_empty());
    let (everything, _) = f.json(&["notifications", "--all"]);
    assert_eq!(everything["notifications"].as_array().unwrap().len(), 2);
}

// ------------------------------------------------- recover, unlock, schedule

#[test]
fn recover_reports_what_it_did() {
    let f = support::fixture();
    let (json, code) = f.json(&["recover"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        keys(&json),
        sorted(&[
            "action",
            "running",
            "abandoned",
            "version",
            "lock_holder",
            "leftover_maintenance",
            "stale_lock",
            "stopped_children",
            "probation"
        ])
    );
    assert_eq!(json["action"], "nothing");
    assert_eq!(json["probation"]["state"], "none");
    let (json, code) = f.json(&["recover", "--retry"]);
    assert_eq!(code, 0, "{json}");
}

#[test]
fn a_leftover_maintenance_flag_is_cleared_before_the_next_command() {
    let f = support::fixture();
    assert_eq!(f.run(&["status"]).code, 0);
    std::fs::create_dir_all(f.app().join(".updater")).unwrap();
    let flag = f.app().join(".updater/maintenance.json");
    let notice =
        updater_core::maintenance::MaintenanceNotice::new("crashed", Duration::from_secs(60))
            .unwrap();
    std::fs::write(&flag, serde_json::to_vec(&notice).unwrap()).unwrap();
    let run = f.run(&["status"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr.contains("cleared a maintenance flag"),
        "{}",
        run.stderr
    );
    assert!(!flag.exists());
}

#[test]
fn unlock_force_clears_a_lock_and_says_whose_it_was() {
    let f = support::fixture();
    let (json, code) = f.json(&["unlock", "--force"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(keys(&json), sorted(&["cleared", "holder"]));
    assert_eq!(json["cleared"], false);

    // A live holder: refused, and the lock stays.
    std::fs::create_dir_all(f.app().join(".updater")).unwrap();
    let lock_file = f.app().join(".updater/lock");
    std::fs::write(
        &lock_file,
        r#"{"owner":"test holder","pid":1,"host":"elsewhere","since":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    // Another process holds the OS lock (util-linux `flock`).
    let mut held = std::process::Command::new("flock")
        .arg("--no-fork")
        .arg(&lock_file)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let busy = f.json(&["backup", "create"]);
    assert_eq!(busy.1, 1);
    assert_eq!(busy.0["error"]["kind"], "locked");
    let (refused, code) = f.json(&["unlock", "--force"]);
    assert_eq!(code, 1, "{refused}");
    assert_eq!(refused["error"]["kind"], "locked");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("test holder"),
        "{refused}"
    );
    held.kill().unwrap();
    held.wait().unwrap();

    // A record left by a dead process: cleared and named.
    let record = updater_core::LockRecord {
        owner: "crashed apply".into(),
        pid: 4_000_000,
        host: "localhost".into(),
        since: chrono::Utc::now(),
    };
    std::fs::write(&lock_file, serde_json::to_vec(&record).unwrap()).unwrap();
    let (json, code) = f.json(&["unlock", "--force"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["cleared"], true);
    assert_eq!(json["holder"]["owner"], "crashed apply");
}

#[test]
fn schedule_once_checks_and_cleans_up() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    let (json, code) = f.json(&["schedule", "--once"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        keys(&json),
        sorted(&[
            "automation",
            "check",
            "cleanup",
            "backup_health",
            "notifications"
        ])
    );
    assert_eq!(
        keys(&json["automation"]),
        sorted(&["automatic", "paused", "probation", "scheduled"])
    );
    assert_eq!(json["check"]["latest"], "1.1.0");
    assert_eq!(
        keys(&json["cleanup"]),
        sorted(&["deleted", "kept", "removed_incomplete"])
    );

    let off = Run::from(
        f.command()
            .args(["--json", "schedule", "--once"])
            .env("AUTO_CHECK_UPDATES", "false")
            .output()
            .unwrap(),
    );
    assert_eq!(off.code, 0);
    assert_eq!(off.json()["check"], Value::Null);
}

#[test]
fn schedule_stops_cleanly_on_sigterm() {
    let f = support::fixture();
    let mut child = f
        .command()
        .args(["schedule"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Give it time to start its first round, then ask it to stop.
    std::thread::sleep(Duration::from_millis(700));
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "schedule did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn with_a_sqlite_database_backups_hold_files_and_database_and_updates_snapshot_it() {
    let f = support::fixture();
    std::fs::create_dir_all(f.app().join("data")).unwrap();
    let database = f.app().join("data/app.sqlite");
    {
        // Any real SQLite database will do: the history store makes one.
        updater_store_diesel::DieselHistoryStore::open(database.display().to_string()).unwrap();
    }
    f.write_config("[backup.database]\nkind = \"sqlite\"\npath = \"data/app.sqlite\"\n");
    let (created, code) = f.json(&["backup", "create"]);
    assert_eq!(code, 0, "{created}");
    assert_eq!(created["backup"]["kind"], "full");
    let id = created["backup"]["id"].as_str().unwrap().to_string();
    let (restored, code) = f.json(&["backup", "restore", &id, "--yes"]);
    assert_eq!(code, 0, "{restored}");
    assert!(database.exists());

    f.server.publish("1.1.0", true);
    let (applied, code) = f.json(&["apply", "--yes", "--no-backup"]);
    assert_eq!(code, 0, "{applied}");
    let (history, _) = f.json(&["history"]);
    let steps: Vec<&str> = history["updates"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(steps.iter().any(|s| s.contains("snapshot")), "{steps:?}");
    let (list, _) = f.json(&["backup", "list"]);
    let kinds: Vec<&str> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"database_only"),
        "the snapshot is in the catalog: {kinds:?}"
    );
}

/// Runs `check` and `status` with the history in a database server, under
/// a unique table prefix that is dropped afterwards.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn history_in_server(url: &str, port: u16) {
    use updater_testkit::services::{require_server, unique};
    if !require_server("the database server", &format!("127.0.0.1:{port}")) {
        return;
    }
    let prefix = format!("{}_", unique("cli"));
    let f = support::fixture();
    f.write_config(&format!(
        "[history]\ndatabase_url = \"{url}\"\ntable_prefix = \"{prefix}\"\n"
    ));
    f.server.publish("1.1.0", true);
    assert_eq!(f.run(&["check", "--force"]).code, 3);
    let (status, code) = f.json(&["status"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["latest_check"]["latest_version"], "1.1.0");
    assert!(!f.app().join(".updater/history.sqlite").exists());
    updater_store_diesel::DieselHistoryStore::builder(url)
        .with_table_prefix(prefix)
        .build()
        .unwrap()
        .drop_tables()
        .unwrap();
}

#[cfg(feature = "postgres")]
#[test]
fn history_can_live_in_postgresql() {
    history_in_server("postgres://postgres@127.0.0.1:5432/test", 5432);
}

#[cfg(feature = "mysql")]
#[test]
fn history_can_live_in_mysql() {
    history_in_server("mysql://root@127.0.0.1:3306/test", 3306);
}

#[test]
fn migrations_hooks_and_an_http_health_check_run_and_a_failing_url_rolls_back() {
    let f = support::fixture();
    let health = format!(
        "url = \"{}/healthz\"\nexpected_status = 200\ntimeout_secs = 2\ninterval_secs = 1",
        f.server.base
    );
    let extra = "[migrations]\nup = \"echo \\\"$UPDATER_TO_VERSION\\\" > migrated.txt\"\ndown = \"true\"\n\n[hooks]\nafter_swap = [\"echo swapped > hook.txt\"]\n";
    f.write_config_with_health(&health, extra);

    // /healthz answers 404: the update is rolled back.
    f.server.publish("1.1.0", true);
    let (json, code) = f.json(&["apply", "--yes", "--no-backup"]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["error"]["kind"], "rolled_back");
    assert_eq!(f.app_version(), "1.0.0");

    // Now it answers 200: migrations and hooks ran in the new release.
    f.server.serve("healthz", b"ok");
    let (json, code) = f.json(&["apply", "--yes", "--no-backup"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(f.app_version(), "1.1.0");
    assert_eq!(
        std::fs::read_to_string(f.app().join("migrated.txt"))
            .unwrap()
            .trim(),
        "1.1.0"
    );
    assert_eq!(
        std::fs::read_to_string(f.app().join("hook.txt"))
            .unwrap()
            .trim(),
        "swapped"
    );
}

#[test]
fn on_a_terminal_apply_asks_and_a_no_changes_nothing() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    // `script` gives the command a pseudo-terminal; the answer comes on its stdin.
    let line = format!(
        "'{}' --config '{}' apply",
        env!("CARGO_BIN_EXE_updater"),
        f.config_path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(f.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script`");
    {
        use std::io::Write;
        // The pseudo-terminal buffers the answer until the prompt reads it.
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"n\n").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Release 1.1.0.")
            && text.contains("Update the application from 1.0.0 to 1.1.0 ("),
        "the prompt names the version, its changelog and size: {text}"
    );
    assert!(text.contains("download)? [y/N]"), "{text}");
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("aborted"), "{text}");
    assert_eq!(f.app_version(), "1.0.0");
}

#[test]
fn config_check_builds_the_parts_and_blames_the_key_that_breaks_them() {
    let f = support::fixture();
    for (extra, key) in [
        (
            "[history]\ntable_prefix = \"Bad-Prefix\"\n",
            "history.table_prefix",
        ),
        (
            "[backup.database]\nkind = \"postgres\"\ndatabase = \"app\"\npassword_env = \"UPDATER_TEST_UNSET_PASSWORD\"\n",
            "backup.database",
        ),
        ("[backup]\nexclude = [\"logs/[\"]\n", "backup"),
    ] {
        f.write_config(extra);
        let run = f.run(&["config", "check"]);
        assert_eq!(run.code, 2, "{extra}");
        assert!(
            run.stderr.contains(&format!("key `{key}")),
            "{key} not in {}",
            run.stderr
        );
    }

    f.write_config("");
    let text = std::fs::read_to_string(f.config_path()).unwrap();
    std::fs::write(
        f.config_path(),
        text.replace("dir = \"app\"", "dir = \"missing\""),
    )
    .unwrap();
    let run = f.run(&["config", "check"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("updater.toml:4: key `app.dir`"),
        "{}",
        run.stderr
    );

    std::fs::write(
        f.config_path(),
        text.replace(
            &f.server.manifest_url(),
            "http://updates.example.com/manifest.json",
        ),
    )
    .unwrap();
    let run = f.run(&["config", "check"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("key `source`"), "{}", run.stderr);
}

#[test]
fn config_check_refuses_a_database_path_the_installed_release_ships() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    assert_eq!(f.json(&["apply", "--yes"]).1, 0);
    // The database file configured where the release has its own file.
    f.write_config("[backup.database]\nkind = \"sqlite\"\npath = \"public/index.html\"\n");
    let (json, code) = f.json(&["config", "check"]);
    assert_eq!(code, 2, "{json}");
    assert_eq!(json["error"]["kind"], "config_value");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("backup.database.path")
            && message.contains("the next update would replace it"),
        "{message}"
    );
    // A database in a path no release ships is application data: fine.
    f.write_config("[backup.database]\nkind = \"sqlite\"\npath = \"database/app.sqlite\"\n");
    assert_eq!(f.json(&["config", "check"]).1, 0);
}
