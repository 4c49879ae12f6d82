//! `compare`: measures each performance target of the design against the
//! standard tool doing the same work, interleaved, and prints a Markdown
//! table of ratios.
//!
//! ```text
//! cargo run --release -p updater-benches --bin compare            # full (≈10 min)
//! cargo run --release -p updater-benches --bin compare -- --quick # CI smoke
//! cargo run --release -p updater-benches --bin compare -- --only swap,sha256
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use updater_benches::measure::{Row, Samples, spread, table, time};
use updater_benches::workload::{self, TreeSize};
use updater_core::history::{HistoryStore, Page};
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, RollbackRequest, UpdaterBuilder};
use updater_core::progress::NoProgress;
use updater_core::source::LocalDirectorySource;
use updater_core::version::Version;

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
    if settings.wants("sha256") {
        rows.push(sha256_row(work.path(), settings.big_file, settings.runs)?);
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

/// Packs `tree` plus a `VERSION` file into a `.tar.gz` (fast compression).
fn pack_release(tree: &Path, version: &str, archive: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("pack {}: {e}", archive.display());
    let file = std::fs::File::create(archive).map_err(fail)?;
    let gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.append_dir_all(".", tree).map_err(fail)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(version.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "VERSION", version.as_bytes())
        .map_err(fail)?;
    builder
        .into_inner()
        .map_err(fail)?
        .finish()
        .map_err(fail)?
        .flush()
        .map_err(fail)
}

/// Update (stage + swap) and rollback of the whole tree through the real
/// pipeline, against `cp -a` of the same tree.
fn swap_rows(work: &Path, tree: &Path, runs: usize) -> Result<Vec<Row>, String> {
    let app = work.join("app");
    workload::cp_a(tree, &app)?;
    std::fs::write(app.join("VERSION"), "1.0.0").map_err(|e| e.to_string())?;
    let archive = work.join("release-1.1.0.tar.gz");
    pack_release(tree, "1.1.0", &archive)?;
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
