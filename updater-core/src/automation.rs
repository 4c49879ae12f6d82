//! Unattended updates: which updates may apply without a person
//! ([`AutoUpdatePolicy`]), when ([`Window`]s in the application's time
//! zone), one-off updates scheduled for a moment ([`ScheduledUpdate`] in a
//! [`ScheduleStore`]), and the operator's pause switch ([`PauseState`]).
//!
//! The policy is checked by [`Updater::automation_round`](crate::pipeline::Updater::automation_round),
//! which `updater schedule` and `updater serve` call periodically: it also
//! carries out due one-off updates and watches an update on probation.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use updater_core::automation::Window;
//! // Sunday night in Berlin; 2026-12-06 is a Sunday, CET is UTC+1.
//! let window: Window = "Sun 02:00-04:00 Europe/Berlin".parse()?;
//! assert!(window.contains(Utc.with_ymd_and_hms(2026, 12, 6, 1, 30, 0).unwrap()));
//! assert!(!window.contains(Utc.with_ymd_and_hms(2026, 12, 6, 3, 30, 0).unwrap()));
//! assert_eq!(
//!     window.next_opening(Utc.with_ymd_and_hms(2026, 12, 6, 3, 30, 0).unwrap()),
//!     Some(Utc.with_ymd_and_hms(2026, 12, 13, 1, 0, 0).unwrap())
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::str::FromStr;
use std::sync::Mutex;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::version::{Channel, UpdateType, Version};

// ------------------------------------------------------------------ policy

/// How far an update may go without a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AutoUpdateLevel {
    /// Never (default): a person applies every update.
    #[default]
    None,
    /// Patch updates (`1.4.2` → `1.4.3`).
    Patch,
    /// Patch and minor updates.
    Minor,
    /// Every newer version, major ones included.
    All,
}

impl AutoUpdateLevel {
    /// Whether an update of `kind` may apply at this level. Reinstalls and
    /// downgrades never apply automatically.
    pub fn allows(self, kind: UpdateType) -> bool {
        match (self, kind) {
            (_, UpdateType::Reinstall | UpdateType::Downgrade) => false,
            (AutoUpdateLevel::None, _) => false,
            (AutoUpdateLevel::Patch, kind) => kind == UpdateType::Patch,
            (AutoUpdateLevel::Minor, kind) => matches!(kind, UpdateType::Patch | UpdateType::Minor),
            (AutoUpdateLevel::All, _) => true,
        }
    }

    /// `none`, `patch`, `minor` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoUpdateLevel::None => "none",
            AutoUpdateLevel::Patch => "patch",
            AutoUpdateLevel::Minor => "minor",
            AutoUpdateLevel::All => "all",
        }
    }
}

impl FromStr for AutoUpdateLevel {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(AutoUpdateLevel::None),
            "patch" => Ok(AutoUpdateLevel::Patch),
            "minor" => Ok(AutoUpdateLevel::Minor),
            "all" | "major" => Ok(AutoUpdateLevel::All),
            _ => Err(Error::invalid(
                format!("automatic update level {text:?}"),
                "expected none, patch, minor or all",
            )),
        }
    }
}

/// Which updates apply without a person, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoUpdatePolicy {
    /// The level for releases of any channel...
    pub level: AutoUpdateLevel,
    /// ...unless the release's own channel has one here (e.g. betas: `none`).
    pub per_channel: Vec<(Channel, AutoUpdateLevel)>,
    /// Versions never applied automatically.
    pub skip: Vec<Version>,
    /// When an automatic update may start (any time when empty).
    pub windows: Vec<Window>,
}

/// What the policy says about a candidate, now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum AutoDecision {
    /// Apply it now.
    Apply,
    /// Not automatically, ever (a person must).
    NotAllowed {
        /// Why.
        reason: String,
    },
    /// Later: outside a window, or it would not finish before the window closes.
    Wait {
        /// When it may start at the earliest.
        until: Option<DateTime<Utc>>,
        /// Why.
        reason: String,
    },
}

