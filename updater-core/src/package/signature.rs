//! Minisign (Ed25519) signatures over release **metadata**, not just over bytes.
//!
//! A signature over the archive alone proves who built it, but not *which
//! release* it is: a compromised or stale mirror could serve last year's
//! signed (and vulnerable) 1.0.0 labelled as 2.0.0, or keep serving old
//! metadata forever so that a fix never arrives. So the publisher signs a
//! short canonical message that binds the version, the asset name, its size,
//! its SHA-256 and an expiry:
//!
//! ```text
//! updater-release-metadata v1
//! version=1.2.0
//! asset=app-1.2.0.tar.gz
//! size=1048576
//! sha256=<64 lowercase hex digits>
//! expires=2027-01-01T00:00:00Z
//! ```
//!
//! (each line ends with `\n`, including the last; see [`canonical_metadata`]).
//! The verifier never reads that message from the server: it rebuilds it from
//! the release and asset it is about to install, so a signature made for other
//! metadata does not verify. What each field prevents:
//!
//! | field | attack it stops |
//! |---|---|
//! | `version` | replaying an old release's signature as a new version (downgrade to a known-vulnerable build) |
//! | `asset`, `size`, `sha256` | swapping in another file (another platform's build, a truncated or tampered file) |
//! | `expires` | freezing: serving stale metadata long after it was superseded |
//!
//! # Transport
//!
//! [`Asset::signature`](crate::release::Asset::signature) holds the full text of
//! a minisign signature file over that message. Its *trusted comment* (which
//! minisign signs too) must be `expires=<RFC 3339, UTC, seconds, Z>`, optionally
//! followed by ` key=value` pairs; the verifier takes the expiry from there,
//! puts it into the rebuilt message and refuses the package once it has passed.
//!
//! **The file index.** A package built with `updater release build` has a
//! file index ([`crate::package::index`]) that delta updates trust instead
//! of the whole archive. Its SHA-256 is bound in the same trusted comment:
//! `expires=2027-01-01T00:00:00Z index=<64 lowercase hex digits>`. The
//! message itself is unchanged, so signatures without an index (and
//! verifiers that ignore it) keep working; a verified signature reports the
//! bound digest in [`SignedMetadata::index_sha256`], and a delta update is
//! only attempted with an index of exactly that digest.
//!
//! Several public keys may be configured ([`PublicKeys`]): a signature is
//! checked against the key whose key id it names, so a publisher can rotate
//! keys: configure the new public key beside the old one on every
//! installation, sign the next releases with the new key, and remove the
//! old key once no installation needs a release signed with it (see
//! `docs/release-format.md`).
//!
//! # Signing with the stock `minisign` tool
//!
//! ```sh
//! version=1.2.0 asset=app-1.2.0.tar.gz expires=2027-01-01T00:00:00Z
//! size=$(stat -c %s "$asset")
//! sha256=$(sha256sum "$asset" | cut -d' ' -f1)
//! printf 'updater-release-metadata v1\nversion=%s\nasset=%s\nsize=%s\nsha256=%s\nexpires=%s\n' \
//!     "$version" "$asset" "$size" "$sha256" "$expires" > meta.txt
//! minisign -S -s minisign.key -m meta.txt -t "expires=$expires"
//! # publish the content of meta.txt.minisig as the asset's signature
//! ```
//!
//! The expiry must be written exactly as above (UTC, whole seconds, `Z`),
//! since it is part of the signed bytes. With the `signing` feature,
//! `sign_metadata` does the same from Rust.
//!
//! # What this does not cover
//!
//! - A frozen source can still claim "nothing newer exists". Verify the
//!   newest release at check time too (call [`verify_asset_signature`] on it)
//!   to notice metadata that expired.
//! - Downgrades to an older, still-valid signed release are refused by the
//!   version rules (the highest version ever installed is remembered), not here.
//! - One key per application: the message does not name the application, so a
//!   key shared by two applications lets one's release be offered to the other
//!   when their asset names match.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::{Error, Result};
use crate::release::{Asset, Release, Sha256Digest};
use crate::version::Version;

