//! Versions, channels and the rules that decide whether an update is allowed.
//!
//! Versions are [Semantic Versioning 2.0](https://semver.org) with an optional
//! leading `v` (`v1.2.3` and `1.2.3` are the same version). The pre-release tag
//! decides the [`Channel`] of a release:
//!
//! | pre-release tag | channel |
//! |---|---|
//! | none | [`Channel::Stable`] |
//! | `beta.N`, `rc.N` (also `beta`, `rc1`, `RC.2`) | [`Channel::Beta`] |
//! | `alpha.N` and anything else (`dev`, `nightly.3`) | [`Channel::Alpha`] |
//!
//! A channel accepts its own releases and every release more stable than
//! itself: `beta` installs betas and stables, `stable` only stables.
//!
//! ```
//! use updater_core::version::{Channel, Version, UpdateType, UpgradePolicy};
//!
//! let current: Version = "v1.4.2".parse()?;
//! let offered: Version = "1.5.0-rc.1".parse()?;
//! assert_eq!(offered.channel(), Channel::Beta);
//! assert!(!Channel::Stable.accepts(&offered));
//! assert!(Channel::Beta.accepts(&offered));
//!
//! let policy = UpgradePolicy::default();
//! assert_eq!(policy.check(&current, &offered, None)?, UpdateType::Minor);
//! assert!(policy.check(&offered, &current, None).is_err()); // downgrade refused
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A semantic version; parses with or without a leading `v`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(semver::Version);

impl Version {
    /// A release version `major.minor.patch` without pre-release tag.
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version(semver::Version::new(major, minor, patch))
    }

    /// Parses `1.2.3`, `v1.2.3`, `V1.2.3-beta.1+build.5`.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let bare = trimmed
            .strip_prefix('v')
            .or_else(|| trimmed.strip_prefix('V'))
            .unwrap_or(trimmed);
        semver::Version::parse(bare)
            .map(Version)
            .map_err(|e| Error::invalid(format!("version {text:?}"), e.to_string()))
    }

    /// The underlying [`semver::Version`].
    pub fn as_semver(&self) -> &semver::Version {
        &self.0
    }

    /// The channel this version is published on, from its pre-release tag.
    pub fn channel(&self) -> Channel {
        Channel::of_prerelease(self.0.pre.as_str())
    }

    /// Whether this version has a pre-release tag.
    pub fn is_prerelease(&self) -> bool {
        !self.0.pre.is_empty()
    }

    /// The kind of change from `self` to a newer `other`; `None` when `other` is not newer.
    pub fn update_type_to(&self, other: &Version) -> Option<UpdateType> {
        if other <= self {
            return None;
        }
        let (a, b) = (&self.0, &other.0);
        Some(if b.major != a.major {
            UpdateType::Major
        } else if b.minor != a.minor {
            UpdateType::Minor
        } else if b.patch != a.patch {
            UpdateType::Patch
        } else {
            UpdateType::PreRelease
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Version {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Version::parse(s)
    }
}

impl From<semver::Version> for Version {
    fn from(v: semver::Version) -> Self {
        Version(v)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Version {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A semantic version (`1.4.0`, `2.0.0-beta.1`)"))
            .examples([serde_json::json!("1.4.0")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Version {}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A release channel. Ordered from most to least stable: `Stable < Beta < Alpha`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Releases without a pre-release tag.
    #[default]
    Stable,
    /// `beta` and `rc` pre-releases.
    Beta,
    /// `alpha` and any other pre-release.
    Alpha,
}

impl Channel {
    /// All channels, most stable first.
    pub const ALL: [Channel; 3] = [Channel::Stable, Channel::Beta, Channel::Alpha];

    /// The channel of a pre-release tag (`""` for a release).
    pub fn of_prerelease(pre: &str) -> Channel {
        if pre.is_empty() {
            return Channel::Stable;
        }
        let first = pre
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let word = first.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        match word {
            "beta" | "rc" | "b" => Channel::Beta,
            _ => Channel::Alpha,
        }
    }

    /// Whether a subscriber of this channel installs `version`: its own
    /// releases and everything more stable.
    pub fn accepts(self, version: &Version) -> bool {
        version.channel() <= self
    }

    /// The lowercase name: `stable`, `beta` or `alpha`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Stable => "stable",
            Channel::Beta => "beta",
            Channel::Alpha => "alpha",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stable" => Ok(Channel::Stable),
            "beta" | "rc" => Ok(Channel::Beta),
            "alpha" => Ok(Channel::Alpha),
            _ => Err(Error::invalid(
                format!("channel {s:?}"),
                "expected stable, beta or alpha",
            )),
        }
    }
}

/// How big a change an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UpdateType {
    /// The major number changed (may break things).
    Major,
    /// The minor number changed.
    Minor,
    /// Only the patch number changed.
    Patch,
    /// Same `major.minor.patch`, a newer pre-release or the release of a pre-release.
    PreRelease,
    /// The same version installed again (only with [`UpgradePolicy::allow_reinstall`]).
    Reinstall,
    /// An older version (only with [`UpgradePolicy::allow_downgrade`]).
    Downgrade,
}

impl UpdateType {
    /// The lowercase name stored in history.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateType::Major => "major",
            UpdateType::Minor => "minor",
            UpdateType::Patch => "patch",
            UpdateType::PreRelease => "pre_release",
            UpdateType::Reinstall => "reinstall",
            UpdateType::Downgrade => "downgrade",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "major" => UpdateType::Major,
            "minor" => UpdateType::Minor,
            "patch" => UpdateType::Patch,
            "pre_release" => UpdateType::PreRelease,
            "reinstall" => UpdateType::Reinstall,
            "downgrade" => UpdateType::Downgrade,
            other => {
                return Err(Error::invalid(
                    format!("update type {other:?}"),
                    "unknown type",
                ));
            }
        })
    }
}

