//! Embedding the updater in an application: `recover()` at startup, a
//! background thread that checks for releases, and an update triggered from
//! the application's own code (here: as soon as one is found).
//!
//! Run: `cargo run --example embed`

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use updater_core::command::ShellCommand;
use updater_core::health::CommandHealthCheck;
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, RecoveryAction, Updater, UpdaterBuilder};
use updater_core::progress::NoProgress;
use updater_core::source::LocalDirectorySource;
use updater_core::version::Version;
use updater_source_github::ManifestSource;
use updater_testkit::demo;
use updater_testkit::http::StaticServer;

/// The application: it owns the updater and shares it with its threads.
struct Application {
    updater: Arc<Updater>,
}

impl Application {
    #[allow(clippy::print_stdout)]
    fn start(updater: Updater) -> Result<Application, Box<dyn std::error::Error>> {
        // First thing at startup: finish or undo an update a crash interrupted.
        let report = updater.recover()?;
        match report.action {
            RecoveryAction::Nothing => println!("startup: nothing to recover"),
            other => println!("startup: recovered: {other:?}"),
        }
        Ok(Application {
            updater: Arc::new(updater),
        })
    }

    /// Checks every `interval` in the background; reports available versions.
    fn spawn_checker(&self, interval: Duration, rounds: u32) -> mpsc::Receiver<Version> {
        let (sender, receiver) = mpsc::channel();
        let updater = Arc::clone(&self.updater);
        std::thread::spawn(move || {
            for _ in 0..rounds {
                // `check(false)` answers from the history cache inside the cache window.
                match updater.check(false) {
                    Ok(report) if report.update_available => {
                        if let Some(release) = report.latest {
                            let _ = sender.send(release.version);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "update check failed; will retry"),
                }
                std::thread::sleep(interval);
            }
        });
        receiver
    }
}

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let app_dir = work.path().join("app");
    demo::create_app(&app_dir, "1.0.0")?;
    let site = LocalDirectorySource::new(work.path().join("site"));
    site.publish(
        &Version::new(1, 1, 0),
        &demo::build_release(work.path(), "1.1.0", true)?,
        "Embedded update",
        None,
    )?;
    let server = StaticServer::serve(site.directory(), Vec::new())?;

    let updater = UpdaterBuilder::new(&app_dir)
        .with_source(
            ManifestSource::builder(format!("{}/manifest.json", server.address())).build()?,
        )
        .with_health_check(Arc::new(CommandHealthCheck::new(ShellCommand::new(
            "bin/health",
        ))))
        .configure(|c| c.check_cache = Duration::from_secs(60))
        .build()?;
    let app = Application::start(updater)?;

    let found = app.spawn_checker(Duration::from_millis(100), 3);
    if let Ok(version) = found.recv_timeout(Duration::from_secs(10)) {
        println!("background check: {version} is available; updating from application code");
        // Long work: a web application would run this on a worker thread
        // (or `tokio::task::spawn_blocking`) and show progress events.
        let request = ApplyRequest {
            auto_update: true,
            ..ApplyRequest::latest("embed").with_version(version)
        };
        match app.updater.apply(&request, &NoProgress)? {
            ApplyOutcome::Updated(report) => println!(
                "updated {} -> {} with a {:.1} ms maintenance window",
                report.from,
                report.to,
                report.maintenance_window.as_secs_f64() * 1000.0
            ),
            ApplyOutcome::UpToDate { current } => println!("already at {current}"),
        }
    }
    let status = app.updater.status()?;
    let kept: Vec<String> = status.kept.iter().map(ToString::to_string).collect();
    println!(
        "status: running {}, kept for rollback: {}",
        status.current,
        if kept.is_empty() {
            "none".to_string()
        } else {
            kept.join(", ")
        }
    );
    Ok(())
}