/// The first line of the canonical message; a new format gets a new version.
const MESSAGE_HEADER: &str = "updater-release-metadata v1";

/// The trusted-comment key that carries the expiry.
const EXPIRES_KEY: &str = "expires=";

/// The trusted-comment key that carries the SHA-256 of the package's file index.
const INDEX_KEY: &str = "index=";

/// The canonical bytes the publisher signs for one asset of one release.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use updater_core::package::signature::canonical_metadata;
/// use updater_core::release::Sha256Digest;
/// use updater_core::version::Version;
///
/// let digest = Sha256Digest([0xab; 32]);
/// let expires = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
/// let message = canonical_metadata(&Version::new(1, 2, 0), "app.tar.gz", 42, &digest, expires);
/// assert_eq!(
///     message,
///     format!("updater-release-metadata v1\nversion=1.2.0\nasset=app.tar.gz\nsize=42\nsha256={}\nexpires=2027-01-01T00:00:00Z\n", "ab".repeat(32)),
/// );
/// ```
pub fn canonical_metadata(
    version: &Version,
    asset_name: &str,
    size: u64,
    sha256: &Sha256Digest,
    expires_at: DateTime<Utc>,
) -> String {
    format!(
        "{MESSAGE_HEADER}\nversion={version}\nasset={asset_name}\nsize={size}\nsha256={}\nexpires={}\n",
        sha256.to_hex(),
        format_expiry(expires_at)
    )
}

/// An expiry as it appears in the message and the trusted comment:
/// RFC 3339, UTC, whole seconds, `Z` (e.g. `2027-01-01T00:00:00Z`).
pub fn format_expiry(expires_at: DateTime<Utc>) -> String {
    expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The metadata a valid signature vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMetadata {
    /// The release version.
    pub version: Version,
    /// The asset file name.
    pub asset: String,
    /// The asset size in bytes.
    pub size: u64,
    /// The asset's SHA-256.
    pub sha256: Sha256Digest,
    /// When the signed metadata stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// The id of the key that signed, as minisign prints it (16 hex digits).
    pub key_id: String,
    /// The SHA-256 of the package's file index, when the signature binds one
    /// (`index=` in the trusted comment).
    pub index_sha256: Option<Sha256Digest>,
}

/// One trusted minisign public key with its key id.
#[derive(Clone)]
struct TrustedKey {
    key_id: String,
    key: minisign_verify::PublicKey,
}

/// The minisign public keys whose signatures are accepted. Empty means no
/// signature is required.
///
/// Several keys allow rotation: each signature names its key id and is
/// checked against the matching key.
///
/// ```
/// use updater_core::package::signature::PublicKeys;
///
/// let keys = PublicKeys::parse("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3")?;
/// assert_eq!(keys.len(), 1);
/// assert_eq!(keys.key_ids().collect::<Vec<_>>(), ["E7620F1842B4E81F"]);
/// assert!(PublicKeys::default().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct PublicKeys {
    keys: Vec<TrustedKey>,
}

impl PublicKeys {
    /// No keys: signatures are not required.
    pub fn new() -> Self {
        PublicKeys::default()
    }

    /// One key, from its base64 form (`RW...`) or the full text of a
    /// minisign `.pub` file (an `untrusted comment:` line and the key line).
    pub fn parse(text: &str) -> Result<Self> {
        let mut keys = PublicKeys::new();
        keys.add(text)?;
        Ok(keys)
    }

    /// Several keys (for rotation), each as accepted by [`PublicKeys::parse`].
    pub fn parse_all<I>(texts: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut keys = PublicKeys::new();
        for text in texts {
            keys.add(text.as_ref())?;
        }
        Ok(keys)
    }

    /// Adds a key (builder style), as accepted by [`PublicKeys::parse`].
    pub fn with_key(mut self, text: &str) -> Result<Self> {
        self.add(text)?;
        Ok(self)
    }

