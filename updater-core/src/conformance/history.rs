//! Conformance suite for [`HistoryStore`] implementations.
//!
//! - [`run`]: every method and every rule of the trait's contract, on one
//!   empty store.
//! - [`run_shared`]: two handles on the same storage (two processes, two
//!   connections): what one writes, the other reads at once.
//! - [`concurrent_writers`]: threads writing through several handles at once
//!   lose no row and get distinct ids.
//! - [`listings_order_by_creation_time`]: newest first by the record's
//!   timestamp, even when records were inserted out of time order.
//!
//! Timestamps given to the store have whole microseconds (the precision of
//! SQL databases); the suite checks separately that finer digits are not
//! rounded by more than a microsecond.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use crate::backup::BackupKind;
use crate::error::Error;
use crate::history::{
    BackupRecord, CheckStatus, HistoryStore, NotificationFilter, NotificationRecord,
    NotificationType, Page, StepOutcome, StepRecord, UpdateRecord, UpdateStatus,
    VersionCheckRecord, needs_check,
};
use crate::version::{UpdateType, Version};

/// A fixed instant plus `micros` microseconds: distinct, ordered, exact in SQL.
fn at(micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::microseconds(micros)
}

fn v(text: &str) -> Version {
    Version::parse(text).unwrap_or_else(|e| panic!("test version {text}: {e}"))
}

fn must<T>(rule: &str, result: crate::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{rule}: unexpected error: {e}"))
}

fn assert_not_found<T: std::fmt::Debug>(rule: &str, result: crate::Result<T>) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{rule}: expected Error::NotFound, got {other:?}"),
    }
}

/// A check with every field set (`success`) or the failure fields (`failed`).
pub fn sample_check(n: i64, success: bool) -> VersionCheckRecord {
    VersionCheckRecord {
        id: 0,
        current_version: v("1.0.0"),
        latest_version: success.then(|| v(&format!("1.{n}.0-beta.{n}+build.{n}"))),
        update_available: success,
        check_status: if success {
            CheckStatus::Success
        } else {
            CheckStatus::Failed
        },
        error_message: (!success).then(|| format!("source unreachable ({n}) — \u{e9}t\u{e9}")),
        release_info: success.then(|| {
            json!({"channel": "beta", "size": 1_234_567_890_123_i64, "assets": [n, "x"], "nested": {"ok": true, "none": null}})
        }),
        checked_at: at(n * 1_000_000),
    }
}

/// An update with every optional field set.
pub fn sample_update(n: i64) -> UpdateRecord {
    UpdateRecord {
        id: 999_999,
        version: v(&format!("2.{n}.0")),
        previous_version: Some(v("1.9.3")),
        update_type: Some(UpdateType::Major),
        status: UpdateStatus::Pending,
        changelog: format!(
            "## 2.{n}.0\n\n- fixes \"quotes\", 'apostrophes', back\\slash; DROP TABLE x; --\n- emoji 🚀"
        ),
        download_url: Some(format!("https://example.com/app-2.{n}.0.tar.gz")),
        checksum: Some("ab".repeat(32)),
        download_size: Some(5 * 1024 * 1024 * 1024 + 7),
        initiated_by: "cli:alice".into(),
        started_at: at(n * 1_000_000),
        completed_at: None,
        failed_at: None,
        error_message: None,
        backup_info: Some(json!({"files": "/var/backups/b1.tar.gz", "size": 42})),
        auto_update: true,
        progress_percentage: 0,
        steps: vec![StepRecord {
            name: "preflight".into(),
            started_at: at(n * 1_000_000 + 1),
            finished_at: Some(at(n * 1_000_000 + 2)),
            outcome: StepOutcome::Succeeded,
            message: None,
        }],
        maintenance_window_ms: None,
    }
}

/// A backup with every optional field set.
pub fn sample_backup(n: i64, update: Option<i64>) -> BackupRecord {
    BackupRecord {
        id: 0,
        system_update_id: update,
        backup_id: format!("backup-{n}"),
        version: v("1.9.3"),
        backup_type: BackupKind::Full,
        database_backup_path: Some(format!("/var/backups/db-{n}.sql.gz")),
        files_backup_path: Some(format!("/var/backups/files-{n}.tar.gz")),
        backup_size: 3 * 1024 * 1024 * 1024,
        is_restorable: true,
        created_at: at(n * 1_000_000),
        expires_at: Some(at(n * 1_000_000 + 86_400_000_000)),
        notes: None,
    }
}

