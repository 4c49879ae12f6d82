//! Where releases come from: the [`ReleaseSource`] trait and the
//! [`LocalDirectorySource`] for offline use and tests.
//!
//! HTTP sources (GitHub releases, a custom JSON update server) live in
//! `updater-source-github`; they share the [`crate::manifest`] format with
//! the local directory source.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::ReleaseManifest;
use crate::release::{ByteRange, Release};
use crate::version::{Channel, Version};

/// Lists the releases of an application and streams their assets.
///
/// # Contract
///
/// - [`releases`](Self::releases) returns every release the source knows that
///   `channel` accepts (it may return more; callers filter with
///   [`Channel::accepts`]). Drafts and unpublished releases are never returned.
/// - A source that cannot be reached, or that is rate limited, returns
///   [`Error::Unavailable`] — never an empty list, which means "no release".
/// - [`download`](Self::download) writes exactly the asset's bytes, in order,
///   into `sink`, and returns how many it wrote. When it retries internally
///   after a broken connection it continues where it stopped (e.g. with an
///   HTTP `Range`) and never writes a byte twice. It stops with
///   [`Error::Integrity`] as soon as the server sends more bytes than
///   [`Asset::size`](crate::release::Asset::size). Callers verify size and
///   SHA-256 themselves; a source need not.
/// - [`download_ranges`](Self::download_ranges) writes the bytes of each
///   range, in the order given, each exactly once, one after another into
///   `sink`, and returns how many it wrote (the sum of the lengths). The
///   caller passes ranges that are not empty, sorted, not overlapping and
///   inside [`Asset::size`](crate::release::Asset::size); an implementation
///   refuses others with [`Error::InvalidInput`] before writing anything. A
///   source or server that cannot serve ranges (an HTTP server answering
///   `200` with the whole body) fails with [`Error::Unsupported`]; one that
///   answers with other bytes than asked (a wrong `Content-Range`, a file
///   of another size) fails with [`Error::Integrity`]. After an error the
///   bytes written are meaningless: callers verify what they use (the
///   delta update checks each file's SHA-256) and fall back to
///   [`download`](Self::download).
/// - Implementations are `Send + Sync` and called from one thread at a time per update.
/// - Blocking: async applications call sources from `spawn_blocking`.
///
/// # Implementing
///
/// Required: [`describe`](Self::describe), [`releases`](Self::releases) and
/// [`download`](Self::download). [`latest`](Self::latest) and
/// [`release`](Self::release) have defaults built on `releases`; override
/// them when the backend has a cheaper query. [`download_ranges`](Self::download_ranges)
/// defaults to [`Error::Unsupported`] (updates then download whole
/// packages); implement it when the backend can read parts of a file. Run
/// `updater_core::conformance::source::run` (feature `conformance`) in a test.
///
/// ```
/// use std::io::Write;
/// use updater_core::{Result, release::{Asset, Release}, source::ReleaseSource, version::{Channel, Version}};
///
/// /// A source that always offers one release served from memory.
/// struct Fixed(Release, Vec<u8>);
///
/// impl ReleaseSource for Fixed {
///     fn describe(&self) -> String { "fixed".into() }
///     fn releases(&self, _channel: Channel) -> Result<Vec<Release>> { Ok(vec![self.0.clone()]) }
///     fn download(&self, _asset: &Asset, sink: &mut dyn Write) -> Result<u64> {
///         sink.write_all(&self.1).map_err(|e| updater_core::Error::other("write", e))?;
///         Ok(self.1.len() as u64)
///     }
/// }
///
/// let source = Fixed(Release::new(Version::new(1, 0, 0)), b"bytes".to_vec());
/// assert_eq!(source.latest(Channel::Stable)?.map(|r| r.version), Some(Version::new(1, 0, 0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ReleaseSource: Send + Sync {
    /// A short description for logs and errors, without credentials
    /// (e.g. `GitHub acme/app` or `directory /srv/releases`).
    fn describe(&self) -> String;

    /// The releases `channel` accepts (possibly more; callers filter).
    fn releases(&self, channel: Channel) -> Result<Vec<Release>>;

    /// Streams the bytes of `asset` into `sink`; returns the byte count.
    fn download(&self, asset: &crate::release::Asset, sink: &mut dyn Write) -> Result<u64>;

    /// The newest release `channel` accepts, or `None` when there is none.
    fn latest(&self, channel: Channel) -> Result<Option<Release>> {
        Ok(self
            .releases(channel)?
            .into_iter()
            .filter(|r| channel.accepts(&r.version))
            .max_by(|a, b| a.version.cmp(&b.version)))
    }

    /// The release of exactly `version`, or [`Error::NotFound`].
    fn release(&self, version: &Version) -> Result<Release> {
        self.releases(Channel::Alpha)?
            .into_iter()
            .find(|r| &r.version == version)
            .ok_or_else(|| Error::not_found(format!("release {version} in {}", self.describe())))
    }

    /// Streams the bytes of `ranges` of `asset`, in order, into `sink`;
    /// returns the byte count (see the contract above). The default says
    /// [`Error::Unsupported`], so the pipeline downloads whole packages.
    fn download_ranges(
        &self,
        asset: &crate::release::Asset,
        ranges: &[ByteRange],
        sink: &mut dyn Write,
    ) -> Result<u64> {
        let _ = (ranges, sink);
        Err(Error::unsupported(
            format!("byte ranges of {} from {}", asset.name, self.describe()),
            "this source does not implement ranged downloads",
        ))
    }
}

