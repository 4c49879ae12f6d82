//! [`GitHubSource`]: releases of a GitHub (or GitHub Enterprise) repository.

mod api;
mod checksums;

use std::io::Write;

use reqwest::header::{HeaderMap, HeaderValue};
use updater_core::error::redact_url;
use updater_core::release::{Asset, AssetIndex, AssetSignature, ByteRange, Release, Sha256Digest};
use updater_core::source::{ReleaseSource, check_ranges};
use updater_core::version::{Channel, Version};
use url::Url;

use crate::error::SourceError;
use crate::http::{HttpClient, HttpSettings, download_ranges_to, download_to, parse_url};
use crate::offered_on;
use api::{GitHubAsset, GitHubRelease, next_page};
use updater_core::secret::Secret;

/// The public API of github.com.
pub const GITHUB_API: &str = "https://api.github.com";
/// The REST API version this crate speaks (`X-GitHub-Api-Version`).
pub const GITHUB_API_VERSION: &str = "2022-11-28";

const OCTET_STREAM: &str = "application/octet-stream";
const MAX_CHECKSUM_LIST_BYTES: u64 = 1024 * 1024;
const MAX_SIDECAR_BYTES: u64 = 16 * 1024;
const MAX_PAGES: usize = 100;

/// Releases of one GitHub repository.
///
/// - The stable channel asks `GET /repos/{owner}/{repo}/releases/latest`
///   (the latest non-draft, non-prerelease release); beta and alpha read
///   the release list, following the `Link: rel="next"` pages, and pick by
///   semver and the channel rules. Tags may carry a `v` (`v1.2.3`); tags
///   that are not semver are skipped. A release marked *pre-release* on
///   GitHub is never offered on the stable channel, whatever its tag.
/// - Each release lists every uploaded asset except checksum and signature
///   files; which one to install is chosen by the pipeline with
///   [`Release::select_asset`] and the configured asset pattern (the one
///   place assets are selected; `{target}` is the running build's target
///   triple there). Each asset's expected SHA-256 comes from, in order:
///   GitHub's `digest` field, a `SHA256SUMS`-style asset (one request per
///   release), a `<asset>.sha256` sidecar (one request per asset: publish
///   a checksum list when a release has many assets). With a
///   [public key](GitHubSourceBuilder::with_minisign_public_key), the
///   `<asset>.minisig` sidecar becomes [`Asset::signature`] (verified by
///   `updater-core`, not here).
/// - Downloads use the asset's API URL with `Accept: application/octet-stream`
///   and follow GitHub's 302 to its storage host without the token.
///
/// See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct GitHubSource {
    http: HttpClient,
    api_base: Url,
    owner: String,
    repo: String,
    minisign_public_key: Option<String>,
    per_page: u32,
}

/// Configures a [`GitHubSource`]; from [`GitHubSource::builder`].
#[derive(Debug, Clone)]
pub struct GitHubSourceBuilder {
    api_base: String,
    owner: String,
    repo: String,
    token: Option<Secret>,
    minisign_public_key: Option<String>,
    per_page: u32,
    settings: HttpSettings,
}

impl GitHubSource {
    /// Starts configuring the source for `owner/repo` on github.com.
    pub fn builder(owner: impl Into<String>, repo: impl Into<String>) -> GitHubSourceBuilder {
        GitHubSourceBuilder {
            api_base: GITHUB_API.to_string(),
            owner: owner.into(),
            repo: repo.into(),
            token: None,
            minisign_public_key: None,
            per_page: 100,
            settings: HttpSettings::default(),
        }
    }

    /// The minisign public key configured, if any (for the caller's verifier).
    pub fn minisign_public_key(&self) -> Option<&str> {
        self.minisign_public_key.as_deref()
    }

