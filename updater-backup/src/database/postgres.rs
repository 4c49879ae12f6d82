//! PostgreSQL: `pg_dump --format=custom` (a consistent snapshot in one
//! repeatable-read transaction, compressed by pg_dump), restored into the same
//! database in ONE transaction.
//!
//! `pg_restore --clean --if-exists` drops only the objects the dump contains,
//! so a table a failed migration created would survive a plain restore. We
//! therefore let `pg_restore --clean --if-exists` write its script and run it
//! with `psql --single-transaction -v ON_ERROR_STOP=1`, after a prelude (in the
//! same transaction) that drops every extension, non-system schema and object
//! of `public` (keeping the `public` schema itself with its owner and grants).
//! Either the database ends equal to the dump, or nothing changed.
//!
//! The password travels in a 0600 `PGPASSFILE`, never on the command line.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use updater_core::progress::ProgressSink;

use super::process::{SecretFile, ToolRun, find_tool, tool_version};
use super::server::{ServerSettings, server_settings_builder};
use super::{CountingWriter, DatabaseEngine, Secret, report_done};
use crate::error::{BackupError, Result};

/// Magic bytes of a custom-format dump.
const MAGIC: &[u8] = b"PGDMP";

/// Drops everything the dump will recreate and everything it does not know.
const PRELUDE: &str = r"
DO $updater$
DECLARE r record;
BEGIN
  FOR r IN SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' LOOP
    EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
  END LOOP;
  FOR r IN SELECT nspname FROM pg_namespace
           WHERE nspname <> 'public' AND nspname <> 'information_schema' AND nspname NOT LIKE 'pg\_%' LOOP
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', r.nspname);
  END LOOP;
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
      r.relname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' LOOP
    EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.signature);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype IN ('c', 'e', 'd', 'r')
             AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') LOOP
    EXECUTE format('DROP TYPE IF EXISTS public.%I CASCADE', r.typname);
  END LOOP;
END
$updater$;
";

/// A PostgreSQL database reached over TCP.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    server: ServerSettings,
}

impl PostgresDatabase {
    /// The database `database` on 127.0.0.1:5432 as user `postgres`, no password.
    pub fn new(database: impl Into<String>) -> Self {
        PostgresDatabase {
            server: ServerSettings::local(database.into(), 5432, "postgres"),
        }
    }

    server_settings_builder!("passed to the tools through a 0600 `PGPASSFILE`");

    fn passfile(&self) -> Result<Option<SecretFile>> {
        let Some(password) = &self.server.password else {
            return Ok(None);
        };
        let escaped = password.expose().replace('\\', "\\\\").replace(':', "\\:");
        SecretFile::new(&format!("*:*:*:*:{escaped}\n")).map(Some)
    }

    fn tool(&self, name: &str) -> Result<PathBuf> {
        find_tool(&[name], self.server.tool_dir.as_deref())
    }

    /// A run of `program` with connection options and credentials in the environment.
    fn run<'a>(
        &self,
        program: &Path,
        step: &'static str,
        passfile: Option<&SecretFile>,
    ) -> ToolRun<'a> {
        let mut run = ToolRun::new(program, step, self.server.timeout)
            .arg("--host")
            .arg(&self.server.host)
            .arg("--port")
            .arg(self.server.port.to_string())
            .arg("--username")
            .arg(&self.server.user)
            .arg("--no-password")
            .env("PGCONNECT_TIMEOUT", "15")
            .env("PGAPPNAME", "updater-backup")
            .redact(self.server.password.as_ref());
        if let Some(file) = passfile {
            run = run.env("PGPASSFILE", file.path());
        }
        run
    }
}

impl DatabaseEngine for PostgresDatabase {
    fn describe(&self) -> String {
        format!(
            "PostgreSQL database {} on {}:{}",
            self.server.database, self.server.host, self.server.port
        )
    }

