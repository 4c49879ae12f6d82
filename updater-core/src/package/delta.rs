//! Delta updates: fetch only the members of added or changed files, take
//! the rest from the installed tree.
//!
//! A package built by `updater release build` is its own delta: each entry
//! is a gzip member whose byte range the [file index](crate::package::index)
//! records. Knowing what the installed release shipped (its
//! [`FileList`], recorded at install time with the stamps its files had),
//! the updater:
//!
//! 1. **plans** ([`plan`]): every file whose content (size and SHA-256) the
//!    installed release already shipped is *reused* — at the same path, or
//!    at another one (a moved file) — after checking that the live file is
//!    still what was installed (size, modification time and inode, and its
//!    SHA-256 when those disagree); directories, symlinks and empty files
//!    come from the index itself; everything else is *fetched*. Neighbouring
//!    members are coalesced into ranges (gaps up to
//!    [`DeltaSettings::coalesce_gap`] are fetched and skipped, unless that
//!    would push the download past the limit), and the closest ranges are
//!    merged until at most [`DeltaSettings::max_requests`] remain.
//! 2. **fetches** ([`fetch`]) those ranges with
//!    [`ReleaseSource::download_ranges`] into a spool file (HTTP sources
//!    resume a broken range where it stopped, within their transfer deadline).
//! 3. **stages** ([`stage`]) the new tree in a fresh directory: each fetched
//!    member is decompressed, its tar header compared with the index (path,
//!    type, mode, size) and its content hashed while it is written; a
//!    mismatch anywhere fails the whole delta. Reused files are cloned with
//!    a reflink where the file system can (`FICLONE`: Btrfs, XFS, bcachefs),
//!    else copied ([`UnchangedFiles`]); their source is checked again after
//!    the copy, so a file changed meanwhile is not taken. Finally the staged
//!    tree's list (paths, kinds, modes, sizes, SHA-256, link targets) must
//!    equal the index's: byte for byte what a full extraction gives.
//!
//! Any reason not to use a delta is a [`DeltaFallback`]; the pipeline then
//! downloads the whole package (and records why).
//!
//! # Why unchanged files are copied, not hard-linked, without reflinks
//!
//! A hard link shares the inode with the kept release: a shipped file that
//! the new release's application (or an operator) rewrites in place would
//! change in the tree a rollback goes back to, and a `chmod` would too. A
//! reflink or a copy keeps the old tree intact. Hard links are available
//! ([`UnchangedFiles::Hardlink`]) for operators who accept that trade for
//! speed on file systems without reflinks; see `docs/release-format.md`
//! for the measured costs per file system.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::index::PackageIndex;
use crate::error::{Error, Result};
use crate::release::{Asset, ByteRange, Sha256Digest};
use crate::source::ReleaseSource;
use crate::tree::{EntryKind, FileEntry, FileList, StatStamp};

/// How unchanged files are put into the staged tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnchangedFiles {
    /// A reflink (`FICLONE`: no data written, copy-on-write) where the file
    /// system supports it, else a copy (`copy_file_range`). The kept old
    /// tree stays intact either way (default).
    #[default]
    Auto,
    /// Always a copy.
    Copy,
    /// A reflink where supported, else a hard link: no data written on any
    /// file system, but the new and the kept release share inodes, so an
    /// in-place write (or `chmod`) to a shipped file after the update also
    /// changes the tree a rollback returns to. Files whose mode changes are
    /// copied.
    Hardlink,
}

/// When and how delta updates are used.
///
/// ```
/// use updater_core::package::delta::{DeltaSettings, UnchangedFiles};
/// let settings = DeltaSettings::default();
/// assert!(settings.enabled);
/// assert_eq!((settings.max_changed_percent, settings.max_requests), (50, 1000));
/// assert_eq!(settings.unchanged, UnchangedFiles::Auto);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSettings {
    /// Try a delta when the release has an index (default `true`).
    pub enabled: bool,
    /// Download the whole package instead when the members of added or
    /// changed files exceed this share of it, in percent (default 50).
    pub max_changed_percent: u8,
    /// The most range requests of one delta (default 1000). Requests are
    /// sequential: over a link with a long round trip, fewer requests
    /// (members merged across gaps, more bytes) can be faster.
    pub max_requests: usize,
    /// Members closer than this are fetched as one range, the gap included
    /// (default 64 KiB).
    pub coalesce_gap: u64,
    /// How unchanged files are staged.
    pub unchanged: UnchangedFiles,
}

