//! File backups: the application tree as an incremental, parallel `.tar.gz`.

mod create;
mod format;
mod manifest;
mod restore;
mod verify;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use updater_core::backup::{
    Backup, BackupKind, BackupRequest, BackupStrategy, Pruned, RetentionRules,
};
use updater_core::progress::ProgressSink;

pub use create::CreateStats;
pub use format::EntryType;
pub use manifest::{MANIFEST_FORMAT, Manifest, ManifestEntry, ManifestHeader, ManifestTrailer};
pub use restore::RestoreStats;
pub(crate) use restore::remove_tree;

use crate::error::{BackupError, Result};
use crate::exclude::{DEFAULT_EXCLUDES, ExcludeSet};
use crate::store::{BackupRecord, BackupStatus, Catalog, PartRecord, PartRole, PendingBackup};

/// File name of the archive inside a backup directory.
pub const ARCHIVE_FILE: &str = "files.tar.gz";
/// File name of the manifest inside a backup directory.
pub const MANIFEST_FILE: &str = "files.manifest.jsonl";

/// Backs up one directory tree into a backup directory. See the crate docs
/// for the format. Build it with [`FileBackup::builder`].
#[derive(Debug, Clone)]
pub struct FileBackup {
    source: PathBuf,
    catalog: Catalog,
    excludes: ExcludeSet,
    level: u32,
    pool: Arc<rayon::ThreadPool>,
    incremental: bool,
    sync: bool,
    retain_for: Option<Duration>,
}

/// Options of a [`FileBackup`] (consuming builder).
#[derive(Debug, Clone)]
pub struct FileBackupBuilder {
    source: PathBuf,
    backup_root: PathBuf,
    default_excludes: bool,
    excludes: Vec<String>,
    level: u32,
    threads: Option<usize>,
    incremental: bool,
    sync: bool,
    retain_for: Option<Duration>,
}

impl FileBackupBuilder {
    /// Adds an exclude glob (relative to the tree; see [`ExcludeSet`]).
    pub fn exclude(mut self, pattern: impl Into<String>) -> Self {
        self.excludes.push(pattern.into());
        self
    }

    /// Adds several exclude globs.
    pub fn with_excludes<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excludes.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Excludes `node_modules` directories at any depth (off by default).
    pub fn exclude_node_modules(self) -> Self {
        self.with_excludes(["node_modules", "**/node_modules"])
    }

    /// Drops the default excludes ([`DEFAULT_EXCLUDES`]).
    pub fn without_default_excludes(mut self) -> Self {
        self.default_excludes = false;
        self
    }

    /// Deflate level for compressible data, 1 (default, fastest) to 9.
    /// Incompressible data is always stored.
    pub fn with_compression_level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Worker threads (default: the number of CPUs).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Whether unchanged entries are copied from the newest verified backup
    /// of the same tree (default: yes).
    pub fn with_incremental(mut self, incremental: bool) -> Self {
        self.incremental = incremental;
        self
    }

    /// Whether backups are fsynced before they enter the catalog and restores
    /// synced before they return (default: yes).
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Backups expire this long after creation (retention may then drop them).
    pub fn with_retention(mut self, retain_for: Duration) -> Self {
        self.retain_for = Some(retain_for);
        self
    }

    /// Validates the options.
    pub fn build(self) -> Result<FileBackup> {
        if !(1..=9).contains(&self.level) {
            return Err(BackupError::invalid(
                "compression level",
                format!("{} is not between 1 and 9", self.level),
            ));
        }
        let mut patterns: Vec<String> = Vec::new();
        if self.default_excludes {
            patterns.extend(DEFAULT_EXCLUDES.iter().map(|p| (*p).to_string()));
        }
        patterns.extend(self.excludes);
        let absolute = |path: PathBuf| -> Result<PathBuf> {
            if path.is_absolute() {
                Ok(path)
            } else {
                Ok(std::env::current_dir()
                    .map_err(|e| BackupError::io("resolve", &path, e))?
                    .join(path))
            }
        };
        let source = absolute(self.source)?;
        let backup_root = absolute(self.backup_root)?;
        // Backups kept inside the tree must never back themselves up.
        if let Ok(inside) = backup_root.strip_prefix(&source) {
            let inside = inside.to_str().ok_or_else(|| BackupError::NonUtf8Path {
                path: backup_root.to_string_lossy().into_owned(),
            })?;
            if inside.is_empty() {
                return Err(BackupError::invalid(
                    "backup directory",
                    "it is the directory being backed up",
                ));
            }
            patterns.push(globset_escape(inside));
        }
        let excludes = ExcludeSet::new(&patterns)?;
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("backup-{i}"))
            .build()
            .map_err(|e| BackupError::invalid("thread pool", e.to_string()))?;
        Ok(FileBackup {
            source,
            catalog: Catalog::new(backup_root),
            excludes,
            level: self.level,
            pool: Arc::new(pool),
            incremental: self.incremental,
            sync: self.sync,
            retain_for: self.retain_for,
        })
    }
}

