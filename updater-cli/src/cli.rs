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
    /// Every other command does this first; run it alone at boot.
    ///
    /// JSON: {"action", "running", "abandoned", "version", "lock_holder", "leftover_maintenance", "stale_lock"}.
    Recover {
        /// After fixing the cause, retry a recovery that stopped in "needs operator".
        #[arg(long)]
        retry: bool,
    },

    /// Show the running version, kept releases, lock, maintenance mode and the last check.
    ///
    /// JSON: {"current", "highest", "kept", "transition", "lock_holder", "maintenance", "latest_check"}.
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

    /// List admin notifications, or mark one read / dismiss it.
    ///
    /// Without options: unread, undismissed notifications.
    ///
    /// JSON: {"notifications": [{"id", "type", "version", "message", "user", "read", "dismissed", "read_at", "metadata", "created_at"}]}
    /// or, with --mark-read/--dismiss, {"changed": [1 id]}.
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

    /// Run in the foreground (systemd, cron): check for updates and clean up
    /// backups every `schedule.interval_hours`; stop on SIGTERM or SIGINT.
    ///
    /// Exits 0 when stopped by a signal.
    ///
    /// JSON: with --once {"check", "cleanup"}; on a signal {"stopped": true, "rounds"}.
    Schedule {
        /// Run one round and exit.
        #[arg(long)]
        once: bool,
    },

    /// Work with the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// The publisher's side: build, sign and publish releases. Needs no
    /// `updater.toml` and runs no recovery (it works on a build directory).
    #[command(subcommand)]
    Release(ReleaseCommand),
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
    /// JSON: {"manifest", "version", "releases": [versions]}.
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
    /// public key to put in every installation's `verification.public_keys`.
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
pub struct NotificationsArgs {
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

/// `updater config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file and environment) and print the
    /// effective settings, secrets shown as "***".
    ///
    /// JSON: {"file", "valid": true, "overridden_by": [...], "config": {...}}.
    Check,
}
