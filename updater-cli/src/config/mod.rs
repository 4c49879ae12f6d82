//! `updater.toml` and the environment variables that override it.
//!
//! [`Config::load`] reads the file, applies the environment
//! ([`ENVIRONMENT_VARIABLES`]), then validates what serde cannot (exclusive
//! keys, required combinations, key syntax). Every error names the file, the
//! line and the key, or the environment variable.

mod file;
mod location;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::{
    AppSection, AutoUpdateSection, BackupHealthSection, BackupSection, ChannelKind, ChannelSection,
    ConfigFile, DatabaseKind, DatabaseSection, HealthSection, HistorySection, HooksSection,
    MaintenanceSection, MigrationsSection, NotificationsSection, PackageSection, PreflightEntry,
    RestoreTestSetting, ScheduleSection, Secret, SmtpSecurity, SourceKind, SourceSection, WebAdmin,
    WebSection, WebToken,
};
pub use location::{Position, key_at, line_of_key, position_of};

use updater_core::package::signature::PublicKeys;
use updater_core::pipeline::STATE_DIR_NAME;

use crate::error::{CliError, Result};

/// The file read when neither `--config` nor `UPDATER_CONFIG` is given.
pub const DEFAULT_CONFIG_FILE: &str = "updater.toml";

/// The environment variables of the original design, each overriding one key.
pub const ENVIRONMENT_VARIABLES: [(&str, &str); 11] = [
    (
        "UPDATE_CHECK_URL",
        "source.url (and source.kind = \"manifest\")",
    ),
    ("UPDATE_SERVER_TOKEN", "source.token"),
    ("AUTO_CHECK_UPDATES", "schedule.auto_check"),
    ("UPDATE_CHECK_INTERVAL", "schedule.interval_hours"),
    ("UPDATE_CHANNEL", "channel"),
    ("BACKUP_BEFORE_UPDATE", "backup.before_update"),
    ("BACKUP_RETENTION", "backup.retention"),
    ("MAINTENANCE_MODE_DURING_UPDATE", "maintenance.enabled"),
    ("VERIFY_UPDATE_CHECKSUM", "source.verify_checksum"),
    ("ALLOW_DOWNGRADE", "app.allow_downgrade"),
    ("ROLLBACK_TIMEOUT", "health.timeout_secs"),
];

/// A loaded, overridden and validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// The effective settings (file plus environment).
    pub file: ConfigFile,
    /// The environment variables that overrode the file.
    pub overridden_by: Vec<&'static str>,
    base_dir: PathBuf,
    text: String,
}

