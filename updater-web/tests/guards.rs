//! The guard on every route, table-driven: a signed-in user who is not an
//! administrator gets 403 everywhere, and every state change without the
//! CSRF token of the session (missing or forged) is 403 and changes nothing.
//! The table is checked against the OpenAPI document, so a new API route
//! cannot be left out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use support::{As, Console};
use updater_core::history::{HistoryStore, NotificationRecord, NotificationType, Page};
use updater_core::version::Version;
use updater_web::auth::User;

/// Every route behind the guard: pages, form actions, the JSON API.
/// `{backup}` and `{note}` stand for a real backup and notification, so a
/// refusal is the guard's and not a 404; `{update}` and `{op}` for id 1.
const ROUTES: [(&str, &str); 41] = [
    ("GET", "/"),
    ("GET", "/updates"),
    ("GET", "/updates/{update}"),
    ("GET", "/backups"),
    ("GET", "/notifications"),
    ("GET", "/operations/{op}"),
    ("GET", "/confirm/update"),
    ("GET", "/confirm/rollback"),
    ("GET", "/confirm/restore/{backup}"),
    ("GET", "/confirm/delete/{backup}"),
    ("POST", "/actions/check"),
    ("POST", "/actions/apply"),
    ("POST", "/actions/rollback"),
    ("POST", "/actions/backups"),
    ("POST", "/actions/backups/{backup}/verify"),
    ("POST", "/actions/backups/{backup}/restore"),
    ("POST", "/actions/backups/{backup}/delete"),
    ("POST", "/actions/notifications/{note}/read"),
    ("POST", "/actions/notifications/{note}/dismiss"),
    ("POST", "/logout"),
    ("GET", "/api/status"),
    ("POST", "/api/check"),
    ("POST", "/api/apply"),
    ("GET", "/api/rollback"),
    ("POST", "/api/rollback"),
    ("GET", "/api/history"),
    ("GET", "/api/updates/{update}"),
    ("GET", "/api/backups"),
    ("POST", "/api/backups"),
    ("POST", "/api/backups/{backup}/verify"),
    ("POST", "/api/backups/{backup}/restore"),
    ("DELETE", "/api/backups/{backup}"),
    ("GET", "/api/notifications"),
    ("POST", "/api/notifications/{note}/read"),
    ("POST", "/api/notifications/{note}/dismiss"),
    ("GET", "/api/operations"),
    ("GET", "/api/operations/{op}"),
    ("GET", "/api/operations/{op}/events"),
    ("GET", "/api/audit"),
    ("GET", "/api/stats"),
    ("GET", "/api/openapi.json"),
];

fn changes_state(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

/// `path` with the real ids in place of `{backup}` and `{note}` (and 1 for
/// an update or operation).
fn concrete(path: &str, backup: &str, note: i64) -> String {
    path.replace("{backup}", backup)
        .replace("{note}", &note.to_string())
        .replace("{update}", "1")
        .replace("{op}", "1")
}

/// `/api/backups/{id}/verify` and `/api/backups/{backup}/verify` alike.
fn template(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

/// A real backup (taken with the token) and an unread notification.
async fn seed(console: &Console) -> (String, i64) {
    let created = console.run("/api/backups", json!({})).await;
    assert_eq!(created["status"], "succeeded", "{created}");
    let backup = created["result"]["backup"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let note = console
        .fx
        .history
        .add_notification(&NotificationRecord {
            id: 0,
            version: Version::parse("1.1.0").unwrap(),
            notification_type: NotificationType::UpdateAvailable,
            message: "version 1.1.0 is available".into(),
            metadata: None,
            is_read: false,
            is_dismissed: false,
            user_id: None,
            read_at: None,
            created_at: chrono::Utc::now(),
            event_id: None,
        })
        .unwrap()
        .unwrap();
    (backup, note)
}

/// What a refused state change must not have touched.
async fn assert_nothing_changed(console: &Console, backup: &str, operations_before: usize) {
    assert_eq!(
        console.state.operations().list().len(),
        operations_before,
        "no operation started"
    );
    let backups = console.get("/api/backups", As::Token).await.json();
    let row = backups["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == backup)
        .cloned()
        .unwrap_or_else(|| panic!("backup {backup} is gone: {backups}"));
    assert_eq!(row["restorable"], true, "{row}");
    let unread = console.get("/api/notifications", As::Token).await.json();
    assert_eq!(
        unread["notifications"].as_array().unwrap().len(),
        1,
        "the notification is neither read nor dismissed: {unread}"
    );
}

#[tokio::test]
async fn the_route_table_holds_every_route_of_the_openapi_document() {
    let console = Console::new();
    let document = console.get("/api/openapi.json", As::Token).await.json();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_lowercase(), template(p)))
        .collect();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{document}");
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            assert!(
                table.contains(&(method.clone(), template(path))),
                "{method} {path} of the OpenAPI document is not in ROUTES"
            );
        }
    }
}

