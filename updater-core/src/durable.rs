//! Durable file operations: every write that recovery depends on goes through
//! here, so that an fsync or rename error is always reported, never ignored.
//!
//! [`write_atomic`] is write-to-temp + fsync + rename + fsync of the
//! directory: after it returns, the file holds either the old or the new
//! content, also across a power loss.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `path` and its parents (mode 0700 for new directories).
pub fn create_dir_all(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("create directory", path, e))
}

/// Flushes a directory's entries (new names, renames) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
    handle
        .sync_all()
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` atomically and durably. The file is created
/// with mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` with `bytes` atomically (readers see the old or the new
/// content, never a partial file) but without waiting for the disk: for
/// files whose loss in a power cut is harmless, such as the maintenance flag.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

/// Flushes everything written to the file system holding `path` (one
/// `syncfs`): cheaper than an fsync per file or directory when many changed,
/// and reports writeback errors.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let handle = File::open(path).map_err(|e| Error::io("open", path, e))?;
    rustix::fs::syncfs(&handle).map_err(|e| Error::io("sync file system of", path, e.into()))
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = parent_of(path);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    // A random name created with O_EXCL: never follows or reuses anything.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    temp.write_all(bytes)
        .map_err(|e| Error::io("write", temp.path(), e))?;
    if durable {
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io("fsync", temp.path(), e))?;
    }
    temp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// Renames `from` to `to` (same file system), reporting the error with both paths.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::Io {
        action: "rename",
        path: from.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("to {}: {e}", to.display())),
    })
}

/// Whether `path` exists, without following a final symlink.
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether `path` exists, without following a final symlink; an error other
/// than "not found" (permission, I/O) is reported, never taken for "absent".
pub fn try_exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspect", path, e)),
    }
}

/// Renames `from` to `to` only if `to` does not exist (`RENAME_NOREPLACE`),
/// so a misjudged step can never overwrite data: it fails instead. On a
/// file system without the flag, checks first (not atomic, still fails closed
/// in the common case).
pub fn rename_no_replace(from: &Path, to: &Path) -> Result<()> {
    let fail = |e: std::io::Error| Error::Io {
        action: "rename",
        path: from.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("to {}: {e}", to.display())),
    };
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            if try_exists(to)? {
                return Err(fail(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "target exists",
                )));
            }
            fs::rename(from, to).map_err(fail)
        }
        Err(e) => Err(fail(e.into())),
    }
}

/// Removes a file or a whole directory tree; a missing path is not an error.
pub fn remove_all(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspect", path, e)),
        Ok(meta) if meta.is_dir() => {
            fs::remove_dir_all(path).map_err(|e| Error::io("remove directory", path, e))
        }
        Ok(_) => fs::remove_file(path).map_err(|e| Error::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn write_atomic_reports_a_missing_directory() {
        let err = write_atomic(Path::new("/nonexistent-dir/x"), b"1").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }
}
