//! Small disks: a tmpfs of a chosen size mounted for one test, for what a
//! full or nearly full disk must not break. Mounting needs root; without it
//! the test is skipped with a message, a failure under `CI=true` (the rule
//! of [`crate::services`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted on drop (also when the test
/// fails; lazily when something still holds it open).
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
    /// The temporary directory it is mounted on, for [`Tmpfs::temp`]:
    /// removed after the unmount.
    _temp: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`4m`, as `mount -o size=` takes it) on
    /// `dir`, created when missing. `None` when it cannot (not root, `mount`
    /// fails), after [`crate::services::skip`] said why: a failure under CI.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        Self::mount_on(dir, size, None)
    }

    /// [`Tmpfs::mount`] on a fresh temporary directory, removed on drop.
    pub fn temp(size: &str) -> Option<Tmpfs> {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        Self::mount_on(&dir, size, Some(temp))
    }

    fn mount_on(dir: &Path, size: &str, temp: Option<tempfile::TempDir>) -> Option<Tmpfs> {
        let skip = |why: String| {
            crate::services::skip(&why);
            None
        };
        if !is_root() {
            return skip(format!(
                "mounting a {size} tmpfs needs root (the small-disk tests)"
            ));
        }
        std::fs::create_dir_all(dir).unwrap();
        match Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
        {
            Ok(out) if out.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
                _temp: temp,
            }),
            Ok(out) => skip(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => skip(format!("cannot run mount: {e}")),
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Whether this process runs as root (`id -u` prints 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
