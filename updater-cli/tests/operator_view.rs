//! Regression tests for issue 11 ("Hostile limits, correctness and the
//! operator's view"), through the `updater` binary: the `[package]` and
//! `[source]` limits of `updater.toml`, `check` and `apply` agreeing, what
//! history and notifications record when things go wrong, hooks and
//! maintenance commands run the right number of times, retention, restores
//! of preserved paths, and what the operator sees (no colour codes off a
//! terminal, one recovery notice, JSON usage errors, no state directory for
//! read-only commands, roles instead of command lines, cache notes, the
//! backup list header, progress up to 100 %, the confirmed version).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Fixture, Run, tar_gz};
use updater_testkit::http::{BodyMode, Reply, TestServer};
use updater_testkit::tree::snapshot;

// ------------------------------------------------------------- helpers

/// Inserts `lines` into the `[source]` table of the fixture's config.
fn set_in_source(f: &Fixture, lines: &str) {
    let text = std::fs::read_to_string(f.config_path()).unwrap();
    let text = text.replacen(
        "kind = \"manifest\"\n",
        &format!("kind = \"manifest\"\n{lines}\n"),
        1,
    );
    std::fs::write(f.config_path(), text).unwrap();
}

/// Points the fixture's config at another manifest.
fn use_manifest(f: &Fixture, url: &str) {
    let text = std::fs::read_to_string(f.config_path()).unwrap();
    std::fs::write(f.config_path(), text.replace(&f.server.manifest_url(), url)).unwrap();
}

/// The files the fixture's releases hold (as `ReleaseServer::publish`).
fn release_files(version: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("VERSION".to_string(), version.as_bytes().to_vec()),
        (
            "public/index.html".to_string(),
            format!("<h1>release {version}</h1>").into_bytes(),
        ),
        ("health-ok".to_string(), b"ok".to_vec()),
    ]
}

fn sha256_hex(dir: &Path, bytes: &[u8]) -> String {
    let path = dir.join("digest-input");
    std::fs::write(&path, bytes).unwrap();
    let (digest, _) = updater_core::package::sha256_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    digest.to_hex()
}

/// One release of a [`manifest_server`]: its archive, the query string its
/// asset URL carries, and how the archive goes on the wire.
struct Published {
    version: &'static str,
    archive: Vec<u8>,
    query: &'static str,
    mode: BodyMode,
}

/// A manifest server publishing `releases` (`app-<version>.tar.gz` each).
fn manifest_server(scratch: &Path, releases: Vec<Published>) -> TestServer {
    let manifest = json!({
        "schema_version": 1,
        "releases": releases.iter().map(|r| {
            let name = format!("app-{}.tar.gz", r.version);
            json!({
                "version": r.version,
                "changelog": format!("Release {}.", r.version),
                "assets": [{
                    "name": name,
                    "url": format!("{name}{}", r.query),
                    "size": r.archive.len(),
                    "sha256": sha256_hex(scratch, &r.archive),
                }],
            })
        }).collect::<Vec<_>>(),
    })
    .to_string();
    TestServer::start(move |request| {
        let path = request.path().trim_start_matches('/');
        if path == "manifest.json" {
            return Reply::json(200, manifest.clone());
        }
        match releases
            .iter()
            .find(|r| path == format!("app-{}.tar.gz", r.version))
        {
            Some(r) => Reply::ranged(request, &r.archive).mode(r.mode.clone()),
            None => Reply::new(404),
        }
    })
}

