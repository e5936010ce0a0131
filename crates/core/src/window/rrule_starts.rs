//! Window starts from an RFC 5545 recurrence rule. The rule runs on naive
//! wall-clock time dressed as UTC, so the rrule crate never sees daylight
//! saving; DTSTART and UNTIL are read as local time in the window's zone.

use super::error::WindowError;
use super::local_time::to_local;
use chrono::{
    DateTime, Datelike, Month, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike,
    Weekday,
};
use chrono_tz::Tz;
use rrule::{Frequency, NWeekday, RRule, RRuleSet, Unvalidated};

/// DTSTART when the rule has none: INTERVAL counts from here, and a rule
/// without BYHOUR/BYMINUTE starts its windows at midnight.
pub(crate) const DEFAULT_DTSTART: NaiveDateTime = NaiveDate::from_ymd_opt(2000, 1, 1)
    .expect("2000-01-01 is a valid date")
    .and_time(NaiveTime::MIN);

/// COUNT bounds the work of every query (a counted rule is always walked
/// from DTSTART); longer series should use UNTIL.
const MAX_COUNT: u32 = 10_000;

/// A validated rule with DTSTART and the defaults RFC 5545 derives from it
/// (BYMONTHDAY, BYDAY, BYHOUR, ...) written out, so the rule can be restarted
/// at any later period boundary without changing its meaning.
#[derive(Debug, Clone)]
pub(crate) struct RuleStarts {
    rule: RRule<Unvalidated>,
    dtstart: NaiveDateTime,
    until: Option<NaiveDateTime>,
}

impl RuleStarts {
    /// Parses `FREQ=...`, `RRULE:FREQ=...`, or a `DTSTART:YYYYMMDDTHHMMSS`
    /// line followed by an `RRULE:` line; DTSTART is floating local time in
    /// `tz`.
    pub(crate) fn parse(text: &str, tz: Tz) -> Result<Self, WindowError> {
        let invalid = |reason: String| WindowError::InvalidRRule {
            value: text.to_owned(),
            reason,
        };
        let (dtstart, rule_text) = split_lines(text).map_err(invalid)?;
        let dtstart = dtstart.unwrap_or(DEFAULT_DTSTART);
        let (rule_text, until) = localize_until(rule_text, tz).map_err(invalid)?;
        let rule: RRule<Unvalidated> = rule_text
            .parse()
            .map_err(|e: rrule::RRuleError| invalid(e.to_string()))?;
        if rule.get_freq() == Frequency::Secondly {
            return Err(invalid(
                "FREQ=SECONDLY is not supported: windows start on whole minutes; use MINUTELY or coarser".into(),
            ));
        }
        if rule.get_count().is_some_and(|c| c > MAX_COUNT) {
            return Err(invalid(format!(
                "COUNT above {MAX_COUNT} is not supported; end the series with UNTIL instead"
            )));
        }
        if let Some(until) = until.filter(|until| *until < dtstart) {
            return Err(invalid(format!(
                "UNTIL {until} is before DTSTART {dtstart}, so the rule never starts; fix one of them"
            )));
        }
        let rule = write_out_defaults(rule, dtstart);
        rule.clone()
            .validate(as_rule_time(dtstart))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            rule,
            dtstart,
            until,
        })
    }

    /// Where the series begins: the start of the shortest-gap scan.
    pub(crate) fn dtstart(&self) -> NaiveDateTime {
        self.dtstart
    }

    /// Starts from `from` on, in order.
    pub(crate) fn starts_from(&self, from: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> {
        let anchor = self.anchor(from);
        let set = if self.until.is_some_and(|until| until < anchor) {
            None
        } else {
            let start = as_rule_time(anchor);
            self.rule
                .clone()
                .validate(start)
                .ok()
                .map(|rule| RRuleSet::new(start).rrule(rule).limit())
        };
        // `limit()` makes the crate give up after 100 000 empty periods
        // instead of looping forever on a rule that no longer matches.
        set.as_ref()
            .map(IntoIterator::into_iter)
            .into_iter()
            .flatten()
            .map(|t| t.naive_utc())
            .skip_while(move |t| *t < from)
    }

    /// The latest boundary of a period of the series, on the rule's INTERVAL
    /// grid, at or before `from`: restarting there yields exactly the
    /// original starts from `from` on, without walking the years since
    /// DTSTART. A counted rule must be walked from DTSTART to count.
    fn anchor(&self, from: NaiveDateTime) -> NaiveDateTime {
        let d = self.dtstart;
        if self.rule.get_count().is_some() || from <= d {
            return d;
        }
        let step = i64::from(self.rule.get_interval().max(1));
        let wkst = self.rule.get_week_start();
        let elapsed = match self.rule.get_freq() {
            Frequency::Yearly => i64::from(from.year() - d.year()),
            Frequency::Monthly => month_index(from.date()) - month_index(d.date()),
            Frequency::Weekly => {
                (week_start(from.date(), wkst) - week_start(d.date(), wkst)).num_days() / 7
            }
            Frequency::Daily => (from.date() - d.date()).num_days(),
            Frequency::Hourly => (from - floor_to_hour(d)).num_hours(),
            Frequency::Minutely => (from - floor_to_minute(d)).num_minutes(),
            Frequency::Secondly => 0,
        };
        let k = elapsed / step * step;
        if k <= 0 {
            return d;
        }
        let midnight = |date: NaiveDate| date.and_time(NaiveTime::MIN);
        let anchor = match self.rule.get_freq() {
            Frequency::Yearly => i32::try_from(k)
                .ok()
                .and_then(|k| NaiveDate::from_ymd_opt(d.year() + k, 1, 1))
                .map(midnight),
            Frequency::Monthly => month_start(month_index(d.date()) + k).map(midnight),
            Frequency::Weekly => week_start(d.date(), wkst)
                .checked_add_signed(TimeDelta::weeks(k))
                .map(midnight),
            Frequency::Daily => d
                .date()
                .checked_add_signed(TimeDelta::days(k))
                .map(midnight),
            Frequency::Hourly => floor_to_hour(d).checked_add_signed(TimeDelta::hours(k)),
            Frequency::Minutely => floor_to_minute(d).checked_add_signed(TimeDelta::minutes(k)),
            Frequency::Secondly => None,
        };
        anchor.unwrap_or(d)
    }
}

