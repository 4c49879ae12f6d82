//! Creating a files archive: walk, decide per entry (copy from the base archive
//! or encode), encode in parallel batches, write in order on a writer thread.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use updater_core::progress::{Progress, ProgressSink};

use super::format::{
    EntryType, HeaderFields, MemberEncoder, header_bytes, looks_incompressible, padding,
};
use super::manifest::ManifestEntry;
use crate::error::{BackupError, Result};
use crate::exclude::ExcludeSet;

/// Files up to this size are read, hashed and encoded whole by one worker.
const SMALL_FILE: u64 = 8 << 20;
/// Larger files are cut into gzip members of this many bytes, encoded in parallel.
const CHUNK: u64 = 4 << 20;
/// Input bytes encoded per parallel batch (bounds memory).
const BATCH_BYTES: u64 = 32 << 20;
/// Entries per parallel batch.
const BATCH_ENTRIES: usize = 2048;
/// Bytes sampled to decide whether data is worth deflating.
const SAMPLE: usize = 4096;

/// What one create did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateStats {
    /// Entries archived (files, directories, symlinks).
    pub entries: u64,
    /// Regular files archived (each inode once).
    pub files: u64,
    /// Hard links archived (further names of a file archived earlier).
    pub hard_links: u64,
    /// Entries read and compressed now.
    pub encoded: u64,
    /// Entries copied unchanged (compressed bytes) from the base backup.
    pub copied: u64,
    /// Source bytes read from the tree.
    pub bytes_read: u64,
    /// Total size of the regular files archived.
    pub bytes_total: u64,
    /// Size of the archive.
    pub archive_size: u64,
    /// The backup whose archive unchanged entries were copied from.
    pub base: Option<String>,
    /// Wall time of the create.
    pub elapsed: Duration,
}

/// One entry found by the walk.
#[derive(Debug, Clone)]
pub(crate) struct Walked {
    pub(crate) rel: String,
    pub(crate) abs: PathBuf,
    pub(crate) entry: ManifestEntry,
}

/// Lists the tree under `root` in archive order (sorted by name, parents
/// first), pruning excluded paths. Special files are skipped with a warning.
///
/// A regular file with several names inside the tree (same device and inode)
/// is listed once as a [`EntryType::File`], at its first name in archive
/// order; its other names become [`EntryType::HardLink`] entries pointing at
/// that first name.
pub(crate) fn walk(root: &Path, excludes: &ExcludeSet) -> Result<Vec<Walked>> {
    let mut out = Vec::new();
    let mut first_names: HashMap<(u64, u64), String> = HashMap::new();
    let walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.path()
                .strip_prefix(root)
                .ok()
                .and_then(Path::to_str)
                .is_none_or(|rel| !excludes.matches_exactly(rel))
        });
    for item in walker {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf());
            let source = e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("file-system loop"));
            BackupError::io("walk", path, source)
        })?;
        let abs = item.path().to_path_buf();
        let rel = abs
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .ok_or_else(|| BackupError::NonUtf8Path {
                path: abs.to_string_lossy().into_owned(),
            })?
            .to_string();
        let meta = item.metadata().map_err(|e| {
            let source = e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("metadata"));
            BackupError::io("inspect", &abs, source)
        })?;
        let file_type = meta.file_type();
        let (kind, target) = if file_type.is_file() {
            if meta.nlink() > 1 {
                match first_names.entry((meta.dev(), meta.ino())) {
                    std::collections::hash_map::Entry::Occupied(first) => {
                        (EntryType::HardLink, Some(first.get().clone()))
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(rel.clone());
                        (EntryType::File, None)
                    }
                }
            } else {
                (EntryType::File, None)
            }
        } else if file_type.is_dir() {
            (EntryType::Dir, None)
        } else if file_type.is_symlink() {
            let target = fs::read_link(&abs).map_err(|e| BackupError::io("read link", &abs, e))?;
            let target = target
                .to_str()
                .ok_or_else(|| BackupError::NonUtf8Path {
                    path: abs.to_string_lossy().into_owned(),
                })?
                .to_string();
            (EntryType::Symlink, Some(target))
        } else {
            tracing::warn!(path = %abs.display(), "skipping a special file (device, FIFO or socket)");
            continue;
        };
        out.push(Walked {
            rel: rel.clone(),
            abs,
            entry: ManifestEntry {
                path: rel,
                kind,
                size: if kind == EntryType::File {
                    meta.len()
                } else {
                    0
                },
                mode: meta.mode() & 0o7777,
                mtime: meta.mtime(),
                mtime_nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
                uid: meta.uid(),
                gid: meta.gid(),
                sha256: None,
                target,
                ino: meta.ino(),
                ctime: meta.ctime(),
                ctime_nsec: u32::try_from(meta.ctime_nsec()).unwrap_or(0),
                offset: 0,
                length: 0,
                packed_crc32: 0,
            },
        });
    }
    Ok(out)
}

