//! The server-rendered pages (maud: every value is escaped unless it is the
//! sanitised changelog HTML). No inline script or style: the one script,
//! `app.js`, only feeds the progress bar from server-sent events; without it
//! a page running an operation reloads itself every few seconds.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use updater_core::automation::{AutoUpdateLevel, ScheduleStatus};
use updater_core::history::{StepOutcome, UpdateRecord, UpdateStatus};
use updater_core::pipeline::StatusView;
use updater_core::release::Release;
use updater_core::version::Version;

use crate::actions::{ChannelsHealth, VerificationStatus};
use crate::api::numeric_id;
use crate::auth::{AuthMode, Identity};
use crate::error::WebError;
use crate::operations::{OperationStatus, OperationView};
use crate::routes::{Base, login_form_token};
use crate::state::WebState;

const STYLESHEET: &str = include_str!("../assets/app.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// Every page's frame.
struct Frame<'a> {
    state: &'a WebState,
    base: &'a Base,
    who: Option<&'a Identity>,
    title: &'a str,
    /// Reload every few seconds when JavaScript is off (an operation runs).
    refresh: bool,
}

impl<'a> Frame<'a> {
    /// The frame of a page an admin sees.
    fn admin(
        state: &'a WebState,
        base: &'a Base,
        who: &'a Identity,
        title: &'a str,
        refresh: bool,
    ) -> Self {
        Frame {
            state,
            base,
            who: Some(who),
            title,
            refresh,
        }
    }
}

fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn opt_time(at: Option<&DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_else(|| "—".to_string())
}

/// `1.5 MiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn status_badge(status: UpdateStatus) -> Markup {
    let class = match status {
        UpdateStatus::Completed => "badge ok",
        UpdateStatus::Failed | UpdateStatus::RolledBack | UpdateStatus::NeedsOperator => {
            "badge bad"
        }
        _ => "badge busy",
    };
    html! { span class=(class) { (status.as_str()) } }
}

