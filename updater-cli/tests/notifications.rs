//! Notifications through the `updater` binary: channels configured in
//! `updater.toml` (a webhook receiver and an SMTP server on 127.0.0.1),
//! `notifications test`, a rolled-back update told once per channel,
//! notices that wait while a channel is down and go out with the next
//! command, `status` showing a failing channel, and secrets kept out of
//! `config check`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::Run;
use updater_testkit::mail::SmtpReceiver;
use updater_testkit::webhook::{Plan, WebhookReceiver};

const SECRET: &str = "whsec-test-0123456789";

fn channels(hook: &WebhookReceiver, smtp: &SmtpReceiver, extra: &str) -> String {
    format!(
        r#"app_name = "demo"
console_url = "https://demo.example.com/admin/updates"
delivery_wait_secs = 10
retry_first_delay_secs = 1
retry_max_delay_secs = 2
{extra}
[notifications.emails]
alice = "alice@example.com"

[[notifications.channels]]
name = "ops-hook"
kind = "webhook"
url_env = "TEST_HOOK_URL"
secret_env = "TEST_HOOK_SECRET"
events = ["problems", "update_completed"]

[[notifications.channels]]
name = "ops-mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
security = "none"
from = "Updater <updater@example.com>"
to = ["alice", "ops@example.com"]
events = ["problems"]
"#,
        port = smtp.port()
    )
    .replace("TEST_HOOK_URL_VALUE", &hook.url())
}

fn run(f: &support::Fixture, hook: &WebhookReceiver, args: &[&str]) -> Run {
    Run::from(
        f.command()
            .args(args)
            .env("TEST_HOOK_URL", hook.url())
            .env("TEST_HOOK_SECRET", SECRET)
            .output()
            .unwrap(),
    )
}

fn json(f: &support::Fixture, hook: &WebhookReceiver, args: &[&str]) -> (Value, i32) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let r = run(f, hook, &all);
    (r.json(), r.code)
}

#[test]
fn notifications_test_reports_each_channels_answer() {
    let f = support::fixture();
    let (hook, smtp) = (WebhookReceiver::start(Some(SECRET)), SmtpReceiver::start());
    f.write_config(&channels(&hook, &smtp, ""));
    let (out, code) = json(&f, &hook, &["notifications", "test"]);
    assert_eq!(code, 0, "{out}");
    let results = out["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["channel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["database", "ops-hook", "ops-mail"]);
    assert!(results.iter().all(|r| r["ok"] == true), "{out}");
    assert!(
        results[1]["answer"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 200")
    );
    assert!(results[2]["answer"].as_str().unwrap().starts_with("250"));
    assert_eq!(hook.accepted().len(), 1);
    let mail = &smtp.mails()[0];
    assert_eq!(mail.subject(), "[demo] Test notification");
    assert_eq!(mail.to, ["alice@example.com", "ops@example.com"]);

    let (one, code) = json(&f, &hook, &["notifications", "test", "ops-hook"]);
    assert_eq!(
        (code, one["results"].as_array().unwrap().len()),
        (0, 1),
        "{one}"
    );
    let unknown = run(&f, &hook, &["notifications", "test", "pager"]);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("pager"), "{}", unknown.stderr);
}

