//! The one error type of `updater-core`, returned by every trait and by the pipeline.
//!
//! Variants are grouped by what a caller can *do* about them (modelled on
//! `object_store::Error`): retry later ([`Error::Unavailable`], [`Error::Locked`]),
//! fix the input ([`Error::InvalidInput`], [`Error::Precondition`]), refuse the
//! package ([`Error::Integrity`], [`Error::PackageRejected`]), or call an
//! operator ([`Error::NeedsOperator`]). Each variant carries the file, URL
//! (without credentials) or step it is about. Implementation crates keep their
//! own error enums and convert into this one, keeping theirs as the `source`.

use std::path::{Path, PathBuf};

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from a dependency or an implementation crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while checking, applying or recovering an update.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed on `path`. `action` says what was being
    /// done ("rename", "fsync", "create directory"...).
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Something asked for does not exist: a release, an asset, a backup, a record.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `release 1.4.0 in channel beta`.
        what: String,
    },

    /// Input from a user, a config file or a server is malformed.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was being parsed, e.g. `version "1.x"` or `manifest /srv/releases/manifest.json`.
        what: String,
        /// Why it was refused.
        reason: String,
    },

    /// A checksum, size or signature did not match: the package is not the one
    /// that was published.
    #[error("integrity check failed for {subject}: {reason}")]
    Integrity {
        /// The asset or file that failed, e.g. `asset app-1.2.0.tar.gz`.
        subject: String,
        /// What did not match.
        reason: String,
    },

    /// The package archive contains an entry that could escape or abuse the
    /// staging directory, or it exceeds a configured limit. The whole package is refused.
    #[error("package {package} rejected at entry {entry:?}: {rejection}")]
    PackageRejected {
        /// The archive file.
        package: PathBuf,
        /// The entry's path as written in the archive (lossy UTF-8).
        entry: String,
        /// Which rule the entry broke.
        rejection: Rejection,
    },

    /// A version rule refused the update (downgrade, reinstall, wrong channel).
    #[error("version {candidate} refused: {reason}")]
    VersionRefused {
        /// The version that was offered.
        candidate: String,
        /// Why it was refused.
        reason: String,
    },

    /// A condition needed before the update can start does not hold (disk
    /// space, permissions, a missing tool, a database that cannot be reached).
    #[error("preflight check `{check}` failed: {reason}")]
    Precondition {
        /// The name of the check.
        check: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// Another update holds the lock.
    #[error("another update is running: lock {path} is held by {holder}")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it (owner, pid, host, since).
        holder: String,
    },

    /// A remote service or tool is unreachable or refused to answer for now
    /// (network down, rate limited, database down). Retrying later may work.
    #[error("{service} unavailable: {reason}")]
    Unavailable {
        /// The service, with its URL stripped of credentials.
        service: String,
        /// What happened, including when to retry when known.
        reason: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// The source, server or file system cannot do what was asked this way
    /// (a server that ignores `Range`, a source without ranged downloads);
    /// the caller may do it another way (e.g. download the whole package).
    #[error("{what} is not supported: {reason}")]
    Unsupported {
        /// What was asked, e.g. `byte ranges of app-1.2.0.tar.gz from directory /srv/releases`.
        what: String,
        /// Why not.
        reason: String,
    },

    /// An external command failed or timed out.
    #[error("command `{command}` ({step}) failed: {reason}")]
    Command {
        /// The pipeline step or purpose, e.g. `migrate` or `health check`.
        step: String,
        /// The program name (never its arguments, which may hold secrets).
        command: String,
        /// Exit status or timeout, plus the tail of its output.
        reason: String,
    },

    /// A pipeline step failed; `source` says why.
    #[error("step `{step}` failed: {source}")]
    Step {
        /// The step that failed.
        step: crate::step::Step,
        /// The error the step returned.
        #[source]
        source: Box<Error>,
    },

    /// The update failed and was rolled back; the application runs the old release.
    #[error("update to {version} failed at step `{step}` and was rolled back: {cause}")]
    RolledBack {
        /// The version that was being installed.
        version: String,
        /// The step that failed.
        step: crate::step::Step,
        /// The original failure.
        #[source]
        cause: Box<Error>,
    },

    /// Recovery could not finish after several attempts. Nothing is deleted;
    /// the journal and both trees are kept for an operator.
    #[error("update needs an operator: {reason}")]
    NeedsOperator {
        /// What went wrong and what to do.
        reason: String,
    },

    /// Application data and the new release want the same paths, or shipped
    /// files were modified in place, and the configured policy is to refuse.
    /// Nothing was changed.
    #[error(
        "the update would overwrite application data or local changes ({} paths): {}; move them, or set the conflict policy to keep-local or take-release",
        conflicts.len(),
        conflicts.join("; ")
    )]
    ApplicationData {
        /// Every conflicting path, with why.
        conflicts: Vec<String>,
    },

    /// Any other error from an implementation (a backend's own error type).
    #[error("{context}: {source}")]
    Other {
        /// What was being done.
        context: String,
        /// The implementation's error.
        #[source]
        source: BoxError,
    },
}

