//! `GitHubSource` against a local server answering like GitHub's REST API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::github::{
    FakeGitHub, GitHubData, TOKEN, fixture_blob, fixture_text, github_json, no_hook,
};
use support::{BodyMode, Reply, Request};
use updater_core::Error;
use updater_core::conformance::source::{SourceFixture, run};
use updater_core::release::{Asset, Release};
use updater_core::source::ReleaseSource;
use updater_core::version::{Channel, Version};
use updater_source_github::{GitHubSource, HttpSettings, RetryPolicy};

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn v(text: &str) -> Version {
    text.parse().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A source on the fake, as the pipeline would get it: listing every package.
fn fixture_source(github: &FakeGitHub) -> GitHubSource {
    github.source().build().unwrap()
}

/// The x86_64 package, chosen the one way assets are chosen: core's
/// `Release::select_asset` (with the triple written out, so that the tests
/// do not depend on the machine running them).
fn package(release: &Release) -> &Asset {
    release
        .select_asset(Some(&format!("app-{{version}}-{TARGET}.tar.gz")))
        .unwrap()
}

fn api_hook(
    f: impl Fn(&Request) -> Option<Reply> + Send + Sync + 'static,
) -> support::github::Hook {
    Arc::new(f)
}

#[test]
fn github_source_passes_the_source_conformance_suite() {
    let fixture = SourceFixture::standard();
    let github = FakeGitHub::start(GitHubData::from_source_fixture(&fixture));
    let source = github.source().with_per_page(2).build().unwrap();
    run(&source, &fixture);
    // The storage host answers 401 to any request with Authorization, so the
    // downloads above prove the token stayed behind; check it was used upstream.
    assert!(
        github
            .api
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&*format!("Bearer {TOKEN}")))
    );
    assert!(
        github
            .storage
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
    assert!(!github.storage.requests().is_empty());
}

#[test]
fn stable_latest_comes_from_the_latest_endpoint_with_notes_date_and_digest() {
    let github = FakeGitHub::start(GitHubData::from_fixture_files());
    let source = fixture_source(&github);
    let latest = source.latest(Channel::Stable).unwrap().unwrap();
    assert_eq!(latest.version, v("1.1.0"));
    assert_eq!(latest.channel, Channel::Stable);
    assert_eq!(
        latest.changelog,
        "## What's new\n\n- CSV export\n- Faster reports"
    );
    assert_eq!(
        latest.published_at.unwrap().to_rfc3339(),
        "2026-03-01T12:00:00+00:00"
    );
    let names: Vec<&str> = latest.assets.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("app-1.1.0-{TARGET}.tar.gz"),
            "app-1.1.0-aarch64-unknown-linux-gnu.tar.gz".into()
        ],
        "every package, no signature file"
    );
    let asset = package(&latest);
    assert_eq!(asset.name, format!("app-1.1.0-{TARGET}.tar.gz"));
    assert_eq!(asset.size, 3000);
    assert_eq!(
        asset.sha256.unwrap().to_hex(),
        sha256_hex(&fixture_blob(1101))
    );
    assert!(asset.signature.is_none(), "no public key configured");
    let paths: Vec<String> = github
        .api
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(
        paths,
        ["/repos/acme/app/releases/latest"],
        "the digest field needs no further request"
    );
    let request = &github.api.requests()[0];
    assert_eq!(
        request.header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
    assert!(
        request
            .header("user-agent")
            .unwrap()
            .starts_with("updater-source-github/")
    );
}

