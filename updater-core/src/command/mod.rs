//! External commands: one runner ([`Process`]) for every program the
//! workspace starts — the shell commands of the pipeline (migrations,
//! maintenance, health checks, hooks: [`ShellCommand`]) and the database
//! tools of `updater-backup` — and a [`ChildLedger`] so that no child
//! outlives the updater.
//!
//! Every process runs in its own process group with a deadline; the whole
//! group is killed with SIGKILL when the deadline passes, when its input or
//! output fails, and once it has exited. Output is captured (the end of it)
//! or streamed; errors name the step and the program (never the arguments
//! or the environment, which may hold secrets) and carry the tail of its
//! output with registered secrets removed.
//!
//! A [`ShellCommand`] is a command line run by `/bin/sh -c`, the way an
//! operator writes it in a config file (`php artisan migrate --force`).
//!
//! ```
//! use std::time::Duration;
//! use updater_core::command::ShellCommand;
//!
//! let output = ShellCommand::new("echo hello").with_timeout(Duration::from_secs(5)).run("example", None)?;
//! assert_eq!(output.trim(), "hello");
//!
//! let err = ShellCommand::new("exit 3").run("example", None).unwrap_err();
//! assert!(err.to_string().contains("exit status: 3"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Children never outlive the updater
//!
//! A process group is not enough: when the updater itself is killed (SIGKILL,
//! OOM), nothing kills the group, and a migration would go on running while
//! the next `recover()` rolls the files back underneath it. Commands run with
//! a [`ChildLedger`] ([`ShellCommand::with_ledger`], [`Process::with_ledger`])
//! leave a record for as long as they run, and
//! [`ChildLedger::stop_orphans`] — called at the start of recovery — kills
//! whatever is left of the children of a dead updater and waits until it is
//! gone. See [`ledger`](ChildLedger) for how pid reuse is ruled out.

mod ledger;
mod process;
mod procfs;

pub use ledger::{CHILD_TOKEN_ENV, ChildLedger, ChildRecord, ProcessIdentity, StoppedChild};
pub use process::{DEFAULT_CAPTURE, Finished, Process, ProcessReader, find_program};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A shell command line with a working directory, environment and timeout.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellCommand {
    /// The command line given to `/bin/sh -c`.
    pub line: String,
    /// Working directory; the application directory when `None`.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Extra environment variables (values are never logged).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// How long it may run.
    #[serde(default = "default_timeout", with = "duration_secs")]
    pub timeout: Duration,
    /// Where it is recorded while it runs (not part of a configuration).
    #[serde(skip)]
    pub ledger: Option<ChildLedger>,
    /// What it is for, as configured (`migrations.up`, `hooks.after_swap`):
    /// how errors name it.
    #[serde(default)]
    pub name: Option<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

impl std::fmt::Debug for ShellCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellCommand")
            .field("command", &self.describe())
            .field("working_dir", &self.working_dir)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("ledger", &self.ledger)
            .finish()
    }
}

impl ShellCommand {
    /// A command line with a 300 s timeout.
    pub fn new(line: impl Into<String>) -> Self {
        ShellCommand {
            line: line.into(),
            working_dir: None,
            env: Vec::new(),
            timeout: default_timeout(),
            ledger: None,
            name: None,
        }
    }

    /// Names its role (builder style): errors then say
    /// `migrations.up: php artisan migrate --force` instead of the first word.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How errors and logs name it: the role, when named, and the command
    /// line with the values of `NAME=value` assignments, `--password=...`-like
    /// options and URL credentials replaced by `***`.
    ///
    /// ```
    /// use updater_core::command::ShellCommand;
    /// let command = ShellCommand::new("MYSQL_PWD=hunter2 mysql -u app -phunter2 --token=abc app < up.sql")
    ///     .with_name("migrations.up");
    /// assert_eq!(
    ///     command.describe(),
    ///     "migrations.up: MYSQL_PWD=*** mysql -u app -p*** --token=*** app < up.sql"
    /// );
    /// ```
    pub fn describe(&self) -> String {
        let line = redact_command_line(&self.line);
        match &self.name {
            Some(name) => format!("{name}: {line}"),
            None => line,
        }
    }

