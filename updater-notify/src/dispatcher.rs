//! [`Dispatcher`]: the [`Notifier`] the pipeline calls (it only writes the
//! outbox: cheap, never waits for a channel), the routing of events to
//! channels, and the delivery of pending notices — a round at a time
//! ([`Dispatcher::deliver_due`]) or by a background [`Worker`].

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use updater_core::history::{HistoryStore, NotificationType};
use updater_core::notify::{Notification, Notifier};
use updater_core::outbox::{
    AttemptOutcome, ChannelHealth, ClaimRequest, Delivery, DeliveryFilter, DeliveryStatus,
    NotificationOutbox,
};
use updater_core::version::Version;

use crate::channel::Channel;
use crate::error::{NotifyError, Result};
use crate::retry::RetryPolicy;

/// Which events a channel gets.
///
/// ```
/// use updater_core::history::NotificationType;
/// use updater_notify::EventSet;
///
/// let problems = EventSet::parse(&["problems"])?;
/// assert!(problems.contains(NotificationType::UpdateRolledBack));
/// assert!(!problems.contains(NotificationType::UpdateAvailable));
/// assert!(EventSet::parse(&["update_available", "needs_operator"])?.contains(NotificationType::NeedsOperator));
/// assert!(EventSet::parse(&["updated_availble"]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSet(Vec<NotificationType>);

impl EventSet {
    /// Every event.
    pub fn all() -> Self {
        EventSet(NotificationType::ALL.to_vec())
    }

    /// What an admin must hear about: failures, rollbacks, needs-operator,
    /// warnings, unhealthy backups.
    pub fn problems() -> Self {
        EventSet(
            NotificationType::ALL
                .into_iter()
                .filter(|k| k.is_problem())
                .collect(),
        )
    }

    /// The default of e-mail, chat and webhook channels: everything but
    /// "available" and "started" (news a database row tells well enough).
    pub fn outcomes() -> Self {
        EventSet(
            NotificationType::ALL
                .into_iter()
                .filter(|k| {
                    !matches!(
                        k,
                        NotificationType::UpdateAvailable | NotificationType::UpdateStarted
                    )
                })
                .collect(),
        )
    }

    /// Parses names: `all`, `problems`, `outcomes`, or event types
    /// (`update_failed`...). An unknown name is an error naming it.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> std::result::Result<Self, String> {
        let mut kinds = Vec::new();
        for name in names {
            let name = name.as_ref();
            let add: Vec<NotificationType> =
                match name {
                    "all" | "*" => NotificationType::ALL.to_vec(),
                    "problems" => Self::problems().0,
                    "outcomes" => Self::outcomes().0,
                    other => vec![NotificationType::parse(other).map_err(|_| {
                    format!(
                        "unknown event {other:?} (expected all, problems, outcomes or one of {})",
                        NotificationType::ALL.map(NotificationType::as_str).join(", ")
                    )
                })?],
                };
            for kind in add {
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        Ok(EventSet(kinds))
    }

    /// Whether `kind` is in the set.
    pub fn contains(&self, kind: NotificationType) -> bool {
        self.0.contains(&kind)
    }

    /// The names, in declaration order.
    pub fn names(&self) -> Vec<&'static str> {
        NotificationType::ALL
            .into_iter()
            .filter(|k| self.contains(*k))
            .map(NotificationType::as_str)
            .collect()
    }
}

struct Route {
    channel: Arc<dyn Channel>,
    events: EventSet,
}

struct Inner {
    outbox: Arc<dyn NotificationOutbox>,
    routes: Vec<Route>,
    policy: RetryPolicy,
    lease: Duration,
    history: Option<Arc<dyn HistoryStore>>,
    token: String,
    workers: Mutex<Vec<Weak<WorkerShared>>>,
}

