//! Fuzzes `extract_tar_gz` and `list_tar_gz`: whatever the bytes, extraction
//! either fails with the staging directory removed, or succeeds with every
//! path inside it and a file list equal to the tree it wrote; nothing is
//! ever written beside it; and listing (which writes nothing) reaches the
//! same verdict, with the same list or the same rejection.
#![no_main]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use updater_core::Error;
use updater_core::package::{ExtractOptions, extract_tar_gz, list_tar_gz};
use updater_core::tree::{FileEntry, FileList};

fuzz_target!(|data: &[u8]| {
    // Most inputs are not gzip: wrap them so the fuzzer explores tar headers.
    let archive_bytes = if data.starts_with(&[0x1f, 0x8b]) {
        data.to_vec()
    } else {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("gzip into memory");
        encoder.finish().expect("gzip into memory")
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let sentinel = dir.path().join("outside");
    fs::create_dir(&sentinel).expect("sentinel directory");
    let archive = dir.path().join("package.tar.gz");
    fs::write(&archive, &archive_bytes).expect("write archive");
    let staging = dir.path().join("staging");
    let options = ExtractOptions::default()
        .with_max_entries(1_000)
        .with_max_total_bytes(16 * 1024 * 1024)
        .with_free_space_margin(0, 0)
        .with_reserved_name(".updater");

    let listed = list_tar_gz(&archive, &options);
    let result = extract_tar_gz(&archive, &staging, &options);
    match (&listed, &result) {
        (Ok(list), Ok(report)) => assert_eq!(list, &report.list, "listing and extraction differ"),
        (
            Err(Error::PackageRejected {
                entry: a,
                rejection: x,
                ..
            }),
            Err(Error::PackageRejected {
                entry: b,
                rejection: y,
                ..
            }),
        ) => assert_eq!((a, x), (b, y), "listing and extraction refuse differently"),
        _ => panic!("listing gave {listed:?} but extraction {result:?}"),
    }

    assert_eq!(
        fs::read_dir(&sentinel).expect("list sentinel").count(),
        0,
        "wrote into the sibling directory"
    );
    let mut beside: Vec<String> = fs::read_dir(dir.path())
        .expect("list temporary directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    match result {
        Err(_) => {
            assert!(!staging.exists(), "staging left behind after {result:?}");
            assert_eq!(beside, ["outside", "package.tar.gz"]);
        }
        Ok(report) => {
            assert_eq!(beside, ["outside", "package.tar.gz", "staging"]);
            let on_disk: FileList = FileList::from_dir(&staging)
                .expect("list staging")
                .iter()
                .map(|(path, entry)| {
                    let entry = FileEntry {
                        stamp: None,
                        ..entry.clone()
                    };
                    (path.to_string(), entry)
                })
                .collect();
            assert_eq!(report.list, on_disk, "the report does not list the tree");
            let root = staging.canonicalize().expect("canonical staging");
            assert!(!root.join(".updater").exists(), "reserved name created");
            let mut paths = Vec::new();
            walk(&root, &mut paths);
            for path in paths {
                if let Ok(real) = path.canonicalize() {
                    assert!(
                        real.starts_with(&root),
                        "{} escapes to {}",
                        path.display(),
                        real.display()
                    );
                }
            }
        }
    }
});

/// Every path below `dir`, without following symlinks.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("list staging") {
        let path = entry.expect("staging entry").path();
        let is_dir = fs::symlink_metadata(&path).expect("stat").is_dir();
        out.push(path.clone());
        if is_dir {
            walk(&path, out);
        }
    }
}
