//! Credentials never reach process arguments, names, errors or the disk, and
//! a missing tool is named. Wrapper scripts stand in for the tools
//! (`with_tool_dir`) and log what they were given.
//!
//! `child_process_dumps_with_a_stalled_tool` runs only in a child process
//! (this test binary re-executed with `KILL_DUMP_ENGINE` set), which the
//! kill test SIGKILLs in the middle of a dump.
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
use updater_testkit::child;

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
         if [ -n \"$PGPASSFILE\" ]; then echo \"PGPASSFILE $PGPASSFILE -> $(readlink \"$PGPASSFILE\") mode $(stat -L -c %a \"$PGPASSFILE\") $(cat \"$PGPASSFILE\")\" >> '{log}'; fi\n\
         for a in \"$@\"; do case \"$a\" in --defaults-extra-file=*) f=\"${{a#--defaults-extra-file=}}\"; echo \"EXTRA $f -> $(readlink \"$f\") mode $(stat -L -c %a \"$f\") $(cat \"$f\" | tr '\\n' ' ')\" >> '{log}';; esac; done\n\
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
            text.lines().any(|l| l.starts_with("PGPASSFILE /dev/fd/")
                && l.contains("-> /memfd:updater-credentials (deleted) mode 600 ")
                && l.contains("pg-pass-Zq81\\:x")),
            "password must reach the tools through a 0600 memory-file PGPASSFILE: {text}"
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
            text.lines().any(|l| l.starts_with("EXTRA /dev/fd/")
                && l.contains("-> /memfd:updater-credentials (deleted) mode 600 ")
                && l.contains(secret)),
            "password must reach mysqldump through a 0600 memory-file defaults file: {text}"
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

/// A dump tool that records whether it received the credentials (without
/// writing them anywhere), then stalls: the dump is "in progress" for as
/// long as the test needs.
fn stalling_tool(bin: &Path, log: &Path, tool: &str, secret: &str) {
    let script = format!(
        "#!/bin/sh\n\
         for a in \"$@\"; do case \"$a\" in --defaults-extra-file=*) f=\"${{a#--defaults-extra-file=}}\";; esac; done\n\
         [ -n \"$PGPASSFILE\" ] && f=\"$PGPASSFILE\"\n\
         if grep -q '{secret}' \"$f\"; then echo \"STARTED with credentials in $f\" >> '{log}'; else echo \"STARTED without credentials\" >> '{log}'; fi\n\
         sleep 1000\n",
        log = log.display()
    );
    let path = bin.join(tool);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs in the child process only (does nothing in a normal test run).
#[test]
fn child_process_dumps_with_a_stalled_tool() {
    if !child::is_child() {
        return;
    }
    let var = child::var;
    let engine = var("KILL_DUMP_ENGINE");
    let ledger = updater_core::command::ChildLedger::new(var("KILL_DUMP_LEDGER"));
    let secret = Secret::new(var("KILL_DUMP_SECRET"));
    let backups = var("KILL_DUMP_BACKUPS");
    let strategy = match engine.as_str() {
        "postgres" => DatabaseBackup::new(
            PostgresDatabase::new(var("KILL_DUMP_DB"))
                .with_password(secret)
                .with_tool_dir(var("KILL_DUMP_BIN"))
                .with_child_ledger(ledger),
            backups,
        ),
        _ => DatabaseBackup::new(
            MysqlDatabase::new(var("KILL_DUMP_DB"))
                .with_password(secret)
                .with_tool_dir(var("KILL_DUMP_BIN"))
                .with_child_ledger(ledger),
            backups,
        ),
    };
    let _ = strategy.create(&request(), &NoProgress);
}

/// Every file under `root` whose content holds `needle` (none when `root`
/// was never created).
fn files_holding(root: &Path, needle: &str) -> Vec<String> {
    if !root.exists() {
        return Vec::new();
    }
    updater_testkit::tree::files_skipping(root, &[])
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn a_dump_killed_midway_leaves_no_credentials_file_anywhere() {
    let pg = server_available("PostgreSQL", 5432).then(PostgresData::new);
    let my = server_available("MariaDB", 3306).then(MysqlData::new);
    let mut engines = Vec::new();
    if let Some(data) = &pg {
        engines.push(("postgres", "pg_dump", data.name.clone()));
    }
    if let Some(data) = &my {
        engines.push(("mysql", "mariadb-dump", data.name.clone()));
    }
    for (engine, tool, database) in engines {
        let dir = tempfile::tempdir().unwrap();
        let (bin, tmp, backups) = (
            dir.path().join("bin"),
            dir.path().join("tmp"),
            dir.path().join("backups"),
        );
        let ledger_dir = dir.path().join("children");
        for d in [&bin, &tmp] {
            fs::create_dir(d).unwrap();
        }
        let log = dir.path().join("tool.log");
        let secret = format!("kill-test-secret-{engine}-Zq81");
        stalling_tool(&bin, &log, tool, &secret);
        let display = |path: &Path| path.display().to_string();
        let mut updater = child::spawn(
            "child_process_dumps_with_a_stalled_tool",
            &[
                ("KILL_DUMP_ENGINE", engine.to_string()),
                ("KILL_DUMP_DB", database.clone()),
                ("KILL_DUMP_BIN", display(&bin)),
                ("KILL_DUMP_BACKUPS", display(&backups)),
                ("KILL_DUMP_LEDGER", display(&ledger_dir)),
                ("KILL_DUMP_SECRET", secret.clone()),
                // Where a credentials file would have gone (the system temp directory).
                ("TMPDIR", display(&tmp)),
            ],
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !fs::read_to_string(&log).is_ok_and(|t| t.contains("STARTED")) {
            assert!(
                std::time::Instant::now() < deadline,
                "{engine}: the dump never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let started = fs::read_to_string(&log).unwrap();
        assert!(
            started.contains("STARTED with credentials in /dev/fd/"),
            "{engine}: the tool must have received the credentials: {started}"
        );
        // SIGKILL in the middle of the dump: no cleanup code runs.
        updater.kill().unwrap();
        updater.wait().unwrap();

        assert_eq!(
            fs::read_dir(&tmp).unwrap().count(),
            0,
            "{engine}: nothing left in the temp directory"
        );
        for root in [&tmp, &backups, &ledger_dir] {
            assert_eq!(
                files_holding(root, &secret),
                Vec::<String>::new(),
                "{engine}: no file holds the password"
            );
        }
        // The stalled tool outlived the updater; the ledger stops it.
        let stopped = updater_core::command::ChildLedger::new(&ledger_dir)
            .stop_orphans(std::time::Duration::from_secs(10))
            .unwrap();
        assert_eq!(stopped.len(), 1, "{engine}");
        assert_eq!(stopped[0].record.step, "dump");
        assert!(!stopped[0].killed.is_empty(), "{engine}: {stopped:?}");
    }
}
