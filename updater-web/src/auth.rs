//! Who is asking, and may they: the built-in login, delegation to the host
//! application, bearer tokens for scripts, and CSRF tokens.
//!
//! - **Built-in login** ([`Admins`]): user names with argon2id password
//!   hashes (made by [`hash_password`], `updater web hash-password`). A
//!   successful login creates a server-side session whose random id travels
//!   in a signed (HMAC-SHA256), `HttpOnly`, `SameSite=Strict` cookie,
//!   `Secure` when served over TLS. Failed logins are rate-limited per user
//!   name and per client address. Logging out deletes the session: the old
//!   cookie is refused from then on.
//! - **Delegation** ([`HostAuth`]): the host application says who the user
//!   is and whether they are an admin — from its own session, or from a
//!   [`User`] its own tower layer put in the request's extensions
//!   ([`FromExtensions`]).
//! - **Bearer tokens** ([`ApiToken`]): `Authorization: Bearer <token>` for
//!   scripts; only the token's SHA-256 is configured.
//!
//! Every request that is not `GET`/`HEAD` must carry the CSRF token of its
//! session (form field `csrf` or header `X-CSRF-Token`) unless it
//! authenticates with a bearer token (which a browser never sends on its
//! own); a request a browser marks `Sec-Fetch-Site: cross-site` is refused.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Result, WebError};

/// Someone the host application or the built-in login vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name recorded in history (`web:<name>`).
    pub name: String,
    /// Whether they may use the console (everyone else gets 403).
    pub is_admin: bool,
}

impl User {
    /// An administrator.
    pub fn admin(name: impl Into<String>) -> Self {
        User {
            name: name.into(),
            is_admin: true,
        }
    }
}

/// Delegation: the host application says who makes a request.
///
/// # Contract
///
/// - [`user`](Self::user) returns `None` when the request carries no valid
///   login of the host; it must not block (it runs on the async runtime).
/// - The host's own login must be protected against CSRF; the console adds
///   its own CSRF tokens to every state-changing request regardless.
///
/// # Implementing
///
/// [`user`](Self::user) is required; [`login_url`](Self::login_url) (where a
/// browser without a login is sent) defaults to none (a 401 page). Closures
/// `Fn(&Parts) -> Option<User>` implement it.
///
/// ```
/// use updater_web::auth::{HostAuth, User};
/// let auth = |parts: &axum::http::request::Parts| {
///     parts.headers.get("x-test-user").and_then(|v| v.to_str().ok()).map(User::admin)
/// };
/// let request = axum::http::Request::builder().header("x-test-user", "alice").body(())?;
/// let (parts, _) = request.into_parts();
/// assert_eq!(auth.user(&parts), Some(User::admin("alice")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait HostAuth: Send + Sync {
    /// Who makes the request, if anybody.
    fn user(&self, parts: &Parts) -> Option<User>;

    /// Where to send a browser that is not logged in (a path or URL of the host).
    fn login_url(&self) -> Option<String> {
        None
    }
}

impl<F: Fn(&Parts) -> Option<User> + Send + Sync> HostAuth for F {
    fn user(&self, parts: &Parts) -> Option<User> {
        self(parts)
    }
}

/// Delegation through a tower layer: the host's middleware inserts a
/// [`User`] into the request's extensions before the console sees it.
#[derive(Debug, Clone, Default)]
pub struct FromExtensions {
    login_url: Option<String>,
}

impl FromExtensions {
    /// Reads the [`User`] extension; sends browsers without one to `login_url`.
    pub fn new(login_url: Option<String>) -> Self {
        FromExtensions { login_url }
    }
}

impl HostAuth for FromExtensions {
    fn user(&self, parts: &Parts) -> Option<User> {
        parts.extensions.get::<User>().cloned()
    }

    fn login_url(&self) -> Option<String> {
        self.login_url.clone()
    }
}

/// The key that signs session cookies and derives CSRF tokens (at least 32 bytes).
#[derive(Clone)]
pub struct SessionKey(Arc<Vec<u8>>);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(***)")
    }
}

impl SessionKey {
    /// A key from secret bytes (a file or an environment variable); at least 32.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 32 {
            return Err(WebError::invalid(
                "session secret",
                format!("{} bytes; at least 32 are needed", bytes.len()),
            ));
        }
        Ok(SessionKey(Arc::new(bytes.to_vec())))
    }

    /// A random key: sessions end when the process does.
    pub fn random() -> Result<Self> {
        Ok(SessionKey(Arc::new(random_bytes::<32>()?.to_vec())))
    }

    /// HMAC-SHA256 over the length-prefixed `parts`; `None` only if the
    /// key were refused (HMAC takes keys of any length: never).
    fn mac(&self, parts: &[&[u8]]) -> Option<Vec<u8>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Some(mac.finalize().into_bytes().to_vec())
    }

    /// The signature in hex (empty, which nothing verifies, if there were none).
    fn sign(&self, parts: &[&[u8]]) -> String {
        self.mac(parts).map(hex::encode).unwrap_or_default()
    }

    /// Whether `signature` is ours for `parts` (fails closed).
    fn verify(&self, parts: &[&[u8]], signature: &str) -> bool {
        match (hex::decode(signature), self.mac(parts)) {
            (Ok(given), Some(expected)) => constant_time_eq(&given, &expected),
            _ => false,
        }
    }
}

