//! Conformance suite for [`ReleaseSource`] implementations.
//!
//! A [`SourceFixture`] describes a set of releases and their asset bytes;
//! the test of an implementation serves it through its backend (writes a
//! release directory with [`SourceFixture::write_release_directory`], or
//! serves the same data from a test server) and calls [`run`], which uses
//! only core types:
//!
//! ```
//! use updater_core::conformance::source::{SourceFixture, run};
//! use updater_core::source::LocalDirectorySource;
//!
//! let dir = tempfile::tempdir()?;
//! let fixture = SourceFixture::standard();
//! fixture.write_release_directory(dir.path())?;
//! run(&LocalDirectorySource::new(dir.path()), &fixture);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The suite reports a broken contract by panicking, as test assertions do.
#![allow(clippy::panic)]

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::ReleaseManifest;
use crate::release::{Asset, ByteRange, Release, Sha256Digest};
use crate::source::{LocalDirectorySource, ReleaseSource};
use crate::version::{Channel, Version};

/// Releases and asset bytes a source under test must serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFixture {
    /// The releases, oldest first.
    pub releases: Vec<FixtureRelease>,
}

/// One release of a [`SourceFixture`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureRelease {
    /// The version (its channel is the version's own channel).
    pub version: Version,
    /// The release notes.
    pub changelog: String,
    /// The publication time.
    pub published_at: DateTime<Utc>,
    /// The downloadable files.
    pub assets: Vec<FixtureAsset>,
}

/// One asset of a [`FixtureRelease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureAsset {
    /// The file name.
    pub name: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

impl FixtureAsset {
    /// The SHA-256 of the bytes.
    pub fn sha256(&self) -> Sha256Digest {
        Sha256Digest(Sha256::digest(&self.bytes).into())
    }
}

/// Deterministic, incompressible-looking bytes (xorshift), so a source that
/// mixes up offsets or assets cannot pass by accident.
fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

impl SourceFixture {
    /// Releases 1.0.0, 1.1.0 (stable), 1.2.0-beta.1 (beta) and 1.3.0-alpha.1
    /// (alpha), each with one `app-<version>.tar.gz`. Sizes differ and
    /// include an empty-ish (1 byte), a buffer-crossing (200,001 bytes) and a
    /// larger (1 MiB + 7) asset.
    pub fn standard() -> Self {
        let sizes = [1usize, 200_001, 4096, (1 << 20) + 7];
        let versions = ["1.0.0", "1.1.0", "1.2.0-beta.1", "1.3.0-alpha.1"];
        let releases = versions
            .iter()
            .zip(sizes)
            .enumerate()
            .map(|(i, (text, size))| {
                let version = Version::parse(text).unwrap_or_else(|_| Version::new(0, 0, i as u64));
                FixtureRelease {
                    changelog: format!("Release {version}.\n\n- change {i}"),
                    published_at: Utc
                        .with_ymd_and_hms(2026, 1 + i as u32, 10, 12, 0, 0)
                        .single()
                        .unwrap_or_default(),
                    assets: vec![FixtureAsset {
                        name: format!("app-{version}.tar.gz"),
                        bytes: pseudo_random_bytes(i as u64 + 1, size),
                    }],
                    version,
                }
            })
            .collect();
        SourceFixture { releases }
    }

    /// The release of `version`, if the fixture has it.
    pub fn release(&self, version: &Version) -> Option<&FixtureRelease> {
        self.releases.iter().find(|r| &r.version == version)
    }

    /// The newest release `channel` accepts.
    pub fn latest(&self, channel: Channel) -> Option<&FixtureRelease> {
        self.releases
            .iter()
            .filter(|r| channel.accepts(&r.version))
            .max_by(|a, b| a.version.cmp(&b.version))
    }

    /// The manifest of the fixture, asset URLs relative (the asset names).
    pub fn manifest(&self) -> ReleaseManifest {
        let mut manifest = ReleaseManifest::default();
        for release in &self.releases {
            let mut model =
                Release::new(release.version.clone()).with_changelog(release.changelog.clone());
            model.published_at = Some(release.published_at);
            for asset in &release.assets {
                model = model.with_asset(
                    Asset::new(&asset.name, asset.bytes.len() as u64, &asset.name)
                        .with_sha256(asset.sha256()),
                );
            }
            manifest.upsert(model);
        }
        manifest
    }

    /// Writes every asset and `manifest.json` into `dir` (created if needed):
    /// a directory [`LocalDirectorySource`] reads, and a static HTTP server
    /// can serve as a custom update server. Returns the manifest path.
    pub fn write_release_directory(&self, dir: &Path) -> Result<std::path::PathBuf> {
        crate::durable::create_dir_all(dir)?;
        for release in &self.releases {
            for asset in &release.assets {
                let path = dir.join(&asset.name);
                std::fs::write(&path, &asset.bytes).map_err(|e| Error::io("write", &path, e))?;
            }
        }
        let path = dir.join(LocalDirectorySource::MANIFEST);
        crate::durable::write_atomic(&path, &self.manifest().to_json()?)?;
        Ok(path)
    }
}

