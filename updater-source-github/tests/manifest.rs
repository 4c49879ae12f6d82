//! `ManifestSource` against a local static file server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::github::{TOKEN, fast_http, github_json};
use support::{Reply, Request, TestServer};
use updater_core::Error;
use updater_core::conformance::source::{SourceFixture, run};
use updater_core::manifest::ReleaseManifest;
use updater_core::secret::Secret;
use updater_core::source::ReleaseSource;
use updater_core::version::{Channel, Version};
use updater_source_github::ManifestSource;

/// Serves the files of `dir` like a static host (ETag on JSON, Range on files).
fn static_host(dir: PathBuf) -> TestServer {
    TestServer::start(move |request| serve_file(&dir, request))
}

/// [`static_host`] bound on `ip`.
fn static_host_on(ip: IpAddr, dir: PathBuf) -> std::io::Result<TestServer> {
    TestServer::start_on(ip, move |request| serve_file(&dir, request))
}

fn serve_file(dir: &Path, request: &Request) -> Reply {
    let name = request.path().trim_start_matches('/');
    if name.contains("..") {
        return Reply::new(404);
    }
    match std::fs::read(dir.join(name)) {
        Ok(bytes) if name.ends_with(".json") => {
            github_json(request, 200, String::from_utf8(bytes).unwrap())
        }
        Ok(bytes) => Reply::ranged(request, &bytes),
        Err(_) => Reply::new(404),
    }
}

fn release_dir(fixture: &SourceFixture) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fixture.write_release_directory(dir.path()).unwrap();
    dir
}

#[test]
fn manifest_source_passes_the_source_conformance_suite() {
    let fixture = SourceFixture::standard();
    let dir = release_dir(&fixture);
    let host = static_host(dir.path().to_path_buf());
    let source = ManifestSource::builder(host.url("/manifest.json"))
        .with_http(fast_http())
        .build()
        .unwrap();
    run(&source, &fixture);
}

#[test]
fn the_example_manifest_is_valid() {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/manifest.json"
    ))
    .unwrap();
    let releases = ReleaseManifest::from_json(&text, "examples/manifest.json")
        .unwrap()
        .into_releases();
    let versions: Vec<String> = releases.iter().map(|r| r.version.to_string()).collect();
    assert_eq!(versions, ["1.3.0-beta.1", "1.2.0", "1.1.0"]);
    assert!(releases[1].assets[0].signature.is_some());
}

#[test]
fn relative_urls_resolve_against_the_manifest_and_the_token_stays_on_its_origin() {
    let fixture = SourceFixture::standard();
    let dir = release_dir(&fixture);
    // Move one asset to a second host and point the manifest at it.
    let mirror_dir = tempfile::tempdir().unwrap();
    let moved = "app-1.1.0.tar.gz";
    std::fs::rename(dir.path().join(moved), mirror_dir.path().join(moved)).unwrap();
    let mirror = TestServer::start({
        let dir = mirror_dir.path().to_path_buf();
        move |request| {
            if request.header("authorization").is_some() {
                return Reply::new(401);
            }
            serve_file(&dir, request)
        }
    });
    let manifest_path = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap().replace(
        &format!("\"url\": \"{moved}\""),
        &format!("\"url\": \"{}\"", mirror.url(&format!("/{moved}"))),
    );
    std::fs::write(&manifest_path, text).unwrap();
    let origin = static_host(dir.path().to_path_buf());
    let source = ManifestSource::builder(origin.url("/manifest.json"))
        .with_token(Secret::new(TOKEN))
        .with_http(fast_http())
        .build()
        .unwrap();
    let stable = source.latest(Channel::Stable).unwrap().unwrap();
    assert_eq!(stable.assets[0].location, mirror.url(&format!("/{moved}")));
    let beta = source.latest(Channel::Beta).unwrap().unwrap();
    assert_eq!(
        beta.assets[0].location,
        origin.url("/app-1.2.0-beta.1.tar.gz")
    );
    for release in [&stable, &beta] {
        let mut bytes = Vec::new();
        source.download(&release.assets[0], &mut bytes).unwrap();
        assert_eq!(
            bytes,
            fixture.release(&release.version).unwrap().assets[0].bytes
        );
    }
    assert!(
        origin
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&*format!("Bearer {TOKEN}")))
    );
    assert!(
        mirror
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[test]
fn malformed_manifests_are_clear_errors_naming_the_url() {
    let missing_size = format!(
        "{{\"schema_version\": 1, \"releases\": [{{\"version\": \"1.0.0\", \"assets\": [{{\"name\": \"a\", \"url\": \"a\", \"sha256\": \"{}\"}}]}}]}}",
        "0".repeat(64)
    );
    let cases = [
        (
            "{\"schema_version\": 1, \"releases\": [".to_string(),
            "not a JSON object",
        ),
        (
            "{\"schema_version\": 2, \"releases\": []}".to_string(),
            "schema_version 2 is not supported",
        ),
        (missing_size, "missing field `size`"),
    ];
    for (body, expected) in cases {
        let host = TestServer::start(move |request| github_json(request, 200, body.clone()));
        let url = host.url("/manifest.json");
        let source = ManifestSource::builder(&url)
            .with_http(fast_http())
            .build()
            .unwrap();
        let error = source.latest(Channel::Stable).unwrap_err();
        assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains(&url) && text.contains(expected), "{text}");
    }
}

