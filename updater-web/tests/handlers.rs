//! Every route of the console through `tower::ServiceExt::oneshot`:
//! authentication (401/403), CSRF, not found (404), busy (409), malformed
//! input (422), and what each action does to the application and history.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use support::{As, Console, MOUNT, PASSWORD, TOKEN, read_events, set_cookie_line};
use tower::ServiceExt;
use updater_core::history::{HistoryStore, NotificationRecord, NotificationType};
use updater_core::version::Version;
use updater_web::auth::User;

/// Every API route with a method: what must refuse an anonymous caller.
const API_ROUTES: [(&str, &str); 20] = [
    ("GET", "/api/status"),
    ("POST", "/api/check"),
    ("POST", "/api/apply"),
    ("GET", "/api/rollback"),
    ("POST", "/api/rollback"),
    ("GET", "/api/history"),
    ("GET", "/api/updates/1"),
    ("GET", "/api/backups"),
    ("POST", "/api/backups"),
    ("POST", "/api/backups/x/verify"),
    ("POST", "/api/backups/x/restore"),
    ("DELETE", "/api/backups/x"),
    ("GET", "/api/notifications"),
    ("POST", "/api/notifications/1/read"),
    ("POST", "/api/notifications/1/dismiss"),
    ("GET", "/api/operations"),
    ("GET", "/api/operations/1"),
    ("GET", "/api/operations/1/events"),
    ("GET", "/api/audit"),
    ("GET", "/api/stats"),
];

fn notification(version: &str) -> NotificationRecord {
    NotificationRecord {
        id: 0,
        version: Version::parse(version).unwrap(),
        notification_type: NotificationType::UpdateAvailable,
        message: format!("version {version} is available"),
        metadata: None,
        is_read: false,
        is_dismissed: false,
        user_id: None,
        read_at: None,
        created_at: chrono::Utc::now(),
        event_id: None,
    }
}

#[tokio::test]
async fn every_api_route_refuses_an_anonymous_caller_with_401() {
    let console = Console::new();
    for (method, path) in API_ROUTES
        .iter()
        .chain([("GET", "/api/openapi.json")].iter())
    {
        let request = console
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                path,
                As::Nobody,
            )
            .body(Body::empty())
            .unwrap();
        let reply = console.send(request).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(reply.error_kind(), "unauthenticated", "{method} {path}");
    }
}

