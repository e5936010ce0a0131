//! The recurring part of a schedule: wall-clock window starts from cron or
//! rrule, the range of years they are evaluated over, and the shortest gap
//! between consecutive starts that bounds a window's duration.

use super::cron_starts::CronStarts;
use super::rrule_starts::{DEFAULT_DTSTART, RuleStarts};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

/// Recurrences produce starts from 1970 up to (not including) year 5000,
/// croner's search limit; no maintenance window needs more, and the bound
/// keeps every computation finite.
pub(crate) const DOMAIN_START: NaiveDateTime = NaiveDate::from_ymd_opt(1970, 1, 1)
    .expect("1970-01-01 is a valid date")
    .and_time(NaiveTime::MIN);
pub(crate) const DOMAIN_END: NaiveDateTime = NaiveDate::from_ymd_opt(5000, 1, 1)
    .expect("5000-01-01 is a valid date")
    .and_time(NaiveTime::MIN);

/// The shortest-gap scan looks at this many starts at most...
const GAP_SCAN_STARTS: usize = 1_000;
/// ...within four years and a day, a whole leap-year cycle.
const GAP_SCAN_SPAN: TimeDelta = TimeDelta::days(4 * 365 + 2);

/// Where wall-clock window starts come from.
#[derive(Debug, Clone)]
pub(crate) enum Recurrence {
    Cron(CronStarts),
    Rule(RuleStarts),
}

impl Recurrence {
    /// Starts `s` with `from <= s < to`, in order.
    pub(crate) fn starts_between(
        &self,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Vec<NaiveDateTime> {
        let to = to.min(DOMAIN_END);
        self.starts_from(from).take_while(|s| *s < to).collect()
    }

    /// The first start at or after `from`, if there is one in the domain.
    pub(crate) fn first_from(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        self.starts_from(from).next().filter(|s| *s < DOMAIN_END)
    }

    /// Where the shortest-gap scan begins: DTSTART for a rule (its INTERVAL
    /// grid starts there), 2000-01-01 00:00 for cron (a leap year).
    pub(crate) fn scan_start(&self) -> NaiveDateTime {
        match self {
            Self::Cron(_) => DEFAULT_DTSTART,
            Self::Rule(rule) => rule.dtstart().max(DOMAIN_START),
        }
    }

    /// The shortest interval between consecutive starts among the first
    /// 1 000 starts within four years of [`Self::scan_start`], or `None` when
    /// fewer than two starts fall there. Cron and rrule calendars repeat
    /// within that span for every rule a maintenance window plausibly uses,
    /// so a duration that fits here fits everywhere.
    pub(crate) fn shortest_gap(&self) -> Option<TimeDelta> {
        let from = self.scan_start();
        let until = from + GAP_SCAN_SPAN;
        let starts: Vec<_> = self
            .starts_from(from)
            .take(GAP_SCAN_STARTS)
            .take_while(|s| *s < until)
            .collect();
        starts.windows(2).map(|pair| pair[1] - pair[0]).min()
    }

    fn starts_from(&self, from: NaiveDateTime) -> Box<dyn Iterator<Item = NaiveDateTime> + '_> {
        let from = from.max(DOMAIN_START);
        match self {
            Self::Cron(cron) => Box::new(cron.starts_from(from)),
            Self::Rule(rule) => Box::new(rule.starts_from(from)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(expr: &str) -> Recurrence {
        Recurrence::Cron(CronStarts::parse(expr).expect("valid cron"))
    }

    #[test]
    fn the_shortest_gap_of_a_weekly_cron_is_a_week() {
        assert_eq!(
            cron("0 2 * * SAT").shortest_gap(),
            Some(TimeDelta::weeks(1))
        );
    }

    #[test]
    fn the_shortest_gap_finds_the_closest_pair() {
        // Monday to Wednesday is two days, Wednesday to Monday five.
        assert_eq!(
            cron("0 2 * * MON,WED").shortest_gap(),
            Some(TimeDelta::days(2))
        );
    }

    #[test]
    fn a_leap_day_cron_has_four_years_between_starts() {
        assert_eq!(cron("0 0 29 2 *").shortest_gap(), None);
        assert!(cron("0 0 29 2 *").first_from(DOMAIN_START).is_some());
    }

    #[test]
    fn starts_beyond_the_domain_are_not_produced() {
        let c = cron("0 0 1 1 *");
        let late = NaiveDate::from_ymd_opt(4999, 6, 1)
            .expect("date")
            .and_time(NaiveTime::MIN);
        assert_eq!(c.first_from(late), None);
        assert!(
            c.starts_between(late, DOMAIN_END + TimeDelta::days(400))
                .is_empty()
        );
    }
}