impl fmt::Display for UpdateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which version changes are allowed. Downgrades and reinstalls are refused by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradePolicy {
    /// Allow installing a version lower than the current one, or than the
    /// highest version ever installed.
    pub allow_downgrade: bool,
    /// Allow installing the current version again.
    pub allow_reinstall: bool,
}

impl UpgradePolicy {
    /// Decides whether `candidate` may replace `current`, given the highest
    /// version ever installed (remembered across restarts).
    ///
    /// Returns the [`UpdateType`] or [`Error::VersionRefused`].
    pub fn check(
        &self,
        current: &Version,
        candidate: &Version,
        highest_installed: Option<&Version>,
    ) -> Result<UpdateType> {
        let refuse = |reason: String| Error::VersionRefused {
            candidate: candidate.to_string(),
            reason,
        };
        match candidate.cmp(current) {
            Ordering::Equal if self.allow_reinstall => return Ok(UpdateType::Reinstall),
            Ordering::Equal => {
                return Err(refuse(format!(
                    "{current} is already installed (reinstall not allowed)"
                )));
            }
            Ordering::Less if self.allow_downgrade => return Ok(UpdateType::Downgrade),
            Ordering::Less => {
                return Err(refuse(format!(
                    "it is older than the installed {current} (downgrade not allowed)"
                )));
            }
            Ordering::Greater => {}
        }
        if let Some(highest) = highest_installed
            && candidate < highest
            && !self.allow_downgrade
        {
            return Err(refuse(format!(
                "version {highest} was installed before (downgrade not allowed)"
            )));
        }
        current
            .update_type_to(candidate)
            .ok_or_else(|| refuse("it is not newer".to_string()))
    }
}

