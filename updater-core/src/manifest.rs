//! The release manifest: a JSON document listing releases, served by any
//! static host (custom update server) or kept in a local directory.
//!
//! # Format (schema version 1)
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "releases": [
//!     {
//!       "version": "1.2.0",
//!       "channel": "stable",
//!       "published_at": "2026-11-20T10:00:00Z",
//!       "changelog": "Faster reports.\n\nFixes #12.",
//!       "assets": [
//!         {
//!           "name": "app-1.2.0.tar.gz",
//!           "url": "https://updates.example.com/app-1.2.0.tar.gz",
//!           "size": 1048576,
//!           "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
//!           "signature": "untrusted comment: ...\nRUQ...\ntrusted comment: expires=2027-01-01T00:00:00Z\n..."
//!         }
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! | field | required | meaning |
//! |---|---|---|
//! | `schema_version` | yes | must be `1`; a newer manifest is refused with a clear error |
//! | `releases[].version` | yes | semver, `v` prefix allowed |
//! | `releases[].channel` | no | `stable`, `beta`, `alpha`; defaults to the version's own channel |
//! | `releases[].published_at` | no | RFC 3339 |
//! | `releases[].changelog` | no | text |
//! | `assets[].name` | yes | file name (no `/`) |
//! | `assets[].url` | yes | absolute URL, or a path relative to the manifest |
//! | `assets[].size` | yes | bytes; a download of another size is refused |
//! | `assets[].sha256` | yes | 64 hex digits; checked while streaming |
//! | `assets[].signature` | no | minisign signature over the release metadata ([`crate::package::signature`]) |
//! | `assets[].index` | no | `{"url", "size", "sha256"}` of the package's file index ([`crate::package::index`]), for delta updates |
//!
//! Unknown fields are ignored, so a manifest may carry extra data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::release::{Asset, AssetIndex, AssetSignature, Release, Sha256Digest};
use crate::version::{Channel, Version};

/// The schema version this crate reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A parsed release manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    /// Must be [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The releases, in any order.
    #[serde(default)]
    pub releases: Vec<ManifestRelease>,
}

impl Default for ReleaseManifest {
    fn default() -> Self {
        ReleaseManifest {
            schema_version: SCHEMA_VERSION,
            releases: Vec::new(),
        }
    }
}

/// One release in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRelease {
    /// The version.
    pub version: Version,
    /// The channel; defaults to the version's channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Publication time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    /// Release notes.
    #[serde(default)]
    pub changelog: String,
    /// The files.
    pub assets: Vec<ManifestAsset>,
}

/// One asset in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestAsset {
    /// File name.
    pub name: String,
    /// Absolute URL or path relative to the manifest.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// Expected SHA-256.
    pub sha256: Sha256Digest,
    /// Optional minisign signature text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The package's file index, for delta updates (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<ManifestIndex>,
}

/// Where an asset's file index is ([`crate::package::index`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestIndex {
    /// Absolute URL or path relative to the manifest.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// Expected SHA-256 (also bound by the signature, when signed).
    pub sha256: Sha256Digest,
}

