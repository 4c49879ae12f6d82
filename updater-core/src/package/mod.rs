//! Packages: streaming download with on-the-fly SHA-256, signature checks
//! over release metadata, and safe extraction into a staging directory.
//!
//! A package arrives from a server we do not fully trust, over a network we
//! do not trust, and is unpacked by a process that can write the whole
//! application. This module is the gate: nothing gets past it unless it is
//! exactly the file that was published, signed for *this* release, and
//! unpacks to nothing but ordinary files and directories inside the staging
//! directory. Blocking; async applications call it from `spawn_blocking`.
//!
//! # Download and verification ([`download_verified`])
//!
//! | check | what it prevents |
//! |---|---|
//! | signature over release metadata, before the first byte ([`signature`]) | a compromised server or mirror serving its own build; replaying an old signed release as a new version; stale ("frozen") metadata after its expiry |
//! | a required SHA-256 from the source | installing a file that changed after publication or in transit |
//! | stop at the first byte past the declared size | a hostile server filling the disk ("endless download") |
//! | exact size and digest after fsync | truncated or corrupted downloads being unpacked |
//! | `.partial` file (0600), renamed only when verified | a half-written or unverified package ever lying under the final name |
//!
//! The bytes are hashed while they stream to disk (hashing on the caller's
//! thread, writing on a second one, at most about 5 MiB in flight), so the
//! package is never held in memory and is read once.
//!
//! # Publishing ([`build_release`]) and delta updates ([`delta`])
//!
//! The publisher's side builds the package from a directory with the same
//! rules ([`build`]); each entry is its own gzip member and a file index
//! ([`index`]) records where, so an update can fetch only what changed
//! ([`delta`]). Tar headers are written by [`tar_header`] only, which
//! `updater-backup`'s archives use too: verification rebuilds them byte for
//! byte.
//!
//! # Extraction ([`extract_tar_gz`]) and listing ([`list_tar_gz`])
//!
//! Archive formats let an entry say almost anything: where it goes, what it
//! is, who may run it. The `tar` crate's `unpack` is not a safety boundary (it
//! skips `..` entries and still returns `Ok`, strips a leading `/`, writes
//! devices and FIFOs as regular files and applies modes with a zero mask), so
//! every entry is validated here, *before* anything is written for it, and one
//! bad entry fails the whole package: the staging directory is removed and the
//! error ([`Error::PackageRejected`]) names the
//! entry and the rule ([`Rejection`](crate::error::Rejection)).
//!
//! | rule ([`Rejection`](crate::error::Rejection)) | what it prevents |
//! |---|---|
//! | `ParentTraversal`: no `..` component | "zip slip": `../../etc/cron.d/x` written outside staging |
//! | `AbsolutePath`: no leading `/` | `/root/.ssh/authorized_keys` overwritten (or silently relocated, as `unpack` does) |
//! | `EmptyPath` | entries that would name the staging directory itself (`./` alone, the root of `tar -C dir .`, is skipped) |
//! | `PathTooLong`: paths and link targets up to 4096 bytes | names no file system here accepts, failing half-way through |
//! | `NonUtf8Path` | names that cannot be compared reliably for duplicates and collisions, or logged |
//! | `ReservedName`: first component not e.g. `.updater` | a package planting files in the updater's own state (journal, lock, version record) |
//! | `SymlinkEscape`: symlink targets relative and resolving inside, also through other links of the archive | a link to `/etc` or `../..` that the application (or a later entry) follows out of the tree |
//! | `ThroughSymlink`: no entry below a symlink of the archive | `link -> /etc` followed by `link/passwd`: writing outside through the link |
//! | `HardlinkEscape`: hard links only to earlier regular files of the archive | hard-linking `/etc/shadow` into the tree, then reading or overwriting it |
//! | `SpecialFile`: no character/block devices or FIFOs | a `/dev/sda` node inside the app tree; a FIFO that hangs the application |
//! | `UnsupportedType` | entry kinds (sparse, volume headers...) whose meaning parsers disagree on |
//! | `SetIdBits`: no setuid/setgid | a root-owned setuid binary planted by an update run as root |
//! | `Duplicate` | a second entry silently replacing the first (what you reviewed is not what runs) |
//! | `Collision`: no two paths equal after Unicode NFC + lower case | `README` vs `readme`, `café` (NFC) vs `café` (NFD) overwriting each other on case-insensitive or normalising filesystems |
//! | `ParentNotDirectory` | an entry below a path that is a regular file |
//! | `TooManyEntries` (`max_entries`, default 100,000) | archive bombs exhausting inodes |
//! | `TooLarge` (`max_total_bytes`, default 8 GiB, counted from headers and again while copying) | archive bombs exhausting the disk |
//! | `InsufficientSpace`: the entries, rounded to blocks, must fit the staging file system's free space minus a margin (the larger of 2 % of the space it can fill (used plus available) and 256 MiB), measured with `statvfs` at the start | filling the disk the application and its database live on |
//! | `CompressionRatio` (`max_compression_ratio`, default 200:1, for the whole stream and for each file, past 1 MiB unpacked) | decompression bombs (4 MiB that unpack to 4 GiB of zeros), refused within the first megabytes instead of after writing them |
//! | `Corrupt` | truncated or damaged archives, bad gzip CRCs, and ambiguous headers (a pax size or path that disagrees with the header) that different tools would read differently |
//!
//! **Pre-scan.** Before writing anything, [`extract_tar_gz`] reads the whole
//! archive once with every rule and limit applied but nothing hashed or
//! written ([`ExtractOptions::prescan`], on by default), so a package that
//! breaks any of them, at its first entry or its last, is refused before
//! the staging directory exists. The writing pass applies everything again
//! (the file could change in between). The pre-scan costs one more
//! decompression of the archive and nothing else: about 1.2 s of CPU for a
//! 480 MB tree packed into 334 MB, i.e. +60 % when extracting to tmpfs and
//! around +10 % when writing to disk dominates (`tests/extract_cost.rs`).
//! A decompression bomb is refused by the compression-ratio check within
//! its first megabyte either way (under a millisecond for 4 GiB of zeros).
//!
//! **File list.** Extraction returns the package's [`FileList`](crate::tree::FileList)
//! ([`ExtractionReport::list`]): every directory with its final mode, every
//! file with its mode, size and SHA-256 computed as it is written, every
//! symlink with its target, hard links as the file they link to. It is what
//! the updater records as "what this release shipped". [`list_tar_gz`]
//! returns the same list without writing anything (the same code validates
//! with the same errors), e.g. for a release that was installed by hand.
//!
//! Beyond the rules: files are created with `O_EXCL` so nothing existing is
//! followed or overwritten; the staging directory must be new or empty and is
//! 0700 until extraction succeeds; modes are the archive's permission bits
//! masked by 022 (implicit directories 0755); ownership from the archive is
//! ignored; GNU long-name and pax headers are limited to 1 MiB each.

pub mod build;
pub mod delta;
pub mod download;
pub mod extract;
pub mod index;
pub mod signature;
pub mod tar_header;

pub use build::{BuildOptions, BuiltRelease, build_release, merge_into_manifest};
pub use download::{VerificationPolicy, VerifiedPackage, download_verified};
pub use extract::{ExtractOptions, ExtractionReport, extract_tar_gz, list_tar_gz};
pub use index::PackageIndex;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::release::Sha256Digest;

/// The SHA-256 and size of a file, read in 256 KiB blocks.
pub fn sha256_file(path: &Path) -> Result<(Sha256Digest, u64)> {
    let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
    Ok((Sha256Digest(hasher.finalize().into()), total))
}
