//! The admin console inside an application of your own: a small axum
//! application with its own login mounts `updater-web` under
//! `/admin/updates` and tells it who is signed in (delegation, no second
//! login). Releases come from a local release server; 1.1.0 is published.
//!
//! Run: `cargo run --example web` and open the printed URL (Ctrl-C stops).
//! `cargo run --example web -- --demo-seconds 2` runs briefly: it signs in
//! through its own login, reads the console's status, and stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Form;
use axum::http::{HeaderMap, header, request::Parts};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use updater_backup::FileBackup;
use updater_core::command::ShellCommand;
use updater_core::health::CommandHealthCheck;
use updater_core::pipeline::UpdaterBuilder;
use updater_source_github::ManifestSource;
use updater_testkit::cli::ReleaseServer;
use updater_web::WebState;
use updater_web::auth::{HostAuth, User};

/// The application's own sessions: cookie value -> user name.
#[derive(Clone, Default)]
struct Sessions(Arc<Mutex<HashMap<String, String>>>);

impl Sessions {
    fn user_of(&self, headers: &HeaderMap) -> Option<String> {
        let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
        let value = cookie
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == "demo_session")?
            .1;
        self.0.lock().ok()?.get(value).cloned()
    }
}

/// How the console learns who is signed in: from the application's session.
struct AppAuth(Sessions);

impl HostAuth for AppAuth {
    fn user(&self, parts: &Parts) -> Option<User> {
        // Here every signed-in user is an admin; a real application asks its roles.
        self.0.user_of(&parts.headers).map(User::admin)
    }

    fn login_url(&self) -> Option<String> {
        Some("/login".to_string())
    }
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

const DEMO_USER: &str = "admin";
const DEMO_PASSWORD: &str = "demo-password";

async fn home() -> Html<&'static str> {
    Html(
        "<!doctype html><title>Demo app</title><h1>Demo application</h1>\
         <p><a href=\"/admin/updates\">Admin: updates</a> · <a href=\"/login\">Sign in</a></p>",
    )
}

async fn login_form() -> Html<&'static str> {
    Html(
        "<!doctype html><title>Sign in</title><h1>Sign in to the demo app</h1>\
         <form method=post action=/login><label>User <input name=username></label>\
         <label>Password <input name=password type=password></label><button>Sign in</button></form>",
    )
}

async fn login(sessions: Sessions, Form(form): Form<Login>) -> Response {
    // A real application checks a password hash; this demo has one account.
    if form.username != DEMO_USER || form.password != DEMO_PASSWORD {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            "wrong user or password",
        )
            .into_response();
    }
    let value = format!("{:x}", rand_id());
    if let Ok(mut map) = sessions.0.lock() {
        map.insert(value.clone(), form.username);
    }
    let mut response = Redirect::to("/admin/updates").into_response();
    if let Ok(cookie) = format!("demo_session={value}; Path=/; HttpOnly; SameSite=Strict").parse() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A session id (the demo's; use a CSPRNG in an application).
fn rand_id() -> u128 {
    let mut bytes = [0u8; 16];
    if let Ok(mut file) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = file.read_exact(&mut bytes);
    }
    u128::from_le_bytes(bytes)
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo_seconds: Option<u64> = std::env::args()
        .skip_while(|a| a != "--demo-seconds")
        .nth(1)
        .map(|n| n.parse())
        .transpose()?;

    // The application at 1.0.0 and a release server publishing 1.0.0 and 1.1.0.
    let work = tempfile::tempdir()?;
    let app_dir = work.path().join("app");
    std::fs::create_dir_all(app_dir.join("public"))?;
    std::fs::write(app_dir.join("VERSION"), "1.0.0")?;
    std::fs::write(app_dir.join("public/index.html"), "<h1>release 1.0.0</h1>")?;
    std::fs::write(app_dir.join("health-ok"), "ok")?;
    std::fs::write(app_dir.join(".env"), "APP_KEY=kept")?;
    let releases = ReleaseServer::start();
    releases.publish("1.0.0", true);
    releases.publish_with_notes(
        "1.1.0",
        true,
        "## New\n\n* A **faster** front page\n* The admin console",
    );

    let files_backup =
        Arc::new(FileBackup::builder(&app_dir, work.path().join("backups")).build()?);
    let updater = UpdaterBuilder::new(&app_dir)
        .with_source(ManifestSource::builder(releases.manifest_url()).build()?)
        .with_files_backup(files_backup.clone())
        .with_health_check(Arc::new(CommandHealthCheck::new(ShellCommand::new(
            "test -f health-ok",
        ))))
        .build()?;
    updater.recover()?;

    let sessions = Sessions::default();
    let console = WebState::builder(Arc::new(updater))
        .with_host_auth(Arc::new(AppAuth(sessions.clone())))
        .with_manual_backup(files_backup)
        .with_title("Demo app updates")
        .build()?;
    let app = axum::Router::new()
        .route("/", get(home))
        .route(
            "/login",
            get(login_form).post({
                let sessions = sessions.clone();
                move |form| login(sessions.clone(), form)
            }),
        )
        .nest("/admin/updates", updater_web::router(console));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    println!("demo application on http://{address}/ (sign in as {DEMO_USER} / {DEMO_PASSWORD})");
    println!("admin console at http://{address}/admin/updates");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            match demo_seconds {
                Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        })
        .await
    });
    if demo_seconds.is_some() {
        let status = tokio::task::spawn_blocking(move || self_test(address))
            .await?
            .map_err(|e| e.to_string())?;
        println!("signed in through the application's login; the console says: {status}");
    }
    server.await??;
    Ok(())
}

/// Signs in through the application's own login and reads the console's status.
fn self_test(address: SocketAddr) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    use std::io::{Read, Write};
    let send = |request: String| -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    let body = format!("username={DEMO_USER}&password={DEMO_PASSWORD}");
    let login = send(format!(
        "POST /login HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))?;
    let cookie = login
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .ok_or("the application's login set no cookie")?
        .to_string();
    let status = send(format!(
        "GET /admin/updates/api/status HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    ))?;
    let json = status.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(json)?;
    Ok(format!("running {}", value["current"]))
}
