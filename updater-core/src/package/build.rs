//! Building a release from a directory: the publisher's side of the updater
//! (`updater release build`).
//!
//! [`build_release`] turns a build directory into everything a release
//! needs, in one output directory:
//!
//! | file | what |
//! |---|---|
//! | `app-<version>.tar.gz` | the package: a standard `.tar.gz` (`tar xzf` reads it) whose every entry is its own gzip member, sorted by path, owner 0:0 without names, one modification time; the same tree gives the same bytes |
//! | `app-<version>.tar.gz.index.json` | the file index ([`crate::package::index`]): what delta updates fetch by range |
//! | `SHA256SUMS` | the SHA-256 of both, as `sha256sum` writes them (GitHub sources read it) |
//! | `app-<version>.tar.gz.minisig` | with a key ([`sign_release`], feature `signing`): the minisign signature over the release metadata, binding the index's SHA-256 |
//! | `release.json` | the release's entry for a custom server's `manifest.json` ([`crate::manifest`]); [`merge_into_manifest`] adds it to one |
//!
//! The tree is checked first, with the installer's own rules (the same code
//! and the same [`Error::PackageRejected`] errors as extraction, naming the
//! directory as the package): devices, FIFOs and sockets, setuid/setgid
//! modes, symlinks leading out of the tree, names that collide by case or
//! Unicode normalisation, reserved names (`.updater`), non-UTF-8 names. A
//! refused tree writes nothing.
//!
//! Entries are compressed on all cores: deflate level 1 for compressible
//! files, stored blocks for incompressible ones (order-0 entropy of the first
//! 4 KiB above 7.2 bits per byte), as the files backup does.
//!
//! ```
//! use updater_core::package::build::{BuildOptions, build_release};
//! use updater_core::package::{ExtractOptions, extract_tar_gz};
//! use updater_core::version::Version;
//!
//! let work = tempfile::tempdir()?;
//! let tree = work.path().join("build");
//! std::fs::create_dir_all(tree.join("public"))?;
//! std::fs::write(tree.join("public/index.html"), "<h1>1.2.0</h1>")?;
//! let out = work.path().join("dist");
//! let built = build_release(&tree, &out, &BuildOptions::new(Version::new(1, 2, 0)).with_mtime(1_767_225_600))?;
//! assert_eq!(built.archive, out.join("app-1.2.0.tar.gz"));
//! assert_eq!(built.index.entries.len(), 2);
//! let asset = &built.release.assets[0];
//! assert!(asset.index.is_some() && asset.sha256.is_some());
//!
//! // Any installer reads it: here, ours.
//! let report = extract_tar_gz(&built.archive, &work.path().join("staging"), &ExtractOptions::default())?;
//! assert_eq!(report.list.get("public/index.html").map(|e| e.size), Some(14));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::Compression;
use sha2::{Digest, Sha256};

use super::extract::ExtractOptions;
use super::index::{
    INDEX_FORMAT, INDEX_FORMAT_VERSION, IndexEntry, IndexedArchive, MemberRange, PackageIndex,
    RuleEntry, check_rules,
};
use super::tar_header::{TarHeader, TarKind, header_blocks, padding};
use crate::error::{Error, Rejection, Result};
use crate::manifest::{ManifestAsset, ManifestIndex, ManifestRelease, ReleaseManifest};
use crate::release::{Asset, AssetIndex, Release, Sha256Digest};
use crate::tree::{EntryKind, FileList};
use crate::version::{Channel, Version};

/// The name of the manifest entry written beside the package.
pub const RELEASE_ENTRY: &str = "release.json";

/// The name of the checksum list written beside the package.
pub const CHECKSUMS: &str = "SHA256SUMS";

/// Files larger than this are compressed alone, streaming, instead of in
/// a parallel batch held in memory.
const STREAM_ABOVE: u64 = 8 << 20;

/// The most input bytes of one parallel batch (bounds memory).
const BATCH_BYTES: u64 = 32 << 20;

/// The most entries of one parallel batch.
const BATCH_ENTRIES: usize = 4096;

/// How much of a file decides whether it is compressed.
const SAMPLE: usize = 4096;

