//! The [`NotificationOutbox`] conformance suite: every implementation runs
//! [`run`] on an empty outbox, [`run_shared`] with two handles on the same
//! storage, and [`concurrent_claims`] with handles used from several threads.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use crate::history::NotificationType;
use crate::notify::Notification;
use crate::outbox::{
    AttemptOutcome, ClaimRequest, DeliveryFilter, DeliveryStatus, NotificationOutbox,
};
use crate::version::Version;

fn must<T>(rule: &str, result: crate::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{rule}: unexpected error: {e}"))
}

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000, 123_456_000)
        .single()
        .unwrap_or_else(Utc::now)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

/// A notification of event `event` with every field set (unicode included).
pub fn sample(event: &str, kind: NotificationType) -> Notification {
    Notification::new(kind, Version::new(1, 2, 0), format!("événement {event} ✓"))
        .with_event_id(event)
        .with_metadata(json!({ "update_id": 7, "step": "health_check", "nested": { "a": [1, 2] } }))
}

/// Runs every check against `outbox`, which must be empty.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(outbox: &dyn NotificationOutbox) {
    enqueue_is_idempotent_per_event_and_channel(outbox);
    claims_lease_and_finish(outbox);
    retries_wait_and_give_up_is_final(outbox);
    listings_filter(outbox);
}

fn enqueue_is_idempotent_per_event_and_channel(outbox: &dyn NotificationOutbox) {
    let now = t0();
    let n = sample("e-1", NotificationType::UpdateRolledBack);
    let first = must(
        "enqueue",
        outbox.enqueue(&n, &names(&["email", "slack"]), now),
    );
    assert!(first.new_event, "the first enqueue of an event stores it");
    assert!(first.event > 0, "event ids are positive");
    assert_eq!(first.new_channels, names(&["email", "slack"]));
    let mut changed = n.clone();
    changed.message = "a later copy".into();
    let again = must(
        "enqueue",
        outbox.enqueue(
            &changed,
            &names(&["email", "webhook"]),
            now + Duration::seconds(5),
        ),
    );
    assert!(!again.new_event, "an event is stored once");
    assert_eq!(again.event, first.event, "the same event keeps its id");
    assert_eq!(
        again.new_channels,
        names(&["webhook"]),
        "one delivery per event per channel"
    );
    let listed = must(
        "deliveries",
        outbox.deliveries(&DeliveryFilter {
            event_id: Some("e-1".into()),
            ..DeliveryFilter::default()
        }),
    );
    assert_eq!(listed.len(), 3, "three channels, three deliveries");
    for d in &listed {
        assert_eq!(
            d.event.notification, n,
            "the first copy is kept, every field intact"
        );
        assert_eq!(
            d.event.created_at, now,
            "the event time is the first enqueue's"
        );
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.last_error, None);
        assert_eq!(d.delivered_at, None);
    }
    // Clean state for the next checks: deliver all three.
    let claimed = must(
        "claim",
        outbox.claim(&ClaimRequest::new(
            "setup",
            now + Duration::seconds(5),
            Duration::seconds(30),
        )),
    );
    assert_eq!(claimed.len(), 3, "due deliveries are claimed");
    for d in claimed {
        assert!(must(
            "finish",
            outbox.finish(d.id, "setup", now, &AttemptOutcome::Delivered)
        ));
    }
}