/// Checks that `ranges` are not empty, sorted, disjoint and inside an
/// asset of `size` bytes, as [`ReleaseSource::download_ranges`] requires;
/// returns their total length. For implementations.
///
/// ```
/// use updater_core::release::ByteRange;
/// use updater_core::source::check_ranges;
/// assert_eq!(check_ranges("app.tar.gz", 100, &[ByteRange::new(0, 10), ByteRange::new(20, 100)])?, 90);
/// assert!(check_ranges("app.tar.gz", 100, &[ByteRange::new(20, 30), ByteRange::new(0, 10)]).is_err());
/// assert!(check_ranges("app.tar.gz", 100, &[ByteRange::new(90, 101)]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_ranges(asset: &str, size: u64, ranges: &[ByteRange]) -> Result<u64> {
    let mut total = 0u64;
    let mut previous_end = 0u64;
    for (index, range) in ranges.iter().enumerate() {
        let bad = |reason: &str| {
            Error::invalid(
                format!("byte range {}..{} of {asset}", range.start, range.end),
                reason.to_string(),
            )
        };
        if range.is_empty() {
            return Err(bad("empty range"));
        }
        if index > 0 && range.start < previous_end {
            return Err(bad("ranges must be sorted and must not overlap"));
        }
        if range.end > size {
            return Err(bad(&format!("past the end of the asset ({size} bytes)")));
        }
        previous_end = range.end;
        total += range.len();
    }
    Ok(total)
}

crate::forward_trait!(ReleaseSource:
    fn describe(&self) -> String;
    fn releases(&self, channel: Channel) -> Result<Vec<Release>>;
    fn download(&self, asset: &crate::release::Asset, sink: &mut dyn Write) -> Result<u64>;
    fn latest(&self, channel: Channel) -> Result<Option<Release>>;
    fn release(&self, version: &Version) -> Result<Release>;
    fn download_ranges(&self, asset: &crate::release::Asset, ranges: &[ByteRange], sink: &mut dyn Write) -> Result<u64>;
);