impl Default for DeltaSettings {
    fn default() -> Self {
        DeltaSettings {
            enabled: true,
            max_changed_percent: 50,
            max_requests: 1000,
            coalesce_gap: 64 * 1024,
            unchanged: UnchangedFiles::Auto,
        }
    }
}

/// Why an update downloads the whole package instead of a delta (recorded
/// in the update's history).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeltaFallback {
    /// Delta updates are turned off.
    Disabled,
    /// The release publishes no file index.
    NoIndex,
    /// The list of what the installed release shipped is not known (it
    /// was installed by hand).
    InstalledListUnknown,
    /// Signatures are required and the signature binds no index, or another one.
    IndexNotSigned(String),
    /// The index could not be fetched, or was refused.
    Index(String),
    /// The source or server does not serve byte ranges.
    RangesUnsupported(String),
    /// Too much changed: the members to fetch are this share of the package.
    TooMuchChanged {
        /// Bytes of the members of added or changed files.
        fetch: u64,
        /// The package's size.
        package: u64,
        /// The configured limit, in percent.
        limit_percent: u8,
    },
    /// Shipped files the new release keeps were modified in place.
    ModifiedShippedFiles(Vec<String>),
    /// Fetching the ranges failed.
    Fetch(String),
    /// Staging from the fetched members failed verification (or I/O).
    Staging(String),
}

impl fmt::Display for DeltaFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaFallback::Disabled => f.write_str("delta updates are disabled"),
            DeltaFallback::NoIndex => f.write_str("the release publishes no file index"),
            DeltaFallback::InstalledListUnknown => {
                f.write_str("the installed release's file list is unknown")
            }
            DeltaFallback::IndexNotSigned(why) => write!(f, "the index is not signed: {why}"),
            DeltaFallback::Index(why) => write!(f, "the file index was refused: {why}"),
            DeltaFallback::RangesUnsupported(why) => {
                write!(f, "byte ranges are not served: {why}")
            }
            DeltaFallback::TooMuchChanged {
                fetch,
                package,
                limit_percent,
            } => write!(
                f,
                "{fetch} of the package's {package} bytes changed ({:.1} %, more than {limit_percent} %)",
                *fetch as f64 * 100.0 / (*package).max(1) as f64
            ),
            DeltaFallback::ModifiedShippedFiles(paths) => write!(
                f,
                "the installed tree has modified shipped files: {}{}",
                paths.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if paths.len() > 5 {
                    format!(" and {} more", paths.len() - 5)
                } else {
                    String::new()
                }
            ),
            DeltaFallback::Fetch(why) => write!(f, "fetching the changed files failed: {why}"),
            DeltaFallback::Staging(why) => write!(f, "delta staging failed: {why}"),
        }
    }
}

/// What to do for one entry of the new tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Created from the index alone (directory, symlink, empty file).
    Create,
    /// Taken from the installed tree at `from`, as it looked then.
    Reuse { from: String, seen: SeenFile },
    /// Decompressed from the fetched member at `member`.
    Fetch { member: ByteRange },
}

/// How a live file looked when it was judged reusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeenFile {
    size: u64,
    stamp: StatStamp,
}

/// What a delta update will do (from [`plan`]).
#[derive(Debug, Clone)]
pub struct DeltaPlan {
    /// The validated index.
    pub index: PackageIndex,
    /// What the new tree holds (from the index).
    pub list: FileList,
    actions: HashMap<String, Action>,
    /// The coalesced ranges to fetch, in order.
    pub ranges: Vec<ByteRange>,
    /// Bytes the ranges hold (gaps included).
    pub fetch_bytes: u64,
    /// Files fetched.
    pub fetched_files: usize,
    /// Files reused from the installed tree.
    pub reused_files: usize,
}

