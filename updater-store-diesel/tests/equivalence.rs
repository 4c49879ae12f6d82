//! Property test: a random sequence of store operations applied to the SQLite
//! store and to core's `InMemoryHistoryStore` gives the same answers.
//!
//! Normalised: `read_at` is compared only as present/absent, because each
//! store stamps it with its own clock when a notification is marked read.
//! Timestamps given by the caller have whole microseconds and never go back,
//! like a real clock (the in-memory store lists in insertion order).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use updater_core::backup::BackupKind;
use updater_core::history::{
    BackupRecord, CheckStatus, HistoryStore, InMemoryHistoryStore, NotificationFilter,
    NotificationRecord, NotificationType, Page, StepOutcome, StepRecord, UpdateRecord,
    UpdateStatus, VersionCheckRecord,
};
use updater_core::version::{UpdateType, Version};
use updater_store_diesel::DieselHistoryStore;

/// Which record an operation addresses: one created before (by index), or an unknown id.
#[derive(Debug, Clone, Copy)]
enum Target {
    Existing(usize),
    Unknown,
}

#[derive(Debug, Clone)]
enum Op {
    RecordCheck {
        success: bool,
        minor: u64,
    },
    LatestCheck,
    CreateUpdate {
        minor: u64,
        details: bool,
        changelog: String,
    },
    SaveUpdate {
        target: Target,
        status: usize,
        progress: u8,
        step: Option<String>,
    },
    GetUpdate(Target),
    ListUpdates {
        offset: u64,
        limit: u64,
    },
    RecordBackup {
        update: Option<Target>,
        kind: usize,
        notes: Option<String>,
    },
    ListBackups {
        offset: u64,
        limit: u64,
    },
    MarkBackup {
        target: Target,
        note: String,
    },
    AddNotification {
        minor: u64,
        kind: usize,
        user: usize,
        read: bool,
        dismissed: bool,
        message: String,
    },
    ListNotifications {
        unread_only: bool,
        include_dismissed: bool,
        user: usize,
    },
    MarkRead(Target),
    Dismiss(Target),
}

const STATUSES: [UpdateStatus; 7] = [
    UpdateStatus::Pending,
    UpdateStatus::Downloading,
    UpdateStatus::Installing,
    UpdateStatus::Verifying,
    UpdateStatus::Completed,
    UpdateStatus::Failed,
    UpdateStatus::RolledBack,
];
const KINDS: [NotificationType; 4] = [
    NotificationType::UpdateAvailable,
    NotificationType::UpdateStarted,
    NotificationType::UpdateFailed,
    NotificationType::NeedsOperator,
];
const USERS: [Option<&str>; 3] = [None, Some("alice"), Some("bob")];
const BACKUP_KINDS: [BackupKind; 3] = [
    BackupKind::Full,
    BackupKind::DatabaseOnly,
    BackupKind::FilesOnly,
];

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => any::<usize>().prop_map(Target::Existing),
        1 => Just(Target::Unknown),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), 0..4_u64).prop_map(|(success, minor)| Op::RecordCheck { success, minor }),
        Just(Op::LatestCheck),
        (0..4_u64, any::<bool>(), text()).prop_map(|(minor, details, changelog)| {
            Op::CreateUpdate {
                minor,
                details,
                changelog,
            }
        }),
        (
            target(),
            0..STATUSES.len(),
            0..=100_u8,
            proptest::option::of(text())
        )
            .prop_map(|(target, status, progress, step)| Op::SaveUpdate {
                target,
                status,
                progress,
                step
            }),
        target().prop_map(Op::GetUpdate),
        (0..4_u64, 0..5_u64).prop_map(|(offset, limit)| Op::ListUpdates { offset, limit }),
        (
            proptest::option::of(target()),
            0..BACKUP_KINDS.len(),
            proptest::option::of(text())
        )
            .prop_map(|(update, kind, notes)| Op::RecordBackup {
                update,
                kind,
                notes
            }),
        (0..4_u64, 0..5_u64).prop_map(|(offset, limit)| Op::ListBackups { offset, limit }),
        (target(), text()).prop_map(|(target, note)| Op::MarkBackup { target, note }),
        (
            0..3_u64,
            0..KINDS.len(),
            0..USERS.len(),
            any::<bool>(),
            any::<bool>(),
            text()
        )
            .prop_map(|(minor, kind, user, read, dismissed, message)| {
                Op::AddNotification {
                    minor,
                    kind,
                    user,
                    read,
                    dismissed,
                    message,
                }
            }),
        (any::<bool>(), any::<bool>(), 0..USERS.len() + 1).prop_map(
            |(unread_only, include_dismissed, user)| {
                Op::ListNotifications {
                    unread_only,
                    include_dismissed,
                    user,
                }
            }
        ),
        target().prop_map(Op::MarkRead),
        target().prop_map(Op::Dismiss),
    ]
}

