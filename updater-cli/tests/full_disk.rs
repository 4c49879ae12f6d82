//! The `updater` binary on a full disk: the application directory is a
//! small tmpfs (needs root; skipped with a message otherwise, a failure under
//! `CI=true`). An update that does not fit is refused before anything
//! changes, with an error that says so; on a disk filled to the last byte,
//! `status`, `recover` and `apply` answer quickly and change nothing; and
//! once space is freed, the update goes through.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use updater_testkit::cli::Fixture;
use updater_testkit::disk::Tmpfs;

/// A tmpfs mounted over the fixture's application directory (its files
/// copied in), unmounted on drop.
struct SmallDisk {
    at: PathBuf,
    _tmpfs: Tmpfs,
}

impl SmallDisk {
    fn over(app: &Path, size: &str) -> Option<SmallDisk> {
        // Checked first: the application is moved aside only to be copied back.
        if !updater_testkit::services::require(
            updater_testkit::disk::is_root(),
            "not root: cannot mount a small tmpfs",
        ) {
            return None;
        }
        let saved = app.with_extension("saved");
        std::fs::rename(app, &saved).unwrap();
        let tmpfs = Tmpfs::mount(app, size)?;
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", saved.display()))
            .arg(app)
            .status()
            .unwrap();
        assert!(copied.success());
        std::fs::remove_dir_all(&saved).unwrap();
        Some(SmallDisk {
            at: app.to_path_buf(),
            _tmpfs: tmpfs,
        })
    }

    /// Fills the disk with `name` until writing fails (leaving `leave` bytes).
    fn fill(&self, name: &str, leave: u64) {
        let path = self.at.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            let free = self.free();
            if free <= leave {
                break;
            }
            let n = usize::try_from((free - leave).min(chunk.len() as u64)).unwrap();
            if file.write_all(&chunk[..n]).is_err() {
                break;
            }
        }
        let _ = file.sync_all();
    }

    fn free(&self) -> u64 {
        let stats = rustix::fs::statvfs(&self.at).unwrap();
        stats.f_bavail * stats.f_frsize
    }
}

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    updater_testkit::tree::files_skipping(root, &[".updater", "storage/filler.bin"])
}

/// 1.0.1 ships a 3 MiB asset (incompressible, so the package is 3 MiB too).
fn publish_big_release(f: &Fixture) {
    let mut noise = Vec::with_capacity(3 << 20);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while noise.len() < 3 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.extend_from_slice(&state.to_le_bytes());
    }
    f.server.publish_files(
        "1.0.1",
        &[
            ("VERSION".to_string(), b"1.0.1".to_vec()),
            ("public/index.html".to_string(), b"<h1>1.0.1</h1>".to_vec()),
            ("public/video.bin".to_string(), noise),
            ("health-ok".to_string(), b"ok".to_vec()),
        ],
    );
}

fn quick(f: &Fixture, args: &[&str]) -> (serde_json::Value, i32, Duration) {
    let started = Instant::now();
    let (json, code) = f.json(args);
    (json, code, started.elapsed())
}

