//! Safe extraction of a `.tar.gz` package into a fresh staging directory,
//! and listing a package without extracting it.
//!
//! Every entry is validated against the rules listed in the
//! [module documentation](crate::package) before anything is written for it,
//! and any violation fails the whole package: the staging directory is
//! removed and [`Error::PackageRejected`] names the entry and the
//! [`Rejection`]. The `tar` crate is used only to parse headers (in raw mode,
//! with GNU long names and pax records applied here, under a size limit);
//! its `unpack` is never called.
//!
//! One engine reads the archive in three kinds of pass that
//! share every rule and every limit: a *pre-scan* (validate and count,
//! nothing hashed or written), a *listing* (validate and hash, nothing
//! written: [`list_tar_gz`]) and an *extraction* (validate, hash while
//! writing: [`extract_tar_gz`], after a pre-scan unless disabled).

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use flate2::bufread::MultiGzDecoder;
use sha2::{Digest, Sha256};
use tar::{Archive, EntryType};
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Rejection, Result};
use crate::release::Sha256Digest;
use crate::tree::{FileEntry, FileList};

/// Buffer size for reading the compressed file and file contents. The
/// decompressed stream is not buffered: the tar parser reads headers from
/// the decoder directly, so nothing of a file is decompressed before its
/// compression ratio starts being measured (see [`Meter`]).
const BUFFER_SIZE: usize = 256 * 1024;

/// The largest GNU long-name or pax extension header we read into memory.
const MAX_EXTENSION_HEADER: u64 = 1024 * 1024;

/// The most symlinks followed while checking where one symlink leads (as Linux).
const MAX_SYMLINK_HOPS: usize = 40;

/// The mode of directories the archive does not list itself.
const IMPLICIT_DIRECTORY_MODE: u32 = 0o755;

/// The mode of the staging directory once extraction succeeded.
const STAGING_MODE: u32 = 0o755;

/// Permission bits kept from the archive: `rwx` for all, minus group/other write.
const MODE_MASK: u32 = 0o777 & !0o022;

/// Trailing bytes after the end-of-archive block accepted without counting
/// against the size limit (tar pads archives to 10 KiB records).
const TRAILING_ALLOWANCE: u64 = 1024 * 1024;

/// The longest path or link target accepted, in bytes (Linux `PATH_MAX`).
const MAX_PATH_BYTES: usize = 4096;

/// Symlink targets up to this length live in the inode on ext4 (no block).
const INLINE_SYMLINK_BYTES: usize = 60;

/// The block size assumed when the file system does not report one.
const DEFAULT_BLOCK_SIZE: u64 = 4096;

/// The label used in errors that are about the archive rather than one entry.
const ARCHIVE_LABEL: &str = "(archive)";

/// Default for [`ExtractOptions::max_entries`].
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

/// Default for [`ExtractOptions::max_total_bytes`]: 8 GiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// Default for [`ExtractOptions::max_compression_ratio`]: 200 to 1.
pub const DEFAULT_MAX_COMPRESSION_RATIO: u32 = 200;

/// Default for [`ExtractOptions::ratio_threshold_bytes`]: 1 MiB.
pub const DEFAULT_RATIO_THRESHOLD_BYTES: u64 = 1024 * 1024;

/// Default for [`ExtractOptions::free_space_margin_percent`]: 2 % of the
/// space this process can fill (used plus available; blocks reserved for
/// root are not counted): on a 2 TB disk, 40 GB stay free.
pub const DEFAULT_FREE_SPACE_MARGIN_PERCENT: u8 = 2;

/// Default for [`ExtractOptions::free_space_margin_min_bytes`]: 256 MiB.
pub const DEFAULT_FREE_SPACE_MARGIN_MIN_BYTES: u64 = 256 * 1024 * 1024;

/// Limits and layout options for [`extract_tar_gz`] and [`list_tar_gz`].
///
/// Every limit holds by default; the defaults are the `DEFAULT_*` constants
/// of this module. All of them are checked while the archive streams, in
/// the pre-scan that runs before anything is written and again while
/// writing (the archive file could change between the two reads).
///
/// | limit | default | refused with |
/// |---|---|---|
/// | [`max_entries`](Self::max_entries) | 100,000 | [`Rejection::TooManyEntries`] |
/// | [`max_total_bytes`](Self::max_total_bytes) (file contents, from headers and while copying) | 8 GiB | [`Rejection::TooLarge`] |
/// | free space of the staging file system minus a margin of [`free_space_margin_percent`](Self::free_space_margin_percent) of its size or [`free_space_margin_min_bytes`](Self::free_space_margin_min_bytes), whichever is larger | 2 %, 256 MiB | [`Rejection::InsufficientSpace`] |
/// | [`max_compression_ratio`](Self::max_compression_ratio), unpacked to compressed, for the whole stream and for each file, once it reaches [`ratio_threshold_bytes`](Self::ratio_threshold_bytes) | 200:1 after 1 MiB | [`Rejection::CompressionRatio`] |
///
/// ```
/// use updater_core::package::ExtractOptions;
///
/// let options = ExtractOptions::default()
///     .with_max_entries(50_000)
///     .with_max_total_bytes(2 << 30)
///     .with_max_compression_ratio(100)
///     .with_free_space_margin(5, 1 << 30)
///     .with_reserved_name(".updater")
///     .with_strip_components(1);
/// assert_eq!(options.max_compression_ratio, 100);
/// assert!(options.prescan, "the pre-scan is on unless disabled");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOptions {
    /// The most entries the archive may hold (default 100,000). With the
    /// pre-scan, a package over the limit is refused before anything is written.
    pub max_entries: u64,
    /// The most bytes of file content it may unpack to, counted from the
    /// headers and again while copying (default 8 GiB). The disk bound below
    /// applies as well: the effective limit is the smaller of the two.
    pub max_total_bytes: u64,
    /// The largest ratio of unpacked to compressed bytes accepted (default
    /// 200, i.e. 200:1), for the whole decompressed stream and for each file.
    /// Source code compresses about 4-10:1; deflate cannot exceed about
    /// 1032:1, so any value above that disables the check.
    pub max_compression_ratio: u32,
    /// The ratio is checked only once this many bytes were unpacked (for the
    /// whole stream) or written (for one file), default 1 MiB: small,
    /// very regular files may compress far better than 200:1 and are harmless.
    pub ratio_threshold_bytes: u64,
    /// The part of the staging file system's size that must stay free after
    /// extraction, in percent (default 2). The margin is the larger of this
    /// and [`free_space_margin_min_bytes`](Self::free_space_margin_min_bytes).
    pub free_space_margin_percent: u8,
    /// The bytes that must stay free on the staging file system after
    /// extraction, at least (default 256 MiB).
    pub free_space_margin_min_bytes: u64,
    /// Read the whole archive once without writing anything before
    /// extracting it (default `true`): a package that breaks any rule or
    /// limit (entry count, size, free space, ratio, paths, links) is then
    /// refused before the staging directory is even created. The pre-scan
    /// decompresses the archive a second time and hashes nothing (about
    /// 1.2 s of CPU per 330 MB of compressed package on the machine it was
    /// measured on).
    pub prescan: bool,
    /// Names that may not appear as the first path component, compared after
    /// Unicode NFC and lower-casing (the pipeline passes its state directory, `.updater`).
    pub reserved_names: Vec<String>,
    /// Leading path components to drop from every entry, as `tar --strip-components`.
    /// Entries with no component left are skipped. `.` components are not
    /// counted (GNU tar counts a leading `./` as one), so `./app-1.2.0/x`
    /// with 1 becomes `x`. Hard link targets are stripped the same way.
    pub strip_components: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_compression_ratio: DEFAULT_MAX_COMPRESSION_RATIO,
            ratio_threshold_bytes: DEFAULT_RATIO_THRESHOLD_BYTES,
            free_space_margin_percent: DEFAULT_FREE_SPACE_MARGIN_PERCENT,
            free_space_margin_min_bytes: DEFAULT_FREE_SPACE_MARGIN_MIN_BYTES,
            prescan: true,
            reserved_names: Vec::new(),
            strip_components: 0,
        }
    }
}

