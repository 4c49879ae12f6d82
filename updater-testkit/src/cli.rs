//! The `updater` command end to end: a release server (a manifest and
//! tar.gz assets on loopback), a demo application installed by hand with a
//! configuration next to it, and a runner for the real binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::archive::tar_gz;
use crate::http::{Reply, TestServer};

/// Environment variables that would override a test's config file.
pub const OVERRIDES: [&str; 12] = [
    "UPDATER_CONFIG",
    "UPDATE_CHECK_URL",
    "UPDATE_SERVER_TOKEN",
    "AUTO_CHECK_UPDATES",
    "UPDATE_CHECK_INTERVAL",
    "UPDATE_CHANNEL",
    "BACKUP_BEFORE_UPDATE",
    "BACKUP_RETENTION",
    "MAINTENANCE_MODE_DURING_UPDATE",
    "VERIFY_UPDATE_CHECKSUM",
    "ALLOW_DOWNGRADE",
    "ROLLBACK_TIMEOUT",
];

/// A custom update server: `/manifest.json` and `/<asset>` (with `Range`).
pub struct ReleaseServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    releases: Arc<Mutex<Vec<Value>>>,
    _server: TestServer,
}

impl std::fmt::Debug for ReleaseServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseServer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ReleaseServer {
    /// A server with nothing published.
    pub fn start() -> ReleaseServer {
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let releases: Arc<Mutex<Vec<Value>>> = Arc::default();
        let server = {
            let (files, releases) = (Arc::clone(&files), Arc::clone(&releases));
            TestServer::start(move |request| {
                let path = request.path().trim_start_matches('/');
                if path == "manifest.json" {
                    let body =
                        json!({ "schema_version": 1, "releases": *releases.lock().unwrap() });
                    return Reply::json(200, body.to_string());
                }
                match files.lock().unwrap().get(path) {
                    Some(bytes) => Reply::ranged(request, bytes),
                    None => Reply::new(404),
                }
            })
        };
        ReleaseServer {
            base: server.base(),
            files,
            releases,
            _server: server,
        }
    }

    /// Serves `bytes` at `/<path>`.
    pub fn serve(&self, path: &str, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), bytes.to_vec());
    }

    /// The manifest's URL.
    pub fn manifest_url(&self) -> String {
        format!("{}/manifest.json", self.base)
    }

    /// Publishes `version` holding `files` (path, bytes) as `app-<version>.tar.gz`.
    pub fn publish_files(&self, version: &str, files: &[(String, Vec<u8>)]) {
        self.publish_files_with_notes(version, files, &format!("Release {version}."));
    }

    /// Like [`publish_files`](Self::publish_files), with `changelog` as the release notes.
    pub fn publish_files_with_notes(
        &self,
        version: &str,
        files: &[(String, Vec<u8>)],
        changelog: &str,
    ) {
        let archive = tar_gz(files);
        let name = format!("app-{version}.tar.gz");
        let sha = hex::encode(Sha256::digest(&archive));
        self.releases.lock().unwrap().push(json!({
            "version": version,
            "changelog": changelog,
            "assets": [{ "name": name, "url": name, "size": archive.len(), "sha256": sha }],
        }));
        self.files.lock().unwrap().insert(name, archive);
    }

    /// Publishes `version` whose tree holds `VERSION`, `public/index.html`
    /// and, when `healthy`, the `health-ok` file the health check looks for.
    pub fn publish(&self, version: &str, healthy: bool) {
        self.publish_with_notes(version, healthy, &format!("Release {version}."));
    }

    /// Like [`publish`](Self::publish), with `changelog` as the release notes.
    pub fn publish_with_notes(&self, version: &str, healthy: bool, changelog: &str) {
        let mut files = vec![
            ("VERSION".to_string(), version.as_bytes().to_vec()),
            (
                "public/index.html".to_string(),
                format!("<h1>release {version}</h1>").into_bytes(),
            ),
        ];
        if healthy {
            files.push(("health-ok".to_string(), b"ok".to_vec()));
        }
        self.publish_files_with_notes(version, &files, changelog);
    }
}

