//! [`WebState`]: what the console needs from its host — the [`Updater`]
//! (shared), the backup strategies for manual backups and restores, the
//! history store, and how users authenticate — built with [`WebStateBuilder`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use updater_core::backup::{BackupKind, BackupStrategy};
use updater_core::history::HistoryStore;
use updater_core::outbox::NotificationOutbox;
use updater_core::pipeline::Updater;
use updater_core::release::Release;

use crate::auth::{Admins, ApiToken, AuthMode, HostAuth, SessionKey, Sessions};
use crate::error::{Result, WebError};
use crate::operations::Operations;

/// Everything the console's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("updater", &self.inner.updater)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

/// The releases of the channel as the source last listed them (or why it
/// could not), and when.
pub(crate) type CachedReleases = (Instant, std::result::Result<Vec<Release>, String>);

pub(crate) struct Inner {
    pub(crate) updater: Arc<Updater>,
    pub(crate) history: Arc<dyn HistoryStore>,
    pub(crate) manual_backup: Option<Arc<dyn BackupStrategy>>,
    pub(crate) strategies: Vec<Arc<dyn BackupStrategy>>,
    pub(crate) auth: AuthMode,
    pub(crate) sessions: Sessions,
    pub(crate) api_tokens: Vec<ApiToken>,
    pub(crate) operations: Arc<Operations>,
    pub(crate) secure_cookies: bool,
    pub(crate) backup_before_update: bool,
    pub(crate) title: String,
    pub(crate) releases: Mutex<Option<CachedReleases>>,
    /// The last verification of each backup in this process, for backups
    /// whose strategy keeps no catalogue record (the catalogue is read first).
    pub(crate) verified: Mutex<HashMap<String, (DateTime<Utc>, bool)>>,
    /// The notification outbox, whose deliveries say which channels fail.
    pub(crate) outbox: Option<Arc<dyn NotificationOutbox>>,
}

impl WebState {
    /// A builder around `updater`.
    pub fn builder(updater: Arc<Updater>) -> WebStateBuilder {
        WebStateBuilder::new(updater)
    }

    /// The updater.
    pub fn updater(&self) -> &Arc<Updater> {
        &self.inner.updater
    }

    /// The operation runner.
    pub fn operations(&self) -> &Arc<Operations> {
        &self.inner.operations
    }

    /// The strategy that restores, verifies and deletes a backup of `kind`.
    pub(crate) fn strategy_for(&self, kind: BackupKind) -> Result<Arc<dyn BackupStrategy>> {
        self.inner
            .strategies
            .iter()
            .find(|s| s.kind() == kind)
            .cloned()
            .ok_or_else(|| {
                WebError::Update(updater_core::Error::precondition(
                    "backup strategy",
                    format!(
                        "no backup strategy for {} backups is configured",
                        kind.as_str()
                    ),
                ))
            })
    }
}

/// Builds a [`WebState`].
///
/// ```
/// use std::sync::Arc;
/// use updater_core::pipeline::UpdaterBuilder;
/// use updater_core::source::LocalDirectorySource;
/// use updater_web::auth::{hash_password, Admins};
/// use updater_web::WebState;
///
/// # let dir = tempfile::tempdir()?;
/// # std::fs::write(dir.path().join("VERSION"), "1.0.0")?;
/// let updater = UpdaterBuilder::new(dir.path())
///     .with_source(LocalDirectorySource::new(dir.path().join("releases")))
///     .build()?;
/// let state = WebState::builder(Arc::new(updater))
///     .with_admins(Admins::new().with_admin("alice", hash_password("pw")?)?)
///     .build()?;
/// let app = axum::Router::new().nest("/admin/updates", updater_web::router(state));
/// # drop(app);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WebStateBuilder {
    updater: Arc<Updater>,
    history: Option<Arc<dyn HistoryStore>>,
    manual_backup: Option<Arc<dyn BackupStrategy>>,
    strategies: Vec<Arc<dyn BackupStrategy>>,
    auth: Option<AuthMode>,
    key: Option<SessionKey>,
    ttl: Duration,
    api_tokens: Vec<ApiToken>,
    secure_cookies: bool,
    backup_before_update: bool,
    title: String,
    outbox: Option<Arc<dyn NotificationOutbox>>,
}

