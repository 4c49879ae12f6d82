//! Restore tests: "verified" means restorable. A checksum proves that a dump
//! is the one that was written, not that it can be replayed — a MySQL view
//! dumped with `DEFINER=root@…` checks out byte for byte and then fails to
//! restore as the application's user. So [`DatabaseBackup`] can restore the
//! dump into a scratch database (`<db>_updater_check_<random>`, created for
//! the purpose and always dropped) with the same credentials and the same
//! procedure as a real restore, and count the backup as verified only when
//! that worked.
//!
//! [`DatabaseBackup`]: super::DatabaseBackup

/// When [`BackupStrategy::verify`](updater_core::backup::BackupStrategy::verify)
/// of a [`DatabaseBackup`](super::DatabaseBackup) restores the dump into a
/// scratch database, on top of checking its checksum and structure.
///
/// ```
/// use updater_backup::database::RestoreTest;
/// assert!(RestoreTest::UpTo(64 << 20).applies_to(10 << 20));
/// assert!(!RestoreTest::UpTo(64 << 20).applies_to(100 << 20));
/// assert!(RestoreTest::Always.applies_to(u64::MAX) && !RestoreTest::Never.applies_to(0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTest {
    /// Every verification restores the dump (the default for SQLite, where it
    /// is a copy and an integrity check).
    Always,
    /// Never: verification checks the checksum and the dump's structure only.
    Never,
    /// Only dumps of at most this many bytes (as stored, i.e. compressed).
    /// The default for servers is `UpTo(64 MiB)`.
    UpTo(u64),
}

impl RestoreTest {
    /// The default for database servers: dumps up to 64 MiB.
    pub const SERVER_DEFAULT: RestoreTest = RestoreTest::UpTo(64 << 20);

    /// Whether a dump of `dump_size` bytes is restore-tested.
    pub fn applies_to(self, dump_size: u64) -> bool {
        match self {
            RestoreTest::Always => true,
            RestoreTest::Never => false,
            RestoreTest::UpTo(limit) => dump_size <= limit,
        }
    }
}

/// The name of a scratch database for `database`:
/// `<database>_updater_check_<8 hex digits>`, the database part shortened
/// (on a character boundary) so the whole fits in 63 bytes. Only the
/// server engines restore into a scratch database.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn scratch_name(database: &str) -> crate::error::Result<String> {
    use std::io::Read;

    use crate::error::BackupError;

    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| BackupError::io("read", "/dev/urandom", e))?;
    let suffix = format!("_updater_check_{}", hex::encode(bytes));
    let mut cut = 63usize.saturating_sub(suffix.len()).min(database.len());
    while !database.is_char_boundary(cut) {
        cut -= 1;
    }
    Ok(format!("{}{suffix}", &database[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    fn scratch_names_are_fresh_and_fit_identifier_limits() {
        let a = scratch_name("app").unwrap();
        let b = scratch_name("app").unwrap();
        assert!(
            a.starts_with("app_updater_check_") && a.len() == 3 + 15 + 8,
            "{a}"
        );
        assert_ne!(a, b);
        let long = scratch_name(&"é".repeat(40)).unwrap();
        assert!(
            long.len() <= 63 && long.ends_with(&long[long.len() - 8..]),
            "{long}"
        );
    }
}
