//! # updater-cli — the `updater` command
//!
//! Operators of any server application (PHP, Node, Rust...) drive the
//! crash-safe self-updater through this binary and one TOML file: check for
//! releases, back up, apply with a maintenance window of a few renames,
//! roll back, recover after a crash, read the history. It is the only place
//! (with the examples) that wires the workspace together: `updater-core`'s
//! pipeline, `updater-source-github`'s GitHub and manifest sources and HTTP
//! health check, `updater-backup`'s file backups and `updater-store-diesel`'s
//! history in SQLite (or PostgreSQL/MySQL by feature).
//!
//! ## Why it is shaped this way
//!
//! - **A library with a thin `main`.** [`config`] (file + environment),
//!   [`components`] (config → parts) and [`commands`] (one function per
//!   subcommand returning an [`Outcome`](commands::Outcome): JSON, text and exit code) are
//!   testable without a process; `main` only parses arguments and prints.
//! - **Errors say where.** Unknown keys are refused (`deny_unknown_fields`
//!   everywhere); every configuration error names the file, the line and the
//!   dotted key, or the environment variable. Secrets (tokens, passwords) are
//!   never printed: `config check` shows them as `***`, database passwords
//!   only come from an environment variable or a 0600 file.
//! - **Recovery first.** Every command except `config check` and `unlock`
//!   runs `Updater::recover()` before anything else, so an update interrupted
//!   by a crash is finished or undone before the next one starts.
//! - **Scripts and humans.** `--json` prints one stable JSON object per
//!   command on standard output; text, progress bars (on a terminal) or plain
//!   progress lines (otherwise) and logs go to standard error. Destructive
//!   commands ask for confirmation on a terminal and refuse without one
//!   unless `--yes`.
//! - **Blocking.** Like the library, the tool is synchronous; `schedule`
//!   sleeps between rounds and stops on SIGTERM/SIGINT.
//!
//! ## Example: a configuration, validated from Rust
//!
//! ```
//! use std::path::Path;
//! use updater_cli::config::Config;
//!
//! let text = r#"
//! [app]
//! dir = "/srv/app"
//! [source]
//! kind = "manifest"
//! url = "https://updates.example.com/app/manifest.json"
//! "#;
//! let env = |name: &str| (name == "UPDATE_CHANNEL").then(|| "beta".to_string());
//! let config = Config::from_toml(Path::new("/srv/updater.toml"), text, &env)?;
//! assert_eq!(config.file.channel.as_str(), "beta");
//! assert_eq!(config.history_url()?, "/srv/app/.updater/history.sqlite");
//!
//! let typo = Config::from_toml(Path::new("/srv/updater.toml"), "[app]\ndir = \"/srv\"\ncolour = 1\n", &env);
//! assert!(typo.unwrap_err().to_string().starts_with("/srv/updater.toml:3:1: key `app.colour`"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! From the shell (see `updater --help` and `updater <command> --help`):
//!
//! ```text
//! updater config check                 # validate, print the effective config
//! updater check                        # exit 3 when an update is available
//! updater apply --yes                  # backup, download, verify, swap, migrate, health
//! updater history --json | jq '.updates[0].status'
//! updater schedule                     # systemd service: periodic check + cleanup
//! updater serve                        # the web console on 127.0.0.1:8787 ([web] admins)
//! ```
//!
//! ## Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure: the update failed (and was rolled back), a backup failed, the lock is held... |
//! | 2 | bad usage or configuration (also: confirmation needed but no terminal and no `--yes`); nothing was done |
//! | 3 | `check` found an update that may be installed |
//!
//! ## JSON output (`--json`)
//!
//! One object on standard output. Times are RFC 3339, versions strings,
//! absent values `null`. The objects are the serialisations of
//! `updater-core`'s reports and records (`CheckView`, `ApplyOutcome`,
//! `UpdateReport`, `RecoveryView`, `StatusView`, `UpdateRecord`,
//! `BackupView`): the web console's API (`updater serve`) answers with the
//! same objects. On error: `{"error": {"kind", "message", "exit_code"}}`
//! where `kind` is one of `config_read`, `config_syntax`, `config_value`,
//! `environment`, `usage`, `declined`, `io`, `not_found`, `invalid_input`,
//! `integrity`, `package_rejected`, `version_refused`, `precondition`,
//! `locked`, `unavailable`, `unsupported`, `command`, `step_failed`, `rolled_back`,
//! `needs_operator`, `application_data`, `other`.
//!
//! | command | object |
//! |---|---|
//! | `check` | `current`, `latest`, `update_available`, `update_type`, `from_cache`, `changelog`, `published_at` |
//! | `apply` | `outcome` (`updated` / `up_to_date`), then `from`, `to`, `update_id`, `update_type`, `maintenance_window_ms`, `backup_id` or `current` |
//! | `rollback` | `from`, `to`, `update_id`, `update_type`, `maintenance_window_ms`, `backup_id` |
//! | `recover` | `action` (`nothing`, `update_in_progress`, `cleaned_up`, `rolled_back`, `committed`), `running`, `abandoned`, `version`, `lock_holder`, `leftover_maintenance`, `stale_lock`, `stopped_children`, `probation` (as in `schedule --once`, or an `error` object) |
//! | `status` | `current`, `highest`, `kept`, `files_known`, `transition` (`phase`, `from`, `to`), `lock_holder` (`owner`, `pid`, `host`, `since`), `maintenance`, `latest_check`, `paused` (`reason`, `by`, `since`), `probation` (`version`, `previous`, `until`...), `scheduled` (pending one-off updates), `auto_update` (the level) |
//! | `history` | `updates`: `id`, `version`, `previous_version`, `status`, `update_type`, `initiated_by`, `auto_update`, `started_at`, `completed_at`, `failed_at`, `error_message`, `maintenance_window_ms`, `progress`, `steps` (`name`, `outcome`, `started_at`, `finished_at`, `message`) |
//! | `backup create` | `backup`: `id`, `version`, `kind`, `size`, `created_at`, `description`, `restorable`, `update_id`, `expires_at`, `status` |
//! | `backup list` | `backups`: the same objects, oldest first |
//! | `backup restore` | `restored`, `version`, then as `rollback` |
//! | `backup cleanup` | `deleted`, `kept` (ids) |
//! | `notifications` | `notifications`: `id`, `type`, `version`, `message`, `user`, `read`, `dismissed`, `created_at`; with `--mark-read`/`--dismiss`: `changed` |
//! | `unlock` | `cleared`, `holder` |
//! | `schedule --once` | `check` (as `check`, an error object or `null` when `auto_check` is off), `cleanup` (as `backup cleanup` or an error object), `automation` (`probation` (`state`: `none`, `healthy`, `passed`, `rolled_back`), `scheduled` (`id`, `message`), `automatic` (`message` or `error`, `null` when `[auto_update]` is off), `paused`) |
//! | `schedule --print-systemd` | `systemd_service` (the long-running service), `timer_service` and `timer` (a oneshot service running `--once` and its timer), `cron` |
//! | `apply --at` | `scheduled`: `id`, `at`, `version`, `created_by`, `created_at`, `status`, `attempts`, `update_id`, `message` |
//! | `scheduled` | `scheduled`: the same objects; with `--cancel`: `cancelled` |
//! | `pause` / `resume` | `paused` (`reason`, `by`, `since`); `resume` adds `resumed` |
//! | `preview` | `current`, `target`, `update_type`, `refused`, `changelog`, `download_size`, `package`, `baseline_known`, `added`, `changed`, `removed`, `mode_changes`, `preserved_shipped`, `carried`, `conflicts`, `pending_migrations`, `disk_needed`, `disk_free`, `expected_window_ms`, `expected_duration_ms`, `automatic` |
//! | `stats` | `since`, `attempts`, `completed`, `failed`, `rolled_back`, `unfinished`, `success_rate`, `rollbacks_by_step`, `failures_by_step`, `maintenance_window_ms` / `duration_ms` (`count`, `median`, `p95`, `max`), `step_ms`, `per_version`, `per_day` |
//! | `schedule` | on SIGTERM/SIGINT: `stopped` (`true`), `rounds` |
//! | `config check` | `file`, `valid`, `overridden_by`, `config` (secrets `***`) |
//! | `serve` | on SIGTERM/SIGINT: `stopped` (`true`), `listen` |
//! | `web hash-password` | `hash` |
//!
//! ## Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `postgres` | no | history in PostgreSQL (`[history] database_url = "postgres://..."`), links libpq |
//! | `mysql` | no | history in MySQL/MariaDB, links libmysqlclient |
//!
//! SQLite history is always available (compiled in).

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod components;
pub mod config;
pub mod database;
pub mod error;
pub mod notify;
pub mod output;
pub mod terminal;