impl ExtractOptions {
    /// Sets the entry limit (builder style).
    pub fn with_max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Sets the unpacked size limit (builder style).
    pub fn with_max_total_bytes(mut self, max_total_bytes: u64) -> Self {
        self.max_total_bytes = max_total_bytes;
        self
    }

    /// Sets the largest accepted compression ratio, `ratio`:1 (builder style).
    pub fn with_max_compression_ratio(mut self, ratio: u32) -> Self {
        self.max_compression_ratio = ratio;
        self
    }

    /// Sets how many unpacked bytes the ratio is checked after (builder style).
    pub fn with_ratio_threshold_bytes(mut self, bytes: u64) -> Self {
        self.ratio_threshold_bytes = bytes;
        self
    }

    /// Sets the free-space margin: `percent` of the staging file system's
    /// size (at most 100) or `min_bytes`, whichever is larger (builder style).
    pub fn with_free_space_margin(mut self, percent: u8, min_bytes: u64) -> Self {
        self.free_space_margin_percent = percent.min(100);
        self.free_space_margin_min_bytes = min_bytes;
        self
    }

    /// Turns the pre-scan before extraction on or off (builder style).
    pub fn with_prescan(mut self, prescan: bool) -> Self {
        self.prescan = prescan;
        self
    }

    /// Adds a reserved first component (builder style).
    pub fn with_reserved_name(mut self, name: impl Into<String>) -> Self {
        self.reserved_names.push(name.into());
        self
    }

    /// Sets how many leading components to strip (builder style).
    pub fn with_strip_components(mut self, count: usize) -> Self {
        self.strip_components = count;
        self
    }
}

/// What [`extract_tar_gz`] created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtractionReport {
    /// Archive entries extracted (files, directories, symlinks and hard links
    /// listed in the archive; skipped entries not included).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created, including parents the archive did not list.
    pub directories: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Every path created, relative to the staging directory (`/`-separated,
    /// after `strip_components`, no `./`): directories (listed or implicit)
    /// with their final mode, files with their mode, size and SHA-256
    /// (computed while writing), symlinks with their target, and hard links
    /// as files with their target's mode and digest. No stamps: the caller
    /// adds them with [`FileList::stamp`] once the tree is final. Equal to
    /// [`FileList::from_dir`] of the staging directory, stamps aside.
    pub list: FileList,
}

/// Extracts the gzip-compressed tar `archive` into `staging`, which must not
/// exist (its parent must) or be an empty directory. Blocking.
///
/// Unless [`ExtractOptions::prescan`] is off, the archive is first read
/// through once without writing anything, with every rule and limit
/// applied, so a refused package never creates `staging`. The free space of
/// the file system `staging` is on is measured once, at the start.
///
/// On success `staging` has mode 0755 and holds exactly the archive's
/// entries: files with their permission bits masked by 022 and their
/// modification time, directories (0755 when not listed), symlinks that stay
/// inside, hard links to earlier files; the report lists them
/// ([`ExtractionReport::list`]). Nothing is fsynced; the caller syncs what
/// it needs.
///
/// On any error `staging` is removed entirely (unless it was refused up
/// front for not being empty); nothing outside it is ever written.
///
/// ```
/// use updater_core::package::{extract_tar_gz, ExtractOptions};
/// use updater_core::tree::EntryKind;
///
/// let dir = tempfile::tempdir()?;
/// let archive = dir.path().join("app.tar.gz");
/// let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
///     std::fs::File::create(&archive)?,
///     flate2::Compression::fast(),
/// ));
/// let mut header = tar::Header::new_gnu();
/// header.set_size(5);
/// header.set_mode(0o644);
/// builder.append_data(&mut header, "bin/hello.txt", &b"hello"[..])?;
/// builder.into_inner()?.finish()?;
///
/// let staging = dir.path().join("staging");
/// let report = extract_tar_gz(&archive, &staging, &ExtractOptions::default())?;
/// assert_eq!((report.files, report.directories, report.bytes), (1, 1, 5));
/// assert_eq!(std::fs::read(staging.join("bin/hello.txt"))?, b"hello");
/// let hello = report.list.get("bin/hello.txt").ok_or("not listed")?;
/// assert_eq!((hello.kind, hello.mode, hello.size), (EntryKind::File, 0o644, 5));
/// assert_eq!(report.list.get("bin").map(|e| e.mode), Some(0o755));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn extract_tar_gz(
    archive: &Path,
    staging: &Path,
    options: &ExtractOptions,
) -> Result<ExtractionReport> {
    let existed = check_staging(staging)?;
    // Whether `staging` is ours to remove on failure: an empty directory we
    // were given, or one we created.
    let mut owned = existed;
    let result = (|| {
        let budget = DiskBudget::measure(staging, existed, options)?;
        if options.prescan {
            let started = Instant::now();
            let scan = Extraction::new(archive, Pass::Prescan, options, budget).run()?;
            tracing::debug!(archive = %archive.display(), entries = scan.entries, bytes = scan.bytes, elapsed = ?started.elapsed(), "package pre-scanned");
        }
        if existed {
            fs::set_permissions(staging, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("set permissions of", staging, e))?;
        } else {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(staging)
                .map_err(|e| Error::io("create staging directory", staging, e))?;
            owned = true;
        }
        Extraction::new(archive, Pass::Extract(staging), options, budget).run()
    })();
    if let Err(error) = &result {
        tracing::warn!(archive = %archive.display(), %error, "package extraction failed; removing the staging directory");
        if owned && let Err(e) = fs::remove_dir_all(staging) {
            tracing::error!(staging = %staging.display(), error = %e, "cannot remove the staging directory of a refused package");
        }
    }
    result
}

