//! Trees on disk: write them, copy them, snapshot them byte-for-byte
//! ([`snapshot`]), or describe them as text down to modification times and
//! hard links ([`describe`], [`describe_with_links`]) for what a backup must
//! restore exactly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A node of a tree: kind, mode and content (or link target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File {
        /// Permission bits.
        mode: u32,
        /// Its bytes.
        content: Vec<u8>,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link.
    Link {
        /// Where it points.
        target: PathBuf,
    },
}

/// A tree: every path (relative) with its node.
pub type Tree = BTreeMap<PathBuf, Node>;

/// Every path under `root` except the updater's state directory `.updater`,
/// with its node.
pub fn snapshot(root: &Path) -> Tree {
    snapshot_skipping(root, &[".updater"])
}

/// Every path under `root` except `skip` (relative paths) and what lies below them.
pub fn snapshot_skipping(root: &Path, skip: &[&str]) -> Tree {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if skip.iter().any(|s| rel.starts_with(s)) {
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

/// The regular files under `root` (relative path, bytes), except `skip`
/// and what lies below them: what an application's files hold, without
/// directories, modes or links.
pub fn files_skipping(root: &Path, skip: &[&str]) -> BTreeMap<String, Vec<u8>> {
    snapshot_skipping(root, skip)
        .into_iter()
        .filter_map(|(path, node)| match node {
            Node::File { content, .. } => Some((path.to_string_lossy().into_owned(), content)),
            Node::Dir { .. } | Node::Link { .. } => None,
        })
        .collect()
}

/// Every path under `root` (but `skip` and what lies below them), sorted,
/// with `symlink_metadata`: the walk of [`describe`] and [`describe_with_links`].
fn walk_sorted(root: &Path, skip: &[&str]) -> BTreeMap<PathBuf, fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path);
            }
            out.insert(rel, meta);
        }
    }
    out
}

/// A tree as text, one line per path under `root` (but `skip` and what lies
/// below them), in path order:
/// `<path> dir|link-><target>|file <size> <sha256> mode=<octal> mtime=<secs>.<nanos>`.
///
/// Stricter than [`snapshot`]: modification times count, to the nanosecond
/// (a tool that keeps whole seconds only can be compared by cutting each
/// line at its last `.`). For backups, which must restore times too.
pub fn describe(root: &Path, skip: &[&str]) -> String {
    let mut out = String::new();
    for (rel, meta) in walk_sorted(root, skip) {
        let path = root.join(&rel);
        let kind = if meta.is_dir() {
            "dir".to_string()
        } else if meta.file_type().is_symlink() {
            format!("link->{}", fs::read_link(&path).unwrap().display())
        } else {
            format!(
                "file {} {}",
                meta.len(),
                hex::encode(Sha256::digest(fs::read(&path).unwrap()))
            )
        };
        writeln!(
            out,
            "{} {kind} mode={:o} mtime={}.{:09}",
            rel.display(),
            meta.mode() & 0o7777,
            meta.mtime(),
            meta.mtime_nsec()
        )
        .unwrap();
    }
    out
}

/// [`describe`], preceded by a `root mode=<octal>` line and followed by one
/// `linked: <a> = <b> ...` line per group of regular files sharing an inode
/// (hard links), groups sorted.
pub fn describe_with_links(root: &Path, skip: &[&str]) -> String {
    let mut out = format!(
        "root mode={:o}\n{}",
        fs::metadata(root).unwrap().mode() & 0o7777,
        describe(root, skip)
    );
    let mut groups: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for (rel, meta) in walk_sorted(root, skip) {
        if meta.is_file() {
            groups
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.to_string_lossy().into_owned());
        }
    }
    let mut linked: Vec<Vec<String>> = groups.into_values().filter(|g| g.len() > 1).collect();
    linked.sort();
    for group in linked {
        writeln!(out, "linked: {}", group.join(" = ")).unwrap();
    }
    out
}

/// The differences between two trees, one line per path, for assertion messages.
pub fn diff(expected: &Tree, actual: &Tree) -> String {
    let mut lines = Vec::new();
    for (path, node) in expected {
        match actual.get(path) {
            None => lines.push(format!("missing {}", path.display())),
            Some(other) if other != node => lines.push(format!("differs {}", path.display())),
            Some(_) => {}
        }
    }
    for path in actual.keys() {
        if !expected.contains_key(path) {
            lines.push(format!("unexpected {}", path.display()));
        }
    }
    lines.join("\n")
}

/// Writes `files` (path, content) under `root`, creating directories.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
    }
}

/// Copies a directory tree (files, directories, symlinks, modes).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}
