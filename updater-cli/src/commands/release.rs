//! `updater release build | manifest | keygen`: the publisher's side. These
//! commands need no configuration file: they work on a build directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use updater_core::package::build::{
    BuildOptions, build_release, merge_into_manifest, sign_release,
};
use updater_core::package::signature::{PublicKeys, minisign};
use updater_core::version::{Channel, Version};

use crate::cli::ReleaseCommand;
use crate::error::{CliError, Result};
use crate::output::Outcome;
use crate::terminal::human_bytes;

/// The environment variable holding the signing key's password.
pub(super) const PASSWORD_VARIABLE: &str = "UPDATER_SIGNING_PASSWORD";

pub(super) fn run(command: &ReleaseCommand) -> Result<Outcome> {
    match command {
        ReleaseCommand::Build {
            dir,
            version,
            channel,
            changelog,
            key,
            expires_in_days,
            asset_name,
            mtime,
            out,
        } => build(&BuildArgs {
            dir,
            version,
            channel: channel.as_deref(),
            changelog: changelog.as_deref(),
            key: key.as_deref(),
            expires_in_days: *expires_in_days,
            asset_name: asset_name.as_deref(),
            mtime: *mtime,
            out,
        }),
        ReleaseCommand::Manifest {
            out,
            manifest,
            base_url,
        } => manifest_merge(out, manifest.as_deref(), base_url.as_deref()),
        ReleaseCommand::Keygen {
            secret_key,
            public_key,
            force,
        } => keygen(secret_key, public_key, *force),
    }
}

struct BuildArgs<'a> {
    dir: &'a Path,
    version: &'a str,
    channel: Option<&'a str>,
    changelog: Option<&'a Path>,
    key: Option<&'a Path>,
    expires_in_days: u32,
    asset_name: Option<&'a str>,
    mtime: Option<u64>,
    out: &'a Path,
}

fn password() -> String {
    std::env::var(PASSWORD_VARIABLE).unwrap_or_default()
}

/// Loads a minisign secret key, with the password from the environment.
fn load_key(path: &Path) -> Result<minisign::SecretKey> {
    let text = fs::read_to_string(path).map_err(|e| CliError::io("read", path, e))?;
    minisign::SecretKey::from_box(text.into(), Some(password())).map_err(|e| {
        CliError::Usage(format!(
            "cannot load the signing key {}: {e}{}",
            path.display(),
            if std::env::var_os(PASSWORD_VARIABLE).is_none() {
                format!(" (an encrypted key needs its password in {PASSWORD_VARIABLE})")
            } else {
                String::new()
            }
        ))
    })
}

fn build(args: &BuildArgs<'_>) -> Result<Outcome> {
    let version =
        Version::parse(args.version).map_err(|e| CliError::Usage(format!("--version: {e}")))?;
    let mut options = BuildOptions::new(version);
    if let Some(channel) = args.channel {
        let channel: Channel = channel
            .parse()
            .map_err(|e| CliError::Usage(format!("--channel: {e}")))?;
        options = options.with_channel(channel);
    }
    if let Some(path) = args.changelog {
        let text = fs::read_to_string(path).map_err(|e| CliError::io("read", path, e))?;
        options = options.with_changelog(text);
    }
    if let Some(name) = args.asset_name {
        options = options.with_asset_name(name);
    }
    if let Some(mtime) = args.mtime {
        options = options.with_mtime(mtime);
    }
    // Load the key first: a wrong password must not leave an unsigned release behind.
    let key = args.key.map(load_key).transpose()?;
    let mut built = build_release(args.dir, args.out, &options)?;
    if let Some(key) = &key {
        let expires_at =
            chrono::Utc::now() + chrono::Duration::days(i64::from(args.expires_in_days));
        sign_release(&mut built, key, expires_at)?;
    }
    let asset = built
        .release
        .assets
        .first()
        .ok_or_else(|| CliError::Usage("the built release has no asset".into()))?;
    let files = built
        .list
        .iter()
        .filter(|(_, e)| e.kind == updater_core::tree::EntryKind::File)
        .count();
    let text = format!(
        "built {} {} ({}, {} entries, {} files) in {}\n  package   {}\n  index     {}\n  checksums {}\n  signature {}\n  manifest entry {} (merge it with `updater release manifest {}`)",
        built.release.version,
        asset.name,
        human_bytes(asset.size),
        built.index.entries.len(),
        files,
        built.out.display(),
        built.archive.display(),
        built.index_path.display(),
        built.checksums.display(),
        built
            .signature
            .as_ref()
            .map_or("none (no --key)".to_string(), |p| p.display().to_string()),
        built.release_entry.display(),
        built.out.display()
    );
    Ok(Outcome::ok(
        json!({
            "version": built.release.version.to_string(),
            "archive": built.archive,
            "size": asset.size,
            "sha256": asset.sha256.map(|d| d.to_hex()),
            "index": built.index_path,
            "index_sha256": asset.index.as_ref().map(|i| i.sha256.to_hex()),
            "entries": built.index.entries.len(),
            "files": files,
            "checksums": built.checksums,
            "signature": built.signature,
            "release_entry": built.release_entry,
        }),
        text,
    ))
}

