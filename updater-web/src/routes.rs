//! The router, and the two layers every request passes: the guard
//! (authentication, admin check, CSRF) and the security headers.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use crate::auth::{
    AuthMode, Identity, LOGIN_COOKIE, SESSION_COOKIE, User, constant_time_eq, cookie, host_csrf,
    random_bytes,
};
use crate::error::WebError;
use crate::state::WebState;
use crate::{api, forms, pages};

/// Where the console is mounted (`/admin/updates`; empty at the root), a
/// request extension: pages link relative to it.
#[derive(Debug, Clone, Default)]
pub struct Base(pub String);

impl Base {
    /// `path` (starting with `/`) under the mount point; `/` is the mount
    /// point itself (a nested router answers `/admin/updates`, not
    /// `/admin/updates/`).
    pub fn at(&self, path: &str) -> String {
        match (path, self.0.is_empty()) {
            ("/", false) => self.0.clone(),
            _ => format!("{}{path}", self.0),
        }
    }
}

/// The largest form body the guard reads to find its CSRF token.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The console: pages, form actions, the JSON API and the assets. Nest it
/// under any path of the host application.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/updates", get(pages::updates))
        .route("/updates/{id}", get(pages::update_detail))
        .route("/backups", get(pages::backups))
        .route("/notifications", get(pages::notifications))
        .route("/operations/{id}", get(pages::operation))
        .route("/confirm/update", get(pages::confirm_update))
        .route("/confirm/rollback", get(pages::confirm_rollback))
        .route("/confirm/restore/{id}", get(pages::confirm_restore))
        .route("/confirm/delete/{id}", get(pages::confirm_delete))
        .route("/actions/check", post(forms::check))
        .route("/actions/apply", post(forms::apply))
        .route("/actions/rollback", post(forms::rollback))
        .route("/actions/backups", post(forms::create_backup))
        .route("/actions/backups/{id}/verify", post(forms::verify_backup))
        .route("/actions/backups/{id}/restore", post(forms::restore_backup))
        .route("/actions/backups/{id}/delete", post(forms::delete_backup))
        .route("/actions/notifications/{id}/read", post(forms::mark_read))
        .route("/actions/notifications/{id}/dismiss", post(forms::dismiss))
        .route("/login", get(pages::login).post(login))
        .route("/logout", post(logout))
        .route("/assets/app.css", get(pages::stylesheet))
        .route("/assets/app.js", get(pages::script))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/status", get(api::status))
        .route("/api/check", post(api::check))
        .route("/api/apply", post(api::apply))
        .route("/api/rollback", get(api::rollback_plan).post(api::rollback))
        .route("/api/history", get(api::history))
        .route("/api/updates/{id}", get(api::update))
        .route("/api/backups", get(api::backups).post(api::create_backup))
        .route(
            "/api/backups/{id}",
            axum::routing::delete(api::delete_backup),
        )
        .route("/api/backups/{id}/verify", post(api::verify_backup))
        .route("/api/backups/{id}/restore", post(api::restore_backup))
        .route("/api/notifications", get(api::notifications))
        .route("/api/notifications/{id}/read", post(api::mark_read))
        .route("/api/notifications/{id}/dismiss", post(api::dismiss))
        .route("/api/operations", get(api::operations))
        .route("/api/operations/{id}", get(api::operation))
        .route("/api/operations/{id}/events", get(api::operation_events))
        .route("/api/audit", get(api::audit))
        .route("/api/stats", get(api::stats))
        .route("/api/openapi.json", get(openapi_document))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn openapi_document() -> axum::Json<serde_json::Value> {
    axum::Json(crate::openapi::document())
}

async fn not_found(request: Request) -> WebError {
    WebError::not_found(format!("page {}", request.uri().path()))
}

