//! `package::build`: what `updater release build` writes, checked against the
//! documented JSON Schemas, `tar`, our extractor and the installer's rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use updater_core::Error;
use updater_core::error::Rejection;
use updater_core::package::build::{
    BuildOptions, build_release, merge_into_manifest, sign_release,
};
use updater_core::package::signature::{PublicKeys, minisign, verify_asset_signature};
use updater_core::package::{ExtractOptions, PackageIndex, extract_tar_gz, list_tar_gz};
use updater_core::source::{LocalDirectorySource, ReleaseSource};
use updater_core::tree::FileList;
use updater_core::version::Version;
use updater_testkit::tree::{snapshot, write_tree};

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/schemas")
        .join(name);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, document: &serde_json::Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} breaks its schema: {errors:#?}");
}

/// A tree with nested directories, an executable, a symlink, an empty
/// file, a long path and incompressible bytes.
fn sample_tree(root: &Path) {
    let long = format!("deep/{}/file.txt", "x".repeat(120));
    write_tree(
        root,
        &[
            ("VERSION", "1.2.0"),
            ("public/index.php", "<?php echo 'hi';"),
            ("public/empty.css", ""),
            ("bin/run", "#!/bin/sh\nexit 0\n"),
            (&long, "long name"),
        ],
    );
    std::fs::set_permissions(root.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let random: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("public/logo.bin"), random).unwrap();
    std::os::unix::fs::symlink("public/index.php", root.join("current")).unwrap();
}

fn options() -> BuildOptions {
    BuildOptions::new(Version::new(1, 2, 0))
        .with_changelog("Faster.")
        .with_mtime(1_767_225_600)
}

#[test]
fn the_index_and_the_manifest_written_by_the_tool_validate_against_their_json_schemas() {
    let work = tempfile::tempdir_in(updater_testkit::app::fast_temp_dir()).unwrap();
    let tree = work.path().join("build");
    sample_tree(&tree);
    let out = work.path().join("site/1.2.0");
    let mut built = build_release(&tree, &out, &options()).unwrap();
    let pair = minisign::KeyPair::generate_encrypted_keypair(Some(String::new())).unwrap();
    sign_release(
        &mut built,
        &pair.sk,
        chrono::Utc::now() + chrono::Duration::days(30),
    )
    .unwrap();
    let manifest_path = work.path().join("site/manifest.json");
    merge_into_manifest(&out, &manifest_path, None).unwrap();

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&built.index_path).unwrap()).unwrap();
    assert_valid(&schema("index.schema.json"), &index, "the index");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_valid(&schema("manifest.schema.json"), &manifest, "the manifest");
    // The schemas are not vacuous: a broken document fails them.
    let mut broken = index.clone();
    broken["entries"][0]["type"] = "device".into();
    assert!(!schema("index.schema.json").is_valid(&broken));
    let mut broken = manifest.clone();
    broken["releases"][0]["assets"][0]["sha256"] = "nope".into();
    assert!(!schema("manifest.schema.json").is_valid(&broken));

    // And the updater reads it back: the local source offers the signed, indexed release.
    let source = LocalDirectorySource::new(work.path().join("site"));
    let release = source.release(&Version::new(1, 2, 0)).unwrap();
    let asset = &release.assets[0];
    assert_eq!(asset.location, "1.2.0/app-1.2.0.tar.gz");
    let keys = PublicKeys::parse(&pair.pk.to_base64()).unwrap();
    let signed = verify_asset_signature(&keys, &release, asset, chrono::Utc::now()).unwrap();
    assert_eq!(
        signed.index_sha256,
        asset.index.as_ref().map(|i| i.sha256),
        "the signature binds the published index"
    );
}

#[test]
fn the_same_tree_gives_the_same_bytes_and_tar_reads_them_back() {
    let work = tempfile::tempdir_in(updater_testkit::app::fast_temp_dir()).unwrap();
    let tree = work.path().join("build");
    sample_tree(&tree);
    let first = build_release(&tree, &work.path().join("a"), &options()).unwrap();
    // Same content, other times: still the same bytes.
    std::fs::write(tree.join("VERSION"), "1.2.0").unwrap();
    let second = build_release(&tree, &work.path().join("b"), &options()).unwrap();
    assert_eq!(
        std::fs::read(&first.archive).unwrap(),
        std::fs::read(&second.archive).unwrap()
    );
    assert_eq!(
        std::fs::read(&first.index_path).unwrap(),
        std::fs::read(&second.index_path).unwrap()
    );

    let untarred = work.path().join("untarred");
    std::fs::create_dir_all(&untarred).unwrap();
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&first.archive)
        .arg("-C")
        .arg(&untarred)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(snapshot(&untarred), snapshot(&tree));

    let extracted = work.path().join("extracted");
    let report = extract_tar_gz(&first.archive, &extracted, &ExtractOptions::default()).unwrap();
    assert_eq!(snapshot(&extracted), snapshot(&tree));
    assert_eq!(
        report.list, first.list,
        "the index lists what extraction creates"
    );
    let unstamped = |list: FileList| -> FileList {
        list.iter()
            .map(|(p, e)| {
                let mut e = e.clone();
                e.stamp = None;
                (p.to_string(), e)
            })
            .collect()
    };
    assert_eq!(unstamped(FileList::from_dir(&tree).unwrap()), first.list);
}