/// Lists what [`extract_tar_gz`] would create from `archive`, writing
/// nothing: the same rules and limits apply, with the same errors (the
/// same code runs), except the free-space bound, which needs a staging
/// directory. Files are hashed as they stream. Blocking.
///
/// Used to learn what an already-installed release shipped from its
/// package, e.g. for an application first installed by hand.
///
/// ```
/// use updater_core::package::{list_tar_gz, ExtractOptions};
/// use updater_core::tree::EntryKind;
///
/// let dir = tempfile::tempdir()?;
/// let archive = dir.path().join("app-1.0.0.tar.gz");
/// let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
///     std::fs::File::create(&archive)?,
///     flate2::Compression::fast(),
/// ));
/// let mut header = tar::Header::new_gnu();
/// header.set_size(5);
/// header.set_mode(0o644);
/// builder.append_data(&mut header, "app-1.0.0/index.php", &b"<?php"[..])?;
/// builder.into_inner()?.finish()?;
///
/// let list = list_tar_gz(&archive, &ExtractOptions::default().with_strip_components(1))?;
/// assert_eq!(list.len(), 1);
/// let index = list.get("index.php").ok_or("not listed")?;
/// assert_eq!((index.kind, index.size), (EntryKind::File, 5));
/// assert_eq!(std::fs::read_dir(dir.path())?.count(), 1, "nothing written");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_tar_gz(archive: &Path, options: &ExtractOptions) -> Result<FileList> {
    let report = Extraction::new(archive, Pass::List, options, None).run()?;
    Ok(report.list)
}

/// Refuses a `staging` that exists and is not an empty directory; returns
/// whether it exists. Creates nothing.
fn check_staging(staging: &Path) -> Result<bool> {
    match fs::symlink_metadata(staging) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspect staging directory", staging, e)),
        Ok(meta) if meta.is_dir() => {
            let mut listing = fs::read_dir(staging).map_err(|e| Error::io("list", staging, e))?;
            if listing.next().is_some() {
                return Err(Error::precondition(
                    "empty staging directory",
                    format!(
                        "{} already exists and is not empty; remove it first",
                        staging.display()
                    ),
                ));
            }
            Ok(true)
        }
        Ok(_) => Err(Error::precondition(
            "empty staging directory",
            format!("{} exists and is not a directory", staging.display()),
        )),
    }
}

/// How much of the staging file system an extraction may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DiskBudget {
    /// Free bytes (for unprivileged users) minus the margin.
    available: u64,
    /// The allocation unit files are rounded up to.
    block: u64,
}

impl DiskBudget {
    /// Measures the file system of `staging` (or of its parent, when it does
    /// not exist yet). `None` when the file system reports no size (some
    /// network and FUSE file systems): the bound cannot be computed.
    fn measure(staging: &Path, exists: bool, options: &ExtractOptions) -> Result<Option<Self>> {
        let at = if exists {
            staging
        } else {
            match staging.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            }
        };
        let stats = rustix::fs::statvfs(at)
            .map_err(|e| Error::io("measure free space of", at, e.into()))?;
        if stats.f_blocks == 0 {
            tracing::warn!(path = %at.display(), "the file system reports no size; the free-space bound is not applied");
            return Ok(None);
        }
        let unit = if stats.f_frsize > 0 {
            stats.f_frsize
        } else {
            DEFAULT_BLOCK_SIZE
        };
        // The margin is a share of what this process can fill: blocks in
        // use plus those available to it. Blocks reserved for root (5 % by
        // default on ext4) or held back by a quota are not ours to keep free,
        // and counting them made the margin exceed the free space on a large
        // disk that still had gigabytes to spare.
        let usable = stats
            .f_blocks
            .saturating_sub(stats.f_bfree)
            .saturating_add(stats.f_bavail);
        Ok(Some(Self::new(
            usable.saturating_mul(unit),
            stats.f_bavail.saturating_mul(unit),
            unit,
            options,
        )))
    }

    /// The budget on a file system of `size` bytes with `free` available.
    fn new(size: u64, free: u64, block: u64, options: &ExtractOptions) -> Self {
        let percent = u64::from(options.free_space_margin_percent.min(100));
        let margin = (size / 100)
            .saturating_mul(percent)
            .max(options.free_space_margin_min_bytes);
        DiskBudget {
            available: free.saturating_sub(margin),
            block: block.max(1),
        }
    }

    /// `bytes` rounded up to whole blocks.
    fn blocks_for(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.block).saturating_mul(self.block)
    }
}

/// What the extraction created at one node of the tree.
#[derive(Debug)]
enum Kind {
    /// A directory and the mode it gets at the end; `listed` when the archive
    /// had an entry for it (a second one is a duplicate).
    Directory { mode: u32, listed: bool },
    /// A regular file: its mode as written, size, and SHA-256 (not computed
    /// in a pre-scan).
    File {
        mode: u32,
        size: u64,
        sha256: Option<Sha256Digest>,
    },
    /// A hard link to an earlier file (the node of that file).
    Hardlink { target: NodeId },
    /// A symbolic link and its target as written.
    Symlink { target: String },
}

/// An index into [`Tree::nodes`].
type NodeId = usize;

/// The staging directory itself.
const ROOT: NodeId = 0;

/// One path component the extraction created.
#[derive(Debug)]
struct TreeNode {
    name: String,
    parent: NodeId,
    depth: usize,
    kind: Kind,
    children: HashMap<String, NodeId>,
    /// Children by their folded name (NFC + lower case), to find collisions.
    folded_children: HashMap<String, NodeId>,
}

/// Everything created so far, as a tree of components: every lookup costs
/// the length of the path, however deep or numerous the entries are.
#[derive(Debug)]
struct Tree {
    nodes: Vec<TreeNode>,
}

impl Tree {
    fn new() -> Self {
        Tree {
            nodes: vec![TreeNode {
                name: String::new(),
                parent: ROOT,
                depth: 0,
                kind: Kind::Directory {
                    mode: STAGING_MODE,
                    listed: true,
                },
                children: HashMap::new(),
                folded_children: HashMap::new(),
            }],
        }
    }

    fn node(&self, id: NodeId) -> &TreeNode {
        &self.nodes[id]
    }

    fn child(&self, parent: NodeId, name: &str) -> Option<NodeId> {
        self.nodes[parent].children.get(name).copied()
    }

    fn add(&mut self, parent: NodeId, name: &str, kind: Kind) -> NodeId {
        let id = self.nodes.len();
        let depth = self.nodes[parent].depth + 1;
        self.nodes.push(TreeNode {
            name: name.to_string(),
            parent,
            depth,
            kind,
            children: HashMap::new(),
            folded_children: HashMap::new(),
        });
        let parent_node = &mut self.nodes[parent];
        parent_node.children.insert(name.to_string(), id);
        parent_node.folded_children.entry(fold(name)).or_insert(id);
        id
    }

    /// The node's path relative to staging.
    fn path(&self, id: NodeId) -> String {
        let mut names = Vec::new();
        let mut at = id;
        while at != ROOT {
            names.push(self.nodes[at].name.as_str());
            at = self.nodes[at].parent;
        }
        names.reverse();
        names.join("/")
    }

    /// The node at `components`, if every one exists.
    fn find(&self, components: &[String]) -> Option<NodeId> {
        components
            .iter()
            .try_fold(ROOT, |node, name| self.child(node, name))
    }
}

/// Where an entry goes, once validated.
enum Placement {
    /// A new node below `parent`; `components[first_missing..]` do not exist yet.
    Create {
        parent: NodeId,
        first_missing: usize,
    },
    /// A directory created earlier as a parent, now listed by the archive.
    ListDirectory(NodeId),
}

