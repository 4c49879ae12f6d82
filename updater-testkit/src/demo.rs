//! The demo "application" of the examples (`cargo run --example quickstart`):
//! a directory with a `VERSION` file, a front page, a
//! health script and user data in preserved paths, plus release archives
//! built from the same layout.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// Builds the `.tar.gz` of the demo release `version` under `work` and
/// returns its path.
pub fn build_release(work: &Path, version: &str, healthy: bool) -> io::Result<PathBuf> {
    let tree = work.join(format!("build-{version}"));
    write_release_tree(&tree, version, healthy)?;
    let archive = work.join(format!("app-{version}.tar.gz"));
    let gz =
        flate2::write::GzEncoder::new(fs::File::create(&archive)?, flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.append_dir_all(".", &tree)?;
    builder.into_inner()?.finish()?;
    fs::remove_dir_all(&tree)?;
    Ok(archive)
}