impl FileBackup {
    /// A builder backing up `source` into `backup_root`.
    pub fn builder(
        source: impl Into<PathBuf>,
        backup_root: impl Into<PathBuf>,
    ) -> FileBackupBuilder {
        FileBackupBuilder {
            source: source.into(),
            backup_root: backup_root.into(),
            default_excludes: true,
            excludes: Vec::new(),
            level: 1,
            threads: None,
            incremental: true,
            sync: true,
            retain_for: None,
        }
    }

    /// The tree this backs up.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The catalog of the backup directory.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The exclude patterns in force.
    pub fn excludes(&self) -> &[String] {
        self.excludes.patterns()
    }

    pub(crate) fn sync(&self) -> bool {
        self.sync
    }

    pub(crate) fn retain_for(&self) -> Option<Duration> {
        self.retain_for
    }

    /// Takes a backup and says what it did.
    pub fn create_with_stats(
        &self,
        request: &BackupRequest,
        progress: &dyn ProgressSink,
    ) -> Result<(Backup, CreateStats)> {
        let pending = PendingBackup::begin(&self.catalog, request, "files")?;
        let (parts, stats) = self.create_into(&pending.dir, pending.created_at, progress)?;
        let record = crate::store::new_record(
            &pending,
            request,
            BackupKind::FilesOnly,
            self.describe(),
            parts,
            self.retain_for,
        );
        pending.commit(&record, self.sync)?;
        tracing::info!(id = %record.backup.id, entries = stats.entries, copied = stats.copied, size = stats.archive_size, "files backup created");
        Ok((record.backup, stats))
    }

    /// Writes the archive and manifest into `dir` (used by composite backups too).
    pub(crate) fn create_into(
        &self,
        dir: &Path,
        created_at: DateTime<Utc>,
        progress: &dyn ProgressSink,
    ) -> Result<(Vec<PartRecord>, CreateStats)> {
        let started = std::time::Instant::now();
        let base = if self.incremental {
            match self.find_base() {
                Ok(base) => base,
                Err(e) => {
                    tracing::warn!(error = %e, "no usable base backup; taking a full one");
                    None
                }
            }
        } else {
            None
        };
        tracing::debug!(elapsed = ?started.elapsed(), base = base.is_some(), "base loaded");
        let walked = create::walk(&self.source, &self.excludes)?;
        tracing::debug!(elapsed = ?started.elapsed(), entries = walked.len(), "tree walked");
        let archive_path = dir.join(ARCHIVE_FILE);
        let settings = create::ArchiveSettings {
            level: self.level,
            pool: &self.pool,
            progress,
        };
        let (entries, (end_offset, end_length), stats) =
            create::write_archive(walked, base.as_ref(), &archive_path, &settings)?;
        tracing::debug!(elapsed = ?started.elapsed(), "archive written");
        let manifest = Manifest {
            header: ManifestHeader {
                format: MANIFEST_FORMAT.to_string(),
                source: self.source.clone(),
                excludes: self.excludes.patterns().to_vec(),
                created_at,
            },
            trailer: ManifestTrailer {
                entries: entries.len() as u64,
                end_offset,
                end_length,
                archive_size: stats.archive_size,
            },
            entries,
        };
        let (manifest_size, manifest_sha) = manifest.write(&dir.join(MANIFEST_FILE))?;
        tracing::debug!(elapsed = ?started.elapsed(), "manifest written");
        let parts = vec![
            PartRecord {
                role: PartRole::FilesArchive,
                file: ARCHIVE_FILE.to_string(),
                size: stats.archive_size,
                sha256: None,
            },
            PartRecord {
                role: PartRole::FilesManifest,
                file: MANIFEST_FILE.to_string(),
                size: manifest_size,
                sha256: Some(manifest_sha),
            },
        ];
        Ok((parts, stats))
    }