impl AutoUpdatePolicy {
    /// The level that applies to `version` (its channel's own, else the default).
    pub fn level_for(&self, version: &Version) -> AutoUpdateLevel {
        self.per_channel
            .iter()
            .find(|(channel, _)| *channel == version.channel())
            .map_or(self.level, |(_, level)| *level)
    }

    /// Whether the policy lets `version` (an update of `kind`) apply
    /// without a person at all, window aside.
    pub fn permits(&self, version: &Version, kind: UpdateType) -> std::result::Result<(), String> {
        if self.skip.contains(version) {
            return Err(format!("{version} is on the skip list"));
        }
        let level = self.level_for(version);
        if level.allows(kind) {
            Ok(())
        } else {
            Err(format!(
                "a {} update is not automatic at level {} ({} channel)",
                kind.as_str(),
                level.as_str(),
                version.channel()
            ))
        }
    }

    /// Whether `version` may apply now, at `now`, given that an update takes
    /// about `expected` (estimated from history): inside a window that stays
    /// open long enough.
    pub fn decide(
        &self,
        version: &Version,
        kind: UpdateType,
        now: DateTime<Utc>,
        expected: Duration,
    ) -> AutoDecision {
        if let Err(reason) = self.permits(version, kind) {
            return AutoDecision::NotAllowed { reason };
        }
        if self.windows.is_empty() {
            return AutoDecision::Apply;
        }
        for window in &self.windows {
            if let Some((_, closes)) = window.occurrence_at(now)
                && now + expected <= closes
            {
                return AutoDecision::Apply;
            }
        }
        let next = self
            .windows
            .iter()
            .filter_map(|w| w.next_opening(now))
            .min();
        let open_now = self.windows.iter().any(|w| w.contains(now));
        AutoDecision::Wait {
            until: next,
            reason: if open_now {
                format!(
                    "an update takes about {} min, longer than the window has left",
                    expected.num_minutes().max(1)
                )
            } else {
                "outside the maintenance windows".to_string()
            },
        }
    }
}

// ------------------------------------------------------------------ windows

/// A recurring window in which an automatic update may start: days of the
/// week, a local time range (crossing midnight when the end is earlier than
/// the start) and a time zone (IANA name; daylight-saving changes follow the
/// zone's rules: a start in a skipped hour moves to the first existing
/// minute, an ambiguous one takes its first occurrence).
///
/// Written `DAYS HH:MM-HH:MM [ZONE]`: `Sun 02:00-04:00 Europe/Berlin`,
/// `Mon-Fri 22:00-02:00 America/New_York`, `Sat,Sun 03:00-05:00`,
/// `daily 01:00-02:00 UTC` (the zone defaults to UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The days a window opens on.
    pub days: Vec<Weekday>,
    /// When it opens (local time).
    pub start: NaiveTime,
    /// When it closes (local time; the next day when not after `start`).
    pub end: NaiveTime,
    /// The time zone of `start` and `end`.
    pub zone: Tz,
    text: String,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

