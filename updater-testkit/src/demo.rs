//! The demo "application" of the examples (`cargo run --example quickstart`):
//! a directory with a `VERSION` file, a front page, a
//! health script and user data in preserved paths, plus release archives
//! built from the same layout.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use updater_core::package::{BuildOptions, BuiltRelease};
use updater_core::version::Version;

use updater_core::package::build_release as build_package;

/// Writes the tree of the demo application at `version` into `dir`.
/// `healthy` decides whether its `bin/health` script exits 0.
pub fn write_release_tree(dir: &Path, version: &str, healthy: bool) -> io::Result<()> {
    fs::create_dir_all(dir.join("public"))?;
    fs::create_dir_all(dir.join("bin"))?;
    fs::create_dir_all(dir.join("storage/logs"))?;
    fs::write(dir.join("VERSION"), version)?;
    fs::write(
        dir.join("public/index.html"),
        format!("<h1>Demo app {version}</h1>\n"),
    )?;
    let health = if healthy {
        "#!/bin/sh\n# The demo's health check: the app answers.\ntest -f public/index.html\n"
            .to_string()
    } else {
        "#!/bin/sh\necho 'database connection refused' >&2\nexit 1\n".to_string()
    };
    let script = dir.join("bin/health");
    fs::write(&script, health)?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Creates the running demo application at `version` with user data in
/// its preserved paths (`.env`, `storage/logs`).
pub fn create_app(dir: &Path, version: &str) -> io::Result<()> {
    write_release_tree(dir, version, true)?;
    fs::write(dir.join(".env"), "APP_KEY=demo-secret-that-must-survive\n")?;
    fs::write(dir.join("storage/logs/app.log"), "[1.0.0] started\n")?;
    Ok(())
}

/// Builds the demo release `version` under `work` with the publisher's
/// tool (`updater release build`, [`updater_core::package::build_release`]):
/// package, file index, `SHA256SUMS` and manifest entry in
/// `work/dist-<version>/`.
pub fn build(
    work: &Path,
    version: &str,
    healthy: bool,
    changelog: &str,
) -> io::Result<BuiltRelease> {
    let tree = work.join(format!("build-{version}"));
    write_release_tree(&tree, version, healthy)?;
    let parsed = Version::parse(version).map_err(io::Error::other)?;
    let built = build_package(
        &tree,
        &work.join(format!("dist-{version}")),
        &BuildOptions::new(parsed).with_changelog(changelog),
    )
    .map_err(io::Error::other)?;
    fs::remove_dir_all(&tree)?;
    Ok(built)
}

/// Builds the demo release `version` under `work` (see [`build`]) and
/// returns the path of its `.tar.gz`.
pub fn build_release(work: &Path, version: &str, healthy: bool) -> io::Result<PathBuf> {
    Ok(build(work, version, healthy, "")?.archive)
}