    fn dump_file_name(&self) -> &'static str {
        "database.pgdump"
    }

    fn preflight(&self) -> Result<()> {
        for tool in ["pg_dump", "pg_restore", "psql"] {
            let path = self.tool(tool)?;
            let version = tool_version(&path)?;
            tracing::debug!(tool, version, "database tool found");
        }
        let passfile = self.passfile()?;
        let psql = self.tool("psql")?;
        self.run(&psql, "preflight", passfile.as_ref())
            .arg("--no-psqlrc")
            .arg("--dbname")
            .arg(&self.server.database)
            .arg("-Atc")
            .arg("SELECT 1")
            .run()?;
        Ok(())
    }

    fn dump(&self, dest: &Path, progress: &dyn ProgressSink) -> Result<()> {
        let pg_dump = self.tool("pg_dump")?;
        let passfile = self.passfile()?;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(|e| BackupError::io("create", dest, e))?;
        let mut writer = CountingWriter::new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            progress,
            "pg_dump",
        );
        self.run(&pg_dump, "dump", passfile.as_ref())
            .arg("--format=custom")
            .arg("--dbname")
            .arg(&self.server.database)
            .stdout_to(&mut writer)
            .run()?;
        writer
            .flush()
            .map_err(|e| BackupError::io("write", dest, e))?;
        let mut magic = [0u8; 5];
        let complete = fs::File::open(dest)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok_and(|()| magic == MAGIC);
        if !complete {
            return Err(BackupError::ToolFailed {
                tool: "pg_dump".into(),
                step: "dump",
                reason: "the dump is empty or not in custom format".into(),
            });
        }
        report_done(progress, writer.written, self.describe());
        Ok(())
    }

    fn check_dump(&self, dump: &Path) -> Result<()> {
        let subject = dump.display().to_string();
        let mut magic = [0u8; 5];
        fs::File::open(dump)
            .and_then(|mut f| f.read_exact(&mut magic))
            .map_err(|e| BackupError::integrity(&subject, e.to_string()))?;
        if magic != MAGIC {
            return Err(BackupError::integrity(
                &subject,
                "not a pg_dump custom-format file",
            ));
        }
        let pg_restore = self.tool("pg_restore")?;
        ToolRun::new(&pg_restore, "check", self.server.timeout)
            .arg("--list")
            .arg(dump)
            .run()
            .map_err(|e| BackupError::integrity(&subject, e.to_string()))?;
        Ok(())
    }

    fn restore(&self, dump: &Path, progress: &dyn ProgressSink) -> Result<()> {
        let pg_restore = self.tool("pg_restore")?;
        let psql = self.tool("psql")?;
        let passfile = self.passfile()?;
        // pg_restore only turns the archive into SQL here (no connection).
        let mut script = Command::new(&pg_restore)
            .args(["--clean", "--if-exists", "--file=-"])
            .arg(dump)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BackupError::ToolMissing {
                tool: "pg_restore".into(),
                reason: format!("cannot start it: {e}"),
            })?;
        let script_out = script
            .stdout
            .take()
            .ok_or_else(|| BackupError::ToolFailed {
                tool: "pg_restore".into(),
                step: "restore",
                reason: "no output pipe".into(),
            })?;
        let mut script_err = script.stderr.take();
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(pipe) = script_err.as_mut() {
                let _ = pipe.take(64 * 1024).read_to_string(&mut text);
            }
            text
        });
        // psql must never see a clean end of a script pg_restore did not finish
        // (it would commit half a restore): the reader fails instead, and the
        // runner then kills psql before closing its input.
        let reader = CompletedScript {
            output: script_out,
            child: script,
        };
        let applied = self
            .run(&psql, "restore", passfile.as_ref())
            .arg("--no-psqlrc")
            .arg("--quiet")
            .arg("--single-transaction")
            .arg("--set=ON_ERROR_STOP=1")
            .arg("--dbname")
            .arg(&self.server.database)
            .arg("--command")
            .arg(PRELUDE)
            .arg("--file=-")
            .stdin_from(reader)
            .run();
        let script_stderr = stderr_reader.join().unwrap_or_default();
        if let Err(e) = applied {
            let detail = script_stderr.trim();
            return Err(if detail.is_empty() {
                e
            } else {
                BackupError::ToolFailed {
                    tool: "pg_restore".into(),
                    step: "restore",
                    reason: format!("{e}; pg_restore: {detail}"),
                }
            });
        }
        report_done(progress, 0, format!("restored {}", self.describe()));
        Ok(())
    }
}

/// The output of `pg_restore`, which reports an error instead of end of file
/// when `pg_restore` itself failed.
struct CompletedScript {
    output: std::process::ChildStdout,
    child: std::process::Child,
}

impl Read for CompletedScript {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.output.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                return Err(std::io::Error::other(format!(
                    "pg_restore failed: {status}"
                )));
            }
        }
        Ok(n)
    }
}