#[test]
fn beta_and_alpha_follow_link_pages_and_skip_drafts_and_non_semver_tags() {
    let github = FakeGitHub::start(GitHubData::from_fixture_files());
    let source = fixture_source(&github);
    let mut versions: Vec<String> = source
        .releases(Channel::Alpha)
        .unwrap()
        .iter()
        .map(|r| r.version.to_string())
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        ["1.0.0", "1.0.1", "1.1.0", "1.2.0-beta.1", "1.3.0-alpha.2"]
    );
    let page_two = github.api.requests_to(&format!(
        "/repositories/{}/releases",
        support::github::REPO_ID
    ));
    assert_eq!(
        page_two.len(),
        1,
        "the second page is read through the Link header"
    );
    assert_eq!(page_two[0].query("page").as_deref(), Some("2"));
    assert_eq!(
        source.latest(Channel::Beta).unwrap().unwrap().version,
        v("1.2.0-beta.1")
    );
    assert_eq!(
        source.latest(Channel::Alpha).unwrap().unwrap().version,
        v("1.3.0-alpha.2")
    );
    let stable: Vec<Version> = source
        .releases(Channel::Stable)
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert!(stable.iter().all(|v| !v.is_prerelease()), "{stable:?}");
    assert!(!stable.contains(&v("2.0.0")), "drafts are never listed");
}

#[test]
fn a_github_prerelease_with_a_plain_version_is_never_stable() {
    let mut data = GitHubData::from_fixture_files();
    let mut flagged = data.pages[0][2].clone(); // v1.1.0
    flagged["tag_name"] = "v1.5.0".into();
    flagged["prerelease"] = true.into();
    flagged["id"] = 150.into();
    data.pages[0].insert(0, flagged);
    let github = FakeGitHub::start(data);
    let source = fixture_source(&github);
    assert_eq!(
        source.latest(Channel::Stable).unwrap().unwrap().version,
        v("1.1.0")
    );
    let beta = source.latest(Channel::Beta).unwrap().unwrap();
    assert_eq!(
        (beta.version.to_string(), beta.channel),
        ("1.5.0".to_string(), Channel::Beta)
    );
}

#[test]
fn checksums_come_from_digest_then_sha256sums_then_the_sidecar() {
    let github = FakeGitHub::start(GitHubData::from_fixture_files());
    let source = fixture_source(&github);
    for (version, blob) in [("1.1.0", 1101), ("1.2.0-beta.1", 1201), ("1.0.1", 1011)] {
        let release = source.release(&v(version)).unwrap();
        assert_eq!(
            package(&release).sha256.unwrap().to_hex(),
            sha256_hex(&fixture_blob(blob)),
            "release {version}"
        );
        let mut bytes = Vec::new();
        source.download(package(&release), &mut bytes).unwrap();
        assert_eq!(bytes, fixture_blob(blob));
    }
    // The checksum files were fetched through the asset API with the binary media type.
    for id in [1202, 1012] {
        let requests = github
            .api
            .requests_to(&format!("/repos/acme/app/releases/assets/{id}"));
        assert_eq!(requests.len(), 1, "asset {id}");
        assert_eq!(
            requests[0].header("accept"),
            Some("application/octet-stream")
        );
    }
}

#[test]
fn minisig_sidecar_becomes_the_signature_only_with_a_public_key() {
    let github = FakeGitHub::start(GitHubData::from_fixture_files());
    let source = github
        .source()
        .with_minisign_public_key("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3")
        .build()
        .unwrap();
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let signature = package(&release)
        .signature
        .clone()
        .expect("the .minisig sidecar");
    assert_eq!(signature.minisig.as_bytes(), fixture_blob(1103));
    assert!(source.minisign_public_key().is_some());

    let without_key = fixture_source(&github);
    let before = github
        .api
        .requests_to("/repos/acme/app/releases/assets/1103")
        .len();
    assert!(
        package(&without_key.latest(Channel::Stable).unwrap().unwrap())
            .signature
            .is_none()
    );
    assert_eq!(
        github
            .api
            .requests_to("/repos/acme/app/releases/assets/1103")
            .len(),
        before
    );
}

