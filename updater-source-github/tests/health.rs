//! `HttpHealthCheck` against a local application stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Reply, TestServer};
use updater_core::health::{HealthCheck, HealthContext};
use updater_core::version::Version;
use updater_source_github::HttpHealthCheck;

const SECRET: &str = "bypass-s3cret-value";

fn context(timeout: Duration, secret: Option<&str>) -> HealthContext {
    HealthContext {
        app_dir: std::env::temp_dir(),
        version: Version::new(1, 2, 0),
        deadline: Instant::now() + timeout,
        bypass_secret: secret.map(str::to_string),
        children: None,
    }
}

fn check(url: String) -> updater_source_github::HttpHealthCheckBuilder {
    HttpHealthCheck::builder(url)
}

#[test]
fn a_matching_status_and_body_is_healthy_and_the_bypass_secret_is_sent() {
    let app = TestServer::start(|request| {
        if request.header("x-maintenance-bypass") == Some(SECRET) {
            Reply::json(200, "{\"status\":\"ok\"}")
        } else {
            Reply::new(503)
        }
    });
    let check = check(app.url("/health"))
        .with_body_contains("\"ok\"")
        .build()
        .unwrap();
    check
        .check(&context(Duration::from_secs(5), Some(SECRET)))
        .unwrap();
    assert_eq!(app.requests().len(), 1);
    assert_eq!(check.describe(), format!("HTTP GET {}", app.url("/health")));
}

/// A check is one probe: the pipeline retries (core owns the loop).
#[test]
fn each_check_is_one_request_and_passes_once_the_application_is_up() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = TestServer::start({
        let calls = Arc::clone(&calls);
        move |_| {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Reply::new(503)
            } else {
                Reply::new(204)
            }
        }
    });
    let check = check(app.url("/up"))
        .with_expected_status(204)
        .build()
        .unwrap();
    for _ in 0..2 {
        let error = check
            .check(&context(Duration::from_secs(5), None))
            .unwrap_err();
        assert!(error.to_string().contains("HTTP 503"), "{error}");
    }
    check.check(&context(Duration::from_secs(5), None)).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one request per check");
    assert!(
        app.requests()
            .iter()
            .all(|r| r.header("x-maintenance-bypass").is_none())
    );
}

#[test]
fn a_wrong_status_is_unhealthy_without_leaking_the_secret() {
    let app = TestServer::start(|_| Reply::json(500, format!("{{\"echo\":\"{SECRET}\"}}")));
    let check = check(app.url("/health")).build().unwrap();
    let started = Instant::now();
    let error = check
        .check(&context(Duration::from_millis(300), Some(SECRET)))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let text = format!("{error} {error:?}");
    assert!(
        text.contains("HTTP 500 (expected 200)") && text.contains("/health"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(app.requests().len(), 1, "one probe");
}

#[test]
fn a_body_without_the_expected_text_is_unhealthy() {
    let app = TestServer::start(|_| Reply::json(200, "{\"status\":\"degraded\"}"));
    let check = check(app.url("/health"))
        .with_body_contains("\"ok\"")
        .build()
        .unwrap();
    let error = check
        .check(&context(Duration::from_millis(100), None))
        .unwrap_err();
    assert!(error.to_string().contains("does not contain"), "{error}");
}

#[test]
fn redirects_are_not_followed() {
    let app = TestServer::start(|_| Reply::new(302).header("location", "/login"));
    let check = check(app.url("/health")).build().unwrap();
    let error = check
        .check(&context(Duration::from_millis(100), None))
        .unwrap_err();
    assert!(error.to_string().contains("HTTP 302"), "{error}");
    assert!(app.requests().iter().all(|r| r.path() == "/health"));
}

#[test]
fn an_unreachable_application_fails_by_the_deadline() {
    let url = TestServer::start(|_| Reply::new(200)).url("/health");
    let check = check(url).build().unwrap();
    let started = Instant::now();
    assert!(
        check
            .check(&context(Duration::from_millis(200), None))
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn plain_http_is_refused_outside_loopback_unless_allowed() {
    assert!(
        HttpHealthCheck::builder("http://app.internal/health")
            .build()
            .is_err()
    );
    assert!(
        HttpHealthCheck::builder("http://app.internal/health")
            .with_insecure_host("app.internal")
            .build()
            .is_ok()
    );
    assert!(
        HttpHealthCheck::builder("https://app.example.com/health")
            .build()
            .is_ok()
    );
}

#[test]
fn an_application_on_another_loopback_address_can_be_checked_over_plain_http() {
    let app = TestServer::start_on(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)),
        |_| Reply::new(200),
    )
    .unwrap();
    let check = check(app.url("/health")).build().unwrap();
    check.check(&context(Duration::from_secs(5), None)).unwrap();
    assert_eq!(app.requests().len(), 1);
}

/// The application stand-in of the conformance suite: 200, 500, or a
/// response that never comes.
struct HttpTarget {
    state: Arc<std::sync::Mutex<updater_core::conformance::health::TargetState>>,
    app: TestServer,
}

impl updater_core::conformance::health::HealthTarget for HttpTarget {
    fn check(&self) -> Arc<dyn HealthCheck> {
        Arc::new(check(self.app.url("/health")).build().unwrap())
    }
    fn app_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir()
    }
    fn set(&self, state: updater_core::conformance::health::TargetState) {
        *self.state.lock().unwrap() = state;
    }
}

#[test]
fn http_health_check_conforms() {
    use updater_core::conformance::health::TargetState;
    let state = Arc::new(std::sync::Mutex::new(TargetState::Healthy));
    let app = TestServer::start({
        let state = Arc::clone(&state);
        move |_| {
            let now = *state.lock().unwrap();
            match now {
                TargetState::Healthy => Reply::json(200, "{\"status\":\"ok\"}"),
                TargetState::Unhealthy => Reply::new(500),
                TargetState::Hanging => {
                    std::thread::sleep(Duration::from_secs(20));
                    Reply::new(200)
                }
            }
        }
    });
    updater_core::conformance::health::run(&HttpTarget { state, app });
}
