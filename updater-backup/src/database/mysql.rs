//! MySQL/MariaDB: `mysqldump --single-transaction --quick --skip-lock-tables
//! --routines --triggers --databases DB --add-drop-database`, gzip-compressed
//! by us while it streams, restored by piping the decompressed dump into
//! `mysql`. The dump drops and recreates the database, so the restored
//! database equals the dump (tables created after it are gone too).
//!
//! Host, port, user and password travel in a 0600 `--defaults-extra-file`,
//! never on the command line. `mariadb-dump`/`mariadb` are preferred when
//! installed, `mysqldump`/`mysql` otherwise.

use std::fs;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use updater_core::progress::ProgressSink;

use super::process::{SecretFile, ToolRun, find_tool, tool_version};
use super::server::{ServerSettings, server_settings_builder};
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

    server_settings_builder!("passed through a 0600 `--defaults-extra-file`");

    fn dump_tool(&self) -> Result<PathBuf> {
        find_tool(
            &["mariadb-dump", "mysqldump"],
            self.server.tool_dir.as_deref(),
        )
    }

    fn client_tool(&self) -> Result<PathBuf> {
        find_tool(&["mariadb", "mysql"], self.server.tool_dir.as_deref())
    }

    /// The `[client]` options file: connection and credentials.
    fn options_file(&self) -> Result<SecretFile> {
        let quote = |value: &str| value.replace('\\', "\\\\").replace('"', "\\\"");
        let mut text = format!(
            "[client]\nhost=\"{}\"\nport={}\nuser=\"{}\"\nprotocol=TCP\n",
            quote(&self.server.host),
            self.server.port,
            quote(&self.server.user)
        );
        if let Some(password) = &self.server.password {
            text.push_str(&format!("password=\"{}\"\n", quote(password.expose())));
        }
        SecretFile::new(&text)
    }

    fn run<'a>(&self, program: &Path, step: &'static str, options: &SecretFile) -> ToolRun<'a> {
        let mut defaults = std::ffi::OsString::from("--defaults-extra-file=");
        defaults.push(options.path());
        // --defaults-extra-file must come first.
        ToolRun::new(program, step, self.server.timeout)
            .arg(defaults)
            .redact(self.server.password.as_ref())
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
        let options = self.options_file()?;
        let client = self.client_tool()?;
        self.run(&client, "preflight", &options)
            .arg("--batch")
            .arg("--execute=SELECT 1")
            .arg(&self.server.database)
            .run()?;
        Ok(())
    }

    fn dump(&self, dest: &Path, progress: &dyn ProgressSink) -> Result<()> {
        let tool = self.dump_tool()?;
        let options = self.options_file()?;
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
        let mut writer = CountingWriter::new(gzip, progress, "mysqldump");
        let streamed = self
            .run(&tool, "dump", &options)
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
            .run()?;
        let gzip = writer.inner;
        gzip.finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| BackupError::io("write", dest, e))?;
        if streamed == 0 {
            return Err(BackupError::ToolFailed {
                tool: crate::database::process::tool_name(&tool),
                step: "dump",
                reason: "the dump is empty".into(),
            });
        }
        self.check_dump(dest).map_err(|e| BackupError::ToolFailed {
            tool: crate::database::process::tool_name(&tool),
            step: "dump",
            reason: format!("incomplete dump: {e}"),
        })?;
        report_done(progress, streamed, self.describe());
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
        let options = self.options_file()?;
        let mut file = fs::File::open(dump).map_err(|e| BackupError::io("open", dump, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| BackupError::io("read", dump, e))?;
        let decoder = MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
        self.run(&client, "restore", &options)
            .arg("--batch")
            .arg("--binary-mode")
            .stdin_from(decoder)
            .run()?;
        report_done(progress, 0, format!("restored {}", self.describe()));
        Ok(())
    }
}