/// Plans a delta from the installed release (`installed`, with stamps, in
/// `app_dir`) to the release `index` describes (validated, `list` from
/// [`PackageIndex::validate`]), for a package of `package_size` bytes.
/// `skipped` paths (preserved paths, the maintenance flag) are never
/// reused. Reads the live tree (stat, and hashes only files whose stamps
/// disagree); changes nothing.
pub fn plan(
    index: PackageIndex,
    list: FileList,
    installed: &FileList,
    app_dir: &Path,
    skipped: &dyn Fn(&str) -> bool,
    package_size: u64,
    settings: &DeltaSettings,
) -> std::result::Result<DeltaPlan, DeltaFallback> {
    let mut by_content: HashMap<(u64, Sha256Digest), Vec<&str>> = HashMap::new();
    for (path, entry) in installed.iter() {
        if let (EntryKind::File, Some(sha256)) = (entry.kind, entry.sha256) {
            by_content
                .entry((entry.size, sha256))
                .or_default()
                .push(path);
        }
    }
    let mut actions = HashMap::new();
    let mut members = Vec::new();
    let mut modified = Vec::new();
    let mut rejected: HashMap<&str, bool> = HashMap::new();
    let (mut fetched_files, mut reused_files) = (0, 0);
    for entry in &index.entries {
        let action = match (entry.kind, entry.sha256) {
            (EntryKind::File, Some(sha256)) if entry.size > 0 => {
                let mut reuse = None;
                if let Some(candidates) = by_content.get(&(entry.size, sha256)) {
                    // The same path first: a modified copy there means a fallback.
                    let mut ordered: Vec<&str> = candidates.clone();
                    ordered.sort_by_key(|p| *p != entry.path);
                    for from in ordered {
                        if skipped(from) || rejected.get(from) == Some(&true) {
                            continue;
                        }
                        let Some(shipped) = installed.get(from) else {
                            continue;
                        };
                        match live_file(app_dir, from, shipped) {
                            Ok(Some(seen)) => {
                                reuse = Some(Action::Reuse {
                                    from: from.to_string(),
                                    seen,
                                });
                                break;
                            }
                            Ok(None) | Err(_) => {
                                rejected.insert(from, true);
                                if from == entry.path {
                                    modified.push(from.to_string());
                                }
                            }
                        }
                    }
                }
                match reuse {
                    Some(action) => {
                        reused_files += 1;
                        action
                    }
                    None => {
                        fetched_files += 1;
                        members.push(entry.member());
                        Action::Fetch {
                            member: entry.member(),
                        }
                    }
                }
            }
            _ => Action::Create,
        };
        actions.insert(entry.path.clone(), action);
    }
    if !modified.is_empty() {
        return Err(DeltaFallback::ModifiedShippedFiles(modified));
    }
    // The share is judged on the members themselves; coalescing only adds
    // gaps that are cheaper to fetch than another request.
    let changed: u64 = members.iter().map(ByteRange::len).sum();
    if changed.saturating_mul(100)
        > package_size.saturating_mul(u64::from(settings.max_changed_percent))
    {
        return Err(DeltaFallback::TooMuchChanged {
            fetch: changed,
            package: package_size,
            limit_percent: settings.max_changed_percent,
        });
    }
    let limit = package_size.saturating_mul(u64::from(settings.max_changed_percent));
    let mut ranges = coalesce(&members, settings.coalesce_gap, settings.max_requests);
    let mut fetch_bytes: u64 = ranges.iter().map(ByteRange::len).sum();
    if fetch_bytes.saturating_mul(100) > limit {
        // The gaps cost more than the requests they save: merge only as the bound requires.
        ranges = coalesce(&members, 0, settings.max_requests);
        fetch_bytes = ranges.iter().map(ByteRange::len).sum();
        if fetch_bytes.saturating_mul(100) > limit {
            return Err(DeltaFallback::TooMuchChanged {
                fetch: fetch_bytes,
                package: package_size,
                limit_percent: settings.max_changed_percent,
            });
        }
    }
    Ok(DeltaPlan {
        index,
        list,
        actions,
        ranges,
        fetch_bytes,
        fetched_files,
        reused_files,
    })
}

/// Whether the live file at `relative` is still what the installed
/// release shipped there: `Some` with how it looks now, `None` when it
/// changed (or is gone, or is not a regular file).
fn live_file(app_dir: &Path, relative: &str, shipped: &FileEntry) -> Result<Option<SeenFile>> {
    let path = app_dir.join(relative);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("inspect", &path, e)),
    };
    if !meta.is_file() || meta.len() != shipped.size {
        return Ok(None);
    }
    let stamp = StatStamp::of(&meta);
    if shipped.stamp == Some(stamp) {
        return Ok(Some(SeenFile {
            size: meta.len(),
            stamp,
        }));
    }
    let (digest, size) = super::sha256_file(&path)?;
    Ok(
        (Some(digest) == shipped.sha256 && size == shipped.size)
            .then_some(SeenFile { size, stamp }),
    )
}