/// The previous archive unchanged entries are copied from.
pub(crate) struct Base {
    pub(crate) id: String,
    pub(crate) archive: File,
    pub(crate) entries: HashMap<String, ManifestEntry>,
}

/// Whether `now` describes the same bytes and header as `before`: same type,
/// size, mode, owner, mtime, ctime and inode (ctime changes on every write,
/// chmod and rename, so a touched-back mtime does not hide a change).
fn unchanged(now: &ManifestEntry, before: &ManifestEntry) -> bool {
    now.kind == before.kind
        && now.size == before.size
        && now.mode == before.mode
        && now.uid == before.uid
        && now.gid == before.gid
        && now.mtime == before.mtime
        && now.mtime_nsec == before.mtime_nsec
        && now.ctime == before.ctime
        && now.ctime_nsec == before.ctime_nsec
        && now.ino == before.ino
        && now.target == before.target
        && before.length > 0
        && (now.kind != EntryType::File || before.sha256.is_some())
}

/// Each entry's (offset, length, CRC-32 of its packed bytes), the end
/// member's (offset, length), and the archive size.
type WrittenArchive = (Vec<(u64, u64, u32)>, (u64, u64), u64);

/// An encoded entry's gzip member(s) and the file's SHA-256.
type EncodedEntry = (Vec<u8>, Option<String>);

enum Job {
    Copy {
        index: usize,
        offset: u64,
        length: u64,
        crc: u32,
    },
    Encode {
        index: usize,
    },
    Large {
        index: usize,
    },
}

enum Chunk {
    Bytes {
        index: usize,
        bytes: Vec<u8>,
    },
    Copy {
        index: usize,
        offset: u64,
        length: u64,
        crc: u32,
    },
}

/// Settings of one archive creation.
pub(crate) struct ArchiveSettings<'a> {
    pub(crate) level: u32,
    pub(crate) pool: &'a rayon::ThreadPool,
    pub(crate) progress: &'a dyn ProgressSink,
}

/// Writes the archive of `walked` to `archive_path`. Returns the manifest
/// entries (with offsets, lengths and hashes), the end-of-archive member's
/// span and the stats.
pub(crate) fn write_archive(
    walked: Vec<Walked>,
    base: Option<&Base>,
    archive_path: &Path,
    settings: &ArchiveSettings<'_>,
) -> Result<(Vec<ManifestEntry>, (u64, u64), CreateStats)> {
    let started = Instant::now();
    let mut stats = CreateStats {
        base: base.map(|b| b.id.clone()),
        ..CreateStats::default()
    };
    let mut jobs = Vec::with_capacity(walked.len());
    let mut entries: Vec<ManifestEntry> = Vec::with_capacity(walked.len());
    for (index, item) in walked.iter().enumerate() {
        let mut entry = item.entry.clone();
        match entry.kind {
            EntryType::File => {
                stats.files += 1;
                stats.bytes_total += entry.size;
            }
            EntryType::HardLink => stats.hard_links += 1,
            EntryType::Dir | EntryType::Symlink => {}
        }
        let previous = base.and_then(|b| b.entries.get(&item.rel));
        match previous {
            Some(before) if unchanged(&entry, before) => {
                entry.sha256.clone_from(&before.sha256);
                jobs.push(Job::Copy {
                    index,
                    offset: before.offset,
                    length: before.length,
                    crc: before.packed_crc32,
                });
            }
            _ if entry.kind == EntryType::File && entry.size > SMALL_FILE => {
                jobs.push(Job::Large { index })
            }
            _ => jobs.push(Job::Encode { index }),
        }
        entries.push(entry);
    }
    stats.entries = entries.len() as u64;

    let out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(archive_path)
        .map_err(|e| BackupError::io("create", archive_path, e))?;
    let (sender, receiver) = crossbeam_channel::bounded::<Vec<Chunk>>(2);
    let base_archive = base.map(|b| &b.archive);
    let entry_count = entries.len();

    let outcome = std::thread::scope(|scope| -> Result<WrittenArchive> {
        let writer = scope
            .spawn(move || write_chunks(out, archive_path, receiver, base_archive, entry_count));
        let produced = produce(
            &jobs,
            &walked,
            &mut entries,
            settings,
            &sender,
            &mut stats,
            archive_path,
        );
        drop(sender);
        let written = writer.join().map_err(|_| {
            BackupError::io(
                "write",
                archive_path,
                std::io::Error::other("writer thread panicked"),
            )
        })?;
        // When the writer failed (a full disk...), its error is the cause;
        // the producer only saw the channel close.
        match (produced, written) {
            (_, Err(writer_error)) => Err(writer_error),
            (Err(producer_error), Ok(_)) => Err(producer_error),
            (Ok(()), Ok(written)) => Ok(written),
        }
    })?;
    let (spans, end_span, archive_size) = outcome;
    for (entry, (offset, length, crc)) in entries.iter_mut().zip(spans) {
        entry.offset = offset;
        entry.length = length;
        entry.packed_crc32 = crc;
    }
    stats.archive_size = archive_size;
    stats.elapsed = started.elapsed();
    Ok((entries, end_span, stats))
}

