//! Test fixtures: a demo application, a release server on 127.0.0.1
//! serving a manifest and tar.gz assets, and a runner for the real binary.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Environment variables that would override the test's config file.
const OVERRIDES: [&str; 12] = [
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

/// A release server: `/manifest.json` and `/<asset>`.
pub struct ReleaseServer {
    pub base: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    releases: Arc<Mutex<Vec<Value>>>,
}

impl ReleaseServer {
    pub fn start() -> ReleaseServer {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let releases: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (f, r) = (Arc::clone(&files), Arc::clone(&releases));
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let path = request.url().trim_start_matches('/').to_string();
                let body = if path == "manifest.json" {
                    Some(
                        serde_json::to_vec(&json!({
                            "schema_version": 1,
                            "releases": *r.lock().unwrap(),
                        }))
                        .unwrap(),
                    )
                } else {
                    f.lock().unwrap().get(&path).cloned()
                };
                let _ = match body {
                    Some(bytes) => request.respond(tiny_http::Response::from_data(bytes)),
                    None => request.respond(tiny_http::Response::empty(404)),
                };
            }
        });
        ReleaseServer {
            base: format!("http://127.0.0.1:{port}"),
            files,
            releases,
        }
    }

    /// Serves `bytes` at `/<path>`.
    pub fn serve(&self, path: &str, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), bytes.to_vec());
    }

    pub fn manifest_url(&self) -> String {
        format!("{}/manifest.json", self.base)
    }

    /// Publishes `version` whose tree holds `VERSION`, `public/index.html`
    /// and, when `healthy`, the `health-ok` file the health check looks for.
    pub fn publish(&self, version: &str, healthy: bool) {
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
        let archive = tar_gz(&files);
        let name = format!("app-{version}.tar.gz");
        let sha = hex::encode(Sha256::digest(&archive));
        self.releases.lock().unwrap().push(json!({
            "version": version,
            "changelog": format!("Release {version}."),
            "assets": [{ "name": name, "url": name, "size": archive.len(), "sha256": sha }],
        }));
        self.files.lock().unwrap().insert(name, archive);
    }
}

pub fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, data.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A demo application at 1.0.0 with a config file next to it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub server: ReleaseServer,
}

impl Fixture {
    /// App 1.0.0 installed by hand, its release (1.0.0) published on the
    /// release server (so the first update knows what 1.0.0 shipped), default config.
    pub fn new() -> Fixture {
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
        };
        fixture.server.publish("1.0.0", true);
        fixture.write_config("");
        fixture
    }

    pub fn app(&self) -> PathBuf {
        self.dir.path().join("app")
    }

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

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updater"));
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

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command().args(args).output().unwrap())
    }

    pub fn json(&self, args: &[&str]) -> (Value, i32) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        (run.json(), run.code)
    }

    pub fn app_version(&self) -> String {
        std::fs::read_to_string(self.app().join("VERSION")).unwrap()
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
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
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}
