//! Application data: everything in the live tree that the installed release
//! did not ship.
//!
//! Deploy tools make operators declare shared paths and lose whatever was
//! not declared. Like dpkg, the updater instead knows what each release
//! shipped (its [`FileList`]), so it can tell the application's own data —
//! a SQLite database in `database/`, sessions and caches in
//! `storage/framework/`, uploads anywhere — from the release's files, and
//! carry that data into the new tree by rename.
//!
//! [`scan`] compares the live tree with the installed release's list (the
//! *baseline*) and the incoming release's list, before anything changes:
//!
//! | live entry | incoming release | verdict |
//! |---|---|---|
//! | shipped, unchanged | anything | the release decides (replaced or removed) |
//! | shipped directory | directory | look inside |
//! | shipped, changed in place | anything | conflict [`ConflictReason::ModifiedInPlace`] |
//! | not shipped (application data) | nothing at that path | carried, as one rename of its topmost path |
//! | not shipped, a directory | a directory | look inside (merge) |
//! | not shipped | something at that path | conflict [`ConflictReason::DataAtReleasePath`] |
//! | not shipped | a file or link where a parent must be | conflict [`ConflictReason::BlockedByRelease`] |
//!
//! Unchanged files are recognised by size, modification time and inode
//! recorded when they were installed; only files those cannot clear are
//! hashed. Conflicts stop the update before any change unless the
//! [`ConflictPolicy`] says otherwise.
//!
//! Without a baseline (an application installed by hand whose release
//! package is not available from the source), the scan is conservative:
//! everything the incoming release does not ship is carried, and live files
//! the release replaces with different content are listed as
//! [`DataScan::replaced`] and saved aside when the update commits.
//!
//! Between the scan and the swap the application keeps running. The scan
//! remembers the listing of every directory it relied on;
//! [`DataScan::refresh`] re-reads, inside the maintenance window, only the
//! directories whose modification time changed, so files created in the
//! meantime are carried too. (A shipped file rewritten in place in those
//! seconds is not noticed.)

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tree::{EntryKind, FileEntry, FileList, StatStamp};

/// What to do when application data and the new release want the same path,
/// or a shipped file was changed in place (as dpkg asks about conffiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Refuse the update before any change, listing every path (default).
    #[default]
    Refuse,
    /// Keep the live version: it is carried, the release's copy is set aside.
    KeepLocal,
    /// Install the release's version; the live one stays in the kept old
    /// release and is saved under `.updater/local-changes/<transition>/`.
    TakeRelease,
}

impl ConflictPolicy {
    /// `refuse`, `keep-local` or `take-release`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::Refuse => "refuse",
            ConflictPolicy::KeepLocal => "keep-local",
            ConflictPolicy::TakeRelease => "take-release",
        }
    }
}

/// Why a path conflicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum ConflictReason {
    /// Application data sits at a path the new release ships.
    DataAtReleasePath,
    /// A file the installed release shipped was changed in place.
    ModifiedInPlace,
    /// Application data lies below `at`, where the new release ships a file or link.
    BlockedByRelease {
        /// The path of the release's file or link.
        at: String,
    },
}

/// One path where application data and the new release disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataConflict {
    /// The path, relative to the application directory.
    pub path: String,
    /// Why.
    #[serde(flatten)]
    pub reason: ConflictReason,
}

impl std::fmt::Display for DataConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            ConflictReason::DataAtReleasePath => {
                write!(
                    f,
                    "{}: application data where the new release ships a file",
                    self.path
                )
            }
            ConflictReason::ModifiedInPlace => {
                write!(f, "{}: a shipped file was modified in place", self.path)
            }
            ConflictReason::BlockedByRelease { at } => write!(
                f,
                "{}: application data below {at}, which the new release ships as a file or link",
                self.path
            ),
        }
    }
}

/// What the installed release shipped.
#[derive(Debug, Clone, Copy)]
pub enum Baseline<'a> {
    /// Its file list.
    Known(&'a FileList),
    /// Not known (installed by hand, package not available).
    Unknown,
}

