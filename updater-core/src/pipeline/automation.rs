//! Unattended operation: the pause switch, one-off scheduled updates,
//! probation after an update, and [`Updater::automation_round`], which
//! `updater schedule` and `updater serve` run periodically to do all of it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::automation::{AutoDecision, PauseState, Probation, ScheduleStatus, ScheduledUpdate};
use crate::durable;
use crate::error::{Error, Result};
use crate::health::HealthContext;
use crate::history::{NotificationType, Page, UpdateRecord, UpdateStatus};
use crate::progress::ProgressObserver;
use crate::version::{UpdateType, Version};

use super::Updater;
use super::report::{ApplyOutcome, ApplyRequest, RollbackRequest};
use super::transition::Transition;

/// Attempts of one scheduled update before it is given up (an updater
/// killed while applying it starts it again).
const SCHEDULED_ATTEMPTS: u32 = 3;

/// What became of a probation this round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProbationOutcome {
    /// No update is on probation.
    None,
    /// Healthy; the probation goes on.
    Healthy {
        /// The version on probation.
        version: Version,
        /// When it ends.
        until: DateTime<Utc>,
    },
    /// It ended: the update is trusted now.
    Passed {
        /// The version.
        version: Version,
    },
    /// The health check failed: the update was rolled back.
    RolledBack {
        /// The version that failed its probation.
        version: Version,
        /// The version running again.
        running: Version,
        /// Why.
        reason: String,
    },
}

/// What one automation round did. Each part's failure is reported here, not
/// returned, so a periodic loop goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutomationReport {
    /// The probation watch.
    pub probation: std::result::Result<ProbationOutcome, String>,
    /// Due one-off updates carried out: (id, outcome).
    pub scheduled: Vec<(i64, String)>,
    /// The automatic update: what the policy decided and did, if it was asked.
    pub automatic: Option<std::result::Result<String, String>>,
    /// Automatic updates are paused.
    pub paused: Option<PauseState>,
}

impl Updater {
    // -------------------------------------------------------------- pause

    /// Pauses automatic and scheduled updates (`updater pause`), with a
    /// reason shown by `status`; probation watching goes on.
    pub fn pause(&self, reason: &str, by: &str) -> Result<PauseState> {
        let state = PauseState {
            reason: reason.to_string(),
            by: by.to_string(),
            since: self.clock.now(),
        };
        durable::create_dir_all(&self.config.state_dir)?;
        let bytes = serde_json::to_vec_pretty(&state)
            .map_err(|e| Error::other("serialise pause state", e))?;
        durable::write_atomic(&self.config.pause_path(), &bytes)?;
        Ok(state)
    }

    /// Resumes automatic updates; returns the pause that ended, if any.
    pub fn resume(&self) -> Result<Option<PauseState>> {
        let previous = self.pause_state()?;
        durable::remove_all(&self.config.pause_path())?;
        Ok(previous)
    }

