//! The file index of a release package: what makes the archive its own delta.
//!
//! `updater release build` ([`crate::package::build`]) writes every entry of
//! the `.tar.gz` as its own gzip member (concatenated members are one valid
//! gzip stream, so `tar xzf` reads the archive as usual) and publishes, beside
//! it, this index: for every entry its path, type, mode, size, SHA-256 and the
//! byte range of its member in the archive. With the list of the installed
//! release, an updater fetches only the members of added or changed files
//! with HTTP `Range` requests and takes the rest from the installed tree
//! ([`crate::package::delta`]).
//!
//! # Format (version 1)
//!
//! One JSON object (one entry per line, for diffs and `grep`):
//!
//! ```json
//! {"format":"updater-package-index","format_version":1,"version":"1.2.0",
//!  "archive":{"name":"app-1.2.0.tar.gz","size":4242,"sha256":"9f86…"},
//!  "mtime":1767225600,
//!  "entries":[
//! {"path":"bin","type":"dir","mode":493,"offset":0,"length":61},
//! {"path":"bin/health","type":"file","mode":493,"size":45,"sha256":"2c26…","offset":61,"length":120},
//! {"path":"current","type":"symlink","mode":511,"target":"bin","offset":181,"length":64}
//! ],
//!  "trailer":{"offset":245,"length":29}}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `format`, `format_version` | `updater-package-index`, `1`; another version is refused (the update then downloads the whole package) |
//! | `version` | the release version |
//! | `archive` | name, size and SHA-256 of the `.tar.gz` it indexes |
//! | `mtime` | the one modification time of every entry (seconds since the epoch) |
//! | `entries[]` | in archive order, sorted by path (bytewise), each once |
//! | `entries[].path` | relative, `/`-separated, no `.`/`..`, UTF-8 |
//! | `entries[].type` | `file`, `dir` or `symlink` |
//! | `entries[].mode` | permission bits as extracted (the archive's, minus group/other write) |
//! | `entries[].size`, `sha256` | files only |
//! | `entries[].target` | symlinks only |
//! | `entries[].offset`, `length` | the byte range of the entry's gzip member in the archive |
//! | `trailer` | the last member: the tar end-of-archive blocks |
//!
//! The members are contiguous: the first starts at 0, each starts where the
//! previous one ends, and the trailer ends at the archive's size. An index
//! that breaks this (overlapping, out-of-bounds or reordered ranges), or
//! whose entries break any extraction rule ([`crate::error::Rejection`],
//! checked by the extractor's own code), is refused as a whole by
//! [`PackageIndex::validate`]. Its SHA-256 is bound by the release
//! signature ([`crate::package::signature`]), so every byte a delta update
//! takes from it is as trusted as the archive itself.
//!
//! JSON Schema: `docs/schemas/index.schema.json` in the repository.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::extract::{ExtractOptions, list_tar_gz};
use crate::error::{Error, Rejection, Result};
use crate::release::{ByteRange, Sha256Digest};
use crate::tree::{EntryKind, FileEntry, FileList};
use crate::version::Version;

use super::tar_header::{TarHeader, TarKind, header_blocks};

/// The value of `format`.
pub const INDEX_FORMAT: &str = "updater-package-index";

/// The `format_version` this crate reads and writes.
pub const INDEX_FORMAT_VERSION: u32 = 1;

/// A package's file index (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageIndex {
    /// Always [`INDEX_FORMAT`].
    pub format: String,
    /// Always [`INDEX_FORMAT_VERSION`].
    pub format_version: u32,
    /// The release version.
    pub version: Version,
    /// The archive it indexes.
    pub archive: IndexedArchive,
    /// The modification time of every entry, seconds since the epoch.
    pub mtime: u64,
    /// Every entry, in archive order (sorted by path).
    pub entries: Vec<IndexEntry>,
    /// The last member: the end-of-archive blocks.
    pub trailer: MemberRange,
}

/// The archive an index describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedArchive {
    /// Its file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
}

/// Where a gzip member lies in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRange {
    /// Its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub length: u64,
}

impl MemberRange {
    /// As a [`ByteRange`].
    pub fn range(&self) -> ByteRange {
        ByteRange::new(self.offset, self.offset.saturating_add(self.length))
    }
}

