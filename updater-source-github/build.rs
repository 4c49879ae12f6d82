//! Records the target triple, the default for the `{target}` placeholder of
//! asset name patterns.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=UPDATER_SOURCE_BUILD_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
