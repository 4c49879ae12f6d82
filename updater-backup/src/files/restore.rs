//! Restoring a tree from a files archive: remove what the backup does not
//! have (excluded paths left alone), recreate directories, extract files in
//! parallel (each checked against its SHA-256 before it is renamed into
//! place), recreate hard links and symlinks, then apply directory modes and
//! times. Staging is the same restore into a directory created for it.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use updater_core::progress::{Progress, ProgressSink};

use super::create::walk;
use super::format::{EntryType, MemberReader};
use super::manifest::{Manifest, ManifestEntry};
use super::verify::{finish_entry, read_header};
use crate::error::{BackupError, Result};
use crate::exclude::ExcludeSet;

/// What one restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Regular files written.
    pub files: u64,
    /// Hard links recreated (further names of a file written).
    pub hard_links: u64,
    /// Directories created or kept.
    pub dirs: u64,
    /// Symlinks recreated.
    pub symlinks: u64,
    /// Paths removed because the backup did not have them.
    pub removed: u64,
    /// File bytes written.
    pub bytes_written: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// How a tree is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteOptions {
    /// Sync the file system before returning.
    pub(crate) sync: bool,
    /// The mode of the tree's root directory (staging); `None` leaves it alone.
    pub(crate) root_mode: Option<u32>,
}

/// Writes the backup's tree into `target`, a directory that must not exist:
/// the same checks and the same result as [`restore_tree`] into an empty
/// directory. On failure nothing is left at `target`.
pub(crate) fn stage_tree(
    target: &Path,
    archive_path: &Path,
    manifest: &Manifest,
    pool: &rayon::ThreadPool,
    progress: &dyn ProgressSink,
    options: WriteOptions,
) -> Result<RestoreStats> {
    match fs::DirBuilder::new().mode(0o700).create(target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(BackupError::TargetExists {
                path: target.to_path_buf(),
            });
        }
        Err(e) => return Err(BackupError::io("create directory", target, e)),
    }
    let outcome = restore_tree(target, archive_path, manifest, pool, progress, options);
    if outcome.is_err()
        && let Err(e) = remove_tree(target)
    {
        tracing::warn!(target = %target.display(), error = %e, "cannot remove a partly staged tree");
    }
    outcome
}

/// Removes a tree, making its directories writable first (a failed restore
/// may have applied read-only directory modes already).
pub(crate) fn remove_tree(root: &Path) -> Result<()> {
    match fs::remove_dir_all(root) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for item in walkdir::WalkDir::new(root).follow_links(false) {
        let Ok(item) = item else { continue };
        if item.file_type().is_dir() {
            let _ = fs::set_permissions(item.path(), fs::Permissions::from_mode(0o700));
        }
    }
    match fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::io("remove directory", root, e)),
    }
}

