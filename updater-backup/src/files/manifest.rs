//! The manifest stored beside each files archive: JSON lines, one header, one
//! line per entry in archive order, one trailer.
//!
//! Each entry carries what restore and verify need (path, type, size, mode,
//! mtime with nanoseconds, owner, SHA-256, symlink target), what the next
//! incremental backup needs to decide "unchanged" (inode, ctime) and where the
//! entry's gzip members are in the archive (offset, length).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::format::EntryType;
use crate::error::{BackupError, Result};

/// The manifest format written by this version (`2` added hard-link entries).
pub const MANIFEST_FORMAT: &str = "updater-backup/files/2";

/// Earlier manifest formats this version still reads.
const OLDER_FORMATS: [&str; 1] = ["updater-backup/files/1"];

/// One archived entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the root, `/`-separated, no trailing slash.
    pub path: String,
    /// File, directory or symlink.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// SHA-256 of the content (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Link target: what a symlink points to, or the path of the file a
    /// hard link is another name of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Inode number when backed up (change detection only).
    pub ino: u64,
    /// Status-change time when backed up (change detection only).
    pub ctime: i64,
    /// Nanoseconds part of `ctime`.
    pub ctime_nsec: u32,
    /// Offset of the entry's first gzip member in the archive.
    pub offset: u64,
    /// Total length of the entry's gzip members.
    pub length: u64,
    /// CRC-32 of those compressed bytes (catches damage that decoding
    /// cannot see, such as flipped padding bits).
    pub packed_crc32: u32,
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestHeader {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The directory that was backed up.
    pub source: PathBuf,
    /// The exclude patterns in force (restore leaves these paths alone).
    pub excludes: Vec<String>,
    /// When the backup started.
    pub created_at: DateTime<Utc>,
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTrailer {
    /// Number of entry lines.
    pub entries: u64,
    /// Offset of the end-of-archive member.
    pub end_offset: u64,
    /// Length of the end-of-archive member.
    pub end_length: u64,
    /// Size of the whole archive.
    pub archive_size: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header(ManifestHeader),
    Entry(ManifestEntry),
    Trailer(ManifestTrailer),
}

/// A whole manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The header.
    pub header: ManifestHeader,
    /// The entries, in archive order.
    pub entries: Vec<ManifestEntry>,
    /// The trailer.
    pub trailer: ManifestTrailer,
}

impl Manifest {
    /// Writes the manifest to `path` (mode 0600) and returns its size and SHA-256.
    pub fn write(&self, path: &Path) -> Result<(u64, String)> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| BackupError::io("create", path, e))?;
        let mut writer = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            written: 0,
        };
        let json_error = |source| BackupError::Json {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let mut line = |value: &Line| -> Result<()> {
            serde_json::to_writer(&mut writer, value).map_err(json_error)?;
            writer
                .write_all(b"\n")
                .map_err(|e| BackupError::io("write", path, e))
        };
        line(&Line::Header(self.header.clone()))?;
        for entry in &self.entries {
            // Serialising through the enum needs ownership; entries are small.
            line(&Line::Entry(entry.clone()))?;
        }
        line(&Line::Trailer(self.trailer.clone()))?;
        writer
            .inner
            .flush()
            .map_err(|e| BackupError::io("write", path, e))?;
        Ok((writer.written, hex::encode(writer.hasher.finalize())))
    }

    /// Reads and checks a manifest: a header of a known format, entries whose
    /// paths are safe relative paths below a directory listed before them,
    /// hard links naming a file listed before them, and a trailer whose
    /// count matches.
    pub fn read(path: &Path) -> Result<Self> {
        let subject = path.display().to_string();
        let file = File::open(path).map_err(|e| BackupError::io("open", path, e))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        let mut header = None;
        let mut trailer = None;
        let mut entries = Vec::new();
        let mut seen: HashMap<String, EntryType> = HashMap::new();
        for (number, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| BackupError::io("read", path, e))?;
            if trailer.is_some() {
                return Err(BackupError::integrity(&subject, "data after the trailer"));
            }
            let parsed: Line = serde_json::from_str(&line).map_err(|e| {
                BackupError::integrity(&subject, format!("line {}: {e}", number + 1))
            })?;
            match parsed {
                Line::Header(h) if number == 0 => header = Some(h),
                Line::Entry(entry) if header.is_some() => {
                    check_entry(&entry, &seen).map_err(|reason| {
                        BackupError::integrity(
                            &subject,
                            format!("entry {:?}: {reason}", entry.path),
                        )
                    })?;
                    seen.insert(entry.path.clone(), entry.kind);
                    entries.push(entry);
                }
                Line::Trailer(t) if header.is_some() => trailer = Some(t),
                _ => {
                    return Err(BackupError::integrity(
                        &subject,
                        format!("line {} is out of order", number + 1),
                    ));
                }
            }
        }
        let (Some(header), Some(trailer)) = (header, trailer) else {
            return Err(BackupError::integrity(
                &subject,
                "truncated (no header or trailer)",
            ));
        };
        if header.format != MANIFEST_FORMAT && !OLDER_FORMATS.contains(&header.format.as_str()) {
            return Err(BackupError::integrity(
                &subject,
                format!("unknown format {:?}", header.format),
            ));
        }
        if trailer.entries != entries.len() as u64 {
            return Err(BackupError::integrity(
                &subject,
                "entry count does not match the trailer",
            ));
        }
        Ok(Manifest {
            header,
            entries,
            trailer,
        })
    }

    /// The entries by path.
    pub fn by_path(&self) -> HashMap<&str, &ManifestEntry> {
        self.entries.iter().map(|e| (e.path.as_str(), e)).collect()
    }
}

