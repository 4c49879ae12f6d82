//! MySQL/MariaDB: `mysqldump --single-transaction --quick --skip-lock-tables
//! --routines --triggers --databases DB --add-drop-database`, gzip-compressed
//! by us while it streams, restored by piping the decompressed dump into
//! `mysql`. The dump drops and recreates the database, so the restored
//! database equals the dump (tables created after it are gone too).
//!
//! **Definers.** A view, trigger or routine created by another account is
//! dumped as `DEFINER=<that account>`, and replaying it needs `SUPER` or
//! `SET USER`, which an application's user does not have: such a backup
//! checked out byte for byte and then could not be restored. The
//! `DEFINER=` clauses are therefore removed from the dump as it is
//! compressed, so every view, trigger and routine is recreated with the
//! *restoring* user as definer. The trade-off: `SQL SECURITY DEFINER` views
//! and routines then run with the restoring user's privileges instead of
//! the original account's (for an application restoring its own database
//! with its own user, the same ones it runs with); an object that relied on
//! a more privileged definer may fail when used (never when restored).
//! Events are not dumped. To dump routines that another account defined,
//! the dumping user needs `SELECT` on `mysql.proc` (MariaDB) or
//! `SHOW_ROUTINE` (MySQL 8.0.20+) — still neither `SUPER` nor `SET USER`.
//!
//! **Restore test.** The dump is replayed into `<db>_updater_check_<random>`
//! (created first, always dropped): its `DROP DATABASE` is left out, its
//! `CREATE DATABASE` becomes an `ALTER DATABASE` of the scratch database
//! (same character set), its `USE` and qualified trigger names point at the
//! scratch database, and any other database statement stops the test; the
//! client also runs with `--one-database`. The user needs the rights on
//! those databases, e.g. ``GRANT ALL ON `app\_updater\_check\_%`.* TO app``.
//!
//! Host, port, user and password travel in an anonymous 0600 memory file
//! given as `--defaults-extra-file=/dev/fd/<n>`, never on the command line
//! or on disk. `mariadb-dump`/`mariadb` are preferred when installed,
//! `mysqldump`/`mysql` otherwise.

mod stream;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use updater_core::command::Process;
use updater_core::progress::ProgressSink;

use self::stream::{DefinerFilter, ScratchReader, quote_ident};
use super::credentials::Credentials;
use super::restore_test::{RestoreTest, scratch_name};
use super::server::{ServerSettings, server_settings_builder};
use super::tools::{find_tool, tool_failed, tool_name, tool_version};
use super::{CountingWriter, DatabaseEngine, Secret, report_done};
use crate::error::{BackupError, Result};

/// The comment mysqldump writes last when a dump completed.
const COMPLETION_MARK: &str = "-- Dump completed";

/// A MySQL or MariaDB database reached over TCP.
#[derive(Debug, Clone)]
pub struct MysqlDatabase {
    server: ServerSettings,
}

impl MysqlDatabase {
    /// The database `database` on 127.0.0.1:3306 as `root`, no password.
    pub fn new(database: impl Into<String>) -> Self {
        MysqlDatabase {
            server: ServerSettings::local(database.into(), 3306, "root"),
        }
    }

    server_settings_builder!(
        "passed as `--defaults-extra-file=/dev/fd/<n>`, an anonymous 0600 memory file"
    );

    fn dump_tool(&self) -> Result<PathBuf> {
        find_tool(
            &["mariadb-dump", "mysqldump"],
            self.server.tool_dir.as_deref(),
        )
    }

    fn client_tool(&self) -> Result<PathBuf> {
        find_tool(&["mariadb", "mysql"], self.server.tool_dir.as_deref())
    }

    /// A run of `program` with the `[client]` options (connection and
    /// credentials) in a memory file, the deadline and the ledger.
    fn client<'a>(&self, program: &Path) -> Result<Process<'a>> {
        let quote = |value: &str| value.replace('\\', "\\\\").replace('"', "\\\"");
        let mut options = format!(
            "[client]\nhost=\"{}\"\nport={}\nuser=\"{}\"\nprotocol=TCP\n",
            quote(&self.server.host),
            self.server.port,
            quote(&self.server.user)
        );
        if let Some(password) = &self.server.password {
            options.push_str(&format!("password=\"{}\"\n", quote(password.expose())));
        }
        let (process, path) = Credentials::new(&options)?.attach(Process::new(program));
        let mut process = process
            // --defaults-extra-file must come first.
            .arg(format!("--defaults-extra-file={path}"))
            .timeout(self.server.timeout)
            .ledger(self.server.ledger.clone());
        if let Some(password) = &self.server.password {
            process = process.redact(password);
        }
        Ok(process)
    }

    /// Runs one SQL statement with the client, connected to no database.
    fn execute(&self, step: &'static str, sql: &str) -> Result<()> {
        let client = self.client_tool()?;
        self.client(&client)?
            .arg("--batch")
            .arg(format!("--execute={sql}"))
            .run(step)
            .map_err(tool_failed(step))?;
        Ok(())
    }
}

impl DatabaseEngine for MysqlDatabase {
    fn describe(&self) -> String {
        format!(
            "MySQL database {} on {}:{}",
            self.server.database, self.server.host, self.server.port
        )
    }

