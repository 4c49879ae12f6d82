//! The webhook body is what `docs/schemas/notification.schema.json`
//! (`updater.notification/1`, described in `docs/notifications.md`) says:
//! every kind of notice, delivered through the outbox to a receiver on
//! 127.0.0.1, validates against the published schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use updater_core::history::{HistoryStore, InMemoryHistoryStore, NotificationType, UpdateRecord};
use updater_core::notify::{Notification, Notifier};
use updater_core::outbox::InMemoryOutbox;
use updater_core::secret::Secret;
use updater_core::version::Version;
use updater_notify::message::Context;
use updater_notify::{Dispatcher, EventSet, WebhookChannel};
use updater_testkit::webhook::WebhookReceiver;

fn schema() -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/schemas/notification.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, body: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{body:#}\nbreaks the schema: {errors:#?}"
    );
}

#[test]
fn every_kind_of_webhook_notice_validates_against_the_published_schema() {
    let receiver = WebhookReceiver::start(Some("hook-secret"));
    let history = Arc::new(InMemoryHistoryStore::new());
    // An update that failed and was rolled back, as the pipeline records it.
    let mut update = UpdateRecord::new(Version::new(1, 2, 0), "web:alice");
    update.previous_version = Some(Version::new(1, 1, 0));
    update.status = updater_core::history::UpdateStatus::RolledBack;
    update.changelog = "## 1.2.0\n\n- New *reports*".into();
    update.error_message = Some("the health check failed".into());
    update.failed_at = Some(update.started_at + chrono::Duration::seconds(4));
    update.maintenance_window_ms = Some(850);
    let update_id = history.create_update(&update).unwrap();

    let webhook = WebhookChannel::builder("webhook", Secret::new(receiver.url()))
        .with_signing_secret(Secret::new("hook-secret"))
        .with_timeout(Duration::from_secs(5))
        .with_context(Context {
            app_name: Some("shop".into()),
            console_url: Some("https://shop.example.com/admin/updates".into()),
        })
        .build()
        .unwrap();
    let dispatcher = Dispatcher::builder(Arc::new(InMemoryOutbox::new()))
        .with_history(history.clone())
        .with_channel(Arc::new(webhook), EventSet::all())
        .build();

    for (i, kind) in NotificationType::ALL.iter().enumerate() {
        let mut notice = Notification::new(
            *kind,
            Version::new(1, 2, 0),
            format!("{} for the schema test", kind.as_str()),
        )
        .with_event_id(format!("schema-test:{i}"));
        if matches!(
            kind,
            NotificationType::UpdateStarted
                | NotificationType::UpdateCompleted
                | NotificationType::UpdateFailed
                | NotificationType::UpdateRolledBack
                | NotificationType::NeedsOperator
        ) {
            notice =
                notice.with_metadata(json!({ "update_id": update_id, "step": "health_check" }));
        }
        dispatcher.notify(&notice).unwrap();
    }
    dispatcher.deliver_due(Duration::from_secs(10)).unwrap();
    let hooks = receiver.wait_for(NotificationType::ALL.len(), Duration::from_secs(10));
    assert_eq!(
        hooks.len(),
        NotificationType::ALL.len(),
        "every kind arrived"
    );

    let validator = schema();
    for hook in &hooks {
        assert_valid(&validator, &hook.body);
        assert_eq!(hook.body["id"], hook.event_id.as_str());
    }
    let rolled_back = hooks
        .iter()
        .find(|h| h.body["type"] == "update_rolled_back")
        .unwrap();
    let details = &rolled_back.body["details"];
    assert_eq!(details["from"], "1.1.0", "{details}");
    assert_eq!(details["to"], "1.2.0", "{details}");
    assert_eq!(details["status"], "rolled_back", "{details}");
    assert_eq!(details["duration_ms"], 4000, "{details}");
    assert_eq!(rolled_back.body["severity"], "error");
    assert_eq!(rolled_back.body["app"], "shop");

    // The schema is not vacuous: what a receiver must be able to rely on is checked.
    for broken in [
        json!({ "schema": "updater.notification/2" }),
        json!({ "type": "something_else" }),
        json!({ "version": "one point two" }),
        json!({ "occurred_at": 17 }),
        json!({ "details": { "status": "exploded" } }),
    ] {
        let mut body = rolled_back.body.clone();
        for (key, value) in broken.as_object().unwrap() {
            if key == "details" {
                body["details"]["status"] = value["status"].clone();
            } else {
                body[key] = value.clone();
            }
        }
        assert!(!validator.is_valid(&body), "accepted {broken}");
    }
    let mut missing = rolled_back.body.clone();
    missing.as_object_mut().unwrap().remove("id");
    assert!(!validator.is_valid(&missing), "accepted a body without id");
}
