//! Protected data for the conformance suite: a directory tree, a SQLite file,
//! a PostgreSQL database and a MariaDB/MySQL database, each created fresh.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use updater_core::command::Process;
use updater_core::conformance::backup::ProtectedData;

pub use updater_testkit::services::unique;

/// Whether a server answers on 127.0.0.1:`port` (the test kit's one rule:
/// skipped with a message, a failure under `CI=true`).
pub fn server_available(name: &str, port: u16) -> bool {
    updater_testkit::services::require_server(name, &format!("127.0.0.1:{port}"))
}

/// A small application tree, with excluded paths that must be left alone.
pub struct AppTree {
    pub root: PathBuf,
    round: AtomicU32,
}

impl AppTree {
    pub fn new(root: &Path) -> Self {
        let write = |rel: &str, content: &[u8]| {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        };
        write("index.php", b"<?php require 'vendor/autoload.php';\n");
        write(
            "vendor/pkg/src/A.php",
            &b"class A { public function run() {} }\n".repeat(300),
        );
        write("vendor/pkg/src/B.php", b"class B {}\n");
        let mut random = vec![0u8; 300_000];
        let mut state = 0x9e37_79b9_u32;
        for byte in &mut random {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = state as u8;
        }
        write("public/assets/logo.bin", &random);
        write("public/assets/empty.txt", b"");
        write(
            &format!("deep/{}/long-name.txt", "x".repeat(120)),
            b"long path",
        );
        write("bin/run.sh", b"#!/bin/sh\necho run\n");
        fs::set_permissions(root.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(
            root.join("vendor/pkg/src/B.php"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("vendor/pkg", root.join("current-pkg")).unwrap();
        std::os::unix::fs::symlink("index.php", root.join("public/index-link.php")).unwrap();
        write("storage/logs/app.log", b"log line\n");
        write("storage/app/public/upload.jpg", b"upload");
        write(".updater/state.json", b"{}");
        fs::set_permissions(root.join("deep"), fs::Permissions::from_mode(0o750)).unwrap();
        AppTree {
            root: root.to_path_buf(),
            round: AtomicU32::new(0),
        }
    }
}

impl ProtectedData for AppTree {
    fn snapshot(&self) -> String {
        updater_testkit::tree::describe(
            &self.root,
            &["storage/logs", "storage/app/public", ".updater"],
        )
    }

    fn mutate(&self) {
        let n = self.round.fetch_add(1, Ordering::Relaxed);
        let root = &self.root;
        let mut content = fs::read(root.join("index.php")).unwrap_or_default();
        content.extend_from_slice(format!("// change {n}\n").as_bytes());
        fs::write(root.join("index.php"), content).unwrap();
        fs::write(root.join(format!("added-{n}.txt")), format!("new {n}")).unwrap();
        fs::create_dir_all(root.join(format!("new-dir-{n}/inner"))).unwrap();
        fs::write(root.join(format!("new-dir-{n}/inner/f.txt")), "x").unwrap();
        let _ = fs::remove_file(root.join("vendor/pkg/src/B.php"));
        let _ = fs::remove_dir_all(root.join("public/assets"));
        fs::create_dir_all(root.join("public")).unwrap();
        fs::write(root.join("public/assets"), "a file where a directory was").unwrap();
        let _ = fs::remove_file(root.join("current-pkg"));
        std::os::unix::fs::symlink(format!("elsewhere-{n}"), root.join("current-pkg")).unwrap();
        let _ = fs::set_permissions(root.join("bin/run.sh"), fs::Permissions::from_mode(0o700));
        // Excluded paths change too; restore must leave them alone.
        fs::write(root.join("storage/logs/app.log"), format!("log {n}\n")).unwrap();
    }
}

/// A SQLite database file.
pub struct SqliteData {
    pub path: PathBuf,
    round: AtomicU32,
}

impl SqliteData {
    pub fn new(path: &Path) -> Self {
        let connection = rusqlite::Connection::open(path).unwrap();
        connection
            .execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, avatar BLOB);
                 INSERT INTO users (name, avatar) VALUES ('ada', x'00ff10'), ('linus', NULL), ('grace', x'');
                 CREATE INDEX users_name ON users(name);",
            )
            .unwrap();
        SqliteData {
            path: path.to_path_buf(),
            round: AtomicU32::new(0),
        }
    }
}

impl ProtectedData for SqliteData {
    fn snapshot(&self) -> String {
        let connection = rusqlite::Connection::open(&self.path).unwrap();
        let mut out = String::new();
        let mut statement = connection
            .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let objects: Vec<(String, String, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (kind, name, sql) in objects {
            writeln!(out, "{kind} {name}: {sql}").unwrap();
            if kind == "table" {
                let mut rows = connection
                    .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid"))
                    .unwrap();
                let columns = rows.column_count();
                let mut cursor = rows.query([]).unwrap();
                while let Some(row) = cursor.next().unwrap() {
                    let values: Vec<String> = (0..columns)
                        .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                        .collect();
                    writeln!(out, "  {}", values.join(", ")).unwrap();
                }
            }
        }
        out
    }

    fn mutate(&self) {
        let n = self.round.fetch_add(1, Ordering::Relaxed);
        let connection = rusqlite::Connection::open(&self.path).unwrap();
        connection
            .execute_batch(&format!(
                "INSERT INTO users (name) VALUES ('user {n}');
                 UPDATE users SET name = name || '!' WHERE id = 1;
                 DELETE FROM users WHERE name = 'grace';
                 CREATE TABLE extra_{n} (x INTEGER);
                 INSERT INTO extra_{n} VALUES ({n});"
            ))
            .unwrap();
    }
}

/// Runs a database client with core's process runner and returns its
/// output; panics with the tail of its error output when it fails.
fn run_tool(program: &str, args: &[&str]) -> String {
    Process::new(program)
        .args(args)
        .capture_limit(1 << 24)
        .run("test fixture")
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
        .stdout
}

/// A fresh PostgreSQL database, dropped on drop.
pub struct PostgresData {
    pub name: String,
    round: AtomicU32,
}

impl PostgresData {
    pub fn new() -> Self {
        let name = unique("bk_pg");
        Self::psql("test", &format!("CREATE DATABASE {name}"));
        Self::psql(
            &name,
            "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, data bytea);
             INSERT INTO users (name, data) VALUES ('ada', '\\x00ff'), ('linus', NULL), ('grace', '');
             CREATE VIEW user_names AS SELECT name FROM users;
             CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql AS $$ SELECT upper(t) $$;",
        );
        PostgresData {
            name,
            round: AtomicU32::new(0),
        }
    }

