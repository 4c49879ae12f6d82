use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::Backup;
use crate::durable;
use crate::error::{Error, Result};
use crate::version::Version;

/// A previous release whose tree is kept for rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeptRelease {
    /// Its version.
    pub(crate) version: Version,
    /// Where its tree is (`<state>/releases/<version>-<id>`).
    pub(crate) tree: PathBuf,
    /// The update that replaced it.
    pub(crate) replaced_by_update: Option<i64>,
    /// The database snapshot taken right before it was replaced, if any.
    pub(crate) database_snapshot: Option<Backup>,
    /// When it was replaced.
    pub(crate) replaced_at: DateTime<Utc>,
    /// Its file list (what it shipped), when recorded.
    #[serde(default)]
    pub(crate) files: Option<PathBuf>,
}

/// What is installed, persisted as `<state>/installed.json` (atomic writes).
///
/// `highest` never decreases: it is how a downgrade is refused after a
/// rollback and a restart (an attacker replaying an old signed release
/// cannot make the updater go back below it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstalledState {
    /// The running release.
    pub(crate) current: Version,
    /// The highest version ever installed here.
    pub(crate) highest: Version,
    /// Kept previous releases, newest first.
    #[serde(default)]
    pub(crate) kept: Vec<KeptRelease>,
    /// The file list of the running release (what it shipped), recorded
    /// when the updater installed it; `None` for an application installed
    /// by hand.
    #[serde(default)]
    pub(crate) files: Option<PathBuf>,
    /// The running release's probation, while it lasts.
    #[serde(default)]
    pub(crate) probation: Option<crate::automation::Probation>,
    /// When this file was last written.
    pub(crate) updated_at: DateTime<Utc>,
}

impl InstalledState {
    /// A fresh state for an application at `current`.
    pub(crate) fn new(current: Version) -> Self {
        InstalledState {
            highest: current.clone(),
            current,
            kept: Vec::new(),
            files: None,
            probation: None,
            updated_at: Utc::now(),
        }
    }

    /// Reads the state file, or `None` when it does not exist.
    pub(crate) fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::invalid(format!("installed state {}", path.display()), e.to_string())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Writes the state file durably.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::other("serialise installed state", e))?;
        durable::write_atomic(path, &bytes)
    }

    /// Records that `version` is now running (raising `highest` if needed).
    pub(crate) fn install(&mut self, version: &Version) {
        self.current = version.clone();
        if *version > self.highest {
            self.highest = version.clone();
        }
        self.updated_at = Utc::now();
    }
}
