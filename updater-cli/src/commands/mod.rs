//! One function per subcommand. Each returns an [`Outcome`]: the JSON
//! object (the stable `--json` shape), the text for humans and the exit code.

mod automation;
mod backup;
mod notifications;
mod recovery;
mod release;
mod schedule;
mod serve;
mod update;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::cli::{BackupCommand, Cli, Command, ConfigCommand, WebCommand};
use crate::components::{Access, Components};
use crate::config::{Config, DEFAULT_CONFIG_FILE};
use crate::error::Result;
pub use crate::output::Outcome;
pub use recovery::recovery_notice;

/// The configuration file to read: `--config`, `UPDATER_CONFIG`, else `./updater.toml`.
pub fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE))
}

/// Runs the command `cli` asks for.
pub fn execute(cli: &Cli) -> Result<Outcome> {
    let path = config_path(cli);
    match &cli.command {
        Command::Config(ConfigCommand::Check) => config_check(&path),
        Command::Web(WebCommand::HashPassword) => serve::hash_password(),
        // The publisher's side works on a build directory: no config, no recovery.
        Command::Release(command) => release::run(command),
        command => {
            let access = access_of(command);
            let components = Components::build(Config::load(&path)?, access)?;
            let read_only =
                access == Access::ReadOnly || matches!(command, Command::Recover { .. });
            if !matches!(command, Command::Recover { .. } | Command::Unlock { .. }) {
                recover_first(&components, read_only)?;
            }
            // Notices left pending (a crash, a channel that was down) go out
            // now, in the background; the command never waits for a channel
            // beyond `notifications.delivery_wait_secs` at its end.
            let worker = components.notifier.spawn(Duration::from_secs(60));
            if let Command::Serve(args) = command {
                // The server owns the parts (shared with its worker threads);
                // the delivery worker runs as long as it does.
                let outcome = serve::run(components, args);
                worker.stop(Duration::from_secs(2));
                return outcome;
            }
            let outcome = dispatch(&components, command);
            let wait = Duration::from_secs(components.config.file.notifications.delivery_wait_secs);
            if !worker.flush(wait) {
                tracing::info!("notices still being delivered; the next command goes on");
            }
            worker.stop(Duration::from_millis(200));
            outcome
        }
    }
}

/// What a command does, which decides what building the parts may require.
fn access_of(command: &Command) -> Access {
    match command {
        Command::Notifications(args)
            if args.mark_read.is_some() || args.dismiss.is_some() || args.action.is_some() =>
        {
            Access::Local
        }
        Command::Status
        | Command::History { .. }
        | Command::Notifications(_)
        | Command::Stats { .. }
        | Command::Scheduled { cancel: None, .. }
        | Command::Schedule {
            print_systemd: true,
            ..
        }
        | Command::Backup(BackupCommand::List) => Access::ReadOnly,
        Command::Apply { at: Some(_), .. } => Access::Local,
        Command::Recover { .. } | Command::Unlock { .. } => Access::Recovery,
        Command::Check { .. }
        | Command::Apply { .. }
        | Command::Preview { .. }
        | Command::Schedule { .. }
        | Command::Serve(_) => Access::Remote,
        _ => Access::Local,
    }
}

fn dispatch(c: &Components, command: &Command) -> Result<Outcome> {
    match command {
        Command::Check { force } => update::check(c, *force),
        Command::Apply {
            at: Some(at),
            version,
            ..
        } => automation::schedule_at(c, at, version.as_deref()),
        Command::Apply {
            version,
            no_backup,
            yes,
            at: None,
        } => update::apply(c, version.as_deref(), *no_backup, *yes),
        Command::Pause { reason } => automation::pause(c, reason),
        Command::Resume => automation::resume(c),
        Command::Scheduled { all, cancel } => automation::scheduled(c, *all, *cancel),
        Command::Preview { version } => automation::preview(c, version.as_deref()),
        Command::Stats { since } => automation::stats(c, since.as_deref()),
        Command::Rollback {
            yes,
            restore_database_snapshot,
        } => update::rollback(c, *yes, *restore_database_snapshot),
        Command::Recover { retry } => update::recover(c, *retry),
        Command::Status => update::status(c),
        Command::History { limit, offset } => update::history(c, *limit, *offset),
        Command::Backup(BackupCommand::Create { description }) => {
            backup::create(c, description.clone())
        }
        Command::Backup(BackupCommand::List) => backup::list(c),
        Command::Backup(BackupCommand::Restore {
            id,
            include_preserved,
            yes,
        }) => backup::restore(c, id, *include_preserved, *yes),
        Command::Backup(BackupCommand::Cleanup { keep }) => backup::cleanup(c, *keep),
        Command::Notifications(args) => notifications::run(c, args),
        Command::Schedule {
            print_systemd: true,
            timer,
            ..
        } => schedule::print_systemd(c, *timer),
        Command::Schedule { once, .. } => schedule::run(c, *once),
        Command::Unlock { .. } => unlock(c),
        Command::Config(ConfigCommand::Check) => config_check(&c.config.path),
        Command::Serve(_) | Command::Web(_) => Err(crate::error::CliError::Usage(
            "serve and web commands are run by execute()".into(),
        )),
        Command::Release(command) => release::run(command),
    }
}

/// Runs recovery before a command and tells the operator what it did.
/// For read-only commands a failed recovery is a warning, so `status` still
/// shows what is wrong; for the others it stops the command.
fn recover_first(c: &Components, read_only: bool) -> Result<()> {
    match c.updater.recover() {
        Ok(report) => {
            // Once, for the operator (the library logs details at info level).
            if let Some(text) = recovery_notice(&report) {
                crate::output::note(&text);
            }
            Ok(())
        }
        Err(error) if read_only => {
            crate::output::note(&format!("warning: recovery failed: {error}"));
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

fn unlock(c: &Components) -> Result<Outcome> {
    let holder = c.updater.force_unlock()?;
    let text = match &holder {
        Some(record) => format!("removed the stale update lock left by {record}"),
        None => "no update lock was held".to_string(),
    };
    Ok(Outcome::ok(
        json!({
            "cleared": holder.is_some(),
            "holder": holder,
        }),
        text,
    ))
}

fn config_check(path: &Path) -> Result<Outcome> {
    let config = Config::load(path)?;
    crate::components::validate(&config)?;
    let mut text = format!("{} is valid.\n", path.display());
    if !config.overridden_by.is_empty() {
        text.push_str(&format!(
            "Overridden by the environment: {}.\n",
            config.overridden_by.join(", ")
        ));
    }
    text.push_str("\n# effective configuration (secrets shown as ***)\n");
    text.push_str(&config.redacted_toml());
    Ok(Outcome::ok(
        json!({
            "file": path.display().to_string(),
            "valid": true,
            "overridden_by": config.overridden_by,
            "config": config.redacted_json(),
        }),
        text.trim_end().to_string(),
    ))
}
