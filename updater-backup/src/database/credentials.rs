//! Credentials for the client tools in an anonymous memory file
//! (`memfd_create`): the `PGPASSFILE` of PostgreSQL and the
//! `--defaults-extra-file` of MySQL/MariaDB.
//!
//! The file has no name in any directory, so nothing is ever written to
//! disk and nothing is left behind when the updater is killed (a 0600 file
//! in the temp directory outlived a SIGKILL during a dump). It is mode 0600
//! (libpq ignores a password file with group or world access, the MySQL
//! client a world-writable options file), handed to the one child that needs
//! it as an open descriptor, which the child opens as `/dev/fd/<n>`, and it
//! disappears with the last descriptor: ours is closed right after the spawn.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::{MemfdFlags, Mode};
use updater_core::command::Process;

use crate::error::{BackupError, Result};

/// Where errors about the memory file point.
const NAME: &str = "memfd:updater-credentials";

/// An anonymous 0600 memory file holding credentials.
#[derive(Debug)]
pub(crate) struct Credentials {
    fd: OwnedFd,
}

impl Credentials {
    /// A memory file holding `contents` (close-on-exec until it is attached).
    pub(crate) fn new(contents: &str) -> Result<Self> {
        let io = |action: &'static str| {
            move |e: rustix::io::Errno| BackupError::io(action, NAME, e.into())
        };
        let fd = rustix::fs::memfd_create("updater-credentials", MemfdFlags::CLOEXEC)
            .map_err(io("create"))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(io("set mode of"))?;
        // Descriptors 0-2 are the child's standard streams.
        let fd = if fd.as_raw_fd() < 3 {
            rustix::io::fcntl_dupfd_cloexec(&fd, 3).map_err(io("duplicate"))?
        } else {
            fd
        };
        let mut file = File::from(fd);
        file.write_all(contents.as_bytes())
            .map_err(|e| BackupError::io("write", NAME, e))?;
        Ok(Credentials { fd: file.into() })
    }

    /// Hands the file to `process`; returns it with the path under which
    /// the child opens it (`/dev/fd/<n>`).
    pub(crate) fn attach(self, process: Process<'_>) -> (Process<'_>, String) {
        let path = format!("/dev/fd/{}", self.fd.as_raw_fd());
        (process.pass_fd(self.fd), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_reads_the_credentials_from_a_private_memory_file_only() {
        let credentials = Credentials::new("*:*:*:*:pw\n").unwrap();
        let (process, path) = credentials.attach(Process::new("/bin/sh"));
        let done = process
            .arg("-c")
            .arg(format!("stat -L -c %a {path}; cat {path}; readlink {path}"))
            .run("t")
            .unwrap();
        let lines: Vec<&str> = done.stdout.lines().collect();
        assert_eq!(lines[..2], ["600", "*:*:*:*:pw"]);
        assert!(
            lines[2].starts_with("/memfd:updater-credentials"),
            "not a file in any directory: {}",
            lines[2]
        );
    }
}
