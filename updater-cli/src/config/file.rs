//! The shape of `updater.toml`: one struct per section, every one with
//! `deny_unknown_fields`, so a misspelt key is an error and never silently
//! ignored. `Serialize` prints the effective configuration (`config check`);
//! secrets serialise as `"***"`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
pub use updater_core::secret::Secret;
use updater_core::version::{Channel, Version};

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The channel to follow: `stable`, `beta` or `alpha` (`UPDATE_CHANNEL`).
    #[serde(default)]
    pub channel: Channel,
    /// The application.
    pub app: AppSection,
    /// Where releases come from. May be left out when `UPDATE_CHECK_URL` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSection>,
    /// The periodic check of `updater schedule`.
    #[serde(default)]
    pub schedule: ScheduleSection,
    /// Backups.
    #[serde(default)]
    pub backup: BackupSection,
    /// Maintenance mode during the swap.
    #[serde(default)]
    pub maintenance: MaintenanceSection,
    /// Database migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<MigrationsSection>,
    /// Commands after the swap and after a rollback.
    #[serde(default)]
    pub hooks: HooksSection,
    /// The health check that decides whether the new release stays.
    #[serde(default)]
    pub health: HealthSection,
    /// The history database.
    #[serde(default)]
    pub history: HistorySection,
    /// Admin notifications.
    #[serde(default)]
    pub notifications: NotificationsSection,
    /// Limits every package must stay within when it is unpacked.
    #[serde(default)]
    pub package: PackageSection,
    /// Delta updates: fetch only the changed files of a release that
    /// publishes a file index (`updater release build`).
    #[serde(default)]
    pub delta: DeltaSection,
    /// Which updates apply without a person, when, and their probation.
    #[serde(default)]
    pub auto_update: AutoUpdateSection,
    /// Requirements of the machine checked before every update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<PreflightEntry>,
    /// The web console (`updater serve`).
    #[serde(default)]
    pub web: WebSection,
}

/// `[auto_update]`: unattended updates (`updater schedule` / `updater serve` carry them out).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoUpdateSection {
    /// `none` (default), `patch`, `minor` or `all`.
    #[serde(default)]
    pub level: updater_core::automation::AutoUpdateLevel,
    /// A level per release channel, overriding `level` (e.g. `{ beta = "none" }`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub channels: std::collections::BTreeMap<
        updater_core::version::Channel,
        updater_core::automation::AutoUpdateLevel,
    >,
    /// Versions never applied automatically.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip: Vec<updater_core::version::Version>,
    /// When an automatic update may start, e.g. `["Sun 02:00-04:00 Europe/Berlin"]` (any time when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<updater_core::automation::Window>,
    /// Minutes a completed update stays on probation: its health check keeps
    /// running, and a failure rolls it back to the kept release and its
    /// database snapshot (0 or absent: no probation).
    #[serde(default)]
    pub probation_minutes: u64,
}

/// One `[[preflight]]` requirement: `name` and exactly one of `binary`,
/// `version` (with `requirement`), `contains` (with `command`), or `command`
/// (with an optional `exit_code`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightEntry {
    /// How the check is called in reports.
    pub name: String,
    /// A program that must be on `PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// A command printing a version (`php -v`), compared with `requirement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version requirement (`>=8.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// A command to run (with `contains`: its output must contain the text;
    /// alone: it must exit with `exit_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Text the output of `command` must contain (`intl` in `php -m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The exit code `command` must end with (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// `[delta]`: delta updates (HTTP ranges of the changed files only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSection {
    /// Try a delta when the release publishes an index (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Download the whole package when the changed files exceed this share
    /// of it, in percent (default 50).
    #[serde(default = "default_delta_max_changed")]
    pub max_changed_percent: u8,
    /// How unchanged files are staged: `auto` (reflink where the file system
    /// can, else a copy: the kept release stays intact; default), `copy`, or
    /// `hardlink` (no data written, but the new and the kept release share
    /// inodes: a file changed in place after the update changes the
    /// rollback target too).
    #[serde(default)]
    pub unchanged: updater_core::package::delta::UnchangedFiles,
}

fn default_delta_max_changed() -> u8 {
    50
}

impl Default for DeltaSection {
    fn default() -> Self {
        DeltaSection {
            enabled: true,
            max_changed_percent: default_delta_max_changed(),
            unchanged: updater_core::package::delta::UnchangedFiles::Auto,
        }
    }
}

