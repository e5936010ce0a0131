//! Properties every window and verdict keeps, checked on generated schedules
//! (cron, rrule and ranges, in zones with daylight saving, half-hour and
//! 45-minute offsets) with generated exclusions and query instants.

use super::{
    CompiledWindow, Exclusion, Interval, SEARCH_HORIZON, Schedule, WindowKind, WindowSpec,
    WindowVerdict, evaluate,
};
use crate::change::ChangeType;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use proptest::prelude::*;

/// Recurring schedules with the longest duration each allows (the shortest
/// gap between their starts), in minutes.
const RECURRING: &[(&str, &str, i64)] = &[
    ("cron", "0 2 * * SAT", 7 * 24 * 60),
    ("cron", "0 2 * * *", 24 * 60),
    // Starts inside the daylight-saving gap and the repeated hour.
    ("cron", "30 1,2,3 * * *", 60),
    ("cron", "*/20 * * * *", 20),
    ("cron", "0 8 * * MON-FRI", 24 * 60),
    (
        "rrule",
        "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;BYMINUTE=0",
        28 * 24 * 60,
    ),
    (
        "rrule",
        "FREQ=DAILY;INTERVAL=3;BYHOUR=2;BYMINUTE=30",
        3 * 24 * 60,
    ),
    (
        "rrule",
        "DTSTART:20250101T013000\nRRULE:FREQ=HOURLY;INTERVAL=5",
        5 * 60,
    ),
];

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
];

/// Query instants and generated ranges fall in 2025-2027.
const SPAN_START: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const SPAN_SECONDS: i64 = 3 * 365 * 86_400;

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0..SPAN_SECONDS).prop_map(|s| {
        DateTime::from_timestamp(SPAN_START + s, 0).expect("inside the representable range")
    })
}

fn range() -> impl Strategy<Value = (DateTime<Utc>, DateTime<Utc>)> {
    (instant(), 60i64..(20 * 86_400))
        .prop_map(|(start, len)| (start, start + TimeDelta::seconds(len)))
}

