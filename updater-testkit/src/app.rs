//! The demo application: release trees, an installed application at 1.0.0
//! holding user data, releases published on a local directory source.
//!
//! Two layouts of user data:
//! - [`Layout::Preserved`]: only in the declared preserved paths (`.env`,
//!   `storage/logs`, `storage/app/public`); the database lives outside the
//!   application.
//! - [`Layout::AppData`]: also where frameworks put it without declaring it
//!   — the database inside the application (`database/app.db`, in a
//!   directory the release ships), sessions in `storage/framework/sessions`,
//!   uploads in a top-level `uploads/` — which the updater must find and carry.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use updater_core::history::InMemoryHistoryStore;
use updater_core::package::{BuildOptions, BuiltRelease, build_release};
use updater_core::pipeline::UpdaterBuilder;
use updater_core::source::LocalDirectorySource;
use updater_core::version::Version;

use crate::fakes::{FakeDatabase, FakeDatabaseBackup, FakeMigrator};
use crate::tree::{Tree, copy_dir, snapshot_skipping, write_tree};

/// Where the user's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only in preserved paths; the database outside the application.
    Preserved,
    /// Also undeclared, inside the application (database, sessions, uploads).
    AppData,
}

/// User data in preserved paths: must survive everything byte-for-byte.
pub const PRESERVED_DATA: [(&str, &str); 3] = [
    (".env", "APP_KEY=secret-user-key"),
    ("storage/logs/app.log", "log line 1\n"),
    ("storage/app/public/avatar.png", "PNG user upload"),
];

/// User data nobody declared (layout [`Layout::AppData`]), besides the database.
pub const UNDECLARED_DATA: [(&str, &str); 2] = [
    ("storage/framework/sessions/s1", "session of alice"),
    ("uploads/cat.png", "PNG cat"),
];

/// A directory on a memory file system when there is one (`/dev/shm`),
/// the system temporary directory otherwise.
pub fn fast_temp_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Where the database lives inside the application in [`Layout::AppData`].
pub const DATABASE_IN_APP: &str = "database/app.db";

/// Writes the tree of release `version`: a few files, a nested directory,
/// a symlink, `database/migrations/`, release defaults for preserved paths,
/// and `extra` files.
pub fn release_tree(root: &Path, version: &str, extra: &[(&str, &str)]) {
    write_tree(
        root,
        &[
            ("VERSION", version),
            ("index.php", &format!("<?php echo 'app {version}';")),
            ("src/lib/core.php", &format!("core {version}")),
            ("public/app.js", &format!("console.log('{version}')")),
            ("storage/logs/.gitkeep", ""),
            ("storage/framework/.gitignore", "*\n!.gitignore\n"),
            (
                &format!("database/migrations/{version}.php") as &str,
                "migration",
            ),
            (".env", "APP_ENV=default-from-release"),
        ],
    );
    write_tree(root, extra);
    std::os::unix::fs::symlink("src/lib/core.php", root.join("core-link")).unwrap();
}

/// An application at 1.0.0 with user data, and a release directory
/// publishing 1.1.0 (and whatever a test adds).
#[derive(Debug)]
pub struct Fixture {
    /// Holds everything.
    pub root: PathBuf,
    /// Removes `root` when dropped (not in a child process that reopened it).
    _owner: Option<tempfile::TempDir>,
    /// The application directory.
    pub app: PathBuf,
    /// The release directory (a [`LocalDirectorySource`]).
    pub releases: PathBuf,
    /// The application's database.
    pub db: FakeDatabase,
    /// Its history.
    pub history: Arc<InMemoryHistoryStore>,
    /// Where user data lives.
    pub layout: Layout,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// Layout [`Layout::Preserved`].
    pub fn new() -> Self {
        Self::with_layout(Layout::Preserved)
    }

    /// An application with user data laid out as `layout`.
    pub fn with_layout(layout: Layout) -> Self {
        Self::with_layout_in(layout, &std::env::temp_dir())
    }

    /// Like [`with_layout`](Self::with_layout), in a temporary directory
    /// under `parent` (a sweep of thousands of runs uses `/dev/shm`, where
    /// fsync costs nothing; renames behave the same).
    pub fn with_layout_in(layout: Layout, parent: &Path) -> Self {
        let tmp = tempfile::tempdir_in(parent).unwrap();
        let root = tmp.path().to_path_buf();
        let app = root.join("app");
        release_tree(&app, "1.0.0", &[("src/old-only.php", "removed in 1.1.0")]);
        write_tree(&app, &PRESERVED_DATA);
        fs::set_permissions(app.join("index.php"), fs::Permissions::from_mode(0o640)).unwrap();
        let db_dir = match layout {
            Layout::Preserved => root.join("db"),
            Layout::AppData => {
                write_tree(&app, &UNDECLARED_DATA);
                app.join(DATABASE_IN_APP)
            }
        };
        let fixture = Fixture {
            releases: root.join("releases"),
            db: FakeDatabase::create(db_dir),
            history: Arc::new(InMemoryHistoryStore::new()),
            root,
            _owner: Some(tmp),
            app,
            layout,
        };
        // The installed 1.0.0 is published too (a hand-installed app's baseline).
        fixture.publish("1.0.0", &[("src/old-only.php", "removed in 1.1.0")]);
        fixture.publish("1.1.0", &[("src/new-in-1.1.php", "new")]);
        fixture
    }