/// `[package]`: resource limits on unpacking a release (an archive bomb, a
/// package larger than the disk, millions of tiny files).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSection {
    /// The most MiB a package may unpack to (default 8192). Never more than
    /// the free space of the disk minus `free_space_margin_*`.
    #[serde(default = "default_max_unpacked_mib")]
    pub max_unpacked_mib: u64,
    /// The most entries (files, directories, links) a package may hold (default 100000).
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
    /// The largest unpacked-to-packed ratio, per file and for the whole
    /// package, judged once 1 MiB was unpacked (default 200).
    #[serde(default = "default_max_compression_ratio")]
    pub max_compression_ratio: u32,
    /// Free space that must remain after unpacking, in percent of the disk
    /// (default 2)...
    #[serde(default = "default_margin_percent")]
    pub free_space_margin_percent: u8,
    /// ...and at least this many MiB (default 256).
    #[serde(default = "default_margin_mib")]
    pub free_space_margin_mib: u64,
}

fn default_max_unpacked_mib() -> u64 {
    updater_core::package::extract::DEFAULT_MAX_TOTAL_BYTES >> 20
}
fn default_max_entries() -> u64 {
    updater_core::package::extract::DEFAULT_MAX_ENTRIES
}
fn default_max_compression_ratio() -> u32 {
    updater_core::package::extract::DEFAULT_MAX_COMPRESSION_RATIO
}
fn default_margin_percent() -> u8 {
    updater_core::package::extract::DEFAULT_FREE_SPACE_MARGIN_PERCENT
}
fn default_margin_mib() -> u64 {
    updater_core::package::extract::DEFAULT_FREE_SPACE_MARGIN_MIN_BYTES >> 20
}

impl Default for PackageSection {
    fn default() -> Self {
        PackageSection {
            max_unpacked_mib: default_max_unpacked_mib(),
            max_entries: default_max_entries(),
            max_compression_ratio: default_max_compression_ratio(),
            free_space_margin_percent: default_margin_percent(),
            free_space_margin_mib: default_margin_mib(),
        }
    }
}

/// `[app]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// The application directory (relative paths are relative to the config file).
    pub dir: PathBuf,
    /// A file inside the application holding its version (default `VERSION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_file: Option<PathBuf>,
    /// The version to assume when neither the installed state nor the version file exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_version: Option<Version>,
    /// Paths carried from release to release (default `.env`, `storage/logs`, `storage/app/public`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserved_paths: Option<Vec<PathBuf>>,
    /// Allow installing an older version (`ALLOW_DOWNGRADE`).
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Allow installing the running version again.
    #[serde(default)]
    pub allow_reinstall: bool,
    /// Previous release trees kept for `updater rollback` (at least 1).
    #[serde(default = "default_keep_releases")]
    pub keep_releases: usize,
    /// What to do when application data (files the installed release did
    /// not ship) sits where the new release ships a file, or a shipped file
    /// was changed in place: `refuse` (default, listing every path),
    /// `keep-local` or `take-release`.
    #[serde(default)]
    pub data_conflicts: updater_core::ConflictPolicy,
    /// Application data that must not follow an update (version-specific
    /// caches), as globs relative to the application, e.g.
    /// `["bootstrap/cache/*.php"]`: left with the old release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discarded_paths: Vec<String>,
    /// MiB set aside before the maintenance window so a rollback can still
    /// write its journal on a disk that filled up (default 16).
    #[serde(default = "default_reserve_mib")]
    pub reserve_mib: u64,
}

fn default_reserve_mib() -> u64 {
    16
}

fn default_keep_releases() -> usize {
    1
}

/// The kind of release source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// GitHub releases (or GitHub Enterprise Server).
    Github,
    /// A JSON manifest on any static host (custom update server).
    Manifest,
}

/// `[source]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// `github` or `manifest`.
    pub kind: SourceKind,
    /// GitHub: the repository owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// GitHub: the repository name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// GitHub: the API base (GitHub Enterprise Server), default `https://api.github.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// Manifest: the manifest URL (`UPDATE_CHECK_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A bearer token (`UPDATE_SERVER_TOKEN`); prefer `token_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The name of an environment variable holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Which asset to install (`{version}`, `{target}` and `*` allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_pattern: Option<String>,
    /// Minisign public keys; when set, every release must be signed by one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<String>,
    /// Refuse assets without a SHA-256 (`VERIFY_UPDATE_CHECKSUM`, default true).
    #[serde(default = "yes")]
    pub verify_checksum: bool,
    /// Seconds for one HTTP request (default 30).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Seconds one download or metadata fetch may take in all, retries and
    /// resumes included (default 3600).
    #[serde(default = "default_transfer_deadline")]
    pub transfer_deadline_secs: u64,
    /// A transfer slower than this many bytes per second over
    /// `minimum_speed_window_secs` is aborted (default 1024; 0 turns it off),
    /// like curl's `--speed-limit`.
    #[serde(default = "default_minimum_speed")]
    pub minimum_speed_bytes: u64,
    /// The window of `minimum_speed_bytes`, like curl's `--speed-time` (default 30).
    #[serde(default = "default_minimum_speed_window")]
    pub minimum_speed_window_secs: u64,
}

