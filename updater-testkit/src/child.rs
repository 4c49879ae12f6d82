//! Real crashes: an operation runs in a child process — this same test
//! binary, re-executed to run one entry test — that aborts at a failpoint or
//! is killed; the parent then checks what a fresh process recovers.

use std::process::{Child, Command, ExitStatus, Stdio};

/// The environment variable that marks a child process.
pub const MARKER: &str = "UPDATER_TESTKIT_CHILD";

/// Whether this process is a child started by [`command`].
pub fn is_child() -> bool {
    std::env::var_os(MARKER).is_some()
}

/// A command re-running this test binary for the test `entry` only, with
/// `vars` in its environment (and [`MARKER`]). Output is discarded; the
/// returned command can still be changed (more variables, a piped stdout).
pub fn command(entry: &str, vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env(MARKER, "1")
        .env_remove("UPDATER_FAILPOINT")
        .env_remove("UPDATER_FAILPOINT_DELAY_MS")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// Starts [`command`] without waiting: for a parent that watches the child
/// (a marker file, a line of its output) and then kills it. Set
/// `stdout(Stdio::piped())` on [`command`] instead to read the child's output.
pub fn spawn(entry: &str, vars: &[(&str, String)]) -> Child {
    command(entry, vars)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the child {entry}: {e}"))
}

/// Runs [`command`] to its end.
pub fn run(entry: &str, vars: &[(&str, String)]) -> ExitStatus {
    command(entry, vars).status().unwrap()
}

/// A variable of the child's environment (panics when missing: a broken test).
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child process without {name}"))
}