/// Bytes that do not compress (a xorshift stream).
fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn update_types(f: &Fixture, user: &str) -> Vec<(String, String)> {
    let (json, code) = f.json(&["notifications", "--all", "--user", user]);
    assert_eq!(code, 0, "{json}");
    json["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_string(),
                n["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `updater --config <fixture> <args>` on a pseudo-terminal (util-linux
/// `script`): its standard input is the terminal's, its output is collected.
struct OnTerminal {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    stdin: Option<std::process::ChildStdin>,
}

impl OnTerminal {
    fn start(f: &Fixture, args: &str, env: &[(&str, &str)]) -> OnTerminal {
        let line = format!(
            "'{}' --config '{}' {args}",
            env!("CARGO_BIN_EXE_updater"),
            f.config_path().display()
        );
        let mut command = Command::new("script");
        for name in updater_testkit::cli::OVERRIDES {
            command.env_remove(name);
        }
        command.env_remove("NO_COLOR").env_remove("RUST_LOG");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .args(["-qec", &line, "/dev/null"])
            .current_dir(f.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("util-linux `script`");
        let output: Arc<Mutex<Vec<u8>>> = Arc::default();
        let mut stdout = child.stdout.take().unwrap();
        {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            });
        }
        let stdin = child.stdin.take();
        OnTerminal {
            child,
            output,
            stdin,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output holds `text` (at most 60 s).
    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answer(&mut self, line: &str) {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
    }

    /// Waits for the end: the exit code and everything printed.
    fn finish(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        // The reader thread drains what is left after the exit.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = 0;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let len = self.output.lock().unwrap().len();
            if len == last {
                break;
            }
            last = len;
        }
        (status.code(), self.text())
    }
}

// ------------------------------------------------- 1. [package] limits

#[test]
fn package_limits_set_in_updater_toml_refuse_a_package_over_them_and_change_nothing() {
    // Unpacks to ~20:1: under the default ratio limit (200), over 10.
    let compressible: Vec<u8> = incompressible(2 << 20)
        .into_iter()
        .enumerate()
        .map(|(i, b)| if i % 100 == 0 { b } else { b'a' })
        .collect();
    let ratio = compressible.len() / tar_gz(&[("big.txt".to_string(), compressible.clone())]).len();
    assert!(
        (15..150).contains(&ratio),
        "the fixture compresses {ratio}:1, meant to be between the limits"
    );
    let many: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("public/file-{i}.txt"), b"x".to_vec()))
        .collect();
    for (limit, files, expected) in [
        ("max_entries = 5", many, "more than 5 entries".to_string()),
        (
            "max_unpacked_mib = 1",
            vec![("big.bin".to_string(), incompressible(2 << 20))],
            format!("unpacked size exceeds {} bytes", 1 << 20),
        ),
        (
            "max_compression_ratio = 10",
            vec![("big.txt".to_string(), compressible)],
            "(the limit is 10:1)".to_string(),
        ),
    ] {
        let f = support::fixture();
        f.write_config(&format!("\n[package]\n{limit}\n"));
        let mut release = release_files("1.1.0");
        release.extend(files);
        f.server.publish_files("1.1.0", &release);
        let before = snapshot(&f.app());

        let (json, code) = f.json(&["apply", "--yes"]);
        assert_eq!(code, 1, "{limit}: {json}");
        assert_eq!(json["error"]["kind"], "step_failed", "{limit}: {json}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&expected),
            "{limit}: {expected:?} not in {message}"
        );
        assert_eq!(snapshot(&f.app()), before, "{limit}: nothing changed");
        assert_eq!(f.app_version(), "1.0.0");
        let (backups, _) = f.json(&["backup", "list"]);
        assert_eq!(backups["backups"], json!([]), "{limit}: no backup taken");
        let (history, _) = f.json(&["history"]);
        assert_eq!(history["updates"][0]["status"], "failed", "{limit}");
    }
}

#[test]
fn bad_package_and_transfer_limits_are_refused_by_config_check_naming_the_key() {
    let f = support::fixture();
    for (table, line, key, message) in [
        (
            "package",
            "max_unpacked_mib = 0",
            "package.max_unpacked_mib",
            "must be positive",
        ),
        (
            "package",
            "max_entries = 0",
            "package.max_entries",
            "must be positive",
        ),
        (
            "package",
            "max_compression_ratio = 1",
            "package.max_compression_ratio",
            "must be at least 2",
        ),
        (
            "source",
            "transfer_deadline_secs = 0",
            "source.transfer_deadline_secs",
            "must be positive",
        ),
        (
            "source",
            "minimum_speed_window_secs = 0",
            "source.minimum_speed_window_secs",
            "must be positive",
        ),
    ] {
        if table == "package" {
            f.write_config(&format!("\n[package]\n{line}\n"));
        } else {
            f.write_config("");
            set_in_source(&f, line);
        }
        let config_line = std::fs::read_to_string(f.config_path())
            .unwrap()
            .lines()
            .position(|l| l == line)
            .unwrap()
            + 1;
        let run = f.run(&["config", "check"]);
        assert_eq!(run.code, 2, "{line}: {}", run.stderr);
        let expected = format!("updater.toml:{config_line}: key `{key}`: {message}");
        assert!(
            run.stderr.contains(&expected),
            "{expected:?} not in {}",
            run.stderr
        );
        let (json, code) = f.json(&["config", "check"]);
        assert_eq!(code, 2);
        assert_eq!(json["error"]["kind"], "config_value", "{line}");
    }
}

// --------------------------------------------- 2. [source] transfer limits

/// A manifest server whose 1.1.0 package of 64 KiB trickles at `chunk`
/// bytes every 100 ms.
fn trickling_server(f: &Fixture, chunk: usize) -> TestServer {
    let mut files = release_files("1.1.0");
    files.push(("filler.bin".to_string(), incompressible(64 << 10)));
    manifest_server(
        f.dir.path(),
        vec![Published {
            version: "1.1.0",
            archive: tar_gz(&files),
            query: "",
            mode: BodyMode::Trickle {
                chunk,
                delay: Duration::from_millis(100),
            },
        }],
    )
}

#[test]
fn a_trickling_package_is_stopped_at_the_configured_transfer_deadline() {
    let f = support::fixture();
    // 100 B/s: above the minimum speed (turned off), ten minutes in all.
    let server = trickling_server(&f, 10);
    use_manifest(&f, &server.url("/manifest.json"));
    set_in_source(&f, "transfer_deadline_secs = 3\nminimum_speed_bytes = 0");
    let before = snapshot(&f.app());

    let started = Instant::now();
    let (json, code) = f.json(&["apply", "--yes"]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("app-1.1.0.tar.gz")
            && message.contains("did not finish within its transfer deadline of 3 s"),
        "{message}"
    );
    assert!(
        took < Duration::from_secs(15),
        "stopped after {took:?}, the deadline is 3 s"
    );
    assert_eq!(snapshot(&f.app()), before);
    assert_eq!(f.json(&["backup", "list"]).0["backups"], json!([]));
}

#[test]
fn a_trickling_package_is_stopped_by_the_configured_minimum_speed() {
    let f = support::fixture();
    // 100 B/s, below the 4 KiB/s asked for over 2 s; the deadline is far.
    let server = trickling_server(&f, 10);
    use_manifest(&f, &server.url("/manifest.json"));
    set_in_source(
        &f,
        "transfer_deadline_secs = 600\nminimum_speed_bytes = 4096\nminimum_speed_window_secs = 2",
    );

    let started = Instant::now();
    let (json, code) = f.json(&["apply", "--yes"]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("is too slow")
            && message.contains("below the minimum of 4096 bytes/s over 2 s"),
        "{message}"
    );
    assert!(
        took < Duration::from_secs(15),
        "stopped after {took:?}, the window is 2 s"
    );
    assert_eq!(f.app_version(), "1.0.0");
}

// ------------------------------------------------ 3. check and apply agree

#[test]
fn check_and_apply_agree_on_a_downgrade_that_only_allow_downgrade_permits() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    assert_eq!(f.json(&["apply", "--yes"]).1, 0);
    assert_eq!(f.app_version(), "1.1.0");
    // 1.1.0 is withdrawn: the newest release of the channel is 1.0.0 again.
    let older = support::ReleaseServer::start();
    older.publish("1.0.0", true);
    use_manifest(&f, &older.manifest_url());

    let (check, code) = f.json(&["check", "--force"]);
    assert_eq!(code, 0, "{check}");
    assert_eq!(check["update_available"], false);
    assert_eq!(check["latest"], "1.0.0");
    let (apply, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 0, "{apply}");
    assert_eq!(apply["outcome"], "up_to_date");
    assert_eq!(f.app_version(), "1.1.0");

    let allowed = |args: &[&str]| {
        let run = Run::from(
            f.command()
                .arg("--json")
                .args(args)
                .env("ALLOW_DOWNGRADE", "true")
                .output()
                .unwrap(),
        );
        (run.json(), run.code)
    };
    let (check, code) = allowed(&["check", "--force"]);
    assert_eq!(code, 3, "{check}");
    assert_eq!(check["update_available"], true);
    assert_eq!(check["update_type"], "downgrade");
    assert_eq!(check["latest"], "1.0.0");
    let (apply, code) = allowed(&["apply", "--yes"]);
    assert_eq!(code, 0, "{apply}");
    assert_eq!(apply["outcome"], "updated");
    assert_eq!(apply["to"], "1.0.0");
    assert_eq!(apply["update_type"], "downgrade");
    assert_eq!(f.app_version(), "1.0.0");
}

