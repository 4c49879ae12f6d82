//! Update analytics from history: attempts, success rate, rollbacks by the
//! step that failed, maintenance window and duration (median, 95th
//! percentile), time per step, per version and per day. Computed here from
//! the records any [`HistoryStore`](crate::history::HistoryStore) returns,
//! so every backend gives the same numbers.
//!
//! ```
//! use updater_core::history::{UpdateRecord, UpdateStatus};
//! use updater_core::stats::UpdateStats;
//! use updater_core::version::Version;
//! let mut done = UpdateRecord::new(Version::new(1, 1, 0), "alice");
//! done.status = UpdateStatus::Completed;
//! done.maintenance_window_ms = Some(40);
//! let mut failed = UpdateRecord::new(Version::new(1, 2, 0), "alice");
//! failed.status = UpdateStatus::RolledBack;
//! let stats = UpdateStats::compute(&[done, failed], None);
//! assert_eq!((stats.attempts, stats.completed, stats.rolled_back), (2, 1, 1));
//! assert_eq!(stats.success_rate, Some(0.5));
//! assert_eq!(stats.maintenance_window_ms.median, Some(40));
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::history::{StepOutcome, UpdateRecord, UpdateStatus};

/// Median, 95th percentile and maximum of some durations (milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// How many values.
    pub count: u64,
    /// The median (nearest rank).
    pub median: Option<u64>,
    /// The 95th percentile (nearest rank).
    pub p95: Option<u64>,
    /// The largest.
    pub max: Option<u64>,
}

impl Summary {
    /// The summary of `values` (any order).
    pub fn of(mut values: Vec<u64>) -> Summary {
        values.sort_unstable();
        let rank = |p: u64| {
            // Nearest rank: ceil(p/100 * n), 1-based.
            let n = values.len() as u64;
            let index = (p * n).div_ceil(100).max(1) - 1;
            values
                .get(usize::try_from(index).unwrap_or(usize::MAX))
                .copied()
        };
        Summary {
            count: values.len() as u64,
            median: rank(50),
            p95: rank(95),
            max: values.last().copied(),
        }
    }
}

/// Attempts and outcomes of a group (a version, a day).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcomes {
    /// Attempts.
    pub attempts: u64,
    /// Completed.
    pub completed: u64,
    /// Failed before anything changed.
    pub failed: u64,
    /// Rolled back.
    pub rolled_back: u64,
}

impl Outcomes {
    fn count(&mut self, status: UpdateStatus) {
        self.attempts += 1;
        match status {
            UpdateStatus::Completed => self.completed += 1,
            UpdateStatus::Failed => self.failed += 1,
            UpdateStatus::RolledBack | UpdateStatus::NeedsOperator => self.rolled_back += 1,
            _ => {}
        }
    }
}

/// The analytics of the updates in history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateStats {
    /// Only updates started at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Attempts (updates, rollbacks, restores).
    pub attempts: u64,
    /// Completed.
    pub completed: u64,
    /// Failed before anything changed.
    pub failed: u64,
    /// Rolled back (or waiting for an operator).
    pub rolled_back: u64,
    /// Still running or interrupted.
    pub unfinished: u64,
    /// `completed / (completed + failed + rolled back)`, when any ended.
    pub success_rate: Option<f64>,
    /// Rollbacks by the step that failed.
    pub rollbacks_by_step: BTreeMap<String, u64>,
    /// Failures before the window by the step that failed.
    pub failures_by_step: BTreeMap<String, u64>,
    /// The maintenance window of completed updates, in milliseconds.
    pub maintenance_window_ms: Summary,
    /// The whole duration of completed updates, in milliseconds.
    pub duration_ms: Summary,
    /// Time per step (steps that finished), in milliseconds.
    pub step_ms: BTreeMap<String, Summary>,
    /// Outcomes per target version.
    pub per_version: BTreeMap<String, Outcomes>,
    /// Outcomes per day (UTC) of the start.
    pub per_day: BTreeMap<NaiveDate, Outcomes>,
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<u64> {
    u64::try_from((to - from).num_milliseconds()).ok()
}

impl UpdateStats {
    /// The analytics of `records` started at or after `since`.
    pub fn compute(records: &[UpdateRecord], since: Option<DateTime<Utc>>) -> UpdateStats {
        let mut stats = UpdateStats {
            since,
            ..UpdateStats::default()
        };
        let mut windows = Vec::new();
        let mut durations = Vec::new();
        let mut steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for record in records
            .iter()
            .filter(|r| since.is_none_or(|s| r.started_at >= s))
        {
            stats.attempts += 1;
            let failed_step = record
                .steps
                .iter()
                .rev()
                .find(|s| s.outcome == StepOutcome::Failed)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| "unknown".to_string());
            match record.status {
                UpdateStatus::Completed => {
                    stats.completed += 1;
                    windows.extend(record.maintenance_window_ms);
                    durations.extend(
                        record
                            .completed_at
                            .and_then(|done| millis(record.started_at, done)),
                    );
                }
                UpdateStatus::Failed => {
                    stats.failed += 1;
                    *stats.failures_by_step.entry(failed_step).or_default() += 1;
                }
                UpdateStatus::RolledBack | UpdateStatus::NeedsOperator => {
                    stats.rolled_back += 1;
                    *stats.rollbacks_by_step.entry(failed_step).or_default() += 1;
                }
                _ => stats.unfinished += 1,
            }
            for step in &record.steps {
                if let Some(ms) = step
                    .finished_at
                    .and_then(|end| millis(step.started_at, end))
                    && step.outcome != StepOutcome::Skipped
                {
                    steps.entry(step.name.clone()).or_default().push(ms);
                }
            }
            stats
                .per_version
                .entry(record.version.to_string())
                .or_default()
                .count(record.status);
            stats
                .per_day
                .entry(record.started_at.date_naive())
                .or_default()
                .count(record.status);
        }
        let ended = stats.completed + stats.failed + stats.rolled_back;
        stats.success_rate = (ended > 0).then(|| stats.completed as f64 / ended as f64);
        stats.maintenance_window_ms = Summary::of(windows);
        stats.duration_ms = Summary::of(durations);
        stats.step_ms = steps
            .into_iter()
            .map(|(k, v)| (k, Summary::of(v)))
            .collect();
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Summary::of((1..=100).collect());
        assert_eq!(
            (s.median, s.p95, s.max, s.count),
            (Some(50), Some(95), Some(100), 100)
        );
        let one = Summary::of(vec![7]);
        assert_eq!((one.median, one.p95), (Some(7), Some(7)));
        assert_eq!(Summary::of(Vec::new()).median, None);
    }

    proptest! {
        #[test]
        fn the_median_and_p95_are_values_of_the_set_in_order(values in prop::collection::vec(0u64..10_000, 1..200)) {
            let s = Summary::of(values.clone());
            let (median, p95) = (s.median.unwrap(), s.p95.unwrap());
            prop_assert!(values.contains(&median) && values.contains(&p95));
            prop_assert!(median <= p95 && p95 <= s.max.unwrap());
        }
    }
}