/// The strict headers of every answer: no inline script or style, no
/// framing, no sniffing, no caching of admin data.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The mount point: the original path minus the path inside the router.
fn base_of(request: &Request) -> Base {
    let inner = request.uri().path();
    let original = request
        .extensions()
        .get::<OriginalUri>()
        .map(|o| o.path().to_string())
        .unwrap_or_else(|| inner.to_string());
    let base = if let Some(prefix) = original.strip_suffix(inner) {
        prefix.to_string()
    } else if inner == "/" {
        original.trim_end_matches('/').to_string()
    } else {
        String::new()
    };
    Base(base.trim_end_matches('/').to_string())
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

fn is_public(method: &Method, path: &str) -> bool {
    path == "/login"
        || (method == Method::GET && (path.starts_with("/assets/") || path == "/favicon.ico"))
}

/// Authenticates, refuses non-admins, checks CSRF on state changes.
async fn guard(State(state): State<WebState>, request: Request, next: Next) -> Response {
    let base = base_of(&request);
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(base.clone());
    let path = parts.uri.path().to_string();
    if is_public(&parts.method, &path) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let api = is_api(&path);
    let identity = match identify(&state, &parts) {
        Ok(Some(identity)) => identity,
        Ok(None) => return unauthenticated(&state, &base, &parts, api),
        Err(error) => return error.into_response(),
    };
    if !identity.user.is_admin {
        let error = WebError::Forbidden {
            user: identity.user.name.clone(),
        };
        state.audit_outcome(&identity, "access", Some(path.clone()), Some(&error));
        return refuse(error, &base, api);
    }
    let changes_state = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let mut body = body;
    if changes_state && !identity.bearer {
        let (ok, rebuilt) = csrf_ok(&parts.headers, body, &identity.csrf).await;
        body = rebuilt;
        if !ok {
            let error = WebError::Csrf;
            state.audit_outcome(&identity, "csrf", Some(path.clone()), Some(&error));
            return refuse(error, &base, api);
        }
    }
    parts.extensions.insert(identity);
    next.run(Request::from_parts(parts, body)).await
}

/// Who the request is from: a bearer token, the built-in session, or the host.
fn identify(
    state: &WebState,
    parts: &axum::http::request::Parts,
) -> Result<Option<Identity>, WebError> {
    let inner = &state.inner;
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(WebError::Unauthenticated)?;
        let matched = inner.api_tokens.iter().find(|t| t.matches(token.trim()));
        return match matched {
            Some(t) => Ok(Some(Identity {
                user: User::admin(t.name.clone()),
                csrf: String::new(),
                bearer: true,
                session_cookie: None,
            })),
            None => Err(WebError::Unauthenticated),
        };
    }
    match &inner.auth {
        AuthMode::Builtin(_) => Ok(cookie(parts, SESSION_COOKIE).and_then(|value| {
            inner.sessions.get(&value).map(|session| Identity {
                user: User::admin(session.user),
                csrf: session.csrf,
                bearer: false,
                session_cookie: Some(value),
            })
        })),
        AuthMode::Host(host) => Ok(host.user(parts).map(|user| Identity {
            csrf: host_csrf(inner.sessions.key(), &user.name),
            user,
            bearer: false,
            session_cookie: None,
        })),
    }
}

fn unauthenticated(
    state: &WebState,
    base: &Base,
    parts: &axum::http::request::Parts,
    api: bool,
) -> Response {
    if api || parts.method != Method::GET {
        return WebError::Unauthenticated.into_response();
    }
    let target = match &state.inner.auth {
        AuthMode::Builtin(_) => Some(base.at("/login")),
        AuthMode::Host(host) => host.login_url(),
    };
    match target {
        Some(url) => Redirect::to(&url).into_response(),
        None => pages::error_page(&WebError::Unauthenticated, base, None),
    }
}

fn refuse(error: WebError, base: &Base, api: bool) -> Response {
    if api {
        error.into_response()
    } else {
        pages::error_page(&error, base, None)
    }
}

/// Whether the request carries `expected` as `X-CSRF-Token` or as the form
/// field `csrf`, and is not marked cross-site by the browser. Reads a form
/// body to find the field and hands it back for the handler.
async fn csrf_ok(headers: &HeaderMap, body: Body, expected: &str) -> (bool, Body) {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return (false, body);
    }
    if expected.is_empty() {
        return (false, body);
    }
    if let Some(token) = headers.get("x-csrf-token") {
        return (
            constant_time_eq(token.as_bytes(), expected.as_bytes()),
            body,
        );
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (false, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return (false, Body::empty());
    };
    let ok = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .is_some_and(|(_, v)| constant_time_eq(v.as_bytes(), expected.as_bytes()));
    (ok, Body::from(bytes))
}

