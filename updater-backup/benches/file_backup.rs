//! Criterion benches of the file backup on a generated 1,000-file tree (35%
//! compressible text, 65% random bytes). The comparison against `tar czf` /
//! `tar xzf` on the 20,000-file tree is `examples/compare_tar.rs`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use updater_backup::FileBackup;
use updater_core::backup::{BackupPurpose, BackupRequest, BackupStrategy};
use updater_core::progress::NoProgress;
use updater_core::version::Version;

fn generate(root: &Path) {
    let words = [
        "function", "return", "public", "static", "class", "array", "string", "null",
    ];
    let mut state = 0x2545_f491_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..1000 {
        let dir = root.join(format!("vendor/pkg{:02}", i % 40));
        fs::create_dir_all(&dir).unwrap();
        if i % 3 == 0 {
            let mut text = String::new();
            while text.len() < 8_000 {
                text.push_str(words[(next() % words.len() as u64) as usize]);
                text.push(' ');
            }
            fs::write(dir.join(format!("f{i}.php")), text).unwrap();
        } else {
            let bytes: Vec<u8> = (0..20_000).map(|_| next() as u8).collect();
            fs::write(dir.join(format!("a{i}.bin")), bytes).unwrap();
        }
    }
}

fn request() -> BackupRequest {
    BackupRequest {
        version: Version::new(1, 0, 0),
        purpose: BackupPurpose::Manual,
        update_id: None,
        description: None,
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("app");
    generate(&tree);
    let mut group = c.benchmark_group("file_backup");
    group.sample_size(10);

    let full = FileBackup::builder(&tree, dir.path().join("full"))
        .with_incremental(false)
        .with_sync(false)
        .build()
        .unwrap();
    group.bench_function("full", |b| {
        b.iter(|| {
            let backup = full.create(&request(), &NoProgress).unwrap();
            full.delete(&backup).unwrap();
        })
    });

    let incremental = FileBackup::builder(&tree, dir.path().join("incremental"))
        .with_sync(false)
        .build()
        .unwrap();
    let base = incremental.create(&request(), &NoProgress).unwrap();
    incremental.verify(&base).unwrap();
    group.bench_function("unchanged_incremental", |b| {
        b.iter(|| {
            let backup = incremental.create(&request(), &NoProgress).unwrap();
            incremental.delete(&backup).unwrap();
        })
    });

    // A fresh target each time: removing the previous one first would make
    // ext4 skip the just-freed inodes (a 30 s penalty window) and measure that.
    let mut round = 0u32;
    group.bench_function("restore", |b| {
        b.iter(|| {
            round += 1;
            let target = dir.path().join(format!("restored-{round}"));
            incremental.restore_to(&base, &target, &NoProgress).unwrap();
        })
    });
    group.finish();
}

criterion_group!(file_backup, benches);
criterion_main!(file_backup);
