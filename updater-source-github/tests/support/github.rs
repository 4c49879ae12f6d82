//! A fake GitHub: an API server answering the documented release endpoints
//! (with `Link` pagination, ETags, `X-RateLimit-*` headers, asset 302s) and
//! a storage server that, like GitHub's, rejects requests carrying
//! `Authorization`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use updater_core::conformance::source::SourceFixture;
use updater_core::secret::Secret;
use updater_source_github::{GitHubSource, GitHubSourceBuilder, HttpSettings, RetryPolicy};

use super::{Reply, Request, TestServer};

pub const TOKEN: &str = "ghp_T0pS3cr3tT0k3nThatMustNeverLeak";
pub const REPO_ID: u64 = 1_296_269;

/// Release pages (each a list, newest first) and asset bytes by asset id.
#[derive(Debug, Clone, Default)]
pub struct GitHubData {
    pub pages: Vec<Vec<Value>>,
    pub blobs: HashMap<u64, Vec<u8>>,
}

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

pub fn fixture_blob(id: u64) -> Vec<u8> {
    std::fs::read(fixtures().join("assets").join(id.to_string())).unwrap()
}

impl GitHubData {
    /// `releases_page1.json` and `releases_page2.json` with the bytes in `assets/`.
    pub fn from_fixture_files() -> Self {
        let pages: Vec<Vec<Value>> = ["releases_page1.json", "releases_page2.json"]
            .iter()
            .map(|name| serde_json::from_str(&fixture_text(name)).unwrap())
            .collect();
        let mut blobs = HashMap::new();
        for release in pages.iter().flatten() {
            for asset in release["assets"].as_array().unwrap() {
                let id = asset["id"].as_u64().unwrap();
                blobs.insert(id, fixture_blob(id));
            }
        }
        GitHubData { pages, blobs }
    }

    /// The conformance fixture as GitHub would list it, two releases per
    /// page, newest first. The expected SHA-256 is published in turn as the
    /// `digest` field, a `SHA256SUMS` asset and a `.sha256` sidecar.
    pub fn from_source_fixture(fixture: &SourceFixture) -> Self {
        let mut blobs = HashMap::new();
        let mut releases = Vec::new();
        for (index, release) in fixture.releases.iter().enumerate() {
            let release_id = 100 + index as u64;
            let mut assets = Vec::new();
            let mut sums = String::new();
            for (n, asset) in release.assets.iter().enumerate() {
                let id = release_id * 100 + n as u64;
                blobs.insert(id, asset.bytes.clone());
                let digest = (index % 3 == 0).then(|| format!("sha256:{}", asset.sha256()));
                assets.push(asset_json(id, &asset.name, &asset.bytes, digest));
                sums.push_str(&format!("{}  {}\n", asset.sha256(), asset.name));
                if index % 3 == 2 {
                    let id = id + 50;
                    let text = format!("{}\n", asset.sha256()).into_bytes();
                    assets.push(asset_json(
                        id,
                        &format!("{}.sha256", asset.name),
                        &text,
                        None,
                    ));
                    blobs.insert(id, text);
                }
            }
            if index % 3 == 1 {
                let id = release_id * 100 + 99;
                assets.push(asset_json(id, "SHA256SUMS", sums.as_bytes(), None));
                blobs.insert(id, sums.into_bytes());
            }
            releases.push(json!({
                "url": format!("{{{{API}}}}/repos/acme/app/releases/{release_id}"),
                "html_url": format!("https://github.com/acme/app/releases/tag/v{}", release.version),
                "id": release_id,
                "tag_name": format!("v{}", release.version),
                "target_commitish": "main",
                "name": format!("v{}", release.version),
                "body": release.changelog,
                "draft": false,
                "prerelease": release.version.is_prerelease(),
                "created_at": release.published_at,
                "published_at": release.published_at,
                "assets": assets,
            }));
        }
        releases.reverse();
        let pages = releases.chunks(2).map(<[Value]>::to_vec).collect();
        GitHubData { pages, blobs }
    }

    fn all(&self) -> impl Iterator<Item = &Value> {
        self.pages.iter().flatten()
    }
}

fn asset_json(id: u64, name: &str, bytes: &[u8], digest: Option<String>) -> Value {
    json!({
        "url": format!("{{{{API}}}}/repos/acme/app/releases/assets/{id}"),
        "browser_download_url": format!("https://github.com/acme/app/releases/download/x/{name}"),
        "id": id,
        "name": name,
        "label": "",
        "state": "uploaded",
        "content_type": "application/octet-stream",
        "size": bytes.len(),
        "digest": digest,
        "download_count": 0,
    })
}

pub type Hook = Arc<dyn Fn(&Request) -> Option<Reply> + Send + Sync>;

pub fn no_hook() -> Hook {
    Arc::new(|_| None)
}

/// The API and the storage server.
pub struct FakeGitHub {
    pub api: TestServer,
    pub storage: TestServer,
}

impl FakeGitHub {
    pub fn start(data: GitHubData) -> Self {
        Self::start_with(data, no_hook(), no_hook())
    }