/// Where a symlink leads: an existing node, plus components below it that do
/// not exist (the kernel would stop there; lexically they still count for `..`).
#[derive(Debug, Clone, Copy)]
struct Location {
    node: NodeId,
    missing_depth: usize,
}

/// The state of resolving one symlink in the final pass.
#[derive(Debug, Clone, Copy)]
enum Resolution {
    InProgress,
    Done(Location),
}

/// What one read of the archive does besides validating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass<'a> {
    /// Validate and count: nothing hashed, nothing written.
    Prescan,
    /// Validate and hash: the file list, nothing written.
    List,
    /// Validate, hash and write into this staging directory.
    Extract(&'a Path),
}

/// Compressed bytes consumed and decompressed bytes produced so far, shared
/// by the readers on both sides of the gzip decoder. The decompressed side
/// refuses to go on once the whole stream's ratio exceeds the limit; the
/// ratio of one file is checked by [`Extraction::copy_data`] from the
/// compressed bytes consumed while it was read: the decompressed side is
/// not buffered, so none of a file's bytes is decompressed ahead, with its
/// header.
#[derive(Debug)]
struct Meter {
    compressed: Cell<u64>,
    decompressed: Cell<u64>,
    /// The ratio that tripped the limit, once it did.
    tripped: Cell<Option<u64>>,
    limit: u32,
    threshold: u64,
}

impl Meter {
    fn new(options: &ExtractOptions) -> Self {
        Meter {
            compressed: Cell::new(0),
            decompressed: Cell::new(0),
            tripped: Cell::new(None),
            limit: options.max_compression_ratio,
            threshold: options.ratio_threshold_bytes,
        }
    }

    /// The ratio of `unpacked` to `packed`, when it is over the limit and
    /// `unpacked` reached the threshold.
    fn excess(&self, unpacked: u64, packed: u64) -> Option<u64> {
        (unpacked >= self.threshold && unpacked > u64::from(self.limit).saturating_mul(packed))
            .then(|| unpacked / packed.max(1))
    }
}

/// The compressed side: counts what the decoder consumes.
#[derive(Debug)]
struct CompressedSide<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for CompressedSide<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter
            .compressed
            .set(self.meter.compressed.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CompressedSide<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.meter
            .compressed
            .set(self.meter.compressed.get() + amount as u64);
        self.inner.consume(amount);
    }
}

/// The decompressed side: counts what the decoder produces and stops the
/// stream when the whole archive's ratio is over the limit.
#[derive(Debug)]
struct DecompressedSide<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for DecompressedSide<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.meter.tripped.get().is_some() {
            return Err(io::Error::other("compression ratio over the limit"));
        }
        let n = self.inner.read(buf)?;
        let produced = self.meter.decompressed.get() + n as u64;
        self.meter.decompressed.set(produced);
        if let Some(ratio) = self.meter.excess(produced, self.meter.compressed.get()) {
            self.meter.tripped.set(Some(ratio));
            return Err(io::Error::other("compression ratio over the limit"));
        }
        Ok(n)
    }
}

/// The decompressed tar stream of an archive file, metered.
type Stream = DecompressedSide<MultiGzDecoder<CompressedSide<BufReader<File>>>>;

/// GNU long-name / pax records waiting for the entry they describe.
#[derive(Debug, Default)]
struct PendingExtensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
    /// How many extension headers were read in a row.
    count: u32,
}

/// The state of one read of the archive (see [`Pass`]).
struct Extraction<'a> {
    archive: &'a Path,
    pass: Pass<'a>,
    options: &'a ExtractOptions,
    reserved: Vec<String>,
    tree: Tree,
    report: ExtractionReport,
    declared_bytes: u64,
    /// Disk space the entries so far need, block-rounded.
    disk_needed: u64,
    budget: Option<DiskBudget>,
    meter: Rc<Meter>,
    buffer: Vec<u8>,
}

impl<'a> Extraction<'a> {
    fn new(
        archive: &'a Path,
        pass: Pass<'a>,
        options: &'a ExtractOptions,
        budget: Option<DiskBudget>,
    ) -> Self {
        Extraction {
            archive,
            pass,
            options,
            reserved: options.reserved_names.iter().map(|n| fold(n)).collect(),
            tree: Tree::new(),
            report: ExtractionReport::default(),
            declared_bytes: 0,
            disk_needed: 0,
            budget,
            meter: Rc::new(Meter::new(options)),
            buffer: vec![0u8; BUFFER_SIZE],
        }
    }