/// Runs every check against `source`, which must serve exactly `fixture`.
///
/// Checks: channel filtering (`releases` and `latest` on each channel, no
/// unknown versions, drafts never listed), `release(v)` for each version and
/// [`Error::NotFound`] for an unknown one, the model (channel, changelog,
/// publication date when given, asset names, sizes, SHA-256 when given),
/// byte-exact downloads whose returned count is the size (twice, so
/// downloads are repeatable), [`Error::Integrity`] without writing more
/// than the declared size when an asset is longer than declared, and
/// ranged downloads: the bytes of several ranges in order (first byte,
/// a middle run, last byte), [`Error::InvalidInput`] for reordered or
/// out-of-bounds ranges before any byte is written.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run(source: &dyn ReleaseSource, fixture: &SourceFixture) {
    run_with(source, fixture, &SuiteOptions::default());
}

/// Known deviations an implementation may declare while it is being fixed.
/// The defaults are the full contract; every tolerance is a bug to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteOptions {
    /// Bytes an implementation may write past the declared size before it
    /// fails with [`Error::Integrity`] (the contract says 0).
    pub tolerated_overshoot: u64,
    /// The implementation does not serve byte ranges: then
    /// [`ReleaseSource::download_ranges`] must fail with
    /// [`Error::Unsupported`] (a capability, not a deviation: updates from
    /// it download whole packages).
    pub without_ranges: bool,
}

/// [`run`] with declared deviations.
///
/// # Panics
///
/// When the implementation breaks the trait's contract; the message names the rule.
pub fn run_with(source: &dyn ReleaseSource, fixture: &SourceFixture, options: &SuiteOptions) {
    let describe = source.describe();
    assert!(!describe.is_empty(), "describe() must not be empty");
    check_channels(source, fixture, &describe);
    for expected in &fixture.releases {
        let release = source.release(&expected.version).unwrap_or_else(|e| {
            panic!(
                "{describe}: release({}) must succeed: {e}",
                expected.version
            )
        });
        check_release(&release, expected, &describe);
        for asset in &release.assets {
            check_download(source, asset, expected, &describe, options);
            check_ranged_download(source, asset, expected, &describe, options);
        }
    }
    let unknown = Version::new(9, 9, 9);
    match source.release(&unknown) {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{describe}: release({unknown}) must be NotFound, got {other:?}"),
    }
}

fn check_channels(source: &dyn ReleaseSource, fixture: &SourceFixture, describe: &str) {
    for channel in Channel::ALL {
        let listed = source
            .releases(channel)
            .unwrap_or_else(|e| panic!("{describe}: releases({channel}) must succeed: {e}"));
        for release in &listed {
            let expected = fixture.release(&release.version).unwrap_or_else(|| {
                panic!(
                    "{describe}: releases({channel}) lists {} which was never published",
                    release.version
                )
            });
            check_release(release, expected, describe);
        }
        for expected in fixture
            .releases
            .iter()
            .filter(|r| channel.accepts(&r.version))
        {
            assert!(
                listed.iter().any(|r| r.version == expected.version),
                "{describe}: releases({channel}) must list {}",
                expected.version
            );
        }
        let latest = source
            .latest(channel)
            .unwrap_or_else(|e| panic!("{describe}: latest({channel}) must succeed: {e}"));
        assert_eq!(
            latest.as_ref().map(|r| &r.version),
            fixture.latest(channel).map(|r| &r.version),
            "{describe}: latest({channel}) picks the newest version the channel accepts"
        );
        if let (Some(latest), Some(expected)) = (&latest, fixture.latest(channel)) {
            check_release(latest, expected, describe);
        }
    }
}

fn check_release(release: &Release, expected: &FixtureRelease, describe: &str) {
    let version = &expected.version;
    assert_eq!(&release.version, version, "{describe}: wrong version");
    assert_eq!(
        release.channel,
        version.channel(),
        "{describe}: release {version} must be on channel {}",
        version.channel()
    );
    assert_eq!(
        release.changelog, expected.changelog,
        "{describe}: release {version} must keep its release notes"
    );
    if let Some(published_at) = release.published_at {
        assert_eq!(
            published_at, expected.published_at,
            "{describe}: release {version} must keep its publication date"
        );
    }
    let mut names: Vec<&str> = release.assets.iter().map(|a| a.name.as_str()).collect();
    let mut expected_names: Vec<&str> = expected.assets.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    expected_names.sort_unstable();
    assert_eq!(
        names, expected_names,
        "{describe}: release {version} has the wrong assets"
    );
    for asset in &release.assets {
        let Some(fixture_asset) = expected.assets.iter().find(|a| a.name == asset.name) else {
            continue;
        };
        assert_eq!(
            asset.size,
            fixture_asset.bytes.len() as u64,
            "{describe}: asset {} must declare its size",
            asset.name
        );
        if let Some(sha256) = asset.sha256 {
            assert_eq!(
                sha256,
                fixture_asset.sha256(),
                "{describe}: asset {} has the wrong SHA-256",
                asset.name
            );
        }
    }
}