/// Merges member ranges closer than `gap`, then the closest neighbours
/// until at most `max_requests` remain. `members` are sorted and disjoint.
///
/// ```
/// use updater_core::package::delta::coalesce;
/// use updater_core::release::ByteRange;
/// let members = [ByteRange::new(0, 10), ByteRange::new(15, 20), ByteRange::new(100, 110), ByteRange::new(1000, 1001)];
/// assert_eq!(coalesce(&members, 5, 10), [ByteRange::new(0, 20), ByteRange::new(100, 110), ByteRange::new(1000, 1001)]);
/// assert_eq!(coalesce(&members, 0, 2), [ByteRange::new(0, 110), ByteRange::new(1000, 1001)]);
/// ```
pub fn coalesce(members: &[ByteRange], gap: u64, max_requests: usize) -> Vec<ByteRange> {
    let mut ranges: Vec<ByteRange> = Vec::with_capacity(members.len());
    for member in members {
        match ranges.last_mut() {
            Some(last) if member.start.saturating_sub(last.end) <= gap => {
                last.end = last.end.max(member.end);
            }
            _ => ranges.push(*member),
        }
    }
    let max_requests = max_requests.max(1);
    if ranges.len() > max_requests {
        // Merge across the smallest gaps: keep the (max_requests - 1) largest as cuts.
        let mut gaps: Vec<(u64, usize)> = ranges
            .windows(2)
            .enumerate()
            .map(|(i, pair)| (pair[1].start - pair[0].end, i))
            .collect();
        gaps.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut cuts: Vec<usize> = gaps.iter().take(max_requests - 1).map(|g| g.1).collect();
        cuts.sort_unstable();
        let mut merged = Vec::with_capacity(max_requests);
        let mut start = ranges[0].start;
        for cut in cuts {
            merged.push(ByteRange::new(start, ranges[cut].end));
            start = ranges[cut + 1].start;
        }
        merged.push(ByteRange::new(start, ranges[ranges.len() - 1].end));
        ranges = merged;
    }
    ranges
}

/// Fetches the plan's ranges of `asset` from `source` into `spool` (created
/// afresh, 0600): their bytes one after another. Refuses (with
/// [`Error::Integrity`]) a source that writes more or fewer bytes than the
/// ranges hold. `progress` receives the byte count so far.
pub fn fetch(
    source: &dyn ReleaseSource,
    asset: &Asset,
    plan: &DeltaPlan,
    spool: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    match fs::remove_file(spool) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove leftover", spool, e)),
    }
    if plan.ranges.is_empty() {
        File::create(spool).map_err(|e| Error::io("create", spool, e))?;
        return Ok(0);
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(spool)
        .map_err(|e| Error::io("create", spool, e))?;
    let mut sink = SpoolWriter {
        inner: io::BufWriter::with_capacity(1 << 20, file),
        written: 0,
        limit: plan.fetch_bytes,
        reported: 0,
        progress,
        error: None,
    };
    let result = source.download_ranges(asset, &plan.ranges, &mut sink);
    if let Some(error) = sink.error.take() {
        return Err(Error::io("write", spool, error));
    }
    let returned = result?;
    sink.inner
        .flush()
        .map_err(|e| Error::io("write", spool, e))?;
    if sink.written != plan.fetch_bytes || returned != plan.fetch_bytes {
        return Err(Error::integrity(
            format!("byte ranges of {}", asset.name),
            format!(
                "{} wrote {} bytes, the {} ranges hold {}",
                source.describe(),
                sink.written,
                plan.ranges.len(),
                plan.fetch_bytes
            ),
        ));
    }
    (sink.progress)(sink.written);
    Ok(sink.written)
}

/// Counts what a source writes into the spool and refuses bytes past the limit.
struct SpoolWriter<'p> {
    inner: io::BufWriter<File>,
    written: u64,
    limit: u64,
    reported: u64,
    progress: &'p mut dyn FnMut(u64),
    /// A disk error, kept to name it as the cause.
    error: Option<io::Error>,
}

