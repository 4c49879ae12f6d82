//! `download_verified` against sources that lie: one byte too many, one too
//! few, a corrupted byte, no checksum, no or bad signatures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use updater_core::package::signature::{PublicKeys, canonical_metadata, format_expiry};
use updater_core::package::{VerificationPolicy, VerifiedPackage, download_verified};
use updater_core::release::{Asset, AssetSignature, Release, Sha256Digest};
use updater_core::source::ReleaseSource;
use updater_core::version::{Channel, Version};
use updater_core::{Error, Result};

/// What the test server does to the bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Honest,
    OneByteMore,
    Truncated,
    CorruptedByte,
    Unavailable,
}

/// A release source serving `bytes` from memory in 64 KiB chunks.
struct TestServer {
    bytes: Vec<u8>,
    behaviour: Behaviour,
    downloads: AtomicUsize,
}

impl TestServer {
    fn new(bytes: Vec<u8>, behaviour: Behaviour) -> Self {
        TestServer {
            bytes,
            behaviour,
            downloads: AtomicUsize::new(0),
        }
    }
}

impl ReleaseSource for TestServer {
    fn describe(&self) -> String {
        "test server".into()
    }
    fn releases(&self, _channel: Channel) -> Result<Vec<Release>> {
        Ok(Vec::new())
    }
    fn download(&self, _asset: &Asset, sink: &mut dyn Write) -> Result<u64> {
        self.downloads.fetch_add(1, Ordering::SeqCst);
        let mut bytes = self.bytes.clone();
        match self.behaviour {
            Behaviour::Honest => {}
            Behaviour::OneByteMore => bytes.push(0),
            Behaviour::Truncated => {
                bytes.pop();
            }
            Behaviour::CorruptedByte => bytes[1000] ^= 0xff,
            Behaviour::Unavailable => {
                sink.write_all(&bytes[..1000]).unwrap();
                return Err(Error::unavailable("test server", "connection reset"));
            }
        }
        for chunk in bytes.chunks(64 * 1024) {
            sink.write_all(chunk)
                .map_err(|e| Error::other("write the download", e))?;
        }
        Ok(bytes.len() as u64)
    }
}

/// 1 MiB + 123 bytes of deterministic noise and its asset.
fn package() -> (Vec<u8>, Asset) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..1024 * 1024 + 123)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let digest = Sha256Digest(Sha256::digest(&bytes).into());
    let asset =
        Asset::new("app-1.3.0.tar.gz", bytes.len() as u64, "app-1.3.0.tar.gz").with_sha256(digest);
    (bytes, asset)
}

struct Target {
    _dir: tempfile::TempDir,
    destination: PathBuf,
}

fn target() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("app-1.3.0.tar.gz");
    Target {
        _dir: dir,
        destination,
    }
}

fn partial(destination: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial", destination.display()))
}

fn release(asset: &Asset) -> Release {
    Release::new(Version::new(1, 3, 0)).with_asset(asset.clone())
}

/// Downloads `asset` (of release 1.3.0) from `server` into `destination`.
fn download(
    server: &TestServer,
    asset: &Asset,
    destination: &Path,
    policy: &VerificationPolicy,
) -> Result<VerifiedPackage> {
    download_verified(
        server,
        &release(asset),
        asset,
        destination,
        policy,
        &mut |_| {},
    )
}

