//! External commands (migrations, maintenance, health checks, hooks): run
//! with a deadline, killed with their whole process group when it passes,
//! their output captured (the last 4 KiB) for the error message.
//!
//! A [`ShellCommand`] is a command line run by `/bin/sh -c`, the way an
//! operator writes it in a config file (`php artisan migrate --force`).
//! Errors name the step and the program (the first word), never the
//! arguments or the environment, which may hold secrets.
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

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How much of a command's output is kept for error messages.
const OUTPUT_TAIL: usize = 4096;

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
            .field("program", &self.program())
            .field("working_dir", &self.working_dir)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
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
        let deadline = deadline.min(Instant::now() + self.timeout);
        let fail = |reason: String| Error::Command {
            step: step.to_string(),
            command: self.program().to_string(),
            reason,
        };
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(&self.line)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = self.working_dir.as_deref().or(default_dir) {
            command.current_dir(dir);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("cannot start /bin/sh: {e}")))?;
        let pid = child.id();
        // Readers on threads so a chatty command never blocks on a full pipe.
        let stdout = child.stdout.take().map(spawn_reader);
        let stderr = child.stderr.take().map(spawn_reader);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    kill_group(pid);
                    let _ = child.wait();
                    break Err(format!("timed out after {:.1?}", started.elapsed()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => break Err(format!("cannot wait for it: {e}")),
            }
        };
        // The process group may linger (daemonised children); make sure it is gone.
        kill_group(pid);
        let out = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
        let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        match status {
            Ok(status) if status.success() => Ok(out),
            Ok(status) => Err(fail(format!("{status}{}", output_tail(&out, &err)))),
            Err(reason) => Err(fail(format!("{reason}{}", output_tail(&out, &err)))),
        }
    }
}

fn spawn_reader<R: Read + Send + 'static>(mut pipe: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&chunk[..n]);
                    if kept.len() > 4 * OUTPUT_TAIL {
                        kept.drain(..kept.len() - OUTPUT_TAIL);
                    }
                }
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

fn output_tail(out: &str, err: &str) -> String {
    let text = format!("{}\n{}", out.trim_end(), err.trim_end());
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| text.len() - i <= OUTPUT_TAIL)
        .unwrap_or(0);
    format!("; output: {}", &text[start..])
}

fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
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
