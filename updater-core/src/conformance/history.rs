//! Conformance suite for the `history` trait (being written).