    pub fn psql(database: &str, sql: &str) -> String {
        run_tool(
            "psql",
            &[
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                database,
                "-At",
                "-c",
                sql,
            ],
        )
    }
}

impl Drop for PostgresData {
    fn drop(&mut self) {
        let _ = Process::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-c",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .run("drop the test database");
    }
}

impl ProtectedData for PostgresData {
    fn snapshot(&self) -> String {
        let mut out = Self::psql(
            &self.name,
            "SELECT table_schema || '.' || table_name || ' ' || table_type FROM information_schema.tables
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;
             SELECT routine_name FROM information_schema.routines WHERE routine_schema = 'public' ORDER BY 1;
             SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
             WHERE table_schema = 'public' ORDER BY 1;",
        );
        let tables = Self::psql(
            &self.name,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
        );
        for table in tables.lines() {
            out.push_str(&Self::psql(
                &self.name,
                &format!("SELECT '{table}: ' || coalesce(string_agg(t::text, ' | ' ORDER BY t::text), '') FROM \"{table}\" t"),
            ));
        }
        out.push_str(&Self::psql(
            &self.name,
            "SELECT last_value FROM users_id_seq",
        ));
        out
    }

    fn mutate(&self) {
        let n = self.round.fetch_add(1, Ordering::Relaxed);
        Self::psql(
            &self.name,
            &format!(
                "INSERT INTO users (name) VALUES ('user {n}');
                 UPDATE users SET name = name || '!' WHERE id = 1;
                 DELETE FROM users WHERE name = 'grace';
                 CREATE TABLE extra_{n} (x int);
                 CREATE SCHEMA other_{n};
                 CREATE TABLE other_{n}.t (y int);"
            ),
        );
    }
}

/// A fresh MariaDB/MySQL database, dropped on drop.
pub struct MysqlData {
    pub name: String,
    round: AtomicU32,
}

impl MysqlData {
    pub fn new() -> Self {
        let name = unique("bk_my");
        Self::mysql(&format!("CREATE DATABASE {name}"));
        Self::mysql(&format!(
            "CREATE TABLE {name}.users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, data BLOB);
             INSERT INTO {name}.users (name, data) VALUES ('ada', x'00ff'), ('linus', NULL), ('grace', '');
             CREATE VIEW {name}.user_names AS SELECT name FROM {name}.users;
             CREATE FUNCTION {name}.shout(t TEXT) RETURNS TEXT DETERMINISTIC RETURN upper(t);"
        ));
        MysqlData {
            name,
            round: AtomicU32::new(0),
        }
    }

    pub fn mysql(sql: &str) -> String {
        run_tool(
            "mysql",
            &[
                "-h",
                "127.0.0.1",
                "-P",
                "3306",
                "-u",
                "root",
                "-N",
                "-B",
                "-e",
                sql,
            ],
        )
    }
}

impl Drop for MysqlData {
    fn drop(&mut self) {
        let _ = Process::new("mysql")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.name))
            .run("drop the test database");
    }
}

impl ProtectedData for MysqlData {
    fn snapshot(&self) -> String {
        let name = &self.name;
        let mut out = Self::mysql(&format!(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = '{name}' ORDER BY 1;
             SELECT routine_name FROM information_schema.routines WHERE routine_schema = '{name}' ORDER BY 1;
             SELECT table_name, column_name, column_type FROM information_schema.columns WHERE table_schema = '{name}' ORDER BY 1, 2;"
        ));
        let tables = Self::mysql(&format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{name}' AND table_type = 'BASE TABLE' ORDER BY 1"
        ));
        for table in tables.lines() {
            out.push_str(&format!("{table}:\n"));
            out.push_str(&Self::mysql(&format!(
                "SELECT * FROM {name}.{table} ORDER BY 1"
            )));
        }
        out
    }

    fn mutate(&self) {
        let n = self.round.fetch_add(1, Ordering::Relaxed);
        let name = &self.name;
        Self::mysql(&format!(
            "INSERT INTO {name}.users (name) VALUES ('user {n}');
             UPDATE {name}.users SET name = concat(name, '!') WHERE id = 1;
             DELETE FROM {name}.users WHERE name = 'grace';
             CREATE TABLE {name}.extra_{n} (x INT);"
        ));
    }
}

/// Files plus a database, seen as one.
pub struct Both<'a> {
    pub files: &'a dyn ProtectedData,
    pub database: &'a dyn ProtectedData,
}

impl ProtectedData for Both<'_> {
    fn snapshot(&self) -> String {
        format!(
            "{}\n=== database ===\n{}",
            self.files.snapshot(),
            self.database.snapshot()
        )
    }

    fn mutate(&self) {
        self.files.mutate();
        self.database.mutate();
    }
}
