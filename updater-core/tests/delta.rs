//! Delta updates: only the members of changed files are fetched, the staged
//! tree is what a full extraction gives, and every reason not to use a
//! delta falls back to the whole package with the reason in history.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use updater_core::data::ConflictPolicy;
use updater_core::history::{HistoryStore, Page};
use updater_core::package::build::{BuildOptions, build_release};
use updater_core::package::delta::{self, DeltaFallback, DeltaSettings, UnchangedFiles};
use updater_core::package::{ExtractOptions, PackageIndex, extract_tar_gz};
use updater_core::pipeline::{ApplyOutcome, ApplyRequest};
use updater_core::progress::NoProgress;
use updater_core::release::{Asset, ByteRange, Release};
use updater_core::source::{LocalDirectorySource, ReleaseSource};
use updater_core::version::{Channel, Version};
use updater_core::{Error, Result};
use updater_testkit::app::{Fixture, Layout, fast_temp_dir};
use updater_testkit::tree::{snapshot, write_tree};

/// What the wrapped source does with ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ranges {
    Honest,
    /// The trait's default: not supported.
    Unsupported,
    /// Serves the ranges with one byte of the first member flipped.
    FlipByte,
}

/// A source that counts the bytes it serves, and may misbehave with ranges.
struct Counting {
    inner: LocalDirectorySource,
    ranges: Ranges,
    full_bytes: Arc<AtomicU64>,
    range_bytes: Arc<AtomicU64>,
}

impl Counting {
    fn new(inner: LocalDirectorySource, ranges: Ranges) -> Self {
        Counting {
            inner,
            ranges,
            full_bytes: Arc::default(),
            range_bytes: Arc::default(),
        }
    }
}

impl ReleaseSource for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn releases(&self, channel: Channel) -> Result<Vec<Release>> {
        self.inner.releases(channel)
    }
    fn download(&self, asset: &Asset, sink: &mut dyn Write) -> Result<u64> {
        let n = self.inner.download(asset, sink)?;
        self.full_bytes.fetch_add(n, Ordering::SeqCst);
        Ok(n)
    }
    fn download_ranges(
        &self,
        asset: &Asset,
        ranges: &[ByteRange],
        sink: &mut dyn Write,
    ) -> Result<u64> {
        match self.ranges {
            Ranges::Unsupported => Err(Error::unsupported("ranges", "test source")),
            Ranges::Honest => {
                let n = self.inner.download_ranges(asset, ranges, sink)?;
                self.range_bytes.fetch_add(n, Ordering::SeqCst);
                Ok(n)
            }
            Ranges::FlipByte => {
                let mut bytes = Vec::new();
                let n = self.inner.download_ranges(asset, ranges, &mut bytes)?;
                // Inside the first member's compressed data (past its gzip header).
                bytes[12] ^= 0x55;
                sink.write_all(&bytes)
                    .map_err(|e| Error::other("write", e))?;
                Ok(n)
            }
        }
    }
}

fn big_text() -> String {
    (0..4000)
        .map(|i| format!("line {i} of a big unchanged file\n"))
        .collect()
}

