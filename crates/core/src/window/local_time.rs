//! Wall-clock time in a window's zone: turning a local date-time into an
//! instant by the RFC 5545 rule (gaps read with the offset before the gap,
//! repeated times mean their first occurrence), local days, and how an
//! instant is shown to people.

use super::spec::Interval;
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant a wall-clock time in `tz` stands for (RFC 5545 §3.3.5).
///
/// A time inside a daylight-saving gap is read with the offset in force
/// before the gap, so 02:30 on spring-forward night in Europe/Berlin is 03:30
/// CEST. A time that happens twice (fall-back night) is its first occurrence.
pub(crate) fn to_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(first, _) => first.to_utc(),
        LocalResult::None => {
            // One day before the wall-clock time is safely before the jump and
            // after the previous one: zone transitions are months apart.
            let before = local
                .checked_sub_signed(TimeDelta::days(1))
                .unwrap_or(local);
            let offset = tz.offset_from_utc_datetime(&before).fix();
            let seconds = TimeDelta::seconds(i64::from(offset.local_minus_utc()));
            local.checked_sub_signed(seconds).unwrap_or(local).and_utc()
        }
    }
}

/// The wall-clock time of instant `t` in `tz`.
pub(crate) fn to_local(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// The whole local day `date` in `tz`, from its first instant to the next
/// day's (23, 24 or 25 hours around daylight-saving changes).
pub(crate) fn local_day(tz: Tz, date: NaiveDate) -> Interval {
    let next = date.succ_opt().unwrap_or(date);
    Interval {
        start: to_instant(tz, date.and_time(chrono::NaiveTime::MIN)),
        end: to_instant(tz, next.and_time(chrono::NaiveTime::MIN)),
    }
}

/// `t` as people in `tz` read it, the way admission messages print it:
/// `Sat 2026-11-28 02:00 Europe/Berlin`.
pub fn format_instant(t: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} {}",
        t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M"),
        tz.name()
    )
}

/// `t + span`, saturating at the ends of the representable time line so a
/// query near them degrades instead of panicking.
pub(crate) fn shift(t: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(span)
        .unwrap_or(if span < TimeDelta::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::fixtures::local;
    use chrono_tz::{America::New_York, Europe::Berlin};

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("test literal")
    }

    #[test]
    fn an_ordinary_time_has_one_instant() {
        assert_eq!(
            to_instant(Berlin, local("2026-07-01 02:00")),
            utc("2026-07-01T00:00:00Z")
        );
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_uses_the_offset_before_the_gap() {
        // 02:30 never happens in Berlin on 2026-03-29; read with CET it is 03:30 CEST.
        assert_eq!(
            to_instant(Berlin, local("2026-03-29 02:30")),
            utc("2026-03-29T01:30:00Z")
        );
        assert_eq!(
            to_instant(New_York, local("2026-03-08 02:00")),
            utc("2026-03-08T07:00:00Z")
        );
    }

    #[test]
    fn a_repeated_fall_back_time_means_its_first_occurrence() {
        // 02:30 happens twice in Berlin on 2026-10-25: first at CEST.
        assert_eq!(
            to_instant(Berlin, local("2026-10-25 02:30")),
            utc("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn local_days_follow_daylight_saving() {
        let day = local_day(Berlin, NaiveDate::from_ymd_opt(2026, 10, 25).expect("date"));
        assert_eq!(day.end - day.start, TimeDelta::hours(25));
        let day = local_day(Berlin, NaiveDate::from_ymd_opt(2026, 3, 29).expect("date"));
        assert_eq!(day.end - day.start, TimeDelta::hours(23));
    }

    #[test]
    fn instants_are_shown_in_the_zone_with_its_name() {
        assert_eq!(
            format_instant(utc("2026-11-28T01:00:00Z"), Berlin),
            "Sat 2026-11-28 02:00 Europe/Berlin"
        );
    }

    #[test]
    fn shifting_saturates_instead_of_overflowing() {
        assert_eq!(
            shift(DateTime::<Utc>::MAX_UTC, TimeDelta::days(1)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            shift(DateTime::<Utc>::MIN_UTC, TimeDelta::days(-1)),
            DateTime::<Utc>::MIN_UTC
        );
    }
}
