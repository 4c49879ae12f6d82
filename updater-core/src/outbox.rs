//! The notification outbox: events written to the history database first,
//! then delivered to each channel (e-mail, Slack, webhook...) outside the
//! update's critical path, with per-channel delivery state.
//!
//! This module is the *model*: the [`NotificationOutbox`] storage trait, its
//! records, the [`InMemoryOutbox`] and [`channel_health`]. The channels and
//! the delivery loop (retries with backoff, giving up) live in the crate
//! `updater-notify`; `updater-store-diesel` stores the outbox in SQLite,
//! PostgreSQL or MySQL beside the history.
//!
//! How a notice travels:
//!
//! 1. [`enqueue`](NotificationOutbox::enqueue) writes the event and one
//!    pending [`Delivery`] per channel in one transaction. The event id is
//!    unique: enqueueing it again adds only the channels it did not have
//!    (one notice per event per channel).
//! 2. A deliverer [`claim`](NotificationOutbox::claim)s due deliveries for a
//!    lease. Another deliverer (another process) does not get them while the
//!    lease runs; when the claimer died, they come back once it expired.
//! 3. It sends each and records the attempt with
//!    [`finish`](NotificationOutbox::finish): delivered, retry at a later
//!    time, or given up. A finish by a claimer whose lease was taken over is
//!    refused, so one attempt is recorded once.
//!
//! A crash anywhere loses nothing: a notice is either not yet enqueued (the
//! pipeline had not reached it), or pending until delivered or given up.
//! Delivery is at least once; a crash between sending and recording sends
//! again, with the same [`Notification::event_id`] for the receiver to drop.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use updater_core::history::NotificationType;
//! use updater_core::notify::Notification;
//! use updater_core::outbox::{AttemptOutcome, ClaimRequest, DeliveryStatus, InMemoryOutbox, NotificationOutbox};
//! use updater_core::version::Version;
//!
//! let outbox = InMemoryOutbox::new();
//! let now = Utc::now();
//! let n = Notification::new(NotificationType::UpdateRolledBack, Version::new(1, 2, 0), "rolled back")
//!     .with_event_id("update-3:update_rolled_back");
//! outbox.enqueue(&n, &["email".to_string(), "slack".to_string()], now)?;
//!
//! let claimed = outbox.claim(&ClaimRequest::new("worker-1", now, Duration::seconds(30)))?;
//! assert_eq!(claimed.len(), 2);
//! for delivery in &claimed {
//!     outbox.finish(delivery.id, "worker-1", now, &AttemptOutcome::Delivered)?;
//! }
//! assert!(outbox.claim(&ClaimRequest::new("worker-2", now, Duration::seconds(30)))?.is_empty());
//! assert_eq!(outbox.deliveries(&Default::default())?[0].status, DeliveryStatus::Delivered);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::notify::Notification;

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: due at `next_attempt_at`.
    Pending,
    /// The channel accepted it.
    Delivered,
    /// Retries were exhausted (too many attempts, or too old); the last
    /// error is kept.
    GaveUp,
}

impl DeliveryStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::GaveUp => "gave_up",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "gave_up" => DeliveryStatus::GaveUp,
            other => {
                return Err(Error::invalid(
                    format!("delivery status {other:?}"),
                    "unknown status",
                ));
            }
        })
    }
}

/// An event in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Assigned by the outbox.
    pub id: i64,
    /// The notification, as enqueued the first time.
    pub notification: Notification,
    /// When it was first enqueued.
    pub created_at: DateTime<Utc>,
}

/// One event on its way to one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Assigned by the outbox.
    pub id: i64,
    /// The event.
    pub event: OutboxEvent,
    /// The channel's name (`email`, `ops-slack`...).
    pub channel: String,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is due (pending), or was last due.
    pub next_attempt_at: DateTime<Utc>,
    /// The error of the last failed attempt (never a secret).
    pub last_error: Option<String>,
    /// When the channel accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Until when a deliverer holds it.
    pub claimed_until: Option<DateTime<Utc>>,
}

/// What [`NotificationOutbox::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The event's id in the outbox (the existing one for a known event).
    pub event: i64,
    /// Whether the event was new.
    pub new_event: bool,
    /// The channels that got a new pending delivery (those that already had
    /// one for this event are left alone).
    pub new_channels: Vec<String>,
}