    /// The pause in force, if any.
    pub fn pause_state(&self) -> Result<Option<PauseState>> {
        let path = self.config.pause_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::invalid(format!("pause state {}", path.display()), e.to_string())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    // -------------------------------------------------------------- schedule

    /// Schedules an update of `version` (the newest of the channel when
    /// `None`) for `at` (`updater apply --at`); carried out by the first
    /// [`automation_round`](Self::automation_round) at or after `at`.
    pub fn schedule_update(
        &self,
        at: DateTime<Utc>,
        version: Option<Version>,
        by: &str,
    ) -> Result<ScheduledUpdate> {
        if at < self.clock.now() - chrono::Duration::minutes(1) {
            return Err(Error::invalid(
                format!("time {}", at.to_rfc3339()),
                "is in the past",
            ));
        }
        let mut entry = ScheduledUpdate::new(at, version, by);
        entry.created_at = self.clock.now();
        entry.id = self.schedule.add(&entry)?;
        Ok(entry)
    }

    /// The scheduled one-off updates, pending ones only unless `include_finished`.
    pub fn scheduled_updates(&self, include_finished: bool) -> Result<Vec<ScheduledUpdate>> {
        self.schedule.list(include_finished)
    }

    /// Cancels the pending scheduled update `id`.
    pub fn cancel_scheduled_update(&self, id: i64) -> Result<ScheduledUpdate> {
        self.schedule.cancel(id)
    }

    // -------------------------------------------------------------- probation

    /// The probation in force, if any.
    pub fn probation(&self) -> Result<Option<Probation>> {
        let installed = self.installed_state()?;
        Ok(installed
            .probation
            .filter(|p| p.version == installed.current))
    }

    fn end_probation(&self, expected: &Probation) -> Result<()> {
        let _lock = self.lock("probation")?;
        let mut installed = self.installed_state()?;
        if installed.probation.as_ref() == Some(expected) {
            installed.probation = None;
            installed.updated_at = Utc::now();
            installed.save(&self.config.installed_path())?;
        }
        Ok(())
    }

    /// Watches the update on probation once: past its end it is trusted;
    /// before, its health checks are probed (until the health timeout when
    /// the first probe fails) and a failure rolls it back to the kept
    /// release — down migrations when the migrator has them, else the
    /// database snapshot taken before the update (configuring a probation is
    /// the consent to lose the writes made since).
    pub fn probation_tick(&self, observer: &dyn ProgressObserver) -> Result<ProbationOutcome> {
        let installed = self.installed_state()?;
        let Some(probation) = installed.probation.clone() else {
            return Ok(ProbationOutcome::None);
        };
        if installed.current != probation.version {
            self.end_probation(&probation)?;
            return Ok(ProbationOutcome::None);
        }
        let now = self.clock.now();
        if now >= probation.until {
            self.end_probation(&probation)?;
            self.notify(
                NotificationType::UpdateCompleted,
                &probation.version,
                format!(
                    "{} passed its probation (healthy since {}); {} is no longer needed for rollback",
                    probation.version, probation.started_at, probation.previous
                ),
                Some(serde_json::json!({ "update_id": probation.update_id, "probation": "passed" })),
            );
            return Ok(ProbationOutcome::Passed {
                version: probation.version,
            });
        }
        match self.probe_health(&probation.version) {
            Ok(()) => Ok(ProbationOutcome::Healthy {
                version: probation.version,
                until: probation.until,
            }),
            Err(error) => {
                let reason = format!("health check failed during probation: {error}");
                tracing::warn!(version = %probation.version, %reason, "rolling back");
                let report = self.rollback_checked(
                    &RollbackRequest {
                        initiated_by: "probation".into(),
                        restore_database_snapshot: true,
                    },
                    observer,
                    false,
                )?;
                if let Some(id) = probation.update_id {
                    Transition::record_undone_later(
                        self.history.as_ref(),
                        id,
                        format!(
                            "{reason}; rolled back to {} by update #{}",
                            report.to, report.update_id
                        ),
                    );
                }
                self.notify(
                    NotificationType::UpdateRolledBack,
                    &probation.version,
                    format!(
                        "{} failed its probation and was rolled back to {}: {reason}",
                        probation.version, report.to
                    ),
                    Some(serde_json::json!({ "update_id": probation.update_id, "rollback_id": report.update_id })),
                );
                Ok(ProbationOutcome::RolledBack {
                    version: probation.version,
                    running: report.to,
                    reason,
                })
            }
        }
    }

    /// Every health check, probed until it passes or the health timeout.
    fn probe_health(&self, version: &Version) -> Result<()> {
        let deadline = std::time::Instant::now() + self.config.health_timeout;
        let ctx = HealthContext {
            app_dir: self.config.app_dir.clone(),
            version: version.clone(),
            deadline,
            bypass_secret: None,
            children: Some(self.children.clone()),
        };
        crate::health::probe_until_healthy(&self.health_checks, &ctx, self.config.health_interval)?;
        Ok(())
    }

    // -------------------------------------------------------------- analytics

    /// Update analytics from history (`updater stats`): every record
    /// started at or after `since` (all of them when `None`).
    pub fn stats(&self, since: Option<DateTime<Utc>>) -> Result<crate::stats::UpdateStats> {
        let mut records = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.history.updates(Page { offset, limit: 500 })?;
            let done = page.len() < 500
                || page
                    .last()
                    .is_some_and(|r| since.is_some_and(|s| r.started_at < s));
            offset += page.len() as u64;
            records.extend(page);
            if done {
                break;
            }
        }
        Ok(crate::stats::UpdateStats::compute(&records, since))
    }

