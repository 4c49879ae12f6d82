//! Quickstart: the whole updater in a few seconds, offline.
//!
//! 1. A demo application at 1.0.0 is created in a temporary directory.
//! 2. A release server on 127.0.0.1 publishes 1.1.0 and a broken 1.2.0 in the
//!    custom manifest format (`updater_core::manifest`).
//! 3. The updater checks, backs the files up, updates to 1.1.0 (showing the
//!    maintenance window), then tries 1.2.0, whose health check fails, and
//!    rolls back automatically.
//! 4. The history is read back from SQLite.
//!
//! Run: `cargo run --example quickstart`
//!
//! With `--show-email`, admins are also told by e-mail: an e-mail channel
//! (crate `updater-notify`) sends through an SMTP server on 127.0.0.1 (the
//! test kit's), delivered from the outbox in the same SQLite database, and
//! the e-mail the rolled-back 1.2.0 produced is printed as received.

use std::sync::Arc;
use std::time::Duration;

use updater_backup::FileBackup;
use updater_core::Step;
use updater_core::command::ShellCommand;
use updater_core::health::CommandHealthCheck;
use updater_core::history::{HistoryStore, NotificationFilter, Page};
use updater_core::notify::{Notifier, StoreNotifier};
use updater_core::pipeline::{ApplyOutcome, ApplyRequest, UpdaterBuilder};
use updater_core::progress::ProgressEvent;
use updater_core::source::LocalDirectorySource;
use updater_core::version::Version;
use updater_source_github::ManifestSource;
use updater_store_diesel::DieselHistoryStore;
use updater_testkit::demo;
use updater_testkit::http::StaticServer;

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let show_email = std::env::args().any(|a| a == "--show-email");
    let work = tempfile::tempdir()?;
    let app = work.path().join("app");
    demo::create_app(&app, "1.0.0")?;
    println!("1. demo app 1.0.0 created in {}", app.display());

    // The publisher side: build releases with the tool (what `updater release
    // build` runs: package, file index for delta updates, SHA256SUMS) and
    // publish them with a manifest.
    let published = LocalDirectorySource::new(work.path().join("site"));
    let v110 = demo::build(work.path(), "1.1.0", true, "Faster pages.")?;
    published.publish_built(&v110)?;
    let v120 = demo::build(work.path(), "1.2.0", false, "New reports (broken build).")?;
    published.publish_built(&v120)?;
    let server = StaticServer::serve(published.directory(), Vec::new())?;
    let manifest_url = format!("{}/manifest.json", server.address());
    println!("2. release server at {manifest_url} publishes 1.1.0 and 1.2.0");

    // The application side: the updater, wired from its parts.
    std::fs::create_dir_all(app.join(".updater"))?;
    let history = Arc::new(DieselHistoryStore::open(
        app.join(".updater/history.sqlite").display().to_string(),
    )?);
    let backups = FileBackup::builder(&app, work.path().join("backups")).build()?;
    let database: Arc<dyn Notifier> =
        Arc::new(StoreNotifier::new(history.clone()).with_admins(["admin"]));
    // With --show-email: the database rows plus e-mail, through the outbox.
    let smtp = show_email.then(updater_testkit::mail::SmtpReceiver::start);
    let dispatcher = match &smtp {
        Some(smtp) => {
            let email = updater_notify::EmailChannel::builder("email", "127.0.0.1")
                .with_port(smtp.port())
                .with_security(updater_notify::Security::None) // a local relay
                .with_from("Updater <updater@example.com>")
                .with_to(["admin@example.com"])
                .with_context(updater_notify::message::Context {
                    app_name: Some("demo".into()),
                    console_url: Some("http://127.0.0.1:8080/admin/updates".into()),
                })
                .build()?;
            let database =
                updater_notify::NotifierChannel::new("database", "history", database.clone());
            Some(
                updater_notify::Dispatcher::builder(history.clone())
                    .with_channel(Arc::new(database), updater_notify::EventSet::all())
                    .with_channel(Arc::new(email), updater_notify::EventSet::problems())
                    .with_history(history.clone())
                    .build(),
            )
        }
        None => None,
    };
    let notifier: Arc<dyn Notifier> = match &dispatcher {
        Some(d) => Arc::new(d.clone()),
        None => database,
    };
    let worker = dispatcher
        .as_ref()
        .map(|d| d.spawn(Duration::from_secs(30)));
    let updater = UpdaterBuilder::new(&app)
        .with_source(ManifestSource::builder(&manifest_url).build()?)
        .with_history(history.clone())
        .with_notifier(notifier.clone())
        .with_files_backup(Arc::new(backups))
        .with_health_check(Arc::new(CommandHealthCheck::new(ShellCommand::new(
            "bin/health",
        ))))
        .configure(|c| {
            c.health_timeout = Duration::from_secs(2);
            c.health_interval = Duration::from_millis(250);
        })
        .build()?;
    updater.recover()?; // at every start: finish or undo an interrupted update

    let check = updater.check(true)?;
    println!(
        "3. check: running {}, newest {}, update available: {}",
        check.current,
        check
            .latest
            .as_ref()
            .map_or("none".into(), |r| r.version.to_string()),
        check.update_available
    );

    let progress = |e: &ProgressEvent| {
        if e.step == Step::Download && e.bytes_total.is_some() {
            println!(
                "   [{:>3}%] downloaded {} of {} bytes",
                e.percent,
                e.bytes_done,
                e.bytes_total.unwrap_or(0)
            );
        } else if e.step == Step::Backup && e.files_done > 0 {
            println!(
                "   [{:>3}%] backup: {} files, {} bytes",
                e.percent, e.files_done, e.bytes_done
            );
        } else if !e.message.ends_with("started") {
            println!("   [{:>3}%] {}", e.percent, e.message);
        }
    };

    println!("4. apply 1.1.0:");
    let request = ApplyRequest::latest("quickstart").with_version(Version::new(1, 1, 0));
    if let ApplyOutcome::Updated(report) = updater.apply(&request, &progress)? {
        println!(
            "   updated {} -> {}; maintenance window {:.1} ms; backup {}",
            report.from,
            report.to,
            report.maintenance_window.as_secs_f64() * 1000.0,
            report.backup.map_or("none".to_string(), |b| format!(
                "{} ({} bytes)",
                b.id, b.size
            ))
        );
    }

    println!("5. apply the newest (1.2.0, whose health check fails):");
    match updater.apply(&ApplyRequest::latest("quickstart"), &progress) {
        Err(e) => println!("   {e}"),
        Ok(outcome) => println!("   unexpected: {outcome:?}"),
    }
    println!(
        "   running now: {}; .env kept: {}",
        updater.current_version()?,
        std::fs::read_to_string(app.join(".env"))?.trim()
    );

    println!(
        "6. history (from {}):",
        app.join(".updater/history.sqlite").display()
    );
    for record in history.updates(Page::first(10))? {
        println!(
            "   #{} {} -> {}: {} (window {} ms){}",
            record.id,
            record
                .previous_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
            record.version,
            record.status.as_str(),
            record.maintenance_window_ms.unwrap_or(0),
            record
                .error_message
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(worker) = &worker {
        worker.flush(Duration::from_secs(10)); // deliver what the outbox holds
    }
    println!("   admin notifications:");
    for note in history
        .notifications(&NotificationFilter::default())?
        .iter()
        .rev()
    {
        println!(
            "   - [{}] {}",
            note.notification_type.as_str(),
            note.message
        );
    }
    if let Some(smtp) = &smtp {
        println!(
            "7. the e-mail the rolled-back 1.2.0 produced, as the SMTP server on 127.0.0.1:{} received it:",
            smtp.port()
        );
        for mail in smtp.mails() {
            if mail.subject().contains("1.2.0") {
                for header in ["From", "To", "Subject", "Message-ID", "X-Updater-Event-Id"] {
                    println!("   {header}: {}", mail.header(header).unwrap_or_default());
                }
                println!("   Parts: {}", mail.content_types().join(", "));
                println!();
                for line in mail.text().unwrap_or_default().lines() {
                    println!("   | {line}");
                }
            }
        }
    }
    Ok(())
}