impl Write for SpoolWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written.saturating_add(buf.len() as u64) > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more bytes than the {} the ranges hold", self.limit),
            ));
        }
        let n = match self.inner.write(buf) {
            Ok(n) => n,
            Err(e) => {
                let reported = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                return Err(reported);
            }
        };
        self.written += n as u64;
        if self.written - self.reported >= 256 * 1024 {
            self.reported = self.written;
            (self.progress)(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What [`stage`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeltaStaged {
    /// The staged tree's list (no stamps yet), equal to the index's.
    pub list: FileList,
    /// Files decompressed from fetched members.
    pub fetched: usize,
    /// Unchanged files cloned with a reflink.
    pub reflinked: usize,
    /// Unchanged files copied.
    pub copied: usize,
    /// Unchanged files hard-linked.
    pub hardlinked: usize,
    /// Bytes written for fetched files.
    pub fetched_bytes: u64,
}

/// Builds the new tree in `staging` (which must not exist; its parent
/// must) from the fetched members in `spool` and the installed tree in
/// `app_dir`, as [`plan`] decided. Blocking.
///
/// On success `staging` has mode 0755 and holds exactly what extracting
/// the package would give (the returned list equals the index's). On any
/// error — a member whose bytes, header or SHA-256 disagree with the index,
/// a reused file changed since it was planned, an I/O error — `staging` is
/// removed and nothing else was written.
pub fn stage(
    plan: &DeltaPlan,
    spool: &Path,
    app_dir: &Path,
    staging: &Path,
    method: UnchangedFiles,
) -> Result<DeltaStaged> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| Error::io("create staging directory", staging, e))?;
    let result = Stager {
        plan,
        app_dir,
        staging,
        method,
        mtime: SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(plan.index.mtime)),
        buffer: vec![0u8; 256 * 1024],
        staged: DeltaStaged {
            list: FileList::new(),
            fetched: 0,
            reflinked: 0,
            copied: 0,
            hardlinked: 0,
            fetched_bytes: 0,
        },
    }
    .run(spool);
    if let Err(error) = &result {
        tracing::warn!(staging = %staging.display(), %error, "delta staging failed; removing the staging directory");
        if let Err(e) = fs::remove_dir_all(staging) {
            tracing::error!(staging = %staging.display(), error = %e, "cannot remove the staging directory of a failed delta");
        }
    }
    result
}

struct Stager<'a> {
    plan: &'a DeltaPlan,
    app_dir: &'a Path,
    staging: &'a Path,
    method: UnchangedFiles,
    /// The archive's modification time, given to every file written.
    mtime: Option<SystemTime>,
    buffer: Vec<u8>,
    staged: DeltaStaged,
}