/// Cryptographically random bytes from the kernel.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    let mut filled = 0;
    while filled < N {
        let n =
            rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())
                .map_err(|e| WebError::Internal(format!("getrandom: {e}")))?;
        filled += n;
    }
    Ok(bytes)
}

/// Compares without an early exit (tokens, signatures).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashes `password` with argon2id (the format [`Admins`] expects; what
/// `updater web hash-password` prints).
///
/// ```
/// let hash = updater_web::auth::hash_password("correct horse")?;
/// assert!(hash.starts_with("$argon2id$"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| WebError::Password(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| WebError::Password(e.to_string()))
}

/// A script's bearer token: a name (recorded in history) and the SHA-256
/// (hex) of the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Recorded as the user (`web:<name>`).
    pub name: String,
    sha256: [u8; 32],
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ApiToken {
    /// A token known by its SHA-256 in hex (`sha256sum` of the token without newline).
    ///
    /// ```
    /// use updater_web::auth::ApiToken;
    /// let token = ApiToken::from_sha256_hex("ci", &ApiToken::digest("s3cret"))?;
    /// assert!(token.matches("s3cret"));
    /// assert!(!token.matches("guess"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_sha256_hex(name: impl Into<String>, sha256_hex: &str) -> Result<Self> {
        let bytes = hex::decode(sha256_hex.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| WebError::invalid("api token", "expected 64 hex digits (SHA-256)"))?;
        Ok(ApiToken {
            name: name.into(),
            sha256: bytes,
        })
    }

    /// The SHA-256 (hex) of `token`, as configured.
    pub fn digest(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    /// Whether `token` is this one.
    pub fn matches(&self, token: &str) -> bool {
        constant_time_eq(&Sha256::digest(token.as_bytes()), &self.sha256)
    }
}

/// The built-in login's accounts: user names and argon2id hashes.
#[derive(Clone, Default)]
pub struct Admins {
    hashes: HashMap<String, String>,
}

impl fmt::Debug for Admins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.hashes.keys().collect();
        names.sort();
        f.debug_struct("Admins").field("names", &names).finish()
    }
}

/// A hash checked for unknown users, so that a login takes as long
/// whether or not the user exists.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password("no account has this password").ok())
        .as_deref()
}

impl Admins {
    /// No accounts.
    pub fn new() -> Self {
        Admins::default()
    }

    /// Adds `name` with its argon2id PHC hash (builder style); a hash of
    /// another algorithm or a malformed one is refused.
    pub fn with_admin(mut self, name: impl Into<String>, hash: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let hash = hash.into();
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| WebError::invalid(format!("password hash of {name}"), e.to_string()))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(WebError::invalid(
                format!("password hash of {name}"),
                format!("{} is not argon2id", parsed.algorithm),
            ));
        }
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(WebError::invalid(
                "admin name",
                "empty or with control characters",
            ));
        }
        self.hashes.insert(name, hash);
        Ok(self)
    }

    /// Whether there is no account.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Checks a password (slow on purpose: argon2id). Blocking.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let (hash, known) = match self.hashes.get(name) {
            Some(hash) => (hash.as_str(), true),
            None => match dummy_hash() {
                Some(hash) => (hash, false),
                None => return false,
            },
        };
        let ok = PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        ok && known
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) csrf: String,
    created: Instant,
}

/// Sessions of the built-in login, in memory.
#[derive(Debug)]
pub(crate) struct Sessions {
    key: SessionKey,
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// Failed logins allowed per user name and per client address in [`FAILURE_WINDOW`].
pub const MAX_FAILED_LOGINS: usize = 5;
/// The window of [`MAX_FAILED_LOGINS`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "updater_session";
/// The cookie that binds the login form's CSRF token to the browser.
pub const LOGIN_COOKIE: &str = "updater_login";

impl Sessions {
    pub(crate) fn new(key: SessionKey, ttl: Duration) -> Self {
        Sessions {
            key,
            ttl,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    pub(crate) fn key(&self) -> &SessionKey {
        &self.key
    }

    /// A new session for `user`: the cookie value.
    pub(crate) fn create(&self, user: &str) -> Result<String> {
        let id = hex::encode(random_bytes::<32>()?);
        let csrf = hex::encode(random_bytes::<32>()?);
        let mut sessions = self.lock_sessions();
        let ttl = self.ttl;
        sessions.retain(|_, s| s.created.elapsed() < ttl);
        sessions.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf,
                created: Instant::now(),
            },
        );
        let signature = self.key.sign(&[b"session", id.as_bytes()]);
        Ok(format!("{id}.{signature}"))
    }