/// A notification about `version`, of `kind`, for `user`.
pub fn sample_notification(
    n: i64,
    version: &str,
    kind: NotificationType,
    user: Option<&str>,
) -> NotificationRecord {
    NotificationRecord {
        id: 0,
        version: v(version),
        notification_type: kind,
        message: format!("message {n}"),
        metadata: Some(json!({"n": n})),
        is_read: false,
        is_dismissed: false,
        user_id: user.map(str::to_string),
        read_at: None,
        created_at: at(n * 1_000_000),
        event_id: None,
    }
}

/// Runs every check against `store`, which must be empty.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(store: &dyn HistoryStore) {
    empty_store(store);
    version_checks(store);
    updates(store);
    timestamp_precision(store);
    backups(store);
    notifications(store);
    audit(store);
}

/// The audit log: records come back newest first with their fields, paged.
fn audit(store: &dyn HistoryStore) {
    use crate::history::AuditRecord;
    let rule = "audit records are stored and listed newest first";
    assert!(
        must(rule, store.audit_log(Page::first(10))).is_empty(),
        "{rule}: empty at first"
    );
    let base = Utc::now() - Duration::seconds(60);
    let mut first = AuditRecord::new("web:alice", "login");
    first.at = base;
    let second = AuditRecord::new("web:alice", "backup_delete")
        .with_target("20261127T171600Z-1.4.2-files")
        .with_outcome(
            false,
            Some("backup 1 is the snapshot a rollback needs".into()),
        );
    let mut second = second;
    second.at = base + Duration::seconds(1);
    let id1 = must(rule, store.record_audit(&first));
    let id2 = must(rule, store.record_audit(&second));
    assert!(id1 > 0 && id2 > id1, "{rule}: ids positive and increasing");
    let listed = must(rule, store.audit_log(Page::first(10)));
    assert_eq!(listed.len(), 2, "{rule}");
    assert_eq!(listed[0].id, id2, "{rule}: newest first");
    assert_eq!(listed[0].user, "web:alice");
    assert_eq!(listed[0].action, "backup_delete");
    assert_eq!(
        listed[0].target.as_deref(),
        Some("20261127T171600Z-1.4.2-files")
    );
    assert!(!listed[0].success);
    assert_eq!(
        listed[0].detail.as_deref(),
        Some("backup 1 is the snapshot a rollback needs")
    );
    assert_eq!(listed[1].target, None);
    let paged = must(
        rule,
        store.audit_log(Page {
            offset: 1,
            limit: 5,
        }),
    );
    assert_eq!(paged.len(), 1, "{rule}: offset skips");
    assert_eq!(paged[0].id, id1);
}

fn empty_store(store: &dyn HistoryStore) {
    let rule = "an empty store has no records";
    assert_eq!(must(rule, store.latest_check()), None, "{rule}");
    assert!(
        must(rule, store.updates(Page::first(10))).is_empty(),
        "{rule}"
    );
    assert!(
        must(rule, store.backups(Page::first(10))).is_empty(),
        "{rule}"
    );
    let all = NotificationFilter {
        include_dismissed: true,
        ..NotificationFilter::default()
    };
    assert!(must(rule, store.notifications(&all)).is_empty(), "{rule}");
    assert_eq!(must(rule, store.update(1)), None, "{rule}: update(1)");
    assert!(
        must(rule, needs_check(store, Duration::hours(1), at(0))),
        "a check is needed when none was made"
    );
}

fn version_checks(store: &dyn HistoryStore) {
    let mut last_id = 0;
    for (n, success) in [(1, true), (2, false), (3, true)] {
        let check = sample_check(n, success);
        let id = must("record_check", store.record_check(&check));
        assert!(
            id > last_id,
            "check ids are positive and increasing: {id} after {last_id}"
        );
        last_id = id;
        let latest = must("latest_check", store.latest_check());
        assert_eq!(
            latest,
            Some(VersionCheckRecord { id, ..check }),
            "latest_check returns the check just recorded, every field intact"
        );
    }
    let last = at(3_000_000);
    assert!(
        !must(
            "needs_check",
            needs_check(store, Duration::hours(1), last + Duration::minutes(30))
        ),
        "no check is needed within the interval of the latest one"
    );
    assert!(
        must(
            "needs_check",
            needs_check(store, Duration::hours(1), last + Duration::hours(2))
        ),
        "a check is needed once the interval has passed"
    );
}

