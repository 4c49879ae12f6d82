//! Update analytics (`Updater::stats`, `updater stats`) computed from the
//! history in SQLite, PostgreSQL and MariaDB equal the analytics of the same
//! records in memory: every field the statistics read (status, steps and
//! their times, windows, versions, start days) survives each backend, and
//! the updater's paging through more than one page of history loses no record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod backends;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use updater_core::Updater;
use updater_core::history::{
    HistoryStore, InMemoryHistoryStore, StepOutcome, StepRecord, UpdateRecord, UpdateStatus,
};
use updater_core::stats::UpdateStats;
use updater_core::version::{UpdateType, Version};
use updater_testkit::app::Fixture;

/// More than one page of the updater's 500-record paging.
const RECORDS: u64 = 560;

/// A small deterministic generator (the same records on every backend).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 1, 0, 0).unwrap()
}

/// `RECORDS` updates over about 100 days: completed, failed and rolled back
/// at various steps, with step times and windows in whole milliseconds.
fn history() -> Vec<UpdateRecord> {
    let mut random = Lcg(7);
    let steps = [
        "lookup", "download", "stage", "backup", "swap", "migrate", "health",
    ];
    (0..RECORDS)
        .map(|i| {
            let started = start()
                + Duration::minutes(i64::try_from(i * 257).unwrap())
                + Duration::milliseconds(i64::try_from(random.next(1000)).unwrap());
            let mut record = UpdateRecord::new(
                Version::new(1, random.next(4), random.next(6)),
                if i % 3 == 0 { "auto-update" } else { "alice" },
            );
            record.previous_version = Some(Version::new(1, 0, 0));
            record.update_type = Some(UpdateType::Patch);
            record.started_at = started;
            record.auto_update = i % 3 == 0;
            let outcome = random.next(10);
            let last_step = match outcome {
                0 => random.next(4),         // failed before the window
                1 | 2 => 4 + random.next(3), // rolled back in the window
                _ => steps.len() as u64 - 1,
            };
            let mut at = started;
            for (index, name) in steps.iter().enumerate().take(last_step as usize + 1) {
                let took = Duration::milliseconds(i64::try_from(5 + random.next(4000)).unwrap());
                let failed = index as u64 == last_step && outcome < 3;
                record.steps.push(StepRecord {
                    name: (*name).to_string(),
                    started_at: at,
                    finished_at: Some(at + took),
                    outcome: if failed {
                        StepOutcome::Failed
                    } else if *name == "backup" && i % 5 == 0 {
                        StepOutcome::Skipped
                    } else {
                        StepOutcome::Succeeded
                    },
                    message: failed.then(|| format!("{name} failed")),
                });
                at += took;
            }
            match outcome {
                0 => {
                    record.status = UpdateStatus::Failed;
                    record.failed_at = Some(at);
                    record.error_message = Some("failed".into());
                }
                1 | 2 => {
                    record.status = if i % 7 == 0 {
                        UpdateStatus::NeedsOperator
                    } else {
                        UpdateStatus::RolledBack
                    };
                    record.failed_at = Some(at);
                    record.maintenance_window_ms = Some(100 + random.next(900));
                }
                _ => {
                    record.status = UpdateStatus::Completed;
                    record.completed_at = Some(at);
                    record.progress_percentage = 100;
                    record.maintenance_window_ms = Some(50 + random.next(2000));
                }
            }
            if i + 1 == RECORDS {
                // The newest is still running.
                record.status = UpdateStatus::Installing;
                record.completed_at = None;
                record.failed_at = None;
            }
            record
        })
        .collect()
}

fn fill(store: &dyn HistoryStore, records: &[UpdateRecord]) {
    for record in records {
        let id = store.create_update(record).unwrap();
        let mut saved = record.clone();
        saved.id = id;
        store.save_update(&saved).unwrap();
    }
}

fn stats_through_updater(
    history: Arc<dyn HistoryStore>,
    since: Option<DateTime<Utc>>,
) -> UpdateStats {
    let fx = Fixture::new();
    let updater: Updater = fx.builder().with_history(history).build().unwrap();
    updater.stats(since).unwrap()
}

fn expected(since: Option<DateTime<Utc>>) -> UpdateStats {
    let memory = Arc::new(InMemoryHistoryStore::new());
    fill(&*memory, &history());
    stats_through_updater(memory, since)
}

fn assert_same_stats(store: Arc<dyn HistoryStore>, name: &str) {
    fill(&*store, &history());
    for since in [None, Some(start() + Duration::days(40))] {
        let got = stats_through_updater(Arc::clone(&store), since);
        let want = expected(since);
        assert_eq!(got, want, "{name}: statistics since {since:?} differ");
        assert_eq!(
            want.attempts,
            history()
                .iter()
                .filter(|r| since.is_none_or(|s| r.started_at >= s))
                .count() as u64
        );
    }
}

#[test]
fn the_in_memory_statistics_are_not_trivial() {
    // Guards the comparison below against a generator that yields nothing to compare.
    let stats = expected(None);
    assert_eq!(stats.attempts, RECORDS);
    assert!(stats.completed > 300 && stats.failed > 20 && stats.rolled_back > 60);
    assert_eq!(stats.unfinished, 1);
    assert!(stats.rollbacks_by_step.len() >= 3);
    assert!(stats.failures_by_step.len() >= 3);
    assert!(stats.per_day.len() > 90);
    assert!(stats.maintenance_window_ms.p95 > stats.maintenance_window_ms.median);
    assert_eq!(stats.step_ms.len(), 7);
}

macro_rules! backend_tests {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[test]
            fn statistics_equal_the_in_memory_statistics_of_the_same_history() {
                let Some(db) = backends::$backend() else {
                    return;
                };
                let store = db.open();
                let shared: Arc<dyn HistoryStore> = Arc::new(store.store.clone());
                assert_same_stats(shared, stringify!($backend));
            }
        }
    };
}

backend_tests!(sqlite);
backend_tests!(postgres);
backend_tests!(mysql);
