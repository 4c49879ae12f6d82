//! Runs the shared `ReleaseSource` conformance suite against core's
//! `LocalDirectorySource`.
#![cfg(feature = "conformance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use updater_core::conformance::source::{SourceFixture, run};
use updater_core::source::LocalDirectorySource;

#[test]
fn local_directory_source_passes_the_source_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = SourceFixture::standard();
    fixture.write_release_directory(dir.path()).unwrap();
    run(&LocalDirectorySource::new(dir.path()), &fixture);
}

#[test]
fn the_suite_catches_a_source_that_puts_a_beta_on_the_stable_channel() {
    // A directory whose manifest puts the beta on the stable channel breaks
    // channel filtering; the suite must notice.
    let dir = tempfile::tempdir().unwrap();
    let fixture = SourceFixture::standard();
    let manifest_path = fixture.write_release_directory(dir.path()).unwrap();
    let text = std::fs::read_to_string(&manifest_path).unwrap().replacen(
        "\"channel\": \"beta\"",
        "\"channel\": \"stable\"",
        1,
    );
    std::fs::write(&manifest_path, text).unwrap();
    let outcome =
        std::panic::catch_unwind(|| run(&LocalDirectorySource::new(dir.path()), &fixture));
    let payload = outcome.expect_err("the suite must fail for a mislabelled channel");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("must be on channel beta"),
        "the suite must name the broken rule: {message}"
    );
}
