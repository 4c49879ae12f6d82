//! Measures staging a files backup beside the application against restoring
//! it (in place over the live tree, and into an empty directory), on a copy
//! of a tree, interleaving runs:
//! `cargo run --release --example stage_vs_restore -- TREE WORKDIR [ROUNDS] [--no-sync]`.
//!
//! Staging writes the same bytes as a restore into an empty directory; what
//! it changes is *when* the application is touched: not at all while the
//! tree is written, then one rename (measured by the pipeline's swap).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use updater_backup::FileBackup;
use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::progress::NoProgress;
use updater_core::version::Version;

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let source = Path::new(&args[1]).canonicalize()?;
    let work = Path::new(&args[2]);
    let rounds: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(5);
    let sync = !args.iter().any(|a| a == "--no-sync");
    std::fs::create_dir_all(work)?;
    let work = work.canonicalize()?;
    let app = work.join("app");
    let _ = std::fs::remove_dir_all(&app);
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&source)
        .arg(&app)
        .status()?;
    assert!(copied.success(), "cp -a failed");
    let backups = work.join("backups");
    let _ = std::fs::remove_dir_all(&backups);
    let strategy = FileBackup::builder(&app, &backups)
        .with_sync(sync)
        .build()?;
    let request = BackupRequest {
        version: Version::new(1, 0, 0),
        purpose: BackupPurpose::Manual,
        update_id: None,
        description: None,
    };
    let (backup, stats) = strategy.create_with_stats(&request, &NoProgress)?;
    strategy.verify(&backup)?;
    println!(
        "tree: {} files, {} hard links, {} bytes; archive {} bytes",
        stats.files, stats.hard_links, stats.bytes_total, stats.archive_size
    );

    let (mut stage, mut fresh, mut in_place) = (Vec::new(), Vec::new(), Vec::new());
    // Rotate the order each round: writeback of one run slows the next. New
    // trees are removed only at the end: removing 2,000 files between runs
    // (discards, journal) slowed the runs that followed on our test disk.
    for round in 0..rounds {
        for turn in 0..3 {
            match (round + turn) % 3 {
                0 => {
                    let staged = work.join(format!("staged-{round}"));
                    let (_, d) = time(|| strategy.stage_to(&backup, &staged, &NoProgress).unwrap());
                    stage.push(d.as_secs_f64());
                }
                1 => {
                    let restored = work.join(format!("restored-{round}"));
                    let (_, d) = time(|| {
                        strategy
                            .restore_to(&backup, &restored, &NoProgress)
                            .unwrap()
                    });
                    fresh.push(d.as_secs_f64());
                }
                _ => {
                    let (_, d) =
                        time(|| strategy.restore_with_stats(&backup, &NoProgress).unwrap());
                    in_place.push(d.as_secs_f64());
                }
            }
        }
    }
    let show = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "per round: stage [{}] restore into empty [{}] restore in place [{}]",
        show(&stage),
        show(&fresh),
        show(&in_place)
    );
    let (stage, fresh, in_place) = (median(stage), median(fresh), median(in_place));
    println!("stage into a new directory      {stage:.3}s");
    println!(
        "restore into an empty directory {fresh:.3}s  stage/restore {:.2}",
        stage / fresh
    );
    println!(
        "restore in place over the tree  {in_place:.3}s  stage/restore {:.2}",
        stage / in_place
    );
    for round in 0..rounds {
        std::fs::remove_dir_all(work.join(format!("staged-{round}")))?;
        std::fs::remove_dir_all(work.join(format!("restored-{round}")))?;
    }
    std::fs::remove_dir_all(&app)?;
    std::fs::remove_dir_all(&backups)?;
    Ok(())
}