    /// `api_hook`/`storage_hook` answer first when they return `Some`.
    pub fn start_with(data: GitHubData, api_hook: Hook, storage_hook: Hook) -> Self {
        Self::start_on(
            data,
            api_hook,
            storage_hook,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
        .unwrap()
    }

    /// As [`start_with`](Self::start_with), with the storage host on
    /// `storage_ip` (the API stays on 127.0.0.1).
    pub fn start_on(
        data: GitHubData,
        api_hook: Hook,
        storage_hook: Hook,
        storage_ip: IpAddr,
    ) -> std::io::Result<Self> {
        let data = Arc::new(data);
        let storage = {
            let data = Arc::clone(&data);
            TestServer::start_on(storage_ip, move |request| {
                if let Some(reply) = storage_hook(request) {
                    return reply;
                }
                if request.header("authorization").is_some() {
                    return Reply::bytes(401, "<?xml version=\"1.0\"?><Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>")
                        .header("content-type", "application/xml");
                }
                let id = request
                    .path()
                    .strip_prefix("/blob/")
                    .and_then(|id| id.parse::<u64>().ok());
                match id.and_then(|id| data.blobs.get(&id)) {
                    Some(bytes) => Reply::ranged(request, bytes),
                    None => Reply::new(404),
                }
            })?
        };
        let storage_base = storage.base();
        let api = TestServer::start(move |request| {
            if let Some(reply) = api_hook(request) {
                return reply;
            }
            api_answer(&data, &storage_base, request)
        });
        Ok(FakeGitHub { api, storage })
    }

    /// A builder pointed at the fake, with the token and fast retries.
    pub fn source(&self) -> GitHubSourceBuilder {
        GitHubSource::builder("acme", "app")
            .with_api_base(self.api.base())
            .with_token(Secret::new(TOKEN))
            .with_http(fast_http())
    }
}

/// Retries in milliseconds, so failure tests stay fast.
pub fn fast_http() -> HttpSettings {
    HttpSettings::default()
        .with_request_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::new(
            3,
            Duration::from_millis(5),
            Duration::from_millis(20),
        ))
}

fn etag_of(body: &str) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("W/\"{:016x}\"", hasher.finish())
}

/// A JSON answer with GitHub's headers, honouring `If-None-Match`.
pub fn github_json(request: &Request, status: u16, body: String) -> Reply {
    let etag = etag_of(&body);
    let reply = if status == 200 && request.header("if-none-match") == Some(etag.as_str()) {
        Reply::new(304)
    } else {
        Reply::json(status, body)
    };
    reply
        .header("etag", etag)
        .header("x-github-api-version-selected", "2022-11-28")
        .header("x-ratelimit-limit", "60")
        .header("x-ratelimit-remaining", "59")
        .header("x-ratelimit-reset", "1893456000")
}

fn not_found(request: &Request) -> Reply {
    github_json(request, 404, fixture_text("not_found.json"))
}

fn render(value: &Value, base: &str) -> String {
    serde_json::to_string_pretty(value)
        .unwrap()
        .replace("{{API}}", base)
}

fn api_answer(data: &GitHubData, storage_base: &str, request: &Request) -> Reply {
    let base = format!("http://{}", request.header("host").unwrap_or("127.0.0.1"));
    let path = request.path();
    if path == "/repos/acme/app/releases" || path == format!("/repositories/{REPO_ID}/releases") {
        let page: usize = request
            .query("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let per_page = request.query("per_page").unwrap_or_else(|| "30".into());
        let items = data.pages.get(page - 1).cloned().unwrap_or_default();
        let mut reply = github_json(request, 200, render(&Value::Array(items), &base));
        let last = data.pages.len().max(1);
        let link = |p: usize, rel: &str| {
            format!(
                "<{base}/repositories/{REPO_ID}/releases?per_page={per_page}&page={p}>; rel=\"{rel}\""
            )
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(link(page - 1, "prev"));
        }
        if page < last {
            links.push(link(page + 1, "next"));
            links.push(link(last, "last"));
        }
        if !links.is_empty() {
            reply = reply.header("link", links.join(", "));
        }
        return reply;
    }
    if path == "/repos/acme/app/releases/latest" {
        return match data
            .all()
            .find(|r| r["draft"] == false && r["prerelease"] == false)
        {
            Some(release) => github_json(request, 200, render(release, &base)),
            None => not_found(request),
        };
    }
    if let Some(tag) = path.strip_prefix("/repos/acme/app/releases/tags/") {
        let tag = tag.replace("%2B", "+");
        return match data
            .all()
            .find(|r| r["tag_name"] == tag.as_str() && r["draft"] == false)
        {
            Some(release) => github_json(request, 200, render(release, &base)),
            None => not_found(request),
        };
    }
    if let Some(id) = path
        .strip_prefix("/repos/acme/app/releases/assets/")
        .and_then(|id| id.parse::<u64>().ok())
    {
        if !data.blobs.contains_key(&id) {
            return not_found(request);
        }
        if request.header("accept") == Some("application/octet-stream") {
            return Reply::new(302).header(
                "location",
                format!("{storage_base}/blob/{id}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc123"),
            );
        }
        let asset = data
            .all()
            .flat_map(|r| r["assets"].as_array().unwrap())
            .find(|a| a["id"] == id)
            .unwrap();
        return github_json(request, 200, render(asset, &base));
    }
    not_found(request)
}