/// Runs a download that must fail with an integrity error; returns its reason.
fn integrity_failure(server: &TestServer, asset: &Asset, policy: &VerificationPolicy) -> String {
    let target = target();
    let result = download(server, asset, &target.destination, policy);
    assert!(!target.destination.exists(), "destination written");
    assert!(!partial(&target.destination).exists(), "partial file left");
    match result {
        Err(Error::Integrity { subject, reason }) => {
            assert!(
                subject.starts_with(&format!("asset {}", asset.name)),
                "{subject}"
            );
            reason
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

#[test]
fn an_honest_download_is_verified_and_renamed_into_place() {
    let (bytes, asset) = package();
    let server = TestServer::new(bytes.clone(), Behaviour::Honest);
    let target = target();
    let mut reports = Vec::new();
    let package = download_verified(
        &server,
        &release(&asset),
        &asset,
        &target.destination,
        &VerificationPolicy::default(),
        &mut |n| reports.push(n),
    )
    .unwrap();
    assert_eq!(package.path, target.destination);
    assert_eq!(package.size, bytes.len() as u64);
    assert_eq!(Some(package.sha256), asset.sha256);
    assert_eq!(package.signed, None);
    assert_eq!(std::fs::read(&target.destination).unwrap(), bytes);
    assert!(!partial(&target.destination).exists());
    let mode = std::fs::metadata(&target.destination)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Progress: increasing, at least 256 KiB apart, and the total at the end.
    assert_eq!(reports.last(), Some(&(bytes.len() as u64)));
    assert!(reports.windows(2).all(|w| w[0] < w[1]), "{reports:?}");
    assert!(
        reports.len() <= bytes.len() / (256 * 1024) + 1,
        "{reports:?}"
    );
    assert!(
        reports[..reports.len() - 1]
            .windows(2)
            .all(|w| w[1] - w[0] >= 256 * 1024)
    );
}

#[test]
fn one_byte_more_than_declared_is_refused() {
    let (bytes, asset) = package();
    let server = TestServer::new(bytes, Behaviour::OneByteMore);
    let reason = integrity_failure(&server, &asset, &VerificationPolicy::default());
    assert!(
        reason.contains(&format!("more than the declared {} bytes", asset.size)),
        "{reason}"
    );
}

#[test]
fn a_truncated_download_is_refused_with_both_sizes() {
    let (bytes, asset) = package();
    let server = TestServer::new(bytes, Behaviour::Truncated);
    let reason = integrity_failure(&server, &asset, &VerificationPolicy::default());
    assert!(
        reason.contains(&format!("received {} bytes", asset.size - 1))
            && reason.contains(&format!("expected {} bytes", asset.size)),
        "{reason}"
    );
}

#[test]
fn a_corrupted_byte_is_refused_with_both_digests() {
    let (bytes, asset) = package();
    let mut corrupted = bytes.clone();
    corrupted[1000] ^= 0xff;
    let actual = Sha256Digest(Sha256::digest(&corrupted).into());
    let server = TestServer::new(bytes, Behaviour::CorruptedByte);
    let reason = integrity_failure(&server, &asset, &VerificationPolicy::default());
    assert!(
        reason.contains(&asset.sha256.unwrap().to_hex()) && reason.contains(&actual.to_hex()),
        "{reason}"
    );
}

#[test]
fn a_source_error_is_returned_and_the_partial_file_removed() {
    let (bytes, asset) = package();
    let server = TestServer::new(bytes, Behaviour::Unavailable);
    let target = target();
    let result = download(
        &server,
        &asset,
        &target.destination,
        &VerificationPolicy::default(),
    );
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    assert!(!partial(&target.destination).exists());
    assert!(!target.destination.exists());
}

#[test]
fn a_missing_checksum_is_refused_before_downloading_unless_allowed() {
    let (bytes, mut asset) = package();
    asset.sha256 = None;
    let server = TestServer::new(bytes.clone(), Behaviour::Honest);
    let reason = integrity_failure(&server, &asset, &VerificationPolicy::default());
    assert!(reason.contains("no SHA-256"), "{reason}");
    assert_eq!(server.downloads.load(Ordering::SeqCst), 0);
    let target = target();
    let lenient = VerificationPolicy::default().with_require_checksum(false);
    let package = download(&server, &asset, &target.destination, &lenient).unwrap();
    assert_eq!(package.sha256, Sha256Digest(Sha256::digest(&bytes).into()));
}

#[test]
fn a_leftover_partial_file_or_planted_symlink_is_replaced_not_followed() {
    let (bytes, asset) = package();
    let server = TestServer::new(bytes.clone(), Behaviour::Honest);
    let target = target();
    let victim = target.destination.with_file_name("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, partial(&target.destination)).unwrap();
    download(
        &server,
        &asset,
        &target.destination,
        &VerificationPolicy::default(),
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert_eq!(std::fs::read(&target.destination).unwrap(), bytes);
}

#[test]
fn a_missing_destination_directory_is_an_io_error() {
    let (bytes, asset) = package();
    let server = TestServer::new(bytes, Behaviour::Honest);
    let target = target();
    let nowhere = target
        .destination
        .with_file_name("missing")
        .join("app.tar.gz");
    let result = download(&server, &asset, &nowhere, &VerificationPolicy::default());
    assert!(
        matches!(
            result,
            Err(Error::Io {
                action: "create",
                ..
            })
        ),
        "{result:?}"
    );
}

fn sign(keys: &minisign::KeyPair, release: &Release, asset: &Asset) -> AssetSignature {
    let expires = (Utc::now() + Duration::days(1)).trunc_subsecs(0);
    let message = canonical_metadata(
        &release.version,
        &asset.name,
        asset.size,
        &asset.sha256.unwrap(),
        expires,
    );
    let signature = minisign::sign(
        None,
        &keys.sk,
        Cursor::new(message),
        Some(&format!("expires={}", format_expiry(expires))),
        None,
    )
    .unwrap();
    AssetSignature::new(signature.into_string())
}

#[test]
fn signatures_are_checked_before_the_first_byte_when_keys_are_configured() {
    let (bytes, asset) = package();
    let publisher = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let keys = PublicKeys::parse(&publisher.pk.to_base64()).unwrap();
    let policy = VerificationPolicy::default().with_public_keys(keys);
    let server = TestServer::new(bytes.clone(), Behaviour::Honest);

    let reason = integrity_failure(&server, &asset, &policy);
    assert!(reason.contains("no signature"), "{reason}");
    // Signed for 1.2.0 and replayed as 1.3.0.
    let old = Release::new(Version::new(1, 2, 0));
    let replayed = asset.clone().with_signature(sign(&publisher, &old, &asset));
    let reason = integrity_failure(&server, &replayed, &policy);
    assert!(reason.contains("does not match"), "{reason}");
    assert_eq!(
        server.downloads.load(Ordering::SeqCst),
        0,
        "downloaded before verifying"
    );

    let signed = asset
        .clone()
        .with_signature(sign(&publisher, &release(&asset), &asset));
    let target = target();
    let package = download(&server, &signed, &target.destination, &policy).unwrap();
    let metadata = package.signed.unwrap();
    assert_eq!(
        (metadata.version, metadata.size),
        (Version::new(1, 3, 0), bytes.len() as u64)
    );
}