/// Paths the scan leaves alone.
#[derive(Debug, Clone, Default)]
pub struct ScanRules {
    /// Top-level names never looked at (the state directory).
    pub reserved: Vec<String>,
    /// Paths handled elsewhere: preserved paths, the maintenance flag.
    pub skipped: Vec<PathBuf>,
    /// Application data that must not follow an update (compiled caches of
    /// the old release), as glob patterns: left with the old tree.
    pub discarded: Option<globset::GlobSet>,
}

impl ScanRules {
    fn skips(&self, relative: &str) -> bool {
        let path = Path::new(relative);
        if let Some(first) = path.components().next()
            && self
                .reserved
                .iter()
                .any(|r| first.as_os_str() == r.as_str())
        {
            return true;
        }
        self.skipped.iter().any(|s| path.starts_with(s))
    }

    fn discards(&self, relative: &str) -> bool {
        self.discarded
            .as_ref()
            .is_some_and(|set| set.is_match(relative))
    }
}

/// A directory whose listing the scan relied on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedDir {
    /// Relative path (`""` for the application directory).
    pub path: String,
    /// Its modification time when listed.
    pub mtime_ns: i64,
    /// The names it held.
    pub names: BTreeSet<String>,
}

/// The result of [`scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataScan {
    /// Topmost paths of application data, carried into the new tree.
    pub carried: Vec<String>,
    /// Paths where data and release disagree.
    pub conflicts: Vec<DataConflict>,
    /// Without a baseline: live files the release replaces with other content.
    pub replaced: Vec<String>,
    /// Application data left with the old tree by a `discarded` pattern.
    pub discarded: Vec<String>,
    /// Directories whose listing the scan relied on.
    pub watched: Vec<WatchedDir>,
    /// Entries looked at.
    pub entries: u64,
    /// Files hashed because size, time and inode could not clear them.
    pub hashed_files: u64,
    /// Bytes hashed.
    pub hashed_bytes: u64,
    /// Whether the installed release's list was known.
    pub baseline_known: bool,
}

struct Scanner<'a> {
    app_dir: &'a Path,
    baseline: Baseline<'a>,
    incoming: &'a FileList,
    rules: &'a ScanRules,
    out: DataScan,
}

/// Compares the live tree in `app_dir` with what the installed release
/// shipped (`baseline`) and what the incoming release ships. Reads the tree;
/// changes nothing.
pub fn scan(
    app_dir: &Path,
    baseline: Baseline<'_>,
    incoming: &FileList,
    rules: &ScanRules,
) -> Result<DataScan> {
    let mut scanner = Scanner {
        app_dir,
        baseline,
        incoming,
        rules,
        out: DataScan {
            baseline_known: matches!(baseline, Baseline::Known(_)),
            ..DataScan::default()
        },
    };
    scanner.directory("")?;
    Ok(scanner.out)
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn mtime_of(path: &Path) -> Result<i64> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("inspect", path, e))?;
    Ok(StatStamp::of(&meta).mtime_ns)
}

fn list_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for item in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let item = item.map_err(|e| Error::io("list", dir, e))?;
        let name = item.file_name().into_string().map_err(|name| {
            Error::invalid(
                format!("file name {name:?} in {}", dir.display()),
                "not valid UTF-8",
            )
        })?;
        names.insert(name);
    }
    Ok(names)
}

