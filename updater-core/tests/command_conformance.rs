//! The shell-command implementations of `HealthCheck`, `Migrator` and
//! `Hook` run their shared conformance suites, against a small world of
//! files in a temporary application directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use updater_core::command::ShellCommand;
use updater_core::conformance::health::{HealthTarget, TargetState};
use updater_core::conformance::hook::{HookTarget, ObservedRun};
use updater_core::conformance::migrate::MigrationTarget;
use updater_core::health::{CommandHealthCheck, HealthCheck};
use updater_core::hook::{CommandHook, Hook, HookEvent};
use updater_core::migrate::{CommandMigrator, MigrationContext, Migrator};
use updater_core::version::Version;

/// The application's state is a file: `healthy`, `broken` or `hang`.
struct CommandHealth {
    dir: tempfile::TempDir,
}

impl HealthTarget for CommandHealth {
    fn check(&self) -> Arc<dyn HealthCheck> {
        Arc::new(CommandHealthCheck::new(ShellCommand::new(
            r#"state=$(cat state); if [ "$state" = hang ]; then sleep 30; fi; [ "$state" = healthy ] && [ -n "$UPDATER_MAINTENANCE_SECRET" ]"#,
        )))
    }
    fn app_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
    fn set(&self, state: TargetState) {
        let text = match state {
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "broken",
            TargetState::Hanging => "hang",
        };
        std::fs::write(self.dir.path().join("state"), text).unwrap();
    }
}

#[test]
fn command_health_check_conforms() {
    updater_core::conformance::health::run(&CommandHealth {
        dir: tempfile::tempdir().unwrap(),
    });
}

/// The schema is `schema.txt`, one applied migration per line; the release
/// `to` has migrations `m1` and `m2`; the database is down while `db-down` exists.
struct CommandMigrations {
    dir: tempfile::TempDir,
    revertible: bool,
}

const MIGRATIONS: &str = "m1 m2";

impl MigrationTarget for CommandMigrations {
    fn migrator(&self) -> Arc<dyn Migrator> {
        let up = format!(
            "test ! -f db-down || exit 3; touch schema.txt; for m in {MIGRATIONS}; do grep -qx $m schema.txt || echo $m >> schema.txt; done"
        );
        let down = format!(
            "test ! -f db-down || exit 3; for m in {MIGRATIONS}; do grep -vx $m schema.txt > schema.tmp; mv schema.tmp schema.txt; done"
        );
        let status = format!(
            "test ! -f db-down || exit 3; touch schema.txt; for m in {MIGRATIONS}; do grep -qx $m schema.txt || echo $m; done"
        );
        let mut migrator = CommandMigrator::new(ShellCommand::new(up))
            .with_check(ShellCommand::new("test ! -f db-down"))
            .with_status(ShellCommand::new(status));
        if self.revertible {
            migrator = migrator.with_revert(ShellCommand::new(down));
        }
        Arc::new(migrator)
    }
    fn context(&self) -> MigrationContext {
        MigrationContext {
            app_dir: self.dir.path().to_path_buf(),
            from: Version::new(1, 0, 0),
            to: Version::new(1, 1, 0),
            children: None,
        }
    }
    fn schema(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("schema.txt")).unwrap_or_default()
    }
    fn set_reachable(&self, reachable: bool) -> bool {
        let flag = self.dir.path().join("db-down");
        if reachable {
            std::fs::remove_file(flag).unwrap();
        } else {
            std::fs::write(flag, "").unwrap();
        }
        true
    }
}

fn migrations(revertible: bool) -> CommandMigrations {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.txt"), "m0\n").unwrap();
    CommandMigrations { dir, revertible }
}

#[test]
fn command_migrator_with_down_migrations_conforms() {
    updater_core::conformance::migrate::run(&migrations(true));
}

#[test]
fn command_migrator_without_down_migrations_conforms() {
    updater_core::conformance::migrate::run(&migrations(false));
}

/// The hook appends what it saw to `runs.log`; it fails while `fail` exists.
struct CommandHooks {
    dir: tempfile::TempDir,
}

impl HookTarget for CommandHooks {
    fn hook(&self) -> Arc<dyn Hook> {
        Arc::new(CommandHook::always(ShellCommand::new(
            r#"test ! -f fail && echo "$UPDATER_HOOK_EVENT $UPDATER_FROM_VERSION $UPDATER_TO_VERSION" >> runs.log"#,
        )))
    }
    fn app_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
    fn runs(&self) -> Vec<ObservedRun> {
        read_runs(&self.dir.path().join("runs.log"))
    }
    fn set_failing(&self, failing: bool) -> bool {
        let flag = self.dir.path().join("fail");
        if failing {
            std::fs::write(flag, "").unwrap();
        } else {
            std::fs::remove_file(flag).unwrap();
        }
        true
    }
}

fn read_runs(log: &Path) -> Vec<ObservedRun> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            ObservedRun {
                event: match parts[0] {
                    "after_swap" => HookEvent::AfterSwap,
                    "after_rollback" => HookEvent::AfterRollback,
                    other => panic!("unknown event {other}"),
                },
                from: Version::parse(parts[1]).unwrap(),
                to: Version::parse(parts[2]).unwrap(),
            }
        })
        .collect()
}

#[test]
fn command_hook_conforms() {
    updater_core::conformance::hook::run(&CommandHooks {
        dir: tempfile::tempdir().unwrap(),
    });
}