#[test]
fn a_rolled_back_update_is_mailed_and_posted_once_with_what_to_do() {
    let f = support::fixture();
    let (hook, smtp) = (WebhookReceiver::start(Some(SECRET)), SmtpReceiver::start());
    f.write_config(&channels(&hook, &smtp, ""));
    f.server.publish("1.1.0", false);
    let (out, code) = json(&f, &hook, &["apply", "--yes", "--no-backup"]);
    assert_eq!(code, 1, "{out}");
    let hooks = hook.wait_for(1, Duration::from_secs(5));
    assert_eq!(hooks.len(), 1, "only the rollback is routed to the webhook");
    assert_eq!(hooks[0].body["type"], "update_rolled_back");
    assert_eq!(hooks[0].body["schema"], "updater.notification/1");
    assert_eq!(hooks[0].body["details"]["from"], "1.0.0");
    assert_eq!(hooks[0].body["details"]["status"], "rolled_back");
    assert!(hook.refused().is_empty() && hook.duplicates().is_empty());
    let mails = smtp.wait_for(1, Duration::from_secs(5));
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject(),
        "[demo] Update to 1.1.0 failed and was rolled back"
    );
    let text = mails[0].text().unwrap();
    assert!(text.contains("What to do:"), "{text}");
    assert!(
        text.contains("https://demo.example.com/admin/updates"),
        "{text}"
    );
    // The next commands send nothing again.
    run(&f, &hook, &["status"]);
    assert_eq!((hook.requests(), smtp.mails().len()), (1, 1));
    let (notes, _) = json(&f, &hook, &["notifications"]);
    assert!(
        notes["notifications"].as_array().unwrap().len() >= 2,
        "{notes}"
    );
}

#[test]
fn a_notice_that_failed_is_shown_by_status_and_delivered_by_the_next_command() {
    let f = support::fixture();
    let (hook, smtp) = (WebhookReceiver::start(Some(SECRET)), SmtpReceiver::start());
    f.write_config(
        &channels(&hook, &smtp, "").replace("delivery_wait_secs = 10", "delivery_wait_secs = 3"),
    );
    hook.plan([
        Plan::Status(500),
        Plan::Status(500),
        Plan::Status(500),
        Plan::Status(500),
    ]);
    f.server.publish("1.1.0", false);
    let (_, code) = json(&f, &hook, &["apply", "--yes", "--no-backup"]);
    assert_eq!(code, 1);
    assert!(hook.accepted().is_empty(), "the receiver answered 500");
    let (status, code) = json(&f, &hook, &["status"]);
    assert_eq!(code, 0);
    let channels = status["notification_channels"].as_array().unwrap();
    let failing = channels.iter().find(|c| c["channel"] == "ops-hook");
    assert!(
        failing.is_some_and(|c| c["pending"] == 1 || hook.accepted().len() == 1),
        "{status}"
    );
    if let Some(c) = failing {
        assert!(c["last_error"].as_str().unwrap().contains("500"), "{c}");
        assert!(
            !c["last_error"].as_str().unwrap().contains("/hook"),
            "no URL path: {c}"
        );
    }
    // The receiver is healthy again: the following commands deliver it, once.
    let mut tries = 0;
    while hook.accepted().is_empty() && tries < 10 {
        std::thread::sleep(Duration::from_millis(700));
        run(&f, &hook, &["history"]);
        tries += 1;
    }
    assert_eq!(hook.accepted().len(), 1);
    assert_eq!(hook.accepted()[0].body["type"], "update_rolled_back");
    assert!(hook.duplicates().is_empty());
    let (status, _) = json(&f, &hook, &["status"]);
    assert_eq!(
        status["notification_channels"],
        serde_json::json!([]),
        "{status}"
    );
}

