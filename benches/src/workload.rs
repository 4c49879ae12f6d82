//! The data the benchmarks work on, and the standard tools they compare with.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The size of the synthetic tree.
#[derive(Debug, Clone, Copy)]
pub struct TreeSize {
    /// Number of files.
    pub files: u32,
    /// Total size in MB.
    pub mb: u32,
}

impl TreeSize {
    /// The design's tree: 20,000 files, about 450 MB.
    pub const FULL: TreeSize = TreeSize {
        files: 20_000,
        mb: 450,
    };
    /// A small tree for the CI smoke run.
    pub const QUICK: TreeSize = TreeSize {
        files: 2_000,
        mb: 40,
    };
}

/// Where the generator lives: `../shared/tools/gen_app_tree.py` from the
/// workspace root, or `UPDATER_GEN_APP_TREE`.
pub fn generator() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("UPDATER_GEN_APP_TREE") {
        return Ok(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidate = root.join("../shared/tools/gen_app_tree.py");
    if candidate.exists() {
        Ok(candidate)
    } else {
        Err(format!(
            "cannot find gen_app_tree.py at {} (set UPDATER_GEN_APP_TREE)",
            candidate.display()
        ))
    }
}

/// Generates the synthetic application tree in `dir`.
pub fn generate_tree(dir: &Path, size: TreeSize) -> Result<(), String> {
    run(Command::new("python3").arg(generator()?).arg(dir).args([
        "--files",
        &size.files.to_string(),
        "--mb",
        &size.mb.to_string(),
        "--seed",
        "1",
    ]))
    .map(drop)
}

/// Runs a command, failing with its stderr; returns how long it took.
pub fn run(command: &mut Command) -> Result<Duration, String> {
    let started = Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(elapsed)
}

/// Runs a shell command line; returns how long it took.
pub fn shell(line: &str) -> Result<Duration, String> {
    run(Command::new("/bin/sh").arg("-c").arg(line))
}

/// Removes a path if it exists.
pub fn remove(path: &Path) -> Result<(), String> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|e| format!("remove {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Copies a tree with `cp -a` (the baseline of the swap).
pub fn cp_a(from: &Path, to: &Path) -> Result<Duration, String> {
    run(Command::new("cp").arg("-a").arg(from).arg(to))
}

/// The peak resident memory of this process so far (VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes of a file.
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A one-line description of the machine for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kb| format!("{} GiB RAM", kb / 1024 / 1024))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem}")
}

/// `python3 -m http.server` serving a directory on a free port of 127.0.0.1,
/// stopped when dropped: a neutral static server for the download rows.
#[derive(Debug)]
pub struct PythonHttpServer {
    child: std::process::Child,
    address: String,
}

impl PythonHttpServer {
    /// Starts the server on `dir` and waits until it accepts connections.
    pub fn serve(dir: &Path) -> Result<PythonHttpServer, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("find a free port: {e}"))?
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("start python3 -m http.server: {e}"))?;
        let server = PythonHttpServer {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err("python3 -m http.server did not start within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Like [`serve`](Self::serve), with single `Range: bytes=A-B` requests
    /// answered `206` (Python's `http.server` ignores `Range`; static
    /// servers such as nginx honour it). Same 64 KiB writes.
    pub fn serve_with_ranges(dir: &Path) -> Result<PythonHttpServer, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("find a free port: {e}"))?
            .port();
        let child = Command::new("python3")
            .args(["-c", RANGE_SERVER, &port.to_string()])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("start the python3 range server: {e}"))?;
        let server = PythonHttpServer {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err("the python3 range server did not start within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

/// `http.server` plus single byte ranges.
const RANGE_SERVER: &str = r#"
import functools, http.server, os, re, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        wanted = self.headers.get('Range')
        if not wanted:
            return super().do_GET()
        try:
            f = open(self.translate_path(self.path), 'rb')
        except OSError:
            return self.send_error(404)
        with f:
            size = os.fstat(f.fileno()).st_size
            m = re.fullmatch(r'bytes=(\d+)-(\d*)', wanted.strip())
            start = int(m.group(1)) if m else size
            end = min(int(m.group(2)) if m and m.group(2) else size - 1, size - 1)
            if start > end:
                return self.send_error(416)
            self.send_response(206)
            self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, end, size))
            self.send_header('Content-Length', str(end - start + 1))
            self.end_headers()
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(65536, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
handler = functools.partial(Handler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()
"#;

impl Drop for PythonHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
