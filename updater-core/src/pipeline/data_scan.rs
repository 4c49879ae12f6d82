//! The application-data scan of `apply` and `backup restore`: what the
//! running release shipped (its recorded list, or for an application
//! installed by hand its release package's list), compared with the live
//! tree and the incoming one (see [`crate::data`]).

use std::path::{Path, PathBuf};

use crate::data::{self, Baseline, ConflictPolicy, DataScan, ScanRules};
use crate::durable;
use crate::error::Result;
use crate::install::InstalledState;
use crate::release::Release;
use crate::tree::FileList;

use super::Updater;
use super::transition::Transition;

/// A scan and what it compared, kept to refresh it inside the window.
pub(crate) struct DataScanState {
    pub(crate) scan: DataScan,
    pub(crate) baseline: Option<FileList>,
    pub(crate) incoming: FileList,
    pub(crate) rules: ScanRules,
    /// How conflicts found inside the window are settled.
    pub(crate) policy: ConflictPolicy,
}

impl Updater {
    /// What the running release shipped: its recorded list; for an
    /// application installed by hand, the list of its release package from
    /// the source (downloaded and verified, never extracted); else unknown.
    pub(super) fn baseline(
        &self,
        t: &mut Transition<'_>,
        installed: &InstalledState,
        incoming: &Release,
    ) -> Result<Option<FileList>> {
        if let Some(list) = self.installed_files(installed)? {
            return Ok(Some(list));
        }
        if installed.current == incoming.version {
            return Ok(None);
        }
        let id = t.journal().id.clone();
        let fetched = self.source.release(&installed.current).and_then(|release| {
            let asset = release
                .select_asset(self.config.asset_pattern.as_deref())?
                .clone();
            let path = self.state_subdir("downloads", &id).join("baseline.tar.gz");
            let package = crate::package::download_verified(
                self.source.as_ref(),
                &release,
                &asset,
                &path,
                &self.config.verification,
                &mut |_| {},
            )?;
            crate::package::list_tar_gz(&package.path, &self.config.extraction)
        });
        match fetched {
            Ok(list) => Ok(Some(list)),
            Err(error) => {
                tracing::warn!(%error, version = %installed.current, "the installed release's package is not available; the first update carries everything the new release does not ship");
                Ok(None)
            }
        }
    }

    /// The scan rules of this updater: its state directory, preserved paths
    /// and maintenance flags are handled elsewhere; discarded patterns.
    pub(crate) fn scan_rules(&self) -> ScanRules {
        let mut skipped = self.config.preserved_paths.clone();
        skipped.extend(self.mirrored_files());
        ScanRules {
            reserved: self.config.reserved_names(),
            skipped,
            discarded: self.discarded.clone(),
        }
    }

    /// Maintenance files inside the application, relative to it.
    pub(crate) fn mirrored_files(&self) -> Vec<PathBuf> {
        self.maintenance
            .iter()
            .flat_map(|m| m.tree_files())
            .filter_map(|path| {
                path.strip_prefix(&self.config.app_dir)
                    .ok()
                    .map(Path::to_path_buf)
                    .or_else(|| path.is_relative().then_some(path.clone()))
            })
            .collect()
    }

    pub(crate) fn scan_data(
        &self,
        t: &mut Transition<'_>,
        baseline: Option<FileList>,
        incoming: FileList,
    ) -> Result<DataScanState> {
        self.scan_data_with(t, baseline, incoming, self.config.data_conflicts, true)
    }

    /// Scans with `policy`; `skip_preserved` leaves preserved paths to the
    /// swap (a restore that puts the backup's copies back compares them too).
    pub(crate) fn scan_data_with(
        &self,
        t: &mut Transition<'_>,
        baseline: Option<FileList>,
        incoming: FileList,
        policy: ConflictPolicy,
        skip_preserved: bool,
    ) -> Result<DataScanState> {
        let mut rules = self.scan_rules();
        if !skip_preserved {
            rules
                .skipped
                .retain(|p| !self.config.preserved_paths.contains(p));
        }
        let known = match &baseline {
            Some(list) => Baseline::Known(list),
            None => Baseline::Unknown,
        };
        let mut scan = data::scan(&self.config.app_dir, known, &incoming, &rules)?;
        let save_aside = scan.resolve(policy)?;
        let list_path = self
            .config
            .state_dir
            .join("files")
            .join(format!("{}.jsonl", t.journal().id));
        durable::create_dir_all(durable::parent_of(&list_path))?;
        incoming.save(&list_path)?;
        t.record_staged(Some(list_path), save_aside)?;
        t.note(scan.summary());
        Ok(DataScanState {
            scan,
            baseline,
            incoming,
            rules,
            policy,
        })
    }
}
