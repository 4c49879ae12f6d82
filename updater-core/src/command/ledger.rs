//! The child ledger: a directory of records, one per running child process,
//! so that children never outlive the updater that started them.
//!
//! Every command run with a ledger ([`Process::with_ledger`],
//! [`ShellCommand::with_ledger`]) first writes a record (temp + fsync +
//! rename) holding a random token, its step, its program, the updater's pid
//! and start time; the child is then started with `UPDATER_CHILD_TOKEN=<token>`
//! in its environment, which every descendant inherits, and the record gets
//! the child's pid (= its process group) and start time. When the child and
//! its whole process group are gone, the record is removed.
//!
//! A record that is still there when its owner is no longer running means
//! the updater died (SIGKILL, OOM, power loss) while the child ran.
//! [`ChildLedger::stop_orphans`] finds what is left of such a child — every
//! live process whose environment holds the token, and every member of the
//! recorded process group that started after the child — kills it with
//! SIGKILL and waits until none remains, so that recovery never rolls files
//! back or restores a snapshot underneath a migration that is still running.
//!
//! Pid reuse is ruled out by start times (clock ticks since boot, from
//! `/proc/<pid>/stat`): an owner counts as alive only if the process with its
//! pid started when the owner did; a recorded process group is used only if
//! its leader is gone or is still the recorded child; each process is
//! re-identified through a pidfd before the signal is sent. Records of
//! another machine, or of another PID namespace of this boot, are left alone.
//!
//! Limits: a descendant that both clears its environment (`env -i`) and
//! leaves the process group (`setsid`) is not found; a process whose
//! environment cannot be read (another user's) is found only through the
//! process group. `PR_SET_PDEATHSIG` would let the kernel kill the direct
//! child when the updater dies, but std can only set it in `pre_exec`, which
//! needs `unsafe` (forbidden in this workspace), and it would not reach
//! grandchildren anyway; the ledger covers both.
//!
//! [`Process::with_ledger`]: super::Process::with_ledger
//! [`ShellCommand::with_ledger`]: super::ShellCommand::with_ledger

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::procfs;
use crate::durable;
use crate::error::{Error, Result};

/// The environment variable that carries a child's ledger token to it and
/// to all its descendants.
pub const CHILD_TOKEN_ENV: &str = "UPDATER_CHILD_TOKEN";

/// How long a finished command waits for its process group to disappear
/// before it leaves its record for [`ChildLedger::stop_orphans`].
const GROUP_EXIT_WAIT: Duration = Duration::from_secs(2);

/// A directory (e.g. `<state>/children/`) of records of running child processes.
///
/// ```
/// use std::time::Duration;
/// use updater_core::command::{ChildLedger, ShellCommand};
///
/// let state = tempfile::tempdir()?;
/// let ledger = ChildLedger::new(state.path().join("children"));
/// // At start (under the update lock, before recovery touches anything):
/// let stopped = ledger.stop_orphans(Duration::from_secs(10))?;
/// assert!(stopped.is_empty());
/// // Commands run with the ledger leave no record once they are done.
/// let out = ShellCommand::new("echo \"$UPDATER_CHILD_TOKEN\" | wc -c")
///     .with_ledger(ledger.clone())
///     .run("example", None)?;
/// assert_eq!(out.trim(), "33"); // 32 hex digits and a newline
/// assert!(ledger.records()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildLedger {
    dir: PathBuf,
}

/// A process identified across pid reuse: its pid and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// The process id.
    pub pid: u32,
    /// When it started, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
    pub start_ticks: u64,
}

/// One record of the ledger: a child process started by an updater.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRecord {
    /// The random token in the child's environment ([`CHILD_TOKEN_ENV`]).
    pub token: String,
    /// The step it runs for (`migrate`, `hook after_swap`...).
    pub step: String,
    /// How the command is named in errors: its role when it has one, and
    /// its command line with secrets replaced by `***`
    /// ([`ShellCommand::describe`](super::ShellCommand::describe)).
    pub program: String,
    /// When the record was written.
    pub started_at: DateTime<Utc>,
    /// The machine it runs on.
    pub host: String,
    /// The boot it runs in (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// The PID namespace of the owner (`pid:[...]`).
    pub pid_namespace: String,
    /// The updater process that started it.
    pub owner: ProcessIdentity,
    /// The child (also its process group id), once it was started.
    pub child: Option<ProcessIdentity>,
}

/// A child of a dead updater that [`ChildLedger::stop_orphans`] dealt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedChild {
    /// Its record (now removed).
    pub record: ChildRecord,
    /// The pids that were still running and were killed (empty when the
    /// child had already finished).
    pub killed: Vec<u32>,
}

