//! What an operator must be able to read off the console: whether backups
//! were verified (from the backup catalogue, so a restart forgets nothing),
//! which notification channels fail, and what the automation will do on its
//! own (level, pause, probation, scheduled updates).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{As, Console, TOKEN, mount};
use updater_backup::{BackupStatus, Catalog, FileBackup};
use updater_core::automation::{AutoUpdateLevel, AutoUpdatePolicy};
use updater_core::backup::BackupStrategy;
use updater_core::notify::Notification;
use updater_core::outbox::{AttemptOutcome, ClaimRequest, InMemoryOutbox, NotificationOutbox};
use updater_core::version::Version;
use updater_web::WebState;
use updater_web::auth::ApiToken;

fn file_backup(fx: &updater_testkit::app::Fixture) -> Arc<dyn BackupStrategy> {
    Arc::new(
        FileBackup::builder(&fx.app, fx.root.join("catalogue"))
            .build()
            .unwrap(),
    )
}

async fn row(console: &Console, id: &str) -> Value {
    let list = console.get("/api/backups", As::Token).await.json();
    list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no backup {id} in {list}"))
}

/// The console started again over the same application and history: a new
/// `WebState`, nothing remembered in memory.
fn restart(console: &mut Console) {
    let state = WebState::builder(console.state.updater().clone())
        .with_api_token(ApiToken::from_sha256_hex("ci", &ApiToken::digest(TOKEN)).unwrap())
        .with_manual_backup(file_backup(&console.fx))
        .build()
        .unwrap();
    console.app = mount(state.clone());
    console.state = state;
}

#[tokio::test]
async fn the_verified_column_is_the_catalogues_and_survives_a_restart() {
    let mut console = Console::with_backup(|b| b, Duration::ZERO, file_backup);
    let created = console
        .run("/api/backups", json!({"description": "before the demo"}))
        .await;
    assert_eq!(created["status"], "succeeded", "{created}");
    let id = created["result"]["backup"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let catalog = Catalog::new(console.fx.root.join("catalogue"));
    let recorded = catalog.read_record(&id).unwrap();
    assert_eq!(
        recorded.status,
        BackupStatus::Verified,
        "verified at creation"
    );
    let verified_at = recorded.verified_at.unwrap();

    let fresh = row(&console, &id).await;
    assert_eq!(fresh["status"], "verified", "{fresh}");
    assert_eq!(fresh["verified_at"], json!(verified_at), "{fresh}");

    // A restarted console knows it too: it reads the catalogue.
    restart(&mut console);
    let after_restart = row(&console, &id).await;
    assert_eq!(after_restart["status"], "verified", "{after_restart}");
    assert_eq!(after_restart["verified_at"], json!(verified_at));
    let page = console.get("/backups", As::Token).await.text();
    assert!(page.contains("data-verification=\"verified\""), "{page}");

    // What the catalogue says is what the console shows, whoever wrote it.
    catalog.set_status(&id, BackupStatus::Unverified).unwrap();
    assert_eq!(row(&console, &id).await["status"], "unverified");
    let page = console.get("/backups", As::Token).await.text();
    assert!(page.contains("data-verification=\"unverified\""), "{page}");

    // A damaged backup fails its verification; the failure survives a restart.
    let dir = console.fx.root.join("catalogue").join(&id);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".tar.gz") {
            std::fs::write(&path, b"not a gzip stream any more").unwrap();
        }
    }
    let verified = console
        .run(&format!("/api/backups/{id}/verify"), json!(null))
        .await;
    assert_eq!(verified["status"], "failed", "{verified}");
    assert_eq!(row(&console, &id).await["status"], "failed");
    restart(&mut console);
    let failed = row(&console, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["restorable"], false, "{failed}");
}

#[tokio::test]
async fn a_strategy_without_a_catalogue_shows_what_this_console_verified() {
    let console = Console::new();
    let created = console.run("/api/backups", json!({})).await;
    let id = created["result"]["backup"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = row(&console, &id).await;
    assert_eq!(before["status"], Value::Null, "{before}");
    let verified = console
        .run(&format!("/api/backups/{id}/verify"), json!(null))
        .await;
    assert_eq!(verified["status"], "succeeded", "{verified}");
    let after = row(&console, &id).await;
    assert_eq!(after["status"], "verified", "{after}");
    assert!(after["verified_at"].is_string(), "{after}");
}

/// An outbox where `webhook` failed once and `email` delivered.
fn outbox_with_a_failing_webhook(gave_up: bool) -> Arc<InMemoryOutbox> {
    let outbox = Arc::new(InMemoryOutbox::new());
    let now = chrono::Utc::now();
    let notice = Notification::new(
        updater_core::history::NotificationType::UpdateRolledBack,
        Version::new(1, 1, 0),
        "update to 1.1.0 failed and was rolled back",
    )
    .with_event_id("update-7:update_rolled_back");
    outbox
        .enqueue(&notice, &["webhook".to_string(), "email".to_string()], now)
        .unwrap();
    let claimed = outbox
        .claim(&ClaimRequest::new(
            "test",
            now,
            chrono::Duration::seconds(60),
        ))
        .unwrap();
    assert_eq!(claimed.len(), 2);
    for d in claimed {
        let outcome = match (d.channel.as_str(), gave_up) {
            ("email", _) => AttemptOutcome::Delivered,
            (_, false) => AttemptOutcome::Retry {
                error: "connection refused by hooks.example.com".into(),
                next_attempt_at: now + chrono::Duration::minutes(5),
            },
            (_, true) => AttemptOutcome::GiveUp {
                error: "HTTP 500 from the receiver".into(),
            },
        };
        assert!(outbox.finish(d.id, "test", now, &outcome).unwrap());
    }
    outbox
}

#[tokio::test]
async fn a_failing_notification_channel_is_in_the_status_and_on_the_dashboard() {
    let outbox = outbox_with_a_failing_webhook(false);
    let mut console = Console::with(
        {
            let outbox = outbox.clone();
            move |b| b.with_notification_outbox(outbox)
        },
        Duration::ZERO,
    );
    let status = console.get("/api/status", As::Token).await.json();
    let channels = status["notification_channels"].as_array().unwrap();
    assert_eq!(
        channels.len(),
        1,
        "email delivered, only the webhook waits: {status}"
    );
    let webhook = &channels[0];
    // The keys of `updater status --json`.
    let mut keys: Vec<&str> = webhook
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "channel",
            "failing",
            "gave_up",
            "last_delivered_at",
            "last_error",
            "oldest_pending",
            "pending",
            "retrying"
        ]
    );
    assert_eq!(webhook["channel"], "webhook");
    assert_eq!(webhook["failing"], true);
    assert_eq!(webhook["pending"], 1);
    assert_eq!(webhook["retrying"], 1);
    assert_eq!(
        webhook["last_error"],
        "connection refused by hooks.example.com"
    );

    console.login().await;
    let dashboard = console.get("/", As::SessionNoCsrf).await.text();
    assert!(
        dashboard.contains("id=\"notification-channels\""),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("Notification channels failing"),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("data-channel=\"webhook\""),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("connection refused by hooks.example.com"),
        "{dashboard}"
    );
    assert!(!dashboard.contains("data-channel=\"email\""), "{dashboard}");
}

