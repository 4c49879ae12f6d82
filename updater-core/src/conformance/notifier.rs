//! The [`Notifier`] conformance suite, run by every channel (log, store,
//! e-mail, Slack, webhook...): [`run`] against a working channel whose
//! receiver the test can read, and [`run_unreachable`] against a channel
//! whose server is down.
//!
//! The receiver is read through a closure returning [`Received`] notices;
//! it is polled for a few seconds, so receivers that record asynchronously
//! work too.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::history::NotificationType;
use crate::notify::{Notification, Notifier};
use crate::version::Version;

/// One notice as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The event id the channel sent (idempotency key, `Message-ID`...).
    pub event_id: String,
    /// Everything a person would read, decoded (subject, text, blocks...).
    pub text: String,
}

/// What the channel under test does beyond the contract.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    /// The channel itself drops a repeated event (a store with a unique
    /// key); otherwise the receiver sees the repeat, with the same event id.
    pub drops_repeats: bool,
}

fn wait_for(
    received: &dyn Fn() -> Vec<Received>,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = received();
        if done(&seen) || Instant::now() >= deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(seen: &[Received], event: &str) -> usize {
    seen.iter().filter(|r| r.event_id == event).count()
}

fn notice(prefix: &str, kind: NotificationType, n: usize) -> Notification {
    Notification::new(
        kind,
        Version::new(2, n as u64, 0),
        format!("{prefix} marker-{prefix}-{n} for {}", kind.as_str()),
    )
    .with_event_id(format!("{prefix}-{n}:{}", kind.as_str()))
    .with_metadata(serde_json::json!({ "update_id": n, "step": "health_check" }))
}

/// Runs every check against `notifier`; `received` reads what its receiver
/// got so far (every notice since the start of the test). `prefix` makes the
/// event ids unique to this run (several suites may share a receiver).
///
/// # Panics
///
/// When the channel breaks the [`Notifier`] contract; the message names the rule.
pub fn run(
    notifier: &dyn Notifier,
    received: &dyn Fn() -> Vec<Received>,
    prefix: &str,
    capabilities: Capabilities,
) {
    // Every kind is delivered, once, with its id and its text.
    for (n, kind) in NotificationType::ALL.into_iter().enumerate() {
        let note = notice(prefix, kind, n);
        notifier
            .notify(&note)
            .unwrap_or_else(|e| panic!("notify({}) failed: {e}", kind.as_str()));
        let seen = wait_for(received, |seen| count(seen, &note.event_id) >= 1);
        assert_eq!(
            count(&seen, &note.event_id),
            1,
            "a {} notice reaches the receiver once, with its event id {} (saw {:?})",
            kind.as_str(),
            note.event_id,
            seen.iter().map(|r| &r.event_id).collect::<Vec<_>>()
        );
        let text = &seen
            .iter()
            .find(|r| r.event_id == note.event_id)
            .map(|r| r.text.clone())
            .unwrap_or_default();
        assert!(
            text.contains(&format!("marker-{prefix}-{n}")),
            "the receiver can read the message of a {} notice: {text}",
            kind.as_str()
        );
    }

    // The same event again: dropped, or passed on with the same id.
    let repeat = notice(prefix, NotificationType::UpdateFailed, 100);
    notifier
        .notify(&repeat)
        .unwrap_or_else(|e| panic!("notify failed: {e}"));
    notifier
        .notify(&repeat)
        .unwrap_or_else(|e| panic!("notify of a repeated event failed: {e}"));
    let expected = if capabilities.drops_repeats { 1 } else { 2 };
    let seen = wait_for(received, |seen| count(seen, &repeat.event_id) >= expected);
    std::thread::sleep(Duration::from_millis(100));
    let seen_again = received();
    assert_eq!(
        count(&seen_again, &repeat.event_id),
        expected,
        "a repeated event is {} (saw {})",
        if capabilities.drops_repeats {
            "dropped by the channel"
        } else {
            "passed on with the same event id, for the receiver to drop"
        },
        count(&seen, &repeat.event_id)
    );

    // A second failure of the same version is a new event.
    let second = Notification {
        event_id: format!("{prefix}-101:update_failed"),
        ..repeat.clone()
    };
    notifier
        .notify(&second)
        .unwrap_or_else(|e| panic!("notify failed: {e}"));
    let seen = wait_for(received, |seen| count(seen, &second.event_id) >= 1);
    assert_eq!(
        count(&seen, &second.event_id),
        1,
        "a second event of the same version and kind is delivered"
    );

    // Text that breaks naive formatting arrives readable.
    let hostile = Notification::new(
        NotificationType::UpdateRolledBack,
        Version::parse("3.0.0-rc.1+build.5").unwrap_or_else(|_| Version::new(3, 0, 0)),
        format!(
            "<script>alert(1)</script> & <b>*bold*</b> _x_ `code` \"quotes\" ünïcødé ✓ hostile-{prefix}\nsecond line {}",
            "long ".repeat(400)
        ),
    )
    .with_event_id(format!("{prefix}-hostile"));
    notifier
        .notify(&hostile)
        .unwrap_or_else(|e| panic!("notify of markup and unicode failed: {e}"));
    let seen = wait_for(received, |seen| count(seen, &hostile.event_id) >= 1);
    let text = seen
        .iter()
        .find(|r| r.event_id == hostile.event_id)
        .map(|r| r.text.clone())
        .unwrap_or_else(|| panic!("a notice with markup and unicode is delivered"));
    assert!(
        text.contains("ünïcødé ✓"),
        "unicode survives delivery: {}",
        &text[..text.len().min(400)]
    );
    assert!(
        text.contains(&format!("hostile-{prefix}")),
        "a message with markup is readable"
    );

    // Concurrent callers: nothing lost.
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                scope.spawn(move || {
                    (0..2)
                        .map(|i| {
                            let note =
                                notice(prefix, NotificationType::UpdateCompleted, 200 + t * 10 + i);
                            notifier
                                .notify(&note)
                                .unwrap_or_else(|e| panic!("concurrent notify failed: {e}"));
                            note.event_id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a notify thread panicked"))
            })
            .collect()
    });
    let seen = wait_for(received, |seen| ids.iter().all(|id| count(seen, id) >= 1));
    for id in &ids {
        assert_eq!(
            count(&seen, id),
            1,
            "notices sent from several threads at once all arrive, once: {id}"
        );
    }
}

/// Checks a channel whose server is down or refuses: `notify` fails
/// within `within`, with an error that names no secret from `secrets`
/// (passwords, tokens, webhook URLs) and says the channel is unavailable
/// (a retry later may work).
///
/// # Panics
///
/// When the channel hangs, succeeds, or leaks a secret.
pub fn run_unreachable(notifier: &dyn Notifier, secrets: &[&str], within: Duration) {
    let note = notice("unreachable", NotificationType::NeedsOperator, 1);
    let started = Instant::now();
    let result = notifier.notify(&note);
    let took = started.elapsed();
    assert!(
        took <= within,
        "a channel that is down answers within {within:?} (took {took:?})"
    );
    let error = match result {
        Ok(()) => panic!("a channel whose server is down reports an error"),
        Err(error) => error,
    };
    let shown = format!("{error} {error:?} {}", chain(&error));
    for secret in secrets {
        assert!(
            !shown.contains(secret),
            "the error of a channel that is down names no secret: {shown}"
        );
    }
    assert!(
        matches!(error, Error::Unavailable { .. }),
        "a channel that is down is `Unavailable` (retry later): {error:?}"
    );
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!(" / {e} {e:?}"));
        source = e.source();
    }
    text
}
