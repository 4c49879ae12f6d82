//! Safe extraction of a `.tar.gz` package into a fresh staging directory.
//!
//! Every entry is validated against the rules listed in the
//! [module documentation](crate::package) before anything is written for it,
//! and any violation fails the whole package: the staging directory is
//! removed and [`Error::PackageRejected`] names the entry and the
//! [`Rejection`]. The `tar` crate is used only to parse headers (in raw mode,
//! with GNU long names and pax records applied here, under a size limit);
//! its `unpack` is never called.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use flate2::bufread::MultiGzDecoder;
use tar::{Archive, EntryType};
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Rejection, Result};

/// Buffer size for reading the compressed file, the decompressed stream and file contents.
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

/// The label used in errors that are about the archive rather than one entry.
const ARCHIVE_LABEL: &str = "(archive)";

/// Limits and layout options for [`extract_tar_gz`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOptions {
    /// The most entries the archive may hold (default 100,000).
    pub max_entries: u64,
    /// The most bytes it may unpack to, counted from the headers and again
    /// while copying (default 8 GiB).
    pub max_total_bytes: u64,
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
            max_entries: 100_000,
            max_total_bytes: 8 * 1024 * 1024 * 1024,
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
}

/// Extracts the gzip-compressed tar `archive` into `staging`, which must not
/// exist (its parent must) or be an empty directory. Blocking.
///
/// On success `staging` has mode 0755 and holds exactly the archive's
/// entries: files with their permission bits masked by 022 and their
/// modification time, directories (0755 when not listed), symlinks that stay
/// inside, hard links to earlier files. Nothing is fsynced; the caller syncs
/// what it needs.
///
/// On any error `staging` is removed entirely (unless it was refused up
/// front for not being empty); nothing outside it is ever written.
///
/// ```
/// use updater_core::package::{extract_tar_gz, ExtractOptions};
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
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn extract_tar_gz(
    archive: &Path,
    staging: &Path,
    options: &ExtractOptions,
) -> Result<ExtractionReport> {
    prepare_staging(staging)?;
    let result = Extraction::new(archive, staging, options).run();
    if let Err(error) = &result {
        tracing::warn!(archive = %archive.display(), %error, "package extraction failed; removing the staging directory");
        if let Err(e) = fs::remove_dir_all(staging) {
            tracing::error!(staging = %staging.display(), error = %e, "cannot remove the staging directory of a refused package");
        }
    }
    result
}

/// Creates `staging` (0700 while extracting), or accepts an empty directory.
fn prepare_staging(staging: &Path) -> Result<()> {
    match fs::symlink_metadata(staging) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .mode(0o700)
            .create(staging)
            .map_err(|e| Error::io("create staging directory", staging, e)),
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
            fs::set_permissions(staging, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("set permissions of", staging, e))
        }
        Ok(_) => Err(Error::precondition(
            "empty staging directory",
            format!("{} exists and is not a directory", staging.display()),
        )),
    }
}

/// What the extraction created at a path (relative to staging, `/`-separated).
#[derive(Debug)]
enum Node {
    /// A directory and the mode it gets at the end; `listed` when the archive
    /// had an entry for it (a second one is a duplicate).
    Directory { mode: u32, listed: bool },
    /// A regular file.
    File,
    /// A hard link to an earlier file.
    Hardlink,
    /// A symbolic link and its target as written.
    Symlink { target: String },
}

/// GNU long-name / pax records waiting for the entry they describe.
#[derive(Debug, Default)]
struct PendingExtensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
    /// How many extension headers were read in a row.
    count: u32,
}

/// The state of one extraction.
struct Extraction<'a> {
    archive: &'a Path,
    staging: &'a Path,
    options: &'a ExtractOptions,
    reserved: Vec<String>,
    nodes: HashMap<String, Node>,
    /// Case- and normalisation-folded path -> the path as first seen.
    folded: HashMap<String, String>,
    report: ExtractionReport,
    declared_bytes: u64,
    buffer: Vec<u8>,
}

