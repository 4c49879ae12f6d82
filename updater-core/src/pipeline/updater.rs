//! The [`Updater`] itself: what it holds, and the small pieces every
//! operation shares (the lock, notices, the installed state, cleanup).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;

use crate::backup::BackupStrategy;
use crate::durable;
use crate::error::{Error, Result};
use crate::health::HealthCheck;
use crate::history::{HistoryStore, NotificationType};
use crate::hook::Hook;
use crate::install::InstalledState;
use crate::lock::{LockAcquired, UpdateLock};
use crate::maintenance::{MaintenanceNotice, MaintenanceSwitch};
use crate::migrate::Migrator;
use crate::notify::{Notification, Notifier};
use crate::source::ReleaseSource;
use crate::tree::FileList;
use crate::version::Version;

use super::config::UpdaterConfig;
use crate::failpoint::Failpoints;

/// The updater: check, apply, rollback, restore, recover, status. Build it
/// with [`UpdaterBuilder`](super::UpdaterBuilder).
///
/// Every operation that changes the application takes the update lock
/// (one at a time, across processes) and is a journaled transition that
/// [`recover`](Self::recover) finishes or undoes after a crash.
pub struct Updater {
    pub(crate) config: UpdaterConfig,
    pub(crate) source: Arc<dyn ReleaseSource>,
    pub(crate) history: Arc<dyn HistoryStore>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) maintenance: Option<Arc<dyn MaintenanceSwitch>>,
    pub(crate) migrator: Option<Arc<dyn Migrator>>,
    pub(crate) health_checks: Vec<Arc<dyn HealthCheck>>,
    pub(crate) hooks: Vec<Arc<dyn Hook>>,
    pub(crate) files_backup: Option<Arc<dyn BackupStrategy>>,
    pub(crate) database_backup: Option<Arc<dyn BackupStrategy>>,
    pub(crate) failpoints: Failpoints,
    /// `config.discarded_paths`, compiled.
    pub(crate) discarded: Option<globset::GlobSet>,
    /// Where the children of commands are recorded (`<state>/children`).
    pub(crate) children: crate::command::ChildLedger,
    /// One-off scheduled updates.
    pub(crate) schedule: Arc<dyn crate::automation::ScheduleStore>,
    /// Now, for windows, schedules and probation.
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("config", &self.config)
            .field("source", &self.source.describe())
            .field(
                "maintenance",
                &self.maintenance.as_ref().map(|m| m.describe()),
            )
            .field("migrator", &self.migrator.as_ref().map(|m| m.describe()))
            .finish_non_exhaustive()
    }
}

/// The event a notification tells of: `update-<id>:<type>` for the events
/// of a recorded update (so a second failure of the same version is a new
/// event), `<type>:<version>` for a new version (announced once), and for
/// warnings and unrecorded failures an id made unique by the time and text.
fn event_id(
    kind: NotificationType,
    version: &Version,
    message: &str,
    metadata: Option<&serde_json::Value>,
) -> String {
    use sha2::Digest;
    let update_id = metadata
        .and_then(|m| m.get("update_id"))
        .and_then(serde_json::Value::as_i64);
    match (kind, update_id) {
        (NotificationType::UpdateAvailable, _) => Notification::default_event_id(kind, version),
        (_, Some(id)) => format!("update-{id}:{}", kind.as_str()),
        _ => {
            let digest = sha2::Sha256::digest(
                format!(
                    "{}\n{message}",
                    Utc::now().timestamp_nanos_opt().unwrap_or(0)
                )
                .as_bytes(),
            );
            format!("{}:{version}:{}", kind.as_str(), &hex::encode(digest)[..16])
        }
    }
}

/// A file-name-safe transition id: time and version.
pub(crate) fn transition_id(version: &Version) -> String {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let safe: String = version
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stamp}-{safe}")
}

impl Updater {
    /// The settings.
    pub fn config(&self) -> &UpdaterConfig {
        &self.config
    }

    /// The history store.
    pub fn history(&self) -> &Arc<dyn HistoryStore> {
        &self.history
    }

    /// The release source.
    pub fn source(&self) -> &Arc<dyn ReleaseSource> {
        &self.source
    }

    /// Every failpoint passed so far, in order (feature `failpoints`, tests).
    #[cfg(feature = "failpoints")]
    pub fn failpoints_seen(&self) -> Vec<String> {
        self.failpoints.seen()
    }

    /// The ledger of child processes (`<state>/children`): give it to
    /// commands your own parts run (database tools, maintenance commands),
    /// so recovery can stop any that outlive a dead updater.
    pub fn children(&self) -> &crate::command::ChildLedger {
        &self.children
    }