impl ReleaseManifest {
    /// Parses and validates a manifest; `origin` (a path or a URL without
    /// credentials) names it in errors.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            schema_version: Option<serde_json::Value>,
        }
        let what = || format!("release manifest {origin}");
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(what(), format!("not a JSON object: {e}")))?;
        match probe.schema_version {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {
            }
            Some(other) => {
                return Err(Error::invalid(
                    what(),
                    format!(
                        "schema_version {other} is not supported (this updater reads {SCHEMA_VERSION}); upgrade the updater"
                    ),
                ));
            }
            None => return Err(Error::invalid(what(), "missing field `schema_version`")),
        }
        let manifest: ReleaseManifest =
            serde_json::from_slice(bytes).map_err(|e| Error::invalid(what(), e.to_string()))?;
        for release in &manifest.releases {
            for asset in &release.assets {
                if asset.name.is_empty()
                    || asset.name.contains(['/', '\\', '\0'])
                    || asset.name == "."
                    || asset.name == ".."
                {
                    return Err(Error::invalid(
                        what(),
                        format!(
                            "release {}: asset name {:?} must be a plain file name",
                            release.version, asset.name
                        ),
                    ));
                }
            }
            let mut seen = std::collections::HashSet::new();
            if manifest
                .releases
                .iter()
                .filter(|r| r.version == release.version)
                .count()
                > 1
                || !release.assets.iter().all(|a| seen.insert(&a.name))
            {
                return Err(Error::invalid(
                    what(),
                    format!(
                        "release {} or one of its assets is listed twice",
                        release.version
                    ),
                ));
            }
        }
        Ok(manifest)
    }

    /// Serialises the manifest as pretty JSON.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::other("serialise release manifest", e))
    }

    /// Adds `release`, replacing a release of the same version.
    pub fn upsert(&mut self, release: Release) {
        self.releases.retain(|r| r.version != release.version);
        self.releases.push(ManifestRelease {
            channel: Some(release.channel),
            published_at: release.published_at,
            changelog: release.changelog,
            assets: release
                .assets
                .into_iter()
                .filter_map(|a| {
                    Some(ManifestAsset {
                        sha256: a.sha256?,
                        name: a.name,
                        url: a.location,
                        size: a.size,
                        signature: a.signature.map(|s| s.minisig),
                        index: a.index.map(|index| ManifestIndex {
                            url: index.location,
                            size: index.size,
                            sha256: index.sha256,
                        }),
                    })
                })
                .collect(),
            version: release.version,
        });
        self.releases.sort_by(|a, b| b.version.cmp(&a.version));
    }

    /// Adds a release entry as it will be written (asset URLs as given),
    /// replacing a release of the same version; newest first.
    pub fn upsert_entry(&mut self, entry: ManifestRelease) {
        self.releases.retain(|r| r.version != entry.version);
        self.releases.push(entry);
        self.releases.sort_by(|a, b| b.version.cmp(&a.version));
    }

    /// Converts into the release model. Relative asset URLs stay relative;
    /// an HTTP source resolves them against the manifest URL.
    pub fn into_releases(self) -> Vec<Release> {
        self.releases
            .into_iter()
            .map(|r| Release {
                channel: r.channel.unwrap_or_else(|| r.version.channel()),
                version: r.version,
                published_at: r.published_at,
                changelog: r.changelog,
                assets: r
                    .assets
                    .into_iter()
                    .map(|a| Asset {
                        name: a.name,
                        size: a.size,
                        location: a.url,
                        sha256: Some(a.sha256),
                        signature: a.signature.map(AssetSignature::new),
                        index: a.index.map(|index| AssetIndex {
                            location: index.url,
                            size: index.size,
                            sha256: index.sha256,
                        }),
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"schema_version":1,"releases":[{"version":"v1.2.0","assets":[
        {"name":"app.tar.gz","url":"app.tar.gz","size":3,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]}]}"#;

    #[test]
    fn a_valid_manifest_becomes_releases() {
        let releases = ReleaseManifest::from_json(GOOD.as_bytes(), "m.json")
            .unwrap()
            .into_releases();
        assert_eq!(releases[0].version, Version::new(1, 2, 0));
        assert_eq!(releases[0].channel, Channel::Stable);
        assert!(releases[0].assets[0].sha256.is_some());
    }

    #[test]
    fn bad_manifests_get_errors_that_name_the_problem() {
        let cases = [
            ("[1,2]", "not a JSON object"),
            ("{}", "missing field `schema_version`"),
            (
                r#"{"schema_version":2}"#,
                "schema_version 2 is not supported",
            ),
            (
                r#"{"schema_version":1,"releases":[{"version":"x","assets":[]}]}"#,
                "version",
            ),
            (&GOOD.replace("\"size\":3,", ""), "size"),
            (
                &GOOD.replace("\"app.tar.gz\",\"url\"", "\"../x\",\"url\""),
                "plain file name",
            ),
            (&GOOD.replace("9f86", "zz86"), "SHA-256"),
        ];
        for (json, expected) in cases {
            let err = ReleaseManifest::from_json(json.as_bytes(), "m.json")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("m.json") && err.contains(expected),
                "{json}: {err}"
            );
        }
    }
}
