//! What a notice says, whatever the channel: a subject that names what
//! happened, the message, what to do, the details of the update (from,
//! status, duration, changelog excerpt) and a link to the web console.
//! E-mail renders it as text and HTML, Slack as Block Kit, the webhook as
//! JSON ([`webhook_payload`]).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use updater_core::history::NotificationType;
use updater_core::notify::Notification;

/// The webhook body's `schema` value; bumped only for incompatible changes.
pub const WEBHOOK_SCHEMA: &str = "updater.notification/1";

/// How much of the changelog a notice quotes.
const CHANGELOG_EXCERPT: usize = 600;

/// Who sends, and where the console is: the same for every channel.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The application's name, in subjects (`[shop] ...`).
    pub app_name: Option<String>,
    /// The web console, linked from every notice.
    pub console_url: Option<String>,
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// News.
    Info,
    /// Look at it.
    Warning,
    /// Something failed.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A notice, rendered for people.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// How bad it is.
    pub severity: Severity,
    /// The message of the notification.
    pub message: String,
    /// What the admin should do.
    pub action: String,
    /// `(label, value)` lines: version, from, status, duration...
    pub facts: Vec<(String, String)>,
    /// The start of the release notes.
    pub changelog: Option<String>,
    /// The console link.
    pub link: Option<String>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

fn excerpt(text: &str, limit: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let cut: String = text.chars().take(limit).collect();
    format!("{}…", cut.trim_end())
}

fn duration_text(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms} ms"),
        1..=59 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", secs / 60, secs % 60),
    }
}

/// Renders `n` with `context`. The details come from the notification's
/// metadata: `details` (added by the outbox from the update record: `from`,
/// `status`, `duration_ms`, `changelog`, `error`...), `step`, `occurred_at`.
pub fn render(n: &Notification, context: &Context) -> Rendered {
    let meta = n.metadata.as_ref();
    let details = meta.and_then(|m| m.get("details"));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let from = text(details.and_then(|d| d.get("from")));
    let version = &n.version;
    let (subject, severity, action) = match n.kind {
        NotificationType::UpdateAvailable => (
            format!("Version {version} is available"),
            Severity::Info,
            "Install it with `updater apply` (or from the web console) when it suits you; read the changelog first.".to_string(),
        ),
        NotificationType::UpdateStarted => (
            format!("Update to {version} started"),
            Severity::Info,
            "Nothing to do: you will hear how it ends.".to_string(),
        ),
        NotificationType::UpdateCompleted => (
            format!("Update to {version} completed"),
            Severity::Info,
            "Nothing to do. Check the application; `updater rollback` goes back to the previous release if needed.".to_string(),
        ),
        NotificationType::UpdateFailed => (
            format!("Update to {version} failed; nothing was changed"),
            Severity::Error,
            "The previous release keeps running. Read the error, fix the cause, then retry with `updater apply`.".to_string(),
        ),
        NotificationType::UpdateRolledBack => (
            format!("Update to {version} failed and was rolled back"),
            Severity::Error,
            "The previous release is running again. See `updater history` for the failed step before retrying; skip this version if it is broken.".to_string(),
        ),
        NotificationType::NeedsOperator => (
            format!("Update to {version} needs an operator"),
            Severity::Error,
            "Recovery stopped and kept both releases. Fix the cause named below, then run `updater recover --retry`; `updater status` shows the state.".to_string(),
        ),
        NotificationType::Warning => (
            "Updater warning".to_string(),
            Severity::Warning,
            "Read the message; nothing failed, but something needed cleaning up or is failing.".to_string(),
        ),
        NotificationType::BackupUnhealthy => (
            "Backups are unhealthy".to_string(),
            Severity::Warning,
            "Run `updater backup create` and check `updater backup list`; see why scheduled backups stopped or grew.".to_string(),
        ),
        NotificationType::Test => (
            "Test notification".to_string(),
            Severity::Info,
            "Nothing to do: this channel works.".to_string(),
        ),
    };
    let subject = match &context.app_name {
        Some(app) => format!("[{app}] {subject}"),
        None => format!("[updater] {subject}"),
    };
    let mut facts = vec![("Version".to_string(), version.to_string())];
    if let Some(from) = &from {
        facts.push(("From".into(), from.clone()));
    }
    if let Some(status) = text(details.and_then(|d| d.get("status"))) {
        facts.push(("Status".into(), status));
    }
    if let Some(ms) = details
        .and_then(|d| d.get("duration_ms"))
        .and_then(Value::as_u64)
    {
        facts.push(("Duration".into(), duration_text(ms)));
    }
    if let Some(ms) = details
        .and_then(|d| d.get("maintenance_window_ms"))
        .and_then(Value::as_u64)
    {
        facts.push(("Maintenance window".into(), duration_text(ms)));
    }
    if let Some(step) = text(meta.and_then(|m| m.get("step"))) {
        facts.push(("Step".into(), step));
    }
    if let Some(error) = text(details.and_then(|d| d.get("error"))) {
        facts.push(("Error".into(), excerpt(&error, 800)));
    }
    if let Some(by) = text(details.and_then(|d| d.get("initiated_by"))) {
        facts.push(("Started by".into(), by));
    }
    let changelog = text(details.and_then(|d| d.get("changelog")))
        .filter(|c| !c.trim().is_empty())
        .map(|c| excerpt(&c, CHANGELOG_EXCERPT));
    let occurred_at = text(meta.and_then(|m| m.get("occurred_at")))
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    Rendered {
        subject,
        severity,
        message: n.message.clone(),
        action,
        facts,
        changelog,
        link: context.console_url.clone(),
        occurred_at,
    }
}