/// A wall-clock time as the rrule crate sees it: dressed as UTC.
fn as_rule_time(t: NaiveDateTime) -> DateTime<rrule::Tz> {
    rrule::Tz::UTC.from_utc_datetime(&t)
}

/// The optional DTSTART and the one rule in `text`, which is a bare rule, an
/// `RRULE:` line, or both lines.
fn split_lines(text: &str) -> Result<(Option<NaiveDateTime>, &str), String> {
    let mut dtstart = None;
    let mut rule = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("DTSTART") {
            if dtstart.is_some() {
                return Err("more than one DTSTART line".into());
            }
            dtstart = Some(parse_dtstart(line)?);
        } else if upper.starts_with("RRULE:") || !line.contains(':') {
            if rule.is_some() {
                return Err("more than one RRULE; use one MaintenanceWindow per rule".into());
            }
            rule = Some(if upper.starts_with("RRULE:") {
                line.get("RRULE:".len()..).unwrap_or(line)
            } else {
                line
            });
        } else {
            return Err(format!(
                "unsupported line {line:?}: only an optional DTSTART line and one RRULE are allowed; cut dates out with spec.exclusions"
            ));
        }
    }
    let rule = rule.ok_or("missing the rule, e.g. FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;BYMINUTE=0")?;
    Ok((dtstart, rule))
}

fn parse_dtstart(line: &str) -> Result<NaiveDateTime, String> {
    let (name, value) = line
        .split_once(':')
        .ok_or("DTSTART needs a value, e.g. DTSTART:20260113T220000")?;
    if !name.trim().eq_ignore_ascii_case("DTSTART") {
        return Err(
            "DTSTART parameters such as TZID are not supported: DTSTART is local time in spec.timeZone"
                .into(),
        );
    }
    let value = value.trim();
    if value.ends_with(['Z', 'z']) {
        return Err(format!(
            "DTSTART {value:?} is local time in spec.timeZone; drop the trailing Z"
        ));
    }
    parse_ical_local(value).ok_or_else(|| {
        format!("DTSTART {value:?} is not YYYYMMDDTHHMMSS, e.g. DTSTART:20260113T220000")
    })
}