impl FromStr for Window {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::invalid(format!("window {text:?}"), reason);
        let mut parts = text.split_whitespace();
        let (Some(days), Some(range)) = (parts.next(), parts.next()) else {
            return Err(bad(
                "expected `DAYS HH:MM-HH:MM [TIME ZONE]`, e.g. `Sun 02:00-04:00 Europe/Berlin`"
                    .into(),
            ));
        };
        let zone = match parts.next() {
            Some(name) => name.parse::<Tz>().map_err(|_| {
                bad(format!(
                    "unknown time zone {name:?} (an IANA name like Europe/Berlin)"
                ))
            })?,
            None => Tz::UTC,
        };
        if let Some(extra) = parts.next() {
            return Err(bad(format!("unexpected {extra:?}")));
        }
        let mut list = Vec::new();
        if matches!(days.to_ascii_lowercase().as_str(), "daily" | "*" | "every") {
            list.extend([
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ]);
        } else {
            for item in days.split(',') {
                match item.split_once('-') {
                    Some((from, to)) => {
                        let (Some(mut day), Some(last)) = (weekday(from), weekday(to)) else {
                            return Err(bad(format!("unknown day range {item:?}")));
                        };
                        loop {
                            list.push(day);
                            if day == last {
                                break;
                            }
                            day = day.succ();
                        }
                    }
                    None => list
                        .push(weekday(item).ok_or_else(|| bad(format!("unknown day {item:?}")))?),
                }
            }
        }
        let (start, end) = range.split_once('-').ok_or_else(|| {
            bad(format!(
                "expected a time range like 02:00-04:00, got {range:?}"
            ))
        })?;
        let time = |value: &str| {
            NaiveTime::parse_from_str(value, "%H:%M")
                .map_err(|_| bad(format!("{value:?} is not a time like 02:00")))
        };
        let (start, end) = (time(start)?, time(end)?);
        if start == end {
            return Err(bad("the window is empty (start equals end)".into()));
        }
        list.sort_by_key(|d| d.num_days_from_monday());
        list.dedup();
        Ok(Window {
            days: list,
            start,
            end,
            zone,
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

/// The instant of local `naive` in `zone`: a time skipped by a DST change
/// moves to the first existing minute after it; an ambiguous one (repeated
/// hour) takes the `earliest` or latest occurrence.
fn resolve(zone: Tz, naive: chrono::NaiveDateTime, earliest: bool) -> DateTime<Utc> {
    let mut probe = naive;
    for _ in 0..(24 * 60) {
        match zone.from_local_datetime(&probe) {
            LocalResult::Single(at) => return at.with_timezone(&Utc),
            LocalResult::Ambiguous(first, second) => {
                return if earliest { first } else { second }.with_timezone(&Utc);
            }
            LocalResult::None => probe += Duration::minutes(1),
        }
    }
    naive.and_utc()
}

impl Window {
    /// The occurrence that opens on local date `day`, if the window opens that day.
    fn occurrence_on(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days.contains(&day.weekday()) {
            return None;
        }
        let end_day = if self.end > self.start {
            day
        } else {
            day.succ_opt()?
        };
        let opens = resolve(self.zone, day.and_time(self.start), true);
        let closes = resolve(self.zone, end_day.and_time(self.end), false);
        (opens < closes).then_some((opens, closes))
    }

    /// The occurrence containing `at` (opening, closing), if any.
    pub fn occurrence_at(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let local = at.with_timezone(&self.zone).date_naive();
        [local.pred_opt(), Some(local)]
            .into_iter()
            .flatten()
            .filter_map(|day| self.occurrence_on(day))
            .find(|(opens, closes)| *opens <= at && at < *closes)
    }

    /// Whether the window is open at `at`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.occurrence_at(at).is_some()
    }

    /// When the window next opens after `after` (strictly later).
    pub fn next_opening(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone).date_naive();
        (0..9)
            .filter_map(|offset| local.checked_add_signed(Duration::days(offset - 1)))
            .filter_map(|day| self.occurrence_on(day))
            .map(|(opens, _)| opens)
            .find(|opens| *opens > after)
    }
}

// ------------------------------------------------------------------ pause

/// The operator's pause switch: while set, nothing applies automatically
/// (automatic updates, scheduled one-off updates, probation rollbacks still run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PauseState {
    /// Why.
    pub reason: String,
    /// Who paused.
    pub by: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

// ------------------------------------------------------------------ probation

/// An update on probation: committed, but trusted only once it kept running
/// healthy until `until`. Until then the kept release and its database
/// snapshot are not collected, and a failing health check rolls it back
/// automatically (also after a restart: this lives in the installed state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Probation {
    /// The update on probation.
    pub update_id: Option<i64>,
    /// The version it installed.
    pub version: Version,
    /// The version it replaced (where a failed probation goes back to).
    pub previous: Version,
    /// When the probation began (the commit).
    pub started_at: DateTime<Utc>,
    /// When it ends.
    pub until: DateTime<Utc>,
}