fn default_request_timeout() -> u64 {
    30
}

fn default_transfer_deadline() -> u64 {
    3600
}

fn default_minimum_speed() -> u64 {
    1024
}

fn default_minimum_speed_window() -> u64 {
    30
}

fn yes() -> bool {
    true
}

/// `[schedule]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Check for updates on schedule (`AUTO_CHECK_UPDATES`, default true).
    #[serde(default = "yes")]
    pub auto_check: bool,
    /// Hours between checks (`UPDATE_CHECK_INTERVAL`, default 24).
    #[serde(default = "default_interval_hours")]
    pub interval_hours: u64,
    /// Seconds between rounds of unattended work: due scheduled updates,
    /// automatic updates in their windows (default 300; an update on
    /// probation is watched every `health.interval_secs`, at least every 5 s).
    #[serde(default = "default_round_secs")]
    pub round_secs: u64,
}

fn default_round_secs() -> u64 {
    300
}

fn default_interval_hours() -> u64 {
    24
}

impl Default for ScheduleSection {
    fn default() -> Self {
        ScheduleSection {
            round_secs: default_round_secs(),
            auto_check: true,
            interval_hours: default_interval_hours(),
        }
    }
}

/// `[backup]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Back up the files before every update (`BACKUP_BEFORE_UPDATE`, default true).
    #[serde(default = "yes")]
    pub before_update: bool,
    /// Where backups go (default `<app>/.updater/backups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// How many verified backups to keep (`BACKUP_RETENTION`, default 3).
    #[serde(default = "default_retention")]
    pub retention: usize,
    /// Globs excluded from the files backup, in addition to the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Deflate level 1 (fastest, default) to 9.
    #[serde(default = "default_compression_level")]
    pub compression_level: u32,
    /// The database snapshot taken inside the maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSection>,
}

fn default_retention() -> usize {
    3
}

fn default_compression_level() -> u32 {
    1
}

impl Default for BackupSection {
    fn default() -> Self {
        BackupSection {
            before_update: true,
            dir: None,
            retention: default_retention(),
            exclude: Vec::new(),
            compression_level: default_compression_level(),
            database: None,
        }
    }
}

/// The database engine of `[backup.database]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// A SQLite file.
    Sqlite,
    /// PostgreSQL through `pg_dump`/`pg_restore`.
    Postgres,
    /// MySQL or MariaDB through `mysqldump`/`mysql`.
    Mysql,
}

/// `[backup.database]`. The password never lives in this file: it comes
/// from `password_env` or `password_file`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite`, `postgres` or `mysql`.
    pub kind: DatabaseKind,
    /// A connection URL without password (`postgres://app@127.0.0.1/app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// SQLite: the database file (relative to the application directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Server host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Server port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A file (mode 0600) holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Whether a backup counts as verified only once it was restored into a
    /// scratch database (and whether, before each update, a trial snapshot
    /// is restored that way): `auto` (default: always for SQLite, dumps up to
    /// 64 MiB for servers, which needs the right to create databases),
    /// `always` or `never`.
    #[serde(default)]
    pub restore_test: RestoreTestSetting,
}

/// `backup.database.restore_test`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreTestSetting {
    /// The engine's default.
    #[default]
    Auto,
    /// Every dump.
    Always,
    /// None: checksums only.
    Never,
}

/// `[maintenance]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSection {
    /// Turn maintenance mode on during the swap (`MAINTENANCE_MODE_DURING_UPDATE`, default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The JSON flag file the application reads (default `<app>/.updater/maintenance.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_file: Option<PathBuf>,
    /// A command turning maintenance on instead of the flag file (with `disable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<String>,
    /// The command turning it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<String>,
    /// A command exiting 0 when maintenance is on (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Files the `enable` command creates inside the application (e.g.
    /// Laravel's `storage/framework/down`), kept visible during the swap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flag_files: Vec<PathBuf>,
    /// The `Retry-After` seconds announced to clients (default 60).
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u64,
    /// Seconds to wait after maintenance goes on, before the database
    /// snapshot, so requests that passed the maintenance check just before
    /// can finish (default 0).
    #[serde(default)]
    pub drain_secs: f64,
    /// A command that exits 0 once no request is in flight (run before the drain wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_command: Option<String>,
}

