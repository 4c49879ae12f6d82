//! Work measured in a child process, so its peak memory (VmHWM) is its own:
//! `compare --child KIND ARGS...` prints one JSON line of [`ChildReport`].

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a child measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    /// Wall time of the measured work, in seconds.
    pub secs: f64,
    /// Peak resident memory of the child, in bytes.
    pub peak_rss: u64,
    /// Output size in bytes (archive, download).
    pub bytes: u64,
    /// Free text (e.g. the backup id).
    pub detail: String,
}

impl ChildReport {
    /// The measured wall time.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
}

/// Runs `compare --child args...` and parses its report.
pub fn run_child(args: &[&str]) -> Result<ChildReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let output = Command::new(exe)
        .arg("--child")
        .args(args)
        .output()
        .map_err(|e| format!("cannot start child {args:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "child {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("child {args:?} printed {line:?}: {e}"))
}

/// Reads a JSON file.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("parse {}: {e}", path.display()))
}
