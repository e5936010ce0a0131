//! The tenant-level window decision: a change whose type needs a
//! window may deploy only while a Maintenance window for its tenant is open
//! and no Blackout that forbids its type is open; and when it may deploy next.

use super::intervals::{containing, union};
use super::local_time::{format_instant, shift};
use super::schedule::CompiledWindow;
use super::spec::{Interval, WindowKind};
use crate::change::ChangeType;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

/// How far ahead [`evaluate`] looks for the next opening.
pub const SEARCH_HORIZON: TimeDelta = TimeDelta::days(400);

/// The search for the next opening widens through these spans (the last is
/// [`SEARCH_HORIZON`]): most answers lie within a week or two.
const SEARCH_STEPS: [TimeDelta; 3] = [TimeDelta::days(8), TimeDelta::days(64), SEARCH_HORIZON];

/// What the windows say about deploying a change now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowVerdict {
    /// The change's type needs no maintenance window and no blackout forbids it.
    NotRequired,
    /// A maintenance window is open and no blackout forbids the change until
    /// `closes` (maintenance windows that overlap or touch count as one
    /// stretch; one that outlasts [`SEARCH_HORIZON`] is reported closing
    /// about there).
    Open {
        window: String,
        closes: DateTime<Utc>,
        time_zone: Tz,
    },
    /// No maintenance window is open; `next` is when the change could deploy,
    /// if that is within [`SEARCH_HORIZON`].
    Closed { next: Option<NextOpening> },
    /// A blackout that does not allow the change's type is open until
    /// `until`, when no forbidding blackout remains (bounded like `closes`
    /// above). `window` is the one open now that lasts longest. `next` is when the
    /// change could deploy, for types that need a maintenance window; a type
    /// that needs none may deploy at `until`, and `next` is `None`.
    Blackout {
        window: String,
        until: DateTime<Utc>,
        time_zone: Tz,
        next: Option<NextOpening>,
    },
}

impl WindowVerdict {
    /// Whether the windows let the change deploy now.
    pub fn permits(&self) -> bool {
        matches!(self, Self::NotRequired | Self::Open { .. })
    }

    /// Why the windows forbid deploying now and when they next allow it,
    /// e.g. `no maintenance window is open; next window client-a-weekly
    /// opens Sat 2026-11-28 02:00 Europe/Berlin`. Empty when they permit.
    pub fn explain(&self) -> String {
        let next = |n: &Option<NextOpening>| match n {
            Some(n) => format!(
                "; next window {} opens {}",
                n.window,
                format_instant(n.at, n.time_zone)
            ),
            None => "; no window opens within the next 400 days".into(),
        };
        match self {
            Self::Closed { next: n } => format!("no maintenance window is open{}", next(n)),
            Self::Blackout {
                window,
                until,
                time_zone,
                next: n,
            } => format!(
                "blackout {window} is in force until {}{}",
                format_instant(*until, *time_zone),
                if n.is_some() { next(n) } else { String::new() }
            ),
            Self::NotRequired | Self::Open { .. } => String::new(),
        }
    }
}

/// The earliest instant a change could deploy: `window` is a maintenance
/// window open at `at`, and no forbidding blackout is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextOpening {
    pub window: String,
    pub at: DateTime<Utc>,
    pub time_zone: Tz,
}