    /// The newest verified backup of the same tree, with its archive open.
    fn find_base(&self) -> Result<Option<create::Base>> {
        for entry in self.catalog.list()?.into_iter().rev() {
            let record = &entry.record;
            if record.status != BackupStatus::Verified
                || record.part(PartRole::FilesArchive).is_none()
            {
                continue;
            }
            let dir = self.catalog.dir_of(record.id())?;
            let manifest = read_manifest(&dir, record)?;
            if manifest.header.source != self.source {
                continue;
            }
            let archive_path = dir.join(ARCHIVE_FILE);
            let archive = fs::File::open(&archive_path)
                .map_err(|e| BackupError::io("open", &archive_path, e))?;
            let size = archive
                .metadata()
                .map_err(|e| BackupError::io("inspect", &archive_path, e))?
                .len();
            if size != manifest.trailer.archive_size {
                return Err(BackupError::integrity(
                    archive_path.display().to_string(),
                    "size differs from its manifest",
                ));
            }
            let entries = manifest
                .entries
                .into_iter()
                .map(|e| (e.path.clone(), e))
                .collect();
            return Ok(Some(create::Base {
                id: record.id().to_string(),
                archive,
                entries,
            }));
        }
        Ok(None)
    }

    /// Checks the files part of the backup in `dir`: manifest hash, then every
    /// byte of the archive.
    pub(crate) fn verify_in(&self, dir: &Path, record: &BackupRecord) -> Result<()> {
        let manifest = read_manifest(dir, record)?;
        let archive_path = dir.join(ARCHIVE_FILE);
        verify::verify_archive(&archive_path, &manifest, &self.pool)
    }

