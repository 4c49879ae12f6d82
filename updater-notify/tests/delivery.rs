//! Delivery through the outbox: real SMTP servers and a webhook receiver on
//! 127.0.0.1, a SQLite outbox, retries, give-up, a process killed between
//! writing and delivering, and no duplicates in the normal case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

use updater_core::history::{HistoryStore, NotificationFilter, NotificationType};
use updater_core::notify::{Notification, Notifier, StoreNotifier};
use updater_core::outbox::{DeliveryFilter, DeliveryStatus, NotificationOutbox};
use updater_core::secret::Secret;
use updater_core::version::Version;
use updater_notify::{
    Dispatcher, EmailChannel, EventSet, NotifierChannel, NotifyError, RetryPolicy, Security,
    WebhookChannel,
};
use updater_store_diesel::DieselHistoryStore;
use updater_testkit::mail::{Aiosmtpd, SmtpReceiver, TlsMode};
use updater_testkit::webhook::{Plan, WebhookReceiver};

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_attempts: 10,
        give_up_after: Duration::from_secs(60),
    }
}

fn failed(update: i64) -> Notification {
    Notification::new(
        NotificationType::UpdateRolledBack,
        Version::new(1, 2, 0),
        "update from 1.1.0 to 1.2.0 failed at health_check: the health check failed; undone, 1.1.0 is running",
    )
    .with_event_id(format!("update-{update}:update_rolled_back"))
    .with_metadata(serde_json::json!({ "update_id": update, "step": "health_check" }))
}

fn webhook(receiver: &WebhookReceiver, timeout: Duration) -> Arc<WebhookChannel> {
    Arc::new(
        WebhookChannel::builder("webhook", Secret::new(receiver.url()))
            .with_signing_secret(Secret::new("hook-secret"))
            .with_timeout(timeout)
            .build()
            .unwrap(),
    )
}

/// Delivers until nothing is pending or `within` passed.
fn deliver_until_done(dispatcher: &Dispatcher, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        dispatcher.deliver_due(Duration::from_secs(10)).unwrap();
        let pending = dispatcher
            .outbox()
            .deliveries(&DeliveryFilter {
                status: Some(DeliveryStatus::Pending),
                ..DeliveryFilter::default()
            })
            .unwrap();
        if pending.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn an_email_over_starttls_arrives_with_subject_headers_text_and_html_parts() {
    let Some(server) = Aiosmtpd::start(TlsMode::StartTls, "updater", "s3cret-pw") else {
        return;
    };
    let email = EmailChannel::builder("email", "localhost")
        .with_port(server.port())
        .with_root_certificate(server.ca_file())
        .with_credentials("updater", Secret::new("s3cret-pw"))
        .with_from("Updater <updater@example.com>")
        .with_to(["ops@example.com", "alice@example.com"])
        .with_context(updater_notify::message::Context {
            app_name: Some("shop".into()),
            console_url: Some("https://shop.example.com/admin/updates".into()),
        })
        .build()
        .unwrap();
    updater_notify::Channel::send(&email, &failed(3)).unwrap();
    let mails = server.wait_for(1, Duration::from_secs(5));
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail.subject(),
        "[shop] Update to 1.2.0 failed and was rolled back"
    );
    assert_eq!(
        mail.header("X-Updater-Event-Id").as_deref(),
        Some("update-3:update_rolled_back")
    );
    assert!(
        mail.header("Message-ID")
            .is_some_and(|id| id.contains("update-3-update_rolled_back"))
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Updater <updater@example.com>")
    );
    assert!(
        mail.header("To")
            .is_some_and(|to| to.contains("alice@example.com"))
    );
    assert_eq!(
        mail.content_types(),
        ["multipart/alternative", "text/plain", "text/html"]
    );
    let text = mail.text().unwrap();
    assert!(
        text.contains("What to do: The previous release is running again"),
        "{text}"
    );
    assert!(text.contains("Web console: https://shop.example.com/admin/updates"));
    assert!(
        mail.html()
            .unwrap()
            .contains("<a href=\"https://shop.example.com/admin/updates\">")
    );
}

#[test]
fn an_email_over_implicit_tls_arrives() {
    let Some(server) = Aiosmtpd::start(TlsMode::Implicit, "updater", "s3cret-pw") else {
        return;
    };
    let email = EmailChannel::builder("email", "localhost")
        .with_port(server.port())
        .with_security(Security::Tls)
        .with_root_certificate(server.ca_file())
        .with_credentials("updater", Secret::new("s3cret-pw"))
        .with_from("updater@example.com")
        .with_to(["ops@example.com"])
        .build()
        .unwrap();
    let answer = updater_notify::Channel::send(&email, &failed(4)).unwrap();
    assert!(answer.starts_with("250"), "{answer}");
    assert_eq!(server.wait_for(1, Duration::from_secs(5)).len(), 1);
}

