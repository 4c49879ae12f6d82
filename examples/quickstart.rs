//! Quickstart: a demo app at 1.0.0 is updated to 1.1.0, then a broken 1.2.0
//! fails its health check and is rolled back automatically.
//!
//! Runs offline in a temporary directory in a few seconds:
//! `cargo run --example quickstart`.

use std::sync::Arc;
use std::time::Duration;

use updater_core::command::ShellCommand;
use updater_core::health::CommandHealthCheck;
use updater_core::history::{HistoryStore, InMemoryHistoryStore, Page};
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, UpdaterBuilder};
use updater_core::progress::ProgressEvent;
use updater_core::source::LocalDirectorySource;
use updater_core::version::Version;
use updater_examples::demo;

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let app = work.path().join("app");
    demo::create_app(&app, "1.0.0")?;
    println!("demo app at 1.0.0 in {}", app.display());

    let releases = LocalDirectorySource::new(work.path().join("releases"));
    releases.publish(&Version::new(1, 1, 0), &demo::build_release(work.path(), "1.1.0", true)?, "Faster pages", None)?;

    let history = Arc::new(InMemoryHistoryStore::new());
    let updater = UpdaterBuilder::new(&app)
        .with_source(releases.clone())
        .with_history(history.clone())
        .with_health_check(Arc::new(
            CommandHealthCheck::new(ShellCommand::new("bin/health")).with_interval(Duration::from_millis(200)),
        ))
        .configure(|c| c.health_timeout = Duration::from_secs(2))
        .build()?;
    updater.recover()?;

    let check = updater.check(true)?;
    println!(
        "check: running {}, latest {}, update available: {}",
        check.current,
        check.latest.as_ref().map_or("none".to_string(), |r| r.version.to_string()),
        check.update_available
    );

    let progress = |e: &ProgressEvent| println!("  [{:>3}%] {}", e.percent, e.message);
    if let ApplyOutcome::Updated(report) = updater.apply(&ApplyRequest::latest("quickstart"), &progress)? {
        println!("updated {} -> {}; maintenance window {:?}", report.from, report.to, report.maintenance_window);
    }

    releases.publish(&Version::new(1, 2, 0), &demo::build_release(work.path(), "1.2.0", false)?, "Broken release", None)?;
    match updater.apply(&ApplyRequest::latest("quickstart"), &progress) {
        Err(e) => println!("1.2.0 failed and was rolled back: {e}"),
        Ok(outcome) => println!("unexpected: {outcome:?}"),
    }
    println!("running now: {}", updater.current_version()?);
    println!(".env still: {}", std::fs::read_to_string(app.join(".env"))?.trim());

    println!("history:");
    for record in history.updates(Page::first(10))? {
        println!(
            "  #{} {} -> {}: {} (window {} ms){}",
            record.id,
            record.previous_version.map(|v| v.to_string()).unwrap_or_default(),
            record.version,
            record.status.as_str(),
            record.maintenance_window_ms.unwrap_or(0),
            record.error_message.map(|e| format!(" — {e}")).unwrap_or_default()
        );
    }
    Ok(())
}