/// What to build. See [`build_release`].
///
/// ```
/// use updater_core::package::build::BuildOptions;
/// use updater_core::version::{Channel, Version};
/// let options = BuildOptions::new(Version::new(2, 0, 0))
///     .with_channel(Channel::Beta)
///     .with_changelog("Faster reports.")
///     .with_asset_name("shop-2.0.0-linux.tar.gz")
///     .with_mtime(1_767_225_600);
/// assert_eq!(options.asset_name(), "shop-2.0.0-linux.tar.gz");
/// assert_eq!(BuildOptions::new(Version::new(2, 0, 0)).asset_name(), "app-2.0.0.tar.gz");
/// ```
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The release version.
    pub version: Version,
    /// The channel it is published on (default: the version's own).
    pub channel: Option<Channel>,
    /// Release notes.
    pub changelog: String,
    /// The package's file name (default `app-<version>.tar.gz`).
    pub asset_name: Option<String>,
    /// The modification time of every entry, seconds since the epoch.
    /// Default: `SOURCE_DATE_EPOCH` when set, else the newest modification
    /// time in the tree (so the same tree gives the same bytes, and a
    /// changed tree gives new times: caches keyed on modification times,
    /// such as PHP's opcache, notice the change).
    pub mtime: Option<u64>,
    /// The installer's rules the tree must pass (default: extraction's
    /// defaults with the updater's state directory `.updater` reserved).
    pub rules: ExtractOptions,
    /// Compression threads (default: the available cores).
    pub threads: Option<usize>,
}

impl BuildOptions {
    /// Defaults for `version`.
    pub fn new(version: Version) -> Self {
        BuildOptions {
            version,
            channel: None,
            changelog: String::new(),
            asset_name: None,
            mtime: None,
            rules: ExtractOptions::default().with_reserved_name(".updater"),
            threads: None,
        }
    }

    /// Sets the channel (builder style).
    pub fn with_channel(mut self, channel: Channel) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Sets the release notes (builder style).
    pub fn with_changelog(mut self, changelog: impl Into<String>) -> Self {
        self.changelog = changelog.into();
        self
    }

    /// Sets the package's file name (builder style).
    pub fn with_asset_name(mut self, name: impl Into<String>) -> Self {
        self.asset_name = Some(name.into());
        self
    }

    /// Sets the modification time of every entry (builder style).
    pub fn with_mtime(mut self, seconds: u64) -> Self {
        self.mtime = Some(seconds);
        self
    }

    /// The package's file name.
    pub fn asset_name(&self) -> String {
        self.asset_name
            .clone()
            .unwrap_or_else(|| format!("app-{}.tar.gz", self.version))
    }
}

/// What [`build_release`] wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuiltRelease {
    /// The output directory.
    pub out: PathBuf,
    /// The package.
    pub archive: PathBuf,
    /// Its file index.
    pub index_path: PathBuf,
    /// The index itself.
    pub index: PackageIndex,
    /// `SHA256SUMS`.
    pub checksums: PathBuf,
    /// The signature, once signed.
    pub signature: Option<PathBuf>,
    /// `release.json`, the manifest entry.
    pub release_entry: PathBuf,
    /// The release, asset locations relative to the output directory (the file names).
    pub release: Release,
    /// What extracting the package creates (files with their SHA-256).
    pub list: FileList,
}

/// One entry of the tree, as found.
struct Found {
    path: String,
    full: PathBuf,
    kind: EntryKind,
    /// Permission bits as stored (masked like extraction does).
    mode: u32,
    size: u64,
    target: Option<String>,
}

/// One compressed member and what it held.
struct Member {
    bytes: Vec<u8>,
    sha256: Option<Sha256Digest>,
}