#[test]
fn asset_download_follows_the_302_to_storage_without_the_token() {
    let github = FakeGitHub::start(GitHubData::from_fixture_files());
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let mut bytes = Vec::new();
    let written = source.download(package(&release), &mut bytes).unwrap();
    assert_eq!((written, bytes), (3000, fixture_blob(1101)));
    let api = github
        .api
        .requests_to("/repos/acme/app/releases/assets/1101");
    assert_eq!(
        api[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(api[0].header("accept"), Some("application/octet-stream"));
    let storage = github.storage.requests();
    assert_eq!(storage.len(), 1);
    assert!(storage[0].header("authorization").is_none());
    assert!(
        storage[0].target.contains("X-Amz-Signature"),
        "the signed storage URL is used as given"
    );
}

#[test]
fn the_storage_host_really_rejects_authorization() {
    // Guards the test above: a client that forwarded the token would fail.
    let github = FakeGitHub::start(GitHubData::from_fixture_files());
    let client_with_token = GitHubSource::builder("acme", "app")
        .with_api_base(github.storage.base())
        .with_token(updater_core::secret::Secret::new(TOKEN))
        .with_http(support::github::fast_http())
        .build()
        .unwrap();
    let asset = Asset::new("x", 3000, github.storage.url("/blob/1101"));
    let error = client_with_token
        .download(&asset, &mut Vec::new())
        .unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    assert!(!error.to_string().contains(TOKEN), "{error}");
}

#[test]
fn etag_is_sent_and_a_304_serves_the_cached_release() {
    let github = FakeGitHub::start(GitHubData::from_fixture_files());
    let source = fixture_source(&github);
    let first = source.latest(Channel::Stable).unwrap();
    let second = source.latest(Channel::Stable).unwrap();
    assert_eq!(first, second);
    let requests = github.api.requests_to("/repos/acme/app/releases/latest");
    assert!(requests[0].header("if-none-match").is_none());
    assert!(
        requests[1]
            .header("if-none-match")
            .unwrap()
            .starts_with("W/\"")
    );

    // With a cache file, a new process sends If-None-Match on its first request.
    let dir = tempfile::tempdir().unwrap();
    let settings =
        || support::github::fast_http().with_etag_cache_file(dir.path().join("etags.json"));
    let builder = || github.source();
    builder()
        .with_http(settings())
        .build()
        .unwrap()
        .latest(Channel::Stable)
        .unwrap();
    let restarted = builder().with_http(settings()).build().unwrap();
    assert_eq!(restarted.latest(Channel::Stable).unwrap(), first);
    let last = github
        .api
        .requests_to("/repos/acme/app/releases/latest")
        .pop()
        .unwrap();
    assert!(last.header("if-none-match").is_some());
    let cache = std::fs::read_to_string(dir.path().join("etags.json")).unwrap();
    assert!(!cache.contains(TOKEN));
}

#[test]
fn a_rate_limit_is_unavailable_with_its_reset_time_never_no_update() {
    let reset = chrono::Utc::now().timestamp() + 900;
    let hook = api_hook(move |request| {
        Some(
            github_json(request, 403, fixture_text("rate_limited.json"))
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", reset.to_string()),
        )
    });
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, no_hook());
    let source = fixture_source(&github);
    let expected = chrono::DateTime::from_timestamp(reset, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let outcomes = [
        source.latest(Channel::Stable).map(|_| ()),
        source.latest(Channel::Beta).map(|_| ()),
        source.releases(Channel::Alpha).map(|_| ()),
        source.release(&v("1.1.0")).map(|_| ()),
    ];
    for outcome in outcomes {
        let error = outcome.unwrap_err();
        assert!(matches!(error, Error::Unavailable { .. }), "{error}");
        assert!(error.to_string().contains(&expected), "{error}");
    }
    // Rate limits are not retried: one request per call.
    assert_eq!(github.api.requests().len(), 4);
}

#[test]
fn a_secondary_rate_limit_honours_retry_after() {
    let hook = api_hook(|request| {
        Some(github_json(request, 429, "{}".into()).header("retry-after", "120"))
    });
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, no_hook());
    let error = fixture_source(&github).latest(Channel::Stable).unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(
        error.to_string().contains("(in 1") || error.to_string().contains("(in 120 s)"),
        "{error}"
    );
}

#[test]
fn server_errors_are_retried_until_success() {
    let failures = Arc::new(AtomicUsize::new(0));
    let hook = {
        let failures = Arc::clone(&failures);
        api_hook(move |_| {
            (failures.fetch_add(1, Ordering::SeqCst) < 2).then(|| Reply::json(500, "{}"))
        })
    };
    let storage_failures = Arc::new(AtomicUsize::new(0));
    let storage_hook = {
        let failures = Arc::clone(&storage_failures);
        api_hook(move |_| (failures.fetch_add(1, Ordering::SeqCst) < 1).then(|| Reply::new(503)))
    };
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, storage_hook);
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    assert_eq!(release.version, v("1.1.0"));
    assert_eq!(
        github
            .api
            .requests_to("/repos/acme/app/releases/latest")
            .len(),
        3
    );
    let mut bytes = Vec::new();
    source.download(package(&release), &mut bytes).unwrap();
    assert_eq!(bytes, fixture_blob(1101));
    assert_eq!(github.storage.requests().len(), 2);
}

