//! A compiled window and the questions asked of it: is it open at
//! `t`, which window holds `t`, when does the next one open, when does it
//! close. Pure: no clock reads, no I/O.
//!
//! # Semantics
//!
//! * **Wall-clock recurrences.** `cron` and `rrule` are evaluated on naive
//!   local time in the spec's `timeZone`; each start `s` gives the nominal local
//!   window `[s, s + duration)` (naive arithmetic). Both ends are then mapped
//!   to instants by RFC 5545 §3.3.5: a local time inside a daylight-saving
//!   gap is read with the offset in force *before* the gap, and a local time
//!   that happens twice refers to its *first* occurrence. So `0 2 * * *` with
//!   `4h` in Europe/Berlin is 03:00–06:00 CEST (3 h) on spring-forward night
//!   and 02:00 CEST–06:00 CET (5 h) on fall-back night.
//! * Windows that become empty (wholly inside a gap) are dropped; windows
//!   that overlap (a gap can map a start past the next one) are merged.
//!   Windows that merely touch stay separate occurrences; [`CompiledWindow::next_close`]
//!   follows them to the instant the window really closes.
//! * **Ranges** are absolute, sorted, overlapping ones merged.
//! * **Exclusions** are cut out after all that: `date` removes the local day
//!   `[00:00, next 00:00)` in the zone, `start`/`end` the absolute range. A
//!   window partly excluded is cut, possibly in two.
//! * Recurrences produce starts from 1970 up to year 5000.
//! * Intervals are half-open `[start, end)`: a window is open at its start
//!   and closed at its end.
//!
//! # Performance
//!
//! [`CompiledWindow::prepare`] computes the windows over a horizon once;
//! queries inside it are binary searches. Queries outside compute on the
//! fly from the recurrence: the same answers, only slower.

use super::compile::{self, Source};
use super::error::WindowError;
use super::intervals::{coalesce, containing, meeting, subtract};
use super::local_time::{shift, to_instant, to_local};
use super::recurrence::{DOMAIN_END, DOMAIN_START};
use super::spec::{Interval, WindowKind, WindowSpec};
use crate::change::ChangeType;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

/// Slack around a query so that every occurrence that could reach into it is
/// generated: a zone's wall clock differs from UTC by well under a day, and a
/// daylight-saving gap moves an occurrence by hours.
const SLACK: TimeDelta = TimeDelta::days(3);
/// How far [`CompiledWindow::next_window`] looks ahead: a leap-day schedule
/// opens every four to eight years.
const NEXT_WINDOW_SEARCH: TimeDelta = TimeDelta::days(4096);
/// How far [`CompiledWindow::next_close`] follows occurrences that touch.
const CLOSE_SEARCH: TimeDelta = TimeDelta::days(400);

/// A validated window, ready to answer "is it open?".
#[derive(Debug, Clone)]
pub struct CompiledWindow {
    name: String,
    kind: WindowKind,
    tenants: Vec<String>,
    allow_types: Vec<ChangeType>,
    time_zone: Tz,
    source: Source,
    exclusions: Vec<Interval>,
    prepared: Option<Prepared>,
}

/// Lets [`crate::window::evaluate`] take windows by reference or behind an `Arc`.
impl AsRef<CompiledWindow> for CompiledWindow {
    fn as_ref(&self) -> &CompiledWindow {
        self
    }
}

/// The windows meeting `horizon`, whole (not clipped to it).
#[derive(Debug, Clone)]
struct Prepared {
    horizon: Interval,
    windows: Vec<Interval>,
}

impl CompiledWindow {
    /// Validates `spec` (everything the CRD schema cannot check) and
    /// compiles it. `name` is the window's name, used in verdicts.
    ///
    /// # Errors
    ///
    /// A [`WindowError`] naming the field and value when the time zone is not
    /// an IANA name, the cron or rrule does not parse or never starts a
    /// window, the duration is not positive or longer than the gap between
    /// starts, or a range or exclusion is empty or malformed.
    pub fn compile(name: &str, spec: &WindowSpec) -> Result<Self, WindowError> {
        let parts = compile::compile(spec)?;
        Ok(Self {
            name: name.to_owned(),
            kind: spec.kind,
            tenants: spec.tenants.clone(),
            allow_types: spec.allow_types.clone(),
            time_zone: parts.time_zone,
            source: parts.source,
            exclusions: parts.exclusions,
            prepared: None,
        })
    }

    /// Precomputes the windows meeting `[from, to)` so that queries inside
    /// it are binary searches. Replaces any earlier preparation; an empty
    /// range removes it.
    pub fn prepare(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        self.prepared = (from < to).then(|| Prepared {
            horizon: Interval {
                start: from,
                end: to,
            },
            windows: self.compute(from, to),
        });
    }

    /// [`Self::prepare`], by value.
    #[must_use]
    pub fn prepared(mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.prepare(from, to);
        self
    }

