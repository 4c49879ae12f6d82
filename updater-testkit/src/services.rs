//! Unique names, and the one rule for tests that need a server (or root, a
//! program, an IPv6 loopback): run when it is there; otherwise print why the
//! test is skipped — except under `CI=true`, where a missing one is a
//! failure ([`require_server`], [`require`], [`skip`]).

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
    require(reachable, &format!("{name} is not reachable at {address}"))
}

/// A required server is not usable (`why`): under CI, panics; otherwise
/// prints that the test is skipped and why. For tests that check more than
/// reachability (a login, a feature).
pub fn unavailable(name: &str, why: &str) {
    skip(&format!("{name} {why}"));
}

/// Whether what a test needs is here (`ready`): root, a program, a tmpfs, an
/// IPv6 loopback... When it is not: under CI, panics with `why`; otherwise
/// prints `skipped: <why>` and returns `false`, and the test returns.
///
/// ```
/// # use updater_testkit::services::require;
/// if !require(true, "GNU tar is not on PATH") {
///     return;
/// }
/// ```
pub fn require(ready: bool, why: &str) -> bool {
    if !ready {
        skip(why);
    }
    ready
}

/// A test cannot run here because of `why`: under CI (where skipping is not
/// allowed), panics; otherwise prints `skipped: <why>` to stderr. The caller
/// returns afterwards. [`require`] for a condition, [`require_server`] for a
/// server.
pub fn skip(why: &str) {
    if under_ci() {
        panic!("{why} (under CI=true this test must run, not be skipped)");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: {why}");
    }
}

/// Whether `program` is on `PATH`.
pub fn has_program(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
