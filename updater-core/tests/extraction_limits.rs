//! Resource limits of extraction that hold by default: the compression
//! ratio (decompression bombs), the free space of the staging file system,
//! and the entry count, all enforced by a pre-scan before anything is
//! written (and again while writing).
//!
//! The free-space tests mount a small tmpfs, which needs root: without it
//! they print why and pass, except under `CI=true`, where they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/raw_archive.rs"]
mod raw_archive;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use flate2::Compression;
use flate2::write::GzEncoder;
use raw_archive::*;
use updater_core::Error;
use updater_core::error::Rejection;
use updater_core::package::{ExtractOptions, extract_tar_gz, list_tar_gz};
use updater_testkit::disk::Tmpfs;

const MIB: u64 = 1024 * 1024;

/// Deterministic incompressible bytes (xorshift64*).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `bytes` compressed as well as deflate can (zeros reach about 1000:1).
fn gzip_best(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn rejection_of<T: std::fmt::Debug>(result: updater_core::Result<T>) -> (String, Rejection) {
    match result {
        Err(Error::PackageRejected {
            entry, rejection, ..
        }) => (entry, rejection),
        other => panic!("expected a rejected package, got {other:?}"),
    }
}

/// A directory whose modification time is set far in the past: if
/// anything is ever created (and removed) in it, its mtime changes.
struct WatchedParent {
    dir: PathBuf,
    mtime: SystemTime,
}

impl WatchedParent {
    fn new(sandbox: &Sandbox) -> Self {
        let dir = sandbox.root().join("parent");
        fs::create_dir(&dir).unwrap();
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        File::open(&dir).unwrap().set_modified(mtime).unwrap();
        WatchedParent { dir, mtime }
    }

    fn staging(&self) -> PathBuf {
        self.dir.join("staging")
    }

    /// Nothing was ever created in the parent: staging never existed.
    fn assert_never_written(&self) {
        assert_eq!(fs::read_dir(&self.dir).unwrap().count(), 0);
        assert_eq!(
            fs::metadata(&self.dir).unwrap().modified().unwrap(),
            self.mtime,
            "something was created and removed in the staging directory's parent"
        );
    }
}

// ---------------------------------------------------------------------------
// Compression ratio.

/// Writes a package holding one `size`-byte file of zeros, streaming: a
/// gzip member for the header, then one 16 MiB member of zeros, compressed
/// once and repeated, then the end-of-archive blocks. Nothing like `size`
/// is ever in memory.
fn write_zero_bomb(path: &Path, size: u64) {
    const CHUNK: u64 = 16 * MIB;
    assert_eq!(size % CHUNK, 0);
    let mut out = BufWriter::new(File::create(path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros.bin").unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    out.write_all(&gzip_best(header.as_bytes())).unwrap();
    let member = gzip_best(&vec![0u8; CHUNK as usize]);
    for _ in 0..size / CHUNK {
        out.write_all(&member).unwrap();
    }
    out.write_all(&gzip_best(&[0u8; 1024])).unwrap();
    out.into_inner().unwrap().sync_all().unwrap();
}

#[test]
fn a_four_gib_file_of_zeros_is_refused_for_its_ratio_within_a_second() {
    let sandbox = Sandbox::new();
    let parent = WatchedParent::new(&sandbox);
    write_zero_bomb(&sandbox.archive(), 4 * 1024 * MIB);
    let packed = fs::metadata(sandbox.archive()).unwrap().len();
    assert!(packed < 8 * MIB, "the bomb is {packed} bytes");

    let started = Instant::now();
    let result = extract_tar_gz(&sandbox.archive(), &parent.staging(), &defaults());
    let elapsed = started.elapsed();
    eprintln!(
        "4 GiB of zeros in a {} KiB package refused in {elapsed:?}",
        packed >> 10
    );
    let (entry, rejection) = rejection_of(result);
    assert!(
        matches!(rejection, Rejection::CompressionRatio { ratio, limit: 200 } if ratio > 200),
        "{rejection:?}"
    );
    assert_eq!(entry, "(archive)");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    parent.assert_never_written();

    // Listing applies the same limit.
    let (_, rejection) = rejection_of(list_tar_gz(&sandbox.archive(), &defaults()));
    assert!(matches!(
        rejection,
        Rejection::CompressionRatio { limit: 200, .. }
    ));

    // It is a well-formed package declaring one 4 GiB file: with the ratio
    // check off, the size limit refuses it from its header.
    let options = defaults()
        .with_max_compression_ratio(u32::MAX)
        .with_max_total_bytes(1024 * MIB);
    let (entry, rejection) = rejection_of(list_tar_gz(&sandbox.archive(), &options));
    assert_eq!(
        (entry.as_str(), rejection),
        ("zeros.bin", Rejection::TooLarge { limit: 1024 * MIB })
    );
}

#[test]
fn one_file_that_compresses_too_well_is_refused_though_the_whole_archive_does_not() {
    let sandbox = Sandbox::new();
    let entries = [
        Raw::file("random.bin", random_bytes(8 * MIB as usize, 1)),
        Raw::file("zeros.bin", vec![0u8; 4 * MIB as usize]),
        Raw::file("after.txt", "never reached"),
    ];
    let gz = gzip_best(&tar_bytes(&entries));
    // Overall the archive unpacks only about 1.5 times its size.
    assert!(gz.len() as u64 > 8 * MIB);
    fs::write(sandbox.archive(), &gz).unwrap();
    let (entry, rejection) = rejection_of(extract_tar_gz(
        &sandbox.archive(),
        &sandbox.staging(),
        &defaults(),
    ));
    assert_eq!(entry, "zeros.bin");
    assert!(
        matches!(rejection, Rejection::CompressionRatio { ratio, limit: 200 } if ratio > 200),
        "{rejection:?}"
    );
    assert!(!sandbox.staging().exists());
    sandbox.assert_nothing_outside();
    // A higher limit lets it through.
    let report = sandbox
        .extract_bytes(&gz, &defaults().with_max_compression_ratio(2000))
        .unwrap();
    assert_eq!(report.files, 3);
}

#[test]
fn many_small_files_that_compress_too_well_are_refused_for_the_whole_archive() {
    // Each file is below the 1 MiB threshold; together they are a bomb.
    let entries: Vec<Raw> = (0..100)
        .map(|i| Raw::file(format!("z{i:03}"), vec![0u8; 100 * 1024]))
        .collect();
    let sandbox = Sandbox::new();
    let result = sandbox.extract_bytes(&gzip_best(&tar_bytes(&entries)), &defaults());
    let (entry, rejection) = rejection_of(result);
    assert_eq!(entry, "(archive)");
    assert!(
        matches!(rejection, Rejection::CompressionRatio { ratio, limit: 200 } if ratio > 200),
        "{rejection:?}"
    );
    assert!(!sandbox.staging().exists());
}

#[test]
fn small_files_are_not_ratio_checked_below_the_threshold() {
    let entries = [Raw::file("empty.db", vec![0u8; 512 * 1024])];
    let gz = gzip_best(&tar_bytes(&entries));
    Sandbox::new().extract_bytes(&gz, &defaults()).unwrap();
    let sandbox = Sandbox::new();
    let result = sandbox.extract_bytes(&gz, &defaults().with_ratio_threshold_bytes(64 * 1024));
    let (_, rejection) = rejection_of(result);
    assert!(matches!(
        rejection,
        Rejection::CompressionRatio { limit: 200, .. }
    ));
}

/// Source-like text: lines of keywords in a pseudo-random order.
fn source_text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "function", "return", "public", "private", "static", "class", "$this->", "array", "string",
        "null", "foreach", "if", "else", "new", "=>", "$request",
    ];
    let noise = random_bytes(len, seed);
    let mut out = Vec::with_capacity(len + 64);
    for (i, byte) in noise.iter().enumerate() {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(WORDS[usize::from(*byte) % WORDS.len()].as_bytes());
        out.extend_from_slice(if i % 9 == 8 { b";\n    " } else { b" " });
    }
    out.truncate(len);
    out
}

#[test]
fn ordinary_source_code_is_far_below_the_ratio_limit() {
    let entries: Vec<Raw> = (0..40)
        .map(|i| {
            Raw::file(
                format!("src/F{i}.php"),
                source_text(100_000 + i * 3_700, i as u64),
            )
        })
        .collect();
    let tar = tar_bytes(&entries);
    let gz = gzip_best(&tar);
    let ratio = tar.len() / gz.len();
    assert!((3..20).contains(&ratio), "source compresses {ratio}:1");
    let report = Sandbox::new().extract_bytes(&gz, &defaults()).unwrap();
    assert_eq!(report.files, 40);
}

// ---------------------------------------------------------------------------
// Entry count and the pre-scan.

#[test]
fn a_package_over_the_entry_limit_is_refused_before_anything_is_written() {
    let entries: Vec<Raw> = (0..=100_000)
        .map(|i| Raw::file(format!("f{i:06}"), ""))
        .collect();
    let sandbox = Sandbox::new();
    let parent = WatchedParent::new(&sandbox);
    fs::write(sandbox.archive(), gzip(&tar_bytes(&entries))).unwrap();
    let started = Instant::now();
    let result = extract_tar_gz(&sandbox.archive(), &parent.staging(), &defaults());
    eprintln!("100,001 entries refused in {:?}", started.elapsed());
    let (entry, rejection) = rejection_of(result);
    assert_eq!(
        (entry.as_str(), rejection),
        ("f100000", Rejection::TooManyEntries { limit: 100_000 })
    );
    parent.assert_never_written();
}

#[test]
fn the_prescan_refuses_a_hostile_last_entry_before_anything_is_written() {
    let mut entries: Vec<Raw> = (0..1000)
        .map(|i| Raw::file(format!("src/f{i}"), "x"))
        .collect();
    entries.push(Raw::symlink("escape", "../../etc"));
    let sandbox = Sandbox::new();
    let parent = WatchedParent::new(&sandbox);
    fs::write(sandbox.archive(), gzip(&tar_bytes(&entries))).unwrap();
    let (entry, rejection) = rejection_of(extract_tar_gz(
        &sandbox.archive(),
        &parent.staging(),
        &defaults(),
    ));
    assert_eq!(
        (entry.as_str(), rejection),
        (
            "escape",
            Rejection::SymlinkEscape {
                target: "../../etc".into()
            }
        )
    );
    parent.assert_never_written();
}

#[test]
fn without_the_prescan_the_limits_still_hold_while_writing() {
    let entries: Vec<Raw> = (0..11)
        .map(|i| Raw::file(format!("f{i:02}"), "x"))
        .collect();
    let options = defaults().with_max_entries(10).with_prescan(false);
    let entry = assert_rejected_with(&entries, &options, Rejection::TooManyEntries { limit: 10 });
    assert_eq!(entry, "f10");
    let bomb = [Raw::file("zeros.bin", vec![0u8; 8 * MIB as usize])];
    let sandbox = Sandbox::new();
    let (entry, rejection) = rejection_of(sandbox.extract_bytes(
        &gzip_best(&tar_bytes(&bomb)),
        &defaults().with_prescan(false),
    ));
    assert_eq!(entry, "(archive)");
    assert!(matches!(
        rejection,
        Rejection::CompressionRatio { limit: 200, .. }
    ));
    assert!(!sandbox.staging().exists());
    sandbox.assert_nothing_outside();
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let options = ExtractOptions::default();
    assert_eq!(options.max_entries, 100_000);
    assert_eq!(options.max_total_bytes, 8 * 1024 * MIB);
    assert_eq!(options.max_compression_ratio, 200);
    assert_eq!(options.ratio_threshold_bytes, MIB);
    assert_eq!(options.free_space_margin_percent, 2);
    assert_eq!(options.free_space_margin_min_bytes, 256 * MIB);
    assert!(options.prescan);
    let margin = ExtractOptions::default().with_free_space_margin(150, 0);
    assert_eq!(margin.free_space_margin_percent, 100, "clamped");
}

// ---------------------------------------------------------------------------
// Free space.

/// Free bytes of the disk holding `dir` minus `percent` of its fillable
/// size (used plus available), as the extractor computes it.
fn available(dir: &Path, percent: u64) -> u64 {
    let stats = rustix::fs::statvfs(dir).unwrap();
    let size = (stats.f_blocks - stats.f_bfree + stats.f_bavail) * stats.f_frsize;
    (stats.f_bavail * stats.f_frsize).saturating_sub(size / 100 * percent)
}

fn assert_empty(dir: &Path) {
    assert_eq!(fs::read_dir(dir).unwrap().count(), 0);
}

#[test]
fn a_package_larger_than_the_free_space_is_refused_with_nothing_left_behind() {
    let Some(tmpfs) = Tmpfs::temp("8m") else {
        return;
    };
    let sandbox = Sandbox::new();
    let staging = tmpfs.path().join("staging");
    let options = defaults().with_free_space_margin(10, 0);
    let available = available(tmpfs.path(), 10);
    assert!((7 * MIB..8 * MIB).contains(&available), "{available}");

    // 2 MiB fits.
    fs::write(
        sandbox.archive(),
        gzip(&tar_bytes(&[Raw::file(
            "small.bin",
            random_bytes(2 * MIB as usize, 2),
        )])),
    )
    .unwrap();
    extract_tar_gz(&sandbox.archive(), &staging, &options).unwrap();
    fs::remove_dir_all(&staging).unwrap();

    // 9 MiB does not: refused at the third file, before anything is written.
    let big: Vec<Raw> = (0..3)
        .map(|i| {
            Raw::file(
                format!("part{i}.bin"),
                random_bytes(3 * MIB as usize, i + 3),
            )
        })
        .collect();
    fs::write(sandbox.archive(), gzip(&tar_bytes(&big))).unwrap();
    for prescan in [true, false] {
        let result = extract_tar_gz(
            &sandbox.archive(),
            &staging,
            &options.clone().with_prescan(prescan),
        );
        let (entry, rejection) = rejection_of(result);
        assert_eq!(entry, "part2.bin", "prescan {prescan}");
        assert_eq!(
            rejection,
            Rejection::InsufficientSpace {
                needed: 9 * MIB,
                available
            }
        );
        assert_empty(tmpfs.path());
        sandbox.assert_nothing_outside();
    }

    // The default margin (at least 256 MiB) leaves nothing of 8 MiB usable.
    fs::write(
        sandbox.archive(),
        gzip(&tar_bytes(&[Raw::file(
            "small.bin",
            random_bytes(64 * 1024, 9),
        )])),
    )
    .unwrap();
    let (_, rejection) = rejection_of(extract_tar_gz(&sandbox.archive(), &staging, &defaults()));
    assert_eq!(
        rejection,
        Rejection::InsufficientSpace {
            needed: 64 * 1024,
            available: 0
        }
    );
    assert_empty(tmpfs.path());
}

#[test]
fn directories_count_against_the_free_space() {
    let Some(tmpfs) = Tmpfs::temp("1m") else {
        return;
    };
    let sandbox = Sandbox::new();
    let staging = tmpfs.path().join("staging");
    // 1 MiB is 256 blocks of 4 KiB: 300 empty directories do not fit.
    let entries: Vec<Raw> = (0..300).map(|i| Raw::dir(format!("d{i:03}"))).collect();
    fs::write(sandbox.archive(), gzip(&tar_bytes(&entries))).unwrap();
    let options = defaults().with_free_space_margin(0, 0);
    let (_, rejection) = rejection_of(extract_tar_gz(&sandbox.archive(), &staging, &options));
    assert!(
        matches!(rejection, Rejection::InsufficientSpace { needed, available: MIB } if needed == MIB + 4096),
        "{rejection:?}"
    );
    assert_empty(tmpfs.path());
}

#[test]
fn a_file_is_judged_by_its_own_compressed_bytes_including_its_first_block() {
    // 32 KiB of noise then 3 MiB of zeros: about 90:1 overall, fine. Were
    // the bytes decompressed ahead with the header not counted for the
    // file, it would look like 1000:1.
    let mut content = random_bytes(32 * 1024, 7);
    content.resize(content.len() + 3 * MIB as usize, 0);
    let entries = [Raw::file("data/app.sqlite", &content)];
    let gz = gzip_best(&tar_bytes(&entries));
    let ratio = content.len() / gz.len();
    assert!((50..200).contains(&ratio), "{ratio}:1");
    let report = Sandbox::new().extract_bytes(&gz, &defaults()).unwrap();
    assert_eq!(report.bytes, content.len() as u64);
}