    /// The maintenance switch, when maintenance mode is used.
    pub fn maintenance(&self) -> Option<&Arc<dyn MaintenanceSwitch>> {
        self.maintenance.as_ref()
    }

    /// Takes the update lock for `owner`, creating the state directory
    /// (0700) on first use. A lock left by a dead process is taken over and
    /// reported to admins.
    pub(crate) fn lock(&self, owner: &str) -> Result<LockAcquired> {
        durable::create_dir_all(&self.config.state_dir)?;
        let acquired = UpdateLock::acquire(&self.config.lock_path(), owner)?;
        if let Some(stale) = &acquired.stale {
            let version = self
                .current_version()
                .unwrap_or_else(|_| Version::new(0, 0, 0));
            self.notify(
                NotificationType::Warning,
                &version,
                format!(
                    "took over the update lock left by {stale}, which died without releasing it"
                ),
                None,
            );
        }
        Ok(acquired)
    }

    /// Tells admins; a notifier failure never fails an operation.
    pub(crate) fn notify(
        &self,
        kind: NotificationType,
        version: &Version,
        message: String,
        metadata: Option<serde_json::Value>,
    ) {
        let event_id = event_id(kind, version, &message, metadata.as_ref());
        let notification = Notification {
            kind,
            version: version.clone(),
            message,
            metadata,
            event_id,
        };
        if let Err(e) = self.notifier.notify(&notification) {
            tracing::warn!(error = %e, "notifier failed; the operation goes on");
        }
    }

    /// The installed state. Read-only: when it does not exist yet it is
    /// derived from the version file or the configured initial version,
    /// and written only by the first transition that commits.
    pub(crate) fn installed_state(&self) -> Result<InstalledState> {
        if let Some(state) = InstalledState::load(&self.config.installed_path())? {
            return Ok(state);
        }
        let version_file = self.config.app_dir.join(&self.config.version_file);
        let version = match std::fs::read_to_string(&version_file) {
            Ok(text) => Version::parse(text.trim()).map_err(|e| {
                Error::invalid(format!("version file {}", version_file.display()), e.to_string())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.config.initial_version.clone().ok_or_else(|| {
                    Error::precondition(
                        "current version",
                        format!(
                            "neither {} nor {} exists; set the initial version in the configuration",
                            self.config.installed_path().display(),
                            version_file.display()
                        ),
                    )
                })?
            }
            Err(e) => return Err(Error::io("read", &version_file, e)),
        };
        Ok(InstalledState::new(version))
    }

    /// The running version.
    pub fn current_version(&self) -> Result<Version> {
        Ok(self.installed_state()?.current)
    }

    /// The file list of the running release, when it was recorded at install time.
    pub(crate) fn installed_files(&self, installed: &InstalledState) -> Result<Option<FileList>> {
        match &installed.files {
            Some(path) => FileList::load(path),
            None => Ok(None),
        }
    }

    /// A maintenance notice with the configured expiry and `Retry-After`.
    pub(crate) fn notice(&self, reason: String) -> Result<MaintenanceNotice> {
        let mut notice = MaintenanceNotice::new(reason, self.config.maintenance_expiry)?;
        notice.retry_after_secs = self.config.maintenance_retry_after.as_secs();
        Ok(notice)
    }

    /// Where a transition's download and staging live.
    pub(crate) fn state_subdir(&self, name: &str, id: &str) -> PathBuf {
        self.config.state_subdir(name, id)
    }

    /// Removes what a transition left behind (best effort): its download,
    /// displaced copies, `extra` paths, and any release tree or file list
    /// no longer referenced by the installed state (left by a crash between
    /// saving the state and removing them).
    pub(crate) fn clean_up(&self, id: &str, extra: &[PathBuf]) {
        let mut paths = vec![
            self.state_subdir("downloads", id),
            self.state_subdir("displaced", id),
        ];
        paths.extend(extra.iter().cloned());
        if let Ok(installed) = self.installed_state() {
            let referenced = |path: &std::path::Path| {
                installed
                    .kept
                    .iter()
                    .any(|k| k.tree == path || k.files.as_deref() == Some(path))
                    || installed.files.as_deref() == Some(path)
            };
            for dir in ["releases", "files"] {
                if let Ok(entries) = std::fs::read_dir(self.config.state_dir.join(dir)) {
                    for entry in entries.flatten() {
                        let path = entry.path();
                        let in_flight = path
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().contains(id));
                        if !referenced(&path) && !in_flight {
                            paths.push(path);
                        }
                    }
                }
            }
        }
        for path in paths {
            if let Err(e) = durable::remove_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not clean up");
            }
        }
    }
}
