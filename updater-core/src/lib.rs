//! # updater-core
//!
//! The heart of a crash-safe self-updater for server applications.
//! (Full crate documentation is being written; see the modules.)

#![warn(missing_docs)]

pub mod backup;
pub mod command;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod durable;
pub mod error;
pub mod failpoint;
pub mod health;
pub mod history;
pub mod hook;
pub mod install;
pub mod journal;
pub mod lock;
pub mod maintenance;
pub mod manifest;
pub mod migrate;
pub mod notify;
pub mod package;
pub mod pipeline;
pub mod progress;
pub mod release;
pub mod source;
pub mod version;

pub use error::{Error, Result};
