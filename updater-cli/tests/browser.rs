//! The web console end to end in a real browser (Debian's headless
//! Chromium through chromedriver) against `updater serve` and a release
//! server on loopback: an admin signs in, sees 1.1.0 with its changelog,
//! clicks "Update now", watches the bar reach 100 %, sees the history row;
//! a broken 1.2.0 is rolled back and its error detail opened; the admin
//! rolls back to the kept release; creates, restores, verifies and deletes
//! a backup; marks a notification read and dismisses one; after logging
//! out the console refuses the browser. Screenshots of each page go to
//! `target/web-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use updater_testkit::webdriver::{self, Browser};

const PASSWORD: &str = "browser-test-password";
const LONG: Duration = Duration::from_secs(90);

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots")
}

fn hash(f: &support::Fixture) -> String {
    use std::io::Write;
    let mut child = f
        .command()
        .args(["web", "hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Waits for the operation page, reloaded by its script once the
/// operation ended, to show it ended with `status`.
fn operation_ends(browser: &Browser, status: &str) {
    browser.wait_until(&format!("the operation ends {status}"), LONG, |b| {
        b.execute(
            "var o = document.querySelector('#operation'); \
             return o && !o.hasAttribute('data-events') ? o.getAttribute('data-status') : null",
        ) == status
    });
}

#[test]
fn an_admin_does_everything_in_the_browser() {
    if !webdriver::available() {
        return;
    }
    let f = support::fixture();
    f.server.publish_with_notes(
        "1.1.0",
        true,
        "## What's new\n\n* **Faster** front page\n* Fixes the login form",
    );
    f.write_config(&format!(
        "\n[web]\nadmins = [{{ name = \"alice\", password_hash = \"{}\" }}]\n",
        hash(&f)
    ));
    let served = f.serve(&[]);
    let base = served.base.clone();
    let shots = screenshots();
    let browser = Browser::start(1280, 1000);

    // Anonymous: sent to the login form.
    browser.goto(&format!("{base}/"));
    browser.find("#sign-in", Duration::from_secs(10));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.type_into("#username", "alice");
    browser.type_into("#password", "wrong");
    browser.click_on("#sign-in");
    browser.find("#login-error", Duration::from_secs(10));
    assert_eq!(browser.text("#login-error"), "wrong user name or password");
    browser.screenshot(&shots, "01-login");
    browser.type_into("#username", "alice");
    browser.type_into("#password", PASSWORD);
    browser.click_on("#sign-in");
    browser.find("#check-now", Duration::from_secs(10));
    assert_eq!(browser.text("#current-version"), "1.0.0");

    // Check: 1.1.0 is available, with its changelog rendered.
    browser.click_on("#check-now");
    operation_ends(&browser, "succeeded");
    browser.goto(&format!("{base}/"));
    browser.find("#available", Duration::from_secs(10));
    let available = browser.text("#available");
    assert!(
        available.contains("Version 1.1.0 is available"),
        "{available}"
    );
    assert!(available.contains("What's new"), "{available}");
    assert_eq!(browser.text("#available strong"), "Faster");
    browser.screenshot(&shots, "02-dashboard-update-available");

    // Update now: the confirmation names the version; the bar reaches 100 %.
    browser.click_on("#update-now");
    browser.find("#confirm-update", Duration::from_secs(10));
    assert!(
        browser
            .text("#confirm-question")
            .contains("from 1.0.0 to 1.1.0")
    );
    browser.screenshot(&shots, "03-confirm-update");
    browser.click_on("#confirm-update");
    browser.find("#progress", Duration::from_secs(10));
    operation_ends(&browser, "succeeded");
    browser.wait_until("the bar shows 100 %", LONG, |b| {
        b.property("#progress", "value") == 100
    });
    browser.screenshot(&shots, "04-update-progress-done");
    browser.goto(&format!("{base}/"));
    browser.find("#history", Duration::from_secs(10));
    assert_eq!(browser.text("#current-version"), "1.1.0");
    let row = browser.text("#history tbody tr:first-child");
    assert!(
        row.contains("1.1.0") && row.contains("completed") && row.contains("web:alice"),
        "{row:?} in {}",
        browser.execute("return document.body.outerHTML")
    );
    assert_eq!(f.app_version(), "1.1.0");

    // A broken 1.2.0 is rolled back; its error detail opens.
    f.server.publish("1.2.0", false);
    browser.click_on("#check-now");
    operation_ends(&browser, "succeeded");
    browser.goto(&format!("{base}/"));
    browser.click_on("#update-now");
    browser.click_on("#confirm-update");
    operation_ends(&browser, "failed");
    let error = browser.text("#operation-error");
    assert!(error.contains("rolled back"), "{error}");
    browser.click_on("#operation-update");
    browser.find("#update-error", Duration::from_secs(10));
    assert!(browser.text("#update-status").contains("rolled_back"));
    assert!(browser.text("#update-error").contains("health_check"));
    assert!(
        browser
            .try_find("#steps tr[data-step=\"health_check\"][data-outcome=\"failed\"]")
            .is_some()
    );
    browser.screenshot(&shots, "05-failed-update-detail");
    assert_eq!(f.app_version(), "1.1.0", "the old release runs");

    // The updates page: versions, rollback plan, history.
    browser.goto(&format!("{base}/updates"));
    browser.find("#rollback-start", Duration::from_secs(10));
    assert!(browser.text("#rollback").contains("1.0.0"));
    // The statistics: the completed 1.1.0 and the rolled-back 1.2.0.
    let stats = browser.text("#stats");
    assert!(
        stats.contains("1 completed, 1 rolled back")
            && stats.contains("50 %")
            && stats.contains("health_check: 1"),
        "{stats}"
    );
    browser.screenshot(&shots, "06-updates");

    // Roll back to the kept release, through its confirmation.
    browser.click_on("#rollback-start");
    browser.find("#confirm-rollback", Duration::from_secs(10));
    browser.click_on("#confirm-rollback");
    operation_ends(&browser, "succeeded");
    assert_eq!(f.app_version(), "1.0.0", "the rollback ran");

    // Backups: create one, restore it.
    browser.goto(&format!("{base}/backups"));
    browser.type_into("#description", "from the browser");
    browser.click_on("#create-backup");
    operation_ends(&browser, "succeeded");
    browser.goto(&format!("{base}/backups"));
    browser.find("#backups", Duration::from_secs(10));
    assert!(browser.text("#backups").contains("from the browser"));
    browser.screenshot(&shots, "07-backups");
    browser.click_on("#backups a[data-action=\"restore\"]");
    browser.find("#confirm-restore", Duration::from_secs(10));
    browser.click_on("#confirm-restore");
    operation_ends(&browser, "succeeded");

    // Verify a backup, then delete one through its confirmation.
    let backups = |b: &Browser| {
        b.execute("return document.querySelectorAll('#backups a[data-action=\"delete\"]').length")
            .as_u64()
            .unwrap_or(0)
    };
    browser.goto(&format!("{base}/backups"));
    browser.find("#backups", Duration::from_secs(10));
    browser.click_on("#backups button[data-action=\"verify\"]");
    operation_ends(&browser, "succeeded");
    browser.goto(&format!("{base}/backups"));
    browser.find("#backups", Duration::from_secs(10));
    assert!(
        browser.text("#backups").contains("yes, "),
        "{}",
        browser.text("#backups")
    );
    let before = backups(&browser);
    browser.click_on("#backups a[data-action=\"delete\"]");
    browser.find("#confirm-delete", Duration::from_secs(10));
    browser.click_on("#confirm-delete");
    browser.wait_until("one backup fewer", Duration::from_secs(10), |b| {
        b.try_find("#backups").is_some() && backups(b) == before - 1
    });
    assert!(
        browser.text("#backups").contains("deleted by web:alice"),
        "{}",
        browser.text("#backups")
    );

    // Notifications: mark one read.
    browser.goto(&format!("{base}/notifications"));
    browser.find("#notifications", Duration::from_secs(10));
    let unread = |b: &Browser| {
        b.execute(
            "return document.querySelectorAll('#notifications li[data-read=\"false\"]').length",
        )
        .as_u64()
        .unwrap_or(0)
    };
    let before = unread(&browser);
    assert!(before > 0);
    browser.screenshot(&shots, "08-notifications");
    browser.click_on("#notifications button[data-action=\"read\"]");
    browser.wait_until(
        "one fewer unread notification",
        Duration::from_secs(10),
        |b| b.try_find("#no-notifications").is_some() || unread(b) == before - 1,
    );
    // And dismiss one: it leaves the list.
    let listed = |b: &Browser| {
        b.execute("return document.querySelectorAll('#notifications li').length")
            .as_u64()
            .unwrap_or(0)
    };
    let before = listed(&browser);
    browser.click_on("#notifications button[data-action=\"dismiss\"]");
    browser.wait_until("one notification fewer", Duration::from_secs(10), |b| {
        b.try_find("#no-notifications").is_some() || listed(b) == before - 1
    });

    // On a phone: nothing wider than the screen.
    browser.resize(390, 844);
    browser.goto(&format!("{base}/"));
    browser.find("#check-now", Duration::from_secs(10));
    let overflow = browser.execute(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    assert_eq!(overflow, 0, "the dashboard fits a 390 px wide screen");
    browser.screenshot(&shots, "09-dashboard-phone");
    browser.resize(1280, 1000);

    // Log out: the console refuses the browser.
    browser.click_on("#logout");
    browser.find("#sign-in", Duration::from_secs(10));
    browser.goto(&format!("{base}/backups"));
    browser.find("#sign-in", Duration::from_secs(10));
    assert!(browser.url().ends_with("/login"));
    let status = browser.execute(
        "var r = new XMLHttpRequest(); r.open('GET', '/api/status', false); r.send(); return r.status;",
    );
    assert_eq!(status, 401);
    drop(browser);
    let (code, _) = served.stop();
    assert_eq!(code, 0);
}

/// Waits, by reading the page only (no script runs), for the operation
/// page to show the operation ended with `status` (it reloads itself).
fn operation_ends_without_script(browser: &Browser, status: &str) {
    browser.wait_until(&format!("the operation ends {status}"), LONG, |b| {
        b.try_find(&format!(
            "#operation[data-status=\"{status}\"]:not([data-events])"
        ))
        .is_some()
    });
}

#[test]
fn without_javascript_an_admin_updates_by_forms_and_reloads() {
    if !webdriver::available() {
        return;
    }
    let f = support::fixture();
    f.server.publish("1.1.0", true);
    f.write_config(&format!(
        "\n[web]\nadmins = [{{ name = \"alice\", password_hash = \"{}\" }}]\n",
        hash(&f)
    ));
    let served = f.serve(&[]);
    let base = served.base.clone();
    let browser = Browser::start_with(1024, 900, false);
    browser.goto(&format!("{base}/"));
    browser.type_into("#username", "alice");
    browser.type_into("#password", PASSWORD);
    browser.click_on("#sign-in");
    browser.click_on("#check-now");
    operation_ends_without_script(&browser, "succeeded");
    browser.goto(&format!("{base}/"));
    browser.click_on("#update-now");
    browser.click_on("#confirm-update");
    operation_ends_without_script(&browser, "succeeded");
    assert_eq!(browser.property("#progress", "value"), 100);
    browser.screenshot(&screenshots(), "10-update-done-without-javascript");
    assert_eq!(f.app_version(), "1.1.0");
    browser.click_on("#logout");
    browser.find("#sign-in", Duration::from_secs(10));
    drop(browser);
    let (code, _) = served.stop();
    assert_eq!(code, 0);
}