fn claims_lease_and_finish(outbox: &dyn NotificationOutbox) {
    let now = t0() + Duration::hours(1);
    let n = sample("e-2", NotificationType::UpdateFailed);
    must(
        "enqueue",
        outbox.enqueue(&n, &names(&["email", "slack"]), now),
    );
    let early = must(
        "claim",
        outbox.claim(&ClaimRequest::new(
            "a",
            now - Duration::seconds(1),
            Duration::seconds(30),
        )),
    );
    assert!(early.is_empty(), "a delivery is not due before its time");
    let only_email = must(
        "claim",
        outbox.claim(&ClaimRequest::new("a", now, Duration::seconds(30)).for_channels(["email"])),
    );
    assert_eq!(only_email.len(), 1, "a claim can be limited to channels");
    assert_eq!(only_email[0].channel, "email");
    assert_eq!(
        only_email[0].claimed_until,
        Some(now + Duration::seconds(30))
    );
    let rest = must(
        "claim",
        outbox.claim(&ClaimRequest::new("b", now, Duration::seconds(30))),
    );
    assert_eq!(rest.len(), 1, "a held delivery is not claimed twice");
    assert_eq!(rest[0].channel, "slack");
    assert!(
        !must(
            "finish",
            outbox.finish(only_email[0].id, "b", now, &AttemptOutcome::Delivered)
        ),
        "only the claimer may finish"
    );
    // The lease of `b` on slack runs out; `c` takes it over.
    let later = now + Duration::seconds(31);
    let taken = must(
        "claim",
        outbox.claim(&ClaimRequest::new("c", later, Duration::seconds(30))),
    );
    assert_eq!(
        taken.iter().map(|d| d.channel.as_str()).collect::<Vec<_>>(),
        ["email", "slack"],
        "expired leases come back, oldest due first"
    );
    assert!(
        !must(
            "finish",
            outbox.finish(rest[0].id, "b", later, &AttemptOutcome::Delivered)
        ),
        "a claimer whose lease was taken over cannot finish"
    );
    for d in &taken {
        assert!(must(
            "finish",
            outbox.finish(d.id, "c", later, &AttemptOutcome::Delivered)
        ));
    }
    let done = must(
        "deliveries",
        outbox.deliveries(&DeliveryFilter {
            event_id: Some("e-2".into()),
            ..DeliveryFilter::default()
        }),
    );
    for d in &done {
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.attempts, 1, "one attempt recorded once");
        assert_eq!(d.delivered_at, Some(later));
        assert_eq!(d.claimed_until, None, "finishing releases the claim");
    }
    assert!(
        must(
            "claim",
            outbox.claim(&ClaimRequest::new(
                "d",
                later + Duration::days(1),
                Duration::seconds(30)
            ))
        )
        .is_empty(),
        "delivered notices are never claimed again"
    );
    assert!(
        !must(
            "finish",
            outbox.finish(done[0].id, "c", later, &AttemptOutcome::Delivered)
        ),
        "a finished delivery cannot be finished again"
    );
}

fn retries_wait_and_give_up_is_final(outbox: &dyn NotificationOutbox) {
    let now = t0() + Duration::hours(2);
    let n = sample("e-3", NotificationType::NeedsOperator);
    must("enqueue", outbox.enqueue(&n, &names(&["webhook"]), now));
    let claimed = must(
        "claim",
        outbox.claim(&ClaimRequest::new("a", now, Duration::seconds(30))),
    );
    assert_eq!(claimed.len(), 1);
    let retry_at = now + Duration::seconds(60);
    assert!(must(
        "finish",
        outbox.finish(
            claimed[0].id,
            "a",
            now,
            &AttemptOutcome::Retry {
                error: "HTTP 500 from 127.0.0.1".into(),
                next_attempt_at: retry_at,
            },
        )
    ));
    assert!(
        must(
            "claim",
            outbox.claim(&ClaimRequest::new(
                "b",
                now + Duration::seconds(59),
                Duration::seconds(30)
            ))
        )
        .is_empty(),
        "a failed delivery waits for its next attempt"
    );
    let again = must(
        "claim",
        outbox.claim(&ClaimRequest::new("b", retry_at, Duration::seconds(30))),
    );
    assert_eq!(again.len(), 1, "it is due again at next_attempt_at");
    assert_eq!(again[0].attempts, 1);
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("HTTP 500 from 127.0.0.1")
    );
    assert!(must(
        "finish",
        outbox.finish(
            again[0].id,
            "b",
            retry_at,
            &AttemptOutcome::GiveUp {
                error: "still HTTP 500".into()
            },
        )
    ));
    let listed = must(
        "deliveries",
        outbox.deliveries(&DeliveryFilter {
            status: Some(DeliveryStatus::GaveUp),
            ..DeliveryFilter::default()
        }),
    );
    assert_eq!(listed.len(), 1, "a given-up delivery is listed as such");
    assert_eq!(listed[0].attempts, 2);
    assert_eq!(listed[0].last_error.as_deref(), Some("still HTTP 500"));
    assert!(
        must(
            "claim",
            outbox.claim(&ClaimRequest::new(
                "c",
                retry_at + Duration::days(9),
                Duration::seconds(30)
            ))
        )
        .is_empty(),
        "a given-up delivery is never claimed again"
    );
    let health = must("channel_health", crate::outbox::channel_health(outbox));
    let webhook = health
        .iter()
        .find(|h| h.channel == "webhook")
        .unwrap_or_else(|| panic!("a channel that gave up is reported: {health:?}"));
    assert!(webhook.is_failing());
    assert_eq!(webhook.gave_up, 1);
}

