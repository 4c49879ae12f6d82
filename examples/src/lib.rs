//! Helpers shared by the runnable examples of the updater workspace: a demo
//! application tree and its releases. Run the examples with
//! `cargo run --example quickstart` (see the workspace README).

#![warn(missing_docs)]

pub mod demo;
pub mod server;
