//! The databases the integration tests run against: a fresh SQLite file, and
//! the PostgreSQL and MariaDB/MySQL servers when they are reachable. A test
//! whose server is unreachable prints `skipped: <why>` and passes, except
//! under `CI=true`, where it fails. Each store gets a unique table prefix and
//! drops its tables when the test ends, so tests may run concurrently.
#![allow(dead_code, unreachable_pub)]

use updater_store_diesel::DieselHistoryStore;

/// A database to open stores in.
pub struct Database {
    pub url: String,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
}

/// A store whose tables are dropped when it goes out of scope.
pub struct TestStore {
    pub store: DieselHistoryStore,
}

impl std::ops::Deref for TestStore {
    type Target = DieselHistoryStore;
    fn deref(&self) -> &DieselHistoryStore {
        &self.store
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Err(e) = self.store.drop_tables() {
            eprintln!(
                "cannot drop the test tables (prefix {}): {e}",
                self.store.table_prefix()
            );
        }
    }
}

/// A prefix no other test (or test process) uses.
pub fn unique_prefix() -> String {
    format!("{}_", updater_testkit::services::unique("t"))
}

impl Database {
    /// A store on this database under `prefix`.
    pub fn open_with_prefix(&self, prefix: &str) -> DieselHistoryStore {
        DieselHistoryStore::builder(self.url.clone())
            .with_table_prefix(prefix)
            .build()
            .unwrap_or_else(|e| panic!("{}: cannot open the store: {e}", self.name))
    }

    /// Runs `sql` on a connection of its own (as the host application would).
    pub fn execute(&self, sql: &str) {
        use diesel::{Connection, RunQueryDsl};
        match self.name {
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                let mut conn = diesel::SqliteConnection::establish(&self.url).unwrap();
                diesel::sql_query(sql).execute(&mut conn).unwrap();
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                let mut conn = diesel::PgConnection::establish(&self.url).unwrap();
                diesel::sql_query(sql).execute(&mut conn).unwrap();
            }
            #[cfg(feature = "mysql")]
            "mysql" => {
                let mut conn = diesel::MysqlConnection::establish(&self.url).unwrap();
                diesel::sql_query(sql).execute(&mut conn).unwrap();
            }
            other => panic!("no raw connection for {other}"),
        };
    }

    /// A store on this database under a fresh prefix, dropped at the end.
    pub fn open(&self) -> TestStore {
        TestStore {
            store: self.open_with_prefix(&unique_prefix()),
        }
    }
}

/// A fresh SQLite database file.
pub fn sqlite() -> Option<Database> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = dir.path().join("history.db").display().to_string();
    Some(Database {
        url,
        name: "sqlite",
        _dir: Some(dir),
    })
}

fn unreachable(name: &str, why: String) -> Option<Database> {
    updater_testkit::services::unavailable(name, &why);
    None
}

/// The PostgreSQL test server (`UPDATER_TEST_POSTGRES_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`).
pub fn postgres() -> Option<Database> {
    let url = std::env::var("UPDATER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    #[cfg(feature = "postgres")]
    {
        use diesel::Connection;
        match diesel::PgConnection::establish(&url) {
            Ok(_) => Some(Database {
                url,
                name: "postgres",
                _dir: None,
            }),
            Err(e) => unreachable("postgres", format!("is not reachable at {url}: {e}")),
        }
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = url;
        println!("skipped: postgres (built without the `postgres` feature)");
        None
    }
}

/// The MariaDB/MySQL test server (`UPDATER_TEST_MYSQL_URL`, default
/// `mysql://root@127.0.0.1:3306/test`).
pub fn mysql() -> Option<Database> {
    let url = std::env::var("UPDATER_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    #[cfg(feature = "mysql")]
    {
        use diesel::Connection;
        match diesel::MysqlConnection::establish(&url) {
            Ok(_) => Some(Database {
                url,
                name: "mysql",
                _dir: None,
            }),
            Err(e) => unreachable("mysql", format!("is not reachable at {url}: {e}")),
        }
    }
    #[cfg(not(feature = "mysql"))]
    {
        let _ = url;
        println!("skipped: mysql (built without the `mysql` feature)");
        None
    }
}