/// The fixture updated to 1.1.1, which ships a big file the next releases
/// keep (a full download: the app was installed by hand).
fn installed_fixture() -> (Fixture, Vec<(&'static str, String)>) {
    // On tmpfs: the shared disk of the test machine may be near its free-space margin.
    let fx = Fixture::with_layout_in(Layout::Preserved, &fast_temp_dir());
    let extra = vec![
        ("src/new-in-1.1.php", "new".to_string()),
        ("assets/big.txt", big_text()),
    ];
    publish(&fx, "1.1.1", &extra);
    let updater = fx.builder().build().unwrap();
    updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap();
    (fx, extra)
}

fn publish(fx: &Fixture, version: &str, extra: &[(&'static str, String)]) {
    let extra: Vec<(&str, &str)> = extra.iter().map(|(p, c)| (*p, c.as_str())).collect();
    fx.publish(version, &extra);
}

fn expected(
    fx: &Fixture,
    version: &str,
    extra: &[(&'static str, String)],
) -> updater_testkit::tree::Tree {
    let extra: Vec<(&str, &str)> = extra.iter().map(|(p, c)| (*p, c.as_str())).collect();
    fx.expected_tree_after_update(version, &extra)
}

/// The message of step `name` of the newest update record.
fn step_note(fx: &Fixture, name: &str) -> String {
    let record = fx.history.updates(Page::first(1)).unwrap().remove(0);
    record
        .steps
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

fn apply(fx: &Fixture, source: Counting, configure: impl FnOnce(&mut updater_core::UpdaterConfig)) {
    let updater = fx
        .builder()
        .with_source(source)
        .configure(configure)
        .build()
        .unwrap();
    match updater
        .apply(&ApplyRequest::latest("test"), &NoProgress)
        .unwrap()
    {
        ApplyOutcome::Updated(_) => {}
        ApplyOutcome::UpToDate { .. } => panic!("expected an update"),
    }
}

#[test]
fn a_patch_release_is_installed_by_fetching_only_the_changed_members() {
    let (fx, extra) = installed_fixture();
    assert!(
        step_note(&fx, "download").contains("the installed release's file list is unknown"),
        "the hand-installed app had no list: {}",
        step_note(&fx, "download")
    );
    assert_eq!(snapshot(&fx.app), expected(&fx, "1.1.1", &extra));
    // Each release keeps the big file: only the few version-specific members travel.
    for version in ["1.2.0", "1.3.0"] {
        publish(&fx, version, &extra);
        let source = Counting::new(fx.source(), Ranges::Honest);
        apply(&fx, source, |c| c.delta.coalesce_gap = 0);
        let note = step_note(&fx, "download");
        assert!(note.starts_with("delta:"), "{version}: {note}");
        assert_eq!(snapshot(&fx.app), expected(&fx, version, &extra));
    }
    publish(&fx, "1.4.0", &extra);
    let source = Counting::new(fx.source(), Ranges::Honest);
    let (full, ranged) = (source.full_bytes.clone(), source.range_bytes.clone());
    apply(&fx, source, |c| c.delta.coalesce_gap = 0);
    let note = step_note(&fx, "download");
    assert!(note.starts_with("delta:"), "{note}");
    assert!(step_note(&fx, "stage").contains("the tree equals the signed index"));
    assert_eq!(snapshot(&fx.app), expected(&fx, "1.4.0", &extra));
    let package = std::fs::metadata(fx.releases.join("app-1.4.0.tar.gz"))
        .unwrap()
        .len();
    let fetched = ranged.load(Ordering::SeqCst);
    assert!(
        fetched > 0 && fetched * 4 < package,
        "fetched {fetched} of {package}"
    );
    // Only the index went through a whole download.
    let index = std::fs::metadata(fx.releases.join("app-1.4.0.tar.gz.index.json"))
        .unwrap()
        .len();
    assert_eq!(full.load(Ordering::SeqCst), index);
}

#[test]
fn a_release_without_index_is_downloaded_whole_with_the_reason_in_history() {
    let (fx, extra) = installed_fixture();
    let tree = fx.root.join("plain-1.2.0");
    updater_testkit::app::release_tree(&tree, "1.2.0", &[("src/new-in-1.1.php", "new")]);
    let archive = fx.root.join("plain-1.2.0.tar.gz");
    updater_testkit::archive::pack(&tree, &archive);
    fx.publish_archive("1.2.0", &archive);
    apply(&fx, Counting::new(fx.source(), Ranges::Honest), |_| {});
    let note = step_note(&fx, "download");
    assert!(
        note.contains("no delta: the release publishes no file index"),
        "{note}"
    );
    let _ = extra;
}

#[test]
fn a_source_without_ranges_falls_back_to_the_whole_package() {
    let (fx, extra) = installed_fixture();
    publish(&fx, "1.2.0", &extra);
    apply(&fx, Counting::new(fx.source(), Ranges::Unsupported), |_| {});
    let note = step_note(&fx, "download");
    assert!(
        note.contains("no delta: byte ranges are not served"),
        "{note}"
    );
    assert_eq!(snapshot(&fx.app), expected(&fx, "1.2.0", &extra));
}

#[test]
fn ranges_with_other_bytes_fail_verification_and_the_whole_package_is_installed() {
    let (fx, extra) = installed_fixture();
    publish(&fx, "1.2.0", &extra);
    apply(&fx, Counting::new(fx.source(), Ranges::FlipByte), |_| {});
    let note = step_note(&fx, "stage");
    assert!(note.contains("delta staging failed"), "{note}");
    assert_eq!(snapshot(&fx.app), expected(&fx, "1.2.0", &extra));
}

#[test]
fn modified_shipped_files_the_release_keeps_force_the_whole_package() {
    let (fx, extra) = installed_fixture();
    publish(&fx, "1.2.0", &extra);
    // 1.1.0 shipped src/new-in-1.1.php; 1.2.0 ships it unchanged; edited in place here.
    std::fs::write(fx.app.join("src/new-in-1.1.php"), "edited on the server").unwrap();
    apply(&fx, Counting::new(fx.source(), Ranges::Honest), |c| {
        c.data_conflicts = ConflictPolicy::TakeRelease;
    });
    let note = step_note(&fx, "download");
    assert!(
        note.contains("the installed tree has modified shipped files: src/new-in-1.1.php"),
        "{note}"
    );
    assert_eq!(
        std::fs::read_to_string(fx.app.join("src/new-in-1.1.php")).unwrap(),
        "new"
    );
}

#[test]
fn too_large_a_change_downloads_the_whole_package() {
    let (fx, extra) = installed_fixture();
    publish(&fx, "1.2.0", &extra);
    apply(&fx, Counting::new(fx.source(), Ranges::Honest), |c| {
        c.delta.max_changed_percent = 0;
    });
    let note = step_note(&fx, "download");
    assert!(note.contains("more than 0 %"), "{note}");
}

#[test]
fn an_index_with_overlapping_ranges_is_refused_and_the_whole_package_installed() {
    let (fx, extra) = installed_fixture();
    publish(&fx, "1.2.0", &extra);
    // A hostile (unsigned) server rewrites the index and the manifest that points to it.
    let index_path = fx.releases.join("app-1.2.0.tar.gz.index.json");
    let mut index = PackageIndex::from_json(&std::fs::read(&index_path).unwrap(), "i").unwrap();
    index.entries[1].offset -= 1;
    let bytes = index.to_json().unwrap();
    std::fs::write(&index_path, &bytes).unwrap();
    let manifest_path = fx.releases.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for release in manifest["releases"].as_array_mut().unwrap() {
        if release["version"] == "1.2.0" {
            let index = &mut release["assets"][0]["index"];
            index["size"] = bytes.len().into();
            index["sha256"] = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)).into();
        }
    }
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    apply(&fx, Counting::new(fx.source(), Ranges::Honest), |_| {});
    let note = step_note(&fx, "download");
    assert!(
        note.contains("the file index was refused") && note.contains("overlapping"),
        "{note}"
    );
    assert_eq!(snapshot(&fx.app), expected(&fx, "1.2.0", &extra));
}

/// One change to a tree, for the property test.
#[derive(Debug, Clone)]
enum Change {
    Edit(usize, Vec<u8>),
    Add(String, Vec<u8>),
    Remove(usize),
    Chmod(usize),
    Move(usize, String),
}

fn change() -> impl Strategy<Value = Change> {
    let content = prop::collection::vec(any::<u8>(), 0..3000);
    prop_oneof![
        (0usize..32, content.clone()).prop_map(|(i, c)| Change::Edit(i, c)),
        ("[a-c]/[d-f]{1,3}\\.txt", content).prop_map(|(p, c)| Change::Add(p, c)),
        (0usize..32).prop_map(Change::Remove),
        (0usize..32).prop_map(Change::Chmod),
        (0usize..32, "[g-h]/[d-f]{1,3}\\.bin").prop_map(|(i, p)| Change::Move(i, p)),
    ]
}

fn files_in(root: &Path) -> Vec<String> {
    let list = updater_core::tree::FileList::from_dir(root).unwrap();
    list.iter()
        .filter(|(_, e)| e.kind == updater_core::tree::EntryKind::File)
        .map(|(p, _)| p.to_string())
        .collect()
}

fn apply_change(root: &Path, change: &Change) {
    use std::os::unix::fs::PermissionsExt;
    let files = files_in(root);
    let pick = |i: usize| files.get(i % files.len().max(1)).cloned();
    match change {
        Change::Edit(i, content) => {
            if let Some(path) = pick(*i) {
                std::fs::write(root.join(path), content).unwrap();
            }
        }
        Change::Add(path, content) => {
            if root.join(path).exists() || root.join(path.split('/').next().unwrap()).is_file() {
                return;
            }
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), content).unwrap();
        }
        Change::Remove(i) => {
            if let Some(path) = pick(*i) {
                std::fs::remove_file(root.join(path)).unwrap();
            }
        }
        Change::Chmod(i) => {
            if let Some(path) = pick(*i) {
                std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(0o755))
                    .unwrap();
            }
        }
        Change::Move(i, to) => {
            if let Some(path) = pick(*i)
                && !root.join(to).exists()
                && !root.join(to.split('/').next().unwrap()).is_file()
            {
                std::fs::create_dir_all(root.join(to).parent().unwrap()).unwrap();
                std::fs::rename(root.join(path), root.join(to)).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn staged_trees_equal_full_extraction_over_random_change_sets(
        base in prop::collection::btree_map("[a-c]/[d-f]{1,3}\\.txt", prop::collection::vec(any::<u8>(), 0..3000), 1..12),
        changes in prop::collection::vec(change(), 0..8),
        max_requests in 1usize..5,
        gap in prop_oneof![Just(0u64), Just(200u64), Just(1u64 << 20)],
        method in prop_oneof![Just(UnchangedFiles::Auto), Just(UnchangedFiles::Copy), Just(UnchangedFiles::Hardlink)],
    ) {
        let work = tempfile::tempdir_in(fast_temp_dir()).unwrap();
        let old_tree = work.path().join("old");
        for (path, content) in &base {
            std::fs::create_dir_all(old_tree.join(path).parent().unwrap()).unwrap();
            std::fs::write(old_tree.join(path), content).unwrap();
        }
        write_tree(&old_tree, &[("VERSION", "1.0.0")]);
        let new_tree = work.path().join("new");
        updater_testkit::tree::copy_dir(&old_tree, &new_tree);
        for change in &changes {
            apply_change(&new_tree, change);
        }
        write_tree(&new_tree, &[("VERSION", "1.1.0")]);
        let old = build_release(&old_tree, &work.path().join("dist-old"), &BuildOptions::new(Version::new(1, 0, 0)).with_mtime(1)).unwrap();
        let new = build_release(&new_tree, &work.path().join("dist-new"), &BuildOptions::new(Version::new(1, 1, 0)).with_mtime(2)).unwrap();

        // Installed: the old release extracted, its list stamped as the pipeline does.
        let app = work.path().join("app");
        let mut installed = extract_tar_gz(&old.archive, &app, &ExtractOptions::default()).unwrap().list;
        installed.stamp(&app).unwrap();

        let releases = LocalDirectorySource::new(work.path().join("releases"));
        let release = releases.publish_built(&new).unwrap();
        let asset = &release.assets[0];
        let index = PackageIndex::from_json(&std::fs::read(&new.index_path).unwrap(), "index").unwrap();
        let list = index.validate("index", asset.size, &ExtractOptions::default()).unwrap();
        let settings = DeltaSettings { max_changed_percent: 100, max_requests, coalesce_gap: gap, ..DeltaSettings::default() };
        let plan = delta::plan(index, list, &installed, &app, &|_| false, asset.size, &settings).unwrap();
        prop_assert!(plan.ranges.len() <= max_requests);
        let spool = work.path().join("spool");
        delta::fetch(&releases, asset, &plan, &spool, &mut |_| {}).unwrap();
        let staging = work.path().join("staging");
        let staged = delta::stage(&plan, &spool, &app, &staging, method).unwrap();

        let full = work.path().join("full");
        let report = extract_tar_gz(&new.archive, &full, &ExtractOptions::default()).unwrap();
        prop_assert_eq!(&staged.list, &report.list);
        prop_assert_eq!(snapshot(&staging), snapshot(&full));
        // The installed tree (the rollback target) is untouched.
        let mut after = updater_core::tree::FileList::from_dir(&app).unwrap();
        after.stamp(&app).unwrap();
        let unchanged = installed.iter().all(|(p, e)| after.get(p).is_some_and(|a| a.same_content(e) && a.mode == e.mode));
        prop_assert!(unchanged);
    }
}

#[test]
fn a_plan_refuses_a_live_file_modified_in_place_that_the_release_keeps() {
    let work = tempfile::tempdir_in(fast_temp_dir()).unwrap();
    let old_tree = work.path().join("old");
    write_tree(&old_tree, &[("a.txt", "same in both"), ("b.txt", "old")]);
    let new_tree = work.path().join("new");
    write_tree(&new_tree, &[("a.txt", "same in both"), ("b.txt", "new")]);
    let old = build_release(
        &old_tree,
        &work.path().join("o"),
        &BuildOptions::new(Version::new(1, 0, 0)),
    )
    .unwrap();
    let new = build_release(
        &new_tree,
        &work.path().join("n"),
        &BuildOptions::new(Version::new(1, 1, 0)),
    )
    .unwrap();
    let app = work.path().join("app");
    let mut installed = extract_tar_gz(&old.archive, &app, &ExtractOptions::default())
        .unwrap()
        .list;
    installed.stamp(&app).unwrap();
    std::fs::write(app.join("a.txt"), "edited in place").unwrap();
    let size = std::fs::metadata(&new.archive).unwrap().len();
    let list = new
        .index
        .validate("i", size, &ExtractOptions::default())
        .unwrap();
    let plan = delta::plan(
        new.index.clone(),
        list,
        &installed,
        &app,
        &|_| false,
        size,
        &DeltaSettings::default(),
    );
    assert!(
        matches!(plan, Err(DeltaFallback::ModifiedShippedFiles(ref paths)) if paths == &["a.txt".to_string()])
    );
}

#[test]
fn with_keys_configured_a_delta_needs_a_signature_that_binds_the_index() {
    use updater_core::package::VerificationPolicy;
    use updater_core::package::build::sign_release;
    use updater_core::package::signature::{PublicKeys, minisign, sign_metadata};
    let (fx, extra) = installed_fixture();
    let extra_refs: Vec<(&str, &str)> = extra.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let pair = minisign::KeyPair::generate_encrypted_keypair(Some(String::new())).unwrap();
    let keys = PublicKeys::parse(&pair.pk.to_base64()).unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::days(30);
    let verify = |c: &mut updater_core::UpdaterConfig| {
        c.verification = VerificationPolicy::default().with_public_keys(keys.clone());
    };

    let mut built = fx.build("1.2.0", &extra_refs);
    sign_release(&mut built, &pair.sk, expires).unwrap();
    fx.source().publish_built(&built).unwrap();
    apply(&fx, Counting::new(fx.source(), Ranges::Honest), verify);
    let note = step_note(&fx, "download");
    assert!(note.starts_with("delta:"), "{note}");

    // Signed the old way, without `index=`: the whole package, still verified.
    let mut built = fx.build("1.3.0", &extra_refs);
    let asset = &built.release.assets[0];
    let signature = sign_metadata(
        &pair.sk,
        &built.release.version,
        &asset.name,
        asset.size,
        &asset.sha256.unwrap(),
        expires,
    )
    .unwrap();
    built.release.assets[0].signature = Some(signature);
    fx.source().publish_built(&built).unwrap();
    apply(&fx, Counting::new(fx.source(), Ranges::Honest), verify);
    let note = step_note(&fx, "download");
    assert!(
        note.contains("no delta: the index is not signed: the signature binds no index"),
        "{note}"
    );
    assert_eq!(snapshot(&fx.app), expected(&fx, "1.3.0", &extra));
}