/// Whose record it is.
enum Owner {
    /// A running updater: leave it alone.
    Alive,
    /// Dead; `same_boot` says whether its children could still run.
    Dead { same_boot: bool },
    /// Recorded on another machine or in another PID namespace.
    Foreign(&'static str),
}

impl ChildLedger {
    /// The ledger in `dir` (created with mode 0700 when the first record is written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ChildLedger { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record, in no particular order (the running children of live
    /// updaters and the orphans of dead ones).
    pub fn records(&self) -> Result<Vec<ChildRecord>> {
        self.record_files()?
            .into_iter()
            .map(|path| read_record(&path))
            .collect()
    }

    /// Stops what is left of the children of updaters that died: for every
    /// record whose owner is no longer running, SIGKILLs every live process
    /// holding its token or belonging to its process group (see the module
    /// docs for how pid reuse is ruled out), waits until none remains, and
    /// removes the record. Records of running updaters are left alone.
    ///
    /// Call it at the start of recovery, under the update lock, before any
    /// file is rolled back or any snapshot restored.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] naming the step, program and pids when processes
    /// survive SIGKILL for `timeout` (stuck in uninterruptible I/O): the
    /// record is kept and recovery must not go on. [`Error::Io`] or
    /// [`Error::InvalidInput`] when a record cannot be read or removed.
    pub fn stop_orphans(&self, timeout: Duration) -> Result<Vec<StoppedChild>> {
        let mut stopped = Vec::new();
        for path in self.record_files()? {
            let record = match read_record(&path) {
                Ok(record) => record,
                // Removed by its owner meanwhile.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let killed = match owner_of(&record) {
                Owner::Alive => continue,
                Owner::Foreign(why) => {
                    tracing::warn!(record = %path.display(), step = %record.step, "child record of {why} left alone");
                    continue;
                }
                Owner::Dead { same_boot: false } => Vec::new(),
                Owner::Dead { same_boot: true } => stop_record(&record, timeout)?,
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &path, e)),
            }
            if killed.is_empty() {
                tracing::info!(step = %record.step, program = %record.program, "removed the record of a finished child of a dead updater");
            } else {
                tracing::warn!(step = %record.step, program = %record.program, pids = ?killed, "killed the orphaned children of a dead updater");
            }
            stopped.push(StoppedChild { record, killed });
        }
        Ok(stopped)
    }

    /// Writes the record of a child about to be started for `step`.
    pub(crate) fn register(&self, step: &str, program: &str) -> Result<LedgerEntry> {
        let me = procfs::stat(std::process::id()).ok_or_else(|| {
            Error::precondition(
                "child ledger",
                "/proc is not readable: cannot record child processes",
            )
        })?;
        durable::create_dir_all(&self.dir)?;
        let token = random_token()?;
        let record = ChildRecord {
            token: token.clone(),
            step: step.to_string(),
            program: program.to_string(),
            started_at: Utc::now(),
            host: procfs::host_name(),
            boot_id: procfs::boot_id(),
            pid_namespace: procfs::pid_namespace(),
            owner: ProcessIdentity {
                pid: me.pid,
                start_ticks: me.start,
            },
            child: None,
        };
        let path = self.dir.join(format!("{token}.json"));
        let entry = LedgerEntry {
            path,
            record,
            finished: false,
        };
        // Durable before the child exists: the record must outlive us.
        durable::write_atomic(&entry.path, &entry.bytes()?)?;
        Ok(entry)
    }

    fn record_files(&self) -> Result<Vec<PathBuf>> {
        let read = match fs::read_dir(&self.dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &self.dir, e)),
        };
        let mut files = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let is_record = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .is_some_and(is_token);
            if is_record {
                files.push(entry.path());
            }
        }
        Ok(files)
    }
}

/// The record of one running child, held by the runner while it runs.
#[derive(Debug)]
pub(crate) struct LedgerEntry {
    path: PathBuf,
    record: ChildRecord,
    finished: bool,
}

impl LedgerEntry {
    /// The environment entry to give the child.
    pub(crate) fn token(&self) -> &str {
        &self.record.token
    }

    /// Records the started child's pid (its process group) and start time.
    /// Not synced: only a power loss could lose it, and then no child survives.
    pub(crate) fn started(&mut self, pid: u32) -> Result<()> {
        let Some(stat) = procfs::stat(pid) else {
            // Gone already (and reaped by nobody but us): nothing to record.
            return Ok(());
        };
        self.record.child = Some(ProcessIdentity {
            pid,
            start_ticks: stat.start,
        });
        durable::write_atomic_unsynced(&self.path, &self.bytes()?)
    }

