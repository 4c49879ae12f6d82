//! `notifications`: list, mark read, dismiss; `test [CHANNEL]`.

use serde_json::json;
use updater_core::history::{NotificationFilter, NotificationView};
use updater_web::actions::ChannelsHealth;

use crate::cli::{NotificationsAction, NotificationsArgs};
use crate::components::Components;
use crate::error::{Result, exit_code};
use crate::output::Outcome;

/// Channels with waiting or given-up notices (`status`'s `notification_channels`):
/// `channel`, `failing`, `pending`, `retrying`, `gave_up`, `oldest_pending`,
/// `last_error`, `last_delivered_at`. An empty list when every notice was
/// delivered. The web console's `/api/status` serializes the same type.
pub(super) fn health_json(c: &Components) -> serde_json::Value {
    serde_json::to_value(ChannelsHealth::of(c.notifier.outbox().as_ref()))
        .unwrap_or(serde_json::Value::Null)
}

/// The lines `status` prints about failing channels (none when all deliver).
pub(super) fn health_lines(c: &Components) -> Vec<String> {
    match c.notifier.health() {
        Ok(health) => health
            .iter()
            .filter(|h| h.is_failing())
            .map(|h| {
                format!(
                    "Notifications: channel {} FAILING: {} waiting, {} given up; last error: {}",
                    h.channel,
                    h.pending,
                    h.gave_up,
                    h.last_error.as_deref().unwrap_or("unknown")
                )
            })
            .collect(),
        Err(error) => vec![format!("Notifications: cannot read the outbox: {error}")],
    }
}

/// Sends a test message through one channel or all, and reports each answer.
fn test(c: &Components, channel: Option<&str>) -> Result<Outcome> {
    let results = match channel {
        Some(name) => vec![c.notifier.test(name)?],
        None => c.notifier.test_all(),
    };
    let failed = results.iter().any(|r| r.result.is_err());
    let text = results
        .iter()
        .map(|r| match &r.result {
            Ok(answer) => format!(
                "{}: ok in {} ms ({}): {answer}",
                r.channel,
                r.took.as_millis(),
                r.description
            ),
            Err(error) => format!("{}: FAILED ({}): {error}", r.channel, r.description),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let json = json!({
        "results": results.iter().map(|r| json!({
            "channel": r.channel,
            "description": r.description,
            "ok": r.result.is_ok(),
            "answer": r.result.as_ref().ok(),
            "error": r.result.as_ref().err(),
            "took_ms": r.took.as_millis() as u64,
        })).collect::<Vec<_>>(),
    });
    let mut outcome = Outcome::ok(json, text);
    if failed {
        outcome.exit_code = exit_code::FAILURE;
    }
    Ok(outcome)
}

pub(super) fn run(c: &Components, args: &NotificationsArgs) -> Result<Outcome> {
    if let Some(NotificationsAction::Test { channel }) = &args.action {
        return test(c, channel.as_deref());
    }
    let history = c.updater.history();
    if let Some(id) = args.mark_read {
        history.mark_notification_read(id)?;
        return Ok(Outcome::ok(
            json!({ "changed": [id] }),
            format!("Notification {id} marked as read."),
        ));
    }
    if let Some(id) = args.dismiss {
        history.dismiss_notification(id)?;
        return Ok(Outcome::ok(
            json!({ "changed": [id] }),
            format!("Notification {id} dismissed."),
        ));
    }
    let filter = NotificationFilter {
        unread_only: !args.all,
        include_dismissed: args.all,
        user_id: args.user.clone(),
    };
    let list = history.notifications(&filter)?;
    let text = if list.is_empty() {
        if args.all {
            "No notifications."
        } else {
            "No unread notifications."
        }
        .to_string()
    } else {
        list.iter()
            .map(|n| {
                format!(
                    "#{:<4} {}  {:<16} {}{}{}",
                    n.id,
                    n.created_at.format("%Y-%m-%d %H:%M"),
                    n.notification_type.as_str(),
                    n.message,
                    n.user_id
                        .as_ref()
                        .map(|u| format!("  (for {u})"))
                        .unwrap_or_default(),
                    match (n.is_read, n.is_dismissed) {
                        (_, true) => "  [dismissed]",
                        (true, false) => "  [read]",
                        (false, false) => "",
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::ok(
        json!({ "notifications": list.iter().map(|n| n.view()).collect::<Vec<NotificationView>>() }),
        text,
    ))
}