    /// The staging directory, in the pass that writes.
    fn staging(&self) -> Option<&'a Path> {
        match self.pass {
            Pass::Extract(staging) => Some(staging),
            Pass::Prescan | Pass::List => None,
        }
    }

    fn reject(&self, entry: &str, rejection: Rejection) -> Error {
        Error::PackageRejected {
            package: self.archive.to_path_buf(),
            entry: entry.to_string(),
            rejection,
        }
    }

    fn corrupt(&self, entry: &str, reason: impl std::fmt::Display) -> Error {
        self.reject(entry, Rejection::Corrupt(reason.to_string()))
    }

    /// An error reading the decompressed stream: the whole-archive ratio
    /// limit when that is what stopped it, else a corrupt archive.
    fn stream_error(&self, entry: &str, reason: impl std::fmt::Display) -> Error {
        match self.meter.tripped.get() {
            Some(ratio) => self.reject(
                ARCHIVE_LABEL,
                Rejection::CompressionRatio {
                    ratio,
                    limit: self.options.max_compression_ratio,
                },
            ),
            None => self.corrupt(entry, reason),
        }
    }

    /// Opens the archive as a metered, decompressed stream.
    fn open(&self) -> Result<Stream> {
        let file = File::open(self.archive).map_err(|e| Error::io("open", self.archive, e))?;
        let mut compressed = BufReader::with_capacity(BUFFER_SIZE, file);
        let magic = compressed
            .fill_buf()
            .map_err(|e| Error::io("read", self.archive, e))?;
        if !magic.starts_with(&[0x1f, 0x8b]) {
            return Err(self.corrupt(ARCHIVE_LABEL, "not a gzip file"));
        }
        let decoder = MultiGzDecoder::new(CompressedSide {
            inner: compressed,
            meter: Rc::clone(&self.meter),
        });
        Ok(DecompressedSide {
            inner: decoder,
            meter: Rc::clone(&self.meter),
        })
    }

    fn run(mut self) -> Result<ExtractionReport> {
        let mut archive = Archive::new(self.open()?);
        let mut previous = String::from(ARCHIVE_LABEL);
        {
            let entries = archive
                .entries()
                .map_err(|e| self.stream_error(ARCHIVE_LABEL, e))?
                .raw(true);
            let mut pending = PendingExtensions::default();
            let mut seen = 0u64;
            for entry in entries {
                let mut entry =
                    entry.map_err(|e| self.stream_error(&format!("header after {previous}"), e))?;
                if self.read_extension(&mut entry, &mut pending, &previous)? {
                    continue;
                }
                let extensions = std::mem::take(&mut pending);
                let (raw_path, raw_link) = self.effective_names(&entry, &extensions, &previous)?;
                let label = String::from_utf8_lossy(&raw_path).into_owned();
                seen += 1;
                if seen > self.options.max_entries {
                    return Err(self.reject(
                        &label,
                        Rejection::TooManyEntries {
                            limit: self.options.max_entries,
                        },
                    ));
                }
                self.declared_bytes = self.declared_bytes.saturating_add(entry.size());
                if self.declared_bytes > self.options.max_total_bytes {
                    return Err(self.reject(
                        &label,
                        Rejection::TooLarge {
                            limit: self.options.max_total_bytes,
                        },
                    ));
                }
                self.extract_entry(&mut entry, &raw_path, raw_link.as_deref(), &label)?;
                previous = label;
            }
            if pending.count > 0 {
                return Err(self.corrupt(
                    &previous,
                    "extension header at the end of the archive describes no entry",
                ));
            }
        }
        self.drain_to_end(archive.into_inner(), &previous)?;
        self.check_all_symlinks()?;
        if self.pass != Pass::Prescan {
            self.report.list = self.file_list();
        }
        if let Some(staging) = self.staging() {
            self.apply_directory_modes(staging)?;
            fs::set_permissions(staging, fs::Permissions::from_mode(STAGING_MODE))
                .map_err(|e| Error::io("set permissions of", staging, e))?;
            tracing::debug!(archive = %self.archive.display(), entries = self.report.entries, bytes = self.report.bytes, "package extracted");
        }
        Ok(self.report)
    }

    /// Reads a GNU long name/link or pax header into `pending`; returns
    /// whether the entry was one.
    fn read_extension<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        pending: &mut PendingExtensions,
        previous: &str,
    ) -> Result<bool> {
        let kind = entry.header().entry_type();
        let slot = match kind {
            EntryType::GNULongName => &mut pending.long_name,
            EntryType::GNULongLink => &mut pending.long_link,
            EntryType::XHeader => &mut pending.pax,
            _ => return Ok(false),
        };
        let label = format!("extension header after {previous}");
        if slot.is_some() {
            return Err(self.corrupt(&label, "two extension headers of one kind for one entry"));
        }
        if entry.size() > MAX_EXTENSION_HEADER {
            return Err(self.corrupt(
                &label,
                format!(
                    "extension header of {} bytes (at most {MAX_EXTENSION_HEADER})",
                    entry.size()
                ),
            ));
        }
        let mut data = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .read_to_end(&mut data)
            .map_err(|e| self.stream_error(&label, e))?;
        if data.len() as u64 != entry.size() {
            return Err(self.corrupt(&label, "truncated extension header"));
        }
        *slot = Some(data);
        pending.count += 1;
        Ok(true)
    }

    /// The entry's path and link target with extension headers applied, the
    /// way GNU tar reads them; refuses records that disagree (a parser
    /// differential is an attack).
    fn effective_names<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        extensions: &PendingExtensions,
        previous: &str,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
        let header = entry.header();
        let label = String::from_utf8_lossy(&header.path_bytes()).into_owned();
        let label = if label.is_empty() {
            format!("entry after {previous}")
        } else {
            label
        };
        let mut pax_path = None;
        let mut pax_link = None;
        if let Some(pax) = &extensions.pax {
            for record in tar::PaxExtensions::new(pax) {
                let record =
                    record.map_err(|e| self.corrupt(&label, format!("bad pax record: {e}")))?;
                match record.key_bytes() {
                    b"path" => pax_path = Some(record.value_bytes().to_vec()),
                    b"linkpath" => pax_link = Some(record.value_bytes().to_vec()),
                    b"size" => {
                        let size = record.value().ok().and_then(|v| v.parse::<u64>().ok());
                        if size != Some(entry.size()) {
                            return Err(self.corrupt(
                                &label,
                                "pax size record disagrees with the header size",
                            ));
                        }
                    }
                    key if key.starts_with(b"GNU.sparse.") => {
                        return Err(self.reject(
                            &label,
                            Rejection::UnsupportedType("GNU sparse file (pax)".into()),
                        ));
                    }
                    _ => {}
                }
            }
        }
        let long_name = extensions.long_name.as_deref().map(trim_nul);
        let long_link = extensions.long_link.as_deref().map(trim_nul);
        let path = match (long_name, pax_path) {
            (Some(a), Some(b)) if a != b.as_slice() => {
                return Err(self.corrupt(&label, "GNU long name and pax path disagree"));
            }
            (Some(a), _) => a.to_vec(),
            (None, Some(b)) => b,
            (None, None) => header.path_bytes().into_owned(),
        };
        let link = match (long_link, pax_link) {
            (Some(a), Some(b)) if a != b.as_slice() => {
                return Err(self.corrupt(&label, "GNU long link and pax linkpath disagree"));
            }
            (Some(a), _) => Some(a.to_vec()),
            (None, Some(b)) => Some(b),
            (None, None) => header.link_name_bytes().map(|l| l.into_owned()),
        };
        Ok((path, link))
    }

    /// Validates one entry completely, then creates it.
    fn extract_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw_path: &[u8],
        raw_link: Option<&[u8]>,
        label: &str,
    ) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            // Archive-wide comments (e.g. the commit id `git archive` adds); no file.
            return Ok(());
        }
        let components = match normalize(raw_path) {
            Ok(components) => components,
            Err(rejection) => return Err(self.reject(label, rejection)),
        };
        if components.is_empty() {
            if kind == EntryType::Directory && !raw_path.is_empty() {
                // `./`, the root of `tar -C dir .`: the staging directory itself.
                return Ok(());
            }
            return Err(self.reject(label, Rejection::EmptyPath));
        }
        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link => {}
            EntryType::Char => return Err(self.special(label, "character device")),
            EntryType::Block => return Err(self.special(label, "block device")),
            EntryType::Fifo => return Err(self.special(label, "fifo")),
            other => {
                return Err(self.reject(label, Rejection::UnsupportedType(type_name(other))));
            }
        }
        let mode = entry.header().mode().map_err(|e| self.corrupt(label, e))?;
        if mode & 0o6000 != 0 {
            return Err(self.reject(label, Rejection::SetIdBits { mode }));
        }
        let components = match components.get(self.options.strip_components..) {
            Some(rest) if !rest.is_empty() => rest,
            _ => return Ok(()),
        };
        if self.reserved.contains(&fold(&components[0])) {
            return Err(self.reject(label, Rejection::ReservedName(components[0].clone())));
        }
        let placement = self.place(components, kind == EntryType::Directory, label)?;
        let name = &components[components.len() - 1];
        let mode = mode & MODE_MASK;
        let (parent, first_missing) = match placement {
            Placement::ListDirectory(id) => {
                self.tree.nodes[id].kind = Kind::Directory { mode, listed: true };
                self.report.entries += 1;
                return Ok(());
            }
            Placement::Create {
                parent,
                first_missing,
            } => (parent, first_missing),
        };
        let missing_parents = components.len() - 1 - first_missing;
        let relative = components.join("/");
        let at = self.staging().map(|staging| staging.join(&relative));
        match kind {
            EntryType::Directory => {
                self.charge_disk(label, missing_parents + 1, 0)?;
                let parent = self.create_parents(components, parent, first_missing)?;
                self.make_directory(at.as_deref())?;
                self.tree
                    .add(parent, name, Kind::Directory { mode, listed: true });
            }
            EntryType::Symlink => {
                let target = self.check_symlink(components, raw_link, label)?;
                let stored = if target.len() > INLINE_SYMLINK_BYTES {
                    target.len() as u64
                } else {
                    0
                };
                self.charge_disk(label, missing_parents, stored)?;
                let parent = self.create_parents(components, parent, first_missing)?;
                if let Some(at) = &at {
                    std::os::unix::fs::symlink(&target, at)
                        .map_err(|e| Error::io("create symlink", at, e))?;
                }
                self.tree.add(parent, name, Kind::Symlink { target });
                self.report.symlinks += 1;
            }
            EntryType::Link => {
                let target = self.check_hardlink(raw_link, label)?;
                self.charge_disk(label, missing_parents, 0)?;
                let parent = self.create_parents(components, parent, first_missing)?;
                if let (Some(staging), Some(at)) = (self.staging(), &at) {
                    let from = staging.join(self.tree.path(target));
                    fs::hard_link(&from, at).map_err(|e| Error::io("create hard link", at, e))?;
                }
                self.tree.add(parent, name, Kind::Hardlink { target });
                self.report.hardlinks += 1;
            }
            _ => {
                self.charge_disk(label, missing_parents, entry.size())?;
                let parent = self.create_parents(components, parent, first_missing)?;
                let (size, sha256) = self.write_file(entry, at.as_deref(), mode, label)?;
                self.tree
                    .add(parent, name, Kind::File { mode, size, sha256 });
            }
        }
        self.report.entries += 1;
        Ok(())
    }

    /// Counts the disk space an entry needs (`directories` new directories
    /// of one block each, plus `content` bytes rounded up to blocks) and
    /// refuses the package when the total no longer fits the budget.
    fn charge_disk(&mut self, label: &str, directories: usize, content: u64) -> Result<()> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        let needed = budget
            .block
            .saturating_mul(directories as u64)
            .saturating_add(budget.blocks_for(content));
        self.disk_needed = self.disk_needed.saturating_add(needed);
        if self.disk_needed > budget.available {
            return Err(self.reject(
                label,
                Rejection::InsufficientSpace {
                    needed: self.disk_needed,
                    available: budget.available,
                },
            ));
        }
        Ok(())
    }

    fn special(&self, label: &str, kind: &'static str) -> Error {
        self.reject(label, Rejection::SpecialFile { kind })
    }

    /// Finds where the entry goes: its path must be new (or a directory
    /// created as a parent, being listed now), must not collide with a sibling
    /// by case or normalisation, and every existing parent must be a directory.
    fn place(&self, components: &[String], is_directory: bool, label: &str) -> Result<Placement> {
        let mut node = ROOT;
        for (index, name) in components.iter().enumerate() {
            let last = index + 1 == components.len();
            let Some(child) = self.tree.child(node, name) else {
                if let Some(other) = self.tree.node(node).folded_children.get(&fold(name)) {
                    return Err(self.reject(
                        label,
                        Rejection::Collision {
                            other: self.tree.path(*other),
                        },
                    ));
                }
                return Ok(Placement::Create {
                    parent: node,
                    first_missing: index,
                });
            };
            match &self.tree.node(child).kind {
                Kind::Directory { listed: false, .. } if last && is_directory => {
                    return Ok(Placement::ListDirectory(child));
                }
                _ if last => return Err(self.reject(label, Rejection::Duplicate)),
                Kind::Directory { .. } => node = child,
                Kind::File { .. } | Kind::Hardlink { .. } => {
                    return Err(self.reject(
                        label,
                        Rejection::ParentNotDirectory {
                            parent: self.tree.path(child),
                        },
                    ));
                }
                Kind::Symlink { .. } => {
                    return Err(self.reject(
                        label,
                        Rejection::ThroughSymlink {
                            link: self.tree.path(child),
                        },
                    ));
                }
            }
        }
        // `components` is never empty; an empty path was refused before.
        Err(self.reject(label, Rejection::EmptyPath))
    }

    /// Creates the parents the archive did not list (already validated);
    /// returns the entry's parent.
    fn create_parents(
        &mut self,
        components: &[String],
        mut parent: NodeId,
        first_missing: usize,
    ) -> Result<NodeId> {
        for depth in first_missing..components.len() - 1 {
            let at = self
                .staging()
                .map(|staging| staging.join(components[..=depth].join("/")));
            self.make_directory(at.as_deref())?;
            let kind = Kind::Directory {
                mode: IMPLICIT_DIRECTORY_MODE,
                listed: false,
            };
            parent = self.tree.add(parent, &components[depth], kind);
        }
        Ok(parent)
    }

    /// Creates a directory (0700 until [`Self::apply_directory_modes`]) at
    /// `at`, in the pass that writes, and counts it.
    fn make_directory(&mut self, at: Option<&Path>) -> Result<()> {
        if let Some(at) = at {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(at)
                .map_err(|e| Error::io("create directory", at, e))?;
        }
        self.report.directories += 1;
        Ok(())
    }

    /// The symlink target, if it is relative and, read lexically from the
    /// link's directory, stays inside staging and out of reserved names.
    /// Chains through other links are checked once all are known
    /// ([`Self::check_all_symlinks`]).
    fn check_symlink(
        &self,
        link: &[String],
        raw_link: Option<&[u8]>,
        label: &str,
    ) -> Result<String> {
        let raw = raw_link.unwrap_or_default();
        if raw.contains(&0) || raw.len() > MAX_PATH_BYTES {
            return Err(self.corrupt(label, "symlink target with a NUL byte or over 4096 bytes"));
        }
        let target =
            std::str::from_utf8(raw).map_err(|_| self.reject(label, Rejection::NonUtf8Path))?;
        let escape = || {
            self.reject(
                label,
                Rejection::SymlinkEscape {
                    target: target.to_string(),
                },
            )
        };
        if target.is_empty() || target.starts_with('/') {
            return Err(escape());
        }
        let mut resolved: Vec<&str> = link[..link.len() - 1].iter().map(String::as_str).collect();
        for component in target.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    if resolved.pop().is_none() {
                        return Err(escape());
                    }
                }
                name => resolved.push(name),
            }
        }
        match resolved.first() {
            Some(first) if self.reserved.contains(&fold(first)) => {
                Err(self.reject(label, Rejection::ReservedName((*first).to_string())))
            }
            _ => Ok(target.to_string()),
        }
    }

    /// The hard link target's node, if it names an earlier regular file of
    /// the archive.
    fn check_hardlink(&self, raw_link: Option<&[u8]>, label: &str) -> Result<NodeId> {
        let raw = raw_link.unwrap_or_default();
        let escape = || {
            self.reject(
                label,
                Rejection::HardlinkEscape {
                    target: String::from_utf8_lossy(raw).into_owned(),
                },
            )
        };
        let components = normalize(raw).map_err(|_| escape())?;
        let target = components
            .get(self.options.strip_components..)
            .filter(|c| !c.is_empty())
            .ok_or_else(escape)?;
        match self.tree.find(target) {
            Some(id) if matches!(self.tree.node(id).kind, Kind::File { .. }) => Ok(id),
            _ => Err(escape()),
        }
    }

    /// Reads a regular file's content, hashing it except in a pre-scan, and
    /// writes it at `at` (created with `O_EXCL`) in the pass that writes,
    /// with the entry's modification time and `mode`. Returns its size and digest.
    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: Option<&Path>,
        mode: u32,
        label: &str,
    ) -> Result<(u64, Option<Sha256Digest>)> {
        let mut file = match at {
            Some(at) => Some(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(at)
                    .map_err(|e| Error::io("create", at, e))?,
            ),
            None => None,
        };
        let mut hasher = (self.pass != Pass::Prescan).then(Sha256::new);
        let declared = entry.size();
        let copied = self.copy_data(entry, label, |chunk| {
            if let Some(hasher) = &mut hasher {
                hasher.update(chunk);
            }
            match (&mut file, at) {
                (Some(file), Some(at)) => {
                    file.write_all(chunk).map_err(|e| Error::io("write", at, e))
                }
                _ => Ok(()),
            }
        })?;
        if copied != declared {
            return Err(self.corrupt(label, format!("truncated: {copied} of {declared} bytes")));
        }
        let mtime = entry.header().mtime().map_err(|e| self.corrupt(label, e))?;
        if let (Some(file), Some(at)) = (&file, at) {
            if let Some(modified) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(mtime)) {
                file.set_modified(modified)
                    .map_err(|e| Error::io("set modification time of", at, e))?;
            }
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set permissions of", at, e))?;
        }
        self.report.files += 1;
        Ok((copied, hasher.map(|h| Sha256Digest(h.finalize().into()))))
    }

    /// Streams an entry's content through `sink` in [`BUFFER_SIZE`] blocks,
    /// enforcing the size limit and the entry's compression ratio as it
    /// goes; returns the bytes read.
    fn copy_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        label: &str,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let started_at = self.meter.compressed.get();
        let mut buffer = std::mem::take(&mut self.buffer);
        let mut copied = 0u64;
        let result = loop {
            let filled = match fill(entry, &mut buffer) {
                Ok(0) => break Ok(copied),
                Ok(filled) => filled,
                Err(e) => break Err(self.stream_error(label, e)),
            };
            copied += filled as u64;
            self.report.bytes += filled as u64;
            if self.report.bytes > self.options.max_total_bytes {
                break Err(self.reject(
                    label,
                    Rejection::TooLarge {
                        limit: self.options.max_total_bytes,
                    },
                ));
            }
            let packed = self.meter.compressed.get() - started_at;
            if let Some(ratio) = self.meter.excess(copied, packed) {
                break Err(self.reject(
                    label,
                    Rejection::CompressionRatio {
                        ratio,
                        limit: self.options.max_compression_ratio,
                    },
                ));
            }
            if let Err(e) = sink(&buffer[..filled]) {
                break Err(e);
            }
        };
        self.buffer = buffer;
        result
    }

    /// Reads the rest of the stream so a truncated or corrupt gzip (bad CRC)
    /// is detected even after the end-of-archive block.
    fn drain_to_end<R: Read>(&self, mut rest: R, previous: &str) -> Result<()> {
        let budget = self
            .options
            .max_total_bytes
            .saturating_sub(self.declared_bytes)
            .saturating_add(TRAILING_ALLOWANCE);
        let drained = io::copy(
            &mut (&mut rest).take(budget.saturating_add(1)),
            &mut io::sink(),
        )
        .map_err(|e| self.stream_error(&format!("end of archive after {previous}"), e))?;
        if drained > budget {
            return Err(self.reject(
                ARCHIVE_LABEL,
                Rejection::TooLarge {
                    limit: self.options.max_total_bytes,
                },
            ));
        }
        Ok(())
    }

    /// Re-checks every symlink with all of them known, following links the
    /// way the kernel would: a later link can make an earlier, lexically
    /// harmless target (`d/x/..`) escape. Each link is resolved once.
    fn check_all_symlinks(&self) -> Result<()> {
        let mut links: Vec<(String, NodeId)> = (0..self.tree.nodes.len())
            .filter(|id| matches!(self.tree.node(*id).kind, Kind::Symlink { .. }))
            .map(|id| (self.tree.path(id), id))
            .collect();
        links.sort();
        let mut resolutions = HashMap::new();
        for (path, id) in links {
            if let Err(rejection) = self.resolve_symlink(id, &mut resolutions, 0) {
                // Name the link's own target, not the one deep in the chain.
                let rejection = match (rejection, &self.tree.node(id).kind) {
                    (Rejection::SymlinkEscape { .. }, Kind::Symlink { target }) => {
                        Rejection::SymlinkEscape {
                            target: target.clone(),
                        }
                    }
                    (rejection, _) => rejection,
                };
                return Err(self.reject(&path, rejection));
            }
        }
        Ok(())
    }

    /// Where the symlink `link` leads, following other links of the archive.
    fn resolve_symlink(
        &self,
        link: NodeId,
        resolutions: &mut HashMap<NodeId, Resolution>,
        hops: usize,
    ) -> std::result::Result<Location, Rejection> {
        let node = self.tree.node(link);
        let Kind::Symlink { target } = &node.kind else {
            return Ok(Location {
                node: link,
                missing_depth: 0,
            });
        };
        let escape = || Rejection::SymlinkEscape {
            target: target.clone(),
        };
        match resolutions.get(&link) {
            Some(Resolution::Done(location)) => return Ok(*location),
            // A loop: the kernel would give up (ELOOP); refuse it.
            Some(Resolution::InProgress) => return Err(escape()),
            None if hops > MAX_SYMLINK_HOPS => return Err(escape()),
            None => {}
        }
        resolutions.insert(link, Resolution::InProgress);
        let mut at = Location {
            node: node.parent,
            missing_depth: 0,
        };
        for component in target.split('/') {
            match component {
                "" | "." => {}
                ".." if at.missing_depth > 0 => at.missing_depth -= 1,
                ".." if at.node == ROOT => return Err(escape()),
                ".." => at.node = self.tree.node(at.node).parent,
                _ if at.missing_depth > 0 => at.missing_depth += 1,
                name => {
                    if at.node == ROOT && self.reserved.contains(&fold(name)) {
                        return Err(Rejection::ReservedName(name.to_string()));
                    }
                    at = match self.tree.child(at.node, name) {
                        None => Location {
                            node: at.node,
                            missing_depth: 1,
                        },
                        Some(child) => self.resolve_symlink(child, resolutions, hops + 1)?,
                    };
                }
            }
        }
        resolutions.insert(link, Resolution::Done(at));
        Ok(at)
    }

    /// Applies directory modes last (deepest first), so a read-only directory
    /// did not block writing its children.
    fn apply_directory_modes(&self, staging: &Path) -> Result<()> {
        let mut directories: Vec<(usize, NodeId, u32)> = (1..self.tree.nodes.len())
            .filter_map(|id| match self.tree.node(id).kind {
                Kind::Directory { mode, .. } => Some((self.tree.node(id).depth, id, mode)),
                _ => None,
            })
            .collect();
        directories.sort_by_key(|(depth, _, _)| std::cmp::Reverse(*depth));
        for (_, id, mode) in directories {
            let at = staging.join(self.tree.path(id));
            fs::set_permissions(&at, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set permissions of", &at, e))?;
        }
        Ok(())
    }

    /// The list of everything the archive creates, built from the tree
    /// (parents come before their children, so each path extends its
    /// parent's).
    fn file_list(&self) -> FileList {
        let mut paths: Vec<String> = Vec::with_capacity(self.tree.nodes.len());
        paths.push(String::new());
        for node in &self.tree.nodes[1..] {
            let parent = &paths[node.parent];
            paths.push(if parent.is_empty() {
                node.name.clone()
            } else {
                format!("{parent}/{}", node.name)
            });
        }
        let entry = |kind: &Kind| match kind {
            Kind::Directory { mode, .. } => Some(FileEntry::dir(*mode)),
            Kind::File {
                mode,
                size,
                sha256: Some(sha256),
            } => Some(FileEntry::file(*mode, *size, *sha256)),
            Kind::File { sha256: None, .. } | Kind::Hardlink { .. } => None,
            Kind::Symlink { target } => Some(FileEntry::symlink(target.clone())),
        };
        paths
            .into_iter()
            .zip(&self.tree.nodes)
            .skip(1)
            .filter_map(|(path, node)| {
                let kind = match node.kind {
                    Kind::Hardlink { target } => &self.tree.node(target).kind,
                    ref kind => kind,
                };
                entry(kind).map(|entry| (path, entry))
            })
            .collect()
    }
}

