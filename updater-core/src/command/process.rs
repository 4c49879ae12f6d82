//! [`Process`]: the one way the workspace runs a program — the shell
//! commands of the pipeline ([`ShellCommand`](super::ShellCommand)) and the
//! database tools of `updater-backup` alike.
//!
//! A process runs in its own process group with a deadline; when the
//! deadline passes, when its input or output fails, and always once it has
//! exited, the whole group is killed with SIGKILL (while the leader is an
//! unreaped zombie, so the group id cannot have been reused). Its standard
//! input is nothing, a file, or a reader we copy from; its standard output
//! is captured (the last 64 KiB by default) or streamed into a writer; the
//! tail of its error output goes into error messages, with every registered
//! secret replaced by `***`. Errors name the step and the program, never the
//! arguments or the environment.
//!
//! Everything happens on the calling thread: one `poll(2)` loop over the
//! pipes and a pidfd, so there are no reader threads to join and a process
//! that detached (kept the pipes open after leaving the group) cannot hang
//! the caller: its output is drained for two more seconds, then abandoned.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use super::ledger::{CHILD_TOKEN_ENV, ChildLedger, LedgerEntry, kill_group};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// How much standard output [`Process::run`] keeps by default.
pub const DEFAULT_CAPTURE: usize = 64 * 1024;
/// How much output an error message carries.
const ERROR_TAIL: usize = 4096;
/// One read or write.
const CHUNK: usize = 64 * 1024;
/// How long output is still read after the process exited (from processes
/// it left behind that hold the pipes) before it is abandoned.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// The default deadline.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Held while a child is spawned, so that descriptors made inheritable for
/// one child ([`Process::pass_fd`]) are never inherited by another started
/// through this module at the same moment.
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

enum Input<'a> {
    Null,
    File(File),
    Reader(Box<dyn Read + Send + 'a>),
}

/// One run of a program: arguments, environment, working directory, input,
/// output, deadline, optional [`ChildLedger`].
///
/// ```
/// use std::time::Duration;
/// use updater_core::command::Process;
/// use updater_core::secret::Secret;
///
/// // Capture the output.
/// let done = Process::new("/bin/echo").arg("hello").run("example")?;
/// assert_eq!(done.stdout, "hello\n");
///
/// // Stream it into a writer, feeding the input from a reader.
/// let mut out = Vec::new();
/// Process::new("/bin/cat").stdin_reader(&b"piped"[..]).stdout_to(&mut out).run("example")?;
/// assert_eq!(out, b"piped");
///
/// // Errors name the step and program, with the tail of the error output and
/// // secrets removed, never the arguments.
/// let password = Secret::new("hunter2");
/// let err = Process::new("/bin/sh")
///     .args(["-c", "echo \"login failed for hunter2\" >&2; exit 3"])
///     .redact(&password)
///     .timeout(Duration::from_secs(5))
///     .run("dump")
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "command `sh` (dump) failed: exit status: 3; output: login failed for ***"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Process<'a> {
    program: PathBuf,
    name: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    working_dir: Option<PathBuf>,
    timeout: Duration,
    deadline: Option<Instant>,
    stdin: Input<'a>,
    stdout: Option<&'a mut (dyn Write + Send)>,
    capture: usize,
    secrets: Vec<String>,
    ledger: Option<ChildLedger>,
    fds: Vec<OwnedFd>,
}

impl std::fmt::Debug for Process<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("program", &self.name)
            .field("args", &self.args.len())
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("working_dir", &self.working_dir)
            .field("timeout", &self.timeout)
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