fn updates(store: &dyn HistoryStore) {
    // A minimal record: every optional field empty.
    let mut minimal = UpdateRecord::new(v("1.1.0"), "schedule");
    minimal.started_at = at(10_000_000);
    let first = must("create_update", store.create_update(&minimal));
    assert!(first > 0, "update ids are positive: {first}");
    assert_eq!(
        must("update", store.update(first)),
        Some(UpdateRecord {
            id: first,
            ..minimal.clone()
        }),
        "a minimal update reads back as written"
    );

    let mut full = sample_update(11);
    let second = must("create_update", store.create_update(&full));
    assert!(
        second > first,
        "update ids increase and the given id is ignored: {second} after {first}"
    );
    full.id = second;
    assert_eq!(
        must("update", store.update(second)),
        Some(full.clone()),
        "a full update reads back with every field intact"
    );

    // Advance it the way the pipeline does, saving after each step.
    full.status = UpdateStatus::Downloading;
    full.progress_percentage = 40;
    full.steps.push(StepRecord {
        name: "download".into(),
        started_at: at(11_000_010),
        finished_at: None,
        outcome: StepOutcome::Running,
        message: Some("12 of 30 MB".into()),
    });
    must("save_update", store.save_update(&full));
    assert_eq!(
        must("update", store.update(second)),
        Some(full.clone()),
        "save_update overwrites status, progress and steps"
    );
    full.status = UpdateStatus::Completed;
    full.progress_percentage = 100;
    full.completed_at = Some(at(11_500_000));
    full.maintenance_window_ms = Some(37);
    full.steps[1].finished_at = Some(at(11_000_020));
    full.steps[1].outcome = StepOutcome::Succeeded;
    must("save_update", store.save_update(&full));
    assert_eq!(
        must("update", store.update(second)),
        Some(full.clone()),
        "a completed update keeps completed_at and the maintenance window"
    );
    assert_eq!(
        must("update", store.update(first)),
        Some(UpdateRecord {
            id: first,
            ..minimal.clone()
        }),
        "save_update changes only the update with its id"
    );

    let mut failed = sample_update(12);
    failed.update_type = Some(UpdateType::PreRelease);
    failed.status = UpdateStatus::RolledBack;
    failed.failed_at = Some(at(12_000_500));
    failed.error_message = Some("step `migrate` failed: exit status 1".into());
    failed.auto_update = false;
    failed.backup_info = None;
    failed.steps.clear();
    let third = must("create_update", store.create_update(&failed));
    failed.id = third;
    assert_eq!(must("update", store.update(third)), Some(failed.clone()));

    let ids = |page| -> Vec<i64> {
        must("updates", store.updates(page))
            .iter()
            .map(|u| u.id)
            .collect()
    };
    assert_eq!(
        ids(Page::first(10)),
        [third, second, first],
        "updates are newest first"
    );
    assert_eq!(
        ids(Page {
            offset: 1,
            limit: 1
        }),
        [second],
        "updates page by offset and limit"
    );
    assert_eq!(ids(Page::first(2)), [third, second], "limit caps the page");
    assert!(
        ids(Page {
            offset: 3,
            limit: 10
        })
        .is_empty(),
        "an offset past the end is empty"
    );
    assert!(ids(Page::first(0)).is_empty(), "a limit of 0 is empty");
    assert_eq!(
        ids(Page {
            offset: 0,
            limit: u64::MAX
        }),
        [third, second, first],
        "the largest limit lists everything"
    );
    assert_eq!(
        must("updates", store.updates(Page::first(1)))[0],
        failed,
        "listed records carry every field"
    );

    let unknown = third + 1000;
    assert_eq!(
        must("update", store.update(unknown)),
        None,
        "an unknown update id reads as None"
    );
    assert_not_found(
        "save_update of an unknown id",
        store.save_update(&UpdateRecord {
            id: unknown,
            ..minimal
        }),
    );
}