impl Rendered {
    /// The plain-text body of an e-mail.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}\n\n{}\n\nWhat to do: {}\n\n",
            self.subject, self.message, self.action
        );
        for (label, value) in &self.facts {
            out.push_str(&format!("{label}: {value}\n"));
        }
        out.push_str(&format!("When: {}\n", self.occurred_at.to_rfc3339()));
        if let Some(changelog) = &self.changelog {
            out.push_str(&format!("\nChangelog:\n{changelog}\n"));
        }
        if let Some(link) = &self.link {
            out.push_str(&format!("\nWeb console: {link}\n"));
        }
        out
    }

    /// The HTML body of an e-mail (every value escaped).
    pub fn html(&self) -> String {
        let colour = match self.severity {
            Severity::Info => "#1f6feb",
            Severity::Warning => "#9a6700",
            Severity::Error => "#cf222e",
        };
        let mut out = format!(
            "<!DOCTYPE html><html><body style=\"font-family:sans-serif\"><h2 style=\"color:{colour}\">{}</h2><p>{}</p><p><strong>What to do:</strong> {}</p><table>",
            escape(&self.subject),
            escape(&self.message).replace('\n', "<br>"),
            escape(&self.action)
        );
        for (label, value) in &self.facts {
            out.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                escape(label),
                escape(value)
            ));
        }
        out.push_str(&format!(
            "<tr><th align=\"left\">When</th><td>{}</td></tr></table>",
            self.occurred_at.to_rfc3339()
        ));
        if let Some(changelog) = &self.changelog {
            out.push_str(&format!(
                "<h3>Changelog</h3><pre>{}</pre>",
                escape(changelog)
            ));
        }
        if let Some(link) = &self.link {
            out.push_str(&format!(
                "<p><a href=\"{}\">Open the web console</a></p>",
                escape(link)
            ));
        }
        out.push_str("</body></html>");
        out
    }
}

