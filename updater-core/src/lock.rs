//! One update at a time: an OS file lock (`flock`) on `<state>/lock`, plus a
//! record of who holds it (owner, pid, host, since, expiry) inside the file.
//!
//! The kernel releases the lock when its process dies, so a crashed updater
//! never blocks the next one forever. A lock *record* left by a dead process
//! is detected when the lock is taken: it is reported (returned as
//! [`LockAcquired::stale`] and logged), never silently stolen, and never
//! deleted by a different failing run. The lock file itself is never
//! removed — removing a locked file lets two processes lock two different
//! inodes — only its record is cleared by the holder on release.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who holds (or held) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockRecord {
    /// What took it (`cli apply`, `schedule`, `web`).
    pub owner: String,
    /// The process id.
    pub pid: u32,
    /// The host name.
    pub host: String,
    /// When it was taken.
    pub since: DateTime<Utc>,
}

impl std::fmt::Display for LockRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {} on {}, since {})",
            self.owner,
            self.pid,
            self.host,
            self.since.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// A held update lock; released when dropped.
#[derive(Debug)]
pub(crate) struct UpdateLock {
    file: File,
    path: PathBuf,
}

/// The result of [`UpdateLock::acquire`].
#[derive(Debug)]
pub(crate) struct LockAcquired {
    /// The lock, held until dropped.
    pub(crate) lock: UpdateLock,
    /// The record of a previous holder that died without releasing it.
    pub(crate) stale: Option<LockRecord>,
}

impl std::ops::Deref for LockAcquired {
    type Target = UpdateLock;
    fn deref(&self) -> &UpdateLock {
        &self.lock
    }
}

/// The host name, from the kernel.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

impl LockRecord {
    /// Whether its process may still run: on another host we cannot tell
    /// (assumed so), on this one its `/proc` entry exists.
    fn is_live(&self) -> bool {
        self.host != host_name() || Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn read_record(file: &mut File) -> Option<LockRecord> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl UpdateLock {
    /// Takes the lock at `path` for `owner`, or fails with [`Error::Locked`]
    /// naming the live holder. Creates the file (0600) if needed.
    pub(crate) fn acquire(path: &Path, owner: &str) -> Result<LockAcquired> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        // A holder writes its record right after taking the lock, and a
        // process forked by a thread of ours holds our lock until it execs:
        // a lock held *without* a record is given a moment before we give up,
        // so the loser of a race always names the winner.
        let patience = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    // A record whose process is gone is the previous
                    // holder's, read before the winner replaced it.
                    let record = read_record(&mut file).filter(LockRecord::is_live);
                    if record.is_some() || std::time::Instant::now() >= patience {
                        return Err(Error::Locked {
                            path: path.to_path_buf(),
                            holder: record.map(|r| r.to_string()).unwrap_or_else(|| {
                                "a process that wrote no record (it may be exiting)".to_string()
                            }),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
            }
        }
        let stale = read_record(&mut file);
        if let Some(stale) = &stale {
            tracing::info!(lock = %path.display(), previous = %stale, "took over the update lock of a process that died without releasing it");
        }
        let record = LockRecord {
            owner: owner.to_string(),
            pid: std::process::id(),
            host: host_name(),
            since: Utc::now(),
        };
        let bytes =
            serde_json::to_vec(&record).map_err(|e| Error::other("serialise lock record", e))?;
        file.set_len(0)
            .map_err(|e| Error::io("truncate lock file", path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("seek lock file", path, e))?;
        match file.write_all(&bytes).and_then(|()| file.sync_data()) {
            Ok(()) => {}
            // The record only names the holder; the kernel lock is what
            // excludes. On a disk full to the last byte, recovery must still
            // run (it is what frees space), so it goes on without a record;
            // a contender then reports an unknown holder.
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                tracing::warn!(lock = %path.display(), "disk full: holding the update lock without writing who holds it");
                let _ = file.set_len(0);
            }
            Err(e) => return Err(Error::io("write lock file", path, e)),
        }
        Ok(LockAcquired {
            lock: UpdateLock {
                file,
                path: path.to_path_buf(),
            },
            stale,
        })
    }

    /// Who holds the lock at `path` now, if anyone, without touching the
    /// lock (probing it with a shared flock would make a concurrent
    /// `acquire` fail). Read from the record: a record whose process is gone
    /// from this host is stale, not a holder. Only [`acquire`](Self::acquire)
    /// decides; this is for status displays.
    pub(crate) fn holder(path: &Path) -> Result<Option<LockRecord>> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open lock file", path, e)),
        };
        Ok(read_record(&mut file).filter(LockRecord::is_live))
    }