    /// Sets the timeout (builder style).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the working directory (builder style).
    pub fn with_working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Adds an environment variable (builder style).
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Records it in `ledger` while it runs (builder style), so that
    /// [`ChildLedger::stop_orphans`] stops it, and everything it started,
    /// if the updater dies meanwhile.
    ///
    /// ```
    /// use updater_core::command::{ChildLedger, ShellCommand};
    /// let state = tempfile::tempdir()?;
    /// let ledger = ChildLedger::new(state.path().join("children"));
    /// let migrate = ShellCommand::new("true").with_ledger(ledger.clone());
    /// migrate.run("migrate", None)?;
    /// assert!(ledger.records()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_ledger(mut self, ledger: ChildLedger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The first word of the command line, used to name it in errors.
    pub fn program(&self) -> &str {
        self.line.split_whitespace().next().unwrap_or("")
    }

    /// Runs the command for `step` in `default_dir` (unless it has its own
    /// working directory), with an overall deadline of its timeout. Returns
    /// its standard output; fails on a non-zero exit, a signal or a timeout.
    pub fn run(&self, step: &str, default_dir: Option<&Path>) -> Result<String> {
        self.run_until(step, default_dir, Instant::now() + self.timeout)
    }

    /// Like [`run`](Self::run) but stops at `deadline` if that comes first.
    pub fn run_until(
        &self,
        step: &str,
        default_dir: Option<&Path>,
        deadline: Instant,
    ) -> Result<String> {
        let mut process = Process::new("/bin/sh")
            .named(self.describe())
            .arg("-c")
            .arg(&self.line)
            .timeout(self.timeout)
            .deadline(deadline)
            .capture_limit(DEFAULT_CAPTURE)
            .ledger(self.ledger.clone());
        if let Some(dir) = self.working_dir.as_deref().or(default_dir) {
            process = process.current_dir(dir);
        }
        for (key, value) in &self.env {
            process = process.env(key, value);
        }
        Ok(process.run(step)?.stdout)
    }
}

/// Words of a shell command line that look like secrets, replaced by `***`.
fn redact_command_line(line: &str) -> String {
    const SECRET_WORDS: [&str; 6] = ["pass", "pwd", "secret", "token", "key", "auth"];
    let secret_name = |name: &str| {
        let lower = name.to_ascii_lowercase();
        SECRET_WORDS.iter().any(|w| lower.contains(w))
    };
    let mysql = line.contains("mysql") || line.contains("mariadb");
    let mut redact_next = false;
    line.split(' ')
        .map(|word| {
            if redact_next && !word.is_empty() {
                redact_next = false;
                return "***".to_string();
            }
            if let Some((name, value)) = word.split_once('=')
                && !value.is_empty()
            {
                let bare = name.trim_start_matches('-');
                let assignment = !name.starts_with('-')
                    && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if assignment || secret_name(bare) {
                    return format!("{name}=***");
                }
                if value.contains("://") {
                    return format!("{name}={}", crate::error::redact_url(value));
                }
            }
            if word.contains("://") {
                return crate::error::redact_url(word);
            }
            if word.starts_with("--") && secret_name(word) {
                redact_next = true;
                return word.to_string();
            }
            // mysql -pPASSWORD
            if let Some(rest) = word.strip_prefix("-p")
                && mysql
                && !rest.is_empty()
                && !word.starts_with("--")
            {
                return "-p***".to_string();
            }
            word.to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_returned_and_failures_carry_the_tail_of_stderr() {
        assert_eq!(
            ShellCommand::new("printf abc").run("t", None).unwrap(),
            "abc"
        );
        let err = ShellCommand::new("echo boom >&2; false")
            .run("migrate", None)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("migrate") && text.contains("boom"), "{text}");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let started = Instant::now();
        let err = ShellCommand::new("sleep 30 & sleep 30")
            .with_timeout(Duration::from_millis(200))
            .run("health check", None)
            .unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn errors_never_show_arguments_or_environment() {
        let err = ShellCommand::new("false --password=hunter2")
            .with_env("DB_PASSWORD", "hunter2")
            .run("migrate", None)
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(
            !format!(
                "{:?}",
                ShellCommand::new("x --password=hunter2").with_env("K", "hunter2")
            )
            .contains("hunter2")
        );
    }

    #[test]
    fn environment_and_working_directory_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let out = ShellCommand::new("printf \"$GREETING\"; pwd")
            .with_env("GREETING", "hi ")
            .run("t", Some(dir.path()))
            .unwrap();
        assert!(out.starts_with("hi "));
        assert!(
            out.trim_end()
                .ends_with(&*dir.path().file_name().unwrap().to_string_lossy())
        );
    }
}
