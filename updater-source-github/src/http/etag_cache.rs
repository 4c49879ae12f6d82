//! Per-URL cache of ETag, body and `Link` header, so repeated checks send
//! `If-None-Match` and a `304 Not Modified` (which GitHub does not count
//! against the rate limit) returns the cached document.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::SourceError;

/// One cached response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CachedResponse {
    pub(crate) etag: String,
    pub(crate) body: String,
    #[serde(default)]
    pub(crate) link: Option<String>,
}

/// In memory, optionally mirrored to a JSON file.
#[derive(Debug, Default)]
pub(crate) struct EtagCache {
    entries: Mutex<HashMap<String, CachedResponse>>,
    file: Option<PathBuf>,
}

impl EtagCache {
    /// A cache backed by `file` when given; an unreadable or corrupt file is
    /// ignored (logged), the cache starts empty.
    pub(crate) fn new(file: Option<PathBuf>) -> Self {
        let entries = file.as_deref().map(load).unwrap_or_default();
        EtagCache {
            entries: Mutex::new(entries),
            file,
        }
    }

    pub(crate) fn get(&self, url: &str) -> Option<CachedResponse> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(url)
            .cloned()
    }

    /// Stores a response; writes the file when one is configured.
    pub(crate) fn put(&self, url: &str, entry: CachedResponse) -> Result<(), SourceError> {
        self.update(|entries| {
            if entries.get(url) == Some(&entry) {
                return false;
            }
            entries.insert(url.to_string(), entry);
            true
        })
    }

    /// Drops the entry of `url`, if any; writes the file when one is configured.
    pub(crate) fn remove(&self, url: &str) -> Result<(), SourceError> {
        self.update(|entries| entries.remove(url).is_some())
    }

    /// Applies `change` (which says whether it changed anything) and writes
    /// the file when it did.
    fn update(
        &self,
        change: impl FnOnce(&mut HashMap<String, CachedResponse>) -> bool,
    ) -> Result<(), SourceError> {
        let snapshot = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !change(&mut entries) {
                return Ok(());
            }
            self.file.as_ref().map(|_| entries.clone())
        };
        if let (Some(path), Some(entries)) = (&self.file, snapshot) {
            let bytes = serde_json::to_vec(&entries).map_err(|e| SourceError::CacheFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            updater_core::durable::write_atomic(path, &bytes).map_err(|e| {
                SourceError::CacheFile {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
        }
        Ok(())
    }
}

fn load(path: &Path) -> HashMap<String, CachedResponse> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring corrupt ETag cache file");
            HashMap::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read ETag cache file");
            HashMap::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_file_survives_a_restart_and_corruption_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etags.json");
        let entry = CachedResponse {
            etag: "\"abc\"".into(),
            body: "[]".into(),
            link: None,
        };
        EtagCache::new(Some(path.clone()))
            .put("https://h/a", entry.clone())
            .unwrap();
        assert_eq!(
            EtagCache::new(Some(path.clone())).get("https://h/a"),
            Some(entry)
        );
        EtagCache::new(Some(path.clone()))
            .remove("https://h/a")
            .unwrap();
        assert_eq!(EtagCache::new(Some(path.clone())).get("https://h/a"), None);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(EtagCache::new(Some(path)).get("https://h/a"), None);
    }
}
