//! The JSON API under `/api`: the same objects as the CLI's `--json`, long
//! operations answered `202 Accepted` with the operation, their progress as
//! server-sent events. Every route is in the OpenAPI document
//! (`GET /api/openapi.json`, [`crate::openapi`]).

use std::convert::Infallible;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use updater_core::history::{AuditRecord, NotificationView, UpdateRecord, UpdateStatus};
use updater_core::pipeline::RollbackPlan;

use crate::actions::{BackupRow, HistoryPage, StatusPayload};
use crate::auth::Identity;
use crate::error::{ErrorBody, Result, WebError};
use crate::operations::{Operation, OperationEvent, OperationStatus, OperationView};
use crate::state::WebState;

/// A JSON body; an empty body is the type's default. A malformed one is 422.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| WebError::invalid("body", e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| WebError::invalid("body", e.to_string()))
    }
}

/// Query parameters; malformed ones are 422.
#[derive(Debug)]
pub struct QueryOf<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryOf<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryOf(q.0))
            .map_err(|e| WebError::invalid("query", e.body_text()))
    }
}

/// A numeric path id; anything else is not found (404).
pub(crate) fn numeric_id<T: std::str::FromStr>(what: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| WebError::not_found(format!("{what} {text:?}")))
}

/// `202 Accepted` with the operation.
fn accepted(op: OperationView) -> Response {
    (StatusCode::ACCEPTED, Json(op)).into_response()
}

/// `POST /api/check`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// Ask the source even if a recent check is recorded.
    #[serde(default)]
    pub force: bool,
}

/// `POST /api/apply`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// The version to install (the one the admin confirmed); the newest when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Take the files backup first (default: the console's setting).
    #[serde(default)]
    pub backup: Option<bool>,
}

/// `POST /api/rollback`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// Allow restoring the pre-update database snapshot (every write since is lost).
    #[serde(default)]
    pub restore_database_snapshot: bool,
}

/// `POST /api/backups`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// A note stored with the backup.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST /api/backups/{id}/restore`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// Also put back the backup's copies of preserved paths (`.env`...).
    #[serde(default)]
    pub include_preserved: bool,
}

/// `GET /api/history` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Records per page (1–500, default 20).
    pub limit: Option<u64>,
    /// Records to skip.
    pub offset: Option<u64>,
    /// Only updates with this status.
    pub status: Option<UpdateStatus>,
}

/// `GET /api/notifications` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// Read and dismissed ones too.
    pub all: Option<bool>,
}

/// `GET /api/audit` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Records (1–500, default 50).
    pub limit: Option<u64>,
}

/// `GET /api/stats` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Days back from now (1–3650, default 30).
    pub days: Option<u32>,
}

/// `{"backups": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackupList {
    /// Newest first.
    pub backups: Vec<BackupRow>,
}

/// `{"notifications": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    /// Newest first.
    pub notifications: Vec<NotificationView>,
}

/// `{"operations": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OperationList {
    /// Newest first, without their events.
    pub operations: Vec<OperationView>,
}

/// `{"audit": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub audit: Vec<AuditRecord>,
}

/// `{"plan": ...}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RollbackPlanBody {
    /// What a rollback would do; `null` when no previous release is kept.
    pub plan: Option<RollbackPlan>,
}

/// `{"changed": [id]}`, as the CLI's `notifications --mark-read`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Changed {
    /// The notifications changed.
    pub changed: Vec<i64>,
}

/// One server-sent event of `GET /api/operations/{id}/events`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SseEvent {
    /// `state` (an [`OperationView`], first), `progress` (a progress event) or
    /// `done` (the final [`OperationView`], last).
    #[schema(pattern = "^(state|progress|done)$")]
    pub event: String,
    /// The event's JSON.
    pub data: String,
}

/// `{"deleted": id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// The backup deleted.
    pub deleted: String,
}