// ------------------------------------------------------------------ schedule

/// Where a one-off update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStatus {
    /// Waiting for its time.
    Pending,
    /// Carried out: the update completed (or there was nothing newer).
    Done,
    /// Carried out and failed (see `message`), or given up after repeated attempts.
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

impl ScheduleStatus {
    /// The snake_case name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Pending => "pending",
            ScheduleStatus::Done => "done",
            ScheduleStatus::Failed => "failed",
            ScheduleStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "pending" => ScheduleStatus::Pending,
            "done" => ScheduleStatus::Done,
            "failed" => ScheduleStatus::Failed,
            "cancelled" => ScheduleStatus::Cancelled,
            other => {
                return Err(Error::invalid(
                    format!("schedule status {other:?}"),
                    "unknown status",
                ));
            }
        })
    }
}

/// An update an operator scheduled for a moment (`updater apply --at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledUpdate {
    /// Assigned by the store.
    pub id: i64,
    /// When it should run.
    pub at: DateTime<Utc>,
    /// The version to install; the newest of the channel when `None`.
    pub version: Option<Version>,
    /// Who scheduled it.
    pub created_by: String,
    /// When it was scheduled.
    pub created_at: DateTime<Utc>,
    /// Where it stands.
    pub status: ScheduleStatus,
    /// Times it was started (an updater killed while applying it starts it again, at most three times).
    pub attempts: u32,
    /// The update record it produced.
    pub update_id: Option<i64>,
    /// The outcome, or why it failed.
    pub message: Option<String>,
}

impl ScheduledUpdate {
    /// A pending one-off update of `version` (the newest when `None`) at `at`.
    pub fn new(at: DateTime<Utc>, version: Option<Version>, created_by: impl Into<String>) -> Self {
        ScheduledUpdate {
            id: 0,
            at,
            version,
            created_by: created_by.into(),
            created_at: Utc::now(),
            status: ScheduleStatus::Pending,
            attempts: 0,
            update_id: None,
            message: None,
        }
    }
}

/// Keeps the one-off updates operators schedule, durably (the history
/// database), so they survive restarts of `updater schedule`.
///
/// # Contract
///
/// - [`add`](Self::add) stores a new entry and returns its id (positive, increasing).
/// - [`list`](Self::list) returns entries ordered by `at`, then id; only
///   pending ones unless `include_finished`.
/// - [`save`](Self::save) overwrites the entry with its id; an unknown id is
///   [`Error::NotFound`].
/// - [`cancel`](Self::cancel) cancels a pending entry; one that already ran
///   or was cancelled is [`Error::Precondition`]; unknown ids [`Error::NotFound`].
///
/// # Implementing
///
/// All four methods are required. Run `updater_core::conformance::schedule::run`.
pub trait ScheduleStore: Send + Sync {
    /// Stores `entry` (its id is ignored); returns the new id.
    fn add(&self, entry: &ScheduledUpdate) -> Result<i64>;
    /// The entries, by time.
    fn list(&self, include_finished: bool) -> Result<Vec<ScheduledUpdate>>;
    /// Overwrites the stored entry with `entry.id`.
    fn save(&self, entry: &ScheduledUpdate) -> Result<()>;
    /// Cancels the pending entry `id`.
    fn cancel(&self, id: i64) -> Result<ScheduledUpdate>;
}

crate::forward_trait!(ScheduleStore:
    fn add(&self, entry: &ScheduledUpdate) -> Result<i64>;
    fn list(&self, include_finished: bool) -> Result<Vec<ScheduledUpdate>>;
    fn save(&self, entry: &ScheduledUpdate) -> Result<()>;
    fn cancel(&self, id: i64) -> Result<ScheduledUpdate>;
);

