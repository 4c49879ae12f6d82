//! Conformance suite for the `backup` trait (being written).
