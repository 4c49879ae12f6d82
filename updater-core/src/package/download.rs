//! Streaming download with on-the-fly SHA-256, size limit and signature check.
//!
//! The package never sits in memory: [`download_verified`] hands the source a
//! writer that hashes and counts every byte as it goes to disk, refuses the
//! first byte past the declared size, and only renames the file to its final
//! name once size and digest match.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::signature::{self, PublicKeys, SignedMetadata};
use crate::error::{Error, Result};
use crate::release::{Asset, Release, Sha256Digest};
use crate::source::ReleaseSource;

/// How often the progress callback is called, at most (plus once at the end).
const PROGRESS_INTERVAL: u64 = 256 * 1024;

/// The size of the chunks handed to the writer thread.
const CHUNK_SIZE: usize = 1024 * 1024;

/// How many chunks may wait for the writer thread (bounds memory to a few MiB).
const CHUNKS_IN_FLIGHT: usize = 4;

/// What a download must prove before it is accepted.
#[derive(Debug, Clone)]
pub struct VerificationPolicy {
    /// Refuse assets whose source gives no SHA-256 (default `true`).
    pub require_checksum: bool,
    /// Minisign keys; when not empty, every asset must carry a valid,
    /// unexpired signature over its release metadata by one of them.
    pub public_keys: PublicKeys,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        VerificationPolicy {
            require_checksum: true,
            public_keys: PublicKeys::new(),
        }
    }
}

impl VerificationPolicy {
    /// Requires signatures by one of `keys` (builder style).
    pub fn with_public_keys(mut self, keys: PublicKeys) -> Self {
        self.public_keys = keys;
        self
    }

    /// Sets whether a SHA-256 from the source is required (builder style).
    pub fn with_require_checksum(mut self, require: bool) -> Self {
        self.require_checksum = require;
        self
    }
}

/// A downloaded package whose size, digest and (when keys are configured)
/// signed metadata were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPackage {
    /// Where it was written.
    pub path: PathBuf,
    /// Its SHA-256, computed while downloading.
    pub sha256: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The signed metadata, when a signature was required and verified.
    pub signed: Option<SignedMetadata>,
}

/// Downloads `asset` of `release` from `source` into `destination`, verifying
/// it on the way. Blocking.
///
/// 1. When `policy.public_keys` is not empty, the asset's signature over the
///    release metadata is verified first, before any byte is downloaded
///    ([`signature::verify_asset_signature`]); a missing signature is an error.
///    A missing SHA-256 with `require_checksum` is refused here too.
/// 2. The bytes stream into `<destination>.partial` (created with mode 0600;
///    the parent directory must exist), hashed and counted as they arrive; the
///    first byte past `asset.size` stops the download with [`Error::Integrity`].
/// 3. Its size and SHA-256 are compared with the asset's ([`Error::Integrity`]
///    naming the asset and both values).
/// 4. On success it is renamed to `destination`. On any failure the partial
///    file is removed and `destination` is untouched.
///
/// The package is not fsynced: it is only an input of the staging step, a
/// package lost in a power cut is simply downloaded again (recovery cleans
/// up an update interrupted before maintenance), and the pipeline makes the
/// *extracted* tree durable before the swap. Skipping it keeps a 1 GiB
/// download at the speed of the network instead of the disk.
///
/// `progress` receives the byte count so far, at most every 256 KiB and once at the end.
///
/// ```
/// use updater_core::package::{VerificationPolicy, download_verified};
/// use updater_core::source::LocalDirectorySource;
/// use updater_core::version::Version;
///
/// let dir = tempfile::tempdir()?;
/// let build = dir.path().join("build.tar.gz");
/// std::fs::write(&build, b"pretend tarball")?;
/// let source = LocalDirectorySource::new(dir.path().join("releases"));
/// let release = source.publish(&Version::new(1, 0, 0), &build, "First release", None)?;
///
/// let destination = dir.path().join("app-1.0.0.tar.gz");
/// let package = download_verified(
///     &source,
///     &release,
///     &release.assets[0],
///     &destination,
///     &VerificationPolicy::default(),
///     &mut |bytes| eprintln!("{bytes} bytes"),
/// )?;
/// assert_eq!((package.size, package.path), (15, destination));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn download_verified(
    source: &dyn ReleaseSource,
    release: &Release,
    asset: &Asset,
    destination: &Path,
    policy: &VerificationPolicy,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifiedPackage> {
    let subject = format!("asset {}", asset.name);
    let signed = if policy.public_keys.is_empty() {
        None
    } else {
        Some(signature::verify_asset_signature(
            &policy.public_keys,
            release,
            asset,
            chrono::Utc::now(),
        )?)
    };
    if asset.sha256.is_none() && policy.require_checksum {
        return Err(Error::integrity(
            subject,
            format!(
                "{} publishes no SHA-256 for it, and a checksum is required",
                source.describe()
            ),
        ));
    }

    let partial = partial_path(destination);
    let (guard, file) = PartialFile::create(&partial)?;
    let sink = FileSink::new(file).map_err(|e| Error::io("start writing", &partial, e))?;
    let mut writer = HashingWriter::new(sink, asset.size, progress);
    let downloaded = source.download(asset, &mut writer);
    if let Some(e) = writer.inner.error.take() {
        // The disk failed, not the source: say so.
        return Err(Error::io("write", &partial, e));
    }
    if writer.overflowed {
        return Err(Error::integrity(
            subject,
            format!(
                "{} sent more than the declared {} bytes",
                source.describe(),
                asset.size
            ),
        ));
    }
    downloaded?;
    let (sink, received, actual) = writer
        .finish()
        .map_err(|e| Error::io("write", &partial, e))?;
    let file = sink.finish().map_err(|e| Error::io("write", &partial, e))?;
    drop(file);

    if received != asset.size {
        return Err(Error::integrity(
            subject,
            format!(
                "truncated download: received {received} bytes, expected {} bytes",
                asset.size
            ),
        ));
    }
    match asset.sha256 {
        Some(expected) if expected != actual => {
            return Err(Error::integrity(
                subject,
                format!("SHA-256 mismatch: expected {expected}, got {actual}"),
            ));
        }
        Some(_) => {}
        None => {
            tracing::warn!(asset = %asset.name, sha256 = %actual, "no published SHA-256 to compare with")
        }
    }

    guard.persist(destination)?;
    tracing::info!(asset = %asset.name, size = received, sha256 = %actual, signed = signed.is_some(), "package downloaded and verified");
    Ok(VerifiedPackage {
        path: destination.to_path_buf(),
        sha256: actual,
        size: received,
        signed,
    })
}