impl Config {
    /// Reads `path`, applies the process environment and validates.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(path, &text, &|name| std::env::var(name).ok())
    }

    /// Parses `text` (as if read from `path`) with the environment given by `env`.
    pub fn from_toml(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let mut file: ConfigFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |span| span.start);
            let Position { line, column } = position_of(text, offset);
            CliError::ConfigSyntax {
                path: path.to_path_buf(),
                line,
                column,
                key: key_at(text, offset),
                message: e.message().trim().to_string(),
            }
        })?;
        let overridden_by = apply_environment(&mut file, env)?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let config = Config {
            path: path.to_path_buf(),
            file,
            overridden_by,
            base_dir,
            text: text.to_string(),
        };
        config.validate(text)?;
        Ok(config)
    }

    fn value_error(&self, text: &str, key: &str, message: impl Into<String>) -> CliError {
        CliError::ConfigValue {
            path: self.path.clone(),
            line: line_of_key(text, key),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// A configuration error about `key`, with its line when the file has it.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> CliError {
        self.value_error(&self.text, key, message)
    }

    /// Turns an error met while building the part configured under `key`
    /// (a bad glob, a plain-HTTP URL, a missing password variable) into a
    /// configuration error about that key (exit code 2).
    pub fn blame(&self, key: &str, error: impl Into<CliError>) -> CliError {
        match error.into() {
            error @ (CliError::ConfigValue { .. }
            | CliError::ConfigSyntax { .. }
            | CliError::Environment { .. }) => error,
            other => self.error_at(key, crate::output::error_chain(&other)),
        }
    }

    fn validate(&self, text: &str) -> Result<()> {
        let f = &self.file;
        let err = |key: &str, message: &str| self.value_error(text, key, message);
        if f.app.keep_releases == 0 {
            return Err(err(
                "app.keep_releases",
                "must be at least 1 (rollback needs the previous release)",
            ));
        }
        let Some(source) = &f.source else {
            return Err(err(
                "source",
                "a [source] section is required (or set UPDATE_CHECK_URL)",
            ));
        };
        match source.kind {
            SourceKind::Github => {
                for (key, value) in [
                    ("source.owner", &source.owner),
                    ("source.repo", &source.repo),
                ] {
                    if value.as_deref().is_none_or(str::is_empty) {
                        return Err(err(key, "is required when source.kind = \"github\""));
                    }
                }
                if source.url.is_some() {
                    return Err(err(
                        "source.url",
                        "belongs to kind = \"manifest\"; GitHub uses owner and repo",
                    ));
                }
            }
            SourceKind::Manifest => {
                if source.url.as_deref().is_none_or(str::is_empty) {
                    return Err(err(
                        "source.url",
                        "is required when source.kind = \"manifest\"",
                    ));
                }
                for key in ["owner", "repo", "api_base"] {
                    let set = match key {
                        "owner" => source.owner.is_some(),
                        "repo" => source.repo.is_some(),
                        _ => source.api_base.is_some(),
                    };
                    if set {
                        return Err(err(
                            &format!("source.{key}"),
                            "belongs to kind = \"github\"",
                        ));
                    }
                }
            }
        }
        if source.token.is_some() && source.token_env.is_some() {
            return Err(err(
                "source.token_env",
                "give either token or token_env, not both",
            ));
        }
        if source.request_timeout_secs == 0 {
            return Err(err("source.request_timeout_secs", "must be positive"));
        }
        if source.transfer_deadline_secs == 0 {
            return Err(err("source.transfer_deadline_secs", "must be positive"));
        }
        if source.minimum_speed_window_secs == 0 {
            return Err(err(
                "source.minimum_speed_window_secs",
                "must be positive (turn the check off with minimum_speed_bytes = 0)",
            ));
        }
        if let Err(e) = PublicKeys::parse_all(source.public_keys.iter().map(String::as_str)) {
            return Err(err("source.public_keys", &e.to_string()));
        }
        let package = &f.package;
        if package.max_unpacked_mib == 0 {
            return Err(err("package.max_unpacked_mib", "must be positive"));
        }
        if package.max_entries == 0 {
            return Err(err("package.max_entries", "must be positive"));
        }
        if package.max_compression_ratio < 2 {
            return Err(err(
                "package.max_compression_ratio",
                "must be at least 2 (text compresses 3:1 to 10:1)",
            ));
        }
        if package.free_space_margin_percent > 90 {
            return Err(err(
                "package.free_space_margin_percent",
                "must be at most 90",
            ));
        }
        for (index, entry) in f.preflight.iter().enumerate() {
            let key = format!("preflight[{index}]");
            let kinds = [
                entry.binary.is_some(),
                entry.version.is_some(),
                entry.contains.is_some(),
                entry.command.is_some() && entry.contains.is_none(),
            ]
            .iter()
            .filter(|k| **k)
            .count();
            if kinds != 1 {
                return Err(err(
                    &key,
                    "give exactly one of `binary`, `version` (with `requirement`), `contains` (with `command`) or `command`",
                ));
            }
            if entry.version.is_some() {
                match &entry.requirement {
                    Some(text) => {
                        if let Err(e) = text.parse::<semver::VersionReq>() {
                            return Err(err(
                                &format!("{key}.requirement"),
                                &format!("{text:?} is not a version requirement: {e}"),
                            ));
                        }
                    }
                    None => {
                        return Err(err(
                            &key,
                            "`version` needs a `requirement` such as \">=8.2\"",
                        ));
                    }
                }
            }
            if entry.contains.is_some() && entry.command.is_none() {
                return Err(err(
                    &key,
                    "`contains` needs the `command` whose output it searches",
                ));
            }
        }
        if f.delta.max_changed_percent == 0 || f.delta.max_changed_percent > 100 {
            return Err(err(
                "delta.max_changed_percent",
                "must be between 1 and 100",
            ));
        }
        if f.schedule.round_secs == 0 {
            return Err(err("schedule.round_secs", "must be at least 1"));
        }
        if f.schedule.interval_hours == 0 {
            return Err(err("schedule.interval_hours", "must be at least 1"));
        }
        if f.backup.retention == 0 {
            return Err(err(
                "backup.retention",
                "must be at least 1 (the newest backup is always kept)",
            ));
        }
        if !(1..=9).contains(&f.backup.compression_level) {
            return Err(err("backup.compression_level", "must be between 1 and 9"));
        }
        if let Some(db) = &f.backup.database {
            self.validate_database(text, db)?;
        }
        let m = &f.maintenance;
        if m.enable.is_some() != m.disable.is_some() {
            return Err(err(
                "maintenance.enable",
                "enable and disable commands go together",
            ));
        }
        if m.enable.is_some() && m.flag_file.is_some() {
            return Err(err(
                "maintenance.flag_file",
                "give either a flag file or enable/disable commands",
            ));
        }
        if let Some(migrations) = &f.migrations {
            if migrations.up.trim().is_empty() {
                return Err(err("migrations.up", "must not be empty"));
            }
            if migrations.timeout_secs == 0 {
                return Err(err("migrations.timeout_secs", "must be positive"));
            }
        }
        if f.hooks.timeout_secs == 0 {
            return Err(err("hooks.timeout_secs", "must be positive"));
        }
        if f.health.timeout_secs == 0 {
            return Err(err("health.timeout_secs", "must be positive"));
        }
        if let Some(url) = &f.health.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(err("health.url", "must be an http:// or https:// URL"));
        }
        if f.history.database_url.is_some() && f.history.database_url_env.is_some() {
            return Err(err(
                "history.database_url_env",
                "give either database_url or database_url_env, not both",
            ));
        }
        if let Some(prefix) = &f.history.table_prefix
            && let Err(e) = updater_store_diesel::TablePrefix::new(prefix.clone())
        {
            return Err(err("history.table_prefix", &e.to_string()));
        }
        self.validate_web(text)
    }

    fn validate_web(&self, text: &str) -> Result<()> {
        let web = &self.file.web;
        let err = |key: &str, message: &str| self.value_error(text, key, message);
        if web.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(err(
                "web.listen",
                "must be an IP address and port, e.g. 127.0.0.1:8787",
            ));
        }
        if web.session_secret_env.is_some() && web.session_secret_file.is_some() {
            return Err(err(
                "web.session_secret_file",
                "give either session_secret_env or session_secret_file, not both",
            ));
        }
        if web.session_hours == 0 {
            return Err(err("web.session_hours", "must be at least 1"));
        }
        if web.tls_cert.is_some() != web.tls_key.is_some() {
            return Err(err("web.tls_cert", "tls_cert and tls_key go together"));
        }
        let mut admins = updater_web::auth::Admins::new();
        for admin in &web.admins {
            admins = admins
                .with_admin(admin.name.clone(), admin.password_hash.expose())
                .map_err(|e| err("web.admins", &e.to_string()))?;
        }
        for token in &web.api_tokens {
            updater_web::auth::ApiToken::from_sha256_hex(token.name.clone(), &token.sha256)
                .map_err(|e| err("web.api_tokens", &e.to_string()))?;
        }
        Ok(())
    }

    fn validate_database(&self, text: &str, db: &DatabaseSection) -> Result<()> {
        let err = |key: &str, message: &str| self.value_error(text, key, message);
        if db.password_env.is_some() && db.password_file.is_some() {
            return Err(err(
                "backup.database.password_file",
                "give either password_env or password_file, not both",
            ));
        }
        if let Some(url) = &db.url {
            if url_has_password(url) {
                return Err(err(
                    "backup.database.url",
                    "must not contain a password; use password_env or password_file",
                ));
            }
            if db.host.is_some() || db.database.is_some() || db.path.is_some() {
                return Err(err(
                    "backup.database.url",
                    "give either url or the separate fields, not both",
                ));
            }
        }
        match db.kind {
            DatabaseKind::Sqlite if db.url.is_none() && db.path.is_none() => Err(err(
                "backup.database.path",
                "is required for kind = \"sqlite\" (or give url)",
            )),
            DatabaseKind::Postgres | DatabaseKind::Mysql
                if db.url.is_none() && db.database.is_none() =>
            {
                Err(err("backup.database.database", "is required (or give url)"))
            }
            _ => Ok(()),
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The application directory (relative paths are relative to the config file).
    pub fn app_dir(&self) -> PathBuf {
        self.resolve(&self.file.app.dir)
    }

    /// `<app>/.updater`.
    pub fn state_dir(&self) -> PathBuf {
        self.app_dir().join(STATE_DIR_NAME)
    }

    /// The backup directory.
    pub fn backup_dir(&self) -> PathBuf {
        match &self.file.backup.dir {
            Some(dir) => self.resolve(dir),
            None => self.state_dir().join("backups"),
        }
    }

    /// The history database URL (may contain a password: never print it).
    pub fn history_url(&self) -> Result<String> {
        if let Some(name) = &self.file.history.database_url_env {
            return std::env::var(name).map_err(|_| {
                self.error_at(
                    "history.database_url_env",
                    format!("environment variable {name} is not set"),
                )
            });
        }
        Ok(match &self.file.history.database_url {
            Some(url) => url.clone(),
            None => self
                .state_dir()
                .join("history.sqlite")
                .display()
                .to_string(),
        })
    }

    /// The source token, from `token` or `token_env`.
    pub fn source_token(&self) -> Result<Option<Secret>> {
        let Some(source) = &self.file.source else {
            return Ok(None);
        };
        if let Some(name) = &source.token_env {
            return match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
                _ => Err(self.error_at(
                    "source.token_env",
                    format!("environment variable {name} is not set"),
                )),
            };
        }
        Ok(source.token.clone())
    }

    /// The `[[preflight]]` requirements (validated at load).
    pub fn requirements(&self) -> Vec<updater_core::requirement::Requirement> {
        use updater_core::requirement::Requirement;
        self.file
            .preflight
            .iter()
            .filter_map(|e| {
                let name = e.name.clone();
                Some(if let Some(program) = &e.binary {
                    Requirement::Binary {
                        name,
                        program: program.clone(),
                    }
                } else if let Some(command) = &e.version {
                    Requirement::Version {
                        name,
                        command: command.clone(),
                        requirement: e.requirement.as_deref()?.parse().ok()?,
                    }
                } else if let Some(text) = &e.contains {
                    Requirement::Contains {
                        name,
                        command: e.command.clone()?,
                        text: text.clone(),
                    }
                } else {
                    Requirement::Command {
                        name,
                        command: e.command.clone()?,
                        exit_code: e.exit_code.unwrap_or(0),
                    }
                })
            })
            .collect()
    }

    /// The health check deadline.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_secs(self.file.health.timeout_secs)
    }

    /// The schedule interval.
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs(self.file.schedule.interval_hours.saturating_mul(3600))
    }

    /// `[web] tls_cert` and `tls_key`, resolved, when both are set.
    pub fn web_tls(&self) -> Option<(PathBuf, PathBuf)> {
        let web = &self.file.web;
        Some((
            self.resolve(web.tls_cert.as_ref()?),
            self.resolve(web.tls_key.as_ref()?),
        ))
    }

    /// The effective configuration as JSON, secrets redacted.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.file).unwrap_or(serde_json::Value::Null);
        for pointer in [
            "/source/url",
            "/source/api_base",
            "/health/url",
            "/history/database_url",
            "/backup/database/url",
            "/notifications/console_url",
        ] {
            if let Some(url) = value.pointer_mut(pointer)
                && let Some(text) = url.as_str()
            {
                *url = serde_json::Value::String(updater_core::error::redact_url(text));
            }
        }
        // A webhook URL may carry a token in its path: scheme, host and port only.
        if let Some(channels) = value
            .pointer_mut("/notifications/channels")
            .and_then(serde_json::Value::as_array_mut)
        {
            for channel in channels {
                if let Some(url) = channel.get_mut("url")
                    && let Some(text) = url.as_str()
                {
                    let shown = url::Url::parse(text)
                        .ok()
                        .and_then(|u| u.host_str().map(|h| format!("{}://{h}/***", u.scheme())))
                        .unwrap_or_else(|| "***".into());
                    *url = serde_json::Value::String(shown);
                }
            }
        }
        value
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn redacted_toml(&self) -> String {
        let json = self.redacted_json();
        toml::to_string_pretty(&json).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

fn url_has_password(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Applies [`ENVIRONMENT_VARIABLES`] found by `env` to `file`; returns the
/// names that were applied. A bad value is an error naming the variable.
pub fn apply_environment(
    file: &mut ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<&'static str>> {
    let mut applied = Vec::new();
    let mut get = |name: &'static str| {
        let value = env(name).filter(|v| !v.trim().is_empty());
        if value.is_some() {
            applied.push(name);
        }
        value.map(|v| (name, v.trim().to_string()))
    };
    if let Some((_, url)) = get("UPDATE_CHECK_URL") {
        let source = file.source.get_or_insert_with(|| SourceSection {
            kind: SourceKind::Manifest,
            owner: None,
            repo: None,
            api_base: None,
            url: None,
            token: None,
            token_env: None,
            asset_pattern: None,
            public_keys: Vec::new(),
            verify_checksum: true,
            request_timeout_secs: 30,
            transfer_deadline_secs: 3600,
            minimum_speed_bytes: 1024,
            minimum_speed_window_secs: 30,
        });
        source.kind = SourceKind::Manifest;
        source.url = Some(url);
        source.owner = None;
        source.repo = None;
        source.api_base = None;
    }
    if let Some((name, token)) = get("UPDATE_SERVER_TOKEN") {
        let Some(source) = file.source.as_mut() else {
            return Err(CliError::Environment {
                name,
                message: "is set but there is no [source] (set UPDATE_CHECK_URL too)".into(),
            });
        };
        source.token = Some(Secret::new(token));
        source.token_env = None;
    }
    if let Some((name, v)) = get("AUTO_CHECK_UPDATES") {
        file.schedule.auto_check = parse_bool(name, &v)?;
    }
    if let Some((name, v)) = get("UPDATE_CHECK_INTERVAL") {
        let hours: u64 = parse_number(name, &v, "a whole number of hours")?;
        if hours == 0 {
            return Err(CliError::Environment {
                name,
                message: "must be at least 1 hour".into(),
            });
        }
        file.schedule.interval_hours = hours;
    }
    if let Some((name, v)) = get("UPDATE_CHANNEL") {
        file.channel = v.parse().map_err(|_| CliError::Environment {
            name,
            message: format!("{v:?} is not a channel (stable, beta or alpha)"),
        })?;
    }
    if let Some((name, v)) = get("BACKUP_BEFORE_UPDATE") {
        file.backup.before_update = parse_bool(name, &v)?;
    }
    if let Some((name, v)) = get("BACKUP_RETENTION") {
        let keep: usize = parse_number(name, &v, "a whole number of backups")?;
        if keep == 0 {
            return Err(CliError::Environment {
                name,
                message: "must be at least 1".into(),
            });
        }
        file.backup.retention = keep;
    }
    if let Some((name, v)) = get("MAINTENANCE_MODE_DURING_UPDATE") {
        file.maintenance.enabled = parse_bool(name, &v)?;
    }
    if let Some((name, v)) = get("VERIFY_UPDATE_CHECKSUM") {
        let verify = parse_bool(name, &v)?;
        if let Some(source) = file.source.as_mut() {
            source.verify_checksum = verify;
        }
    }
    if let Some((name, v)) = get("ALLOW_DOWNGRADE") {
        file.app.allow_downgrade = parse_bool(name, &v)?;
    }
    if let Some((name, v)) = get("ROLLBACK_TIMEOUT") {
        let secs: u64 = parse_number(name, &v, "a whole number of seconds")?;
        if secs == 0 {
            return Err(CliError::Environment {
                name,
                message: "must be at least 1 second".into(),
            });
        }
        file.health.timeout_secs = secs;
    }
    Ok(applied)
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(CliError::Environment {
            name,
            message: format!("{value:?} is not a boolean (true/false, 1/0, yes/no, on/off)"),
        }),
    }
}

