//! Retention: which backups to delete, and the leftovers of creates that
//! never completed.
//!
//! Rules (from Capistrano's and laravel-backup's users' pains):
//!
//! - Backups are counted **per class** ([`BackupClass`]): those holding the
//!   application files (files only and full) and database-only snapshots.
//!   Each update takes one of each (a files backup before maintenance, a
//!   snapshot inside the window), so counting them together would let the
//!   newer snapshots push every files backup out.
//! - Of each class, the `keep` newest *good* backups (verified, every part
//!   present) are kept; older good ones are removed ([`RemovalReason::Surplus`]),
//!   and so are good ones whose expiry passed ([`RemovalReason::Expired`]).
//! - Failed backups (and verified ones whose parts went missing) do not count
//!   and are removed at once; unverified ones do not count and are removed
//!   once older than a grace period (24 h: a fresh one may be about to be
//!   verified).
//! - Never removed, whatever the above says: the newest backup of each class,
//!   the newest good backup of each class (so a catalog that had a complete
//!   verified backup holding files keeps one), the newest good backup of each
//!   class of the running version, protected ids (the snapshots kept releases
//!   need for rollback) and backups of protected updates.
//! - Directories of creates that never completed are removed too
//!   ([`Catalog::remove_incomplete`]): at once when their writer is dead,
//!   after 10 minutes without change when it cannot be told.
//!
//! [`RetentionPolicy::plan`] is pure (a list in, a decision out) and
//! property-tested; [`RetentionPolicy::apply`] deletes through the catalog;
//! [`prune_catalog`] is what every strategy's
//! [`BackupStrategy::prune`](updater_core::backup::BackupStrategy::prune) calls.
//!
//! ```
//! use updater_backup::retention::prune_catalog;
//! use updater_backup::Catalog;
//! use updater_core::backup::RetentionRules;
//! use updater_core::version::Version;
//!
//! let root = tempfile::tempdir()?;
//! let rules = RetentionRules { keep: 3, running: Version::new(1, 4, 2), protected: Vec::new() };
//! let pruned = prune_catalog(&Catalog::new(root.path()), &rules)?;
//! assert!(pruned.deleted.is_empty() && pruned.kept.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use updater_core::backup::{BackupKind, Pruned, RetentionRules};
use updater_core::version::Version;

use crate::error::Result;
use crate::store::{BackupStatus, Catalog, CatalogEntry, INCOMPLETE_GRACE};

/// What a backup holds, as retention counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupClass {
    /// The application files (with or without the database): files-only and full backups.
    Files,
    /// Only the database.
    Database,
}

impl BackupClass {
    /// The class of a backup of `kind`.
    pub fn of(kind: BackupKind) -> Self {
        match kind {
            BackupKind::Full | BackupKind::FilesOnly => BackupClass::Files,
            BackupKind::DatabaseOnly => BackupClass::Database,
        }
    }
}

/// The retention rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep: usize,
    running: Option<Version>,
    protected_updates: Vec<i64>,
    protected_ids: Vec<String>,
    unverified_grace: Duration,
    incomplete_grace: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep: 3,
            running: None,
            protected_updates: Vec::new(),
            protected_ids: Vec::new(),
            unverified_grace: Duration::from_secs(24 * 3600),
            incomplete_grace: INCOMPLETE_GRACE,
        }
    }
}

/// Why retention removes a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// At least `keep` newer good backups of its class exist.
    Surplus,
    /// Its expiry passed.
    Expired,
    /// Its verification failed, or a part of it is missing or has the wrong size.
    Failed,
    /// It was never verified and is older than the grace period.
    Unverified,
}

/// A retention decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Backups to delete, with the reason, newest first.
    pub remove: Vec<(String, RemovalReason)>,
}

impl RetentionPolicy {
    /// Keep 3 good backups of each class; unverified ones get a day,
    /// leftovers of creates without a lock file 10 minutes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The policy [`BackupStrategy::prune`](updater_core::backup::BackupStrategy::prune)
    /// applies for `rules`.
    pub fn from_rules(rules: &RetentionRules) -> Self {
        let mut policy = Self::new()
            .keep_last(rules.keep)
            .running(rules.running.clone());
        for id in &rules.protected {
            policy = policy.protect_backup(id.clone());
        }
        policy
    }

    /// Keeps the `count` newest good backups of each class (at least 1).
    pub fn keep_last(mut self, count: usize) -> Self {
        self.keep = count.max(1);
        self
    }

    /// The version running now: its newest good backup of each class is kept.
    pub fn running(mut self, version: Version) -> Self {
        self.running = Some(version);
        self
    }