pub use error::{CliError, Result, exit_code};

/// Runs the parsed command line: executes, prints the result or the error,
/// and returns the exit code.
/// Reports a command line clap refused: help and version go to standard
/// output as usual (exit 0); a usage error is printed as clap formats it,
/// or — when `--json` is among the arguments — as the JSON error object
/// (`kind` `usage`), exit 2.
pub fn usage_error(error: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || !std::env::args().any(|arg| arg == "--json")
    {
        let _ = error.print();
        return match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => error::exit_code::OK,
            _ => error::exit_code::USAGE,
        };
    }
    let message = error
        .render()
        .to_string()
        .lines()
        .find(|line| line.starts_with("error:"))
        .map(|line| line.trim_start_matches("error:").trim().to_string())
        .unwrap_or_else(|| error.kind().to_string());
    output::print_error(true, &error::CliError::Usage(message));
    error::exit_code::USAGE
}

/// Runs the command `cli` asks for, prints its outcome, returns the exit code.
pub fn run(cli: &cli::Cli) -> u8 {
    match commands::execute(cli) {
        Ok(outcome) => {
            output::print_outcome(cli.json, &outcome);
            outcome.exit_code
        }
        Err(error) => {
            tracing::debug!(?error, "command failed");
            output::print_error(cli.json, &error);
            error.exit_code()
        }
    }
}
