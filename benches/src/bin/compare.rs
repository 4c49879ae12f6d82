//! `compare`: measures each performance target of the design against the
//! standard tool doing the same work, interleaved, and prints a Markdown
//! table of ratios.
//!
//! ```text
//! cargo run --release -p updater-benches --bin compare            # full (≈10 min)
//! cargo run --release -p updater-benches --bin compare -- --quick # CI smoke
//! cargo run --release -p updater-benches --bin compare -- --only swap,sha256
//! cargo run --release -p updater-benches --bin compare -- --only release,delta
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use updater_backup::FileBackup;
use updater_benches::child::{ChildReport, read_json, run_child};
use updater_benches::measure::{Row, Samples, spread, table, time};
use updater_benches::workload::{self, TreeSize};
use updater_core::backup::{Backup, BackupPurpose, BackupRequest};
use updater_core::history::{HistoryStore, Page};
use updater_core::package::build::{BuildOptions, build_release};
use updater_core::package::delta::UnchangedFiles;
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, RollbackRequest, UpdaterBuilder};
use updater_core::progress::NoProgress;
use updater_core::release::{Asset, ByteRange, Release};
use updater_core::source::{LocalDirectorySource, ReleaseSource};
use updater_core::version::{Channel, Version};

struct Settings {
    quick: bool,
    runs: usize,
    only: Option<Vec<String>>,
    size: TreeSize,
    big_file: u64,
}

