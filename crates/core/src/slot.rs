//! Slots: when a change may be carried out. A slot is acceptable when the
//! tenant's windows allow the change's type for the whole of it (inside
//! one open stretch of maintenance windows if the type needs one, and
//! clear of every blackout that forbids the type) and no other change
//! booked on one of its configuration items overlaps it.
//!
//! [`check`] says what is wrong with a slot; [`earliest`] finds the first
//! acceptable slot of a given length from a moment on.

use chrono::{DateTime, TimeDelta, Utc};

use crate::change::ChangeType;
use crate::window::{CompiledWindow, WindowKind, WindowVerdict, evaluate};

/// Another change holding configuration items over a stretch of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Its change number, e.g. `CHG-12`.
    pub number: String,
    pub configuration_items: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What the windows demand of a change: whose windows, which type, and
/// whether that type needs a maintenance window (the tenant's policy).
pub struct Rules<'a, W> {
    pub windows: &'a [W],
    pub tenant: &'a str,
    pub kind: ChangeType,
    pub requires_window: bool,
}

/// Why a slot is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The windows forbid starting then: the verdict's explanation.
    Windows(String),
    /// A blackout forbidding the type is open when the slot starts.
    Blackout { window: String, why: String },
    /// The slot starts in an open stretch that closes before it ends.
    RunsPastClose { closes: DateTime<Utc> },
    /// A blackout forbidding the type opens during the slot.
    BlackoutDuring { window: String, from: DateTime<Utc> },
    /// Another change is booked on a shared configuration item.
    Clash { number: String, item: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |t: &DateTime<Utc>| t.format("%a %Y-%m-%d %H:%M UTC").to_string();
        match self {
            Problem::Windows(why) | Problem::Blackout { why, .. } => f.write_str(why),
            Problem::RunsPastClose { closes } => {
                write!(
                    f,
                    "the window closes at {} before the slot ends",
                    at(closes)
                )
            }
            Problem::BlackoutDuring { window, from } => {
                write!(
                    f,
                    "blackout {window} begins at {} during the slot",
                    at(from)
                )
            }
            Problem::Clash { number, item } => {
                write!(f, "{number} is booked on {item} in the same slot")
            }
        }
    }
}

impl<W: AsRef<CompiledWindow>> Rules<'_, W> {
    fn verdict(&self, at: DateTime<Utc>) -> WindowVerdict {
        evaluate(
            self.windows.iter().map(AsRef::as_ref),
            self.tenant,
            self.kind,
            self.requires_window,
            at,
        )
    }

    /// The first blackout forbidding the type that opens in `[start, end)`.
    fn blackout_within(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<(String, DateTime<Utc>, DateTime<Utc>)> {
        self.windows
            .iter()
            .map(AsRef::as_ref)
            .filter(|w| {
                w.kind() == WindowKind::Blackout
                    && w.applies_to(self.tenant)
                    && !w.allows_type(self.kind)
            })
            .flat_map(|w| {
                w.windows_between(start, end)
                    .into_iter()
                    .map(|i| (w.name().to_string(), i.start.max(start), i.end))
            })
            .min_by_key(|(_, from, _)| *from)
    }
}

/// The bookings sharing a configuration item with `items` that overlap
/// `[start, end)`, with the item shared.
pub fn clashes<'b>(
    items: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    bookings: &'b [Booking],
) -> Vec<(&'b Booking, &'b str)> {
    bookings
        .iter()
        .filter(|b| b.start < end && start < b.end)
        .filter_map(|b| {
            b.configuration_items
                .iter()
                .find(|i| items.contains(i))
                .map(|i| (b, i.as_str()))
        })
        .collect()
}

