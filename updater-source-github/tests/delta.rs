//! Ranged downloads for delta updates against loopback servers: honest,
//! hostile (ignoring `Range`, answering another range, sending more), broken
//! connections resumed, GitHub's redirect followed once; and delta updates
//! end to end over the custom server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::github::{FakeGitHub, GitHubData, fast_http};
use support::{BodyMode, Reply, Request, TestServer};
use updater_core::Error;
use updater_core::conformance::source::SourceFixture;
use updater_core::history::{HistoryStore, Page};
use updater_core::pipeline::{ApplyOutcome, ApplyRequest};
use updater_core::progress::NoProgress;
use updater_core::release::{Asset, ByteRange};
use updater_core::source::ReleaseSource;
use updater_core::version::Version;
use updater_source_github::ManifestSource;
use updater_testkit::app::{Fixture, Layout, fast_temp_dir};
use updater_testkit::tree::snapshot;

fn bytes() -> Vec<u8> {
    (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

const RANGES: [ByteRange; 2] = [
    ByteRange {
        start: 100,
        end: 200,
    },
    ByteRange {
        start: 5000,
        end: 5100,
    },
];

fn wanted() -> Vec<u8> {
    let all = bytes();
    [&all[100..200], &all[5000..5100]].concat()
}

fn fetch(server: &TestServer) -> (Result<u64, Error>, Vec<u8>) {
    let source = ManifestSource::builder(server.url("/manifest.json"))
        .with_http(fast_http())
        .build()
        .unwrap();
    let asset = Asset::new("app.tar.gz", 10_000, server.url("/app.tar.gz"));
    let mut sink = Vec::new();
    let result = source.download_ranges(&asset, &RANGES, &mut sink);
    (result, sink)
}

#[test]
fn an_honest_server_serves_each_range_once_in_order() {
    let server = TestServer::start(|request| Reply::ranged(request, &bytes()));
    let (result, sink) = fetch(&server);
    assert_eq!(result.unwrap(), 200);
    assert_eq!(sink, wanted());
    let asked: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(asked, ["bytes=100-199", "bytes=5000-5099"]);
}

#[test]
fn a_server_that_ignores_range_is_unsupported_so_the_update_downloads_the_whole_package() {
    let server = TestServer::start(|_| Reply::bytes(200, bytes()));
    let (result, _) = fetch(&server);
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::Unsupported { reason, .. } if reason.contains("ignores byte ranges")),
        "{error}"
    );
}

#[test]
fn a_206_with_another_content_range_is_an_integrity_error() {
    let server = TestServer::start(|_| {
        Reply::bytes(206, bytes()[0..100].to_vec()).header("content-range", "bytes 0-99/10000")
    });
    let (result, _) = fetch(&server);
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::Integrity { reason, .. } if reason.contains("asked for bytes 100-199, the server answered bytes 0-99")),
        "{error}"
    );
}

#[test]
fn a_206_with_more_bytes_than_the_range_is_an_integrity_error() {
    let server = TestServer::start(|request| {
        let (start, end) = request.range().unwrap();
        let end = end.unwrap();
        Reply::bytes(206, bytes()[start as usize..=end as usize + 50].to_vec())
            .header("content-range", format!("bytes {start}-{end}/10000"))
    });
    let (result, sink) = fetch(&server);
    assert!(matches!(result, Err(Error::Integrity { .. })), "{result:?}");
    assert!(sink.len() <= 100, "nothing past the range is written");
}

#[test]
fn a_206_for_a_file_of_another_size_is_an_integrity_error() {
    let server = TestServer::start(|request| {
        let (start, end) = request.range().unwrap();
        let end = end.unwrap();
        Reply::bytes(206, bytes()[start as usize..=end as usize].to_vec())
            .header("content-range", format!("bytes {start}-{end}/20000"))
    });
    let (result, _) = fetch(&server);
    assert!(matches!(result, Err(Error::Integrity { .. })), "{result:?}");
}

