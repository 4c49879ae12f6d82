//! The parts of GitHub's REST API responses we read ("Get the latest
//! release", "List releases", "Get a release by tag name"), and the `Link`
//! header used for pagination. Unknown fields are ignored.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A release object.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GitHubRelease {
    pub(crate) tag_name: String,
    #[serde(default)]
    pub(crate) body: Option<String>,
    #[serde(default)]
    pub(crate) draft: bool,
    #[serde(default)]
    pub(crate) prerelease: bool,
    #[serde(default)]
    pub(crate) published_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) assets: Vec<GitHubAsset>,
}

/// A release asset object.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GitHubAsset {
    /// The API URL (`.../releases/assets/ID`), which serves the bytes with
    /// `Accept: application/octet-stream` (also for private repositories).
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) size: u64,
    /// `uploaded` when complete; `open`/`starter` while an upload runs.
    #[serde(default)]
    pub(crate) state: Option<String>,
    /// `sha256:<hex>` on assets uploaded since GitHub started computing digests.
    #[serde(default)]
    pub(crate) digest: Option<String>,
}

impl GitHubAsset {
    pub(crate) fn is_uploaded(&self) -> bool {
        self.state.as_deref().is_none_or(|s| s == "uploaded")
    }
}

/// The URL of `rel="next"` in a `Link` header.
pub(crate) fn next_page(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            p.trim().eq_ignore_ascii_case("rel=\"next\"")
                || p.trim().eq_ignore_ascii_case("rel=next")
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then_some(target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_is_found_among_other_relations() {
        let link = r#"<https://api.github.com/repositories/1/releases?per_page=2&page=1>; rel="prev", <https://api.github.com/repositories/1/releases?per_page=2&page=3>; rel="next", <https://api.github.com/repositories/1/releases?per_page=2&page=5>; rel="last""#;
        assert_eq!(
            next_page(link),
            Some("https://api.github.com/repositories/1/releases?per_page=2&page=3")
        );
        assert_eq!(next_page(r#"<https://h/x?page=1>; rel="first""#), None);
        assert_eq!(next_page(""), None);
    }
}