    fn endpoint(&self, tail: &[&str]) -> Result<Url, SourceError> {
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| SourceError::InvalidUrl {
                url: redact_url(self.api_base.as_str()),
                reason: "cannot be a base URL".into(),
            })?
            .pop_if_empty()
            .extend(["repos", &self.owner, &self.repo, "releases"])
            .extend(tail);
        Ok(url)
    }

    /// Parses a release (or a list of them) and checks that every asset
    /// name is a plain file name, so that only documents fit for use are
    /// cached.
    fn parse_json<T: serde::de::DeserializeOwned + ReleaseDocument>(
        &self,
        url: &Url,
        body: &[u8],
    ) -> Result<T, SourceError> {
        let document: T =
            serde_json::from_slice(body).map_err(|e| SourceError::MalformedResponse {
                url: redact_url(url.as_str()),
                reason: format!("not the JSON GitHub documents: {e}"),
            })?;
        for name in document.asset_names() {
            check_asset_name(name, &self.describe())?;
        }
        Ok(document)
    }

    /// Every release on every page of the list (drafts included; filtered later).
    fn list_all(&self) -> Result<Vec<GitHubRelease>, SourceError> {
        let mut url = self.endpoint(&[])?;
        url.query_pairs_mut()
            .append_pair("per_page", &self.per_page.to_string());
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let (releases, link) =
                self.http
                    .get_parsed(&url, "application/vnd.github+json", |page| {
                        let releases: Vec<GitHubRelease> = self.parse_json(&url, &page.body)?;
                        Ok::<_, SourceError>((releases, page.link.clone()))
                    })?;
            all.extend(releases);
            match link.as_deref().and_then(next_page) {
                Some(next) => url = parse_url(next)?,
                None => return Ok(all),
            }
        }
        tracing::warn!(pages = MAX_PAGES, "stopped following release list pages");
        Ok(all)
    }

    /// The version and channel of a published release; `None` for drafts
    /// and tags that are not semver.
    fn classify(&self, release: &GitHubRelease) -> Option<(Version, Channel)> {
        if release.draft {
            return None;
        }
        match Version::parse(&release.tag_name) {
            Ok(version) => {
                let flagged = if release.prerelease {
                    Channel::Beta
                } else {
                    Channel::Stable
                };
                let channel = version.channel().max(flagged);
                Some((version, channel))
            }
            Err(_) => {
                tracing::debug!(tag = %release.tag_name, "skipping a release whose tag is not a semver version");
                None
            }
        }
    }

    /// Builds the release model, resolving checksums and signatures of the
    /// selected package assets.
    fn to_release(
        &self,
        release: &GitHubRelease,
        version: Version,
        channel: Channel,
    ) -> Result<Release, updater_core::Error> {
        // Asset names were checked when the document was parsed.
        let uploaded: Vec<&GitHubAsset> =
            release.assets.iter().filter(|a| a.is_uploaded()).collect();
        let mut model =
            Release::new(version).with_changelog(release.body.clone().unwrap_or_default());
        model.channel = channel;
        model.published_at = release.published_at;
        model.assets = uploaded
            .iter()
            .filter(|a| !checksums::is_metadata_asset(&a.name))
            .map(|a| Asset::new(&a.name, a.size, &a.url))
            .collect();
        let mut checksum_list: Option<Option<String>> = None;
        for asset in &mut model.assets {
            asset.sha256 = self.expected_sha256(&uploaded, asset, &mut checksum_list)?;
            if self.minisign_public_key.is_some() {
                asset.signature = self.signature(&uploaded, asset)?;
            }
            asset.index = self.index(&uploaded, asset, &mut checksum_list)?;
        }
        Ok(model)
    }

    /// GitHub's `digest`, else a checksum list, else a `.sha256` sidecar.
    fn expected_sha256(
        &self,
        assets: &[&GitHubAsset],
        asset: &Asset,
        checksum_list: &mut Option<Option<String>>,
    ) -> Result<Option<Sha256Digest>, SourceError> {
        let by_name = |name: &str| assets.iter().find(|a| a.name == name).copied();
        if let Some(digest) = by_name(&asset.name)
            .and_then(|a| a.digest.as_deref())
            .filter(|d| d.starts_with("sha256:"))
        {
            return Sha256Digest::parse(digest).map(Some).map_err(|e| {
                SourceError::MalformedResponse {
                    url: redact_url(&asset.location),
                    reason: format!("the `digest` field: {e}"),
                }
            });
        }
        if checksum_list.is_none() {
            *checksum_list = match assets.iter().find(|a| checksums::is_checksum_list(&a.name)) {
                Some(list) => Some(Some(self.fetch_text(list, MAX_CHECKSUM_LIST_BYTES)?)),
                None => Some(None),
            };
        }
        if let Some(Some(list)) = checksum_list.as_ref() {
            let found = checksums::find_in_list(list, &asset.name).map_err(|reason| {
                SourceError::MalformedResponse {
                    url: redact_url(&asset.location),
                    reason: format!("checksum list of release: {reason}"),
                }
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        if let Some(sidecar) = by_name(&format!("{}.sha256", asset.name)) {
            let text = self.fetch_text(sidecar, MAX_SIDECAR_BYTES)?;
            return checksums::parse_sidecar(&text, &asset.name)
                .map(Some)
                .map_err(|reason| SourceError::MalformedResponse {
                    url: redact_url(&sidecar.url),
                    reason: format!("checksum sidecar {}: {reason}", sidecar.name),
                });
        }
        tracing::debug!(asset = %asset.name, "no SHA-256 published for this asset");
        Ok(None)
    }

    /// The `<asset>.index.json` sidecar written by `updater release build`
    /// (the file index for delta updates), when published with a SHA-256.
    fn index(
        &self,
        assets: &[&GitHubAsset],
        asset: &Asset,
        checksum_list: &mut Option<Option<String>>,
    ) -> Result<Option<AssetIndex>, SourceError> {
        let name = format!("{}.index.json", asset.name);
        let Some(sidecar) = assets.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        let as_asset = Asset::new(&sidecar.name, sidecar.size, &sidecar.url);
        match self.expected_sha256(assets, &as_asset, checksum_list)? {
            Some(sha256) => Ok(Some(AssetIndex {
                location: sidecar.url.clone(),
                size: sidecar.size,
                sha256,
            })),
            None => {
                tracing::warn!(asset = %asset.name, "the release has a file index without a published SHA-256; delta updates are not used");
                Ok(None)
            }
        }
    }

    fn signature(
        &self,
        assets: &[&GitHubAsset],
        asset: &Asset,
    ) -> Result<Option<AssetSignature>, SourceError> {
        let name = format!("{}.minisig", asset.name);
        match assets.iter().find(|a| a.name == name) {
            Some(sidecar) => Ok(Some(AssetSignature::new(
                self.fetch_text(sidecar, MAX_SIDECAR_BYTES)?,
            ))),
            None => {
                tracing::warn!(asset = %asset.name, "a public key is configured but the release has no .minisig for this asset");
                Ok(None)
            }
        }
    }

    /// Downloads a small text asset (checksums, signature).
    fn fetch_text(&self, asset: &GitHubAsset, limit: u64) -> Result<String, SourceError> {
        let url = parse_url(&asset.url)?;
        if asset.size > limit {
            return Err(SourceError::MalformedResponse {
                url: redact_url(url.as_str()),
                reason: format!(
                    "{} has {} bytes, more than the {limit} allowed",
                    asset.name, asset.size
                ),
            });
        }
        let mut bytes = Vec::new();
        download_to(
            &self.http,
            &url,
            &asset.name,
            asset.size,
            OCTET_STREAM,
            &mut bytes,
        )?;
        String::from_utf8(bytes).map_err(|_| SourceError::MalformedResponse {
            url: redact_url(url.as_str()),
            reason: format!("{} is not UTF-8 text", asset.name),
        })
    }

    /// `Ok(None)` on 404, the release otherwise.
    fn get_release(&self, tail: &[&str]) -> Result<Option<GitHubRelease>, SourceError> {
        let url = self.endpoint(tail)?;
        match self
            .http
            .get_parsed(&url, "application/vnd.github+json", |page| {
                self.parse_json(&url, &page.body)
            }) {
            Ok(release) => Ok(Some(release)),
            Err(SourceError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn newest_from_list(&self, channel: Channel) -> updater_core::Result<Option<Release>> {
        let newest = self
            .list_all()?
            .into_iter()
            .filter_map(|r| self.classify(&r).map(|(v, c)| (r, v, c)))
            .filter(|(_, v, c)| offered_on(channel, v, *c))
            .max_by(|a, b| a.1.cmp(&b.1));
        match newest {
            Some((release, version, channel)) => {
                self.to_release(&release, version, channel).map(Some)
            }
            None => Ok(None),
        }
    }
}

/// A release document: one release or a page of them.
trait ReleaseDocument {
    fn asset_names(&self) -> impl Iterator<Item = &str>;
}

impl ReleaseDocument for GitHubRelease {
    fn asset_names(&self) -> impl Iterator<Item = &str> {
        self.assets.iter().map(|a| a.name.as_str())
    }
}

impl ReleaseDocument for Vec<GitHubRelease> {
    fn asset_names(&self) -> impl Iterator<Item = &str> {
        self.iter().flat_map(|r| r.asset_names())
    }
}

/// Asset names come from the server: they must be plain file names.
fn check_asset_name(name: &str, source: &str) -> Result<(), SourceError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(SourceError::MalformedResponse {
            url: source.to_string(),
            reason: format!("asset name {name:?} is not a plain file name"),
        });
    }
    Ok(())
}

impl ReleaseSource for GitHubSource {
    fn describe(&self) -> String {
        if self.api_base.as_str().trim_end_matches('/') == GITHUB_API {
            format!("GitHub {}/{}", self.owner, self.repo)
        } else {
            format!(
                "GitHub {}/{} at {}",
                self.owner,
                self.repo,
                redact_url(self.api_base.as_str())
            )
        }
    }

    fn releases(&self, channel: Channel) -> updater_core::Result<Vec<Release>> {
        let mut out = Vec::new();
        for release in self.list_all()? {
            if let Some((version, release_channel)) = self.classify(&release)
                && offered_on(channel, &version, release_channel)
            {
                out.push(self.to_release(&release, version, release_channel)?);
            }
        }
        Ok(out)
    }

    fn latest(&self, channel: Channel) -> updater_core::Result<Option<Release>> {
        if channel == Channel::Stable
            && let Some(release) = self.get_release(&["latest"])?
            && let Some((version, release_channel)) = self.classify(&release)
            && offered_on(channel, &version, release_channel)
        {
            return self
                .to_release(&release, version, release_channel)
                .map(Some);
        }
        // No "latest" (404, which also means a missing repository: the list
        // then says which), or it is not a stable semver tag: use the list.
        self.newest_from_list(channel)
    }

    fn release(&self, version: &Version) -> updater_core::Result<Release> {
        for tag in [format!("v{version}"), version.to_string()] {
            if let Some(release) = self.get_release(&["tags", &tag])?
                && let Some((found, channel)) = self.classify(&release)
                && &found == version
            {
                return self.to_release(&release, found, channel);
            }
        }
        Err(updater_core::Error::not_found(format!(
            "release {version} in {}",
            self.describe()
        )))
    }

    fn download(&self, asset: &Asset, sink: &mut dyn Write) -> updater_core::Result<u64> {
        let url = parse_url(&asset.location)?;
        Ok(download_to(
            &self.http,
            &url,
            &asset.name,
            asset.size,
            OCTET_STREAM,
            sink,
        )?)
    }

    fn download_ranges(
        &self,
        asset: &Asset,
        ranges: &[ByteRange],
        sink: &mut dyn Write,
    ) -> updater_core::Result<u64> {
        check_ranges(&asset.name, asset.size, ranges)?;
        let url = parse_url(&asset.location)?;
        Ok(download_ranges_to(
            &self.http,
            &url,
            &asset.name,
            asset.size,
            OCTET_STREAM,
            ranges,
            sink,
        )?)
    }
}

impl GitHubSourceBuilder {
    /// The API base: `https://api.github.com` (default) or a GitHub
    /// Enterprise Server's `https://HOST/api/v3`.
    pub fn with_api_base(mut self, url: impl Into<String>) -> Self {
        self.api_base = url.into();
        self
    }

    /// A token, sent as `Authorization: Bearer` to the API origin only
    /// (never to a redirect target on another origin, such as GitHub's
    /// storage host). Anything convertible into a
    /// [`Secret`](updater_core::secret::Secret) is accepted; the token never
    /// appears in `Debug` output, errors or logs.
    ///
    /// ```
    /// use updater_core::secret::Secret;
    /// use updater_source_github::GitHubSource;
    /// let source = GitHubSource::builder("acme", "app")
    ///     .with_token(Secret::new("ghp_example"))
    ///     .build()?;
    /// assert!(!format!("{source:?}").contains("ghp_example"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_token(mut self, token: impl Into<Secret>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Reads the token from `GITHUB_TOKEN` when that variable is set.
    pub fn with_token_from_env(mut self) -> Self {
        if let Some(token) = Secret::from_env("GITHUB_TOKEN") {
            self.token = Some(token);
        }
        self
    }

    /// Fetch `<asset>.minisig` signatures; the key itself is kept for the
    /// caller ([`GitHubSource::minisign_public_key`]) and checked by core.
    pub fn with_minisign_public_key(mut self, key: impl Into<String>) -> Self {
        self.minisign_public_key = Some(key.into());
        self
    }

    /// Releases per list page, 1 to 100 (default 100).
    pub fn with_per_page(mut self, per_page: u32) -> Self {
        self.per_page = per_page;
        self
    }

    /// Timeouts, retries, insecure hosts, ETag cache file.
    pub fn with_http(mut self, settings: HttpSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Validates the configuration and creates the HTTP client.
    pub fn build(self) -> Result<GitHubSource, SourceError> {
        for (setting, value) in [("owner", &self.owner), ("repo", &self.repo)] {
            let valid = !value.is_empty()
                && value != "."
                && value != ".."
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(SourceError::InvalidSetting {
                    setting,
                    reason: format!("{value:?} is not a GitHub {setting} name"),
                });
            }
        }
        if !(1..=100).contains(&self.per_page) {
            return Err(SourceError::InvalidSetting {
                setting: "per_page",
                reason: format!("{} is not between 1 and 100", self.per_page),
            });
        }
        let api_base = parse_url(&self.api_base)?;
        crate::http::check_url(&api_base, &self.settings.insecure_hosts)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(GITHUB_API_VERSION),
        );
        let http = HttpClient::new(
            self.settings,
            self.token.map(|token| (&api_base, token)),
            headers,
        )?;
        Ok(GitHubSource {
            http,
            api_base,
            owner: self.owner,
            repo: self.repo,
            minisign_public_key: self.minisign_public_key,
            per_page: self.per_page,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_refuses_bad_names_and_insecure_bases() {
        assert!(GitHubSource::builder("acme", "../x").build().is_err());
        assert!(GitHubSource::builder("", "app").build().is_err());
        let error = GitHubSource::builder("acme", "app")
            .with_api_base("http://ghe.example.com/api/v3")
            .build()
            .unwrap_err();
        assert!(matches!(error, SourceError::InsecureUrl { .. }), "{error}");
        assert!(
            GitHubSource::builder("acme", "app")
                .with_per_page(0)
                .build()
                .is_err()
        );
    }

    #[test]
    fn endpoints_keep_the_enterprise_prefix_and_escape_tags() {
        let source = GitHubSource::builder("acme", "app")
            .with_api_base("https://ghe.example.com/api/v3/")
            .build()
            .unwrap();
        assert_eq!(
            source
                .endpoint(&["tags", "v1.0.0+build/x"])
                .unwrap()
                .as_str(),
            "https://ghe.example.com/api/v3/repos/acme/app/releases/tags/v1.0.0+build%2Fx"
        );
        assert_eq!(
            source.describe(),
            "GitHub acme/app at https://ghe.example.com/api/v3/"
        );
    }

    #[test]
    fn debug_output_does_not_contain_the_token() {
        let source = GitHubSource::builder("acme", "app")
            .with_token(Secret::new("ghp_topsecret"))
            .build()
            .unwrap();
        let debug = format!("{source:?}");
        assert!(!debug.contains("topsecret"), "{debug}");
        assert!(debug.contains("api.github.com"), "{debug}");
    }
}