    /// Removes the record once the process group `pgid` has no live member
    /// (killing stragglers); leaves it for [`ChildLedger::stop_orphans`]
    /// when some survive [`GROUP_EXIT_WAIT`].
    pub(crate) fn finish(mut self, pgid: u32) {
        self.finished = true;
        let deadline = Instant::now() + GROUP_EXIT_WAIT;
        loop {
            if group_gone(pgid) {
                self.remove();
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(record = %self.path.display(), pgid, "processes of a finished command survive SIGKILL; its ledger record is kept");
                return;
            }
            kill_group(pgid);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn remove(&self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(record = %self.path.display(), error = %e, "cannot remove a child ledger record");
        }
    }

    fn bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(&self.record).map_err(|e| Error::other("child ledger record", e))
    }
}

impl Drop for LedgerEntry {
    fn drop(&mut self) {
        // Never started (spawn failed): nothing can be left behind.
        if !self.finished && self.record.child.is_none() {
            self.remove();
        }
    }
}

fn is_token(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("read", "/dev/urandom", e))?;
    Ok(hex::encode(bytes))
}

fn read_record(path: &Path) -> Result<ChildRecord> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_found(format!("child record {}", path.display())));
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid(
            format!("child ledger record {}", path.display()),
            e.to_string(),
        )
    })
}

fn owner_of(record: &ChildRecord) -> Owner {
    if record.boot_id != procfs::boot_id() {
        return if record.host == procfs::host_name() {
            Owner::Dead { same_boot: false }
        } else {
            Owner::Foreign("another machine")
        };
    }
    if record.pid_namespace != procfs::pid_namespace() {
        return Owner::Foreign("another PID namespace");
    }
    match procfs::stat(record.owner.pid) {
        Some(p) if p.start == record.owner.start_ticks && !p.is_gone() => Owner::Alive,
        _ => Owner::Dead { same_boot: true },
    }
}

/// The live processes that belong to `record`'s child.
fn remnants(record: &ChildRecord) -> Vec<procfs::ProcStat> {
    let me = std::process::id();
    let procs = procfs::all();
    let token_entry = format!("{CHILD_TOKEN_ENV}={}", record.token);
    // The recorded group is ours only while its leader is gone or is still
    // the recorded child (a pid, hence a group id, is never reused while a
    // process group of that id exists).
    let group = record.child.filter(|child| {
        procs
            .iter()
            .find(|p| p.pid == child.pid)
            .is_none_or(|leader| leader.start == child.start_ticks)
    });
    procs
        .into_iter()
        .filter(|p| p.pid != me && !p.is_gone())
        .filter(|p| {
            group.is_some_and(|child| p.pgid == child.pid && p.start >= child.start_ticks)
                || procfs::environ_contains(p.pid, &token_entry)
        })
        .collect()
}

