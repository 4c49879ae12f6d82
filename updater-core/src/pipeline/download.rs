//! The download step of `apply`: the package `preview` left verified, a
//! delta (the changed files of a release with a signed file index, over
//! HTTP ranges), or the whole package — and why not a delta, in the step's
//! note.

use std::path::PathBuf;

use chrono::Utc;

use crate::durable;
use crate::error::{Error, Result, redact_url};
use crate::install::InstalledState;
use crate::package::delta::{DeltaFallback, DeltaPlan};
use crate::package::{PackageIndex, VerificationPolicy, VerifiedPackage};
use crate::progress::ProgressEvent;
use crate::release::{Asset, Release};
use crate::step::Step;
use crate::tree::FileList;

use super::Updater;
use super::progress::percent_span;
use super::transition::Transition;

/// How the new release arrived, for the stage step.
pub(super) enum Delivery {
    /// The whole package, downloaded and verified (why not a delta is in
    /// the download step's note).
    Full(Box<VerifiedPackage>),
    /// A delta: the plan and the fetched members.
    Delta {
        plan: Box<DeltaPlan>,
        spool: PathBuf,
    },
}

/// Reports download progress of `total` bytes within the download step's span.
pub(super) fn download_progress<'a>(
    t: &Transition<'a>,
    total: u64,
    name: &str,
) -> impl FnMut(u64) + use<'a> {
    let (start, end) = percent_span(Step::Download);
    let observer = t.observer();
    let message = format!("downloading {name}");
    move |done: u64| {
        let span = u64::from(end - start);
        let percent = start
            + u8::try_from(span * done / total.max(1))
                .unwrap_or(0)
                .min(end - start);
        observer.on_progress(&ProgressEvent {
            step: Step::Download,
            percent,
            bytes_done: done,
            bytes_total: Some(total),
            files_done: 0,
            message: message.clone(),
        });
    }
}

impl Updater {
    /// Fetches the release: a delta when possible (the release has a file
    /// index, the installed release's list is known, the source serves byte
    /// ranges, little changed, nothing shipped was modified), else the whole
    /// package. The step's note says which, and why not a delta.
    pub(super) fn download(
        &self,
        t: &mut Transition<'_>,
        release: &Release,
        asset: &Asset,
        installed: &InstalledState,
        id: &str,
    ) -> Result<Delivery> {
        if let Some(package) = self.take_cached_package(release, asset, id)? {
            t.note(format!(
                "the package verified by `preview` ({} bytes), not downloaded again",
                package.size
            ));
            return Ok(Delivery::Full(Box::new(package)));
        }
        match self.fetch_delta(t, release, asset, installed, id) {
            Ok((plan, spool, index_size)) => {
                t.note(format!(
                    "delta: {} of {} files fetched in {} byte ranges, {} bytes ({:.1} % of the {}-byte package) plus the {}-byte index; {} files reused from the installed release",
                    plan.fetched_files,
                    plan.fetched_files + plan.reused_files,
                    plan.ranges.len(),
                    plan.fetch_bytes,
                    plan.fetch_bytes as f64 * 100.0 / asset.size.max(1) as f64,
                    asset.size,
                    index_size,
                    plan.reused_files
                ));
                Ok(Delivery::Delta {
                    plan: Box::new(plan),
                    spool,
                })
            }
            Err(reason) => {
                tracing::info!(%reason, "downloading the whole package");
                let package = self.download_package(t, release, asset, id)?;
                t.note(format!(
                    "full package, {} bytes; no delta: {reason}",
                    package.size
                ));
                Ok(Delivery::Full(Box::new(package)))
            }
        }
    }

    /// The package `preview` downloaded and verified, moved into this
    /// update's download directory after checking it again: its SHA-256
    /// and size against the release, and its signature when keys are
    /// configured (it may have expired since). `None` when there is none or
    /// it no longer matches (then it is removed).
    fn take_cached_package(
        &self,
        release: &Release,
        asset: &Asset,
        id: &str,
    ) -> Result<Option<VerifiedPackage>> {
        let (Some(cached), Some(digest)) = (self.cached_package_path(asset), asset.sha256) else {
            return Ok(None);
        };
        if !durable::try_exists(&cached)? {
            return Ok(None);
        }
        // Moved first, then checked where it will be used: what is verified
        // is what gets extracted.
        let dir = self.state_subdir("downloads", id);
        durable::create_dir_all(&dir)?;
        let destination = dir.join("package.tar.gz");
        durable::rename(&cached, &destination)?;
        let (found, size) = crate::package::sha256_file(&destination)?;
        if found != digest || size != asset.size {
            tracing::warn!(path = %cached.display(), "a cached package does not match its release; downloading again");
            durable::remove_all(&destination)?;
            return Ok(None);
        }
        let policy = &self.config.verification;
        let signed = if policy.public_keys.is_empty() {
            None
        } else {
            match crate::package::signature::verify_asset_signature(
                &policy.public_keys,
                release,
                asset,
                Utc::now(),
            ) {
                Ok(signed) => Some(signed),
                Err(error) => {
                    tracing::info!(%error, "the cached package's signature no longer verifies; downloading again");
                    durable::remove_all(&destination)?;
                    return Ok(None);
                }
            }
        };
        Ok(Some(VerifiedPackage {
            path: destination,
            sha256: found,
            size,
            signed,
        }))
    }

