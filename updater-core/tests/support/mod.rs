//! Shared test fixtures: an application at 1.0.0, releases on a local
//! directory source, a fake database with migrations and snapshots, and a
//! byte-for-byte tree snapshot.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use updater_core::backup::{Backup, BackupKind, BackupRequest, BackupStrategy};
use updater_core::history::InMemoryHistoryStore;
use updater_core::migrate::{MigrationContext, Migrator};
use updater_core::pipeline::UpdaterBuilder;
use updater_core::progress::ProgressSink;
use updater_core::source::LocalDirectorySource;
use updater_core::version::Version;
use updater_core::{Error, Result};

/// A file of a tree: kind, mode and content (or link target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { mode: u32, content: Vec<u8> },
    Dir { mode: u32 },
    Link { target: PathBuf },
}

/// A tree: every path with its node.
pub type Tree = BTreeMap<PathBuf, Node>;

/// Every path under `root` (except `.updater`) with its node, byte-for-byte.
pub fn snapshot(root: &Path) -> Tree {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".updater") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.file_type().is_symlink() {
                Node::Link {
                    target: fs::read_link(&path).unwrap(),
                }
            } else if meta.is_dir() {
                pending.push(path.clone());
                Node::Dir { mode }
            } else {
                Node::File {
                    mode,
                    content: fs::read(&path).unwrap(),
                }
            };
            out.insert(rel, node);
        }
    }
    out
}

/// Writes `files` (path, content) under `root`, creating directories.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
    }
}

/// The tree of release `version`: a few files, a nested directory, a
/// symlink, and release defaults for preserved paths.
pub fn release_tree(root: &Path, version: &str, extra: &[(&str, &str)]) {
    write_tree(
        root,
        &[
            ("VERSION", version),
            ("index.php", &format!("<?php echo 'app {version}';")),
            ("src/lib/core.php", &format!("core {version}")),
            ("public/app.js", &format!("console.log('{version}')")),
            ("storage/logs/.gitkeep", ""),
            (".env", "APP_ENV=default-from-release"),
        ],
    );
    write_tree(root, extra);
    std::os::unix::fs::symlink("src/lib/core.php", root.join("core-link")).unwrap();
}

/// Packs `dir` into a `.tar.gz` at `archive` (entries prefixed `./`, like `tar czf x -C dir .`).
pub fn pack(dir: &Path, archive: &Path) {
    let file = fs::File::create(archive).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap().finish().unwrap();
}

/// A fake database: a directory with `schema` (the version whose
/// migrations ran) and `rows` (writes by the application).
#[derive(Debug, Clone)]
pub struct FakeDatabase {
    pub dir: PathBuf,
}

impl FakeDatabase {
    pub fn new(dir: PathBuf) -> Self {
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("schema"), "1.0.0").unwrap();
        fs::write(dir.join("rows"), "row1\n").unwrap();
        FakeDatabase { dir }
    }
    pub fn schema(&self) -> String {
        fs::read_to_string(self.dir.join("schema")).unwrap()
    }
    pub fn rows(&self) -> String {
        fs::read_to_string(self.dir.join("rows")).unwrap()
    }
}

/// Migrations that set the schema to the target version.
#[derive(Debug)]
pub struct FakeMigrator {
    pub db: FakeDatabase,
    pub revertible: bool,
    pub fail_migrate: bool,
}

impl Migrator for FakeMigrator {
    fn describe(&self) -> String {
        "fake migrator".into()
    }
    fn migrate(&self, ctx: &MigrationContext) -> Result<()> {
        // Half-applied first, as a real failing migration would leave it.
        fs::write(self.db.dir.join("schema"), format!("{}-partial", ctx.to)).unwrap();
        if self.fail_migrate {
            return Err(Error::other(
                "migrate",
                "migration 2026_11_27_add_column failed",
            ));
        }
        fs::write(self.db.dir.join("schema"), ctx.to.to_string()).unwrap();
        Ok(())
    }
    fn can_revert(&self) -> bool {
        self.revertible
    }
    fn revert(&self, ctx: &MigrationContext) -> Result<()> {
        // Which code was in place: down migrations ship with the newer release.
        let code = fs::read_to_string(ctx.app_dir.join("VERSION")).unwrap_or_default();
        fs::write(self.db.dir.join("revert_saw_code"), code).unwrap();
        fs::write(self.db.dir.join("schema"), ctx.from.to_string()).unwrap();
        Ok(())
    }
}

/// Snapshots of the fake database (copies of its files).
#[derive(Debug)]
pub struct FakeDatabaseBackup {
    pub db: FakeDatabase,
    pub store: PathBuf,
    pub restores: Mutex<u32>,
}