    /// Adds a key, as accepted by [`PublicKeys::parse`]. Adding a key id that
    /// is already present replaces nothing and is an error.
    pub fn add(&mut self, text: &str) -> Result<()> {
        let invalid = |reason: String| Error::invalid("minisign public key", reason);
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("untrusted comment:"));
        let base64 = match (lines.next(), lines.next()) {
            (Some(line), None) => line,
            (None, _) => return Err(invalid("no key found in the text".into())),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "expected one key line (RW...), found several; add keys one by one".into(),
                ));
            }
        };
        let key = minisign_verify::PublicKey::from_base64(base64)
            .map_err(|e| invalid(format!("{base64:?} is not a minisign public key: {e}")))?;
        let key_id = key_id_of(base64, 0)
            .ok_or_else(|| invalid(format!("{base64:?} is not a minisign public key")))?;
        if self.keys.iter().any(|k| k.key_id == key_id) {
            return Err(invalid(format!("key {key_id} is configured twice")));
        }
        self.keys.push(TrustedKey { key_id, key });
        Ok(())
    }

    /// Whether no key is configured (then signatures are not required).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key ids, as minisign prints them (16 upper-case hex digits).
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.key_id.as_str())
    }

    fn find(&self, key_id: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }
}

impl fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKeys")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