/// Rewrites UNTIL as wall-clock time in `tz` (the crate compares it with the
/// wall-clock starts): a `Z` value is converted from UTC, a floating value is
/// taken as it is, and a bare date means the end of that local day.
fn localize_until(rule: &str, tz: Tz) -> Result<(String, Option<NaiveDateTime>), String> {
    let mut until = None;
    let mut parts = Vec::new();
    for part in rule.split(';') {
        match part.split_once('=') {
            Some((key, value)) if key.trim().eq_ignore_ascii_case("UNTIL") => {
                let value = value.trim();
                let local = if let Some(utc) = value.strip_suffix(['Z', 'z']) {
                    parse_ical_local(utc).map(|t| to_local(tz, t.and_utc()))
                } else if value.len() == 8 {
                    NaiveDate::parse_from_str(value, "%Y%m%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(23, 59, 59))
                } else {
                    parse_ical_local(value)
                }
                .ok_or_else(|| {
                    format!("UNTIL {value:?} is not YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ")
                })?;
                until = Some(local);
                parts.push(format!("UNTIL={}Z", local.format("%Y%m%dT%H%M%S")));
            }
            _ => parts.push(part.to_owned()),
        }
    }
    Ok((parts.join(";"), until))
}

fn parse_ical_local(value: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y%m%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN))
        })
}

/// Writes out the parts RFC 5545 takes from DTSTART when the rule leaves them
/// out (mirroring the rrule crate's own defaults), so they stay DTSTART's
/// when the rule is restarted at a later anchor.
fn write_out_defaults(rule: RRule<Unvalidated>, d: NaiveDateTime) -> RRule<Unvalidated> {
    let freq = rule.get_freq();
    let no_day_filter = rule.get_by_week_no().is_empty()
        && rule.get_by_year_day().is_empty()
        && rule.get_by_month_day().is_empty()
        && rule.get_by_weekday().is_empty();
    let day = i8::try_from(d.day()).unwrap_or(1);
    let mut rule = rule;
    if no_day_filter {
        rule = match freq {
            Frequency::Yearly => {
                let month = u8::try_from(d.month())
                    .ok()
                    .and_then(|m| Month::try_from(m).ok())
                    .unwrap_or(Month::January);
                let rule = if rule.get_by_month().is_empty() {
                    rule.by_month(&[month])
                } else {
                    rule
                };
                rule.by_month_day(vec![day])
            }
            Frequency::Monthly => rule.by_month_day(vec![day]),
            Frequency::Weekly => rule.by_weekday(vec![NWeekday::Every(d.weekday())]),
            _ => rule,
        };
    }
    let part = |n: u32| u8::try_from(n).unwrap_or(0);
    if rule.get_by_hour().is_empty() && freq < Frequency::Hourly {
        rule = rule.by_hour(vec![part(d.hour())]);
    }
    if rule.get_by_minute().is_empty() && freq < Frequency::Minutely {
        rule = rule.by_minute(vec![part(d.minute())]);
    }
    if rule.get_by_second().is_empty() && freq < Frequency::Secondly {
        rule = rule.by_second(vec![part(d.second())]);
    }
    rule
}

fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

fn month_start(index: i64) -> Option<NaiveDate> {
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
    NaiveDate::from_ymd_opt(year, month, 1)
}

fn week_start(date: NaiveDate, wkst: Weekday) -> NaiveDate {
    let back = (date.weekday().num_days_from_monday() + 7 - wkst.num_days_from_monday()) % 7;
    date - TimeDelta::days(i64::from(back))
}

fn floor_to_hour(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_hms_opt(t.hour(), 0, 0).unwrap_or(t)
}