    /// Clears a stale lock record for an operator (`updater unlock --force`).
    /// Refuses while a live process holds the lock, naming it. Returns the
    /// record that was cleared.
    pub(crate) fn force_clear(path: &Path) -> Result<Option<LockRecord>> {
        if !crate::durable::exists(path) {
            return Ok(None);
        }
        let acquired = Self::acquire(path, "force-unlock")?;
        Ok(acquired.stale)
    }
}

impl Drop for UpdateLock {
    fn drop(&mut self) {
        // Clear our record while still holding the lock; the kernel drops the lock with the fd.
        if let Err(e) = self.file.set_len(0).and_then(|()| self.file.sync_data()) {
            tracing::warn!(lock = %self.path.display(), error = %e, "could not clear the lock record");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let _held = UpdateLock::acquire(&path, "first").unwrap();
        let err = UpdateLock::acquire(&path, "second")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("first") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        assert_eq!(UpdateLock::holder(&path).unwrap().unwrap().owner, "first");
        assert!(UpdateLock::force_clear(&path).is_err());
    }

    #[test]
    fn the_loser_of_a_race_always_names_the_winner() {
        for round in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("lock");
            let start = std::sync::Barrier::new(2);
            let results: Vec<(String, std::result::Result<(), String>)> =
                std::thread::scope(|scope| {
                    let contenders: Vec<_> = ["left", "right"]
                        .into_iter()
                        .map(|owner| {
                            let (path, start) = (&path, &start);
                            scope.spawn(move || {
                                start.wait();
                                let outcome = UpdateLock::acquire(path, owner)
                                    .map(|held| {
                                        std::thread::sleep(std::time::Duration::from_millis(30));
                                        drop(held);
                                    })
                                    .map_err(|e| e.to_string());
                                (owner.to_string(), outcome)
                            })
                        })
                        .collect();
                    contenders.into_iter().map(|c| c.join().unwrap()).collect()
                });
            let winners: Vec<&String> = results
                .iter()
                .filter(|(_, outcome)| outcome.is_ok())
                .map(|(owner, _)| owner)
                .collect();
            for (owner, outcome) in &results {
                if let Err(error) = outcome {
                    assert_eq!(winners.len(), 1, "round {round}: {results:?}");
                    assert!(
                        error.contains(&format!("{} (pid", winners[0])),
                        "round {round}: {owner} lost without naming {}: {error}",
                        winners[0]
                    );
                }
            }
        }
    }

    #[test]
    fn a_dead_holders_record_is_not_taken_for_the_winner_that_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let dead = LockRecord {
            owner: "crashed apply".into(),
            pid: 999_999,
            host: host_name(),
            since: Utc::now(),
        };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        // The winner holds the kernel lock and has not yet replaced the
        // record; it does 200 ms later.
        let winner = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        winner.try_lock().unwrap();
        let live = LockRecord {
            owner: "winner".into(),
            pid: std::process::id(),
            host: host_name(),
            since: Utc::now(),
        };
        let error = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(200));
                std::fs::write(&path, serde_json::to_vec(&live).unwrap()).unwrap();
            });
            UpdateLock::acquire(&path, "second")
                .unwrap_err()
                .to_string()
        });
        assert!(error.contains("winner"), "{error}");
        assert!(!error.contains("crashed apply"), "{error}");
    }

    #[test]
    fn a_record_left_by_a_dead_process_is_reported_as_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let dead = LockRecord {
            owner: "crashed apply".into(),
            pid: 999_999,
            host: host_name(),
            since: Utc::now(),
        };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        assert!(
            UpdateLock::holder(&path).unwrap().is_none(),
            "a record of a process gone from this host is no holder"
        );
        let acquired = UpdateLock::acquire(&path, "next").unwrap();
        assert_eq!(acquired.stale.as_ref(), Some(&dead));
        drop(acquired);
        assert!(
            UpdateLock::acquire(&path, "after").unwrap().stale.is_none(),
            "released cleanly"
        );
    }
}