impl Scanner<'_> {
    fn shipped(&self, relative: &str) -> Option<&FileEntry> {
        match self.baseline {
            Baseline::Known(list) => list.get(relative),
            // Without a baseline, assume the old release shipped what the new one does.
            Baseline::Unknown => self.incoming.get(relative),
        }
    }

    /// Lists a directory both trees may share, and judges each entry.
    fn directory(&mut self, relative: &str) -> Result<()> {
        let dir = self.app_dir.join(relative);
        let mtime_ns = mtime_of(&dir)?;
        let names = list_names(&dir)?;
        for name in &names {
            self.entry(&join(relative, name))?;
        }
        self.out.watched.push(WatchedDir {
            path: relative.to_string(),
            mtime_ns,
            names,
        });
        Ok(())
    }

    fn entry(&mut self, relative: &str) -> Result<()> {
        if self.rules.skips(relative) {
            return Ok(());
        }
        self.out.entries += 1;
        let path = self.app_dir.join(relative);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Gone since the directory was listed: nothing to carry.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("inspect", &path, e)),
        };
        let live_is_dir = meta.is_dir() && !meta.file_type().is_symlink();
        let incoming = self.incoming.get(relative).cloned();
        match self.shipped(relative).cloned() {
            Some(shipped) => {
                if live_is_dir && shipped.kind == EntryKind::Dir {
                    return self.directory(relative);
                }
                let unchanged = self.unchanged(&path, &meta, &shipped)?;
                match self.baseline {
                    Baseline::Known(_) if !unchanged => {
                        self.conflict(relative, ConflictReason::ModifiedInPlace)
                    }
                    Baseline::Unknown if !unchanged => self.out.replaced.push(relative.to_string()),
                    _ => {}
                }
                Ok(())
            }
            None if self.rules.discards(relative) => {
                self.out.discarded.push(relative.to_string());
                Ok(())
            }
            None => match incoming {
                None => {
                    if let Some(at) = self.blocking_ancestor(relative) {
                        self.conflict(relative, ConflictReason::BlockedByRelease { at });
                    } else {
                        self.out.carried.push(relative.to_string());
                    }
                    Ok(())
                }
                Some(entry) if live_is_dir && entry.kind == EntryKind::Dir => {
                    self.directory(relative)
                }
                Some(_) => {
                    self.conflict(relative, ConflictReason::DataAtReleasePath);
                    Ok(())
                }
            },
        }
    }

    fn conflict(&mut self, relative: &str, reason: ConflictReason) {
        self.out.conflicts.push(DataConflict {
            path: relative.to_string(),
            reason,
        });
    }

    /// The nearest ancestor the incoming release ships as something other than a directory.
    fn blocking_ancestor(&self, relative: &str) -> Option<String> {
        let mut ancestor = String::new();
        let parts: Vec<&str> = relative.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            ancestor = join(&ancestor, part);
            if let Some(entry) = self.incoming.get(&ancestor)
                && entry.kind != EntryKind::Dir
            {
                return Some(ancestor);
            }
        }
        None
    }

    /// Whether the live entry still is what was shipped: same kind and
    /// content; size, time and inode first, a hash only when they disagree.
    fn unchanged(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        shipped: &FileEntry,
    ) -> Result<bool> {
        let kind = if meta.file_type().is_symlink() {
            EntryKind::Symlink
        } else if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        if kind != shipped.kind {
            return Ok(false);
        }
        match kind {
            EntryKind::Dir => Ok(true),
            EntryKind::Symlink => {
                let target =
                    std::fs::read_link(path).map_err(|e| Error::io("read link", path, e))?;
                Ok(shipped.target.as_deref() == Some(&*target.to_string_lossy()))
            }
            EntryKind::File => {
                if meta.len() != shipped.size {
                    return Ok(false);
                }
                if shipped.stamp == Some(StatStamp::of(meta)) {
                    return Ok(true);
                }
                let (digest, size) = crate::package::sha256_file(path)?;
                self.out.hashed_files += 1;
                self.out.hashed_bytes += size;
                Ok(shipped.sha256 == Some(digest) && size == shipped.size)
            }
        }
    }
}

/// How conflicts are settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Live paths carried over the release's copies (`keep-local`).
    pub carry: Vec<String>,
    /// Live paths replaced by the release, saved aside at commit (`take-release`).
    pub save_aside: Vec<String>,
}