/// `&`, `<`, `>`, `"` and `'` escaped for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `&`, `<` and `>` escaped for Slack's mrkdwn.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook message (Block Kit): a header with the subject,
/// the message, the facts (version, from, status, duration), the changelog
/// excerpt, what to do and a console button; `text` is the fallback for
/// notifications.
pub fn slack_payload(n: &Notification, context: &Context) -> Value {
    let r = render(n, context);
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": excerpt(&r.subject, 150), "emoji": true } }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": excerpt(&slack_escape(&r.message), 2900) } }),
    ];
    let fields: Vec<Value> = r
        .facts
        .iter()
        .take(10)
        .map(|(label, value)| {
            json!({ "type": "mrkdwn", "text": excerpt(&format!("*{label}*\n{}", slack_escape(value)), 1900) })
        })
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    if let Some(changelog) = &r.changelog {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("*Changelog*\n{}", slack_escape(changelog)) } }));
    }
    blocks.push(json!({ "type": "context", "elements": [ { "type": "mrkdwn", "text": excerpt(&format!("What to do: {}", slack_escape(&r.action)), 2900) } ] }));
    if let Some(link) = &r.link {
        blocks.push(json!({ "type": "actions", "elements": [ { "type": "button", "text": { "type": "plain_text", "text": "Open the console" }, "url": link } ] }));
    }
    json!({
        "text": format!("{}: {}", r.subject, excerpt(&r.message, 2000)),
        "blocks": blocks,
        "metadata": { "event_type": "updater_notification", "event_payload": { "event_id": n.event_id, "type": n.kind.as_str() } },
    })
}

/// A Discord webhook message: one embed coloured by severity.
pub fn discord_payload(n: &Notification, context: &Context) -> Value {
    let r = render(n, context);
    let colour = match r.severity {
        Severity::Info => 0x1f6feb,
        Severity::Warning => 0x9a6700,
        Severity::Error => 0xcf222e,
    };
    let mut fields: Vec<Value> = r
        .facts
        .iter()
        .take(20)
        .map(|(label, value)| json!({ "name": label, "value": excerpt(value, 1000), "inline": value.len() < 40 }))
        .collect();
    if let Some(changelog) = &r.changelog {
        fields.push(json!({ "name": "Changelog", "value": changelog }));
    }
    fields.push(json!({ "name": "What to do", "value": excerpt(&r.action, 1000) }));
    let mut embed = json!({
        "title": excerpt(&r.subject, 250),
        "description": excerpt(&r.message, 4000),
        "color": colour,
        "fields": fields,
        "timestamp": r.occurred_at.to_rfc3339(),
        "footer": { "text": format!("event {}", n.event_id) },
    });
    if let Some(link) = &r.link {
        embed["url"] = json!(link);
    }
    json!({ "content": excerpt(&r.subject, 1900), "embeds": [embed], "allowed_mentions": { "parse": [] } })
}

/// A Microsoft Teams incoming-webhook message (Adaptive Card).
pub fn teams_payload(n: &Notification, context: &Context) -> Value {
    let r = render(n, context);
    let mut body = vec![
        json!({ "type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": r.subject, "wrap": true }),
        json!({ "type": "TextBlock", "text": r.message, "wrap": true }),
        json!({ "type": "FactSet", "facts": r.facts.iter().map(|(t, v)| json!({ "title": t, "value": v })).collect::<Vec<_>>() }),
    ];
    if let Some(changelog) = &r.changelog {
        body.push(
            json!({ "type": "TextBlock", "text": changelog, "wrap": true, "isSubtle": true }),
        );
    }
    body.push(
        json!({ "type": "TextBlock", "text": format!("What to do: {}", r.action), "wrap": true }),
    );
    let actions: Vec<Value> = r
        .link
        .iter()
        .map(|link| json!({ "type": "Action.OpenUrl", "title": "Open the console", "url": link }))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            }
        }]
    })
}