/// What a successful [`Process::run`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The end of its standard output (at most the capture limit, lossy
    /// UTF-8); empty when the output was streamed into a writer.
    pub stdout: String,
    /// How many bytes it wrote to standard output.
    pub stdout_bytes: u64,
    /// The end of its error output (at most 4 KiB, lossy UTF-8).
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl<'a> Process<'a> {
    /// A run of `program` (a path, or a name looked up on `PATH`), with no
    /// input, its output captured, and a one-hour deadline.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let program = program.into();
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        Process {
            program,
            name,
            args: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            timeout: DEFAULT_TIMEOUT,
            deadline: None,
            stdin: Input::Null,
            stdout: None,
            capture: DEFAULT_CAPTURE,
            secrets: Vec::new(),
            ledger: None,
            fds: Vec::new(),
        }
    }

    /// The name errors and ledger records use (default: the program's file name).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable (the rest of the environment is inherited).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs it in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// The longest it may run, from the moment [`run`](Self::run) starts it
    /// (default one hour).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Stops it at `deadline` if that comes before its timeout.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Gives it `file` as standard input.
    pub fn stdin_file(mut self, file: File) -> Self {
        self.stdin = Input::File(file);
        self
    }

    /// Copies `reader` into its standard input. When the reader fails, the
    /// process group is killed *before* its input is closed, so it never
    /// sees a clean end of an incomplete input.
    pub fn stdin_reader(mut self, reader: impl Read + Send + 'a) -> Self {
        self.stdin = Input::Reader(Box::new(reader));
        self
    }

    /// Streams its standard output into `writer` instead of capturing it;
    /// when a write fails, the process group is killed.
    pub fn stdout_to(mut self, writer: &'a mut (dyn Write + Send)) -> Self {
        self.stdout = Some(writer);
        self
    }

    /// How much of its standard output to keep when captured (the end of it).
    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.capture = bytes;
        self
    }

    /// Removes `secret` from every error message (an empty secret is ignored).
    pub fn redact(mut self, secret: &Secret) -> Self {
        if !secret.is_empty() {
            self.secrets.push(secret.expose().to_string());
        }
        self
    }

    /// Records the child in `ledger` while it runs, so that
    /// [`ChildLedger::stop_orphans`] can stop it if this process dies.
    pub fn with_ledger(mut self, ledger: ChildLedger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Like [`with_ledger`](Self::with_ledger), when there may be none.
    pub fn ledger(mut self, ledger: Option<ChildLedger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Hands an open descriptor to the child under the same number (which
    /// must be 3 or more), e.g. an anonymous memory file holding credentials
    /// that the child opens as `/dev/fd/<n>`. It is made inheritable only
    /// while the child is spawned (under a lock that every spawn of this
    /// module takes) and closed in this process right after.
    pub fn pass_fd(mut self, fd: OwnedFd) -> Self {
        self.fds.push(fd);
        self
    }

    /// Runs it to completion.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] naming `step` and the program when it cannot be
    /// started, exits non-zero or by a signal, passes its deadline, or its
    /// input or output fails; the reason carries the tail of its output with
    /// secrets removed. [`Error::Io`] when its ledger record cannot be written.
    pub fn run(mut self, step: &str) -> Result<Finished> {
        let started_at = Instant::now();
        let deadline = self.deadline_from(started_at);
        let (stdin, feeder) = match std::mem::replace(&mut self.stdin, Input::Null) {
            Input::Null => (Stdio::null(), None),
            Input::File(file) => (Stdio::from(file), None),
            Input::Reader(reader) => (Stdio::piped(), Some(reader)),
        };
        let mut child = self.start(step, stdin)?;
        let pipes = Pipes {
            stdin: child.child.stdin.take(),
            stdout: child.child.stdout.take(),
            stderr: child.child.stderr.take(),
        };
        let mut sink = Sink {
            writer: self.stdout.take(),
            tail: Tail::new(self.capture),
            bytes: 0,
            broken: false,
        };
        let mut errors = Tail::new(ERROR_TAIL);
        let failure = drive(
            &child,
            pipes,
            feeder,
            &mut sink,
            &mut errors,
            started_at,
            deadline,
        );
        let status = child.reap();
        let captured = if sink.writer.is_some() {
            String::new()
        } else {
            sink.tail.text()
        };
        let reason = match (failure, status) {
            (Some(failure), _) => failure,
            (None, Ok(status)) if status.success() => {
                return Ok(Finished {
                    stdout: captured,
                    stdout_bytes: sink.bytes,
                    stderr: errors.text(),
                    elapsed: started_at.elapsed(),
                });
            }
            (None, Ok(status)) => status.to_string(),
            (None, Err(e)) => format!("cannot wait for it: {e}"),
        };
        Err(self.fail(step, reason, &captured, &errors.text()))
    }

    /// Starts it and returns its standard output as a reader, for piping
    /// one program into another through this process (`pg_restore | psql`).
    /// The reader reports an error instead of the end of the output when the
    /// program fails or passes its deadline; dropping it early kills the
    /// process group. Its input must be nothing or a file, and its output
    /// must not be streamed elsewhere.
    pub fn spawn_reader(mut self, step: &str) -> Result<ProcessReader> {
        let started_at = Instant::now();
        let deadline = self.deadline_from(started_at);
        let stdin = match std::mem::replace(&mut self.stdin, Input::Null) {
            Input::Null => Stdio::null(),
            Input::File(file) => Stdio::from(file),
            Input::Reader(_) => {
                return Err(Error::invalid(
                    format!("input of `{}`", self.name),
                    "a process read through spawn_reader takes its input from a file or nothing",
                ));
            }
        };
        if self.stdout.is_some() {
            return Err(Error::invalid(
                format!("output of `{}`", self.name),
                "a process read through spawn_reader cannot also stream into a writer",
            ));
        }
        let mut child = self.start(step, stdin)?;
        let stdout = child.child.stdout.take();
        let stderr = child.child.stderr.take();
        Ok(ProcessReader {
            child,
            stdout,
            stderr,
            errors: Tail::new(ERROR_TAIL),
            deadline,
            started_at,
            name: self.name.clone(),
            step: step.to_string(),
            secrets: std::mem::take(&mut self.secrets),
            done: false,
        })
    }

    fn deadline_from(&self, now: Instant) -> Instant {
        let own = now + self.timeout;
        self.deadline.map_or(own, |d| d.min(own))
    }

    fn fail(&self, step: &str, reason: String, stdout: &str, stderr: &str) -> Error {
        Error::Command {
            step: step.to_string(),
            command: self.name.clone(),
            reason: with_tail(&reason, stdout, stderr, &self.secrets),
        }
    }

    /// Spawns it in its own process group, with stdout and stderr piped.
    fn start(&mut self, step: &str, stdin: Stdio) -> Result<Running> {
        if let Some(fd) = self.fds.iter().find(|fd| fd.as_raw_fd() < 3) {
            return Err(Error::invalid(
                format!("descriptor {} for `{}`", fd.as_raw_fd(), self.name),
                "descriptors 0 to 2 are the child's standard streams",
            ));
        }
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &self.working_dir {
            command.current_dir(dir);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut entry = match &self.ledger {
            Some(ledger) => Some(ledger.register(step, &self.name)?),
            None => None,
        };
        if let Some(entry) = &entry {
            command.env(CHILD_TOKEN_ENV, entry.token());
        }
        let fds = std::mem::take(&mut self.fds);
        let spawned = {
            let _guard = SPAWN_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            let inheritable = fds.iter().try_for_each(|fd| {
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(io::Error::from)
            });
            let spawned = inheritable.and_then(|()| command.spawn());
            drop(fds);
            spawned
        };
        let child =
            spawned.map_err(|e| self.fail(step, format!("cannot start it: {e}"), "", ""))?;
        let pid = child.id();
        let pidfd = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
            });
        let mut running = Running {
            child,
            pid,
            pidfd,
            entry: None,
            reaped: false,
        };
        if let Some(entry) = entry.as_mut() {
            // On failure `running` is dropped: the group is killed and reaped.
            entry.started(pid)?;
        }
        running.entry = entry;
        Ok(running)
    }
}

/// A started child; dropping it without [`reap`](Self::reap) kills its group.
struct Running {
    child: Child,
    pid: u32,
    pidfd: Option<OwnedFd>,
    entry: Option<LedgerEntry>,
    reaped: bool,
}

impl Running {
    /// Whether it has exited (without reaping it, so its pid and group id
    /// stay ours).
    fn exited(&self) -> bool {
        use rustix::process::{WaitId, WaitIdOptions};
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        let id = match &self.pidfd {
            Some(fd) => WaitId::PidFd(fd.as_fd()),
            None => match i32::try_from(self.pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                Some(pid) => WaitId::Pid(pid),
                None => return true,
            },
        };
        !matches!(rustix::process::waitid(id, options), Ok(None))
    }

    /// Kills what is left of its group, reaps it, and settles its ledger record.
    fn reap(&mut self) -> io::Result<ExitStatus> {
        kill_group(self.pid);
        let status = self.child.wait();
        self.reaped = true;
        if let Some(entry) = self.entry.take() {
            entry.finish(self.pid);
        }
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.reap();
        }
    }
}