#[tokio::test]
async fn a_channel_that_gave_up_stays_on_the_dashboard_and_healthy_channels_show_nothing() {
    let outbox = outbox_with_a_failing_webhook(true);
    let mut console = Console::with(
        {
            let outbox = outbox.clone();
            move |b| b.with_notification_outbox(outbox)
        },
        Duration::ZERO,
    );
    let status = console.get("/api/status", As::Token).await.json();
    let webhook = &status["notification_channels"][0];
    assert_eq!(webhook["failing"], true, "{status}");
    assert_eq!(webhook["gave_up"], 1, "{status}");
    assert_eq!(webhook["pending"], 0, "{status}");
    console.login().await;
    let dashboard = console.get("/", As::SessionNoCsrf).await.text();
    assert!(
        dashboard.contains("HTTP 500 from the receiver"),
        "{dashboard}"
    );

    // Every notice delivered: an empty list and no alert.
    let healthy = Console::with(
        |b| b.with_notification_outbox(Arc::new(InMemoryOutbox::new())),
        Duration::ZERO,
    );
    let status = healthy.get("/api/status", As::Token).await.json();
    assert_eq!(status["notification_channels"], json!([]), "{status}");
    // No outbox given: unknown, not "all fine".
    let unknown = Console::new();
    let status = unknown.get("/api/status", As::Token).await.json();
    assert_eq!(status["notification_channels"], Value::Null, "{status}");
    let mut unknown = unknown;
    unknown.login().await;
    let dashboard = unknown.get("/", As::SessionNoCsrf).await.text();
    assert!(!dashboard.contains("notification-channels"), "{dashboard}");
}

#[tokio::test]
async fn the_dashboard_says_in_words_what_the_automation_will_do() {
    let mut console = Console::with_parts(
        |b| b,
        Duration::ZERO,
        |fx| {
            Arc::new(updater_testkit::fakes::FakeFilesBackup {
                app: fx.app.clone(),
                store: fx.root.join("backups"),
                db: None,
            })
        },
        |c| {
            c.probation = Some(Duration::from_secs(3600));
            c.auto_update = AutoUpdatePolicy {
                level: AutoUpdateLevel::Patch,
                ..AutoUpdatePolicy::default()
            };
        },
    );
    console.login().await;
    let idle = console.get("/", As::SessionNoCsrf).await.text();
    assert!(
        idle.contains("Automatic updates: on for patch releases."),
        "{idle}"
    );
    assert!(idle.contains("No update is scheduled."), "{idle}");
    assert!(!idle.contains("id=\"paused\""), "{idle}");
    assert!(!idle.contains("id=\"probation\""), "{idle}");

    let applied = console.run("/api/apply", json!({"backup": false})).await;
    assert_eq!(applied["status"], "succeeded", "{applied}");
    let updater = console.state.updater().clone();
    updater.pause("waiting for the audit", "ops").unwrap();
    let at = chrono::Utc::now() + chrono::Duration::days(2);
    updater
        .schedule_update(at, Some(Version::new(1, 1, 0)), "ops")
        .unwrap();

    let status = console.get("/api/status", As::Token).await.json();
    assert_eq!(
        status["paused"]["reason"], "waiting for the audit",
        "{status}"
    );
    assert_eq!(status["probation"]["version"], "1.1.0", "{status}");
    assert_eq!(status["scheduled"].as_array().unwrap().len(), 1, "{status}");

    let page = console.get("/", As::SessionNoCsrf).await.text();
    assert!(page.contains("id=\"paused\""), "{page}");
    assert!(page.contains("waiting for the audit"), "{page}");
    assert!(
        page.contains("No automatic or scheduled update runs until someone resumes them"),
        "{page}"
    );
    assert!(page.contains("id=\"probation\""), "{page}");
    assert!(page.contains("is on probation until"), "{page}");
    assert!(
        page.contains("rolled back to 1.0.0 automatically"),
        "{page}"
    );
    assert!(page.contains("Update to 1.1.0 scheduled for"), "{page}");
    assert!(page.contains(&at.format("%Y-%m-%d").to_string()), "{page}");
}
