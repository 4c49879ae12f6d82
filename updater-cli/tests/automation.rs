//! Unattended updates through the `updater` binary: the pause switch shown
//! by `status`, one-off updates scheduled with `apply --at` that survive a
//! restart, automatic updates by policy, `preview` (and `apply` reusing its
//! verified download), `stats`, `[[preflight]]` and the printed systemd unit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};

#[test]
fn a_paused_server_applies_no_automatic_update_until_resumed() {
    let f = support::fixture();
    f.write_config("[auto_update]\nlevel = \"patch\"\n");
    f.server.publish("1.0.1", true);

    let (paused, code) = f.json(&["pause", "--reason", "black friday"]);
    assert_eq!(code, 0, "{paused}");
    assert_eq!(paused["paused"]["reason"], "black friday");
    let status = f.run(&["status"]);
    assert!(
        status.stdout.contains("PAUSED") && status.stdout.contains("black friday"),
        "{}",
        status.stdout
    );
    let (status, _) = f.json(&["status"]);
    assert_eq!(status["paused"]["reason"], "black friday");
    assert_eq!(status["auto_update"], "patch");

    let (round, code) = f.json(&["schedule", "--once"]);
    assert_eq!(code, 0, "{round}");
    assert_eq!(round["automation"]["paused"]["reason"], "black friday");
    assert_eq!(f.app_version(), "1.0.0", "a paused server updated itself");

    let (resumed, code) = f.json(&["resume"]);
    assert_eq!(code, 0);
    assert_eq!(resumed["resumed"], true);
    let (round, code) = f.json(&["schedule", "--once"]);
    assert_eq!(code, 0, "{round}");
    let message = round["automation"]["automatic"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("1.0.1"), "{message}");
    assert_eq!(f.app_version(), "1.0.1");
    let (history, _) = f.json(&["history"]);
    assert_eq!(history["updates"][0]["initiated_by"], "auto-update");
    assert_eq!(history["updates"][0]["auto_update"], true);
}

#[test]
fn a_minor_release_is_not_applied_by_a_patch_policy() {
    let f = support::fixture();
    f.write_config("[auto_update]\nlevel = \"patch\"\n");
    f.server.publish("1.1.0", true);
    let (round, code) = f.json(&["schedule", "--once"]);
    assert_eq!(code, 0, "{round}");
    let message = round["automation"]["automatic"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("not applied automatically"), "{message}");
    assert_eq!(f.app_version(), "1.0.0");
}

#[test]
fn an_update_scheduled_with_apply_at_survives_a_restart_and_runs_once_at_its_time() {
    let f = support::fixture();
    f.server.publish("1.0.1", true);
    f.server.publish("1.0.2", true);
    let at = Utc::now() + chrono::Duration::seconds(3);
    let at_text = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let (scheduled, code) = f.json(&["apply", "--at", &at_text, "--version", "1.0.1"]);
    assert_eq!(code, 0, "{scheduled}");
    let id = scheduled["scheduled"]["id"].as_i64().unwrap();
    assert_eq!(scheduled["scheduled"]["version"], "1.0.1");

    // Every command is a new process: the intent lives in the history database.
    let (list, _) = f.json(&["scheduled"]);
    assert_eq!(list["scheduled"][0]["id"], id);
    let status = f.run(&["status"]);
    assert!(
        status
            .stdout
            .contains(&format!("Scheduled:    #{id} 1.0.1")),
        "{}",
        status.stdout
    );

    // Before its time: nothing happens.
    let (round, _) = f.json(&["schedule", "--once"]);
    assert_eq!(round["automation"]["scheduled"], serde_json::json!([]));
    assert_eq!(f.app_version(), "1.0.0");

    while Utc::now() < at + chrono::Duration::milliseconds(100) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (round, code) = f.json(&["schedule", "--once"]);
    assert_eq!(code, 0, "{round}");
    assert_eq!(round["automation"]["scheduled"][0]["id"], id);
    assert_eq!(
        f.app_version(),
        "1.0.1",
        "the scheduled version, not the newest"
    );

    let (again, _) = f.json(&["schedule", "--once"]);
    assert_eq!(again["automation"]["scheduled"], serde_json::json!([]));
    let (all, _) = f.json(&["scheduled", "--all"]);
    assert_eq!(all["scheduled"][0]["status"], "done");
    assert_eq!(all["scheduled"][0]["attempts"], 1);
    assert!(all["scheduled"][0]["update_id"].as_i64().is_some());
    let (history, _) = f.json(&["history"]);
    assert_eq!(history["updates"].as_array().unwrap().len(), 1);
}

