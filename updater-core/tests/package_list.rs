//! The file list of a package: what extraction reports it created (hashed
//! while writing), and what `list_tar_gz` reads without writing anything.
//! Both must equal `FileList::from_dir` of the extracted tree (stamps
//! aside), and the two must agree on every archive, hostile ones included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/raw_archive.rs"]
mod raw_archive;

use std::collections::BTreeMap;
use std::fs;

use proptest::prelude::*;
use raw_archive::*;
use sha2::{Digest, Sha256};
use updater_core::Error;
use updater_core::error::Rejection;
use updater_core::package::{ExtractOptions, extract_tar_gz, list_tar_gz};
use updater_core::release::Sha256Digest;
use updater_core::tree::{EntryKind, FileEntry, FileList};

fn sha256(data: &[u8]) -> Sha256Digest {
    Sha256Digest(Sha256::digest(data).into())
}

/// `list` without the install-time stamps `from_dir` records.
fn without_stamps(list: &FileList) -> FileList {
    list.iter()
        .map(|(path, entry)| {
            (
                path.to_string(),
                FileEntry {
                    stamp: None,
                    ..entry.clone()
                },
            )
        })
        .collect()
}

/// Everything in the sandbox root, by name.
fn root_names(sandbox: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(sandbox.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_report_lists_every_entry_with_its_final_mode_size_digest_and_target() {
    let sandbox = Sandbox::new();
    let core = vec![9u8; 70_000];
    let entries = [
        Raw::dir("./"),
        Raw::dir("./app/").mode(0o777),
        Raw::file("./app/bin/run", "#!/bin/sh\n").mode(0o777),
        Raw::file("./app/lib/core.so", &core).mode(0o666),
        Raw::file("./app/config.ini", "secret=1").mode(0o640),
        Raw::symlink("./app/bin/current", "../lib/core.so"),
        Raw::hardlink("./app/lib/core-again.so", "./app/lib/core.so").mode(0o600),
        Raw::dir("./app/private").mode(0o700),
        // Listed after its content: the listed mode wins over the implicit 0755.
        Raw::dir("./app/bin").mode(0o750),
    ];
    let report = sandbox.extract(&entries, &defaults()).unwrap();
    let expected: FileList = [
        ("app", FileEntry::dir(0o755)),
        ("app/bin", FileEntry::dir(0o750)),
        (
            "app/bin/run",
            FileEntry::file(0o755, 10, sha256(b"#!/bin/sh\n")),
        ),
        ("app/bin/current", FileEntry::symlink("../lib/core.so")),
        ("app/lib", FileEntry::dir(0o755)),
        (
            "app/lib/core.so",
            FileEntry::file(0o644, 70_000, sha256(&core)),
        ),
        // A hard link is the same file: its target's mode and digest.
        (
            "app/lib/core-again.so",
            FileEntry::file(0o644, 70_000, sha256(&core)),
        ),
        (
            "app/config.ini",
            FileEntry::file(0o640, 8, sha256(b"secret=1")),
        ),
        ("app/private", FileEntry::dir(0o700)),
    ]
    .into_iter()
    .map(|(path, entry)| (path.to_string(), entry))
    .collect();
    assert_eq!(report.list, expected);
    assert_eq!(
        without_stamps(&FileList::from_dir(&sandbox.staging()).unwrap()),
        expected
    );
}

#[test]
fn listed_paths_are_relative_after_strip_components() {
    let sandbox = Sandbox::new();
    let entries = [
        Raw::dir("./app-1.2.0/"),
        Raw::file("./app-1.2.0/index.php", "<?php"),
        Raw::file("./app-1.2.0/src/a.php", "a"),
        Raw::file("top-level-file", "skipped like tar --strip-components"),
        Raw::hardlink("app-1.2.0/src/c.php", "app-1.2.0/src/a.php"),
    ];
    let options = defaults().with_strip_components(1);
    let report = sandbox.extract(&entries, &options).unwrap();
    let paths: Vec<&str> = report.list.iter().map(|(path, _)| path).collect();
    assert_eq!(paths, ["index.php", "src", "src/a.php", "src/c.php"]);
    assert_eq!(
        list_tar_gz(&sandbox.archive(), &options).unwrap(),
        report.list
    );
}

#[test]
fn listing_writes_nothing_and_equals_what_extraction_reports() {
    let sandbox = Sandbox::new();
    let entries = [
        Raw::file("a/b/c.txt", "c"),
        Raw::symlink("a/link", "b/c.txt"),
        Raw::dir("a/empty").mode(0o700),
    ];
    fs::write(sandbox.archive(), gzip(&tar_bytes(&entries))).unwrap();
    let before = root_names(&sandbox);
    let listed = list_tar_gz(&sandbox.archive(), &defaults()).unwrap();
    assert_eq!(root_names(&sandbox), before, "listing wrote something");
    sandbox.assert_nothing_outside();
    let report = extract_tar_gz(&sandbox.archive(), &sandbox.staging(), &defaults()).unwrap();
    assert_eq!(listed, report.list);
    assert_eq!(listed.len(), 5);
}

#[test]
fn listing_refuses_a_hostile_package_with_the_extraction_error() {
    let entries = [
        Raw::file("ok.txt", "fine"),
        Raw::file("../outside/pwned", "x"),
    ];
    let sandbox = Sandbox::new();
    fs::write(sandbox.archive(), gzip(&tar_bytes(&entries))).unwrap();
    let listed = list_tar_gz(&sandbox.archive(), &defaults());
    assert!(
        matches!(
            &listed,
            Err(Error::PackageRejected { entry, rejection: Rejection::ParentTraversal, .. })
                if entry == "../outside/pwned"
        ),
        "{listed:?}"
    );
    sandbox.assert_nothing_outside();
    let extracted = assert_rejected_with(&entries, &defaults(), Rejection::ParentTraversal);
    assert_eq!(extracted, "../outside/pwned");
}

#[test]
fn a_gnu_tar_package_lists_like_the_tree_it_was_made_from() {
    let sandbox = Sandbox::new();
    let source = sandbox.root().join("tree");
    fs::create_dir_all(source.join("public/css")).unwrap();
    fs::create_dir_all(source.join("vendor/pkg/src")).unwrap();
    fs::write(source.join("public/index.php"), "<?php echo 1;").unwrap();
    fs::write(source.join("public/css/app.css"), "body{}".repeat(1000)).unwrap();
    fs::write(source.join("vendor/pkg/src/A.php"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("../vendor/pkg", source.join("public/pkg")).unwrap();
    let archive = sandbox.archive();
    if !sandbox.pack_with_gnu_tar(&source) {
        return;
    }
    let listed = list_tar_gz(&archive, &defaults()).unwrap();
    assert_eq!(
        listed,
        without_stamps(&FileList::from_dir(&source).unwrap())
    );
    assert_eq!(listed.total_bytes(), 13 + 6000 + 300_000);
    assert_eq!(
        listed.get("public/pkg").map(|e| e.kind),
        Some(EntryKind::Symlink)
    );
}

// ---------------------------------------------------------------------------
// Property tests.

/// A random valid package: listed directories (random modes, possibly after
/// their content), files (random modes and content), symlinks that stay
/// inside, hard links to earlier files, under an optional `./` or
/// `app-1.0/` prefix (stripped). Names are distinct by their first letter
/// per kind, so nothing collides.
fn package_strategy() -> impl Strategy<Value = (Vec<Raw>, usize)> {
    let dir = "d[a-z0-9\u{e9}]{0,4}";
    let dirs = || proptest::collection::vec(dir, 0..3);
    let dir_mode = proptest::sample::select(vec![0o755u32, 0o700, 0o750, 0o777, 0o775]);
    let file_mode = proptest::sample::select(vec![0o644u32, 0o600, 0o755, 0o666, 0o640, 0o400]);
    let listed_dirs =
        proptest::collection::btree_map(proptest::collection::vec(dir, 1..4), dir_mode, 0..5);
    let files = proptest::collection::btree_map(
        (dirs(), "f[a-z0-9\u{e9}\u{6f22} ._-]{0,8}"),
        (file_mode, proptest::collection::vec(any::<u8>(), 0..2000)),
        0..15,
    );
    let symlinks = proptest::collection::btree_map(
        (dirs(), "s[a-z]{0,4}"),
        proptest::sample::select(vec![".", "f0", "dz/f1", "missing"]),
        0..4,
    );
    let hardlinks = proptest::collection::btree_map((dirs(), "h[a-z]{0,4}"), any::<usize>(), 0..4);
    let prefix = proptest::sample::select(vec![("", 0usize), ("./", 0), ("app-1.0/", 1)]);
    (listed_dirs, files, symlinks, hardlinks, prefix).prop_flat_map(
        |(listed_dirs, files, symlinks, hardlinks, (prefix, strip))| {
            let join = |dirs: &[String], name: &str| {
                let mut path = String::from(prefix);
                for d in dirs {
                    path.push_str(d);
                    path.push('/');
                }
                path.push_str(name);
                path
            };
            let mut entries: Vec<Raw> = Vec::new();
            for (dirs, mode) in &listed_dirs {
                entries.push(Raw::dir(join(dirs, "")).mode(*mode));
            }
            let mut file_paths = Vec::new();
            for ((dirs, name), (mode, content)) in &files {
                let path = join(dirs, name);
                file_paths.push(path.clone());
                entries.push(Raw::file(path, content).mode(*mode));
            }
            for ((dirs, name), target) in &symlinks {
                entries.push(Raw::symlink(join(dirs, name), target));
            }
            let links: Vec<Raw> = if file_paths.is_empty() {
                Vec::new()
            } else {
                hardlinks
                    .iter()
                    .map(|((dirs, name), index)| {
                        Raw::hardlink(join(dirs, name), &file_paths[index % file_paths.len()])
                    })
                    .collect()
            };
            // Hard links after everything: their targets must come first.
            (Just(entries).prop_shuffle(), Just(links), Just(strip)).prop_map(
                |(mut entries, links, strip)| {
                    entries.extend(links);
                    (entries, strip)
                },
            )
        },
    )
}

/// The outcome of an extraction or a listing, comparable across the two.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Listed(FileList),
    Rejected(String, Rejection),
}

fn outcome(result: updater_core::Result<FileList>) -> Outcome {
    match result {
        Ok(list) => Outcome::Listed(list),
        Err(Error::PackageRejected {
            entry, rejection, ..
        }) => Outcome::Rejected(entry, rejection),
        Err(other) => panic!("unexpected error {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_extraction_list_equals_the_extracted_tree_and_the_listing(
        (entries, strip) in package_strategy()
    ) {
        let sandbox = Sandbox::new();
        let options = ExtractOptions::default().with_strip_components(strip);
        let report = sandbox.extract(&entries, &options).unwrap();
        let on_disk = without_stamps(&FileList::from_dir(&sandbox.staging()).unwrap());
        prop_assert_eq!(&report.list, &on_disk);
        prop_assert_eq!(report.bytes, report.list.iter()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .map(|(_, e)| e.size)
            .sum::<u64>() - hardlinked_bytes(&report.list, &entries, strip));
        let listed = list_tar_gz(&sandbox.archive(), &options).unwrap();
        prop_assert_eq!(&listed, &report.list);
    }

    #[test]
    fn listing_and_extraction_agree_on_hostile_archives(
        entries in proptest::collection::vec(
            (
                proptest::collection::vec(prop_oneof![Just(".."), Just("."), Just("a"), Just("B"), Just("b"), Just("")], 1..5),
                0u8..5,
                proptest::collection::vec(prop_oneof![Just(".."), Just("."), Just("a"), Just("b"), Just("")], 0..5),
                0o600u32..0o7777,
            ),
            1..8,
        )
    ) {
        let raws: Vec<Raw> = entries
            .iter()
            .map(|(parts, kind, target, mode)| {
                let path = parts.join("/");
                let target = target.join("/");
                match kind {
                    0 => Raw::file(path, "data").mode(*mode),
                    1 => Raw::dir(path).mode(*mode),
                    2 => Raw::symlink(path, target),
                    3 => Raw::hardlink(path, target),
                    _ => Raw::new(path, tar::EntryType::Fifo),
                }
            })
            .collect();
        let sandbox = Sandbox::new();
        fs::write(sandbox.archive(), gzip(&tar_bytes(&raws))).unwrap();
        let listed = outcome(list_tar_gz(&sandbox.archive(), &defaults()));
        let extracted = outcome(
            extract_tar_gz(&sandbox.archive(), &sandbox.staging(), &defaults()).map(|r| r.list),
        );
        sandbox.assert_nothing_outside();
        prop_assert_eq!(&listed, &extracted);
        if let Outcome::Listed(list) = &listed {
            let on_disk = without_stamps(&FileList::from_dir(&sandbox.staging()).unwrap());
            prop_assert_eq!(list, &on_disk);
        } else {
            prop_assert!(!sandbox.staging().exists());
        }
    }
}

/// Bytes of the listed files that are hard links (counted in the list, not
/// written again).
fn hardlinked_bytes(list: &FileList, entries: &[Raw], strip: usize) -> u64 {
    let stripped = |raw: &[u8]| -> String {
        let path = String::from_utf8_lossy(raw).into_owned();
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        parts[strip..].join("/")
    };
    let paths: BTreeMap<String, ()> = entries
        .iter()
        .filter(|e| e.kind == tar::EntryType::Link)
        .map(|e| (stripped(&e.path), ()))
        .collect();
    paths
        .keys()
        .filter_map(|path| list.get(path))
        .map(|entry| entry.size)
        .sum()
}
