//! Retention: which backups to delete.
//!
//! Rules (from Capistrano and laravel-backup's users' pains):
//! - keep the `keep_last` most recent *verified* backups (default 3) and
//!   remove older verified ones;
//! - remove verified backups whose expiry has passed, even among the last N;
//! - but never the newest backup, never the newest restorable one (so never
//!   the only one), never a backup of a protected update (one in progress,
//!   or the running release's) nor a protected id (the last known-good);
//! - unverified and failed backups do not count towards `keep_last` and are
//!   removed by a separate pass ([`RetentionPolicy::plan_unverified`]):
//!   failed ones at once, unverified ones once older than a grace period
//!   (a fresh one may be about to be verified).
//!
//! [`RetentionPolicy::plan`] is pure (a list in, a decision out), so it is
//! tested exhaustively; [`RetentionPolicy::apply`] deletes through the catalog.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::{BackupStatus, Catalog, CatalogEntry};

/// The retention rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep_last: usize,
    protected_updates: Vec<i64>,
    protected_ids: Vec<String>,
    unverified_grace: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: 3,
            protected_updates: Vec::new(),
            protected_ids: Vec::new(),
            unverified_grace: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why retention removes a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// More than `keep_last` newer verified backups exist.
    Surplus,
    /// Its expiry passed.
    Expired,
    /// Its verification failed.
    Failed,
    /// It was never verified and is older than the grace period.
    Unverified,
}

/// A retention decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Backups to delete, with the reason.
    pub remove: Vec<(String, RemovalReason)>,
}

impl RetentionPolicy {
    /// Keep 3 verified backups; unverified ones get a grace period of a day.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the `count` most recent verified backups (at least 1).
    pub fn keep_last(mut self, count: usize) -> Self {
        self.keep_last = count.max(1);
        self
    }

    /// Never removes backups of update `update_id` (an update in progress, or
    /// the one of the running release).
    pub fn protect_update(mut self, update_id: i64) -> Self {
        self.protected_updates.push(update_id);
        self
    }

    /// Never removes the backup `id` (e.g. of the last known-good release).
    pub fn protect_backup(mut self, id: impl Into<String>) -> Self {
        self.protected_ids.push(id.into());
        self
    }

    /// How long an unverified backup is left alone (default 24 h).
    pub fn with_unverified_grace(mut self, grace: Duration) -> Self {
        self.unverified_grace = grace;
        self
    }

    fn is_protected(&self, entry: &CatalogEntry) -> bool {
        entry
            .record
            .backup
            .update_id
            .is_some_and(|id| self.protected_updates.contains(&id))
            || self.protected_ids.iter().any(|id| id == entry.id())
    }

    /// Which verified backups to remove. `entries` in any order.
    pub fn plan(&self, entries: &[CatalogEntry], now: DateTime<Utc>) -> RetentionPlan {
        let mut sorted: Vec<&CatalogEntry> = entries.iter().collect();
        sorted.sort_by(|a, b| (b.created_at(), b.id()).cmp(&(a.created_at(), a.id())));
        let newest = sorted.first().map(|e| e.id().to_string());
        let newest_restorable = sorted
            .iter()
            .find(|e| e.restorable)
            .map(|e| e.id().to_string());
        let mut plan = RetentionPlan::default();
        let mut verified_seen = 0usize;
        for entry in sorted {
            if entry.status() != BackupStatus::Verified {
                continue;
            }
            verified_seen += 1;
            let reason = if entry.expires_at().is_some_and(|at| at <= now) {
                Some(RemovalReason::Expired)
            } else if verified_seen > self.keep_last {
                Some(RemovalReason::Surplus)
            } else {
                None
            };
            let Some(reason) = reason else { continue };
            let id = entry.id();
            let keep = Some(id) == newest.as_deref()
                || Some(id) == newest_restorable.as_deref()
                || self.is_protected(entry);
            if !keep {
                plan.remove.push((id.to_string(), reason));
            }
        }
        plan
    }

