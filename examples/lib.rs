//! The runnable examples of the updater workspace (this package has no
//! library of its own: the demo application and the loopback release server
//! they use live in `updater-testkit`). Run them with
//! `cargo run --example quickstart` (see the workspace README).