fn timestamp_precision(store: &dyn HistoryStore) {
    let mut update = UpdateRecord::new(v("9.9.9"), "precision");
    update.started_at = at(20_000_000) + Duration::nanoseconds(123_456_789);
    let id = must("create_update", store.create_update(&update));
    let stored = must("update", store.update(id))
        .unwrap_or_else(|| panic!("update {id} just created is missing"));
    let drift = (stored.started_at - update.started_at)
        .num_nanoseconds()
        .unwrap_or(i64::MAX)
        .abs();
    assert!(
        drift < 1_000,
        "timestamps keep at least microsecond precision (drift {drift} ns)"
    );
}

fn backups(store: &dyn HistoryStore) {
    let update = must("updates", store.updates(Page::first(1)))
        .first()
        .map(|u| u.id);
    let mut records = Vec::new();
    for n in 31..34 {
        let mut backup = sample_backup(n, if n == 31 { None } else { update });
        if n == 32 {
            backup.backup_type = BackupKind::DatabaseOnly;
            backup.files_backup_path = None;
            backup.expires_at = None;
            backup.notes = Some("before the 2.x migration".into());
        }
        if n == 33 {
            backup.backup_type = BackupKind::FilesOnly;
            backup.database_backup_path = None;
        }
        let id = must("record_backup", store.record_backup(&backup));
        assert!(
            records.last().is_none_or(|b: &BackupRecord| id > b.id),
            "backup ids increase"
        );
        records.push(BackupRecord { id, ..backup });
    }
    let newest_first: Vec<BackupRecord> = records.iter().rev().cloned().collect();
    assert_eq!(
        must("backups", store.backups(Page::first(10))),
        newest_first,
        "backups are newest first with every field intact"
    );
    assert_eq!(
        must(
            "backups",
            store.backups(Page {
                offset: 1,
                limit: 1
            })
        ),
        newest_first[1..2],
        "backups page by offset and limit"
    );

    must(
        "mark_backup_unrestorable",
        store.mark_backup_unrestorable("backup-31", "deleted by retention"),
    );
    must(
        "mark_backup_unrestorable",
        store.mark_backup_unrestorable("backup-32", "archive damaged"),
    );
    let after = must("backups", store.backups(Page::first(10)));
    let find = |id: &str| {
        after
            .iter()
            .find(|b| b.backup_id == id)
            .cloned()
            .unwrap_or_else(|| panic!("backup {id} disappeared"))
    };
    let b31 = find("backup-31");
    assert!(
        !b31.is_restorable,
        "a marked backup is no longer restorable"
    );
    assert_eq!(
        b31.notes.as_deref(),
        Some("deleted by retention"),
        "the note is stored"
    );
    let b32 = find("backup-32");
    assert_eq!(
        b32.notes.as_deref(),
        Some("before the 2.x migration\narchive damaged"),
        "the note is appended on a new line to existing notes"
    );
    assert!(
        find("backup-33").is_restorable,
        "other backups are untouched"
    );
    assert_not_found(
        "mark_backup_unrestorable of an unknown backup",
        store.mark_backup_unrestorable("no-such-backup", "x"),
    );
}