/// A [`ScheduleStore`] in memory (tests; applications without a database).
#[derive(Debug, Default)]
pub struct InMemoryScheduleStore {
    entries: Mutex<Vec<ScheduledUpdate>>,
}

impl InMemoryScheduleStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> Result<std::sync::MutexGuard<'_, Vec<ScheduledUpdate>>> {
        self.entries
            .lock()
            .map_err(|_| Error::other("schedule store", "a writer panicked"))
    }
}

impl ScheduleStore for InMemoryScheduleStore {
    fn add(&self, entry: &ScheduledUpdate) -> Result<i64> {
        let mut entries = self.entries()?;
        let id = entries.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        entries.push(ScheduledUpdate {
            id,
            ..entry.clone()
        });
        Ok(id)
    }

    fn list(&self, include_finished: bool) -> Result<Vec<ScheduledUpdate>> {
        let mut list: Vec<ScheduledUpdate> = self
            .entries()?
            .iter()
            .filter(|e| include_finished || e.status == ScheduleStatus::Pending)
            .cloned()
            .collect();
        list.sort_by_key(|e| (e.at, e.id));
        Ok(list)
    }

    fn save(&self, entry: &ScheduledUpdate) -> Result<()> {
        let mut entries = self.entries()?;
        let slot = entries
            .iter_mut()
            .find(|e| e.id == entry.id)
            .ok_or_else(|| Error::not_found(format!("scheduled update {}", entry.id)))?;
        *slot = entry.clone();
        Ok(())
    }

