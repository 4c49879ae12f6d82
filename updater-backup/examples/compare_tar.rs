//! Measures file backup and restore against `tar czf` / `tar xzf` on a tree,
//! interleaving runs: `cargo run --release --example compare_tar -- TREE WORKDIR [ROUNDS] [--no-sync]`.
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let tree = Path::new(&args[1]).canonicalize()?;
    let work = Path::new(&args[2]);
    let rounds: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
    let sync = !args.iter().any(|a| a == "--no-sync");
    std::fs::create_dir_all(work)?;
    if args.iter().any(|a| a == "--restore-only") {
        let root = work.join("ours-restore-only");
        let _ = std::fs::remove_dir_all(&root);
        let backup = FileBackup::builder(&tree, &root).with_sync(sync).build()?;
        let request = BackupRequest {
            version: Version::new(1, 0, 0),
            purpose: BackupPurpose::Manual,
            update_id: None,
            description: None,
        };
        let full = backup.create(&request, &NoProgress)?;
        for _ in 0..rounds {
            let restored = work.join("restored");
            let _ = std::fs::remove_dir_all(&restored);
            let (stats, d) = time(|| backup.restore_to(&full, &restored, &NoProgress).unwrap());
            println!("restore {:.3}s {stats:?}", d.as_secs_f64());
        }
        return Ok(());
    }
    let request = BackupRequest {
        version: Version::new(1, 0, 0),
        purpose: BackupPurpose::Manual,
        update_id: None,
        description: None,
    };
    let (mut t_tar, mut t_full, mut t_incr, mut t_untar, mut t_restore, mut t_verify) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut tar_size, mut our_size) = (0, 0);
    for round in 0..rounds {
        let tar_path = work.join("theirs.tar.gz");
        let _ = std::fs::remove_file(&tar_path);
        let (status, d) = time(|| {
            Command::new("tar")
                .arg("czf")
                .arg(&tar_path)
                .arg("-C")
                .arg(&tree)
                .args([
                    "--exclude=./storage/logs",
                    "--exclude=./storage/app/public",
                    ".",
                ])
                .status()
        });
        assert!(status?.success());
        t_tar.push(d.as_secs_f64());
        tar_size = std::fs::metadata(&tar_path)?.len();

        let root = work.join(format!("ours-{round}"));
        let _ = std::fs::remove_dir_all(&root);
        let backup = FileBackup::builder(&tree, &root).with_sync(sync).build()?;
        let ((full, stats), d) = time(|| backup.create_with_stats(&request, &NoProgress).unwrap());
        t_full.push(d.as_secs_f64());
        our_size = stats.archive_size;
        let (_, d) = time(|| backup.verify(&full).unwrap());
        t_verify.push(d.as_secs_f64());
        let ((_, incr), d) = time(|| backup.create_with_stats(&request, &NoProgress).unwrap());
        assert_eq!(incr.encoded, 0, "second backup re-encoded entries");
        t_incr.push(d.as_secs_f64());

        // Both restores write 20,000 new inodes. ext4 skips inodes freed in the
        // last 30 s (scanning inode tables for each), so outputs of earlier
        // rounds are removed first and both runs start after that window;
        // the order alternates between rounds.
        let untar = work.join("untar");
        let restored = work.join("restored");
        let _ = std::fs::remove_dir_all(&untar);
        let _ = std::fs::remove_dir_all(&restored);
        std::thread::sleep(Duration::from_secs(31));
        std::fs::create_dir_all(&untar)?;
        let run_tar = |t: &mut Vec<f64>| {
            let (status, d) = time(|| {
                Command::new("tar")
                    .arg("xzf")
                    .arg(&tar_path)
                    .arg("-C")
                    .arg(&untar)
                    .status()
            });
            assert!(status.unwrap().success());
            t.push(d.as_secs_f64());
        };
        let run_ours = |t: &mut Vec<f64>| {
            let (_, d) = time(|| backup.restore_to(&full, &restored, &NoProgress).unwrap());
            t.push(d.as_secs_f64());
        };
        if round % 2 == 0 {
            run_tar(&mut t_untar);
            run_ours(&mut t_restore);
        } else {
            run_ours(&mut t_restore);
            run_tar(&mut t_untar);
        }
        // Our archive must be readable by tar xzf as well.
        if round == 0 {
            let check = work.join("tar-reads-ours");
            let _ = std::fs::remove_dir_all(&check);
            std::fs::create_dir_all(&check)?;
            let status = Command::new("tar")
                .arg("xzf")
                .arg(full.files_path.as_ref().unwrap())
                .arg("-C")
                .arg(&check)
                .status()?;
            assert!(status.success(), "tar xzf cannot read our archive");
            let diff = Command::new("diff")
                .arg("-r")
                .arg(&restored)
                .arg(&check)
                .status()?;
            assert!(diff.success(), "tar and our restore disagree");
            std::fs::remove_dir_all(&check)?;
        }
        std::fs::remove_dir_all(&root)?;
    }
    let ratios = |ours: &[f64], theirs: &[f64]| -> Vec<f64> {
        ours.iter().zip(theirs).map(|(o, t)| o / t).collect()
    };
    println!("per-round ratios: full {:?}", ratios(&t_full, &t_tar));
    println!(
        "per-round ratios: incremental {:?}",
        ratios(&t_incr, &t_tar)
    );
    println!(
        "per-round ratios: restore {:?}",
        ratios(&t_restore, &t_untar)
    );
    println!(
        "median per-round ratios: full {:.3} incremental {:.3} restore {:.3}",
        median(ratios(&t_full, &t_tar)),
        median(ratios(&t_incr, &t_tar)),
        median(ratios(&t_restore, &t_untar))
    );
    let tar = median(t_tar.clone());
    let untar = median(t_untar.clone());
    println!("sync={sync} rounds={rounds}");
    println!("tar czf            {:.3}s  {:?}", tar, t_tar);
    println!(
        "full backup        {:.3}s  ratio {:.3}  {:?}",
        median(t_full.clone()),
        median(t_full.clone()) / tar,
        t_full
    );
    println!(
        "incremental backup {:.3}s  ratio {:.3}  {:?}",
        median(t_incr.clone()),
        median(t_incr.clone()) / tar,
        t_incr
    );
    println!("verify             {:.3}s", median(t_verify));
    println!(
        "archive size       {} vs {}  ratio {:.3}",
        our_size,
        tar_size,
        our_size as f64 / tar_size as f64
    );
    println!("tar xzf            {:.3}s  {:?}", untar, t_untar);
    println!(
        "restore            {:.3}s  ratio {:.3}  {:?}",
        median(t_restore.clone()),
        median(t_restore.clone()) / untar,
        t_restore
    );
    Ok(())
}