    // -------------------------------------------------------------- the round

    /// How long an update takes here, from history: the median of the last
    /// ten completed ones (10 minutes when there are none).
    pub fn expected_update_duration(&self) -> Result<chrono::Duration> {
        let mut durations: Vec<chrono::Duration> = self
            .history
            .updates(Page::first(50))?
            .into_iter()
            .filter(|u| u.status == UpdateStatus::Completed)
            .filter_map(|u| u.completed_at.map(|done| done - u.started_at))
            .take(10)
            .collect();
        durations.sort();
        Ok(durations
            .get(durations.len() / 2)
            .copied()
            .unwrap_or(chrono::Duration::minutes(10)))
    }

    /// One round of unattended work (run it every few minutes, and every
    /// `health_interval` or so while an update is on probation): the
    /// probation watch; due one-off updates; then, within the policy and its
    /// windows, the newest release of the channel. Never while paused
    /// (except the probation watch), and no automatic update while another
    /// is on probation.
    pub fn automation_round(&self, observer: &dyn ProgressObserver) -> AutomationReport {
        let probation = self.probation_tick(observer).map_err(|e| e.to_string());
        let paused = self.pause_state().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the pause state; acting as paused");
            Some(PauseState {
                reason: format!("unreadable pause state: {e}"),
                by: "updater".into(),
                since: self.clock.now(),
            })
        });
        let mut report = AutomationReport {
            probation,
            scheduled: Vec::new(),
            automatic: None,
            paused: paused.clone(),
        };
        if paused.is_some() {
            return report;
        }
        report.scheduled = self.run_due_scheduled(observer);
        if self.config.auto_update.level != crate::automation::AutoUpdateLevel::None
            || !self.config.auto_update.per_channel.is_empty()
        {
            report.automatic = Some(self.automatic_update(observer).map_err(|e| e.to_string()));
        }
        report
    }

    fn run_due_scheduled(&self, observer: &dyn ProgressObserver) -> Vec<(i64, String)> {
        let now = self.clock.now();
        let due = match self.schedule.list(false) {
            Ok(list) => list.into_iter().filter(|e| e.at <= now),
            Err(error) => return vec![(0, format!("cannot read the scheduled updates: {error}"))],
        };
        let mut outcomes = Vec::new();
        for mut entry in due {
            entry.attempts += 1;
            if entry.attempts > SCHEDULED_ATTEMPTS {
                entry.status = ScheduleStatus::Failed;
                entry.message = Some(format!("given up after {SCHEDULED_ATTEMPTS} attempts"));
                let _ = self.schedule.save(&entry);
                outcomes.push((entry.id, entry.message.clone().unwrap_or_default()));
                continue;
            }
            if let Err(error) = self.schedule.save(&entry) {
                outcomes.push((entry.id, format!("cannot record the attempt: {error}")));
                continue;
            }
            let request = ApplyRequest {
                version: entry.version.clone(),
                backup: true,
                initiated_by: format!("schedule:{}", entry.created_by),
                auto_update: true,
            };
            let (status, message, update_id) = match self.apply(&request, observer) {
                Ok(ApplyOutcome::Updated(done)) => (
                    ScheduleStatus::Done,
                    format!("updated {} -> {}", done.from, done.to),
                    Some(done.update_id),
                ),
                Ok(ApplyOutcome::UpToDate { current }) => (
                    ScheduleStatus::Done,
                    format!("nothing to install: {current} is the newest"),
                    None,
                ),
                Err(error) => (
                    ScheduleStatus::Failed,
                    error.to_string(),
                    self.latest_update_id(),
                ),
            };
            entry.status = status;
            entry.message = Some(message.clone());
            entry.update_id = update_id;
            if let Err(error) = self.schedule.save(&entry) {
                tracing::error!(%error, id = entry.id, "could not record the scheduled update's outcome");
            }
            outcomes.push((entry.id, message));
        }
        outcomes
    }

    fn latest_update_id(&self) -> Option<i64> {
        self.history
            .updates(Page::first(1))
            .ok()
            .and_then(|list| list.first().map(|u| u.id))
    }

    /// Why `version` must not be installed automatically again, if it was
    /// rolled back here: its newest update was undone (a failed migration
    /// or health check, a failed probation), or a person rolled back from it
    /// since. The release misbehaved here, so only a person installs it
    /// again — never the next automatic round, which would flip between the
    /// two releases.
    fn rolled_back_from(&self, version: &Version) -> Result<Option<String>> {
        let newest = self
            .history
            .updates(Page::first(50))?
            .into_iter()
            .find(|u| {
                &u.version == version
                    || (u.previous_version.as_ref() == Some(version)
                        && u.update_type == Some(UpdateType::Downgrade)
                        && u.status == UpdateStatus::Completed)
            });
        Ok(newest.and_then(|u: UpdateRecord| {
            if &u.version == version {
                (u.status == UpdateStatus::RolledBack).then(|| {
                    format!(
                        "update #{} to it was rolled back ({})",
                        u.id,
                        u.error_message.as_deref().unwrap_or("no reason recorded")
                    )
                })
            } else {
                Some(format!(
                    "{} rolled back from it to {} (#{})",
                    u.initiated_by, u.version, u.id
                ))
            }
        }))
    }

    /// What the policy says now about the newest release, and does it.
    fn automatic_update(&self, observer: &dyn ProgressObserver) -> Result<String> {
        if let Some(probation) = self.probation()? {
            return Ok(format!(
                "waiting: {} is on probation until {}",
                probation.version, probation.until
            ));
        }
        let check = self.check(true)?;
        let (Some(latest), Some(kind)) = (check.latest, check.update_type) else {
            return Ok(format!("up to date: {} runs", check.current));
        };
        if let Some(reason) = self.rolled_back_from(&latest.version)? {
            return Ok(format!(
                "{} is available but not applied automatically again: {reason}; `updater apply --version {}` installs it",
                latest.version, latest.version
            ));
        }
        let now = self.clock.now();
        match self.config.auto_update.decide(
            &latest.version,
            kind,
            now,
            self.expected_update_duration()?,
        ) {
            AutoDecision::Apply => {
                let request = ApplyRequest {
                    version: Some(latest.version.clone()),
                    backup: true,
                    initiated_by: "auto-update".into(),
                    auto_update: true,
                };
                match self.apply(&request, observer)? {
                    ApplyOutcome::Updated(done) => Ok(format!(
                        "updated {} -> {} automatically",
                        done.from, done.to
                    )),
                    ApplyOutcome::UpToDate { current } => Ok(format!("up to date: {current} runs")),
                }
            }
            AutoDecision::NotAllowed { reason } => Ok(format!(
                "{} is available but not applied automatically: {reason}",
                latest.version
            )),
            AutoDecision::Wait { until, reason } => Ok(format!(
                "{} waits: {reason}{}",
                latest.version,
                until
                    .map(|at| format!("; next window opens {}", at.to_rfc3339()))
                    .unwrap_or_default()
            )),
        }
    }

    /// How long to sleep before the next round: shorter while an update is
    /// on probation (its health is watched every `health_interval`, at
    /// least every 5 s), else `idle`.
    pub fn next_round_in(&self, idle: Duration) -> Duration {
        match self.probation() {
            Ok(Some(_)) => self
                .config
                .health_interval
                .max(Duration::from_secs(5))
                .min(idle),
            _ => idle,
        }
    }
}