struct Pipes {
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
}

/// Where standard output goes.
struct Sink<'w> {
    writer: Option<&'w mut (dyn Write + Send)>,
    tail: Tail,
    bytes: u64,
    broken: bool,
}

impl Sink<'_> {
    fn accept(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes += bytes.len() as u64;
        match self.writer.as_mut() {
            Some(_) if self.broken => Ok(()),
            Some(writer) => writer.write_all(bytes).inspect_err(|_| self.broken = true),
            None => {
                self.tail.push(bytes);
                Ok(())
            }
        }
    }
}

/// The last `limit` bytes of a stream.
struct Tail {
    kept: Vec<u8>,
    limit: usize,
}

impl Tail {
    fn new(limit: usize) -> Self {
        Tail {
            kept: Vec::new(),
            limit,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.limit == 0 {
            return;
        }
        self.kept.extend_from_slice(bytes);
        if self.kept.len() > 2 * self.limit {
            self.kept.drain(..self.kept.len() - self.limit);
        }
    }

    fn text(&self) -> String {
        let start = self.kept.len().saturating_sub(self.limit);
        String::from_utf8_lossy(&self.kept[start..]).into_owned()
    }
}

/// Reads what is available from `pipe` into `f`; `false` at end of file
/// or on an error (the pipe is then done).
fn read_some(pipe: &mut impl Read, buf: &mut [u8], mut f: impl FnMut(&[u8])) -> bool {
    match pipe.read(buf) {
        Ok(0) => false,
        Ok(n) => {
            f(&buf[..n]);
            true
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) =>
        {
            true
        }
        Err(_) => false,
    }
}

fn ready(flags: PollFlags) -> bool {
    flags.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
}

/// The event loop of [`Process::run`]: feeds the input, moves the output,
/// enforces the deadline, notices the exit. Returns why the run failed,
/// when it did for a reason other than its exit status.
fn drive(
    child: &Running,
    mut pipes: Pipes,
    mut feeder: Option<Box<dyn Read + Send + '_>>,
    sink: &mut Sink<'_>,
    errors: &mut Tail,
    started_at: Instant,
    deadline: Instant,
) -> Option<String> {
    let mut failure: Option<String> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_at = 0usize;
    let mut exited = false;
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; CHUNK];
    if let Some(stdin) = &pipes.stdin
        && rustix::fs::fcntl_setfl(stdin, rustix::fs::OFlags::NONBLOCK).is_err()
    {
        failure = Some("cannot make its input non-blocking".into());
        kill_group(child.pid);
        pipes.stdin = None;
    }
    loop {
        if !exited && child.exited() {
            exited = true;
            // Stragglers of its group go now; its leader is an unreaped
            // zombie, so the group id is still ours.
            kill_group(child.pid);
            pipes.stdin = None;
            drain_until = Some(Instant::now() + DRAIN_GRACE);
        }
        if exited && pipes.stdout.is_none() && pipes.stderr.is_none() {
            return failure;
        }
        let now = Instant::now();
        if !exited && now >= deadline && failure.is_none() {
            failure = Some(format!("timed out after {:.1?}", now - started_at));
            kill_group(child.pid);
            pipes.stdin = None;
        }
        if drain_until.is_some_and(|limit| now >= limit) {
            tracing::warn!(
                pid = child.pid,
                "a process left behind by a finished command still holds its output; stopped reading it"
            );
            return failure;
        }
        let wake = match (drain_until, &failure) {
            (Some(limit), _) => limit,
            (None, Some(_)) => now + Duration::from_millis(20),
            (None, None) => deadline,
        };
        let mut timeout = wake.saturating_duration_since(now);
        if child.pidfd.is_none() {
            timeout = timeout.min(Duration::from_millis(10));
        }
        let want_input = pipes.stdin.is_some() && (pending_at < pending.len() || feeder.is_some());
        let (out_ready, err_ready, in_ready) = {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(4);
            let mut slots = [None; 3];
            if let Some(pipe) = &pipes.stdout {
                slots[0] = Some(fds.len());
                fds.push(PollFd::new(pipe, PollFlags::IN));
            }
            if let Some(pipe) = &pipes.stderr {
                slots[1] = Some(fds.len());
                fds.push(PollFd::new(pipe, PollFlags::IN));
            }
            if want_input && let Some(pipe) = &pipes.stdin {
                slots[2] = Some(fds.len());
                fds.push(PollFd::new(pipe, PollFlags::OUT));
            }
            if !exited && let Some(pidfd) = &child.pidfd {
                fds.push(PollFd::new(pidfd, PollFlags::IN));
            }
            let timespec = Timespec::try_from(timeout).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            match rustix::event::poll(&mut fds, Some(&timespec)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    failure.get_or_insert_with(|| format!("cannot wait for its output: {e}"));
                    kill_group(child.pid);
                }
            }
            let revents =
                |slot: Option<usize>| slot.map_or(PollFlags::empty(), |i| fds[i].revents());
            (revents(slots[0]), revents(slots[1]), revents(slots[2]))
        };
        if ready(out_ready)
            && let Some(pipe) = pipes.stdout.as_mut()
        {
            let mut write_error = None;
            let open = read_some(pipe, &mut buf, |bytes| {
                if let Err(e) = sink.accept(bytes) {
                    write_error = Some(e);
                }
            });
            if !open {
                pipes.stdout = None;
            }
            if let Some(e) = write_error {
                failure.get_or_insert_with(|| format!("cannot write its output: {e}"));
                kill_group(child.pid);
                pipes.stdin = None;
            }
        }
        if ready(err_ready)
            && let Some(pipe) = pipes.stderr.as_mut()
            && !read_some(pipe, &mut buf, |bytes| errors.push(bytes))
        {
            pipes.stderr = None;
        }
        if in_ready.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) {
            // It closed its input: what it did with it, its exit status says.
            pipes.stdin = None;
        } else if in_ready.contains(PollFlags::OUT) {
            if pending_at == pending.len()
                && let Some(reader) = feeder.as_mut()
            {
                pending.resize(CHUNK, 0);
                pending_at = 0;
                match reader.read(&mut pending) {
                    Ok(0) => {
                        pending.clear();
                        feeder = None;
                        // A clean end of the input.
                        pipes.stdin = None;
                    }
                    Ok(n) => pending.truncate(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => pending.clear(),
                    Err(e) => {
                        pending.clear();
                        feeder = None;
                        failure.get_or_insert_with(|| format!("cannot feed its input: {e}"));
                        // Killed before its input closes: it must never
                        // see a clean end of an incomplete input.
                        kill_group(child.pid);
                        pipes.stdin = None;
                    }
                }
            }
            if let Some(stdin) = pipes.stdin.as_mut()
                && pending_at < pending.len()
            {
                match stdin.write(&pending[pending_at..]) {
                    Ok(n) => pending_at += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => pipes.stdin = None,
                }
            }
        }
    }
}