fn check_download(
    source: &dyn ReleaseSource,
    asset: &Asset,
    expected: &FixtureRelease,
    describe: &str,
    options: &SuiteOptions,
) {
    let Some(fixture_asset) = expected.assets.iter().find(|a| a.name == asset.name) else {
        return;
    };
    assert_eq!(
        asset.sha256,
        Some(fixture_asset.sha256()),
        "{describe}: release({}) must give asset {} its SHA-256",
        expected.version,
        asset.name
    );
    for round in 0..2 {
        let mut sink = Vec::new();
        let written = source.download(asset, &mut sink).unwrap_or_else(|e| {
            panic!(
                "{describe}: download of {} (round {round}) must succeed: {e}",
                asset.name
            )
        });
        assert_eq!(
            written, asset.size,
            "{describe}: download of {} must return the byte count",
            asset.name
        );
        assert!(
            sink == fixture_asset.bytes,
            "{describe}: download of {} must write exactly the asset's bytes ({} written, {} expected)",
            asset.name,
            sink.len(),
            fixture_asset.bytes.len()
        );
    }
    if asset.size > 0 {
        let understated = Asset {
            size: asset.size - 1,
            ..asset.clone()
        };
        let mut sink = Vec::new();
        match source.download(&understated, &mut sink) {
            Err(Error::Integrity { .. }) => {}
            other => panic!(
                "{describe}: an asset longer than its declared size must fail with Integrity, got {other:?}"
            ),
        }
        assert!(
            fixture_asset.bytes.starts_with(&sink),
            "{describe}: a refused download must still have written only the asset's own bytes, in order"
        );
        assert!(
            sink.len() as u64 <= understated.size + options.tolerated_overshoot,
            "{describe}: no byte beyond the declared size may be written ({} written for {})",
            sink.len(),
            understated.size
        );
    }
}

fn check_ranged_download(
    source: &dyn ReleaseSource,
    asset: &Asset,
    expected: &FixtureRelease,
    describe: &str,
    options: &SuiteOptions,
) {
    let Some(fixture_asset) = expected.assets.iter().find(|a| a.name == asset.name) else {
        return;
    };
    let bytes = &fixture_asset.bytes;
    let size = bytes.len() as u64;
    if size == 0 {
        return;
    }
    let mut ranges = vec![ByteRange::new(0, 1)];
    if size >= 10 {
        ranges.push(ByteRange::new(size / 3, size / 3 + size / 4));
    }
    if size >= 2 {
        ranges.push(ByteRange::new(size - 1, size));
    }
    ranges.dedup();
    let mut sink = Vec::new();
    let result = source.download_ranges(asset, &ranges, &mut sink);
    if options.without_ranges {
        match result {
            Err(Error::Unsupported { .. }) => return,
            other => panic!(
                "{describe}: a source without ranges must answer download_ranges with Unsupported, got {other:?}"
            ),
        }
    }
    let written = result.unwrap_or_else(|e| {
        panic!(
            "{describe}: ranged download of {} must succeed: {e}",
            asset.name
        )
    });
    let wanted: Vec<u8> = ranges
        .iter()
        .flat_map(|r| bytes[r.start as usize..r.end as usize].iter().copied())
        .collect();
    assert_eq!(
        written,
        wanted.len() as u64,
        "{describe}: download_ranges of {} must return the byte count",
        asset.name
    );
    assert!(
        sink == wanted,
        "{describe}: download_ranges of {} must write exactly the ranges' bytes, in order",
        asset.name
    );
    for bad in [
        vec![ByteRange::new(size - 1, size), ByteRange::new(0, 1)],
        vec![ByteRange::new(0, size + 1)],
    ] {
        if size < 2 && bad.len() == 2 {
            continue;
        }
        let mut sink = Vec::new();
        match source.download_ranges(asset, &bad, &mut sink) {
            Err(Error::InvalidInput { .. }) => {}
            other => panic!(
                "{describe}: reordered or out-of-bounds ranges must be InvalidInput, got {other:?}"
            ),
        }
        assert!(
            sink.is_empty(),
            "{describe}: refused ranges must not write anything"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_fixture_has_one_release_per_channel_and_distinct_bytes() {
        let fixture = SourceFixture::standard();
        assert_eq!(
            fixture
                .latest(Channel::Stable)
                .map(|r| r.version.to_string()),
            Some("1.1.0".into())
        );
        assert_eq!(
            fixture.latest(Channel::Beta).map(|r| r.version.to_string()),
            Some("1.2.0-beta.1".into())
        );
        assert_eq!(
            fixture
                .latest(Channel::Alpha)
                .map(|r| r.version.to_string()),
            Some("1.3.0-alpha.1".into())
        );
        let digests: std::collections::HashSet<_> = fixture
            .releases
            .iter()
            .map(|r| r.assets[0].sha256())
            .collect();
        assert_eq!(digests.len(), fixture.releases.len());
    }
}