/// Why an archive entry was refused by safe extraction. Each rule has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The path contains a `..` component.
    #[error("path contains `..`")]
    ParentTraversal,
    /// The path is absolute (starts with `/`) or has a prefix.
    #[error("path is absolute")]
    AbsolutePath,
    /// The path is empty after removing `.` components.
    #[error("path is empty")]
    EmptyPath,
    /// The path is longer than the limit (bytes), which no file system here accepts.
    #[error("path is longer than {limit} bytes")]
    PathTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The path is not valid UTF-8 (names must compare reliably).
    #[error("path is not valid UTF-8")]
    NonUtf8Path,
    /// The entry's first component is reserved for the updater (its state directory).
    #[error("path uses the reserved name `{0}`")]
    ReservedName(String),
    /// A symbolic link whose target is absolute or leaves the staging directory.
    #[error("symlink target {target:?} points outside the package")]
    SymlinkEscape {
        /// The link target as written in the archive.
        target: String,
    },
    /// A hard link whose target is outside the package or not an earlier regular file.
    #[error("hard link target {target:?} is not an earlier regular file of the package")]
    HardlinkEscape {
        /// The link target as written in the archive.
        target: String,
    },
    /// An entry that would be written through a symlink of the package.
    #[error("path goes through the symlink {link:?}")]
    ThroughSymlink {
        /// The symlink on the way.
        link: String,
    },
    /// A character device, block device or FIFO.
    #[error("special file ({kind}) not allowed")]
    SpecialFile {
        /// `character device`, `block device` or `fifo`.
        kind: &'static str,
    },
    /// An entry type the extractor does not support (sparse, continuation...).
    #[error("unsupported entry type {0}")]
    UnsupportedType(String),
    /// The entry has the setuid or setgid bit.
    #[error("setuid/setgid mode {mode:o} not allowed")]
    SetIdBits {
        /// The mode from the archive.
        mode: u32,
    },
    /// The same path appears twice.
    #[error("duplicate path")]
    Duplicate,
    /// Two paths differ only by case or Unicode normalisation.
    #[error("collides with {other:?} (case or Unicode normalisation)")]
    Collision {
        /// The earlier entry it collides with.
        other: String,
    },
    /// A file would be placed under a path that is a regular file.
    #[error("parent {parent:?} is not a directory")]
    ParentNotDirectory {
        /// The parent path.
        parent: String,
    },
    /// More entries than the configured limit.
    #[error("more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// More unpacked bytes than the configured limit.
    #[error("unpacked size exceeds {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The data unpacks to far more than its compressed size: a decompression
    /// bomb. Checked for the whole decompressed stream (the entry is then
    /// `(archive)`) and for each file, once it unpacked past a threshold.
    #[error(
        "unpacks {ratio} times larger than it is compressed (the limit is {limit}:1): a decompression bomb?"
    )]
    CompressionRatio {
        /// The ratio of unpacked to compressed bytes when it was refused (rounded down).
        ratio: u64,
        /// The configured limit (`max_compression_ratio`).
        limit: u32,
    },
    /// Unpacked, the package would not fit on the staging file system and
    /// still leave the configured margin free.
    #[error(
        "needs at least {needed} bytes on disk, but only {available} bytes can be used (free space minus the safety margin)"
    )]
    InsufficientSpace {
        /// Disk space the entries up to this one need, rounded to blocks.
        needed: u64,
        /// Free space of the staging file system minus the margin, measured at the start.
        available: u64,
    },
    /// The archive itself is corrupt (bad gzip, bad tar header, truncated).
    #[error("corrupt archive: {0}")]
    Corrupt(String),
}

