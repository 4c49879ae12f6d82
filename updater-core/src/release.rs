//! The release model: what a [`ReleaseSource`](crate::source::ReleaseSource) reports.
//!
//! A [`Release`] is one published version with its changelog and [`Asset`]s.
//! An asset is one downloadable file: its name, declared size, where to fetch
//! it, its expected SHA-256 and, when the publisher signs releases, an
//! [`AssetSignature`] over the release metadata (see [`crate::package::signature`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::version::{Channel, Version};

/// One published version of the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The version.
    pub version: Version,
    /// The channel it is published on (normally `version.channel()`).
    pub channel: Channel,
    /// When it was published, if the source knows.
    #[serde(default)]
    pub published_at: Option<DateTime<Utc>>,
    /// Release notes (Markdown or plain text).
    #[serde(default)]
    pub changelog: String,
    /// The downloadable files.
    #[serde(default)]
    pub assets: Vec<Asset>,
}

impl Release {
    /// A release of `version` on its natural channel, with no assets yet.
    pub fn new(version: Version) -> Self {
        let channel = version.channel();
        Release {
            version,
            channel,
            published_at: None,
            changelog: String::new(),
            assets: Vec::new(),
        }
    }

    /// Adds an asset (builder style).
    pub fn with_asset(mut self, asset: Asset) -> Self {
        self.assets.push(asset);
        self
    }

    /// Sets the changelog (builder style).
    pub fn with_changelog(mut self, changelog: impl Into<String>) -> Self {
        self.changelog = changelog.into();
        self
    }

