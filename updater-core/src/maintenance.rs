//! Maintenance mode: the [`MaintenanceSwitch`] trait, a JSON flag file
//! ([`FlagFileMaintenance`], like Laravel's `storage/framework/down` or
//! WordPress's `.maintenance`) and shell commands ([`CommandMaintenance`],
//! e.g. `php artisan down` / `php artisan up`).
//!
//! The pipeline turns maintenance on only for the swap, migrations, hooks
//! and health check, and always turns it off again on every exit path (a
//! guard). The notice has an expiry longer than a normal update, so an
//! application can ignore a flag left by a crashed updater; the next
//! `recover()` reports and clears such a leftover flag.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::command::ShellCommand;
use crate::error::{Error, Result};

/// What maintenance mode tells clients, and when it ends at the latest.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceNotice {
    /// When maintenance began.
    pub started_at: DateTime<Utc>,
    /// Why (shown to users), e.g. `Updating to 1.4.0`.
    pub reason: String,
    /// Seconds a client should wait before retrying (`Retry-After`).
    pub retry_after_secs: u64,
    /// The HTTP status the application should answer with (503).
    pub http_status: u16,
    /// After this instant the flag is stale and the application should ignore it.
    pub expires_at: DateTime<Utc>,
    /// A secret that lets a request (the health check) through while maintenance is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_secret: Option<String>,
    /// Whether the updater turned maintenance on (and may turn it off when it
    /// finds it left over). Maintenance an operator set is only reported.
    #[serde(default)]
    pub set_by_updater: bool,
}

impl std::fmt::Debug for MaintenanceNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaintenanceNotice")
            .field("started_at", &self.started_at)
            .field("reason", &self.reason)
            .field("retry_after_secs", &self.retry_after_secs)
            .field("http_status", &self.http_status)
            .field("expires_at", &self.expires_at)
            .field(
                "bypass_secret",
                &self.bypass_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl MaintenanceNotice {
    /// A 503 notice starting now and expiring after `max_duration`, with a
    /// fresh random bypass secret from the operating system's generator
    /// (an error when it is unavailable: never a guessable secret).
    pub fn new(reason: impl Into<String>, max_duration: std::time::Duration) -> Result<Self> {
        let now = Utc::now();
        let expires =
            chrono::Duration::from_std(max_duration).unwrap_or(chrono::Duration::hours(1));
        Ok(MaintenanceNotice {
            started_at: now,
            reason: reason.into(),
            retry_after_secs: 60,
            http_status: 503,
            expires_at: now + expires,
            bypass_secret: Some(random_token()?),
            set_by_updater: true,
        })
    }

    /// A notice for maintenance someone else turned on (no secret, not the
    /// updater's to lift), as a status display shows it.
    pub fn external(reason: impl Into<String>) -> Self {
        let now = Utc::now();
        MaintenanceNotice {
            started_at: now,
            reason: reason.into(),
            retry_after_secs: 60,
            http_status: 503,
            expires_at: now + chrono::Duration::hours(1),
            bypass_secret: None,
            set_by_updater: false,
        }
    }

    /// Whether the notice has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// 32 random hex characters from the operating system's generator
/// (`getrandom`); an error, never a weaker fallback, when it fails.
pub(crate) fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(Error::unavailable(
                    "operating system random number generator",
                    format!("getrandom failed: {e}"),
                ));
            }
        }
    }
    Ok(hex::encode(bytes))
}

/// Turns the application's maintenance mode on and off.
///
/// # Contract
///
/// - [`enable`](Self::enable) and [`disable`](Self::disable) are idempotent;
///   `disable` when maintenance is off succeeds.
/// - After `enable` returns, new requests see maintenance; after `disable`
///   returns, they do not.
/// - [`status`](Self::status) returns the current notice, or `None` when off.
///
/// # Implementing
///
/// Required: all four methods. Run `updater_core::conformance::maintenance::run`.
pub trait MaintenanceSwitch: Send + Sync {
    /// A short description for logs.
    fn describe(&self) -> String;
    /// Turns maintenance on with `notice`.
    fn enable(&self, notice: &MaintenanceNotice) -> Result<()>;
    /// Turns maintenance off.
    fn disable(&self) -> Result<()>;
    /// The current notice, or `None` when off.
    fn status(&self) -> Result<Option<MaintenanceNotice>>;

