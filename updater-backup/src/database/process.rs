//! Running database client tools: found on `PATH`, asked for `--version` in
//! preflight, run with a deadline (the whole process group is killed when it
//! passes), output streamed (never held in memory), errors carrying the tail
//! of their stderr with every secret removed. Credentials never go on the
//! command line: they travel in a 0600 temporary file ([`SecretFile`]).

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{BackupError, Result};

/// How much of a tool's stderr is kept for error messages.
const STDERR_TAIL: usize = 2048;

/// A password or other credential. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value (only for writing it into a 0600 credentials file).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A 0600 temporary file holding credentials, removed when dropped.
#[derive(Debug)]
pub(crate) struct SecretFile {
    file: tempfile::NamedTempFile,
}

impl SecretFile {
    /// Writes `contents` into a fresh 0600 file in the system temp directory.
    pub(crate) fn new(contents: &str) -> Result<Self> {
        let mut file = tempfile::Builder::new()
            .prefix(".updater-credentials-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile()
            .map_err(|e| BackupError::io("create", std::env::temp_dir(), e))?;
        file.write_all(contents.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| BackupError::io("write", file.path(), e))?;
        Ok(SecretFile { file })
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Finds the first of `names` in `tool_dir` when given, on `PATH` otherwise.
pub(crate) fn find_tool(names: &[&str], tool_dir: Option<&Path>) -> Result<PathBuf> {
    let path = match tool_dir {
        Some(dir) => dir.as_os_str().to_owned(),
        None => std::env::var_os("PATH").unwrap_or_default(),
    };
    let place = match tool_dir {
        Some(dir) => format!("in {}", dir.display()),
        None => "on PATH".to_string(),
    };
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
                return Ok(candidate);
            }
        }
    }
    Err(BackupError::ToolMissing {
        tool: names.join(" or "),
        reason: format!("not found {place}"),
    })
}

/// Runs `tool --version` and returns its first line.
pub(crate) fn tool_version(tool: &Path) -> Result<String> {
    let mut out = Vec::new();
    ToolRun::new(tool, "version check", Duration::from_secs(20))
        .arg("--version")
        .stdout_to(&mut out)
        .run()
        .map_err(|e| BackupError::ToolMissing {
            tool: tool_name(tool),
            reason: format!("`--version` failed: {e}"),
        })?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// The program name of a tool path.
pub(crate) fn tool_name(tool: &Path) -> String {
    tool.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| tool.display().to_string())
}

/// One run of a tool.
pub(crate) struct ToolRun<'a> {
    program: PathBuf,
    step: &'static str,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    timeout: Duration,
    stdin: Option<Box<dyn Read + Send + 'a>>,
    stdout: Option<&'a mut (dyn Write + Send)>,
    secrets: Vec<String>,
}

impl<'a> ToolRun<'a> {
    pub(crate) fn new(program: &Path, step: &'static str, timeout: Duration) -> Self {
        ToolRun {
            program: program.to_path_buf(),
            step,
            args: Vec::new(),
            env: Vec::new(),
            timeout,
            stdin: None,
            stdout: None,
            secrets: Vec::new(),
        }
    }

    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Feeds the child's stdin from `reader` (on a thread).
    pub(crate) fn stdin_from(mut self, reader: impl Read + Send + 'a) -> Self {
        self.stdin = Some(Box::new(reader));
        self
    }

    /// Streams the child's stdout into `writer`.
    pub(crate) fn stdout_to(mut self, writer: &'a mut (dyn Write + Send)) -> Self {
        self.stdout = Some(writer);
        self
    }

    /// Strings removed from any error text.
    pub(crate) fn redact(mut self, secret: Option<&super::Secret>) -> Self {
        if let Some(secret) = secret.filter(|s| !s.expose().is_empty()) {
            self.secrets.push(secret.expose().to_string());
        }
        self
    }