#[test]
fn a_range_broken_midway_is_resumed_where_it_stopped_without_writing_a_byte_twice() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = {
        let calls = calls.clone();
        TestServer::start(move |request| {
            let reply = Reply::ranged(request, &bytes());
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                reply.mode(BodyMode::CutAfter(30))
            } else {
                reply
            }
        })
    };
    let (result, sink) = fetch(&server);
    assert_eq!(result.unwrap(), 200);
    assert_eq!(sink, wanted());
    let asked: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(asked, ["bytes=100-199", "bytes=130-199", "bytes=5000-5099"]);
}

#[test]
fn github_ranges_follow_the_asset_redirect_once_then_go_to_the_storage_host() {
    let fixture = SourceFixture::standard();
    let github = FakeGitHub::start(GitHubData::from_source_fixture(&fixture));
    let source = github.source().build().unwrap();
    let release = source
        .release(&Version::parse("1.3.0-alpha.1").unwrap())
        .unwrap();
    let asset = &release.assets[0];
    let ranges = [
        ByteRange::new(0, 10),
        ByteRange::new(1000, 2000),
        ByteRange::new(50_000, 50_001),
    ];
    let mut sink = Vec::new();
    source.download_ranges(asset, &ranges, &mut sink).unwrap();
    let expected = &fixture.releases[3].assets[0].bytes;
    let wanted: Vec<u8> = ranges
        .iter()
        .flat_map(|r| expected[r.start as usize..r.end as usize].to_vec())
        .collect();
    assert_eq!(sink, wanted);
    let api_asset_requests = github
        .api
        .requests()
        .iter()
        .filter(|r| r.path().contains("/releases/assets/"))
        .count();
    assert_eq!(api_asset_requests, 1, "the redirect is resolved once");
    assert_eq!(github.storage.requests().len(), 3);
    assert!(
        github
            .storage
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

/// Serves a release directory; `ranges` decides whether `Range` is honoured.
fn release_host(dir: PathBuf, ranges: bool) -> TestServer {
    TestServer::start(move |request: &Request| {
        let name = request.path().trim_start_matches('/');
        match std::fs::read(dir.join(name)) {
            Ok(bytes) if ranges => Reply::ranged(request, &bytes),
            Ok(bytes) => Reply::bytes(200, bytes),
            Err(_) => Reply::new(404),
        }
    })
}

fn step_note(fx: &Fixture, name: &str) -> String {
    let record = fx.history.updates(Page::first(1)).unwrap().remove(0);
    record
        .steps
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

fn update_over_http(ranges: bool) -> (Fixture, String) {
    let fx = Fixture::with_layout_in(Layout::Preserved, &fast_temp_dir());
    let big: String = (0..3000).map(|i| format!("unchanged line {i}\n")).collect();
    let extra = [
        ("src/new-in-1.1.php", "new"),
        ("assets/big.txt", big.as_str()),
    ];
    fx.publish("1.1.1", &extra);
    let host = release_host(fx.releases.clone(), ranges);
    let source = || {
        ManifestSource::builder(host.url("/manifest.json"))
            .with_http(fast_http())
            .build()
            .unwrap()
    };
    let apply = |fx: &Fixture| {
        let updater = fx.builder().with_source(source()).build().unwrap();
        match updater
            .apply(&ApplyRequest::latest("test"), &NoProgress)
            .unwrap()
        {
            ApplyOutcome::Updated(_) => {}
            ApplyOutcome::UpToDate { .. } => panic!("expected an update"),
        }
    };
    apply(&fx);
    fx.publish("1.2.0", &extra);
    apply(&fx);
    assert_eq!(
        snapshot(&fx.app),
        fx.expected_tree_after_update("1.2.0", &extra)
    );
    let note = step_note(&fx, "download");
    (fx, note)
}

#[test]
fn a_delta_update_over_the_custom_server_fetches_only_the_changed_members() {
    let (_fx, note) = update_over_http(true);
    assert!(note.starts_with("delta:"), "{note}");
}

#[test]
fn a_custom_server_that_ignores_range_gets_a_full_update_with_the_reason_recorded() {
    let (_fx, note) = update_over_http(false);
    assert!(
        note.contains("no delta: byte ranges are not served")
            && note.contains("ignores byte ranges"),
        "{note}"
    );
}
