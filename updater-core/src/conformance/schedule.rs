//! Conformance suite for [`ScheduleStore`] implementations.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::automation::{ScheduleStatus, ScheduleStore, ScheduledUpdate};
use crate::error::Error;
use crate::version::Version;

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 2, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
        + Duration::minutes(minutes)
}

fn entry(minutes: i64, version: Option<Version>) -> ScheduledUpdate {
    let mut entry = ScheduledUpdate::new(at(minutes), version, "conformance");
    entry.created_at = at(-60);
    entry
}

/// Runs every rule against `store`, which must start empty.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(store: &dyn ScheduleStore) {
    let all = |store: &dyn ScheduleStore| {
        store
            .list(true)
            .unwrap_or_else(|e| panic!("list(true) failed: {e}"))
    };
    assert!(all(store).is_empty(), "the store must start empty");

    // Added out of order, listed by time (then id).
    let late = store
        .add(&entry(30, Some(Version::new(1, 2, 3))))
        .unwrap_or_else(|e| panic!("add failed: {e}"));
    let early = store
        .add(&entry(10, None))
        .unwrap_or_else(|e| panic!("add failed: {e}"));
    let same_time = store
        .add(&entry(30, None))
        .unwrap_or_else(|e| panic!("add failed: {e}"));
    assert!(
        early != late && same_time != late && same_time != early,
        "add must give distinct ids ({late}, {early}, {same_time})"
    );
    let pending = store
        .list(false)
        .unwrap_or_else(|e| panic!("list(false) failed: {e}"));
    let ids: Vec<i64> = pending.iter().map(|e| e.id).collect();
    let mut same_time_order = [late, same_time];
    same_time_order.sort_unstable();
    assert_eq!(
        ids,
        vec![early, same_time_order[0], same_time_order[1]],
        "list must order by time, then id"
    );
    let stored = pending
        .iter()
        .find(|e| e.id == late)
        .unwrap_or_else(|| panic!("entry {late} missing"));
    let mut expected = entry(30, Some(Version::new(1, 2, 3)));
    expected.id = late;
    assert_eq!(*stored, expected, "every field must round-trip");

    // Saving overwrites; a finished entry leaves the pending list.
    let mut done = stored.clone();
    done.attempts = 2;
    done.status = ScheduleStatus::Done;
    done.update_id = Some(41);
    done.message = Some("updated 1.0.0 -> 1.2.3".into());
    store
        .save(&done)
        .unwrap_or_else(|e| panic!("save failed: {e}"));
    let pending = store
        .list(false)
        .unwrap_or_else(|e| panic!("list(false) failed: {e}"));
    assert!(
        pending.iter().all(|e| e.id != late),
        "a done entry must not be listed as pending"
    );
    assert!(
        all(store).contains(&done),
        "list(true) must return the saved entry as saved"
    );

    // Cancelling: pending only, once.
    let cancelled = store
        .cancel(early)
        .unwrap_or_else(|e| panic!("cancel of a pending entry failed: {e}"));
    assert_eq!(cancelled.id, early);
    assert_eq!(cancelled.status, ScheduleStatus::Cancelled);
    assert!(
        matches!(store.cancel(early), Err(Error::Precondition { .. })),
        "cancelling twice must be refused as a precondition"
    );
    assert!(
        matches!(store.cancel(late), Err(Error::Precondition { .. })),
        "cancelling a done entry must be refused as a precondition"
    );
    assert!(
        matches!(
            store.cancel(early + late + same_time + 1000),
            Err(Error::NotFound { .. })
        ),
        "cancelling an unknown id must be NotFound"
    );
    let mut unknown = done.clone();
    unknown.id = early + late + same_time + 1000;
    assert!(
        matches!(store.save(&unknown), Err(Error::NotFound { .. })),
        "saving an unknown id must be NotFound"
    );
    let pending = store
        .list(false)
        .unwrap_or_else(|e| panic!("list(false) failed: {e}"));
    assert_eq!(
        pending.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![same_time],
        "only the untouched entry is still pending"
    );
    assert_eq!(all(store).len(), 3, "nothing is deleted");
}