impl BackupStrategy for FakeDatabaseBackup {
    fn describe(&self) -> String {
        "fake database backup".into()
    }
    fn kind(&self) -> BackupKind {
        BackupKind::DatabaseOnly
    }
    fn create(&self, request: &BackupRequest, _p: &dyn ProgressSink) -> Result<Backup> {
        let id = format!(
            "db-{}-{}",
            request.version,
            fs::read_dir(&self.store).map(|d| d.count()).unwrap_or(0)
        );
        let dir = self.store.join(&id);
        fs::create_dir_all(&dir).unwrap();
        for name in ["schema", "rows"] {
            fs::copy(self.db.dir.join(name), dir.join(name)).unwrap();
        }
        Ok(Backup {
            id,
            kind: BackupKind::DatabaseOnly,
            version: request.version.clone(),
            created_at: chrono::Utc::now(),
            files_path: None,
            database_path: Some(dir),
            size: 0,
            update_id: request.update_id,
            description: None,
        })
    }
    fn verify(&self, backup: &Backup) -> Result<()> {
        if backup
            .database_path
            .as_ref()
            .is_some_and(|p| p.join("schema").exists())
        {
            Ok(())
        } else {
            Err(Error::integrity("fake backup", "missing"))
        }
    }
    fn restore(&self, backup: &Backup, _p: &dyn ProgressSink) -> Result<()> {
        let dir = backup.database_path.clone().unwrap();
        for name in ["schema", "rows"] {
            fs::copy(dir.join(name), self.db.dir.join(name)).unwrap();
        }
        *self.restores.lock().unwrap() += 1;
        Ok(())
    }
    fn delete(&self, backup: &Backup) -> Result<()> {
        let _ = fs::remove_dir_all(backup.database_path.clone().unwrap());
        Ok(())
    }
    fn size(&self, _backup: &Backup) -> Result<u64> {
        Ok(0)
    }
}

/// An application at 1.0.0 with user data in preserved paths, and a
/// release directory publishing 1.1.0 (and whatever a test adds).
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub app: PathBuf,
    pub releases: PathBuf,
    pub db: FakeDatabase,
    pub history: Arc<InMemoryHistoryStore>,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        release_tree(&app, "1.0.0", &[("src/old-only.php", "removed in 1.1.0")]);
        // User data in preserved paths: must survive every update and rollback byte-for-byte.
        write_tree(
            &app,
            &[
                (".env", "APP_KEY=secret-user-key"),
                ("storage/logs/app.log", "log line 1\n"),
                ("storage/app/public/avatar.png", "PNG user upload"),
            ],
        );
        fs::set_permissions(app.join("index.php"), fs::Permissions::from_mode(0o640)).unwrap();
        let releases = tmp.path().join("releases");
        let db = FakeDatabase::new(tmp.path().join("db"));
        let fixture = Fixture {
            tmp,
            app,
            releases,
            db,
            history: Arc::new(InMemoryHistoryStore::new()),
        };
        fixture.publish("1.1.0", &[("src/new-in-1.1.php", "new")]);
        fixture
    }

    pub fn source(&self) -> LocalDirectorySource {
        LocalDirectorySource::new(&self.releases)
    }

    /// Builds and publishes release `version` to the local source.
    pub fn publish(&self, version: &str, extra: &[(&str, &str)]) {
        let tree = self.tmp.path().join(format!("build-{version}"));
        release_tree(&tree, version, extra);
        let archive = self.tmp.path().join(format!("build-{version}.tar.gz"));
        pack(&tree, &archive);
        self.source()
            .publish(
                &Version::parse(version).unwrap(),
                &archive,
                &format!("Release {version}"),
                None,
            )
            .unwrap();
    }

    /// Publishes an arbitrary archive as `version`.
    pub fn publish_archive(&self, version: &str, archive: &Path) {
        self.source()
            .publish(
                &Version::parse(version).unwrap(),
                archive,
                "hand-made",
                None,
            )
            .unwrap();
    }

    /// The expected tree of release `version` after an update from this fixture's 1.0.0.
    pub fn expected_tree_after_update(
        &self,
        version: &str,
        extra: &[(&str, &str)],
    ) -> BTreeMap<PathBuf, Node> {
        let dir = self
            .tmp
            .path()
            .join(format!("expected-{version}-{}", rand_suffix()));
        release_tree(&dir, version, extra);
        // Preserved paths carried from the running app.
        fs::remove_file(dir.join(".env")).unwrap();
        fs::copy(self.app.join(".env"), dir.join(".env")).unwrap();
        fs::remove_dir_all(dir.join("storage/logs")).unwrap();
        copy_dir(&self.app.join("storage/logs"), &dir.join("storage/logs"));
        copy_dir(
            &self.app.join("storage/app/public"),
            &dir.join("storage/app/public"),
        );
        let snap = snapshot(&dir);
        fs::remove_dir_all(&dir).unwrap();
        snap
    }

    /// A builder wired with the fixture's source and history.
    pub fn builder(&self) -> UpdaterBuilder {
        UpdaterBuilder::new(&self.app)
            .with_source(self.source())
            .with_history(self.history.clone())
    }

    /// Adds the fake migrator and database snapshots.
    pub fn with_database(
        &self,
        builder: UpdaterBuilder,
        revertible: bool,
        fail_migrate: bool,
    ) -> UpdaterBuilder {
        let store = self.tmp.path().join("db-backups");
        fs::create_dir_all(&store).unwrap();
        builder
            .with_migrator(Arc::new(FakeMigrator {
                db: self.db.clone(),
                revertible,
                fail_migrate,
            }))
            .with_database_backup(Arc::new(FakeDatabaseBackup {
                db: self.db.clone(),
                store,
                restores: Mutex::new(0),
            }))
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Copies a directory tree (files, dirs, modes).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}
