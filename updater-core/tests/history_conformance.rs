//! The history conformance suite against core's `InMemoryHistoryStore`.
#![cfg(feature = "conformance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use updater_core::conformance::history;
use updater_core::history::InMemoryHistoryStore;

#[test]
fn in_memory_store_passes_the_history_suite() {
    history::run(&InMemoryHistoryStore::new());
}

#[test]
fn in_memory_store_handles_share_every_write() {
    let store = Arc::new(InMemoryHistoryStore::new());
    let other = Arc::clone(&store);
    history::run_shared(&store, &other);
}

#[test]
fn in_memory_store_loses_nothing_under_concurrent_writers() {
    let store = InMemoryHistoryStore::new();
    history::concurrent_writers(&[&store], 4, 10);
}

#[test]
fn in_memory_store_lists_by_creation_time_not_insertion_order() {
    history::listings_order_by_creation_time(&InMemoryHistoryStore::new());
}