#[test]
fn persistent_server_errors_give_up_as_unavailable() {
    let hook = api_hook(|_| Some(Reply::json(502, "{\"message\":\"Server Error\"}")));
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, no_hook());
    let error = fixture_source(&github).latest(Channel::Stable).unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert_eq!(github.api.requests().len(), 4, "1 try + 3 retries");
}

/// The storage server cuts the first answer after `cut` bytes.
fn cutting_storage(cut: usize, honour_range: bool) -> support::github::Hook {
    let calls = Arc::new(AtomicUsize::new(0));
    api_hook(move |_| {
        let bytes = fixture_blob(1101);
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        if first {
            return Some(
                Reply::bytes(200, bytes)
                    .header("accept-ranges", "bytes")
                    .mode(BodyMode::CutAfter(cut)),
            );
        }
        if honour_range {
            None
        } else {
            Some(Reply::bytes(200, bytes))
        }
    })
}

#[test]
fn a_truncated_body_is_resumed_with_range_without_writing_twice() {
    let github = FakeGitHub::start_with(
        GitHubData::from_fixture_files(),
        no_hook(),
        cutting_storage(1000, true),
    );
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let mut bytes = Vec::new();
    assert_eq!(
        source.download(package(&release), &mut bytes).unwrap(),
        3000
    );
    assert_eq!(bytes, fixture_blob(1101));
    let storage = github.storage.requests();
    assert_eq!(storage.len(), 2);
    assert_eq!(storage[1].header("range"), Some("bytes=1000-"));
    // The resumed request went through the API again, with the token there only.
    assert!(storage.iter().all(|r| r.header("authorization").is_none()));
}

#[test]
fn a_truncated_body_from_a_server_without_range_support_is_an_error() {
    let github = FakeGitHub::start_with(
        GitHubData::from_fixture_files(),
        no_hook(),
        cutting_storage(1000, false),
    );
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let mut bytes = Vec::new();
    let error = source.download(package(&release), &mut bytes).unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(
        error.to_string().contains("does not support resuming"),
        "{error}"
    );
    assert_eq!(bytes, fixture_blob(1101)[..1000], "nothing written twice");
}

#[test]
fn more_bytes_than_declared_is_an_integrity_error() {
    for mode in [BodyMode::Full, BodyMode::NoLength] {
        let hook = {
            let mode = mode.clone();
            api_hook(move |_| {
                let mut bytes = fixture_blob(1101);
                bytes.extend_from_slice(&[0u8; 100]);
                Some(Reply::bytes(200, bytes).mode(mode.clone()))
            })
        };
        let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), no_hook(), hook);
        let source = fixture_source(&github);
        let release = source.latest(Channel::Stable).unwrap().unwrap();
        let mut bytes = Vec::new();
        let error = source.download(package(&release), &mut bytes).unwrap_err();
        assert!(
            matches!(error, Error::Integrity { .. }),
            "{mode:?}: {error}"
        );
        assert!(
            bytes.len() <= 3000,
            "{mode:?}: {} bytes written",
            bytes.len()
        );
    }
}