/// The standard output of a program started by [`Process::spawn_reader`].
/// Reading it gives the output, then an error instead of the end of it if
/// the program failed or passed its deadline.
pub struct ProcessReader {
    child: Running,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    errors: Tail,
    deadline: Instant,
    started_at: Instant,
    name: String,
    step: String,
    secrets: Vec<String>,
    done: bool,
}

impl std::fmt::Debug for ProcessReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessReader")
            .field("program", &self.name)
            .field("step", &self.step)
            .field("pid", &self.child.pid)
            .finish_non_exhaustive()
    }
}

impl ProcessReader {
    /// Waits for the end of the program and reports how it ended, as
    /// [`Process::run`] would.
    pub fn finish(mut self) -> Result<()> {
        let mut sink = io::sink();
        io::copy(&mut self, &mut sink)
            .map(drop)
            .map_err(|e| Error::Command {
                step: self.step.clone(),
                command: self.name.clone(),
                reason: e.to_string(),
            })
    }

    fn failed(&self, reason: &str) -> io::Error {
        io::Error::other(format!(
            "`{}` failed during {}: {}",
            self.name,
            self.step,
            with_tail(reason, "", &self.errors.text(), &self.secrets)
        ))
    }

    /// After the end of its output: waits for its exit (until the deadline).
    fn conclude(&mut self) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        self.done = true;
        let grace = Instant::now() + DRAIN_GRACE;
        while let Some(pipe) = self.stderr.as_mut() {
            let mut buf = [0u8; 4096];
            let remaining = grace
                .min(self.deadline)
                .saturating_duration_since(Instant::now());
            let ready = {
                let mut fds = [PollFd::new(pipe, PollFlags::IN)];
                let timespec = Timespec::try_from(remaining).unwrap_or(Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                });
                matches!(rustix::event::poll(&mut fds, Some(&timespec)), Ok(n) if n > 0)
            };
            if !ready || !read_some(pipe, &mut buf, |bytes| self.errors.push(bytes)) {
                self.stderr = None;
            }
        }
        while !self.child.exited() {
            if Instant::now() >= self.deadline {
                return Err(self.timed_out());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match self.child.reap() {
            Ok(status) if status.success() => Ok(0),
            Ok(status) => Err(self.failed(&status.to_string())),
            Err(e) => Err(self.failed(&format!("cannot wait for it: {e}"))),
        }
    }

    fn timed_out(&mut self) -> io::Error {
        kill_group(self.child.pid);
        self.done = true;
        let reason = format!("timed out after {:.1?}", self.started_at.elapsed());
        let _ = self.child.reap();
        io::Error::new(io::ErrorKind::TimedOut, self.failed(&reason).to_string())
    }
}