/// One entry of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Relative, `/`-separated path.
    pub path: String,
    /// File, directory or symlink.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Permission bits as extracted.
    pub mode: u32,
    /// Size in bytes (files).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// SHA-256 of the content (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
    /// The link target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The first byte of its gzip member in the archive.
    pub offset: u64,
    /// The length of its gzip member.
    pub length: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl IndexEntry {
    /// The byte range of its member.
    pub fn member(&self) -> ByteRange {
        ByteRange::new(self.offset, self.offset.saturating_add(self.length))
    }

    /// What extraction makes of it, as a file-list entry.
    pub fn file_entry(&self) -> Option<FileEntry> {
        match self.kind {
            EntryKind::Dir => Some(FileEntry::dir(self.mode)),
            EntryKind::File => self
                .sha256
                .map(|sha256| FileEntry::file(self.mode, self.size, sha256)),
            EntryKind::Symlink => self.target.clone().map(FileEntry::symlink),
        }
    }
}

impl PackageIndex {
    /// Parses an index; `origin` (a path or a URL without credentials)
    /// names it in errors. Checks the format only: call
    /// [`validate`](Self::validate) before trusting it.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Self> {
        let what = || format!("package index {origin}");
        #[derive(Deserialize)]
        struct Probe {
            format: Option<String>,
            format_version: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(what(), format!("not a JSON object: {e}")))?;
        if probe.format.as_deref() != Some(INDEX_FORMAT) {
            return Err(Error::invalid(
                what(),
                format!("`format` must be {INDEX_FORMAT:?}"),
            ));
        }
        match probe.format_version {
            Some(serde_json::Value::Number(n))
                if n.as_u64() == Some(u64::from(INDEX_FORMAT_VERSION)) => {}
            other => {
                return Err(Error::invalid(
                    what(),
                    format!(
                        "format_version {} is not supported (this updater reads {INDEX_FORMAT_VERSION})",
                        other
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "(missing)".into())
                    ),
                ));
            }
        }
        serde_json::from_slice(bytes).map_err(|e| Error::invalid(what(), e.to_string()))
    }

    /// The index as JSON, one entry per line.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let serialise = |e: serde_json::Error| Error::other("serialise package index", e);
        let mut out = Vec::with_capacity(self.entries.len() * 160 + 512);
        write!(
            out,
            "{{\"format\":{},\"format_version\":{},\"version\":{},\"archive\":{},\"mtime\":{},\n\"entries\":[",
            serde_json::to_string(&self.format).map_err(serialise)?,
            self.format_version,
            serde_json::to_string(&self.version).map_err(serialise)?,
            serde_json::to_string(&self.archive).map_err(serialise)?,
            self.mtime
        )
        .map_err(|e| Error::other("serialise package index", e))?;
        for (i, entry) in self.entries.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            serde_json::to_writer(&mut out, entry).map_err(serialise)?;
        }
        write!(
            out,
            "\n],\n\"trailer\":{}}}\n",
            serde_json::to_string(&self.trailer).map_err(serialise)?
        )
        .map_err(|e| Error::other("serialise package index", e))?;
        Ok(out)
    }

    /// Checks that the index describes an archive of `archive_size` bytes
    /// consistently and that its entries pass every extraction rule of
    /// `options` (the extractor's own code runs over them: the same
    /// [`Error::PackageRejected`] a full extraction would give, naming
    /// `origin` as the package). Returns what extracting the archive
    /// creates, implicit parent directories included, with the index's
    /// sizes and digests.
    ///
    /// Refused with [`Error::InvalidInput`]: another archive size; a first
    /// member not at 0; a member not starting where the previous one ended
    /// (overlapping, gapped or reordered ranges); a trailer not ending at the
    /// archive's end; empty members; paths not strictly increasing; a file
    /// without SHA-256, a symlink without target; modes not as extracted;
    /// more file bytes than `options.max_total_bytes`.
    pub fn validate(
        &self,
        origin: &str,
        archive_size: u64,
        options: &ExtractOptions,
    ) -> Result<FileList> {
        self.validate_layout(origin, archive_size, options)?;
        self.validate_rules(origin, options)
    }

    /// The cheap half of [`validate`](Self::validate): the members' layout
    /// (contiguous, in order, inside the archive), sorted unique paths,
    /// fields by type, the size limit. Reads nothing.
    pub fn validate_layout(
        &self,
        origin: &str,
        archive_size: u64,
        options: &ExtractOptions,
    ) -> Result<()> {
        let bad = |reason: String| Error::invalid(format!("package index {origin}"), reason);
        if self.archive.size != archive_size {
            return Err(bad(format!(
                "it indexes an archive of {} bytes, the asset has {archive_size}",
                self.archive.size
            )));
        }
        let mut expected_offset = 0u64;
        let mut previous: Option<&str> = None;
        let mut total = 0u64;
        for entry in &self.entries {
            let at = &entry.path;
            if entry.offset != expected_offset {
                return Err(bad(format!(
                    "{at}: its member starts at byte {}, not at {expected_offset} where the previous one ended (overlapping, gapped or reordered ranges)",
                    entry.offset
                )));
            }
            if entry.length == 0 {
                return Err(bad(format!("{at}: empty member")));
            }
            expected_offset = entry
                .offset
                .checked_add(entry.length)
                .filter(|end| *end <= archive_size)
                .ok_or_else(|| {
                    bad(format!(
                        "{at}: its member ends past the end of the archive ({archive_size} bytes)"
                    ))
                })?;
            if let Some(previous) = previous
                && previous.as_bytes() >= at.as_bytes()
            {
                return Err(bad(format!(
                    "{at}: entries must be sorted by path, each once (after {previous:?})"
                )));
            }
            previous = Some(at);
            match entry.kind {
                EntryKind::File if entry.sha256.is_none() => {
                    return Err(bad(format!("{at}: a file without SHA-256")));
                }
                EntryKind::Symlink if entry.target.is_none() => {
                    return Err(bad(format!("{at}: a symlink without target")));
                }
                EntryKind::Dir | EntryKind::Symlink if entry.size != 0 => {
                    return Err(bad(format!("{at}: only files have a size")));
                }
                _ => {}
            }
            total = total.saturating_add(entry.size);
        }
        if self.trailer.offset != expected_offset || self.trailer.length == 0 {
            return Err(bad(format!(
                "the trailer starts at byte {}, not at {expected_offset}",
                self.trailer.offset
            )));
        }
        if self.trailer.offset.checked_add(self.trailer.length) != Some(archive_size) {
            return Err(bad(format!(
                "the trailer does not end at the end of the archive ({archive_size} bytes)"
            )));
        }
        if total > options.max_total_bytes {
            return Err(Error::PackageRejected {
                package: PathBuf::from(origin),
                entry: "(archive)".into(),
                rejection: Rejection::TooLarge {
                    limit: options.max_total_bytes,
                },
            });
        }
        if options.strip_components > 0 {
            return Err(bad(
                "strip_components is configured: this package's paths would be cut".into(),
            ));
        }
        Ok(())
    }

    /// The other half of [`validate`](Self::validate), to run after
    /// [`validate_layout`](Self::validate_layout): every extraction rule
    /// over the entries (the extractor's own code), and the list of what
    /// extraction creates.
    pub fn validate_rules(&self, origin: &str, options: &ExtractOptions) -> Result<FileList> {
        let bad = |reason: String| Error::invalid(format!("package index {origin}"), reason);
        let specs = self.entries.iter().map(|entry| RuleEntry {
            path: entry.path.as_bytes(),
            kind: match entry.kind {
                EntryKind::File => TarKind::File,
                EntryKind::Dir => TarKind::Dir,
                EntryKind::Symlink => TarKind::Symlink,
            },
            mode: entry.mode,
            target: entry.target.as_deref().map(str::as_bytes),
        });
        let mut list = check_rules(specs, Path::new(origin), options)?;
        for entry in &self.entries {
            let Some(listed) = list.get(&entry.path) else {
                return Err(bad(format!(
                    "{}: not a normalised path (extraction names it differently)",
                    entry.path
                )));
            };
            if listed.kind != entry.kind || listed.mode != entry.mode {
                return Err(bad(format!(
                    "{}: mode {:o} is not what extraction gives ({:o})",
                    entry.path, entry.mode, listed.mode
                )));
            }
            if let Some(file) = entry.file_entry() {
                list.insert(entry.path.clone(), file);
            }
        }
        Ok(list)
    }
}

