//! Credentials never reach process arguments, names or errors, and a missing
//! tool is named. Wrapper scripts stand in for the tools (`with_tool_dir`)
//! and log what they were given.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{MysqlData, PostgresData, server_available};
use updater_backup::database::{MysqlDatabase, PostgresDatabase};
use updater_backup::{DatabaseBackup, Secret};
use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::progress::NoProgress;
use updater_core::version::Version;

/// A wrapper named like the real tool that logs its arguments and the mode and
/// content of its credentials file, then runs the real tool.
fn wrap(bin: &Path, log: &Path, tool: &str) {
    let real = ["/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} not installed"));
    let script = format!(
        "#!/bin/sh\n\
         echo \"ARGS $*\" >> '{log}'\n\
         if [ -n \"$PGPASSFILE\" ]; then echo \"PGPASSFILE mode $(stat -c %a \"$PGPASSFILE\") $(cat \"$PGPASSFILE\")\" >> '{log}'; fi\n\
         for a in \"$@\"; do case \"$a\" in --defaults-extra-file=*) f=\"${{a#--defaults-extra-file=}}\"; echo \"EXTRA mode $(stat -c %a \"$f\") $(cat \"$f\" | tr '\\n' ' ')\" >> '{log}';; esac; done\n\
         exec '{real}' \"$@\"\n",
        log = log.display(),
        real = real.display()
    );
    let path = bin.join(tool);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn request() -> BackupRequest {
    BackupRequest {
        version: Version::new(1, 0, 0),
        purpose: BackupPurpose::RollbackSnapshot,
        update_id: None,
        description: None,
    }
}

#[test]
fn credentials_travel_only_in_private_files_and_missing_tools_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let log = dir.path().join("argv.log");
    for tool in [
        "pg_dump",
        "pg_restore",
        "psql",
        "mariadb-dump",
        "mariadb",
        "mysqldump",
        "mysql",
    ] {
        wrap(&bin, &log, tool);
    }

    if server_available("PostgreSQL", 5432) {
        let data = PostgresData::new();
        let secret = "pg-pass-Zq81:x";
        let strategy = DatabaseBackup::new(
            PostgresDatabase::new(&data.name)
                .with_password(Secret::new(secret))
                .with_tool_dir(&bin),
            dir.path().join("backups"),
        );
        strategy.preflight().unwrap();
        let backup = strategy.create(&request(), &NoProgress).unwrap();
        strategy.restore(&backup, &NoProgress).unwrap();
        assert!(!backup.id.contains(secret) && !format!("{backup:?}").contains(secret));
        let text = fs::read_to_string(&log).unwrap();
        for line in text.lines().filter(|l| l.starts_with("ARGS")) {
            assert!(
                !line.contains("pg-pass"),
                "password on a command line: {line}"
            );
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("PGPASSFILE mode 600") && l.contains("pg-pass-Zq81\\:x")),
            "password must reach the tools through a 0600 PGPASSFILE: {text}"
        );
        // A database that does not exist: the error names it, never the password.
        let wrong = DatabaseBackup::new(
            PostgresDatabase::new("no_such_db_bk")
                .with_password(Secret::new(secret))
                .with_tool_dir(&bin),
            dir.path().join("backups"),
        );
        let err = wrong
            .create(&request(), &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pg_dump") && !err.contains("pg-pass"), "{err}");
    }

    if server_available("MariaDB", 3306) {
        let data = MysqlData::new();
        let secret = "my-wrong-pass-Q7";
        let strategy = DatabaseBackup::new(
            MysqlDatabase::new(&data.name)
                .with_password(Secret::new(secret))
                .with_tool_dir(&bin),
            dir.path().join("backups"),
        );
        // root has an empty password: this one is refused, and the error must not show it.
        let err = strategy
            .create(&request(), &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
        let text = fs::read_to_string(&log).unwrap();
        for line in text.lines().filter(|l| l.starts_with("ARGS")) {
            assert!(!line.contains(secret), "password on a command line: {line}");
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("EXTRA mode 600") && l.contains(secret)),
            "password must reach mysqldump through a 0600 defaults file: {text}"
        );
        assert!(fs::read_dir(dir.path().join("backups")).unwrap().all(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with('.')
                || e.path().join("backup.json").exists()
        }));
    }

    // No tools at all: preflight names the missing one.
    let empty = dir.path().join("empty-bin");
    fs::create_dir(&empty).unwrap();
    let pg = DatabaseBackup::new(
        PostgresDatabase::new("x").with_tool_dir(&empty),
        dir.path().join("backups"),
    );
    let err = pg.preflight().unwrap_err().to_string();
    assert!(err.contains("pg_dump"), "{err}");
    let my = DatabaseBackup::new(
        MysqlDatabase::new("x").with_tool_dir(&empty),
        dir.path().join("backups"),
    );
    let err = my.preflight().unwrap_err().to_string();
    assert!(err.contains("mysqldump"), "{err}");
}