    /// Files inside the application directory where the switch keeps its
    /// state while maintenance is on (a flag file). The pipeline keeps them
    /// visible at their path during the whole swap, also when their
    /// directory is swapped. Default: none.
    fn tree_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

crate::forward_trait!(MaintenanceSwitch:
    fn describe(&self) -> String;
    fn enable(&self, notice: &MaintenanceNotice) -> Result<()>;
    fn disable(&self) -> Result<()>;
    fn status(&self) -> Result<Option<MaintenanceNotice>>;
    fn tree_files(&self) -> Vec<PathBuf>;
);

/// Maintenance as a JSON file holding the [`MaintenanceNotice`], written
/// atomically (temp + rename) with mode 0600. The application checks
/// for the file on each request.
///
/// ```
/// use std::time::Duration;
/// use updater_core::maintenance::{FlagFileMaintenance, MaintenanceNotice, MaintenanceSwitch};
///
/// let dir = tempfile::tempdir()?;
/// let switch = FlagFileMaintenance::new(dir.path().join("maintenance.json"));
/// switch.enable(&MaintenanceNotice::new("Updating to 1.1.0", Duration::from_secs(900))?)?;
/// assert_eq!(switch.status()?.map(|n| n.reason), Some("Updating to 1.1.0".to_string()));
/// switch.disable()?;
/// assert!(switch.status()?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FlagFileMaintenance {
    path: PathBuf,
}

impl FlagFileMaintenance {
    /// A flag file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FlagFileMaintenance { path: path.into() }
    }

    /// The flag file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl MaintenanceSwitch for FlagFileMaintenance {
    fn describe(&self) -> String {
        format!("flag file {}", self.path.display())
    }

    fn enable(&self, notice: &MaintenanceNotice) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(notice)
            .map_err(|e| Error::other("serialise maintenance notice", e))?;
        crate::durable::create_dir_all(crate::durable::parent_of(&self.path))?;
        // Atomic (temp + rename) so the application never reads half a notice;
        // not fsynced: after a power cut, recovery clears a flag either way.
        crate::durable::write_atomic_unsynced(&self.path, &bytes)
    }

    fn disable(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove maintenance flag", &self.path, e)),
        }
    }

    fn tree_files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }

    fn status(&self) -> Result<Option<MaintenanceNotice>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::invalid(
                    format!("maintenance flag {}", self.path.display()),
                    e.to_string(),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read maintenance flag", &self.path, e)),
        }
    }
}

/// Maintenance through the application's own commands. `enable` gets the
/// notice as `UPDATER_MAINTENANCE_REASON`, `UPDATER_MAINTENANCE_RETRY_AFTER`
/// and `UPDATER_MAINTENANCE_SECRET`. Without a status command, the switch
/// remembers what it did last (in this process).
///
/// ```
/// use updater_core::command::ShellCommand;
/// use updater_core::maintenance::CommandMaintenance;
/// let switch = CommandMaintenance::new(
///     ShellCommand::new("php artisan down --retry=\"$UPDATER_MAINTENANCE_RETRY_AFTER\" --secret=\"$UPDATER_MAINTENANCE_SECRET\""),
///     ShellCommand::new("php artisan up"),
/// );
/// ```
#[derive(Debug)]
pub struct CommandMaintenance {
    enable: ShellCommand,
    disable: ShellCommand,
    status: Option<ShellCommand>,
    app_dir: Option<PathBuf>,
    flag_files: Vec<PathBuf>,
    last: std::sync::Mutex<Option<MaintenanceNotice>>,
}

impl CommandMaintenance {
    /// Runs `enable` to turn maintenance on and `disable` to turn it off.
    pub fn new(enable: ShellCommand, disable: ShellCommand) -> Self {
        CommandMaintenance {
            enable,
            disable,
            status: None,
            app_dir: None,
            flag_files: Vec::new(),
            last: std::sync::Mutex::new(None),
        }
    }

    /// A command that exits 0 when maintenance is on (builder style).
    pub fn with_status(mut self, status: ShellCommand) -> Self {
        self.status = Some(status);
        self
    }

    /// A file the commands create while maintenance is on (e.g. Laravel's
    /// `storage/framework/down`), kept visible during the swap (builder style).
    pub fn with_flag_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.flag_files.push(path.into());
        self
    }

    /// Runs the commands in `dir` (builder style).
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.app_dir = Some(dir.into());
        self
    }

    fn remember(&self, notice: Option<MaintenanceNotice>) {
        if let Ok(mut last) = self.last.lock() {
            *last = notice;
        }
    }
}

impl MaintenanceSwitch for CommandMaintenance {
    fn describe(&self) -> String {
        format!("command `{}`", self.enable.describe())
    }

    fn enable(&self, notice: &MaintenanceNotice) -> Result<()> {
        let mut command = self
            .enable
            .clone()
            .with_env("UPDATER_MAINTENANCE_REASON", notice.reason.clone())
            .with_env(
                "UPDATER_MAINTENANCE_RETRY_AFTER",
                notice.retry_after_secs.to_string(),
            );
        if let Some(secret) = &notice.bypass_secret {
            command = command.with_env("UPDATER_MAINTENANCE_SECRET", secret.clone());
        }
        command.run("maintenance on", self.app_dir.as_deref())?;
        self.remember(Some(notice.clone()));
        Ok(())
    }