    /// The asset to install: the one whose name matches `pattern`, where
    /// `{version}` stands for the version (without `v`), `{target}` for the
    /// [target triple](current_target) of the running build (e.g.
    /// `x86_64-unknown-linux-gnu`) and `*` for any run of characters. With
    /// no pattern, the only `.tar.gz`/`.tgz` asset.
    ///
    /// The pattern is a glob in the one dialect of every pattern the
    /// updater takes (`globset`, as `discarded_paths`): besides `*`, `?` is
    /// one character, `[abc]` a class and `{tar.gz,zip}` alternatives; the
    /// placeholders' values are taken literally. An invalid glob is
    /// [`Error::InvalidInput`].
    ///
    /// This is the one place where an asset is chosen: sources list every
    /// package asset of a release, the pipeline selects with the configured
    /// pattern. Exactly one asset must match: none is
    /// [`Error::NotFound`], several is [`Error::InvalidInput`] naming them.
    ///
    /// ```
    /// use updater_core::release::{Asset, Release, current_target};
    /// use updater_core::version::Version;
    /// let release = Release::new(Version::new(1, 2, 0))
    ///     .with_asset(Asset::new("app-1.2.0-x86_64-linux.tar.gz", 10, "file:///r/a"))
    ///     .with_asset(Asset::new("app-1.2.0-aarch64-linux.tar.gz", 10, "file:///r/b"))
    ///     .with_asset(Asset::new(format!("app-1.2.0-{}.zip", current_target()), 10, "file:///r/c"));
    /// let asset = release.select_asset(Some("app-{version}-x86_64-*.tar.gz"))?;
    /// assert_eq!(asset.name, "app-1.2.0-x86_64-linux.tar.gz");
    /// let native = release.select_asset(Some("app-{version}-{target}.zip"))?;
    /// assert_eq!(native.location, "file:///r/c");
    /// assert!(release.select_asset(None).is_err(), "two archives and no pattern");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn select_asset(&self, pattern: Option<&str>) -> Result<&Asset> {
        let resolved = pattern.map(|pattern| {
            pattern
                .replace("{version}", &globset::escape(&self.version.to_string()))
                .replace("{target}", &globset::escape(&current_target()))
        });
        let matching: Vec<&Asset> = match &resolved {
            Some(resolved) => {
                let glob = asset_glob(resolved)?;
                self.assets
                    .iter()
                    .filter(|a| glob.is_match(&a.name))
                    .collect()
            }
            None => self
                .assets
                .iter()
                .filter(|a| a.name.ends_with(".tar.gz") || a.name.ends_with(".tgz"))
                .collect(),
        };
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::not_found(format!(
                "asset matching {:?} in release {}",
                resolved.as_deref().unwrap_or("*.tar.gz"),
                self.version
            ))),
            many => Err(Error::invalid(
                format!("asset pattern {:?}", pattern.unwrap_or("*.tar.gz")),
                format!(
                    "{} assets of release {} match: {}",
                    many.len(),
                    self.version,
                    many.iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

/// The Rust target triple of the running build, the value of `{target}` in
/// [asset patterns](Release::select_asset): `{arch}-unknown-linux-gnu` (or
/// `-musl`), `{arch}-apple-darwin`, `{arch}-pc-windows-msvc` (or `-gnu`),
/// `{arch}-unknown-freebsd`, and `{arch}-unknown-{os}` elsewhere (`{arch}`
/// as Rust spells it: `x86_64`, `aarch64`, `i686`...). Exact for the usual
/// server platforms; on others, write the name out in the pattern instead.
///
/// ```
/// use updater_core::release::current_target;
/// let target = current_target();
/// assert!(target.starts_with(std::env::consts::ARCH) || target.starts_with("i686"));
/// # #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
/// # assert_eq!(target, "x86_64-unknown-linux-gnu");
/// ```
pub fn current_target() -> String {
    let arch = match std::env::consts::ARCH {
        "x86" => "i686",
        other => other,
    };
    let rest = if cfg!(target_os = "linux") {
        if cfg!(target_env = "musl") {
            "unknown-linux-musl".to_string()
        } else {
            "unknown-linux-gnu".to_string()
        }
    } else if cfg!(target_os = "macos") {
        "apple-darwin".to_string()
    } else if cfg!(target_os = "windows") {
        if cfg!(target_env = "gnu") {
            "pc-windows-gnu".to_string()
        } else {
            "pc-windows-msvc".to_string()
        }
    } else {
        format!("unknown-{}", std::env::consts::OS)
    };
    format!("{arch}-{rest}")
}

/// The matcher of an asset pattern (placeholders already replaced).
pub(crate) fn asset_glob(pattern: &str) -> Result<globset::GlobMatcher> {
    globset::Glob::new(pattern)
        .map(|glob| glob.compile_matcher())
        .map_err(|e| Error::invalid(format!("asset pattern {pattern:?}"), e.to_string()))
}

/// One downloadable file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// The file name, e.g. `app-1.2.0.tar.gz`. Never used as a path unchecked.
    pub name: String,
    /// The declared size in bytes. A download that differs is refused.
    pub size: u64,
    /// Where the source fetches it from (a URL or a path; opaque to the pipeline).
    pub location: String,
    /// The expected SHA-256 of the file, when the source knows it.
    #[serde(default)]
    pub sha256: Option<Sha256Digest>,
    /// The publisher's signature over the release metadata, when published.
    #[serde(default)]
    pub signature: Option<AssetSignature>,
    /// The package's file index, when the publisher built the package with
    /// `updater release build` (see [`crate::package::index`]): what makes
    /// a delta update possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<AssetIndex>,
}

impl Asset {
    /// An asset with no checksum or signature yet.
    pub fn new(name: impl Into<String>, size: u64, location: impl Into<String>) -> Self {
        Asset {
            name: name.into(),
            size,
            location: location.into(),
            sha256: None,
            signature: None,
            index: None,
        }
    }

    /// Sets the expected SHA-256 (builder style).
    pub fn with_sha256(mut self, digest: Sha256Digest) -> Self {
        self.sha256 = Some(digest);
        self
    }

    /// Sets the signature (builder style).
    pub fn with_signature(mut self, signature: AssetSignature) -> Self {
        self.signature = Some(signature);
        self
    }

    /// Sets the file index (builder style).
    pub fn with_index(mut self, index: AssetIndex) -> Self {
        self.index = Some(index);
        self
    }

    /// The index as an asset of its own, to download it with
    /// [`ReleaseSource::download`](crate::source::ReleaseSource::download)
    /// and verify it like any package (size and SHA-256).
    pub fn index_asset(&self) -> Option<Asset> {
        self.index.as_ref().map(|index| {
            Asset::new(
                format!("{}.index.json", self.name),
                index.size,
                &index.location,
            )
            .with_sha256(index.sha256)
        })
    }
}

/// Where the file index of a package is published, with its size and
/// SHA-256 (see [`crate::package::index`] for the format). The publisher's
/// signature binds the SHA-256 too ([`crate::package::signature`]).
///
/// ```
/// use updater_core::release::{Asset, AssetIndex, Sha256Digest};
/// let asset = Asset::new("app-1.2.0.tar.gz", 1000, "app-1.2.0.tar.gz").with_index(AssetIndex {
///     location: "app-1.2.0.tar.gz.index.json".into(),
///     size: 300,
///     sha256: Sha256Digest([7; 32]),
/// });
/// let index = asset.index_asset().ok_or("no index")?;
/// assert_eq!((index.name.as_str(), index.size), ("app-1.2.0.tar.gz.index.json", 300));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetIndex {
    /// Where the source fetches it from (opaque to the pipeline, as
    /// [`Asset::location`]).
    pub location: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
}

/// A half-open range of bytes `[start, end)` of an asset: what a delta
/// update fetches with [`ReleaseSource::download_ranges`](crate::source::ReleaseSource::download_ranges).
///
/// ```
/// use updater_core::release::ByteRange;
/// let range = ByteRange::new(100, 150);
/// assert_eq!(range.len(), 50);
/// assert_eq!(range.http_range(), "bytes=100-149");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// `[start, end)`; an `end` before `start` gives an empty range at `start`.
    pub fn new(start: u64, end: u64) -> Self {
        ByteRange {
            start,
            end: end.max(start),
        }
    }

    /// How many bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The HTTP `Range` header value asking for it (`bytes=FIRST-LAST`,
    /// inclusive); meaningless for an empty range.
    pub fn http_range(&self) -> String {
        format!("bytes={}-{}", self.start, self.end.saturating_sub(1))
    }
}