#[test]
fn a_manifest_served_again_unchanged_comes_from_the_etag_cache() {
    let fixture = SourceFixture::standard();
    let dir = release_dir(&fixture);
    let host = static_host(dir.path().to_path_buf());
    let source = ManifestSource::builder(host.url("/manifest.json"))
        .with_http(fast_http())
        .build()
        .unwrap();
    let first = source.releases(Channel::Alpha).unwrap();
    assert_eq!(source.releases(Channel::Alpha).unwrap(), first);
    let requests = host.requests_to("/manifest.json");
    assert_eq!(requests.len(), 2);
    assert!(requests[1].header("if-none-match").is_some());
}

#[test]
fn a_rate_limited_update_server_is_unavailable() {
    let host = TestServer::start(|_| Reply::new(429).header("retry-after", "30"));
    let source = ManifestSource::builder(host.url("/manifest.json"))
        .with_http(fast_http())
        .build()
        .unwrap();
    let error = source.latest(Channel::Stable).unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(error.to_string().contains("resets at"), "{error}");
}

#[test]
fn an_unreachable_server_is_unavailable_not_no_update() {
    let url = {
        let host = TestServer::start(|_| Reply::new(200));
        host.url("/manifest.json")
    }; // dropped: the port is closed now
    let source = ManifestSource::builder(url)
        .with_http(fast_http())
        .build()
        .unwrap();
    let error = source.releases(Channel::Stable).unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
}

#[test]
fn asset_urls_to_insecure_hosts_are_refused() {
    let body = Arc::new(format!(
        "{{\"schema_version\":1,\"releases\":[{{\"version\":\"1.0.0\",\"assets\":[{{\"name\":\"a.tar.gz\",\"url\":\"http://updates.example.com/a.tar.gz\",\"size\":1,\"sha256\":\"{}\"}}]}}]}}",
        "0".repeat(64)
    ));
    let host = TestServer::start(move |request| github_json(request, 200, body.to_string()));
    let source = ManifestSource::builder(host.url("/manifest.json"))
        .with_http(fast_http())
        .build()
        .unwrap();
    let release = source.release(&Version::new(1, 0, 0)).unwrap();
    let error = source
        .download(&release.assets[0], &mut Vec::new())
        .unwrap_err();
    assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
    assert!(
        error.to_string().contains("refusing insecure URL"),
        "{error}"
    );
}

#[test]
fn plain_http_is_allowed_on_the_whole_loopback_range() {
    let fixture = SourceFixture::standard();
    let dir = release_dir(&fixture);
    let host = static_host_on(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        dir.path().to_path_buf(),
    )
    .unwrap();
    assert!(host.base().starts_with("http://127.0.0.2:"));
    let source = ManifestSource::builder(host.url("/manifest.json"))
        .with_http(fast_http())
        .build()
        .unwrap();
    run(&source, &fixture);

    match static_host_on(IpAddr::V6(Ipv6Addr::LOCALHOST), dir.path().to_path_buf()) {
        Ok(host) => {
            assert!(host.base().starts_with("http://[::1]:"));
            let source = ManifestSource::builder(host.url("/manifest.json"))
                .with_http(fast_http())
                .build()
                .unwrap();
            run(&source, &fixture);
        }
        Err(e) => updater_testkit::services::skip(&format!(
            "the [::1] half: cannot bind an IPv6 loopback socket here: {e}"
        )),
    }
}