/// Serves releases from a local directory holding a `manifest.json` (the
/// [`crate::manifest`] format) and the asset files. Asset URLs in the
/// manifest are file names relative to the directory.
///
/// Useful for air-gapped servers (copy the directory over), for tests, and
/// for publishing: [`LocalDirectorySource::publish`] adds a release.
///
/// ```
/// use updater_core::source::{LocalDirectorySource, ReleaseSource};
/// use updater_core::version::{Channel, Version};
///
/// let dir = tempfile::tempdir()?;
/// let archive = dir.path().join("build.tar.gz");
/// std::fs::write(&archive, b"not really a tarball")?;
/// let source = LocalDirectorySource::new(dir.path().join("releases"));
/// source.publish(&Version::new(1, 1, 0), &archive, "Fixes the frobnicator", None)?;
///
/// let latest = source.latest(Channel::Stable)?.expect("published");
/// assert_eq!(latest.version, Version::new(1, 1, 0));
/// assert_eq!(latest.assets[0].size, 20);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LocalDirectorySource {
    directory: PathBuf,
}

impl LocalDirectorySource {
    /// The manifest file name inside the directory.
    pub const MANIFEST: &'static str = "manifest.json";

    /// A source reading `directory`.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        LocalDirectorySource {
            directory: directory.into(),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn manifest_path(&self) -> PathBuf {
        self.directory.join(Self::MANIFEST)
    }

    fn read_manifest(&self) -> Result<ReleaseManifest> {
        let path = self.manifest_path();
        match std::fs::read(&path) {
            Ok(bytes) => ReleaseManifest::from_json(&bytes, &path.display().to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ReleaseManifest::default()),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    /// Resolves an asset location to a file inside the directory, refusing
    /// anything that is not a plain relative file name path.
    fn asset_path(&self, location: &str) -> Result<PathBuf> {
        let relative = location.strip_prefix("./").unwrap_or(location);
        let path = Path::new(relative);
        let plain =
            !relative.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(Error::invalid(
                format!(
                    "asset location {location:?} in {}",
                    self.manifest_path().display()
                ),
                "must be a relative path inside the release directory",
            ));
        }
        Ok(self.directory.join(path))
    }

    /// Copies `archive` into the directory as `<stem>-<version>.tar.gz` and
    /// adds (or replaces) the release in the manifest, with its size and SHA-256.
    /// `signature` is the `.minisig` text over the release metadata, if signing.
    pub fn publish(
        &self,
        version: &Version,
        archive: &Path,
        changelog: &str,
        signature: Option<crate::release::AssetSignature>,
    ) -> Result<Release> {
        crate::durable::create_dir_all(&self.directory)?;
        let name = format!("app-{version}.tar.gz");
        let target = self.directory.join(&name);
        let (digest, size) = crate::package::sha256_file(archive)?;
        std::fs::copy(archive, &target).map_err(|e| Error::io("copy", &target, e))?;
        let mut asset = crate::release::Asset::new(&name, size, &name).with_sha256(digest);
        asset.signature = signature;
        let mut release = Release::new(version.clone())
            .with_changelog(changelog)
            .with_asset(asset);
        release.published_at = Some(chrono::Utc::now());
        let mut manifest = self.read_manifest()?;
        manifest.upsert(release.clone());
        crate::durable::write_atomic(&self.manifest_path(), &manifest.to_json()?)?;
        Ok(release)
    }
}

impl LocalDirectorySource {
    /// Publishes a release built by [`build_release`](crate::package::build_release)
    /// (`updater release build`): copies its package, file index and
    /// signature into the directory and adds (or replaces) the release in
    /// the manifest, so updates from this directory can be deltas.
    ///
    /// ```
    /// use updater_core::package::{BuildOptions, build_release};
    /// use updater_core::source::{LocalDirectorySource, ReleaseSource};
    /// use updater_core::version::{Channel, Version};
    ///
    /// let work = tempfile::tempdir()?;
    /// std::fs::create_dir_all(work.path().join("build"))?;
    /// std::fs::write(work.path().join("build/VERSION"), "1.1.0")?;
    /// let built = build_release(&work.path().join("build"), &work.path().join("dist"), &BuildOptions::new(Version::new(1, 1, 0)))?;
    /// let source = LocalDirectorySource::new(work.path().join("releases"));
    /// source.publish_built(&built)?;
    /// let latest = source.latest(Channel::Stable)?.ok_or("published")?;
    /// assert!(latest.assets[0].index.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn publish_built(&self, built: &crate::package::BuiltRelease) -> Result<Release> {
        crate::durable::create_dir_all(&self.directory)?;
        let mut files = vec![built.archive.clone(), built.index_path.clone()];
        files.extend(built.signature.clone());
        for file in files {
            let name = file.file_name().ok_or_else(|| {
                Error::invalid(format!("built file {}", file.display()), "no file name")
            })?;
            let target = self.directory.join(name);
            std::fs::copy(&file, &target).map_err(|e| Error::io("copy", &target, e))?;
        }
        let mut manifest = self.read_manifest()?;
        manifest.upsert(built.release.clone());
        crate::durable::write_atomic(&self.manifest_path(), &manifest.to_json()?)?;
        Ok(built.release.clone())
    }
}

