//! What the console does, once for the JSON API and the HTML forms: each
//! action calls the [`Updater`](updater_core::pipeline::Updater) (never a
//! second implementation), on a blocking thread or as an operation, and
//! records itself in the audit log with its user.

use std::time::{Duration, Instant};

use serde::Serialize;
use updater_core::history::{
    AuditRecord, BackupRecord, BackupView, NotificationFilter, NotificationView, Page,
    UpdateRecord, UpdateStatus,
};
use updater_core::outbox::{ChannelHealth, NotificationOutbox};
use updater_core::pipeline::{
    ApplyRequest, RestoreRequest, RollbackPlan, RollbackRequest, StatusView,
};
use updater_core::release::Release;
use updater_core::version::Version;

use crate::auth::Identity;
use crate::error::{Result, WebError};
use crate::operations::{JobOutcome, Launch, OperationKind, OperationView};
use crate::state::WebState;

/// How long the release list (changelogs) is cached.
const RELEASES_TTL: Duration = Duration::from_secs(60);
/// Backup records listed at most.
const BACKUPS_LISTED: u64 = 500;

/// Runs blocking work (files, processes, the history database) off the async runtime.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| WebError::Internal(format!("worker: {e}")))?
}

/// `GET /api/status`: the CLI's `status --json` (with its
/// `notification_channels`) plus the running operation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusPayload {
    /// The status, as `updater status --json` prints it.
    #[serde(flatten)]
    pub status: StatusView,
    /// Each notification channel with waiting or given-up notices, as
    /// `updater status --json` prints it (an empty list: every notice was
    /// delivered); `null` when this console was given no outbox.
    pub notification_channels: Option<ChannelsHealth>,
    /// The operation running in this console now.
    pub operation: Option<OperationView>,
}

/// The channels' health, or why the outbox could not be read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ChannelsHealth {
    /// Channels with waiting or given-up notices, by name.
    Channels(Vec<ChannelHealthView>),
    /// The outbox could not be read.
    Unreadable {
        /// Why.
        error: String,
    },
}

impl ChannelsHealth {
    /// The channels whose notices fail to arrive.
    pub fn failing(&self) -> Vec<&ChannelHealthView> {
        match self {
            ChannelsHealth::Channels(list) => list.iter().filter(|c| c.failing).collect(),
            ChannelsHealth::Unreadable { .. } => Vec::new(),
        }
    }
}

/// How one notification channel is doing: one entry of
/// `notification_channels` in `updater status --json` and `/api/status`
/// (the one serializer of both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChannelHealthView {
    /// The channel's name.
    pub channel: String,
    /// A waiting notice already failed, or one was given up since the channel last delivered.
    pub failing: bool,
    /// Notices waiting.
    pub pending: u64,
    /// Of those, how many failed at least once.
    pub retrying: u64,
    /// Notices given up since the channel last delivered.
    pub gave_up: u64,
    /// The oldest waiting notice's event time.
    pub oldest_pending: Option<chrono::DateTime<chrono::Utc>>,
    /// The newest error of a waiting or given-up notice.
    pub last_error: Option<String>,
    /// When the channel last delivered.
    pub last_delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<&ChannelHealth> for ChannelHealthView {
    fn from(h: &ChannelHealth) -> Self {
        ChannelHealthView {
            channel: h.channel.clone(),
            failing: h.is_failing(),
            pending: h.pending,
            retrying: h.retrying,
            gave_up: h.gave_up,
            oldest_pending: h.oldest_pending,
            last_error: h.last_error.clone(),
            last_delivered_at: h.last_delivered_at,
        }
    }
}

impl ChannelsHealth {
    /// The health of every channel with waiting or given-up notices in `outbox`.
    pub fn of(outbox: &dyn NotificationOutbox) -> Self {
        match updater_core::outbox::channel_health(outbox) {
            Ok(list) => {
                ChannelsHealth::Channels(list.iter().map(ChannelHealthView::from).collect())
            }
            Err(error) => ChannelsHealth::Unreadable {
                error: error.to_string(),
            },
        }
    }
}

