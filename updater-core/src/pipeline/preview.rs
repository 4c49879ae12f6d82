//! `updater preview`: what an update would do, without touching the
//! application — like Capistrano's `deploy:pending:diff`, but from the
//! verified package itself. The package is downloaded and verified into a
//! cache that the following `apply` uses instead of downloading again.

use std::path::PathBuf;

use chrono::Utc;
use serde::Serialize;

use crate::automation::AutoDecision;
use crate::data::{self, Baseline, DataConflict};
use crate::durable;
use crate::error::{Error, Result};
use crate::migrate::MigrationContext;
use crate::progress::{ProgressEvent, ProgressObserver};
use crate::release::{Asset, Release};
use crate::step::Step;
use crate::tree::{EntryKind, FileList};
use crate::version::{UpdateType, Version};

use super::Updater;

/// A path whose permissions change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeChange {
    /// The path.
    pub path: String,
    /// Mode before.
    pub from: u32,
    /// Mode after.
    pub to: u32,
}

/// What an update to a release would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewReport {
    /// The running version.
    pub current: Version,
    /// The version previewed.
    pub target: Version,
    /// Its kind; `None` when the version rules refuse it (see `refused`).
    pub update_type: Option<UpdateType>,
    /// Why the version rules would refuse it.
    pub refused: Option<String>,
    /// The release notes of every release after the running one up to the
    /// target, oldest first.
    pub changelog: Vec<(Version, String)>,
    /// The package's size.
    pub download_size: u64,
    /// Where the verified package is cached for `apply`.
    pub package: PathBuf,
    /// Whether the running release's file list was known (else the lists
    /// below compare with the live tree).
    pub baseline_known: bool,
    /// Files the release adds.
    pub added: Vec<String>,
    /// Files whose content changes.
    pub changed: Vec<String>,
    /// Files the release removes.
    pub removed: Vec<String>,
    /// Files whose permissions change.
    pub mode_changes: Vec<ModeChange>,
    /// Preserved paths the package has its own copy of (the live ones are kept).
    pub preserved_shipped: Vec<String>,
    /// Application data the update would carry into the new release.
    pub carried: Vec<String>,
    /// Where data and release disagree (refused, kept or saved aside by the policy).
    pub conflicts: Vec<DataConflict>,
    /// The migrations that would run, when the migrator can list them.
    pub pending_migrations: Option<Vec<String>>,
    /// Disk space the update needs (package, unpacked tree, backup, reserve).
    pub disk_needed: u64,
    /// Free space on the application's file system.
    pub disk_free: u64,
    /// The median maintenance window of past updates, in milliseconds.
    pub expected_window_ms: Option<u64>,
    /// The median duration of past updates, in milliseconds.
    pub expected_duration_ms: Option<u64>,
    /// Whether the automatic-update policy would apply it now.
    pub automatic: Option<AutoDecision>,
}

impl Updater {
    /// Where a verified package of `asset` is cached (by its SHA-256).
    pub(crate) fn cached_package_path(&self, asset: &Asset) -> Option<PathBuf> {
        asset.sha256.map(|digest| {
            self.config
                .state_dir
                .join("downloads")
                .join("cache")
                .join(format!("{}.tar.gz", digest.to_hex()))
        })
    }

