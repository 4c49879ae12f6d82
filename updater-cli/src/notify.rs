//! `[notifications]` → the [`Dispatcher`] of `updater-notify`: the database
//! channel (one row per admin) and the configured e-mail, Slack, Discord,
//! Teams and webhook channels, with their secrets read from an environment
//! variable or a 0600 file (never from the configuration file, never
//! printed), routed by event and delivered from the outbox in the history
//! database.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use updater_core::history::HistoryStore;
use updater_core::notify::StoreNotifier;
use updater_core::outbox::NotificationOutbox;
use updater_core::secret::Secret;
use updater_notify::message::Context;
use updater_notify::{
    Channel, ChatChannel, ChatService, Dispatcher, EmailChannel, EventSet, NotifierChannel,
    RetryPolicy, Security, WebhookChannel,
};

use crate::config::{ChannelKind, ChannelSection, Config, SmtpSecurity};
use crate::error::{CliError, Result};

/// The name of the database channel.
pub const DATABASE_CHANNEL: &str = "database";

fn key(index: usize, field: &str) -> String {
    format!("notifications.channels[{index}].{field}")
}

/// A secret from the environment variable `env` or the 0600 file `file`.
fn secret(
    config: &Config,
    index: usize,
    (env_key, env): (&str, Option<&String>),
    (file_key, file): (&str, Option<&std::path::PathBuf>),
) -> Result<Option<Secret>> {
    if env.is_some() && file.is_some() {
        return Err(config.error_at(
            &key(index, file_key),
            format!("give either {env_key} or {file_key}, not both"),
        ));
    }
    if let Some(name) = env {
        return match Secret::from_env(name) {
            Some(value) => Ok(Some(value)),
            None => Err(config.error_at(
                &key(index, env_key),
                format!("environment variable {name} is not set"),
            )),
        };
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let path = if file.is_absolute() {
        file.clone()
    } else {
        config.path.parent().unwrap_or(Path::new(".")).join(file)
    };
    let at = key(index, file_key);
    let meta = std::fs::metadata(&path)
        .map_err(|e| config.error_at(&at, format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(config.error_at(
            &at,
            format!(
                "{} is readable by group or others; chmod 600 it",
                path.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| config.error_at(&at, format!("{}: {e}", path.display())))?;
    Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n']))))
}

fn events(
    config: &Config,
    at: &str,
    names: Option<&Vec<String>>,
    default: EventSet,
) -> Result<EventSet> {
    match names {
        None => Ok(default),
        Some(names) => EventSet::parse(names).map_err(|e| config.error_at(at, e)),
    }
}

fn context(config: &Config) -> Context {
    let n = &config.file.notifications;
    Context {
        app_name: n.app_name.clone(),
        console_url: n.console_url.clone(),
    }
}

/// One configured channel (not the database).
fn channel(config: &Config, index: usize, c: &ChannelSection) -> Result<Arc<dyn Channel>> {
    let blame = |field: &str, e: updater_notify::NotifyError| {
        config.error_at(&key(index, field), e.to_string())
    };
    let timeout = Duration::from_secs(c.timeout_secs.max(1));
    let url_secret = || -> Result<Secret> {
        if c.url.is_some() && c.kind != ChannelKind::Webhook {
            return Err(config.error_at(
                &key(index, "url"),
                "a Slack, Discord or Teams webhook URL is a credential: give url_env or url_file",
            ));
        }
        if let Some(url) = &c.url {
            if c.url_env.is_some() || c.url_file.is_some() {
                return Err(
                    config.error_at(&key(index, "url"), "give one of url, url_env, url_file")
                );
            }
            return Ok(Secret::new(url.clone()));
        }
        secret(
            config,
            index,
            ("url_env", c.url_env.as_ref()),
            ("url_file", c.url_file.as_ref()),
        )?
        .ok_or_else(|| {
            config.error_at(
                &key(index, "url_env"),
                "the webhook URL is required (url_env or url_file)",
            )
        })
    };
    Ok(match c.kind {
        ChannelKind::Email => {
            let host = c.smtp_host.clone().ok_or_else(|| {
                config.error_at(&key(index, "smtp_host"), "is required for kind = \"email\"")
            })?;
            let mut email = EmailChannel::builder(c.name.clone(), host)
                .with_security(match c.security {
                    SmtpSecurity::Starttls => Security::StartTls,
                    SmtpSecurity::Tls => Security::Tls,
                    SmtpSecurity::None => Security::None,
                })
                .with_timeout(timeout)
                .with_context(context(config));
            if let Some(port) = c.smtp_port {
                email = email.with_port(port);
            }
            if let Some(from) = &c.from {
                email = email.with_from(from.clone());
            }
            let emails = &config.file.notifications.emails;
            let to: Vec<String> = if c.to.is_empty() {
                emails.values().cloned().collect()
            } else {
                c.to.iter()
                    .map(|t| {
                        if t.contains('@') {
                            Ok(t.clone())
                        } else {
                            emails.get(t).cloned().ok_or_else(|| {
                                config.error_at(
                                    &key(index, "to"),
                                    format!("{t:?} is neither an address nor an admin in notifications.emails"),
                                )
                            })
                        }
                    })
                    .collect::<Result<_>>()?
            };
            email = email.with_to(to);
            let password = secret(
                config,
                index,
                ("password_env", c.password_env.as_ref()),
                ("password_file", c.password_file.as_ref()),
            )?;
            match (&c.username, password) {
                (Some(user), Some(password)) => {
                    email = email.with_credentials(user.clone(), password)
                }
                (None, None) => {}
                (Some(_), None) => {
                    return Err(config.error_at(
                        &key(index, "password_env"),
                        "a username needs password_env or password_file",
                    ));
                }
                (None, Some(_)) => {
                    return Err(
                        config.error_at(&key(index, "username"), "a password needs a username")
                    );
                }
            }
            if let Some(ca) = &c.ca_file {
                email = email.with_root_certificate(ca.clone());
            }
            Arc::new(email.build().map_err(|e| blame("smtp_host", e))?)
        }
        ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Teams => {
            let service = match c.kind {
                ChannelKind::Slack => ChatService::Slack,
                ChannelKind::Discord => ChatService::Discord,
                _ => ChatService::Teams,
            };
            Arc::new(
                ChatChannel::new(&c.name, service, url_secret()?)
                    .and_then(|chat| chat.with_timeout(timeout))
                    .map_err(|e| blame("url_env", e))?
                    .with_context(context(config)),
            )
        }
        ChannelKind::Webhook => {
            let mut hook = WebhookChannel::builder(c.name.clone(), url_secret()?)
                .with_timeout(timeout)
                .with_context(context(config));
            if let Some(signing) = secret(
                config,
                index,
                ("secret_env", c.secret_env.as_ref()),
                ("secret_file", c.secret_file.as_ref()),
            )? {
                hook = hook.with_signing_secret(signing);
            }
            Arc::new(hook.build().map_err(|e| blame("url", e))?)
        }
    })
}

/// The configured channels with their events (not the database): what
/// `config check` builds to prove addresses and secrets are usable.
pub fn channels(config: &Config) -> Result<Vec<(Arc<dyn Channel>, EventSet)>> {
    let n = &config.file.notifications;
    let mut built = Vec::new();
    for (index, c) in n.channels.iter().enumerate() {
        if c.name.trim().is_empty() || c.name == DATABASE_CHANNEL {
            return Err(config.error_at(
                &key(index, "name"),
                "must be set, and not \"database\" (the database channel is always there)",
            ));
        }
        if n.channels[..index].iter().any(|other| other.name == c.name) {
            return Err(config.error_at(&key(index, "name"), format!("{:?} is used twice", c.name)));
        }
        let set = events(
            config,
            &key(index, "events"),
            c.events.as_ref(),
            EventSet::outcomes(),
        )?;
        built.push((channel(config, index, c)?, set));
    }
    Ok(built)
}

/// The dispatcher: the database channel plus the configured ones, over `outbox`.
pub fn dispatcher(
    config: &Config,
    history: Arc<dyn HistoryStore>,
    outbox: Arc<dyn NotificationOutbox>,
) -> Result<Dispatcher> {
    let n = &config.file.notifications;
    let database = NotifierChannel::new(
        DATABASE_CHANNEL,
        "history database (updater notifications, web console)",
        Arc::new(StoreNotifier::new(history.clone()).with_admins(n.admins.iter().cloned())),
    );
    let database_events = events(
        config,
        "notifications.database_events",
        n.database_events.as_ref(),
        EventSet::all(),
    )?;
    let mut builder = Dispatcher::builder(outbox)
        .with_channel(Arc::new(database), database_events)
        .with_history(history)
        .with_retry_policy(RetryPolicy {
            first_delay: Duration::from_secs(n.retry_first_delay_secs.max(1)),
            max_delay: Duration::from_secs(n.retry_max_delay_secs.max(1)),
            max_attempts: n.max_attempts.max(1),
            give_up_after: Duration::from_secs(n.give_up_after_hours.saturating_mul(3600).max(60)),
        });
    let longest = n
        .channels
        .iter()
        .map(|c| c.timeout_secs)
        .max()
        .unwrap_or(10);
    builder = builder.with_lease(Duration::from_secs(longest.saturating_mul(2).max(30)));
    for (channel, set) in channels(config)? {
        builder = builder.with_channel(channel, set);
    }
    Ok(builder.build())
}

impl From<updater_notify::NotifyError> for CliError {
    fn from(error: updater_notify::NotifyError) -> Self {
        CliError::from(updater_core::Error::from(error))
    }
}
