//! Core's `Notifier` conformance suite against every channel of this
//! crate, each with a real server on 127.0.0.1: e-mail (the testkit's SMTP
//! server, and aiosmtpd with STARTTLS + AUTH), Slack, Discord, Teams and
//! the signed webhook; each channel against a server that is down; and the
//! `Dispatcher` itself (a `Notifier` that writes the outbox and delivers
//! from it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use updater_core::conformance::notifier::{self, Capabilities};
use updater_core::outbox::InMemoryOutbox;
use updater_core::secret::Secret;
use updater_notify::{ChatChannel, Dispatcher, EmailChannel, EventSet, Security, WebhookChannel};
use updater_testkit::mail::{Aiosmtpd, SmtpReceiver, TlsMode};
use updater_testkit::webhook::{WebhookReceiver, slack_shape};

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn email_channel_passes_the_notifier_suite() {
    let server = SmtpReceiver::start_with_auth("updater", "pa55-word");
    let email = EmailChannel::builder("email", "127.0.0.1")
        .with_port(server.port())
        .with_security(Security::None)
        .with_credentials("updater", Secret::new("pa55-word"))
        .with_from("Updater <updater@example.com>")
        .with_to(["ops@example.com"])
        .build()
        .unwrap();
    let read = || server.mails().iter().map(|m| m.received()).collect();
    notifier::run(&email, &read, "email", Capabilities::default());
}

#[test]
fn email_channel_over_starttls_with_auth_passes_the_notifier_suite() {
    let Some(server) = Aiosmtpd::start(TlsMode::StartTls, "updater", "s3cret-pw") else {
        return;
    };
    let email = EmailChannel::builder("email", "localhost")
        .with_port(server.port())
        .with_security(Security::StartTls)
        .with_root_certificate(server.ca_file())
        .with_credentials("updater", Secret::new("s3cret-pw"))
        .with_from("updater@example.com")
        .with_to(["ops@example.com"])
        .build()
        .unwrap();
    let read = || server.mails().iter().map(|m| m.received()).collect();
    notifier::run(&email, &read, "starttls", Capabilities::default());
}

#[test]
fn email_channel_to_a_server_that_is_down_fails_fast_without_the_password() {
    let email = EmailChannel::builder("email", "127.0.0.1")
        .with_port(dead_port())
        .with_security(Security::None)
        .with_credentials("updater", Secret::new("pa55-word-secret"))
        .with_from("updater@example.com")
        .with_to(["ops@example.com"])
        .with_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    notifier::run_unreachable(&email, &["pa55-word-secret"], Duration::from_secs(5));
}

#[test]
fn webhook_channel_passes_the_notifier_suite_with_every_request_signed() {
    let receiver = WebhookReceiver::start(Some("hook-secret"));
    let hook = WebhookChannel::builder("webhook", Secret::new(receiver.url()))
        .with_signing_secret(Secret::new("hook-secret"))
        .build()
        .unwrap();
    let read = || receiver.received();
    notifier::run(&hook, &read, "webhook", Capabilities::default());
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
}

#[test]
fn slack_channel_passes_the_notifier_suite_with_valid_block_kit() {
    let receiver = WebhookReceiver::start(None);
    let slack = ChatChannel::slack("slack", Secret::new(receiver.url())).unwrap();
    let read = || receiver.received();
    notifier::run(&slack, &read, "slack", Capabilities::default());
    for hook in receiver.accepted() {
        assert_eq!(
            slack_shape(&hook.body),
            Vec::<String>::new(),
            "{}",
            hook.body
        );
    }
}

#[test]
fn discord_and_teams_channels_pass_the_notifier_suite() {
    for (name, make) in [
        ("discord", ChatChannel::discord as fn(&str, Secret) -> _),
        ("teams", ChatChannel::teams),
    ] {
        let receiver = WebhookReceiver::start(None);
        let channel = make(name, Secret::new(receiver.url())).unwrap();
        let read = || receiver.received();
        notifier::run(&channel, &read, name, Capabilities::default());
    }
}

#[test]
fn chat_and_webhook_channels_to_a_server_that_is_down_fail_fast_without_the_url() {
    let url = format!(
        "http://127.0.0.1:{}/services/T000/B000/XXXXSECRETXXXX",
        dead_port()
    );
    let slack = ChatChannel::slack("slack", Secret::new(url.clone()))
        .unwrap()
        .with_timeout(Duration::from_secs(2))
        .unwrap();
    notifier::run_unreachable(&slack, &[&url, "XXXXSECRETXXXX"], Duration::from_secs(5));
    let hook = WebhookChannel::builder("webhook", Secret::new(url.clone()))
        .with_signing_secret(Secret::new("hook-secret"))
        .with_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    notifier::run_unreachable(
        &hook,
        &[&url, "XXXXSECRETXXXX", "hook-secret"],
        Duration::from_secs(5),
    );
}

#[test]
fn the_dispatcher_passes_the_notifier_suite_delivering_through_its_outbox() {
    let receiver = WebhookReceiver::start(Some("hook-secret"));
    let hook = WebhookChannel::builder("webhook", Secret::new(receiver.url()))
        .with_signing_secret(Secret::new("hook-secret"))
        .build()
        .unwrap();
    let dispatcher = Dispatcher::builder(Arc::new(InMemoryOutbox::new()))
        .with_channel(Arc::new(hook), EventSet::all())
        .build();
    // What reached the receiver once the due deliveries were made.
    let read = || {
        dispatcher.deliver_due(Duration::from_secs(5)).unwrap();
        receiver.received()
    };
    notifier::run(
        &dispatcher,
        &read,
        "dispatcher",
        Capabilities {
            drops_repeats: true,
        },
    );
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
}