    /// The fixture another process created at `root` (for a child process
    /// that continues its work); its history starts empty.
    pub fn reopen(root: &Path, layout: Layout) -> Self {
        let app = root.join("app");
        let db_dir = match layout {
            Layout::Preserved => root.join("db"),
            Layout::AppData => app.join(DATABASE_IN_APP),
        };
        Fixture {
            releases: root.join("releases"),
            db: FakeDatabase::at(&db_dir),
            history: Arc::new(InMemoryHistoryStore::new()),
            root: root.to_path_buf(),
            _owner: None,
            app,
            layout,
        }
    }

    /// The release source.
    pub fn source(&self) -> LocalDirectorySource {
        LocalDirectorySource::new(&self.releases)
    }

    /// Builds release `version` with the publisher's tool
    /// ([`updater_core::package::build_release`], as `updater release build`:
    /// package, file index, checksums) and publishes it.
    pub fn publish(&self, version: &str, extra: &[(&str, &str)]) {
        let built = self.build(version, extra);
        self.source().publish_built(&built).unwrap();
    }

    /// Builds release `version` (its tree under `build-<version>`, written
    /// unless it exists) into `dist-<version>`, without publishing it.
    pub fn build(&self, version: &str, extra: &[(&str, &str)]) -> BuiltRelease {
        let tree = self.root.join(format!("build-{version}"));
        if !tree.exists() {
            release_tree(&tree, version, extra);
        }
        let options = BuildOptions::new(Version::parse(version).unwrap())
            .with_changelog(format!("Release {version}"));
        build_release(&tree, &self.root.join(format!("dist-{version}")), &options).unwrap()
    }

    /// Publishes an arbitrary archive as `version`.
    pub fn publish_archive(&self, version: &str, archive: &Path) {
        self.source()
            .publish(
                &Version::parse(version).unwrap(),
                archive,
                &format!("Release {version}"),
                None,
            )
            .unwrap();
    }

    /// Paths left out of tree comparisons: the state directory, and the
    /// database when it lives inside the application (compared by schema and rows).
    pub fn excluded(&self) -> Vec<&'static str> {
        match self.layout {
            Layout::Preserved => vec![".updater"],
            Layout::AppData => vec![".updater", DATABASE_IN_APP],
        }
    }

    /// The application tree, byte-for-byte, without [`excluded`](Self::excluded) paths.
    pub fn snapshot(&self) -> Tree {
        snapshot_skipping(&self.app, &self.excluded())
    }

    /// Every file of user data with its content (to check none is lost).
    pub fn user_data(&self) -> Vec<(&'static str, &'static str)> {
        let mut data = PRESERVED_DATA.to_vec();
        if self.layout == Layout::AppData {
            data.extend(UNDECLARED_DATA);
        }
        data
    }

    /// The tree release `version` must produce after an update from the
    /// running application: the release's files, with the user's data carried.
    pub fn expected_tree_after_update(&self, version: &str, extra: &[(&str, &str)]) -> Tree {
        let dir = self.root.join(format!(
            "expected-{version}-{}",
            crate::services::unique("t")
        ));
        release_tree(&dir, version, extra);
        fs::remove_file(dir.join(".env")).unwrap();
        fs::copy(self.app.join(".env"), dir.join(".env")).unwrap();
        fs::remove_dir_all(dir.join("storage/logs")).unwrap();
        copy_dir(&self.app.join("storage/logs"), &dir.join("storage/logs"));
        copy_dir(
            &self.app.join("storage/app/public"),
            &dir.join("storage/app/public"),
        );
        if self.layout == Layout::AppData {
            copy_dir(
                &self.app.join("storage/framework/sessions"),
                &dir.join("storage/framework/sessions"),
            );
            copy_dir(&self.app.join("uploads"), &dir.join("uploads"));
        }
        let snap = snapshot_skipping(&dir, &self.excluded());
        fs::remove_dir_all(&dir).unwrap();
        snap
    }

    /// A builder wired with the fixture's source and history.
    pub fn builder(&self) -> UpdaterBuilder {
        UpdaterBuilder::new(&self.app)
            .with_source(self.source())
            .with_history(self.history.clone())
    }

    /// Adds the fake migrator (and database snapshots when `snapshots`).
    pub fn with_migrator(
        &self,
        builder: UpdaterBuilder,
        revertible: bool,
        fail_migrate: bool,
        snapshots: bool,
    ) -> UpdaterBuilder {
        let builder = builder.with_migrator(Arc::new(FakeMigrator {
            db: self.db.clone(),
            revertible,
            fail_migrate,
        }));
        if snapshots {
            builder.with_database_backup(Arc::new(self.database_backup()))
        } else {
            builder
        }
    }

    /// Adds the fake migrator and database snapshots (the usual setup).
    pub fn with_database(
        &self,
        builder: UpdaterBuilder,
        revertible: bool,
        fail_migrate: bool,
    ) -> UpdaterBuilder {
        self.with_migrator(builder, revertible, fail_migrate, true)
    }

    /// The snapshot strategy of the fixture's database.
    pub fn database_backup(&self) -> FakeDatabaseBackup {
        FakeDatabaseBackup::new(self.db.clone(), self.root.join("db-backups"))
    }
}