/// Builds the release of the tree `dir` into `out` (created if needed; the
/// package, index, `SHA256SUMS` and `release.json` there are replaced).
/// Blocking; uses every core.
///
/// Refuses, before writing anything, a tree the installer would refuse
/// ([`Error::PackageRejected`] with `dir` as the package and the entry's
/// path), and a file that changes size while it is read.
pub fn build_release(dir: &Path, out: &Path, options: &BuildOptions) -> Result<BuiltRelease> {
    let asset_name = options.asset_name();
    if asset_name.is_empty()
        || asset_name.contains(['/', '\\', '\0'])
        || asset_name.starts_with('.')
    {
        return Err(Error::invalid(
            format!("asset name {asset_name:?}"),
            "must be a plain file name",
        ));
    }
    let found = walk(dir)?;
    check_tree(dir, &found, &options.rules)?;
    let mtime = match options.mtime {
        Some(mtime) => mtime,
        None => default_mtime(dir, &found)?,
    };
    create_public_dir(out)?;
    let archive = out.join(&asset_name);
    let partial = out.join(format!(".{asset_name}.partial"));
    let written = write_archive(&found, &partial, mtime, options.threads);
    let (entries, trailer, archive_size, archive_sha256) = match written {
        Ok(written) => written,
        Err(error) => {
            let _ = fs::remove_file(&partial);
            return Err(error);
        }
    };
    fs::rename(&partial, &archive).map_err(|e| Error::io("rename", &partial, e))?;

    let index = PackageIndex {
        format: INDEX_FORMAT.into(),
        format_version: INDEX_FORMAT_VERSION,
        version: options.version.clone(),
        archive: IndexedArchive {
            name: asset_name.clone(),
            size: archive_size,
            sha256: archive_sha256,
        },
        mtime,
        entries,
        trailer,
    };
    let index_name = format!("{asset_name}.index.json");
    let index_path = out.join(&index_name);
    let index_bytes = index.to_json()?;
    write_public(&index_path, &index_bytes)?;
    let index_sha256 = Sha256Digest(Sha256::digest(&index_bytes).into());
    let list = index.validate(
        &index_path.display().to_string(),
        archive_size,
        &options.rules,
    )?;

    let checksums = out.join(CHECKSUMS);
    write_public(
        &checksums,
        format!("{archive_sha256}  {asset_name}\n{index_sha256}  {index_name}\n").as_bytes(),
    )?;
    let asset = Asset::new(&asset_name, archive_size, &asset_name)
        .with_sha256(archive_sha256)
        .with_index(AssetIndex {
            location: index_name,
            size: index_bytes.len() as u64,
            sha256: index_sha256,
        });
    let mut release = Release::new(options.version.clone())
        .with_changelog(options.changelog.clone())
        .with_asset(asset);
    if let Some(channel) = options.channel {
        release.channel = channel;
    }
    release.published_at = Some(chrono::Utc::now());
    let release_entry = out.join(RELEASE_ENTRY);
    let mut built = BuiltRelease {
        out: out.to_path_buf(),
        archive,
        index_path,
        index,
        checksums,
        signature: None,
        release_entry,
        release,
        list,
    };
    write_release_entry(&built)?;
    tracing::info!(archive = %built.archive.display(), size = archive_size, entries = built.index.entries.len(), "release built");
    // The signature of a previous build of the same name would not match.
    let stale = out.join(format!("{asset_name}.minisig"));
    if stale.exists() {
        fs::remove_file(&stale).map_err(|e| Error::io("remove", &stale, e))?;
    }
    built.signature = None;
    Ok(built)
}

/// Signs a built release with `secret_key`: writes `<package>.minisig`
/// (the metadata signature binding version, package name, size, SHA-256,
/// the index's SHA-256 and `expires_at`, see [`crate::package::signature`])
/// and adds it to `release.json`. Feature `signing`.
#[cfg(feature = "signing")]
pub fn sign_release(
    built: &mut BuiltRelease,
    secret_key: &super::signature::minisign::SecretKey,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let version = built.release.version.clone();
    let Some(asset) = built.release.assets.first_mut() else {
        return Err(Error::invalid("built release", "it has no asset"));
    };
    let sha256 = asset
        .sha256
        .ok_or_else(|| Error::invalid("built release", "its package has no SHA-256"))?;
    let index = asset.index.as_ref().map(|index| index.sha256);
    let signature = super::signature::sign_metadata_with_index(
        secret_key,
        &version,
        &asset.name,
        asset.size,
        &sha256,
        index.as_ref(),
        expires_at,
    )?;
    let path = built.out.join(format!("{}.minisig", asset.name));
    write_public(&path, signature.minisig.as_bytes())?;
    asset.signature = Some(signature);
    built.signature = Some(path);
    write_release_entry(built)
}

