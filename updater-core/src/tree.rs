//! File lists: what a release tree holds, entry by entry.
//!
//! The updater records the [`FileList`] of every release it installs (path,
//! kind, mode, size, SHA-256, and the size/mtime/inode it had on disk right
//! after installation). It is how the updater tells the application's own
//! data from the release's files: anything in the live tree that the
//! installed release did not ship is application data (a database file,
//! uploads, sessions, caches) and is carried into the next release, and a
//! shipped file whose content changed was modified in place (see
//! [`install::data`](crate::install::data)).
//!
//! Paths are relative, `/`-separated, without `.` or `..` components, and
//! valid UTF-8 (the extractor refuses anything else).
//!
//! ```
//! use updater_core::tree::{EntryKind, FileList};
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir(dir.path().join("public"))?;
//! std::fs::write(dir.path().join("public/index.html"), "hello")?;
//! let list = FileList::from_dir(dir.path())?;
//! let entry = list.get("public/index.html").expect("listed");
//! assert_eq!((entry.kind, entry.size), (EntryKind::File, 5));
//! assert_eq!(list.get("public").map(|e| e.kind), Some(EntryKind::Dir));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{Error, Result};
use crate::release::Sha256Digest;

/// The file format version written in the first line of a saved list.
pub const FORMAT: u32 = 1;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file (hard links are listed as files).
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// How a file looked on disk right after it was installed: when a live file
/// still has the same size, modification time and inode, it was not
/// modified and need not be hashed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatStamp {
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Inode number (renames keep it; most editors write a new file).
    pub ino: u64,
}

impl StatStamp {
    /// The stamp of `metadata`.
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        StatStamp {
            mtime_ns: metadata
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(metadata.mtime_nsec()),
            ino: metadata.ino(),
        }
    }
}

/// One entry of a release tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (`0o644`...).
    pub mode: u32,
    /// Size in bytes (files only; 0 otherwise).
    #[serde(default)]
    pub size: u64,
    /// SHA-256 of the content (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
    /// The link target (symlinks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How it looked on disk once installed (absent in a package's own list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<StatStamp>,
}

impl FileEntry {
    /// A directory entry.
    pub fn dir(mode: u32) -> Self {
        FileEntry {
            kind: EntryKind::Dir,
            mode,
            size: 0,
            sha256: None,
            target: None,
            stamp: None,
        }
    }

    /// A regular file entry.
    pub fn file(mode: u32, size: u64, sha256: Sha256Digest) -> Self {
        FileEntry {
            kind: EntryKind::File,
            mode,
            size,
            sha256: Some(sha256),
            target: None,
            stamp: None,
        }
    }

    /// A symlink entry.
    pub fn symlink(target: impl Into<String>) -> Self {
        FileEntry {
            kind: EntryKind::Symlink,
            mode: 0o777,
            size: 0,
            sha256: None,
            target: Some(target.into()),
            stamp: None,
        }
    }

    /// Whether two entries have the same content (kind, size, digest or
    /// target), ignoring modes and stamps.
    pub fn same_content(&self, other: &FileEntry) -> bool {
        self.kind == other.kind
            && match self.kind {
                EntryKind::File => self.size == other.size && self.sha256 == other.sha256,
                EntryKind::Symlink => self.target == other.target,
                EntryKind::Dir => true,
            }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    entries: usize,
}

#[derive(Serialize, Deserialize)]
struct Line {
    path: String,
    #[serde(flatten)]
    entry: FileEntry,
}

/// Every entry of a release tree, by relative path (sorted, so a directory
/// comes before what it holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileList {
    entries: BTreeMap<String, FileEntry>,
}

impl FileList {
    /// An empty list.
    pub fn new() -> Self {
        FileList::default()
    }

