//! Signatures over release metadata, made with the `minisign` crate the way
//! the stock `minisign -S -t "expires=..."` tool makes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use minisign::KeyPair;
use updater_core::Error;
use updater_core::package::signature::{
    PublicKeys, SignedMetadata, canonical_metadata, format_expiry, verify_asset_signature,
};
use updater_core::release::{Asset, AssetSignature, Release, Sha256Digest};
use updater_core::version::Version;

struct Publisher {
    keys: KeyPair,
}

impl Publisher {
    fn new() -> Self {
        Publisher {
            keys: KeyPair::generate_unencrypted_keypair().unwrap(),
        }
    }

    /// The `.pub` file text.
    fn public_file(&self) -> String {
        self.keys.pk.to_box().unwrap().into_string()
    }

    fn key_id(&self) -> String {
        let bytes: [u8; 8] = self.keys.pk.keynum().try_into().unwrap();
        format!("{:016X}", u64::from_le_bytes(bytes))
    }

    fn sign(&self, message: &str, trusted_comment: &str) -> AssetSignature {
        let signature = minisign::sign(
            Some(&self.keys.pk),
            &self.keys.sk,
            Cursor::new(message.as_bytes()),
            Some(trusted_comment),
            None,
        )
        .unwrap();
        AssetSignature::new(signature.into_string())
    }

    /// Signs the canonical metadata of `asset` as a release of `version`.
    fn sign_metadata(
        &self,
        version: &Version,
        asset: &Asset,
        expires: DateTime<Utc>,
    ) -> AssetSignature {
        let message = canonical_metadata(
            version,
            &asset.name,
            asset.size,
            &asset.sha256.unwrap(),
            expires,
        );
        self.sign(
            &message,
            &format!("expires={} channel=stable", format_expiry(expires)),
        )
    }
}

fn in_a_month() -> DateTime<Utc> {
    (Utc::now() + Duration::days(30)).trunc_subsecs(0)
}

fn asset() -> Asset {
    Asset::new("app-2.0.0.tar.gz", 4096, "app-2.0.0.tar.gz").with_sha256(Sha256Digest([0x5a; 32]))
}

fn release_with(asset: Asset) -> Release {
    Release::new(Version::new(2, 0, 0)).with_asset(asset)
}

/// The test asset, signed by `publisher` as a release of `version`.
fn signed_asset(publisher: &Publisher, version: &Version, expires: DateTime<Utc>) -> Asset {
    asset().with_signature(publisher.sign_metadata(version, &asset(), expires))
}

/// Verifies `asset` as part of release 2.0.0, now.
fn verify_now(keys: &PublicKeys, asset: &Asset) -> updater_core::Result<SignedMetadata> {
    verify_asset_signature(keys, &release_with(asset.clone()), asset, Utc::now())
}

fn refusal(result: updater_core::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::Integrity { subject, reason }) => {
            assert!(subject.contains("app-2.0.0.tar.gz"), "{subject}");
            reason
        }
        other => panic!("expected an integrity refusal, got {other:?}"),
    }
}

#[test]
fn a_valid_signature_over_the_metadata_is_accepted() {
    let publisher = Publisher::new();
    let keys = PublicKeys::parse(&publisher.public_file()).unwrap();
    let expires = in_a_month();
    let signed_asset = signed_asset(&publisher, &Version::new(2, 0, 0), expires);
    let release = release_with(signed_asset.clone());
    let signed = verify_asset_signature(&keys, &release, &signed_asset, Utc::now()).unwrap();
    assert_eq!(signed.version, Version::new(2, 0, 0));
    assert_eq!(signed.asset, "app-2.0.0.tar.gz");
    assert_eq!(signed.size, 4096);
    assert_eq!(signed.sha256, Sha256Digest([0x5a; 32]));
    assert_eq!(signed.expires_at, expires);
    assert_eq!(signed.key_id, publisher.key_id());
    assert_eq!(keys.key_ids().collect::<Vec<_>>(), [publisher.key_id()]);
}

#[test]
fn a_key_given_as_its_base64_line_works_too() {
    let publisher = Publisher::new();
    let keys = PublicKeys::parse(&publisher.keys.pk.to_base64()).unwrap();
    let asset = signed_asset(&publisher, &Version::new(2, 0, 0), in_a_month());
    verify_now(&keys, &asset).unwrap();
}

#[test]
fn a_signature_from_an_unknown_key_is_refused() {
    let trusted = Publisher::new();
    let stranger = Publisher::new();
    let keys = PublicKeys::parse(&trusted.public_file()).unwrap();
    let asset = signed_asset(&stranger, &Version::new(2, 0, 0), in_a_month());
    let reason = refusal(verify_now(&keys, &asset));
    assert!(
        reason.contains(&stranger.key_id()) && reason.contains("not a configured key"),
        "{reason}"
    );
}

#[test]
fn an_old_release_signature_replayed_as_a_new_version_is_refused() {
    let publisher = Publisher::new();
    let keys = PublicKeys::parse(&publisher.public_file()).unwrap();
    // Signed for 1.0.0, served as 2.0.0 (same bytes, same name).
    let replayed = signed_asset(&publisher, &Version::new(1, 0, 0), in_a_month());
    let reason = refusal(verify_now(&keys, &replayed));
    assert!(
        reason.contains("does not match") && reason.contains("version 2.0.0"),
        "{reason}"
    );
}