/// Writes a published file atomically, readable by everyone (0644): it is
/// meant for a web server.
fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::durable::write_atomic(path, bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io("set permissions of", path, e))
}

/// Creates a directory of published files (0755 for new ones, as the umask allows).
fn create_public_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))
}

/// The manifest entry of a release whose asset locations are relative to
/// its directory.
fn manifest_entry(release: &Release) -> ManifestRelease {
    ManifestRelease {
        version: release.version.clone(),
        channel: Some(release.channel),
        published_at: release.published_at,
        changelog: release.changelog.clone(),
        assets: release
            .assets
            .iter()
            .filter_map(|a| {
                Some(ManifestAsset {
                    name: a.name.clone(),
                    url: a.location.clone(),
                    size: a.size,
                    sha256: a.sha256?,
                    signature: a.signature.as_ref().map(|s| s.minisig.clone()),
                    index: a.index.as_ref().map(|index| ManifestIndex {
                        url: index.location.clone(),
                        size: index.size,
                        sha256: index.sha256,
                    }),
                })
            })
            .collect(),
    }
}

fn write_release_entry(built: &BuiltRelease) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(&manifest_entry(&built.release))
        .map_err(|e| Error::other("serialise release entry", e))?;
    write_public(&built.release_entry, &bytes)
}

/// Adds the release built in `out` (its `release.json`) to the manifest at
/// `manifest` (created when missing), keeping the other releases; a release
/// of the same version is replaced. Asset URLs become `base_url` + name
/// when given, else paths relative to the manifest's directory (`out` must
/// then be inside it). Returns the merged manifest.
///
/// ```
/// use updater_core::package::build::{BuildOptions, build_release, merge_into_manifest};
/// use updater_core::version::Version;
///
/// let site = tempfile::tempdir()?;
/// let tree = site.path().join("build");
/// std::fs::create_dir_all(&tree)?;
/// std::fs::write(tree.join("VERSION"), "1.0.0")?;
/// build_release(&tree, &site.path().join("1.0.0"), &BuildOptions::new(Version::new(1, 0, 0)))?;
/// let manifest = merge_into_manifest(&site.path().join("1.0.0"), &site.path().join("manifest.json"), None)?;
/// assert_eq!(manifest.releases[0].assets[0].url, "1.0.0/app-1.0.0.tar.gz");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn merge_into_manifest(
    out: &Path,
    manifest: &Path,
    base_url: Option<&str>,
) -> Result<ReleaseManifest> {
    let entry_path = out.join(RELEASE_ENTRY);
    let bytes = fs::read(&entry_path).map_err(|e| Error::io("read", &entry_path, e))?;
    let mut entry: ManifestRelease = serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid(
            format!("release entry {}", entry_path.display()),
            e.to_string(),
        )
    })?;
    let prefix = match base_url {
        Some(base) => format!("{}/", base.trim_end_matches('/')),
        None => relative_prefix(out, manifest)?,
    };
    for asset in &mut entry.assets {
        asset.url = format!("{prefix}{}", asset.url);
        if let Some(index) = &mut asset.index {
            index.url = format!("{prefix}{}", index.url);
        }
    }
    let mut merged = match fs::read(manifest) {
        Ok(bytes) => ReleaseManifest::from_json(&bytes, &manifest.display().to_string())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => ReleaseManifest::default(),
        Err(e) => return Err(Error::io("read", manifest, e)),
    };
    merged.upsert_entry(entry);
    // Refuse to write a manifest this updater would not read back.
    let json = merged.to_json()?;
    ReleaseManifest::from_json(&json, &manifest.display().to_string())?;
    if let Some(parent) = manifest.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_public_dir(parent)?;
    }
    write_public(manifest, &json)?;
    Ok(merged)
}