fn default_retry_after() -> u64 {
    60
}

impl Default for MaintenanceSection {
    fn default() -> Self {
        MaintenanceSection {
            enabled: true,
            flag_file: None,
            flag_files: Vec::new(),
            drain_secs: 0.0,
            drain_command: None,
            enable: None,
            disable: None,
            status: None,
            retry_after_secs: default_retry_after(),
        }
    }
}

/// `[migrations]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsSection {
    /// Applies the new release's migrations (run in the application directory).
    pub up: String,
    /// Reverts them to the old release (optional; without it a database snapshot is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
    /// Checks that migrations can run, before maintenance mode (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// Lists the migrations the new release would run, one per line, for
    /// `updater preview` (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Seconds each command may run (default 600).
    #[serde(default = "default_migration_timeout")]
    pub timeout_secs: u64,
}

fn default_migration_timeout() -> u64 {
    600
}

/// `[hooks]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSection {
    /// Commands run in the new release after the swap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_swap: Vec<String>,
    /// Commands run in the old release after a rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_rollback: Vec<String>,
    /// Seconds each command may run (default 300).
    #[serde(default = "default_hook_timeout")]
    pub timeout_secs: u64,
}

fn default_hook_timeout() -> u64 {
    300
}

impl Default for HooksSection {
    fn default() -> Self {
        HooksSection {
            after_swap: Vec::new(),
            after_rollback: Vec::new(),
            timeout_secs: default_hook_timeout(),
        }
    }
}

/// `[health]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// A command exiting 0 when the new release is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// An URL answering `expected_status` when healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The status `url` must answer (default 200).
    #[serde(default = "default_expected_status")]
    pub expected_status: u16,
    /// Text the body of `url` must contain (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Seconds the release has to become healthy before it is rolled back
    /// (`ROLLBACK_TIMEOUT`, default 300).
    #[serde(default = "default_health_timeout")]
    pub timeout_secs: u64,
    /// Seconds between attempts (default 2).
    #[serde(default = "default_health_interval")]
    pub interval_secs: u64,
}

fn default_expected_status() -> u16 {
    200
}

fn default_health_timeout() -> u64 {
    300
}

fn default_health_interval() -> u64 {
    2
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            command: None,
            url: None,
            expected_status: default_expected_status(),
            body_contains: None,
            timeout_secs: default_health_timeout(),
            interval_secs: default_health_interval(),
        }
    }
}

/// `[history]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    /// The database URL (default: the SQLite file `<app>/.updater/history.sqlite`).
    /// Printed with its password removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// The name of an environment variable holding the URL instead (for URLs with a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url_env: Option<String>,
    /// A prefix for the history tables (`[a-z_][a-z0-9_]*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_prefix: Option<String>,
}

/// `[notifications]`: who hears about what, and through which channels.
/// The database (rows for `updater notifications` and the web console) is
/// always a channel; `[[notifications.channels]]` add e-mail, Slack,
/// Discord, Teams and signed webhooks, delivered from the outbox.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsSection {
    /// Admins who get one notification each (one shared notification when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    /// Per-admin e-mail addresses (`alice = "alice@example.com"`); an e-mail
    /// channel's `to` may name admins instead of addresses.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub emails: std::collections::BTreeMap<String, String>,
    /// The events stored in the database (default `["all"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_events: Option<Vec<String>>,
    /// The application's name, in subjects (`[shop] Update to 1.2.0 ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// The web console, linked from every e-mail and chat message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// Seconds before the first retry of a failed delivery (default 30);
    /// each retry waits twice as long, with jitter...
    #[serde(default = "default_retry_first_secs")]
    pub retry_first_delay_secs: u64,
    /// ...up to this many seconds (default 3600).
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_delay_secs: u64,
    /// Attempts before a delivery is given up (default 20)...
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// ...or hours after the event (default 24). Given-up notices are kept,
    /// shown by `updater status` and announced on the other channels.
    #[serde(default = "default_give_up_hours")]
    pub give_up_after_hours: u64,
    /// Seconds a command waits at its end for its notices to be delivered
    /// (default 10); what is left is delivered by the next command.
    #[serde(default = "default_delivery_wait")]
    pub delivery_wait_secs: u64,
    /// The channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelSection>,
    /// Checks of `updater schedule` on the backups.
    #[serde(default)]
    pub backup_health: BackupHealthSection,
}

fn default_retry_first_secs() -> u64 {
    30
}
fn default_retry_max_secs() -> u64 {
    3600
}
fn default_max_attempts() -> u32 {
    20
}
fn default_give_up_hours() -> u64 {
    24
}
fn default_delivery_wait() -> u64 {
    10
}

