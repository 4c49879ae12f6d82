//! # updater-testkit
//!
//! The fixtures every test of the workspace shares, in one place instead of
//! one copy per crate: a demo application with releases ([`app`]), tar.gz
//! builders ([`archive`]), byte-for-byte tree snapshots ([`tree`]), a fake
//! database with migrations and snapshots ([`fakes`]), local HTTP servers
//! ([`http`]), SMTP servers ([`mail`]: a small one in Rust, aiosmtpd with
//! STARTTLS/TLS and AUTH), a webhook receiver that checks signatures
//! ([`webhook`]), unique names and the rule for tests that need a server
//! ([`services`]), small disks (a tmpfs, [`disk`]), child processes that
//! re-run one test of this binary ([`child`]).
//!
//! Not published; a dev-dependency of the other crates. Test code: it
//! panics with a clear message instead of returning errors.
//!
//! ```
//! use updater_testkit::{app::Fixture, tree::snapshot};
//! let fx = Fixture::new();
//! let tree = snapshot(&fx.app);
//! assert!(tree.contains_key(std::path::Path::new("VERSION")));
//! ```
//!
//! ## Features
//!
//! None.

#![warn(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod archive;
pub mod child;
pub mod cli;
pub mod demo;
pub mod disk;
pub mod fakes;
pub mod http;
pub mod mail;
pub mod openapi;
pub mod services;
pub mod tree;
pub mod webdriver;
pub mod webhook;