    /// The prepared horizon, if any: callers re-prepare before it runs out.
    pub fn prepared_horizon(&self) -> Option<Interval> {
        self.prepared.as_ref().map(|p| p.horizon)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    pub fn applies_to(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    /// Whether a Blackout lets `change_type` through while it is open.
    pub fn allows_type(&self, change_type: ChangeType) -> bool {
        self.allow_types.contains(&change_type)
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    pub fn open_at(&self, t: DateTime<Utc>) -> bool {
        self.current(t).is_some()
    }

    /// The window containing `t`.
    pub fn current(&self, t: DateTime<Utc>) -> Option<Interval> {
        match &self.prepared {
            Some(p) if p.horizon.contains(t) => containing(&p.windows, t),
            _ => containing(&self.compute(t, shift(t, TimeDelta::nanoseconds(1))), t),
        }
    }

    /// The first window that starts after `t` (strictly), looking at most
    /// about eleven years ahead.
    pub fn next_window(&self, t: DateTime<Utc>) -> Option<Interval> {
        if let Some(p) = self.prepared.as_ref().filter(|p| p.horizon.contains(t)) {
            // Every window starting inside the horizon is prepared, so the
            // first one after `t` there is the first one after `t` at all.
            let after = p.windows.partition_point(|w| w.start <= t);
            if let Some(window) = p.windows.get(after) {
                return Some(*window);
            }
        }
        let mut span = TimeDelta::days(2);
        loop {
            let to = shift(t, span);
            if let Some(window) = self.compute(t, to).into_iter().find(|w| w.start > t) {
                return Some(window);
            }
            if span >= NEXT_WINDOW_SEARCH || !self.may_open_from(to) {
                return None;
            }
            span = (span * 8).min(NEXT_WINDOW_SEARCH);
        }
    }

    /// The next instant after `t` at which the window goes from open to
    /// closed: the end of the window holding `t`, or else of the next one,
    /// followed across occurrences that touch. `None` when no window is
    /// ahead, or it stays open for the next 400 days.
    pub fn next_close(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let first = self.current(t).or_else(|| self.next_window(t))?;
        let limit = shift(t, CLOSE_SEARCH);
        let mut end = first.end;
        while end <= limit {
            let reached = end;
            for window in self.windows_between(end, shift(end, TimeDelta::days(8))) {
                if window.start != end {
                    break;
                }
                end = window.end;
            }
            if end == reached {
                return Some(end);
            }
        }
        None
    }

    /// The windows meeting `[from, to)`, in order, not overlapping, each
    /// whole: a window that began before `from` or ends after `to` is
    /// reported with its real start and end, not clipped.
    pub fn windows_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
        if from >= to {
            return Vec::new();
        }
        match &self.prepared {
            Some(p) if p.horizon.start <= from && to <= p.horizon.end => {
                meeting(&p.windows, from, to).to_vec()
            }
            _ => self.compute(from, to),
        }
    }

    /// The windows meeting `[from, to)`, computed from the schedule.
    fn compute(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
        if from >= to {
            return Vec::new();
        }
        let windows = match &self.source {
            Source::Ranges(ranges) => meeting(ranges, from, to).to_vec(),
            Source::Recurring { starts, duration } => {
                let Some((from, to)) = clamp_to_domain(from, to) else {
                    return Vec::new();
                };
                let tz = self.time_zone;
                // Inside the domain this arithmetic cannot overflow.
                let local_from = to_local(tz, from) - *duration - SLACK;
                let local_to = to_local(tz, to) + SLACK;
                let occurrences = starts
                    .starts_between(local_from, local_to)
                    .into_iter()
                    .map(|start| Interval {
                        start: to_instant(tz, start),
                        end: to_instant(tz, start + *duration),
                    })
                    .collect();
                coalesce(occurrences)
            }
        };
        let mut windows = subtract(windows, &self.exclusions);
        windows.retain(|w| w.end > from && w.start < to);
        windows
    }

    /// Whether any window may start at or after `t`: stops the search for
    /// the next window early once a schedule has ended.
    fn may_open_from(&self, t: DateTime<Utc>) -> bool {
        match &self.source {
            Source::Ranges(ranges) => ranges.last().is_some_and(|last| last.end > t),
            Source::Recurring { starts, duration } => {
                clamp_to_domain(t, shift(t, TimeDelta::nanoseconds(1))).is_some_and(|(t, _)| {
                    starts
                        .first_from(to_local(self.time_zone, t) - *duration - SLACK)
                        .is_some()
                })
            }
        }
    }
}

/// `[from, to)` cut to the instants recurrences can reach, with a margin for
/// zone offsets; `None` when nothing is left.
fn clamp_to_domain(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let from = from.max(DOMAIN_START.and_utc() - SLACK);
    let to = to.min(DOMAIN_END.and_utc() + SLACK);
    (from < to).then_some((from, to))
}