/// Verifies the signature of `asset` over the release metadata rebuilt from
/// `release` and `asset`, and that it has not expired at `now`.
///
/// Refuses (with [`Error::Integrity`]) an asset without a signature or
/// without a SHA-256, a signature that is not minisign text, one made by a key
/// that is not configured, one whose trusted comment has no valid `expires=`,
/// one over other metadata (another version, name, size or digest), and
/// metadata whose expiry is not after `now`.
pub fn verify_asset_signature(
    keys: &PublicKeys,
    release: &Release,
    asset: &Asset,
    now: DateTime<Utc>,
) -> Result<SignedMetadata> {
    let subject = format!("asset {} of release {}", asset.name, release.version);
    let refuse = |reason: String| Error::integrity(subject.clone(), reason);
    if keys.is_empty() {
        return Err(Error::invalid(
            "signature verification",
            "no public key is configured",
        ));
    }
    check_field("asset name", &asset.name)?;
    let signature_text = &asset
        .signature
        .as_ref()
        .ok_or_else(|| {
            refuse("it has no signature, but public keys are configured so one is required".into())
        })?
        .minisig;
    let sha256 = asset.sha256.ok_or_else(|| {
        refuse("it has no SHA-256; signed release metadata must include one".into())
    })?;
    let signature = minisign_verify::Signature::decode(signature_text)
        .map_err(|e| refuse(format!("the signature is not a minisign signature: {e}")))?;
    let key_id = signature_text
        .lines()
        .nth(1)
        .and_then(|line| key_id_of(line.trim(), 0))
        .ok_or_else(|| refuse("the signature is not a minisign signature".into()))?;
    let key = keys.find(&key_id).ok_or_else(|| {
        refuse(format!(
            "signed by key {key_id}, which is not a configured key ({})",
            keys.key_ids().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let expires_at = expiry_from_trusted_comment(signature.trusted_comment()).map_err(refuse)?;
    let index_sha256 = index_from_trusted_comment(signature.trusted_comment()).map_err(refuse)?;
    let message = canonical_metadata(
        &release.version,
        &asset.name,
        asset.size,
        &sha256,
        expires_at,
    );
    // Legacy (non-prehashed) minisign signatures are plain Ed25519 over the
    // message; for a message this small that is as strong as the prehashed form.
    key.key
        .verify(message.as_bytes(), &signature, true)
        .map_err(|e| {
            refuse(format!(
                "the signature by key {key_id} does not match this release's metadata \
                 (version {}, size {}, sha256 {sha256}, expires {}): {e}; a signature made \
                 for other metadata, such as an older release, cannot be reused",
                release.version,
                asset.size,
                format_expiry(expires_at)
            ))
        })?;
    if now >= expires_at {
        return Err(refuse(format!(
            "signed metadata expired at {}, refusing possibly stale/frozen metadata",
            format_expiry(expires_at)
        )));
    }
    tracing::debug!(asset = %asset.name, version = %release.version, key_id, "release metadata signature verified");
    Ok(SignedMetadata {
        version: release.version.clone(),
        asset: asset.name.clone(),
        size: asset.size,
        sha256,
        expires_at,
        key_id,
        index_sha256,
    })
}

/// Signs the metadata of one asset with a minisign secret key, putting the
/// expiry into the trusted comment as [`verify_asset_signature`] expects.
///
/// `expires_at` is truncated to whole seconds. Available with the `signing`
/// feature (which pulls in the `minisign` crate, re-exported as
/// [`minisign`]).
#[cfg(feature = "signing")]
pub fn sign_metadata(
    secret_key: &minisign::SecretKey,
    version: &Version,
    asset_name: &str,
    size: u64,
    sha256: &Sha256Digest,
    expires_at: DateTime<Utc>,
) -> Result<crate::release::AssetSignature> {
    sign_metadata_with_index(
        secret_key, version, asset_name, size, sha256, None, expires_at,
    )
}

/// [`sign_metadata`], also binding the SHA-256 of the package's file index
/// (`index=<hex>` in the trusted comment) when `index` is given. What
/// `updater release build --key` signs.
///
/// ```
/// use chrono::{Duration, Utc};
/// use updater_core::package::signature::{minisign, sign_metadata_with_index, verify_asset_signature, PublicKeys};
/// use updater_core::release::{Asset, AssetIndex, Release, Sha256Digest};
/// use updater_core::version::Version;
///
/// let pair = minisign::KeyPair::generate_unencrypted_keypair()?;
/// let keys = PublicKeys::parse(&pair.pk.to_base64())?;
/// let (digest, index) = (Sha256Digest([1; 32]), Sha256Digest([2; 32]));
/// let version = Version::new(1, 2, 0);
/// let expires = Utc::now() + Duration::days(30);
/// let signature = sign_metadata_with_index(&pair.sk, &version, "app.tar.gz", 10, &digest, Some(&index), expires)?;
/// let asset = Asset::new("app.tar.gz", 10, "app.tar.gz").with_sha256(digest).with_signature(signature);
/// let release = Release::new(version).with_asset(asset.clone());
/// let signed = verify_asset_signature(&keys, &release, &asset, Utc::now())?;
/// assert_eq!(signed.index_sha256, Some(index));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "signing")]
pub fn sign_metadata_with_index(
    secret_key: &minisign::SecretKey,
    version: &Version,
    asset_name: &str,
    size: u64,
    sha256: &Sha256Digest,
    index: Option<&Sha256Digest>,
    expires_at: DateTime<Utc>,
) -> Result<crate::release::AssetSignature> {
    check_field("asset name", asset_name)?;
    let message = canonical_metadata(version, asset_name, size, sha256, expires_at);
    let mut trusted_comment = format!("{EXPIRES_KEY}{}", format_expiry(expires_at));
    if let Some(index) = index {
        trusted_comment.push_str(&format!(" {INDEX_KEY}{}", index.to_hex()));
    }
    let signature = minisign::sign(
        None,
        secret_key,
        std::io::Cursor::new(message.as_bytes()),
        Some(&trusted_comment),
        Some(&format!(
            "updater release metadata for {asset_name} {version}"
        )),
    )
    .map_err(|e| Error::other(format!("sign the metadata of {asset_name} {version}"), e))?;
    Ok(crate::release::AssetSignature::new(signature.into_string()))
}

/// The `minisign` crate, for loading or generating secret keys to use with
/// [`sign_metadata`].
#[cfg(feature = "signing")]
pub use minisign;

/// Refuses names that could forge extra lines in the canonical message.
fn check_field(what: &str, value: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            format!("{what} {value:?}"),
            "control characters (such as newlines) are not allowed in signed metadata",
        ));
    }
    Ok(())
}

/// Reads `expires=<time>` from a trusted comment like
/// `expires=2027-01-01T00:00:00Z channel=stable`.
fn expiry_from_trusted_comment(comment: &str) -> std::result::Result<DateTime<Utc>, String> {
    let mut values = comment
        .split_whitespace()
        .filter_map(|token| token.strip_prefix(EXPIRES_KEY));
    let text = match (values.next(), values.next()) {
        (Some(text), None) => text,
        (None, _) => {
            return Err(format!(
                "the signature's trusted comment {comment:?} has no `expires=<time>`; sign with \
                 minisign -t \"expires=2027-01-01T00:00:00Z\""
            ));
        }
        (Some(_), Some(_)) => {
            return Err(format!(
                "the signature's trusted comment {comment:?} has several `expires=`"
            ));
        }
    };
    let parsed = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("the expiry {text:?} in the trusted comment is not RFC 3339: {e}"))?
        .with_timezone(&Utc);
    if format_expiry(parsed) != text {
        return Err(format!(
            "the expiry {text:?} must be written in UTC with whole seconds, as {}",
            format_expiry(parsed)
        ));
    }
    Ok(parsed)
}