/// Routes notices to channels through the outbox and delivers them.
///
/// `notify` (the pipeline's call) enqueues the notice, one delivery per
/// channel whose [`EventSet`] has its type, and wakes the [`Worker`] if one
/// runs: it never waits for a channel and fails only if the outbox cannot be
/// written. Delivery happens in [`deliver_due`](Self::deliver_due): due
/// deliveries are claimed, sent (each channel on its own thread, so a slow
/// one does not hold the others back), and recorded as delivered, retried
/// later ([`RetryPolicy`]) or given up — which is logged and announced to
/// the other channels as a warning, never silent.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use updater_core::history::{HistoryStore, InMemoryHistoryStore, NotificationFilter, NotificationType};
/// use updater_core::notify::{Notification, Notifier, StoreNotifier};
/// use updater_core::outbox::InMemoryOutbox;
/// use updater_core::version::Version;
/// use updater_notify::{Dispatcher, EventSet, NotifierChannel};
///
/// let history = Arc::new(InMemoryHistoryStore::new());
/// let database = NotifierChannel::new("database", "history database", Arc::new(StoreNotifier::new(history.clone())));
/// let dispatcher = Dispatcher::builder(Arc::new(InMemoryOutbox::new()))
///     .with_channel(Arc::new(database), EventSet::all())
///     .build();
///
/// dispatcher.notify(&Notification::new(NotificationType::UpdateAvailable, Version::new(1, 1, 0), "1.1.0 is out"))?;
/// assert!(history.notifications(&NotificationFilter::default())?.is_empty()); // only enqueued
/// let report = dispatcher.deliver_due(Duration::from_secs(5))?;
/// assert_eq!(report.delivered, 1);
/// assert_eq!(history.notifications(&NotificationFilter::default())?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "channels",
                &self
                    .inner
                    .routes
                    .iter()
                    .map(|r| r.channel.describe())
                    .collect::<Vec<_>>(),
            )
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Dispatcher`]; made by [`Dispatcher::builder`].
pub struct DispatcherBuilder {
    outbox: Arc<dyn NotificationOutbox>,
    routes: Vec<Route>,
    policy: RetryPolicy,
    lease: Duration,
    history: Option<Arc<dyn HistoryStore>>,
}

impl std::fmt::Debug for DispatcherBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherBuilder")
            .field("channels", &self.routes.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl DispatcherBuilder {
    /// Sends the events of `events` to `channel` (names must be unique; a
    /// later channel of the same name replaces the earlier one).
    pub fn with_channel(mut self, channel: Arc<dyn Channel>, events: EventSet) -> Self {
        self.routes.retain(|r| r.channel.name() != channel.name());
        self.routes.push(Route { channel, events });
        self
    }

    /// When to retry and when to give up (default [`RetryPolicy::default`]).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long a claimed delivery stays with this deliverer before another
    /// may take it (default 2 min; longer than any channel's timeout).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Reads update records from `history` to put the details (from,
    /// status, duration, changelog, error) into each notice.
    pub fn with_history(mut self, history: Arc<dyn HistoryStore>) -> Self {
        self.history = Some(history);
        self
    }

    /// The dispatcher.
    pub fn build(self) -> Dispatcher {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        Dispatcher {
            inner: Arc::new(Inner {
                outbox: self.outbox,
                routes: self.routes,
                policy: self.policy,
                lease: self.lease,
                history: self.history,
                token: format!(
                    "{host}:{}:{:016x}",
                    std::process::id(),
                    rand::random::<u64>()
                ),
                workers: Mutex::new(Vec::new()),
            }),
        }
    }
}

/// What one call of [`Dispatcher::deliver_due`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Deliveries accepted by their channel.
    pub delivered: u32,
    /// Failed attempts scheduled for a retry.
    pub retried: u32,
    /// Deliveries given up.
    pub gave_up: u32,
    /// `(channel, error)` of each failed attempt.
    pub errors: Vec<(String, String)>,
    /// The time budget ran out with work left.
    pub out_of_time: bool,
}

/// What [`Dispatcher::test`] got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The channel's name.
    pub channel: String,
    /// What it is.
    pub description: String,
    /// The server's answer, or the error.
    pub result: std::result::Result<String, String>,
    /// How long it took.
    pub took: Duration,
}

impl Dispatcher {
    /// A dispatcher writing to `outbox`, with no channel yet.
    pub fn builder(outbox: Arc<dyn NotificationOutbox>) -> DispatcherBuilder {
        DispatcherBuilder {
            outbox,
            routes: Vec::new(),
            policy: RetryPolicy::default(),
            lease: Duration::from_secs(120),
            history: None,
        }
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<dyn NotificationOutbox> {
        &self.inner.outbox
    }

    /// `(name, description, event names)` of every channel.
    pub fn channels(&self) -> Vec<(String, String, Vec<&'static str>)> {
        self.inner
            .routes
            .iter()
            .map(|r| {
                (
                    r.channel.name().to_string(),
                    r.channel.describe(),
                    r.events.names(),
                )
            })
            .collect()
    }

    fn channel(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.inner
            .routes
            .iter()
            .find(|r| r.channel.name() == name)
            .map(|r| &r.channel)
    }

    /// The channels that get `kind`.
    pub fn routes_for(&self, kind: NotificationType) -> Vec<String> {
        self.inner
            .routes
            .iter()
            .filter(|r| r.events.contains(kind))
            .map(|r| r.channel.name().to_string())
            .collect()
    }

    /// Writes `notification` to the outbox for the channels that get its
    /// type (without waking a worker); returns the channels that got a new
    /// delivery.
    pub fn enqueue(&self, notification: &Notification) -> Result<Vec<String>> {
        let channels = self.routes_for(notification.kind);
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let enriched = self.enrich(notification);
        let enqueued = self
            .inner
            .outbox
            .enqueue(&enriched, &channels, Utc::now())
            .map_err(|e| NotifyError::Outbox(Box::new(e)))?;
        Ok(enqueued.new_channels)
    }

    /// The notification with `occurred_at` and, when a history is known,
    /// `details` of its update (or, for a new version, its changelog).
    fn enrich(&self, n: &Notification) -> Notification {
        let mut meta = match &n.metadata {
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                let mut map = serde_json::Map::new();
                map.insert("value".into(), other.clone());
                map
            }
            None => serde_json::Map::new(),
        };
        meta.entry("occurred_at")
            .or_insert_with(|| json!(Utc::now().to_rfc3339()));
        if let (Some(history), false) = (&self.inner.history, meta.contains_key("details")) {
            let details = match meta.get("update_id").and_then(Value::as_i64) {
                Some(id) => match history.update(id) {
                    Ok(Some(u)) => {
                        let finished = u.completed_at.or(u.failed_at);
                        Some(json!({
                            "update_id": u.id,
                            "from": u.previous_version.as_ref().map(Version::to_string),
                            "to": u.version.to_string(),
                            "status": u.status.as_str(),
                            "started_at": u.started_at,
                            "finished_at": finished,
                            "duration_ms": finished.map(|f| (f - u.started_at).num_milliseconds().max(0)),
                            "maintenance_window_ms": u.maintenance_window_ms,
                            "error": u.error_message,
                            "changelog": u.changelog,
                            "initiated_by": u.initiated_by,
                        }))
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::debug!(error = %e, "no update details for the notice");
                        None
                    }
                },
                None if n.kind == NotificationType::UpdateAvailable => history
                    .latest_check()
                    .ok()
                    .flatten()
                    .and_then(|check| check.release_info)
                    .map(|release| {
                        json!({
                            "changelog": release.get("changelog").cloned().unwrap_or(Value::Null),
                            "published_at": release.get("published_at").cloned().unwrap_or(Value::Null),
                        })
                    }),
                None => None,
            };
            if let Some(details) = details {
                meta.insert("details".into(), details);
            }
        }
        Notification {
            metadata: Some(Value::Object(meta)),
            ..n.clone()
        }
    }

    fn wake(&self) {
        let mut workers = match self.inner.workers.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        workers.retain(|w| w.strong_count() > 0);
        for worker in workers.iter().filter_map(Weak::upgrade) {
            worker.request();
        }
    }

    /// Delivers what is due now, for at most `budget` (a send in progress
    /// when it runs out finishes first; each channel has its own timeout).
    /// Errors only when the outbox itself cannot be read.
    pub fn deliver_due(&self, budget: Duration) -> Result<DeliveryReport> {
        let deadline = Instant::now() + budget;
        let mut report = DeliveryReport::default();
        let lease = chrono::Duration::from_std(self.inner.lease)
            .unwrap_or_else(|_| chrono::Duration::minutes(2));
        loop {
            if Instant::now() >= deadline {
                report.out_of_time = true;
                break;
            }
            let claimed = self
                .inner
                .outbox
                .claim(&ClaimRequest::new(&self.inner.token, Utc::now(), lease).with_limit(50))
                .map_err(|e| NotifyError::Outbox(Box::new(e)))?;
            if claimed.is_empty() {
                break;
            }
            let mut by_channel: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
            for d in claimed {
                by_channel.entry(d.channel.clone()).or_default().push(d);
            }
            let results: Vec<DeliveryReport> = std::thread::scope(|scope| {
                let handles: Vec<_> = by_channel
                    .into_values()
                    .map(|deliveries| scope.spawn(move || self.deliver_all(deliveries, deadline)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            for r in results {
                report.delivered += r.delivered;
                report.retried += r.retried;
                report.gave_up += r.gave_up;
                report.errors.extend(r.errors);
                report.out_of_time |= r.out_of_time;
            }
        }
        Ok(report)
    }

    /// Sends `deliveries` (one channel) in order until `deadline`.
    fn deliver_all(&self, deliveries: Vec<Delivery>, deadline: Instant) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        for d in deliveries {
            if Instant::now() >= deadline {
                // Left claimed: the lease runs out and the next round takes it.
                report.out_of_time = true;
                continue;
            }
            let result = match self.channel(&d.channel) {
                Some(channel) => channel
                    .send(&d.event.notification)
                    .map_err(|e| e.to_string()),
                None => Err(format!(
                    "channel {:?} is not configured (any more); the notice cannot be delivered",
                    d.channel
                )),
            };
            let now = Utc::now();
            let outcome = match &result {
                Ok(answer) => {
                    tracing::debug!(channel = %d.channel, event = %d.event.notification.event_id, %answer, "notice delivered");
                    report.delivered += 1;
                    AttemptOutcome::Delivered
                }
                Err(error) => {
                    report.errors.push((d.channel.clone(), error.clone()));
                    let next = if self.channel(&d.channel).is_some() {
                        self.inner
                            .policy
                            .next_attempt(d.attempts + 1, d.event.created_at, now)
                    } else {
                        None
                    };
                    match next {
                        Some(next_attempt_at) => {
                            tracing::warn!(channel = %d.channel, event = %d.event.notification.event_id, attempt = d.attempts + 1, retry_at = %next_attempt_at, %error, "notice not delivered; will retry");
                            report.retried += 1;
                            AttemptOutcome::Retry {
                                error: error.clone(),
                                next_attempt_at,
                            }
                        }
                        None => {
                            tracing::error!(channel = %d.channel, event = %d.event.notification.event_id, attempts = d.attempts + 1, %error, "notice given up");
                            report.gave_up += 1;
                            AttemptOutcome::GiveUp {
                                error: error.clone(),
                            }
                        }
                    }
                }
            };
            match self
                .inner
                .outbox
                .finish(d.id, &self.inner.token, now, &outcome)
            {
                Ok(true) => {
                    if let AttemptOutcome::GiveUp { error } = &outcome {
                        self.announce_give_up(&d, error);
                    }
                }
                Ok(false) => {
                    tracing::warn!(channel = %d.channel, delivery = d.id, "the claim ran out before the attempt was recorded; another deliverer took over");
                }
                Err(e) => {
                    tracing::error!(channel = %d.channel, delivery = d.id, error = %e, "cannot record the attempt; it will be made again");
                }
            }
        }
        report
    }

    /// Tells the other channels that `d`'s channel gave up (once a day per channel).
    fn announce_give_up(&self, d: &Delivery, error: &str) {
        let others: Vec<String> = self
            .routes_for(NotificationType::Warning)
            .into_iter()
            .filter(|c| *c != d.channel)
            .collect();
        if others.is_empty() {
            return;
        }
        let warning = Notification::new(
            NotificationType::Warning,
            d.event.notification.version.clone(),
            format!(
                "notification channel {} gave up on the {} notice \"{}\" after {} attempts: {error}",
                d.channel,
                d.event.notification.kind.as_str(),
                d.event.notification.message,
                d.attempts + 1
            ),
        )
        .with_event_id(format!(
            "channel-gave-up:{}:{}",
            d.channel,
            Utc::now().format("%Y-%m-%d")
        ))
        .with_metadata(json!({ "channel": d.channel, "event_id": d.event.notification.event_id }));
        if let Err(e) = self
            .inner
            .outbox
            .enqueue(&self.enrich(&warning), &others, Utc::now())
        {
            tracing::error!(error = %e, "cannot announce the channel that gave up");
        }
    }

    /// When the next pending delivery is due, if any.
    pub fn next_due(&self) -> Result<Option<chrono::DateTime<Utc>>> {
        let pending = self
            .inner
            .outbox
            .deliveries(&DeliveryFilter {
                status: Some(DeliveryStatus::Pending),
                limit: 1000,
                ..DeliveryFilter::default()
            })
            .map_err(|e| NotifyError::Outbox(Box::new(e)))?;
        Ok(pending
            .iter()
            .map(|d| match d.claimed_until {
                Some(until) if until > d.next_attempt_at => until,
                _ => d.next_attempt_at,
            })
            .min())
    }

    /// The health of each channel with waiting or given-up deliveries.
    pub fn health(&self) -> Result<Vec<ChannelHealth>> {
        updater_core::outbox::channel_health(self.inner.outbox.as_ref())
            .map_err(|e| NotifyError::Outbox(Box::new(e)))
    }

    /// Sends a test message through channel `name` directly (not through
    /// the outbox) and reports its answer.
    pub fn test(&self, name: &str) -> Result<TestOutcome> {
        let channel = self
            .channel(name)
            .ok_or_else(|| NotifyError::UnknownChannel(name.to_string()))?;
        Ok(Self::test_channel(channel.as_ref()))
    }

    /// Sends a test message through every channel.
    pub fn test_all(&self) -> Vec<TestOutcome> {
        self.inner
            .routes
            .iter()
            .map(|r| Self::test_channel(r.channel.as_ref()))
            .collect()
    }

    fn test_channel(channel: &dyn Channel) -> TestOutcome {
        let now = Utc::now();
        let note = Notification::new(
            NotificationType::Test,
            Version::new(0, 0, 0),
            format!(
                "Test message for the notification channel {}, sent at {}. If you read this, it works.",
                channel.name(),
                now.to_rfc3339()
            ),
        )
        .with_event_id(format!(
            "test:{}:{}",
            channel.name(),
            now.timestamp_nanos_opt().unwrap_or(0)
        ))
        .with_metadata(json!({ "occurred_at": now.to_rfc3339() }));
        let started = Instant::now();
        let result = channel.send(&note).map_err(|e| e.to_string());
        TestOutcome {
            channel: channel.name().to_string(),
            description: channel.describe(),
            result,
            took: started.elapsed(),
        }
    }

    /// Starts a background thread that delivers what is due now, then
    /// whenever `notify` enqueues something and when retries fall due.
    pub fn spawn(&self, round_budget: Duration) -> Worker {
        let shared = Arc::new(WorkerShared {
            state: Mutex::new(WorkerState::default()),
            signal: Condvar::new(),
        });
        {
            let mut workers = match self.inner.workers.lock() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            workers.push(Arc::downgrade(&shared));
        }
        let thread = {
            let (dispatcher, shared) = (self.clone(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("updater-notify".into())
                .spawn(move || dispatcher.work(&shared, round_budget))
                .ok()
        };
        Worker { shared, thread }
    }

    fn work(&self, shared: &WorkerShared, round_budget: Duration) {
        const POLL: Duration = Duration::from_secs(30);
        loop {
            let generation = match shared.state.lock() {
                Ok(state) if state.stop => return,
                Ok(state) => state.requested,
                Err(_) => return,
            };
            match self.deliver_due(round_budget) {
                Ok(report) if report != DeliveryReport::default() => {
                    tracing::debug!(?report, "delivery round");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot deliver notices now"),
            }
            let wait = match self.next_due() {
                Ok(Some(due)) => (due - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::from_millis(50))
                    .clamp(Duration::from_millis(50), POLL),
                _ => POLL,
            };
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            state.completed = state.completed.max(generation);
            shared.signal.notify_all();
            let until = Instant::now() + wait;
            while !state.stop && state.requested == generation {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = match shared.signal.wait_timeout(state, left) {
                    Ok((s, _)) => s,
                    Err(_) => return,
                };
            }
        }
    }
}

impl Notifier for Dispatcher {
    /// Enqueues (see [`Dispatcher::enqueue`]) and wakes the worker.
    fn notify(&self, notification: &Notification) -> updater_core::Result<()> {
        let result = self.enqueue(notification);
        self.wake();
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(kind = notification.kind.as_str(), event = %notification.event_id, message = %notification.message, error = %e, "cannot write the notice to the outbox");
                Err(e.into())
            }
        }
    }
}

#[derive(Debug, Default)]
struct WorkerState {
    requested: u64,
    completed: u64,
    stop: bool,
}

#[derive(Debug)]
struct WorkerShared {
    state: Mutex<WorkerState>,
    signal: Condvar,
}

impl WorkerShared {
    fn request(&self) -> u64 {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.requested += 1;
        self.signal.notify_all();
        state.requested
    }
}

/// A background delivery thread ([`Dispatcher::spawn`]); stops when
/// dropped (without waiting for a send in progress longer than 2 s).
#[derive(Debug)]
pub struct Worker {
    shared: Arc<WorkerShared>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Asks for a round and waits until one that started after this call
    /// has finished, or `max_wait` passed; `true` when it finished: every
    /// notice enqueued before the call had its attempt.
    pub fn flush(&self, max_wait: Duration) -> bool {
        let target = self.shared.request();
        let deadline = Instant::now() + max_wait;
        let mut state = match self.shared.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        while state.completed < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
                return false;
            }
            state = match self.shared.signal.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Stops the thread: waits up to `max_wait` for it to end (a send in
    /// progress), then leaves it to end with the process.
    pub fn stop(mut self, max_wait: Duration) {
        self.stop_within(max_wait);
    }

    fn stop_within(&mut self, max_wait: Duration) {
        {
            let mut state = match self.shared.state.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            state.stop = true;
            self.shared.signal.notify_all();
        }
        let deadline = Instant::now() + max_wait;
        if let Some(thread) = self.thread.take() {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_within(Duration::from_secs(2));
    }
}
