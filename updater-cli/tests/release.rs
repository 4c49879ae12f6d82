//! `updater release keygen | build | manifest`: the publisher's two commands
//! from a build directory to a signed, published release, run as a process
//! without any `updater.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use updater_core::package::signature::{PublicKeys, verify_asset_signature};
use updater_core::source::{LocalDirectorySource, ReleaseSource};
use updater_core::version::Version;
use updater_testkit::tree::write_tree;

/// Runs `updater --json ARGS` in `dir` (no config there); returns the JSON and the exit code.
fn updater(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Value, i32) {
    let output = Command::new(env!("CARGO_BIN_EXE_updater"))
        .current_dir(dir)
        .arg("--json")
        .args(args)
        .env_remove("UPDATER_CONFIG")
        .env_remove("UPDATER_SIGNING_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (json, output.status.code().unwrap_or(-1))
}

#[test]
fn keygen_build_and_manifest_publish_a_signed_release_without_a_config_file() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    write_tree(
        &dir.join("build"),
        &[
            ("VERSION", "1.2.0"),
            ("public/index.html", "<h1>1.2.0</h1>"),
        ],
    );
    std::fs::write(dir.join("CHANGES.md"), "Faster pages.").unwrap();

    let env = [("UPDATER_SIGNING_PASSWORD", "correct horse")];
    let (keygen, code) = updater(dir, &["release", "keygen"], &env);
    assert_eq!(code, 0, "{keygen}");
    assert_eq!(keygen["encrypted"], true);
    let mode = std::fs::metadata(dir.join("minisign.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the secret key is readable by its owner only"
    );
    let (again, code) = updater(dir, &["release", "keygen"], &env);
    assert_eq!((code, again["error"]["kind"].as_str()), (2, Some("usage")));

    // A wrong password signs nothing and writes nothing.
    let (wrong, code) = updater(
        dir,
        &[
            "release",
            "build",
            "build",
            "--version",
            "1.2.0",
            "--key",
            "minisign.key",
            "--out",
            "site/1.2.0",
        ],
        &[("UPDATER_SIGNING_PASSWORD", "wrong")],
    );
    assert_eq!(code, 2, "{wrong}");
    assert!(!dir.join("site").exists());

    let (built, code) = updater(
        dir,
        &[
            "release",
            "build",
            "build",
            "--version",
            "1.2.0",
            "--changelog",
            "CHANGES.md",
            "--key",
            "minisign.key",
            "--out",
            "site/1.2.0",
        ],
        &env,
    );
    assert_eq!(code, 0, "{built}");
    assert_eq!(built["files"], 2);
    for file in [
        "app-1.2.0.tar.gz",
        "app-1.2.0.tar.gz.index.json",
        "app-1.2.0.tar.gz.minisig",
        "SHA256SUMS",
        "release.json",
    ] {
        assert!(dir.join("site/1.2.0").join(file).is_file(), "{file}");
    }
    let (merged, code) = updater(dir, &["release", "manifest", "site/1.2.0"], &[]);
    assert_eq!(code, 0, "{merged}");
    assert_eq!(merged["releases"], serde_json::json!(["1.2.0"]));

    // What an installation sees: the release, signed with the key, its index bound.
    let source = LocalDirectorySource::new(dir.join("site"));
    let release = source.release(&Version::new(1, 2, 0)).unwrap();
    assert_eq!(release.changelog, "Faster pages.");
    let keys =
        PublicKeys::parse(&std::fs::read_to_string(dir.join("minisign.pub")).unwrap()).unwrap();
    let signed =
        verify_asset_signature(&keys, &release, &release.assets[0], chrono::Utc::now()).unwrap();
    assert_eq!(signed.key_id, keygen["key_id"].as_str().unwrap());
    assert!(signed.index_sha256.is_some());
}

#[test]
fn a_tree_the_installer_would_refuse_is_refused_with_its_error_and_nothing_written() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    write_tree(&dir.join("build"), &[("VERSION", "1.0.0")]);
    std::os::unix::fs::symlink("/etc/passwd", dir.join("build/passwd")).unwrap();
    let (error, code) = updater(
        dir,
        &[
            "release",
            "build",
            "build",
            "--version",
            "1.0.0",
            "--out",
            "out",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(error["error"]["kind"], "package_rejected");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"passwd\"") && message.contains("points outside"),
        "{message}"
    );
    assert!(!dir.join("out").exists());
}