/// Decides whether a change of `change_type` for `tenant` may deploy at
/// `now`. `requires_window` comes from the tenant's policy: whether
/// changes of this type must deploy inside a maintenance window. Blackouts
/// apply to every change type, even one that needs no maintenance window,
/// unless they list it in `allowTypes`.
///
/// `windows` may yield `&CompiledWindow`, `&Arc<CompiledWindow>` or anything
/// else that dereferences to a window; those of other tenants are skipped.
pub fn evaluate<W: AsRef<CompiledWindow>>(
    windows: impl IntoIterator<Item = W>,
    tenant: &str,
    change_type: ChangeType,
    requires_window: bool,
    now: DateTime<Utc>,
) -> WindowVerdict {
    let windows: Vec<W> = windows.into_iter().collect();
    let mut maintenance = Vec::new();
    let mut blackouts = Vec::new();
    for window in windows.iter().map(AsRef::as_ref) {
        if !window.applies_to(tenant) {
            continue;
        }
        match window.kind() {
            WindowKind::Maintenance => maintenance.push(window),
            WindowKind::Blackout if !window.allows_type(change_type) => blackouts.push(window),
            WindowKind::Blackout => {}
        }
    }
    let limit = shift(now, SEARCH_HORIZON);

    if let Some((blackout, held)) = latest_open(&blackouts, now) {
        return WindowVerdict::Blackout {
            window: blackout.name().to_owned(),
            until: covered_until(&blackouts, held.end, limit),
            time_zone: blackout.time_zone(),
            next: if requires_window {
                first_opening(&maintenance, &blackouts, now)
            } else {
                None
            },
        };
    }
    if !requires_window {
        return WindowVerdict::NotRequired;
    }
    if let Some((open, held)) = latest_open(&maintenance, now) {
        let open_until = covered_until(&maintenance, held.end, limit);
        // No forbidding blackout holds `now` (handled above), so any that
        // meets the open stretch starts inside it.
        let frozen_from = blackouts
            .iter()
            .flat_map(|b| b.windows_between(now, open_until))
            .map(|w| w.start)
            .min();
        return WindowVerdict::Open {
            window: open.name().to_owned(),
            closes: frozen_from.map_or(open_until, |f| f.min(open_until)),
            time_zone: open.time_zone(),
        };
    }
    WindowVerdict::Closed {
        next: first_opening(&maintenance, &blackouts, now),
    }
}

/// Of the windows open at `now`, the one that stays open longest (ties go
/// to the first name, so verdicts are stable), with the interval holding
/// `now`. The comparison is reversed because `min_by` keeps the first of
/// equal elements.
fn latest_open<'a>(
    windows: &[&'a CompiledWindow],
    now: DateTime<Utc>,
) -> Option<(&'a CompiledWindow, Interval)> {
    windows
        .iter()
        .filter_map(|w| w.current(now).map(|held| (*w, held)))
        .min_by(|(a, x), (b, y)| y.end.cmp(&x.end).then_with(|| a.name().cmp(b.name())))
}

/// The end of the stretch, starting at `end`, during which at least one of
/// `windows` stays open without a break; followed eight days at a time up
/// to `limit`.
fn covered_until(
    windows: &[&CompiledWindow],
    mut end: DateTime<Utc>,
    limit: DateTime<Utc>,
) -> DateTime<Utc> {
    while end < limit {
        let chunk_end = shift(end, TimeDelta::days(8));
        let stretches = union(
            windows
                .iter()
                .flat_map(|w| w.windows_between(end, chunk_end))
                .collect(),
        );
        match stretches.first() {
            Some(stretch) if stretch.start <= end && stretch.end > end => end = stretch.end,
            _ => break,
        }
    }
    end
}