fn floor_to_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_hms_opt(t.hour(), t.minute(), 0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::fixtures::local;
    use chrono_tz::{America::New_York, UTC};
    use proptest::prelude::*;

    fn first(rule: &str, from: &str, n: usize) -> Vec<NaiveDateTime> {
        RuleStarts::parse(rule, UTC)
            .expect("valid rule")
            .starts_from(local(from))
            .take(n)
            .collect()
    }

    /// The reference: walk the rule from DTSTART with the crate alone.
    fn walked(rule: &RuleStarts, from: NaiveDateTime, n: usize) -> Vec<NaiveDateTime> {
        let start = as_rule_time(rule.dtstart);
        let validated = rule.rule.clone().validate(start).expect("valid rule");
        RRuleSet::new(start)
            .rrule(validated)
            .limit()
            .into_iter()
            .map(|t| t.naive_utc())
            .skip_while(|t| *t < from)
            .take(n)
            .collect()
    }

    #[test]
    fn a_bare_rule_starts_at_its_byhour_and_byminute() {
        assert_eq!(
            first(
                "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;BYMINUTE=0",
                "2026-01-01 00:00",
                3
            ),
            vec![
                local("2026-01-13 22:00"),
                local("2026-02-10 22:00"),
                local("2026-03-10 22:00")
            ]
        );
    }

    #[test]
    fn the_rrule_prefix_is_optional() {
        assert_eq!(
            first("RRULE:FREQ=DAILY;BYHOUR=3", "2026-01-01 04:00", 1),
            vec![local("2026-01-02 03:00")]
        );
    }

    #[test]
    fn without_byhour_windows_start_at_the_dtstart_time_of_day() {
        assert_eq!(
            first("FREQ=WEEKLY;BYDAY=SA", "2026-01-01 00:00", 1),
            vec![local("2026-01-03 00:00")]
        );
        assert_eq!(
            first(
                "DTSTART:20260103T021500\nRRULE:FREQ=WEEKLY",
                "2026-01-04 00:00",
                1
            ),
            vec![local("2026-01-10 02:15")]
        );
    }

    #[test]
    fn interval_counts_from_dtstart() {
        let rule = "DTSTART:20260103T020000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=SA";
        assert_eq!(
            first(rule, "2026-01-04 00:00", 2),
            vec![local("2026-01-17 02:00"), local("2026-01-31 02:00")]
        );
    }

    #[test]
    fn until_in_utc_is_converted_to_wall_clock_time() {
        // 2026-01-14T03:00Z is 22:00 on the 13th in New York: inclusive.
        let rule = RuleStarts::parse(
            "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;UNTIL=20260114T030000Z",
            New_York,
        )
        .expect("valid");
        let starts: Vec<_> = rule.starts_from(local("2025-12-01 00:00")).collect();
        assert_eq!(
            starts,
            vec![local("2025-12-09 22:00"), local("2026-01-13 22:00")]
        );
    }

    #[test]
    fn a_date_until_includes_that_whole_day() {
        assert_eq!(
            first("FREQ=DAILY;BYHOUR=22;UNTIL=20260102", "2026-01-01 00:00", 5),
            vec![local("2026-01-01 22:00"), local("2026-01-02 22:00")]
        );
    }

    #[test]
    fn only_dtstart_and_one_rrule_are_accepted() {
        for (text, reason) in [
            ("FREQ=DAILY\nEXDATE:20260101T000000", "unsupported line"),
            ("FREQ=DAILY\nFREQ=WEEKLY", "more than one RRULE"),
            (
                "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
                "drop the trailing Z",
            ),
            (
                "DTSTART;TZID=Europe/Berlin:20260101T000000\nRRULE:FREQ=DAILY",
                "TZID",
            ),
            ("DTSTART:20260101T000000", "missing the rule"),
            ("FREQ=SECONDLY", "SECONDLY is not supported"),
            ("FREQ=DAILY;COUNT=20000", "end the series with UNTIL"),
            ("FREQ=FORTNIGHTLY", "not a valid frequency"),
            (
                "DTSTART:20260601T000000\nRRULE:FREQ=DAILY;UNTIL=20260101T000000",
                "is before DTSTART",
            ),
        ] {
            let err = RuleStarts::parse(text, UTC).expect_err(text).to_string();
            assert!(err.starts_with("spec.schedule.rrule: "), "{err}");
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    const RULES: &[&str] = &[
        "FREQ=YEARLY",
        "FREQ=YEARLY;INTERVAL=3;BYMONTH=2,8;BYDAY=-1FR;BYHOUR=6",
        "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;BYMINUTE=0",
        "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=-1,15",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=18",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=SA,SU;BYHOUR=1,13",
        "FREQ=WEEKLY;WKST=SU;INTERVAL=2;BYDAY=SU,MO",
        "FREQ=DAILY;INTERVAL=9;BYHOUR=4;BYMINUTE=30",
        "FREQ=HOURLY;INTERVAL=7",
        "FREQ=HOURLY;INTERVAL=5;BYHOUR=1,2,3,4,5,6;BYMINUTE=10",
        "FREQ=MINUTELY;INTERVAL=97",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Restarting a rule at a later anchor never changes its starts.
        #[test]
        fn anchored_starts_equal_starts_walked_from_dtstart(
            rule in 0..RULES.len(),
            dtstart_minutes in 0i64..(3 * 366 * 24 * 60),
            offset_minutes in 0i64..(4 * 366 * 24 * 60),
        ) {
            let dtstart = local("2019-01-01 00:00") + TimeDelta::minutes(dtstart_minutes);
            let text = format!("DTSTART:{}\nRRULE:{}", dtstart.format("%Y%m%dT%H%M%S"), RULES[rule]);
            let parsed = RuleStarts::parse(&text, UTC).expect("valid rule");
            let from = dtstart + TimeDelta::minutes(offset_minutes);
            let anchored: Vec<_> = parsed.starts_from(from).take(6).collect();
            prop_assert_eq!(anchored, walked(&parsed, from, 6), "{}", text);
        }
    }
}
