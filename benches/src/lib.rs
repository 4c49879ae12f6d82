//! Measuring the updater against the standard tools.
//!
//! `cargo run --release -p updater-benches --bin compare` generates a
//! synthetic application tree (`../shared/tools/gen_app_tree.py`, or the
//! same generator built in when a clone stands alone: 20,000
//! files, ~450 MB, 35% compressible text, 65% incompressible binary) in a
//! temporary directory and measures every performance target of the design
//! against the tool that does the same work (`tar czf`, `tar xzf`, `cp -a`,
//! `openssl dgst`, `curl`), in the same run, interleaved (ours, theirs,
//! ours, theirs...), reporting the median ratio with min and max. `--quick`
//! uses a small tree and few runs: a CI smoke test, never a verdict on speed.
//!
//! `cargo bench -p updater-benches` runs the criterion benches of hot paths.

#![warn(missing_docs)]

pub mod child;
pub mod measure;
pub mod workload;
