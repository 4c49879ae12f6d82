//! tar.gz builders: from a directory, or from a list of files in memory.

use std::fs;
use std::path::Path;

/// Packs `dir` into a `.tar.gz` at `archive`, entries prefixed `./`, like
/// `tar czf archive -C dir .` (symlinks stored as links).
pub fn pack(dir: &Path, archive: &Path) {
    pack_with(dir, &[], archive);
}

/// [`pack`], then `extra` files (path, bytes; mode 0644) appended after the
/// tree: a release made of a shared tree plus its own `VERSION`, without
/// writing into the tree.
pub fn pack_with(dir: &Path, extra: &[(&str, &[u8])], archive: &Path) {
    let file =
        fs::File::create(archive).unwrap_or_else(|e| panic!("create {}: {e}", archive.display()));
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    for (path, bytes) in extra {
        builder
            .append_data(&mut file_header(bytes.len()), path, *bytes)
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

/// The header of a regular file of `size` bytes: GNU format, mode 0644, a
/// fixed modification time (archives built twice are identical).
fn file_header(size: usize) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    header
}

/// A `.tar.gz` in memory holding `files` (path, bytes), mode 0644.
pub fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, bytes) in files {
        builder
            .append_data(&mut file_header(bytes.len()), path, bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}
