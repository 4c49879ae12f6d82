//! Conformance suite for the `source` trait (being written).
