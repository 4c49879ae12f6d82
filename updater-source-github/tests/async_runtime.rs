//! Using the sources from a tokio application: no nested-runtime panic when
//! a source is created, used and dropped from `spawn_blocking`, nor when it
//! is created or dropped directly on an async task.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use support::github::{FakeGitHub, GitHubData};
use updater_core::conformance::source::SourceFixture;
use updater_core::source::ReleaseSource;
use updater_core::version::{Channel, Version};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_source_created_used_and_dropped_inside_spawn_blocking_works() {
    let fixture = SourceFixture::standard();
    let github = FakeGitHub::start(GitHubData::from_source_fixture(&fixture));
    let builder = github.source();
    let downloaded = runtime().block_on(async move {
        tokio::task::spawn_blocking(move || {
            let source = builder.build().unwrap();
            let release = source.latest(Channel::Beta).unwrap().unwrap();
            let mut bytes = Vec::new();
            source.download(&release.assets[0], &mut bytes).unwrap();
            drop(source);
            (release.version, bytes)
        })
        .await
        .unwrap()
    });
    let expected = fixture.latest(Channel::Beta).unwrap();
    assert_eq!(downloaded.0, expected.version);
    assert_eq!(downloaded.1, expected.assets[0].bytes);
}

#[test]
fn a_source_built_and_dropped_on_an_async_task_does_not_panic() {
    let fixture = SourceFixture::standard();
    let github = FakeGitHub::start(GitHubData::from_source_fixture(&fixture));
    let builder = github.source();
    let version = runtime().block_on(async move {
        // Built on the async task: reqwest's blocking client is created on a
        // plain thread of its own, so this is fine.
        let source = Arc::new(builder.build().unwrap());
        let version = tokio::task::spawn_blocking({
            let source = Arc::clone(&source);
            move || source.release(&Version::new(1, 0, 0)).unwrap().version
        })
        .await
        .unwrap();
        // The last reference is dropped on the async task: no panic either.
        drop(source);
        version
    });
    assert_eq!(version, Version::new(1, 0, 0));
}

#[test]
fn a_manifest_source_and_health_check_work_from_spawn_blocking() {
    let app = support::TestServer::start(|_| support::Reply::new(200));
    let url = app.url("/health");
    runtime().block_on(async move {
        let check = updater_source_github::HttpHealthCheck::builder(url)
            .build()
            .unwrap();
        tokio::task::spawn_blocking(move || {
            use updater_core::health::HealthCheck;
            check
                .check(&updater_core::health::HealthContext {
                    app_dir: std::env::temp_dir(),
                    version: Version::new(1, 0, 0),
                    deadline: std::time::Instant::now() + std::time::Duration::from_secs(5),
                    bypass_secret: None,
                    children: None,
                })
                .unwrap();
        })
        .await
        .unwrap();
    });
}