/// Splits a raw archive path into its components, dropping empty and `.`
/// ones; refuses absolute, `..`, NUL and non-UTF-8 paths.
fn normalize(raw: &[u8]) -> std::result::Result<Vec<String>, Rejection> {
    if raw.is_empty() {
        return Err(Rejection::EmptyPath);
    }
    if raw[0] == b'/' {
        return Err(Rejection::AbsolutePath);
    }
    let parts: Vec<&[u8]> = raw
        .split(|b| *b == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .collect();
    if parts.iter().any(|part| *part == b"..") {
        return Err(Rejection::ParentTraversal);
    }
    if raw.contains(&0) {
        return Err(Rejection::Corrupt("NUL byte in path".into()));
    }
    if raw.len() > MAX_PATH_BYTES {
        return Err(Rejection::PathTooLong {
            limit: MAX_PATH_BYTES,
        });
    }
    parts
        .into_iter()
        .map(|part| {
            std::str::from_utf8(part)
                .map(str::to_string)
                .map_err(|_| Rejection::NonUtf8Path)
        })
        .collect()
}

/// The key two paths collide on: Unicode NFC, then lower case.
fn fold(path: &str) -> String {
    if path.is_ascii() {
        // NFC leaves ASCII as it is, and its lower case is ASCII's.
        return path.to_ascii_lowercase();
    }
    path.nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// Drops the NUL terminator(s) GNU tar writes after a long name.
fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// A readable name for an unsupported entry type.
fn type_name(kind: EntryType) -> String {
    let name = match kind {
        EntryType::GNUSparse => "GNU sparse file",
        EntryType::GNULongName | EntryType::GNULongLink => "GNU long name",
        EntryType::XHeader | EntryType::XGlobalHeader => "pax header",
        _ => "unknown",
    };
    format!("{name} (type {:?})", kind.as_byte() as char)
}

/// Reads until `buffer` is full or the entry ends.
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_dots_and_refuses_escapes() {
        assert_eq!(normalize(b"./a//b/./c/").unwrap(), ["a", "b", "c"]);
        assert_eq!(normalize(b"./").unwrap(), Vec::<String>::new());
        assert_eq!(normalize(b"/etc/passwd"), Err(Rejection::AbsolutePath));
        assert_eq!(normalize(b"a/../../b"), Err(Rejection::ParentTraversal));
        assert_eq!(normalize(b"a/\xff"), Err(Rejection::NonUtf8Path));
        assert_eq!(normalize(b""), Err(Rejection::EmptyPath));
        assert!(matches!(normalize(b"a\0b"), Err(Rejection::Corrupt(_))));
    }

    #[test]
    fn folding_equates_case_and_normalisation() {
        assert_eq!(fold("README"), fold("readme"));
        assert_eq!(fold("caf\u{e9}"), fold("cafe\u{301}"));
        assert_ne!(fold("a"), fold("b"));
    }

    #[test]
    fn the_free_space_margin_is_the_larger_of_the_percentage_and_the_minimum() {
        const GIB: u64 = 1 << 30;
        let defaults = ExtractOptions::default();
        // 1 TiB with 300 GiB free: 2 % (about 20 GiB) is kept free.
        let big = DiskBudget::new(1024 * GIB, 300 * GIB, 4096, &defaults);
        assert_eq!(big.available, 300 * GIB - 1024 * GIB / 100 * 2);
        // 1 GiB with 600 MiB free: the 256 MiB minimum wins over 2 %.
        let small = DiskBudget::new(GIB, 600 << 20, 4096, &defaults);
        assert_eq!(small.available, (600 - 256) << 20);
        // Less free than the margin: nothing is usable.
        let full = DiskBudget::new(GIB, 100 << 20, 4096, &defaults);
        assert_eq!(full.available, 0);
        let none = defaults.with_free_space_margin(0, 0);
        assert_eq!(DiskBudget::new(GIB, 5, 4096, &none).available, 5);
    }

    #[test]
    fn disk_use_is_rounded_up_to_whole_blocks() {
        let budget = DiskBudget::new(1 << 30, 1 << 30, 4096, &ExtractOptions::default());
        assert_eq!(budget.blocks_for(0), 0);
        assert_eq!(budget.blocks_for(1), 4096);
        assert_eq!(budget.blocks_for(4096), 4096);
        assert_eq!(budget.blocks_for(4097), 8192);
    }

    #[test]
    fn the_ratio_is_checked_only_past_the_threshold() {
        let meter = Meter::new(&ExtractOptions::default());
        assert_eq!(meter.excess(1 << 19, 1), None, "below 1 MiB");
        assert_eq!(meter.excess(1 << 20, 1 << 20 >> 7), None, "128:1");
        assert_eq!(meter.excess(1 << 20, 1 << 20 >> 8), Some(256));
        assert_eq!(meter.excess(1 << 20, 0), Some(1 << 20));
        let off = Meter::new(&ExtractOptions::default().with_max_compression_ratio(u32::MAX));
        assert_eq!(
            off.excess(1 << 40, 1 << 20),
            None,
            "deflate never reaches 2^32:1"
        );
    }

    #[test]
    fn trailing_nuls_are_trimmed() {
        assert_eq!(trim_nul(b"name\0\0"), b"name");
        assert_eq!(trim_nul(b"\0"), b"");
    }
}
