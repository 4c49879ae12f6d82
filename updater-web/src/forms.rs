//! The HTML forms' actions (`POST /actions/...`): the same actions as the
//! API, answered with a redirect — to the operation's page for long
//! operations — so that everything works without JavaScript.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use crate::api::numeric_id;
use crate::auth::Identity;
use crate::error::WebError;
use crate::operations::OperationView;
use crate::pages::error_page;
use crate::routes::Base;
use crate::state::WebState;

/// Fields every form may carry besides its own (the guard checked `csrf`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    force: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    backup: Option<String>,
    /// Set by the confirmation form: `backup` absent then means "no backup".
    #[serde(default)]
    backup_asked: Option<String>,
    #[serde(default)]
    restore_database_snapshot: Option<String>,
    #[serde(default)]
    include_preserved: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    back: Option<String>,
}

fn checked(field: &Option<String>) -> bool {
    field
        .as_deref()
        .is_some_and(|v| matches!(v, "on" | "true" | "1" | "yes"))
}

fn to_operation(base: &Base, result: Result<OperationView, WebError>) -> Response {
    match result {
        Ok(op) => Redirect::to(&base.at(&format!("/operations/{}", op.id))).into_response(),
        Err(error) => error_page(&error, base, None),
    }
}

/// Where to go back to: one of the console's own pages only.
fn back(base: &Base, form: &ActionForm, default: &str) -> String {
    let page = form
        .back
        .as_deref()
        .filter(|p| ["/", "/notifications", "/notifications?all=true", "/backups"].contains(p))
        .unwrap_or(default);
    base.at(page)
}

pub(crate) async fn check(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Form(form): Form<ActionForm>,
) -> Response {
    to_operation(&base, state.start_check(&who, checked(&form.force)).await)
}

pub(crate) async fn apply(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Form(form): Form<ActionForm>,
) -> Response {
    let backup =
        (form.backup.is_some() || form.backup_asked.is_some()).then(|| checked(&form.backup));
    to_operation(
        &base,
        state
            .start_apply(&who, form.version.as_deref(), backup)
            .await,
    )
}

pub(crate) async fn rollback(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Form(form): Form<ActionForm>,
) -> Response {
    to_operation(
        &base,
        state
            .start_rollback(&who, checked(&form.restore_database_snapshot))
            .await,
    )
}

pub(crate) async fn create_backup(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Form(form): Form<ActionForm>,
) -> Response {
    to_operation(&base, state.start_backup(&who, form.description).await)
}

pub(crate) async fn verify_backup(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    to_operation(&base, state.start_verify(&who, &id).await)
}

pub(crate) async fn restore_backup(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    to_operation(
        &base,
        state
            .start_restore(&who, &id, checked(&form.include_preserved))
            .await,
    )
}

pub(crate) async fn delete_backup(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    match state.delete_backup(&who, &id).await {
        Ok(_) => Redirect::to(&base.at("/backups")).into_response(),
        Err(error) => error_page(&error, &base, None),
    }
}

async fn change(
    state: WebState,
    base: Base,
    who: Identity,
    id: String,
    form: ActionForm,
    dismiss: bool,
) -> Response {
    let result = match numeric_id("notification", &id) {
        Ok(id) => state.change_notification(&who, id, dismiss).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => Redirect::to(&back(&base, &form, "/notifications")).into_response(),
        Err(error) => error_page(&error, &base, None),
    }
}

pub(crate) async fn mark_read(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    change(state, base, who, id, form, false).await
}

pub(crate) async fn dismiss(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    change(state, base, who, id, form, true).await
}