/// `out` relative to the manifest's directory, with a trailing `/` (empty
/// when they are the same directory).
fn relative_prefix(out: &Path, manifest: &Path) -> Result<String> {
    let absolute = |path: &Path| -> Result<PathBuf> {
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("find the current directory for", path, e))?
                .join(path)
        };
        Ok(path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect())
    };
    let out = absolute(out)?;
    let manifest = absolute(manifest)?;
    let base = manifest.parent().unwrap_or(Path::new("/"));
    let relative = out.strip_prefix(base).map_err(|_| {
        Error::invalid(
            format!("release directory {}", out.display()),
            format!(
                "it is not inside {}, where the manifest is: give a base URL for the assets",
                base.display()
            ),
        )
    })?;
    let mut prefix = String::new();
    for component in relative.components() {
        let text = component.as_os_str().to_str().ok_or_else(|| {
            Error::invalid(format!("release directory {}", out.display()), "not UTF-8")
        })?;
        if text == ".." {
            return Err(Error::invalid(
                format!("release directory {}", out.display()),
                "it is not inside the manifest's directory: give a base URL for the assets",
            ));
        }
        prefix.push_str(text);
        prefix.push('/');
    }
    Ok(prefix)
}

/// Every entry under `dir`, sorted by path, without following symlinks.
fn walk(dir: &Path) -> Result<Vec<Found>> {
    let meta = fs::metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(
            format!("build directory {}", dir.display()),
            "not a directory",
        ));
    }
    let reject = |entry: String, rejection: Rejection| Error::PackageRejected {
        package: dir.to_path_buf(),
        entry,
        rejection,
    };
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((at, prefix)) = pending.pop() {
        for item in fs::read_dir(&at).map_err(|e| Error::io("list", &at, e))? {
            let item = item.map_err(|e| Error::io("list", &at, e))?;
            let raw = item.file_name();
            let name = raw.to_str().ok_or_else(|| {
                reject(
                    format!("{prefix}{}", String::from_utf8_lossy(raw.as_bytes())),
                    Rejection::NonUtf8Path,
                )
            })?;
            let path = format!("{prefix}{name}");
            let full = item.path();
            let meta = fs::symlink_metadata(&full).map_err(|e| Error::io("inspect", &full, e))?;
            let file_type = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            let (kind, target) = if file_type.is_symlink() {
                let target = fs::read_link(&full).map_err(|e| Error::io("read link", &full, e))?;
                let target = target
                    .to_str()
                    .map(str::to_string)
                    .ok_or_else(|| reject(path.clone(), Rejection::NonUtf8Path))?;
                (EntryKind::Symlink, Some(target))
            } else if file_type.is_dir() {
                pending.push((full.clone(), format!("{path}/")));
                (EntryKind::Dir, None)
            } else if file_type.is_file() {
                (EntryKind::File, None)
            } else if file_type.is_socket() {
                return Err(reject(path, Rejection::SpecialFile { kind: "socket" }));
            } else {
                // FIFOs and devices: the rules name them exactly.
                (
                    EntryKind::File,
                    Some(special_marker(&file_type).to_string()),
                )
            };
            found.push(Found {
                size: if kind == EntryKind::File {
                    meta.len()
                } else {
                    0
                },
                path,
                full,
                kind,
                mode,
                target,
            });
        }
    }
    found.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(found)
}

/// A placeholder target marking a special file for [`check_tree`].
fn special_marker(file_type: &fs::FileType) -> &'static str {
    if file_type.is_fifo() {
        "\0fifo"
    } else if file_type.is_char_device() {
        "\0char"
    } else {
        "\0block"
    }
}

/// The installer's rules over the tree (see [`check_rules`]).
fn check_tree(dir: &Path, found: &[Found], rules: &ExtractOptions) -> Result<()> {
    let specs = found.iter().map(|entry| {
        let (kind, target) = match (entry.kind, entry.target.as_deref()) {
            (EntryKind::File, Some("\0fifo")) => (TarKind::Fifo, None),
            (EntryKind::File, Some("\0char")) => (TarKind::Char, None),
            (EntryKind::File, Some(_)) => (TarKind::Block, None),
            (EntryKind::File, None) => (TarKind::File, None),
            (EntryKind::Dir, _) => (TarKind::Dir, None),
            (EntryKind::Symlink, target) => (TarKind::Symlink, target.map(str::as_bytes)),
        };
        RuleEntry {
            path: entry.path.as_bytes(),
            kind,
            mode: entry.mode,
            target,
        }
    });
    check_rules(specs, dir, rules).map(drop)
}