impl Stager<'_> {
    fn run(mut self, spool: &Path) -> Result<DeltaStaged> {
        let mut spool = SpoolReader::open(spool, &self.plan.ranges)?;
        let mut directories = Vec::new();
        let mut reuse = Vec::new();
        for (path, entry) in self.plan.list.iter() {
            let at = self.staging.join(path);
            match entry.kind {
                EntryKind::Dir => {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&at)
                        .map_err(|e| Error::io("create directory", &at, e))?;
                    directories.push((path.matches('/').count(), at, entry.mode));
                    self.staged.list.insert(path, FileEntry::dir(entry.mode));
                }
                EntryKind::Symlink => {
                    let target = entry.target.as_deref().unwrap_or_default();
                    std::os::unix::fs::symlink(target, &at)
                        .map_err(|e| Error::io("create symlink", &at, e))?;
                    self.staged.list.insert(path, FileEntry::symlink(target));
                }
                EntryKind::File => {
                    let action = self
                        .plan
                        .actions
                        .get(path)
                        .cloned()
                        .unwrap_or(Action::Create);
                    let staged = match action {
                        Action::Create => self.empty_file(&at, entry)?,
                        Action::Fetch { member } => {
                            self.fetched_file(&mut spool, member, path, &at, entry)?
                        }
                        Action::Reuse { from, seen } => {
                            reuse.push(ReuseJob {
                                path: path.to_string(),
                                from,
                                seen,
                                at,
                                entry: entry.clone(),
                            });
                            continue;
                        }
                    };
                    self.staged.list.insert(
                        path,
                        FileEntry {
                            stamp: None,
                            ..staged
                        },
                    );
                }
            }
        }
        // Unchanged files on every core: per file a few system calls and,
        // without reflinks, a copy.
        let cloner = Cloner {
            app_dir: self.app_dir,
            method: self.method,
            mtime: self.mtime,
            reflink: AtomicU8::new(REFLINK_UNKNOWN),
            reflinked: AtomicUsize::new(0),
            copied: AtomicUsize::new(0),
            hardlinked: AtomicUsize::new(0),
        };
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .clamp(1, 8)
            .min(reuse.len().max(1));
        let next = AtomicUsize::new(0);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = reuse.get(i) else { break };
                        if let Err(error) = cloner.clone_file(job)
                            && let Ok(mut slot) = failed.lock()
                        {
                            slot.get_or_insert(error);
                        }
                    }
                });
            }
        });
        if let Some(error) = failed.into_inner().ok().flatten() {
            return Err(error);
        }
        for job in reuse {
            self.staged.list.insert(job.path, job.entry);
        }
        self.staged.reflinked = cloner.reflinked.into_inner();
        self.staged.copied = cloner.copied.into_inner();
        self.staged.hardlinked = cloner.hardlinked.into_inner();
        directories.sort_by_key(|(depth, _, _)| std::cmp::Reverse(*depth));
        for (_, at, mode) in directories {
            fs::set_permissions(&at, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set permissions of", &at, e))?;
        }
        fs::set_permissions(self.staging, fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io("set permissions of", self.staging, e))?;
        if self.staged.list != self.plan.list {
            let differs = self
                .plan
                .list
                .iter()
                .find(|(path, entry)| self.staged.list.get(path) != Some(entry))
                .map(|(path, _)| path.to_string())
                .unwrap_or_else(|| "(an extra entry)".into());
            return Err(Error::integrity(
                format!("delta of {}", self.plan.index.archive.name),
                format!("the staged tree differs from the signed index at {differs}"),
            ));
        }
        Ok(self.staged)
    }

    fn create_file(at: &Path) -> Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(at)
            .map_err(|e| Error::io("create", at, e))
    }

    /// Gives a written file the archive's time and the index's mode, as
    /// extraction does.
    fn finish_file(&self, file: &File, at: &Path, mode: u32) -> Result<()> {
        if let Some(mtime) = self.mtime {
            file.set_modified(mtime)
                .map_err(|e| Error::io("set modification time of", at, e))?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set permissions of", at, e))
    }

    /// An empty file, from the index alone. The returned entry has no stamp
    /// (`stamp: None` means "set the archive's time").
    fn empty_file(&mut self, at: &Path, entry: &FileEntry) -> Result<FileEntry> {
        let file = Self::create_file(at)?;
        self.finish_file(&file, at, entry.mode)?;
        Ok(FileEntry::file(
            entry.mode,
            0,
            Sha256Digest(Sha256::digest([]).into()),
        ))
    }

    /// A file decompressed from its fetched member, verified against the index.
    fn fetched_file(
        &mut self,
        spool: &mut SpoolReader,
        member: ByteRange,
        path: &str,
        at: &Path,
        entry: &FileEntry,
    ) -> Result<FileEntry> {
        let label = format!("member of {path} (bytes {}..{})", member.start, member.end);
        let refuse = |reason: String| Error::integrity(label.clone(), reason);
        let slice = spool.member(member)?;
        let decoder = flate2::bufread::GzDecoder::new(BufReader::new(slice));
        let mut archive = tar::Archive::new(decoder);
        let mut file = Self::create_file(at)?;
        let mut hasher = Sha256::new();
        let mut copied = 0u64;
        {
            let mut entries = archive
                .entries()
                .map_err(|e| refuse(format!("not a tar entry: {e}")))?;
            let mut tar_entry = match entries.next() {
                Some(Ok(tar_entry)) => tar_entry,
                Some(Err(e)) => return Err(refuse(format!("not a tar entry: {e}"))),
                None => return Err(refuse("no tar entry".into())),
            };
            let header = tar_entry.header();
            let mode = header
                .mode()
                .map_err(|e| refuse(format!("bad header: {e}")))?;
            if tar_entry.path_bytes().as_ref() != path.as_bytes()
                || header.entry_type() != tar::EntryType::Regular
                || mode & 0o7777 != entry.mode
                || tar_entry.size() != entry.size
            {
                return Err(refuse(format!(
                    "its header ({:?}, {:?}, mode {mode:o}, {} bytes) is not the index's",
                    String::from_utf8_lossy(&tar_entry.path_bytes()),
                    header.entry_type(),
                    tar_entry.size()
                )));
            }
            loop {
                let n = match tar_entry.read(&mut self.buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(refuse(format!("corrupt: {e}"))),
                };
                copied += n as u64;
                if copied > entry.size {
                    return Err(refuse("more content than the index says".into()));
                }
                hasher.update(&self.buffer[..n]);
                file.write_all(&self.buffer[..n])
                    .map_err(|e| Error::io("write", at, e))?;
            }
            match entries.next() {
                None => {}
                Some(_) => return Err(refuse("more than one entry".into())),
            }
        }
        let mut rest = archive.into_inner().into_inner();
        let trailing = rest
            .fill_buf()
            .map_err(|e| refuse(format!("corrupt: {e}")))?
            .len();
        if trailing > 0 || rest.get_ref().limit() > 0 {
            return Err(refuse("bytes after the end of its gzip member".into()));
        }
        let digest = Sha256Digest(hasher.finalize().into());
        if copied != entry.size || Some(digest) != entry.sha256 {
            return Err(refuse(format!(
                "{copied} bytes with SHA-256 {digest}, the index says {} bytes with {}",
                entry.size,
                entry.sha256.map(|d| d.to_hex()).unwrap_or_default()
            )));
        }
        self.finish_file(&file, at, entry.mode)?;
        self.staged.fetched += 1;
        self.staged.fetched_bytes += copied;
        Ok(FileEntry::file(entry.mode, copied, digest))
    }
}