/// Which due deliveries to claim, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Names the claimer; [`finish`](NotificationOutbox::finish) must give it back.
    pub token: String,
    /// Deliveries due at or before this time, not held by a live lease.
    pub now: DateTime<Utc>,
    /// How long the claim holds (longer than one attempt may take).
    pub lease: Duration,
    /// At most this many.
    pub limit: usize,
    /// Only these channels (`None`: every channel).
    pub channels: Option<Vec<String>>,
}

impl ClaimRequest {
    /// Up to 100 due deliveries of every channel, for `lease`.
    pub fn new(token: impl Into<String>, now: DateTime<Utc>, lease: Duration) -> Self {
        ClaimRequest {
            token: token.into(),
            now,
            lease,
            limit: 100,
            channels: None,
        }
    }

    /// Only deliveries to `channels` (builder style).
    pub fn for_channels<I, S>(mut self, channels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.channels = Some(channels.into_iter().map(Into::into).collect());
        self
    }

    /// At most `limit` deliveries (builder style).
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The channel accepted the notice.
    Delivered,
    /// It failed; try again at `next_attempt_at`.
    Retry {
        /// What went wrong (no secrets).
        error: String,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
    },
    /// It failed and retries are exhausted.
    GiveUp {
        /// What went wrong (no secrets).
        error: String,
    },
}

/// Which deliveries to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only those in this state.
    pub status: Option<DeliveryStatus>,
    /// Only those to this channel.
    pub channel: Option<String>,
    /// Only those of this event ([`Notification::event_id`]).
    pub event_id: Option<String>,
    /// At most this many, newest first.
    pub limit: u64,
}

impl Default for DeliveryFilter {
    fn default() -> Self {
        DeliveryFilter {
            status: None,
            channel: None,
            event_id: None,
            limit: 100,
        }
    }
}

/// Stores notification events and their per-channel delivery state.
///
/// # Contract
///
/// - Every write is durable when the method returns and visible to other
///   processes using the same outbox; `enqueue` writes the event and its
///   deliveries atomically.
/// - Events are unique by [`Notification::event_id`]; deliveries are unique
///   by (event, channel). Enqueueing a known event stores no second copy
///   and adds only the missing channels.
/// - A claimed delivery is pending, due (`next_attempt_at <= now`) and not
///   held by another claim whose lease is still running. Two claims, from
///   any number of threads or processes, never get the same delivery while
///   a lease runs. Claims are ordered by `next_attempt_at`, then id.
/// - [`finish`](Self::finish) records an attempt (attempts + 1) only for
///   the claimer holding the delivery; otherwise it returns `Ok(false)` and
///   changes nothing. Finishing releases the claim.
/// - Listings are newest first (by id).
/// - Safe to use from several threads and processes at once.
///
/// # Implementing
///
/// Every method is required. Run `updater_core::conformance::outbox::run`
/// (feature `conformance`) against the implementation.
pub trait NotificationOutbox: Send + Sync {
    /// Writes `notification` (unless its event is known) and a pending
    /// delivery, due at `now`, for each of `channels` that it lacks.
    fn enqueue(
        &self,
        notification: &Notification,
        channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<Enqueued>;

    /// Claims due deliveries for `request.lease` (see the contract).
    fn claim(&self, request: &ClaimRequest) -> Result<Vec<Delivery>>;

    /// Records the attempt on delivery `id` made at `at` by the claimer
    /// `token`; `Ok(false)` when that claimer no longer holds it.
    fn finish(
        &self,
        id: i64,
        token: &str,
        at: DateTime<Utc>,
        outcome: &AttemptOutcome,
    ) -> Result<bool>;

    /// Deliveries matching `filter`, newest first.
    fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>>;
}

crate::forward_trait!(NotificationOutbox:
    fn enqueue(&self, notification: &Notification, channels: &[String], now: DateTime<Utc>) -> Result<Enqueued>;
    fn claim(&self, request: &ClaimRequest) -> Result<Vec<Delivery>>;
    fn finish(&self, id: i64, token: &str, at: DateTime<Utc>, outcome: &AttemptOutcome) -> Result<bool>;
    fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>>;
);

/// How one channel is doing, for `updater status` and the web console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelHealth {
    /// The channel's name.
    pub channel: String,
    /// Deliveries waiting.
    pub pending: u64,
    /// Of those, how many failed at least once.
    pub retrying: u64,
    /// The oldest waiting delivery's event time.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Deliveries given up since the channel last delivered.
    pub gave_up: u64,
    /// The newest error of a waiting or given-up delivery.
    pub last_error: Option<String>,
    /// When the channel last delivered.
    pub last_delivered_at: Option<DateTime<Utc>>,
}