#[tokio::test]
async fn a_wrong_bearer_token_is_401() {
    let console = Console::new();
    let reply = console
        .send(
            Request::get(format!("{MOUNT}/api/status"))
                .header(header::AUTHORIZATION, "Bearer guessed")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pages_send_an_anonymous_browser_to_the_login_form_under_the_mount_point() {
    let console = Console::new();
    for page in ["/", "/updates", "/backups", "/notifications", "/updates/1"] {
        let reply = console.get(page, As::Nobody).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(reply.location(), format!("{MOUNT}/login"), "{page}");
    }
    let css = console.get("/assets/app.css", As::Nobody).await;
    assert_eq!(
        css.status,
        StatusCode::OK,
        "the login page needs its stylesheet"
    );
}

#[tokio::test]
async fn a_host_user_who_is_not_an_admin_gets_403_and_the_attempt_is_audited() {
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
    let as_user = |name: &str, path: &str| {
        Request::get(support::url(path))
            .header("x-user", name)
            .body(Body::empty())
            .unwrap()
    };
    let api = console.send(as_user("mallory", "/api/status")).await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(api.error_kind(), "forbidden");
    assert_eq!(
        api.json()["error"]["message"],
        "mallory is not an administrator of the updater"
    );
    let page = console.send(as_user("mallory", "/")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(
        console.send(as_user("root", "/")).await.status,
        StatusCode::OK
    );
    let anonymous = console.get("/", As::Nobody).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "no login URL: a 401 page"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let audit = console
        .fx
        .history
        .audit_log(updater_core::history::Page::first(10))
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.user == "web:mallory" && a.action == "access" && !a.success),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_401_and_the_sixth_failure_in_a_row_is_429() {
    let console = Console::new();
    for attempt in 1..=5 {
        let reply = console.try_login("alice", "wrong").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert!(reply.text().contains("wrong user name or password"));
    }
    let limited = console.try_login("alice", PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    assert!(
        set_cookie_line(&limited.headers, "updater_session").is_none(),
        "even the right password is refused while limited"
    );
}

#[tokio::test]
async fn a_login_without_the_forms_csrf_token_is_refused() {
    let console = Console::new();
    let body = format!(
        "username=alice&password={}&csrf=forged",
        PASSWORD.replace(' ', "+")
    );
    let reply = console
        .send(
            Request::post(format!("{MOUNT}/login"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(set_cookie_line(&reply.headers, "updater_session").is_none());
}

#[tokio::test]
async fn the_session_cookie_is_httponly_samestrict_and_logout_ends_the_session() {
    let mut console = Console::new();
    let reply = console.try_login("alice", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), MOUNT);
    let line = set_cookie_line(&reply.headers, "updater_session").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", &format!("Path={MOUNT}")] {
        assert!(line.contains(flag), "{line}");
    }
    assert!(!line.contains("Secure"), "plain HTTP here: {line}");
    console.login().await;
    assert_eq!(
        console.get("/api/status", As::SessionNoCsrf).await.status,
        StatusCode::OK
    );

    let out = console
        .form("/logout", &[("csrf", &console.csrf.clone().unwrap())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), format!("{MOUNT}/login"));
    let after = console.get("/api/status", As::SessionNoCsrf).await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "the old cookie is refused"
    );
    assert_eq!(
        console.get("/", As::SessionNoCsrf).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn secure_cookies_are_marked_secure() {
    let console = Console::with(|b| b.with_secure_cookies(true), Duration::ZERO);
    let reply = console.try_login("alice", PASSWORD).await;
    let line = set_cookie_line(&reply.headers, "updater_session").unwrap();
    assert!(line.ends_with("; Secure"), "{line}");
}

#[tokio::test]
async fn a_state_change_without_the_csrf_token_is_403_and_changes_nothing() {
    let mut console = Console::new();
    console.login().await;
    let id = console
        .fx
        .history
        .add_notification(&notification("1.1.0"))
        .unwrap()
        .unwrap();

    let no_token = console
        .post(
            &format!("/api/notifications/{id}/read"),
            As::SessionNoCsrf,
            json!({}),
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(no_token.error_kind(), "csrf");

    let forged = console
        .form(
            &format!("/actions/notifications/{id}/read"),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let cross_site = console
        .send(
            console
                .request(
                    Method::POST,
                    &format!("/api/notifications/{id}/read"),
                    As::Session,
                )
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        cross_site.status,
        StatusCode::FORBIDDEN,
        "right token, wrong site"
    );

    let unread = console.get("/api/notifications", As::Token).await.json();
    assert_eq!(unread["notifications"][0]["read"], false, "nothing changed");

    let with_token = console
        .post(
            &format!("/api/notifications/{id}/read"),
            As::Session,
            json!({}),
        )
        .await;
    assert_eq!(with_token.status, StatusCode::OK);
    assert_eq!(with_token.json(), json!({ "changed": [id] }));
}

#[tokio::test]
async fn get_never_changes_state() {
    let mut console = Console::new();
    console.login().await;
    for path in ["/actions/check", "/actions/apply", "/logout", "/api/apply"] {
        let reply = console.get(path, As::SessionNoCsrf).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    assert!(console.state.operations().list().is_empty());
}

#[tokio::test]
async fn apply_returns_at_once_and_its_events_reach_100_percent() {
    let mut console = Console::slow(Duration::from_millis(300));
    console.login().await;
    let started = console
        .post("/api/apply", As::Session, json!({"version": "1.1.0"}))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let op = started.json();
    assert_eq!(op["status"], "running");
    assert_eq!(op["initiated_by"], "web:alice");

    let response = console
        .app
        .clone()
        .oneshot(
            console
                .request(
                    Method::GET,
                    &format!("/api/operations/{}/events", op["id"]),
                    As::Token,
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let events = read_events(response.into_body(), Duration::from_secs(60)).await;
    assert_eq!(
        events.first().unwrap().0,
        "state",
        "the current state first"
    );
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["percent"], 100);
    assert_eq!(done["result"]["outcome"], "updated");
    assert_eq!(done["result"]["to"], "1.1.0");
    let percents: Vec<u64> = events
        .iter()
        .filter(|(name, _)| name == "progress")
        .map(|(_, e)| e["percent"].as_u64().unwrap())
        .collect();
    assert!(!percents.is_empty());
    assert!(
        percents.windows(2).all(|w| w[0] <= w[1]),
        "never backwards: {percents:?}"
    );

    let status = console.get("/api/status", As::Token).await.json();
    assert_eq!(status["current"], "1.1.0");
    assert_eq!(status["operation"], serde_json::Value::Null);
    let history = console.get("/api/history", As::Token).await.json();
    assert_eq!(history["updates"][0]["initiated_by"], "web:alice");
    assert_eq!(history["updates"][0]["status"], "completed");
}

#[tokio::test]
async fn a_second_update_while_one_runs_is_409_naming_the_holder_and_a_late_page_shows_it() {
    let mut console = Console::slow(Duration::from_secs(2));
    console.login().await;
    let first = console
        .post("/api/apply", As::Session, json!({}))
        .await
        .json();
    let second = console.post("/api/apply", As::Token, json!({})).await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.error_kind(), "busy");
    let message = second.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "another operation is running: apply by web:alice (operation {}",
            first["id"]
        )),
        "{message}"
    );
    for path in ["/api/rollback", "/api/backups"] {
        assert_eq!(
            console.post(path, As::Token, json!({})).await.status,
            StatusCode::CONFLICT,
            "{path}"
        );
    }
    // A browser that comes back later sees the update running.
    let page = console.get("/", As::SessionNoCsrf).await.text();
    assert!(page.contains("data-events=\""), "{page}");
    assert!(
        page.contains("http-equiv=\"refresh\""),
        "reloads without JavaScript"
    );
    let done = console.wait(first["id"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "succeeded");
}

#[tokio::test]
async fn a_failed_update_is_rolled_back_and_its_record_shows_every_step_and_the_error() {
    let console = Console::new();
    console.publish_broken("1.2.0");
    let op = console.run("/api/apply", json!({})).await;
    assert_eq!(op["status"], "failed");
    assert_eq!(op["error"]["kind"], "rolled_back");
    let id = op["update_id"]
        .as_i64()
        .expect("the failed update's record");

    let record = console
        .get(&format!("/api/updates/{id}"), As::Token)
        .await
        .json();
    assert_eq!(record["status"], "rolled_back");
    assert_eq!(record["version"], "1.2.0");
    assert!(
        record["error_message"]
            .as_str()
            .unwrap()
            .contains("health_check"),
        "{record}"
    );
    let steps = record["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["name"] == "health_check" && s["outcome"] == "failed"),
        "{steps:?}"
    );
    assert!(steps.iter().all(|s| s["started_at"].is_string()));

    let status = console.get("/api/status", As::Token).await.json();
    assert_eq!(status["current"], "1.0.0", "the old release runs");
    let failed = console
        .get("/api/history?status=rolled_back", As::Token)
        .await
        .json();
    assert_eq!(failed["updates"].as_array().unwrap().len(), 1);
    assert_eq!(failed["updates"][0]["id"], id);
    let completed = console
        .get("/api/history?status=completed", As::Token)
        .await
        .json();
    assert!(completed["updates"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn history_is_paginated_newest_first() {
    let console = Console::new();
    assert_eq!(
        console.run("/api/apply", json!({"version": "1.1.0"})).await["status"],
        "succeeded"
    );
    assert_eq!(
        console.run("/api/rollback", json!({})).await["status"],
        "succeeded"
    );
    assert_eq!(
        console.run("/api/apply", json!({"version": "1.0.0"})).await["status"],
        "failed",
        "a reinstall is refused"
    );
    let first = console.get("/api/history?limit=2", As::Token).await.json();
    assert_eq!(first["updates"].as_array().unwrap().len(), 2);
    assert_eq!(first["has_more"], true);
    let second = console
        .get("/api/history?limit=2&offset=2", As::Token)
        .await
        .json();
    assert_eq!(second["has_more"], false);
    let ids: Vec<i64> = first["updates"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["updates"].as_array().unwrap())
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let console = Console::new();
    for (method, path, what) in [
        ("GET", "/api/updates/999", "update 999 not found"),
        ("GET", "/api/updates/abc", "update \"abc\" not found"),
        ("GET", "/api/operations/7", "operation 7 not found"),
        ("GET", "/api/operations/7/events", "operation 7 not found"),
        ("POST", "/api/backups/nope/verify", "backup nope not found"),
        ("POST", "/api/backups/nope/restore", "backup nope not found"),
        ("DELETE", "/api/backups/nope", "backup nope not found"),
        (
            "POST",
            "/api/notifications/42/read",
            "notification 42 not found",
        ),
        (
            "POST",
            "/api/notifications/42/dismiss",
            "notification 42 not found",
        ),
        (
            "GET",
            "/api/nothing-here",
            "page /api/nothing-here not found",
        ),
    ] {
        let reply = console
            .send(
                console
                    .request(
                        Method::from_bytes(method.as_bytes()).unwrap(),
                        path,
                        As::Token,
                    )
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.json()["error"]["message"], what, "{method} {path}");
    }
}

#[tokio::test]
async fn malformed_input_is_422_naming_the_field() {
    let console = Console::new();
    let cases = [
        (
            console
                .post("/api/apply", As::Token, json!({"version": "1.x"}))
                .await,
            "invalid version: ",
        ),
        (
            console
                .post("/api/apply", As::Token, json!({"versoin": "1.1.0"}))
                .await,
            "invalid body: unknown field `versoin`",
        ),
        (
            console.get("/api/history?limit=0", As::Token).await,
            "invalid limit: must be between 1 and 500",
        ),
        (
            console.get("/api/history?status=bogus", As::Token).await,
            "invalid query: ",
        ),
        (
            console.get("/api/audit?limit=9999", As::Token).await,
            "invalid limit: must be between 1 and 500",
        ),
    ];
    for (reply, message) in cases {
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text()
        );
        assert_eq!(reply.error_kind(), "invalid_input");
        let text = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(text.starts_with(message), "{text}");
    }
    let not_json = console
        .send(
            console
                .request(Method::POST, "/api/check", As::Token)
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        console.state.operations().list().is_empty(),
        "nothing started"
    );
}

#[tokio::test]
async fn rollback_without_a_kept_release_is_409_and_after_an_update_goes_back() {
    let console = Console::new();
    let plan = console.get("/api/rollback", As::Token).await.json();
    assert_eq!(plan, json!({ "plan": null }));
    let refused = console.post("/api/rollback", As::Token, json!({})).await;
    assert_eq!(
        refused.status,
        StatusCode::ACCEPTED,
        "the updater itself refuses"
    );
    let op = console.wait(refused.json()["id"].as_u64().unwrap()).await;
    assert_eq!(op["error"]["kind"], "precondition");
    assert_eq!(
        op["error"]["message"],
        "preflight check `rollback` failed: no previous release is kept (nothing to roll back to)"
    );

    assert_eq!(
        console.run("/api/apply", json!({})).await["status"],
        "succeeded"
    );
    let plan = console.get("/api/rollback", As::Token).await.json();
    assert_eq!(plan["plan"]["to"], "1.0.0");
    assert_eq!(plan["plan"]["database"], "none");
    assert_eq!(plan["plan"]["possible"], true);
    let back = console.run("/api/rollback", json!({})).await;
    assert_eq!(back["status"], "succeeded", "{back}");
    assert_eq!(back["result"]["to"], "1.0.0");
    assert_eq!(
        console.get("/api/status", As::Token).await.json()["current"],
        "1.0.0"
    );
}

#[tokio::test]
async fn backups_are_created_verified_restored_and_deleted() {
    let console = Console::new();
    let created = console
        .run("/api/backups", json!({"description": "before the demo"}))
        .await;
    assert_eq!(created["status"], "succeeded", "{created}");
    let id = created["result"]["backup"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let list = console.get("/api/backups", As::Token).await.json();
    let row = &list["backups"][0];
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["kind"], "files_only");
    assert_eq!(row["description"], "before the demo");
    assert_eq!(row["restorable"], true);
    assert_eq!(
        row["status"],
        serde_json::Value::Null,
        "the fake keeps no catalogue and nothing was verified here yet"
    );

    let verified = console
        .run(&format!("/api/backups/{id}/verify"), json!(null))
        .await;
    assert_eq!(verified["status"], "succeeded", "{verified}");
    let list = console.get("/api/backups", As::Token).await.json();
    assert_eq!(list["backups"][0]["status"], "verified");

    std::fs::write(console.fx.app.join("index.php"), "changed after the backup").unwrap();
    let restored = console
        .run(
            &format!("/api/backups/{id}/restore"),
            json!({"include_preserved": false}),
        )
        .await;
    assert_eq!(restored["status"], "succeeded", "{restored}");
    assert_eq!(restored["result"]["restored"], id.as_str());
    assert_eq!(
        std::fs::read_to_string(console.fx.app.join("index.php")).unwrap(),
        "<?php echo 'app 1.0.0';"
    );

    let deleted = console
        .delete(&format!("/api/backups/{id}"), As::Token)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json(), json!({ "deleted": id }));
    let list = console.get("/api/backups", As::Token).await.json();
    assert_eq!(list["backups"][0]["restorable"], false);
    let again = console
        .post(&format!("/api/backups/{id}/restore"), As::Token, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_kind(), "precondition");
}

#[tokio::test]
async fn notifications_are_listed_marked_read_and_dismissed() {
    let console = Console::new();
    let check = console.run("/api/check", json!({"force": true})).await;
    assert_eq!(check["result"]["latest"], "1.1.0");
    assert_eq!(check["result"]["update_available"], true);
    let list = console.get("/api/notifications", As::Token).await.json();
    let first = &list["notifications"][0];
    assert_eq!(first["type"], "update_available");
    assert_eq!(first["version"], "1.1.0");
    let id = first["id"].as_i64().unwrap();

    let read = console
        .post(
            &format!("/api/notifications/{id}/read"),
            As::Token,
            json!(null),
        )
        .await;
    assert_eq!(read.json(), json!({ "changed": [id] }));
    let unread = console.get("/api/notifications", As::Token).await.json();
    assert!(unread["notifications"].as_array().unwrap().is_empty());
    let all = console
        .get("/api/notifications?all=true", As::Token)
        .await
        .json();
    assert_eq!(all["notifications"][0]["read"], true);

    console
        .post(
            &format!("/api/notifications/{id}/dismiss"),
            As::Token,
            json!(null),
        )
        .await;
    let all = console
        .get("/api/notifications?all=true", As::Token)
        .await
        .json();
    assert_eq!(all["notifications"][0]["dismissed"], true);
}

#[tokio::test]
async fn every_action_is_recorded_with_its_user() {
    let mut console = Console::new();
    console.login().await;
    let id = console
        .fx
        .history
        .add_notification(&notification("1.1.0"))
        .unwrap()
        .unwrap();
    let csrf = console.csrf.clone().unwrap();
    console
        .form(
            &format!("/actions/notifications/{id}/read"),
            &[("csrf", &csrf)],
        )
        .await;
    console
        .form(
            &format!("/actions/notifications/{id}/read"),
            &[("csrf", "forged")],
        )
        .await;
    let op = console
        .form("/actions/check", &[("csrf", &csrf), ("force", "true")])
        .await;
    assert_eq!(op.status, StatusCode::SEE_OTHER);
    assert!(op.location().starts_with(&format!("{MOUNT}/operations/")));
    console.wait(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let audit = console.get("/api/audit", As::Token).await.json();
    let entries: Vec<(String, String, bool)> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["user"].as_str().unwrap().to_string(),
                a["action"].as_str().unwrap().to_string(),
                a["success"].as_bool().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("web:alice", "login", true),
        ("web:alice", "notification_read", true),
        ("web:alice", "csrf", false),
        ("web:alice", "check", true),
    ] {
        let expected = (expected.0.to_string(), expected.1.to_string(), expected.2);
        assert!(entries.contains(&expected), "{expected:?} in {entries:?}");
    }
}

#[tokio::test]
async fn every_answer_has_a_strict_csp_and_refuses_framing() {
    let mut console = Console::new();
    console.login().await;
    for path in ["/", "/login", "/api/status", "/assets/app.js", "/nothing"] {
        let reply = console.get(path, As::SessionNoCsrf).await;
        let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(
            reply.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{path}"
        );
    }
    let page = console.get("/", As::SessionNoCsrf).await.text();
    assert!(!page.contains("<script>"), "no inline script");
    assert!(!page.contains("style="), "no inline style");
}

#[tokio::test]
async fn no_page_or_json_shows_a_secret() {
    let mut console = Console::new();
    console.login().await;
    console.run("/api/apply", json!({})).await;
    let cookie = console.cookie.clone().unwrap();
    let session_id = cookie
        .split('=')
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    for path in [
        "/",
        "/updates",
        "/backups",
        "/notifications",
        "/operations/1",
        "/updates/1",
        "/api/status",
        "/api/history",
        "/api/operations/1",
        "/api/audit",
        "/api/openapi.json",
    ] {
        let body = console.get(path, As::SessionNoCsrf).await.text();
        for secret in [PASSWORD, TOKEN, &session_id, &support::password_hash()] {
            assert!(!body.contains(secret), "{path} shows a secret");
        }
    }
}

#[tokio::test]
async fn changelogs_are_rendered_and_sanitised() {
    let mut console = Console::new();
    console.login().await;
    let archive = console.fx.root.join("evil.tar.gz");
    std::fs::write(
        &archive,
        updater_testkit::archive::tar_gz(&[("VERSION".to_string(), b"1.3.0".to_vec())]),
    )
    .unwrap();
    console
        .fx
        .source()
        .publish(
            &Version::parse("1.3.0").unwrap(),
            &archive,
            "## Fixes\n\n* **faster** <script>alert('x')</script> [home](javascript:alert(1)) <img src=x onerror=alert(1)>",
            None,
        )
        .unwrap();
    console.run("/api/check", json!({"force": true})).await;
    let page = console.get("/", As::SessionNoCsrf).await.text();
    assert!(
        page.contains("<h2>Fixes</h2>") || page.contains("<h2>Fixes"),
        "{page}"
    );
    assert!(page.contains("<strong>faster</strong>"));
    for bad in ["<script>alert", "javascript:", "onerror"] {
        assert!(!page.contains(bad), "{bad} in {page}");
    }
    let updates = console.get("/updates", As::SessionNoCsrf).await.text();
    for version in ["Version 1.1.0", "Version 1.3.0"] {
        assert!(
            updates.contains(version),
            "every release up to the target: {version}"
        );
    }
}

#[tokio::test]
async fn pages_render_for_every_state_and_link_under_the_mount_point() {
    let mut console = Console::new();
    console.login().await;
    console.publish_broken("1.2.0");
    console.run("/api/check", json!({"force": true})).await;
    console.run("/api/backups", json!({})).await;
    let failed = console.run("/api/apply", json!({})).await;
    let id = failed["update_id"].as_i64().unwrap();
    for (path, needle) in [
        ("/", "Update now to 1.2.0"),
        ("/updates", "rolled_back"),
        (&format!("/updates/{id}") as &str, "id=\"update-error\""),
        ("/backups", "data-action=\"verify\""),
        ("/notifications", "update_available"),
        ("/operations/1", "succeeded"),
        (
            "/confirm/update?version=1.2.0",
            "Update the application from",
        ),
        (
            "/updates?status=rolled_back",
            &format!("data-update-id=\"{id}\""),
        ),
    ] {
        let reply = console.get(path, As::SessionNoCsrf).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let text = reply.text();
        assert!(text.contains(needle), "{path} lacks {needle}");
        assert!(
            text.contains(&format!("href=\"{MOUNT}/assets/app.css\"")),
            "{path}"
        );
    }
    let missing = console.get("/confirm/rollback", As::SessionNoCsrf).await;
    assert_eq!(missing.status, StatusCode::CONFLICT, "no kept release");
    let bad = console
        .get("/updates?status=bogus", As::SessionNoCsrf)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}