/// A minisign signature over the canonical release metadata of an asset.
///
/// The signature text is the content of a `.minisig` file. Its trusted
/// comment must carry `expires=<RFC 3339 time>`; see
/// [`crate::package::signature`] for the exact signed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AssetSignature {
    /// The full minisign signature file (four lines).
    pub minisig: String,
}

impl AssetSignature {
    /// Wraps the text of a `.minisig` file.
    pub fn new(minisig: impl Into<String>) -> Self {
        AssetSignature {
            minisig: minisig.into(),
        }
    }
}

/// A SHA-256 digest; parses from and displays as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parses 64 hex digits (either case), optionally prefixed by `sha256:`.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let hex_part = trimmed.strip_prefix("sha256:").unwrap_or(trimmed);
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|e| {
            Error::invalid(
                format!("SHA-256 digest {trimmed:?}"),
                format!("expected 64 hex digits: {e}"),
            )
        })?;
        Ok(Sha256Digest(bytes))
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Sha256Digest::parse(s)
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Sha256Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn digest_parses_hex_and_prefixed_forms() {
        let hex = "ab".repeat(32);
        let d = Sha256Digest::parse(&hex).unwrap();
        assert_eq!(d.to_hex(), hex);
        assert_eq!(
            Sha256Digest::parse(&format!("sha256:{}", hex.to_uppercase())).unwrap(),
            d
        );
        assert!(Sha256Digest::parse("abc").is_err());
    }

    #[test]
    fn asset_selection_needs_exactly_one_match() {
        let r = Release::new(Version::new(2, 0, 0))
            .with_asset(Asset::new("app-2.0.0.tar.gz", 1, "a"))
            .with_asset(Asset::new("app-2.0.0.tar.gz.sha256", 1, "b"))
            .with_asset(Asset::new("other-2.0.0.tar.gz", 1, "c"));
        assert_eq!(
            r.select_asset(Some("app-{version}.tar.gz"))
                .unwrap()
                .location,
            "a"
        );
        assert!(matches!(
            r.select_asset(None),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            r.select_asset(Some("nope-*")),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn the_target_placeholder_selects_the_asset_built_for_this_platform() {
        let target = current_target();
        let r = Release::new(Version::new(2, 0, 0))
            .with_asset(Asset::new(
                format!("app-2.0.0-{target}.tar.gz"),
                1,
                "native",
            ))
            .with_asset(Asset::new(
                "app-2.0.0-riscv64gc-unknown-none.tar.gz",
                1,
                "other",
            ));
        assert_eq!(
            r.select_asset(Some("app-{version}-{target}.tar.gz"))
                .unwrap()
                .location,
            "native"
        );
        assert!(matches!(
            r.select_asset(Some("app-{version}-*.tar.gz")),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            r.select_asset(Some("app-{version}-{target}.zip")),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn asset_patterns_are_globs_with_literal_placeholders() {
        let r = Release::new(Version::parse("1.0.0-rc.1").unwrap())
            .with_asset(Asset::new("app-1.0.0-rc.1.tar.gz", 1, "tar"))
            .with_asset(Asset::new("app-1.0.0-rc.1.zip", 1, "zip"))
            .with_asset(Asset::new("app-1.0.0-rcX1.zip", 1, "not-this-version"))
            .with_asset(Asset::new("app-1.0.0-rc.1.tar.gz.sig", 1, "sig"));
        let pick = |pattern| r.select_asset(Some(pattern)).map(|a| a.location.as_str());
        // `*` is any run, including none and dots; the rest is literal.
        assert_eq!(pick("app-{version}.tar.gz").unwrap(), "tar");
        assert_eq!(pick("*-{version}.zip").unwrap(), "zip");
        assert_eq!(pick("app-*.tar.gz").unwrap(), "tar");
        assert_eq!(pick("*.sig").unwrap(), "sig");
        // The version's dots are literal, not "any character".
        assert_eq!(pick("app-{version}.z?p").unwrap(), "zip");
        // Globs, as every other pattern of the updater.
        assert_eq!(pick("app-{version}.{zip,7z}").unwrap(), "zip");
        assert!(matches!(
            pick("app-{version}.{zip,tar.gz}"),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(pick("app-[.zip"), Err(Error::InvalidInput { .. })));
    }

    proptest! {
        #[test]
        fn a_star_matches_any_infix(prefix in "[a-z.]{0,6}", middle in "[a-z0-9.-]{0,8}", suffix in "[a-z.]{0,6}") {
            let text = format!("{prefix}{middle}{suffix}");
            let pattern = format!("{prefix}*{suffix}");
            prop_assert!(asset_glob(&pattern).unwrap().is_match(&text));
            prop_assert!(asset_glob(&text).unwrap().is_match(&text));
        }

        #[test]
        fn placeholders_match_only_their_own_value(version in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-z0-9.]{1,8})?") {
            let Ok(version) = Version::parse(&version) else { return Ok(()) };
            let name = format!("app-{version}.tar.gz");
            let other = name.replace('.', "x");
            let r = Release::new(version)
                .with_asset(Asset::new(name.clone(), 1, "this"))
                .with_asset(Asset::new(other, 1, "other"));
            prop_assert_eq!(&r.select_asset(Some("app-{version}.tar.gz")).unwrap().name, &name);
        }
    }
}