    /// Adds or replaces the entry at `path` (relative, `/`-separated).
    pub fn insert(&mut self, path: impl Into<String>, entry: FileEntry) {
        self.entries.insert(path.into(), entry);
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&FileEntry> {
        self.entries.get(path)
    }

    /// Whether `path` is listed.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// Whether anything is listed at or below `path`.
    pub fn contains_at_or_below(&self, path: &str) -> bool {
        if self.entries.contains_key(path) {
            return true;
        }
        let prefix = format!("{path}/");
        self.entries
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// Every entry, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FileEntry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of the regular files.
    pub fn total_bytes(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum()
    }

    /// Lists the tree under `root` (not following symlinks), hashing every
    /// regular file. Names that are not UTF-8 are refused.
    pub fn from_dir(root: &Path) -> Result<FileList> {
        let mut list = FileList::new();
        let mut pending = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = pending.pop() {
            let read = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
            for item in read {
                let item = item.map_err(|e| Error::io("list", &dir, e))?;
                let name = item.file_name().into_string().map_err(|name| {
                    Error::invalid(
                        format!("file name {name:?} in {}", dir.display()),
                        "not valid UTF-8",
                    )
                })?;
                let relative = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let path = item.path();
                let metadata =
                    std::fs::symlink_metadata(&path).map_err(|e| Error::io("inspect", &path, e))?;
                let mode = metadata.permissions().mode() & 0o7777;
                let entry = if metadata.file_type().is_symlink() {
                    let target =
                        std::fs::read_link(&path).map_err(|e| Error::io("read link", &path, e))?;
                    FileEntry::symlink(target.to_string_lossy().into_owned())
                } else if metadata.is_dir() {
                    pending.push((path.clone(), relative.clone()));
                    FileEntry::dir(mode)
                } else if metadata.is_file() {
                    let (digest, size) = crate::package::sha256_file(&path)?;
                    FileEntry::file(mode, size, digest)
                } else {
                    continue; // sockets, FIFOs: never part of a release
                };
                list.insert(
                    relative,
                    FileEntry {
                        stamp: Some(StatStamp::of(&metadata)),
                        ..entry
                    },
                );
            }
        }
        Ok(list)
    }

    /// Records how every entry looks on disk under `root` now (size stays
    /// the listed one): called on a freshly extracted tree, whose stamps stay
    /// valid when the swap renames it into place.
    pub fn stamp(&mut self, root: &Path) -> Result<()> {
        for (path, entry) in &mut self.entries {
            let full = root.join(path);
            let metadata =
                std::fs::symlink_metadata(&full).map_err(|e| Error::io("inspect", &full, e))?;
            entry.stamp = Some(StatStamp::of(&metadata));
        }
        Ok(())
    }

    /// Writes the list durably (one JSON object per line after a header line).
    pub fn save(&self, path: &Path) -> Result<()> {
        let serialise = |e: serde_json::Error| Error::other("serialise file list", e);
        let mut bytes = Vec::with_capacity(self.entries.len() * 128);
        let header = Header {
            format: FORMAT,
            entries: self.entries.len(),
        };
        serde_json::to_writer(&mut bytes, &header).map_err(serialise)?;
        bytes.push(b'\n');
        for (path, entry) in &self.entries {
            let line = Line {
                path: path.clone(),
                entry: entry.clone(),
            };
            serde_json::to_writer(&mut bytes, &line).map_err(serialise)?;
            bytes.push(b'\n');
        }
        durable::write_atomic(path, &bytes)
    }

    /// Reads a list written by [`save`](Self::save); `None` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<FileList>> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let bad = |reason: String| Error::invalid(format!("file list {}", path.display()), reason);
        let mut lines = std::io::BufReader::new(file).lines();
        let header: Header = match lines.next() {
            Some(line) => {
                let line = line.map_err(|e| Error::io("read", path, e))?;
                serde_json::from_str(&line).map_err(|e| bad(format!("header: {e}")))?
            }
            None => return Err(bad("empty file".into())),
        };
        if header.format != FORMAT {
            return Err(bad(format!(
                "format {} (this updater reads {FORMAT})",
                header.format
            )));
        }
        let mut list = FileList::new();
        for (index, line) in lines.enumerate() {
            let line = line.map_err(|e| Error::io("read", path, e))?;
            let Line { path: entry_path, entry } = serde_json::from_str(&line)
                .map_err(|e| bad(format!("line {}: {e}", index + 2)))?;
            list.insert(entry_path, entry);
        }
        if list.len() != header.entries {
            return Err(bad(format!(
                "{} entries announced, {} read (truncated?)",
                header.entries,
                list.len()
            )));
        }
        Ok(Some(list))
    }

    /// The absolute path of `relative` under `root`.
    pub fn resolve(root: &Path, relative: &str) -> PathBuf {
        root.join(relative)
    }
}

impl FromIterator<(String, FileEntry)> for FileList {
    fn from_iter<I: IntoIterator<Item = (String, FileEntry)>>(iter: I) -> Self {
        FileList {
            entries: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_list_loads_back_equal_and_a_truncated_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tree/src")).unwrap();
        std::fs::write(dir.path().join("tree/src/a.php"), "a").unwrap();
        std::os::unix::fs::symlink("src/a.php", dir.path().join("tree/link")).unwrap();
        let list = FileList::from_dir(&dir.path().join("tree")).unwrap();
        assert_eq!(list.len(), 3);
        let path = dir.path().join("list.jsonl");
        list.save(&path).unwrap();
        assert_eq!(FileList::load(&path).unwrap(), Some(list.clone()));

        let text = std::fs::read_to_string(&path).unwrap();
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, cut).unwrap();
        assert!(matches!(
            FileList::load(&path),
            Err(Error::InvalidInput { reason, .. }) if reason.contains("truncated")
        ));
        assert_eq!(FileList::load(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn at_or_below_finds_descendants_but_not_siblings_sharing_a_prefix() {
        let mut list = FileList::new();
        list.insert("database/migrations/1.php", FileEntry::symlink("x"));
        list.insert("databases.txt", FileEntry::symlink("x"));
        assert!(list.contains_at_or_below("database"));
        assert!(list.contains_at_or_below("database/migrations"));
        assert!(!list.contains_at_or_below("database/app.sqlite"));
        assert!(!list.contains_at_or_below("data"));
    }
}