/// The newest version of `versions` that `channel` accepts.
pub fn newest_in_channel<'a, I>(versions: I, channel: Channel) -> Option<&'a Version>
where
    I: IntoIterator<Item = &'a Version>,
{
    versions.into_iter().filter(|v| channel.accepts(v)).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        match Version::parse(s) {
            Ok(v) => v,
            Err(e) => unreachable!("test version {s}: {e}"),
        }
    }

    #[test]
    fn leading_v_is_accepted_and_ignored() {
        assert_eq!(v("v1.2.3"), v("1.2.3"));
        assert_eq!(v("V1.2.3").to_string(), "1.2.3");
    }

    #[test]
    fn malformed_versions_name_the_input() {
        let err = Version::parse("1.x").unwrap_err().to_string();
        assert!(err.contains("\"1.x\""), "{err}");
        assert!(Version::parse("").is_err());
        assert!(Version::parse("vv1.0.0").is_err());
    }

    #[test]
    fn prerelease_tags_map_to_channels() {
        assert_eq!(v("1.0.0").channel(), Channel::Stable);
        assert_eq!(v("1.0.0-beta.1").channel(), Channel::Beta);
        assert_eq!(v("1.0.0-rc.2").channel(), Channel::Beta);
        assert_eq!(v("1.0.0-RC1").channel(), Channel::Beta);
        assert_eq!(v("1.0.0-alpha.3").channel(), Channel::Alpha);
        assert_eq!(v("1.0.0-nightly.3").channel(), Channel::Alpha);
    }

    #[test]
    fn channels_accept_everything_more_stable() {
        let (stable, beta, alpha) = (v("1.0.0"), v("1.1.0-beta.1"), v("1.2.0-alpha.1"));
        assert!(Channel::Stable.accepts(&stable));
        assert!(!Channel::Stable.accepts(&beta));
        assert!(!Channel::Stable.accepts(&alpha));
        assert!(Channel::Beta.accepts(&stable) && Channel::Beta.accepts(&beta));
        assert!(!Channel::Beta.accepts(&alpha));
        assert!(Channel::Alpha.accepts(&alpha) && Channel::Alpha.accepts(&stable));
    }

    #[test]
    fn update_types_follow_the_changed_number() {
        let base = v("1.2.3");
        assert_eq!(base.update_type_to(&v("2.0.0")), Some(UpdateType::Major));
        assert_eq!(base.update_type_to(&v("1.3.0")), Some(UpdateType::Minor));
        assert_eq!(base.update_type_to(&v("1.2.4")), Some(UpdateType::Patch));
        assert_eq!(
            v("1.3.0-rc.1").update_type_to(&v("1.3.0")),
            Some(UpdateType::PreRelease)
        );
        assert_eq!(base.update_type_to(&v("1.2.3")), None);
    }

    #[test]
    fn downgrade_and_reinstall_are_refused_unless_allowed() {
        let policy = UpgradePolicy::default();
        assert!(matches!(
            policy.check(&v("1.2.0"), &v("1.1.0"), None),
            Err(Error::VersionRefused { .. })
        ));
        assert!(policy.check(&v("1.2.0"), &v("1.2.0"), None).is_err());
        let lenient = UpgradePolicy {
            allow_downgrade: true,
            allow_reinstall: true,
        };
        assert_eq!(
            lenient.check(&v("1.2.0"), &v("1.1.0"), None).ok(),
            Some(UpdateType::Downgrade)
        );
        assert_eq!(
            lenient.check(&v("1.2.0"), &v("1.2.0"), None).ok(),
            Some(UpdateType::Reinstall)
        );
    }

    #[test]
    fn a_version_below_the_highest_ever_installed_is_refused() {
        // Rolled back from 2.0.0 to 1.0.0; an attacker replays signed 1.5.0.
        let policy = UpgradePolicy::default();
        let err = policy
            .check(&v("1.0.0"), &v("1.5.0"), Some(&v("2.0.0")))
            .unwrap_err();
        assert!(
            err.to_string().contains("2.0.0 was installed before"),
            "{err}"
        );
        assert!(
            policy
                .check(&v("1.0.0"), &v("2.0.1"), Some(&v("2.0.0")))
                .is_ok()
        );
    }

    #[test]
    fn channel_names_parse() {
        assert_eq!("Beta".parse::<Channel>().ok(), Some(Channel::Beta));
        assert!("nightly".parse::<Channel>().is_err());
    }

    fn arb_version() -> impl Strategy<Value = Version> {
        let pre = prop_oneof![
            Just(String::new()),
            (0u64..4).prop_map(|n| format!("alpha.{n}")),
            (0u64..4).prop_map(|n| format!("beta.{n}")),
            (0u64..4).prop_map(|n| format!("rc.{n}")),
        ];
        (0u64..4, 0u64..4, 0u64..4, pre).prop_map(|(a, b, c, pre)| {
            let text = if pre.is_empty() {
                format!("{a}.{b}.{c}")
            } else {
                format!("{a}.{b}.{c}-{pre}")
            };
            v(&text)
        })
    }

    fn arb_channel() -> impl Strategy<Value = Channel> {
        prop_oneof![
            Just(Channel::Stable),
            Just(Channel::Beta),
            Just(Channel::Alpha)
        ]
    }

    proptest! {
        #[test]
        fn ordering_is_total_and_matches_semver(a in arb_version(), b in arb_version()) {
            prop_assert_eq!(a.cmp(&b), a.as_semver().cmp(b.as_semver()));
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a == b, a.to_string() == b.to_string());
        }

        #[test]
        fn display_round_trips_with_or_without_v(a in arb_version()) {
            prop_assert_eq!(&v(&a.to_string()), &a);
            prop_assert_eq!(&v(&format!("v{a}")), &a);
        }

        #[test]
        fn a_release_sorts_after_its_prereleases(a in arb_version()) {
            let release = Version::new(a.as_semver().major, a.as_semver().minor, a.as_semver().patch);
            prop_assert!(release >= a);
        }

        #[test]
        fn newest_in_channel_is_the_max_of_accepted(versions in proptest::collection::vec(arb_version(), 0..12), channel in arb_channel()) {
            let picked = newest_in_channel(&versions, channel);
            match picked {
                None => prop_assert!(versions.iter().all(|v| !channel.accepts(v))),
                Some(p) => {
                    prop_assert!(channel.accepts(p));
                    prop_assert!(versions.iter().filter(|v| channel.accepts(v)).all(|v| v <= p));
                }
            }
            // A less stable channel never picks an older version.
            if let (Some(p), Some(wider)) = (picked, newest_in_channel(&versions, Channel::Alpha)) {
                prop_assert!(wider >= p);
            }
        }

        #[test]
        fn policy_never_allows_a_downgrade_by_default(a in arb_version(), b in arb_version(), h in proptest::option::of(arb_version())) {
            let result = UpgradePolicy::default().check(&a, &b, h.as_ref());
            if result.is_ok() {
                prop_assert!(b > a);
                if let Some(h) = &h { prop_assert!(&b >= h); }
            } else {
                prop_assert!(b <= a || h.as_ref().is_some_and(|h| &b < h));
            }
        }
    }
}