#[tokio::test]
async fn a_user_who_is_not_an_admin_gets_403_on_every_route_and_changes_nothing() {
    let host = |parts: &axum::http::request::Parts| {
        parts
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(|name| User {
                name: name.to_string(),
                is_admin: name == "root",
            })
    };
    let console = Console::with(|b| b.with_host_auth(Arc::new(host)), Duration::ZERO);
    let (backup, note) = seed(&console).await;
    let operations_before = console.state.operations().list().len();
    let version_before = std::fs::read(console.fx.app.join("VERSION")).unwrap();

    for (name, path) in ROUTES {
        let path = concrete(path, &backup, note);
        let mut request = Request::builder()
            .method(method(name))
            .uri(support::url(&path))
            .header("x-user", "mallory");
        if changes_state(name) {
            // A well-formed state change: the refusal must be about who asks.
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .header("sec-fetch-site", "same-origin");
        }
        let body = if changes_state(name) && path.starts_with("/api/") {
            Body::from("{}")
        } else {
            Body::empty()
        };
        let reply = console.send(request.body(body).unwrap()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{name} {path}");
        if path.starts_with("/api/") {
            assert_eq!(reply.error_kind(), "forbidden", "{name} {path}");
        }
    }

    assert_nothing_changed(&console, &backup, operations_before).await;
    assert_eq!(
        std::fs::read(console.fx.app.join("VERSION")).unwrap(),
        version_before
    );
    // Every refusal is in the audit log with the user and the route.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audit = console.fx.history.audit_log(Page::first(500)).unwrap();
    for (name, path) in ROUTES.iter().filter(|(m, _)| changes_state(m)) {
        let path = concrete(path, &backup, note);
        assert!(
            audit.iter().any(|a| a.user == "web:mallory"
                && a.action == "access"
                && !a.success
                && a.target.as_deref() == Some(path.as_str())),
            "{name} {path} refused without an audit record: {audit:?}"
        );
    }
}

#[tokio::test]
async fn every_state_change_without_the_sessions_csrf_token_is_403_and_changes_nothing() {
    let mut console = Console::new();
    console.login().await;
    let (backup, note) = seed(&console).await;
    let operations_before = console.state.operations().list().len();
    let version_before = std::fs::read(console.fx.app.join("VERSION")).unwrap();
    let cookie = console.cookie.clone().unwrap();
    let state_changes: Vec<_> = ROUTES.iter().filter(|(m, _)| changes_state(m)).collect();
    assert_eq!(state_changes.len(), 19);

    for (name, path) in state_changes {
        let path = concrete(path, &backup, note);
        let api = path.starts_with("/api/");
        // No token at all, a forged header, a forged form field.
        let attempts: Vec<(&str, Request<Body>)> = vec![
            (
                "no token",
                console
                    .request(method(name), &path, As::SessionNoCsrf)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap(),
            ),
            (
                "forged header",
                Request::builder()
                    .method(method(name))
                    .uri(support::url(&path))
                    .header(header::COOKIE, &cookie)
                    .header("x-csrf-token", "forged")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap(),
            ),
            (
                "forged form field",
                Request::builder()
                    .method(method(name))
                    .uri(support::url(&path))
                    .header(header::COOKIE, &cookie)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from("csrf=forged&force=true"))
                    .unwrap(),
            ),
        ];
        for (how, request) in attempts {
            let reply = console.send(request).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{how}: {name} {path}");
            if api {
                assert_eq!(reply.error_kind(), "csrf", "{how}: {name} {path}");
            }
        }
    }

    assert_nothing_changed(&console, &backup, operations_before).await;
    assert_eq!(
        std::fs::read(console.fx.app.join("VERSION")).unwrap(),
        version_before
    );
    // The session survived the refused logouts.
    assert_eq!(
        console.get("/", As::SessionNoCsrf).await.status,
        StatusCode::OK
    );
    // And the same routes with the token do pass the guard.
    let read = console
        .post(
            &format!("/api/notifications/{note}/read"),
            As::Session,
            json!({}),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
}