impl ChannelHealth {
    fn blank(name: &str) -> Self {
        ChannelHealth {
            channel: name.to_string(),
            pending: 0,
            retrying: 0,
            oldest_pending: None,
            gave_up: 0,
            last_error: None,
            last_delivered_at: None,
        }
    }

    /// Failing: a waiting delivery already failed, or one was given up since
    /// the last success.
    pub fn is_failing(&self) -> bool {
        self.retrying > 0 || self.gave_up > 0
    }
}

/// The health of every channel that has deliveries waiting or given up
/// (up to 1,000 of each), sorted by channel name.
pub fn channel_health(outbox: &dyn NotificationOutbox) -> Result<Vec<ChannelHealth>> {
    let list = |status| {
        outbox.deliveries(&DeliveryFilter {
            status: Some(status),
            limit: 1000,
            ..DeliveryFilter::default()
        })
    };
    let mut healths: BTreeMap<String, ChannelHealth> = BTreeMap::new();
    // Newest first, so the first error seen is the newest.
    for d in list(DeliveryStatus::Pending)? {
        let mut h = healths
            .remove(&d.channel)
            .unwrap_or_else(|| ChannelHealth::blank(&d.channel));
        h.pending += 1;
        if d.attempts > 0 {
            h.retrying += 1;
            if h.last_error.is_none() {
                h.last_error = d.last_error.clone();
            }
        }
        h.oldest_pending = Some(
            h.oldest_pending
                .map_or(d.event.created_at, |o| o.min(d.event.created_at)),
        );
        healths.insert(d.channel.clone(), h);
    }
    let gave_up = list(DeliveryStatus::GaveUp)?;
    let mut names: Vec<String> = healths.keys().cloned().collect();
    names.extend(gave_up.iter().map(|d| d.channel.clone()));
    names.sort();
    names.dedup();
    for name in names {
        let last = outbox
            .deliveries(&DeliveryFilter {
                status: Some(DeliveryStatus::Delivered),
                channel: Some(name.clone()),
                limit: 1,
                ..DeliveryFilter::default()
            })?
            .into_iter()
            .next()
            .and_then(|d| d.delivered_at);
        let mut h = healths
            .remove(&name)
            .unwrap_or_else(|| ChannelHealth::blank(&name));
        h.last_delivered_at = last;
        for d in gave_up.iter().filter(|d| d.channel == name) {
            let after_success = last.is_none_or(|l| d.next_attempt_at > l);
            if after_success {
                h.gave_up += 1;
                if h.last_error.is_none() {
                    h.last_error = d.last_error.clone();
                }
            }
        }
        if h.pending > 0 || h.gave_up > 0 {
            healths.insert(name, h);
        }
    }
    Ok(healths.into_values().collect())
}

/// A [`NotificationOutbox`] in memory: for tests and for applications
/// without a database (pending notices are lost when the process exits).
#[derive(Debug, Default)]
pub struct InMemoryOutbox {
    inner: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    events: Vec<OutboxEvent>,
    deliveries: Vec<Row>,
}

#[derive(Debug, Clone)]
struct Row {
    id: i64,
    event: i64,
    channel: String,
    status: DeliveryStatus,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
    claimed_until: Option<DateTime<Utc>>,
    claim_token: Option<String>,
}

impl InMemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> Result<MutexGuard<'_, Tables>> {
        self.inner
            .lock()
            .map_err(|_| Error::unavailable("in-memory outbox", "a thread panicked while writing"))
    }
}

impl Tables {
    fn delivery(&self, row: &Row) -> Result<Delivery> {
        let event = self
            .events
            .iter()
            .find(|e| e.id == row.event)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("outbox event {}", row.event)))?;
        Ok(Delivery {
            id: row.id,
            event,
            channel: row.channel.clone(),
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error.clone(),
            delivered_at: row.delivered_at,
            claimed_until: row.claimed_until,
        })
    }
}