/// Everything wrong with carrying out a change on `items` in `[start, end)`.
pub fn check<W: AsRef<CompiledWindow>>(
    rules: &Rules<'_, W>,
    items: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    bookings: &[Booking],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let verdict = rules.verdict(start);
    match &verdict {
        WindowVerdict::Open { closes, .. } if *closes < end => {
            problems.push(Problem::RunsPastClose { closes: *closes });
        }
        WindowVerdict::Open { .. } => {}
        WindowVerdict::NotRequired => {
            if let Some((window, from, _)) = rules.blackout_within(start, end) {
                problems.push(Problem::BlackoutDuring { window, from });
            }
        }
        WindowVerdict::Blackout { window, .. } => problems.push(Problem::Blackout {
            window: window.clone(),
            why: verdict.explain(),
        }),
        WindowVerdict::Closed { .. } => problems.push(Problem::Windows(verdict.explain())),
    }
    for (b, item) in clashes(items, start, end, bookings) {
        problems.push(Problem::Clash {
            number: b.number.clone(),
            item: item.to_string(),
        });
    }
    problems
}

/// Moves tried before giving up: each one passes a window, a blackout or
/// a booking, so this is far beyond any real calendar.
const MAX_STEPS: usize = 10_000;

/// The earliest start at or after `from` of a slot of `length` that
/// [`check`] accepts, or `None` if none starts within the windows' search
/// horizon (400 days) of `from`, e.g. a slot longer than any window.
pub fn earliest<W: AsRef<CompiledWindow>>(
    rules: &Rules<'_, W>,
    items: &[String],
    from: DateTime<Utc>,
    length: TimeDelta,
    bookings: &[Booking],
) -> Option<DateTime<Utc>> {
    earliest_for_all(std::slice::from_ref(rules), items, from, length, bookings)
}