/// `SOURCE_DATE_EPOCH`, else the newest modification time in the tree.
fn default_mtime(dir: &Path, found: &[Found]) -> Result<u64> {
    if let Ok(text) = std::env::var("SOURCE_DATE_EPOCH") {
        return text.trim().parse().map_err(|_| {
            Error::invalid(
                "environment variable SOURCE_DATE_EPOCH",
                "must be whole seconds since the epoch",
            )
        });
    }
    let mut newest = 0i64;
    for entry in found {
        let meta =
            fs::symlink_metadata(&entry.full).map_err(|e| Error::io("inspect", &entry.full, e))?;
        newest = newest.max(meta.mtime());
    }
    if found.is_empty() {
        let meta = fs::metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
        newest = meta.mtime();
    }
    Ok(u64::try_from(newest).unwrap_or(0))
}

/// The mode written for an entry: what extraction gives.
fn stored_mode(entry: &Found) -> u32 {
    match entry.kind {
        EntryKind::Symlink => 0o777,
        _ => entry.mode & 0o755,
    }
}

/// Writes the archive: one gzip member per entry, in order, compressed in
/// parallel batches; returns the index entries, the trailer, the size and
/// the SHA-256.
fn write_archive(
    found: &[Found],
    path: &Path,
    mtime: u64,
    threads: Option<usize>,
) -> Result<(Vec<IndexEntry>, MemberRange, u64, Sha256Digest)> {
    let file = File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        written: 0,
    };
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    let mut entries = Vec::with_capacity(found.len());
    let mut start = 0;
    while start < found.len() {
        if found[start].size > STREAM_ABOVE {
            let offset = out.written;
            let sha256 = stream_member(&found[start], mtime, &mut out)
                .map_err(|e| Error::io("write", path, e))?;
            entries.push(index_entry(
                &found[start],
                offset,
                out.written - offset,
                sha256?,
            ));
            start += 1;
            continue;
        }
        let mut end = start;
        let mut bytes = 0;
        while end < found.len()
            && end - start < BATCH_ENTRIES
            && found[end].size <= STREAM_ABOVE
            && (end == start || bytes + found[end].size <= BATCH_BYTES)
        {
            bytes += found[end].size;
            end += 1;
        }
        let batch = &found[start..end];
        for (entry, member) in batch.iter().zip(compress_batch(batch, mtime, threads)?) {
            let offset = out.written;
            out.write_all(&member.bytes)
                .map_err(|e| Error::io("write", path, e))?;
            entries.push(index_entry(
                entry,
                offset,
                member.bytes.len() as u64,
                member.sha256,
            ));
        }
        start = end;
    }
    let trailer_offset = out.written;
    let mut gz = gzip_member(Vec::new(), Compression::fast());
    gz.write_all(&[0u8; 1024])
        .map_err(|e| Error::io("write", path, e))?;
    let trailer = gz.finish().map_err(|e| Error::io("write", path, e))?;
    out.write_all(&trailer)
        .map_err(|e| Error::io("write", path, e))?;
    let size = out.written;
    let digest = Sha256Digest(out.hasher.finalize().into());
    out.inner
        .into_inner()
        .map_err(|e| Error::io("write", path, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io("fsync", path, e))?;
    Ok((
        entries,
        MemberRange {
            offset: trailer_offset,
            length: size - trailer_offset,
        },
        size,
        digest,
    ))
}

fn index_entry(
    entry: &Found,
    offset: u64,
    length: u64,
    sha256: Option<Sha256Digest>,
) -> IndexEntry {
    IndexEntry {
        path: entry.path.clone(),
        kind: entry.kind,
        mode: stored_mode(entry),
        size: entry.size,
        sha256,
        target: entry.target.clone(),
        offset,
        length,
    }
}

/// A gzip member writer with a fixed header (no name, mtime 0).
fn gzip_member<W: Write>(inner: W, level: Compression) -> flate2::write::GzEncoder<W> {
    flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(inner, level)
}