fn manifest_merge(out: &Path, manifest: Option<&Path>, base_url: Option<&str>) -> Result<Outcome> {
    let manifest: PathBuf = match manifest {
        Some(path) => path.to_path_buf(),
        None => {
            let absolute = if out.is_absolute() {
                out.to_path_buf()
            } else {
                std::env::current_dir()
                    .map_err(|e| CliError::io("find the current directory for", out, e))?
                    .join(out)
            };
            absolute
                .parent()
                .map(|p| p.join("manifest.json"))
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "{} has no parent directory: give --manifest",
                        out.display()
                    ))
                })?
        }
    };
    let entry: updater_core::manifest::ManifestRelease = {
        let path = out.join(updater_core::package::build::RELEASE_ENTRY);
        let bytes = fs::read(&path).map_err(|e| CliError::io("read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Usage(format!("{} is not a release entry: {e}", path.display()))
        })?
    };
    let merged = merge_into_manifest(out, &manifest, base_url)?;
    let versions: Vec<String> = merged
        .releases
        .iter()
        .map(|r| r.version.to_string())
        .collect();
    Ok(Outcome::ok(
        json!({
            "manifest": manifest,
            "version": entry.version.to_string(),
            "releases": versions,
        }),
        format!(
            "added {} to {} ({} releases: {})",
            entry.version,
            manifest.display(),
            versions.len(),
            versions.join(", ")
        ),
    ))
}

/// Creates `path` afresh with `mode` (replacing it only with `force`).
fn write_new(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<()> {
    if force {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CliError::io("remove", path, e)),
        }
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CliError::Usage(format!(
                    "{} already exists; use --force to replace it",
                    path.display()
                ))
            } else {
                CliError::io("create", path, e)
            }
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::io("write", path, e))
}

fn keygen(secret_key: &Path, public_key: &Path, force: bool) -> Result<Outcome> {
    if !force {
        for path in [secret_key, public_key] {
            if path.exists() {
                return Err(CliError::Usage(format!(
                    "{} already exists; use --force to replace it",
                    path.display()
                )));
            }
        }
    }
    let password = password();
    let encrypted = !password.is_empty();
    let pair = minisign::KeyPair::generate_encrypted_keypair(Some(password))
        .map_err(|e| updater_core::Error::other("generate a minisign key pair", e))?;
    let public_text = pair
        .pk
        .to_box()
        .map_err(|e| updater_core::Error::other("encode the public key", e))?
        .into_string();
    let secret_text = pair
        .sk
        .to_box(Some("updater release signing key"))
        .map_err(|e| updater_core::Error::other("encode the secret key", e))?
        .into_string();
    let key_id = PublicKeys::parse(&public_text)?
        .key_ids()
        .next()
        .unwrap_or_default()
        .to_string();
    write_new(secret_key, secret_text.as_bytes(), 0o600, force)?;
    write_new(public_key, public_text.as_bytes(), 0o644, force)?;
    let text = format!(
        "key {key_id}\n  secret key {} (mode 0600, {})\n  public key {}: add its key line to `public_keys` in `[source]` of every installation's updater.toml\n  sign with `updater release build ... --key {}`",
        secret_key.display(),
        if encrypted {
            format!("encrypted with {PASSWORD_VARIABLE}")
        } else {
            format!("NOT encrypted: set {PASSWORD_VARIABLE} to encrypt it")
        },
        public_key.display(),
        secret_key.display()
    );
    Ok(Outcome::ok(
        json!({
            "secret_key": secret_key,
            "public_key": public_key,
            "key_id": key_id,
            "encrypted": encrypted,
        }),
        text,
    ))
}
