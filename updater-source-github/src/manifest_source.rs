//! [`ManifestSource`]: a custom update server — any static host serving a
//! release manifest in [`updater_core::manifest`]'s format and the assets.

use std::io::Write;

use reqwest::header::HeaderMap;
use updater_core::error::redact_url;
use updater_core::manifest::ReleaseManifest;
use updater_core::release::{Asset, ByteRange, Release};
use updater_core::source::{ReleaseSource, check_ranges};
use updater_core::version::Channel;
use url::Url;

use crate::error::SourceError;
use crate::http::{HttpClient, HttpSettings, download_ranges_to, download_to, parse_url};
use crate::offered_on;
use updater_core::secret::Secret;

/// Releases listed in a JSON manifest at an HTTPS URL (see the
/// [crate documentation](crate#the-custom-update-server) for the format).
///
/// The manifest is fetched with the ETag cache; relative asset URLs are
/// resolved against the manifest URL; downloads behave as
/// [`GitHubSource`](crate::GitHubSource)'s (bounded, resumable, retried).
#[derive(Debug)]
pub struct ManifestSource {
    http: HttpClient,
    manifest_url: Url,
}

/// Configures a [`ManifestSource`]; from [`ManifestSource::builder`].
#[derive(Debug, Clone)]
pub struct ManifestSourceBuilder {
    manifest_url: String,
    token: Option<Secret>,
    settings: HttpSettings,
}

impl ManifestSource {
    /// Starts configuring a source reading the manifest at `manifest_url`.
    pub fn builder(manifest_url: impl Into<String>) -> ManifestSourceBuilder {
        ManifestSourceBuilder {
            manifest_url: manifest_url.into(),
            token: None,
            settings: HttpSettings::default(),
        }
    }

    /// The manifest URL.
    pub fn manifest_url(&self) -> &Url {
        &self.manifest_url
    }

    fn read_manifest(&self) -> Result<Vec<Release>, updater_core::Error> {
        self.http
            .get_parsed(&self.manifest_url, "application/json", |page| {
                self.parse_manifest(&page.body)
            })
    }

    /// The releases of a manifest document, asset URLs resolved.
    fn parse_manifest(&self, body: &[u8]) -> Result<Vec<Release>, updater_core::Error> {
        let origin = redact_url(self.manifest_url.as_str());
        let mut releases = ReleaseManifest::from_json(body, &origin)?.into_releases();
        for release in &mut releases {
            for asset in &mut release.assets {
                let resolved = self.manifest_url.join(&asset.location).map_err(|e| {
                    SourceError::MalformedResponse {
                        url: origin.clone(),
                        reason: format!(
                            "release {}: asset URL {:?}: {e}",
                            release.version,
                            redact_url(&asset.location)
                        ),
                    }
                })?;
                asset.location = resolved.to_string();
                if let Some(index) = &mut asset.index {
                    let resolved = self.manifest_url.join(&index.location).map_err(|e| {
                        SourceError::MalformedResponse {
                            url: origin.clone(),
                            reason: format!(
                                "release {}: index URL {:?}: {e}",
                                release.version,
                                redact_url(&index.location)
                            ),
                        }
                    })?;
                    index.location = resolved.to_string();
                }
            }
        }
        Ok(releases)
    }
}

impl ReleaseSource for ManifestSource {
    fn describe(&self) -> String {
        format!("update server {}", redact_url(self.manifest_url.as_str()))
    }

    fn releases(&self, channel: Channel) -> updater_core::Result<Vec<Release>> {
        Ok(self
            .read_manifest()?
            .into_iter()
            .filter(|r| offered_on(channel, &r.version, r.channel))
            .collect())
    }

    fn download(&self, asset: &Asset, sink: &mut dyn Write) -> updater_core::Result<u64> {
        let url = parse_url(&asset.location)?;
        Ok(download_to(
            &self.http,
            &url,
            &asset.name,
            asset.size,
            "*/*",
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
            "*/*",
            ranges,
            sink,
        )?)
    }
}

impl ManifestSourceBuilder {
    /// A bearer token, sent only to the manifest URL's origin (assets on
    /// other hosts are fetched without it).
    ///
    /// ```
    /// use updater_core::secret::Secret;
    /// use updater_source_github::ManifestSource;
    /// let source = ManifestSource::builder("https://updates.example.com/manifest.json")
    ///     .with_token(Secret::from_env("UPDATES_TOKEN").unwrap_or_else(|| Secret::new("s3cr3t")))
    ///     .build()?;
    /// assert!(!format!("{source:?}").contains("s3cr3t"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_token(mut self, token: impl Into<Secret>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Timeouts, retries, insecure hosts, ETag cache file.
    pub fn with_http(mut self, settings: HttpSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Validates the URL (HTTPS rule) and creates the HTTP client.
    pub fn build(self) -> Result<ManifestSource, SourceError> {
        let manifest_url = parse_url(&self.manifest_url)?;
        crate::http::check_url(&manifest_url, &self.settings.insecure_hosts)?;
        let http = HttpClient::new(
            self.settings,
            self.token.map(|token| (&manifest_url, token)),
            HeaderMap::new(),
        )?;
        Ok(ManifestSource { http, manifest_url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_url_must_be_https_or_loopback() {
        assert!(
            ManifestSource::builder("http://updates.example.com/m.json")
                .build()
                .is_err()
        );
        assert!(ManifestSource::builder("not a url").build().is_err());
        let source = ManifestSource::builder("http://127.0.0.1:1/m.json")
            .build()
            .unwrap();
        assert_eq!(source.describe(), "update server http://127.0.0.1:1/m.json");
    }
}
