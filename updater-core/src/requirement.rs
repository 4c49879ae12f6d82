//! Requirements of the machine a release needs — a runtime version (`php -v`
//! ≥ 8.2), an extension (`php -m` lists `intl`), a tool on `PATH`, any
//! command that must succeed — checked in the preflight step of every
//! update, all at once, before anything changes.
//!
//! ```
//! use updater_core::requirement::Requirement;
//! let sh = Requirement::Binary { name: "shell".into(), program: "sh".into() };
//! assert!(sh.check(&std::env::temp_dir()).is_ok());
//! let future = Requirement::Version {
//!     name: "bash 99".into(),
//!     command: "echo 'GNU bash, version 5.2.15(1)-release'".into(),
//!     requirement: ">=99".parse()?,
//! };
//! assert!(future.check(&std::env::temp_dir()).unwrap_err().contains("5.2.15 does not satisfy >=99"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::ShellCommand;

/// How long one requirement's command may run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// One requirement, named for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Requirement {
    /// `command` (run by `/bin/sh -c` in the application directory) exits
    /// with `exit_code`.
    Command {
        /// How the operator calls it.
        name: String,
        /// The command line.
        command: String,
        /// The expected exit code.
        #[serde(default)]
        exit_code: i32,
    },
    /// The first version number (`8.2.7`, `8.2`) in `command`'s output
    /// satisfies `requirement` (`>=8.2`).
    Version {
        /// How the operator calls it.
        name: String,
        /// The command line printing the version (`php -v`).
        command: String,
        /// The version requirement (semver syntax: `>=8.2`, `^3.1`).
        requirement: semver::VersionReq,
    },
    /// `command`'s output contains `text` (as a word or line: `php -m` lists `intl`).
    Contains {
        /// How the operator calls it.
        name: String,
        /// The command line.
        command: String,
        /// The text its output must contain.
        text: String,
    },
    /// `program` is on `PATH`.
    Binary {
        /// How the operator calls it.
        name: String,
        /// The program's name.
        program: String,
    },
}

/// The first `major.minor[.patch]` in `text` (a run of digits and dots that
/// starts a word, or follows a `v`), as a semantic version.
fn first_version(text: &str) -> Option<semver::Version> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let run_start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        let before = run_start.checked_sub(1).map(|j| chars[j]);
        let starts_word = match before {
            None => true,
            Some(c) if !c.is_alphanumeric() => true,
            Some('v' | 'V') => run_start < 2 || !chars[run_start - 2].is_alphanumeric(),
            Some(_) => false,
        };
        if !starts_word {
            continue;
        }
        let run: String = chars[run_start..i].iter().collect();
        let numbers: Vec<u64> = run
            .split('.')
            .filter(|n| !n.is_empty())
            .take(3)
            .map_while(|n| n.parse().ok())
            .collect();
        if numbers.len() >= 2 {
            return Some(semver::Version::new(
                numbers[0],
                numbers[1],
                numbers.get(2).copied().unwrap_or(0),
            ));
        }
    }
    None
}

impl Requirement {
    /// The operator's name for it.
    pub fn name(&self) -> &str {
        match self {
            Requirement::Command { name, .. }
            | Requirement::Version { name, .. }
            | Requirement::Contains { name, .. }
            | Requirement::Binary { name, .. } => name,
        }
    }

    fn output(name: &str, command: &str, app_dir: &Path) -> Result<String, String> {
        // Both streams: `php -v` prints to stdout, `java -version` to stderr.
        ShellCommand::new(format!("{{ {command} ; }} 2>&1"))
            .with_name(format!("requirement {name}"))
            .with_timeout(CHECK_TIMEOUT)
            .run("preflight", Some(app_dir))
            .map_err(|e| e.to_string())
    }