impl ReleaseSource for LocalDirectorySource {
    fn describe(&self) -> String {
        format!("directory {}", self.directory.display())
    }

    fn releases(&self, channel: Channel) -> Result<Vec<Release>> {
        Ok(self
            .read_manifest()?
            .into_releases()
            .into_iter()
            .filter(|r| channel.accepts(&r.version))
            .collect())
    }

    fn download(&self, asset: &crate::release::Asset, sink: &mut dyn Write) -> Result<u64> {
        let path = self.asset_path(&asset.location)?;
        let mut file = io::BufReader::with_capacity(
            256 * 1024,
            File::open(&path).map_err(|e| Error::io("open", &path, e))?,
        );
        let mut limited = io::Read::take(&mut file, asset.size);
        let copied = io::copy(&mut limited, sink).map_err(|e| Error::io("read", &path, e))?;
        // One byte past the declared size means the file grew: refuse, without writing it.
        let mut extra = [0u8; 1];
        let more =
            io::Read::read(&mut file, &mut extra).map_err(|e| Error::io("read", &path, e))?;
        if more > 0 {
            return Err(Error::integrity(
                format!("asset {}", asset.name),
                format!(
                    "{} is larger than the declared {} bytes",
                    path.display(),
                    asset.size
                ),
            ));
        }
        Ok(copied)
    }

    fn download_ranges(
        &self,
        asset: &crate::release::Asset,
        ranges: &[ByteRange],
        sink: &mut dyn Write,
    ) -> Result<u64> {
        check_ranges(&asset.name, asset.size, ranges)?;
        let path = self.asset_path(&asset.location)?;
        let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let length = file
            .metadata()
            .map_err(|e| Error::io("inspect", &path, e))?
            .len();
        if length != asset.size {
            return Err(Error::integrity(
                format!("asset {}", asset.name),
                format!(
                    "{} has {length} bytes, not the declared {}",
                    path.display(),
                    asset.size
                ),
            ));
        }
        let mut reader = io::BufReader::with_capacity(256 * 1024, file);
        let mut written = 0u64;
        for range in ranges {
            io::Seek::seek(&mut reader, io::SeekFrom::Start(range.start))
                .map_err(|e| Error::io("seek in", &path, e))?;
            let copied = io::copy(&mut io::Read::take(&mut reader, range.len()), sink)
                .map_err(|e| Error::io("read", &path, e))?;
            if copied != range.len() {
                return Err(Error::integrity(
                    format!("asset {}", asset.name),
                    format!(
                        "{} ended inside bytes {}..{}",
                        path.display(),
                        range.start,
                        range.end
                    ),
                ));
            }
            written += copied;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_locations_cannot_leave_the_directory() {
        let source = LocalDirectorySource::new("/srv/releases");
        assert!(source.asset_path("app.tar.gz").is_ok());
        assert!(source.asset_path("sub/app.tar.gz").is_ok());
        for bad in ["../etc/passwd", "/etc/passwd", "", "a/../../b"] {
            assert!(source.asset_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_directory_has_no_releases() {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalDirectorySource::new(dir.path());
        assert!(source.latest(Channel::Alpha).unwrap().is_none());
        assert!(matches!(
            source.release(&Version::new(1, 0, 0)),
            Err(Error::NotFound { .. })
        ));
    }
}