/// Reads `index=<hex>` from a trusted comment, if there is one (at most one).
fn index_from_trusted_comment(comment: &str) -> std::result::Result<Option<Sha256Digest>, String> {
    let mut values = comment
        .split_whitespace()
        .filter_map(|token| token.strip_prefix(INDEX_KEY));
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(format!(
            "the signature's trusted comment {comment:?} has several `index=`"
        )),
        (Some(text), None) => Sha256Digest::parse(text)
            .map(Some)
            .map_err(|e| format!("the index digest in the trusted comment: {e}")),
    }
}

/// The key id (bytes 2..10 of a minisign key or signature blob), as minisign
/// prints it: the little-endian u64 in 16 upper-case hex digits.
fn key_id_of(base64: &str, offset: usize) -> Option<String> {
    let bytes = decode_base64(base64)?;
    let id: [u8; 8] = bytes.get(offset + 2..offset + 10)?.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(id)))
}

/// Standard base64 (with or without padding). Only used to read key ids;
/// `minisign-verify` decodes and checks the full blobs itself.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut accumulator, mut bits) = (0u32, 0u32);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        accumulator = (accumulator << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn expiry_must_be_present_once_and_canonical() {
        let at = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            expiry_from_trusted_comment("expires=2027-01-01T00:00:00Z channel=stable"),
            Ok(at)
        );
        assert_eq!(
            expiry_from_trusted_comment("channel=stable expires=2027-01-01T00:00:00Z"),
            Ok(at)
        );
        for bad in [
            "timestamp:1700000000\tfile:meta.txt",
            "expires=2027-01-01T00:00:00Z expires=2028-01-01T00:00:00Z",
            "expires=2027-01-01T01:00:00+01:00",
            "expires=2027-01-01T00:00:00.5Z",
            "expires=tomorrow",
        ] {
            assert!(expiry_from_trusted_comment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_index_digest_is_optional_unique_and_hex() {
        let hex = "ab".repeat(32);
        assert_eq!(
            index_from_trusted_comment(&format!("expires=2027-01-01T00:00:00Z index={hex}")),
            Ok(Some(Sha256Digest([0xab; 32])))
        );
        assert_eq!(
            index_from_trusted_comment("expires=2027-01-01T00:00:00Z"),
            Ok(None)
        );
        assert!(index_from_trusted_comment("index=xyz").is_err());
        assert!(index_from_trusted_comment(&format!("index={hex} index={hex}")).is_err());
    }

    #[test]
    fn base64_decoding_matches_known_vectors() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("aGk/Pz8+").as_deref(), Some(&b"hi???>"[..]));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn public_keys_refuse_garbage_and_duplicates() {
        let key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
        assert!(PublicKeys::parse("hello").is_err());
        assert!(PublicKeys::parse("").is_err());
        let file = format!("untrusted comment: minisign public key E7620F1842B4E81F\n{key}\n");
        assert_eq!(PublicKeys::parse(&file).unwrap().len(), 1);
        assert!(PublicKeys::parse_all([key, key]).is_err());
        assert!(format!("{:?}", PublicKeys::parse(key).unwrap()).contains("E7620F1842B4E81F"));
    }

    #[test]
    fn control_characters_in_asset_names_are_refused() {
        assert!(check_field("asset name", "app.tar.gz").is_ok());
        assert!(check_field("asset name", "app.tar.gz\nsize=1").is_err());
    }
}