    /// What updating to `version` (the newest of the channel when `None`)
    /// would do, computed without changing the application.
    pub fn preview(
        &self,
        version: Option<&Version>,
        observer: &dyn ProgressObserver,
    ) -> Result<PreviewReport> {
        let installed = self.installed_state()?;
        let current = installed.current.clone();
        let release: Release = match version {
            Some(version) => self.source.release(version)?,
            None => self.newest_release()?.ok_or_else(|| {
                Error::not_found(format!("a release in the {} channel", self.config.channel))
            })?,
        };
        let (update_type, refused) =
            match self
                .config
                .policy
                .check(&current, &release.version, Some(&installed.highest))
            {
                Ok(kind) => (Some(kind), None),
                Err(error) => (None, Some(error.to_string())),
            };
        let asset = release
            .select_asset(self.config.asset_pattern.as_deref())?
            .clone();
        observer.on_progress(&ProgressEvent::message(
            Step::Download,
            10,
            format!("downloading {}", asset.name),
        ));
        let package = self.download_to_cache(&release, &asset)?;
        observer.on_progress(&ProgressEvent::message(
            Step::Stage,
            60,
            "listing the package",
        ));
        let incoming = crate::package::list_tar_gz(&package, &self.config.extraction)?;
        let baseline = self.installed_files(&installed)?;
        let (added, changed, removed, mode_changes) = match &baseline {
            Some(list) => diff(list, &incoming),
            None => diff(&live_release_files(self, &incoming)?, &incoming),
        };
        let preserved_shipped = self
            .config
            .preserved_paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| incoming.contains_at_or_below(p))
            .collect();
        observer.on_progress(&ProgressEvent::message(
            Step::Scan,
            80,
            "scanning application data",
        ));
        let known = match &baseline {
            Some(list) => Baseline::Known(list),
            None => Baseline::Unknown,
        };
        let scan = data::scan(&self.config.app_dir, known, &incoming, &self.scan_rules())?;
        let pending_migrations = match &self.migrator {
            Some(migrator) => migrator.pending(&MigrationContext {
                app_dir: self.config.app_dir.clone(),
                from: current.clone(),
                to: release.version.clone(),
                children: Some(self.children.clone()),
            })?,
            None => None,
        };
        let mut changelog: Vec<(Version, String)> = self
            .source
            .releases(self.config.channel)?
            .into_iter()
            .filter(|r| {
                self.config.channel.accepts(&r.version)
                    && r.version > current
                    && r.version <= release.version
            })
            .map(|r| (r.version, r.changelog))
            .collect();
        changelog.sort_by(|a, b| a.0.cmp(&b.0));
        let backup_estimate = if self.files_backup.is_some() {
            incoming.total_bytes()
        } else {
            0
        };
        let disk_needed =
            asset.size + incoming.total_bytes() + backup_estimate + self.config.reserve_bytes;
        let stats = rustix::fs::statvfs(&self.config.app_dir)
            .map_err(|e| Error::io("measure free space", &self.config.app_dir, e.into()))?;
        let history = self.stats(None)?;
        let automatic = update_type.map(|kind| {
            self.config.auto_update.decide(
                &release.version,
                kind,
                self.clock.now(),
                self.expected_update_duration()
                    .unwrap_or(chrono::Duration::minutes(10)),
            )
        });
        observer.on_progress(&ProgressEvent::message(Step::Scan, 100, "preview ready"));
        Ok(PreviewReport {
            current,
            target: release.version.clone(),
            update_type,
            refused,
            changelog,
            download_size: asset.size,
            package,
            baseline_known: baseline.is_some(),
            added,
            changed,
            removed,
            mode_changes,
            preserved_shipped,
            carried: scan.carried,
            conflicts: scan.conflicts,
            pending_migrations,
            disk_needed,
            disk_free: stats.f_bavail.saturating_mul(stats.f_frsize),
            expected_window_ms: history.maintenance_window_ms.median,
            expected_duration_ms: history.duration_ms.median,
            automatic,
        })
    }

    /// Downloads and verifies `asset` into the cache (once: a cached
    /// package is checked against the asset's SHA-256 and reused).
    pub(crate) fn download_to_cache(&self, release: &Release, asset: &Asset) -> Result<PathBuf> {
        let path = match self.cached_package_path(asset) {
            Some(path) => path,
            None => self
                .config
                .state_dir
                .join("downloads")
                .join("cache")
                .join(format!(
                    "{}-{}.tar.gz",
                    release.version,
                    Utc::now().timestamp()
                )),
        };
        if let Some(digest) = asset.sha256
            && durable::try_exists(&path)?
        {
            let (found, size) = crate::package::sha256_file(&path)?;
            if found == digest && size == asset.size {
                return Ok(path);
            }
            durable::remove_all(&path)?;
        }
        durable::create_dir_all(durable::parent_of(&path))?;
        crate::package::download_verified(
            self.source.as_ref(),
            release,
            asset,
            &path,
            &self.config.verification,
            &mut |_| {},
        )?;
        Ok(path)
    }
}

/// The live files at paths the incoming release ships (for an application
/// installed by hand, whose own list is unknown: what it would replace).
fn live_release_files(updater: &Updater, incoming: &FileList) -> Result<FileList> {
    let live = FileList::from_dir(&updater.config.app_dir)?;
    Ok(live
        .iter()
        .filter(|(path, _)| incoming.contains(path))
        .map(|(path, entry)| (path.to_string(), entry.clone()))
        .collect())
}

/// Added, changed, removed and re-moded files (directories count only for
/// additions and removals).
fn diff(
    before: &FileList,
    after: &FileList,
) -> (Vec<String>, Vec<String>, Vec<String>, Vec<ModeChange>) {
    let (mut added, mut changed, mut removed, mut modes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (path, entry) in after.iter() {
        match before.get(path) {
            None => added.push(path.to_string()),
            Some(old) => {
                if !old.same_content(entry) {
                    changed.push(path.to_string());
                } else if old.mode != entry.mode && entry.kind != EntryKind::Symlink {
                    modes.push(ModeChange {
                        path: path.to_string(),
                        from: old.mode,
                        to: entry.mode,
                    });
                }
            }
        }
    }
    for (path, _) in before.iter() {
        if !after.contains(path) {
            removed.push(path.to_string());
        }
    }
    (added, changed, removed, modes)
}