    /// Downloads and verifies the whole package.
    pub(super) fn download_package(
        &self,
        t: &mut Transition<'_>,
        release: &Release,
        asset: &Asset,
        id: &str,
    ) -> Result<VerifiedPackage> {
        let dir = self.state_subdir("downloads", id);
        durable::create_dir_all(&dir)?;
        let destination = dir.join("package.tar.gz");
        let mut progress = download_progress(t, asset.size, &asset.name);
        crate::package::download_verified(
            self.source.as_ref(),
            release,
            asset,
            &destination,
            &self.config.verification,
            &mut progress,
        )
    }

    /// The delta part of the download: verifies the signature (when keys
    /// are configured, before any byte), fetches and validates the index,
    /// plans, and fetches the changed members into a spool file. Any
    /// reason not to is a [`DeltaFallback`].
    fn fetch_delta(
        &self,
        t: &mut Transition<'_>,
        release: &Release,
        asset: &Asset,
        installed: &InstalledState,
        id: &str,
    ) -> std::result::Result<(DeltaPlan, PathBuf, u64), DeltaFallback> {
        let settings = &self.config.delta;
        if !settings.enabled {
            return Err(DeltaFallback::Disabled);
        }
        let (Some(index_ref), Some(index_asset)) = (&asset.index, asset.index_asset()) else {
            return Err(DeltaFallback::NoIndex);
        };
        let installed_list = match self.installed_files(installed) {
            Ok(Some(list)) => list,
            Ok(None) => return Err(DeltaFallback::InstalledListUnknown),
            Err(error) => return Err(DeltaFallback::Index(format!("the installed list: {error}"))),
        };
        let policy = &self.config.verification;
        if !policy.public_keys.is_empty() {
            let signed = crate::package::signature::verify_asset_signature(
                &policy.public_keys,
                release,
                asset,
                Utc::now(),
            )
            .map_err(|e| DeltaFallback::IndexNotSigned(e.to_string()))?;
            match signed.index_sha256 {
                Some(digest) if digest == index_ref.sha256 => {}
                Some(digest) => {
                    return Err(DeltaFallback::IndexNotSigned(format!(
                        "the signature binds index {digest}, the source offers {}",
                        index_ref.sha256
                    )));
                }
                None => {
                    return Err(DeltaFallback::IndexNotSigned(
                        "the signature binds no index".into(),
                    ));
                }
            }
        }
        if asset.sha256.is_none() && policy.require_checksum {
            return Err(DeltaFallback::Index(
                "the package has no SHA-256 to compare the index with".into(),
            ));
        }
        let dir = self.state_subdir("downloads", id);
        durable::create_dir_all(&dir).map_err(|e| DeltaFallback::Index(e.to_string()))?;
        let index_path = dir.join("package.index.json");
        let origin = redact_url(&index_ref.location);
        let index = crate::package::download_verified(
            self.source.as_ref(),
            release,
            &index_asset,
            &index_path,
            &VerificationPolicy::default(),
            &mut |_| {},
        )
        .and_then(|_| {
            let bytes =
                std::fs::read(&index_path).map_err(|e| Error::io("read", &index_path, e))?;
            PackageIndex::from_json(&bytes, &origin)
        })
        .map_err(|e| DeltaFallback::Index(e.to_string()))?;
        if index.archive.name != asset.name
            || index.version != release.version
            || asset
                .sha256
                .is_some_and(|digest| digest != index.archive.sha256)
        {
            return Err(DeltaFallback::Index(format!(
                "{origin} describes {} {} ({}), not this package",
                index.archive.name, index.version, index.archive.sha256
            )));
        }
        index
            .validate_layout(&origin, asset.size, &self.config.extraction)
            .map_err(|e| DeltaFallback::Index(e.to_string()))?;
        let rules = self.scan_rules();
        let skipped = |path: &str| {
            path.split('/')
                .next()
                .is_some_and(|first| rules.reserved.iter().any(|r| r == first))
                || rules
                    .skipped
                    .iter()
                    .any(|s| crate::package::delta::is_at_or_below(path, s))
        };
        // The extraction rules over every entry run on a second thread
        // while the changed members download; the plan needs only the layout.
        let extraction = &self.config.extraction;
        let (planned, rules_checked) = std::thread::scope(|scope| {
            let rules_check = scope.spawn(|| index.validate_rules(&origin, extraction));
            let planned = crate::package::delta::plan(
                index.clone(),
                FileList::new(),
                &installed_list,
                &self.config.app_dir,
                &skipped,
                asset.size,
                settings,
            )
            .and_then(|plan| {
                let spool = dir.join("delta.spool");
                let mut progress = download_progress(t, plan.fetch_bytes, &asset.name);
                crate::package::delta::fetch(
                    self.source.as_ref(),
                    asset,
                    &plan,
                    &spool,
                    &mut progress,
                )
                .map_err(|e| match e {
                    Error::Unsupported { reason, .. } => DeltaFallback::RangesUnsupported(reason),
                    other => DeltaFallback::Fetch(other.to_string()),
                })?;
                Ok((plan, spool))
            });
            let rules_checked = rules_check.join().unwrap_or_else(|_| {
                Err(Error::other(
                    format!("check the index {origin}"),
                    "the checking thread panicked",
                ))
            });
            (planned, rules_checked)
        });
        let list = rules_checked.map_err(|e| DeltaFallback::Index(e.to_string()))?;
        let (mut plan, spool) = planned?;
        plan.list = list;
        Ok((plan, spool, index_ref.size))
    }
}
