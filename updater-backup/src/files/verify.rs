//! Verification of a files archive against its manifest: every byte of the
//! archive is read and checked, entries in parallel.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::format::{EntryType, HeaderFields, MemberReader, header_bytes, padding};
use super::manifest::{Manifest, ManifestEntry};
use crate::error::{BackupError, Result};

pub(crate) fn fields(entry: &ManifestEntry) -> HeaderFields<'_> {
    HeaderFields {
        path: &entry.path,
        kind: entry.kind,
        size: entry.size,
        mode: entry.mode,
        mtime: entry.mtime,
        uid: entry.uid,
        gid: entry.gid,
        link_target: entry.target.as_deref(),
    }
}

/// Checks the archive's layout (entries contiguous, end member last, size as
/// recorded), then decodes every entry and compares header, SHA-256 and padding.
pub(crate) fn verify_archive(
    archive_path: &Path,
    manifest: &Manifest,
    pool: &rayon::ThreadPool,
) -> Result<()> {
    let subject = archive_path.display().to_string();
    let archive = File::open(archive_path).map_err(|e| BackupError::io("open", archive_path, e))?;
    let size = archive
        .metadata()
        .map_err(|e| BackupError::io("inspect", archive_path, e))?
        .len();
    check_layout(manifest, size).map_err(|reason| BackupError::integrity(&subject, reason))?;
    pool.install(|| {
        manifest
            .entries
            .par_iter()
            .try_for_each(|entry| check_entry(&archive, entry, &subject))
    })?;
    let trailer = &manifest.trailer;
    let expected =
        super::create::end_member().map_err(|e| BackupError::io("compress", archive_path, e))?;
    let mut end = vec![0u8; expected.len()];
    let read = trailer.end_length == expected.len() as u64
        && archive.read_exact_at(&mut end, trailer.end_offset).is_ok();
    if !read || end != expected {
        return Err(BackupError::integrity(
            &subject,
            "bad end-of-archive marker",
        ));
    }
    Ok(())
}

fn check_layout(manifest: &Manifest, size: u64) -> std::result::Result<(), String> {
    let mut expected = 0u64;
    for entry in &manifest.entries {
        if entry.offset != expected || entry.length == 0 {
            return Err(format!(
                "entry {:?} is not where the manifest says",
                entry.path
            ));
        }
        expected += entry.length;
    }
    let trailer = &manifest.trailer;
    if trailer.end_offset != expected
        || trailer.end_offset + trailer.end_length != trailer.archive_size
    {
        return Err("end-of-archive marker is not where the manifest says".into());
    }
    if size != trailer.archive_size {
        return Err(format!(
            "archive is {size} bytes, manifest says {}",
            trailer.archive_size
        ));
    }
    Ok(())
}

/// Decodes one entry and compares it with its manifest line.
pub(crate) fn check_entry(archive: &File, entry: &ManifestEntry, subject: &str) -> Result<()> {
    let fail = |reason: String| {
        BackupError::integrity(format!("{subject} entry {:?}", entry.path), reason)
    };
    let mut reader = MemberReader::new(archive, entry.offset, entry.length);
    read_header(&mut reader, entry).map_err(fail)?;
    if entry.kind == EntryType::File {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; (entry.size as usize).clamp(1, 256 * 1024)];
        let mut left = entry.size;
        while left > 0 {
            let want = left.min(buffer.len() as u64) as usize;
            reader
                .read_exact(&mut buffer[..want])
                .map_err(|e| fail(e.to_string()))?;
            hasher.update(&buffer[..want]);
            left -= want as u64;
        }
        let sha = hex::encode(hasher.finalize());
        if entry.sha256.as_deref() != Some(sha.as_str()) {
            return Err(fail("SHA-256 does not match the manifest".into()));
        }
    }
    finish_entry(&mut reader, entry).map_err(fail)
}

/// Reads and compares the entry's header block(s).
pub(crate) fn read_header(
    reader: &mut MemberReader<'_>,
    entry: &ManifestEntry,
) -> std::result::Result<(), String> {
    let expected = header_bytes(&fields(entry));
    let mut actual = vec![0u8; expected.len()];
    reader.read_exact(&mut actual).map_err(|e| e.to_string())?;
    if actual != expected {
        return Err("tar header does not match the manifest".into());
    }
    Ok(())
}

/// Reads the padding and checks nothing follows.
pub(crate) fn finish_entry(
    reader: &mut MemberReader<'_>,
    entry: &ManifestEntry,
) -> std::result::Result<(), String> {
    let pad = if entry.kind == EntryType::File {
        padding(entry.size)
    } else {
        0
    };
    let mut zeros = vec![0u8; pad as usize];
    reader.read_exact(&mut zeros).map_err(|e| e.to_string())?;
    if zeros.iter().any(|&b| b != 0) {
        return Err("non-zero padding".into());
    }
    let mut extra = [0u8; 1];
    let n = reader.read(&mut extra).map_err(|e| e.to_string())?;
    if n != 0 || !reader.at_end() {
        return Err("unexpected data after the entry".into());
    }
    if reader.raw_crc() != entry.packed_crc32 {
        return Err("CRC-32 of the compressed bytes does not match the manifest".into());
    }
    Ok(())
}