#[test]
fn config_check_shows_no_channel_secret_and_refuses_unsafe_ones() {
    let f = support::fixture();
    let (hook, smtp) = (WebhookReceiver::start(Some(SECRET)), SmtpReceiver::start());
    f.write_config(&channels(&hook, &smtp, ""));
    let checked = run(&f, &hook, &["config", "check"]);
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    assert!(!checked.stdout.contains(SECRET));
    assert!(!checked.stdout.contains(&hook.url()));

    let slack_in_file = format!(
        "{}\n[[notifications.channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T0/B0/SECRETTOKEN\"\n",
        channels(&hook, &smtp, "")
    );
    f.write_config(&slack_in_file);
    let refused = run(&f, &hook, &["config", "check"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("notifications.channels[2].url"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("SECRETTOKEN"),
        "{}",
        refused.stderr
    );

    let password_file = f.dir.path().join("smtp-password");
    std::fs::write(&password_file, "hunter2").unwrap();
    std::fs::set_permissions(
        &password_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let with_file = channels(&hook, &smtp, "").replace(
        "security = \"none\"",
        &format!(
            "security = \"none\"\nusername = \"updater\"\npassword_file = \"{}\"",
            password_file.display()
        ),
    );
    f.write_config(&with_file);
    let open_file = run(&f, &hook, &["config", "check"]);
    assert_eq!(open_file.code, 2);
    assert!(
        open_file.stderr.contains("chmod 600"),
        "{}",
        open_file.stderr
    );
    assert!(!open_file.stderr.contains("hunter2"));
}

#[test]
fn schedule_reports_unhealthy_backups_through_the_channels() {
    let f = support::fixture();
    let (hook, smtp) = (WebhookReceiver::start(Some(SECRET)), SmtpReceiver::start());
    f.write_config(&channels(
        &hook,
        &smtp,
        "[notifications.backup_health]\nmax_age_hours = 24\n",
    ));
    let (out, code) = json(&f, &hook, &["schedule", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["backup_health"]["healthy"], false, "{out}");
    let hooks = hook.wait_for(1, Duration::from_secs(5));
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].body["type"], "backup_unhealthy");
    assert!(
        smtp.wait_for(1, Duration::from_secs(5))[0]
            .subject()
            .contains("Backups are unhealthy")
    );
    // A second round the same day: the same event, not sent again.
    json(&f, &hook, &["schedule", "--once"]);
    assert_eq!(hook.requests(), 1);
}

/// Every `backup.json` (backup catalogue record) under `dir`.
fn catalogue_records(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(catalogue_records(&path));
        } else if path.file_name().is_some_and(|n| n == "backup.json") {
            found.push(path);
        }
    }
    found
}

#[test]
fn backup_health_judges_the_newest_verified_backup_not_the_newest_one() {
    let f = support::fixture();
    let (hook, smtp) = (WebhookReceiver::start(Some(SECRET)), SmtpReceiver::start());
    f.write_config(&channels(
        &hook,
        &smtp,
        "[notifications.backup_health]\nmax_age_hours = 24\n",
    ));
    let (created, code) = json(&f, &hook, &["backup", "create"]);
    assert_eq!(code, 0, "{created}");
    let (out, code) = json(&f, &hook, &["schedule", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out["backup_health"]["healthy"], true,
        "a fresh verified backup: {out}"
    );
    assert!(out["backup_health"]["newest_verified_backup"].is_string());

    // The catalogue records the backup as never verified (its verification
    // was interrupted, say): the history still calls it restorable, but it
    // proves nothing about whether it can be restored.
    let root = f.config_path().parent().unwrap().to_path_buf();
    let records = catalogue_records(&root);
    assert_eq!(records.len(), 1, "{records:?}");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    assert_eq!(record["status"], "verified");
    record["status"] = Value::from("unverified");
    record["verified_at"] = Value::Null;
    std::fs::write(&records[0], serde_json::to_vec_pretty(&record).unwrap()).unwrap();

    let (out, code) = json(&f, &hook, &["schedule", "--once"]);
    assert_eq!(code, 0, "{out}");
    let health = &out["backup_health"];
    assert_eq!(health["healthy"], false, "{out}");
    assert_eq!(health["newest_verified_backup"], Value::Null, "{out}");
    assert!(health["newest_backup"].is_string(), "{out}");
    let problem = health["problems"][0].as_str().unwrap();
    assert!(problem.contains("no verified backup"), "{problem}");
    assert!(
        problem.contains("1 newer or other backup(s) are not verified"),
        "{problem}"
    );
    let hooks = hook.wait_for(1, Duration::from_secs(5));
    assert_eq!(hooks[0].body["type"], "backup_unhealthy");
}