/// The running version, kept releases, lock, maintenance, last check, and
/// the operation running in this console.
#[utoipa::path(get, path = "/api/status", tag = "status",
    responses((status = 200, body = StatusPayload), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn status(State(state): State<WebState>) -> Result<Json<StatusPayload>> {
    Ok(Json(state.status().await?))
}

/// Starts a version check.
#[utoipa::path(post, path = "/api/check", tag = "operations", request_body(content = Option<CheckBody>),
    responses((status = 202, body = OperationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn check(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    Body(body): Body<CheckBody>,
) -> Result<Response> {
    Ok(accepted(state.start_check(&who, body.force).await?))
}

/// Starts an update; 409 naming the holder while another operation runs.
#[utoipa::path(post, path = "/api/apply", tag = "operations", request_body(content = Option<ApplyBody>),
    responses((status = 202, body = OperationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn apply(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    Body(body): Body<ApplyBody>,
) -> Result<Response> {
    Ok(accepted(
        state
            .start_apply(&who, body.version.as_deref(), body.backup)
            .await?,
    ))
}

/// What a rollback would do now.
#[utoipa::path(get, path = "/api/rollback", tag = "status",
    responses((status = 200, body = RollbackPlanBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn rollback_plan(State(state): State<WebState>) -> Result<Json<RollbackPlanBody>> {
    Ok(Json(RollbackPlanBody {
        plan: state.rollback_plan().await?,
    }))
}

/// Starts a rollback to the kept release.
#[utoipa::path(post, path = "/api/rollback", tag = "operations", request_body(content = Option<RollbackBody>),
    responses((status = 202, body = OperationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    Body(body): Body<RollbackBody>,
) -> Result<Response> {
    Ok(accepted(
        state
            .start_rollback(&who, body.restore_database_snapshot)
            .await?,
    ))
}

/// Past updates, rollbacks and restores, newest first, with their steps.
#[utoipa::path(get, path = "/api/history", tag = "history", params(HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn history(
    State(state): State<WebState>,
    QueryOf(query): QueryOf<HistoryQuery>,
) -> Result<Json<HistoryPage>> {
    Ok(Json(
        state
            .history(
                query.limit.unwrap_or(20),
                query.offset.unwrap_or(0),
                query.status,
            )
            .await?,
    ))
}

/// One update with every step and its error.
#[utoipa::path(get, path = "/api/updates/{id}", tag = "history",
    params(("id" = i64, Path, description = "The update's id")),
    responses((status = 200, body = UpdateRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<WebState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<UpdateRecord>> {
    Ok(Json(state.update(numeric_id("update", &id)?).await?))
}

/// Backups, newest first.
#[utoipa::path(get, path = "/api/backups", tag = "backups",
    responses((status = 200, body = BackupList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn backups(State(state): State<WebState>) -> Result<Json<BackupList>> {
    Ok(Json(BackupList {
        backups: state.backups().await?,
    }))
}

/// Starts a manual backup.
#[utoipa::path(post, path = "/api/backups", tag = "backups", request_body(content = Option<BackupBody>),
    responses((status = 202, body = OperationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_backup(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    Body(body): Body<BackupBody>,
) -> Result<Response> {
    Ok(accepted(state.start_backup(&who, body.description).await?))
}

/// Starts reading a backup through to verify it.
#[utoipa::path(post, path = "/api/backups/{id}/verify", tag = "backups",
    params(("id" = String, Path, description = "The backup's id")),
    responses((status = 202, body = OperationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn verify_backup(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response> {
    Ok(accepted(state.start_verify(&who, &id).await?))
}

/// Starts restoring a backup (as atomically as an update).
#[utoipa::path(post, path = "/api/backups/{id}/restore", tag = "backups",
    params(("id" = String, Path, description = "The backup's id")), request_body(content = Option<RestoreBody>),
    responses((status = 202, body = OperationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn restore_backup(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Body(body): Body<RestoreBody>,
) -> Result<Response> {
    Ok(accepted(
        state
            .start_restore(&who, &id, body.include_preserved)
            .await?,
    ))
}

/// Deletes a backup (refused while an update runs, or for a snapshot a rollback needs).
#[utoipa::path(delete, path = "/api/backups/{id}", tag = "backups",
    params(("id" = String, Path, description = "The backup's id")),
    responses((status = 200, body = Deleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_backup(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(state.delete_backup(&who, &id).await?))
}

/// The signed-in admin's notifications (and everybody's).
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(NotificationsQuery),
    responses((status = 200, body = NotificationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn notifications(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    QueryOf(query): QueryOf<NotificationsQuery>,
) -> Result<Json<NotificationList>> {
    Ok(Json(NotificationList {
        notifications: state
            .notifications(&who, query.all.unwrap_or(false))
            .await?,
    }))
}

/// Marks a notification read.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications",
    params(("id" = i64, Path, description = "The notification's id")),
    responses((status = 200, body = Changed), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn mark_read(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>> {
    let id = numeric_id("notification", &id)?;
    Ok(Json(state.change_notification(&who, id, false).await?))
}

/// Dismisses a notification.
#[utoipa::path(post, path = "/api/notifications/{id}/dismiss", tag = "notifications",
    params(("id" = i64, Path, description = "The notification's id")),
    responses((status = 200, body = Changed), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn dismiss(
    State(state): State<WebState>,
    Extension(who): Extension<Identity>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>> {
    let id = numeric_id("notification", &id)?;
    Ok(Json(state.change_notification(&who, id, true).await?))
}

/// The operations of this console, newest first.
#[utoipa::path(get, path = "/api/operations", tag = "operations",
    responses((status = 200, body = OperationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn operations(State(state): State<WebState>) -> Json<OperationList> {
    Json(OperationList {
        operations: state.operations().list(),
    })
}

fn find_operation(state: &WebState, id: &str) -> Result<std::sync::Arc<Operation>> {
    let id: u64 = numeric_id("operation", id)?;
    state
        .operations()
        .get(id)
        .ok_or_else(|| WebError::not_found(format!("operation {id}")))
}

/// One operation with its progress events.
#[utoipa::path(get, path = "/api/operations/{id}", tag = "operations",
    params(("id" = u64, Path, description = "The operation's id")),
    responses((status = 200, body = OperationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn operation(
    State(state): State<WebState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<OperationView>> {
    Ok(Json(find_operation(&state, &id)?.view_with_events()))
}

/// Live progress as server-sent events: `state` (the operation now) first,
/// then `progress` events (step, percent, bytes, message), then `done`
/// (the final operation) and the end of the stream.
#[utoipa::path(get, path = "/api/operations/{id}/events", tag = "operations",
    params(("id" = u64, Path, description = "The operation's id")),
    responses((status = 200, description = "text/event-stream: events `state`, `progress`, `done`", content_type = "text/event-stream", body = SseEvent),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn operation_events(
    State(state): State<WebState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let op = find_operation(&state, &id)?;
    Ok(Sse::new(event_stream(op)).keep_alive(KeepAlive::default()))
}

/// The stream of one subscriber: the state, then events until the end.
pub fn event_stream(
    op: std::sync::Arc<Operation>,
) -> impl Stream<Item = std::result::Result<Event, Infallible>> {
    enum Stage {
        First(Box<OperationView>),
        Live,
        Finishing(Box<OperationView>),
        Done,
    }
    let (snapshot, receiver) = op.subscribe();
    futures_util::stream::unfold(
        (Stage::First(Box::new(snapshot)), receiver, op),
        |(stage, mut receiver, op)| async move {
            let (event, next) = match stage {
                Stage::First(snapshot) => {
                    let event = json_event("state", &*snapshot);
                    if snapshot.status == OperationStatus::Running {
                        (event, Stage::Live)
                    } else {
                        (event, Stage::Finishing(snapshot))
                    }
                }
                Stage::Finishing(view) => (json_event("done", &*view), Stage::Done),
                Stage::Done => return None,
                Stage::Live => match receiver.recv().await {
                    Ok(OperationEvent::Progress(event)) => {
                        (json_event("progress", &event), Stage::Live)
                    }
                    Ok(OperationEvent::Finished(view)) => (json_event("done", &*view), Stage::Done),
                    Err(RecvError::Lagged(_)) => {
                        // Too slow a reader: the state now replaces the lost events.
                        let now = op.view();
                        if now.status == OperationStatus::Running {
                            (json_event("state", &now), Stage::Live)
                        } else {
                            (json_event("done", &now), Stage::Done)
                        }
                    }
                    Err(RecvError::Closed) => (json_event("done", &op.view()), Stage::Done),
                },
            };
            Some((Ok(event), (next, receiver, op)))
        },
    )
}

fn json_event<T: Serialize>(name: &str, value: &T) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
}

/// Update analytics, as `updater stats --since <days>d`: attempts, outcomes,
/// success rate, rollbacks and failures by step, the window and duration
/// (median, p95), time per step, per version and per day.
#[utoipa::path(get, path = "/api/stats", tag = "history", params(StatsQuery),
    responses((status = 200, body = updater_core::stats::UpdateStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn stats(
    State(state): State<WebState>,
    QueryOf(query): QueryOf<StatsQuery>,
) -> Result<Json<updater_core::stats::UpdateStats>> {
    let days = query.days.unwrap_or(30);
    if days == 0 || days > 3650 {
        return Err(WebError::invalid("days", "must be between 1 and 3650"));
    }
    Ok(Json(state.stats(days).await?))
}

/// The audit log: every action with its user, newest first.
#[utoipa::path(get, path = "/api/audit", tag = "history", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn audit(
    State(state): State<WebState>,
    QueryOf(query): QueryOf<AuditQuery>,
) -> Result<Json<AuditList>> {
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > 500 {
        return Err(WebError::invalid("limit", "must be between 1 and 500"));
    }
    Ok(Json(AuditList {
        audit: state.audit_log(limit).await?,
    }))
}