impl Default for NotificationsSection {
    fn default() -> Self {
        NotificationsSection {
            admins: Vec::new(),
            emails: std::collections::BTreeMap::new(),
            database_events: None,
            app_name: None,
            console_url: None,
            retry_first_delay_secs: default_retry_first_secs(),
            retry_max_delay_secs: default_retry_max_secs(),
            max_attempts: default_max_attempts(),
            give_up_after_hours: default_give_up_hours(),
            delivery_wait_secs: default_delivery_wait(),
            channels: Vec::new(),
            backup_health: BackupHealthSection::default(),
        }
    }
}

/// `[notifications.backup_health]`: `updater schedule` notifies
/// (`backup_unhealthy`) when a limit is broken.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHealthSection {
    /// The newest restorable backup must be younger than this many hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_hours: Option<u64>,
    /// Restorable backups together must stay under this many MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_mib: Option<u64>,
}

/// The kind of a notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// E-mail over SMTP.
    Email,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord webhook.
    Discord,
    /// A Microsoft Teams incoming webhook.
    Teams,
    /// A generic JSON webhook, signed with HMAC-SHA256.
    Webhook,
}

/// SMTP connection security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// None: a relay on the same host only (port 25).
    None,
}

/// `[[notifications.channels]]`. Secrets (SMTP password, webhook URLs of
/// Slack/Discord/Teams, signing secrets) come from an environment variable
/// or a 0600 file, never from this file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    /// A unique name (`ops-mail`); deliveries are recorded under it.
    pub name: String,
    /// `email`, `slack`, `discord`, `teams` or `webhook`.
    pub kind: ChannelKind,
    /// Which events: `all`, `problems`, `outcomes` or event types
    /// (`update_failed`...). Default `outcomes` (all but available/started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Seconds one delivery may take (default 10).
    #[serde(default = "default_channel_timeout")]
    pub timeout_secs: u64,
    /// E-mail: the SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// E-mail: the port (default by `security`: 587, 465 or 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// E-mail: `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// E-mail: the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// E-mail: the environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// E-mail: a file (mode 0600) holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// E-mail: the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// E-mail: addresses, or admin names from `notifications.emails`
    /// (default: every admin with an address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// E-mail: a PEM CA certificate to trust besides the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Webhook only: the URL, when it is no secret (printed without path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable holding the webhook URL (required for
    /// Slack, Discord and Teams, whose URL is the credential)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// ...or a file (mode 0600) holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Webhook: the environment variable holding the signing secret...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// ...or a file (mode 0600) holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

fn default_channel_timeout() -> u64 {
    10
}

/// `[web]`: the admin console of `updater serve`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    /// The address to listen on (default `127.0.0.1:8787`). Anything but
    /// loopback is refused unless `updater serve --allow-insecure-remote`
    /// (the console does not terminate TLS itself: put a TLS proxy in front).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Who may sign in: names and argon2id hashes (`updater web hash-password`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<WebAdmin>,
    /// Scripts' bearer tokens: names and the SHA-256 (hex) of each token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_tokens: Vec<WebToken>,
    /// An environment variable holding the session secret (at least 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_secret_env: Option<String>,
    /// A file (mode 0600) holding the session secret. Without a secret,
    /// a random one is made at start: sessions end when the server stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_secret_file: Option<PathBuf>,
    /// How long a login lasts, in hours (default 8).
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// Marks cookies `Secure`: set when a TLS proxy serves the console
    /// (always on with `tls_cert`).
    #[serde(default)]
    pub secure_cookies: bool,
    /// Serve HTTPS with this certificate chain (PEM); with `tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM, mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// One admin of `[web]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebAdmin {
    /// The user name (recorded in history as `web:<name>`).
    pub name: String,
    /// The argon2id hash of the password (`$argon2id$...`).
    pub password_hash: Secret,
}

/// One API token of `[web]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebToken {
    /// Recorded as the user (`web:<name>`).
    pub name: String,
    /// The SHA-256 (hex) of the token (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
}

fn default_listen() -> String {
    "127.0.0.1:8787".to_string()
}

fn default_session_hours() -> u64 {
    8
}

impl Default for WebSection {
    fn default() -> Self {
        WebSection {
            listen: default_listen(),
            admins: Vec::new(),
            api_tokens: Vec::new(),
            session_secret_env: None,
            session_secret_file: None,
            session_hours: default_session_hours(),
            secure_cookies: false,
            tls_cert: None,
            tls_key: None,
        }
    }
}