fn exclusion() -> impl Strategy<Value = Exclusion> {
    prop_oneof![
        (0i64..3 * 365).prop_map(|d| {
            let first = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid date");
            Exclusion::Date(first + TimeDelta::days(d))
        }),
        range().prop_map(|(start, end)| Exclusion::Range(Interval { start, end })),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let recurring = (0..RECURRING.len(), 1i64..=1_000).prop_map(|(i, per_mille)| {
        let (kind, text, max_minutes) = RECURRING[i];
        let duration = TimeDelta::minutes((max_minutes * per_mille / 1_000).max(1));
        match kind {
            "cron" => Schedule::Cron {
                expr: text.to_owned(),
                duration,
            },
            _ => Schedule::Rrule {
                rule: text.to_owned(),
                duration,
            },
        }
    });
    let ranges = prop::collection::vec(range(), 1..5).prop_map(|ranges| {
        Schedule::Ranges(
            ranges
                .into_iter()
                .map(|(start, end)| Interval { start, end })
                .collect(),
        )
    });
    prop_oneof![4 => recurring, 1 => ranges]
}

fn spec(kind: WindowKind) -> impl Strategy<Value = WindowSpec> {
    (
        schedule(),
        0..ZONES.len(),
        prop::collection::vec(exclusion(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            move |(schedule, zone, exclusions, allow_emergency)| WindowSpec {
                tenants: Vec::new(),
                kind,
                time_zone: ZONES[zone].to_owned(),
                schedule,
                exclusions,
                allow_types: if kind == WindowKind::Blackout && allow_emergency {
                    vec![ChangeType::Emergency]
                } else {
                    Vec::new()
                },
            },
        )
}

fn compiled(spec: &WindowSpec, name: &str) -> CompiledWindow {
    CompiledWindow::compile(name, spec).expect("generated specs are valid")
}

fn assert_ordered_and_disjoint(windows: &[Interval]) -> Result<(), TestCaseError> {
    for w in windows {
        prop_assert!(w.start < w.end, "empty window {:?}", w);
    }
    for pair in windows.windows(2) {
        prop_assert!(
            pair[0].end <= pair[1].start,
            "out of order or overlapping: {:?}",
            pair
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn next_window_is_never_in_the_past(spec in spec(WindowKind::Maintenance), t in instant()) {
        let w = compiled(&spec, "w");
        if let Some(next) = w.next_window(t) {
            prop_assert!(next.start > t, "{:?} starts before {}", next, t);
            // Nothing starts between t and it.
            let between = w.windows_between(t, next.start);
            prop_assert!(between.iter().all(|b| b.start <= t), "{:?} skipped {:?}", next, between);
        }
    }

    #[test]
    fn open_at_agrees_with_current(spec in spec(WindowKind::Maintenance), t in instant()) {
        let w = compiled(&spec, "w");
        let current = w.current(t);
        prop_assert_eq!(w.open_at(t), current.is_some());
        if let Some(window) = current {
            prop_assert!(window.contains(t), "{:?} does not contain {}", window, t);
        }
    }

    #[test]
    fn windows_between_are_ordered_whole_and_disjoint(
        spec in spec(WindowKind::Maintenance),
        from in instant(),
        days in 1i64..60,
    ) {
        let w = compiled(&spec, "w");
        let to = from + TimeDelta::days(days);
        let windows = w.windows_between(from, to);
        assert_ordered_and_disjoint(&windows)?;
        for window in &windows {
            prop_assert!(window.end > from && window.start < to, "{:?} misses the range", window);
        }
        // Whole, not clipped: the first and last are what `current` sees there.
        for window in windows.first().into_iter().chain(windows.last()) {
            prop_assert_eq!(w.current(window.start), Some(*window));
            prop_assert_eq!(w.current(window.end - TimeDelta::nanoseconds(1)), Some(*window));
        }
    }

    #[test]
    fn next_close_is_an_instant_the_window_closes(spec in spec(WindowKind::Maintenance), t in instant()) {
        let w = compiled(&spec, "w");
        if let Some(close) = w.next_close(t) {
            prop_assert!(close > t);
            prop_assert!(w.open_at(close - TimeDelta::nanoseconds(1)));
            prop_assert!(!w.open_at(close), "still open at {}", close);
        }
    }

    #[test]
    fn prepared_and_unprepared_answers_agree(
        spec in spec(WindowKind::Maintenance),
        offset_hours in 0i64..(150 * 24),
        days in 1i64..30,
    ) {
        let plain = compiled(&spec, "w");
        // Queries fall before, inside and after the 90-day horizon.
        let horizon_start = DateTime::from_timestamp(SPAN_START + SPAN_SECONDS / 3, 0)
            .expect("inside the representable range");
        let prepared = plain.clone().prepared(horizon_start, horizon_start + TimeDelta::days(90));
        let t = horizon_start - TimeDelta::days(30) + TimeDelta::hours(offset_hours);
        prop_assert_eq!(prepared.current(t), plain.current(t));
        prop_assert_eq!(prepared.next_window(t), plain.next_window(t));
        prop_assert_eq!(prepared.next_close(t), plain.next_close(t));
        let to = t + TimeDelta::days(days);
        prop_assert_eq!(prepared.windows_between(t, to), plain.windows_between(t, to));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A verdict's promises hold when checked at the instants it names.
    #[test]
    fn verdicts_keep_their_promises(
        maintenance in spec(WindowKind::Maintenance),
        blackout in spec(WindowKind::Blackout),
        now in instant(),
        emergency in any::<bool>(),
        requires in any::<bool>(),
    ) {
        let windows = [compiled(&maintenance, "maintenance"), compiled(&blackout, "blackout")];
        let change_type = if emergency { ChangeType::Emergency } else { ChangeType::Normal };
        let verdict = evaluate(&windows, "client-a", change_type, requires, now);
        let at = |t| evaluate(&windows, "client-a", change_type, requires, t);
        let frozen = windows[1].open_at(now) && !windows[1].allows_type(change_type);
        // Only a blackout that forbids the type stops a change that needs
        // no window, and such a verdict names no next window.
        if !requires {
            match &verdict {
                WindowVerdict::NotRequired => prop_assert!(!frozen, "frozen at {}", now),
                WindowVerdict::Blackout { next, .. } => {
                    prop_assert!(frozen, "no blackout holds {}", now);
                    prop_assert!(next.is_none(), "{:?}", next);
                }
                other => prop_assert!(false, "{:?} for a change that needs no window", other),
            }
        }
        match verdict {
            WindowVerdict::NotRequired => prop_assert!(!requires, "the change requires a window"),
            WindowVerdict::Open { closes, .. } => {
                prop_assert!(!frozen);
                prop_assert!(closes > now);
                prop_assert!(at(closes - TimeDelta::nanoseconds(1)).permits());
                // A window open past the horizon is reported closing there.
                if closes < now + SEARCH_HORIZON {
                    prop_assert!(!at(closes).permits(), "still open at {}", closes);
                }
            }
            WindowVerdict::Closed { next } | WindowVerdict::Blackout { next, .. } => {
                prop_assert!(!windows[0].open_at(now) || windows[1].open_at(now));
                if let Some(next) = next {
                    prop_assert!(next.at > now);
                    prop_assert!(at(next.at).permits(), "not open at {:?}", next);
                    prop_assert!(!at(next.at - TimeDelta::nanoseconds(1)).permits());
                    prop_assert!(windows[0].open_at(next.at));
                }
            }
        }
        if let WindowVerdict::Blackout { until, .. } = at(now) {
            prop_assert!(until > now);
            if until < now + SEARCH_HORIZON {
                let thawed = !matches!(at(until), WindowVerdict::Blackout { .. });
                prop_assert!(thawed, "still frozen at {}", until);
            }
        }
    }
}