/// `<destination>.partial`.
fn partial_path(destination: &Path) -> PathBuf {
    let mut name = OsString::from(destination.as_os_str());
    name.push(".partial");
    PathBuf::from(name)
}

/// The partial file; removed on drop unless persisted.
struct PartialFile {
    path: Option<PathBuf>,
}

impl PartialFile {
    /// Creates the file afresh (mode 0600, never following a planted symlink),
    /// replacing a leftover from an interrupted download.
    fn create(path: &Path) -> Result<(Self, File)> {
        match fs::remove_file(path) {
            Ok(()) => {
                tracing::debug!(path = %path.display(), "removed a leftover partial download")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove leftover", path, e)),
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        let guard = PartialFile {
            path: Some(path.to_path_buf()),
        };
        Ok((guard, file))
    }

    /// Renames into `destination`.
    fn persist(mut self, destination: &Path) -> Result<()> {
        if let Some(path) = &self.path {
            crate::durable::rename(path, destination)?;
        }
        self.path = None;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        let Some(path) = &self.path else { return };
        if let Err(e) = fs::remove_file(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a failed partial download");
        }
    }
}

/// Writes to a file on a second thread, so hashing (on the caller's thread)
/// and copying into the page cache overlap. Chunks of 1 MiB, at most four in
/// flight: memory stays at a few MiB whatever the package size.
struct FileSink {
    chunk: Vec<u8>,
    sender: Option<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<io::Result<File>>>,
    /// The first write error, kept to report it as the cause.
    error: Option<io::Error>,
}

impl FileSink {
    fn new(file: File) -> io::Result<Self> {
        let (sender, chunks) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let (recycle, recycled) = channel();
        let worker = std::thread::Builder::new()
            .name("package-writer".into())
            .spawn(move || {
                let mut file = file;
                for mut chunk in chunks {
                    file.write_all(&chunk)?;
                    chunk.clear();
                    // The other side may be gone already; the chunk is just dropped.
                    let _ = recycle.send(chunk);
                }
                Ok(file)
            })?;
        Ok(FileSink {
            chunk: Vec::with_capacity(CHUNK_SIZE),
            sender: Some(sender),
            recycled,
            worker: Some(worker),
            error: None,
        })
    }

    /// Hands the current chunk to the writer thread.
    fn send_chunk(&mut self) -> io::Result<()> {
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_SIZE));
        let full = std::mem::replace(&mut self.chunk, next);
        let sent = self.sender.as_ref().map(|sender| sender.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped: it failed to write. Fetch its error.
            _ => Err(self
                .stop()
                .err()
                .unwrap_or_else(|| io::Error::other("the package writer thread stopped early"))),
        }
    }

