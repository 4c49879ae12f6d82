//! The command line (clap derive). Every subcommand's help is its documentation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  failure (the update failed or was rolled back, a backup failed, ...)
  2  bad usage or configuration: nothing was done
  3  `updater check` found an update that may be installed

Every command except `config check` and `unlock` first finishes or undoes an
update interrupted by a crash (recovery). With --json, standard output is one
JSON object (documented in the crate docs); errors become
{\"error\": {\"kind\", \"message\", \"exit_code\"}}. Logs go to standard error
(-v, -vv or RUST_LOG=updater=debug).

Environment: UPDATER_CONFIG, and the overrides UPDATE_CHECK_URL,
UPDATE_SERVER_TOKEN, AUTO_CHECK_UPDATES, UPDATE_CHECK_INTERVAL, UPDATE_CHANNEL,
BACKUP_BEFORE_UPDATE, BACKUP_RETENTION, MAINTENANCE_MODE_DURING_UPDATE,
VERIFY_UPDATE_CHECKSUM, ALLOW_DOWNGRADE, ROLLBACK_TIMEOUT.";

/// Crash-safe self-updates for a server application: check, back up, apply,
/// roll back, recover — driven by `updater.toml`.
#[derive(Debug, Parser)]
#[command(name = "updater", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The configuration file [default: ./updater.toml].
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "UPDATER_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Print one JSON object on standard output instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// More logs on standard error (-v info, -vv debug, -vvv trace); RUST_LOG wins.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask the release source for the newest release of the channel.
    ///
    /// Exits 3 when an update may be installed, 0 when up to date. A check
    /// younger than an hour is answered from history unless --force.
    ///
    /// JSON: {"current", "latest", "update_available", "update_type", "from_cache", "changelog", "published_at"}.
    Check {
        /// Ask the source even if a recent check is recorded.
        #[arg(long)]
        force: bool,
    },

    /// Install the newest release (or --version): backup, download, verify,
    /// stage, then swap, migrate, hooks and health check in maintenance mode.
    ///
    /// Any failure inside the maintenance window rolls back automatically
    /// (exit 1). Asks for confirmation on a terminal; without a terminal
    /// --yes is required.
    ///
    /// JSON: {"outcome": "updated"|"up_to_date", "from", "to", "update_id", "update_type", "maintenance_window_ms", "backup_id"}.
    Apply {
        /// Install this version instead of the newest.
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// Do not apply now: schedule it for this time (RFC 3339, e.g.
        /// `2026-12-01T02:00+01:00`); `updater schedule` (or `serve`)
        /// carries it out. JSON: {"scheduled": {"id", "at", "version", ...}}.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Skip the files backup taken before the update.
        #[arg(long)]
        no_backup: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },

    /// Go back to the previous release (kept since the last update).
    ///
    /// Migrations are reverted when a `down` command is configured;
    /// otherwise --restore-database-snapshot restores the database as it
    /// was before that update (every write since is lost).
    ///
    /// JSON: {"from", "to", "update_id", "update_type", "maintenance_window_ms", "backup_id"}.
    Rollback {
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Allow restoring the pre-update database snapshot.
        #[arg(long)]
        restore_database_snapshot: bool,
    },

    /// Finish or undo an update interrupted by a crash; clear a leftover
    /// maintenance flag; report a stale lock.
    ///
    /// Every other command does this first; run it alone at boot. Then
    /// watches an update on probation once (rolling it back if its health
    /// check fails).
    ///
    /// JSON: {"action", "running", "abandoned", "version", "lock_holder", "leftover_maintenance", "stale_lock", "probation"}.
    Recover {
        /// After fixing the cause, retry a recovery that stopped in "needs operator".
        #[arg(long)]
        retry: bool,
    },

    /// Show the running version, kept releases, lock, maintenance mode and the last check.
    ///
    /// JSON: {"current", "highest", "kept", "files_known", "transition", "lock_holder", "maintenance", "latest_check", "paused", "probation", "scheduled", "auto_update"}.
    Status,

    /// List past updates and rollbacks, newest first, with their steps.
    ///
    /// JSON: {"updates": [{"id", "version", "previous_version", "status", "update_type", "initiated_by", "started_at", "completed_at", "failed_at", "error_message", "maintenance_window_ms", "progress", "steps": [...]}]}.
    History {
        /// How many records.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// How many of the newest records to skip.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },

    /// Create, list, restore and clean up backups of the application files.
    #[command(subcommand)]
    Backup(BackupCommand),

    /// List admin notifications, or mark one read / dismiss it; `test
    /// [CHANNEL]` sends a test message through a channel (every channel
    /// without a name) and reports its answer (exit 1 when one fails).
    ///
    /// Without options: unread, undismissed notifications.
    ///
    /// JSON: {"notifications": [{"id", "type", "version", "message", "user", "read", "dismissed", "read_at", "metadata", "created_at"}]}
    /// or, with --mark-read/--dismiss, {"changed": [1 id]};
    /// `test`: {"results": [{"channel", "description", "ok", "answer", "error", "took_ms"}]}.
    Notifications(NotificationsArgs),

    /// Remove the update lock left by a process that cannot release it.
    ///
    /// Only when you are sure no update is running. Does not run recovery.
    ///
    /// JSON: {"cleared": bool, "holder"}.
    Unlock {
        /// Required: confirms that no update is running.
        #[arg(long, required = true)]
        force: bool,
    },

    /// Run in the foreground (systemd, cron): every `schedule.round_secs`,
    /// watch an update on probation, carry out due scheduled updates and
    /// automatic updates in their windows (`[auto_update]`), deliver
    /// notices; every `schedule.interval_hours`, check for updates and clean
    /// up backups. Stops on SIGTERM or SIGINT (exit 0).
    ///
    /// JSON: with --once {"check", "cleanup", "automation"}; on a signal {"stopped": true, "rounds"}.
    Schedule {
        /// Run one round and exit.
        #[arg(long)]
        once: bool,
        /// Print a systemd service running `updater schedule` for this
        /// configuration (and a cron line running `--once`), and exit.
        /// JSON: {"systemd_service", "timer_service", "timer", "cron"}.
        #[arg(long)]
        print_systemd: bool,
        /// With --print-systemd: print a oneshot service running
        /// `schedule --once` and the timer starting it every 5 minutes,
        /// instead of the long-running service.
        #[arg(long, requires = "print_systemd")]
        timer: bool,
    },

    /// Work with the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Pause automatic and scheduled updates (shown by `status`) until `resume`.
    ///
    /// An update on probation is still watched (and rolled back if it fails).
    ///
    /// JSON: {"paused": {"reason", "by", "since"}}.
    Pause {
        /// Why (shown to other operators).
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
    },

    /// Resume automatic and scheduled updates.
    ///
    /// JSON: {"resumed": bool, "paused": {...} or null}.
    Resume,

    /// List one-off scheduled updates (`apply --at`), or cancel one.
    ///
    /// JSON: {"scheduled": [{"id", "at", "version", "created_by", "created_at", "status", "attempts", "update_id", "message"}]}
    /// or, with --cancel, {"cancelled": {...}}.
    Scheduled {
        /// Include the ones already carried out or cancelled.
        #[arg(long)]
        all: bool,
        /// Cancel the pending scheduled update ID.
        #[arg(long, value_name = "ID")]
        cancel: Option<i64>,
    },

    /// Show what updating to the newest release (or VERSION) would do,
    /// without changing anything: files added, changed and removed, mode
    /// changes, preserved paths the package ships, application data carried
    /// or in conflict, pending migrations, every changelog in between,
    /// download size, disk space, expected window and duration, and whether
    /// the automatic-update policy would apply it. The verified package is
    /// kept for the next `apply`.
    ///
    /// JSON: the preview report (see the `updater_core::pipeline::PreviewReport` docs).
    Preview {
        /// The version to preview (default: the newest of the channel).
        version: Option<String>,
    },

    /// Update analytics from history: attempts, success rate, rollbacks by
    /// failing step, median and 95th percentile maintenance window and
    /// duration, time per step, per version and per day.
    ///
    /// JSON: the statistics (see `updater_core::stats::UpdateStats`).
    Stats {
        /// Only updates since this date (`2026-11-01`) or this long ago (`30d`, `12h`).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
    /// Serve the web console and its JSON API (`[web]` in the config) until
    /// SIGTERM or SIGINT. Listens on loopback unless told otherwise; refuses
    /// any other address without TLS (`web.tls_cert` and `web.tls_key`) or
    /// --allow-insecure-remote (behind a TLS proxy; set `web.secure_cookies`).
    ///
    /// Prints `listening on http://ADDRESS` on standard error once ready.
    /// JSON: on a signal {"stopped": true, "listen"}.
    Serve(ServeArgs),

    /// Web console helpers.
    #[command(subcommand)]
    Web(WebCommand),

    /// The publisher's side: build, sign and publish releases. Needs no
    /// `updater.toml` and runs no recovery (it works on a build directory).
    #[command(subcommand)]
    Release(ReleaseCommand),
}

/// `updater serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on [default: `web.listen`, else 127.0.0.1:8787].
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,
    /// Allow a non-loopback address without TLS (only behind a TLS proxy).
    #[arg(long)]
    pub allow_insecure_remote: bool,
}

/// `updater web ...`.
#[derive(Debug, Subcommand)]
pub enum WebCommand {
    /// Hash a password for `[web] admins` (argon2id): reads it from standard
    /// input (without echo on a terminal) and prints the hash.
    ///
    /// JSON: {"hash"}.
    HashPassword,
}

/// `updater release ...`.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Build a release from a directory: `app-VERSION.tar.gz` (entries
    /// sorted, owner 0:0, one modification time: the same tree gives the
    /// same bytes; `tar xzf` reads it), its file index for delta updates,
    /// `SHA256SUMS`, the minisign signature over the release metadata (with
    /// --key) and `release.json`, the entry for a custom server's manifest.
    ///
    /// A tree holding what the installer would refuse (devices, FIFOs,
    /// sockets, setuid/setgid files, symlinks leading out, names colliding
    /// by case) is refused with the installer's error before anything is
    /// written. An encrypted key's password is read from
    /// UPDATER_SIGNING_PASSWORD.
    ///
    /// JSON: {"version", "archive", "size", "sha256", "index", "index_sha256", "entries", "files", "checksums", "signature", "release_entry"}.
    Build {
        /// The build directory (the tree the application runs from).
        dir: PathBuf,
        /// The release version (semver).
        #[arg(long, value_name = "VERSION")]
        version: String,
        /// Publish on this channel (stable, beta, alpha) [default: the version's].
        #[arg(long, value_name = "CHANNEL")]
        channel: Option<String>,
        /// Release notes, read from this file.
        #[arg(long, value_name = "FILE")]
        changelog: Option<PathBuf>,
        /// Sign with this minisign secret key (from `updater release keygen`).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// How long the signed metadata stays valid, in days.
        #[arg(long, value_name = "DAYS", default_value_t = 365)]
        expires_in_days: u32,
        /// The package's file name [default: app-VERSION.tar.gz].
        #[arg(long, value_name = "NAME")]
        asset_name: Option<String>,
        /// The modification time of every entry, in seconds since the epoch
        /// [default: SOURCE_DATE_EPOCH, else the newest in the tree].
        #[arg(long, value_name = "SECONDS")]
        mtime: Option<u64>,
        /// Where to write the release (created if needed).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },

    /// Merge the release built in OUT (its release.json) into a custom
    /// server's manifest.json, keeping the older releases (a release of the
    /// same version is replaced). Asset URLs are relative to the manifest,
    /// or --base-url + name.
    ///
    /// JSON: {"manifest", "version", "releases" (every version in the manifest)}.
    Manifest {
        /// The output directory of `updater release build`.
        out: PathBuf,
        /// The manifest to update (created if missing) [default: OUT/../manifest.json].
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Where the assets will be served from, when not beside the manifest.
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },

    /// Create a minisign key pair for signing releases: the secret key
    /// (mode 0600, encrypted with UPDATER_SIGNING_PASSWORD when set) and the
    /// public key to put in every installation's `public_keys` (in `[source]` of `updater.toml`).
    /// Refuses to overwrite existing files unless --force.
    ///
    /// JSON: {"secret_key", "public_key", "key_id", "encrypted"}.
    Keygen {
        /// The secret key file.
        #[arg(long, value_name = "FILE", default_value = "minisign.key")]
        secret_key: PathBuf,
        /// The public key file.
        #[arg(long, value_name = "FILE", default_value = "minisign.pub")]
        public_key: PathBuf,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
}

/// `updater backup ...`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the application files now (verified after writing).
    ///
    /// JSON: {"backup": {"id", "version", "kind", "size", "created_at", "description", "restorable", "status"}}.
    Create {
        /// A note stored with the backup.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List backups, oldest first.
    ///
    /// JSON: {"backups": [{"id", "version", "kind", "size", "created_at", "description", "restorable", "status"}]}.
    List,
    /// Restore a backup as atomically as an update: its files are staged
    /// beside the application and swapped in inside the maintenance window,
    /// its database part restored after a snapshot of the current one; a
    /// failure or a crash puts everything back. The live preserved paths
    /// (`.env`...) and application data the backup does not hold are kept;
    /// the replaced files stay in the kept release for `updater rollback`.
    ///
    /// Asks for confirmation on a terminal; without a terminal --yes is required.
    ///
    /// JSON: {"restored": ID, "version", "update_id", "maintenance_window_ms", "saved_aside"}.
    Restore {
        /// The backup id (from `updater backup list`).
        id: String,
        /// Also put back the backup's copies of preserved paths (`.env`...).
        #[arg(long)]
        include_preserved: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Delete old backups: keep the newest N verified ones (default
    /// `backup.retention`); never the newest backup, nor the newest backup of
    /// the running version. Unverified, incomplete ones are removed too.
    ///
    /// JSON: {"deleted": [backup ids], "kept": [backup ids]}.
    Cleanup {
        /// How many verified backups to keep.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
    },
}

/// `updater notifications` options.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NotificationsArgs {
    /// `test [CHANNEL]`; without it, the list.
    #[command(subcommand)]
    pub action: Option<NotificationsAction>,
    /// Mark notification ID as read.
    #[arg(long, value_name = "ID", conflicts_with = "dismiss")]
    pub mark_read: Option<i64>,
    /// Dismiss notification ID (it is no longer listed).
    #[arg(long, value_name = "ID")]
    pub dismiss: Option<i64>,
    /// List read and dismissed notifications too.
    #[arg(long)]
    pub all: bool,
    /// Only the notifications of this admin.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// `updater notifications ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum NotificationsAction {
    /// Send a test message through CHANNEL (every channel when omitted),
    /// directly (not through the outbox), and print the server's answer.
    ///
    /// JSON: {"results": [{"channel", "description", "ok", "answer", "error", "took_ms"}]}.
    Test {
        /// The channel's name (`database` or a `[[notifications.channels]]` name).
        channel: Option<String>,
    },
}

/// `updater config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file and environment) and print the
    /// effective settings, secrets shown as "***".
    ///
    /// JSON: {"file", "valid": true, "overridden_by": [...], "config": {...}}.
    Check,
}