impl Read for ProcessReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.stdout.is_none() {
                return self.conclude();
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Err(self.timed_out());
            }
            let (out_ready, err_ready) = {
                let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2);
                if let Some(pipe) = &self.stdout {
                    fds.push(PollFd::new(pipe, PollFlags::IN));
                }
                if let Some(pipe) = &self.stderr {
                    fds.push(PollFd::new(pipe, PollFlags::IN));
                }
                let timespec = Timespec::try_from(self.deadline.saturating_duration_since(now))
                    .unwrap_or(Timespec {
                        tv_sec: 1,
                        tv_nsec: 0,
                    });
                match rustix::event::poll(&mut fds, Some(&timespec)) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
                let out = fds[0].revents();
                let err = fds.get(1).map_or(PollFlags::empty(), PollFd::revents);
                (out, err)
            };
            if ready(err_ready)
                && let Some(pipe) = self.stderr.as_mut()
            {
                let mut chunk = [0u8; 4096];
                if !read_some(pipe, &mut chunk, |bytes| self.errors.push(bytes)) {
                    self.stderr = None;
                }
            }
            if ready(out_ready)
                && let Some(pipe) = self.stdout.as_mut()
            {
                match pipe.read(buf) {
                    Ok(0) => self.stdout = None,
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        kill_group(self.child.pid);
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// Replaces `secret` with `***` where it stands as a whole token (not
/// inside a longer word). Secrets never reach a child's arguments, so this
/// is a last guard against a tool that echoes one; editing inside words
/// garbled messages and revealed a short secret's letters (a password `e`
/// turned `error` into `***rror`).
fn hide_token(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(at) = rest.find(secret) {
        let before = rest[..at].chars().next_back().or(previous);
        let after = rest[at + secret.len()..].chars().next();
        let whole = !before.is_some_and(is_word) && !after.is_some_and(is_word);
        out.push_str(&rest[..at]);
        if whole {
            out.push_str("***");
        } else {
            out.push_str(secret);
        }
        previous = secret.chars().next_back();
        rest = &rest[at + secret.len()..];
    }
    out.push_str(rest);
    out
}

/// `reason`, then `; output: ` and the end of the output (stdout then
/// stderr), with every secret standing as a token replaced by `***`.
fn with_tail(reason: &str, stdout: &str, stderr: &str, secrets: &[String]) -> String {
    let mut text = format!("{}\n{}", stdout.trim_end(), stderr.trim_end());
    let mut reason = reason.to_string();
    for secret in secrets {
        text = hide_token(&text, secret);
        reason = hide_token(&reason, secret);
    }
    let text = text.trim();
    if text.is_empty() {
        return reason;
    }
    let start = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| text.len() - i <= ERROR_TAIL)
        .unwrap_or(0);
    format!("{reason}; output: {}", &text[start..])
}

/// Whether `path` names an executable file, for [`find_program`].
fn is_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Finds the first of `names` in `dirs` (a `PATH`-style list; `PATH` itself
/// when `None`).
///
/// ```
/// use updater_core::command::find_program;
/// assert!(find_program(&["surely-not-installed", "sh"], None).is_some());
/// ```
pub fn find_program(names: &[&str], dirs: Option<&OsStr>) -> Option<PathBuf> {
    let path = match dirs {
        Some(dirs) => dirs.to_owned(),
        None => std::env::var_os("PATH").unwrap_or_default(),
    };
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_file(candidate))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh<'a>(script: &str) -> Process<'a> {
        Process::new("/bin/sh").arg("-c").arg(script)
    }

    #[test]
    fn a_short_secret_inside_words_leaves_the_message_intact() {
        assert_eq!(
            hide_token("error: access denied for user e", "e"),
            "error: access denied for user ***"
        );
        assert_eq!(hide_token("permission error", "rr"), "permission error");
    }

    #[test]
    fn a_secret_standing_as_a_token_is_hidden_wherever_it_appears() {
        assert_eq!(
            hide_token("password='hunter22' rejected; hunter22", "hunter22"),
            "password='***' rejected; ***"
        );
        assert_eq!(
            hide_token("xhunter22 hunter22x", "hunter22"),
            "xhunter22 hunter22x"
        );
        assert_eq!(
            hide_token("hunter22hunter22", "hunter22"),
            "hunter22hunter22"
        );
        assert_eq!(hide_token("anything", ""), "anything");
    }

    #[test]
    fn a_failing_tool_that_echoes_its_password_has_it_hidden_in_the_error() {
        let error =
            sh("echo 'login failed for password s3cr3t-pw'; echo 'error: denied' >&2; exit 1")
                .redact(&crate::secret::Secret::new("s3cr3t-pw"))
                .run("dump")
                .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("password ***") && text.contains("error: denied"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t-pw"), "{text}");
    }

    #[test]
    fn captured_output_keeps_the_end_within_the_limit() {
        let done = sh("seq 1 20000").capture_limit(16).run("t").unwrap();
        assert_eq!(done.stdout.len(), 16);
        assert!(done.stdout.ends_with("19999\n20000\n"));
        assert_eq!(
            done.stdout_bytes,
            (1..=20000)
                .map(|n: u32| n.to_string().len() as u64 + 1)
                .sum::<u64>()
        );
    }

    #[test]
    fn a_program_past_its_deadline_is_killed_with_its_group() {
        let started = Instant::now();
        let err = sh("sleep 30 & sleep 30")
            .timeout(Duration::from_millis(200))
            .run("health check")
            .unwrap_err();
        assert!(
            matches!(&err, Error::Command { step, command, reason }
                if step == "health check" && command == "sh" && reason.starts_with("timed out after")),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_failing_reader_kills_the_program_before_its_input_closes() {
        struct Broken(u8);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("source failed"));
                }
                self.0 -= 1;
                buf[0] = b'x';
                Ok(1)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("saw-end");
        // `cat` then a marker: the marker exists only if cat saw a clean end.
        let err = sh(&format!("cat >/dev/null; touch '{}'", marker.display()))
            .stdin_reader(Broken(3))
            .run("restore")
            .unwrap_err();
        assert!(
            matches!(&err, Error::Command { reason, .. } if reason == "cannot feed its input: source failed"),
            "{err}"
        );
        assert!(!marker.exists());
    }

    #[test]
    fn a_failing_writer_stops_the_program() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut full = Full;
        let started = Instant::now();
        let err = sh("yes").stdout_to(&mut full).run("dump").unwrap_err();
        assert!(
            matches!(&err, Error::Command { reason, .. } if reason.starts_with("cannot write its output: disk full")),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_detached_process_holding_the_output_does_not_hang_the_run() {
        let started = Instant::now();
        // setsid leaves the group, so the group kill does not reach it.
        let done = sh("setsid sleep 30 & echo done").run("hook").unwrap();
        assert_eq!(done.stdout, "done\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_program_that_cannot_start_is_named() {
        let err = Process::new("/nonexistent/tool")
            .run("preflight")
            .unwrap_err();
        assert!(
            matches!(&err, Error::Command { step, command, reason }
                if step == "preflight" && command == "tool" && reason.starts_with("cannot start it")),
            "{err}"
        );
    }

    #[test]
    fn a_passed_descriptor_is_readable_by_the_child_only() {
        let memfd = rustix::fs::memfd_create("test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let mut file = File::from(memfd);
        file.write_all(b"secret content").unwrap();
        let fd = rustix::io::fcntl_dupfd_cloexec(&file, 900).unwrap();
        let n = fd.as_raw_fd();
        let read_it = format!("cat /dev/fd/{n} 2>/dev/null || echo unreadable");
        let done = sh(&read_it).pass_fd(fd).run("t").unwrap();
        // Its offset is at its end: /dev/fd/<n> reopens it from the start.
        assert_eq!(done.stdout, "secret content");
        assert!(
            std::fs::symlink_metadata(format!("/proc/self/fd/{n}")).is_err(),
            "closed here right after the spawn"
        );
        // The original (close-on-exec) descriptor never reaches a child.
        let original = file.as_raw_fd();
        let other = sh(&format!(
            "cat /dev/fd/{original} 2>/dev/null || echo unreadable"
        ))
        .run("t")
        .unwrap();
        assert_eq!(other.stdout, "unreadable\n");
    }

    #[test]
    fn a_reader_reports_failure_instead_of_a_clean_end() {
        let mut out = String::new();
        let mut reader = sh("echo partial; echo broken >&2; exit 4")
            .spawn_reader("restore")
            .unwrap();
        let err = reader.read_to_string(&mut out).unwrap_err();
        assert_eq!(out, "partial\n");
        assert_eq!(
            err.to_string(),
            "`sh` failed during restore: exit status: 4; output: broken"
        );
        let mut ok = sh("echo whole").spawn_reader("restore").unwrap();
        let mut text = String::new();
        ok.read_to_string(&mut text).unwrap();
        assert_eq!(text, "whole\n");
        ok.finish().unwrap();
    }

    #[test]
    fn a_reader_past_its_deadline_times_out() {
        let mut reader = sh("sleep 30")
            .timeout(Duration::from_millis(200))
            .spawn_reader("restore")
            .unwrap();
        let err = reader.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("timed out"), "{err}");
    }
}
