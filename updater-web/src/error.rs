//! The one error type of the console, and how each variant answers over
//! HTTP: a status code, and `{"error": {"kind", "message"}}` (the CLI's
//! `--json` error object, without the exit code) for the API or a page for
//! a browser.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Everything a request to the console can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// Nobody is signed in (no session, an expired one, no bearer token): 401.
    #[error("authentication required")]
    Unauthenticated,

    /// The user is signed in but is not an admin: 403.
    #[error("{user} is not an administrator of the updater")]
    Forbidden {
        /// Who asked.
        user: String,
    },

    /// A state-changing request without the right CSRF token (or from
    /// another site): 403.
    #[error("missing or invalid CSRF token")]
    Csrf,

    /// The user name or password is wrong: 401 (which one is not said).
    #[error("wrong user name or password")]
    BadCredentials,

    /// Too many failed logins: 429 with `Retry-After`.
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },

    /// The thing asked for does not exist: 404.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for (`update 7`, `backup 2026...-files`).
        what: String,
    },

    /// A parameter is malformed: 422.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The parameter.
        field: String,
        /// Why it was refused.
        reason: String,
    },

    /// Another operation holds the update lock: 409, naming it.
    #[error("another operation is running: {holder}")]
    Busy {
        /// Who holds it (operation, user, since).
        holder: String,
    },

    /// The updater refused or failed: the status follows the core error's
    /// kind (404 not found, 409 locked or precondition, 422 invalid input or
    /// refused version, 503 unavailable, 500 otherwise).
    #[error(transparent)]
    Update(#[from] updater_core::Error),

    /// Hashing or checking a password failed (a malformed stored hash).
    #[error("password hash: {0}")]
    Password(String),

    /// The console itself failed (a worker thread died): 500.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON error object: `{"error": {"kind", "message"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The kind and message of an [`ErrorBody`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A short stable name: `unauthenticated`, `forbidden`, `csrf`,
    /// `bad_credentials`, `rate_limited`, `not_found`, `invalid_input`,
    /// `busy`, `internal`, or one of the updater's kinds (`locked`,
    /// `precondition`, `rolled_back`...).
    pub kind: String,
    /// What went wrong, with its causes.
    pub message: String,
}

impl WebError {
    /// A [`WebError::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        WebError::NotFound { what: what.into() }
    }

    /// A [`WebError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        WebError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status this error answers with.
    ///
    /// ```
    /// use updater_web::WebError;
    /// let busy = WebError::Busy { holder: "apply by web:alice".into() };
    /// assert_eq!(busy.status(), 409);
    /// let locked = WebError::Update(updater_core::Error::precondition("rollback", "nothing kept"));
    /// assert_eq!((locked.status().as_u16(), locked.kind()), (409, "precondition"));
    /// ```
    pub fn status(&self) -> StatusCode {
        use updater_core::Error as E;
        match self {
            WebError::Unauthenticated | WebError::BadCredentials => StatusCode::UNAUTHORIZED,
            WebError::Forbidden { .. } | WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::NotFound { .. } => StatusCode::NOT_FOUND,
            WebError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::Busy { .. } => StatusCode::CONFLICT,
            WebError::Update(error) => match error {
                E::NotFound { .. } => StatusCode::NOT_FOUND,
                E::Locked { .. } | E::Precondition { .. } | E::ApplicationData { .. } => {
                    StatusCode::CONFLICT
                }
                E::InvalidInput { .. } | E::VersionRefused { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                E::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            WebError::Password(_) | WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short stable name of [`ErrorDetail::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            WebError::Unauthenticated => "unauthenticated",
            WebError::Forbidden { .. } => "forbidden",
            WebError::Csrf => "csrf",
            WebError::BadCredentials => "bad_credentials",
            WebError::RateLimited { .. } => "rate_limited",
            WebError::NotFound { .. } => "not_found",
            WebError::Invalid { .. } => "invalid_input",
            WebError::Busy { .. } => "busy",
            WebError::Update(error) => error.kind(),
            WebError::Password(_) | WebError::Internal(_) => "internal",
        }
    }

    /// The message with every cause not already contained in it.
    pub fn message(&self) -> String {
        error_chain(self)
    }

    /// The JSON object of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                kind: self.kind().to_string(),
                message: self.message(),
            },
        }
    }
}

/// `error: cause: cause`, skipping a cause its parent's message already holds.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self.message(), "request failed");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if let WebError::RateLimited { retry_after_secs } = &self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if matches!(self, WebError::Unauthenticated) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"updater\""),
            );
        }
        response
    }
}

/// Shorthand for results whose error is [`WebError`].
pub type Result<T, E = WebError> = std::result::Result<T, E>;
