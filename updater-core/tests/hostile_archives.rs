//! Safe extraction against hand-crafted hostile archives (one test per
//! rejection rule), valid archives (layout, modes, times, links), and
//! property tests: random trees round-trip byte for byte, and random hostile
//! paths never leave anything outside the staging directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/raw_archive.rs"]
mod raw_archive;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use raw_archive::*;
use tar::EntryType;
use updater_core::Error;
use updater_core::error::Rejection;
use updater_core::package::{ExtractionReport, extract_tar_gz};

// ---------------------------------------------------------------------------
// One test per rule.

#[test]
fn parent_traversal_is_rejected_not_skipped() {
    let entry = assert_rejected_with(
        &[
            Raw::file("ok.txt", "fine"),
            Raw::file("../outside/pwned", "x"),
        ],
        &defaults(),
        Rejection::ParentTraversal,
    );
    assert_eq!(entry, "../outside/pwned");
    assert_rejected_with(
        &[Raw::file("a/b/../../../outside/pwned", "x")],
        &defaults(),
        Rejection::ParentTraversal,
    );
    assert_rejected_with(&[Raw::dir("a/..")], &defaults(), Rejection::ParentTraversal);
}

#[test]
fn parent_traversal_hidden_in_pax_and_gnu_long_names_is_rejected() {
    // The ustar name looks harmless; the pax record that tar tools honour does not.
    let pax = Raw::file("innocent.txt", "x").pax("path", "../outside/pwned");
    assert_rejected_with(&[pax], &defaults(), Rejection::ParentTraversal);
    let long = format!("{}/../../outside/pwned", "d".repeat(120));
    assert_rejected_with(
        &[Raw::file(long, "x")],
        &defaults(),
        Rejection::ParentTraversal,
    );
}

#[test]
fn absolute_paths_are_rejected_not_stripped() {
    let sandbox = Sandbox::new();
    let target = sandbox.outside().join("pwned");
    let result = sandbox.extract(
        &[Raw::file(target.as_os_str().as_encoded_bytes(), "x")],
        &defaults(),
    );
    assert_rejected(&sandbox, result, Rejection::AbsolutePath);
    assert_rejected_with(&[Raw::dir("/")], &defaults(), Rejection::AbsolutePath);
}

#[test]
fn empty_paths_are_rejected_but_the_dot_root_is_skipped() {
    assert_rejected_with(&[Raw::file("", "x")], &defaults(), Rejection::EmptyPath);
    assert_rejected_with(&[Raw::file("./", "x")], &defaults(), Rejection::EmptyPath);
    assert_rejected_with(&[Raw::file("./.", "x")], &defaults(), Rejection::EmptyPath);
    let sandbox = Sandbox::new();
    let report = sandbox
        .extract(&[Raw::dir("./"), Raw::file("./a.txt", "a")], &defaults())
        .unwrap();
    assert_eq!(
        (report.entries, report.files, report.directories),
        (1, 1, 0)
    );
}

#[test]
fn non_utf8_paths_are_rejected() {
    assert_rejected_with(
        &[Raw::file(b"caf\xe9.txt", "x")],
        &defaults(),
        Rejection::NonUtf8Path,
    );
    assert_rejected_with(
        &[Raw::symlink("link", b"\xff\xfe")],
        &defaults(),
        Rejection::NonUtf8Path,
    );
}

#[test]
fn reserved_first_components_are_rejected_in_any_case() {
    let options = defaults().with_reserved_name(".updater");
    assert_rejected_with(
        &[Raw::file(".updater/journal.json", "{}")],
        &options,
        Rejection::ReservedName(".updater".into()),
    );
    assert_rejected_with(
        &[Raw::dir("./.UPDATER")],
        &options,
        Rejection::ReservedName(".UPDATER".into()),
    );
    // A symlink into the reserved directory is refused too.
    assert_rejected_with(
        &[Raw::symlink("state", ".updater/journal.json")],
        &options,
        Rejection::ReservedName(".updater".into()),
    );
    // The name is reserved only as the first component.
    let sandbox = Sandbox::new();
    sandbox
        .extract(&[Raw::file("docs/.updater", "fine")], &options)
        .unwrap();
}