#[test]
fn a_signature_over_another_size_digest_or_name_is_refused() {
    let publisher = Publisher::new();
    let keys = PublicKeys::parse(&publisher.public_file()).unwrap();
    let version = Version::new(2, 0, 0);
    let original = asset();
    let signature = publisher.sign_metadata(&version, &original, in_a_month());
    let mut bigger = original.clone().with_signature(signature.clone());
    bigger.size += 1;
    let other_digest = original
        .clone()
        .with_sha256(Sha256Digest([0x5b; 32]))
        .with_signature(signature.clone());
    let mut renamed = original.clone().with_signature(signature.clone());
    renamed.name = "app-2.0.0-other.tar.gz".into();
    for tampered in [bigger, other_digest] {
        let reason = refusal(verify_now(&keys, &tampered));
        assert!(reason.contains("does not match"), "{reason}");
    }
    match verify_now(&keys, &renamed) {
        Err(Error::Integrity { reason, .. }) => {
            assert!(reason.contains("does not match"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn expired_metadata_is_refused() {
    let publisher = Publisher::new();
    let keys = PublicKeys::parse(&publisher.public_file()).unwrap();
    let expired = (Utc::now() - Duration::hours(1)).trunc_subsecs(0);
    let asset = signed_asset(&publisher, &Version::new(2, 0, 0), expired);
    let reason = refusal(verify_now(&keys, &asset));
    assert!(
        reason.contains(&format!("expired at {}", format_expiry(expired))),
        "{reason}"
    );
    assert!(reason.contains("stale/frozen"), "{reason}");
    // The boundary: still valid one second before, refused at the instant.
    let release = release_with(asset.clone());
    verify_asset_signature(&keys, &release, &asset, expired - Duration::seconds(1)).unwrap();
    refusal(verify_asset_signature(&keys, &release, &asset, expired));
}

#[test]
fn a_trusted_comment_without_expiry_is_refused() {
    let publisher = Publisher::new();
    let keys = PublicKeys::parse(&publisher.public_file()).unwrap();
    let asset = asset();
    let message = canonical_metadata(
        &Version::new(2, 0, 0),
        &asset.name,
        asset.size,
        &asset.sha256.unwrap(),
        in_a_month(),
    );
    // What `minisign -S` writes when `-t` is not given.
    let asset = asset
        .with_signature(publisher.sign(&message, "timestamp:1767225600\tfile:meta.txt\thashed"));
    let reason = refusal(verify_now(&keys, &asset));
    assert!(reason.contains("no `expires="), "{reason}");
}

#[test]
fn a_rotated_key_is_accepted_alongside_the_old_one() {
    let old = Publisher::new();
    let new = Publisher::new();
    let keys = PublicKeys::parse_all([old.public_file(), new.public_file()]).unwrap();
    for (publisher, name) in [(&old, "old"), (&new, "new")] {
        let signed = signed_asset(publisher, &Version::new(2, 0, 0), in_a_month());
        let metadata = verify_now(&keys, &signed).unwrap_or_else(|e| panic!("{name} key: {e}"));
        assert_eq!(metadata.key_id, publisher.key_id());
    }
}

#[test]
fn garbage_or_missing_signatures_get_a_clear_error() {
    let publisher = Publisher::new();
    let keys = PublicKeys::parse(&publisher.public_file()).unwrap();
    let garbage =
        asset().with_signature(AssetSignature::new("-----BEGIN PGP SIGNATURE-----\nnope\n"));
    let reason = refusal(verify_now(&keys, &garbage));
    assert!(reason.contains("not a minisign signature"), "{reason}");
    let unsigned = asset();
    let reason = refusal(verify_now(&keys, &unsigned));
    assert!(reason.contains("no signature"), "{reason}");
    let mut no_digest = signed_asset(&publisher, &Version::new(2, 0, 0), in_a_month());
    no_digest.sha256 = None;
    let reason = refusal(verify_now(&keys, &no_digest));
    assert!(reason.contains("no SHA-256"), "{reason}");
}

#[cfg(feature = "signing")]
#[test]
fn sign_metadata_produces_signatures_the_verifier_accepts() {
    use updater_core::package::signature::sign_metadata;
    let publisher = Publisher::new();
    let keys = PublicKeys::parse(&publisher.public_file()).unwrap();
    let asset = asset();
    let expires = Utc::now() + Duration::days(7);
    let signature = sign_metadata(
        &publisher.keys.sk,
        &Version::new(2, 0, 0),
        &asset.name,
        asset.size,
        &asset.sha256.unwrap(),
        expires,
    )
    .unwrap();
    assert!(signature.minisig.contains(&format!(
        "trusted comment: expires={}",
        format_expiry(expires)
    )));
    let asset = asset.with_signature(signature);
    let signed = verify_now(&keys, &asset).unwrap();
    assert_eq!(signed.expires_at, expires.trunc_subsecs(0));
}

#[test]
fn the_documented_printf_recipe_produces_the_canonical_message() {
    let expires = in_a_month();
    let digest = Sha256Digest([0x5a; 32]);
    // The exact command line from the `signature` module docs.
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            r#"printf 'updater-release-metadata v1\nversion=%s\nasset=%s\nsize=%s\nsha256=%s\nexpires=%s\n' \
    "$version" "$asset" "$size" "$sha256" "$expires""#,
        )
        .env("version", "2.0.0")
        .env("asset", "app-2.0.0.tar.gz")
        .env("size", "4096")
        .env("sha256", digest.to_hex())
        .env("expires", format_expiry(expires))
        .output()
        .unwrap();
    assert!(output.status.success());
    let expected = canonical_metadata(
        &Version::new(2, 0, 0),
        "app-2.0.0.tar.gz",
        4096,
        &digest,
        expires,
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
}