fn listings_filter(outbox: &dyn NotificationOutbox) {
    let now = t0() + Duration::hours(3);
    for i in 0..5 {
        let n = sample(&format!("list-{i}"), NotificationType::UpdateCompleted);
        must("enqueue", outbox.enqueue(&n, &names(&["email"]), now));
    }
    let newest = must(
        "deliveries",
        outbox.deliveries(&DeliveryFilter {
            channel: Some("email".into()),
            status: Some(DeliveryStatus::Pending),
            limit: 2,
            ..DeliveryFilter::default()
        }),
    );
    assert_eq!(
        newest
            .iter()
            .map(|d| d.event.notification.event_id.as_str())
            .collect::<Vec<_>>(),
        ["list-4", "list-3"],
        "listings are newest first and limited"
    );
    let limited = must(
        "claim",
        outbox.claim(&ClaimRequest::new("a", now, Duration::seconds(30)).with_limit(3)),
    );
    assert_eq!(limited.len(), 3, "a claim takes at most `limit`");
    let rest = must(
        "claim",
        outbox.claim(&ClaimRequest::new("b", now, Duration::seconds(30))),
    );
    assert_eq!(rest.len(), 2);
    for (d, token) in limited
        .iter()
        .map(|d| (d, "a"))
        .chain(rest.iter().map(|d| (d, "b")))
    {
        must(
            "finish",
            outbox.finish(d.id, token, now, &AttemptOutcome::Delivered),
        );
    }
}

/// Two handles on the same storage see each other's writes at once.
pub fn run_shared(writer: &dyn NotificationOutbox, reader: &dyn NotificationOutbox) {
    let now = t0();
    let n = sample("shared-1", NotificationType::UpdateCompleted);
    must("enqueue", writer.enqueue(&n, &names(&["email"]), now));
    let again = must("enqueue", reader.enqueue(&n, &names(&["email"]), now));
    assert!(
        !again.new_event && again.new_channels.is_empty(),
        "an event enqueued through another handle is known"
    );
    let claimed = must(
        "claim",
        reader.claim(&ClaimRequest::new("r", now, Duration::seconds(30))),
    );
    assert_eq!(claimed.len(), 1, "another handle claims what one enqueued");
    assert!(
        must(
            "claim",
            writer.claim(&ClaimRequest::new("w", now, Duration::seconds(30)))
        )
        .is_empty(),
        "a claim holds across handles"
    );
    assert!(must(
        "finish",
        reader.finish(claimed[0].id, "r", now, &AttemptOutcome::Delivered)
    ));
}

/// `handles` claim the same due deliveries from `threads` threads at once:
/// each delivery is claimed exactly once.
pub fn concurrent_claims(handles: &[&dyn NotificationOutbox], threads: usize, events: usize) {
    let now = t0() + Duration::days(30);
    for i in 0..events {
        let n = sample(&format!("race-{i}"), NotificationType::UpdateStarted);
        must(
            "enqueue",
            handles[0].enqueue(&n, &names(&["email", "webhook"]), now),
        );
    }
    let claimed: Vec<i64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let outbox = handles[t % handles.len()];
                scope.spawn(move || {
                    let token = format!("worker-{t}");
                    let mut mine = Vec::new();
                    loop {
                        let got = must(
                            "claim",
                            outbox.claim(
                                &ClaimRequest::new(&token, now, Duration::minutes(5)).with_limit(3),
                            ),
                        );
                        if got.is_empty() {
                            break;
                        }
                        for d in got {
                            assert!(
                                must(
                                    "finish",
                                    outbox.finish(d.id, &token, now, &AttemptOutcome::Delivered)
                                ),
                                "the claimer of {} can finish it",
                                d.id
                            );
                            mine.push(d.id);
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| panic!("a claim thread panicked"))
            })
            .collect()
    });
    let mut sorted = claimed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        claimed.len(),
        "no delivery is claimed twice by concurrent claimers"
    );
    assert_eq!(claimed.len(), events * 2, "every delivery is claimed once");
}