impl Settings {
    fn from_args() -> Result<Settings, String> {
        let mut quick = false;
        let mut runs = None;
        let mut only = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--runs" => {
                    runs = Some(
                        args.next()
                            .and_then(|n| n.parse().ok())
                            .ok_or("--runs needs a number")?,
                    )
                }
                "--only" => {
                    only = Some(
                        args.next()
                            .ok_or("--only needs a list of rows")?
                            .split(',')
                            .map(str::to_string)
                            .collect(),
                    )
                }
                "-h" | "--help" => {
                    println!(
                        "compare [--quick] [--runs N] [--only swap,sha256,...]\n\
                         Measures every performance target against the standard tool; see BENCHMARKS.md."
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        Ok(Settings {
            quick,
            runs: runs.unwrap_or(if quick { 3 } else { 5 }),
            only,
            size: if quick {
                TreeSize::QUICK
            } else {
                TreeSize::FULL
            },
            big_file: if quick { 64 << 20 } else { 1 << 30 },
        })
    }

    fn wants(&self, row: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == row))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        match child_main(&args[2..]) {
            Ok(report) => match serde_json::to_string(&report) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("compare child: {e}");
                    std::process::exit(1);
                }
            },
            Err(e) => {
                eprintln!("compare child: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(e) = run() {
        eprintln!("compare: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let settings = Settings::from_args()?;
    let work = tempfile::Builder::new()
        .prefix("updater-compare-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let tree = work.path().join("tree");
    eprintln!(
        "generating the synthetic tree ({} files, {} MB) in {}",
        settings.size.files,
        settings.size.mb,
        tree.display()
    );
    workload::generate_tree(&tree, settings.size)?;
    let mut rows = Vec::new();
    if settings.wants("swap") {
        rows.extend(swap_rows(work.path(), &tree, settings.runs)?);
    }
    if settings.wants("backup") {
        rows.extend(backup_rows(work.path(), &tree, settings.runs)?);
    }
    if settings.wants("release") {
        rows.push(release_build_row(work.path(), &tree, settings.runs)?);
    }
    if settings.wants("delta") {
        rows.extend(delta_rows(work.path(), &tree, settings.runs)?);
    }
    if settings.wants("sha256") {
        rows.push(sha256_row(work.path(), settings.big_file, settings.runs)?);
    }
    if settings.wants("scan") {
        rows.extend(data_scan_rows(&tree, settings.runs)?);
    }
    if settings.wants("download") || settings.wants("check") {
        let site = work.path().join("site");
        let big = work.path().join("asset.bin");
        write_pseudo_random(&big, settings.big_file)?;
        let published = LocalDirectorySource::new(&site);
        published
            .publish(&Version::new(2, 0, 0), &big, "bench", None)
            .map_err(|e| e.to_string())?;
        std::fs::remove_file(&big).map_err(|e| e.to_string())?;
        // A standard static server that neither side wrote: Python's http.server.
        let server = workload::PythonHttpServer::serve(&site)?;
        if settings.wants("download") {
            rows.push(download_row(
                work.path(),
                server.address(),
                settings.big_file,
                settings.runs,
            )?);
        }
        if settings.wants("check") {
            rows.push(check_cache_row(work.path(), server.address())?);
        }
        drop(server);
        workload::remove(&site)?;
    }
    println!(
        "\n{} run, {} interleaved runs per row, on {}\n",
        if settings.quick {
            "Quick (smoke)"
        } else {
            "Full"
        },
        settings.runs,
        workload::machine()
    );
    println!("{}", table(&rows));
    Ok(())
}

/// Packs `tree` plus a `VERSION` file into a `.tar.gz` (fast compression),
/// with the test kit's builder.
fn pack_release(tree: &Path, version: &str, archive: &Path) {
    updater_testkit::archive::pack_with(tree, &[("VERSION", version.as_bytes())], archive);
}

/// Update (stage + swap) and rollback of the whole tree through the real
/// pipeline, against `cp -a` of the same tree.
fn swap_rows(work: &Path, tree: &Path, runs: usize) -> Result<Vec<Row>, String> {
    let app = work.join("app");
    workload::cp_a(tree, &app)?;
    std::fs::write(app.join("VERSION"), "1.0.0").map_err(|e| e.to_string())?;
    let archive = work.join("release-1.1.0.tar.gz");
    pack_release(tree, "1.1.0", &archive);
    let releases = LocalDirectorySource::new(work.join("releases"));
    releases
        .publish(&Version::new(1, 1, 0), &archive, "bench", None)
        .map_err(|e| e.to_string())?;
    std::fs::remove_file(&archive).map_err(|e| e.to_string())?;
    let updater = UpdaterBuilder::new(&app)
        .with_source(releases)
        .build()
        .map_err(|e| e.to_string())?;

    let mut update = Samples::default();
    let mut window = Samples::default();
    let mut rollback_window = Samples::default();
    let mut stage_ms = Vec::new();
    let copy_target = work.join("cp-copy");
    for _ in 0..runs {
        let (outcome, total) = time(|| updater.apply(&ApplyRequest::latest("bench"), &NoProgress));
        let report = match outcome.map_err(|e| e.to_string())? {
            ApplyOutcome::Updated(report) => report,
            ApplyOutcome::UpToDate { .. } => {
                return Err("the bench release was not installed".into());
            }
        };
        update.ours.push(total);
        window.ours.push(report.maintenance_window);
        if let Some(record) = updater
            .history()
            .updates(Page::first(1))
            .map_err(|e| e.to_string())?
            .first()
            && let Some(step) = record.steps.iter().find(|s| s.name == "stage")
            && let Some(finished) = step.finished_at
        {
            stage_ms.push((finished - step.started_at).num_milliseconds());
        }
        let cp = workload::cp_a(tree, &copy_target)?;
        update.theirs.push(cp);
        window.theirs.push(cp);
        workload::remove(&copy_target)?;
        let back = updater
            .rollback(
                &RollbackRequest {
                    initiated_by: "bench".into(),
                    restore_database_snapshot: false,
                },
                &NoProgress,
            )
            .map_err(|e| e.to_string())?;
        rollback_window.ours.push(back.maintenance_window);
        let cp = workload::cp_a(tree, &copy_target)?;
        rollback_window.theirs.push(cp);
        workload::remove(&copy_target)?;
    }
    stage_ms.sort();
    let window_median = spread(&window.ours).median;
    let rollback_median = spread(&rollback_window.ours).median;
    Ok(vec![
        Row {
            what: "update: download + verify + stage + swap (whole apply)".into(),
            against: "`cp -a` of the tree".into(),
            notes: format!(
                "extraction (stage step) median {} ms; the app keeps serving during it",
                stage_ms.get(stage_ms.len() / 2).copied().unwrap_or(0)
            ),
            samples: Some(update),
            target: "—".into(),
            met: None,
        },
        Row {
            what: "maintenance window of the update (flag on → swap → flag off, no migrations)"
                .into(),
            against: "`cp -a` of the tree".into(),
            notes: "measured by the pipeline from maintenance on to off".into(),
            samples: Some(window),
            target: "< 50 ms".into(),
            met: Some(window_median < Duration::from_millis(50)),
        },
        Row {
            what: "maintenance window of a rollback (swap back)".into(),
            against: "`cp -a` of the tree".into(),
            notes: "`Updater::rollback` to the kept previous tree".into(),
            samples: Some(rollback_window),
            target: "< 50 ms".into(),
            met: Some(rollback_median < Duration::from_millis(50)),
        },
    ])
}

/// The application-data scan that runs before every update: the live tree
/// compared with the installed release's list (stamped with size, time and
/// inode when it was installed) and the incoming release's, against
/// `sha256sum` of every file — what finding changed files by content costs.
/// With the stamps nothing is hashed; a touched tree (every mtime changed)
/// hashes everything, the worst case.
fn data_scan_rows(tree: &Path, runs: usize) -> Result<Vec<Row>, String> {
    use updater_core::data::{Baseline, ScanRules, scan};
    use updater_core::tree::FileList;
    let installed = FileList::from_dir(tree).map_err(|e| e.to_string())?;
    let incoming = installed.clone();
    let rules = ScanRules::default();
    let sha256sum = || {
        workload::shell(&format!(
            "cd '{}' && find . -type f -print0 | xargs -0 sha256sum > /dev/null",
            tree.display()
        ))
    };
    let mut hashed = 0;
    let stamped = Samples::interleaved(
        runs,
        || {
            let (result, elapsed) =
                time(|| scan(tree, Baseline::Known(&installed), &incoming, &rules));
            let result = result.map_err(|e| e.to_string())?;
            if !result.carried.is_empty() || !result.conflicts.is_empty() {
                return Err(format!(
                    "an unchanged tree scanned as changed: {}",
                    result.summary()
                ));
            }
            hashed = result.hashed_files;
            Ok(elapsed)
        },
        sha256sum,
    )?;
    let stamped_ratio = stamped.ratio();
    // Every file looks touched: the stamps cannot clear anything.
    workload::shell(&format!(
        "find '{}' -type f -exec touch -m -d '2001-01-01 00:00' {{}} +",
        tree.display()
    ))?;
    let mut hashed_touched = 0;
    let touched = Samples::interleaved(
        runs,
        || {
            let (result, elapsed) =
                time(|| scan(tree, Baseline::Known(&installed), &incoming, &rules));
            let result = result.map_err(|e| e.to_string())?;
            if !result.conflicts.is_empty() {
                return Err(format!(
                    "touched files scanned as modified: {}",
                    result.summary()
                ));
            }
            hashed_touched = result.hashed_files;
            Ok(elapsed)
        },
        sha256sum,
    )?;
    let touched_ratio = touched.ratio();
    Ok(vec![
        Row {
            what: "application-data scan before an update (installed list known)".into(),
            against: "`sha256sum` of every file".into(),
            notes: format!("size/mtime/inode clear every file: {hashed} hashed"),
            samples: Some(stamped),
            target: "≤ 0.5x".into(),
            met: Some(stamped_ratio <= 0.5),
        },
        Row {
            what: "application-data scan, every mtime changed (worst case)".into(),
            against: "`sha256sum` of every file".into(),
            notes: format!("{hashed_touched} files hashed, none found modified"),
            samples: Some(touched),
            target: "≤ 1.5x".into(),
            met: Some(touched_ratio <= 1.5),
        },
    ])
}

/// `updater release build` (the library function behind it) of the tree
/// against `tar czf` of the same tree: time and size.
fn release_build_row(work: &Path, tree: &Path, runs: usize) -> Result<Row, String> {
    let out = work.join("release-out");
    let theirs = work.join("release-theirs.tar.gz");
    let (mut ours_size, mut theirs_size) = (0, 0);
    let options = BuildOptions::new(Version::new(1, 0, 0)).with_mtime(1_767_225_600);
    let samples = Samples::interleaved(
        runs,
        || {
            workload::remove(&out)?;
            let (built, elapsed) = time(|| build_release(tree, &out, &options));
            let built = built.map_err(|e| e.to_string())?;
            ours_size = workload::file_size(&built.archive);
            Ok(elapsed)
        },
        || {
            let _ = std::fs::remove_file(&theirs);
            let elapsed = workload::shell(&format!(
                "tar czf '{}' -C '{}' .",
                theirs.display(),
                tree.display()
            ))?;
            theirs_size = workload::file_size(&theirs);
            Ok(elapsed)
        },
    )?;
    // Our package is a standard .tar.gz: GNU tar reads it back whole.
    let check = work.join("release-check");
    std::fs::create_dir_all(&check).map_err(|e| e.to_string())?;
    workload::shell(&format!(
        "tar xzf '{}' -C '{}' && diff -r '{}' '{}' > /dev/null",
        out.join("app-1.0.0.tar.gz").display(),
        check.display(),
        tree.display(),
        check.display()
    ))
    .map_err(|e| format!("tar xzf of the built package does not give back the tree: {e}"))?;
    workload::remove(&check)?;
    workload::remove(&out)?;
    let _ = std::fs::remove_file(&theirs);
    let size_ratio = ours_size as f64 / theirs_size.max(1) as f64;
    let ratio = samples.ratio();
    Ok(Row {
        what: "`updater release build` of the tree (package + index + SHA256SUMS)".into(),
        against: "`tar czf` (GNU tar + gzip)".into(),
        notes: format!(
            "package {} vs {} ({size_ratio:.3}x, target ≤ 1.15x); `tar xzf` reads it back identical",
            mib(ours_size),
            mib(theirs_size)
        ),
        samples: Some(samples),
        target: "≤ 0.3x, size ≤ 1.15x".into(),
        met: Some(ratio <= 0.3 && size_ratio <= 1.15),
    })
}

/// A source that counts what it downloads, whole and by range.
struct CountingSource {
    inner: updater_source_github::ManifestSource,
    whole: Arc<AtomicU64>,
    ranged: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl ReleaseSource for CountingSource {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn releases(&self, channel: Channel) -> updater_core::Result<Vec<Release>> {
        self.inner.releases(channel)
    }
    fn download(&self, asset: &Asset, sink: &mut dyn Write) -> updater_core::Result<u64> {
        let n = self.inner.download(asset, sink)?;
        self.whole.fetch_add(n, Ordering::SeqCst);
        Ok(n)
    }
    fn download_ranges(
        &self,
        asset: &Asset,
        ranges: &[ByteRange],
        sink: &mut dyn Write,
    ) -> updater_core::Result<u64> {
        let n = self.inner.download_ranges(asset, ranges, sink)?;
        self.ranged.fetch_add(n, Ordering::SeqCst);
        self.requests
            .fetch_add(ranges.len() as u64, Ordering::SeqCst);
        Ok(n)
    }
}

/// Changes 1 % of the files of `tree` (every 100th, in path order): text
/// gets a line, binary assets get new bytes of the same size.
fn patch_one_percent(tree: &Path) -> Result<usize, String> {
    let list = updater_core::tree::FileList::from_dir(tree).map_err(|e| e.to_string())?;
    let files: Vec<String> = list
        .iter()
        .filter(|(p, e)| e.kind == updater_core::tree::EntryKind::File && *p != "VERSION")
        .map(|(p, _)| p.to_string())
        .collect();
    let mut changed = 0;
    for path in files.iter().step_by(100) {
        let full = tree.join(path);
        let mut bytes = std::fs::read(&full).map_err(|e| e.to_string())?;
        if path.ends_with(".bin") {
            for byte in &mut bytes {
                *byte = byte.wrapping_add(1);
            }
        } else {
            bytes.extend_from_slice(b"\n    // patched in 1.2.0;\n");
        }
        std::fs::write(&full, bytes).map_err(|e| e.to_string())?;
        changed += 1;
    }
    Ok(changed)
}

/// A patch release changing 1 % of the files: bytes downloaded by the delta
/// against the whole package, and the whole apply by delta against the
/// whole apply downloading the package, from the same server.
fn delta_rows(work: &Path, tree: &Path, runs: usize) -> Result<Vec<Row>, String> {
    let fail = |e: updater_core::Error| e.to_string();
    let release_tree = work.join("delta-tree");
    workload::cp_a(tree, &release_tree)?;
    let site = LocalDirectorySource::new(work.join("delta-site"));
    let mut packages = Vec::new();
    let mut changed_files = 0;
    for version in ["1.1.0", "1.2.0"] {
        if version == "1.2.0" {
            changed_files = patch_one_percent(&release_tree)?;
        }
        std::fs::write(release_tree.join("VERSION"), version).map_err(|e| e.to_string())?;
        let out = work.join(format!("delta-dist-{version}"));
        let built = build_release(
            &release_tree,
            &out,
            &BuildOptions::new(Version::parse(version).map_err(fail)?),
        )
        .map_err(fail)?;
        site.publish_built(&built).map_err(fail)?;
        packages.push((
            workload::file_size(&built.archive),
            workload::file_size(&built.index_path),
            built.index.entries.len(),
        ));
        workload::remove(&out)?;
    }
    workload::remove(&release_tree)?;
    let server = workload::PythonHttpServer::serve_with_ranges(site.directory())?;
    let manifest_url = format!("{}/manifest.json", server.address());
    let app = work.join("delta-app");
    workload::cp_a(tree, &app)?;
    std::fs::write(app.join("VERSION"), "1.0.0").map_err(|e| e.to_string())?;
    let (whole, ranged, requests) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let updater = |unchanged: Option<UnchangedFiles>| -> Result<updater_core::Updater, String> {
        let source = CountingSource {
            inner: updater_source_github::ManifestSource::builder(&manifest_url)
                .build()
                .map_err(|e| e.to_string())?,
            whole: whole.clone(),
            ranged: ranged.clone(),
            requests: requests.clone(),
        };
        UpdaterBuilder::new(&app)
            .with_source(source)
            .configure(|c| match unchanged {
                Some(method) => c.delta.unchanged = method,
                None => c.delta.enabled = false,
            })
            .build()
            .map_err(fail)
    };
    let full = updater(None)?;
    let delta = updater(Some(UnchangedFiles::Auto))?;
    let hardlink = updater(Some(UnchangedFiles::Hardlink))?;
    // The installed release: 1.1.0, with its file list (a first, full update).
    let to = |version: &str| {
        ApplyRequest::latest("bench")
            .with_version(Version::parse(version).unwrap_or(Version::new(0, 0, 0)))
    };
    full.apply(&to("1.1.0"), &NoProgress).map_err(fail)?;
    let back = RollbackRequest {
        initiated_by: "bench".into(),
        restore_database_snapshot: false,
    };
    let mut apply_samples = Samples::default();
    let mut hardlink_samples = Samples::default();
    let (mut delta_bytes, mut delta_requests, mut index_bytes) = (0, 0, 0);
    let mut notes = (String::new(), String::new());
    let mut hardlink_note = String::new();
    let step_times = |updater: &updater_core::Updater| -> String {
        let Some(record) = updater
            .history()
            .updates(Page::first(1))
            .ok()
            .and_then(|records| records.into_iter().next())
        else {
            return String::new();
        };
        record
            .steps
            .iter()
            .filter_map(|s| {
                let ms = (s.finished_at? - s.started_at).num_milliseconds();
                (ms > 0).then(|| format!("{} {ms} ms", s.name))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut times = (String::new(), String::new());
    let step_note = |updater: &updater_core::Updater, name: &str| -> String {
        updater
            .history()
            .updates(Page::first(1))
            .ok()
            .and_then(|records| records.into_iter().next())
            .and_then(|record| record.steps.into_iter().find(|s| s.name == name))
            .and_then(|step| step.message)
            .unwrap_or_default()
    };
    for _ in 0..runs {
        let (outcome, elapsed) = time(|| full.apply(&to("1.2.0"), &NoProgress));
        outcome.map_err(fail)?;
        apply_samples.theirs.push(elapsed);
        hardlink_samples.theirs.push(elapsed);
        times.1 = step_times(&full);
        full.rollback(&back, &NoProgress).map_err(fail)?;

        for (updater, samples) in [
            (&delta, &mut apply_samples),
            (&hardlink, &mut hardlink_samples),
        ] {
            whole.store(0, Ordering::SeqCst);
            ranged.store(0, Ordering::SeqCst);
            requests.store(0, Ordering::SeqCst);
            let (outcome, elapsed) = time(|| updater.apply(&to("1.2.0"), &NoProgress));
            outcome.map_err(fail)?;
            let download = step_note(updater, "download");
            if !download.starts_with("delta:") {
                return Err(format!(
                    "the patch release was not installed by delta: {download}"
                ));
            }
            samples.ours.push(elapsed);
            if std::ptr::eq(updater, &delta) {
                delta_bytes = ranged.load(Ordering::SeqCst);
                delta_requests = requests.load(Ordering::SeqCst);
                index_bytes = whole.load(Ordering::SeqCst);
                notes = (download, step_note(updater, "stage"));
                times.0 = step_times(updater);
            } else {
                hardlink_note = step_note(updater, "stage");
            }
            updater.rollback(&back, &NoProgress).map_err(fail)?;
        }
    }
    drop(server);
    workload::remove(&app)?;
    workload::remove(site.directory())?;
    let (package, index_size, entries) = packages[1];
    let share = (delta_bytes + index_bytes) as f64 / package.max(1) as f64;
    let apply_ratio = apply_samples.ratio();
    Ok(vec![
        Row {
            what: format!(
                "delta update: bytes downloaded for a patch release changing 1 % of the files ({changed_files} of {entries} entries)"
            ),
            against: "the whole package".into(),
            notes: format!(
                "{} of {} = {:.2} %: {} in {delta_requests} range requests + the {} index ({:.2} % of the package)",
                mib(delta_bytes + index_bytes),
                mib(package),
                share * 100.0,
                mib(delta_bytes),
                mib(index_size),
                index_size as f64 * 100.0 / package.max(1) as f64
            ),
            samples: None,
            target: "≤ 3 %".into(),
            met: Some(share <= 0.03),
        },
        Row {
            what:
                "delta update: whole apply (index + ranges + verify + stage + swap) of that release"
                    .into(),
            against: "whole apply downloading the full package (delta off), same server".into(),
            notes: format!(
                "range-capable `http.server`; {}; {}; steps of the last delta run: {}; of the last full run: {}",
                notes.0, notes.1, times.0, times.1
            ),
            samples: Some(apply_samples),
            target: "≤ 0.3x".into(),
            met: Some(apply_ratio <= 0.3),
        },
        Row {
            what:
                "delta update with unchanged files hard-linked (`unchanged = \"hardlink\"`, opt-in)"
                    .into(),
            against: "whole apply downloading the full package".into(),
            notes: format!(
                "no data written for unchanged files; the kept release shares their inodes; {hardlink_note}"
            ),
            samples: Some(hardlink_samples),
            target: "—".into(),
            met: None,
        },
    ])
}

/// SHA-256 of a big file: ours against `openssl dgst -sha256`.
fn sha256_row(work: &Path, size: u64, runs: usize) -> Result<Row, String> {
    let path: PathBuf = work.join("big.bin");
    write_pseudo_random(&path, size)?;
    let path_text = path.display().to_string();
    let samples = Samples::interleaved(
        runs,
        || {
            let (result, elapsed) = time(|| updater_core::package::sha256_file(&path));
            result.map_err(|e| e.to_string())?;
            Ok(elapsed)
        },
        || workload::shell(&format!("openssl dgst -sha256 '{path_text}' > /dev/null")),
    )?;
    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    let ratio = samples.ratio();
    Ok(Row {
        what: format!("SHA-256 of a {} MiB file (from page cache)", size >> 20),
        against: "`openssl dgst -sha256`".into(),
        notes: "the same hashing code verifies downloads while streaming".into(),
        samples: Some(samples),
        target: "≤ 1.1x".into(),
        met: Some(ratio <= 1.1),
    })
}

fn write_pseudo_random(path: &Path, size: u64) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("write {}: {e}", path.display());
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(fail)?);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut block = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < size {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = block
            .len()
            .min(usize::try_from(size - written).unwrap_or(usize::MAX));
        out.write_all(&block[..n]).map_err(fail)?;
        written += n as u64;
    }
    out.flush().map_err(fail)
}

/// Work done in a child process (see `updater_benches::child`).
fn child_main(args: &[String]) -> Result<ChildReport, String> {
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("child {args:?}: missing argument {i}"))
    };
    match arg(0)? {
        "backup" => {
            let strategy = FileBackup::builder(arg(1)?, arg(2)?)
                .without_default_excludes()
                .build()
                .map_err(|e| e.to_string())?;
            let request = BackupRequest {
                version: Version::new(1, 0, 0),
                purpose: BackupPurpose::Manual,
                update_id: None,
                description: None,
            };
            let (result, elapsed) = time(|| strategy.create_with_stats(&request, &NoProgress));
            let (backup, stats) = result.map_err(|e| e.to_string())?;
            // As the pipeline does; only a verified backup is a base for the next one.
            updater_core::backup::BackupStrategy::verify(&strategy, &backup)
                .map_err(|e| e.to_string())?;
            let json = serde_json::to_vec(&backup).map_err(|e| e.to_string())?;
            std::fs::write(arg(3)?, json).map_err(|e| e.to_string())?;
            Ok(ChildReport {
                secs: elapsed.as_secs_f64(),
                peak_rss: workload::peak_rss().unwrap_or(0),
                bytes: stats.archive_size,
                detail: format!("{} encoded, {} copied", stats.encoded, stats.copied),
            })
        }
        "restore" => {
            let strategy = FileBackup::builder(arg(1)?, arg(2)?)
                .without_default_excludes()
                .build()
                .map_err(|e| e.to_string())?;
            let backup: Backup = read_json(Path::new(arg(3)?))?;
            let target = PathBuf::from(arg(4)?);
            let (result, elapsed) = time(|| strategy.restore_to(&backup, &target, &NoProgress));
            result.map_err(|e| e.to_string())?;
            Ok(ChildReport {
                secs: elapsed.as_secs_f64(),
                peak_rss: workload::peak_rss().unwrap_or(0),
                bytes: 0,
                detail: String::new(),
            })
        }
        "download" => {
            use updater_core::source::ReleaseSource;
            let source = updater_source_github::ManifestSource::builder(arg(1)?)
                .build()
                .map_err(|e| e.to_string())?;
            let release = source
                .latest(updater_core::version::Channel::Stable)
                .map_err(|e| e.to_string())?
                .ok_or("no release on the bench server")?;
            let asset = release
                .select_asset(Some("*"))
                .map_err(|e| e.to_string())?
                .clone();
            let policy = updater_core::package::VerificationPolicy::default();
            let destination = PathBuf::from(arg(2)?);
            let (result, elapsed) = time(|| {
                updater_core::package::download_verified(
                    &source,
                    &release,
                    &asset,
                    &destination,
                    &policy,
                    &mut |_| {},
                )
            });
            let package = result.map_err(|e| e.to_string())?;
            Ok(ChildReport {
                secs: elapsed.as_secs_f64(),
                peak_rss: workload::peak_rss().unwrap_or(0),
                bytes: package.size,
                detail: package.sha256.to_hex(),
            })
        }
        other => Err(format!("unknown child kind {other:?}")),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// Full backup, second backup of the unchanged tree, and restore, against
/// `tar czf` / `tar xzf` of the same tree.
fn backup_rows(work: &Path, tree: &Path, runs: usize) -> Result<Vec<Row>, String> {
    let tar_archive = work.join("theirs.tar.gz");
    let backup_json = work.join("backup.json");
    let restore_target = work.join("restored");
    let tree_text = tree.display().to_string();
    let mut full = Samples::default();
    let mut second = Samples::default();
    let mut restore = Samples::default();
    let (mut our_sizes, mut their_sizes, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    let mut details = String::new();
    for run in 0..runs {
        let root = work.join(format!("backups-{run}"));
        let root_text = root.display().to_string();
        let json_text = backup_json.display().to_string();
        let report = run_child(&["backup", &tree_text, &root_text, &json_text])?;
        full.ours.push(report.duration());
        our_sizes.push(report.bytes);
        peaks.push(report.peak_rss);
        let tar = workload::shell(&format!(
            "tar czf '{}' -C '{tree_text}' .",
            tar_archive.display()
        ))?;
        full.theirs.push(tar);
        their_sizes.push(workload::file_size(&tar_archive));

        let again = run_child(&["backup", &tree_text, &root_text, &json_text])?;
        second.ours.push(again.duration());
        second.theirs.push(tar);
        peaks.push(again.peak_rss);
        details = again.detail.clone();

        workload::remove(&restore_target)?;
        let target_text = restore_target.display().to_string();
        let restored = run_child(&["restore", &tree_text, &root_text, &json_text, &target_text])?;
        restore.ours.push(restored.duration());
        peaks.push(restored.peak_rss);
        if run == 0 {
            // Our archive is a standard .tar.gz: GNU tar reads it back whole.
            let backup: Backup = read_json(&backup_json)?;
            let archive = backup.files_path.ok_or("the backup has no files part")?;
            let archive = if archive.is_dir() {
                find_tar_gz(&archive)?
            } else {
                archive
            };
            let check = work.join("tar-check");
            std::fs::create_dir_all(&check).map_err(|e| e.to_string())?;
            workload::shell(&format!(
                "tar xzf '{}' -C '{}'",
                archive.display(),
                check.display()
            ))?;
            let diff = workload::shell(&format!(
                "diff -r '{tree_text}' '{}' > /dev/null",
                check.display()
            ));
            if diff.is_err() {
                return Err("tar xzf of our backup does not give back the tree".into());
            }
            workload::remove(&check)?;
        }
        workload::remove(&restore_target)?;
        std::fs::create_dir_all(&restore_target).map_err(|e| e.to_string())?;
        let untar = workload::shell(&format!(
            "tar xzf '{}' -C '{}'",
            tar_archive.display(),
            restore_target.display()
        ))?;
        restore.theirs.push(untar);
        workload::remove(&restore_target)?;
        workload::remove(&root)?;
    }
    let size_ratio = median_u64(&our_sizes) as f64 / median_u64(&their_sizes).max(1) as f64;
    let peak = peaks.iter().copied().max().unwrap_or(0);
    let (full_ratio, second_ratio, restore_ratio) = (full.ratio(), second.ratio(), restore.ratio());
    Ok(vec![
        Row {
            what: "full file backup".into(),
            against: "`tar czf` (GNU tar + gzip)".into(),
            notes: format!(
                "archive {} vs {} ({size_ratio:.3}x, target ≤ 1.15x; `tar xzf` reads it back identical); peak memory {}",
                mib(median_u64(&our_sizes)),
                mib(median_u64(&their_sizes)),
                mib(peak)
            ),
            samples: Some(full),
            target: "≤ 0.2x, size ≤ 1.15x".into(),
            met: Some(full_ratio <= 0.2 && size_ratio <= 1.15),
        },
        Row {
            what: "second backup of the unchanged tree".into(),
            against: "`tar czf`".into(),
            notes: format!(
                "{details}; timed: create (the verify that follows is not timed, as `tar czf` verifies nothing); each backup restores on its own"
            ),
            samples: Some(second),
            target: "≤ 0.05x".into(),
            met: Some(second_ratio <= 0.05),
        },
        Row {
            what: "restore of the full backup (into an empty directory, SHA-256 checked)".into(),
            against: "`tar xzf`".into(),
            notes: format!("peak memory of backup and restore children ≤ {}", mib(peak)),
            samples: Some(restore),
            target: "≤ 1.0x".into(),
            met: Some(restore_ratio <= 1.0),
        },
    ])
}

fn find_tar_gz(dir: &Path) -> Result<PathBuf, String> {
    std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .ok_or_else(|| format!("no .tar.gz in {}", dir.display()))
}

fn median_u64(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// Download of a big asset over loopback with streaming SHA-256 and size
/// checks, against `curl -o` of the same URL.
fn download_row(work: &Path, server: &str, size: u64, runs: usize) -> Result<Row, String> {
    let manifest_url = format!("{server}/manifest.json");
    let asset_url = format!("{server}/app-2.0.0.tar.gz");
    let ours_dest = work.join("downloaded.bin");
    let theirs_dest = work.join("curl.bin");
    let ours_text = ours_dest.display().to_string();
    let mut peaks = Vec::new();
    let samples = Samples::interleaved(
        runs,
        || {
            let _ = std::fs::remove_file(&ours_dest);
            let report = run_child(&["download", &manifest_url, &ours_text])?;
            peaks.push(report.peak_rss);
            Ok(report.duration())
        },
        || {
            let _ = std::fs::remove_file(&theirs_dest);
            workload::shell(&format!(
                "curl -sS -o '{}' '{asset_url}'",
                theirs_dest.display()
            ))
        },
    )?;
    let _ = std::fs::remove_file(&ours_dest);
    let _ = std::fs::remove_file(&theirs_dest);
    let peak = peaks.iter().copied().max().unwrap_or(0);
    let ratio = samples.ratio();
    Ok(Row {
        what: format!(
            "download of a {} MiB asset over loopback, verified while streaming",
            size >> 20
        ),
        against: "`curl -o` of the same URL".into(),
        notes: format!(
            "ours checks size and SHA-256 while streaming and writes through a second thread; both from `python3 -m http.server`; peak memory {}",
            mib(peak)
        ),
        samples: Some(samples),
        target: "≤ 1.1x, peak < 64 MiB".into(),
        met: Some(ratio <= 1.1 && peak < 64 << 20),
    })
}

/// A version check answered from the history cache against one that asks the source.
fn check_cache_row(work: &Path, server: &str) -> Result<Row, String> {
    let app = work.join("check-app");
    std::fs::create_dir_all(app.join(".updater")).map_err(|e| e.to_string())?;
    std::fs::write(app.join("VERSION"), "1.0.0").map_err(|e| e.to_string())?;
    let store = updater_store_diesel::DieselHistoryStore::open(
        app.join(".updater/history.sqlite").display().to_string(),
    )
    .map_err(|e| e.to_string())?;
    let source = updater_source_github::ManifestSource::builder(format!("{server}/manifest.json"))
        .build()
        .map_err(|e| e.to_string())?;
    let updater = UpdaterBuilder::new(&app)
        .with_source(source)
        .with_history(std::sync::Arc::new(store))
        .build()
        .map_err(|e| e.to_string())?;
    let rounds = 30;
    let mut samples = Samples::default();
    for _ in 0..rounds {
        let (cached, t) = time(|| updater.check(false));
        let cached = cached.map_err(|e| e.to_string())?;
        samples.ours.push(t);
        let (fresh, t) = time(|| updater.check(true));
        fresh.map_err(|e| e.to_string())?;
        samples.theirs.push(t);
        if !cached.from_cache && samples.ours.len() > 1 {
            return Err("the second check was not answered from the cache".into());
        }
    }
    // The first "cached" call had no cache yet: drop it.
    samples.ours.remove(0);
    let (ours, theirs) = (spread(&samples.ours).median, spread(&samples.theirs).median);
    workload::remove(&app)?;
    Ok(Row {
        what: "version check answered from the history cache (SQLite)".into(),
        against: "the same check asking the source (manifest over loopback HTTP) and recording it"
            .into(),
        notes: format!(
            "cache {:.0} µs vs source {:.0} µs (absolute; median of {rounds})",
            ours.as_secs_f64() * 1e6,
            theirs.as_secs_f64() * 1e6
        ),
        samples: Some(samples),
        target: "— (absolute)".into(),
        met: None,
    })
}
