//! Criterion benches of the updater's hot paths: hashing, version
//! selection, manifest parsing, safe extraction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use updater_core::manifest::ReleaseManifest;
use updater_core::package::{ExtractOptions, extract_tar_gz};
use updater_core::version::{Channel, Version, newest_in_channel};

fn hashing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let data: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    let mut group = c.benchmark_group("sha256");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("sha256_file 16 MiB", |b| {
        b.iter(|| updater_core::package::sha256_file(black_box(&path)).unwrap())
    });
    group.finish();
}

fn versions(c: &mut Criterion) {
    let texts: Vec<String> = (0..500)
        .map(|i| match i % 4 {
            0 => format!("v{}.{}.{}", i / 100, i % 10, i % 7),
            1 => format!("{}.{}.{}-beta.{}", i / 100, i % 10, i % 7, i % 3),
            2 => format!("{}.{}.{}-rc.{}", i / 100, i % 10, i % 7, i % 3),
            _ => format!("{}.{}.{}-alpha.{}", i / 100, i % 10, i % 7, i % 3),
        })
        .collect();
    c.bench_function("parse 500 versions and pick the newest beta", |b| {
        b.iter(|| {
            let parsed: Vec<Version> = texts.iter().map(|t| Version::parse(t).unwrap()).collect();
            black_box(newest_in_channel(&parsed, Channel::Beta).cloned())
        })
    });
}

fn manifests(c: &mut Criterion) {
    let releases: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"version":"1.{i}.0","changelog":"release {i}","assets":[{{"name":"app-1.{i}.0.tar.gz","url":"app-1.{i}.0.tar.gz","size":{},"sha256":"{}"}}]}}"#,
                1000 + i,
                "ab".repeat(32)
            )
        })
        .collect();
    let json = format!(
        r#"{{"schema_version":1,"releases":[{}]}}"#,
        releases.join(",")
    );
    c.bench_function("parse a 200-release manifest", |b| {
        b.iter(|| {
            ReleaseManifest::from_json(black_box(json.as_bytes()), "bench")
                .unwrap()
                .into_releases()
        })
    });
}

fn extraction(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("pkg.tar.gz");
    let files: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| {
            let body = format!("<?php // file {i}\n").repeat(20);
            (format!("vendor/p{}/File{i}.php", i % 20), body.into_bytes())
        })
        .collect();
    std::fs::write(&archive, updater_testkit::archive::tar_gz(&files)).unwrap();
    let mut round = 0u32;
    c.bench_function("validate and extract 1000 files", |b| {
        b.iter(|| {
            round += 1;
            let staging = dir.path().join(format!("staging-{round}"));
            extract_tar_gz(&archive, &staging, &ExtractOptions::default()).unwrap();
            std::fs::remove_dir_all(&staging).unwrap();
        })
    });
}

criterion_group!(benches, hashing, versions, manifests, extraction);
criterion_main!(benches);
