//! Finding and running the database client tools. They run through core's
//! one process runner ([`updater_core::command::Process`]): found on `PATH`
//! (or in a configured directory), asked for `--version` in preflight, run
//! in their own process group with a deadline, output streamed, errors
//! carrying the tail of their error output with the password removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use updater_core::command::{Process, find_program};

use crate::error::{BackupError, Result};

/// Finds the first of `names` in `tool_dir` when given, on `PATH` otherwise.
pub(crate) fn find_tool(names: &[&str], tool_dir: Option<&Path>) -> Result<PathBuf> {
    find_program(names, tool_dir.map(Path::as_os_str)).ok_or_else(|| {
        let place = match tool_dir {
            Some(dir) => format!("in {}", dir.display()),
            None => "on PATH".to_string(),
        };
        BackupError::ToolMissing {
            tool: names.join(" or "),
            reason: format!("not found {place}"),
        }
    })
}

/// Runs `tool --version` and returns its first line.
pub(crate) fn tool_version(tool: &Path) -> Result<String> {
    let done = Process::new(tool)
        .arg("--version")
        .timeout(Duration::from_secs(20))
        .run("version check")
        .map_err(|e| BackupError::ToolMissing {
            tool: tool_name(tool),
            reason: format!("`--version` failed: {e}"),
        })?;
    Ok(done.stdout.lines().next().unwrap_or("").to_string())
}

/// The program name of a tool path.
pub(crate) fn tool_name(tool: &Path) -> String {
    tool.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| tool.display().to_string())
}

/// Turns an error of the process runner into this crate's, for `step`.
pub(crate) fn tool_failed(step: &'static str) -> impl Fn(updater_core::Error) -> BackupError {
    move |error| match error {
        updater_core::Error::Command {
            command, reason, ..
        } => BackupError::ToolFailed {
            tool: command,
            step,
            reason,
        },
        updater_core::Error::Io {
            action,
            path,
            source,
        } => BackupError::Io {
            action,
            path,
            source,
        },
        other => BackupError::ToolFailed {
            tool: "database tool".into(),
            step,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_in_the_error() {
        let err = find_tool(&["surely-not-a-dump-tool"], None).unwrap_err();
        assert!(
            matches!(&err, BackupError::ToolMissing { tool, reason }
                if tool == "surely-not-a-dump-tool" && reason == "not found on PATH"),
            "{err}"
        );
    }

    #[test]
    fn runner_errors_become_tool_failures_of_the_step() {
        let sh = find_tool(&["sh"], None).unwrap();
        let err = Process::new(&sh)
            .args(["-c", "echo denied >&2; exit 2"])
            .run("dump")
            .map_err(tool_failed("dump"))
            .unwrap_err();
        assert!(
            matches!(&err, BackupError::ToolFailed { tool, step: "dump", reason }
                if tool == "sh" && reason == "exit status: 2; output: denied"),
            "{err}"
        );
    }
}