fn produce(
    jobs: &[Job],
    walked: &[Walked],
    entries: &mut [ManifestEntry],
    settings: &ArchiveSettings<'_>,
    sender: &crossbeam_channel::Sender<Vec<Chunk>>,
    stats: &mut CreateStats,
    archive_path: &Path,
) -> Result<()> {
    let send = |chunks: Vec<Chunk>| {
        sender.send(chunks).map_err(|_| {
            BackupError::io(
                "write",
                archive_path,
                std::io::Error::other("the archive writer stopped"),
            )
        })
    };
    let mut bytes_done = 0u64;
    let mut files_done = 0u64;
    let mut start = 0;
    while start < jobs.len() {
        if let Job::Large { index } = jobs[start] {
            let (chunks_sent, sha) = encode_large(index, &walked[index], settings, &send)?;
            entries[index].sha256 = Some(sha);
            stats.encoded += 1;
            stats.bytes_read += chunks_sent;
            bytes_done += entries[index].size;
            files_done += 1;
            start += 1;
            report(settings.progress, bytes_done, stats.bytes_total, files_done);
            continue;
        }
        let mut end = start;
        let mut cost = 0u64;
        while end < jobs.len() && end - start < BATCH_ENTRIES && cost < BATCH_BYTES {
            match jobs[end] {
                Job::Large { .. } => break,
                Job::Encode { index } => cost += walked[index].entry.size + 512,
                Job::Copy { .. } => cost += 64,
            }
            end += 1;
        }
        let batch = &jobs[start..end];
        let encoded: Vec<Result<Option<EncodedEntry>>> = settings.pool.install(|| {
            batch
                .par_iter()
                .map(|job| match job {
                    Job::Encode { index } => {
                        encode_small(&walked[*index], settings.level).map(Some)
                    }
                    _ => Ok(None),
                })
                .collect()
        });
        let mut chunks = Vec::with_capacity(batch.len());
        for (job, result) in batch.iter().zip(encoded) {
            match *job {
                Job::Copy {
                    index,
                    offset,
                    length,
                    crc,
                } => {
                    stats.copied += 1;
                    bytes_done += entries[index].size;
                    chunks.push(Chunk::Copy {
                        index,
                        offset,
                        length,
                        crc,
                    });
                }
                Job::Encode { index } => {
                    let Some((bytes, sha)) = result? else {
                        continue;
                    };
                    stats.encoded += 1;
                    stats.bytes_read += entries[index].size;
                    bytes_done += entries[index].size;
                    entries[index].sha256 = sha;
                    chunks.push(Chunk::Bytes { index, bytes });
                }
                Job::Large { .. } => {}
            }
            files_done += u64::from(entries[job_index(job)].kind == EntryType::File);
        }
        send(chunks)?;
        report(settings.progress, bytes_done, stats.bytes_total, files_done);
        start = end;
    }
    Ok(())
}

fn job_index(job: &Job) -> usize {
    match *job {
        Job::Copy { index, .. } | Job::Encode { index } | Job::Large { index } => index,
    }
}

fn report(progress: &dyn ProgressSink, bytes_done: u64, bytes_total: u64, files_done: u64) {
    let percent = super::percent(bytes_done, bytes_total);
    progress.report(&Progress {
        percent,
        bytes_done,
        bytes_total: Some(bytes_total),
        files_done,
        message: format!("backed up {files_done} files"),
    });
}