    /// The manifest and archive path of the files part of the backup in
    /// `dir`, the archive's size checked against the manifest.
    fn open_files_part(dir: &Path, record: &BackupRecord) -> Result<(Manifest, PathBuf)> {
        let manifest = read_manifest(dir, record)?;
        let archive_path = dir.join(ARCHIVE_FILE);
        let size = match fs::metadata(&archive_path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::integrity(
                    archive_path.display().to_string(),
                    "file is missing",
                ));
            }
            Err(e) => return Err(BackupError::io("inspect", &archive_path, e)),
        };
        if size != manifest.trailer.archive_size {
            return Err(BackupError::integrity(
                archive_path.display().to_string(),
                "size differs from its manifest",
            ));
        }
        Ok((manifest, archive_path))
    }

    /// Restores the files part of the backup in `dir` into `target`.
    pub(crate) fn restore_in(
        &self,
        dir: &Path,
        record: &BackupRecord,
        target: &Path,
        progress: &dyn ProgressSink,
    ) -> Result<RestoreStats> {
        let (manifest, archive_path) = Self::open_files_part(dir, record)?;
        let options = restore::WriteOptions {
            sync: self.sync,
            root_mode: None,
        };
        restore::restore_tree(
            target,
            &archive_path,
            &manifest,
            &self.pool,
            progress,
            options,
        )
    }

    /// Stages the files part of the backup in `dir` into the new directory `target`.
    pub(crate) fn stage_in(
        &self,
        dir: &Path,
        record: &BackupRecord,
        target: &Path,
        progress: &dyn ProgressSink,
    ) -> Result<RestoreStats> {
        if fs::symlink_metadata(target).is_ok() {
            return Err(BackupError::TargetExists {
                path: target.to_path_buf(),
            });
        }
        let (manifest, archive_path) = Self::open_files_part(dir, record)?;
        // A restore leaves the application directory's own mode alone; the
        // staged tree replaces that directory, so it takes its mode.
        let root_mode = fs::metadata(&self.source).map_or(0o755, |m| m.mode() & 0o7777);
        let options = restore::WriteOptions {
            sync: self.sync,
            root_mode: Some(root_mode),
        };
        restore::stage_tree(
            target,
            &archive_path,
            &manifest,
            &self.pool,
            progress,
            options,
        )
    }

    /// Writes the files of `backup` into `target`, a directory that must not
    /// exist yet, exactly as [`restore`](BackupStrategy::restore) would leave
    /// the source tree (excluded paths aside: they are not in the backup),
    /// without touching the source tree; says what it did. Every entry is
    /// checked as a restore checks it. On failure nothing is left at `target`.
    ///
    /// ```
    /// use updater_backup::FileBackup;
    /// use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
    /// use updater_core::progress::NoProgress;
    /// use updater_core::version::Version;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let app = dir.path().join("app");
    /// std::fs::create_dir(&app)?;
    /// std::fs::write(app.join("index.php"), "<?php echo 'hi';")?;
    /// std::fs::hard_link(app.join("index.php"), app.join("alias.php"))?;
    /// let strategy = FileBackup::builder(&app, dir.path().join("backups")).build()?;
    /// let request = BackupRequest {
    ///     version: Version::new(1, 4, 2),
    ///     purpose: BackupPurpose::Manual,
    ///     update_id: None,
    ///     description: None,
    /// };
    /// let backup = strategy.create(&request, &NoProgress)?;
    /// let staged = dir.path().join("staged");
    /// let stats = strategy.stage_to(&backup, &staged, &NoProgress)?;
    /// assert_eq!((stats.files, stats.hard_links), (1, 1));
    /// assert_eq!(std::fs::read_to_string(staged.join("alias.php"))?, "<?php echo 'hi';");
    /// // Staging never writes over an existing directory.
    /// assert!(strategy.stage_to(&backup, &staged, &NoProgress).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stage_to(
        &self,
        backup: &Backup,
        target: &Path,
        progress: &dyn ProgressSink,
    ) -> Result<RestoreStats> {
        let record = self.catalog.read_record(&backup.id)?;
        let dir = self.catalog.dir_of(&backup.id)?;
        self.stage_in(&dir, &record, target, progress)
    }

    /// The preflight of [`BackupStrategy::preflight`], with room for `extra`
    /// more bytes (a database dump) in the space check.
    pub(crate) fn preflight_with(&self, extra: u64) -> updater_core::Result<()> {
        let meta = fs::metadata(&self.source).map_err(|e| {
            updater_core::Error::precondition(
                "backup source",
                format!("{}: {e}", self.source.display()),
            )
        })?;
        if !meta.is_dir() {
            return Err(updater_core::Error::precondition(
                "backup source",
                format!("{} is not a directory", self.source.display()),
            ));
        }
        crate::store::check_writable(self.catalog.root())?;
        Ok(self.check_space(extra)?)
    }

    /// Checks that the backup directory's file system has room for the next
    /// backup plus `extra` bytes (a database dump): the estimate is the last
    /// backup of this tree scaled by how much the tree grew since (the tree's
    /// size when there is none), plus 20 %.
    pub(crate) fn check_space(&self, extra: u64) -> Result<()> {
        let (estimate, basis) = self.estimate_size()?;
        let estimate = estimate.saturating_add(extra);
        let required = estimate.saturating_add(estimate / 5);
        let root = self.catalog.root();
        let stat = rustix::fs::statvfs(root)
            .map_err(|e| BackupError::io("inspect the file system of", root, e.into()))?;
        let available = stat.f_bavail.saturating_mul(stat.f_frsize);
        tracing::debug!(dir = %root.display(), available, required, basis, "backup space check");
        if available < required {
            return Err(BackupError::InsufficientSpace {
                dir: root.to_path_buf(),
                available,
                required,
                basis,
            });
        }
        Ok(())
    }

    /// The size the next backup is expected to take, and what that is based on.
    fn estimate_size(&self) -> Result<(u64, String)> {
        let walked = create::walk(&self.source, &self.excludes)?;
        let tree_now = tree_bytes(walked.iter().map(|w| &w.entry));
        for entry in self.catalog.list()?.into_iter().rev() {
            let record = &entry.record;
            let Some(archive) = record.part(PartRole::FilesArchive) else {
                continue;
            };
            let Ok(dir) = self.catalog.dir_of(record.id()) else {
                continue;
            };
            let Ok(manifest) = read_manifest(&dir, record) else {
                continue;
            };
            if manifest.header.source != self.source {
                continue;
            }
            let tree_then = tree_bytes(manifest.entries.iter()).max(1);
            let manifest_size = record.part(PartRole::FilesManifest).map_or(0, |p| p.size);
            let last = archive.size.saturating_add(manifest_size);
            let scaled = u64::try_from(
                u128::from(last) * u128::from(tree_now.max(tree_then)) / u128::from(tree_then),
            )
            .unwrap_or(u64::MAX);
            return Ok((
                scaled,
                format!(
                    "the last backup {} took {last} bytes for a tree of {tree_then} bytes; the tree is now {tree_now} bytes",
                    record.id()
                ),
            ));
        }
        Ok((
            tree_now,
            format!("no earlier backup; the tree is {tree_now} bytes"),
        ))
    }

    /// Restores `backup` into `target` instead of the source tree (to inspect
    /// it, or to measure), and says what it did.
    pub fn restore_to(
        &self,
        backup: &Backup,
        target: &Path,
        progress: &dyn ProgressSink,
    ) -> Result<RestoreStats> {
        let record = self.catalog.read_record(&backup.id)?;
        let dir = self.catalog.dir_of(&backup.id)?;
        self.restore_in(&dir, &record, target, progress)
    }

    /// Restores `backup` over the source tree and says what it did.
    pub fn restore_with_stats(
        &self,
        backup: &Backup,
        progress: &dyn ProgressSink,
    ) -> Result<RestoreStats> {
        self.restore_to(backup, &self.source.clone(), progress)
    }

    /// The manifest of `backup` (checked against its recorded SHA-256).
    pub fn manifest(&self, backup: &Backup) -> Result<Manifest> {
        let record = self.catalog.read_record(&backup.id)?;
        read_manifest(&self.catalog.dir_of(&backup.id)?, &record)
    }
}