#[test]
fn a_cancelled_scheduled_update_never_runs() {
    let f = support::fixture();
    f.server.publish("1.0.1", true);
    let (scheduled, _) = f.json(&["apply", "--at", "2020-01-01T00:00:00Z"]);
    assert_eq!(scheduled["error"]["kind"], "invalid_input", "{scheduled}");

    let at = (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (scheduled, code) = f.json(&["apply", "--at", &at]);
    assert_eq!(code, 0, "{scheduled}");
    let id = scheduled["scheduled"]["id"].as_i64().unwrap().to_string();
    let (cancelled, code) = f.json(&["scheduled", "--cancel", &id]);
    assert_eq!(code, 0, "{cancelled}");
    assert_eq!(cancelled["cancelled"]["status"], "cancelled");
    let (twice, code) = f.json(&["scheduled", "--cancel", &id]);
    assert_ne!(code, 0, "{twice}");

    std::thread::sleep(Duration::from_millis(1200));
    let (round, _) = f.json(&["schedule", "--once"]);
    assert_eq!(round["automation"]["scheduled"], serde_json::json!([]));
    assert_eq!(f.app_version(), "1.0.0");
}

#[test]
fn a_time_without_offset_is_refused_with_the_expected_form() {
    let f = support::fixture();
    let run = f.run(&["apply", "--at", "tomorrow 2am"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("RFC 3339"), "{}", run.stderr);
}

#[test]
fn preview_lists_the_changes_and_apply_then_installs_the_verified_download() {
    let f = support::fixture();
    f.server.publish_files(
        "1.1.0",
        &[
            ("VERSION".to_string(), b"1.1.0".to_vec()),
            (
                "public/index.html".to_string(),
                b"<h1>release 1.1.0</h1>".to_vec(),
            ),
            ("public/new.css".to_string(), b"body{}".to_vec()),
            ("health-ok".to_string(), b"ok".to_vec()),
        ],
    );
    let (preview, code) = f.json(&["preview"]);
    assert_eq!(code, 0, "{preview}");
    assert_eq!(preview["current"], "1.0.0");
    assert_eq!(preview["target"], "1.1.0");
    assert_eq!(preview["added"], serde_json::json!(["public/new.css"]));
    let changed = preview["changed"].as_array().unwrap();
    assert!(changed.contains(&"public/index.html".into()), "{preview}");
    assert!(changed.contains(&"VERSION".into()), "{preview}");
    assert!(preview["download_size"].as_u64().unwrap() > 0);
    assert!(
        preview["changelog"][0][1]
            .as_str()
            .unwrap()
            .contains("1.1.0")
    );
    assert_eq!(f.app_version(), "1.0.0", "preview changed the application");
    let text = f.run(&["preview"]);
    assert!(text.stdout.contains("Added (1):"), "{}", text.stdout);

    // The server now serves something else under the same name: an apply
    // that downloaded again would fail its checksum.
    f.server
        .serve("app-1.1.0.tar.gz", b"not the package any more");
    let (applied, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 0, "{applied}");
    assert_eq!(f.app_version(), "1.1.0");
    assert!(f.app().join("public/new.css").exists());
}

#[test]
fn stats_report_attempts_outcomes_and_windows() {
    let f = support::fixture();
    f.server.publish("1.0.1", true);
    assert_eq!(f.run(&["apply", "--yes"]).code, 0);
    f.server.publish("1.0.2", false);
    assert_ne!(f.run(&["apply", "--yes"]).code, 0);

    let (stats, code) = f.json(&["stats"]);
    assert_eq!(code, 0, "{stats}");
    assert_eq!(stats["attempts"], 2);
    assert_eq!(stats["completed"], 1);
    assert_eq!(stats["rolled_back"], 1);
    assert_eq!(stats["success_rate"], 0.5);
    assert_eq!(stats["rollbacks_by_step"]["health_check"], 1);
    assert_eq!(stats["maintenance_window_ms"]["count"], 1);
    let text = f.run(&["stats", "--since", "1d"]);
    assert!(
        text.stdout.contains("Success rate: 50.0%"),
        "{}",
        text.stdout
    );
    let (future, _) = f.json(&["stats", "--since", "2999-01-01"]);
    assert_eq!(future["attempts"], 0);
    let bad = f.run(&["stats", "--since", "last week"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn every_failed_preflight_requirement_is_named_before_anything_changes() {
    let f = support::fixture();
    f.write_config(
        r#"
[[preflight]]
name = "php"
binary = "surely-not-a-program-on-path"

[[preflight]]
name = "disk tools"
command = "false"

[[preflight]]
name = "shell"
binary = "sh"
"#,
    );
    f.server.publish("1.0.1", true);
    let (failed, code) = f.json(&["apply", "--yes"]);
    assert_ne!(code, 0, "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("php") && message.contains("disk tools"),
        "{message}"
    );
    assert!(
        !message.contains("shell"),
        "a met requirement was listed: {message}"
    );
    assert_eq!(f.app_version(), "1.0.0");
}

#[test]
fn a_preflight_entry_with_two_kinds_is_a_config_error_naming_it() {
    let f = support::fixture();
    f.write_config("[[preflight]]\nname = \"x\"\nbinary = \"sh\"\ncommand = \"true\"\n");
    let run = f.run(&["config", "check"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("preflight[0]"), "{}", run.stderr);
}

#[test]
fn print_systemd_names_this_binary_and_configuration() {
    let f = support::fixture();
    let (unit, code) = f.json(&["schedule", "--print-systemd"]);
    assert_eq!(code, 0, "{unit}");
    let service = unit["systemd_service"].as_str().unwrap();
    let config = f.config_path().display().to_string();
    assert!(
        service.contains(&format!("--config {config} schedule")),
        "{service}"
    );
    assert!(service.contains("KillMode=mixed"), "{service}");
    let cron = unit["cron"].as_str().unwrap();
    assert!(cron.contains("schedule --once"), "{cron}");
    let timer_service = unit["timer_service"].as_str().unwrap();
    assert!(
        timer_service.contains(&format!("--config {config} schedule --once")),
        "{timer_service}"
    );
    assert!(timer_service.contains("Type=oneshot"), "{timer_service}");
    let timer = unit["timer"].as_str().unwrap();
    assert!(timer.contains("OnCalendar=*:0/5"), "{timer}");
    assert!(timer.contains("WantedBy=timers.target"), "{timer}");
    // The plain output: the service alone (fit for a .service file), or
    // with --timer the oneshot service and its timer.
    let plain = f.run(&["schedule", "--print-systemd"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(plain.stdout.contains("Type=simple"), "{}", plain.stdout);
    assert!(!plain.stdout.contains("[Timer]"), "{}", plain.stdout);
    let plain = f.run(&["schedule", "--print-systemd", "--timer"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(plain.stdout.contains("Type=oneshot"), "{}", plain.stdout);
    assert!(plain.stdout.contains("[Timer]"), "{}", plain.stdout);
    let refused = f.run(&["schedule", "--timer"]);
    assert_eq!(
        refused.code, 2,
        "--timer without --print-systemd: {}",
        refused.stderr
    );
    assert!(
        !f.app().join(".updater/history.sqlite").exists(),
        "printing a unit created the history"
    );
}

/// Waits up to `seconds` for `done`, checking every 200 ms.
fn wait_until(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done()
}

#[test]
fn a_release_that_goes_bad_after_the_scheduler_was_killed_is_rolled_back_by_the_next_round() {
    let f = support::fixture();
    f.write_config(
        "[auto_update]\nlevel = \"patch\"\nprobation_minutes = 120\n\n[schedule]\nround_secs = 1\n",
    );
    f.server.publish("1.0.1", true);

    // The long-running scheduler applies the patch release by itself...
    let mut scheduler = f
        .command()
        .arg("schedule")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let on_probation = wait_until(60, || {
        f.json(&["status"]).0["probation"]["version"] == "1.0.1"
    });
    // ...and is killed outright while the release is on probation.
    scheduler.kill().unwrap();
    scheduler.wait().unwrap();
    assert!(on_probation, "the scheduler never put 1.0.1 on probation");
    assert_eq!(f.app_version(), "1.0.1");

    // A healthy round keeps it; the release then goes bad (its health
    // check file disappears) long after the update.
    let (round, code) = f.json(&["schedule", "--once"]);
    assert_eq!(code, 0, "{round}");
    assert_eq!(
        round["automation"]["probation"]["state"], "healthy",
        "{round}"
    );
    assert_eq!(f.app_version(), "1.0.1");
    std::fs::remove_file(f.app().join("health-ok")).unwrap();

    // The next round, in a new process, rolls it back to the kept release.
    let (round, code) = f.json(&["schedule", "--once"]);
    assert_eq!(code, 0, "{round}");
    assert_eq!(
        round["automation"]["probation"]["state"], "rolled_back",
        "{round}"
    );
    assert_eq!(f.app_version(), "1.0.0");
    assert!(
        f.app().join("health-ok").exists(),
        "the kept release is whole"
    );
    let (history, _) = f.json(&["history"]);
    let update = history["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["version"] == "1.0.1")
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(update["status"], "rolled_back", "{update}");
    assert!(
        update["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("probation")),
        "{update}"
    );
    let (status, _) = f.json(&["status"]);
    assert!(status["probation"].is_null(), "{status}");
    // It is not installed again automatically by the following rounds
    // (before the fix, the same round re-installed it at once).
    let (round, _) = f.json(&["schedule", "--once"]);
    assert_eq!(f.app_version(), "1.0.0", "{round}");
    let said = round["automation"]["automatic"]["message"]
        .as_str()
        .unwrap();
    assert!(said.contains("not applied automatically again"), "{said}");
}

#[test]
fn serve_carries_out_automatic_updates_while_it_serves() {
    let f = support::fixture();
    let digest = updater_web::auth::ApiToken::digest("ci-token");
    f.write_config(&format!(
        "[auto_update]\nlevel = \"patch\"\n\n[schedule]\nround_secs = 1\n\n[web]\napi_tokens = [{{ name = \"ci\", sha256 = \"{digest}\" }}]\n"
    ));
    let served = f.serve(&[]);
    f.server.publish("1.0.1", true);
    let updated = wait_until(60, || f.app_version() == "1.0.1");
    let (code, _) = served.stop();
    assert!(updated, "serve never applied the automatic update");
    assert_eq!(code, 0);
    let (history, _) = f.json(&["history"]);
    assert_eq!(history["updates"][0]["initiated_by"], "auto-update");
}

#[test]
fn recover_at_boot_rolls_back_a_release_that_went_bad_on_probation() {
    let f = support::fixture();
    f.write_config("[auto_update]\nprobation_minutes = 120\n");
    f.server.publish("1.0.1", true);
    let (applied, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 0, "{applied}");
    let (status, _) = f.json(&["status"]);
    assert_eq!(status["probation"]["version"], "1.0.1", "{status}");

    // The machine goes down; the release is broken when it comes back.
    std::fs::remove_file(f.app().join("health-ok")).unwrap();
    let (recovered, code) = f.json(&["recover"]);
    assert_eq!(code, 0, "{recovered}");
    assert_eq!(
        recovered["probation"]["state"], "rolled_back",
        "{recovered}"
    );
    assert_eq!(f.app_version(), "1.0.0");
    let (recovered, _) = f.json(&["recover"]);
    assert_eq!(recovered["probation"]["state"], "none", "{recovered}");
}