fn parse_number<T: std::str::FromStr>(name: &'static str, value: &str, what: &str) -> Result<T> {
    value.parse().map_err(|_| CliError::Environment {
        name,
        message: format!("{value:?} is not {what}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const MINIMAL: &str = "[app]\ndir = \"/srv/app\"\n\n[source]\nkind = \"manifest\"\nurl = \"https://updates.example.com/manifest.json\"\n";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(text: &str) -> Result<Config> {
        Config::from_toml(Path::new("/etc/updater.toml"), text, &no_env)
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let config = load(MINIMAL).unwrap();
        assert_eq!(config.file.backup.retention, 3);
        assert!(config.file.backup.before_update);
        assert_eq!(config.file.schedule.interval_hours, 24);
        assert_eq!(
            config.history_url().unwrap(),
            "/srv/app/.updater/history.sqlite"
        );
        assert_eq!(config.backup_dir(), Path::new("/srv/app/.updater/backups"));
    }

    #[test]
    fn an_unknown_key_names_the_key_and_its_line() {
        let text = format!("{MINIMAL}\n[backup]\nretention = 2\ncolour = \"blue\"\n");
        let error = load(&text).unwrap_err();
        let CliError::ConfigSyntax {
            line, key, message, ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(*line, 10);
        assert_eq!(key.as_deref(), Some("backup.colour"));
        assert!(message.contains("colour"), "{message}");
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_key_and_its_line() {
        let text = format!("{MINIMAL}[health]\ntimeout_secs = \"soon\"\n");
        let error = load(&text).unwrap_err().to_string();
        assert!(error.starts_with("/etc/updater.toml:8:"), "{error}");
        assert!(error.contains("health.timeout_secs"), "{error}");
    }

    #[test]
    fn a_semantic_error_names_the_key_and_its_line() {
        let text = format!("{MINIMAL}[backup]\nretention = 0\n");
        let error = load(&text).unwrap_err().to_string();
        assert_eq!(
            error,
            "/etc/updater.toml:8: key `backup.retention`: must be at least 1 (the newest backup is always kept)"
        );
    }

    #[test]
    fn the_delta_section_is_read_and_an_impossible_share_is_refused() {
        let config = load(MINIMAL).unwrap();
        assert!(config.file.delta.enabled);
        assert_eq!(config.file.delta.max_changed_percent, 50);
        let text = format!(
            "{MINIMAL}[delta]\nenabled = false\nmax_changed_percent = 20\nunchanged = \"hardlink\"\n"
        );
        let config = load(&text).unwrap();
        assert!(!config.file.delta.enabled);
        assert_eq!(config.file.delta.max_changed_percent, 20);
        assert_eq!(
            config.file.delta.unchanged,
            updater_core::package::delta::UnchangedFiles::Hardlink
        );
        let error = load(&format!("{MINIMAL}[delta]\nmax_changed_percent = 0\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "/etc/updater.toml:8: key `delta.max_changed_percent`: must be between 1 and 100"
        );
        let error = load(&format!("{MINIMAL}[delta]\nunchanged = \"symlink\"\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("delta.unchanged"), "{error}");
    }

    #[test]
    fn a_database_url_with_a_password_is_refused() {
        let text = format!(
            "{MINIMAL}[backup.database]\nkind = \"postgres\"\nurl = \"postgres://app:hunter2@db/app\"\n"
        );
        let error = load(&text).unwrap_err().to_string();
        assert!(error.contains("backup.database.url"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn environment_variables_override_the_file() {
        let env = |name: &str| match name {
            "UPDATE_CHANNEL" => Some("beta".to_string()),
            "UPDATE_CHECK_INTERVAL" => Some("6".to_string()),
            "BACKUP_RETENTION" => Some("7".to_string()),
            "ALLOW_DOWNGRADE" => Some("yes".to_string()),
            "ROLLBACK_TIMEOUT" => Some("45".to_string()),
            "UPDATE_SERVER_TOKEN" => Some("s3cret".to_string()),
            _ => None,
        };
        let config = Config::from_toml(Path::new("u.toml"), MINIMAL, &env).unwrap();
        assert_eq!(config.file.channel.as_str(), "beta");
        assert_eq!(config.file.schedule.interval_hours, 6);
        assert_eq!(config.file.backup.retention, 7);
        assert!(config.file.app.allow_downgrade);
        assert_eq!(config.file.health.timeout_secs, 45);
        assert_eq!(config.overridden_by.len(), 6);
        let printed = config.redacted_toml();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let env = |name: &str| (name == "AUTO_CHECK_UPDATES").then(|| "maybe".to_string());
        let error = Config::from_toml(Path::new("u.toml"), MINIMAL, &env).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("environment variable AUTO_CHECK_UPDATES:")
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn update_check_url_alone_is_a_source() {
        let env = |name: &str| {
            (name == "UPDATE_CHECK_URL").then(|| "http://127.0.0.1:9/m.json".to_string())
        };
        let config = Config::from_toml(Path::new("u.toml"), "[app]\ndir = \".\"\n", &env).unwrap();
        let source = config.file.source.unwrap();
        assert_eq!(source.kind, SourceKind::Manifest);
        assert_eq!(source.url.as_deref(), Some("http://127.0.0.1:9/m.json"));
    }

    proptest::proptest! {
        /// Whatever the section and the misspelt key, the error names the
        /// key (with its table) and the line it is on.
        #[test]
        fn any_unknown_key_is_reported_with_its_table_and_line(
            section in proptest::sample::select(vec!["app", "source", "backup", "health", "history", "schedule", "maintenance"]),
            key in "zz_[a-z_]{1,12}",
            blank_lines in 0usize..4,
        ) {
            let mut text = MINIMAL.to_string();
            let header = format!("[{section}]\n");
            let insert_at = match text.find(&header) {
                Some(at) => at + header.len(),
                None => {
                    text.push_str(&header);
                    text.len()
                }
            };
            let line = text[..insert_at].matches('\n').count() + 1 + blank_lines;
            text.insert_str(insert_at, &format!("{}{key} = 1\n", "\n".repeat(blank_lines)));
            let error = load(&text).unwrap_err();
            let expected_key = format!("{section}.{key}");
            match error {
                CliError::ConfigSyntax { line: l, key: Some(k), .. } => {
                    proptest::prop_assert_eq!(l, line);
                    proptest::prop_assert_eq!(k, expected_key);
                }
                other => proptest::prop_assert!(false, "{other:?}"),
            }
        }
    }

    #[test]
    fn the_shipped_example_configuration_parses() {
        let text = include_str!("../../updater.example.toml");
        let config = Config::from_toml(Path::new("updater.example.toml"), text, &no_env).unwrap();
        assert!(config.file.source.is_some());
        assert_eq!(
            config.file.auto_update.level,
            updater_core::automation::AutoUpdateLevel::Patch
        );
        assert_eq!(config.file.auto_update.windows.len(), 1);
        assert_eq!(
            config.requirements().len(),
            3,
            "every [[preflight]] entry is used"
        );
    }
}