#[test]
fn symlinks_that_point_outside_are_rejected() {
    for target in ["../outside", "/etc", "a/../../outside", "..", ""] {
        assert_rejected_with(
            &[Raw::symlink("link", target)],
            &defaults(),
            Rejection::SymlinkEscape {
                target: target.into(),
            },
        );
    }
    // Inside is fine, also to the staging root from a subdirectory.
    let sandbox = Sandbox::new();
    sandbox
        .extract(
            &[
                Raw::symlink("a/up", ".."),
                Raw::symlink("a/b/c", "../../a/up"),
            ],
            &defaults(),
        )
        .unwrap();
}

#[test]
fn symlink_chains_that_escape_through_other_links_are_rejected() {
    // `d/x -> ..` resolves to the root, so `d/x/..` leaves it, though it
    // looks like `d` to a purely lexical check. Both orders are caught.
    let chain = [
        Raw::dir("d"),
        Raw::symlink("d/x", ".."),
        Raw::symlink("l", "d/x/../outside"),
    ];
    assert_rejected_with(
        &chain,
        &defaults(),
        Rejection::SymlinkEscape {
            target: "d/x/../outside".into(),
        },
    );
    let later = [
        Raw::dir("d"),
        Raw::symlink("l", "d/x/../outside"),
        Raw::symlink("d/x", ".."),
    ];
    assert_rejected_with(
        &later,
        &defaults(),
        Rejection::SymlinkEscape {
            target: "d/x/../outside".into(),
        },
    );
    let cycle = [Raw::symlink("a", "b"), Raw::symlink("b", "a")];
    assert_rejected_with(
        &cycle,
        &defaults(),
        Rejection::SymlinkEscape { target: "b".into() },
    );
}

#[test]
fn symlink_chains_resolve_up_to_forty_hops() {
    // l0 -> l1 -> ... -> l30 -> target: fine.
    let mut entries = vec![Raw::file("target", "x")];
    entries.extend((0..30).map(|i| Raw::symlink(format!("l{i}"), format!("l{}", i + 1))));
    entries.push(Raw::symlink("l30", "target"));
    let sandbox = Sandbox::new();
    sandbox.extract(&entries, &defaults()).unwrap();
    assert_eq!(
        fs::read_to_string(sandbox.staging().join("l0")).unwrap(),
        "x"
    );
    // Past 40 hops the kernel gives up (ELOOP), and so do we.
    let mut entries = vec![Raw::file("target", "x")];
    entries.extend((0..50).map(|i| Raw::symlink(format!("l{i}"), format!("l{}", i + 1))));
    entries.push(Raw::symlink("l50", "target"));
    assert_rejected_with(
        &entries,
        &defaults(),
        Rejection::SymlinkEscape {
            target: "l1".into(),
        },
    );
}

#[test]
fn deep_paths_work_and_overlong_ones_are_refused() {
    let deep = format!("{}file", "d/".repeat(1000));
    let sandbox = Sandbox::new();
    let report = sandbox
        .extract(&[Raw::file(&deep, "deep")], &defaults())
        .unwrap();
    assert_eq!(report.directories, 1000);
    assert_eq!(
        fs::read_to_string(sandbox.staging().join(&deep)).unwrap(),
        "deep"
    );
    let overlong = format!("{}file", "d/".repeat(2100));
    let sandbox = Sandbox::new();
    let result = sandbox.extract(&[Raw::file(overlong, "x")], &defaults());
    assert_rejected(&sandbox, result, Rejection::PathTooLong { limit: 4096 });
}

#[test]
fn entries_below_a_symlink_of_the_archive_are_rejected() {
    let entries = [
        Raw::dir("sub"),
        Raw::symlink("link", "sub"),
        Raw::file("link/file", "x"),
    ];
    assert_rejected_with(
        &entries,
        &defaults(),
        Rejection::ThroughSymlink {
            link: "link".into(),
        },
    );
    let deeper = [Raw::symlink("a/link", "."), Raw::dir("a/link/b/c")];
    assert_rejected_with(
        &deeper,
        &defaults(),
        Rejection::ThroughSymlink {
            link: "a/link".into(),
        },
    );
}