/// Settles `conflicts` by `policy`: `refuse` fails with
/// [`Error::ApplicationData`] naming every path; `keep-local` carries them;
/// `take-release` saves them aside. A [`ConflictReason::BlockedByRelease`]
/// conflict cannot be kept (the release has a file where its parent
/// directory must be): `keep-local` refuses it.
pub fn resolve(conflicts: &[DataConflict], policy: ConflictPolicy) -> Result<Resolution> {
    let refuse = |list: Vec<&DataConflict>| Error::ApplicationData {
        conflicts: list.iter().map(ToString::to_string).collect(),
    };
    match policy {
        ConflictPolicy::Refuse if !conflicts.is_empty() => Err(refuse(conflicts.iter().collect())),
        ConflictPolicy::Refuse => Ok(Resolution::default()),
        ConflictPolicy::KeepLocal => {
            let blocked: Vec<&DataConflict> = conflicts
                .iter()
                .filter(|c| matches!(c.reason, ConflictReason::BlockedByRelease { .. }))
                .collect();
            if !blocked.is_empty() {
                return Err(refuse(blocked));
            }
            Ok(Resolution {
                carry: conflicts.iter().map(|c| c.path.clone()).collect(),
                save_aside: Vec::new(),
            })
        }
        ConflictPolicy::TakeRelease => Ok(Resolution {
            carry: Vec::new(),
            save_aside: conflicts.iter().map(|c| c.path.clone()).collect(),
        }),
    }
}

impl DataScan {
    /// Whether anything conflicts.
    pub fn has_conflicts(&self) -> bool {
        !self.conflicts.is_empty()
    }

    /// Resolves every conflict by `policy` (see [`resolve`]): `keep-local`
    /// conflicts join [`carried`](Self::carried). Returns the paths to save
    /// aside at commit: `take-release` conflicts and, without a baseline,
    /// [`replaced`](Self::replaced) files.
    pub fn resolve(&mut self, policy: ConflictPolicy) -> Result<Vec<String>> {
        let resolution = resolve(&self.conflicts, policy)?;
        self.carried.extend(resolution.carry);
        let mut save_aside = resolution.save_aside;
        save_aside.extend(self.replaced.iter().cloned());
        Ok(save_aside)
    }

    /// Re-reads the directories whose modification time changed since the
    /// scan and judges their new entries the same way (files the application
    /// created meanwhile). Cheap: one `stat` per watched directory. Returns
    /// the conflicts found among the new entries (already added to `self`).
    pub fn refresh(
        &mut self,
        app_dir: &Path,
        baseline: Baseline<'_>,
        incoming: &FileList,
        rules: &ScanRules,
    ) -> Result<Vec<DataConflict>> {
        let mut scanner = Scanner {
            app_dir,
            baseline,
            incoming,
            rules,
            out: DataScan {
                baseline_known: self.baseline_known,
                ..DataScan::default()
            },
        };
        for watched in &self.watched {
            let dir = app_dir.join(&watched.path);
            let mtime_ns = match mtime_of(&dir) {
                Ok(mtime) => mtime,
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if mtime_ns == watched.mtime_ns {
                continue;
            }
            for name in list_names(&dir)? {
                if !watched.names.contains(&name) {
                    scanner.entry(&join(&watched.path, &name))?;
                }
            }
        }
        let found = scanner.out;
        self.carried.extend(found.carried);
        self.replaced.extend(found.replaced);
        self.discarded.extend(found.discarded);
        self.entries += found.entries;
        self.hashed_files += found.hashed_files;
        self.hashed_bytes += found.hashed_bytes;
        self.conflicts.extend(found.conflicts.iter().cloned());
        Ok(found.conflicts)
    }

    /// A one-line summary for history.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} entries compared with {}; {} paths of application data carried",
            self.entries,
            if self.baseline_known {
                "the installed release's file list"
            } else {
                "the new release (the installed release's list is unknown)"
            },
            self.carried.len()
        );
        if !self.carried.is_empty() {
            let shown: Vec<&str> = self.carried.iter().take(5).map(String::as_str).collect();
            text.push_str(&format!(
                " ({}{})",
                shown.join(", "),
                if self.carried.len() > 5 { ", ..." } else { "" }
            ));
        }
        if !self.conflicts.is_empty() {
            text.push_str(&format!("; {} conflicts", self.conflicts.len()));
        }
        if !self.replaced.is_empty() {
            text.push_str(&format!(
                "; {} replaced files saved aside",
                self.replaced.len()
            ));
        }
        if !self.discarded.is_empty() {
            text.push_str(&format!("; {} discarded", self.discarded.len()));
        }
        text.push_str(&format!("; {} files hashed", self.hashed_files));
        text
    }
}