fn notifications(store: &dyn HistoryStore) {
    use NotificationType::*;
    let all = NotificationFilter {
        include_dismissed: true,
        ..NotificationFilter::default()
    };
    let add = |n: &NotificationRecord| must("add_notification", store.add_notification(n));

    let first = sample_notification(41, "2.0.0", UpdateAvailable, None);
    let a = add(&first).unwrap_or_else(|| panic!("the first notification must be stored"));
    assert!(a > 0, "notification ids are positive");
    let mut repeat = sample_notification(42, "2.0.0", UpdateAvailable, None);
    repeat.message = "the same news, the next day".into();
    assert_eq!(
        add(&repeat),
        None,
        "a notification with the same version, type and user is not stored again"
    );
    let listed = must("notifications", store.notifications(&all));
    assert_eq!(listed.len(), 1, "the duplicate is not listed");
    assert_eq!(
        listed[0],
        NotificationRecord { id: a, ..first },
        "the first notification is kept, every field intact"
    );

    let other_type = add(&sample_notification(43, "2.0.0", UpdateStarted, None));
    let for_alice = add(&sample_notification(
        44,
        "2.0.0",
        UpdateAvailable,
        Some("alice"),
    ));
    let for_bob = add(&sample_notification(
        45,
        "2.0.0",
        UpdateAvailable,
        Some("bob"),
    ));
    let other_version = add(&sample_notification(46, "2.0.1", UpdateAvailable, None));
    let build_differs = add(&sample_notification(
        47,
        "2.0.1+build.7",
        UpdateAvailable,
        None,
    ));
    let ids: Vec<i64> = [other_type, for_alice, for_bob, other_version, build_differs]
        .into_iter()
        .map(|id| {
            id.unwrap_or_else(|| {
                panic!("notifications differing in type, user or version are all stored")
            })
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]) && a < ids[0],
        "notification ids increase: {a} then {ids:?}"
    );
    assert_eq!(
        add(&sample_notification(
            48,
            "2.0.0",
            UpdateAvailable,
            Some("alice")
        )),
        None,
        "deduplication is per user too"
    );

    // Event ids: a second failure of the same version is news; the same
    // event is stored once; a record without an id is the event of its
    // type and version.
    let failure = |n: i64, event: &str| NotificationRecord {
        event_id: Some(event.to_string()),
        ..sample_notification(n, "2.0.0", UpdateFailed, Some("carol"))
    };
    let first_failure = add(&failure(49, "update-1:update_failed"))
        .unwrap_or_else(|| panic!("a notification with an event id is stored"));
    assert!(
        add(&failure(50, "update-2:update_failed")).is_some(),
        "a second event of the same version, type and user is stored"
    );
    assert_eq!(
        add(&failure(51, "update-1:update_failed")),
        None,
        "the same event for the same user is stored once"
    );
    assert_eq!(
        add(&NotificationRecord {
            event_id: Some("update_available:2.0.0".into()),
            ..sample_notification(52, "2.0.0", UpdateAvailable, None)
        }),
        None,
        "a record without an event id is the event `<type>:<version>`"
    );
    let stored = must("notifications", store.notifications(&all))
        .into_iter()
        .find(|n| n.id == first_failure)
        .unwrap_or_else(|| panic!("notification {first_failure} disappeared"));
    assert_eq!(
        stored.event_id.as_deref(),
        Some("update-1:update_failed"),
        "the event id is kept"
    );
    let carol: Vec<i64> = must("notifications", store.notifications(&all))
        .iter()
        .filter(|n| n.user_id.as_deref() == Some("carol"))
        .map(|n| n.id)
        .collect();
    for id in carol {
        must("dismiss_notification", store.dismiss_notification(id));
    }

    let listed_ids = |filter: &NotificationFilter| -> Vec<i64> {
        must("notifications", store.notifications(filter))
            .iter()
            .map(|n| n.id)
            .collect()
    };
    let mut everything = ids.clone();
    everything.insert(0, a);
    everything.reverse();
    assert_eq!(
        listed_ids(&NotificationFilter::default()),
        everything,
        "notifications are newest first"
    );
    let alice = NotificationFilter {
        user_id: Some("alice".into()),
        ..NotificationFilter::default()
    };
    let expected_alice: Vec<i64> = everything
        .iter()
        .copied()
        .filter(|id| *id != ids[2])
        .collect();
    assert_eq!(
        listed_ids(&alice),
        expected_alice,
        "a user sees their own notifications and those for every admin, not another user's"
    );

    // Read.
    let before = Utc::now() - Duration::seconds(1);
    must("mark_notification_read", store.mark_notification_read(a));
    let after = Utc::now() + Duration::seconds(1);
    let read = must("notifications", store.notifications(&all))
        .into_iter()
        .find(|n| n.id == a)
        .unwrap_or_else(|| panic!("notification {a} disappeared"));
    assert!(read.is_read, "a read notification is marked read");
    let read_at = read
        .read_at
        .unwrap_or_else(|| panic!("a read notification has read_at"));
    assert!(
        before <= read_at && read_at <= after,
        "read_at is the time it was marked read: {read_at}"
    );
    must("mark_notification_read", store.mark_notification_read(a));
    let again = must("notifications", store.notifications(&all))
        .into_iter()
        .find(|n| n.id == a)
        .and_then(|n| n.read_at);
    assert_eq!(
        again,
        Some(read_at),
        "marking read again keeps the first read_at"
    );
    let unread = NotificationFilter {
        unread_only: true,
        ..NotificationFilter::default()
    };
    assert_eq!(
        listed_ids(&unread),
        everything
            .iter()
            .copied()
            .filter(|id| *id != a)
            .collect::<Vec<_>>(),
        "unread_only leaves out read notifications"
    );

    // Dismiss.
    must("dismiss_notification", store.dismiss_notification(ids[0]));
    assert!(
        !listed_ids(&NotificationFilter::default()).contains(&ids[0]),
        "dismissed notifications are not listed by default"
    );
    let dismissed = must("notifications", store.notifications(&all))
        .into_iter()
        .find(|n| n.id == ids[0])
        .unwrap_or_else(|| panic!("include_dismissed lists dismissed notifications"));
    assert!(
        dismissed.is_dismissed,
        "a dismissed notification is marked dismissed"
    );
    assert!(!dismissed.is_read, "dismissing does not mark read");
    must("dismiss_notification", store.dismiss_notification(ids[0]));

    let unknown = ids[4] + 1000;
    assert_not_found(
        "mark_notification_read of an unknown id",
        store.mark_notification_read(unknown),
    );
    assert_not_found(
        "dismiss_notification of an unknown id",
        store.dismiss_notification(unknown),
    );
}