#[test]
fn a_wrong_smtp_password_is_a_clear_auth_error_without_the_password() {
    let Some(server) = Aiosmtpd::start(TlsMode::StartTls, "updater", "right-pw") else {
        return;
    };
    let email = EmailChannel::builder("ops-mail", "localhost")
        .with_port(server.port())
        .with_root_certificate(server.ca_file())
        .with_credentials("updater", Secret::new("wrong-pw-123"))
        .with_from("updater@example.com")
        .with_to(["ops@example.com"])
        .build()
        .unwrap();
    let error = updater_notify::Channel::send(&email, &failed(5)).unwrap_err();
    assert!(
        matches!(&error, NotifyError::Auth { channel, user, .. } if channel == "ops-mail" && user == "updater"),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("refused the login of updater"), "{shown}");
    assert!(!shown.contains("wrong-pw-123"), "{shown}");
    assert!(server.mails().is_empty());
}

#[test]
fn an_smtp_server_that_is_down_is_retried_and_gets_the_mail_once_it_is_back() {
    let Some(mut server) = Aiosmtpd::start(TlsMode::StartTls, "updater", "s3cret-pw") else {
        return;
    };
    let email = EmailChannel::builder("email", "localhost")
        .with_port(server.port())
        .with_root_certificate(server.ca_file())
        .with_credentials("updater", Secret::new("s3cret-pw"))
        .with_from("updater@example.com")
        .with_to(["ops@example.com"])
        .with_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let dispatcher = Dispatcher::builder(Arc::new(updater_core::outbox::InMemoryOutbox::new()))
        .with_channel(Arc::new(email), EventSet::all())
        .with_retry_policy(fast_retries())
        .build();
    server.stop();
    dispatcher.notify(&failed(6)).unwrap();
    let first = dispatcher.deliver_due(Duration::from_secs(5)).unwrap();
    assert_eq!((first.delivered, first.retried), (0, 1), "{first:?}");
    assert!(
        first.errors[0].1.contains("cannot reach localhost:"),
        "{first:?}"
    );
    server.fail_deliveries(true);
    server.restart();
    std::thread::sleep(Duration::from_millis(250));
    let second = dispatcher.deliver_due(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (second.delivered, second.retried),
        (0, 1),
        "451 is retried: {second:?}"
    );
    server.fail_deliveries(false);
    deliver_until_done(&dispatcher, Duration::from_secs(10));
    let mails = server.wait_for(1, Duration::from_secs(5));
    assert_eq!(mails.len(), 1, "delivered once, after it came back");
    let delivery = &dispatcher
        .outbox()
        .deliveries(&DeliveryFilter::default())
        .unwrap()[0];
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    assert_eq!(delivery.attempts, 3);
}

#[test]
fn webhook_500s_and_timeouts_are_retried_until_the_receiver_has_it() {
    let receiver = WebhookReceiver::start(Some("hook-secret"));
    receiver.plan([
        Plan::Status(500),
        Plan::Status(503),
        Plan::Hang(Duration::from_millis(1500)),
    ]);
    let dispatcher = Dispatcher::builder(Arc::new(updater_core::outbox::InMemoryOutbox::new()))
        .with_channel(
            webhook(&receiver, Duration::from_millis(500)),
            EventSet::all(),
        )
        .with_retry_policy(fast_retries())
        .build();
    dispatcher.notify(&failed(7)).unwrap();
    let started = Instant::now();
    deliver_until_done(&dispatcher, Duration::from_secs(20));
    let accepted = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].event_id, "update-7:update_rolled_back");
    assert!(
        receiver.refused().is_empty(),
        "signatures verify: {:?}",
        receiver.refused()
    );
    let delivery = &dispatcher
        .outbox()
        .deliveries(&DeliveryFilter::default())
        .unwrap()[0];
    assert_eq!(delivery.attempts, 4, "500, 503, timeout, then delivered");
    assert!(
        delivery
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("did not answer within"))
    );
    println!(
        "webhook delivered after 500, 503 and a timeout in {:?}",
        started.elapsed()
    );
}

