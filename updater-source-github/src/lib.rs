//! # updater-source-github
//!
//! Release sources over HTTP for the updater: [`GitHubSource`] (GitHub
//! releases, also GitHub Enterprise Server) and [`ManifestSource`] (a custom
//! update server: any static host serving a JSON manifest), plus
//! [`HttpHealthCheck`], which asks the freshly installed application whether
//! it is healthy. Both sources implement [`updater_core::source::ReleaseSource`]
//! and pass core's shared conformance suite.
//!
//! ## Why it is shaped this way
//!
//! - **Blocking API.** An update is one long operation of file, process and
//!   database I/O, so `updater-core` is synchronous; so are these sources
//!   (`reqwest`'s blocking client with rustls). Async applications call them
//!   from `tokio::task::spawn_blocking` (see [below](#async-applications)).
//! - **Hostile servers are expected.** Every transfer is bounded in size
//!   (declared size, metadata size limit) and in time (request timeout,
//!   [minimum speed](HttpSettings::with_minimum_speed), and an overall
//!   [transfer deadline](HttpSettings::with_transfer_deadline) that counts
//!   every retry, resume and wait), streamed through one fixed 64 KiB
//!   buffer (memory flat in the asset size), resumed with `Range` without
//!   writing a byte twice, and retried with bounded backoff. Any other
//!   surprise is a clear [`SourceError`] naming the URL — without its query
//!   string, which for pre-signed download URLs holds credentials.
//! - **Credentials stay put.** A token is an [`updater_core::secret::Secret`]:
//!   never logged (its `Debug` and `Display` are `***`), never in an error,
//!   and sent only to the configured origin: redirects are followed by hand,
//!   so GitHub's 302 to its storage host goes out without `Authorization`.
//!   HTTPS only, except plain HTTP to loopback (all of `127.0.0.0/8`,
//!   `[::1]`, `localhost`) and to hosts explicitly allowed with
//!   [`HttpSettings::with_insecure_host`].
//! - **A rate limit is never "no update".** 403/429 answers with GitHub's
//!   rate-limit headers or `Retry-After` become [`updater_core::Error::Unavailable`]
//!   saying when the limit resets. Metadata is fetched with `If-None-Match`
//!   from a per-URL ETag cache (optionally persisted with
//!   [`HttpSettings::with_etag_cache_file`]), and GitHub does not count a
//!   `304 Not Modified` against the limit. Only documents that parsed are
//!   cached, so a broken answer is never served again as "not modified".
//! - **Sources list, the pipeline selects.** A release lists every package
//!   asset; [`updater_core::release::Release::select_asset`] picks the one
//!   to install with the configured pattern (`{version}`, `{target}`, `*`).
//!
//! ## Example: configuring both sources
//!
//! ```
//! use std::time::Duration;
//! use updater_core::source::ReleaseSource;
//! use updater_core::secret::Secret;
//! use updater_source_github::{GitHubSource, HttpSettings, ManifestSource, RetryPolicy};
//!
//! let github = GitHubSource::builder("acme", "app")
//!     .with_token(Secret::new("ghp_example"))      // or .with_token_from_env()
//!     .with_http(HttpSettings::default().with_request_timeout(Duration::from_secs(10)))
//!     .build()?;
//! assert_eq!(github.describe(), "GitHub acme/app");
//!
//! let enterprise = GitHubSource::builder("ops", "billing")
//!     .with_api_base("https://github.example.com/api/v3")
//!     .build()?;
//! assert_eq!(enterprise.describe(), "GitHub ops/billing at https://github.example.com/api/v3");
//!
//! let server = ManifestSource::builder("https://updates.example.com/app/manifest.json")
//!     .with_http(
//!         HttpSettings::default()
//!             .with_transfer_deadline(Duration::from_secs(1800))
//!             .with_minimum_speed(16 * 1024, Duration::from_secs(30))
//!             .with_retry(RetryPolicy::new(5, Duration::from_millis(500), Duration::from_secs(8))),
//!     )
//!     .build()?;
//! assert_eq!(server.describe(), "update server https://updates.example.com/app/manifest.json");
//!
//! // Plain HTTP to anything but loopback is refused unless explicitly allowed.
//! assert!(ManifestSource::builder("http://updates.example.com/manifest.json").build().is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Checking for and downloading an update:
//!
//! ```no_run
//! use updater_core::source::ReleaseSource;
//! use updater_core::version::Channel;
//! use updater_source_github::GitHubSource;
//!
//! let source = GitHubSource::builder("acme", "app").with_token_from_env().build()?;
//! if let Some(release) = source.latest(Channel::Stable)? {
//!     // Sources list every package; the pipeline (or you) picks one, with
//!     // `{target}` standing for this build's target triple.
//!     let asset = release.select_asset(Some("app-{version}-{target}.tar.gz"))?;
//!     let mut file = std::fs::File::create("/var/tmp/app-update.tar.gz")?;
//!     let bytes = source.download(asset, &mut file)?; // exactly asset.size bytes, or an error
//!     println!("{} ({bytes} bytes, sha256 {:?})", release.version, asset.sha256);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Async applications
//!
//! Call the sources from `spawn_blocking`, never directly on an async task.
//! Building and dropping a source is safe anywhere: its `reqwest` blocking
//! client is created and dropped on a plain thread of its own, so the
//! "Cannot drop a runtime in a context where blocking is not allowed" panic
//! that plagues blocking HTTP clients cannot happen (a test proves it).
//!
//! ```no_run
//! use std::sync::Arc;
//! use updater_core::source::ReleaseSource;
//! use updater_core::version::Channel;
//! use updater_source_github::GitHubSource;
//!
//! # async fn check() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let source = Arc::new(GitHubSource::builder("acme", "app").build()?);
//! let latest = tokio::task::spawn_blocking({
//!     let source = Arc::clone(&source);
//!     move || source.latest(Channel::Stable)
//! })
//! .await??;
//! # let _ = latest;
//! # Ok(())
//! # }
//! ```
//!
//! ## The custom update server
//!
//! [`ManifestSource`] reads the manifest format defined by
//! [`updater_core::manifest`] (schema version 1; the field table is there):
//! releases with version, channel, publication date, changelog, and assets
//! with URL, size, SHA-256 and optional minisign signature. Asset URLs may be
//! relative to the manifest URL. Any static host works: upload the assets and
//! the manifest (the same file `updater_core::source::LocalDirectorySource`
//! reads and publishes). This crate ships an example,
//! `examples/manifest.json`:
//!
#![doc = concat!("```json\n", include_str!("../examples/manifest.json"), "```")]
//!
//! ## GitHub behaviours covered (each by a test against a local server
//! returning GitHub-shaped responses)
//!
//! | behaviour | how |
//! |---|---|
//! | stable = latest non-draft, non-prerelease | `GET .../releases/latest`; list fallback on 404 |
//! | beta/alpha, drafts, prereleases | list pages followed through `Link: rel="next"`; drafts and non-semver tags skipped; a GitHub *pre-release* is never stable |
//! | `v1.2.3` tags | `release(v)` tries `tags/v1.2.3` then `tags/1.2.3` |
//! | expected SHA-256 | `digest` field, else `SHA256SUMS`-style asset, else `<asset>.sha256` |
//! | signature | `<asset>.minisig` when a public key is configured |
//! | asset download | API URL + `Accept: application/octet-stream`, 302 followed without `Authorization` |
//! | pre-signed storage URLs | used as given, never shown: errors and logs name them without query string |
//! | ETag | `If-None-Match`; `304` served from the cache; a body that does not parse is not cached |
//! | rate limits | 403/429 with `x-ratelimit-remaining: 0`/`x-ratelimit-reset` or `Retry-After` → `Unavailable` with the reset time |
//! | flaky servers | 5xx and resets retried with backoff; truncated bodies resumed with `Range`; more bytes than declared → `Integrity` |
//! | busy servers | 5xx with `Retry-After` waited for when it fits the deadline and the longest retry wait, else `Unavailable` at once saying when |
//! | slow servers | under the minimum speed over its window → `Unavailable` (`TooSlow`); past the transfer deadline → `Unavailable` (`DeadlineExceeded`) |
//! | release notes, date | `body` → changelog, `published_at` kept |
//!
//! ## Feature flags
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | *(none)* | | TLS is always rustls with the webpki roots; no OpenSSL needed |

#![warn(missing_docs)]

pub mod error;
mod github;
pub mod health;
mod http;
mod manifest_source;

pub use error::SourceError;
pub use github::{GITHUB_API, GITHUB_API_VERSION, GitHubSource, GitHubSourceBuilder};
pub use health::{HttpHealthCheck, HttpHealthCheckBuilder};
pub use http::{
    DEFAULT_MINIMUM_SPEED, DEFAULT_MINIMUM_SPEED_WINDOW, DEFAULT_TRANSFER_DEADLINE, HttpSettings,
    RetryPolicy,
};
pub use manifest_source::{ManifestSource, ManifestSourceBuilder};

use updater_core::version::{Channel, Version};

/// Whether a subscriber of `channel` is offered a release of `version`
/// published on `published_on`: both the release's channel and its version
/// must be at least as stable as the subscription.
pub(crate) fn offered_on(channel: Channel, version: &Version, published_on: Channel) -> bool {
    published_on <= channel && channel.accepts(version)
}