/// The earliest instant after `now` inside a maintenance window and outside
/// every forbidding blackout, within [`SEARCH_HORIZON`].
fn first_opening(
    maintenance: &[&CompiledWindow],
    blackouts: &[&CompiledWindow],
    now: DateTime<Utc>,
) -> Option<NextOpening> {
    for step in SEARCH_STEPS {
        let to = shift(now, step);
        let frozen = union(
            blackouts
                .iter()
                .flat_map(|b| b.windows_between(now, to))
                .collect(),
        );
        let mut best: Option<NextOpening> = None;
        for window in maintenance {
            for open in window.windows_between(now, to) {
                let mut at = open.start.max(now);
                if let Some(freeze) = containing(&frozen, at) {
                    at = freeze.end;
                }
                let earlier = best
                    .as_ref()
                    .is_none_or(|b| (at, window.name()) < (b.at, b.window.as_str()));
                // Past `to` the blackouts above are incomplete: a wider step decides.
                if at < open.end && at < to && earlier {
                    best = Some(NextOpening {
                        window: window.name().to_owned(),
                        at,
                        time_zone: window.time_zone(),
                    });
                }
            }
        }
        if best.is_some() {
            return best;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::fixtures::{at, window};
    use crate::window::format_instant;
    use ChangeType::{Emergency, Normal, Standard};
    use chrono_tz::Europe::Berlin;

    fn client_a_weekly() -> CompiledWindow {
        window(
            "client-a-weekly",
            r#"
tenants: [client-a]
timeZone: Europe/Berlin
schedule: {cron: {expr: "0 2 * * SAT", duration: 4h}}
exclusions: [{date: "2026-12-26"}]
"#,
        )
    }

    fn year_end_freeze() -> CompiledWindow {
        window(
            "year-end-freeze",
            r#"
kind: blackout
timeZone: Europe/Berlin
schedule:
  ranges: [{start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00"}]
allowTypes: [emergency]
"#,
        )
    }

    fn opening(window: &str, at_: &str) -> Option<NextOpening> {
        Some(NextOpening {
            window: window.into(),
            at: at(at_),
            time_zone: Berlin,
        })
    }

    #[test]
    fn a_change_that_needs_no_window_may_deploy_outside_windows() {
        let windows = [client_a_weekly()];
        let verdict = evaluate(
            &windows,
            "client-a",
            Emergency,
            false,
            at("2026-11-25T12:00:00Z"),
        );
        assert_eq!(verdict, WindowVerdict::NotRequired);
        assert!(verdict.permits());
    }

    #[test]
    fn inside_a_maintenance_window_a_change_may_deploy_until_it_closes() {
        let windows = [client_a_weekly()];
        let verdict = evaluate(
            &windows,
            "client-a",
            Normal,
            true,
            at("2026-11-28T02:00:00Z"),
        );
        assert_eq!(
            verdict,
            WindowVerdict::Open {
                window: "client-a-weekly".into(),
                closes: at("2026-11-28T06:00:00+01:00"),
                time_zone: Berlin,
            }
        );
        assert!(verdict.permits());
    }

    #[test]
    fn outside_every_window_the_verdict_names_the_next_opening() {
        let windows = [client_a_weekly()];
        let verdict = evaluate(
            &windows,
            "client-a",
            Normal,
            true,
            at("2026-11-25T12:00:00Z"),
        );
        let WindowVerdict::Closed { next: Some(next) } = &verdict else {
            panic!("expected Closed with a next opening, got {verdict:?}");
        };
        assert_eq!(next.window, "client-a-weekly");
        assert_eq!(
            format!(
                "Next maintenance window {} opens {}.",
                next.window,
                format_instant(next.at, next.time_zone)
            ),
            "Next maintenance window client-a-weekly opens Sat 2026-11-28 02:00 Europe/Berlin."
        );
        assert!(!verdict.permits());
    }

    #[test]
    fn a_blackout_that_allows_emergencies_admits_only_emergencies() {
        let windows = [client_a_weekly(), year_end_freeze()];
        // Sat 2027-01-02 03:00 Berlin: the weekly window is open, the freeze too.
        let now = at("2027-01-02T03:00:00+01:00");
        assert_eq!(
            evaluate(&windows, "client-a", Emergency, false, now),
            WindowVerdict::NotRequired
        );
        for change_type in [Normal, Standard] {
            assert_eq!(
                evaluate(&windows, "client-a", change_type, true, now),
                WindowVerdict::Blackout {
                    window: "year-end-freeze".into(),
                    until: at("2027-01-04T00:00:00+01:00"),
                    time_zone: Berlin,
                    next: opening("client-a-weekly", "2027-01-09T02:00:00+01:00"),
                }
            );
        }
    }

    #[test]
    fn a_blackout_stops_even_changes_that_need_no_window() {
        let total_freeze = window(
            "total-freeze",
            r#"
kind: blackout
timeZone: Europe/Berlin
schedule:
  ranges: [{start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00"}]
"#,
        );
        let windows = [client_a_weekly(), total_freeze];
        assert_eq!(
            evaluate(
                &windows,
                "client-a",
                Emergency,
                false,
                at("2026-12-24T12:00:00Z")
            ),
            WindowVerdict::Blackout {
                window: "total-freeze".into(),
                until: at("2027-01-04T00:00:00+01:00"),
                time_zone: Berlin,
                next: None,
            }
        );
    }

    #[test]
    fn a_blackout_starting_inside_a_maintenance_window_closes_it_early() {
        let freeze = window(
            "saturday-freeze",
            r#"
kind: blackout
timeZone: Europe/Berlin
schedule:
  ranges: [{start: "2026-11-28T04:00:00+01:00", end: "2026-11-29T00:00:00+01:00"}]
"#,
        );
        let windows = [client_a_weekly(), freeze];
        let verdict = evaluate(
            &windows,
            "client-a",
            Normal,
            true,
            at("2026-11-28T02:30:00+01:00"),
        );
        assert_eq!(
            verdict,
            WindowVerdict::Open {
                window: "client-a-weekly".into(),
                closes: at("2026-11-28T04:00:00+01:00"),
                time_zone: Berlin,
            }
        );
    }

    #[test]
    fn a_maintenance_window_open_when_a_blackout_ends_opens_at_that_end() {
        let freeze = window(
            "early-freeze",
            r#"
kind: blackout
timeZone: Europe/Berlin
schedule:
  ranges: [{start: "2026-11-27T00:00:00+01:00", end: "2026-11-28T03:30:00+01:00"}]
"#,
        );
        let windows = [client_a_weekly(), freeze];
        let verdict = evaluate(
            &windows,
            "client-a",
            Normal,
            true,
            at("2026-11-27T12:00:00Z"),
        );
        assert_eq!(
            verdict,
            WindowVerdict::Blackout {
                window: "early-freeze".into(),
                until: at("2026-11-28T03:30:00+01:00"),
                time_zone: Berlin,
                next: opening("client-a-weekly", "2026-11-28T03:30:00+01:00"),
            }
        );
    }

    #[test]
    fn the_next_opening_skips_windows_covered_by_a_blackout() {
        let windows = [client_a_weekly(), year_end_freeze()];
        // Saturday 12-26 is excluded and 01-02 is frozen: the next one is 01-09.
        assert_eq!(
            evaluate(
                &windows,
                "client-a",
                Normal,
                true,
                at("2026-12-14T12:00:00Z")
            ),
            WindowVerdict::Closed {
                next: opening("client-a-weekly", "2026-12-19T02:00:00+01:00"),
            }
        );
        assert_eq!(
            evaluate(
                &windows,
                "client-a",
                Normal,
                true,
                at("2026-12-19T12:00:00Z")
            ),
            WindowVerdict::Closed {
                next: opening("client-a-weekly", "2027-01-09T02:00:00+01:00"),
            }
        );
        assert_eq!(
            evaluate(
                &windows,
                "client-a",
                Normal,
                true,
                at("2026-12-22T12:00:00Z")
            ),
            WindowVerdict::Blackout {
                window: "year-end-freeze".into(),
                until: at("2027-01-04T00:00:00+01:00"),
                time_zone: Berlin,
                next: opening("client-a-weekly", "2027-01-09T02:00:00+01:00"),
            }
        );
    }

    #[test]
    fn windows_behind_an_arc_are_evaluated_the_same() {
        let shared = [std::sync::Arc::new(client_a_weekly())];
        let plain = [client_a_weekly()];
        let now = at("2026-11-25T12:00:00Z");
        assert_eq!(
            evaluate(shared.iter(), "client-a", Normal, true, now),
            evaluate(&plain, "client-a", Normal, true, now)
        );
    }

    #[test]
    fn windows_of_other_tenants_are_ignored() {
        let windows = [client_a_weekly()];
        let verdict = evaluate(
            &windows,
            "client-b",
            Normal,
            true,
            at("2026-11-28T02:00:00Z"),
        );
        assert_eq!(verdict, WindowVerdict::Closed { next: None });
    }

    #[test]
    fn overlapping_maintenance_windows_stay_open_until_the_last_one_closes() {
        let late = window(
            "client-a-late",
            r#"
tenants: [client-a]
timeZone: Europe/Berlin
schedule: {cron: {expr: "0 5 * * SAT", duration: 3h}}
"#,
        );
        let windows = [client_a_weekly(), late];
        assert_eq!(
            evaluate(
                &windows,
                "client-a",
                Normal,
                true,
                at("2026-11-28T02:00:00Z")
            ),
            WindowVerdict::Open {
                window: "client-a-weekly".into(),
                closes: at("2026-11-28T08:00:00+01:00"),
                time_zone: Berlin,
            }
        );
    }

    #[test]
    fn a_far_opening_is_found_within_the_horizon_and_not_beyond() {
        let yearly = window(
            "yearly",
            r#"{timeZone: Europe/Berlin, schedule: {cron: {expr: "0 2 1 6 *", duration: 4h}}}"#,
        );
        let windows = [yearly];
        assert_eq!(
            evaluate(
                &windows,
                "client-a",
                Normal,
                true,
                at("2026-06-02T00:00:00Z")
            ),
            WindowVerdict::Closed {
                next: opening("yearly", "2027-06-01T02:00:00+02:00"),
            }
        );
        let leap_day = window(
            "leap-day",
            r#"{timeZone: Europe/Berlin, schedule: {cron: {expr: "0 2 29 2 *", duration: 4h}}}"#,
        );
        let windows = [leap_day];
        assert_eq!(
            evaluate(
                &windows,
                "client-a",
                Normal,
                true,
                at("2024-03-01T00:00:00Z")
            ),
            WindowVerdict::Closed { next: None }
        );
    }
}