/// Hard-links (never copies) `from` — a file, a link or a whole directory —
/// to `to`, creating `to`'s parents: how replaced local versions are saved
/// aside at no cost in space or time.
pub(crate) fn link_tree(from: &Path, to: &Path) -> Result<()> {
    crate::durable::create_dir_all(crate::durable::parent_of(to))?;
    let meta = std::fs::symlink_metadata(from).map_err(|e| Error::io("inspect", from, e))?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| Error::io("create directory", to, e))?;
        std::fs::set_permissions(
            to,
            std::fs::Permissions::from_mode(meta.permissions().mode()),
        )
        .map_err(|e| Error::io("set mode of", to, e))?;
        for item in std::fs::read_dir(from).map_err(|e| Error::io("list", from, e))? {
            let item = item.map_err(|e| Error::io("list", from, e))?;
            link_tree(&item.path(), &to.join(item.file_name()))?;
        }
        Ok(())
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| Error::io("read link", from, e))?;
        std::os::unix::fs::symlink(&target, to).map_err(|e| Error::io("create link", to, e))
    } else {
        std::fs::hard_link(from, to).map_err(|e| Error::io("hard-link", to, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (path, content) in files {
            let full = root.join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, content).unwrap();
        }
    }

    fn listed(root: &Path) -> FileList {
        let mut list = FileList::from_dir(root).unwrap();
        list.stamp(root).unwrap();
        list
    }

    fn rules() -> ScanRules {
        ScanRules {
            reserved: vec![".updater".into()],
            skipped: vec![PathBuf::from(".env"), PathBuf::from("storage/logs")],
            discarded: None,
        }
    }

    /// The layout of the issue: a SQLite database in `database/`, sessions
    /// in `storage/framework`, a release that ships `database/`.
    #[test]
    fn data_the_release_never_shipped_is_carried_as_its_topmost_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        write(
            &app,
            &[
                ("index.php", "1.0"),
                ("database/migrations/1.php", "m1"),
                ("storage/framework/.gitkeep", ""),
            ],
        );
        let baseline = listed(&app);
        write(
            &app,
            &[
                ("database/app.sqlite", "rows"),
                ("database/app.sqlite-wal", "wal"),
                ("storage/framework/sessions/abc", "session"),
                ("storage/logs/app.log", "preserved elsewhere"),
                ("uploads/cat.png", "png"),
                (".env", "KEY=1"),
            ],
        );
        let new = tmp.path().join("new");
        write(
            &new,
            &[
                ("index.php", "1.1"),
                ("database/migrations/1.php", "m1"),
                ("database/migrations/2.php", "m2"),
                ("storage/framework/.gitkeep", ""),
            ],
        );
        let scan = scan(&app, Baseline::Known(&baseline), &listed(&new), &rules()).unwrap();
        assert_eq!(
            scan.carried,
            [
                "database/app.sqlite",
                "database/app.sqlite-wal",
                "storage/framework/sessions",
                "uploads"
            ]
        );
        assert!(scan.conflicts.is_empty(), "{:?}", scan.conflicts);
        assert_eq!(scan.hashed_files, 0, "stamps clear every unchanged file");
    }

    #[test]
    fn data_at_a_release_path_and_files_modified_in_place_are_conflicts() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        write(&app, &[("config/app.php", "shipped"), ("index.php", "1.0")]);
        let baseline = listed(&app);
        fs::write(app.join("config/app.php"), "edited by the admin").unwrap();
        write(&app, &[("public/robots.txt", "local"), ("cache", "x")]);
        let new = tmp.path().join("new");
        write(
            &new,
            &[
                ("config/app.php", "shipped"),
                ("index.php", "1.1"),
                ("public/robots.txt", "release"),
                ("cache/readme", "release dir"),
            ],
        );
        let mut scan = scan(&app, Baseline::Known(&baseline), &listed(&new), &rules()).unwrap();
        let reasons: Vec<(&str, &ConflictReason)> = scan
            .conflicts
            .iter()
            .map(|c| (c.path.as_str(), &c.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("cache", &ConflictReason::DataAtReleasePath),
                ("config/app.php", &ConflictReason::ModifiedInPlace),
                ("public/robots.txt", &ConflictReason::DataAtReleasePath),
            ]
        );
        assert!(matches!(
            scan.clone().resolve(ConflictPolicy::Refuse),
            Err(Error::ApplicationData { conflicts }) if conflicts.len() == 3
        ));
        let aside = scan.clone().resolve(ConflictPolicy::TakeRelease).unwrap();
        assert_eq!(aside.len(), 3);
        assert!(scan.resolve(ConflictPolicy::KeepLocal).unwrap().is_empty());
        assert!(scan.carried.contains(&"config/app.php".to_string()));
    }

    #[test]
    fn data_below_a_path_the_release_ships_as_a_file_is_blocked() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        write(&app, &[("data/.keep", "")]);
        let baseline = listed(&app);
        write(&app, &[("data/db.sqlite", "rows")]);
        let new = tmp.path().join("new");
        write(&new, &[("data", "now a file")]);
        let mut scan = scan(&app, Baseline::Known(&baseline), &listed(&new), &rules()).unwrap();
        assert_eq!(
            scan.conflicts[0].reason,
            ConflictReason::BlockedByRelease { at: "data".into() }
        );
        assert!(matches!(
            scan.resolve(ConflictPolicy::KeepLocal),
            Err(Error::ApplicationData { .. })
        ));
    }

    #[test]
    fn without_a_baseline_everything_the_release_does_not_ship_is_carried() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        write(
            &app,
            &[
                ("index.php", "hand-installed"),
                ("old.php", "x"),
                ("db/app.sqlite", "rows"),
            ],
        );
        let new = tmp.path().join("new");
        write(&new, &[("index.php", "1.1")]);
        let scan = scan(&app, Baseline::Unknown, &listed(&new), &rules()).unwrap();
        assert_eq!(scan.carried, ["db", "old.php"]);
        assert_eq!(scan.replaced, ["index.php"]);
        assert!(!scan.baseline_known);
    }

    #[test]
    fn files_created_after_the_scan_are_found_by_refresh() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        write(&app, &[("storage/framework/.gitkeep", "")]);
        let baseline = listed(&app);
        let new_list = baseline.clone();
        let mut scan = scan(&app, Baseline::Known(&baseline), &new_list, &rules()).unwrap();
        assert!(scan.carried.is_empty());
        // The mtime of a directory has a coarse clock on some file systems.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(&app, &[("storage/framework/sessions/new", "late")]);
        let conflicts = scan
            .refresh(&app, Baseline::Known(&baseline), &new_list, &rules())
            .unwrap();
        assert!(conflicts.is_empty());
        assert_eq!(scan.carried, ["storage/framework/sessions"]);
    }

    #[test]
    fn discarded_patterns_leave_caches_with_the_old_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        write(&app, &[("bootstrap/cache/.gitignore", "*")]);
        let baseline = listed(&app);
        write(&app, &[("bootstrap/cache/config.php", "old config cache")]);
        let mut glob = globset::GlobSetBuilder::new();
        glob.add(globset::Glob::new("bootstrap/cache/*.php").unwrap());
        let rules = ScanRules {
            discarded: Some(glob.build().unwrap()),
            ..rules()
        };
        let scan = scan(&app, Baseline::Known(&baseline), &baseline, &rules).unwrap();
        assert!(scan.carried.is_empty());
        assert_eq!(scan.discarded, ["bootstrap/cache/config.php"]);
    }

    #[test]
    fn link_tree_saves_a_directory_without_copying() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &[("a/b/c.txt", "data")]);
        link_tree(&tmp.path().join("a"), &tmp.path().join("saved/a")).unwrap();
        let original = fs::metadata(tmp.path().join("a/b/c.txt")).unwrap();
        let saved = fs::metadata(tmp.path().join("saved/a/b/c.txt")).unwrap();
        assert_eq!(original.ino(), saved.ino());
    }
}