#[test]
fn every_member_of_the_archive_is_the_entry_the_index_names() {
    let work = tempfile::tempdir_in(updater_testkit::app::fast_temp_dir()).unwrap();
    let tree = work.path().join("build");
    sample_tree(&tree);
    let built = build_release(&tree, &work.path().join("out"), &options()).unwrap();
    let bytes = std::fs::read(&built.archive).unwrap();
    let index = PackageIndex::from_json(&std::fs::read(&built.index_path).unwrap(), "i").unwrap();
    for entry in &index.entries {
        let member = &bytes[entry.offset as usize..(entry.offset + entry.length) as usize];
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(member));
        let mut entries = archive.entries().unwrap();
        let first = entries.next().unwrap().unwrap();
        assert_eq!(
            first
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/'),
            entry.path
        );
        assert_eq!(first.size(), entry.size);
        drop(first);
        assert!(entries.next().is_none(), "one entry per member");
    }
    assert_eq!(
        index.trailer.offset + index.trailer.length,
        bytes.len() as u64
    );
}

fn rejected(tree: &Path) -> (PathBuf, String, Rejection) {
    let out = tree.parent().unwrap().join("out");
    match build_release(tree, &out, &options()) {
        Err(Error::PackageRejected {
            package,
            entry,
            rejection,
        }) => {
            assert!(!out.exists(), "nothing is written for a refused tree");
            (package, entry, rejection)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn trees_the_installer_would_refuse_are_refused_with_its_errors_before_anything_is_written() {
    let work = tempfile::tempdir_in(updater_testkit::app::fast_temp_dir()).unwrap();
    let tree = work.path().join("escape");
    write_tree(&tree, &[("a.txt", "a")]);
    std::os::unix::fs::symlink("../../etc/passwd", tree.join("link")).unwrap();
    let (package, entry, rejection) = rejected(&tree);
    assert_eq!((package, entry.as_str()), (tree.clone(), "link"));
    assert!(matches!(rejection, Rejection::SymlinkEscape { .. }));

    let tree = work.path().join("setuid");
    write_tree(&tree, &[("tool", "x")]);
    std::fs::set_permissions(tree.join("tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert!(matches!(
        rejected(&tree).2,
        Rejection::SetIdBits { mode: 0o4755 }
    ));

    let tree = work.path().join("fifo");
    write_tree(&tree, &[("a", "a")]);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        tree.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    assert!(matches!(
        rejected(&tree).2,
        Rejection::SpecialFile { kind: "fifo" }
    ));

    let tree = work.path().join("collision");
    write_tree(&tree, &[("README", "a"), ("readme", "b")]);
    assert!(matches!(rejected(&tree).2, Rejection::Collision { .. }));

    let tree = work.path().join("reserved");
    write_tree(&tree, &[(".updater/journal.json", "{}")]);
    assert!(matches!(rejected(&tree).2, Rejection::ReservedName(_)));

    let tree = work.path().join("socket");
    write_tree(&tree, &[("a", "a")]);
    let _listener = std::os::unix::net::UnixListener::bind(tree.join("sock")).unwrap();
    assert!(matches!(
        rejected(&tree).2,
        Rejection::SpecialFile { kind: "socket" }
    ));
}

#[test]
fn merging_keeps_older_releases_and_replaces_the_same_version() {
    let work = tempfile::tempdir_in(updater_testkit::app::fast_temp_dir()).unwrap();
    let manifest = work.path().join("site/manifest.json");
    for (version, text) in [("1.0.0", "a"), ("1.1.0", "b"), ("1.1.0", "c")] {
        let tree = work.path().join(format!("build-{text}"));
        write_tree(&tree, &[("VERSION", text)]);
        let out = work.path().join("site").join(version);
        build_release(
            &tree,
            &out,
            &BuildOptions::new(Version::parse(version).unwrap()),
        )
        .unwrap();
        merge_into_manifest(&out, &manifest, None).unwrap();
    }
    let source = LocalDirectorySource::new(work.path().join("site"));
    let releases = source
        .releases(updater_core::version::Channel::Stable)
        .unwrap();
    assert_eq!(releases.len(), 2);
    let latest = source.release(&Version::new(1, 1, 0)).unwrap();
    let listed = list_tar_gz(
        &work.path().join("site").join(&latest.assets[0].location),
        &ExtractOptions::default(),
    )
    .unwrap();
    assert_eq!(listed.get("VERSION").map(|e| e.size), Some(1));
    let elsewhere = merge_into_manifest(
        &work.path().join("site/1.0.0"),
        &work.path().join("other/manifest.json"),
        Some("https://cdn.example.com/app/1.0.0"),
    )
    .unwrap();
    assert_eq!(
        elsewhere.releases[0].assets[0].url,
        "https://cdn.example.com/app/1.0.0/app-1.0.0.tar.gz"
    );
}