    fn dump_file_name(&self) -> &'static str {
        "database.sql.gz"
    }

    fn preflight(&self) -> Result<()> {
        for tool in [self.dump_tool()?, self.client_tool()?] {
            let version = tool_version(&tool)?;
            tracing::debug!(tool = %tool.display(), version, "database tool found");
        }
        let client = self.client_tool()?;
        self.client(&client)?
            .arg("--batch")
            .arg("--execute=SELECT 1")
            .arg(&self.server.database)
            .run("preflight")
            .map_err(tool_failed("preflight"))?;
        Ok(())
    }

    fn dump(&self, dest: &Path, progress: &dyn ProgressSink) -> Result<()> {
        let tool = self.dump_tool()?;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(|e| BackupError::io("create", dest, e))?;
        let gzip = GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            Compression::new(6),
        );
        let mut writer = CountingWriter::new(DefinerFilter::new(gzip), progress, "mysqldump");
        let done = self
            .client(&tool)?
            .arg("--single-transaction")
            .arg("--quick")
            .arg("--skip-lock-tables")
            .arg("--routines")
            .arg("--triggers")
            .arg("--hex-blob")
            .arg("--add-drop-database")
            .arg("--databases")
            .arg(&self.server.database)
            .stdout_to(&mut writer)
            .run("dump")
            .map_err(tool_failed("dump"))?;
        let (gzip, definers) = writer
            .inner
            .finish()
            .map_err(|e| BackupError::io("write", dest, e))?;
        gzip.finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| BackupError::io("write", dest, e))?;
        if done.stdout_bytes == 0 {
            return Err(BackupError::ToolFailed {
                tool: tool_name(&tool),
                step: "dump",
                reason: "the dump is empty".into(),
            });
        }
        self.check_dump(dest).map_err(|e| BackupError::ToolFailed {
            tool: tool_name(&tool),
            step: "dump",
            reason: format!("incomplete dump: {e}"),
        })?;
        if definers > 0 {
            tracing::info!(
                definers,
                "DEFINER clauses removed: views, triggers and routines restore with the restoring user as definer"
            );
        }
        report_done(progress, done.stdout_bytes, self.describe());
        Ok(())
    }

    fn check_dump(&self, dump: &Path) -> Result<()> {
        let subject = dump.display().to_string();
        let file =
            fs::File::open(dump).map_err(|e| BackupError::integrity(&subject, e.to_string()))?;
        let mut last_line = String::new();
        let mut reader = BufReader::with_capacity(1 << 20, MultiGzDecoder::new(file));
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| BackupError::integrity(&subject, e.to_string()))?;
            if n == 0 {
                break;
            }
            if !line.trim().is_empty() {
                last_line.clone_from(&line);
            }
        }
        if !last_line.starts_with(COMPLETION_MARK) {
            return Err(BackupError::integrity(
                &subject,
                "the dump does not end with mysqldump's completion mark",
            ));
        }
        Ok(())
    }

    fn restore(&self, dump: &Path, progress: &dyn ProgressSink) -> Result<()> {
        let client = self.client_tool()?;
        let file = fs::File::open(dump).map_err(|e| BackupError::io("open", dump, e))?;
        let decoder = MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file));
        self.client(&client)?
            .arg("--batch")
            .arg("--binary-mode")
            .stdin_reader(decoder)
            .run("restore")
            .map_err(tool_failed("restore"))?;
        report_done(progress, 0, format!("restored {}", self.describe()));
        Ok(())
    }

    fn restore_test(&self, dump: &Path) -> Result<()> {
        let client = self.client_tool()?;
        let live = &self.server.database;
        let scratch = scratch_name(live)?;
        self.execute(
            "restore test",
            &format!("CREATE DATABASE {}", quote_ident(&scratch)),
        )
        .map_err(|e| BackupError::ToolFailed {
            tool: tool_name(&client),
            step: "restore test",
            reason: format!(
                "cannot create the scratch database {scratch} (grant the user ALL on `{}\\_updater\\_check\\_%`.*, or set RestoreTest::Never): {e}",
                live.replace('_', "\\_")
            ),
        })?;
        let restored = fs::File::open(dump)
            .map_err(|e| BackupError::io("open", dump, e))
            .and_then(|file| {
                let decoder = MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file));
                let redirected = ScratchReader::new(BufReader::new(decoder), live, &scratch);
                self.client(&client)?
                    .arg("--batch")
                    .arg("--binary-mode")
                    .arg("--one-database")
                    .arg(&scratch)
                    .stdin_reader(redirected)
                    .run("restore test")
                    .map_err(tool_failed("restore test"))
            });
        let dropped = self.execute(
            "restore test",
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(&scratch)),
        );
        restored.map_err(|e| BackupError::NotRestorable {
            subject: dump.display().to_string(),
            reason: e.to_string(),
        })?;
        dropped.map_err(|e| BackupError::ToolFailed {
            tool: tool_name(&client),
            step: "restore test",
            reason: format!(
                "the dump restored, but the scratch database {scratch} could not be dropped: {e}"
            ),
        })
    }

    fn default_restore_test(&self) -> RestoreTest {
        RestoreTest::SERVER_DEFAULT
    }
}
