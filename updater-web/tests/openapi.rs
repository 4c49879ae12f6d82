//! The OpenAPI document (`GET /api/openapi.json`) against the real
//! responses: every JSON answer of a scenario that calls every route — and
//! its error answers — must fit the schema the document gives for its
//! route and status, with no undocumented property.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};
use support::{As, Console, Reply};
use updater_testkit::openapi::{response_schema, violations};

struct Checker {
    document: Value,
    checked: Vec<String>,
    failures: Vec<String>,
}

impl Checker {
    fn check(&mut self, method: &str, template: &str, reply: &Reply) {
        let label = format!("{method} {template} {}", reply.status.as_u16());
        let Some(schema) = response_schema(&self.document, method, template, reply.status.as_u16())
        else {
            self.failures
                .push(format!("{label}: not documented ({})", reply.text()));
            return;
        };
        for violation in violations(&self.document, schema, &reply.json()) {
            self.failures.push(format!("{label}: {violation}"));
        }
        self.checked.push(label);
    }
}

/// An outbox where `webhook` is retrying and `chat` gave up.
fn failing_outbox() -> std::sync::Arc<updater_core::outbox::InMemoryOutbox> {
    use updater_core::outbox::{AttemptOutcome, ClaimRequest, InMemoryOutbox, NotificationOutbox};
    let outbox = std::sync::Arc::new(InMemoryOutbox::new());
    let now = chrono::Utc::now();
    let notice = updater_core::notify::Notification::new(
        updater_core::history::NotificationType::UpdateFailed,
        updater_core::version::Version::new(1, 1, 0),
        "update to 1.1.0 failed",
    )
    .with_event_id("update-1:update_failed");
    outbox
        .enqueue(&notice, &["webhook".to_string(), "chat".to_string()], now)
        .unwrap();
    let claimed = outbox
        .claim(&ClaimRequest::new("t", now, chrono::Duration::seconds(60)))
        .unwrap();
    for d in claimed {
        let outcome = if d.channel == "chat" {
            AttemptOutcome::GiveUp {
                error: "HTTP 404".into(),
            }
        } else {
            AttemptOutcome::Retry {
                error: "timed out".into(),
                next_attempt_at: now + chrono::Duration::minutes(1),
            }
        };
        outbox.finish(d.id, "t", now, &outcome).unwrap();
    }
    outbox
}