    /// Which failed or unverified backups to remove: failed ones, and
    /// unverified ones older than the grace period; never the newest backup
    /// nor a protected one.
    pub fn plan_unverified(&self, entries: &[CatalogEntry], now: DateTime<Utc>) -> RetentionPlan {
        let newest = entries
            .iter()
            .max_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())))
            .map(|e| e.id().to_string());
        let grace =
            chrono::Duration::from_std(self.unverified_grace).unwrap_or(chrono::Duration::MAX);
        let mut plan = RetentionPlan::default();
        for entry in entries {
            let reason = match entry.status() {
                BackupStatus::Verified => continue,
                BackupStatus::Failed => RemovalReason::Failed,
                BackupStatus::Unverified if now - entry.created_at() >= grace => {
                    RemovalReason::Unverified
                }
                BackupStatus::Unverified => continue,
            };
            if Some(entry.id()) == newest.as_deref() || self.is_protected(entry) {
                continue;
            }
            plan.remove.push((entry.id().to_string(), reason));
        }
        plan
    }

    /// Plans both passes on `catalog` and deletes what they chose.
    pub fn apply(&self, catalog: &Catalog, now: DateTime<Utc>) -> Result<RetentionPlan> {
        let entries = catalog.list()?;
        let mut plan = self.plan(&entries, now);
        plan.remove
            .extend(self.plan_unverified(&entries, now).remove);
        let mut done = HashSet::new();
        for (id, reason) in &plan.remove {
            if done.insert(id.clone()) {
                tracing::info!(backup = %id, ?reason, "retention removes a backup");
                catalog.delete(id)?;
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BackupRecord;
    use proptest::prelude::*;
    use updater_core::backup::{Backup, BackupKind, BackupPurpose};
    use updater_core::version::Version;

    fn entry(
        index: i64,
        status: BackupStatus,
        expired: bool,
        update_id: Option<i64>,
    ) -> CatalogEntry {
        let created_at = DateTime::<Utc>::from_timestamp(1_700_000_000 + index * 3600, 0).unwrap();
        CatalogEntry {
            restorable: status == BackupStatus::Verified,
            record: BackupRecord {
                backup: Backup {
                    id: format!("b{index:03}"),
                    kind: BackupKind::FilesOnly,
                    version: Version::new(1, 0, index as u64),
                    created_at,
                    files_path: None,
                    database_path: None,
                    size: 1,
                    update_id,
                    description: None,
                },
                purpose: BackupPurpose::PreUpdate,
                source: "test".into(),
                expires_at: expired.then(|| created_at + chrono::Duration::hours(1)),
                status,
                verified_at: None,
                parts: Vec::new(),
            },
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn removed(plan: &RetentionPlan) -> Vec<&str> {
        let mut ids: Vec<&str> = plan.remove.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn keeps_the_three_newest_verified_and_ignores_unverified_ones() {
        let entries: Vec<_> = (0..6)
            .map(|i| {
                entry(
                    i,
                    if i == 4 {
                        BackupStatus::Unverified
                    } else {
                        BackupStatus::Verified
                    },
                    false,
                    None,
                )
            })
            .collect();
        let plan = RetentionPolicy::new().plan(&entries, now());
        assert_eq!(removed(&plan), vec!["b000", "b001"]);
    }

    #[test]
    fn never_removes_the_newest_or_only_restorable_backup_even_when_expired() {
        let entries = vec![
            entry(0, BackupStatus::Verified, true, None),
            entry(1, BackupStatus::Failed, false, None),
        ];
        let plan = RetentionPolicy::new().plan(&entries, now());
        assert!(plan.remove.is_empty(), "{plan:?}");
    }

    #[test]
    fn a_backup_of_an_update_in_progress_survives() {
        let entries: Vec<_> = (0..5)
            .map(|i| entry(i, BackupStatus::Verified, true, Some(i)))
            .collect();
        let plan = RetentionPolicy::new()
            .protect_update(1)
            .plan(&entries, now());
        assert_eq!(removed(&plan), vec!["b000", "b002", "b003"]);
    }

    #[test]
    fn failed_backups_go_at_once_and_unverified_ones_after_the_grace_period() {
        let entries = vec![
            entry(0, BackupStatus::Failed, false, None),
            entry(1, BackupStatus::Unverified, false, None),
            entry(2, BackupStatus::Verified, false, None),
            entry(3, BackupStatus::Failed, false, None),
        ];
        let plan = RetentionPolicy::new().plan_unverified(&entries, now());
        assert_eq!(removed(&plan), vec!["b000", "b001"]);
        let plan = RetentionPolicy::new()
            .with_unverified_grace(Duration::from_secs(u64::MAX / 4))
            .plan_unverified(&entries, now());
        assert_eq!(removed(&plan), vec!["b000"]);
    }

    proptest! {
        #[test]
        fn retention_keeps_its_promises(
            specs in proptest::collection::vec((0u8..3, any::<bool>(), proptest::option::of(0i64..4)), 0..12),
            keep in 1usize..5,
            protected in 0i64..4,
        ) {
            let entries: Vec<_> = specs
                .iter()
                .enumerate()
                .map(|(i, (s, expired, update))| {
                    let status = [BackupStatus::Verified, BackupStatus::Unverified, BackupStatus::Failed][*s as usize];
                    entry(i as i64, status, *expired, *update)
                })
                .collect();
            let policy = RetentionPolicy::new().keep_last(keep).protect_update(protected);
            let mut plan = policy.plan(&entries, now());
            plan.remove.extend(policy.plan_unverified(&entries, now()).remove);
            let gone: HashSet<&str> = plan.remove.iter().map(|(id, _)| id.as_str()).collect();
            let kept: Vec<&CatalogEntry> = entries.iter().filter(|e| !gone.contains(e.id())).collect();
            if let Some(newest) = entries.last() {
                prop_assert!(!gone.contains(newest.id()), "newest removed");
            }
            if entries.iter().any(|e| e.restorable) {
                prop_assert!(kept.iter().any(|e| e.restorable), "no restorable backup left");
            }
            for e in &entries {
                if e.record.backup.update_id == Some(protected) {
                    prop_assert!(!gone.contains(e.id()), "protected backup removed");
                }
            }
            let verified_kept = kept.iter().filter(|e| e.status() == BackupStatus::Verified).count();
            let verified_unexpired = entries.iter().filter(|e| e.status() == BackupStatus::Verified && e.expires_at().is_none()).count();
            prop_assert!(verified_kept >= keep.min(verified_unexpired).min(1));
            for (id, reason) in &plan.remove {
                let e = entries.iter().find(|e| e.id() == id).unwrap();
                match reason {
                    RemovalReason::Surplus => {
                        let newer_verified = entries.iter().filter(|o| o.status() == BackupStatus::Verified && o.created_at() > e.created_at()).count();
                        prop_assert!(newer_verified >= keep);
                    }
                    RemovalReason::Expired => prop_assert!(e.expires_at().is_some()),
                    RemovalReason::Failed => prop_assert_eq!(e.status(), BackupStatus::Failed),
                    RemovalReason::Unverified => prop_assert_eq!(e.status(), BackupStatus::Unverified),
                }
            }
        }
    }
}
