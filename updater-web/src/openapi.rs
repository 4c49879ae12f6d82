//! The OpenAPI 3.1 document of the JSON API, generated from the handlers'
//! annotations and the core types' schemas (`utoipa`), served at
//! `GET /api/openapi.json`. The handler tests check every real response
//! against it.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

/// The API's document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "updater console API",
        description = "Check for releases, apply them with live progress, roll back, manage backups and notifications. Every request needs a session cookie (with an `X-CSRF-Token` header on state changes) or a bearer token.",
    ),
    paths(
        api::status,
        api::check,
        api::apply,
        api::rollback_plan,
        api::rollback,
        api::history,
        api::update,
        api::backups,
        api::create_backup,
        api::verify_backup,
        api::restore_backup,
        api::delete_backup,
        api::notifications,
        api::mark_read,
        api::dismiss,
        api::operations,
        api::operation,
        api::operation_events,
        api::audit,
        api::stats,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "status", description = "What runs, what a rollback would do"),
        (name = "operations", description = "Long operations: check, apply, rollback, backups; live progress"),
        (name = "history", description = "Updates, their steps and errors; the audit log"),
        (name = "backups", description = "List, create, verify, restore, delete"),
        (name = "notifications", description = "Admin notifications"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// The document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(serde_json::Value::Null)
}