    /// The session of a cookie value, when signed by us and alive.
    pub(crate) fn get(&self, cookie: &str) -> Option<Session> {
        let (id, signature) = cookie.split_once('.')?;
        if !self.key.verify(&[b"session", id.as_bytes()], signature) {
            return None;
        }
        let mut sessions = self.lock_sessions();
        match sessions.get(id) {
            Some(session) if session.created.elapsed() < self.ttl => Some(session.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the session of a cookie value.
    pub(crate) fn remove(&self, cookie: &str) {
        if let Some((id, _)) = cookie.split_once('.') {
            self.lock_sessions().remove(id);
        }
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses an attempt for any of `keys` (user name, address) that
    /// failed too often recently.
    pub(crate) fn check_rate(&self, keys: &[String]) -> Result<()> {
        let mut failures = self.lock_failures();
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = failures.get_mut(key) {
                times.retain(|t| t.elapsed() < FAILURE_WINDOW);
                if times.len() >= MAX_FAILED_LOGINS
                    && let Some(oldest) = times.first()
                {
                    wait = wait.max(FAILURE_WINDOW.saturating_sub(oldest.elapsed()));
                }
            }
        }
        if wait > Duration::ZERO {
            return Err(WebError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        Ok(())
    }

    pub(crate) fn record_failure(&self, keys: &[String]) {
        let mut failures = self.lock_failures();
        // Forget what fell out of the window: guessing many names cannot grow the map.
        failures.retain(|_, times| times.last().is_some_and(|t| t.elapsed() < FAILURE_WINDOW));
        for key in keys {
            failures
                .entry(key.clone())
                .or_default()
                .push(Instant::now());
        }
    }

    pub(crate) fn clear_failures(&self, key: &str) {
        self.lock_failures().remove(key);
    }

    /// The login form's token for the browser holding `nonce` (its login cookie).
    pub(crate) fn login_token(&self, nonce: &str) -> String {
        self.key.sign(&[b"login", nonce.as_bytes()])
    }

    pub(crate) fn check_login_token(&self, nonce: &str, token: &str) -> bool {
        self.key.verify(&[b"login", nonce.as_bytes()], token)
    }
}

/// How the console authenticates.
#[derive(Clone)]
pub enum AuthMode {
    /// The built-in login with these accounts.
    Builtin(Admins),
    /// The host application says who the user is.
    Host(Arc<dyn HostAuth>),
}

impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::Builtin(admins) => f.debug_tuple("Builtin").field(admins).finish(),
            AuthMode::Host(_) => f.write_str("Host(..)"),
        }
    }
}

/// Who a request comes from, once authenticated (a request extension).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user.
    pub user: User,
    /// The CSRF token their forms carry.
    pub csrf: String,
    /// Authenticated by a bearer token (no CSRF token needed).
    pub bearer: bool,
    /// The session cookie, for logout (built-in login).
    pub(crate) session_cookie: Option<String>,
}

impl Identity {
    /// `web:<name>`: how history records this user.
    pub fn initiated_by(&self) -> String {
        format!("web:{}", self.user.name)
    }
}

/// The CSRF token of a host-authenticated user (stateless: bound to the name).
pub(crate) fn host_csrf(key: &SessionKey, user: &str) -> String {
    key.sign(&[b"csrf", user.as_bytes()])
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_hash_made_here_verifies_only_its_password() {
        let hash = hash_password("pw-1").unwrap();
        let admins = Admins::new().with_admin("alice", hash).unwrap();
        assert!(admins.verify("alice", "pw-1"));
        assert!(!admins.verify("alice", "pw-2"));
        assert!(!admins.verify("mallory", "pw-1"));
    }

    #[test]
    fn a_hash_of_another_algorithm_is_refused() {
        let error = Admins::new()
            .with_admin(
                "alice",
                "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$7UqWC2DGwJCLCyXuaDQDpg",
            )
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid password hash of alice: argon2i is not argon2id"
        );
    }

    #[test]
    fn a_tampered_session_cookie_is_refused() {
        let sessions = Sessions::new(SessionKey::random().unwrap(), Duration::from_secs(60));
        let cookie = sessions.create("alice").unwrap();
        assert_eq!(sessions.get(&cookie).unwrap().user, "alice");
        let (id, _) = cookie.split_once('.').unwrap();
        assert!(sessions.get(&format!("{id}.{}", "0".repeat(64))).is_none());
        sessions.remove(&cookie);
        assert!(sessions.get(&cookie).is_none());
    }

    #[test]
    fn a_short_session_secret_is_refused() {
        assert_eq!(
            SessionKey::from_bytes(b"short").unwrap_err().to_string(),
            "invalid session secret: 5 bytes; at least 32 are needed"
        );
    }
}
