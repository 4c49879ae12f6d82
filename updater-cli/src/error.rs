//! The one error type of the CLI and the exit code of each variant.

use std::path::PathBuf;

/// Shorthand for results whose error is [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// The process exit codes, documented in `updater --help`.
pub mod exit_code {
    /// Success.
    pub const OK: u8 = 0;
    /// The command failed (the update was refused, failed, rolled back...).
    pub const FAILURE: u8 = 1;
    /// Bad usage or configuration: nothing was done.
    pub const USAGE: u8 = 2;
    /// `updater check` found an update that may be installed.
    pub const UPDATE_AVAILABLE: u8 = 3;
}

/// Everything that can go wrong in the `updater` command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The configuration file is not valid TOML or does not fit the schema
    /// (unknown key, wrong type).
    #[error("{path}:{line}:{column}: {}{message}", key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The dotted key at that place, when there is one (`app.dir`).
        key: Option<String>,
        /// What is wrong.
        message: String,
    },

    /// A value in the configuration is well-formed but not acceptable.
    #[error("{path}{}: key `{key}`: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    ConfigValue {
        /// The file.
        path: PathBuf,
        /// The line of the key, when it is in the file.
        line: Option<usize>,
        /// The dotted key (`backup.database.url`).
        key: String,
        /// What is wrong.
        message: String,
    },

    /// An environment variable override has a bad value. The value itself
    /// is not repeated (it may be a secret).
    #[error("environment variable {name}: {message}")]
    Environment {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },

    /// The command line asks for something that cannot be done as asked
    /// (e.g. a confirmation that cannot be given without a terminal).
    #[error("{0}")]
    Usage(String),

    /// The operator declined the confirmation prompt.
    #[error("aborted: {0}")]
    Declined(String),

    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The updater (or one of its parts) failed.
    #[error(transparent)]
    Update(updater_core::Error),
}

impl CliError {
    /// The process exit code for this error (see [`exit_code`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::ConfigRead { .. }
            | CliError::ConfigSyntax { .. }
            | CliError::ConfigValue { .. }
            | CliError::Environment { .. }
            | CliError::Usage(_) => exit_code::USAGE,
            CliError::Declined(_) | CliError::Io { .. } | CliError::Update(_) => exit_code::FAILURE,
        }
    }

    /// A short, stable name of the variant for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::ConfigRead { .. } => "config_read",
            CliError::ConfigSyntax { .. } => "config_syntax",
            CliError::ConfigValue { .. } => "config_value",
            CliError::Environment { .. } => "environment",
            CliError::Usage(_) => "usage",
            CliError::Declined(_) => "declined",
            CliError::Io { .. } => "io",
            CliError::Update(e) => update_error_kind(e),
        }
    }

    /// A file-system error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CliError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

fn update_error_kind(error: &updater_core::Error) -> &'static str {
    use updater_core::Error as E;
    match error {
        E::Io { .. } => "io",
        E::NotFound { .. } => "not_found",
        E::InvalidInput { .. } => "invalid_input",
        E::Integrity { .. } => "integrity",
        E::PackageRejected { .. } => "package_rejected",
        E::VersionRefused { .. } => "version_refused",
        E::Precondition { .. } => "precondition",
        E::Locked { .. } => "locked",
        E::Unavailable { .. } => "unavailable",
        E::Unsupported { .. } => "unsupported",
        E::Command { .. } => "command",
        E::Step { .. } => "step_failed",
        E::RolledBack { .. } => "rolled_back",
        E::NeedsOperator { .. } => "needs_operator",
        E::ApplicationData { .. } => "application_data",
        _ => "other",
    }
}

impl From<updater_core::Error> for CliError {
    fn from(error: updater_core::Error) -> Self {
        CliError::Update(error)
    }
}

impl From<updater_backup::BackupError> for CliError {
    fn from(error: updater_backup::BackupError) -> Self {
        CliError::Update(error.into())
    }
}

impl From<updater_source_github::SourceError> for CliError {
    fn from(error: updater_source_github::SourceError) -> Self {
        CliError::Update(error.into())
    }
}

impl From<updater_store_diesel::StoreError> for CliError {
    fn from(error: updater_store_diesel::StoreError) -> Self {
        CliError::Update(error.into())
    }
}

impl From<CliError> for updater_core::Error {
    fn from(error: CliError) -> Self {
        match error {
            CliError::Update(inner) => inner,
            other => updater_core::Error::other("updater command", other),
        }
    }
}