/// Checks that `reader` sees at once what `writer` writes: both are handles
/// on the same empty storage (two processes or two connections).
///
/// # Panics
///
/// When a write is not visible to the other handle.
pub fn run_shared(writer: &dyn HistoryStore, reader: &dyn HistoryStore) {
    let check = sample_check(1, true);
    let check_id = must("record_check", writer.record_check(&check));
    assert_eq!(
        must("latest_check", reader.latest_check()),
        Some(VersionCheckRecord {
            id: check_id,
            ..check
        }),
        "a recorded check is visible to another handle"
    );

    let mut update = sample_update(2);
    update.id = must("create_update", writer.create_update(&update));
    assert_eq!(
        must("update", reader.update(update.id)),
        Some(update.clone()),
        "a created update is visible to another handle"
    );
    for percent in [10_u8, 55, 90] {
        update.status = UpdateStatus::Installing;
        update.progress_percentage = percent;
        must("save_update", writer.save_update(&update));
        let seen = must("update", reader.update(update.id))
            .unwrap_or_else(|| panic!("update {} vanished", update.id));
        assert_eq!(
            (seen.status, seen.progress_percentage),
            (UpdateStatus::Installing, percent),
            "a running update's progress is visible to another handle (a progress page)"
        );
    }

    let n = sample_notification(3, "2.0.0", NotificationType::UpdateAvailable, None);
    let id = must("add_notification", writer.add_notification(&n))
        .unwrap_or_else(|| panic!("the first notification must be stored"));
    assert_eq!(
        must("add_notification", reader.add_notification(&n)),
        None,
        "deduplication holds across handles"
    );
    must("mark_notification_read", reader.mark_notification_read(id));
    let unread = NotificationFilter {
        unread_only: true,
        ..NotificationFilter::default()
    };
    assert!(
        must("notifications", writer.notifications(&unread)).is_empty(),
        "a notification read through one handle is read for the other"
    );
}