#[tokio::test]
async fn every_real_response_fits_the_openapi_document() {
    let console = Console::new();
    let document = console.get("/api/openapi.json", As::Token).await.json();
    assert_eq!(document["openapi"], "3.1.0");
    let mut c = Checker {
        document,
        checked: Vec::new(),
        failures: Vec::new(),
    };
    let op_id = |reply: &Reply| reply.json()["id"].as_u64().unwrap();

    c.check(
        "GET",
        "/api/status",
        &console.get("/api/status", As::Token).await,
    );
    c.check(
        "GET",
        "/api/status",
        &console.get("/api/status", As::Nobody).await,
    );
    // With an outbox: a failing and a given-up channel in `notification_channels`.
    let outbox = failing_outbox();
    let watched = Console::with(
        move |b| b.with_notification_outbox(outbox),
        std::time::Duration::ZERO,
    );
    let status = watched.get("/api/status", As::Token).await;
    assert_eq!(
        status.json()["notification_channels"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{}",
        status.text()
    );
    c.check("GET", "/api/status", &status);
    let check = console
        .post("/api/check", As::Token, json!({"force": true}))
        .await;
    c.check("POST", "/api/check", &check);
    console.wait(op_id(&check)).await;
    c.check(
        "POST",
        "/api/check",
        &console.post("/api/check", As::Token, json!({"x": 1})).await,
    );
    c.check(
        "GET",
        "/api/operations",
        &console.get("/api/operations", As::Token).await,
    );
    c.check(
        "GET",
        "/api/operations/{id}",
        &console
            .get(&format!("/api/operations/{}", op_id(&check)), As::Token)
            .await,
    );
    c.check(
        "GET",
        "/api/operations/{id}",
        &console.get("/api/operations/99", As::Token).await,
    );
    c.check(
        "GET",
        "/api/notifications",
        &console.get("/api/notifications", As::Token).await,
    );
    let notification =
        console.get("/api/notifications", As::Token).await.json()["notifications"][0]["id"].clone();
    c.check(
        "POST",
        "/api/notifications/{id}/read",
        &console
            .post(
                &format!("/api/notifications/{notification}/read"),
                As::Token,
                json!(null),
            )
            .await,
    );
    c.check(
        "POST",
        "/api/notifications/{id}/dismiss",
        &console
            .post(
                &format!("/api/notifications/{notification}/dismiss"),
                As::Token,
                json!(null),
            )
            .await,
    );
    c.check(
        "POST",
        "/api/notifications/{id}/read",
        &console
            .post("/api/notifications/999/read", As::Token, json!(null))
            .await,
    );

    let apply = console
        .post("/api/apply", As::Token, json!({"version": "1.1.0"}))
        .await;
    c.check("POST", "/api/apply", &apply);
    c.check(
        "POST",
        "/api/apply",
        &console.post("/api/apply", As::Token, json!({})).await,
    ); // 409
    let applied = console.wait(op_id(&apply)).await;
    c.check(
        "GET",
        "/api/operations/{id}",
        &console
            .get(&format!("/api/operations/{}", op_id(&apply)), As::Token)
            .await,
    );
    c.check(
        "POST",
        "/api/apply",
        &console
            .post("/api/apply", As::Token, json!({"version": "x"}))
            .await,
    );
    c.check(
        "GET",
        "/api/status",
        &console.get("/api/status", As::Token).await,
    );
    c.check(
        "GET",
        "/api/history",
        &console.get("/api/history?limit=5", As::Token).await,
    );
    c.check(
        "GET",
        "/api/history",
        &console
            .get("/api/history?status=completed", As::Token)
            .await,
    );
    c.check(
        "GET",
        "/api/history",
        &console.get("/api/history?limit=0", As::Token).await,
    );
    let update = applied["update_id"].as_i64().unwrap();
    c.check(
        "GET",
        "/api/updates/{id}",
        &console
            .get(&format!("/api/updates/{update}"), As::Token)
            .await,
    );
    c.check(
        "GET",
        "/api/updates/{id}",
        &console.get("/api/updates/999", As::Token).await,
    );
    c.check(
        "GET",
        "/api/rollback",
        &console.get("/api/rollback", As::Token).await,
    );

    let backup = console
        .post("/api/backups", As::Token, json!({"description": "doc"}))
        .await;
    c.check("POST", "/api/backups", &backup);
    let made = console.wait(op_id(&backup)).await;
    let id = made["result"]["backup"]["id"].as_str().unwrap().to_string();
    c.check(
        "GET",
        "/api/backups",
        &console.get("/api/backups", As::Token).await,
    );
    let verify = console
        .post(&format!("/api/backups/{id}/verify"), As::Token, json!(null))
        .await;
    c.check("POST", "/api/backups/{id}/verify", &verify);
    console.wait(op_id(&verify)).await;
    c.check(
        "GET",
        "/api/backups",
        &console.get("/api/backups", As::Token).await,
    );
    let restore = console
        .post(&format!("/api/backups/{id}/restore"), As::Token, json!({}))
        .await;
    c.check("POST", "/api/backups/{id}/restore", &restore);
    console.wait(op_id(&restore)).await;
    let delete = console
        .delete(&format!("/api/backups/{id}"), As::Token)
        .await;
    c.check("DELETE", "/api/backups/{id}", &delete);
    c.check(
        "DELETE",
        "/api/backups/{id}",
        &console.delete("/api/backups/nope", As::Token).await,
    );
    c.check(
        "POST",
        "/api/backups/{id}/restore",
        &console
            .post(&format!("/api/backups/{id}/restore"), As::Token, json!({}))
            .await,
    );
    c.check(
        "POST",
        "/api/backups/{id}/verify",
        &console
            .post("/api/backups/nope/verify", As::Token, json!(null))
            .await,
    );

    let rollback = console.post("/api/rollback", As::Token, json!({})).await;
    c.check("POST", "/api/rollback", &rollback);
    console.wait(op_id(&rollback)).await;
    c.check(
        "GET",
        "/api/rollback",
        &console.get("/api/rollback", As::Token).await,
    );
    c.check(
        "GET",
        "/api/audit",
        &console.get("/api/audit", As::Token).await,
    );
    c.check(
        "GET",
        "/api/audit",
        &console.get("/api/audit?limit=0", As::Token).await,
    );
    // After an update, a failed one and a rollback: every part of the
    // statistics is filled.
    let stats = console.get("/api/stats?days=7", As::Token).await;
    c.check("GET", "/api/stats", &stats);
    let stats = stats.json();
    assert!(stats["attempts"].as_u64().unwrap() >= 2, "{stats}");
    c.check(
        "GET",
        "/api/stats",
        &console.get("/api/stats?days=0", As::Token).await,
    );
    let sse = console
        .send(
            console
                .request(Method::GET, "/api/operations/99/events", As::Token)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    c.check("GET", "/api/operations/{id}/events", &sse);

    assert!(
        c.failures.is_empty(),
        "{} violations:\n{}",
        c.failures.len(),
        c.failures.join("\n")
    );
    assert!(c.checked.len() >= 35, "{:?}", c.checked);
    // Every documented path was exercised.
    let paths: Vec<String> = c.document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for path in paths {
        assert!(
            c.checked
                .iter()
                .any(|label| label.split(' ').nth(1) == Some(path.as_str())),
            "{path} not exercised"
        );
    }
}
