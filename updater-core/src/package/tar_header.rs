//! Deterministic tar header blocks, the one way both archive writers of the
//! workspace write them: release packages (`updater release build`) and
//! `updater-backup`'s archives. Verification rebuilds a header from an index
//! or a manifest and compares bytes, so there must be exactly one writer.
//!
//! A header is a GNU header with the given owner, mode (masked to 0o7777)
//! and modification time and nothing else (no owner names, no device
//! numbers); names or link targets over 100 bytes are preceded by GNU
//! long-name (`L`) or long-link (`K`) records.
//!
//! ```
//! use updater_core::package::tar_header::{BLOCK, TarHeader, TarKind, header_blocks, padding};
//! let header = header_blocks(&TarHeader {
//!     path: b"public/index.php",
//!     kind: TarKind::File,
//!     size: 12,
//!     mode: 0o644,
//!     mtime: 0,
//!     uid: 0,
//!     gid: 0,
//!     link_target: None,
//! });
//! assert_eq!(header.len() as u64, BLOCK);
//! assert_eq!(padding(12), BLOCK - 12);
//! ```

/// The tar block size.
pub const BLOCK: u64 = 512;

/// What a header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarKind {
    /// A regular file (the only kind whose size is written).
    File,
    /// A directory (its name gets a trailing `/`).
    Dir,
    /// A symbolic link to `link_target`.
    Symlink,
    /// Another name of the file `link_target`.
    HardLink,
    /// A named pipe.
    Fifo,
    /// A character device.
    Char,
    /// A block device.
    Block,
}

/// The fields a header holds; everything else is zero.
#[derive(Debug, Clone, Copy)]
pub struct TarHeader<'a> {
    /// The entry's path inside the archive, without a trailing `/`.
    pub path: &'a [u8],
    /// Its kind.
    pub kind: TarKind,
    /// The size of a file's data (ignored for other kinds: written as 0).
    pub size: u64,
    /// The permission bits (masked to 0o7777).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// A link's target.
    pub link_target: Option<&'a [u8]>,
}

/// The header block(s) of one entry: the long-name and long-link records it
/// needs, then the header.
pub fn header_blocks(fields: &TarHeader<'_>) -> Vec<u8> {
    let mut name = fields.path.to_vec();
    if fields.kind == TarKind::Dir {
        name.push(b'/');
    }
    let mut out = Vec::with_capacity(512);
    if name.len() > 100 {
        long_record(&mut out, b'L', &name);
    }
    let target = fields.link_target.unwrap_or_default();
    if target.len() > 100 {
        long_record(&mut out, b'K', target);
    }
    let mut header = tar::Header::new_gnu();
    {
        let old = header.as_old_mut();
        let n = name.len().min(100);
        old.name[..n].copy_from_slice(&name[..n]);
        let t = target.len().min(100);
        old.linkname[..t].copy_from_slice(&target[..t]);
    }
    header.set_mode(fields.mode & 0o7777);
    header.set_uid(fields.uid);
    header.set_gid(fields.gid);
    header.set_mtime(fields.mtime);
    let entry_type = match fields.kind {
        TarKind::File => tar::EntryType::Regular,
        TarKind::Dir => tar::EntryType::Directory,
        TarKind::Symlink => tar::EntryType::Symlink,
        TarKind::HardLink => tar::EntryType::Link,
        TarKind::Fifo => tar::EntryType::Fifo,
        TarKind::Char => tar::EntryType::Char,
        TarKind::Block => tar::EntryType::Block,
    };
    header.set_entry_type(entry_type);
    header.set_size(if fields.kind == TarKind::File {
        fields.size
    } else {
        0
    });
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out
}

/// Zero bytes after `size` bytes of entry data, up to the next block.
pub fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn long_record(out: &mut Vec<u8>, kind: u8, name: &[u8]) {
    let mut header = tar::Header::new_gnu();
    let label = b"././@LongLink";
    header.as_old_mut().name[..label.len()].copy_from_slice(label);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    let len = name.len() as u64 + 1;
    header.set_size(len);
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(name);
    out.push(0);
    out.resize(out.len() + padding(len) as usize, 0);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn long_names_and_link_targets_read_back_through_the_tar_crate() {
        let path = "a/".repeat(80) + "file";
        let target = "t/".repeat(70) + "target";
        let mut archive = header_blocks(&TarHeader {
            path: path.as_bytes(),
            kind: TarKind::Symlink,
            size: 99,
            mode: 0o4777,
            mtime: 7,
            uid: 1000,
            gid: 100,
            link_target: Some(target.as_bytes()),
        });
        archive.extend_from_slice(&[0u8; 1024]);
        let mut reader = tar::Archive::new(archive.as_slice());
        let entry = reader.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str().unwrap(), path);
        assert_eq!(
            entry.link_name().unwrap().unwrap().to_str().unwrap(),
            target
        );
        let header = entry.header();
        assert_eq!(header.size().unwrap(), 0, "only files have a size");
        assert_eq!(header.mode().unwrap(), 0o4777);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (1000, 100));
        assert_eq!(header.mtime().unwrap(), 7);
    }

    #[test]
    fn a_directory_gets_its_slash_and_padding_fills_the_block() {
        let header = header_blocks(&TarHeader {
            path: b"storage",
            kind: TarKind::Dir,
            size: 5,
            mode: 0o755,
            mtime: 0,
            uid: 0,
            gid: 0,
            link_target: None,
        });
        assert_eq!(&header[..8], b"storage/");
        assert_eq!((padding(0), padding(1), padding(512)), (0, 511, 0));
    }
}
