//! The notifier and outbox conformance suites against core's
//! implementations: `LogNotifier` (read back from `tracing`),
//! `StoreNotifier` over the in-memory history, and `InMemoryOutbox`.
#![cfg(feature = "conformance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;
use updater_core::conformance::notifier::{self, Capabilities, Received};
use updater_core::conformance::outbox;
use updater_core::history::{HistoryStore, InMemoryHistoryStore, NotificationFilter};
use updater_core::notify::{LogNotifier, StoreNotifier};
use updater_core::outbox::InMemoryOutbox;

/// Keeps every event's message and `event` field.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Received>>>);

#[derive(Default)]
struct Fields {
    message: String,
    event: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "event" => self.event = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "event" => self.event = value.to_string(),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if !fields.event.is_empty() {
            self.0.lock().unwrap().push(Received {
                event_id: fields.event,
                text: fields.message,
            });
        }
    }
}

#[test]
fn log_notifier_passes_the_notifier_suite() {
    let capture = Capture::default();
    // Global: the suite notifies from several threads.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .unwrap();
    let read = || capture.0.lock().unwrap().clone();
    notifier::run(&LogNotifier, &read, "log", Capabilities::default());
}

#[test]
fn store_notifier_passes_the_notifier_suite_and_drops_repeats() {
    let store = Arc::new(InMemoryHistoryStore::new());
    let notifier = StoreNotifier::new(store.clone());
    let read = || {
        store
            .notifications(&NotificationFilter {
                include_dismissed: true,
                ..NotificationFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|n| Received {
                event_id: n.event_id.unwrap_or_default(),
                text: n.message,
            })
            .collect()
    };
    notifier::run(
        &notifier,
        &read,
        "store",
        Capabilities {
            drops_repeats: true,
        },
    );
}

#[test]
fn in_memory_outbox_passes_the_outbox_suite() {
    outbox::run(&InMemoryOutbox::new());
}

#[test]
fn in_memory_outbox_handles_share_every_write() {
    let shared = Arc::new(InMemoryOutbox::new());
    outbox::run_shared(&shared, &shared.clone());
}

#[test]
fn in_memory_outbox_never_gives_one_delivery_to_two_claimers() {
    let shared = InMemoryOutbox::new();
    outbox::concurrent_claims(&[&shared], 4, 25);
}