/// A page of history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    /// Updates, newest first (the CLI's `history --json` objects).
    pub updates: Vec<UpdateRecord>,
    /// Records skipped.
    pub offset: u64,
    /// Records asked for.
    pub limit: u64,
    /// The status filter, if any.
    pub status: Option<UpdateStatus>,
    /// Whether more records follow.
    pub has_more: bool,
}

/// A backup, with its verification as the backup catalogue records it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupRow {
    /// The backup, as the CLI's `--json` shows it.
    #[serde(flatten)]
    pub backup: BackupView,
    /// `verified`, `unverified` or `failed`, as the catalogue records it
    /// (the `status` of `updater backup list --json`; it survives restarts).
    /// For a strategy that keeps no catalogue: the last verification by this
    /// console, `null` when there was none since it started.
    pub status: Option<VerificationStatus>,
    /// When it was last verified successfully.
    pub verified_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether a strategy for its kind is configured (verify, restore, delete possible).
    pub manageable: bool,
}

/// Whether a backup has been verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    /// Created, not yet verified.
    Unverified,
    /// The last verification read every byte and found it intact.
    Verified,
    /// The last verification found damage.
    Failed,
}

impl VerificationStatus {
    /// `unverified`, `verified` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Unverified => "unverified",
            VerificationStatus::Verified => "verified",
            VerificationStatus::Failed => "failed",
        }
    }
}

/// The verification the backup catalogue (`updater-backup`) records for
/// `record`: its files live in `<catalogue>/<id>/`, next to `backup.json`.
/// `None` when the backup is not in such a catalogue.
fn catalogued_verification(
    record: &BackupRecord,
) -> Option<(VerificationStatus, Option<chrono::DateTime<chrono::Utc>>)> {
    let part = record
        .files_backup_path
        .as_deref()
        .or(record.database_backup_path.as_deref())?;
    let dir = std::path::Path::new(part).parent()?;
    if dir.file_name()?.to_str()? != record.backup_id {
        return None;
    }
    let catalog = updater_backup::Catalog::new(dir.parent()?);
    let stored = catalog.read_record(&record.backup_id).ok()?;
    let status = match stored.status {
        updater_backup::BackupStatus::Unverified => VerificationStatus::Unverified,
        updater_backup::BackupStatus::Verified => VerificationStatus::Verified,
        updater_backup::BackupStatus::Failed => VerificationStatus::Failed,
    };
    Some((status, stored.verified_at))
}

