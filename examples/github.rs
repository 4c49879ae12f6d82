//! Configuring the GitHub releases source.
//!
//! Without arguments it runs against a local fake of the GitHub API on
//! 127.0.0.1 (GitHub-shaped JSON, asset downloads through the API URL) and
//! performs a real update. With `OWNER/REPO` it only asks the real GitHub
//! for the newest release (needs network; set `GITHUB_TOKEN` for private
//! repositories or a higher rate limit):
//!
//! `cargo run --example github` or `cargo run --example github -- rust-lang/rust`

use std::sync::Arc;

use updater_core::pipeline::{ApplyOutcome, ApplyRequest, UpdaterBuilder};
use updater_core::progress::NoProgress;
use updater_core::source::ReleaseSource;
use updater_core::version::Channel;
use updater_source_github::GitHubSource;
use updater_testkit::demo;
use updater_testkit::http::StaticServer;

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(repository) = std::env::args().nth(1) {
        let (owner, repo) = repository.split_once('/').ok_or("expected OWNER/REPO")?;
        let source = GitHubSource::builder(owner, repo)
            .with_token_from_env()
            .build()?;
        match source.latest(Channel::Stable)? {
            Some(release) => println!(
                "{}: newest stable {} published {:?}, assets: {:?}",
                source.describe(),
                release.version,
                release.published_at,
                release
                    .assets
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
            ),
            None => println!("{}: no stable release", source.describe()),
        }
        return Ok(());
    }

    // A local fake of the GitHub API serving one release of the demo app.
    let work = tempfile::tempdir()?;
    let app = work.path().join("app");
    demo::create_app(&app, "1.0.0")?;
    let archive = demo::build_release(work.path(), "1.1.0", true)?;
    let (digest, size) = updater_core::package::sha256_file(&archive)?;
    let api = work.path().join("api");
    std::fs::create_dir_all(&api)?;
    // The port is only known once the server runs: it serves files, so write them after.
    let server = StaticServer::serve(
        &api,
        vec![
            (
                "/repos/acme/app/releases/latest".into(),
                api.join("latest.json"),
            ),
            ("/repos/acme/app/releases/assets/1".into(), archive.clone()),
        ],
    )?;
    let release_json = format!(
        r#"{{"tag_name":"v1.1.0","name":"1.1.0","draft":false,"prerelease":false,
            "published_at":"2026-11-20T10:00:00Z","body":"Faster pages.",
            "assets":[{{"id":1,"name":"app-1.1.0.tar.gz","size":{size},"state":"uploaded",
              "digest":"sha256:{digest}",
              "url":"{base}/repos/acme/app/releases/assets/1",
              "browser_download_url":"{base}/download/app-1.1.0.tar.gz"}}]}}"#,
        base = server.address()
    );
    std::fs::write(api.join("latest.json"), release_json)?;

    let source = GitHubSource::builder("acme", "app")
        .with_api_base(server.address())
        .build()?;
    println!("{}", source.describe());
    let updater = UpdaterBuilder::new(&app)
        .with_shared_source(Arc::new(source))
        .configure(|c| c.asset_pattern = Some("app-{version}.tar.gz".into()))
        .build()?;
    let check = updater.check(true)?;
    println!(
        "newest: {:?}, update available: {}",
        check.latest.as_ref().map(|r| r.version.to_string()),
        check.update_available
    );
    if let ApplyOutcome::Updated(report) =
        updater.apply(&ApplyRequest::latest("github-example"), &NoProgress)?
    {
        println!("updated {} -> {}", report.from, report.to);
    }
    Ok(())
}