#[test]
fn no_duplicate_reaches_the_smtp_server_or_the_webhook_in_the_normal_case() {
    let smtp = SmtpReceiver::start();
    let receiver = WebhookReceiver::start(Some("hook-secret"));
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(DieselHistoryStore::open(dir.path().join("h.db").display().to_string()).unwrap());
    let email = EmailChannel::builder("email", "127.0.0.1")
        .with_port(smtp.port())
        .with_security(Security::None)
        .with_from("updater@example.com")
        .with_to(["ops@example.com"])
        .build()
        .unwrap();
    let dispatcher = Dispatcher::builder(store.clone())
        .with_channel(Arc::new(email), EventSet::all())
        .with_channel(webhook(&receiver, Duration::from_secs(5)), EventSet::all())
        .with_channel(
            Arc::new(NotifierChannel::new(
                "database",
                "history",
                Arc::new(StoreNotifier::new(store.clone())),
            )),
            EventSet::all(),
        )
        .build();
    let worker = dispatcher.spawn(Duration::from_secs(30));
    for update in 0..10 {
        dispatcher.notify(&failed(update)).unwrap();
        dispatcher.notify(&failed(update)).unwrap(); // the same event again
    }
    assert!(worker.flush(Duration::from_secs(20)));
    // A second deliverer (the next command) finds nothing to do.
    let again = dispatcher.deliver_due(Duration::from_secs(5)).unwrap();
    assert_eq!(again.delivered, 0);
    drop(worker);
    let mails = smtp.wait_for(10, Duration::from_secs(2));
    let mut ids: Vec<String> = mails
        .iter()
        .map(|m| m.header("X-Updater-Event-Id").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((mails.len(), ids.len()), (10, 10), "ten events, ten mails");
    assert_eq!(receiver.accepted().len(), 10);
    assert!(
        receiver.duplicates().is_empty(),
        "{:?}",
        receiver.duplicates()
    );
    assert_eq!(receiver.requests(), 10, "one request per event");
    assert_eq!(
        store
            .notifications(&NotificationFilter::default())
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn a_second_failure_of_the_same_version_is_a_new_notice_everywhere() {
    let receiver = WebhookReceiver::start(Some("hook-secret"));
    let store = Arc::new(updater_core::history::InMemoryHistoryStore::new());
    let dispatcher = Dispatcher::builder(Arc::new(updater_core::outbox::InMemoryOutbox::new()))
        .with_channel(
            webhook(&receiver, Duration::from_secs(5)),
            EventSet::problems(),
        )
        .with_channel(
            Arc::new(NotifierChannel::new(
                "database",
                "history",
                Arc::new(StoreNotifier::new(store.clone())),
            )),
            EventSet::all(),
        )
        .build();
    dispatcher.notify(&failed(1)).unwrap();
    dispatcher.notify(&failed(2)).unwrap();
    dispatcher.deliver_due(Duration::from_secs(5)).unwrap();
    assert_eq!(receiver.accepted().len(), 2);
    assert_eq!(
        store
            .notifications(&NotificationFilter::default())
            .unwrap()
            .len(),
        2
    );
    // "available" goes to the database only (routing).
    dispatcher
        .notify(&Notification::new(
            NotificationType::UpdateAvailable,
            Version::new(1, 3, 0),
            "1.3.0 is out",
        ))
        .unwrap();
    dispatcher.deliver_due(Duration::from_secs(5)).unwrap();
    assert_eq!(receiver.accepted().len(), 2);
    assert_eq!(
        store
            .notifications(&NotificationFilter::default())
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_channel_that_keeps_failing_gives_up_is_reported_and_announced_elsewhere() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = WebhookChannel::builder(
        "ops-hook",
        Secret::new(format!("http://127.0.0.1:{dead}/secret-path")),
    )
    .with_timeout(Duration::from_secs(1))
    .build()
    .unwrap();
    let store = Arc::new(updater_core::history::InMemoryHistoryStore::new());
    let dispatcher = Dispatcher::builder(Arc::new(updater_core::outbox::InMemoryOutbox::new()))
        .with_channel(Arc::new(hook), EventSet::all())
        .with_channel(
            Arc::new(NotifierChannel::new(
                "database",
                "history",
                Arc::new(StoreNotifier::new(store.clone())),
            )),
            EventSet::all(),
        )
        .with_retry_policy(RetryPolicy {
            max_attempts: 2,
            ..fast_retries()
        })
        .build();
    dispatcher.notify(&failed(9)).unwrap();
    deliver_until_done(&dispatcher, Duration::from_secs(10));
    let health = dispatcher.health().unwrap();
    let hook = health.iter().find(|h| h.channel == "ops-hook").unwrap();
    assert!(hook.is_failing());
    assert_eq!(hook.gave_up, 1);
    assert!(
        hook.last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot reach http://127.0.0.1:"))
    );
    assert!(
        !hook
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("secret-path")
    );
    let notes = store.notifications(&NotificationFilter::default()).unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.notification_type == NotificationType::Warning
                && n.message.contains("notification channel ops-hook gave up")),
        "{notes:?}"
    );
}

#[test]
fn the_worker_delivers_a_notice_within_milliseconds_of_notify() {
    let receiver = WebhookReceiver::start(Some("hook-secret"));
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(DieselHistoryStore::open(dir.path().join("h.db").display().to_string()).unwrap());
    let dispatcher = Dispatcher::builder(store)
        .with_channel(webhook(&receiver, Duration::from_secs(5)), EventSet::all())
        .build();
    let worker = dispatcher.spawn(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(200));
    let mut latencies = Vec::new();
    for update in 0..10 {
        let started = Instant::now();
        dispatcher.notify(&failed(update)).unwrap();
        let notify_took = started.elapsed();
        receiver.wait_for(update as usize + 1, Duration::from_secs(5));
        latencies.push((notify_took, started.elapsed()));
    }
    drop(worker);
    assert_eq!(receiver.accepted().len(), 10);
    let worst = latencies.iter().map(|l| l.1).max().unwrap();
    let notify_worst = latencies.iter().map(|l| l.0).max().unwrap();
    println!(
        "notify (outbox write) worst {notify_worst:?}; notify to receiver worst {worst:?}; all {latencies:?}"
    );
    assert!(worst < Duration::from_secs(2), "{latencies:?}");
}

const CHILD: &str = "UPDATER_NOTIFY_TEST_CHILD";

/// Run as a child process by the next test: enqueues, then waits to be killed.
#[test]
fn child_enqueues_then_waits_to_be_killed() {
    let Ok(db) = std::env::var(CHILD) else {
        return;
    };
    let url = std::env::var("UPDATER_NOTIFY_TEST_URL").unwrap();
    let store = Arc::new(DieselHistoryStore::open(db).unwrap());
    let hook = WebhookChannel::builder("webhook", Secret::new(url))
        .with_signing_secret(Secret::new("hook-secret"))
        .build()
        .unwrap();
    let dispatcher = Dispatcher::builder(store)
        .with_channel(Arc::new(hook), EventSet::all())
        .build();
    dispatcher.notify(&failed(42)).unwrap();
    println!("ENQUEUED");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_kill_between_outbox_write_and_delivery_is_delivered_exactly_once_afterwards() {
    let receiver = WebhookReceiver::start(Some("hook-secret"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db").display().to_string();
    let mut child = updater_testkit::child::command(
        "child_enqueues_then_waits_to_be_killed",
        &[
            (CHILD, db.clone()),
            ("UPDATER_NOTIFY_TEST_URL", receiver.url()),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("ENQUEUED"))),
        "the child enqueued"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        receiver.requests(),
        0,
        "nothing was delivered before the kill"
    );

    let store = Arc::new(DieselHistoryStore::open(db).unwrap());
    let dispatcher = Dispatcher::builder(store)
        .with_channel(webhook(&receiver, Duration::from_secs(5)), EventSet::all())
        .build();
    let report = dispatcher.deliver_due(Duration::from_secs(10)).unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(
        dispatcher
            .deliver_due(Duration::from_secs(10))
            .unwrap()
            .delivered,
        0
    );
    let accepted = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].event_id, "update-42:update_rolled_back");
    assert!(receiver.duplicates().is_empty());
    assert_eq!(receiver.requests(), 1, "exactly once");
}

#[test]
fn channels_show_no_secret_in_debug_output_or_descriptions() {
    let hook =
        WebhookChannel::builder("hook", Secret::new("https://hooks.example.com/T0/B0/tok3n"))
            .with_signing_secret(Secret::new("sign-s3cret"))
            .build()
            .unwrap();
    let slack = updater_notify::ChatChannel::slack(
        "slack",
        Secret::new("https://hooks.slack.com/services/T0/B0/tok3n"),
    )
    .unwrap();
    let email = EmailChannel::builder("mail", "smtp.example.com")
        .with_credentials("u", Secret::new("mail-s3cret"))
        .with_from("a@example.com")
        .with_to(["b@example.com"])
        .build()
        .unwrap();
    use updater_notify::Channel;
    let shown = format!(
        "{hook:?} {slack:?} {email:?} {} {} {}",
        hook.describe(),
        slack.describe(),
        email.describe()
    );
    for secret in ["tok3n", "sign-s3cret", "mail-s3cret", "/services/"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let bad = WebhookChannel::builder("hook", Secret::new("ftp://user:pw@example.com/tok3n"))
        .build()
        .unwrap_err();
    assert!(matches!(&bad, NotifyError::Config { channel, .. } if channel == "hook"));
    assert!(!bad.to_string().contains("tok3n"));
}