impl WebState {
    /// Records `entry` in the audit log (and in the logs, always).
    pub(crate) fn audit(&self, entry: AuditRecord) {
        tracing::info!(
            target: "updater_web::audit",
            user = %entry.user,
            action = %entry.action,
            target_object = entry.target.as_deref().unwrap_or(""),
            success = entry.success,
            detail = entry.detail.as_deref().unwrap_or(""),
            "audit"
        );
        let history = self.inner.history.clone();
        let record = move || {
            if let Err(error) = history.record_audit(&entry) {
                tracing::debug!(%error, "audit record not stored");
            }
        };
        // Called from async handlers and from worker threads alike.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(record);
            }
            Err(_) => record(),
        }
    }

    fn audit_result<T>(
        &self,
        who: &Identity,
        action: &str,
        target: Option<String>,
        result: &Result<T>,
    ) {
        self.audit_outcome(who, action, target, result.as_ref().err());
    }

    /// Records `action` by `who` on `target`, failed with `error` when given.
    pub(crate) fn audit_outcome(
        &self,
        who: &Identity,
        action: &str,
        target: Option<String>,
        error: Option<&WebError>,
    ) {
        let mut entry = AuditRecord::new(who.initiated_by(), action)
            .with_outcome(error.is_none(), error.map(WebError::message));
        entry.target = target;
        self.audit(entry);
    }

    /// The status and the running operation.
    pub async fn status(&self) -> Result<StatusPayload> {
        let updater = self.inner.updater.clone();
        let outbox = self.inner.outbox.clone();
        let (status, notification_channels) = blocking(move || {
            let channels = outbox.map(|o| ChannelsHealth::of(o.as_ref()));
            Ok((updater.status()?.view(), channels))
        })
        .await?;
        Ok(StatusPayload {
            status,
            notification_channels,
            operation: self.inner.operations.running().map(|op| op.view()),
        })
    }

    /// What a rollback would do now.
    pub async fn rollback_plan(&self) -> Result<Option<RollbackPlan>> {
        let updater = self.inner.updater.clone();
        blocking(move || Ok(updater.rollback_plan()?)).await
    }

    /// Refuses to start while another process (the CLI, a schedule) holds the update lock.
    async fn ensure_unlocked(&self) -> Result<()> {
        let updater = self.inner.updater.clone();
        let holder = blocking(move || Ok(updater.status()?.lock_holder)).await?;
        match holder {
            Some(holder) => Err(WebError::Busy {
                holder: holder.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Starts an operation, auditing the refusal or, at its end, the outcome.
    fn launch<J>(
        &self,
        who: &Identity,
        kind: OperationKind,
        target: Option<String>,
        job: J,
    ) -> Result<OperationView>
    where
        J: FnOnce(&crate::operations::Reporter) -> Result<JobOutcome> + Send + 'static,
    {
        let initiated_by = who.initiated_by();
        let history = self.inner.history.clone();
        let records_update = matches!(
            kind,
            OperationKind::Apply | OperationKind::Rollback | OperationKind::BackupRestore
        );
        let find_update = {
            let initiated_by = initiated_by.clone();
            move |since: chrono::DateTime<chrono::Utc>| {
                if !records_update {
                    return None;
                }
                history.updates(Page::first(20)).ok().and_then(|updates| {
                    updates
                        .into_iter()
                        .find(|u| {
                            u.initiated_by == initiated_by
                                && u.started_at >= since - chrono::Duration::seconds(1)
                        })
                        .map(|u| u.id)
                })
            }
        };
        let state = self.clone();
        let auditor = who.clone();
        let audited_target = target.clone();
        let job = move |reporter: &crate::operations::Reporter| {
            let outcome = job(reporter);
            state.audit_result(&auditor, kind.as_str(), audited_target, &outcome);
            outcome
        };
        let started = self.inner.operations.start(
            Launch {
                kind,
                initiated_by,
                target: target.clone(),
            },
            job,
            find_update,
        );
        match started {
            Ok(op) => Ok(op.view()),
            Err(error) => {
                self.audit_outcome(who, kind.as_str(), target, Some(&error));
                Err(error)
            }
        }
    }

    /// Starts a version check.
    pub async fn start_check(&self, who: &Identity, force: bool) -> Result<OperationView> {
        let updater = self.inner.updater.clone();
        self.forget_releases();
        self.launch(who, OperationKind::Check, None, move |reporter| {
            use updater_core::progress::{ProgressEvent, ProgressObserver};
            reporter.on_progress(&ProgressEvent::message(
                updater_core::Step::Check,
                10,
                "asking the release source",
            ));
            let report = updater.check(force)?;
            Ok(JobOutcome {
                result: to_json(&report.view()),
                update_id: None,
            })
        })
    }

    /// Starts an update to `version` (the newest when `None`).
    pub async fn start_apply(
        &self,
        who: &Identity,
        version: Option<&str>,
        backup: Option<bool>,
    ) -> Result<OperationView> {
        let version = parse_version(version)?;
        self.busy_check()?;
        self.ensure_unlocked().await?;
        let request = ApplyRequest {
            version: version.clone(),
            backup: backup.unwrap_or(self.inner.backup_before_update),
            initiated_by: who.initiated_by(),
            auto_update: false,
        };
        let updater = self.inner.updater.clone();
        let state = self.clone();
        self.launch(
            who,
            OperationKind::Apply,
            version.map(|v| v.to_string()),
            move |reporter| {
                let outcome = updater.apply(&request, reporter);
                state.forget_releases();
                let outcome = outcome?;
                let update_id = match &outcome {
                    updater_core::ApplyOutcome::Updated(report) => Some(report.update_id),
                    updater_core::ApplyOutcome::UpToDate { .. } => None,
                };
                Ok(JobOutcome {
                    result: to_json(&outcome),
                    update_id,
                })
            },
        )
    }

    /// Starts a rollback to the kept release.
    pub async fn start_rollback(
        &self,
        who: &Identity,
        restore_database_snapshot: bool,
    ) -> Result<OperationView> {
        self.busy_check()?;
        self.ensure_unlocked().await?;
        let request = RollbackRequest {
            initiated_by: who.initiated_by(),
            restore_database_snapshot,
        };
        let target = self.rollback_plan().await?.map(|p| p.to.to_string());
        let updater = self.inner.updater.clone();
        self.launch(who, OperationKind::Rollback, target, move |reporter| {
            let report = updater.rollback(&request, reporter)?;
            Ok(JobOutcome {
                result: to_json(&report),
                update_id: Some(report.update_id),
            })
        })
    }

    /// Starts a manual backup.
    pub async fn start_backup(
        &self,
        who: &Identity,
        description: Option<String>,
    ) -> Result<OperationView> {
        let strategy = self.inner.manual_backup.clone().ok_or_else(|| {
            WebError::Update(updater_core::Error::precondition(
                "backup",
                "no backup strategy is configured for manual backups",
            ))
        })?;
        self.busy_check()?;
        self.ensure_unlocked().await?;
        let description = description.filter(|d| !d.trim().is_empty());
        let updater = self.inner.updater.clone();
        let initiated_by = who.initiated_by();
        self.launch(who, OperationKind::BackupCreate, None, move |reporter| {
            let backup =
                updater.create_backup(strategy.as_ref(), description, &initiated_by, reporter)?;
            Ok(JobOutcome {
                result: to_json(&serde_json::json!({
                    "backup": BackupRecord::of(&backup).view()
                })),
                update_id: None,
            })
        })
    }

    /// The backup record with `id`.
    pub(crate) async fn backup_record(&self, id: &str) -> Result<BackupRecord> {
        let history = self.inner.history.clone();
        let id = id.to_string();
        blocking(move || {
            history
                .backups(Page::first(BACKUPS_LISTED))?
                .into_iter()
                .find(|b| b.backup_id == id)
                .ok_or_else(|| WebError::not_found(format!("backup {id}")))
        })
        .await
    }

    /// Starts reading a backup through to check it; a damaged one is marked unrestorable.
    pub async fn start_verify(&self, who: &Identity, id: &str) -> Result<OperationView> {
        let record = self.backup_record(id).await?;
        let strategy = self.strategy_for(record.backup_type)?;
        let history = self.inner.history.clone();
        let state = self.clone();
        self.launch(
            who,
            OperationKind::BackupVerify,
            Some(id.to_string()),
            move |_reporter| {
                let backup = record.to_backup();
                let verified = strategy.verify(&backup);
                state.remember_verification(&backup.id, verified.is_ok());
                if let Err(error) = &verified
                    && let Err(e) = history.mark_backup_unrestorable(
                        &backup.id,
                        &format!("verification failed: {error}"),
                    )
                {
                    tracing::warn!(error = %e, "could not mark the backup unrestorable");
                }
                verified?;
                Ok(JobOutcome {
                    result: serde_json::json!({ "verified": backup.id }),
                    update_id: None,
                })
            },
        )
    }

    fn remember_verification(&self, id: &str, ok: bool) {
        self.inner
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (chrono::Utc::now(), ok));
    }

    /// Starts restoring a backup.
    pub async fn start_restore(
        &self,
        who: &Identity,
        id: &str,
        include_preserved: bool,
    ) -> Result<OperationView> {
        let record = self.backup_record(id).await?;
        if !record.is_restorable {
            return Err(WebError::Update(updater_core::Error::precondition(
                "restore",
                format!("backup {id} is not restorable (deleted or damaged)"),
            )));
        }
        let strategy = self.strategy_for(record.backup_type)?;
        self.busy_check()?;
        self.ensure_unlocked().await?;
        let request = RestoreRequest {
            initiated_by: who.initiated_by(),
            include_preserved,
        };
        let updater = self.inner.updater.clone();
        self.launch(
            who,
            OperationKind::BackupRestore,
            Some(id.to_string()),
            move |reporter| {
                let backup = record.to_backup();
                let report =
                    updater.restore_backup(strategy.as_ref(), &backup, &request, reporter)?;
                let mut result = to_json(&report);
                result["restored"] = serde_json::json!(backup.id);
                result["version"] = serde_json::json!(backup.version);
                Ok(JobOutcome {
                    result,
                    update_id: Some(report.update_id),
                })
            },
        )
    }

    /// Deletes a backup (under the update lock).
    pub async fn delete_backup(&self, who: &Identity, id: &str) -> Result<serde_json::Value> {
        let result = async {
            let record = self.backup_record(id).await?;
            let strategy = self.strategy_for(record.backup_type)?;
            self.busy_check()?;
            let updater = self.inner.updater.clone();
            let initiated_by = who.initiated_by();
            blocking(move || {
                let backup = record.to_backup();
                updater.delete_backup(strategy.as_ref(), &backup, &initiated_by)?;
                Ok(serde_json::json!({ "deleted": backup.id }))
            })
            .await
        }
        .await;
        self.audit_result(who, "backup_delete", Some(id.to_string()), &result);
        result
    }

    /// Refuses while an operation of this console runs.
    fn busy_check(&self) -> Result<()> {
        match self.inner.operations.running() {
            Some(op) => Err(WebError::Busy {
                holder: crate::operations::holder_text(&op.view()),
            }),
            None => Ok(()),
        }
    }

    /// Backups, newest first, with their verification as the catalogue records it.
    pub async fn backups(&self) -> Result<Vec<BackupRow>> {
        let history = self.inner.history.clone();
        let rows = blocking(move || {
            Ok(history
                .backups(Page::first(BACKUPS_LISTED))?
                .into_iter()
                .map(|record| {
                    let catalogued = catalogued_verification(&record);
                    (record, catalogued)
                })
                .collect::<Vec<_>>())
        })
        .await?;
        let seen_here = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(rows
            .into_iter()
            .map(|(record, catalogued)| {
                let (status, verified_at) = match (catalogued, seen_here.get(&record.backup_id)) {
                    (Some((status, at)), _) => (Some(status), at),
                    (None, Some((at, true))) => (Some(VerificationStatus::Verified), Some(*at)),
                    (None, Some((_, false))) => (Some(VerificationStatus::Failed), None),
                    (None, None) => (None, None),
                };
                BackupRow {
                    status,
                    verified_at,
                    manageable: self.strategy_for(record.backup_type).is_ok(),
                    backup: record.view(),
                }
            })
            .collect())
    }

    /// History, newest first, optionally only updates with `status`.
    pub async fn history(
        &self,
        limit: u64,
        offset: u64,
        status: Option<UpdateStatus>,
    ) -> Result<HistoryPage> {
        if limit == 0 || limit > 500 {
            return Err(WebError::invalid("limit", "must be between 1 and 500"));
        }
        let history = self.inner.history.clone();
        blocking(move || {
            let Some(wanted) = status else {
                let mut updates = history.updates(Page {
                    offset,
                    limit: limit + 1,
                })?;
                let has_more = updates.len() as u64 > limit;
                updates.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                return Ok(HistoryPage {
                    updates,
                    offset,
                    limit,
                    status,
                    has_more,
                });
            };
            // Filtered: walk the history in batches.
            let mut matched = Vec::new();
            let mut skipped = 0;
            let mut at = 0;
            let mut has_more = false;
            loop {
                let batch = history.updates(Page {
                    offset: at,
                    limit: 200,
                })?;
                let len = batch.len() as u64;
                for update in batch.into_iter().filter(|u| u.status == wanted) {
                    if skipped < offset {
                        skipped += 1;
                    } else if (matched.len() as u64) < limit {
                        matched.push(update);
                    } else {
                        has_more = true;
                        break;
                    }
                }
                at += len;
                if has_more || len < 200 {
                    break;
                }
            }
            Ok(HistoryPage {
                updates: matched,
                offset,
                limit,
                status,
                has_more,
            })
        })
        .await
    }

    /// One update with its steps and error.
    pub async fn update(&self, id: i64) -> Result<UpdateRecord> {
        let history = self.inner.history.clone();
        blocking(move || {
            history
                .update(id)?
                .ok_or_else(|| WebError::not_found(format!("update {id}")))
        })
        .await
    }

    /// The notifications `who` sees (theirs and everybody's).
    pub async fn notifications(&self, who: &Identity, all: bool) -> Result<Vec<NotificationView>> {
        let history = self.inner.history.clone();
        let filter = NotificationFilter {
            unread_only: !all,
            include_dismissed: all,
            user_id: Some(who.user.name.clone()),
        };
        blocking(move || {
            Ok(history
                .notifications(&filter)?
                .iter()
                .map(|n| n.view())
                .collect())
        })
        .await
    }

    /// Marks a notification read (`dismiss`: dismisses it).
    pub async fn change_notification(
        &self,
        who: &Identity,
        id: i64,
        dismiss: bool,
    ) -> Result<serde_json::Value> {
        let history = self.inner.history.clone();
        let user = who.user.name.clone();
        let result = blocking(move || {
            let visible = history
                .notifications(&NotificationFilter {
                    unread_only: false,
                    include_dismissed: true,
                    user_id: Some(user),
                })?
                .iter()
                .any(|n| n.id == id);
            if !visible {
                return Err(WebError::not_found(format!("notification {id}")));
            }
            if dismiss {
                history.dismiss_notification(id)?;
            } else {
                history.mark_notification_read(id)?;
            }
            Ok(serde_json::json!({ "changed": [id] }))
        })
        .await;
        let action = if dismiss {
            "notification_dismiss"
        } else {
            "notification_read"
        };
        self.audit_result(who, action, Some(id.to_string()), &result);
        result
    }

    /// The update analytics of the last `days` days (`updater stats`).
    pub async fn stats(&self, days: u32) -> Result<updater_core::stats::UpdateStats> {
        let updater = self.inner.updater.clone();
        let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        blocking(move || Ok(updater.stats(Some(since))?)).await
    }

    /// The audit log, newest first.
    pub async fn audit_log(&self, limit: u64) -> Result<Vec<AuditRecord>> {
        let history = self.inner.history.clone();
        blocking(move || Ok(history.audit_log(Page::first(limit))?)).await
    }

    fn forget_releases(&self) {
        *self
            .inner
            .releases
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Every release of the channel newer than `current` up to `target`,
    /// newest first (their changelogs), from the source (cached a minute).
    pub async fn releases_between(
        &self,
        current: &Version,
        target: &Version,
    ) -> std::result::Result<Vec<Release>, String> {
        let cached = self
            .inner
            .releases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < RELEASES_TTL)
            .map(|(_, releases)| releases.clone());
        let releases = match cached {
            Some(releases) => releases,
            None => {
                let updater = self.inner.updater.clone();
                let fetched = blocking(move || {
                    Ok(updater
                        .source()
                        .releases(updater.config().channel)
                        .map_err(|e| e.to_string()))
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                *self
                    .inner
                    .releases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), fetched.clone()));
                fetched
            }
        }?;
        let mut between: Vec<Release> = releases
            .into_iter()
            .filter(|r| &r.version > current && &r.version <= target)
            .collect();
        between.sort_by(|a, b| b.version.cmp(&a.version));
        Ok(between)
    }
}

fn parse_version(version: Option<&str>) -> Result<Option<Version>> {
    version
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| Version::parse(v).map_err(|e| WebError::invalid("version", e.to_string())))
        .transpose()
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
