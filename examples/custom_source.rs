//! Implementing `ReleaseSource` for your own server: here, a plain directory
//! of `app-<version>.tar.gz` files, each with a `.sha256` sidecar, as many
//! build systems produce. The updater then works with it like with any
//! built-in source. (Run the shared conformance suite,
//! `updater_core::conformance::source::run`, in your source's tests.)
//!
//! Run: `cargo run --example custom_source`

use std::io::Write;
use std::path::PathBuf;

use updater_core::pipeline::{ApplyOutcome, ApplyRequest, UpdaterBuilder};
use updater_core::progress::NoProgress;
use updater_core::release::{Asset, Release, Sha256Digest};
use updater_core::source::ReleaseSource;
use updater_core::version::{Channel, Version};
use updater_core::{Error, Result};
use updater_testkit::demo;

/// Releases are the `app-<version>.tar.gz` files of a directory.
#[derive(Debug)]
struct BuildDirectorySource {
    dir: PathBuf,
}

impl ReleaseSource for BuildDirectorySource {
    fn describe(&self) -> String {
        format!("build directory {}", self.dir.display())
    }

    fn releases(&self, channel: Channel) -> Result<Vec<Release>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        let mut releases = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Not a release file? Skip it (never use unchecked names as paths).
            let Some(version) = name
                .strip_prefix("app-")
                .and_then(|n| n.strip_suffix(".tar.gz"))
            else {
                continue;
            };
            let Ok(version) = Version::parse(version) else {
                continue;
            };
            if !channel.accepts(&version) {
                continue;
            }
            let sidecar = self.dir.join(format!("{name}.sha256"));
            let digest_text =
                std::fs::read_to_string(&sidecar).map_err(|e| Error::io("read", &sidecar, e))?;
            let digest = Sha256Digest::parse(digest_text.split_whitespace().next().unwrap_or(""))?;
            let size = entry
                .metadata()
                .map_err(|e| Error::io("inspect", entry.path(), e))?
                .len();
            releases.push(
                Release::new(version)
                    .with_asset(Asset::new(&name, size, &name).with_sha256(digest)),
            );
        }
        Ok(releases)
    }

    fn download(&self, asset: &Asset, sink: &mut dyn Write) -> Result<u64> {
        // `releases` only hands out plain file names of this directory.
        let path = self.dir.join(&asset.name);
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        // Stop at the declared size: the pipeline checks size and SHA-256 anyway.
        let mut limited = std::io::Read::take(&mut file, asset.size);
        std::io::copy(&mut limited, sink).map_err(|e| Error::io("read", &path, e))
    }
}

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let app = work.path().join("app");
    demo::create_app(&app, "1.0.0")?;
    let builds = work.path().join("builds");
    std::fs::create_dir_all(&builds)?;
    for version in ["1.1.0", "1.2.0-beta.1"] {
        let archive = demo::build_release(work.path(), version, true)?;
        let (digest, _) = updater_core::package::sha256_file(&archive)?;
        let name = format!("app-{version}.tar.gz");
        std::fs::rename(&archive, builds.join(&name))?;
        std::fs::write(
            builds.join(format!("{name}.sha256")),
            format!("{digest}  {name}\n"),
        )?;
    }

    let source = BuildDirectorySource { dir: builds };
    println!(
        "{} offers: {:?}",
        source.describe(),
        source
            .releases(Channel::Alpha)?
            .iter()
            .map(|r| r.version.to_string())
            .collect::<Vec<_>>()
    );
    let updater = UpdaterBuilder::new(&app).with_source(source).build()?;
    match updater.apply(&ApplyRequest::latest("custom_source"), &NoProgress)? {
        ApplyOutcome::Updated(report) => {
            println!("stable channel: updated {} -> {}", report.from, report.to)
        }
        ApplyOutcome::UpToDate { current } => println!("up to date at {current}"),
    }
    Ok(())
}
