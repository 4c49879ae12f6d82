//! The console around the test kit's application: an updater at 1.0.0 with
//! 1.1.0 published, a files backup, notifications in history, mounted
//! under `/admin/updates`, and a client that signs in like a browser.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use updater_core::backup::BackupStrategy;
use updater_core::command::ShellCommand;
use updater_core::health::CommandHealthCheck;
use updater_core::notify::StoreNotifier;
use updater_core::pipeline::UpdaterConfig;
use updater_testkit::app::Fixture;
use updater_testkit::fakes::FakeFilesBackup;
use updater_web::WebState;
use updater_web::auth::{Admins, ApiToken, hash_password};

pub const MOUNT: &str = "/admin/updates";
pub const PASSWORD: &str = "correct horse battery staple";
pub const TOKEN: &str = "token-for-scripts-0123456789";

/// One argon2id hash for every test (hashing is slow on purpose).
pub fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(PASSWORD).unwrap())
        .clone()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The error kind of a JSON error body.
    pub fn error_kind(&self) -> String {
        self.json()["error"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum As {
    Nobody,
    Token,
    /// The signed-in browser session (cookie), with its CSRF token.
    Session,
    /// The session cookie without the CSRF token.
    SessionNoCsrf,
}

pub struct Console {
    pub fx: Fixture,
    pub state: WebState,
    pub app: axum::Router,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl Console {
    /// Built-in login (alice), an API token (ci), health check: no `broken` file.
    pub fn new() -> Console {
        Self::with(|builder| builder, Duration::ZERO)
    }

    /// Like [`new`](Self::new), with a health check that takes `slow` (to
    /// keep an update running while a test acts).
    pub fn slow(slow: Duration) -> Console {
        Self::with(|builder| builder, slow)
    }

    pub fn with(
        web: impl FnOnce(updater_web::WebStateBuilder) -> updater_web::WebStateBuilder,
        slow: Duration,
    ) -> Console {
        Self::with_backup(web, slow, |fx| {
            Arc::new(FakeFilesBackup {
                app: fx.app.clone(),
                store: fx.root.join("backups"),
                db: None,
            })
        })
    }

    /// Like [`with`](Self::with), with the manual backup strategy `backup` makes.
    pub fn with_backup(
        web: impl FnOnce(updater_web::WebStateBuilder) -> updater_web::WebStateBuilder,
        slow: Duration,
        backup: impl FnOnce(&Fixture) -> Arc<dyn BackupStrategy>,
    ) -> Console {
        Self::with_parts(web, slow, backup, |_| {})
    }

    /// Like [`with_backup`](Self::with_backup), the updater's configuration
    /// changed by `configure` last.
    pub fn with_parts(
        web: impl FnOnce(updater_web::WebStateBuilder) -> updater_web::WebStateBuilder,
        slow: Duration,
        backup: impl FnOnce(&Fixture) -> Arc<dyn BackupStrategy>,
        configure: impl FnOnce(&mut UpdaterConfig),
    ) -> Console {
        let fx = Fixture::new();
        let health = if slow.is_zero() {
            "test ! -f broken".to_string()
        } else {
            format!("sleep {} && test ! -f broken", slow.as_secs_f64())
        };
        let updater = fx
            .builder()
            .with_notifier(Arc::new(StoreNotifier::new(fx.history.clone())))
            .with_health_check(Arc::new(CommandHealthCheck::new(ShellCommand::new(health))))
            .configure(|c| {
                c.health_timeout = Duration::from_secs(10) + slow;
                c.health_interval = Duration::from_millis(20);
                configure(c);
            })
            .build()
            .unwrap();
        let backup = backup(&fx);
        let builder = WebState::builder(Arc::new(updater))
            .with_admins(Admins::new().with_admin("alice", password_hash()).unwrap())
            .with_api_token(ApiToken::from_sha256_hex("ci", &ApiToken::digest(TOKEN)).unwrap())
            .with_manual_backup(backup);
        let state = web(builder).build().unwrap();
        let app = mount(state.clone());
        Console {
            fx,
            state,
            app,
            cookie: None,
            csrf: None,
        }
    }

    /// Publishes 1.2.0 whose health check fails.
    pub fn publish_broken(&self, version: &str) {
        self.fx.publish(version, &[("broken", "yes")]);
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn request(&self, method: Method, path: &str, who: As) -> axum::http::request::Builder {
        let mut builder = Request::builder().method(method).uri(url(path));
        match who {
            As::Nobody => {}
            As::Token => builder = builder.header(header::AUTHORIZATION, format!("Bearer {TOKEN}")),
            As::Session | As::SessionNoCsrf => {
                let cookie = self.cookie.clone().expect("sign in first");
                builder = builder.header(header::COOKIE, cookie);
                if matches!(who, As::Session) {
                    builder = builder.header("x-csrf-token", self.csrf.clone().unwrap());
                }
            }
        }
        builder
    }

    pub async fn get(&self, path: &str, who: As) -> Reply {
        self.send(
            self.request(Method::GET, path, who)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, who: As, body: Value) -> Reply {
        self.send(
            self.request(Method::POST, path, who)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str, who: As) -> Reply {
        self.send(
            self.request(Method::DELETE, path, who)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Posts an HTML form (fields url-encoded) with the session cookie.
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(url(path))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = &self.cookie {
            builder = builder.header(header::COOKIE, cookie);
        }
        self.send(builder.body(Body::from(body)).unwrap()).await
    }

    /// Fetches the login form: its CSRF token and login cookie.
    pub async fn login_form(&self) -> (String, String) {
        let page = self.get("/login", As::Nobody).await;
        assert_eq!(page.status, StatusCode::OK);
        let cookie = set_cookie(&page.headers, "updater_login").expect("login cookie");
        (
            hidden_field(&page.text(), "csrf"),
            format!("updater_login={cookie}"),
        )
    }

    /// Posts the login form with `password`.
    pub async fn try_login(&self, user: &str, password: &str) -> Reply {
        let (csrf, cookie) = self.login_form().await;
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("username", user), ("password", password), ("csrf", &csrf)])
            .finish();
        self.send(
            Request::post(format!("{MOUNT}/login"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, cookie)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Signs in as alice and keeps the session cookie and its CSRF token.
    pub async fn login(&mut self) {
        let reply = self.try_login("alice", PASSWORD).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let session = set_cookie(&reply.headers, "updater_session").expect("session cookie");
        self.cookie = Some(format!("updater_session={session}"));
        let dashboard = self.get("/", As::SessionNoCsrf).await;
        assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.text());
        self.csrf = Some(hidden_field(&dashboard.text(), "csrf"));
    }

    /// Waits for operation `id` to end; its final JSON.
    pub async fn wait(&self, id: u64) -> Value {
        for _ in 0..600 {
            let op = self
                .get(&format!("/api/operations/{id}"), As::Token)
                .await
                .json();
            if op["status"] != "running" {
                return op;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("operation {id} did not end");
    }

    /// Starts `path` (POST) with the token and waits for its end.
    pub async fn run(&self, path: &str, body: Value) -> Value {
        let started = self.post(path, As::Token, body).await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
        self.wait(started.json()["id"].as_u64().unwrap()).await
    }
}

/// The console of `state` under [`MOUNT`].
pub fn mount(state: WebState) -> axum::Router {
    axum::Router::new().nest(MOUNT, updater_web::router(state))
}

/// The URL of `path` under the mount point (`/` is the mount point itself).
pub fn url(path: &str) -> String {
    if path == "/" {
        MOUNT.to_string()
    } else {
        format!("{MOUNT}{path}")
    }
}

/// The value of cookie `name` set by the response.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (k, value) = first.split_once('=')?;
            (k == name).then(|| value.to_string())
        })
}

/// The full `Set-Cookie` line of cookie `name`.
pub fn set_cookie_line(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The value of the first hidden input `name` of a page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Reads server-sent events from a response body until `done` (or the
/// deadline): (event name, JSON data) pairs.
pub async fn read_events(body: Body, deadline: Duration) -> Vec<(String, Value)> {
    let mut body = body;
    let mut buffer = String::new();
    let mut events = Vec::new();
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let frame = tokio::time::timeout_at(end, body.frame()).await;
        let Ok(Some(Ok(frame))) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(&data));
        while let Some(at) = buffer.find("\n\n") {
            let block: String = buffer.drain(..at + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if name.is_empty() {
                continue;
            }
            let value = serde_json::from_str(&data).unwrap_or(Value::Null);
            let done = name == "done";
            events.push((name, value));
            if done {
                return events;
            }
        }
    }
    events
}
