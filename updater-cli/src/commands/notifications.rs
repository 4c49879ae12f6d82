//! `notifications`: list, mark read, dismiss.

use serde_json::json;
use updater_core::history::{NotificationFilter, NotificationRecord};

use super::Outcome;
use crate::cli::NotificationsArgs;
use crate::components::Components;
use crate::error::Result;

fn notification_json(n: &NotificationRecord) -> serde_json::Value {
    json!({
        "id": n.id,
        "type": n.notification_type.as_str(),
        "version": n.version.to_string(),
        "message": n.message,
        "user": n.user_id,
        "read": n.is_read,
        "dismissed": n.is_dismissed,
        "read_at": n.read_at,
        "metadata": n.metadata,
        "created_at": n.created_at,
    })
}

pub(super) fn run(c: &Components, args: &NotificationsArgs) -> Result<Outcome> {
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
        json!({ "notifications": list.iter().map(notification_json).collect::<Vec<_>>() }),
        text,
    ))
}