/// What the archive of these entries takes before compression: file data,
/// padding and a header block per entry.
fn tree_bytes<'a>(entries: impl Iterator<Item = &'a ManifestEntry>) -> u64 {
    entries
        .map(|e| e.size + format::padding(e.size) + format::BLOCK)
        .sum()
}

/// `path` as a glob matching itself literally.
fn globset_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

/// `done` as a percentage of `total` (100 when there is nothing to do).
fn percent(done: u64, total: u64) -> u8 {
    done.saturating_mul(100)
        .checked_div(total)
        .map_or(100, |p| p.min(100) as u8)
}

/// Reads the manifest of the backup in `dir`, checking size and SHA-256
/// against the record.
fn read_manifest(dir: &Path, record: &BackupRecord) -> Result<Manifest> {
    let part = record
        .part(PartRole::FilesManifest)
        .ok_or_else(|| BackupError::integrity(record.id(), "no files manifest recorded"))?;
    let path = dir.join(&part.file);
    check_part(&path, part)?;
    Manifest::read(&path)
}

/// Checks a part's size and (when recorded) SHA-256.
pub(crate) fn check_part(path: &Path, part: &PartRecord) -> Result<()> {
    let subject = path.display().to_string();
    let size = match fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::integrity(subject, "file is missing"));
        }
        Err(e) => return Err(BackupError::io("inspect", path, e)),
    };
    if size != part.size {
        return Err(BackupError::integrity(
            subject,
            format!("size is {size}, recorded {}", part.size),
        ));
    }
    if let Some(expected) = &part.sha256 {
        let (_, sha256) = crate::database::hash_file(path)?;
        if sha256 != *expected {
            return Err(BackupError::integrity(
                subject,
                "SHA-256 does not match the record",
            ));
        }
    }
    Ok(())
}

impl BackupStrategy for FileBackup {
    fn describe(&self) -> String {
        format!("files of {}", self.source.display())
    }

    fn kind(&self) -> BackupKind {
        BackupKind::FilesOnly
    }

    fn preflight(&self) -> updater_core::Result<()> {
        self.preflight_with(0)
    }

    fn create(
        &self,
        request: &BackupRequest,
        progress: &dyn ProgressSink,
    ) -> updater_core::Result<Backup> {
        Ok(self.create_with_stats(request, progress)?.0)
    }

    fn verify(&self, backup: &Backup) -> updater_core::Result<()> {
        let record = self.catalog.read_record(&backup.id)?;
        let dir = self.catalog.dir_of(&backup.id)?;
        let outcome = self.verify_in(&dir, &record);
        crate::store::record_verification(&self.catalog, &backup.id, &outcome);
        Ok(outcome?)
    }

    fn restore(&self, backup: &Backup, progress: &dyn ProgressSink) -> updater_core::Result<()> {
        self.restore_with_stats(backup, progress)?;
        Ok(())
    }

    fn stage_files(
        &self,
        backup: &Backup,
        target: &Path,
        progress: &dyn ProgressSink,
    ) -> updater_core::Result<()> {
        self.stage_to(backup, target, progress)?;
        Ok(())
    }

    fn restore_database(
        &self,
        backup: &Backup,
        _progress: &dyn ProgressSink,
    ) -> updater_core::Result<()> {
        Err(updater_core::Error::precondition(
            "restore database",
            format!(
                "{} holds no database; backup {} cannot restore one with it",
                self.describe(),
                backup.id
            ),
        ))
    }

    fn delete(&self, backup: &Backup) -> updater_core::Result<()> {
        Ok(self.catalog.delete(&backup.id)?)
    }

    fn prune(&self, rules: &RetentionRules) -> updater_core::Result<Pruned> {
        Ok(crate::retention::prune_catalog(&self.catalog, rules)?)
    }

    fn size(&self, backup: &Backup) -> updater_core::Result<u64> {
        Ok(crate::store::size_on_disk(&self.catalog, &backup.id)?)
    }
}