fn cookie_header(state: &WebState, base: &Base, name: &str, value: &str, max_age: i64) -> String {
    let path = if base.0.is_empty() { "/" } else { &base.0 };
    format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if state.inner.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    )
}

/// The login nonce cookie (the browser's own when it has one: other tabs
/// and requests keep their forms valid) and the form token bound to it.
pub(crate) fn login_form_token(
    state: &WebState,
    base: &Base,
    existing: Option<String>,
) -> Result<(String, String), WebError> {
    let nonce = match existing.filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Some(nonce) => nonce,
        None => hex::encode(random_bytes::<16>()?),
    };
    let token = state.inner.sessions.login_token(&nonce);
    Ok((
        cookie_header(state, base, LOGIN_COOKIE, &nonce, 3600),
        token,
    ))
}

/// The login nonce the browser holds, if any.
pub(crate) fn login_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == LOGIN_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The client's address, when the server recorded it (`into_make_service_with_connect_info`).
pub(crate) struct ClientAddress(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// The login form.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

async fn login(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let AuthMode::Builtin(admins) = &state.inner.auth else {
        return pages::error_page(
            &WebError::not_found("the built-in login (the host application signs users in)"),
            &base,
            None,
        );
    };
    let sessions = &state.inner.sessions;
    let who = Identity {
        user: User::admin(form.username.clone()),
        csrf: String::new(),
        bearer: false,
        session_cookie: None,
    };
    let nonce = login_nonce(&headers);
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site
        || !nonce
            .as_deref()
            .is_some_and(|n| sessions.check_login_token(n, &form.csrf))
    {
        state.audit_outcome(&who, "login", None, Some(&WebError::Csrf));
        return pages::login_page(
            &state,
            &base,
            Some(&WebError::Csrf),
            StatusCode::FORBIDDEN,
            None,
        );
    }
    let mut keys = vec![format!("user:{}", form.username.to_lowercase())];
    if let Some(address) = client {
        keys.push(format!("ip:{}", address.ip()));
    }
    if let Err(error) = sessions.check_rate(&keys) {
        state.audit_outcome(&who, "login", None, Some(&error));
        let mut response = pages::login_page(
            &state,
            &base,
            Some(&error),
            StatusCode::TOO_MANY_REQUESTS,
            nonce.clone(),
        );
        if let WebError::RateLimited { retry_after_secs } = error
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let admins = admins.clone();
    let (name, password) = (form.username.clone(), form.password);
    let verified = tokio::task::spawn_blocking(move || admins.verify(&name, &password))
        .await
        .unwrap_or(false);
    if !verified {
        sessions.record_failure(&keys);
        state.audit_outcome(&who, "login", None, Some(&WebError::BadCredentials));
        return pages::login_page(
            &state,
            &base,
            Some(&WebError::BadCredentials),
            StatusCode::UNAUTHORIZED,
            nonce,
        );
    }
    sessions.clear_failures(&keys[0]);
    let session = match sessions.create(&form.username) {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    state.audit_outcome(&who, "login", None, None);
    let mut response = Redirect::to(&base.at("/")).into_response();
    let headers = response.headers_mut();
    for value in [
        cookie_header(&state, &base, SESSION_COOKIE, &session, 8 * 3600),
        cookie_header(&state, &base, LOGIN_COOKIE, "", 0),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

async fn logout(
    State(state): State<WebState>,
    Extension(base): Extension<Base>,
    Extension(who): Extension<Identity>,
) -> Response {
    if let Some(cookie) = &who.session_cookie {
        state.inner.sessions.remove(cookie);
    }
    state.audit_outcome(&who, "logout", None, None);
    let target = match &state.inner.auth {
        AuthMode::Builtin(_) => base.at("/login"),
        AuthMode::Host(host) => host.login_url().unwrap_or_else(|| base.at("/")),
    };
    let mut response = Redirect::to(&target).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie_header(&state, &base, SESSION_COOKIE, "", 0)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