fn at(micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap() + Duration::microseconds(micros)
}

/// Ids handed out so far (the two stores must agree on them).
#[derive(Default)]
struct Known {
    updates: Vec<i64>,
    backups: Vec<String>,
    notifications: Vec<i64>,
}

fn pick<T: Clone>(known: &[T], target: Target, unknown: T) -> T {
    match target {
        Target::Existing(i) if !known.is_empty() => known[i % known.len()].clone(),
        _ => unknown,
    }
}

/// An answer with store-stamped times removed and errors reduced to their kind.
fn outcome<T: std::fmt::Debug>(result: updater_core::Result<T>) -> Result<String, String> {
    match result {
        Ok(value) => Ok(format!("{value:?}")),
        Err(updater_core::Error::NotFound { what }) => Err(format!("not found: {what}")),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn without_read_time(mut list: Vec<NotificationRecord>) -> Vec<NotificationRecord> {
    for n in &mut list {
        n.read_at = n.read_at.map(|_| at(0));
    }
    list
}

/// Applies `op` to `store`; returns the normalised answer.
fn apply(store: &dyn HistoryStore, op: &Op, clock: i64, known: &Known) -> Result<String, String> {
    let now = at(clock);
    match op {
        Op::RecordCheck { success, minor } => outcome(store.record_check(&VersionCheckRecord {
            id: 0,
            current_version: Version::new(1, 0, 0),
            latest_version: success.then(|| Version::new(1, *minor, 0)),
            update_available: *success && *minor > 0,
            check_status: if *success {
                CheckStatus::Success
            } else {
                CheckStatus::Failed
            },
            error_message: (!success).then(|| "timeout".to_string()),
            release_info: success.then(|| json!({"minor": minor})),
            checked_at: now,
        })),
        Op::LatestCheck => outcome(store.latest_check()),
        Op::CreateUpdate {
            minor,
            details,
            changelog,
        } => {
            let mut update = UpdateRecord::new(Version::new(2, *minor, 0), "proptest");
            update.started_at = now;
            update.changelog = changelog.clone();
            if *details {
                update.previous_version = Some(Version::new(1, 0, 0));
                update.update_type = Some(UpdateType::Major);
                update.download_size = Some(u64::try_from(clock).unwrap() * 1000);
                update.backup_info = Some(json!({"clock": clock}));
            }
            outcome(store.create_update(&update))
        }
        Op::SaveUpdate {
            target,
            status,
            progress,
            step,
        } => {
            let id = pick(&known.updates, *target, 10_000);
            // Advance the stored record as the pipeline does (started_at stays).
            let mut update = store.update(id).unwrap().unwrap_or_else(|| {
                let mut fresh = UpdateRecord::new(Version::new(2, 9, 0), "never created");
                fresh.id = id;
                fresh.started_at = now;
                fresh
            });
            update.status = STATUSES[*status];
            update.progress_percentage = *progress;
            update.steps = step
                .iter()
                .map(|name| StepRecord {
                    name: name.clone(),
                    started_at: now,
                    finished_at: None,
                    outcome: StepOutcome::Running,
                    message: Some(name.clone()),
                })
                .collect();
            if update.status.is_final() {
                update.completed_at = Some(now);
                update.maintenance_window_ms = Some(12);
            }
            outcome(store.save_update(&update))
        }
        Op::GetUpdate(target) => outcome(store.update(pick(&known.updates, *target, 10_000))),
        Op::ListUpdates { offset, limit } => outcome(store.updates(Page {
            offset: *offset,
            limit: *limit,
        })),
        Op::RecordBackup {
            update,
            kind,
            notes,
        } => outcome(store.record_backup(&BackupRecord {
            id: 0,
            system_update_id: update.map(|t| pick(&known.updates, t, 10_000)),
            backup_id: format!("backup-{clock}"),
            version: Version::new(1, 0, 0),
            backup_type: BACKUP_KINDS[*kind],
            database_backup_path: Some(format!("/b/{clock}.sql")),
            files_backup_path: None,
            backup_size: u64::try_from(clock).unwrap(),
            is_restorable: true,
            created_at: now,
            expires_at: Some(now + Duration::days(7)),
            notes: notes.clone(),
        })),
        Op::ListBackups { offset, limit } => outcome(store.backups(Page {
            offset: *offset,
            limit: *limit,
        })),
        Op::MarkBackup { target, note } => {
            let backup_id = pick(&known.backups, *target, "no-such-backup".to_string());
            outcome(store.mark_backup_unrestorable(&backup_id, note))
        }
        Op::AddNotification {
            minor,
            kind,
            user,
            read,
            dismissed,
            message,
        } => outcome(store.add_notification(&NotificationRecord {
            id: 0,
            version: Version::new(3, *minor, 0),
            notification_type: KINDS[*kind],
            message: message.clone(),
            metadata: Some(json!({"clock": clock})),
            is_read: *read,
            is_dismissed: *dismissed,
            user_id: USERS[*user].map(str::to_string),
            read_at: read.then_some(now),
            created_at: now,
            event_id:
                (*minor % 2 == 1).then(|| format!("update-{minor}:{}", KINDS[*kind].as_str())),
        })),
        Op::ListNotifications {
            unread_only,
            include_dismissed,
            user,
        } => {
            let filter = NotificationFilter {
                unread_only: *unread_only,
                include_dismissed: *include_dismissed,
                user_id: USERS.get(*user).copied().flatten().map(str::to_string),
            };
            outcome(store.notifications(&filter).map(without_read_time))
        }
        Op::MarkRead(target) => {
            outcome(store.mark_notification_read(pick(&known.notifications, *target, 10_000)))
        }
        Op::Dismiss(target) => {
            outcome(store.dismiss_notification(pick(&known.notifications, *target, 10_000)))
        }
    }
}

fn remember(known: &mut Known, op: &Op, answer: &Result<String, String>, clock: i64) {
    let Ok(text) = answer else { return };
    match op {
        Op::CreateUpdate { .. } => known.updates.push(text.parse().unwrap()),
        Op::RecordBackup { .. } => known.backups.push(format!("backup-{clock}")),
        Op::AddNotification { .. } => {
            if let Some(id) = text.strip_prefix("Some(").and_then(|t| t.strip_suffix(')')) {
                known.notifications.push(id.parse().unwrap());
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sqlite_store_answers_like_the_in_memory_store(ops in proptest::collection::vec(op(), 1..60)) {
        let model = InMemoryHistoryStore::new();
        let sqlite = DieselHistoryStore::open(":memory:").unwrap();
        let mut known = Known::default();
        for (step, op) in ops.iter().enumerate() {
            let clock = i64::try_from(step).unwrap() * 1_000 + 1;
            let expected = apply(&model, op, clock, &known);
            let actual = apply(&sqlite, op, clock, &known);
            prop_assert_eq!(&actual, &expected, "step {}: {:?}", step, op);
            remember(&mut known, op, &expected, clock);
        }
        // The final state, read whole, agrees too.
        let everything = NotificationFilter { include_dismissed: true, ..NotificationFilter::default() };
        prop_assert_eq!(
            without_read_time(sqlite.notifications(&everything).unwrap()),
            without_read_time(model.notifications(&everything).unwrap())
        );
        prop_assert_eq!(sqlite.updates(Page::first(u64::MAX)).unwrap(), model.updates(Page::first(u64::MAX)).unwrap());
        prop_assert_eq!(sqlite.backups(Page::first(u64::MAX)).unwrap(), model.backups(Page::first(u64::MAX)).unwrap());
        prop_assert_eq!(sqlite.latest_check().unwrap(), model.latest_check().unwrap());
    }
}
