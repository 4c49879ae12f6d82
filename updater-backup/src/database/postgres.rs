//! PostgreSQL: `pg_dump --format=custom` (a consistent snapshot in one
//! repeatable-read transaction, compressed by pg_dump), restored into the same
//! database in ONE transaction.
//!
//! `pg_restore --clean --if-exists` drops only the objects the dump contains,
//! so a table a failed migration created would survive a plain restore. We
//! therefore let `pg_restore --clean --if-exists` write its script and pipe
//! it, through this process, into `psql -v ON_ERROR_STOP=1` after `BEGIN` and
//! a prelude (in the same transaction) that drops every extension,
//! non-system schema and object of `public` (keeping the `public` schema
//! itself with its owner and grants). We write the `COMMIT` ourselves, and
//! only after `pg_restore` exited successfully: if `pg_restore` fails, or the
//! updater is killed mid-restore, `psql` sees the end of its input without a
//! `COMMIT`, disconnects, and the server rolls everything back (with
//! `psql --single-transaction`, a clean end of a truncated script would have
//! committed half a restore). Either the database ends equal to the dump, or
//! nothing changed.
//!
//! Owners and privileges are restored as dumped (no `--no-owner
//! --no-privileges`): the prelude must drop the live objects anyway, which
//! only their owner (or a member of the owning role) can do, and a restore
//! that silently re-owned every object to the restoring role would lose the
//! grants other roles rely on. A dump whose objects belong to a role the
//! restoring user cannot `SET ROLE` to is therefore not restorable by that
//! user — and the restore test says so, so such a backup is never "verified".
//!
//! The restore test creates `<db>_updater_check_<random>` (`TEMPLATE
//! template0`, with the live database's encoding and locale; the role needs
//! `CREATEDB`), runs the same restore into it, and always drops it.
//!
//! The password travels in an anonymous 0600 memory file given to the tools
//! as `PGPASSFILE=/dev/fd/<n>`, never on the command line or on disk.

use std::fs;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use updater_core::command::Process;
use updater_core::progress::ProgressSink;

use super::credentials::Credentials;
use super::restore_test::{RestoreTest, scratch_name};
use super::server::{ServerSettings, server_settings_builder};
use super::tools::{find_tool, tool_failed, tool_version};
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

    server_settings_builder!(
        "passed to the tools as `PGPASSFILE=/dev/fd/<n>`, an anonymous 0600 memory file"
    );

    fn tool(&self, name: &str) -> Result<PathBuf> {
        find_tool(&[name], self.server.tool_dir.as_deref())
    }

    /// A run of `program` against `database` with connection options, the
    /// password in a memory file, the deadline and the ledger.
    fn client<'a>(&self, program: &Path, database: &str) -> Result<Process<'a>> {
        let mut process = Process::new(program)
            .arg("--host")
            .arg(&self.server.host)
            .arg("--port")
            .arg(self.server.port.to_string())
            .arg("--username")
            .arg(&self.server.user)
            .arg("--no-password")
            .arg("--dbname")
            .arg(database)
            .env("PGCONNECT_TIMEOUT", "15")
            .env("PGAPPNAME", "updater-backup")
            .timeout(self.server.timeout)
            .ledger(self.server.ledger.clone());
        if let Some(password) = &self.server.password {
            let escaped = password.expose().replace('\\', "\\\\").replace(':', "\\:");
            let (with_file, path) =
                Credentials::new(&format!("*:*:*:*:{escaped}\n"))?.attach(process);
            process = with_file.env("PGPASSFILE", path).redact(password);
        }
        Ok(process)
    }

    /// Runs one SQL command with `psql` in `database`; returns its output.
    fn psql(&self, database: &str, step: &'static str, sql: &str) -> Result<String> {
        let psql = self.tool("psql")?;
        Ok(self
            .client(&psql, database)?
            .args([
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "-At",
                "--command",
            ])
            .arg(sql)
            .run(step)
            .map_err(tool_failed(step))?
            .stdout)
    }

    /// Makes `database` equal to `dump` in one transaction (see the module docs).
    fn restore_into(&self, database: &str, dump: &Path, step: &'static str) -> Result<()> {
        let pg_restore = self.tool("pg_restore")?;
        let psql = self.tool("psql")?;
        // pg_restore only turns the archive into SQL here (no connection).
        let script = Process::new(&pg_restore)
            .args(["--clean", "--if-exists", "--file=-"])
            .arg(dump)
            .timeout(self.server.timeout)
            .ledger(self.server.ledger.clone())
            .spawn_reader(step)
            .map_err(tool_failed(step))?;
        // The reader reports pg_restore's failure instead of an end of file,
        // and the runner then kills psql before closing its input; the
        // COMMIT comes only after a complete script.
        let input = Cursor::new(format!("BEGIN;\n{PRELUDE}\n"))
            .chain(script)
            .chain(Cursor::new("\nCOMMIT;\n"));
        self.client(&psql, database)?
            .args([
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--file=-",
            ])
            .stdin_reader(input)
            .run(step)
            .map_err(tool_failed(step))?;
        Ok(())
    }
}

/// Quotes a PostgreSQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a PostgreSQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
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
        self.psql(&self.server.database, "preflight", "SELECT 1")?;
        Ok(())
    }

    fn dump(&self, dest: &Path, progress: &dyn ProgressSink) -> Result<()> {
        let pg_dump = self.tool("pg_dump")?;
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
        self.client(&pg_dump, &self.server.database)?
            .arg("--format=custom")
            .stdout_to(&mut writer)
            .run("dump")
            .map_err(tool_failed("dump"))?;
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
        Process::new(&pg_restore)
            .arg("--list")
            .arg(dump)
            .capture_limit(0)
            .timeout(self.server.timeout)
            .ledger(self.server.ledger.clone())
            .run("check")
            .map_err(|e| BackupError::integrity(&subject, e.to_string()))?;
        Ok(())
    }

    fn restore(&self, dump: &Path, progress: &dyn ProgressSink) -> Result<()> {
        self.restore_into(&self.server.database, dump, "restore")?;
        report_done(progress, 0, format!("restored {}", self.describe()));
        Ok(())
    }

    fn restore_test(&self, dump: &Path) -> Result<()> {
        let live = &self.server.database;
        let scratch = scratch_name(live)?;
        let settings = self.psql(
            live,
            "restore test",
            "SELECT pg_encoding_to_char(encoding) || '|' || datcollate || '|' || datctype \
             FROM pg_database WHERE datname = current_database()",
        )?;
        let mut parts = settings.trim().splitn(3, '|');
        let (encoding, collate, ctype) = (
            parts.next().unwrap_or("UTF8"),
            parts.next().unwrap_or("C"),
            parts.next().unwrap_or("C"),
        );
        self.psql(
            live,
            "restore test",
            &format!(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
                quote_ident(&scratch),
                quote_literal(encoding),
                quote_literal(collate),
                quote_literal(ctype)
            ),
        )
        .map_err(|e| BackupError::ToolFailed {
            tool: "psql".into(),
            step: "restore test",
            reason: format!(
                "cannot create the scratch database {scratch} (the role needs CREATEDB, or set RestoreTest::Never): {e}"
            ),
        })?;
        let restored = self.restore_into(&scratch, dump, "restore test");
        let dropped = self.psql(
            live,
            "restore test",
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(&scratch)),
        );
        restored.map_err(|e| BackupError::NotRestorable {
            subject: dump.display().to_string(),
            reason: e.to_string(),
        })?;
        dropped.map(drop).map_err(|e| BackupError::ToolFailed {
            tool: "psql".into(),
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