impl NotificationOutbox for InMemoryOutbox {
    fn enqueue(
        &self,
        notification: &Notification,
        channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<Enqueued> {
        let mut t = self.tables()?;
        let known = t
            .events
            .iter()
            .find(|e| e.notification.event_id == notification.event_id)
            .map(|e| e.id);
        let (event, new_event) = match known {
            Some(id) => (id, false),
            None => {
                let id = t.events.iter().map(|e| e.id).max().unwrap_or(0) + 1;
                t.events.push(OutboxEvent {
                    id,
                    notification: notification.clone(),
                    created_at: now,
                });
                (id, true)
            }
        };
        let mut new_channels = Vec::new();
        for channel in channels {
            let exists = t
                .deliveries
                .iter()
                .any(|d| d.event == event && &d.channel == channel);
            if exists || new_channels.contains(channel) {
                continue;
            }
            let id = t.deliveries.iter().map(|d| d.id).max().unwrap_or(0) + 1;
            t.deliveries.push(Row {
                id,
                event,
                channel: channel.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                delivered_at: None,
                claimed_until: None,
                claim_token: None,
            });
            new_channels.push(channel.clone());
        }
        Ok(Enqueued {
            event,
            new_event,
            new_channels,
        })
    }

    fn claim(&self, request: &ClaimRequest) -> Result<Vec<Delivery>> {
        let mut t = self.tables()?;
        let mut due: Vec<usize> = t
            .deliveries
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.status == DeliveryStatus::Pending
                    && d.next_attempt_at <= request.now
                    && d.claimed_until.is_none_or(|until| until <= request.now)
                    && request
                        .channels
                        .as_ref()
                        .is_none_or(|only| only.contains(&d.channel))
            })
            .map(|(i, _)| i)
            .collect();
        due.sort_by_key(|&i| (t.deliveries[i].next_attempt_at, t.deliveries[i].id));
        due.truncate(request.limit);
        let mut claimed = Vec::with_capacity(due.len());
        for i in due {
            let row = &mut t.deliveries[i];
            row.claimed_until = Some(request.now + request.lease);
            row.claim_token = Some(request.token.clone());
            let row = row.clone();
            claimed.push(t.delivery(&row)?);
        }
        Ok(claimed)
    }

    fn finish(
        &self,
        id: i64,
        token: &str,
        at: DateTime<Utc>,
        outcome: &AttemptOutcome,
    ) -> Result<bool> {
        let mut t = self.tables()?;
        let row = t
            .deliveries
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::not_found(format!("delivery {id}")))?;
        if row.status != DeliveryStatus::Pending || row.claim_token.as_deref() != Some(token) {
            return Ok(false);
        }
        row.attempts += 1;
        row.claimed_until = None;
        row.claim_token = None;
        match outcome {
            AttemptOutcome::Delivered => {
                row.status = DeliveryStatus::Delivered;
                row.delivered_at = Some(at);
            }
            AttemptOutcome::Retry {
                error,
                next_attempt_at,
            } => {
                row.last_error = Some(error.clone());
                row.next_attempt_at = *next_attempt_at;
            }
            AttemptOutcome::GiveUp { error } => {
                row.status = DeliveryStatus::GaveUp;
                row.last_error = Some(error.clone());
                row.next_attempt_at = at;
            }
        }
        Ok(true)
    }

    fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let t = self.tables()?;
        let mut rows: Vec<&Row> = t
            .deliveries
            .iter()
            .filter(|d| filter.status.is_none_or(|s| s == d.status))
            .filter(|d| filter.channel.as_ref().is_none_or(|c| c == &d.channel))
            .filter(|d| {
                filter.event_id.as_ref().is_none_or(|wanted| {
                    t.events
                        .iter()
                        .any(|e| e.id == d.event && &e.notification.event_id == wanted)
                })
            })
            .collect();
        rows.sort_by_key(|d| std::cmp::Reverse(d.id));
        rows.into_iter()
            .take(usize::try_from(filter.limit).unwrap_or(usize::MAX))
            .map(|row| t.delivery(row))
            .collect()
    }
}
