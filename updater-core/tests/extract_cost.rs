//! What extraction costs on a large package (ignored by default: it builds a
//! ~480 MB tree with `../shared/tools/gen_app_tree.py` and packs it with GNU
//! tar). Run in release mode:
//!
//! ```text
//! cargo test -p updater-core --release --test extract_cost -- --ignored --nocapture
//! ```
//!
//! `EXTRACT_COST_DIR` chooses where the tree, the archive and the staging
//! directories go (default: a directory under the system temp dir, kept
//! between runs so the archive is built once).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use updater_core::package::{ExtractOptions, extract_tar_gz, list_tar_gz};

const RUNS: usize = 5;

fn work_dir() -> PathBuf {
    std::env::var_os("EXTRACT_COST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("updater-extract-cost"))
}

/// The archive of a synthetic ~480 MB application tree, built once.
fn large_archive() -> PathBuf {
    let dir = work_dir();
    let archive = dir.join("app.tar.gz");
    if archive.exists() {
        return archive;
    }
    fs::create_dir_all(&dir).unwrap();
    let tree = dir.join("tree");
    let _ = fs::remove_dir_all(&tree);
    let generator =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/gen_app_tree.py");
    let status = Command::new("python3")
        .arg(&generator)
        .arg(&tree)
        .args(["--files", "20000", "--mb", "480"])
        .status()
        .unwrap();
    assert!(status.success(), "{}", generator.display());
    let partial = dir.join("app.tar.gz.partial");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&partial)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    fs::rename(&partial, &archive).unwrap();
    fs::remove_dir_all(&tree).unwrap();
    archive
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Where staging directories go: `EXTRACT_COST_STAGING` (e.g. a tmpfs, to
/// measure CPU cost without disk noise) or beside the archive.
fn staging_dir() -> PathBuf {
    std::env::var_os("EXTRACT_COST_STAGING")
        .map(PathBuf::from)
        .unwrap_or_else(work_dir)
        .join("staging")
}

/// CPU time of this thread so far (`/proc/thread-self/schedstat`): less
/// sensitive than wall time to other processes on a shared machine.
fn thread_cpu() -> Duration {
    let stat = fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let nanos: u64 = stat.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(nanos)
}

/// Times `run` (given a fresh staging path) `RUNS` times after a `sync`, so
/// one run's writeback does not slow the next; prints the median wall and
/// CPU times and returns the median CPU time (the extraction is single-threaded).
///
/// `EXTRACT_COST_ONLY=<text>` runs only the variants whose label contains it.
fn time(label: &str, mut run: impl FnMut(&Path)) -> Duration {
    if std::env::var("EXTRACT_COST_ONLY").is_ok_and(|only| !label.contains(&only)) {
        return Duration::from_secs(1);
    }
    let staging = staging_dir();
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..RUNS {
        let _ = fs::remove_dir_all(&staging);
        let _ = Command::new("sync").status();
        let started = Instant::now();
        let cpu_started = thread_cpu();
        run(&staging);
        cpu.push(thread_cpu() - cpu_started);
        wall.push(started.elapsed());
    }
    let _ = fs::remove_dir_all(&staging);
    let (wall, cpu) = (median(wall), median(cpu));
    println!("{label:<40} median wall {wall:>10.3?}  cpu {cpu:>10.3?}");
    cpu
}

#[test]
#[ignore = "builds a 480 MB tree; run in release mode with --ignored"]
fn extraction_cost_on_a_large_package() {
    let archive = large_archive();
    println!(
        "archive {} ({} MB)",
        archive.display(),
        fs::metadata(&archive).unwrap().len() >> 20
    );
    let floor = time("gzip decompression only", |_| {
        let file = fs::File::open(&archive).unwrap();
        let mut decoder = flate2::bufread::MultiGzDecoder::new(std::io::BufReader::with_capacity(
            256 * 1024,
            file,
        ));
        std::io::copy(&mut decoder, &mut std::io::sink()).unwrap();
    });
    let hashed = time("extract, hashing, no pre-scan", |staging| {
        let options = ExtractOptions::default().with_prescan(false);
        extract_tar_gz(&archive, staging, &options).unwrap();
    });
    let full = time("extract, hashing, pre-scan (default)", |staging| {
        extract_tar_gz(&archive, staging, &ExtractOptions::default()).unwrap();
    });
    let listed = time("list_tar_gz (hashing, no writes)", |_| {
        list_tar_gz(&archive, &ExtractOptions::default()).unwrap();
    });
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "pre-scan adds {:.2}x the extraction ({:.3?}); decompression floor is {:.2}x of it; listing is {:.2}x",
        ratio(full, hashed),
        full.saturating_sub(hashed),
        ratio(floor, hashed),
        ratio(listed, hashed),
    );
}