impl Error {
    /// An [`Error::Io`] for `action` on `path`.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A short, stable name of the variant (`not_found`, `locked`,
    /// `rolled_back`...): the `kind` of the CLI's and the web API's error objects.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::NotFound { .. } => "not_found",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Integrity { .. } => "integrity",
            Error::PackageRejected { .. } => "package_rejected",
            Error::VersionRefused { .. } => "version_refused",
            Error::Precondition { .. } => "precondition",
            Error::Locked { .. } => "locked",
            Error::Unavailable { .. } => "unavailable",
            Error::Unsupported { .. } => "unsupported",
            Error::Command { .. } => "command",
            Error::Step { .. } => "step_failed",
            Error::RolledBack { .. } => "rolled_back",
            Error::NeedsOperator { .. } => "needs_operator",
            Error::ApplicationData { .. } => "application_data",
            Error::Other { .. } => "other",
        }
    }

    /// An [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// An [`Error::InvalidInput`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Integrity`].
    pub fn integrity(subject: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Integrity {
            subject: subject.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Precondition`].
    pub fn precondition(check: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Precondition {
            check: check.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Unsupported`].
    pub fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unsupported {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Unavailable`] without an underlying error.
    pub fn unavailable(service: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unavailable {
            service: service.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Other`] wrapping an implementation's error.
    pub fn other(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Other {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// A URL as it may be logged, stored or shown: without `user:password@`,
/// without the query string and without the fragment.
///
/// Query strings carry credentials as often as user info does: pre-signed
/// download URLs (`X-Amz-Signature`, `X-Amz-Credential`, `sig=`, `token=`),
/// API keys, database passwords. So everything from the first `?` or `#` is
/// dropped, from absolute URLs and from relative references alike (a plain
/// path containing `?` or `#` is cut there too; the result is only for
/// display). User info is found as the last `@` before the first `/` after
/// `scheme://`, so a password containing `?`, `#` or `@` does not leak
/// either. Use the original URL for the request itself.
///
/// ```
/// use updater_core::error::redact_url;
/// assert_eq!(redact_url("https://bob:s3cret@example.com/a?x=1"), "https://example.com/a");
/// assert_eq!(redact_url("https://example.com/a"), "https://example.com/a");
/// assert_eq!(
///     redact_url("https://bucket.s3.amazonaws.com/app.tar.gz?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc#part"),
///     "https://bucket.s3.amazonaws.com/app.tar.gz"
/// );
/// assert_eq!(redact_url("postgres://app:pa#ss?w@rd@db:5432/app?sslmode=require"), "postgres://db:5432/app");
/// assert_eq!(redact_url("https://user:pw@example.com?token=t"), "https://example.com");
/// assert_eq!(redact_url("app-1.2.0.tar.gz?sig=abc"), "app-1.2.0.tar.gz");
/// assert_eq!(redact_url("sqlite:///var/lib/app/history.db"), "sqlite:///var/lib/app/history.db");
/// ```
pub fn redact_url(url: &str) -> String {
    let without_query = |text: &str| {
        let end = text.find(['?', '#']).unwrap_or(text.len());
        text[..end].to_string()
    };
    let Some(scheme_end) = url.find("://") else {
        return without_query(url);
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    if scheme.contains(['?', '#']) {
        // `://` only inside a query or fragment: not an authority.
        return without_query(url);
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}{}", without_query(rest))
}