#[test]
fn a_trickling_server_hits_the_download_deadline() {
    let hook = api_hook(|_| {
        Some(
            Reply::bytes(200, fixture_blob(1101)).mode(BodyMode::Trickle {
                chunk: 16,
                delay: Duration::from_millis(40),
            }),
        )
    });
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), no_hook(), hook);
    let source = github
        .source()
        .with_http(support::github::fast_http().with_transfer_deadline(Duration::from_millis(300)))
        .build()
        .unwrap();
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let started = std::time::Instant::now();
    let error = source
        .download(package(&release), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(error.to_string().contains("deadline"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn malformed_json_and_missing_fields_are_clear_errors() {
    let hook = api_hook(|request| match request.path() {
        "/repos/acme/app/releases/latest" => {
            Some(github_json(request, 200, "{\"tag_name\": \"v1".into()))
        }
        "/repos/acme/app/releases/tags/v1.1.0" => Some(github_json(
            request,
            200,
            fixture_text("release_missing_size.json"),
        )),
        _ => None,
    });
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, no_hook());
    let source = fixture_source(&github);
    let error = source.latest(Channel::Stable).unwrap_err();
    assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
    assert!(error.to_string().contains("/releases/latest"), "{error}");
    let error = source.release(&v("1.1.0")).unwrap_err();
    assert!(error.to_string().contains("size"), "{error}");
}

#[test]
fn hostile_asset_names_are_refused() {
    let mut data = GitHubData::from_fixture_files();
    data.pages[0][2]["assets"][0]["name"] = "../../etc/cron.d/evil".into();
    let github = FakeGitHub::start(data);
    let error = github
        .source()
        .build()
        .unwrap()
        .release(&v("1.1.0"))
        .unwrap_err();
    assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
    assert!(
        error.to_string().contains("not a plain file name"),
        "{error}"
    );
}

#[test]
fn a_redirect_to_plain_http_elsewhere_is_refused() {
    let hook = api_hook(|_| {
        Some(Reply::new(302).header("location", "http://downloads.example.com/app.tar.gz"))
    });
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), no_hook(), hook);
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let error = source
        .download(package(&release), &mut Vec::new())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("refusing insecure URL http://downloads.example.com"),
        "{error}"
    );
}

#[test]
fn a_missing_repository_is_not_found_not_no_update() {
    let hook = api_hook(|request| Some(github_json(request, 404, fixture_text("not_found.json"))));
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, no_hook());
    let error = fixture_source(&github).latest(Channel::Stable).unwrap_err();
    assert_eq!(
        github.api.requests().len(),
        2,
        "latest, then the list to tell 'no release' from 'no repository'"
    );
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
}

#[test]
fn a_repository_without_releases_has_no_update() {
    let github = FakeGitHub::start(GitHubData {
        pages: vec![vec![]],
        ..GitHubData::default()
    });
    assert_eq!(
        fixture_source(&github).latest(Channel::Stable).unwrap(),
        None
    );
    assert_eq!(
        fixture_source(&github).latest(Channel::Alpha).unwrap(),
        None
    );
}

#[test]
fn bad_credentials_do_not_leak_the_token() {
    let hook = api_hook(|request| {
        Some(github_json(
            request,
            401,
            "{\"message\":\"Bad credentials\",\"documentation_url\":\"https://docs.github.com/rest\"}".into(),
        ))
    });
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, no_hook());
    let source = fixture_source(&github);
    let error = source.latest(Channel::Stable).unwrap_err();
    let text = format!("{error} {error:?} {source:?}");
    assert!(text.contains("Bad credentials"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[test]
fn the_source_lists_every_package_and_core_selects_one() {
    let github = FakeGitHub::start(GitHubData::from_fixture_files());
    let source = fixture_source(&github);
    for version in ["1.1.0", "1.2.0-beta.1"] {
        let release = source.release(&v(version)).unwrap();
        let names: Vec<&str> = release.assets.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                format!("app-{version}-{TARGET}.tar.gz"),
                format!("app-{version}-aarch64-unknown-linux-gnu.tar.gz")
            ],
            "packages only: no checksum list, sidecar or signature"
        );
        // Both carry their checksum (digest field, or the SHA256SUMS list).
        assert!(
            release.assets.iter().all(|a| a.sha256.is_some()),
            "{version}"
        );
        // The pipeline's selection: one exact match, or a clear error.
        assert_eq!(
            release
                .select_asset(Some("app-{version}-aarch64-*.tar.gz"))
                .unwrap()
                .name,
            format!("app-{version}-aarch64-unknown-linux-gnu.tar.gz")
        );
        let error = release
            .select_asset(Some("app-{version}-*.tar.gz"))
            .unwrap_err();
        assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
        let error = release
            .select_asset(Some("app-{version}-riscv64*"))
            .unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error}");
    }
    // `{target}` is this build's triple; the fixtures have x86_64 Linux packages.
    if updater_core::release::current_target() == TARGET {
        let release = source.release(&v("1.1.0")).unwrap();
        assert_eq!(
            release
                .select_asset(Some("app-{version}-{target}.tar.gz"))
                .unwrap(),
            package(&release)
        );
    }
}