fn fields(entry: &ManifestEntry) -> HeaderFields<'_> {
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

/// Header + data + padding of one small entry as one gzip member.
fn encode_small(item: &Walked, level: u32) -> Result<(Vec<u8>, Option<String>)> {
    let entry = &item.entry;
    let header = header_bytes(&fields(entry));
    if entry.kind != EntryType::File {
        let mut encoder = MemberEncoder::new(level, header.len());
        encoder
            .write(&header)
            .and_then(|()| encoder.finish())
            .map(|bytes| (bytes, None))
            .map_err(|e| BackupError::io("compress", &item.abs, e))
    } else {
        let mut file = File::open(&item.abs).map_err(|e| BackupError::io("open", &item.abs, e))?;
        let mut data = Vec::with_capacity(entry.size as usize);
        (&mut file)
            .take(entry.size + 1)
            .read_to_end(&mut data)
            .map_err(|e| BackupError::io("read", &item.abs, e))?;
        if data.len() as u64 != entry.size {
            return Err(BackupError::ChangedDuringBackup {
                path: item.abs.clone(),
                reason: format!("size was {} and is now {}", entry.size, data.len()),
            });
        }
        let sha = hex::encode(Sha256::digest(&data));
        let level = if looks_incompressible(&data[..data.len().min(SAMPLE)]) {
            0
        } else {
            level
        };
        let mut encoder = MemberEncoder::new(level, header.len() + data.len() + 512);
        encoder
            .write(&header)
            .and_then(|()| encoder.write(&data))
            .and_then(|()| encoder.write_zeros(padding(entry.size)))
            .and_then(|()| encoder.finish())
            .map(|bytes| (bytes, Some(sha)))
            .map_err(|e| BackupError::io("compress", &item.abs, e))
    }
}

/// A large file: hashed sequentially on its own thread while its chunks are
/// encoded in parallel windows and sent in order. Returns bytes read and SHA-256.
fn encode_large(
    index: usize,
    item: &Walked,
    settings: &ArchiveSettings<'_>,
    send: &dyn Fn(Vec<Chunk>) -> Result<()>,
) -> Result<(u64, String)> {
    let entry = &item.entry;
    let path = &item.abs;
    let file = File::open(path).map_err(|e| BackupError::io("open", path, e))?;
    let header = header_bytes(&fields(entry));
    let chunk_count = entry.size.div_ceil(CHUNK);
    let window = (settings.pool.current_num_threads() as u64 * 2).max(2);
    std::thread::scope(|scope| {
        // The whole file's SHA-256 (core's reader), alongside the encoding.
        let hasher = scope.spawn(|| crate::database::hash_file(path));
        let mut first = 0;
        while first < chunk_count {
            let last = (first + window).min(chunk_count);
            let encoded: Vec<Result<Vec<u8>>> = settings.pool.install(|| {
                (first..last)
                    .into_par_iter()
                    .map(|number| {
                        let start = number * CHUNK;
                        let len = CHUNK.min(entry.size - start) as usize;
                        let mut data = vec![0u8; len];
                        file.read_exact_at(&mut data, start).map_err(|e| {
                            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                BackupError::ChangedDuringBackup {
                                    path: path.clone(),
                                    reason: "it shrank".into(),
                                }
                            } else {
                                BackupError::io("read", path, e)
                            }
                        })?;
                        let level = if looks_incompressible(&data[..len.min(SAMPLE)]) {
                            0
                        } else {
                            settings.level
                        };
                        let mut encoder = MemberEncoder::new(level, len + header.len() + 512);
                        let mut run = || -> std::io::Result<()> {
                            if number == 0 {
                                encoder.write(&header)?;
                            }
                            encoder.write(&data)?;
                            if number + 1 == chunk_count {
                                encoder.write_zeros(padding(entry.size))?;
                            }
                            Ok(())
                        };
                        run()
                            .and_then(|()| encoder.finish())
                            .map_err(|e| BackupError::io("compress", path, e))
                    })
                    .collect()
            });
            let mut chunks = Vec::with_capacity(encoded.len());
            for bytes in encoded {
                chunks.push(Chunk::Bytes {
                    index,
                    bytes: bytes?,
                });
            }
            send(chunks)?;
            first = last;
        }
        let (total, sha) = hasher.join().map_err(|_| {
            BackupError::io("hash", path, std::io::Error::other("hash thread panicked"))
        })??;
        if total != entry.size {
            return Err(BackupError::ChangedDuringBackup {
                path: path.clone(),
                reason: format!("size was {} and is now {total}", entry.size),
            });
        }
        Ok((total, sha))
    })
}