    /// Never removes backups of update `update_id` (an update in progress).
    pub fn protect_update(mut self, update_id: i64) -> Self {
        self.protected_updates.push(update_id);
        self
    }

    /// Never removes the backup `id` (e.g. the snapshot a kept release needs).
    pub fn protect_backup(mut self, id: impl Into<String>) -> Self {
        self.protected_ids.push(id.into());
        self
    }

    /// How long an unverified backup is left alone (default 24 h).
    pub fn with_unverified_grace(mut self, grace: Duration) -> Self {
        self.unverified_grace = grace;
        self
    }

    /// How long a backup directory without a record and without a lock file
    /// is left alone (default [`INCOMPLETE_GRACE`], 10 minutes).
    pub fn with_incomplete_grace(mut self, grace: Duration) -> Self {
        self.incomplete_grace = grace;
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

    /// Which backups to remove from `entries` (in any order), as of `now`.
    pub fn plan(&self, entries: &[CatalogEntry], now: DateTime<Utc>) -> RetentionPlan {
        let mut sorted: Vec<&CatalogEntry> = entries.iter().collect();
        sorted.sort_by(|a, b| (b.created_at(), b.id()).cmp(&(a.created_at(), a.id())));
        let grace =
            chrono::Duration::from_std(self.unverified_grace).unwrap_or(chrono::Duration::MAX);
        let mut plan = RetentionPlan::default();
        for class in [BackupClass::Files, BackupClass::Database] {
            let members: Vec<&CatalogEntry> = sorted
                .iter()
                .copied()
                .filter(|e| BackupClass::of(e.kind()) == class)
                .collect();
            let mut never: HashSet<&str> = HashSet::new();
            never.extend(members.first().map(|e| e.id()));
            never.extend(members.iter().find(|e| e.restorable).map(|e| e.id()));
            if let Some(running) = &self.running {
                never.extend(
                    members
                        .iter()
                        .find(|e| e.restorable && e.version() == running)
                        .map(|e| e.id()),
                );
            }
            let mut good_seen = 0usize;
            for entry in members {
                let reason = if entry.restorable {
                    good_seen += 1;
                    if entry.expires_at().is_some_and(|at| at <= now) {
                        Some(RemovalReason::Expired)
                    } else if good_seen > self.keep {
                        Some(RemovalReason::Surplus)
                    } else {
                        None
                    }
                } else {
                    match entry.status() {
                        BackupStatus::Failed | BackupStatus::Verified => {
                            Some(RemovalReason::Failed)
                        }
                        BackupStatus::Unverified if now - entry.created_at() >= grace => {
                            Some(RemovalReason::Unverified)
                        }
                        BackupStatus::Unverified => None,
                    }
                };
                let Some(reason) = reason else { continue };
                if never.contains(entry.id()) || self.is_protected(entry) {
                    continue;
                }
                plan.remove.push((entry.id().to_string(), reason));
            }
        }
        plan
    }

    /// Plans on `catalog`, deletes what the plan chose, then removes the
    /// directories of creates that never completed.
    pub fn apply(&self, catalog: &Catalog, now: DateTime<Utc>) -> Result<Pruned> {
        let entries = catalog.list()?;
        let plan = self.plan(&entries, now);
        let mut pruned = Pruned::default();
        for (id, reason) in &plan.remove {
            tracing::info!(backup = %id, ?reason, "retention deletes a backup");
            catalog.delete(id)?;
            pruned.deleted.push(id.clone());
        }
        pruned.kept = entries
            .iter()
            .map(|e| e.id().to_string())
            .filter(|id| !pruned.deleted.contains(id))
            .collect();
        pruned.removed_incomplete = catalog.remove_incomplete(self.incomplete_grace)?;
        Ok(pruned)
    }
}

/// Applies `rules` to every backup in `catalog`, whichever strategy made it
/// (see the module docs): the body of every strategy's
/// [`BackupStrategy::prune`](updater_core::backup::BackupStrategy::prune).
/// Strategies sharing a backup directory get the same answer, so calling
/// each of them is harmless.
pub fn prune_catalog(catalog: &Catalog, rules: &RetentionRules) -> Result<Pruned> {
    RetentionPolicy::from_rules(rules).apply(catalog, Utc::now())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::store::BackupRecord;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use updater_core::backup::{Backup, BackupPurpose};

    /// One catalog entry for the planner.
    #[derive(Debug, Clone)]
    struct Spec {
        kind: BackupKind,
        status: BackupStatus,
        parts_present: bool,
        expired: bool,
        version: u64,
        update_id: Option<i64>,
        age_hours: i64,
    }

    fn entry(index: usize, spec: &Spec) -> CatalogEntry {
        let created_at = now() - chrono::Duration::hours(spec.age_hours)
            + chrono::Duration::seconds(index as i64);
        CatalogEntry {
            restorable: spec.status == BackupStatus::Verified && spec.parts_present,
            record: BackupRecord {
                backup: Backup {
                    id: format!("b{index:03}"),
                    kind: spec.kind,
                    version: Version::new(1, 0, spec.version),
                    created_at,
                    files_path: None,
                    database_path: None,
                    size: 1,
                    update_id: spec.update_id,
                    description: None,
                },
                purpose: BackupPurpose::PreUpdate,
                source: "test".into(),
                expires_at: spec
                    .expired
                    .then(|| created_at - chrono::Duration::seconds(1)),
                status: spec.status,
                verified_at: None,
                parts: Vec::new(),
            },
        }
    }

    fn spec(kind: BackupKind, status: BackupStatus) -> Spec {
        Spec {
            kind,
            status,
            parts_present: true,
            expired: false,
            version: 0,
            update_id: None,
            age_hours: 48,
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
    fn database_snapshots_do_not_push_files_backups_out() {
        // What `cleanup --keep 1` did: alternating files backups and newer
        // snapshots, counted together, left only snapshots.
        let entries: Vec<_> = (0..6)
            .map(|i| {
                let kind = if i % 2 == 0 {
                    BackupKind::FilesOnly
                } else {
                    BackupKind::DatabaseOnly
                };
                entry(i, &spec(kind, BackupStatus::Verified))
            })
            .collect();
        let plan = RetentionPolicy::new().keep_last(1).plan(&entries, now());
        // Kept: b004 (newest files backup) and b005 (newest snapshot).
        assert_eq!(removed(&plan), vec!["b000", "b001", "b002", "b003"]);
    }

    #[test]
    fn full_and_files_only_backups_count_together_and_failed_ones_do_not_count() {
        let entries = vec![
            entry(0, &spec(BackupKind::Full, BackupStatus::Verified)),
            entry(1, &spec(BackupKind::FilesOnly, BackupStatus::Verified)),
            entry(2, &spec(BackupKind::Full, BackupStatus::Failed)),
            entry(3, &spec(BackupKind::FilesOnly, BackupStatus::Unverified)),
            entry(4, &spec(BackupKind::FilesOnly, BackupStatus::Failed)),
        ];
        let plan = RetentionPolicy::new().keep_last(2).plan(&entries, now());
        // b004 is the newest of its class: kept although failed. b003 is
        // unverified and older than a day: removed. b000 and b001 are the two good ones.
        assert_eq!(
            plan.remove,
            vec![
                ("b003".to_string(), RemovalReason::Unverified),
                ("b002".to_string(), RemovalReason::Failed),
            ]
        );
    }

    #[test]
    fn the_running_versions_newest_good_backup_and_protected_ids_survive() {
        let mut entries: Vec<_> = (0..5)
            .map(|i| {
                let mut s = spec(BackupKind::FilesOnly, BackupStatus::Verified);
                s.version = i as u64;
                entry(i, &s)
            })
            .collect();
        entries.push(entry(
            5,
            &spec(BackupKind::DatabaseOnly, BackupStatus::Verified),
        ));
        let plan = RetentionPolicy::new()
            .keep_last(1)
            .running(Version::new(1, 0, 1))
            .protect_backup("b002")
            .plan(&entries, now());
        assert_eq!(removed(&plan), vec!["b000", "b003"]);
    }

    #[test]
    fn a_fresh_unverified_backup_is_left_alone_and_a_verified_one_with_missing_parts_goes() {
        let mut fresh = spec(BackupKind::FilesOnly, BackupStatus::Unverified);
        fresh.age_hours = 1;
        let mut gone_parts = spec(BackupKind::FilesOnly, BackupStatus::Verified);
        gone_parts.parts_present = false;
        gone_parts.age_hours = 0;
        let mut newest = spec(BackupKind::FilesOnly, BackupStatus::Verified);
        newest.age_hours = 0;
        let entries = vec![entry(0, &fresh), entry(1, &gone_parts), entry(2, &newest)];
        let plan = RetentionPolicy::new().plan(&entries, now());
        assert_eq!(
            plan.remove,
            vec![("b001".to_string(), RemovalReason::Failed)]
        );
    }

    #[test]
    fn an_expired_backup_goes_unless_it_is_the_last_good_one() {
        let mut expired = spec(BackupKind::FilesOnly, BackupStatus::Verified);
        expired.expired = true;
        let only = vec![entry(0, &expired)];
        assert!(RetentionPolicy::new().plan(&only, now()).remove.is_empty());
        let two = vec![entry(0, &expired), entry(1, &expired)];
        assert_eq!(
            RetentionPolicy::new().plan(&two, now()).remove,
            vec![("b000".to_string(), RemovalReason::Expired)]
        );
    }

    fn arb_spec() -> impl Strategy<Value = Spec> {
        (
            prop_oneof![
                Just(BackupKind::Full),
                Just(BackupKind::FilesOnly),
                Just(BackupKind::DatabaseOnly)
            ],
            prop_oneof![
                3 => Just(BackupStatus::Verified),
                1 => Just(BackupStatus::Unverified),
                1 => Just(BackupStatus::Failed)
            ],
            proptest::bool::weighted(0.9),
            proptest::bool::weighted(0.2),
            0u64..3,
            proptest::option::of(0i64..4),
            0i64..72,
        )
            .prop_map(
                |(kind, status, parts_present, expired, version, update_id, age_hours)| Spec {
                    kind,
                    status,
                    parts_present,
                    expired,
                    version,
                    update_id,
                    age_hours,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn retention_keeps_its_promises_on_any_catalog(
            specs in proptest::collection::vec(arb_spec(), 0..16),
            keep in 1usize..5,
            running in 0u64..3,
            protected_index in proptest::option::of(0usize..16),
            protected_update in 0i64..4,
        ) {
            let entries: Vec<CatalogEntry> =
                specs.iter().enumerate().map(|(i, s)| entry(i, s)).collect();
            let protected_id = protected_index.map(|i| format!("b{i:03}"));
            let running = Version::new(1, 0, running);
            let mut policy = RetentionPolicy::new()
                .keep_last(keep)
                .running(running.clone())
                .protect_update(protected_update);
            if let Some(id) = &protected_id {
                policy = policy.protect_backup(id.clone());
            }
            let plan = policy.plan(&entries, now());
            let gone: HashMap<&str, RemovalReason> =
                plan.remove.iter().map(|(id, r)| (id.as_str(), *r)).collect();
            prop_assert_eq!(gone.len(), plan.remove.len(), "a backup planned twice");
            let newer = |a: &CatalogEntry, b: &CatalogEntry| {
                (a.created_at(), a.id()) > (b.created_at(), b.id())
            };
            for class in [BackupClass::Files, BackupClass::Database] {
                let members: Vec<&CatalogEntry> =
                    entries.iter().filter(|e| BackupClass::of(e.kind()) == class).collect();
                // The newest backup of the class stays.
                if let Some(newest) = members.iter().copied().reduce(|a, b| if newer(a, b) { a } else { b }) {
                    prop_assert!(!gone.contains_key(newest.id()), "newest {:?} backup removed", class);
                }
                // A class that had a good backup keeps one.
                if members.iter().any(|e| e.restorable) {
                    prop_assert!(
                        members.iter().any(|e| e.restorable && !gone.contains_key(e.id())),
                        "no good {:?} backup left", class
                    );
                }
                // The running version's newest good backup stays.
                if let Some(of_running) = members
                    .iter()
                    .copied()
                    .filter(|e| e.restorable && e.version() == &running)
                    .reduce(|a, b| if newer(a, b) { a } else { b })
                {
                    prop_assert!(!gone.contains_key(of_running.id()), "running version's backup removed");
                }
                for e in &members {
                    let newer_good = members.iter().filter(|o| o.restorable && newer(o, e)).count();
                    // The `keep` newest unexpired good ones stay: other
                    // classes, failed and unverified ones do not count.
                    if e.restorable && e.expires_at().is_none() && newer_good < keep {
                        prop_assert!(!gone.contains_key(e.id()), "{} is among the {keep} newest good", e.id());
                    }
                    match gone.get(e.id()) {
                        Some(RemovalReason::Surplus) => {
                            prop_assert!(e.restorable && newer_good >= keep);
                        }
                        Some(RemovalReason::Expired) => {
                            prop_assert!(e.restorable && e.expires_at().is_some());
                        }
                        Some(RemovalReason::Failed) => prop_assert!(!e.restorable && e.status() != BackupStatus::Unverified),
                        Some(RemovalReason::Unverified) => {
                            prop_assert!(e.status() == BackupStatus::Unverified);
                            prop_assert!(now() - e.created_at() >= chrono::Duration::hours(24));
                        }
                        None => {}
                    }
                }
            }
            for e in &entries {
                if Some(e.id()) == protected_id.as_deref() || e.record.backup.update_id == Some(protected_update) {
                    prop_assert!(!gone.contains_key(e.id()), "protected {} removed", e.id());
                }
            }
        }
    }
}