    /// Runs to completion; returns the number of stdout bytes streamed.
    pub(crate) fn run(self) -> Result<u64> {
        let tool = tool_name(&self.program);
        let secrets = self.secrets;
        let step = self.step;
        let fail = |reason: String| BackupError::ToolFailed {
            tool: tool.clone(),
            step,
            reason: redact(&reason, &secrets),
        };
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                BackupError::ToolMissing {
                    tool: tool.clone(),
                    reason: format!("cannot start it: {e}"),
                }
            } else {
                fail(format!("cannot start it: {e}"))
            }
        })?;
        let pid = child.id();
        let timed_out = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let mut stdin_reader = self.stdin;
        let mut stdout_writer = self.stdout;
        let timeout = self.timeout;
        let outcome = std::thread::scope(|scope| {
            let watchdog = {
                let timed_out = Arc::clone(&timed_out);
                scope.spawn(move || {
                    if done_rx.recv_timeout(timeout).is_err() {
                        timed_out.store(true, Ordering::SeqCst);
                        kill_group(pid);
                    }
                })
            };
            let stderr = child.stderr.take().map(|mut pipe| {
                scope.spawn(move || {
                    let mut kept = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = pipe.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        kept.extend_from_slice(&chunk[..n]);
                        if kept.len() > 4 * STDERR_TAIL {
                            kept.drain(..kept.len() - STDERR_TAIL);
                        }
                    }
                    String::from_utf8_lossy(&kept).into_owned()
                })
            });
            let feeder = match (child.stdin.take(), stdin_reader.as_mut()) {
                (Some(mut pipe), Some(reader)) => Some(scope.spawn(move || -> io::Result<u64> {
                    let copied = io::copy(reader, &mut pipe);
                    if copied.is_err() {
                        // The input is incomplete: the tool must not see a clean end of it.
                        kill_group(pid);
                    }
                    drop(pipe);
                    copied
                })),
                _ => None,
            };
            let mut streamed = 0u64;
            let mut stream_error = None;
            if let Some(mut pipe) = child.stdout.take() {
                let mut sink = io::sink();
                let writer: &mut (dyn Write + Send) = match stdout_writer.as_mut() {
                    Some(w) => *w,
                    None => &mut sink,
                };
                match io::copy(&mut pipe, writer) {
                    Ok(n) => streamed = n,
                    Err(e) => {
                        stream_error = Some(e);
                        kill_group(pid);
                    }
                }
            }
            let status = child.wait();
            let _ = done_tx.send(());
            let _ = watchdog.join();
            let fed = feeder.map(|h| h.join());
            let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
            (status, streamed, stream_error, fed, stderr)
        });
        let (status, streamed, stream_error, fed, stderr) = outcome;
        let tail = stderr.trim();
        let with_tail = |text: String| {
            if tail.is_empty() {
                text
            } else {
                format!("{text}; stderr: {tail}")
            }
        };
        if timed_out.load(Ordering::SeqCst) {
            return Err(fail(with_tail(format!("timed out after {timeout:?}"))));
        }
        let status = status.map_err(|e| fail(format!("cannot wait for it: {e}")))?;
        if !status.success() {
            return Err(fail(with_tail(format!("{status}"))));
        }
        if let Some(e) = stream_error {
            return Err(fail(format!("cannot stream its output: {e}")));
        }
        match fed {
            Some(Ok(Ok(_))) | None => {}
            Some(Ok(Err(e))) => return Err(fail(with_tail(format!("cannot feed its input: {e}")))),
            Some(Err(_)) => return Err(fail("input thread panicked".into())),
        }
        Ok(streamed)
    }
}

fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_in_the_error() {
        let err = find_tool(&["surely-not-a-dump-tool"], None).unwrap_err();
        assert!(err.to_string().contains("surely-not-a-dump-tool"), "{err}");
    }

    #[test]
    fn output_is_streamed_and_failures_carry_redacted_stderr() {
        let sh = find_tool(&["sh"], None).unwrap();
        let mut out = Vec::new();
        let n = ToolRun::new(&sh, "dump", Duration::from_secs(5))
            .arg("-c")
            .arg("printf hello")
            .stdout_to(&mut out)
            .run()
            .unwrap();
        assert_eq!((n, out.as_slice()), (5, &b"hello"[..]));
        let secret = super::super::Secret::new("hunter2");
        let err = ToolRun::new(&sh, "dump", Duration::from_secs(5))
            .arg("-c")
            .arg("echo \"auth failed for hunter2\" >&2; exit 3")
            .redact(Some(&secret))
            .run()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("auth failed") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn a_tool_past_its_timeout_is_killed() {
        let sh = find_tool(&["sh"], None).unwrap();
        let started = std::time::Instant::now();
        let err = ToolRun::new(&sh, "dump", Duration::from_millis(200))
            .arg("-c")
            .arg("sleep 30")
            .run()
            .unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn stdin_is_fed_from_a_reader() {
        let cat = find_tool(&["cat"], None).unwrap();
        let mut out = Vec::new();
        ToolRun::new(&cat, "restore", Duration::from_secs(5))
            .stdin_from(&b"piped"[..])
            .stdout_to(&mut out)
            .run()
            .unwrap();
        assert_eq!(out, b"piped");
    }

    #[test]
    fn secret_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let file = SecretFile::new("pw").unwrap();
        let path = file.path().to_path_buf();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(file);
        assert!(!path.exists());
        assert_eq!(
            format!("{:?}", super::super::Secret::new("pw")),
            "Secret(***)"
        );
    }
}