/// An entry after its path was validated.
struct Validated {
    /// The path relative to staging, after dropping `.` and stripping.
    path: String,
    /// The same path split into its components.
    components: Vec<String>,
}

impl<'a> Extraction<'a> {
    fn new(archive: &'a Path, staging: &'a Path, options: &'a ExtractOptions) -> Self {
        Extraction {
            archive,
            staging,
            options,
            reserved: options.reserved_names.iter().map(|n| fold(n)).collect(),
            nodes: HashMap::new(),
            folded: HashMap::new(),
            report: ExtractionReport::default(),
            declared_bytes: 0,
            buffer: vec![0u8; BUFFER_SIZE],
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

    fn run(mut self) -> Result<ExtractionReport> {
        let file = File::open(self.archive).map_err(|e| Error::io("open", self.archive, e))?;
        let mut compressed = BufReader::with_capacity(BUFFER_SIZE, file);
        let magic = compressed
            .fill_buf()
            .map_err(|e| Error::io("read", self.archive, e))?;
        if !magic.starts_with(&[0x1f, 0x8b]) {
            return Err(self.corrupt(ARCHIVE_LABEL, "not a gzip file"));
        }
        let decompressed = BufReader::with_capacity(BUFFER_SIZE, MultiGzDecoder::new(compressed));
        let mut archive = Archive::new(decompressed);
        let mut previous = String::from(ARCHIVE_LABEL);
        {
            let entries = archive
                .entries()
                .map_err(|e| self.corrupt(ARCHIVE_LABEL, e))?
                .raw(true);
            let mut pending = PendingExtensions::default();
            let mut seen = 0u64;
            for entry in entries {
                let mut entry =
                    entry.map_err(|e| self.corrupt(&format!("header after {previous}"), e))?;
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
        self.apply_directory_modes()?;
        fs::set_permissions(self.staging, fs::Permissions::from_mode(STAGING_MODE))
            .map_err(|e| Error::io("set permissions of", self.staging, e))?;
        tracing::debug!(archive = %self.archive.display(), report = ?self.report, "package extracted");
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
            .map_err(|e| self.corrupt(&label, e))?;
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
        let Some(components) = components.get(self.options.strip_components..) else {
            return Ok(());
        };
        if components.is_empty() {
            return Ok(());
        }
        let components = components.to_vec();
        let path = components.join("/");
        if self.reserved.contains(&fold(&components[0])) {
            return Err(self.reject(label, Rejection::ReservedName(components[0].clone())));
        }
        let validated = Validated { path, components };
        self.check_place(&validated, kind == EntryType::Directory, label)?;

        match kind {
            EntryType::Directory => self.create_directory(&validated, mode & MODE_MASK),
            EntryType::Symlink => {
                let target = self.check_symlink(&validated, raw_link, label)?;
                self.create_parents(&validated)?;
                let at = self.staging.join(&validated.path);
                std::os::unix::fs::symlink(&target, &at)
                    .map_err(|e| Error::io("create symlink", &at, e))?;
                self.register(&validated.path, Node::Symlink { target });
                self.report.symlinks += 1;
                Ok(())
            }
            EntryType::Link => {
                let target = self.check_hardlink(raw_link, label)?;
                self.create_parents(&validated)?;
                let (from, at) = (
                    self.staging.join(&target),
                    self.staging.join(&validated.path),
                );
                fs::hard_link(&from, &at).map_err(|e| Error::io("create hard link", &at, e))?;
                self.register(&validated.path, Node::Hardlink);
                self.report.hardlinks += 1;
                Ok(())
            }
            _ => {
                self.create_parents(&validated)?;
                self.write_file(entry, &validated.path, mode & MODE_MASK, label)
            }
        }?;
        self.report.entries += 1;
        Ok(())
    }

    fn special(&self, label: &str, kind: &'static str) -> Error {
        self.reject(label, Rejection::SpecialFile { kind })
    }

    /// Checks that the entry's path is new (or an unlisted directory being
    /// listed), does not collide with another by case or normalisation, and
    /// that every parent is (or will be) a directory of ours.
    fn check_place(&self, entry: &Validated, is_directory: bool, label: &str) -> Result<()> {
        match self.nodes.get(&entry.path) {
            None => {}
            Some(Node::Directory { listed: false, .. }) if is_directory => {}
            Some(_) => return Err(self.reject(label, Rejection::Duplicate)),
        }
        let mut prefix = String::new();
        for (index, component) in entry.components.iter().enumerate() {
            if index > 0 {
                prefix.push('/');
            }
            prefix.push_str(component);
            if let Some(other) = self.folded.get(&fold(&prefix))
                && *other != prefix
            {
                return Err(self.reject(
                    label,
                    Rejection::Collision {
                        other: other.clone(),
                    },
                ));
            }
            if index + 1 == entry.components.len() {
                break;
            }
            match self.nodes.get(&prefix) {
                None | Some(Node::Directory { .. }) => {}
                Some(Node::File | Node::Hardlink) => {
                    return Err(self.reject(
                        label,
                        Rejection::ParentNotDirectory {
                            parent: prefix.clone(),
                        },
                    ));
                }
                Some(Node::Symlink { .. }) => {
                    return Err(self.reject(
                        label,
                        Rejection::ThroughSymlink {
                            link: prefix.clone(),
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    /// Creates the parents the archive did not list (already validated).
    fn create_parents(&mut self, entry: &Validated) -> Result<()> {
        let mut prefix = String::new();
        for component in &entry.components[..entry.components.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            if !self.nodes.contains_key(&prefix) {
                self.make_directory(&prefix)?;
                self.register(
                    &prefix,
                    Node::Directory {
                        mode: IMPLICIT_DIRECTORY_MODE,
                        listed: false,
                    },
                );
            }
        }
        Ok(())
    }

    fn make_directory(&mut self, path: &str) -> Result<()> {
        let at = self.staging.join(path);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&at)
            .map_err(|e| Error::io("create directory", &at, e))?;
        self.report.directories += 1;
        Ok(())
    }

    fn create_directory(&mut self, entry: &Validated, mode: u32) -> Result<()> {
        self.create_parents(entry)?;
        if !self.nodes.contains_key(&entry.path) {
            self.make_directory(&entry.path)?;
        }
        self.register(&entry.path, Node::Directory { mode, listed: true });
        Ok(())
    }

    fn register(&mut self, path: &str, node: Node) {
        self.folded
            .entry(fold(path))
            .or_insert_with(|| path.to_string());
        self.nodes.insert(path.to_string(), node);
    }

    /// The symlink target, if it is relative and stays inside staging.
    fn check_symlink(
        &self,
        entry: &Validated,
        raw_link: Option<&[u8]>,
        label: &str,
    ) -> Result<String> {
        let raw = raw_link.unwrap_or_default();
        let escape = |target: &str| {
            self.reject(
                label,
                Rejection::SymlinkEscape {
                    target: target.to_string(),
                },
            )
        };
        if raw.contains(&0) {
            return Err(self.corrupt(label, "NUL byte in symlink target"));
        }
        let target =
            std::str::from_utf8(raw).map_err(|_| self.reject(label, Rejection::NonUtf8Path))?;
        if target.is_empty() || target.starts_with('/') {
            return Err(escape(target));
        }
        self.resolve_symlink(&entry.path, target)
            .map_err(|rejection| self.reject(label, rejection))?;
        Ok(target.to_string())
    }

    /// Follows `target` from the directory of the link at `link_path` the way
    /// the kernel would, through the symlinks created so far; refuses it if it
    /// leaves staging, loops, or lands in a reserved name.
    fn resolve_symlink(&self, link_path: &str, target: &str) -> std::result::Result<(), Rejection> {
        let escape = || Rejection::SymlinkEscape {
            target: target.to_string(),
        };
        let mut resolved: Vec<&str> = link_path.split('/').collect();
        resolved.pop();
        let mut pending: VecDeque<&str> = target.split('/').collect();
        let mut hops = 0;
        while let Some(component) = pending.pop_front() {
            match component {
                "" | "." => {}
                ".." => {
                    if resolved.pop().is_none() {
                        return Err(escape());
                    }
                }
                name => {
                    resolved.push(name);
                    if let Some(Node::Symlink { target: next }) =
                        self.nodes.get(&resolved.join("/"))
                    {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS || next.starts_with('/') {
                            return Err(escape());
                        }
                        resolved.pop();
                        for part in next.split('/').rev() {
                            pending.push_front(part);
                        }
                    }
                }
            }
        }
        match resolved.first() {
            Some(first) if self.reserved.contains(&fold(first)) => {
                Err(Rejection::ReservedName((*first).to_string()))
            }
            _ => Ok(()),
        }
    }

    /// The hard link target, if it names an earlier regular file of the archive.
    fn check_hardlink(&self, raw_link: Option<&[u8]>, label: &str) -> Result<String> {
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
            .map(|c| c.join("/"))
            .ok_or_else(escape)?;
        match self.nodes.get(&target) {
            Some(Node::File) => Ok(target),
            _ => Err(escape()),
        }
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &str,
        mode: u32,
        label: &str,
    ) -> Result<()> {
        let at = self.staging.join(path);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&at)
            .map_err(|e| Error::io("create", &at, e))?;
        self.register(path, Node::File);
        let declared = entry.size();
        let mut copied = 0u64;
        loop {
            let filled = fill(entry, &mut self.buffer).map_err(|e| self.corrupt(label, e))?;
            if filled == 0 {
                break;
            }
            copied += filled as u64;
            self.report.bytes += filled as u64;
            if self.report.bytes > self.options.max_total_bytes {
                return Err(self.reject(
                    label,
                    Rejection::TooLarge {
                        limit: self.options.max_total_bytes,
                    },
                ));
            }
            file.write_all(&self.buffer[..filled])
                .map_err(|e| Error::io("write", &at, e))?;
        }
        if copied != declared {
            return Err(self.corrupt(label, format!("truncated: {copied} of {declared} bytes")));
        }
        let mtime = entry.header().mtime().map_err(|e| self.corrupt(label, e))?;
        if let Some(modified) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(mtime)) {
            file.set_modified(modified)
                .map_err(|e| Error::io("set modification time of", &at, e))?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set permissions of", &at, e))?;
        self.report.files += 1;
        Ok(())
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
        .map_err(|e| self.corrupt(&format!("end of archive after {previous}"), e))?;
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

    /// Re-checks every symlink with all of them known: a later link can make
    /// an earlier, lexically harmless target (`d/x/..`) escape.
    fn check_all_symlinks(&self) -> Result<()> {
        let mut links: Vec<(&String, &String)> = self
            .nodes
            .iter()
            .filter_map(|(path, node)| match node {
                Node::Symlink { target } => Some((path, target)),
                _ => None,
            })
            .collect();
        links.sort();
        for (path, target) in links {
            self.resolve_symlink(path, target)
                .map_err(|rejection| self.reject(path, rejection))?;
        }
        Ok(())
    }

    /// Applies directory modes last (deepest first), so a read-only directory
    /// did not block writing its children.
    fn apply_directory_modes(&self) -> Result<()> {
        let mut directories: Vec<(&String, u32)> = self
            .nodes
            .iter()
            .filter_map(|(path, node)| match node {
                Node::Directory { mode, .. } => Some((path, *mode)),
                _ => None,
            })
            .collect();
        directories.sort_by_key(|(path, _)| std::cmp::Reverse(path.matches('/').count()));
        for (path, mode) in directories {
            let at = self.staging.join(path);
            fs::set_permissions(&at, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set permissions of", &at, e))?;
        }
        Ok(())
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
    fn trailing_nuls_are_trimmed() {
        assert_eq!(trim_nul(b"name\0\0"), b"name");
        assert_eq!(trim_nul(b"\0"), b"");
    }
}
