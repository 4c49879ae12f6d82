//! The shared test kit's loopback HTTP server, and a GitHub-shaped fake API built on it.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod github;

pub use updater_testkit::http::{BodyMode, Reply, Request, TestServer, capture_logs};