/// The writer thread: writes encoded members and copies unchanged spans from
/// the base archive (adjacent spans merged into one `copy_file_range`), then
/// the end-of-archive member. Returns each entry's span, the end member's span
/// and the archive size.
fn write_chunks(
    mut out: File,
    path: &Path,
    receiver: crossbeam_channel::Receiver<Vec<Chunk>>,
    base: Option<&File>,
    entry_count: usize,
) -> Result<WrittenArchive> {
    let mut spans = vec![(u64::MAX, 0u64); entry_count];
    let mut crcs: Vec<Option<flate2::Crc>> = (0..entry_count).map(|_| None).collect();
    let mut copied_crcs = vec![0u32; entry_count];
    let mut written = 0u64;
    // A pending copy: (source offset, length), not yet issued.
    let mut pending: Option<(u64, u64)> = None;
    let flush_copy = |out: &mut File, pending: &mut Option<(u64, u64)>| -> Result<()> {
        if let Some((offset, length)) = pending.take() {
            let source = base.ok_or_else(|| {
                BackupError::io("copy", path, std::io::Error::other("no base archive"))
            })?;
            copy_range(source, offset, out, length)
                .map_err(|e| BackupError::io("copy into", path, e))?;
        }
        Ok(())
    };
    for chunks in receiver {
        for chunk in chunks {
            match chunk {
                Chunk::Bytes { index, bytes } => {
                    flush_copy(&mut out, &mut pending)?;
                    let span = &mut spans[index];
                    if span.0 == u64::MAX {
                        span.0 = written;
                    }
                    span.1 += bytes.len() as u64;
                    crcs[index]
                        .get_or_insert_with(flate2::Crc::new)
                        .update(&bytes);
                    out.write_all(&bytes)
                        .map_err(|e| BackupError::io("write", path, e))?;
                    written += bytes.len() as u64;
                }
                Chunk::Copy {
                    index,
                    offset,
                    length,
                    crc,
                } => {
                    copied_crcs[index] = crc;
                    pending = match pending {
                        Some((start, len)) if start + len == offset => Some((start, len + length)),
                        other => {
                            let mut other = other;
                            flush_copy(&mut out, &mut other)?;
                            Some((offset, length))
                        }
                    };
                    spans[index] = (written, length);
                    written += length;
                }
            }
        }
    }
    flush_copy(&mut out, &mut pending)?;
    let end_bytes = end_member().map_err(|e| BackupError::io("compress", path, e))?;
    out.write_all(&end_bytes)
        .map_err(|e| BackupError::io("write", path, e))?;
    let end_span = (written, end_bytes.len() as u64);
    written += end_bytes.len() as u64;
    if spans.iter().any(|s| s.0 == u64::MAX) {
        return Err(BackupError::io(
            "write",
            path,
            std::io::Error::other("an entry was not written"),
        ));
    }
    let spans = spans
        .into_iter()
        .zip(crcs.into_iter().zip(copied_crcs))
        .map(|((offset, length), (crc, copied))| (offset, length, crc.map_or(copied, |c| c.sum())))
        .collect();
    Ok((spans, end_span, written))
}

/// The end-of-archive member (two zero blocks), always the same bytes.
pub(crate) fn end_member() -> std::io::Result<Vec<u8>> {
    let mut end = MemberEncoder::new(1, 1024);
    end.write_zeros(1024)?;
    end.finish()
}

/// Copies `length` bytes at `offset` of `source` to the current position of
/// `out`: `copy_file_range` (in-kernel, reflinks where the file system can),
/// falling back to read/write.
fn copy_range(source: &File, offset: u64, out: &mut File, length: u64) -> std::io::Result<()> {
    let mut from = offset;
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(source, Some(&mut from), &*out, None, want) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "base archive is shorter than its manifest",
                ));
            }
            Ok(n) => left -= n as u64,
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP,
            ) => {
                let mut buffer = vec![0u8; 1 << 20];
                while left > 0 {
                    let n = left.min(buffer.len() as u64) as usize;
                    source.read_exact_at(&mut buffer[..n], from)?;
                    out.write_all(&buffer[..n])?;
                    from += n as u64;
                    left -= n as u64;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