#[test]
fn presigned_asset_urls_never_appear_in_errors_or_logs() {
    const QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Signature=f00dcafe";
    let body = Arc::new(format!(
        "{{\"schema_version\":1,\"releases\":[{{\"version\":\"1.0.0\",\"assets\":[\
         {{\"name\":\"gone.tar.gz\",\"url\":\"gone.tar.gz?{QUERY}#part\",\"size\":4,\"sha256\":\"{zero}\"}},\
         {{\"name\":\"long.tar.gz\",\"url\":\"long.tar.gz?{QUERY}\",\"size\":4,\"sha256\":\"{zero}\"}}]}}]}}",
        zero = "0".repeat(64)
    ));
    let host = TestServer::start(move |request| match request.path() {
        "/manifest.json" => github_json(request, 200, body.to_string()),
        "/long.tar.gz" => Reply::bytes(200, b"too long".to_vec()),
        _ => Reply::new(404),
    });
    let source = ManifestSource::builder(host.url("/manifest.json"))
        .with_http(fast_http())
        .build()
        .unwrap();
    let release = source.release(&Version::new(1, 0, 0)).unwrap();
    assert!(
        release.assets[0].location.contains("X-Amz-Signature"),
        "kept for the download"
    );
    let (errors, logs) = support::capture_logs(|| {
        release
            .assets
            .iter()
            .map(|asset| source.download(asset, &mut Vec::new()).unwrap_err())
            .collect::<Vec<_>>()
    });
    assert!(matches!(errors[0], Error::NotFound { .. }), "{}", errors[0]);
    assert!(
        matches!(errors[1], Error::Integrity { .. }),
        "{}",
        errors[1]
    );
    for error in &errors {
        let text = format!("{error}\n{error:?}");
        assert!(text.contains(&host.base()), "names the URL: {text}");
        assert!(
            !text.contains("X-Amz") && !text.contains("f00dcafe") && !text.contains("#part"),
            "{text}"
        );
    }
    assert!(
        !logs.contains("X-Amz") && !logs.contains("f00dcafe"),
        "{logs}"
    );
    assert!(
        host.requests_to("/gone.tar.gz")[0]
            .target
            .contains("X-Amz-Signature"),
        "the query string is sent, only never shown"
    );
}

/// A host serving `broken` first, then `good`; both with the same ETag,
/// answered with 304 whenever a client sends it.
fn flipping_manifest_host(broken: String, good: String) -> TestServer {
    const ETAG: &str = "\"manifest-etag\"";
    let calls = AtomicUsize::new(0);
    TestServer::start(move |request| {
        if request.header("if-none-match") == Some(ETAG) {
            return Reply::new(304).header("etag", ETAG);
        }
        let body = if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            &broken
        } else {
            &good
        };
        Reply::json(200, body.clone()).header("etag", ETAG)
    })
}

fn good_manifest(fixture: &SourceFixture) -> String {
    std::fs::read_to_string(release_dir(fixture).path().join("manifest.json")).unwrap()
}

#[test]
fn a_manifest_that_fails_to_parse_is_not_cached_with_its_etag() {
    let fixture = SourceFixture::standard();
    for broken in [
        "{\"schema_version\": 1, \"releases\": [".to_string(),
        "{\"schema_version\": 2, \"releases\": []}".to_string(),
    ] {
        let host = flipping_manifest_host(broken.clone(), good_manifest(&fixture));
        let source = ManifestSource::builder(host.url("/manifest.json"))
            .with_http(fast_http())
            .build()
            .unwrap();
        let error = source.latest(Channel::Stable).unwrap_err();
        assert!(
            matches!(error, Error::InvalidInput { .. }),
            "{broken}: {error}"
        );
        assert!(
            source.latest(Channel::Stable).unwrap().is_some(),
            "{broken}"
        );
        let requests = host.requests_to("/manifest.json");
        assert!(requests[1].header("if-none-match").is_none(), "{broken}");
    }
}

#[test]
fn a_cached_manifest_that_no_longer_parses_is_dropped_and_fetched_again() {
    let fixture = SourceFixture::standard();
    let host = flipping_manifest_host(good_manifest(&fixture), good_manifest(&fixture));
    let url = host.url("/manifest.json");
    // A cache file written by an earlier run that cached a broken copy.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("etags.json");
    let entry = serde_json::json!({ url.clone(): { "etag": "\"manifest-etag\"", "body": "{\"schema_version\": 1, " } });
    std::fs::write(&cache, entry.to_string()).unwrap();
    let source = ManifestSource::builder(&url)
        .with_http(fast_http().with_etag_cache_file(&cache))
        .build()
        .unwrap();
    assert!(source.latest(Channel::Stable).unwrap().is_some());
    let requests = host.requests_to("/manifest.json");
    assert_eq!(
        requests.len(),
        2,
        "a 304 for the broken copy, then a full GET"
    );
    assert!(requests[0].header("if-none-match").is_some());
    assert!(requests[1].header("if-none-match").is_none());
    assert!(
        std::fs::read_to_string(&cache)
            .unwrap()
            .contains("releases")
    );
}
