//! The shared test kit's release server and demo application, bound to this
//! crate's `updater` binary.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use updater_testkit::archive::tar_gz;
pub use updater_testkit::cli::{ReleaseServer, Run};

/// The demo application driven through this crate's binary.
pub type Fixture = updater_testkit::cli::Fixture;

/// A fresh demo application for the `updater` binary built with these tests.
pub fn fixture() -> Fixture {
    Fixture::new(env!("CARGO_BIN_EXE_updater"))
}

/// Runs the binary with `args`, SIGKILLs it after `after` and reaps it;
/// `true` when it was still running (the kill interrupted it).
pub fn kill_after(f: &Fixture, args: &[&str], after: std::time::Duration) -> bool {
    let mut child = f
        .command()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// `status` shows nothing left behind: no transition, the lock free,
/// maintenance off.
pub fn assert_settled(f: &Fixture, what: &str) {
    let (status, _) = f.json(&["status"]);
    for key in ["transition", "lock_holder", "maintenance"] {
        assert_eq!(
            status[key],
            serde_json::Value::Null,
            "{what}: {key} in {status}"
        );
    }
}
