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
