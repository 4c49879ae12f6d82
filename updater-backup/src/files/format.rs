//! The archive format: a GNU tar stream cut into gzip members, one (or, for
//! large files, several) per entry, concatenated. `gzip -d` and `tar xzf` read
//! it as one ordinary `.tar.gz`; we can also address each entry's members by
//! byte offset, which makes parallel compression, parallel restore and
//! incremental copying possible.
//!
//! Every member has the same fixed 10-byte gzip header (no name, no time), so
//! verification can check every byte of the archive: the header by comparison,
//! the deflate data by decoding, the trailer by CRC-32 and length.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

/// The gzip member header we write: deflate, no flags, mtime 0, no extra flags, OS = Unix.
pub(crate) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

pub(crate) use updater_core::package::tar_header::{BLOCK, padding};
use updater_core::package::tar_header::{TarHeader, TarKind, header_blocks};

/// What an archive entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link: another name of a regular file archived earlier (its
    /// `target` is that file's path). Written as a tar hard-link entry
    /// (type `1`, no data), which `tar xzf` restores as a link.
    HardLink,
}

impl EntryType {
    /// Whether entries of this type are regular files on disk (a file or
    /// another name of one).
    pub fn is_regular(self) -> bool {
        matches!(self, EntryType::File | EntryType::HardLink)
    }
}

/// The tar header fields we store; everything else is zero.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderFields<'a> {
    pub(crate) path: &'a str,
    pub(crate) kind: EntryType,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: i64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) link_target: Option<&'a str>,
}

/// The header block(s) of an entry: GNU long-name/long-link records when a
/// name does not fit in 100 bytes, then the header itself. Deterministic, so
/// verification can rebuild it from the manifest and compare bytes.
pub(crate) fn header_bytes(fields: &HeaderFields<'_>) -> Vec<u8> {
    header_blocks(&TarHeader {
        path: fields.path.as_bytes(),
        kind: match fields.kind {
            EntryType::File => TarKind::File,
            EntryType::Dir => TarKind::Dir,
            EntryType::Symlink => TarKind::Symlink,
            EntryType::HardLink => TarKind::HardLink,
        },
        size: fields.size,
        mode: fields.mode,
        mtime: u64::try_from(fields.mtime).unwrap_or(0),
        uid: u64::from(fields.uid),
        gid: u64::from(fields.gid),
        link_target: fields.link_target.map(str::as_bytes),
    })
}

/// Whether `sample` looks already compressed or random (order-0 entropy
/// above 7.2 bits per byte): such data is stored, not deflated.
pub(crate) fn looks_incompressible(sample: &[u8]) -> bool {
    if sample.len() < 512 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &byte in sample {
        counts[byte as usize] += 1;
    }
    let total = sample.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum();
    entropy > 7.2
}

/// Builds one gzip member from the concatenation of `pieces`.
pub(crate) struct MemberEncoder {
    compress: Compress,
    crc: Crc,
    out: Vec<u8>,
}

impl MemberEncoder {
    /// A member compressed at `level` (0 = stored blocks), with room for `expected` input bytes.
    pub(crate) fn new(level: u32, expected: usize) -> Self {
        let mut out = Vec::with_capacity(expected + expected / 64 + 256);
        out.extend_from_slice(&GZIP_HEADER);
        MemberEncoder {
            compress: Compress::new(Compression::new(level), false),
            crc: Crc::new(),
            out,
        }
    }

    /// Adds bytes.
    pub(crate) fn write(&mut self, input: &[u8]) -> io::Result<()> {
        self.crc.update(input);
        self.run(input, FlushCompress::None)
    }