#[test]
fn hard_links_must_name_an_earlier_regular_file() {
    for (entries, target) in [
        (vec![Raw::hardlink("h", "/etc/passwd")], "/etc/passwd"),
        (vec![Raw::hardlink("h", "../outside/x")], "../outside/x"),
        (
            vec![Raw::hardlink("h", "later"), Raw::file("later", "x")],
            "later",
        ),
        (vec![Raw::dir("d"), Raw::hardlink("h", "d")], "d"),
        (
            vec![
                Raw::file("f", "x"),
                Raw::symlink("s", "f"),
                Raw::hardlink("h", "s"),
            ],
            "s",
        ),
        (vec![Raw::hardlink("h", "")], ""),
    ] {
        assert_rejected_with(
            &entries,
            &defaults(),
            Rejection::HardlinkEscape {
                target: target.into(),
            },
        );
    }
}

#[test]
fn devices_and_fifos_are_rejected() {
    for (kind, name) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "fifo"),
    ] {
        assert_rejected_with(
            &[Raw::new("dev/node", kind)],
            &defaults(),
            Rejection::SpecialFile { kind: name },
        );
    }
}

#[test]
fn unsupported_entry_types_are_rejected() {
    let rejection =
        match Sandbox::new().extract(&[Raw::new("sparse", EntryType::GNUSparse)], &defaults()) {
            Err(Error::PackageRejected {
                rejection: Rejection::UnsupportedType(kind),
                ..
            }) => kind,
            other => panic!("{other:?}"),
        };
    assert!(rejection.contains("sparse"), "{rejection}");
    for kind in [
        EntryType::new(b'V'),
        EntryType::new(b'M'),
        EntryType::new(b'Z'),
    ] {
        let sandbox = Sandbox::new();
        let result = sandbox.extract(&[Raw::new("odd", kind)], &defaults());
        assert!(
            matches!(
                result,
                Err(Error::PackageRejected {
                    rejection: Rejection::UnsupportedType(_),
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(!sandbox.staging().exists());
    }
    // A pax-format sparse file looks like a regular file with GNU.sparse records.
    let pax_sparse = Raw::file("data.bin", "x").pax("GNU.sparse.major", "1");
    assert_rejected_with(
        &[pax_sparse],
        &defaults(),
        Rejection::UnsupportedType("GNU sparse file (pax)".into()),
    );
}

#[test]
fn setuid_and_setgid_bits_are_rejected() {
    assert_rejected_with(
        &[Raw::file("bin/su", "x").mode(0o4755)],
        &defaults(),
        Rejection::SetIdBits { mode: 0o4755 },
    );
    assert_rejected_with(
        &[Raw::dir("shared").mode(0o2775)],
        &defaults(),
        Rejection::SetIdBits { mode: 0o2775 },
    );
}

#[test]
fn duplicate_paths_are_rejected() {
    assert_rejected_with(
        &[Raw::file("a.txt", "1"), Raw::file("./a.txt", "2")],
        &defaults(),
        Rejection::Duplicate,
    );
    assert_rejected_with(
        &[Raw::dir("d"), Raw::dir("d/")],
        &defaults(),
        Rejection::Duplicate,
    );
    assert_rejected_with(
        &[Raw::file("x/f", "1"), Raw::file("x", "2")],
        &defaults(),
        Rejection::Duplicate,
    );
    assert_rejected_with(
        &[Raw::symlink("l", "."), Raw::file("l", "2")],
        &defaults(),
        Rejection::Duplicate,
    );
    // Listing a directory after its contents is not a duplicate.
    Sandbox::new()
        .extract(&[Raw::file("d/f", "1"), Raw::dir("d")], &defaults())
        .unwrap();
}

#[test]
fn case_and_normalisation_collisions_are_rejected() {
    assert_rejected_with(
        &[Raw::file("README", "1"), Raw::file("readme", "2")],
        &defaults(),
        Rejection::Collision {
            other: "README".into(),
        },
    );
    // é precomposed (NFC) and e + combining acute (NFD).
    assert_rejected_with(
        &[Raw::file("caf\u{e9}", "1"), Raw::file("cafe\u{301}", "2")],
        &defaults(),
        Rejection::Collision {
            other: "caf\u{e9}".into(),
        },
    );
    // Parent directories collide too.
    assert_rejected_with(
        &[Raw::file("Src/a", "1"), Raw::file("src/b", "2")],
        &defaults(),
        Rejection::Collision {
            other: "Src".into(),
        },
    );
}

#[test]
fn entries_below_a_regular_file_are_rejected() {
    assert_rejected_with(
        &[Raw::file("f", "x"), Raw::file("f/g", "y")],
        &defaults(),
        Rejection::ParentNotDirectory { parent: "f".into() },
    );
    assert_rejected_with(
        &[
            Raw::file("f", "x"),
            Raw::hardlink("h", "f"),
            Raw::dir("h/sub"),
        ],
        &defaults(),
        Rejection::ParentNotDirectory { parent: "h".into() },
    );
}

#[test]
fn the_entry_count_limit_is_enforced() {
    let entries: Vec<Raw> = (0..4).map(|i| Raw::file(format!("f{i}"), "x")).collect();
    let entry = assert_rejected_with(
        &entries,
        &defaults().with_max_entries(3),
        Rejection::TooManyEntries { limit: 3 },
    );
    assert_eq!(entry, "f3");
    Sandbox::new()
        .extract(&entries, &defaults().with_max_entries(4))
        .unwrap();
}

#[test]
fn the_total_size_limit_is_enforced_from_headers() {
    let entries = [Raw::file("a", [1u8; 60]), Raw::file("b", [2u8; 60])];
    let entry = assert_rejected_with(
        &entries,
        &defaults().with_max_total_bytes(100),
        Rejection::TooLarge { limit: 100 },
    );
    assert_eq!(entry, "b");
    let report = Sandbox::new()
        .extract(&entries, &defaults().with_max_total_bytes(120))
        .unwrap();
    assert_eq!(report.bytes, 120);
}

#[test]
fn a_decompression_bomb_after_the_end_of_archive_counts_against_the_limit() {
    let mut stream = tar_bytes(&[Raw::file("a", "x")]);
    stream.extend(std::iter::repeat_n(0u8, 4 * 1024 * 1024));
    let sandbox = Sandbox::new();
    // The ratio limit would stop this stream first; this is about the size limit.
    let result = sandbox.extract_bytes(
        &gzip(&stream),
        &defaults()
            .with_max_total_bytes(1024 * 1024)
            .with_max_compression_ratio(u32::MAX),
    );
    assert_rejected(&sandbox, result, Rejection::TooLarge { limit: 1024 * 1024 });
}

fn assert_corrupt(sandbox: &Sandbox, result: updater_core::Result<ExtractionReport>) {
    match result {
        Err(Error::PackageRejected {
            rejection: Rejection::Corrupt(reason),
            ..
        }) => {
            assert!(!reason.is_empty());
            assert!(!sandbox.staging().exists());
            sandbox.assert_nothing_outside();
        }
        other => panic!("expected a corrupt-archive rejection, got {other:?}"),
    }
}

#[test]
fn corrupt_and_truncated_archives_are_rejected() {
    let good = gzip(&tar_bytes(&[
        Raw::file("a", vec![7u8; 100_000]),
        Raw::file("b", "tail"),
    ]));
    let sandbox = Sandbox::new();
    let result = sandbox.extract_bytes(b"this is not gzip at all", &defaults());
    assert_corrupt(&sandbox, result);
    for cut in [good.len() / 2, good.len() - 4, 20] {
        let sandbox = Sandbox::new();
        let result = sandbox.extract_bytes(&good[..cut], &defaults());
        assert_corrupt(&sandbox, result);
    }
    // A flipped bit in the compressed data fails the gzip CRC (or inflation).
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let sandbox = Sandbox::new();
    let result = sandbox.extract_bytes(&flipped, &defaults());
    assert_corrupt(&sandbox, result);
    // A bad header checksum.
    let mut stream = tar_bytes(&[Raw::file("a", "x")]);
    stream[0] ^= 1;
    let sandbox = Sandbox::new();
    let result = sandbox.extract_bytes(&gzip(&stream), &defaults());
    assert_corrupt(&sandbox, result);
    // A pax size that disagrees with the header: tools would split entries differently.
    let sandbox = Sandbox::new();
    let result = sandbox.extract(&[Raw::file("a", "xyz").pax("size", "1024")], &defaults());
    assert_corrupt(&sandbox, result);
}

#[test]
fn a_non_empty_staging_directory_is_refused_and_kept() {
    let sandbox = Sandbox::new();
    fs::create_dir(sandbox.staging()).unwrap();
    fs::write(sandbox.staging().join("keep.txt"), "mine").unwrap();
    let result = sandbox.extract(&[Raw::file("a", "x")], &defaults());
    assert!(
        matches!(result, Err(Error::Precondition { .. })),
        "{result:?}"
    );
    assert_eq!(
        fs::read_to_string(sandbox.staging().join("keep.txt")).unwrap(),
        "mine"
    );
}

// ---------------------------------------------------------------------------
// Valid archives.

#[test]
fn a_valid_archive_extracts_with_links_masked_modes_and_times() {
    let sandbox = Sandbox::new();
    let entries = [
        Raw::dir("./"),
        Raw::dir("./app/").mode(0o777),
        Raw::dir("./app/bin"),
        Raw::file("./app/bin/run", "#!/bin/sh\necho hi\n").mode(0o777),
        Raw::file("./app/lib/core.so", vec![9u8; 70_000]).mode(0o666),
        Raw::file("./app/config.ini", "secret=1").mode(0o640),
        Raw::symlink("./app/bin/current", "../lib/core.so"),
        Raw::hardlink("./app/lib/core-again.so", "./app/lib/core.so"),
        Raw::dir("./app/private").mode(0o700),
    ];
    let report = sandbox.extract(&entries, &defaults()).unwrap();
    assert_eq!(
        (
            report.entries,
            report.files,
            report.directories,
            report.symlinks,
            report.hardlinks,
            report.bytes
        ),
        (8, 3, 4, 1, 1, 70_000 + 18 + 8)
    );
    let s = sandbox.staging();
    let mode = |p: &str| {
        fs::symlink_metadata(s.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode(""), 0o755);
    assert_eq!(mode("app"), 0o755);
    assert_eq!(mode("app/bin/run"), 0o755);
    assert_eq!(mode("app/lib/core.so"), 0o644);
    assert_eq!(mode("app/lib"), 0o755, "implicit directory");
    assert_eq!(mode("app/config.ini"), 0o640);
    assert_eq!(mode("app/private"), 0o700);
    assert_eq!(
        fs::read(s.join("app/bin/current")).unwrap(),
        vec![9u8; 70_000]
    );
    assert_eq!(
        fs::read_link(s.join("app/bin/current")).unwrap(),
        Path::new("../lib/core.so")
    );
    let original = fs::metadata(s.join("app/lib/core.so")).unwrap();
    let linked = fs::metadata(s.join("app/lib/core-again.so")).unwrap();
    assert_eq!((original.ino(), original.nlink()), (linked.ino(), 2));
    assert_eq!(
        fs::metadata(s.join("app/bin/run")).unwrap().mtime(),
        1_700_000_000
    );
    sandbox.assert_nothing_outside();
}

#[test]
fn strip_components_drops_the_leading_directory() {
    let sandbox = Sandbox::new();
    let entries = [
        Raw::dir("app-1.2.0/"),
        Raw::file("app-1.2.0/index.php", "<?php"),
        Raw::file("app-1.2.0/src/a.php", "a"),
        Raw::file("top-level-file", "skipped like tar --strip-components"),
        Raw::file("app-1.2.0/src/b.php", "b"),
        Raw::hardlink("app-1.2.0/src/c.php", "app-1.2.0/src/a.php"),
    ];
    let report = sandbox
        .extract(&entries, &defaults().with_strip_components(1))
        .unwrap();
    assert_eq!((report.files, report.hardlinks), (3, 1));
    let s = sandbox.staging();
    assert_eq!(fs::read_to_string(s.join("index.php")).unwrap(), "<?php");
    assert_eq!(fs::read_to_string(s.join("src/c.php")).unwrap(), "a");
    assert!(!s.join("app-1.2.0").exists());
    assert!(!s.join("top-level-file").exists());
}

#[test]
fn an_archive_made_by_gnu_tar_extracts_identically() {
    let sandbox = Sandbox::new();
    let source = sandbox.root().join("tree");
    fs::create_dir_all(source.join("a/b")).unwrap();
    fs::write(source.join("a/b/file.txt"), "hello").unwrap();
    fs::write(
        source.join(format!("{}.txt", "long".repeat(40))),
        "long name",
    )
    .unwrap();
    std::os::unix::fs::symlink("a/b/file.txt", source.join("link")).unwrap();
    let archive = sandbox.archive();
    if !sandbox.pack_with_gnu_tar(&source) {
        return;
    }
    extract_tar_gz(&archive, &sandbox.staging(), &defaults()).unwrap();
    let s = sandbox.staging();
    assert_eq!(fs::read_to_string(s.join("a/b/file.txt")).unwrap(), "hello");
    assert_eq!(
        fs::read_to_string(s.join(format!("{}.txt", "long".repeat(40)))).unwrap(),
        "long name"
    );
    assert_eq!(fs::read_to_string(s.join("link")).unwrap(), "hello");
}

#[test]
fn a_git_archive_style_global_header_is_ignored() {
    let sandbox = Sandbox::new();
    let mut global = Raw::file(
        "pax_global_header",
        "52 comment=0123456789abcdef0123456789abcdef01234567\n",
    );
    global.kind = EntryType::XGlobalHeader;
    let report = sandbox
        .extract(&[global, Raw::file("a", "x")], &defaults())
        .unwrap();
    assert_eq!(report.files, 1);
    assert!(!sandbox.staging().join("pax_global_header").exists());
}

// ---------------------------------------------------------------------------
// Property tests.

/// Every path below `dir`, not following symlinks.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

fn tree_strategy() -> impl Strategy<Value = BTreeMap<(Vec<String>, String), Vec<u8>>> {
    let dir = "d[a-z0-9\u{e9}\u{6f22}]{0,6}";
    let file = "f[a-z0-9\u{e9}\u{6f22} ._-]{0,10}";
    proptest::collection::btree_map(
        (proptest::collection::vec(dir, 0..4), file),
        proptest::collection::vec(any::<u8>(), 0..3000),
        0..25,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_trees_round_trip_byte_for_byte(tree in tree_strategy()) {
        let sandbox = Sandbox::new();
        let files: Vec<(String, Vec<u8>)> = tree
            .iter()
            .map(|((dirs, name), content)| {
                let mut path = dirs.join("/");
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(name);
                (path, content.clone())
            })
            .collect();
        let gz = updater_testkit::archive::tar_gz(&files);
        let report = sandbox.extract_bytes(&gz, &defaults()).unwrap();
        prop_assert_eq!(report.files, tree.len() as u64);
        prop_assert_eq!(report.bytes, tree.values().map(|c| c.len() as u64).sum::<u64>());
        for ((dirs, name), content) in &tree {
            let mut path = sandbox.staging();
            for d in dirs {
                path.push(d);
            }
            path.push(name);
            prop_assert_eq!(&fs::read(&path).unwrap(), content);
        }
        let mut all = Vec::new();
        walk(&sandbox.staging(), &mut all);
        let files = all.iter().filter(|p| fs::symlink_metadata(p).unwrap().is_file()).count();
        prop_assert_eq!(files, tree.len());
    }

    #[test]
    fn hostile_paths_are_rejected_or_stay_inside(
        entries in proptest::collection::vec(
            (
                proptest::collection::vec(prop_oneof![Just(".."), Just("."), Just("a"), Just("b"), Just(""), Just("outside")], 1..5),
                0u8..4,
                proptest::collection::vec(prop_oneof![Just(".."), Just("."), Just("a"), Just("b"), Just(""), Just("outside")], 0..5),
                any::<bool>(),
            ),
            1..8,
        )
    ) {
        let sandbox = Sandbox::new();
        let raws: Vec<Raw> = entries
            .iter()
            .map(|(parts, kind, target, absolute)| {
                let mut path = parts.join("/");
                if *absolute && *kind == 0 {
                    path.insert(0, '/');
                }
                let target = target.join("/");
                match kind {
                    0 => Raw::file(path, "data"),
                    1 => Raw::dir(path),
                    2 => Raw::symlink(path, target),
                    _ => Raw::hardlink(path, target),
                }
            })
            .collect();
        let result = sandbox.extract(&raws, &defaults());
        sandbox.assert_nothing_outside();
        match result {
            Err(Error::PackageRejected { .. }) => prop_assert!(!sandbox.staging().exists()),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
            Ok(_) => {
                let root = sandbox.staging().canonicalize().unwrap();
                let mut all = Vec::new();
                walk(&root, &mut all);
                for path in all {
                    // Dangling links cannot be canonicalized; they point nowhere.
                    if let Ok(real) = path.canonicalize() {
                        prop_assert!(real.starts_with(&root), "{} -> {}", path.display(), real.display());
                    }
                }
            }
        }
    }
}