/// Compresses a batch of entries on `threads` threads, in order.
fn compress_batch(batch: &[Found], mtime: u64, threads: usize) -> Result<Vec<Member>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Member>>>> =
        batch.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(batch.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = batch.get(i) else { break };
                    let member = member_of(entry, mtime);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(member);
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .zip(batch)
        .map(|(slot, entry)| {
            slot.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(Error::other(
                    format!("compress {}", entry.path),
                    "a compression thread stopped",
                ))
            })
        })
        .collect()
}

/// One entry as a gzip member in memory.
fn member_of(entry: &Found, mtime: u64) -> Result<Member> {
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0) / 2 + 256);
    let sha256 = stream_member(entry, mtime, &mut bytes)
        .map_err(|e| Error::io("read", &entry.full, e))??;
    Ok(Member { bytes, sha256 })
}

/// Writes one entry's member into `out`: header blocks, content (hashed),
/// padding. The outer error is an I/O error; the inner one a file that
/// changed while it was read.
fn stream_member(
    entry: &Found,
    mtime: u64,
    out: &mut impl Write,
) -> io::Result<Result<Option<Sha256Digest>>> {
    let kind = match entry.kind {
        EntryKind::File => TarKind::File,
        EntryKind::Dir => TarKind::Dir,
        EntryKind::Symlink => TarKind::Symlink,
    };
    let header = header_blocks(&TarHeader {
        path: entry.path.as_bytes(),
        kind,
        size: entry.size,
        mode: stored_mode(entry),
        mtime,
        uid: 0,
        gid: 0,
        link_target: entry.target.as_deref().map(str::as_bytes),
    });
    if entry.kind != EntryKind::File {
        let mut gz = gzip_member(out, Compression::fast());
        gz.write_all(&header)?;
        gz.finish()?;
        return Ok(Ok(None));
    }
    let mut file = File::open(&entry.full)?;
    let mut sample = vec![0u8; SAMPLE.min(usize::try_from(entry.size).unwrap_or(SAMPLE))];
    file.read_exact(&mut sample)?;
    let level = if looks_incompressible(&sample) {
        Compression::none()
    } else {
        Compression::new(1)
    };
    let mut hasher = Sha256::new();
    let mut gz = gzip_member(out, level);
    gz.write_all(&header)?;
    hasher.update(&sample);
    gz.write_all(&sample)?;
    let mut copied = sample.len() as u64;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        copied += n as u64;
        if copied > entry.size {
            break;
        }
        hasher.update(&buffer[..n]);
        gz.write_all(&buffer[..n])?;
    }
    if copied != entry.size {
        return Ok(Err(Error::invalid(
            format!("file {}", entry.full.display()),
            format!(
                "changed while the release was built ({} bytes listed)",
                entry.size
            ),
        )));
    }
    gz.write_all(&vec![0u8; padding(entry.size) as usize])?;
    gz.finish()?;
    Ok(Ok(Some(Sha256Digest(hasher.finalize().into()))))
}

/// Whether `sample` looks already compressed or random (order-0 entropy
/// above 7.2 bits per byte): such data is stored, not deflated.
fn looks_incompressible(sample: &[u8]) -> bool {
    if sample.len() < 512 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &byte in sample {
        counts[byte as usize] += 1;
    }
    let total = sample.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum();
    entropy > 7.2
}

/// Hashes and counts what goes through.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_incompressible_and_text_is_not() {
        let text = b"function return public static ".repeat(200);
        assert!(!looks_incompressible(&text));
        let mut state = 1u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert!(looks_incompressible(&random));
    }

    #[test]
    fn release_directories_outside_the_manifests_need_a_base_url() {
        assert_eq!(
            relative_prefix(Path::new("/srv/u/1.2.0"), Path::new("/srv/u/manifest.json")).unwrap(),
            "1.2.0/"
        );
        assert_eq!(
            relative_prefix(Path::new("/srv/u"), Path::new("/srv/u/manifest.json")).unwrap(),
            ""
        );
        assert!(matches!(
            relative_prefix(Path::new("/tmp/dist"), Path::new("/srv/u/manifest.json")),
            Err(Error::InvalidInput { .. })
        ));
    }
}
