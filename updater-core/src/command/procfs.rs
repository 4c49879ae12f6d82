//! What the child ledger reads from `/proc`: a process's state, process
//! group and start time (`/proc/<pid>/stat`), its environment
//! (`/proc/<pid>/environ`), and who this machine and boot are.
//!
//! Start times are in clock ticks since boot: two processes with the same
//! pid are the same process only if their start times match too, which is
//! how a reused pid is told apart from the process that once had it.

use std::fs;
use std::path::Path;

/// What `/proc/<pid>/stat` says about one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The process id.
    pub(crate) pid: u32,
    /// `R`, `S`, `D`, `Z`, `T`...
    pub(crate) state: char,
    /// Its process group.
    pub(crate) pgid: u32,
    /// Clock ticks after boot at which it started.
    pub(crate) start: u64,
}

impl ProcStat {
    /// Whether it has exited (a zombie waiting to be reaped, or dead).
    pub(crate) fn is_gone(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub(crate) fn parse_stat(pid: u32, text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    let state = fields.first()?.chars().next()?;
    let pgid = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        pgid,
        start,
    })
}

/// The stat of `pid`, or `None` when it does not exist (any more).
pub(crate) fn stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// Every process visible in `/proc`, in no particular order.
pub(crate) fn all() -> Vec<ProcStat> {
    let Ok(read) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    read.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        stat(pid)
    })
    .collect()
}

/// Whether the environment of `pid` holds exactly `entry` (`KEY=value`).
/// `false` when it cannot be read (gone, another user's process, a zombie).
pub(crate) fn environ_contains(pid: u32, entry: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|bytes| bytes.split(|b| *b == 0).any(|var| var == entry.as_bytes()))
}

/// The id of the current boot (changes at every boot).
pub(crate) fn boot_id() -> String {
    read_trimmed(Path::new("/proc/sys/kernel/random/boot_id"))
}

/// This machine's host name.
pub(crate) fn host_name() -> String {
    read_trimmed(Path::new("/proc/sys/kernel/hostname"))
}

/// The PID namespace of this process (`pid:[4026531836]`): pids recorded in
/// another namespace mean other processes.
pub(crate) fn pid_namespace() -> String {
    fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let stat = parse_stat(4242, text).unwrap();
        assert_eq!(
            stat,
            ProcStat {
                pid: 4242,
                state: 'S',
                pgid: 4240,
                start: 987_654
            }
        );
        assert!(parse_stat(1, "garbage").is_none());
    }

    #[test]
    fn this_process_is_found_with_its_own_start_time() {
        let me = stat(std::process::id()).unwrap();
        assert!(!me.is_gone());
        assert!(all().contains(&me));
        assert!(!boot_id().is_empty() && pid_namespace().starts_with("pid:"));
    }
}
