//! Unique names, and the one rule for tests that need a server: run when it
//! is reachable; otherwise print why the test is skipped — except under
//! `CI=true`, where an unreachable server is a failure.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A name no other test of this run uses: `prefix_<pid>_<counter>_<nanos>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether we run under CI (`CI=true`), where skipping is not allowed.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether the server `name` answers at `address` (`host:port`). When it
/// does not: under CI, panics; otherwise prints that the test is skipped and
/// why, and returns `false`.
pub fn require_server(name: &str, address: &str) -> bool {
    let reachable = address.to_socket_addrs().ok().is_some_and(|mut addrs| {
        addrs.any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
    });
    if reachable {
        return true;
    }
    let why = format!("{name} is not reachable at {address}");
    if under_ci() {
        panic!("{why} (CI=true: a required server must be running)");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: {why}");
    }
    false
}

/// A required server is not usable (`why`): under CI, panics; otherwise
/// prints that the test is skipped and why. For tests that check more than
/// reachability (a login, a feature).
pub fn unavailable(name: &str, why: &str) {
    if under_ci() {
        panic!("{name} is required under CI=true but {why}");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: {name} {why}");
    }
}

/// Whether `program` is on `PATH`.
pub fn has_program(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