pub(crate) fn restore_tree(
    target: &Path,
    archive_path: &Path,
    manifest: &Manifest,
    pool: &rayon::ThreadPool,
    progress: &dyn ProgressSink,
    options: WriteOptions,
) -> Result<RestoreStats> {
    let started = Instant::now();
    let mut stats = RestoreStats::default();
    let subject = archive_path.display().to_string();
    let excludes = ExcludeSet::new(&manifest.header.excludes)?;
    let archive = File::open(archive_path).map_err(|e| BackupError::io("open", archive_path, e))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(target)
        .map_err(|e| BackupError::io("create directory", target, e))?;
    let wanted: HashMap<&str, &ManifestEntry> = manifest.by_path();
    for entry in &manifest.entries {
        if excludes.is_excluded(&entry.path) {
            return Err(BackupError::integrity(
                &subject,
                format!("entry {:?} is an excluded path", entry.path),
            ));
        }
    }

    // 1. Remove what the backup does not have, or has with another type.
    let mut removed_dirs: Vec<String> = Vec::new();
    for item in walk(target, &excludes)? {
        if removed_dirs.iter().any(|dir| {
            item.rel.len() > dir.len()
                && item.rel.starts_with(dir.as_str())
                && item.rel.as_bytes()[dir.len()] == b'/'
        }) {
            continue;
        }
        // A file and a hard link are both regular files: the file step
        // rewrites it, the link step relinks it.
        let keep = wanted.get(item.rel.as_str()).is_some_and(|e| {
            e.kind == item.entry.kind || (e.kind.is_regular() && item.entry.kind.is_regular())
        });
        if keep {
            continue;
        }
        remove_path(&item.abs, item.entry.kind)?;
        stats.removed += 1;
        if item.entry.kind == EntryType::Dir {
            removed_dirs.push(item.rel);
        }
    }

    tracing::debug!(elapsed = ?started.elapsed(), "restore: removed what the backup lacks");
    // 2. Directories (owner-writable until their final mode is applied).
    for entry in manifest.entries.iter().filter(|e| e.kind == EntryType::Dir) {
        let path = target.join(&entry.path);
        // Into a new tree (staging), mkdir simply succeeds: one call per directory.
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                stats.dirs += 1;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(BackupError::io("create directory", &path, e)),
        }
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                let mode = meta.permissions().mode() & 0o7777;
                if mode & 0o700 != 0o700 {
                    set_mode(&path, mode | 0o700)?;
                }
            }
            Ok(meta) => {
                remove_path(
                    &path,
                    if meta.is_symlink() {
                        EntryType::Symlink
                    } else {
                        EntryType::File
                    },
                )?;
                make_dir(&path)?;
            }
            Err(_) => make_dir(&path)?,
        }
        stats.dirs += 1;
    }

    tracing::debug!(elapsed = ?started.elapsed(), "restore: directories created");
    // 3. Files, in parallel.
    let bytes_done = AtomicU64::new(0);
    let files_done = AtomicU64::new(0);
    let bytes_total: u64 = manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryType::File)
        .map(|e| e.size)
        .sum();
    let as_root = rustix::process::geteuid().is_root();
    pool.install(|| {
        manifest
            .entries
            .par_iter()
            .filter(|e| e.kind == EntryType::File)
            .try_for_each(|entry| {
                restore_file(target, &archive, entry, &subject, as_root)?;
                let bytes = bytes_done.fetch_add(entry.size, Ordering::Relaxed) + entry.size;
                let files = files_done.fetch_add(1, Ordering::Relaxed) + 1;
                if files.is_multiple_of(256) {
                    progress.report(&event(bytes, bytes_total, files));
                }
                Ok::<(), BackupError>(())
            })
    })?;
    stats.files = files_done.load(Ordering::Relaxed);
    stats.bytes_written = bytes_done.load(Ordering::Relaxed);

    tracing::debug!(elapsed = ?started.elapsed(), "restore: files written");
    // 3b. Hard links, once every file they name is in place.
    for entry in manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryType::HardLink)
    {
        restore_hard_link(target, &archive, entry, &subject)?;
        stats.hard_links += 1;
    }

    // 4. Symlinks.
    for entry in manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryType::Symlink)
    {
        restore_symlink(target, &archive, entry, &subject, as_root)?;
        stats.symlinks += 1;
    }

    tracing::debug!(elapsed = ?started.elapsed(), "restore: links created");
    // 5. Directory modes, owners and times, deepest first.
    let mut dirs: Vec<&ManifestEntry> = manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryType::Dir)
        .collect();
    dirs.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    for entry in dirs {
        let path = target.join(&entry.path);
        if as_root {
            change_owner(&path, entry)?;
        }
        set_mode(&path, entry.mode)?;
        set_times(&path, entry)?;
    }
    if let Some(mode) = options.root_mode {
        set_mode(target, mode)?;
    }
    tracing::debug!(elapsed = ?started.elapsed(), "restore: directory modes applied");
    if options.sync {
        let dir = File::open(target).map_err(|e| BackupError::io("open", target, e))?;
        rustix::fs::syncfs(&dir)
            .map_err(|e| BackupError::io("sync file system of", target, e.into()))?;
    }
    progress.report(&event(stats.bytes_written, bytes_total, stats.files));
    stats.elapsed = started.elapsed();
    Ok(stats)
}