fn page(frame: Frame<'_>, body: Markup) -> Markup {
    let base = frame.base;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " — " (frame.state.inner.title) }
                link rel="stylesheet" href=(base.at("/assets/app.css"));
                script src=(base.at("/assets/app.js")) defer {}
                @if frame.refresh {
                    noscript { meta http-equiv="refresh" content="3"; }
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(who) = frame.who {
                    header {
                        nav aria-label="Main" {
                            a href=(base.at("/")) { "Dashboard" }
                            a href=(base.at("/updates")) { "Updates" }
                            a href=(base.at("/backups")) { "Backups" }
                            a href=(base.at("/notifications")) { "Notifications" }
                            form.logout method="post" action=(base.at("/logout")) {
                                input type="hidden" name="csrf" value=(who.csrf);
                                button type="submit" id="logout" { "Log out " (who.user.name) }
                            }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// An error as a page, with its status code.
pub(crate) fn error_page(error: &WebError, base: &Base, who: Option<&Identity>) -> Response {
    let body = html! {
        h1 { "Error " (error.status().as_u16()) }
        p.error role="alert" id="error" { (error.message()) }
        p { a href=(base.at("/")) { "Back to the dashboard" } }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Error" }
                link rel="stylesheet" href=(base.at("/assets/app.css"));
            }
            body { main id="main" { (body) } }
        }
    };
    let _ = who;
    let mut response = respond(error.status(), markup);
    if let WebError::RateLimited { retry_after_secs } = error
        && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn fail(error: WebError, base: &Base, who: &Identity) -> Response {
    error_page(&error, base, Some(who))
}

/// The progress widget of an operation; fed by `app.js` while it runs.
fn progress(base: &Base, op: &OperationView) -> Markup {
    let running = op.status == OperationStatus::Running;
    let status = match op.status {
        OperationStatus::Running => "running",
        OperationStatus::Succeeded => "succeeded",
        OperationStatus::Failed => "failed",
    };
    html! {
        section.operation id="operation" aria-live="polite"
            data-events=[running.then(|| base.at(&format!("/api/operations/{}/events", op.id)))]
            data-status=(status) {
            h2 {
                a href=(base.at(&format!("/operations/{}", op.id))) {
                    (op.kind.label())
                    @if let Some(target) = &op.target { " " (target) }
                }
            }
            label for="progress" {
                "Progress: " span data-field="percent" { (op.percent) "%" }
            }
            progress id="progress" max="100" value=(op.percent) { (op.percent) "%" }
            p {
                "Status: " strong data-field="status" id="operation-status" { (status) }
                " · step " span data-field="step" { (op.step.map(|s| s.as_str()).unwrap_or("—")) }
            }
            p.message data-field="message" { (op.message) }
            @if let Some(error) = &op.error {
                p.error role="alert" id="operation-error" { (error.message) }
            }
            @if let Some(id) = op.update_id {
                p { a id="operation-update" href=(base.at(&format!("/updates/{id}"))) { "Update record #" (id) } }
            }
        }
    }
}

fn history_table(base: &Base, updates: &[UpdateRecord]) -> Markup {
    html! {
        @if updates.is_empty() {
            p { "No updates recorded yet." }
        } @else {
            div.scroll {
                table id="history" {
                    caption.visually-hidden { "Updates, newest first" }
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { "Started" }
                        th scope="col" { "From" }
                        th scope="col" { "To" }
                        th scope="col" { "Status" }
                        th scope="col" { "By" }
                        th scope="col" { "Window" }
                        th scope="col" { "Error" }
                    } }
                    tbody {
                        @for u in updates {
                            tr data-update-id=(u.id) data-status=(u.status.as_str()) {
                                td { a href=(base.at(&format!("/updates/{}", u.id))) { "#" (u.id) } }
                                td { (time(&u.started_at)) }
                                td { (u.previous_version.as_ref().map(ToString::to_string).unwrap_or_else(|| "—".into())) }
                                td { (u.version) }
                                td { (status_badge(u.status)) }
                                td { (u.initiated_by) }
                                td { (u.maintenance_window_ms.map(|ms| format!("{ms} ms")).unwrap_or_default()) }
                                td.clip { (u.error_message.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn changelogs(releases: &[Release]) -> Markup {
    html! {
        @for release in releases {
            article.changelog data-version=(release.version) {
                h3 {
                    "Version " (release.version)
                    @if let Some(at) = &release.published_at { small { " · " (at.format("%Y-%m-%d")) } }
                }
                @if release.changelog.trim().is_empty() {
                    p { "No release notes." }
                } @else {
                    div.markdown { (PreEscaped(crate::markdown::render(&release.changelog))) }
                }
            }
        }
    }
}

impl WebState {
    /// The release the last check found installable, from the check record (no network).
    async fn available_release(&self, current: &Version) -> Option<Release> {
        let history = self.inner.history.clone();
        let current = current.clone();
        crate::actions::blocking(move || {
            Ok(history.latest_check()?.and_then(|check| {
                let release: Release = check
                    .release_info
                    .and_then(|info| serde_json::from_value(info).ok())?;
                (check.update_available
                    && check.current_version == current
                    && release.version > current)
                    .then_some(release)
            }))
        })
        .await
        .ok()
        .flatten()
    }
}

/// The notification channels whose notices do not arrive (nothing when all deliver).
fn channel_alerts(channels: Option<&ChannelsHealth>) -> Markup {
    let Some(channels) = channels else {
        return html! {};
    };
    let failing = channels.failing();
    html! {
        @if let ChannelsHealth::Unreadable { error } = channels {
            section.card.alert id="notification-channels" role="alert" {
                h2 { "Notifications" }
                p.error { "The notification outbox cannot be read: " (error) }
            }
        } @else if !failing.is_empty() {
            section.card.alert id="notification-channels" role="alert" {
                h2 { "Notification channels failing" }
                ul { @for c in &failing {
                    li data-channel=(c.channel) {
                        strong { (c.channel) } ": "
                        (c.pending) " waiting"
                        @if c.retrying > 0 { " (" (c.retrying) " retrying)" }
                        ", " (c.gave_up) " given up"
                        @if let Some(at) = &c.last_delivered_at { "; last delivered " (time(at)) }
                        @else { "; never delivered" }
                        @if let Some(error) = &c.last_error { br; span.error { "Last error: " (error) } }
                    }
                } }
                p { "Administrators may miss notices until this is fixed. Check the channel's settings, then run "
                    code { "updater notifications test" } "." }
            }
        }
    }
}

/// What the automation will do on its own: the level, a pause, a
/// probation, scheduled updates.
fn automation(s: &StatusView) -> Markup {
    let pending: Vec<_> = s
        .scheduled
        .iter()
        .filter(|u| u.status == ScheduleStatus::Pending)
        .collect();
    let level = match s.auto_update {
        AutoUpdateLevel::None => "off: every update is applied by a person",
        AutoUpdateLevel::Patch => "on for patch releases",
        AutoUpdateLevel::Minor => "on for patch and minor releases",
        AutoUpdateLevel::All => "on for every newer release",
    };
    html! {
        section.card id="automation" {
            h2 { "Unattended updates" }
            p id="auto-update" data-level=(s.auto_update.as_str()) { "Automatic updates: " (level) "." }
            @if let Some(pause) = &s.paused {
                p id="paused" {
                    strong { "Paused" } " since " (time(&pause.since)) " by " (pause.by) ": " (pause.reason)
                    ". No automatic or scheduled update runs until someone resumes them ("
                    code { "updater resume" } ")."
                }
            }
            @if let Some(probation) = &s.probation {
                p id="probation" {
                    "Version " strong { (probation.version) } " is on probation until "
                    (time(&probation.until)) ": if its health check fails before then, it is rolled back to "
                    (probation.previous) " automatically."
                }
            }
            @if pending.is_empty() {
                p id="scheduled" { "No update is scheduled." }
            } @else {
                ul id="scheduled" { @for u in &pending {
                    li data-scheduled-id=(u.id) {
                        "Update to "
                        @match &u.version { Some(v) => { (v) } None => { "the newest release" } }
                        " scheduled for " (time(&u.at)) " by " (u.created_by)
                        @if u.attempts > 0 { " (" (u.attempts) " attempts so far)" }
                    }
                } }
            }
        }
    }
}

/// `GET /`: the dashboard widget.
pub(crate) async fn dashboard(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
) -> Response {
    let status = match state.status().await {
        Ok(status) => status,
        Err(error) => return fail(error, &base, &who),
    };
    let recent = state
        .history(5, 0, None)
        .await
        .map(|p| p.updates)
        .unwrap_or_default();
    let unread = state
        .notifications(&who, false)
        .await
        .map(|n| n.len())
        .unwrap_or(0);
    let s = &status.status;
    let available = state.available_release(&s.current).await;
    let body = html! {
        h1 { "Updates" }
        section.card id="version" {
            h2 { "Running version" }
            p.version id="current-version" { (s.current) }
            p {
                "Last check: "
                @match &s.latest_check {
                    Some(check) => {
                        span id="last-check" { (time(&check.checked_at)) " (" (check.status.as_str()) ")" }
                        @if let Some(error) = &check.error { span.error { " " (error) } }
                    }
                    None => { span id="last-check" { "never" } }
                }
            }
            form method="post" action=(base.at("/actions/check")) {
                input type="hidden" name="csrf" value=(who.csrf);
                input type="hidden" name="force" value="true";
                button type="submit" id="check-now" { "Check now" }
            }
            @if unread > 0 {
                p { a href=(base.at("/notifications")) id="unread" { (unread) " unread notification" @if unread > 1 { "s" } } }
            }
        }
        (channel_alerts(status.notification_channels.as_ref()))
        @if let Some(op) = &status.operation {
            (progress(&base, op))
        }
        (automation(s))
        @if let Some(release) = &available {
            section.card id="available" {
                h2 { "Version " (release.version) " is available" }
                (changelogs(std::slice::from_ref(release)))
                p { a.button id="update-now" href=(base.at(&format!("/confirm/update?version={}", release.version))) {
                    "Update now to " (release.version)
                } }
            }
        } @else if s.latest_check.is_some() {
            p id="up-to-date" { "No update is available." }
        }
        section.card {
            h2 { "Recent updates" }
            (history_table(&base, &recent))
            p { a href=(base.at("/updates")) { "Full history" } }
        }
    };
    page(
        Frame::admin(&state, &base, &who, "Dashboard", status.operation.is_some()),
        body,
    )
    .into_response()
}

/// `GET /updates` parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UpdatesQuery {
    status: Option<String>,
    offset: Option<u64>,
}

const PAGE_SIZE: u64 = 20;

/// `GET /updates`: version information, changelogs, history, rollback.
pub(crate) async fn updates(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Query(query): Query<UpdatesQuery>,
) -> Response {
    let filter = match query.status.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => match UpdateStatus::parse(text) {
            Ok(status) => Some(status),
            Err(_) => {
                return fail(
                    WebError::invalid("status", format!("{text:?} is not a status")),
                    &base,
                    &who,
                );
            }
        },
        None => None,
    };
    let offset = query.offset.unwrap_or(0);
    let status = match state.status().await {
        Ok(status) => status,
        Err(error) => return fail(error, &base, &who),
    };
    let history = match state.history(PAGE_SIZE, offset, filter).await {
        Ok(history) => history,
        Err(error) => return fail(error, &base, &who),
    };
    let s = &status.status;
    let available = state.available_release(&s.current).await;
    let between = match &available {
        Some(target) => Some(state.releases_between(&s.current, &target.version).await),
        None => None,
    };
    let plan = state.rollback_plan().await.ok().flatten();
    let audit = state.audit_log(20).await.unwrap_or_default();
    let stats = state.stats(STATS_DAYS).await;
    let filter_link = |offset: u64| {
        let mut link = format!("/updates?offset={offset}");
        if let Some(status) = filter {
            link.push_str(&format!("&status={}", status.as_str()));
        }
        base.at(&link)
    };
    let body = html! {
        h1 { "Updates" }
        section.card id="version-info" {
            h2 { "Version information" }
            dl {
                dt { "Running" } dd id="current-version" { (s.current) }
                dt { "Highest ever installed" } dd { (s.highest) }
                dt { "Channel" } dd { (state.updater().config().channel.as_str()) }
                dt { "Kept for rollback" } dd {
                    @if s.kept.is_empty() { "none" } @else {
                        (s.kept.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                    }
                }
                dt { "Update lock" } dd { (s.lock_holder.as_ref().map(ToString::to_string).unwrap_or_else(|| "free".into())) }
                dt { "Maintenance mode" } dd { (s.maintenance.as_ref().map(|m| format!("on since {} ({})", time(&m.started_at), m.reason)).unwrap_or_else(|| "off".into())) }
            }
        }
        @if let Some(op) = &status.operation { (progress(&base, op)) }
        @if let (Some(target), Some(between)) = (&available, &between) {
            section.card id="changelog" {
                h2 { "Changes from " (s.current) " to " (target.version) }
                @match between {
                    Ok(releases) if !releases.is_empty() => { (changelogs(releases)) }
                    Ok(_) => { (changelogs(std::slice::from_ref(target))) }
                    Err(error) => {
                        p.error { "The release list could not be read: " (error) }
                        (changelogs(std::slice::from_ref(target)))
                    }
                }
                p { a.button href=(base.at(&format!("/confirm/update?version={}", target.version))) { "Update now to " (target.version) } }
            }
        }
        section.card id="rollback" {
            h2 { "Rollback" }
            @match &plan {
                None => { p { "No previous release is kept: nothing to roll back to." } }
                Some(plan) => {
                    p { "Roll back from " (plan.from) " to the kept release " strong { (plan.to) } "." }
                    p id="rollback-database" { (database_text(plan)) }
                    @if let Some(blocker) = &plan.blocker {
                        p.error { (blocker) }
                    } @else {
                        p { a.button.danger id="rollback-start" href=(base.at("/confirm/rollback")) { "Roll back to " (plan.to) } }
                    }
                }
            }
        }
        section.card {
            h2 { "History" }
            form.inline method="get" action=(base.at("/updates")) {
                label for="status-filter" { "Status" }
                select id="status-filter" name="status" {
                    option value="" selected[filter.is_none()] { "all" }
                    @for st in [UpdateStatus::Completed, UpdateStatus::Failed, UpdateStatus::RolledBack, UpdateStatus::NeedsOperator, UpdateStatus::Pending, UpdateStatus::Downloading, UpdateStatus::Installing, UpdateStatus::Verifying] {
                        option value=(st.as_str()) selected[filter == Some(st)] { (st.as_str()) }
                    }
                }
                button type="submit" { "Filter" }
            }
            (history_table(&base, &history.updates))
            nav.pager aria-label="History pages" {
                @if offset > 0 { a href=(filter_link(offset.saturating_sub(PAGE_SIZE))) { "Newer" } }
                @if history.has_more { a href=(filter_link(offset + PAGE_SIZE)) { "Older" } }
            }
        }
        section.card id="stats" {
            h2 { "Statistics, last " (STATS_DAYS) " days" }
            @match &stats {
                Err(error) => { p.error { "The statistics could not be computed: " (error) } }
                Ok(st) if st.attempts == 0 => { p { "No update, rollback or restore in that time." } }
                Ok(st) => {
                    dl {
                        dt { "Attempts" } dd id="stats-attempts" {
                            (st.attempts) " (" (st.completed) " completed, " (st.rolled_back) " rolled back, "
                            (st.failed) " failed before any change, " (st.unfinished) " unfinished)"
                        }
                        dt { "Success rate" } dd id="stats-success" {
                            (st.success_rate.map(|r| format!("{:.0} %", r * 100.0)).unwrap_or_else(|| "none ended".into()))
                        }
                        dt { "Maintenance window" } dd { (summary_text(&st.maintenance_window_ms)) }
                        dt { "Duration" } dd { (summary_text(&st.duration_ms)) }
                        @if !st.rollbacks_by_step.is_empty() {
                            dt { "Rollbacks by failing step" } dd id="stats-rollbacks" { (counts_text(&st.rollbacks_by_step)) }
                        }
                        @if !st.failures_by_step.is_empty() {
                            dt { "Failures by step" } dd { (counts_text(&st.failures_by_step)) }
                        }
                    }
                }
            }
        }
        section.card id="activity" {
            h2 { "Activity" }
            @if audit.is_empty() { p { "No recorded activity." } } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "On" } th scope="col" { "Result" } } }
                    tbody { @for a in &audit { tr {
                        td { (time(&a.at)) } td { (a.user) } td { (a.action) }
                        td { (a.target.as_deref().unwrap_or("")) }
                        td { @if a.success { "ok" } @else { "refused: " (a.detail.as_deref().unwrap_or("")) } }
                    } } }
                } }
            }
        }
    };
    page(
        Frame::admin(&state, &base, &who, "Updates", status.operation.is_some()),
        body,
    )
    .into_response()
}

/// The window the updates page summarises.
const STATS_DAYS: u32 = 30;

/// `median 3 ms, p95 9 ms, max 12 ms (n = 7)`, or `none completed`.
fn summary_text(summary: &updater_core::stats::Summary) -> String {
    match (summary.median, summary.p95, summary.max) {
        (Some(median), Some(p95), Some(max)) => format!(
            "median {}, p95 {}, max {} (of {})",
            millis_text(median),
            millis_text(p95),
            millis_text(max),
            summary.count
        ),
        _ => "none completed".to_string(),
    }
}

fn millis_text(ms: u64) -> String {
    if ms < 10_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// `health_check: 2, migrate: 1`.
fn counts_text(counts: &std::collections::BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(step, n)| format!("{step}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn database_text(plan: &updater_core::pipeline::RollbackPlan) -> String {
    match plan.database {
        "revert_migrations" => "The database migrations of the newer release are reverted (down migrations); no data is restored.".to_string(),
        "restore_snapshot" => format!(
            "The database snapshot{} taken before the update will be restored: every write since is lost.",
            plan.snapshot_id.as_ref().map(|id| format!(" {id}")).unwrap_or_default()
        ),
        _ => "No database change: no migrations are configured.".to_string(),
    }
}

/// `GET /updates/{id}`: one update with every step, its timing and the error.
pub(crate) async fn update_detail(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    let record = match numeric_id("update", &id) {
        Ok(id) => state.update(id).await,
        Err(error) => Err(error),
    };
    let u = match record {
        Ok(u) => u,
        Err(error) => return fail(error, &base, &who),
    };
    let body = html! {
        h1 { "Update #" (u.id) }
        dl id="update-summary" {
            dt { "Version" } dd { (u.previous_version.as_ref().map(ToString::to_string).unwrap_or_else(|| "?".into())) " → " (u.version) }
            dt { "Status" } dd id="update-status" { (status_badge(u.status)) }
            dt { "Started by" } dd { (u.initiated_by) }
            dt { "Started" } dd { (time(&u.started_at)) }
            dt { "Completed" } dd { (opt_time(u.completed_at.as_ref())) }
            dt { "Failed" } dd { (opt_time(u.failed_at.as_ref())) }
            dt { "Maintenance window" } dd { (u.maintenance_window_ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "—".into())) }
            dt { "Progress" } dd { (u.progress_percentage) "%" }
            @if let Some(size) = u.download_size { dt { "Download" } dd { (human_bytes(size)) } }
        }
        @if let Some(error) = &u.error_message {
            section.card.failure {
                h2 { "Error" }
                p.error role="alert" id="update-error" { (error) }
            }
        }
        section.card {
            h2 { "Steps" }
            div.scroll { table id="steps" {
                thead { tr {
                    th scope="col" { "Step" } th scope="col" { "Outcome" } th scope="col" { "Started" }
                    th scope="col" { "Finished" } th scope="col" { "Took" } th scope="col" { "Detail" }
                } }
                tbody { @for step in &u.steps {
                    tr data-step=(step.name) data-outcome=(step_outcome(step.outcome)) {
                        td { (step.name) }
                        td { span class=(if step.outcome == StepOutcome::Failed { "badge bad" } else { "badge" }) { (step_outcome(step.outcome)) } }
                        td { (step.started_at.format("%H:%M:%S%.3f")) }
                        td { (step.finished_at.map(|f| f.format("%H:%M:%S%.3f").to_string()).unwrap_or_else(|| "—".into())) }
                        td { (step.finished_at.map(|f| format!("{} ms", (f - step.started_at).num_milliseconds())).unwrap_or_default()) }
                        td.clip { (step.message.as_deref().unwrap_or("")) }
                    }
                } }
            } }
        }
        @if !u.changelog.trim().is_empty() {
            section.card { h2 { "Release notes" } div.markdown { (PreEscaped(crate::markdown::render(&u.changelog))) } }
        }
        p { a href=(base.at("/updates")) { "All updates" } }
    };
    page(
        Frame::admin(
            &state,
            &base,
            &who,
            "Update",
            !u.status.is_final() && u.status != UpdateStatus::NeedsOperator,
        ),
        body,
    )
    .into_response()
}

fn step_outcome(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Running => "running",
        StepOutcome::Succeeded => "succeeded",
        StepOutcome::Failed => "failed",
        StepOutcome::Skipped => "skipped",
        StepOutcome::RolledBack => "rolled_back",
    }
}

/// `GET /operations/{id}`: an operation's progress, result or error.
pub(crate) async fn operation(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    let op = match numeric_id::<u64>("operation", &id).and_then(|id| {
        state
            .operations()
            .get(id)
            .ok_or_else(|| WebError::not_found(format!("operation {id}")))
    }) {
        Ok(op) => op.view_with_events(),
        Err(error) => return fail(error, &base, &who),
    };
    let events = op.events.clone().unwrap_or_default();
    let body = html! {
        h1 { (op.kind.label()) }
        p { "Started by " (op.initiated_by) " at " (time(&op.started_at)) }
        (progress(&base, &op))
        @if let Some(result) = &op.result {
            section.card id="result" {
                h2 { "Result" }
                pre { (serde_json::to_string_pretty(result).unwrap_or_default()) }
            }
        }
        @if !events.is_empty() {
            section.card {
                h2 { "Events" }
                div.scroll { table {
                    thead { tr { th scope="col" { "Step" } th scope="col" { "%" } th scope="col" { "Message" } } }
                    tbody { @for e in events.iter().rev().take(50) { tr { td { (e.step.as_str()) } td { (e.percent) } td { (e.message) } } } }
                } }
            }
        }
        p { a href=(base.at("/")) { "Back to the dashboard" } }
    };
    page(
        Frame::admin(
            &state,
            &base,
            &who,
            op.kind.label(),
            op.status == OperationStatus::Running,
        ),
        body,
    )
    .into_response()
}

/// `GET /backups`.
pub(crate) async fn backups(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
) -> Response {
    let rows = match state.backups().await {
        Ok(rows) => rows,
        Err(error) => return fail(error, &base, &who),
    };
    let running = state.operations().running().map(|op| op.view());
    let body = html! {
        h1 { "Backups" }
        @if let Some(op) = &running { (progress(&base, op)) }
        @if state.inner.manual_backup.is_some() {
            section.card {
                h2 { "Create a backup" }
                form method="post" action=(base.at("/actions/backups")) {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label for="description" { "Description (optional)" }
                    input type="text" id="description" name="description" maxlength="200";
                    button type="submit" id="create-backup" { "Create backup" }
                }
            }
        }
        section.card {
            h2 { "Backups" }
            @if rows.is_empty() { p { "No backups recorded." } } @else {
                div.scroll { table id="backups" {
                    thead { tr {
                        th scope="col" { "Backup" } th scope="col" { "Version" } th scope="col" { "Kind" }
                        th scope="col" { "Size" } th scope="col" { "Created" } th scope="col" { "Verified" }
                        th scope="col" { "Restorable" } th scope="col" { "Actions" }
                    } }
                    tbody { @for row in &rows {
                        @let b = &row.backup;
                        tr data-backup-id=(b.id) {
                            td { (b.id) @if let Some(d) = &b.description { br; small { (d) } } }
                            td { (b.version) }
                            td { (b.kind.as_str()) }
                            td { (human_bytes(b.size)) }
                            td { (time(&b.created_at)) }
                            td data-verification=(row.status.map_or("unknown", VerificationStatus::as_str)) {
                                @match (row.status, &row.verified_at) {
                                    (Some(VerificationStatus::Verified), Some(at)) => { "yes, " (time(at)) }
                                    (Some(VerificationStatus::Verified), None) => { "yes" }
                                    (Some(VerificationStatus::Failed), _) => { span.error { "FAILED" } }
                                    (Some(VerificationStatus::Unverified), _) => { "not yet" }
                                    (None, _) => { "unknown" }
                                }
                            }
                            td { @if b.restorable { "yes" } @else { "no" } }
                            td.actions {
                                @if !b.restorable {
                                    // Deleted, or found damaged: nothing left to act on.
                                    "—"
                                } @else if row.manageable {
                                    form method="post" action=(base.at(&format!("/actions/backups/{}/verify", b.id))) {
                                        input type="hidden" name="csrf" value=(who.csrf);
                                        button type="submit" data-action="verify" { "Verify" }
                                    }
                                    a.button data-action="restore" href=(base.at(&format!("/confirm/restore/{}", b.id))) { "Restore" }
                                    a.button.danger data-action="delete" href=(base.at(&format!("/confirm/delete/{}", b.id))) { "Delete" }
                                } @else { "no strategy configured" }
                            }
                        }
                    } }
                } }
            }
        }
    };
    page(
        Frame::admin(&state, &base, &who, "Backups", running.is_some()),
        body,
    )
    .into_response()
}

/// `GET /notifications` parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NotificationsQuery {
    all: Option<bool>,
}

/// `GET /notifications`.
pub(crate) async fn notifications(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Query(query): Query<NotificationsQuery>,
) -> Response {
    let all = query.all.unwrap_or(false);
    let list = match state.notifications(&who, all).await {
        Ok(list) => list,
        Err(error) => return fail(error, &base, &who),
    };
    let back = if all {
        "/notifications?all=true"
    } else {
        "/notifications"
    };
    let body = html! {
        h1 { "Notifications" }
        p {
            @if all { a href=(base.at("/notifications")) { "Show unread only" } }
            @else { a href=(base.at("/notifications?all=true")) id="show-all" { "Show all, including read and dismissed" } }
        }
        @if list.is_empty() {
            p id="no-notifications" { @if all { "No notifications." } @else { "No unread notifications." } }
        } @else {
            ul.notifications id="notifications" {
                @for n in &list {
                    li data-notification-id=(n.id) data-read=(n.read) data-dismissed=(n.dismissed) {
                        p {
                            span.badge { (n.kind.as_str()) } " "
                            strong { (n.version) } " — " (n.message)
                        }
                        p { small { (time(&n.created_at))
                            @if n.read { " · read" } @if n.dismissed { " · dismissed" } } }
                        div.actions {
                            @if !n.read {
                                form method="post" action=(base.at(&format!("/actions/notifications/{}/read", n.id))) {
                                    input type="hidden" name="csrf" value=(who.csrf);
                                    input type="hidden" name="back" value=(back);
                                    button type="submit" data-action="read" { "Mark read" }
                                }
                            }
                            @if !n.dismissed {
                                form method="post" action=(base.at(&format!("/actions/notifications/{}/dismiss", n.id))) {
                                    input type="hidden" name="csrf" value=(who.csrf);
                                    input type="hidden" name="back" value=(back);
                                    button type="submit" data-action="dismiss" { "Dismiss" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        Frame::admin(&state, &base, &who, "Notifications", false),
        body,
    )
    .into_response()
}

/// `GET /confirm/update` parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfirmUpdateQuery {
    version: Option<String>,
}

/// `GET /confirm/update?version=X`: the confirmation naming the version.
pub(crate) async fn confirm_update(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Query(query): Query<ConfirmUpdateQuery>,
) -> Response {
    let current = match state.status().await {
        Ok(status) => status.status.current,
        Err(error) => return fail(error, &base, &who),
    };
    let target = match query.version.as_deref().map(Version::parse) {
        Some(Ok(version)) => version,
        Some(Err(e)) => return fail(WebError::invalid("version", e.to_string()), &base, &who),
        None => match state.available_release(&current).await {
            Some(release) => release.version,
            None => {
                return fail(
                    WebError::invalid("version", "no update is available; check first"),
                    &base,
                    &who,
                );
            }
        },
    };
    let between = state.releases_between(&current, &target).await;
    let body = html! {
        h1 { "Update to " (target) "?" }
        p id="confirm-question" { "Update the application from " strong { (current) } " to " strong { (target) } "?" }
        p { "The slow work (backup, download, verification) happens while the application keeps running; maintenance mode holds only the swap, migrations, hooks and the health check. A failure rolls back automatically." }
        @match &between {
            Ok(releases) => { (changelogs(releases)) }
            Err(error) => { p.error { "The release notes could not be read: " (error) } }
        }
        form method="post" action=(base.at("/actions/apply")) {
            input type="hidden" name="csrf" value=(who.csrf);
            input type="hidden" name="version" value=(target);
            p {
                input type="checkbox" id="backup" name="backup" value="true" checked[state.inner.backup_before_update];
                label for="backup" { " Back up the application files first" }
            }
            input type="hidden" name="backup_asked" value="true";
            button type="submit" id="confirm-update" { "Update now to " (target) }
            " "
            a href=(base.at("/")) { "Cancel" }
        }
    };
    page(
        Frame::admin(&state, &base, &who, "Confirm update", false),
        body,
    )
    .into_response()
}

/// `GET /confirm/rollback`.
pub(crate) async fn confirm_rollback(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
) -> Response {
    let plan = match state.rollback_plan().await {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            return fail(
                WebError::Update(updater_core::Error::precondition(
                    "rollback",
                    "no previous release is kept (nothing to roll back to)",
                )),
                &base,
                &who,
            );
        }
        Err(error) => return fail(error, &base, &who),
    };
    let body = html! {
        h1 { "Roll back to " (plan.to) "?" }
        p id="confirm-question" { "Go back from " strong { (plan.from) } " to the kept release " strong { (plan.to) } "?" }
        p id="rollback-database" { (database_text(&plan)) }
        @if let Some(blocker) = &plan.blocker { p.error role="alert" { (blocker) } }
        form method="post" action=(base.at("/actions/rollback")) {
            input type="hidden" name="csrf" value=(who.csrf);
            @if plan.database == "restore_snapshot" {
                p {
                    input type="checkbox" id="restore_database_snapshot" name="restore_database_snapshot" value="true" required;
                    label for="restore_database_snapshot" { " Restore the database snapshot (every write since the update is lost)" }
                }
            }
            button.danger type="submit" id="confirm-rollback" { "Roll back to " (plan.to) }
            " "
            a href=(base.at("/updates")) { "Cancel" }
        }
    };
    page(
        Frame::admin(&state, &base, &who, "Confirm rollback", false),
        body,
    )
    .into_response()
}

/// `GET /confirm/restore/{id}`.
pub(crate) async fn confirm_restore(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    let record = match state.backup_record(&id).await {
        Ok(record) => record,
        Err(error) => return fail(error, &base, &who),
    };
    let b = record.view();
    let current = state
        .status()
        .await
        .map(|s| s.status.current.to_string())
        .unwrap_or_default();
    let preserved = state
        .updater()
        .config()
        .preserved_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let body = html! {
        h1 { "Restore backup " (b.id) "?" }
        p id="confirm-question" { "Restore the " (b.kind.as_str()) " backup of version " strong { (b.version) } " (" (human_bytes(b.size)) ", " (time(&b.created_at)) ") over the running " (current) "?" }
        @if b.kind != updater_core::backup::BackupKind::DatabaseOnly {
            p { "The application files become the backup's; the replaced ones stay in the kept release (roll back to return)." }
        }
        @if b.kind != updater_core::backup::BackupKind::FilesOnly {
            p.error { "The database is restored from the backup: every write since it was taken is lost (a snapshot of the current database is taken first)." }
        }
        form method="post" action=(base.at(&format!("/actions/backups/{}/restore", b.id))) {
            input type="hidden" name="csrf" value=(who.csrf);
            p {
                input type="checkbox" id="include_preserved" name="include_preserved" value="true";
                label for="include_preserved" { " Also put back the backup's copies of preserved paths (" (preserved) ")" }
            }
            button.danger type="submit" id="confirm-restore" { "Restore backup" }
            " "
            a href=(base.at("/backups")) { "Cancel" }
        }
    };
    page(
        Frame::admin(&state, &base, &who, "Confirm restore", false),
        body,
    )
    .into_response()
}

/// `GET /confirm/delete/{id}`.
pub(crate) async fn confirm_delete(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    let record = match state.backup_record(&id).await {
        Ok(record) => record,
        Err(error) => return fail(error, &base, &who),
    };
    let b = record.view();
    let body = html! {
        h1 { "Delete backup " (b.id) "?" }
        p id="confirm-question" { "Delete the " (b.kind.as_str()) " backup of version " (b.version) " (" (human_bytes(b.size)) ")? This cannot be undone." }
        form method="post" action=(base.at(&format!("/actions/backups/{}/delete", b.id))) {
            input type="hidden" name="csrf" value=(who.csrf);
            button.danger type="submit" id="confirm-delete" { "Delete backup" }
            " "
            a href=(base.at("/backups")) { "Cancel" }
        }
    };
    page(
        Frame::admin(&state, &base, &who, "Confirm delete", false),
        body,
    )
    .into_response()
}

/// `GET /login`.
pub(crate) async fn login(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    headers: axum::http::HeaderMap,
) -> Response {
    if !matches!(state.inner.auth, AuthMode::Builtin(_)) {
        return error_page(
            &WebError::not_found("the built-in login (the host application signs users in)"),
            &base,
            None,
        );
    }
    login_page(
        &state,
        &base,
        None,
        StatusCode::OK,
        crate::routes::login_nonce(&headers),
    )
}

/// The login form, with an error when a login failed.
pub(crate) fn login_page(
    state: &WebState,
    base: &Base,
    error: Option<&WebError>,
    status: StatusCode,
    nonce: Option<String>,
) -> Response {
    let (cookie, token) = match login_form_token(state, base, nonce) {
        Ok(pair) => pair,
        Err(error) => return error_page(&error, base, None),
    };
    let body = html! {
        h1 { "Sign in" }
        @if let Some(error) = error { p.error role="alert" id="login-error" { (error.message()) } }
        form.login method="post" action=(base.at("/login")) {
            input type="hidden" name="csrf" value=(token);
            label for="username" { "User name" }
            input type="text" id="username" name="username" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input type="password" id="password" name="password" autocomplete="current-password" required;
            button type="submit" id="sign-in" { "Sign in" }
        }
    };
    let frame = Frame {
        state,
        base,
        who: None,
        title: "Sign in",
        refresh: false,
    };
    let mut response = respond(status, page(frame, body));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `GET /assets/app.css`.
pub(crate) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

/// `GET /assets/app.js`.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