impl std::fmt::Debug for WebStateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebStateBuilder")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl WebStateBuilder {
    /// Defaults: the updater's history, no backups, no authentication yet
    /// (one must be given), a random session key, 8-hour sessions,
    /// cookies without `Secure`, a backup before each update.
    pub fn new(updater: Arc<Updater>) -> Self {
        WebStateBuilder {
            updater,
            history: None,
            manual_backup: None,
            strategies: Vec::new(),
            auth: None,
            key: None,
            ttl: Duration::from_secs(8 * 3600),
            api_tokens: Vec::new(),
            secure_cookies: false,
            backup_before_update: true,
            title: "Updates".to_string(),
            outbox: None,
        }
    }

    /// The history store to read (default: the updater's).
    pub fn with_history(mut self, history: Arc<dyn HistoryStore>) -> Self {
        self.history = Some(history);
        self
    }

    /// What "Create backup" takes; it also verifies, restores and deletes
    /// backups of its kind.
    pub fn with_manual_backup(mut self, strategy: Arc<dyn BackupStrategy>) -> Self {
        self.strategies.push(strategy.clone());
        self.manual_backup = Some(strategy);
        self
    }

    /// A strategy that verifies, restores and deletes backups of its kind
    /// (e.g. files-only backups taken before updates).
    pub fn with_backup_strategy(mut self, strategy: Arc<dyn BackupStrategy>) -> Self {
        self.strategies.push(strategy);
        self
    }

    /// The built-in login with these accounts.
    pub fn with_admins(mut self, admins: Admins) -> Self {
        self.auth = Some(AuthMode::Builtin(admins));
        self
    }

    /// Delegation: the host application authenticates.
    pub fn with_host_auth(mut self, auth: Arc<dyn HostAuth>) -> Self {
        self.auth = Some(AuthMode::Host(auth));
        self
    }

    /// The key that signs session cookies (keep it across restarts to keep sessions valid).
    pub fn with_session_key(mut self, key: SessionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// How long a login lasts.
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// A bearer token for scripts.
    pub fn with_api_token(mut self, token: ApiToken) -> Self {
        self.api_tokens.push(token);
        self
    }

    /// Marks cookies `Secure` (set when the console is served over TLS).
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// Whether "Update now" takes the files backup first (default yes).
    pub fn with_backup_before_update(mut self, backup: bool) -> Self {
        self.backup_before_update = backup;
        self
    }

    /// The notification outbox (e.g. `updater_notify::Dispatcher::outbox`):
    /// `/api/status` then reports each channel with waiting or given-up
    /// notices (`notification_channels`, as `updater status --json` does)
    /// and the dashboard names the failing ones. Without it,
    /// `notification_channels` is `null`.
    pub fn with_notification_outbox(mut self, outbox: Arc<dyn NotificationOutbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The title of the pages (default `Updates`).
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Checks and builds: some authentication must be configured (a
    /// built-in login with at least one admin, or delegation), else nothing
    /// could ever be reached.
    pub fn build(self) -> Result<WebState> {
        let auth = match self.auth {
            Some(AuthMode::Builtin(admins)) if admins.is_empty() && self.api_tokens.is_empty() => {
                return Err(WebError::invalid(
                    "authentication",
                    "the built-in login has no admin account and there is no API token",
                ));
            }
            Some(auth) => auth,
            None if !self.api_tokens.is_empty() => AuthMode::Builtin(Admins::new()),
            None => {
                return Err(WebError::invalid(
                    "authentication",
                    "give admins (built-in login), a host authenticator or an API token",
                ));
            }
        };
        let key = match self.key {
            Some(key) => key,
            None => SessionKey::random()?,
        };
        let history = self
            .history
            .unwrap_or_else(|| self.updater.history().clone());
        Ok(WebState {
            inner: Arc::new(Inner {
                updater: self.updater,
                history,
                manual_backup: self.manual_backup,
                strategies: self.strategies,
                auth,
                sessions: Sessions::new(key, self.ttl),
                api_tokens: self.api_tokens,
                operations: Arc::new(Operations::new()),
                secure_cookies: self.secure_cookies,
                backup_before_update: self.backup_before_update,
                title: self.title,
                releases: Mutex::new(None),
                verified: Mutex::new(HashMap::new()),
                outbox: self.outbox,
            }),
        })
    }
}
