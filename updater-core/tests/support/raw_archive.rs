//! Hand-made tar.gz archives for the extraction tests: headers written byte
//! by byte (so `..`, absolute paths, devices and lying pax records can be
//! built), and a sandbox that checks nothing is written beside staging.
//! Included with `#[path]` by each test file that needs it.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};
use updater_core::Error;
use updater_core::error::Rejection;
use updater_core::package::{ExtractOptions, ExtractionReport, extract_tar_gz};

// ---------------------------------------------------------------------------
// Raw archive building: headers are written byte by byte, so the tar crate's
// own path checks (which refuse `..` and absolute paths) do not get in the way.

/// One entry of a hand-made archive.
#[derive(Debug, Clone)]
pub struct Raw {
    pub path: Vec<u8>,
    pub kind: EntryType,
    pub mode: u32,
    pub data: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub mtime: u64,
    /// Extra pax records written in an `x` header before the entry.
    pub pax: Vec<(String, Vec<u8>)>,
}

impl Raw {
    pub fn new(path: impl AsRef<[u8]>, kind: EntryType) -> Self {
        Raw {
            path: path.as_ref().to_vec(),
            kind,
            mode: if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            },
            data: Vec::new(),
            link: None,
            mtime: 1_700_000_000,
            pax: Vec::new(),
        }
    }
    pub fn file(path: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Self {
        let mut raw = Raw::new(path, EntryType::Regular);
        raw.data = data.as_ref().to_vec();
        raw
    }
    pub fn dir(path: impl AsRef<[u8]>) -> Self {
        Raw::new(path, EntryType::Directory)
    }
    pub fn symlink(path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        let mut raw = Raw::new(path, EntryType::Symlink);
        raw.link = Some(target.as_ref().to_vec());
        raw.mode = 0o777;
        raw
    }
    pub fn hardlink(path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        let mut raw = Raw::new(path, EntryType::Link);
        raw.link = Some(target.as_ref().to_vec());
        raw
    }
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    pub fn pax(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.pax.push((key.to_string(), value.as_ref().to_vec()));
        self
    }
}

pub fn header(
    name: &[u8],
    kind: EntryType,
    size: u64,
    mode: u32,
    mtime: u64,
    link: &[u8],
) -> Header {
    let mut header = Header::new_gnu();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_cksum();
    header
}

pub fn push_block(out: &mut Vec<u8>, header: &Header, data: &[u8]) {
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// The uncompressed tar stream of `entries`; names of 100 bytes or more go
/// into GNU long-name headers.
pub fn tar_bytes(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        if !entry.pax.is_empty() {
            let mut records = Vec::new();
            for (key, value) in &entry.pax {
                let body_len = key.len() + value.len() + 3;
                let mut len = body_len + body_len.to_string().len();
                if len.to_string().len() + body_len != len {
                    len += 1;
                }
                records.extend_from_slice(format!("{len} {key}=").as_bytes());
                records.extend_from_slice(value);
                records.push(b'\n');
            }
            let h = header(
                b"PaxHeaders/x",
                EntryType::XHeader,
                records.len() as u64,
                0o644,
                0,
                b"",
            );
            push_block(&mut out, &h, &records);
        }
        let name: &[u8] = if entry.path.len() >= 100 {
            let mut long = entry.path.clone();
            long.push(0);
            let h = header(
                b"././@LongLink",
                EntryType::GNULongName,
                long.len() as u64,
                0o644,
                0,
                b"",
            );
            push_block(&mut out, &h, &long);
            &entry.path[..99]
        } else {
            &entry.path
        };
        let h = header(
            name,
            entry.kind,
            entry.data.len() as u64,
            entry.mode,
            entry.mtime,
            entry.link.as_deref().unwrap_or_default(),
        );
        push_block(&mut out, &h, &entry.data);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A temporary directory holding the archive, the staging path and a sentinel
/// directory beside staging that must stay empty.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        Sandbox { dir }
    }
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn archive(&self) -> PathBuf {
        self.root().join("package.tar.gz")
    }
    /// Packs `source` into [`archive`](Self::archive) with GNU `tar czf`
    /// (the archives real publishers make); `false` when tar is missing
    /// (skipped, or a failure under `CI=true`).
    pub fn pack_with_gnu_tar(&self, source: &Path) -> bool {
        let status = match std::process::Command::new("tar")
            .arg("czf")
            .arg(self.archive())
            .arg("-C")
            .arg(source)
            .arg(".")
            .status()
        {
            Ok(status) => status,
            Err(e) => {
                updater_testkit::services::skip(&format!("GNU tar is not available ({e})"));
                return false;
            }
        };
        assert!(status.success(), "tar czf {}", source.display());
        true
    }
    pub fn staging(&self) -> PathBuf {
        self.root().join("staging")
    }
    pub fn outside(&self) -> PathBuf {
        self.root().join("outside")
    }
    pub fn extract_bytes(
        &self,
        gz: &[u8],
        options: &ExtractOptions,
    ) -> updater_core::Result<ExtractionReport> {
        fs::write(self.archive(), gz).unwrap();
        extract_tar_gz(&self.archive(), &self.staging(), options)
    }
    pub fn extract(
        &self,
        entries: &[Raw],
        options: &ExtractOptions,
    ) -> updater_core::Result<ExtractionReport> {
        self.extract_bytes(&gzip(&tar_bytes(entries)), options)
    }
    /// Nothing but the archive, the empty sentinel and (if kept) staging.
    pub fn assert_nothing_outside(&self) {
        assert_eq!(
            fs::read_dir(self.outside()).unwrap().count(),
            0,
            "sentinel directory was written"
        );
        let mut names: Vec<String> = fs::read_dir(self.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "staging")
            .collect();
        names.sort();
        assert_eq!(names, ["outside", "package.tar.gz"]);
    }
}

/// Extracts `entries` and asserts the exact rejection, that staging is gone
/// and that nothing was written outside it.
pub fn assert_rejected_with(
    entries: &[Raw],
    options: &ExtractOptions,
    expected: Rejection,
) -> String {
    let sandbox = Sandbox::new();
    let result = sandbox.extract(entries, options);
    assert_rejected(&sandbox, result, expected)
}

pub fn assert_rejected(
    sandbox: &Sandbox,
    result: updater_core::Result<ExtractionReport>,
    expected: Rejection,
) -> String {
    match result {
        Err(Error::PackageRejected {
            package,
            entry,
            rejection,
        }) => {
            assert_eq!(rejection, expected, "entry {entry:?}");
            assert_eq!(package, sandbox.archive());
            assert!(!sandbox.staging().exists(), "staging directory left behind");
            sandbox.assert_nothing_outside();
            entry
        }
        other => panic!("expected rejection {expected:?}, got {other:?}"),
    }
}

pub fn defaults() -> ExtractOptions {
    ExtractOptions::default()
}