/// Writes from `threads_per_store` threads on each of `stores` (handles on
/// the same empty storage) at once, `records_per_thread` of each kind per
/// thread, then checks that no row was lost or merged. Every thread also adds
/// the same notification: exactly one must be stored.
///
/// # Panics
///
/// When a write fails, a row is missing, or ids repeat.
pub fn concurrent_writers(
    stores: &[&dyn HistoryStore],
    threads_per_store: usize,
    records_per_thread: usize,
) {
    let shared_duplicates = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for (s, store) in stores.iter().enumerate() {
            for t in 0..threads_per_store {
                let shared_duplicates = &shared_duplicates;
                scope.spawn(move || {
                    for r in 0..records_per_thread {
                        let tag = i64::try_from((s * 1000 + t) * 1000 + r).unwrap_or(i64::MAX);
                        let mut update =
                            UpdateRecord::new(v(&format!("3.{tag}.0")), format!("thread {s}/{t}"));
                        update.started_at = at(tag);
                        update.id = must("concurrent create_update", store.create_update(&update));
                        update.status = UpdateStatus::Completed;
                        update.progress_percentage = 100;
                        must("concurrent save_update", store.save_update(&update));
                        let mut check = sample_check(tag, true);
                        check.checked_at = at(tag);
                        must("concurrent record_check", store.record_check(&check));
                        let n = sample_notification(
                            tag,
                            &format!("3.{tag}.0"),
                            NotificationType::UpdateCompleted,
                            None,
                        );
                        must("concurrent add_notification", store.add_notification(&n));
                        let same = sample_notification(
                            0,
                            "4.0.0",
                            NotificationType::UpdateAvailable,
                            None,
                        );
                        if must(
                            "concurrent duplicate add_notification",
                            store.add_notification(&same),
                        )
                        .is_none()
                        {
                            shared_duplicates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        }
    });
    let writers = stores.len() * threads_per_store * records_per_thread;
    let reader = stores
        .first()
        .unwrap_or_else(|| panic!("concurrent_writers needs at least one store"));
    let updates = must("updates", reader.updates(Page::first(u64::MAX)));
    assert_eq!(
        updates.len(),
        writers,
        "every concurrently created update is stored"
    );
    assert!(
        updates
            .iter()
            .all(|u| u.status == UpdateStatus::Completed && u.progress_percentage == 100),
        "every concurrent save_update is stored"
    );
    let mut ids: Vec<i64> = updates.iter().map(|u| u.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), writers, "concurrent updates get distinct ids");
    let all = NotificationFilter {
        include_dismissed: true,
        ..NotificationFilter::default()
    };
    let notifications = must("notifications", reader.notifications(&all));
    assert_eq!(
        notifications.len(),
        writers + 1,
        "every distinct notification is stored once, the shared one exactly once"
    );
    assert_eq!(
        shared_duplicates.load(std::sync::atomic::Ordering::Relaxed),
        writers - 1,
        "all but one concurrent add of the same notification return None"
    );
    let latest = must("latest_check", reader.latest_check());
    assert!(latest.is_some(), "concurrent checks are stored");
}

/// Checks that listings and `latest_check` are ordered by the records'
/// timestamps (newest first), then by id, even when records were written out
/// of time order (clock changes, several hosts). Needs an empty store.
///
/// # Panics
///
/// When a listing is in insertion order instead.
pub fn listings_order_by_creation_time(store: &dyn HistoryStore) {
    // Written in the order 2, 1, 3 (by time); 3 and 3' share a timestamp.
    let times = [2, 1, 3, 3];
    let mut update_ids = Vec::new();
    let mut backup_ids = Vec::new();
    let mut check_ids = Vec::new();
    let mut notification_ids = Vec::new();
    for (i, t) in times.iter().enumerate() {
        let n = i64::try_from(i).unwrap_or(0);
        let mut update = sample_update(n);
        update.started_at = at(t * 1_000_000);
        update_ids.push(must("create_update", store.create_update(&update)));
        let mut backup = sample_backup(n, None);
        backup.created_at = at(t * 1_000_000);
        backup_ids.push(must("record_backup", store.record_backup(&backup)));
        let mut check = sample_check(n, true);
        check.checked_at = at(t * 1_000_000);
        check_ids.push(must("record_check", store.record_check(&check)));
        let mut note = sample_notification(n, &format!("5.{n}.0"), NotificationType::Warning, None);
        note.created_at = at(t * 1_000_000);
        notification_ids.push(
            must("add_notification", store.add_notification(&note))
                .unwrap_or_else(|| panic!("distinct notification refused")),
        );
    }
    // Newest time first; equal times: higher id first.
    let order = |ids: &[i64]| vec![ids[3], ids[2], ids[0], ids[1]];
    let listed: Vec<i64> = must("updates", store.updates(Page::first(10)))
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(
        listed,
        order(&update_ids),
        "updates are ordered by started_at, then id"
    );
    let listed: Vec<i64> = must("backups", store.backups(Page::first(10)))
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(
        listed,
        order(&backup_ids),
        "backups are ordered by created_at, then id"
    );
    let listed: Vec<i64> = must(
        "notifications",
        store.notifications(&NotificationFilter::default()),
    )
    .iter()
    .map(|n| n.id)
    .collect();
    assert_eq!(
        listed,
        order(&notification_ids),
        "notifications are ordered by created_at, then id"
    );
    // A check recorded later but stamped earlier is not the latest.
    let mut late = sample_check(9, false);
    late.checked_at = at(500_000);
    must("record_check", store.record_check(&late));
    assert_eq!(
        must("latest_check", store.latest_check()).map(|c| c.id),
        Some(check_ids[3]),
        "latest_check is the newest by checked_at, then id"
    );
}