/// The generic webhook's JSON body (schema [`WEBHOOK_SCHEMA`]):
///
/// | field | type | meaning |
/// |---|---|---|
/// | `schema` | string | `updater.notification/1` |
/// | `id` | string | the event id: the idempotency key (also in `Idempotency-Key`) |
/// | `type` | string | `update_available`, `update_started`, `update_completed`, `update_failed`, `update_rolled_back`, `needs_operator`, `warning`, `backup_unhealthy`, `test` |
/// | `severity` | string | `info`, `warning` or `error` |
/// | `app` | string or null | the configured application name |
/// | `version` | string | the version it is about |
/// | `subject` | string | one line for people |
/// | `message` | string | what happened |
/// | `action` | string | what to do |
/// | `occurred_at` | string | RFC 3339 time of the event |
/// | `details` | object or null | the update: `update_id`, `from`, `status`, `started_at`, `finished_at`, `duration_ms`, `maintenance_window_ms`, `error`, `changelog`, `initiated_by` |
/// | `metadata` | object or null | the raw metadata of the notification |
/// | `console_url` | string or null | the web console |
///
/// New fields may be added; none is removed or changes meaning within a schema.
pub fn webhook_payload(n: &Notification, context: &Context) -> Value {
    let r = render(n, context);
    let meta = n.metadata.as_ref();
    json!({
        "schema": WEBHOOK_SCHEMA,
        "id": n.event_id,
        "type": n.kind.as_str(),
        "severity": r.severity.as_str(),
        "app": context.app_name,
        "version": n.version.to_string(),
        "subject": r.subject,
        "message": n.message,
        "action": r.action,
        "occurred_at": r.occurred_at.to_rfc3339(),
        "details": meta.and_then(|m| m.get("details")).cloned(),
        "metadata": n.metadata,
        "console_url": context.console_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use updater_core::version::Version;

    fn rolled_back() -> Notification {
        Notification::new(
            NotificationType::UpdateRolledBack,
            Version::new(1, 2, 0),
            "update from 1.1.0 to 1.2.0 failed at health_check",
        )
        .with_metadata(json!({
            "update_id": 3,
            "step": "health_check",
            "details": { "from": "1.1.0", "status": "rolled_back", "duration_ms": 4200, "changelog": "New <reports> & more", "error": "health check failed" }
        }))
    }

    #[test]
    fn a_rolled_back_update_says_what_happened_and_what_to_do() {
        let context = Context {
            app_name: Some("shop".into()),
            console_url: Some("https://shop.example.com/admin/updates".into()),
        };
        let r = render(&rolled_back(), &context);
        assert_eq!(
            r.subject,
            "[shop] Update to 1.2.0 failed and was rolled back"
        );
        let text = r.text();
        assert!(text.contains("What to do: The previous release is running again"));
        assert!(text.contains("From: 1.1.0"));
        assert!(text.contains("Duration: 4.2 s"));
        assert!(text.contains("Web console: https://shop.example.com/admin/updates"));
        let html = r.html();
        assert!(html.contains("New &lt;reports&gt; &amp; more"), "{html}");
        assert!(!html.contains("<reports>"));
    }

    #[test]
    fn the_slack_message_is_block_kit_with_a_fallback_text() {
        let payload = slack_payload(&rolled_back(), &Context::default());
        assert!(
            payload["text"]
                .as_str()
                .unwrap_or_default()
                .contains("rolled back")
        );
        let blocks = payload["blocks"].as_array().cloned().unwrap_or_default();
        assert_eq!(blocks[0]["type"], "header");
        assert!(blocks.iter().all(|b| b["type"].is_string()));
        let changelog = blocks.iter().find(|b| {
            b["text"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("*Changelog*"))
        });
        assert!(changelog.is_some_and(|b| {
            b["text"]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("&lt;reports&gt;")
        }));
    }

    #[test]
    fn a_long_changelog_is_cut_to_an_excerpt() {
        let mut n = rolled_back();
        n.metadata = Some(json!({ "details": { "changelog": "x".repeat(5000) } }));
        let r = render(&n, &Context::default());
        assert!(
            r.changelog
                .is_some_and(|c| c.chars().count() <= CHANGELOG_EXCERPT + 1)
        );
    }
}
