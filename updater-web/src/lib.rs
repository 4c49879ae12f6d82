//! # updater-web
//!
//! The admin console and JSON API of the crash-safe self-updater, as an
//! [`axum::Router`] that any Rust web application nests under a path of its
//! own (`/admin/updates`), and that `updater serve` serves alone. An admin
//! who has never seen a shell sees the running version, checks for updates,
//! reads the changelog of every release up to the new one, clicks "Update
//! now" and watches a live progress bar, reads the history and the detail of
//! a failed update, rolls back, creates / verifies / restores / deletes
//! backups and handles notifications.
//!
//! ## Why it is shaped this way
//!
//! - **One implementation.** Every action calls the host's
//!   [`Updater`](updater_core::pipeline::Updater) — the same as the CLI's —
//!   and every JSON object is the core type's own serialisation (the CLI's
//!   `--json`): there is no second implementation of an operation nor a
//!   second serializer.
//! - **Long operations outlive the request.** Check, apply, rollback and
//!   backup create / verify / restore run one at a time on a worker thread
//!   ([`operations`]); the request returns `202` with the operation at once,
//!   a second one gets `409` naming the holder, and a page loaded later (the
//!   browser was closed) shows it running. Progress streams as server-sent
//!   events: the current state first, then each event.
//! - **Admin only, every action recorded** ([`auth`]). Nothing but the login
//!   form and the stylesheet is reachable without authentication — built-in
//!   (argon2id hashes, signed `HttpOnly` `SameSite=Strict` session cookie,
//!   rate-limited logins) or delegated to the host ([`auth::HostAuth`]), plus
//!   bearer tokens for scripts. State changes need the session's CSRF token;
//!   `GET` never changes state. Every action lands in the audit log
//!   ([`HistoryStore::record_audit`](updater_core::history::HistoryStore::record_audit))
//!   with its user, and updates carry `initiated_by = "web:<user>"`.
//! - **Works without JavaScript.** Pages are rendered on the server (maud,
//!   escaped by default; changelogs are Markdown sanitised by `ammonia`),
//!   forms post and redirect; the one script (embedded, like the
//!   stylesheet: no CDN) only feeds the progress bar. A strict
//!   `Content-Security-Policy` forbids inline script and style;
//!   `X-Frame-Options: DENY`.
//! - **Blocking core, async shell.** The core is synchronous: handlers call
//!   it on `spawn_blocking`, operations on their own thread.
//!
//! ## Example: mount the console in an application
//!
//! ```
//! use std::sync::Arc;
//! use tower::ServiceExt;
//! use updater_core::pipeline::UpdaterBuilder;
//! use updater_core::source::LocalDirectorySource;
//! use updater_web::auth::{ApiToken, User};
//! use updater_web::WebState;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("VERSION"), "1.0.0")?;
//! let updater = UpdaterBuilder::new(dir.path())
//!     .with_source(LocalDirectorySource::new(dir.path().join("releases")))
//!     .build()?;
//! // The host application says who is signed in (here: a header its proxy sets).
//! let host_auth = |parts: &axum::http::request::Parts| {
//!     parts.headers.get("x-user").and_then(|v| v.to_str().ok()).map(User::admin)
//! };
//! let state = WebState::builder(Arc::new(updater))
//!     .with_host_auth(Arc::new(host_auth))
//!     .with_api_token(ApiToken::from_sha256_hex("ci", &ApiToken::digest("s3cret"))?)
//!     .build()?;
//! let app = axum::Router::new().nest("/admin/updates", updater_web::router(state));
//!
//! let request = axum::http::Request::get("/admin/updates/api/status")
//!     .header("authorization", "Bearer s3cret")
//!     .body(axum::body::Body::empty())?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//!
//! let anonymous = axum::http::Request::get("/admin/updates/api/status").body(axum::body::Body::empty())?;
//! assert_eq!(app.oneshot(anonymous).await?.status(), 401);
//! # Ok(())
//! # }
//! ```
//!
//! `updater serve` (the CLI) serves the same router alone, with the
//! built-in login; `cargo run --example web` mounts it in a small axum
//! application with its own login.
//!
//! ## Routes (relative to the mount point)
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `/updates`, `/updates/{id}`, `/backups`, `/notifications`, `/operations/{id}` | pages |
//! | `GET /confirm/update?version=`, `/confirm/rollback`, `/confirm/restore/{id}`, `/confirm/delete/{id}` | confirmations (name the version, the database plan) |
//! | `POST /actions/...` | the forms' actions (redirect) |
//! | `GET/POST /login`, `POST /logout` | built-in login |
//! | `/api/...` | the JSON API, documented at `GET /api/openapi.json`: status, check, apply, rollback, history, updates, backups, notifications, operations (with SSE events), audit, stats |
//!
//! ## Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | — | | none: the console has no optional parts |

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod actions;
pub mod api;
pub mod auth;
pub mod error;
mod forms;
pub mod markdown;
pub mod openapi;
pub mod operations;
mod pages;
mod routes;
pub mod state;

pub use error::{Result, WebError};
pub use routes::{Base, router};
pub use state::{WebState, WebStateBuilder};