#[test]
fn settings_are_honoured_for_retries() {
    let hook = api_hook(|_| Some(Reply::json(503, "{}")));
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, no_hook());
    let source = github
        .source()
        .with_http(HttpSettings::default().with_retry(RetryPolicy::none()))
        .build()
        .unwrap();
    assert!(source.latest(Channel::Stable).is_err());
    assert_eq!(github.api.requests().len(), 1);
}

#[test]
fn a_resume_that_starts_at_the_wrong_offset_is_refused() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hook = api_hook(move |_| {
        let bytes = fixture_blob(1101);
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Some(Reply::bytes(200, bytes).mode(BodyMode::CutAfter(1000)));
        }
        // Claims partial content but starts over from byte 0.
        let total = bytes.len();
        Some(
            Reply::bytes(206, bytes)
                .header("content-range", format!("bytes 0-{}/{total}", total - 1)),
        )
    });
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), no_hook(), hook);
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let mut bytes = Vec::new();
    let error = source.download(package(&release), &mut bytes).unwrap_err();
    assert!(
        error.to_string().contains("resumed at byte 0, not at 1000"),
        "{error}"
    );
    assert_eq!(bytes, fixture_blob(1101)[..1000]);
}

/// A storage host that cuts its successive answers after the given numbers
/// of bytes, honouring `Range` each time.
fn storage_cutting_each_answer(cuts: Vec<usize>) -> support::github::Hook {
    let cuts = std::sync::Mutex::new(std::collections::VecDeque::from(cuts));
    api_hook(move |request| {
        let reply = Reply::ranged(request, &fixture_blob(1101));
        Some(match cuts.lock().unwrap().pop_front() {
            Some(cut) => reply.mode(BodyMode::CutAfter(cut)),
            None => reply,
        })
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

    #[test]
    fn any_sequence_of_broken_connections_yields_each_byte_exactly_once(
        cuts in proptest::collection::vec(0usize..900, 0..4)
    ) {
        let github = FakeGitHub::start_with(
            GitHubData::from_fixture_files(),
            no_hook(),
            storage_cutting_each_answer(cuts.clone()),
        );
        let source = fixture_source(&github);
        let asset = Asset::new(format!("app-1.1.0-{TARGET}.tar.gz"), 3000, github.api.url("/repos/acme/app/releases/assets/1101"));
        let mut bytes = Vec::new();
        let written = source.download(&asset, &mut bytes).unwrap();
        proptest::prop_assert_eq!(written, 3000);
        proptest::prop_assert!(bytes == fixture_blob(1101));
        // Each resume asked for exactly the bytes not yet written.
        let mut expected_start = 0;
        for (request, cut) in github.storage.requests().iter().zip(&cuts) {
            proptest::prop_assert_eq!(request.range_start().unwrap_or(0), expected_start);
            expected_start += *cut as u64;
        }
    }
}

#[test]
fn a_storage_host_on_another_loopback_address_serves_downloads() {
    let github = FakeGitHub::start_on(
        GitHubData::from_fixture_files(),
        no_hook(),
        no_hook(),
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)),
    )
    .unwrap();
    assert!(github.storage.base().starts_with("http://127.0.0.2:"));
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let mut bytes = Vec::new();
    source.download(package(&release), &mut bytes).unwrap();
    assert_eq!(bytes, fixture_blob(1101));
    assert_eq!(github.storage.requests().len(), 1);
}