/// Checks one entry against those listed before it: a safe relative path,
/// not listed twice, whose parent is a directory entry (so no entry is ever
/// written through a symlink), and for a hard link, a safe target naming a
/// regular file listed before.
fn check_entry(
    entry: &ManifestEntry,
    seen: &HashMap<String, EntryType>,
) -> std::result::Result<(), &'static str> {
    check_relative_path(&entry.path)?;
    if seen.contains_key(&entry.path) {
        return Err("listed twice");
    }
    if let Some((parent, _)) = entry.path.rsplit_once('/')
        && seen.get(parent) != Some(&EntryType::Dir)
    {
        return Err("its parent is not a directory listed before it");
    }
    match entry.kind {
        EntryType::HardLink => {
            let target = entry
                .target
                .as_deref()
                .ok_or("hard link without a target")?;
            check_relative_path(target).map_err(|_| "hard link target is not a relative path")?;
            if seen.get(target) != Some(&EntryType::File) {
                return Err("hard link target is not a file listed before it");
            }
            if entry.size != 0 || entry.sha256.is_some() {
                return Err("hard link with data");
            }
        }
        EntryType::Symlink if entry.target.is_none() => return Err("symlink without a target"),
        _ => {}
    }
    Ok(())
}

/// Checks that `path` is a plain relative path: no empty, `.` or `..`
/// components, no leading `/`.
pub(crate) fn check_relative_path(path: &str) -> std::result::Result<(), &'static str> {
    if path.is_empty() || path.starts_with('/') {
        return Err("not a relative path");
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("has an empty, `.` or `..` component");
    }
    if path.contains('\0') {
        return Err("contains NUL");
    }
    Ok(())
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(path: &str, kind: EntryType, target: Option<&str>) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind,
            size: if kind == EntryType::File { 3 } else { 0 },
            mode: 0o644,
            mtime: 1,
            mtime_nsec: 2,
            uid: 0,
            gid: 0,
            sha256: (kind == EntryType::File).then(|| "00".into()),
            target: target.map(Into::into),
            ino: 9,
            ctime: 1,
            ctime_nsec: 0,
            offset: 0,
            length: 40,
            packed_crc32: 7,
        }
    }

    fn manifest_of(entries: Vec<ManifestEntry>) -> Manifest {
        Manifest {
            header: ManifestHeader {
                format: MANIFEST_FORMAT.into(),
                source: "/srv/app".into(),
                excludes: vec!["storage/logs".into()],
                created_at: Utc::now(),
            },
            trailer: ManifestTrailer {
                entries: entries.len() as u64,
                end_offset: 40,
                end_length: 30,
                archive_size: 70,
            },
            entries,
        }
    }

    #[test]
    fn entries_below_a_symlink_and_hard_links_to_unknown_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            vec![
                line("etc", EntryType::Symlink, Some("/etc")),
                line("etc/passwd", EntryType::File, None),
            ],
            vec![line("missing-parent/file", EntryType::File, None)],
            vec![line("link", EntryType::HardLink, Some("later"))],
            vec![
                line("d", EntryType::Dir, None),
                line("link", EntryType::HardLink, Some("d")),
            ],
            vec![
                line("f", EntryType::File, None),
                line("link", EntryType::HardLink, Some("../f")),
            ],
            vec![
                line("f", EntryType::File, None),
                line("f", EntryType::File, None),
            ],
        ];
        for (n, entries) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("m{n}.jsonl"));
            manifest_of(entries).write(&path).unwrap();
            let error = Manifest::read(&path).unwrap_err();
            assert!(
                matches!(&error, BackupError::Integrity { reason, .. } if reason.starts_with("entry ")),
                "case {n}: {error}"
            );
        }
        let path = dir.path().join("good.jsonl");
        let good = manifest_of(vec![
            line("d", EntryType::Dir, None),
            line("d/f", EntryType::File, None),
            line("g", EntryType::HardLink, Some("d/f")),
        ]);
        good.write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), good);
    }

    #[test]
    fn a_manifest_round_trips_and_a_truncated_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest_of(vec![
            line("a", EntryType::Dir, None),
            line("a/b.txt", EntryType::File, None),
        ]);
        let path = dir.path().join("m.jsonl");
        let (size, sha) = manifest.write(&path).unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        assert_eq!(
            sha,
            hex::encode(Sha256::digest(std::fs::read(&path).unwrap()))
        );
        assert_eq!(Manifest::read(&path).unwrap(), manifest);

        let text = std::fs::read_to_string(&path).unwrap();
        let cut: Vec<&str> = text.lines().take(2).collect();
        std::fs::write(&path, cut.join("\n")).unwrap();
        assert!(Manifest::read(&path).unwrap_err().is_integrity());
    }

    #[test]
    fn unsafe_entry_paths_are_refused() {
        for bad in ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/"] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
        assert!(check_relative_path("a/b.c").is_ok());
    }
}
