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

/// Where the team's generator lives: `../shared/tools/gen_app_tree.py`
/// from the workspace root, or `UPDATER_GEN_APP_TREE`; `None` when neither
/// exists (a clone on its own), and the built-in generator is used.
pub fn generator() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("UPDATER_GEN_APP_TREE") {
        return Some(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidate = root.join("../shared/tools/gen_app_tree.py");
    candidate.exists().then_some(candidate)
}

/// Generates the synthetic application tree in `dir`: with the team's
/// script when it is there, else with [`generate_builtin`] (the same mix
/// and layout, another random stream).
#[allow(
    clippy::print_stderr,
    reason = "the benchmark runners report on stderr which generator made the tree"
)]
pub fn generate_tree(dir: &Path, size: TreeSize) -> Result<(), String> {
    let Some(script) = generator() else {
        eprintln!("gen_app_tree.py not found: using the built-in generator (same mix and layout)");
        return generate_builtin(dir, size);
    };
    run(Command::new("python3").arg(script).arg(dir).args([
        "--files",
        &size.files.to_string(),
        "--mb",
        &size.mb.to_string(),
        "--seed",
        "1",
    ]))
    .map(drop)
}

/// SplitMix64: a small deterministic random stream (seed 1), enough for
/// file sizes, words and incompressible bytes.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Exponentially distributed with `mean`, at least `min`.
    fn size(&mut self, mean: f64, min: usize) -> usize {
        ((-mean * self.unit().ln()) as usize).max(min)
    }
}

const WORDS: [&str; 29] = [
    "function",
    "return",
    "public",
    "private",
    "static",
    "class",
    "namespace",
    "use",
    "array",
    "string",
    "int",
    "bool",
    "null",
    "true",
    "false",
    "foreach",
    "if",
    "else",
    "while",
    "new",
    "this",
    "self",
    "parent",
    "extends",
    "implements",
    "interface",
    "trait",
    "const",
    "echo",
];

/// The generator of `../shared/tools/gen_app_tree.py` in Rust: ~85 % small
/// compressible source-like files (`vendor/pkgNNN/src/mN/FileI.php`, 35 %
/// of the bytes), ~15 % incompressible assets (`public/assets/gNN/assetI.bin`),
/// sizes exponentially distributed, and the three preserved paths.
pub fn generate_builtin(dir: &Path, size: TreeSize) -> Result<(), String> {
    let write = |path: &Path, bytes: &[u8]| -> Result<(), String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
    };
    let mut rng = Stream(1);
    let total = u64::from(size.mb) * 1024 * 1024;
    let files = u64::from(size.files);
    let binaries = (files * 15 / 100).max(1);
    let texts = files.saturating_sub(binaries).max(1);
    let text_mean = (total * 35 / 100) as f64 / texts as f64;
    let binary_mean = (total - total * 35 / 100) as f64 / binaries as f64;
    for i in 0..texts {
        let length = rng.size(text_mean, 64);
        let mut text = String::with_capacity(length + 128);
        while text.len() < length {
            text.push_str("    ");
            let words = 3 + rng.next() % 10;
            for w in 0..words {
                if w > 0 {
                    text.push(' ');
                }
                text.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
            }
            text.push_str(";\n");
        }
        text.truncate(length);
        let path = dir
            .join("vendor")
            .join(format!("pkg{:03}", i % 200))
            .join("src")
            .join(format!("m{}", (i / 200) % 10))
            .join(format!("File{i}.php"));
        write(&path, text.as_bytes())?;
    }
    for i in 0..binaries {
        let length = rng.size(binary_mean, 256);
        let mut bytes = Vec::with_capacity(length + 8);
        while bytes.len() < length {
            bytes.extend_from_slice(&rng.next().to_le_bytes());
        }
        bytes.truncate(length);
        let path = dir
            .join("public")
            .join("assets")
            .join(format!("g{:02}", i % 50))
            .join(format!("asset{i}.bin"));
        write(&path, &bytes)?;
    }
    for kept in [
        ".env",
        "storage/logs/app.log",
        "storage/app/public/upload1.jpg",
    ] {
        write(&dir.join(kept), format!("KEEP {kept}\n").as_bytes())?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_builtin_generator_writes_the_mix_and_the_preserved_paths() {
        let dir = tempfile::tempdir().unwrap();
        generate_builtin(dir.path(), TreeSize { files: 200, mb: 4 }).unwrap();
        let mut files = 0u64;
        let mut bytes = 0u64;
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(at) = stack.pop() {
            for entry in std::fs::read_dir(&at).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    files += 1;
                    bytes += entry.metadata().unwrap().len();
                }
            }
        }
        assert_eq!(files, 203, "200 generated files and 3 preserved ones");
        let mib = bytes as f64 / (1024.0 * 1024.0);
        assert!((2.0..8.0).contains(&mib), "{mib} MiB for a 4 MB tree");
        assert!(dir.path().join("storage/app/public/upload1.jpg").exists());
        // The same seed, the same tree.
        let again = tempfile::tempdir().unwrap();
        generate_builtin(again.path(), TreeSize { files: 200, mb: 4 }).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("vendor/pkg007/src/m0/File7.php")).unwrap(),
            std::fs::read(again.path().join("vendor/pkg007/src/m0/File7.php")).unwrap()
        );
    }
}
