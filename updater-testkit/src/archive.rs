//! tar.gz builders: from a directory, or from a list of files in memory.

use std::fs;
use std::path::Path;

/// Packs `dir` into a `.tar.gz` at `archive`, entries prefixed `./`, like
/// `tar czf archive -C dir .` (symlinks stored as links).
pub fn pack(dir: &Path, archive: &Path) {
    let file = fs::File::create(archive).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap().finish().unwrap();
}

/// A `.tar.gz` in memory holding `files` (path, bytes), mode 0644.
pub fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}
