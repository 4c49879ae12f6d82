//! `updater serve` and `updater web hash-password` as an operator runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

/// `GET path` on `base` (plain HTTP/1.1), with extra header lines: status and body.
pub fn http_get(base: &str, path: &str, headers: &str) -> (u16, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn hash(f: &support::Fixture, password: &str) -> String {
    let mut child = f
        .command()
        .args(["web", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn hash_password_reads_standard_input_and_prints_an_argon2id_hash() {
    let f = support::fixture();
    let hash = hash(&f, "s3cret pw");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains("s3cret"));
}

#[test]
fn serve_answers_with_a_token_refuses_anonymous_callers_and_stops_on_sigterm() {
    let f = support::fixture();
    // The configuration holds only the SHA-256 of the token.
    let digest = updater_web::auth::ApiToken::digest("ci-token");
    f.write_config(&format!(
        "\n[web]\nadmins = [{{ name = \"alice\", password_hash = \"{}\" }}]\napi_tokens = [{{ name = \"ci\", sha256 = \"{digest}\" }}]\n",
        hash(&f, "pw")
    ));
    let served = f.serve(&[]);
    let (status, body) = http_get(
        &served.base,
        "/api/status",
        "Authorization: Bearer ci-token\r\n",
    );
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["current"], "1.0.0");
    let (status, _) = http_get(&served.base, "/api/status", "");
    assert_eq!(status, 401);
    let (status, page) = http_get(&served.base, "/login", "");
    assert_eq!(status, 200);
    assert!(page.contains("Sign in"));
    let (code, stdout) = served.stop();
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["stopped"], true);
}

#[test]
fn serve_refuses_a_non_loopback_address_without_the_flag() {
    let f = support::fixture();
    f.write_config(&format!(
        "\n[web]\nadmins = [{{ name = \"alice\", password_hash = \"{}\" }}]\n",
        hash(&f, "pw")
    ));
    let (json, code) = f.json(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{json}");
    assert_eq!(json["error"]["kind"], "usage");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("refusing to serve the console on 0.0.0.0:0 without TLS"),
        "{json}"
    );
}

#[test]
fn serve_without_an_admin_or_a_token_is_a_configuration_error() {
    let f = support::fixture();
    let (json, code) = f.json(&["serve"]);
    assert_eq!(code, 2, "{json}");
    assert_eq!(json["error"]["kind"], "config_value");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("key `web.admins`"),
        "{json}"
    );
}

#[test]
fn a_password_hash_that_is_not_argon2id_is_refused_naming_the_key() {
    let f = support::fixture();
    f.write_config("\n[web]\nadmins = [{ name = \"alice\", password_hash = \"plain\" }]\n");
    let (json, code) = f.json(&["config", "check"]);
    assert_eq!(code, 2, "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("key `web.admins`"), "{message}");
    assert!(
        !message.contains("plain\""),
        "the hash is not repeated: {message}"
    );
}

#[test]
fn with_a_certificate_serve_speaks_https_and_marks_cookies_secure() {
    use updater_testkit::services::{has_program, unavailable};
    for program in ["openssl", "curl"] {
        if !has_program(program) {
            unavailable("the HTTPS test", &format!("needs {program}"));
            return;
        }
    }
    let f = support::fixture();
    let (cert, key) = (f.dir.path().join("cert.pem"), f.dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    f.write_config(&format!(
        "\n[web]\nadmins = [{{ name = \"alice\", password_hash = \"{}\" }}]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
        hash(&f, "pw")
    ));
    let served = f.serve(&[]);
    assert!(
        served.base.starts_with("https://127.0.0.1:"),
        "{}",
        served.base
    );
    let login = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .args(["-D", "-", "-o", "/dev/null"])
        .arg(format!("{}/login", served.base))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&login.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: updater_login="))
        .unwrap_or_default();
    assert!(cookie.contains("; secure"), "{head}");
    let plain = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "{}/login",
            served.base.replace("https://", "http://")
        ))
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&plain.stdout),
        "200",
        "no plain HTTP"
    );
    let (code, _) = served.stop();
    assert_eq!(code, 0);
}

#[test]
fn tls_cert_without_key_is_a_configuration_error() {
    let f = support::fixture();
    f.write_config("\n[web]\ntls_cert = \"cert.pem\"\n");
    let (json, code) = f.json(&["config", "check"]);
    assert_eq!(code, 2, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("key `web.tls_cert`: tls_cert and tls_key go together"),
        "{json}"
    );
}

#[test]
fn the_consoles_status_and_dashboard_name_a_notification_channel_that_fails() {
    use updater_testkit::webhook::{Plan, WebhookReceiver};
    let f = support::fixture();
    let hook = WebhookReceiver::start(None);
    hook.plan(std::iter::repeat_n(Plan::Status(500), 100));
    let digest = updater_web::auth::ApiToken::digest("ci-token");
    f.write_config(&format!(
        r#"delivery_wait_secs = 2
retry_first_delay_secs = 30
retry_max_delay_secs = 60

[[notifications.channels]]
name = "ops-hook"
kind = "webhook"
url = "{url}"
events = ["problems", "update_completed"]

[web]
api_tokens = [{{ name = "ci", sha256 = "{digest}" }}]
"#,
        url = hook.url()
    ));
    // An update whose health check fails: rolled back, a problem to tell.
    f.server.publish("1.1.0", false);
    let applied = f.run(&["--json", "apply", "--yes", "--no-backup"]);
    assert_eq!(applied.code, 1, "{}", applied.stdout);
    assert!(
        hook.requests() >= 1,
        "the webhook was tried and answered 500"
    );

    let served = f.serve(&[]);
    let token = "Authorization: Bearer ci-token\r\n";
    let (status, body) = http_get(&served.base, "/api/status", token);
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let channels = body["notification_channels"].as_array().unwrap();
    let failing = channels
        .iter()
        .find(|c| c["channel"] == "ops-hook")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(failing["failing"], true, "{body}");
    assert_eq!(failing["pending"], 1, "{body}");
    assert!(
        failing["last_error"].as_str().unwrap().contains("500"),
        "{failing}"
    );
    let (status, page) = http_get(&served.base, "/", token);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Notification channels failing"), "{page}");
    assert!(page.contains("data-channel=\"ops-hook\""), "{page}");
    let (code, _) = served.stop();
    assert_eq!(code, 0);
}
