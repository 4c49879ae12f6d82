//! What the PostgreSQL and MySQL engines share: where the server is, who
//! connects, and how long their client tools may run.

use std::path::PathBuf;
use std::time::Duration;

use updater_core::command::ChildLedger;

use super::Secret;

/// Connection settings of a database server reached over TCP.
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) database: String,
    pub(crate) password: Option<Secret>,
    pub(crate) timeout: Duration,
    pub(crate) tool_dir: Option<PathBuf>,
    pub(crate) ledger: Option<ChildLedger>,
}

impl ServerSettings {
    /// `database` on 127.0.0.1:`port` as `user`, no password, one-hour timeout.
    pub(crate) fn local(database: String, port: u16, user: &str) -> Self {
        ServerSettings {
            host: "127.0.0.1".into(),
            port,
            user: user.into(),
            database,
            password: None,
            timeout: Duration::from_secs(3600),
            tool_dir: None,
            ledger: None,
        }
    }
}

/// The builder methods of an engine holding its [`ServerSettings`] in
/// `self.server`; `$password_doc` says how the password reaches the tools.
macro_rules! server_settings_builder {
    ($password_doc:literal) => {
        /// Sets the host.
        pub fn with_host(mut self, host: impl Into<String>) -> Self {
            self.server.host = host.into();
            self
        }

        /// Sets the port.
        pub fn with_port(mut self, port: u16) -> Self {
            self.server.port = port;
            self
        }

        /// Sets the user.
        pub fn with_user(mut self, user: impl Into<String>) -> Self {
            self.server.user = user.into();
            self
        }

        #[doc = concat!("Sets the password (", $password_doc, ").")]
        pub fn with_password(mut self, password: Secret) -> Self {
            self.server.password = Some(password);
            self
        }

        /// Looks for the client tools only in `dir` (default: on `PATH`).
        pub fn with_tool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
            self.server.tool_dir = Some(dir.into());
            self
        }

        /// The longest a dump or restore may run (default one hour).
        pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.server.timeout = timeout;
            self
        }

        /// Records the client tools in `ledger` while they run, so that
        /// [`ChildLedger::stop_orphans`](updater_core::command::ChildLedger::stop_orphans)
        /// stops a dump or restore left running by an updater that died.
        pub fn with_child_ledger(mut self, ledger: updater_core::command::ChildLedger) -> Self {
            self.server.ledger = Some(ledger);
            self
        }
    };
}

pub(crate) use server_settings_builder;