    /// Stops the thread and returns the file, or the thread's write error.
    fn stop(&mut self) -> io::Result<File> {
        self.sender = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the package writer thread panicked")),
            None => Err(io::Error::other(
                "the package writer thread already stopped",
            )),
        }
    }

    /// Writes what is left and returns the file (not yet fsynced).
    fn finish(mut self) -> io::Result<File> {
        if !self.chunk.is_empty() {
            self.send_chunk()?;
        }
        self.stop()
    }
}

impl Write for FileSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_SIZE - self.chunk.len();
        let taken = data.len().min(room);
        self.chunk.extend_from_slice(&data[..taken]);
        if self.chunk.len() == CHUNK_SIZE
            && let Err(e) = self.send_chunk()
        {
            let reported = io::Error::new(e.kind(), e.to_string());
            self.error = Some(e);
            return Err(reported);
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks are written by the thread; `finish` waits for all of them.
        Ok(())
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if self.worker.is_some() {
            // An abandoned download: let the thread finish so nothing writes later.
            let _ = self.stop();
        }
    }
}

/// Writes through to `inner` while hashing and counting, refusing any byte
/// past `limit`.
struct HashingWriter<'p, W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
    limit: u64,
    overflowed: bool,
    reported: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<'p, W: Write> HashingWriter<'p, W> {
    fn new(inner: W, limit: u64, progress: &'p mut dyn FnMut(u64)) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
            limit,
            overflowed: false,
            reported: 0,
            progress,
        }
    }

    /// Flushes, reports the final count, and returns the inner writer, the
    /// byte count and the digest.
    fn finish(mut self) -> io::Result<(W, u64, Sha256Digest)> {
        self.inner.flush()?;
        (self.progress)(self.written);
        let digest = Sha256Digest(self.hasher.finalize().into());
        Ok((self.inner, self.written, digest))
    }
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.overflowed || self.written.saturating_add(buf.len() as u64) > self.limit {
            self.overflowed = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more bytes than the declared {}", self.limit),
            ));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        if self.written - self.reported >= PROGRESS_INTERVAL {
            self.reported = self.written;
            (self.progress)(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_writer_hashes_counts_and_refuses_overflow() {
        let mut calls = Vec::new();
        let mut progress = |n| calls.push(n);
        let mut writer = HashingWriter::new(Vec::new(), 600 * 1024, &mut progress);
        for _ in 0..3 {
            writer.write_all(&[7u8; 200 * 1024]).unwrap();
        }
        assert!(writer.write_all(b"x").is_err());
        assert!(writer.overflowed);
        let (bytes, count, digest) = writer.finish().unwrap();
        assert_eq!(count, 600 * 1024);
        assert_eq!(bytes.len(), 600 * 1024);
        assert_eq!(digest.0, <[u8; 32]>::from(Sha256::digest(&bytes)));
        // One report once 256 KiB more have arrived (at 400 KiB), one at the end.
        assert_eq!(calls, [400 * 1024, 600 * 1024]);
    }

    #[test]
    fn file_sink_writes_everything_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut sink = FileSink::new(File::create(&path).unwrap()).unwrap();
        let data: Vec<u8> = (0..3 * CHUNK_SIZE + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        for piece in data.chunks(70_001) {
            sink.write_all(piece).unwrap();
        }
        sink.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), data);
    }

    #[test]
    fn file_sink_reports_the_write_error_of_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        fs::write(&path, b"").unwrap();
        // Opened read-only: every write of the thread fails.
        let mut sink = FileSink::new(File::open(&path).unwrap()).unwrap();
        let chunk = vec![1u8; CHUNK_SIZE];
        let failed = (0..CHUNKS_IN_FLIGHT + 3).any(|_| sink.write_all(&chunk).is_err());
        assert!(failed || sink.finish().is_err());
    }

    #[test]
    fn partial_path_appends_a_suffix() {
        assert_eq!(
            partial_path(Path::new("/d/app.tar.gz")),
            Path::new("/d/app.tar.gz.partial")
        );
    }
}