    fn disable(&self) -> Result<()> {
        self.disable
            .run("maintenance off", self.app_dir.as_deref())?;
        self.remember(None);
        Ok(())
    }

    fn tree_files(&self) -> Vec<PathBuf> {
        self.flag_files
            .iter()
            .map(|file| match &self.app_dir {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.clone(),
            })
            .collect()
    }

    fn status(&self) -> Result<Option<MaintenanceNotice>> {
        let last = self.last.lock().ok().and_then(|l| l.clone());
        match &self.status {
            None => Ok(last),
            Some(status) => match status.run("maintenance status", self.app_dir.as_deref()) {
                Ok(_) => Ok(Some(last.unwrap_or_else(|| {
                    MaintenanceNotice::external("maintenance mode (set outside the updater)")
                }))),
                Err(Error::Command { .. }) => Ok(None),
                Err(other) => Err(other),
            },
        }
    }
}

/// Turns maintenance off when dropped, unless [`disarm`](Self::disarm)ed.
/// The pipeline holds one while maintenance is on, so every exit path
/// (error, early return, panic unwinding) clears the flag.
pub struct MaintenanceGuard<'a> {
    switch: Option<&'a dyn MaintenanceSwitch>,
}

impl std::fmt::Debug for MaintenanceGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaintenanceGuard")
            .field("armed", &self.switch.is_some())
            .finish()
    }
}

impl<'a> MaintenanceGuard<'a> {
    /// Enables maintenance with `notice` and returns the guard.
    pub fn enable(switch: &'a dyn MaintenanceSwitch, notice: &MaintenanceNotice) -> Result<Self> {
        let guard = MaintenanceGuard {
            switch: Some(switch),
        };
        switch.enable(notice)?;
        Ok(guard)
    }

    /// Turns maintenance off now and reports the result.
    pub fn release(mut self) -> Result<()> {
        match self.switch.take() {
            Some(switch) => switch.disable(),
            None => Ok(()),
        }
    }

    /// Leaves maintenance on (a simulated crash must not clean up).
    pub fn disarm(mut self) {
        self.switch = None;
    }
}

impl Drop for MaintenanceGuard<'_> {
    fn drop(&mut self) {
        if let Some(switch) = self.switch.take()
            && let Err(e) = switch.disable()
        {
            tracing::error!(switch = %switch.describe(), error = %e, "could not turn maintenance mode off");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_guard_turns_maintenance_off_on_drop_unless_disarmed() {
        let dir = tempfile::tempdir().unwrap();
        let switch = FlagFileMaintenance::new(dir.path().join("down.json"));
        let notice = MaintenanceNotice::new("t", Duration::from_secs(60)).unwrap();
        {
            let _guard = MaintenanceGuard::enable(&switch, &notice).unwrap();
            assert!(switch.status().unwrap().is_some());
        }
        assert!(switch.status().unwrap().is_none());
        MaintenanceGuard::enable(&switch, &notice).unwrap().disarm();
        assert!(switch.status().unwrap().is_some());
    }

    #[test]
    fn bypass_secrets_are_32_hex_digits_and_never_repeat() {
        // A time-and-pid fallback gives equal or near-equal tokens within
        // one process and one instant; the OS generator never does.
        let tokens: std::collections::HashSet<String> =
            (0..1000).map(|_| random_token().unwrap()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(
            tokens
                .iter()
                .all(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn the_notice_never_prints_its_secret() {
        let notice = MaintenanceNotice::new("t", Duration::from_secs(60)).unwrap();
        let secret = notice.bypass_secret.clone().unwrap();
        assert_eq!(secret.len(), 32);
        assert!(!format!("{notice:?}").contains(&secret));
    }

    #[test]
    fn command_maintenance_passes_the_notice_and_reads_status() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("down");
        let switch = CommandMaintenance::new(
            ShellCommand::new("printf '%s' \"$UPDATER_MAINTENANCE_REASON\" > down"),
            ShellCommand::new("rm -f down"),
        )
        .with_status(ShellCommand::new("test -f down"))
        .in_dir(dir.path());
        switch
            .enable(&MaintenanceNotice::new("Updating", Duration::from_secs(60)).unwrap())
            .unwrap();
        assert_eq!(std::fs::read_to_string(&flag).unwrap(), "Updating");
        assert!(switch.status().unwrap().is_some());
        switch.disable().unwrap();
        assert!(switch.status().unwrap().is_none());
    }
}