fn event(bytes_done: u64, bytes_total: u64, files_done: u64) -> Progress {
    let percent = super::percent(bytes_done, bytes_total);
    Progress {
        percent,
        bytes_done,
        bytes_total: Some(bytes_total),
        files_done,
        message: format!("restored {files_done} files"),
    }
}

fn remove_path(path: &Path, kind: EntryType) -> Result<()> {
    let outcome = if kind == EntryType::Dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::io("remove", path, e)),
    }
}

fn make_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| BackupError::io("create directory", path, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| BackupError::io("set mode of", path, e))
}

fn timestamps(entry: &ManifestEntry) -> rustix::fs::Timestamps {
    let time = rustix::fs::Timespec {
        tv_sec: entry.mtime,
        tv_nsec: entry.mtime_nsec.into(),
    };
    rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    }
}

fn set_times(path: &Path, entry: &ManifestEntry) -> Result<()> {
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &timestamps(entry),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| BackupError::io("set times of", path, e.into()))
}

fn change_owner(path: &Path, entry: &ManifestEntry) -> Result<()> {
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(entry.uid)),
        Some(rustix::fs::Gid::from_raw(entry.gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| BackupError::io("change owner of", path, e.into()))
}

/// Makes `dest`'s replacement beside it under a random name: `make` creates
/// the file, hard link or symlink at the path it is given, which must not
/// exist (`create_new`, `link`, `symlink` never follow or reuse anything
/// there); a name taken already is retried with another. The caller renames
/// it into place or removes it. `action` names `make` in an error.
fn make_beside<F>(
    dest: &Path,
    action: &'static str,
    make: impl Fn(&Path) -> std::io::Result<F>,
) -> Result<(F, PathBuf)> {
    let dir = updater_core::durable::parent_of(dest);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}.restore-"))
        .make_in(dir, make)
        .and_then(|temp| temp.keep().map_err(|e| e.error))
        .map_err(|e| BackupError::io(action, dir, e))
}

/// Renames `temp` (from [`make_beside`]) over `dest`, a directory there
/// removed first; `temp` is removed if that fails.
fn put_in_place(temp: &Path, dest: &Path) -> Result<()> {
    let placed = (|| {
        if fs::symlink_metadata(dest).is_ok_and(|meta| meta.is_dir()) {
            remove_path(dest, EntryType::Dir)?;
        }
        fs::rename(temp, dest).map_err(|e| BackupError::io("rename into place", dest, e))
    })();
    if placed.is_err() {
        let _ = fs::remove_file(temp);
    }
    placed
}