/// A demo application at 1.0.0 with a config file next to it, driven
/// through the `updater` binary at `binary`.
pub struct Fixture {
    /// Holds the application and the configuration.
    pub dir: tempfile::TempDir,
    /// Where its releases come from.
    pub server: ReleaseServer,
    binary: PathBuf,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// App 1.0.0 installed by hand, its release (1.0.0) published on the
    /// release server (so the first update knows what 1.0.0 shipped), default config.
    pub fn new(binary: impl AsRef<Path>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("public")).unwrap();
        std::fs::write(app.join("VERSION"), "1.0.0").unwrap();
        std::fs::write(app.join("public/index.html"), "<h1>release 1.0.0</h1>").unwrap();
        std::fs::write(app.join("health-ok"), "ok").unwrap();
        std::fs::write(app.join(".env"), "APP_KEY=kept").unwrap();
        let fixture = Fixture {
            dir,
            server: ReleaseServer::start(),
            binary: binary.as_ref().to_path_buf(),
        };
        fixture.server.publish("1.0.0", true);
        fixture.write_config("");
        fixture
    }

    /// The application directory.
    pub fn app(&self) -> PathBuf {
        self.dir.path().join("app")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("updater.toml")
    }

    /// The standard configuration plus `extra` (appended TOML).
    pub fn write_config(&self, extra: &str) {
        self.write_config_with_health(
            "command = \"test -f health-ok\"\ntimeout_secs = 3\ninterval_secs = 1",
            extra,
        );
    }

    /// The standard configuration with `health` as the `[health]` table.
    pub fn write_config_with_health(&self, health: &str, extra: &str) {
        let text = format!(
            r#"channel = "stable"

[app]
dir = "app"
preserved_paths = [".env"]

[source]
kind = "manifest"
url = "{url}"

[backup]
retention = 2

[health]
{health}

[notifications]
admins = ["alice", "bob"]
{extra}"#,
            url = self.server.manifest_url()
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// The binary with `--config`, in the fixture's directory, without
    /// the environment overrides of the machine.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        for name in OVERRIDES {
            command.env_remove(name);
        }
        command
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null());
        command
    }

    /// Runs the binary with `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command().args(args).output().unwrap())
    }

    /// Runs the binary with `--json` and `args`: its object and exit code.
    pub fn json(&self, args: &[&str]) -> (Value, i32) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        (run.json(), run.code)
    }

    /// The application's `VERSION` file.
    pub fn app_version(&self) -> String {
        std::fs::read_to_string(self.app().join("VERSION")).unwrap()
    }
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    /// Its exit code (-1 when killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Standard output as JSON (panics, with both outputs, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// `updater serve` running in the background; stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct Served {
    /// The process.
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// What it printed on standard error so far (after `listening on`: the rest goes on).
    pub stderr_lines: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Stops it with SIGTERM; its exit code and standard output.
    pub fn stop(mut self) -> (i32, String) {
        use std::io::Read;
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).unwrap();
        }
        (status.code().unwrap_or(-1), stdout)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Fixture {
    /// Starts `updater serve --listen 127.0.0.1:0` (plus `args`) and waits
    /// until it listens.
    pub fn serve(&self, args: &[&str]) -> Served {
        use std::io::BufRead;
        let mut command = self.command();
        command
            .args(["--json", "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (sender, receiver) = std::sync::mpsc::channel();
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(base) = line.strip_prefix("listening on ") {
                        let _ = sender.send(base.trim().to_string());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let base = receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "updater serve did not start:\n{}",
                    lines.lock().unwrap().join("\n")
                )
            });
        Served {
            child,
            base,
            stderr_lines: lines,
        }
    }
}