// ------------------------------------- 4.-6. history and notifications

#[test]
fn a_failed_release_lookup_during_apply_leaves_a_failed_record_and_a_notice() {
    let f = support::fixture();
    use_manifest(&f, "http://127.0.0.1:9/manifest.json");
    let (json, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["error"]["kind"], "step_failed");

    let (history, _) = f.json(&["history"]);
    let updates = history["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1, "{history}");
    assert_eq!(updates[0]["status"], "failed");
    assert_eq!(updates[0]["previous_version"], "1.0.0");
    assert!(
        updates[0]["error_message"]
            .as_str()
            .unwrap()
            .starts_with("check: "),
        "{history}"
    );
    let steps = updates[0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{history}");
    assert_eq!(steps[0]["name"], "check");
    assert_eq!(steps[0]["outcome"], "failed");

    for admin in ["alice", "bob"] {
        let notices = update_types(&f, admin);
        assert_eq!(notices.len(), 1, "{admin}: {notices:?}");
        assert_eq!(notices[0].0, "update_failed");
        assert!(
            notices[0]
                .1
                .starts_with("update failed: the release lookup failed: ")
                && notices[0].1.ends_with("nothing was changed"),
            "{notices:?}"
        );
    }
}

#[test]
fn a_failing_after_rollback_hook_is_recorded_in_the_rolled_back_update() {
    let f = support::fixture();
    f.write_config("\n[hooks]\nafter_rollback = [\"echo broken hook >&2; exit 7\"]\n");
    f.server.publish("1.1.0", false);
    let (json, code) = f.json(&["apply", "--yes", "--no-backup"]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["error"]["kind"], "rolled_back");
    assert_eq!(f.app_version(), "1.0.0");

    let (history, _) = f.json(&["history"]);
    let update = &history["updates"][0];
    assert_eq!(update["status"], "rolled_back", "the undo itself succeeded");
    let error = update["error_message"].as_str().unwrap();
    assert!(
        error.contains("(undo warnings: rollback hook command `hooks.after_rollback[0]: ")
            && error
                .ends_with("(hook after_rollback) failed: exit status: 7; output: broken hook)"),
        "{error}"
    );
    let rollback = update["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback step in {update}"));
    assert_eq!(rollback["outcome"], "succeeded");
    let message = rollback["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "1.0.0 is running again; warnings: rollback hook command `hooks.after_rollback[0]: "
        ),
        "{message}"
    );
}

#[test]
fn an_update_whose_rollback_fails_is_recorded_as_needs_operator_with_the_reason() {
    let f = support::fixture();
    // Maintenance cannot be turned off: the undo of the failed update stops.
    f.write_config("\n[maintenance]\nenable = \"true\"\ndisable = \"exit 1\"\n");
    f.server.publish("1.1.0", false);
    let (json, code) = f.json(&["apply", "--yes", "--no-backup"]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["error"]["kind"], "needs_operator");

    let (history, _) = f.json(&["history"]);
    let update = &history["updates"][0];
    assert_eq!(update["version"], "1.1.0");
    assert_eq!(update["status"], "needs_operator", "{update}");
    let error = update["error_message"].as_str().unwrap_or_default();
    assert!(
        error.contains("the rollback failed too") && error.contains("updater recover"),
        "{update}"
    );
}

// ------------------------------------------------- 7.-9. the pipeline

#[test]
fn maintenance_disable_runs_exactly_once_on_a_successful_update() {
    let f = support::fixture();
    let log = f.dir.path().join("maintenance.log");
    f.write_config(&format!(
        "\n[maintenance]\nenable = \"echo enable >> '{0}'\"\ndisable = \"echo disable >> '{0}'\"\n",
        log.display()
    ));
    f.server.publish("1.1.0", true);
    let (json, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "enable\ndisable\n");
}

#[test]
fn updater_rollback_runs_the_after_rollback_hooks_and_not_the_after_swap_ones() {
    let f = support::fixture();
    let log = f.dir.path().join("hooks.log");
    f.write_config(&format!(
        "\n[hooks]\nafter_swap = [\"echo after_swap $UPDATER_FROM_VERSION-$UPDATER_TO_VERSION >> '{0}'\"]\nafter_rollback = [\"echo after_rollback $UPDATER_FROM_VERSION-$UPDATER_TO_VERSION >> '{0}'\"]\n",
        log.display()
    ));
    f.server.publish("1.1.0", true);
    assert_eq!(f.json(&["apply", "--yes"]).1, 0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "after_swap 1.0.0-1.1.0\n"
    );
    let (json, code) = f.json(&["rollback", "--yes"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "after_swap 1.0.0-1.1.0\nafter_rollback 1.1.0-1.0.0\n"
    );
}

#[test]
fn every_apply_prunes_the_backups_to_the_configured_retention() {
    let f = support::fixture();
    // The fixture's config keeps 2 backups.
    let mut taken = Vec::new();
    for version in ["1.1.0", "1.2.0", "1.3.0", "1.4.0"] {
        f.server.publish(version, true);
        let (json, code) = f.json(&["apply", "--yes"]);
        assert_eq!(code, 0, "{json}");
        taken.push(json["backup_id"].as_str().unwrap().to_string());
    }
    let (list, _) = f.json(&["backup", "list"]);
    let ids: Vec<&str> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [taken[2].as_str(), taken[3].as_str()],
        "the two newest"
    );
}

#[test]
fn a_download_that_fails_verification_leaves_no_backup() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    // The file on the server is not the one the manifest describes.
    f.server.serve(
        "app-1.1.0.tar.gz",
        &tar_gz(&[("VERSION".to_string(), b"tampered".to_vec())]),
    );
    let before = snapshot(&f.app());
    let (json, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 1, "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("app-1.1.0.tar.gz"), "{message}");
    assert_eq!(f.json(&["backup", "list"]).0["backups"], json!([]));
    assert_eq!(snapshot(&f.app()), before);
    let (history, _) = f.json(&["history"]);
    assert_eq!(history["updates"][0]["status"], "failed");
    assert!(
        history["updates"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "backup"),
        "{history}"
    );
}

// ------------------------------------------------------- 11. restores

#[test]
fn a_restore_keeps_a_changed_preserved_path_unless_asked_to_put_it_back() {
    let f = support::fixture();
    let (created, code) = f.json(&["backup", "create"]);
    assert_eq!(code, 0, "{created}");
    let id = created["backup"]["id"].as_str().unwrap().to_string();
    std::fs::write(f.app().join(".env"), "APP_KEY=changed").unwrap();
    std::fs::write(f.app().join("public/index.html"), "broken by hand").unwrap();

    let (restored, code) = f.json(&["backup", "restore", &id, "--yes"]);
    assert_eq!(code, 0, "{restored}");
    assert_eq!(
        std::fs::read_to_string(f.app().join("public/index.html")).unwrap(),
        "<h1>release 1.0.0</h1>"
    );
    assert_eq!(
        std::fs::read_to_string(f.app().join(".env")).unwrap(),
        "APP_KEY=changed",
        "a preserved path is kept by default"
    );

    let (restored, code) = f.json(&["backup", "restore", &id, "--include-preserved", "--yes"]);
    assert_eq!(code, 0, "{restored}");
    assert_eq!(
        std::fs::read_to_string(f.app().join(".env")).unwrap(),
        "APP_KEY=kept",
        "--include-preserved puts it back"
    );
}

#[test]
fn the_restore_prompt_says_what_it_overwrites_and_what_it_keeps() {
    let f = support::fixture();
    let (created, code) = f.json(&["backup", "create"]);
    assert_eq!(code, 0, "{created}");
    let id = created["backup"]["id"].as_str().unwrap().to_string();
    let app = f.app().display().to_string();
    for (flags, preserved) in [
        (
            "",
            "Preserved paths (.env) and application data the backup does not hold are kept.",
        ),
        (
            " --include-preserved",
            "Preserved paths (.env) are put back from the backup too.",
        ),
    ] {
        let mut terminal = OnTerminal::start(&f, &format!("backup restore {id}{flags}"), &[]);
        terminal.wait_for("[y/N]");
        terminal.answer("n");
        let (code, text) = terminal.finish();
        for expected in [
            format!("Restore backup {id} (files_only, version 1.0.0, "),
            format!(") over {app} (running 1.0.0)?"),
            "The application files become the backup's; the replaced ones stay in the kept release (updater rollback).".to_string(),
            preserved.to_string(),
        ] {
            assert!(text.contains(&expected), "{expected:?} not in:\n{text}");
        }
        assert_eq!(code, Some(1), "{text}");
    }
}

// --------------------------------------------------------- 12. history

#[test]
fn the_history_of_an_update_has_its_changelog_checksum_size_and_url_without_query() {
    let f = support::fixture();
    let archive = tar_gz(&release_files("1.1.0"));
    let sha = sha256_hex(f.dir.path(), &archive);
    let server = manifest_server(
        f.dir.path(),
        vec![
            Published {
                version: "1.0.0",
                archive: tar_gz(&release_files("1.0.0")),
                query: "",
                mode: BodyMode::Full,
            },
            Published {
                version: "1.1.0",
                archive: archive.clone(),
                query: "?X-Amz-Signature=very-secret-signature&X-Amz-Expires=300",
                mode: BodyMode::Full,
            },
        ],
    );
    use_manifest(&f, &server.url("/manifest.json"));
    let (json, code) = f.json(&["apply", "--yes"]);
    assert_eq!(code, 0, "{json}");

    let run = f.run(&["--json", "history"]);
    assert!(
        !run.stdout.contains("very-secret-signature"),
        "{}",
        run.stdout
    );
    let update = &run.json()["updates"][0];
    assert_eq!(update["status"], "completed");
    assert_eq!(update["changelog"], "Release 1.1.0.");
    assert_eq!(
        update["download_url"],
        server.url("/app-1.1.0.tar.gz").as_str()
    );
    assert_eq!(update["checksum"], sha.as_str());
    assert_eq!(update["download_size"], archive.len());
}

#[test]
fn a_restore_is_listed_in_history() {
    let f = support::fixture();
    let (created, _) = f.json(&["backup", "create"]);
    let id = created["backup"]["id"].as_str().unwrap().to_string();
    let (restored, code) = f.json(&["backup", "restore", &id, "--yes"]);
    assert_eq!(code, 0, "{restored}");

    let (history, _) = f.json(&["history"]);
    let updates = history["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1, "{history}");
    assert_eq!(updates[0]["id"], restored["update_id"]);
    assert_eq!(updates[0]["status"], "completed");
    assert_eq!(updates[0]["version"], "1.0.0");
    assert!(
        updates[0]["changelog"]
            .as_str()
            .unwrap()
            .starts_with(&format!("restore of backup {id}")),
        "{}",
        updates[0]
    );
}

// -------------------------------------------------- 13. operator's view

#[test]
fn logs_carry_no_colour_codes_off_a_terminal() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    let run = f.run(&["-v", "apply", "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(" INFO "), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
}

#[test]
fn on_a_terminal_logs_are_coloured_unless_no_color_is_set() {
    let f = support::fixture();
    let coloured = OnTerminal::start(&f, "-vv status", &[]).finish().1;
    assert!(coloured.contains("DEBUG"), "{coloured}");
    assert!(coloured.contains("\u{1b}["), "{coloured:?}");
    let plain = OnTerminal::start(&f, "-vv status", &[("NO_COLOR", "1")])
        .finish()
        .1;
    assert!(plain.contains("DEBUG"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
}

#[test]
fn the_recovery_notice_is_printed_exactly_once() {
    let f = support::fixture();
    std::fs::create_dir_all(f.app().join(".updater")).unwrap();
    let notice = updater_core::maintenance::MaintenanceNotice::new(
        "crashed mid-update",
        Duration::from_secs(60),
    )
    .unwrap();
    std::fs::write(
        f.app().join(".updater/maintenance.json"),
        serde_json::to_vec(&notice).unwrap(),
    )
    .unwrap();
    let run = f.run(&["status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with(
            "recovery: cleared a maintenance flag left behind (\"crashed mid-update\", since "
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_usage_error_under_json_is_one_json_object_of_kind_usage() {
    let f = support::fixture();
    for args in [
        vec!["--json", "frobnicate"],
        vec!["--json", "history", "--limit", "many"],
        vec!["unlock", "--json"],
    ] {
        let run = f.run(&args);
        assert_eq!(run.code, 2, "{args:?}");
        let json = run.json();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["error"],
            "{json}"
        );
        assert_eq!(json["error"]["kind"], "usage", "{args:?}");
        assert_eq!(json["error"]["exit_code"], 2);
        assert!(
            !json["error"]["message"].as_str().unwrap().is_empty(),
            "{json}"
        );
        assert_eq!(run.stderr, "", "{args:?}: nothing but the object");
    }
    // Help is still help.
    let help = f.run(&["--json", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Usage:"), "{}", help.stdout);
}

#[test]
fn read_only_commands_on_a_fresh_app_create_no_state_directory() {
    let f = support::fixture();
    let state = f.app().join(".updater");
    for args in [
        vec!["status"],
        vec!["history"],
        vec!["config", "check"],
        vec!["backup", "list"],
        vec!["--json", "status"],
    ] {
        let run = f.run(&args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(!state.exists(), "{args:?} created {}", state.display());
    }
}

#[test]
fn commands_that_never_ask_the_source_work_without_its_token() {
    let f = support::fixture();
    f.write_config("");
    set_in_source(&f, "token_env = \"UPDATER_TEST_TOKEN_NEVER_SET\"");
    for args in [vec!["status"], vec!["history"], vec!["backup", "create"]] {
        let run = f.run(&args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    }
    // Asking the source still needs it, and says which variable.
    let (json, code) = f.json(&["check"]);
    assert_eq!(code, 2, "{json}");
    assert_eq!(json["error"]["kind"], "config_value");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "key `source.token_env`: environment variable UPDATER_TEST_TOKEN_NEVER_SET is not set"
        ),
        "{message}"
    );
}

#[test]
fn a_failing_migration_is_named_by_its_role_without_its_command_line() {
    let f = support::fixture();
    f.write_config("\n[migrations]\nup = \"false --password=hunter2-secret\"\ndown = \"true\"\n");
    f.server.publish("1.1.0", true);
    let run = f.run(&["--json", "apply", "--yes", "--no-backup"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let message = run.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(
            "command `migrations.up: false --password=***` (migrate) failed: exit status: 1"
        ),
        "{message}"
    );
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains("hunter2-secret"), "{output}");
    }
    let (history, _) = f.json(&["history"]);
    let record = history["updates"][0].to_string();
    assert!(record.contains("migrations.up"), "{record}");
    assert!(!record.contains("hunter2-secret"), "{record}");
}

#[test]
fn check_answered_from_the_cache_says_so_and_how_to_force() {
    let f = support::fixture();
    let fresh = f.run(&["check"]);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(!fresh.stdout.contains("--force"), "{}", fresh.stdout);
    let cached = f.run(&["check"]);
    assert_eq!(cached.code, 0);
    assert!(
        cached.stdout.ends_with(
            "(answered from the last check, younger than the cache window; `updater check --force` asks the source)\n"
        ),
        "{}",
        cached.stdout
    );
    let forced = f.run(&["check", "--force"]);
    assert!(
        !forced.stdout.contains("answered from"),
        "{}",
        forced.stdout
    );
}

#[test]
fn backup_list_plain_output_starts_with_a_header_line() {
    let f = support::fixture();
    let (created, _) = f.json(&["backup", "create"]);
    let id = created["backup"]["id"].as_str().unwrap().to_string();
    let run = f.run(&["backup", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "CREATED", "(UTC)", "VERSION", "SIZE", "STATUS"]
    );
    assert!(lines[1].starts_with(&id), "{}", run.stdout);
}

#[test]
fn the_plain_progress_of_apply_reaches_100_percent() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    let run = f.run(&["apply", "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let progress: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with('[')).collect();
    let last = progress.last().unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(last.starts_with("[100%] maintenance_off"), "{}", run.stderr);
}

// -------------------------------------------------- 14. on a terminal

#[test]
fn on_a_terminal_apply_installs_the_version_that_was_confirmed() {
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    let mut terminal = OnTerminal::start(&f, "apply", &[]);
    terminal.wait_for("Update the application from 1.0.0 to 1.1.0 (");
    terminal.wait_for("[y/N]");
    // A newer release appears while the operator reads the question.
    f.server.publish("1.2.0", true);
    terminal.answer("y");
    let (code, text) = terminal.finish();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Updated 1.0.0 -> 1.1.0"), "{text}");
    assert_eq!(f.app_version(), "1.1.0", "what was confirmed, not 1.2.0");
}
