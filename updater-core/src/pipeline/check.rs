//! Read-only questions: is there an update, what is installed, what is going on.
//! Nothing here writes to the application or its state directory (`check`
//! records the check in history: that is its purpose).

use chrono::Utc;

use crate::error::Result;
use crate::history::{CheckStatus, NotificationType, VersionCheckRecord};
use crate::install::InstalledState;
use crate::lock::UpdateLock;
use crate::release::Release;
use crate::version::{UpdateType, Version};

use super::Updater;
use super::journal::Journal;
use super::status::{CheckReport, StatusReport, TransitionStatus};

impl Updater {
    /// The one rule `check` and `apply` share: may `release` replace
    /// `current`? (Newer, or — when the policy allows — a reinstall or a
    /// downgrade, never below the highest version ever installed.)
    pub(crate) fn installable(
        &self,
        installed: &InstalledState,
        release: &Release,
    ) -> Option<UpdateType> {
        self.config
            .policy
            .check(
                &installed.current,
                &release.version,
                Some(&installed.highest),
            )
            .ok()
    }

    /// The newest release of the channel, with its signed metadata checked
    /// when keys are configured: a frozen or replaying mirror (expired
    /// metadata) is an error, never a quiet "no update".
    pub(crate) fn newest_release(&self) -> Result<Option<Release>> {
        let latest = self.source.latest(self.config.channel)?;
        if let Some(release) = &latest
            && !self.config.verification.public_keys.is_empty()
        {
            let asset = release.select_asset(self.config.asset_pattern.as_deref())?;
            crate::package::signature::verify_asset_signature(
                &self.config.verification.public_keys,
                release,
                asset,
                Utc::now(),
            )?;
        }
        Ok(latest)
    }

    /// Asks the source for the newest release of the channel and records the
    /// check. A successful check younger than the cache window is answered
    /// from history (`from_cache`) unless `force`. Announces a new version to
    /// admins (once per version).
    pub fn check(&self, force: bool) -> Result<CheckReport> {
        let installed = self.installed_state()?;
        let current = installed.current.clone();
        if !force
            && let Some(last) = self.history.latest_check()?
            && last.check_status == CheckStatus::Success
            && last.current_version == current
            && Utc::now() - last.checked_at
                < chrono::Duration::from_std(self.config.check_cache)
                    .unwrap_or(chrono::Duration::zero())
        {
            let latest: Option<Release> = last
                .release_info
                .as_ref()
                .and_then(|info| serde_json::from_value(info.clone()).ok());
            let update_type = latest
                .as_ref()
                .and_then(|release| self.installable(&installed, release));
            return Ok(CheckReport {
                current,
                update_available: update_type.is_some(),
                update_type,
                latest,
                from_cache: true,
            });
        }
        match self.newest_release() {
            Ok(latest) => {
                let update_type = latest
                    .as_ref()
                    .and_then(|release| self.installable(&installed, release));
                let record = VersionCheckRecord {
                    id: 0,
                    current_version: current.clone(),
                    latest_version: latest.as_ref().map(|r| r.version.clone()),
                    update_available: update_type.is_some(),
                    check_status: CheckStatus::Success,
                    error_message: None,
                    release_info: latest.as_ref().and_then(|r| serde_json::to_value(r).ok()),
                    checked_at: Utc::now(),
                };
                self.history.record_check(&record)?;
                if let (Some(release), Some(kind)) = (&latest, update_type) {
                    self.notify(
                        NotificationType::UpdateAvailable,
                        &release.version,
                        format!(
                            "version {} is available ({kind} update from {current})",
                            release.version
                        ),
                        None,
                    );
                }
                Ok(CheckReport {
                    current,
                    update_available: update_type.is_some(),
                    update_type,
                    latest,
                    from_cache: false,
                })
            }
            Err(error) => {
                let record = VersionCheckRecord {
                    id: 0,
                    current_version: current,
                    latest_version: None,
                    update_available: false,
                    check_status: CheckStatus::Failed,
                    error_message: Some(error.to_string()),
                    release_info: None,
                    checked_at: Utc::now(),
                };
                if let Err(e) = self.history.record_check(&record) {
                    tracing::error!(error = %e, "could not record the failed check");
                }
                Err(error)
            }
        }
    }

    /// What is installed, what is running, who holds the lock. Writes nothing.
    pub fn status(&self) -> Result<StatusReport> {
        let installed = self.installed_state()?;
        let transition = Journal::load(&self.config.journal_path())?.map(|j| TransitionStatus {
            kind: j.kind,
            phase: j.phase,
            from: j.from,
            to: j.to,
            update_id: j.update_id,
            failure: j.failure.map(|f| (f.step, f.message)),
            recovery_attempts: j.recovery_attempts,
            last_recovery_error: j.last_recovery_error,
        });
        let maintenance = match &self.maintenance {
            Some(switch) => switch.status()?,
            None => None,
        };
        let probation = installed
            .probation
            .clone()
            .filter(|p| p.version == installed.current);
        Ok(StatusReport {
            paused: self.pause_state()?,
            probation,
            scheduled: self.schedule.list(false)?,
            auto_update: self.config.auto_update.level,
            files_known: installed.files.is_some(),
            current: installed.current,
            highest: installed.highest,
            kept: installed.kept.into_iter().map(|k| k.version).collect(),
            transition,
            lock_holder: UpdateLock::holder(&self.config.lock_path())?,
            maintenance,
            latest_check: self.history.latest_check()?,
        })
    }

    /// The highest version ever installed here.
    pub fn highest_version(&self) -> Result<Version> {
        Ok(self.installed_state()?.highest)
    }
}