/// Whether reflinks work here: not tried yet, yes, no.
const REFLINK_UNKNOWN: u8 = 0;
const REFLINK_WORKS: u8 = 1;
const REFLINK_UNSUPPORTED: u8 = 2;

/// One unchanged file to take from the installed tree.
struct ReuseJob {
    path: String,
    from: String,
    seen: SeenFile,
    at: std::path::PathBuf,
    entry: FileEntry,
}

/// Puts unchanged files into the staged tree; shared by the staging threads.
struct Cloner<'a> {
    app_dir: &'a Path,
    method: UnchangedFiles,
    mtime: Option<SystemTime>,
    reflink: AtomicU8,
    reflinked: AtomicUsize,
    copied: AtomicUsize,
    hardlinked: AtomicUsize,
}

impl Cloner<'_> {
    /// Gives a written file the archive's time and the index's mode.
    fn finish_file(&self, file: &File, at: &Path, mode: u32) -> Result<()> {
        if let Some(mtime) = self.mtime {
            file.set_modified(mtime)
                .map_err(|e| Error::io("set modification time of", at, e))?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set permissions of", at, e))
    }

    /// An unchanged file from the installed tree: reflink, copy or hard
    /// link (which keeps the installed time: the inode is shared); its
    /// source must still look as planned afterwards.
    fn clone_file(&self, job: &ReuseJob) -> Result<()> {
        let (from, seen, at, entry) = (&job.from, job.seen, job.at.as_path(), &job.entry);
        let source_path = self.app_dir.join(from);
        let source = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&source_path)
            .map_err(|e| Error::io("open", &source_path, e))?;
        let unchanged = |file: &File| -> Result<Option<u32>> {
            let meta = file
                .metadata()
                .map_err(|e| Error::io("inspect", &source_path, e))?;
            let same =
                meta.is_file() && meta.len() == seen.size && StatStamp::of(&meta) == seen.stamp;
            Ok(same.then_some(meta.permissions().mode() & 0o7777))
        };
        let changed = || {
            Error::integrity(
                format!("installed file {from}"),
                "it changed while the delta was staged",
            )
        };
        let Some(source_mode) = unchanged(&source)? else {
            return Err(changed());
        };
        let state = self.reflink.load(Ordering::Relaxed);
        if self.method != UnchangedFiles::Copy && state != REFLINK_UNSUPPORTED {
            let target = Stager::create_file(at)?;
            match rustix::fs::ioctl_ficlone(&target, &source) {
                Ok(()) => {
                    self.reflink.store(REFLINK_WORKS, Ordering::Relaxed);
                    self.finish_file(&target, at, entry.mode)?;
                    if unchanged(&source)?.is_none() {
                        return Err(changed());
                    }
                    self.reflinked.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if state == REFLINK_WORKS => {
                    return Err(Error::io("clone into", at, e.into()));
                }
                Err(e) => {
                    if self.reflink.swap(REFLINK_UNSUPPORTED, Ordering::Relaxed)
                        != REFLINK_UNSUPPORTED
                    {
                        tracing::debug!(error = %e, "reflinks are not supported here; unchanged files are {}", if self.method == UnchangedFiles::Hardlink { "hard-linked" } else { "copied" });
                    }
                    drop(target);
                    fs::remove_file(at).map_err(|e| Error::io("remove", at, e))?;
                }
            }
        }
        if self.method == UnchangedFiles::Hardlink && source_mode == entry.mode {
            fs::hard_link(&source_path, at).map_err(|e| Error::io("create hard link", at, e))?;
            if unchanged(&source)?.is_none() {
                return Err(changed());
            }
            self.hardlinked.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut target = Stager::create_file(at)?;
        let mut reader = &source;
        let copied =
            io::copy(&mut reader, &mut target).map_err(|e| Error::io("copy into", at, e))?;
        if copied != seen.size || unchanged(&source)?.is_none() {
            return Err(changed());
        }
        self.finish_file(&target, at, entry.mode)?;
        self.copied.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads members out of the spool: the plan's ranges, one after another.
struct SpoolReader {
    file: File,
    path: std::path::PathBuf,
    /// For each range: where it starts in the archive and in the spool.
    starts: Vec<(ByteRange, u64)>,
}

impl SpoolReader {
    fn open(path: &Path, ranges: &[ByteRange]) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut at = 0;
        let starts = ranges
            .iter()
            .map(|range| {
                let start = at;
                at += range.len();
                (*range, start)
            })
            .collect();
        Ok(SpoolReader {
            file,
            path: path.to_path_buf(),
            starts,
        })
    }

    /// The bytes of `member`, which lies inside one of the ranges.
    fn member(&mut self, member: ByteRange) -> Result<io::Take<&File>> {
        let found = self
            .starts
            .iter()
            .find(|(range, _)| range.start <= member.start && member.end <= range.end)
            .map(|(range, start)| start + (member.start - range.start))
            .ok_or_else(|| {
                Error::invalid(
                    format!("member {}..{}", member.start, member.end),
                    "not inside the fetched ranges",
                )
            })?;
        (&self.file)
            .seek(SeekFrom::Start(found))
            .map_err(|e| Error::io("seek in", &self.path, e))?;
        Ok((&self.file).take(member.len()))
    }
}

/// Whether the relative path `relative` is `path` or lies below it (for
/// the `skipped` closure of [`plan`]).
///
/// ```
/// use std::path::Path;
/// use updater_core::package::delta::is_at_or_below;
/// assert!(is_at_or_below("storage/logs/a.log", Path::new("storage/logs")));
/// assert!(!is_at_or_below("storage/logs.txt", Path::new("storage/logs")));
/// ```
pub fn is_at_or_below(relative: &str, path: &Path) -> bool {
    let path = path.as_os_str().as_bytes();
    let relative = relative.as_bytes();
    relative == path
        || (relative.len() > path.len()
            && relative.starts_with(path)
            && relative[path.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_never_exceeds_the_request_bound_and_covers_every_member() {
        let members: Vec<ByteRange> = (0..100)
            .map(|i| ByteRange::new(i * 1000, i * 1000 + 10 + i))
            .collect();
        for max in [1, 2, 7, 50, 100, 200] {
            let ranges = coalesce(&members, 0, max);
            assert!(ranges.len() <= max);
            for member in &members {
                assert!(
                    ranges
                        .iter()
                        .any(|r| r.start <= member.start && member.end <= r.end)
                );
            }
            assert!(ranges.windows(2).all(|w| w[0].end < w[1].start));
        }
    }

    #[test]
    fn paths_below_a_skipped_path_are_skipped_but_not_siblings_sharing_a_prefix() {
        assert!(is_at_or_below(
            "storage/logs/a.log",
            Path::new("storage/logs")
        ));
        assert!(is_at_or_below(".env", Path::new(".env")));
        assert!(!is_at_or_below(".env.example", Path::new(".env")));
    }
}