    /// Adds `count` zero bytes.
    pub(crate) fn write_zeros(&mut self, count: u64) -> io::Result<()> {
        const ZEROS: [u8; 512] = [0; 512];
        let mut left = count;
        while left > 0 {
            let n = left.min(512) as usize;
            self.write(&ZEROS[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Ends the member and returns its bytes.
    pub(crate) fn finish(mut self) -> io::Result<Vec<u8>> {
        self.run(&[], FlushCompress::Finish)?;
        let crc = self.crc.sum();
        let amount = self.crc.amount();
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out.extend_from_slice(&amount.to_le_bytes());
        Ok(self.out)
    }

    fn run(&mut self, input: &[u8], flush: FlushCompress) -> io::Result<()> {
        let mut consumed = 0usize;
        loop {
            if self.out.capacity() - self.out.len() < 1024 {
                self.out.reserve(input.len() - consumed + 64 * 1024);
            }
            let before = self.compress.total_in();
            let status = self
                .compress
                .compress_vec(&input[consumed..], &mut self.out, flush)
                .map_err(io::Error::other)?;
            consumed += (self.compress.total_in() - before) as usize;
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => consumed == input.len(),
            };
            if done {
                return Ok(());
            }
        }
    }
}

/// Reads the decompressed content of a run of consecutive gzip members at
/// `[offset, offset + length)` of an archive, checking each member's header,
/// CRC-32 and length. Reading past the last member returns end of file;
/// damage is an [`io::ErrorKind::InvalidData`] error.
pub(crate) struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    member: Option<(Decompress, Crc)>,
    raw: Crc,
}

impl<'a> MemberReader<'a> {
    /// A reader over `length` bytes of `file` at `offset`.
    pub(crate) fn new(file: &'a File, offset: u64, length: u64) -> Self {
        let capacity = length.clamp(64, 256 * 1024) as usize;
        MemberReader {
            file,
            pos: offset,
            end: offset + length,
            buf: vec![0; capacity],
            start: 0,
            filled: 0,
            member: None,
            raw: Crc::new(),
        }
    }

    /// CRC-32 of the compressed bytes read so far (all of them once at the end):
    /// covers the bits deflate ignores (block padding) and gzip header fields.
    pub(crate) fn raw_crc(&self) -> u32 {
        self.raw.sum()
    }

    /// Whether every input byte was consumed (call after reading to the end).
    pub(crate) fn at_end(&self) -> bool {
        self.start == self.filled && self.pos == self.end && self.member.is_none()
    }

    fn available(&self) -> usize {
        self.filled - self.start
    }

    /// Ensures at least `want` bytes are buffered (fewer at the end of the range).
    fn fill(&mut self, want: usize) -> io::Result<()> {
        if self.available() >= want || self.pos == self.end {
            return Ok(());
        }
        self.buf.copy_within(self.start..self.filled, 0);
        self.filled -= self.start;
        self.start = 0;
        while self.filled < want.max(1) && self.pos < self.end {
            let room = (self.buf.len() - self.filled) as u64;
            let n = room.min(self.end - self.pos) as usize;
            let read = self
                .file
                .read_at(&mut self.buf[self.filled..self.filled + n], self.pos)?;
            if read == 0 {
                return Err(invalid("archive is shorter than its manifest says"));
            }
            self.raw.update(&self.buf[self.filled..self.filled + read]);
            self.filled += read;
            self.pos += read as u64;
        }
        Ok(())
    }
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_string())
}

impl Read for MemberReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.member.is_none() {
                self.fill(GZIP_HEADER.len())?;
                if self.available() == 0 {
                    return Ok(0);
                }
                if self.available() < GZIP_HEADER.len()
                    || self.buf[self.start..self.start + GZIP_HEADER.len()] != GZIP_HEADER
                {
                    return Err(invalid("bad gzip member header"));
                }
                self.start += GZIP_HEADER.len();
                self.member = Some((Decompress::new(false), Crc::new()));
            }
            self.fill(1)?;
            let input_exhausted = self.available() == 0;
            let Some((decompress, crc)) = self.member.as_mut() else {
                continue;
            };
            let before_in = decompress.total_in();
            let before_out = decompress.total_out();
            let status = decompress
                .decompress(
                    &self.buf[self.start..self.filled],
                    out,
                    FlushDecompress::None,
                )
                .map_err(|e| invalid(&format!("bad deflate data: {e}")))?;
            let consumed = (decompress.total_in() - before_in) as usize;
            let produced = (decompress.total_out() - before_out) as usize;
            self.start += consumed;
            crc.update(&out[..produced]);
            if status == Status::StreamEnd {
                let (sum, amount) = (crc.sum(), crc.amount());
                self.member = None;
                self.fill(8)?;
                if self.available() < 8 {
                    return Err(invalid("truncated gzip trailer"));
                }
                let trailer = &self.buf[self.start..self.start + 8];
                let stored_crc =
                    u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
                let stored_len =
                    u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
                if stored_crc != sum || stored_len != amount {
                    return Err(invalid("gzip CRC or length mismatch"));
                }
                self.start += 8;
            }
            if produced > 0 {
                return Ok(produced);
            }
            if consumed == 0 && status != Status::StreamEnd && input_exhausted {
                return Err(invalid("truncated gzip member"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn member(level: u32, data: &[u8]) -> Vec<u8> {
        let mut encoder = MemberEncoder::new(level, data.len());
        encoder.write(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn concatenated_members_decode_as_one_stream_and_every_byte_flip_is_caught() {
        let text = b"function return public private static ".repeat(200);
        let mut archive = member(1, &text);
        archive.extend(member(0, b"stored bytes"));
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&archive).unwrap();
        let mut decoded = Vec::new();
        let mut reader = MemberReader::new(&file, 0, archive.len() as u64);
        reader.read_to_end(&mut decoded).unwrap();
        assert!(reader.at_end());
        let mut crc = Crc::new();
        crc.update(&archive);
        let packed_crc = crc.sum();
        assert_eq!(reader.raw_crc(), packed_crc);
        let mut expected = text.clone();
        expected.extend_from_slice(b"stored bytes");
        assert_eq!(decoded, expected);
        let mut gz = flate2::read::MultiGzDecoder::new(&archive[..]);
        let mut via_flate = Vec::new();
        gz.read_to_end(&mut via_flate).unwrap();
        assert_eq!(via_flate, expected);

        for index in 0..archive.len() {
            let mut damaged = archive.clone();
            damaged[index] ^= 0x40;
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&damaged).unwrap();
            let mut reader = MemberReader::new(&file, 0, damaged.len() as u64);
            let mut out = Vec::new();
            let outcome = reader.read_to_end(&mut out);
            assert!(
                outcome.is_err()
                    || out != expected
                    || !reader.at_end()
                    || reader.raw_crc() != packed_crc,
                "flip at {index} went unnoticed"
            );
        }
    }

    #[test]
    fn random_bytes_look_incompressible_and_text_does_not() {
        let mut state = 0x1234_5678_u32;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        assert!(looks_incompressible(&random));
        assert!(!looks_incompressible(
            &b"public static function ".repeat(200)
        ));
    }

    #[test]
    fn long_names_use_gnu_records_that_tar_reads_back() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let target = "t".repeat(120);
        let mut bytes = header_bytes(&HeaderFields {
            path: &long,
            kind: EntryType::File,
            size: 3,
            mode: 0o640,
            mtime: 1_700_000_000,
            uid: 1000,
            gid: 1000,
            link_target: None,
        });
        bytes.extend_from_slice(b"abc");
        bytes.resize(bytes.len() + padding(3) as usize, 0);
        bytes.extend(header_bytes(&HeaderFields {
            path: "link",
            kind: EntryType::Symlink,
            size: 0,
            mode: 0o777,
            mtime: 1_700_000_000,
            uid: 0,
            gid: 0,
            link_target: Some(&target),
        }));
        bytes.extend([0u8; 1024]);
        let mut archive = tar::Archive::new(&bytes[..]);
        let entries: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(entries[0], (long, None, 0o640));
        assert_eq!(entries[1], ("link".to_string(), Some(target), 0o777));
    }
}