/// Like [`earliest`], for a slot every tenant in `all` must allow (a
/// release delivering changes of several tenants in one window).
pub fn earliest_for_all<W: AsRef<CompiledWindow>>(
    all: &[Rules<'_, W>],
    items: &[String],
    from: DateTime<Utc>,
    length: TimeDelta,
    bookings: &[Booking],
) -> Option<DateTime<Utc>> {
    let length = length.max(TimeDelta::zero());
    let horizon = from + crate::window::SEARCH_HORIZON;
    let mut t = from;
    for _ in 0..MAX_STEPS {
        // As far ahead as the windows themselves are searched.
        if t > horizon {
            return None;
        }
        let end = t + length;
        // Where the windows would let the slot start next, if not at `t`:
        // the latest such moment over every tenant's rules.
        let mut moved: Option<DateTime<Utc>> = None;
        for rules in all {
            let next = match rules.verdict(t) {
                WindowVerdict::Closed { next } => Some(next?.at),
                WindowVerdict::Blackout { until, next, .. } => Some(if rules.requires_window {
                    next?.at
                } else {
                    until
                }),
                WindowVerdict::Open { closes, .. } if closes < end => Some(closes),
                WindowVerdict::Open { .. } => None,
                WindowVerdict::NotRequired => {
                    rules.blackout_within(t, end).map(|(_, _, until)| until)
                }
            };
            moved = moved.max(next);
        }
        if let Some(next) = moved {
            t = next.max(t + TimeDelta::seconds(1));
            continue;
        }
        match clashes(items, t, end, bookings)
            .iter()
            .map(|(b, _)| b.end)
            .max()
        {
            Some(free) => t = free.max(t + TimeDelta::seconds(1)),
            None => return Some(t),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowSpec;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("an RFC 3339 instant")
    }

    fn window(name: &str, spec: serde_json::Value) -> Arc<CompiledWindow> {
        let spec: WindowSpec = serde_json::from_value(spec).expect("a window spec");
        Arc::new(CompiledWindow::compile(name, &spec).expect("compiles"))
    }

    /// Saturdays 02:00-06:00 Berlin; a blackout over Christmas.
    fn calendar() -> Vec<Arc<CompiledWindow>> {
        vec![
            window(
                "weekly",
                serde_json::json!({ "timeZone": "Europe/Berlin",
                    "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
            ),
            window(
                "christmas",
                serde_json::json!({ "kind": "blackout", "timeZone": "Europe/Berlin",
                    "schedule": { "ranges": [{ "start": "2026-12-23T23:00:00Z", "end": "2026-12-26T23:00:00Z" }] } }),
            ),
        ]
    }

    fn rules(windows: &[Arc<CompiledWindow>], kind: ChangeType) -> Rules<'_, Arc<CompiledWindow>> {
        Rules {
            windows,
            tenant: "client-a",
            kind,
            requires_window: kind == ChangeType::Normal,
        }
    }

    fn booking(number: &str, item: &str, start: &str, end: &str) -> Booking {
        Booking {
            number: number.into(),
            configuration_items: vec![item.into()],
            start: at(start),
            end: at(end),
        }
    }

    #[test]
    fn a_normal_change_waits_for_the_next_window_and_skips_a_blackout() {
        let w = calendar();
        let items = vec!["payments-api".to_string()];
        // Monday 2026-12-21: the window of Saturday the 26th is blacked out.
        let got = earliest(
            &rules(&w, ChangeType::Normal),
            &items,
            at("2026-12-21T09:00:00Z"),
            TimeDelta::hours(1),
            &[],
        );
        assert_eq!(got, Some(at("2027-01-02T01:00:00Z")));
    }

    #[test]
    fn a_slot_that_cannot_fit_before_the_window_closes_moves_to_the_next_one() {
        let w = calendar();
        let items = vec!["payments-api".to_string()];
        // Saturday 28 November, 04:30 Berlin: 90 minutes left of the window.
        let from = at("2026-11-28T03:30:00Z");
        let r = rules(&w, ChangeType::Normal);
        assert_eq!(
            earliest(&r, &items, from, TimeDelta::hours(1), &[]),
            Some(from)
        );
        assert_eq!(
            check(&r, &items, from, from + TimeDelta::hours(2), &[]),
            vec![Problem::RunsPastClose {
                closes: at("2026-11-28T05:00:00Z")
            }]
        );
        assert_eq!(
            earliest(&r, &items, from, TimeDelta::hours(2), &[]),
            Some(at("2026-12-05T01:00:00Z"))
        );
    }

    #[test]
    fn a_booking_on_the_same_item_pushes_the_slot_past_it_and_other_items_do_not() {
        let w = calendar();
        let items = vec!["payments-api".to_string()];
        let r = rules(&w, ChangeType::Normal);
        let from = at("2026-11-28T01:00:00Z");
        let other = [booking(
            "CHG-7",
            "shop",
            "2026-11-28T01:00:00Z",
            "2026-11-28T03:00:00Z",
        )];
        assert_eq!(
            earliest(&r, &items, from, TimeDelta::hours(1), &other),
            Some(from)
        );
        let same = [booking(
            "CHG-8",
            "payments-api",
            "2026-11-28T01:00:00Z",
            "2026-11-28T02:30:00Z",
        )];
        assert_eq!(
            check(&r, &items, from, from + TimeDelta::hours(1), &same),
            vec![Problem::Clash {
                number: "CHG-8".into(),
                item: "payments-api".into()
            }]
        );
        assert_eq!(
            earliest(&r, &items, from, TimeDelta::hours(1), &same),
            Some(at("2026-11-28T02:30:00Z"))
        );
    }

    #[test]
    fn a_change_that_needs_no_window_still_keeps_clear_of_a_blackout_opening_during_it() {
        let w = calendar();
        let items = vec!["payments-api".to_string()];
        let r = rules(&w, ChangeType::Standard);
        // 23 December 22:30 UTC: the blackout opens at 23:00 UTC.
        let from = at("2026-12-23T22:30:00Z");
        assert!(matches!(
            check(&r, &items, from, from + TimeDelta::hours(1), &[])[..],
            [Problem::BlackoutDuring { .. }]
        ));
        assert_eq!(
            earliest(&r, &items, from, TimeDelta::hours(1), &[]),
            Some(at("2026-12-26T23:00:00Z"))
        );
    }

    #[test]
    fn a_slot_longer_than_every_window_is_never_proposed() {
        let w = calendar();
        let items = vec!["payments-api".to_string()];
        let from = at("2026-11-23T00:00:00Z");
        let r = rules(&w, ChangeType::Normal);
        assert_eq!(earliest(&r, &items, from, TimeDelta::hours(6), &[]), None);
    }

    /// Client B's windows: Sundays 01:00-05:00 Zurich.
    fn sundays() -> Vec<Arc<CompiledWindow>> {
        vec![window(
            "sunday",
            serde_json::json!({ "timeZone": "Europe/Zurich",
                "schedule": { "cron": { "expr": "0 1 * * SUN", "duration": "4h" } } }),
        )]
    }

    #[test]
    fn a_slot_for_two_tenants_needs_both_windows_open() {
        let (a, b) = (calendar(), sundays());
        let items = vec!["shared-firewall".to_string()];
        let from = at("2026-11-23T00:00:00Z");
        let both = [
            rules(&a, ChangeType::Normal),
            Rules {
                tenant: "client-b",
                ..rules(&b, ChangeType::Normal)
            },
        ];
        // Saturday 01:00-05:00 UTC and Sunday 00:00-04:00 UTC never meet.
        assert_eq!(
            earliest_for_all(&both, &items, from, TimeDelta::hours(1), &[]),
            None
        );
        // A blackout-only tenant adds its blackout to the other's windows.
        let freeze = [
            rules(&a, ChangeType::Normal),
            rules(&a, ChangeType::Standard),
        ];
        assert_eq!(
            earliest_for_all(
                &freeze,
                &items,
                at("2026-12-21T09:00:00Z"),
                TimeDelta::hours(1),
                &[]
            ),
            Some(at("2027-01-02T01:00:00Z"))
        );
    }

    proptest! {
        /// Whatever the bookings, the slot proposed passes the check, and
        /// no earlier start on the hour does.
        #[test]
        fn the_slot_proposed_passes_the_check_and_none_earlier_on_the_hour_does(
            day in 0i64..60,
            hour in 0i64..24,
            length in 1i64..5,
            kind in prop_oneof![Just(ChangeType::Normal), Just(ChangeType::Standard)],
            booked in proptest::collection::vec((0i64..24 * 70, 1i64..12, any::<bool>()), 0..12),
        ) {
            let w = calendar();
            let r = rules(&w, kind);
            let items = vec!["payments-api".to_string()];
            let origin = at("2026-11-23T00:00:00Z");
            let bookings: Vec<Booking> = booked
                .iter()
                .enumerate()
                .map(|(i, (start, hours, same))| Booking {
                    number: format!("CHG-{i}"),
                    configuration_items: vec![if *same { "payments-api" } else { "shop" }.into()],
                    start: origin + TimeDelta::hours(*start),
                    end: origin + TimeDelta::hours(start + hours),
                })
                .collect();
            let from = origin + TimeDelta::days(day) + TimeDelta::hours(hour);
            let length = TimeDelta::hours(length);
            let found = earliest(&r, &items, from, length, &bookings);
            prop_assert!(found.is_some());
            let found = found.unwrap();
            prop_assert!(found >= from);
            prop_assert_eq!(check(&r, &items, found, found + length, &bookings), vec![]);
            let mut t = from;
            while t < found {
                prop_assert!(
                    !check(&r, &items, t, t + length, &bookings).is_empty(),
                    "{} was acceptable before {}", t, found
                );
                t += TimeDelta::hours(1);
            }
        }

        /// Two tenants, one needing windows, one not: the slot proposed
        /// passes both tenants' checks, and no earlier start on the hour
        /// passes both.
        #[test]
        fn a_slot_proposed_for_two_tenants_passes_both(
            day in 0i64..60,
            hour in 0i64..24,
            length in 1i64..4,
        ) {
            let a = calendar();
            let b = sundays();
            let both = [
                rules(&a, ChangeType::Normal),
                Rules { tenant: "client-b", ..rules(&b, ChangeType::Standard) },
            ];
            let items = vec!["shared-firewall".to_string()];
            let from = at("2026-11-23T00:00:00Z") + TimeDelta::days(day) + TimeDelta::hours(hour);
            let length = TimeDelta::hours(length);
            let passes = |t: DateTime<Utc>| both.iter().all(|r| check(r, &items, t, t + length, &[]).is_empty());
            let found = earliest_for_all(&both, &items, from, length, &[]);
            prop_assert!(found.is_some());
            let found = found.unwrap();
            prop_assert!(passes(found));
            let mut t = from;
            while t < found {
                prop_assert!(!passes(t), "{} passed both before {}", t, found);
                t += TimeDelta::hours(1);
            }
        }
    }
}