#[test]
fn an_update_that_does_not_fit_is_refused_before_anything_changes_and_runs_once_space_is_freed() {
    let f = support::fixture();
    // No margin: the test controls exactly how much space there is.
    f.write_config("[package]\nfree_space_margin_percent = 0\nfree_space_margin_mib = 0\n");
    publish_big_release(&f);
    let Some(disk) = SmallDisk::over(&f.app(), "48m") else {
        return;
    };
    // Record the history once while there is room.
    assert_eq!(f.run(&["check"]).code, 3);
    disk.fill("storage/filler.bin", 4 << 20);
    let before = tree(&f.app());

    let (refused, code, took) = quick(&f, &["apply", "--yes"]);
    assert_ne!(code, 0, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("space") || message.contains("bytes"),
        "the error does not say what is missing: {message}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(
        tree(&f.app()),
        before,
        "a refused update changed the application"
    );
    let (status, _, _) = quick(&f, &["status"]);
    assert_eq!(status["transition"], serde_json::Value::Null, "{status}");
    assert_eq!(status["maintenance"], serde_json::Value::Null, "{status}");
    assert_eq!(status["current"], "1.0.0");

    std::fs::remove_file(f.app().join("storage/filler.bin")).unwrap();
    let (applied, code, _) = quick(&f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{applied}");
    assert_eq!(f.app_version(), "1.0.1");
    assert_eq!(
        std::fs::read(f.app().join(".env")).unwrap(),
        b"APP_KEY=kept"
    );
}

#[test]
fn on_a_disk_full_to_the_last_byte_every_command_answers_quickly_and_changes_nothing() {
    let f = support::fixture();
    publish_big_release(&f);
    let Some(disk) = SmallDisk::over(&f.app(), "24m") else {
        return;
    };
    assert_eq!(f.run(&["check"]).code, 3);
    disk.fill("storage/filler.bin", 0);
    let before = tree(&f.app());

    for args in [
        &["status"][..],
        &["recover"],
        &["history"],
        &["apply", "--yes"],
        &["backup", "create"],
        &["rollback", "--yes"],
    ] {
        let (json, code, took) = quick(&f, args);
        assert!(
            took < Duration::from_secs(20),
            "{args:?} took {took:?}: {json}"
        );
        if matches!(args[0], "status" | "recover" | "history") {
            assert_eq!(code, 0, "{args:?} failed on a full disk: {json}");
        } else {
            assert_ne!(code, 0, "{args:?} succeeded on a full disk?");
            assert!(json["error"]["message"].is_string(), "{args:?}: {json}");
        }
        assert_eq!(tree(&f.app()), before, "{args:?} changed the application");
    }
    let (status, _, _) = quick(&f, &["status"]);
    assert_eq!(status["transition"], serde_json::Value::Null, "{status}");
    assert_eq!(status["lock_holder"], serde_json::Value::Null, "{status}");
}

/// Kills `apply` after `after`, then fills the disk to the last byte.
fn killed_then_full(f: &Fixture, disk: &SmallDisk, after: Duration) -> bool {
    let interrupted = support::kill_after(f, &["apply", "--yes"], after);
    disk.fill("storage/filler.bin", 0);
    interrupted
}

#[test]
fn an_update_killed_and_then_starved_of_space_is_recovered_on_the_full_disk() {
    const CONFIG: &str = "[migrations]\nup = \"sleep 0.3\"\ndown = \"true\"\n[package]\nfree_space_margin_percent = 0\nfree_space_margin_mib = 0\n";
    // How long an uninterrupted update takes on such a disk.
    let timing = support::fixture();
    timing.write_config(CONFIG);
    timing.server.publish("1.0.1", true);
    let Some(_timing_disk) = SmallDisk::over(&timing.app(), "24m") else {
        return;
    };
    let started = Instant::now();
    let run = timing.run(&["apply", "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let total = started.elapsed();

    let mut recovered = BTreeMap::<String, u32>::new();
    for i in 0..8_u32 {
        let f = support::fixture();
        f.write_config(CONFIG);
        f.server.publish("1.0.1", true);
        let Some(disk) = SmallDisk::over(&f.app(), "24m") else {
            return;
        };
        let after = total.mul_f64(0.1 + f64::from(i) / 9.0);
        let interrupted = killed_then_full(&f, &disk, after);
        let run = f.run(&["recover"]);
        let what = format!("killed after {after:?} (interrupted: {interrupted})");
        assert_eq!(
            run.code, 0,
            "{what}: recover on a full disk failed: {}",
            run.stderr
        );
        let version = f.app_version();
        let expected: BTreeMap<String, Vec<u8>> = [
            ("VERSION".to_string(), version.clone().into_bytes()),
            (
                "public/index.html".to_string(),
                format!("<h1>release {version}</h1>").into_bytes(),
            ),
            ("health-ok".to_string(), b"ok".to_vec()),
            (".env".to_string(), b"APP_KEY=kept".to_vec()),
        ]
        .into();
        assert_eq!(tree(&f.app()), expected, "{what}: not one whole release");
        support::assert_settled(&f, &what);
        *recovered
            .entry(format!("{version} (interrupted: {interrupted})"))
            .or_default() += 1;
    }
    println!("outcomes after kill + full disk + recover: {recovered:?}");
    let interrupted: u32 = recovered
        .iter()
        .filter(|(k, _)| k.ends_with("(interrupted: true)"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        interrupted >= 4,
        "too few kills landed inside the update: {recovered:?}"
    );
}