/// SIGKILLs what is left of `record`'s child until nothing is; returns the pids killed.
fn stop_record(record: &ChildRecord, timeout: Duration) -> Result<Vec<u32>> {
    let deadline = Instant::now() + timeout;
    let mut killed: Vec<u32> = Vec::new();
    loop {
        let left = remnants(record);
        if left.is_empty() {
            killed.sort_unstable();
            return Ok(killed);
        }
        if Instant::now() >= deadline {
            let pids: Vec<String> = left.iter().map(|p| p.pid.to_string()).collect();
            return Err(Error::Command {
                step: format!("stop orphaned children of {}", record.step),
                command: record.program.clone(),
                reason: format!(
                    "processes {} still run {timeout:?} after SIGKILL (uninterruptible I/O?); stop them, then recover again",
                    pids.join(", ")
                ),
            });
        }
        for process in &left {
            if kill_exactly(process) && !killed.contains(&process.pid) {
                killed.push(process.pid);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends SIGKILL to `process` only if the pid still names the same process
/// (through a pidfd, which cannot be redirected by pid reuse).
fn kill_exactly(process: &procfs::ProcStat) -> bool {
    use rustix::process::{Pid, PidfdFlags, Signal};
    let Some(pid) = i32::try_from(process.pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        Ok(pidfd) => {
            let same = procfs::stat(process.pid).is_some_and(|now| now.start == process.start);
            same && rustix::process::pidfd_send_signal(&pidfd, Signal::KILL).is_ok()
        }
        Err(rustix::io::Errno::NOSYS) => {
            let same = procfs::stat(process.pid).is_some_and(|now| now.start == process.start);
            same && rustix::process::kill_process(pid, Signal::KILL).is_ok()
        }
        Err(_) => false,
    }
}

/// Whether no live process is left in process group `pgid`.
fn group_gone(pgid: u32) -> bool {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return true;
    };
    match rustix::process::test_kill_process_group(pid) {
        Err(rustix::io::Errno::SRCH) => true,
        // Zombies count as members for kill(2); look closer.
        _ => procfs::all().iter().all(|p| p.pgid != pgid || p.is_gone()),
    }
}

/// SIGKILLs process group `pgid` (best effort).
pub(crate) fn kill_group(pgid: u32) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn record_of(
        ledger: &ChildLedger,
        owner: ProcessIdentity,
        child: Option<ProcessIdentity>,
    ) -> PathBuf {
        let token = random_token().unwrap();
        let record = ChildRecord {
            token: token.clone(),
            step: "migrate".into(),
            program: "sh".into(),
            started_at: Utc::now(),
            host: procfs::host_name(),
            boot_id: procfs::boot_id(),
            pid_namespace: procfs::pid_namespace(),
            owner,
            child,
        };
        durable::create_dir_all(ledger.dir()).unwrap();
        let path = ledger.dir().join(format!("{token}.json"));
        fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        path
    }

    fn identity(pid: u32) -> ProcessIdentity {
        ProcessIdentity {
            pid,
            start_ticks: procfs::stat(pid).unwrap().start,
        }
    }

    /// A pid that is certainly not running: a child that exited and was reaped.
    fn dead_pid() -> u32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn unrelated_sleeper() -> std::process::Child {
        use std::os::unix::process::CommandExt;
        Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_record_whose_owner_is_alive_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ChildLedger::new(dir.path());
        let mut sleeper = unrelated_sleeper();
        let path = record_of(
            &ledger,
            identity(std::process::id()),
            Some(identity(sleeper.id())),
        );
        let stopped = ledger.stop_orphans(Duration::from_secs(2)).unwrap();
        assert!(stopped.is_empty());
        assert!(path.exists());
        assert!(
            sleeper.try_wait().unwrap().is_none(),
            "the live owner's child must keep running"
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn pid_reuse_never_kills_an_unrelated_process() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ChildLedger::new(dir.path());
        let mut sleeper = unrelated_sleeper();
        let mut unrelated = identity(sleeper.id());
        // The record's child had this pid (and group id) but started earlier:
        // the number was reused by the unrelated sleeper.
        unrelated.start_ticks -= 1;
        // The owner's pid now belongs to a live process that started later
        // than the recorded owner did: the owner is dead.
        let mut reused_owner = identity(std::process::id());
        reused_owner.start_ticks -= 1;
        let path = record_of(&ledger, reused_owner, Some(unrelated));
        let stopped = ledger.stop_orphans(Duration::from_secs(2)).unwrap();
        assert_eq!(stopped.len(), 1);
        assert!(stopped[0].killed.is_empty(), "{stopped:?}");
        assert!(!path.exists(), "the orphan's record is removed");
        assert!(
            sleeper.try_wait().unwrap().is_none(),
            "the unrelated process must survive"
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn records_of_another_boot_or_machine_are_judged_without_killing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ChildLedger::new(dir.path());
        let edit = |path: &Path, f: &dyn Fn(&mut ChildRecord)| {
            let mut record = read_record(path).unwrap();
            f(&mut record);
            fs::write(path, serde_json::to_vec(&record).unwrap()).unwrap();
        };
        let previous_boot = record_of(&ledger, identity(std::process::id()), None);
        edit(&previous_boot, &|r| r.boot_id = "an-earlier-boot".into());
        let other_host = record_of(&ledger, identity(std::process::id()), None);
        edit(&other_host, &|r| {
            r.boot_id = "another-machine".into();
            r.host = "elsewhere.invalid".into();
        });
        let stopped = ledger.stop_orphans(Duration::from_secs(1)).unwrap();
        assert_eq!(stopped.len(), 1);
        assert!(!previous_boot.exists() && other_host.exists());
    }

    #[test]
    fn a_record_left_by_a_dead_owner_after_its_child_finished_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ChildLedger::new(dir.path());
        let owner = ProcessIdentity {
            pid: dead_pid(),
            start_ticks: 1,
        };
        let child = ProcessIdentity {
            pid: dead_pid(),
            start_ticks: 1,
        };
        record_of(&ledger, owner, Some(child));
        let stopped = ledger.stop_orphans(Duration::from_secs(1)).unwrap();
        assert_eq!(stopped.len(), 1);
        assert_eq!(stopped[0].record.step, "migrate");
        assert!(ledger.records().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ChildLedger::new(dir.path());
        let name = format!("{}.json", "a".repeat(32));
        fs::write(dir.path().join(&name), "{not json").unwrap();
        fs::write(dir.path().join("README"), "not a record").unwrap();
        let err = ledger.stop_orphans(Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { what, .. } if what.contains(&name)),
            "{err}"
        );
    }
}