    /// Checks it now, in `app_dir`; `Err` says what is wrong.
    pub fn check(&self, app_dir: &Path) -> Result<(), String> {
        match self {
            Requirement::Command {
                name,
                command,
                exit_code,
            } => {
                let line = format!(
                    "( {command} ) >/dev/null 2>&1; code=$?; [ \"$code\" -eq {exit_code} ] || {{ echo \"exit code $code, expected {exit_code}\"; exit 1; }}"
                );
                ShellCommand::new(line)
                    .with_name(format!("requirement {name}"))
                    .with_timeout(CHECK_TIMEOUT)
                    .run("preflight", Some(app_dir))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Requirement::Version {
                name,
                command,
                requirement,
            } => {
                let output = Self::output(name, command, app_dir)?;
                let version = first_version(&output)
                    .ok_or_else(|| format!("no version number in the output of `{command}`"))?;
                if requirement.matches(&version) {
                    Ok(())
                } else {
                    Err(format!("{version} does not satisfy {requirement}"))
                }
            }
            Requirement::Contains {
                name,
                command,
                text,
            } => {
                let output = Self::output(name, command, app_dir)?;
                let found = output.lines().any(|line| {
                    line.split_whitespace()
                        .any(|word| word.eq_ignore_ascii_case(text))
                }) || output.contains(text.as_str());
                if found {
                    Ok(())
                } else {
                    Err(format!(
                        "the output of `{command}` does not contain {text:?}"
                    ))
                }
            }
            Requirement::Binary { program, .. } => {
                let path = std::env::var_os("PATH").unwrap_or_default();
                let found = std::env::split_paths(&path).any(|dir| {
                    let candidate = dir.join(program);
                    std::fs::metadata(&candidate).is_ok_and(|m| {
                        use std::os::unix::fs::PermissionsExt;
                        m.is_file() && m.permissions().mode() & 0o111 != 0
                    })
                });
                if found {
                    Ok(())
                } else {
                    Err(format!("{program} is not on PATH"))
                }
            }
        }
    }
}

/// Checks every requirement; `Err` lists every failure, one per line.
pub fn check_all(requirements: &[Requirement], app_dir: &Path) -> Result<(), String> {
    let failures: Vec<String> = requirements
        .iter()
        .filter_map(|r| r.check(app_dir).err().map(|e| format!("{}: {e}", r.name())))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_are_found_in_tool_banners() {
        let cases = [
            ("PHP 8.2.7 (cli) (built: Jun  9 2023)", "8.2.7"),
            ("node v20.20.2", "20.20.2"),
            ("openjdk version \"17.0.15\" 2025-04-15", "17.0.15"),
            ("Python 3.11", "3.11.0"),
            ("x86_64 Linux 6.1.0", "6.1.0"),
        ];
        for (text, version) in cases {
            assert_eq!(first_version(text).unwrap().to_string(), version, "{text}");
        }
        assert!(first_version("no digits here, v2 only").is_none());
    }

    #[test]
    fn every_failing_requirement_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let all = vec![
            Requirement::Binary {
                name: "a tool".into(),
                program: "surely-not-installed-updater-tool".into(),
            },
            Requirement::Contains {
                name: "extension intl".into(),
                command: "printf 'Core\\nctype\\njson\\n'".into(),
                text: "intl".into(),
            },
            Requirement::Command {
                name: "exit 3".into(),
                command: "exit 3".into(),
                exit_code: 3,
            },
            Requirement::Version {
                name: "php".into(),
                command: "echo 'PHP 8.1.2 (cli)'".into(),
                requirement: ">=8.2".parse().unwrap(),
            },
        ];
        let report = check_all(&all, dir.path()).unwrap_err();
        assert!(
            report.contains("a tool: surely-not-installed-updater-tool is not on PATH"),
            "{report}"
        );
        assert!(report.contains("extension intl: the output"), "{report}");
        assert!(
            report.contains("php: 8.1.2 does not satisfy >=8.2"),
            "{report}"
        );
        assert!(
            !report.contains("exit 3:"),
            "the expected exit code passes: {report}"
        );
    }
}