/// One entry to check against the extraction rules.
pub(crate) struct RuleEntry<'a> {
    pub(crate) path: &'a [u8],
    pub(crate) kind: TarKind,
    pub(crate) mode: u32,
    pub(crate) target: Option<&'a [u8]>,
}

/// Runs the extractor's own rules ([`list_tar_gz`]) over `entries`, as the
/// headers of an archive without content (a few hundred bytes per entry, in
/// a temporary file): the same errors a package holding them would get,
/// with `label` as the package. Returns what extraction would create
/// (files listed empty).
pub(crate) fn check_rules<'a>(
    entries: impl Iterator<Item = RuleEntry<'a>>,
    label: &Path,
    options: &ExtractOptions,
) -> Result<FileList> {
    let mut file = tempfile::Builder::new()
        .prefix(".updater-rules-")
        .suffix(".tar.gz")
        .tempfile()
        .map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
    let temp = file.path().to_path_buf();
    {
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 20, file.as_file_mut()),
            // Stored blocks: headers only, read once; compressing them costs more than it saves.
            flate2::Compression::none(),
        );
        for entry in entries {
            let header = header_blocks(&TarHeader {
                path: entry.path,
                kind: entry.kind,
                size: 0,
                mode: entry.mode,
                mtime: 0,
                uid: 0,
                gid: 0,
                link_target: entry.target,
            });
            gz.write_all(&header)
                .map_err(|e| Error::io("write", &temp, e))?;
        }
        gz.write_all(&[0u8; 1024])
            .map_err(|e| Error::io("write", &temp, e))?;
        gz.finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| Error::io("write", &temp, e))?;
    }
    let options = ExtractOptions {
        prescan: false,
        ..options.clone()
    };
    list_tar_gz(&temp, &options).map_err(|error| match error {
        Error::PackageRejected {
            entry, rejection, ..
        } => Error::PackageRejected {
            package: label.to_path_buf(),
            entry,
            rejection,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, offset: u64, length: u64) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: 1,
            sha256: Some(Sha256Digest([1; 32])),
            target: None,
            offset,
            length,
        }
    }

    fn index(entries: Vec<IndexEntry>, trailer: MemberRange, size: u64) -> PackageIndex {
        PackageIndex {
            format: INDEX_FORMAT.into(),
            format_version: INDEX_FORMAT_VERSION,
            version: Version::new(1, 0, 0),
            archive: IndexedArchive {
                name: "app.tar.gz".into(),
                size,
                sha256: Sha256Digest([0; 32]),
            },
            mtime: 0,
            entries,
            trailer,
        }
    }

    #[test]
    fn contiguous_sorted_members_validate_and_list_implicit_parents() {
        let good = index(
            vec![entry("a/x", 0, 10), entry("b", 10, 5)],
            MemberRange {
                offset: 15,
                length: 5,
            },
            20,
        );
        let list = good
            .validate("i.json", 20, &ExtractOptions::default())
            .unwrap();
        assert_eq!(list.get("a").map(|e| e.kind), Some(EntryKind::Dir));
        assert_eq!(
            list.get("a/x").and_then(|e| e.sha256),
            Some(Sha256Digest([1; 32]))
        );
        let json = good.to_json().unwrap();
        assert_eq!(PackageIndex::from_json(&json, "i.json").unwrap(), good);
    }

    #[test]
    fn overlapping_gapped_reordered_and_out_of_bounds_members_are_refused() {
        let trailer = |offset| MemberRange { offset, length: 5 };
        let cases = [
            index(vec![entry("a", 0, 10), entry("b", 8, 5)], trailer(13), 18),
            index(vec![entry("a", 0, 10), entry("b", 12, 5)], trailer(17), 22),
            index(vec![entry("b", 0, 10), entry("a", 10, 5)], trailer(15), 20),
            index(vec![entry("a", 0, 10), entry("b", 10, 50)], trailer(60), 20),
            index(vec![entry("a", 0, 10)], trailer(10), 30),
        ];
        for (i, case) in cases.iter().enumerate() {
            let size = case.archive.size;
            assert!(
                matches!(
                    case.validate("i.json", size, &ExtractOptions::default()),
                    Err(Error::InvalidInput { .. })
                ),
                "case {i}"
            );
        }
    }

    #[test]
    fn entries_breaking_an_extraction_rule_get_the_extractors_error() {
        let mut link = entry("link", 0, 10);
        link.kind = EntryKind::Symlink;
        link.sha256 = None;
        link.size = 0;
        link.mode = 0o777;
        link.target = Some("../../etc".into());
        let bad = index(
            vec![link],
            MemberRange {
                offset: 10,
                length: 5,
            },
            15,
        );
        assert!(matches!(
            bad.validate("i.json", 15, &ExtractOptions::default()),
            Err(Error::PackageRejected { rejection: Rejection::SymlinkEscape { .. }, ref entry, .. }) if entry == "link"
        ));
    }
}