/// Everything a user or a log reader could see of `error`.
fn shown(error: &Error) -> String {
    let mut text = format!("{error}\n{error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(&format!("\n{inner}"));
        source = inner.source();
    }
    text
}

#[test]
fn a_presigned_redirect_target_that_answers_404_is_never_shown_with_its_query() {
    let storage = api_hook(|_| Some(Reply::json(404, "<Error><Code>NoSuchKey</Code></Error>")));
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), no_hook(), storage);
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let (error, logs) = support::capture_logs(|| {
        source
            .download(package(&release), &mut Vec::new())
            .unwrap_err()
    });
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    let text = shown(&error);
    assert!(text.contains("/blob/1101"), "names the URL: {text}");
    assert!(
        !text.contains("X-Amz") && !text.contains("abc123"),
        "{text}"
    );
    assert!(logs.contains("following redirect"), "{logs}");
    assert!(
        !logs.contains("X-Amz") && !logs.contains("abc123"),
        "{logs}"
    );
}

#[test]
fn a_checksum_mismatch_behind_a_presigned_redirect_never_shows_its_query() {
    let mut data = GitHubData::from_fixture_files();
    data.pages[0][2]["assets"][0]["digest"] = format!("sha256:{}", "0".repeat(64)).into();
    let github = FakeGitHub::start(data);
    let source = fixture_source(&github);
    let release = source.latest(Channel::Stable).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (error, logs) = support::capture_logs(|| {
        updater_core::package::download_verified(
            &source,
            &release,
            package(&release),
            &dir.path().join("app.tar.gz"),
            &updater_core::package::VerificationPolicy::default(),
            &mut |_| {},
        )
        .unwrap_err()
    });
    assert!(matches!(error, Error::Integrity { .. }), "{error}");
    assert!(error.to_string().contains("SHA-256 mismatch"), "{error}");
    let text = shown(&error);
    assert!(
        !text.contains("X-Amz") && !text.contains("abc123"),
        "{text}"
    );
    assert!(
        !logs.contains("X-Amz") && !logs.contains("abc123"),
        "{logs}"
    );
    // The storage host was really asked for the pre-signed URL.
    assert!(
        github.storage.requests()[0]
            .target
            .contains("X-Amz-Signature=abc123")
    );
}

#[test]
fn a_release_that_fails_to_parse_is_not_cached_with_its_etag() {
    const ETAG: &str = "\"v1-etag\"";
    let calls = Arc::new(AtomicUsize::new(0));
    let hook = {
        let calls = Arc::clone(&calls);
        api_hook(move |request| {
            if request.path() != "/repos/acme/app/releases/latest" {
                return None;
            }
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Some(Reply::json(200, "{\"tag_name\": \"v1").header("etag", ETAG));
            }
            // Had the broken copy been cached, its ETag would be answered with 304.
            (request.header("if-none-match") == Some(ETAG))
                .then(|| Reply::new(304).header("etag", ETAG))
        })
    };
    let github = FakeGitHub::start_with(GitHubData::from_fixture_files(), hook, no_hook());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("etags.json");
    let source = || {
        github
            .source()
            .with_http(support::github::fast_http().with_etag_cache_file(&cache))
            .build()
            .unwrap()
    };
    let first = source();
    let error = first.latest(Channel::Stable).unwrap_err();
    assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
    assert!(
        !std::fs::read_to_string(&cache)
            .unwrap_or_default()
            .contains("v1-etag")
    );
    assert_eq!(
        first.latest(Channel::Stable).unwrap().unwrap().version,
        v("1.1.0")
    );
    let latest = github.api.requests_to("/repos/acme/app/releases/latest");
    assert!(
        latest[1].header("if-none-match").is_none(),
        "{:?}",
        latest[1]
    );
    // A restarted process reading the cache file is fine too, and now revalidates.
    assert_eq!(
        source().latest(Channel::Stable).unwrap().unwrap().version,
        v("1.1.0")
    );
    let latest = github.api.requests_to("/repos/acme/app/releases/latest");
    assert!(
        latest[2].header("if-none-match").is_some(),
        "{:?}",
        latest[2]
    );
}