    fn cancel(&self, id: i64) -> Result<ScheduledUpdate> {
        let mut entries = self.entries()?;
        let slot = entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or_else(|| Error::not_found(format!("scheduled update {id}")))?;
        if slot.status != ScheduleStatus::Pending {
            return Err(Error::precondition(
                "cancel",
                format!("scheduled update {id} is {} already", slot.status.as_str()),
            ));
        }
        slot.status = ScheduleStatus::Cancelled;
        Ok(slot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn windows_parse_days_ranges_and_zones_and_refuse_nonsense() {
        let w: Window = "Mon-Fri 22:00-02:00 America/New_York".parse().unwrap();
        assert_eq!(w.days.len(), 5);
        assert_eq!(w.to_string(), "Mon-Fri 22:00-02:00 America/New_York");
        let w: Window = "Sat,Sun 03:00-05:00".parse().unwrap();
        assert_eq!((w.days.len(), w.zone), (2, Tz::UTC));
        assert_eq!(
            "daily 01:00-02:00 UTC"
                .parse::<Window>()
                .unwrap()
                .days
                .len(),
            7
        );
        for bad in [
            "Sun",
            "Funday 02:00-04:00",
            "Sun 2-4",
            "Sun 02:00-02:00",
            "Sun 02:00-04:00 Mars/Olympus",
            "Sun 02:00-04:00 UTC extra",
        ] {
            assert!(
                matches!(bad.parse::<Window>(), Err(Error::InvalidInput { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_window_crossing_midnight_belongs_to_the_day_it_opens() {
        // Friday 22:00 to Saturday 02:00 New York (EST, UTC-5), 2026-12-04 is a Friday.
        let w: Window = "Fri 22:00-02:00 America/New_York".parse().unwrap();
        assert!(w.contains(utc(2026, 12, 5, 3, 0))); // Fri 22:00 EST
        assert!(w.contains(utc(2026, 12, 5, 6, 59))); // Sat 01:59 EST
        assert!(!w.contains(utc(2026, 12, 5, 7, 0))); // Sat 02:00 EST: closed
        assert!(!w.contains(utc(2026, 12, 6, 4, 0))); // Sat 23:00: a Saturday opening? no
    }

    #[test]
    fn spring_forward_shortens_the_window_to_the_hours_that_exist() {
        // Berlin, 2026-03-29 (Sunday): 02:00 local does not exist (clocks jump to 03:00 CEST).
        let w: Window = "Sun 02:00-04:00 Europe/Berlin".parse().unwrap();
        let (opens, closes) = w.occurrence_at(utc(2026, 3, 29, 1, 30)).unwrap();
        assert_eq!(
            opens,
            utc(2026, 3, 29, 1, 0),
            "03:00 CEST, the first minute that exists"
        );
        assert_eq!(closes, utc(2026, 3, 29, 2, 0), "04:00 CEST");
        assert!(!w.contains(utc(2026, 3, 29, 0, 59)));
    }

    #[test]
    fn fall_back_lengthens_the_window_by_the_repeated_hour() {
        // Berlin, 2026-10-25 (Sunday): 02:00-03:00 happens twice.
        let w: Window = "Sun 02:00-04:00 Europe/Berlin".parse().unwrap();
        let (opens, closes) = w.occurrence_at(utc(2026, 10, 25, 1, 30)).unwrap();
        assert_eq!(opens, utc(2026, 10, 25, 0, 0), "the first 02:00 (CEST)");
        assert_eq!(closes, utc(2026, 10, 25, 3, 0), "04:00 CET");
    }

    #[test]
    fn the_policy_applies_patches_in_the_window_and_waits_for_the_next_one_otherwise() {
        let policy = AutoUpdatePolicy {
            level: AutoUpdateLevel::Patch,
            per_channel: vec![(Channel::Beta, AutoUpdateLevel::None)],
            skip: vec![Version::new(1, 4, 4)],
            windows: vec!["Sun 02:00-04:00 Europe/Berlin".parse().unwrap()],
        };
        let inside = utc(2026, 12, 6, 1, 30); // Sun 02:30 CET
        let v = |s: &str| Version::parse(s).unwrap();
        let minutes = Duration::minutes;
        assert_eq!(
            policy.decide(&v("1.4.3"), UpdateType::Patch, inside, minutes(10)),
            AutoDecision::Apply
        );
        assert!(matches!(
            policy.decide(&v("1.5.0"), UpdateType::Minor, inside, minutes(10)),
            AutoDecision::NotAllowed { .. }
        ));
        assert!(matches!(
            policy.decide(&v("1.4.4"), UpdateType::Patch, inside, minutes(10)),
            AutoDecision::NotAllowed { reason } if reason.contains("skip")
        ));
        assert!(matches!(
            policy.decide(
                &v("1.4.3-beta.1"),
                UpdateType::PreRelease,
                inside,
                minutes(10)
            ),
            AutoDecision::NotAllowed { .. }
        ));
        // 02:30 + 100 min would end after 04:00: wait for next Sunday.
        assert_eq!(
            policy.decide(&v("1.4.3"), UpdateType::Patch, inside, minutes(100)),
            AutoDecision::Wait {
                until: Some(utc(2026, 12, 13, 1, 0)),
                reason: "an update takes about 100 min, longer than the window has left".into()
            }
        );
        assert!(matches!(
            policy.decide(&v("1.4.3"), UpdateType::Patch, utc(2026, 12, 7, 12, 0), minutes(10)),
            AutoDecision::Wait { until: Some(at), .. } if at == utc(2026, 12, 13, 1, 0)
        ));
    }

    proptest! {
        /// Wherever the clock is, the next opening is later, the window is open
        /// right then, and was closed just before (or it is the same occurrence).
        #[test]
        fn the_next_opening_is_an_opening(minutes in 0i64..(60 * 24 * 400), zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])) {
            let w: Window = format!("Sun,Wed 02:30-03:15 {zone}").parse().unwrap();
            let at = utc(2026, 1, 1, 0, 0) + Duration::minutes(minutes);
            let next = w.next_opening(at).unwrap();
            prop_assert!(next > at);
            prop_assert!(w.contains(next));
            prop_assert!(next - at <= Duration::days(8));
        }
    }
}