fn restore_file(
    target: &Path,
    archive: &File,
    entry: &ManifestEntry,
    subject: &str,
    as_root: bool,
) -> Result<()> {
    let fail = |reason: String| {
        BackupError::integrity(format!("{subject} entry {:?}", entry.path), reason)
    };
    let dest = target.join(&entry.path);
    let mut reader = MemberReader::new(archive, entry.offset, entry.length);
    read_header(&mut reader, entry).map_err(fail)?;
    // A new file is written in place (removed again if it fails its check);
    // an existing one is replaced atomically through a temporary name.
    let create = |path: &Path| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
    };
    let (mut out, written_path, replaces) = match create(&dest) {
        Ok(file) => (file, dest.clone(), false),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let (file, temp) = make_beside(&dest, "create a file in", |path| create(path))?;
            (file, temp, true)
        }
        Err(e) => return Err(BackupError::io("create", &dest, e)),
    };
    let temp = written_path;
    let written = (|| -> Result<()> {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; (entry.size as usize).clamp(1, 256 * 1024)];
        let mut left = entry.size;
        while left > 0 {
            let want = left.min(buffer.len() as u64) as usize;
            reader
                .read_exact(&mut buffer[..want])
                .map_err(|e| fail(e.to_string()))?;
            hasher.update(&buffer[..want]);
            out.write_all(&buffer[..want])
                .map_err(|e| BackupError::io("write", &temp, e))?;
            left -= want as u64;
        }
        finish_entry(&mut reader, entry).map_err(fail)?;
        if entry.sha256.as_deref() != Some(hex::encode(hasher.finalize()).as_str()) {
            return Err(fail("SHA-256 does not match the manifest".into()));
        }
        if as_root {
            rustix::fs::fchown(
                &out,
                Some(rustix::fs::Uid::from_raw(entry.uid)),
                Some(rustix::fs::Gid::from_raw(entry.gid)),
            )
            .map_err(|e| BackupError::io("change owner of", &temp, e.into()))?;
        }
        if entry.mode != 0o600 {
            rustix::fs::fchmod(&out, rustix::fs::Mode::from_raw_mode(entry.mode))
                .map_err(|e| BackupError::io("set mode of", &temp, e.into()))?;
        }
        rustix::fs::futimens(&out, &timestamps(entry))
            .map_err(|e| BackupError::io("set times of", &temp, e.into()))?;
        Ok(())
    })();
    drop(out);
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    if !replaces {
        return Ok(());
    }
    put_in_place(&temp, &dest)
}

fn restore_hard_link(
    target: &Path,
    archive: &File,
    entry: &ManifestEntry,
    subject: &str,
) -> Result<()> {
    let fail = |reason: String| {
        BackupError::integrity(format!("{subject} entry {:?}", entry.path), reason)
    };
    let mut reader = MemberReader::new(archive, entry.offset, entry.length);
    read_header(&mut reader, entry).map_err(fail)?;
    finish_entry(&mut reader, entry).map_err(fail)?;
    // The manifest guarantees a target naming a file entry restored before.
    let first = target.join(entry.target.as_deref().unwrap_or(""));
    let dest = target.join(&entry.path);
    let first_meta =
        fs::symlink_metadata(&first).map_err(|e| BackupError::io("inspect", &first, e))?;
    match fs::symlink_metadata(&dest) {
        Ok(meta) if meta.dev() == first_meta.dev() && meta.ino() == first_meta.ino() => {
            return Ok(());
        }
        Ok(_) => {
            let ((), temp) =
                make_beside(&dest, "hard-link into", |path| fs::hard_link(&first, path))?;
            put_in_place(&temp, &dest)?;
        }
        Err(_) => {
            fs::hard_link(&first, &dest).map_err(|e| BackupError::io("hard-link", &dest, e))?;
        }
    }
    Ok(())
}

fn restore_symlink(
    target: &Path,
    archive: &File,
    entry: &ManifestEntry,
    subject: &str,
    as_root: bool,
) -> Result<()> {
    let fail = |reason: String| {
        BackupError::integrity(format!("{subject} entry {:?}", entry.path), reason)
    };
    let mut reader = MemberReader::new(archive, entry.offset, entry.length);
    read_header(&mut reader, entry).map_err(fail)?;
    finish_entry(&mut reader, entry).map_err(fail)?;
    let link_target = entry.target.as_deref().unwrap_or("");
    let dest = target.join(&entry.path);
    let current = fs::read_link(&dest).ok();
    if current.as_deref() != Some(Path::new(link_target)) {
        let ((), temp) = make_beside(&dest, "create a symlink in", |path| {
            std::os::unix::fs::symlink(link_target, path)
        })?;
        put_in_place(&temp, &dest)?;
    }
    if as_root {
        change_owner(&dest, entry)?;
    }
    set_times(&dest, entry)
}
